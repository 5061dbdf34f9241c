"""The persistent retrieval index (genvision.apps.retrieval.store / `genvision index`): a planted exact copy
is found at rank 1, add/remove/search round trips, the embedding cache, persistence across processes,
the faiss index types, and one-line errors for unknown files, corrupt or foreign indexes and bad CLI use.

Embeddings here are ``dhash`` (imagehash, no weights) and a tiny 48-d float embedder defined below, so
nothing needs downloaded weights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest
from PIL import Image

from genvision.apps.retrieval import backend, ingest, store
from genvision.apps.retrieval.embed import Embedder
from genvision.apps.retrieval.store import Index
from genvision.cli import main
from genvision.data import load_dataset
from genvision.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_faiss_thread():
    """conftest gives torch (and with it the OpenMP pool faiss shares) two threads; on a busy 2-core
    machine faiss's OpenMP barriers then make these tiny builds ~10x slower, so faiss gets one here."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


class TinyEmbedder(Embedder):
    """A 4x4 RGB thumbnail minus mid-grey, L2-normalised: 48-d float vectors that tell smooth noise
    images apart; counts the images it embeds."""

    spec = cache_key = "test:tiny"
    dim = 48
    binary = False

    def __init__(self):
        self.embedded = 0

    def embed(self, images):
        self.embedded += len(images)
        rows = np.stack([np.asarray(im.convert("RGB").resize((4, 4), Image.BILINEAR), np.float32).reshape(-1)
                         for im in images]) - 127.5  # (N, 48)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def tiny(monkeypatch) -> TinyEmbedder:
    """``--embed test:tiny`` builds this embedder (the CLI looks embedders up through the store)."""
    embedder, real = TinyEmbedder(), ingest.make_embedder
    monkeypatch.setattr(ingest, "make_embedder",
                        lambda spec=None, **kw: embedder if spec == "test:tiny" else real(spec, **kw))
    return embedder


def smooth_noise(seed: int, size: int = 48) -> Image.Image:
    """Random 6x6 colour blocks upsampled: distinct at 4x4 and 9x8 (what the embedders look at)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.BICUBIC)


def make_photos(folder: Path, count: int = 10, start: int = 0, classes: tuple[str, ...] = ()) -> list[Path]:
    paths = []
    for i in range(start, start + count):
        sub = folder / classes[i % len(classes)] if classes else folder
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{i:03d}.png"
        smooth_noise(i).save(path)
        paths.append(path)
    return paths


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]  # \r: progress bars
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def clustered(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """Vectors around 20 centres (iid Gaussians have no meaningful neighbours)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, dim))
    return (centres[rng.integers(0, 20, count)] + 0.25 * rng.normal(size=(count, dim))).astype(np.float32)


# ----------------------------------------------------------------------------- finding things


@pytest.mark.parametrize("spec", ["dhash", "test:tiny"])
def test_a_planted_exact_copy_is_found_at_rank_1(tmp_path, tiny, spec):
    photos = make_photos(tmp_path / "photos", 12)
    with Index.building(tmp_path / "p.gvindex", embed=store.embedder_for(spec)) as index:
        report = index.add(photos)
    assert (report.added, report.failed) == (12, [])
    query = tmp_path / "query.bmp"  # the same pixels in another format, under another name
    Image.open(photos[5]).save(query)
    with Index.open(tmp_path / "p.gvindex") as index:
        hits = index.search(query, k=3)
        assert hits[0].path == str(photos[5].resolve()) and hits[0].rank == 1
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[1].score < hits[0].score and [h.rank for h in hits] == [1, 2, 3]
        assert index.search(Image.open(photos[7]), k=1)[0].path == str(photos[7].resolve())  # a PIL query


def test_add_remove_search_round_trip_with_vectors(tmp_path):
    vectors = clustered(200, 16)
    with Index.create(tmp_path / "v.gvindex", embed="vectors:16") as index:
        assert index.add_vectors(vectors, [f"v{i}" for i in range(200)]).added == 200
        assert index.add_vectors(vectors[:3], ["v0", "v1", "v2"]).unchanged == 3
        hit = index.search(vectors[42], k=1)[0]
        assert (hit.path, hit.id) == ("v42", 43) and hit.score == pytest.approx(1.0, abs=1e-5)
        assert index.remove(["v42", "v43"]) == 2
        assert "v42" not in [h.path for h in index.search(vectors[42], k=5)]
        report = index.add_vectors(vectors[42:43] * 3, ["v42"], metadata=[{"label": "back"}])  # scale: same cosine
        assert report.added == 1
        hit = index.search(vectors[42], k=1)[0]
        assert (hit.path, hit.metadata) == ("v42", {"label": "back"}) and hit.id == 201  # ids are never reused
        assert index.add_vectors(-vectors[:1], ["v0"]).updated == 1  # new content under a known name
        assert index.search(-vectors[0], k=1)[0].path == "v0"
        ids, stored = index.all_vectors()
        assert len(ids) == len(index) == 199 and stored.shape == (199, 16)
        assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-5)  # kept L2-normalised
        scores, found = index.search_vectors(vectors[:4], k=3)
        assert scores.shape == found.shape == (4, 3) and found.dtype == np.int64
        assert index.info()["count"] == 199 and index.info()["score"] == "cosine similarity"
        with pytest.raises(ConfigError, match=r"shape \(N, 16\)"):
            index.search_vectors(np.zeros((2, 8), np.float32), k=1)
        with pytest.raises(ConfigError, match="NaN"):
            index.add_vectors(np.full((1, 16), np.nan, np.float32), ["bad"])


def test_unchanged_files_are_skipped_and_known_content_comes_from_the_cache(tmp_path, tiny):
    photos = make_photos(tmp_path / "photos", 6)
    with Index.create(tmp_path / "c.gvindex", embed="test:tiny") as index:
        assert index.add(photos).embedded == 6 and tiny.embedded == 6
        again = index.add(photos)
        assert (again.unchanged, again.embedded, tiny.embedded) == (6, 0, 6)  # nothing re-read or re-embedded
        smooth_noise(99).save(photos[0])  # changed content
        moved = tmp_path / "moved.png"
        shutil.copy(photos[1], moved)  # known content under a new name
        report = index.add([photos[0], moved])
        assert (report.updated, report.added, report.embedded, report.cached) == (1, 1, 1, 1)
        assert tiny.embedded == 7 and len(index) == 7
        assert index.remove([str(moved)]) == 1
        assert index.add([moved]).cached == 1 and tiny.embedded == 7  # removal keeps the cache


def test_the_index_types_answer_like_flat_and_support_removal(tmp_path):
    vectors = clustered(1500, 16)
    names = [str(i) for i in range(1500)]
    for kind in ("ivf", "hnsw", "ivfpq", "flat"):
        with Index.create(tmp_path / f"{kind}.gvindex", embed="vectors:16", index_type=kind) as index:
            index.add_vectors(vectors, names)
            assert index.info()["index_kind"] == kind
            _, found = index.search_vectors(vectors[:50], k=10)
            found_self = (found == np.arange(1, 51)[:, None])  # (50, 10)
            if kind == "ivfpq":  # PQ codes are lossy (the scale benchmark measures its recall): among the first 10
                assert found_self.any(axis=1).mean() >= 0.8
            else:
                assert found_self[:, 0].mean() >= 0.98, kind
            index.remove(["7"])
            assert len(index) == 1499 and 8 not in index.search_vectors(vectors[7:8], k=5)[1]
            params = index.info()["search_params"]
            assert list(params) == {"flat": [], "hnsw": ["efSearch"]}.get(kind, ["nprobe"])
        with Index.open(tmp_path / f"{kind}.gvindex") as reopened:  # the tuned search parameters are kept
            assert reopened.info()["search_params"] == params
            assert reopened.search(vectors[9], k=1)[0].path == "9"
    with pytest.raises(ConfigError, match="ivfpq is for float vectors"):
        Index.create(tmp_path / "h.gvindex", embed="vectors:64:binary", index_type="ivfpq")
    assert not (tmp_path / "h.gvindex").exists()


def test_search_settings_are_tuned_for_new_queries_not_for_the_indexed_vectors(tmp_path):
    """A query that is in the index finds itself at any setting; tuning must leave it out, or the
    recall it promises is not the recall a new query gets."""
    assert backend._without_self(np.array([[5, 1, 2], [3, 4, 9]]), np.array([5, 7]), 2) == [{1, 2}, {3, 4}]
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((40, 32)).astype(np.float32)
    points = centres[rng.integers(0, 40, 6000)] + 0.35 * rng.standard_normal((6000, 32)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    vectors, queries = points[:5000], points[5000:]  # (5000, 32) indexed, (1000, 32) never seen
    _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)  # (1000, 10) rows
    for kind in ("hnsw", "ivf"):
        with Index.create(tmp_path / f"{kind}.gvindex", embed="vectors:32", index_type=kind) as index:
            index.add_vectors(vectors, [str(i) for i in range(5000)])
            _, found = index.search_vectors(queries, k=10)  # ids are rows + 1
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip((found - 1).tolist(), truth.tolist())])
        assert recall >= 0.95, (kind, recall)


def test_a_binary_index_scores_by_hamming_distance(tmp_path):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    with Index.create(tmp_path / "b.gvindex", embed="vectors:64:binary") as index:
        index.add_vectors(codes, [f"c{i}" for i in range(50)])
        query = codes[3].copy()
        query[0] ^= 0b111  # 3 bits flipped
        hit = index.search(query, k=1)[0]
        assert hit.path == "c3" and hit.score == pytest.approx(1 - 3 / 64)
        assert index.info()["score"] == "1 - hamming/bits"


# ----------------------------------------------------------------------------- persistence and sources


def test_an_index_persists_across_processes(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 8, classes=("cats", "dogs"))
    built = subprocess.run([sys.executable, "-m", "genvision", "index", "build", str(tmp_path / "photos"), "-o",
                            str(tmp_path / "p.gvindex"), "--embed", "dhash"],
                           check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert built.returncode == 0, built.stderr
    assert "added 8" in built.stdout
    code, out, _ = run_cli(capsys, "index", "search", photos[3], "--index", tmp_path / "p.gvindex", "-k", "2",
                           "--json", "--sheet", tmp_path / "hits.png")
    assert code == 0
    result = json.loads(out)
    assert result["hits"][0]["path"] == str(photos[3].resolve())
    assert result["hits"][0]["metadata"] == {"label": photos[3].parent.name}  # the class sub-folder
    with Image.open(tmp_path / "hits.png") as sheet:
        assert sheet.size == (3 * 160, 160 + 28)  # query + 2 hits
    code, out, _ = run_cli(capsys, "index", "info", tmp_path / "p.gvindex", "--json")
    details = json.loads(out)
    assert (code, details["count"], details["spec"], details["binary"]) == (0, 8, "dhash", True)


def test_build_from_a_named_dataset(tmp_path, capsys, shared_data):
    code, out, _ = run_cli(capsys, "index", "build", "mnist:test", "-o", tmp_path / "m.gvindex", "--embed", "dhash",
                           "--limit", "120", "--data-root", shared_data)
    assert code == 0 and "added 120" in out
    digits = load_dataset("mnist", split="test", root=str(shared_data), limit=120)
    with Index.open(tmp_path / "m.gvindex") as index:
        hits = index.search(Image.fromarray(digits.images[17, 0].numpy()), k=1)
        assert hits[0].path == "mnist:test/17" and hits[0].score == 1.0
        assert hits[0].metadata == {"label": str(int(digits.labels[17]))}
        labels = index.metadata()
        assert len(labels) == 120 and labels[hits[0].id] == hits[0].metadata
    code, out, _ = run_cli(capsys, "index", "search", "mnist:test/17", "--index", tmp_path / "m.gvindex", "-k", "1",
                           "--data-root", shared_data)
    assert code == 0 and out.split()[:3] == ["1", "1.0000", "mnist:test/17"]


def test_cli_add_and_remove(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 4)
    extra = make_photos(tmp_path / "extra", 2, start=10)
    assert run_cli(capsys, "index", "build", tmp_path / "photos", "-o", tmp_path / "p.gvindex", "--embed", "dhash")[0] == 0
    code, out, _ = run_cli(capsys, "index", "add", *extra, "--index", tmp_path / "p.gvindex")
    assert code == 0 and "added 2" in out and "6 items" in out
    code, out, _ = run_cli(capsys, "index", "remove", photos[0], extra[1], "--index", tmp_path / "p.gvindex")
    assert code == 0 and "removed 2; 4 items" in out
    with Index.open(tmp_path / "p.gvindex") as index:
        assert sorted(index.names().values()) == sorted(str(p.resolve()) for p in photos[1:] + extra[:1])


# ----------------------------------------------------------------------------- refusing bad input


def test_removing_an_unknown_file_is_a_one_line_error_and_removes_nothing(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 3)
    run_cli(capsys, "index", "build", tmp_path / "photos", "-o", tmp_path / "p.gvindex", "--embed", "dhash")
    code, _, err = run_cli(capsys, "index", "remove", photos[0], tmp_path / "never-added.png", "--index",
                           tmp_path / "p.gvindex")
    assert code == 1 and "never-added.png is not in the index" in one_line_error(err)
    with Index.open(tmp_path / "p.gvindex") as index:
        assert len(index) == 3  # photos[0] is still there


def _damage(kind: str, path: Path) -> None:
    db = path / "index.sqlite"
    if kind == "random bytes":
        db.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "truncated":
        data = db.read_bytes()
        for leftover in path.glob("index.sqlite-*"):
            leftover.unlink()
        db.write_bytes(data[:200])
    elif kind == "foreign database":
        db.unlink()
        for leftover in path.glob("index.sqlite-*"):
            leftover.unlink()
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE photos(id INTEGER, path TEXT)")
    else:
        with sqlite3.connect(db) as conn:
            key, value = {"other format": ("format", "someone-else"), "newer format": ("format_version", "99"),
                          "bad meta": ("dim", "banana")}[kind]
            conn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))


@pytest.mark.parametrize("kind,message", [
    ("random bytes", "corrupt index"), ("truncated", "corrupt index"),
    ("foreign database", "not a genvision index"), ("other format", "not a genvision index"),
    ("newer format", "made by a newer genvision"), ("bad meta", "corrupt index"),
])
def test_a_corrupt_or_foreign_index_is_refused_with_one_line(tmp_path, capsys, kind, message):
    with Index.create(tmp_path / "x.gvindex", embed="vectors:8") as index:
        index.add_vectors(clustered(20, 8), [str(i) for i in range(20)])
    _damage(kind, tmp_path / "x.gvindex")
    for argv in (("info", tmp_path / "x.gvindex"), ("remove", "3", "--index", tmp_path / "x.gvindex")):
        code, _, err = run_cli(capsys, "index", *argv)
        assert code == 1 and message in one_line_error(err), err


def test_what_is_not_an_index_is_refused_with_one_line(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 2)
    cases = {tmp_path / "missing.gvindex": "no such index", photos[0]: "not a genvision index",
             tmp_path / "photos": "not a genvision index"}
    for path, message in cases.items():
        code, _, err = run_cli(capsys, "index", "search", photos[1], "--index", path)
        assert code == 1 and message in one_line_error(err)


def test_a_damaged_or_uncommitted_vectors_file_is_ignored_and_rebuilt(tmp_path):
    vectors = clustered(100, 8)
    path = tmp_path / "r.gvindex"
    with Index.create(path, embed="vectors:8") as index:
        index.add_vectors(vectors, [str(i) for i in range(100)])
        generation = index.info()["generation"]
    current = path / f"vectors.{generation}.faiss"
    current.write_bytes(b"\0" * 64)  # damaged
    (path / f"vectors.{generation + 1}.faiss").write_bytes(b"left by a crash before the commit")
    with Index.open(path) as reader:  # rebuilt in memory from SQLite
        assert len(reader) == 100 and reader.search(vectors[5], k=1)[0].path == "5"
    with Index.open(path, writable=True) as writer:  # a writer saves the rebuilt one as a new generation
        assert writer.info()["generation"] == generation + 1
    assert sorted(p.name for p in path.glob("vectors.*")) == [f"vectors.{generation + 1}.faiss"]


def test_cli_errors_are_one_line(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 3)
    index = tmp_path / "p.gvindex"
    assert run_cli(capsys, "index", "build", tmp_path / "photos", "-o", index, "--embed", "dhash")[0] == 0
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    cases = [
        (("build", tmp_path / "photos", "-o", index, "--embed", "dhash"), "already exists; pass --overwrite"),
        (("build", tmp_path / "photos", "-o", tmp_path / "photos", "--embed", "dhash", "--overwrite"),
         "is not a genvision index; refusing to replace it"),
        (("build", tmp_path / "nowhere/", "-o", tmp_path / "n.gvindex"), "no such folder"),
        (("build", photos[0], "-o", tmp_path / "n.gvindex"), "must be a folder or a dataset"),
        (("build", tmp_path / "photos", "-o", tmp_path / "n.gvindex", "--embed", "dhash", "--index-type", "ivfpq"),
         "ivfpq is for float vectors"),
        (("build", tmp_path / "photos", "-o", tmp_path / "n.gvindex", "--index-type", "lsh"), "--index-type"),
        (("add", tmp_path / "missing.png", "--index", index), "missing.png: no such file or folder"),
        (("add", tmp_path / "broken.png", photos[0], "--index", index), "1 of 2 images could not be read"),
        (("search", tmp_path / "missing.png", "--index", index), "missing.png"),
        (("search", photos[0], "--index", index, "-k", "0"), "-k"),
        (("search", photos[0], "--index", index, "--sheet", photos[1]), "already exists; pass --overwrite"),
        (("search", photos[0], "--index", index, "--sheet", tmp_path / "hits.jpg"), "the contact sheet is a PNG"),
    ]
    for argv, message in cases:
        code, _, err = run_cli(capsys, "index", *argv)
        assert code != 0 and message in one_line_error(err), (argv, err)
    assert not (tmp_path / "n.gvindex").exists() and sorted(os.listdir(tmp_path / "photos")) == [
        p.name for p in photos]
    with Index.open(index) as opened:
        assert len(opened) == 3  # the broken file was skipped, the good one was already there


def test_one_writer_at_a_time(tmp_path):
    with Index.create(tmp_path / "w.gvindex", embed="vectors:4") as writer:
        with pytest.raises(ConfigError, match=r"is being changed by process \d+"):
            Index.open(tmp_path / "w.gvindex", writable=True, lock_timeout=0.2)
        with Index.open(tmp_path / "w.gvindex") as reader:  # readers do not wait
            writer.add_vectors(np.eye(4, dtype=np.float32), list("abcd"))
            assert len(reader) == 4 and reader.search(np.eye(4, dtype=np.float32)[2], k=1)[0].path == "c"
            with pytest.raises(ConfigError, match="open for reading"):
                reader.remove(["a"])
    with Index.open(tmp_path / "w.gvindex", writable=True, lock_timeout=0.2) as again:
        assert again.remove(["a"]) == 1
