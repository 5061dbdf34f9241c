"""Reliability of the persistent index: a writer SIGKILLed at random moments during ``add`` (repeatedly)
leaves an index that opens and answers consistently (rows and vectors agree, every add all or nothing,
every reported commit kept); a failed commit changes nothing; readers keep answering while a writer adds.

The writer is a subprocess adding batches of 256-d vectors, so most of its time is spent committing
(writing the faiss file and the rows), where a kill does the most harm.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
import pytest

from genvision.apps.retrieval.database import Database
from genvision.apps.retrieval.store import Index

DIM = 256
BATCH = 400

WRITER = f"""
import sys
import numpy as np
from genvision.apps.retrieval.store import Index
path, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
with Index.open(path, writable=True, lock_timeout=120) as index:
    print("ready", flush=True)
    for step in range(100000):
        batch = f"s{{seed}}b{{step}}"
        index.add_vectors(rng.normal(size=({BATCH}, {DIM})).astype(np.float32),
                          [f"{{batch}}/{{i}}" for i in range({BATCH})])
        print("committed", batch, flush=True)
"""


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """conftest gives torch (and with it the OpenMP pool faiss shares) two threads; on a busy 2-core
    machine faiss's OpenMP barriers then make these tiny builds ~10x slower, so faiss gets one here."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


class Writer:
    """The writer subprocess and the batches it reported committed."""

    def __init__(self, path: Path, seed: int):
        self.process = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(seed)], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True,
                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.committed: list[str] = []

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_ready(self, timeout: float = 300) -> None:
        assert self.lines.get(timeout=timeout) == "ready"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)
        time.sleep(0.05)  # let the reader thread drain what was printed before the kill
        while not self.lines.empty():
            line = self.lines.get()
            if line.startswith("committed "):
                self.committed.append(line.split()[1])


def planted_index(path: Path) -> np.ndarray:
    planted = np.random.default_rng(123).normal(size=(1, DIM)).astype(np.float32)
    with Index.create(path, embed=f"vectors:{DIM}") as index:
        index.add_vectors(planted, ["planted"])
    return planted


def check_consistent(path: Path, committed: list[str], planted: np.ndarray) -> int:
    """Open ``path`` as a reader and check that rows and vectors agree; returns the item count."""
    with Index.open(path) as index:
        ids, vectors = index.all_vectors()
        names = index.names()
        assert len(ids) == len(names) == len(index) == vectors.shape[0]
        _, found = index.search_vectors(vectors[:1], k=len(ids) + 10)
        assert found.shape[1] == len(ids) and set(found[0].tolist()) == set(ids.tolist())  # faiss holds every row
        sample = np.random.default_rng(len(ids)).choice(len(ids), min(25, len(ids)), replace=False)
        _, nearest = index.search_vectors(vectors[sample], k=1)
        assert (nearest[:, 0] == ids[sample]).all()  # each stored vector finds its own row
        batches = Counter(name.split("/")[0] for name in names.values() if name != "planted")
        assert set(batches.values()) <= {BATCH}, "an add was half applied"
        assert set(committed) <= set(batches), "a reported commit was lost"
        top = index.search(planted[0], k=1)[0]
        assert top.path == "planted" and top.score == pytest.approx(1.0, abs=1e-5)
        return len(ids)


def test_an_add_killed_at_random_moments_leaves_a_consistent_index(tmp_path):
    path = tmp_path / "kill.gvindex"
    planted = planted_index(path)
    rng = random.Random(0)
    committed, counts = [], []
    for round_number in range(3):  # each round starts Python and the index: a few seconds apiece
        writer = Writer(path, seed=round_number)
        writer.wait_ready()
        time.sleep(rng.uniform(0.2, 2.0))
        writer.kill()
        committed += writer.committed
        counts.append(check_consistent(path, committed, planted))
        with Index.open(path, writable=True, lock_timeout=5) as reopened:  # the dead writer's lock is gone
            assert len(reopened) == counts[-1]
        leftovers = sorted(p.name for p in path.iterdir() if p.name.startswith(".tmp-") or p.suffix == ".faiss")
        assert len(leftovers) == 1 and leftovers[0].startswith("vectors."), leftovers  # temporaries cleaned up
    assert committed, "no add finished before any kill: the test did not exercise committing"
    assert counts == sorted(counts)


def test_a_failed_commit_leaves_the_index_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "fail.gvindex"
    planted = planted_index(path)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with Index.open(path, writable=True) as index:
        generation = index.info()["generation"]
        monkeypatch.setattr(Database, "commit", disk_full)  # after the new faiss file is written
        with pytest.raises(OSError, match="No space"):
            index.add_vectors(np.ones((3, DIM), np.float32), ["a", "b", "c"])
        monkeypatch.undo()
        assert len(index) == 1 and index.search(np.ones(DIM, np.float32), k=5)[0].path == "planted"
        assert index.info()["generation"] == generation
        assert not (path / f"vectors.{generation + 1}.faiss").exists()  # written, never committed, removed
    assert check_consistent(path, [], planted) == 1
    with Index.open(path, writable=True) as index:
        index.add_vectors(np.ones((1, DIM), np.float32), ["a"])
        assert len(index) == 2
    assert sorted(p.name for p in path.glob("vectors.*")) == [f"vectors.{generation + 1}.faiss"]


def test_readers_answer_consistently_while_a_writer_adds(tmp_path):
    path = tmp_path / "busy.gvindex"
    planted = planted_index(path)
    writer = Writer(path, seed=7)
    try:
        writer.wait_ready()
        with Index.open(path) as long_lived:
            counts, generations = [], set()
            deadline = time.monotonic() + 4.0
            while time.monotonic() < deadline:
                hits = long_lived.search(planted[0], k=3)  # picks up new generations as they commit
                assert hits[0].path == "planted" and hits[0].score == pytest.approx(1.0, abs=1e-5)
                counts.append(len(long_lived))
                generations.add(long_lived.info()["generation"])
                with Index.open(path) as fresh:  # a reader opened in the middle of the writes
                    _, found = fresh.search_vectors(planted, k=fresh.info()["count"] + 10)
                    assert set(found[0].tolist()) <= set(fresh.names())  # every vector maps to a row
                    assert fresh.search(planted[0], k=1)[0].path == "planted"
        assert counts == sorted(counts) and len(generations) >= 2, (counts, generations)
    finally:
        writer.kill()
    check_consistent(path, writer.committed, planted)


def test_info_skips_files_a_writer_renames_or_stages_while_they_are_listed(tmp_path, monkeypatch):
    """A writer in another process stages ``.tmp-*`` files and renames them away while a reader sums the
    index's size: ``info()`` once raised FileNotFoundError mid-listing (seen in the test above)."""
    import genvision.apps.retrieval.store as store

    path = tmp_path / "sized.gvindex"
    planted_index(path)
    with Index.open(path) as index:
        settled = index.info()["file_bytes"]
        (path / ".tmp-vectors.9.faiss-abc.tmp").write_bytes(b"x" * 1000)  # a write in progress
        assert index.info()["file_bytes"] == settled

        class Vanished:  # listed, then renamed away before its stat
            name = "vectors.3.faiss"

            def is_file(self):
                return True

            def stat(self):
                raise FileNotFoundError(self.name)

        real_scandir = os.scandir

        class Listing:
            def __enter__(self):
                self.inner = real_scandir(path)
                return [*self.inner, Vanished()]

            def __exit__(self, *exc):
                self.inner.close()

        monkeypatch.setattr(store.os, "scandir", lambda _: Listing())
        assert index.info()["file_bytes"] == settled
