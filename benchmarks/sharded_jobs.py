"""Sharded folder jobs on this machine: the same files as one process, a killed job resumed, and the time it takes.

    python benchmarks/sharded_jobs.py                 # ~6 minutes on 2 cores
    python benchmarks/sharded_jobs.py --images 8      # a quick look

On the first --images photos of ../shared/data/sr-train/BSD200 (481x321):

* ``genvision upscale --model zoo:edsr-x2``: one process (2 threads) against two shards run side by side (one
  thread each) and against ``torchrun --nproc-per-node 2``; then one process SIGKILLed after a third of the files
  and resumed with ``--resume``. Every output folder is compared byte for byte with the one-process folder.
* ``genvision index build`` (the default photo embedding): one process against two shards and the merge; the two
  indexes are compared by names and vectors.

Rows go to table ``sharded-jobs``. On 2 cores two shards can at best match one 2-thread process; the point of
sharding is more GPUs and machines. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "sr-train" / "BSD200"
GENVISION = [sys.executable, "-m", "genvision"]


def _env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads)}


def _run(args: list[str], threads: int = 2) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(args, env=_env(threads), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def _side_by_side(commands: list[list[str]]) -> float:
    t0 = time.perf_counter()
    children = [subprocess.Popen(c, env=_env(1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                for c in commands]
    for child, command in zip(children, commands):
        if child.wait() != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr.read()[-3000:]}")
    return time.perf_counter() - t0


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))
            if not any(part.startswith(".") for part in p.relative_to(folder).parts)}  # the manifest folder is hidden


def upscale_rows(photos: Path, work: Path, count: int) -> None:
    job = [*GENVISION, "upscale", str(photos), "--model", "zoo:edsr-x2"]
    one = _run([*job, "-o", str(work / "one")])
    reference = _pngs(work / "one")
    shards = _side_by_side([[*job, "-o", str(work / "two"), "--shard", f"{i}/2"] for i in range(2)])
    torchrun = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
                     "genvision", "upscale", str(photos), "--model", "zoo:edsr-x2", "-o", str(work / "tr")], threads=1)
    # The kill: SIGKILL once a third of the outputs exist, then --resume.
    killed = subprocess.Popen([*job, "-o", str(work / "killed")], env=_env(2), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    while len(list((work / "killed").glob("*.png"))) < count // 3 and killed.poll() is None:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    before = len(list((work / "killed").glob("*.png")))
    resumed = _run([*job, "-o", str(work / "killed"), "--resume"])
    rows = {"1 process x 2 threads": (one, reference), "2 shards side by side x 1 thread": (shards, _pngs(work / "two")),
            "torchrun 2 ranks x 1 thread": (torchrun, _pngs(work / "tr")),
            f"killed after {before} files, then --resume": (resumed, _pngs(work / "killed"))}
    for label, (wall, files) in rows.items():
        same = files == reference
        print("upscale", label, f"{wall:.1f} s", "identical" if same else "DIFFERENT", flush=True)
        record("sharded-jobs", f"upscale {count} photos {label}", recipe="genvision upscale --model zoo:edsr-x2, "
               "BSD200 photos 481x321", wall_s=wall, throughput={"images": count, "img/s": count / wall},
               quality={"outputs identical to 1 process": float(same)},
               notes="resume: the time of the --resume run alone" if "resume" in label else "")


def index_rows(photos: Path, work: Path, count: int) -> None:
    build = [*GENVISION, "index", "build", str(photos)]
    one = _run([*build, "-o", str(work / "one.gvindex")])
    shards = _side_by_side([[*build, "-o", str(work / "two.gvindex"), "--shard", f"{i}/2"] for i in range(2)])
    merge = _run([*build, "-o", str(work / "two.gvindex")])
    from genvision.apps.retrieval.store import Index

    def contents(path: Path) -> tuple[list[str], np.ndarray]:
        with Index.open(path) as index:
            ids, vectors = index._db.vectors()
            names = index._db.names()
            order = np.argsort([names[i] for i in ids.tolist()])
            return sorted(names.values()), vectors[order]

    names_one, vectors_one = contents(work / "one.gvindex")
    names_two, vectors_two = contents(work / "two.gvindex")
    gap = float(np.abs(vectors_one - vectors_two).max()) if names_one == names_two else float("nan")
    print("index", f"1 process {one:.1f} s; 2 shards {shards:.1f} s + merge {merge:.1f} s; max |dv| {gap:.2g}", flush=True)
    record("sharded-jobs", f"index build {count} photos 1 process x 2 threads", wall_s=one,
           recipe="genvision index build (default photo embedding)", throughput={"images": count, "img/s": count / one})
    record("sharded-jobs", f"index build {count} photos 2 shards side by side + merge", wall_s=shards + merge,
           recipe="genvision index build --shard I/2 x 2 at once, then the merge",
           throughput={"images": count, "img/s": count / (shards + merge), "merge s": merge},
           quality={"same names": float(names_one == names_two), "max abs vector difference": gap})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shard-bench-"))
    try:
        photos = work / "photos"
        photos.mkdir()
        for path in sorted(SOURCE.glob("*"))[:args.images]:
            shutil.copy(path, photos / path.name)
        upscale_rows(photos, work, args.images)
        index_rows(photos, work, args.images)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render_docs())


if __name__ == "__main__":
    main()
