"""``train.fsdp=true``: two gloo processes shard a DiT (FSDP2) and train the model one process trains with the
global batch; its checkpoints hold the full weights and resume exactly; what cannot be sharded is one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genvision.cli import main
from genvision.errors import ConfigError
from genvision.models.gan import DCGAN, DCGANConfig
from genvision.training.fsdp import shard, transformer_blocks
from genvision.workflows.train import train

TINY = ["data.name=mnist-mini", "data.limit=64", "model.dim=16", "model.depth=2", "model.heads=2",
        "model.patch_size=7", "train.log_every=1", "train.tensorboard=false", "train.sample_every=0",
        "train.ckpt_every=2", "objective.warmup_steps=2", "train.precision=fp32",
        "train.grad_clip=0.05"]  # runs the clipping path on sharded gradients (Adam makes its effect small)


def _torchrun(out: Path, name: str, *extra: str, resume: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "genvision", "train", "dit", "--nproc", "2"]
    command += ["--resume", str(resume), *extra] if resume else [*TINY, "train.batch_size=4", "train.fsdp=true",
                                                                  f"train.out_dir={out}", f"train.name={name}", *extra]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def _checkpoint(run: Path, step: int, file: str = "model.safetensors") -> dict[str, torch.Tensor]:
    return load_file(run / "checkpoints" / f"step_{step:08d}" / file)


def _assert_close(a: dict, b: dict, rtol: float) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        torch.testing.assert_close(b[name], value, rtol=rtol, atol=1e-6, msg=name)


def test_two_sharded_processes_train_what_one_process_trains_and_resume_to_the_uninterrupted_weights(tmp_path,
                                                                                                      capsys):
    # One test over the three torchrun runs (about a minute), not several over a module fixture that
    # pytest-xdist could set up on both workers.
    _torchrun(tmp_path, "whole", "train.steps=4")
    single = train("dit", overrides=[*TINY, "train.batch_size=8", "train.steps=4", f"train.out_dir={tmp_path}",
                                     "train.name=single"], progress=False)
    for file in ("model.safetensors", "ema.safetensors"):
        full = _checkpoint(tmp_path / "whole", 4, file)  # gathered: full shapes, not shards
        _assert_close(_checkpoint(single.run_dir, 4, file), full, rtol=1e-4)
    assert (tmp_path / "whole" / "samples" / "step_00000004.png").is_file()  # rank 0 sampled the gathered EMA

    # A run killed after its step-2 checkpoint: the whole run's directory as it stood then (one torchrun
    # launch fewer than training a second run to step 2; the suite runs near its time limit).
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    shutil.rmtree(cut / "checkpoints" / "step_00000004")
    (cut / "checkpoints" / "latest").write_text("step_00000002\n")
    code = main(["train", "dit", "--resume", str(tmp_path / "cut"), "train.steps=4", "train.fsdp=false"])
    err = capsys.readouterr().err
    assert code != 0 and "cannot change train.fsdp when resuming" in err and len(err.splitlines()) == 1
    _torchrun(tmp_path, "cut", "train.steps=4", resume=tmp_path / "cut")
    for file in ("model.safetensors", "ema.safetensors"):
        _assert_close(_checkpoint(tmp_path / "whole", 4, file), _checkpoint(tmp_path / "cut", 4, file), rtol=1e-6)


def test_what_cannot_be_sharded_is_refused_in_one_line(tmp_path, capsys):
    code = main(["train", "dit", *TINY, "train.fsdp=true", "train.steps=1", f"train.out_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert code != 0 and "train.fsdp=true shards the model over processes" in err and len(err.splitlines()) == 1
    gan = DCGAN(DCGANConfig())
    assert transformer_blocks(gan) == []
    with pytest.raises(ConfigError, match="shards transformer blocks, and DCGAN has none"):
        shard(gan)
