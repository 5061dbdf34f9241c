"""Data-parallel training on this machine's CPUs: is a 2-process run the 1-process run, and is it faster?

    python benchmarks/ddp_scaling.py                        # both parts, ~10 minutes on 2 cores
    python benchmarks/ddp_scaling.py --part equivalence     # ~2 minutes
    python benchmarks/ddp_scaling.py --part throughput --steps 300
    python benchmarks/ddp_scaling.py --part accumulation --steps 200   # ~8 minutes
    python benchmarks/ddp_scaling.py --part fsdp --steps 300           # ~5 minutes

Accumulation (table ``grad-accumulation``): the default GAN and DiT at 128 images per update as one batch and
as 4 micro-batches of 32 (``train.grad_accum=4``): images/s and the training process's peak resident memory.

FSDP (table ``fsdp``): the default DiT on mnist-mini, global batch 64, as one process, two replicating
processes and two processes with ``train.fsdp=true``: images/s, peak memory, and the relative L2 distance of
the final weights from the one-process run.

Equivalence (table ``ddp-equivalence``): the conditional DCGAN (width 8, mnist-mini) trained for 5 and
20 steps by ``genvision train gan --nproc 2`` (per-rank batch 8, train.sync_batchnorm=true, one thread
per rank) against one process with batch 16, with one and with two torch threads; the relative L2
distance between the final weights says how close "the same model" is. Float sums in another order
(two ranks, or two threads) differ by ~1e-7; Adam's early steps amplify that noise, which is why the
tolerance is stated per step count.

Throughput (table ``ddp-scaling``): the default DCGAN recipe on MNIST (global batch 128) for --steps
steps as 1 process x 1 thread, 1 process x 2 threads and 2 processes x 1 thread (torchrun, gloo);
images/s from the run's own metrics (the last logged window). On 2 cores two processes can at best
match one 2-thread process: the ratio measures the cost of the all-reduce and the duplicated Python.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

EQUIVALENCE = ["data.name=mnist-mini", "model.width=8", "train.log_every=1", "train.sample_every=0",
               "train.tensorboard=false", "train.ema=false"]
THROUGHPUT = ["data.name=mnist", f"data.root={ROOT.parent / 'shared' / 'data'}", "train.sample_every=0", "train.tensorboard=false", "train.log_every=50",
              "train.ckpt_every=100000"]


def _train(out: Path, name: str, overrides: list[str], *, threads: int, nproc: int = 1,
           family: str = "gan") -> tuple[float, float]:
    """(wall seconds, peak resident MiB of the training process) of one ``genvision train`` run."""
    command = [sys.executable, "-m", "genvision", "train", family, *overrides, f"train.out_dir={out}",
               f"train.name={name}"]
    if nproc > 1:
        command[5:5] = ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    log = out / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as sink:
        child = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own rusage: its peak RSS, not ours
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def _distance(a: Path, b: Path) -> float:
    x, y = load_file(a), load_file(b)
    keys = [k for k in x if x[k].is_floating_point()]
    num = sum(float(((x[k] - y[k]) ** 2).sum()) for k in keys)
    return (num / sum(float((x[k] ** 2).sum()) for k in keys)) ** 0.5


def equivalence(out: Path) -> None:
    for steps in (5, 20):
        common = [*EQUIVALENCE, f"train.steps={steps}", f"train.ckpt_every={steps}"]
        runs = {"2 processes x 1 thread": (["train.batch_size=8", "train.sync_batchnorm=true"], 1, 2),
                "1 process x 1 thread": (["train.batch_size=16"], 1, 1),
                "1 process x 2 threads": (["train.batch_size=16"], 2, 1)}
        weights = {}
        for label, (extra, threads, nproc) in runs.items():
            name = f"eq{steps}-{nproc}p{threads}t"
            _train(out, name, [*common, *extra], threads=threads, nproc=nproc)  # (wall, RSS) unused here
            weights[label] = out / name / "checkpoints" / f"step_{steps:08d}" / "model.safetensors"
        two = weights["2 processes x 1 thread"]
        quality = {"vs 1 process x 1 thread": _distance(weights["1 process x 1 thread"], two),
                   "vs 1 process x 2 threads": _distance(weights["1 process x 2 threads"], two),
                   "1 thread vs 2 threads (1 process)": _distance(weights["1 process x 1 thread"],
                                                                  weights["1 process x 2 threads"])}
        print(steps, quality, flush=True)
        record("ddp-equivalence", f"gan mnist-mini {steps} steps", recipe="dcgan width 8, global batch 16, "
               "sync_batchnorm, Adam 2e-4", wall_s=0.0, throughput={"steps": steps},
               quality={f"rel. L2 {k}": v for k, v in quality.items()},
               notes="relative L2 distance of all weights and BatchNorm statistics at the last step")


def throughput(out: Path, steps: int) -> None:
    rows = {}
    for label, (threads, nproc) in {"1 process x 1 thread": (1, 1), "1 process x 2 threads": (2, 1),
                                    "2 processes x 1 thread": (1, 2)}.items():
        name = f"tp-{nproc}p{threads}t"
        batch = 128 // nproc
        wall, _ = _train(out, name, [*THROUGHPUT, f"train.steps={steps}", f"train.batch_size={batch}"],
                         threads=threads, nproc=nproc)
        logged = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        rate = logged[-1]["images_per_s"]
        rows[label] = (rate, wall)
        print(label, f"{rate:.0f} img/s, {wall:.0f} s wall", flush=True)
    base = rows["1 process x 2 threads"][0]
    for label, (rate, wall) in rows.items():
        record("ddp-scaling", f"gan mnist {label}", recipe=f"dcgan default, global batch 128, {steps} steps",
               wall_s=wall, throughput={"img/s (last window)": rate, "vs 1 process x 2 threads": rate / base},
               notes="torchrun --standalone, gloo" if label.startswith("2") else "")


def accumulation(out: Path, steps: int, families: list[str]) -> None:
    """The price of train.grad_accum: images/s and peak memory at the same batch of 128 per update."""
    # The DiT takes ~5 s per step of 128 here: a fifth of the GAN's steps keeps the part under 10 minutes.
    for family, family_steps in (("gan", steps), ("dit", max(steps // 5, 4))):
        if family not in families:
            continue
        rows = {}
        for count in (1, 4):
            name = f"acc-{family}-{count}"
            wall, peak = _train(out, name, [*THROUGHPUT, f"train.steps={family_steps}", "train.batch_size=128",
                                            f"train.grad_accum={count}", f"train.log_every={family_steps // 2}"],
                                threads=2, family=family)
            logged = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
            rows[count] = (logged[-1]["images_per_s"], peak, wall)
            print(family, count, f"{rows[count][0]:.0f} img/s, peak {peak:.0f} MiB, {wall:.0f} s", flush=True)
        for count, (rate, peak, wall) in rows.items():
            record("grad-accumulation", f"{family} mnist grad_accum={count}",
                   recipe=f"{family} default, batch 128 per update, {family_steps} steps", wall_s=wall,
                   throughput={"img/s (last window)": rate, "vs grad_accum=1": rate / rows[1][0],
                               "peak RSS MiB": peak},
                   notes="1 process x 2 threads; peak RSS of the whole process (Python, torch, MNIST in memory)")


def sharded(out: Path, steps: int) -> None:
    """train.fsdp on two CPU processes against two replicating processes and one process: the same DiT?"""
    common = ["data.name=mnist-mini", "train.sample_every=0", "train.tensorboard=false", "train.precision=fp32",
              f"train.steps={steps}", f"train.ckpt_every={steps}", f"train.log_every={steps // 2}"]
    runs = {"1 process x 2 threads": (["train.batch_size=64"], 2, 1),
            "2 processes x 1 thread, replicated": (["train.batch_size=32"], 1, 2),
            "2 processes x 1 thread, train.fsdp": (["train.batch_size=32", "train.fsdp=true"], 1, 2)}
    rows, weights = {}, {}
    for label, (extra, threads, nproc) in runs.items():
        name = f"fsdp-{len(rows)}"
        wall, peak = _train(out, name, [*common, *extra], threads=threads, nproc=nproc, family="dit")
        logged = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        weights[label] = out / name / "checkpoints" / f"step_{steps:08d}" / "model.safetensors"
        rows[label] = (logged[-1]["images_per_s"], peak, wall)
        print(label, f"{rows[label][0]:.0f} img/s, peak {peak:.0f} MiB, {wall:.0f} s", flush=True)
    single = weights["1 process x 2 threads"]
    for label, (rate, peak, wall) in rows.items():
        quality = {} if weights[label] == single else {"rel. L2 vs 1 process": _distance(single, weights[label])}
        record("fsdp", f"dit mnist-mini {label}", recipe=f"dit default, global batch 64, {steps} steps, fp32",
               wall_s=wall, throughput={"img/s (last window)": rate, "peak RSS MiB": peak}, quality=quality,
               notes="peak RSS: the largest process (torchrun reports its workers' maximum)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["equivalence", "throughput", "accumulation", "fsdp", "all"], default="all")
    parser.add_argument("--families", nargs="+", default=["gan", "dit"], help="accumulation: which families")
    parser.add_argument("--steps", type=int, default=300, help="throughput: steps per configuration")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="ddp-bench-"))
    try:
        if args.part in ("equivalence", "all"):
            equivalence(out)
        if args.part in ("throughput", "all"):
            throughput(out, args.steps)
        if args.part in ("accumulation", "all"):
            accumulation(out, args.steps // 2, args.families)
        if args.part in ("fsdp", "all"):
            sharded(out, max(args.steps // 15, 4))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(render_docs())


if __name__ == "__main__":
    main()
