"""Fault injection for folder jobs: SIGKILL ``genvision upscale IN/ -o OUT/`` at random moments and
check that every file under its final name in OUT is complete (byte for byte the uninterrupted
output; sidecars equal but for their creation time) or absent, never partial.

Used by tests/test_folder_job_kill.py (a few kills) and benchmarks/reliability_fuzz_files.py
(many). Kills alternate between two kinds: right after the k-th temporary file of the job
appears (so the process dies while a PNG is being written) and after a random delay.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, count: int = 6, size: int = 160, seed: int = 0) -> list[Path]:
    """Noise images (they compress badly, so each PNG write takes a while) in two formats."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        arr = rng.integers(0, 256, (size, size + 8 * i, 3), dtype=np.uint8)
        path = folder / (f"img{i}.png" if i % 2 else f"img{i}.bmp")
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


def _env() -> dict:
    # one thread everywhere: the output is then bit-identical from run to run
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def _command(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "genvision", "upscale", str(src), "-o", str(out), "--model", "bicubic",
            "--scale", "2", "--overwrite"]


def snapshot(out: Path) -> dict[str, bytes]:
    """Every output under its final name -> its bytes (hidden temporary files, and the job's manifest in
    its hidden folder, are not outputs)."""
    if not out.is_dir():
        return {}
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)}


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.tmp")] if out.is_dir() else []


def _same_sidecar(got: bytes, expected: bytes) -> bool:
    try:
        a, b = json.loads(got), json.loads(expected)
    except ValueError:
        return False
    for volatile in ("created", "command"):  # the time, and the command line naming the other output folder
        a.pop(volatile, None)
        b.pop(volatile, None)
    return a == b


def partial_files(out: Path, reference: dict[str, bytes]) -> list[str]:
    """Files under final names that are not exactly what the uninterrupted job writes."""
    bad = []
    for name, data in snapshot(out).items():
        expected = reference.get(name)
        if expected is None:
            bad.append(f"{name} (unexpected name)")
        elif name.endswith(".json"):
            if not _same_sidecar(data, expected):
                bad.append(name)
        elif data != expected:
            bad.append(name)
    return bad


def _kill_when_writing(proc: subprocess.Popen, out: Path, nth: int, deadline: float) -> bool:
    """SIGKILL ``proc`` right after the ``nth`` distinct temporary file appears in ``out``; True if
    it was killed that way (False: the job ended or the deadline passed first)."""
    stale = {tmp.name for tmp in temporaries(out)}  # left by earlier kills: not this run's writes
    seen: set[str] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        for tmp in temporaries(out):
            if tmp.name not in seen and tmp.name not in stale:
                seen.add(tmp.name)
                if len(seen) > nth:
                    proc.send_signal(signal.SIGKILL)
                    return True
        time.sleep(0.0005)
    return False


def kill_campaign(workdir: Path, kills: int, *, seed: int = 0, images: int = 6, size: int = 160) -> dict:
    """Reference run, ``kills`` interrupted runs into one output folder, then a completing re-run
    with --overwrite. Returns counts; ``partial_files`` must be 0."""
    rng = random.Random(seed)
    src, ref_out, out = workdir / "in", workdir / "reference", workdir / "out"
    make_inputs(src, images, size, seed)
    start = time.monotonic()
    done = subprocess.run(_command(src, ref_out), env=_env(), capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"the uninterrupted run failed: {done.stderr[-2000:]}")
    full_time = time.monotonic() - start
    reference = snapshot(ref_out)
    stats = {"kills": 0, "kills_while_writing": 0, "interrupted_writes_left_as_temporaries": 0,
             "partial_files": 0, "partial_examples": [], "complete_files_seen": 0}
    for k in range(kills):
        proc = subprocess.Popen(_command(src, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if k % 2 == 0:
                # images and their sidecars are both written via temporary files
                killed = _kill_when_writing(proc, out, rng.randrange(2 * images), time.monotonic() + 10 * full_time + 60)
                stats["kills_while_writing"] += killed
            else:
                time.sleep(rng.uniform(0.0, full_time))
                killed = proc.poll() is None
                proc.send_signal(signal.SIGKILL)
            stats["kills"] += killed
        finally:
            proc.wait(timeout=600)
        bad = partial_files(out, reference)
        stats["partial_files"] += len(bad)
        stats["partial_examples"] += bad[: max(0, 10 - len(stats["partial_examples"]))]
        stats["complete_files_seen"] += len(snapshot(out)) - len(bad)
        stats["interrupted_writes_left_as_temporaries"] = len(temporaries(out))
    finish = subprocess.run(_command(src, out), env=_env(), capture_output=True, text=True, timeout=600)
    stats["rerun_exit"] = finish.returncode
    final = snapshot(out)
    stats["rerun_complete"] = (finish.returncode == 0 and set(final) == set(reference)
                               and not partial_files(out, reference))
    stats["reference_seconds"] = round(full_time, 2)
    return stats
