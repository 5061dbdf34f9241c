"""Start-up time of ``genvision train``: what each process and torchrun rank pays before its first step.

    python benchmarks/startup_time.py                                    # this checkout, 5 rounds
    git worktree add /tmp/before 481dfbd
    python benchmarks/startup_time.py --before /tmp/before --before-label 481dfbd   # and an older one

Three measurements, each in a fresh interpreter with one thread, in interleaved rounds (checkout A, then B,
then A again, ...) so that a busy machine slows both alike; rows give the median of the rounds:

- ``import torch``: the floor no genvision change can go under;
- ``import genvision.core_commands``: what ``genvision train`` (so every torchrun rank) imports;
- ``genvision train dit --nproc 2`` of a tiny sharded DiT for 4 steps, start to exit: the launcher,
  torchrun's agent, two ranks' start-up, the steps and the checkpoints.

The checkouts are chosen with PYTHONPATH=<checkout>/src, so both run on this machine's one venv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

TINY_FSDP = ["data.name=mnist-mini", "data.limit=64", "model.dim=16", "model.depth=2", "model.heads=2",
             "model.patch_size=7", "train.log_every=1", "train.tensorboard=false", "train.sample_every=0",
             "train.ckpt_every=2", "objective.warmup_steps=2", "train.precision=fp32", "train.batch_size=4",
             "train.fsdp=true", "train.steps=4"]
MEASURES = {
    "import torch": ["-c", "import torch"],
    "import genvision.core_commands": ["-c", "import genvision.core_commands"],
    "train dit --nproc 2, 4 steps": ["-m", "genvision", "train", "dit", "--nproc", "2", *TINY_FSDP],
}


def seconds(checkout: Path, args: list[str], out: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout / "src"), "OMP_NUM_THREADS": "1"}
    if args[0] == "-m":  # a training run: a fresh run directory each time
        args = [*args, f"train.out_dir={out}", f"train.name=run-{time.monotonic_ns()}"]
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older checkout to measure in the same rounds")
    parser.add_argument("--before-label", default="before", help="its name in the rows (e.g. a commit)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.rounds <= 100:
        parser.error(f"--rounds must be 1..100, got {args.rounds}")
    checkouts = {"this checkout": ROOT}
    if args.before is not None:
        checkouts[args.before_label] = args.before.resolve()
    times: dict[tuple[str, str], list[float]] = {(c, m): [] for c in checkouts for m in MEASURES}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(args.rounds):
            for label, checkout in checkouts.items():
                for measure, command in MEASURES.items():
                    times[label, measure].append(seconds(checkout, command, Path(tmp)))
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    wall = time.perf_counter() - t0
    floor = statistics.median(times["this checkout", "import torch"])
    for (label, measure), values in times.items():
        median = statistics.median(values)
        throughput = {"median s": round(median, 2), "min s": round(min(values), 2), "max s": round(max(values), 2),
                      "x import torch": round(median / floor, 2)}
        if label != "this checkout":
            throughput["this checkout / it"] = round(statistics.median(times["this checkout", measure]) / median, 2)
        record("startup", f"{measure} ({label})", recipe=" ".join(MEASURES[measure]), wall_s=wall,
               throughput=throughput, notes=f"{args.rounds} interleaved rounds, fresh interpreter, OMP_NUM_THREADS=1")
    print(render_docs())


if __name__ == "__main__":
    main()
