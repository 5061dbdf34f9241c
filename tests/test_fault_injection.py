"""Kill training with SIGKILL at random moments, again and again: the run always resumes, every
checkpoint ``latest`` names loads, and the final weights equal those of a run never interrupted
(runs are started afresh until the kills are spent, each compared with the uninterrupted one).

Checkpoints are written every step, so a good share of the kills land inside a checkpoint write
(the hidden staging directory they leave behind is counted). ``make test`` runs a few kills;
``benchmarks/reliability_faults.py`` runs many (GENVISION_FAULT_KILLS) and records the counts
that this test writes to GENVISION_FAULT_REPORT.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from genvision import checkpoints as ckpt

KILLS = int(os.environ.get("GENVISION_FAULT_KILLS", "3"))
SEED = int(os.environ.get("GENVISION_FAULT_SEED", "0"))
STEPS = 60
RECIPE = ["data.name=mnist-mini", "data.limit=256", "model.width=8", "train.batch_size=16", "train.log_every=1",
          "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=1", "train.keep_last=2"]
# One thread: the same arithmetic in every process, so weights can be compared bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _command(out_dir: Path, name: str) -> list[str]:
    run_dir = out_dir / name
    base = [sys.executable, "-m", "genvision", "train", "gan"]
    if (run_dir / "config.json").is_file():
        return base + ["--resume", str(run_dir)]
    return base + RECIPE + [f"train.out_dir={out_dir}", f"train.name={name}", f"train.steps={STEPS}"]


def _wait_for_growth(metrics: Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    size = metrics.stat().st_size if metrics.is_file() else 0
    deadline = time.perf_counter() + timeout
    while proc.poll() is None and time.perf_counter() < deadline:
        if metrics.is_file() and metrics.stat().st_size != size:
            return
        time.sleep(0.02)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
    assert latest is not None and latest.name == ckpt.checkpoint_name(STEPS)
    return {**load_file(str(latest / ckpt.WEIGHTS_FILE)),
            **{f"ema.{k}": v for k, v in load_file(str(latest / ckpt.EMA_FILE)).items()}}


def _kill_until_finished(tmp_path: Path, name: str, rng: random.Random, budget: int) -> tuple[int, int]:
    """Launch the run (resuming after each kill) and SIGKILL it at random moments, at most ``budget``
    times; then let it finish. Returns (kills, kills that landed inside a checkpoint write)."""
    run_dir = tmp_path / name
    kills = kills_mid_checkpoint = 0
    while kills < budget:
        proc = subprocess.Popen(_command(tmp_path, name), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        if rng.random() < 0.2:  # now and then during start-up: imports, data, the first files
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # mostly once training runs: after its first new metrics row, within ~2 s of steps
            _wait_for_growth(run_dir / "metrics.jsonl", proc)
            time.sleep(rng.uniform(0.0, 1.5))
        if proc.poll() is not None:  # it finished before the kill came
            assert proc.returncode == 0
            return kills, kills_mid_checkpoint
        proc.kill()
        proc.wait()
        kills += 1
        checkpoints = run_dir / "checkpoints"
        if checkpoints.is_dir():
            kills_mid_checkpoint += any(p.name.startswith(".tmp-") for p in checkpoints.iterdir())
            if ckpt.latest_checkpoint(checkpoints) is not None:
                ckpt.load_pretrained(run_dir, kind="gan")  # whatever 'latest' names is whole
    finish = subprocess.run(_command(tmp_path, name), env=ENV, capture_output=True, text=True, timeout=300)
    assert finish.returncode == 0, finish.stderr
    return kills, kills_mid_checkpoint


def test_training_killed_at_random_moments_resumes_to_identical_weights(tmp_path):
    subprocess.run(_command(tmp_path, "straight"), env=ENV, check=True, capture_output=True, timeout=300)
    straight = _weights(tmp_path / "straight")
    rng = random.Random(SEED)
    kills = kills_mid_checkpoint = runs = 0
    started = time.perf_counter()
    # One run takes a handful of kills before it finishes: start fresh ones until the kills are spent
    # (a run that finishes before any kill still counts, so this ends).
    while kills < KILLS and runs <= KILLS:
        name = f"killed-{runs}"
        k, mid = _kill_until_finished(tmp_path, name, rng, KILLS - kills)
        kills, kills_mid_checkpoint, runs = kills + k, kills_mid_checkpoint + mid, runs + 1
        resumed = _weights(tmp_path / name)
        assert straight.keys() == resumed.keys()
        assert all(torch.equal(straight[key], resumed[key]) for key in straight), name
        steps = [json.loads(line)["step"] for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, STEPS + 1)), name  # no row lost, none twice
    report = os.environ.get("GENVISION_FAULT_REPORT")
    if report:
        Path(report).write_text(json.dumps({
            "kills": kills, "kills_during_checkpoint_write": kills_mid_checkpoint, "runs": runs,
            "runs_with_identical_weights": runs, "metrics_rows_exact": True,
            "seconds": round(time.perf_counter() - started, 1)}))
