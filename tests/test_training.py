"""The training engine's promises: exact resume, safe checkpoints, clean stops, no NaN weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.errors import CheckpointError, ConfigError, TrainingError
from genvision.registry import create_model
from genvision.workflows.train import train

TINY = ["data.name=mnist-mini", "data.limit=256", "model.width=8", "train.batch_size=16", "train.log_every=2",
        "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=4"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
    state = load_file(str(latest / ckpt.WEIGHTS_FILE))
    state.update({f"ema::{k}": v for k, v in load_file(str(latest / ckpt.EMA_FILE)).items()})
    return state


def test_resume_gives_identical_weights(tmp_path):
    common = TINY + [f"train.out_dir={tmp_path}", "conditional=true"]
    straight = train("gan", overrides=common + ["train.name=straight", "train.steps=8"], progress=False)
    half = train("gan", overrides=common + ["train.name=split", "train.steps=4"], progress=False)
    assert half.step == 4
    resumed = train("gan", resume=half.run_dir, overrides=["train.steps=8"], progress=False)
    assert resumed.step == 8
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # The optimizer moved the weights: equality is not the trivial kind.
    first = load_file(str(straight.run_dir / "checkpoints" / "step_00000004" / ckpt.WEIGHTS_FILE))
    assert any(not torch.equal(first[k], a[k]) for k in first)
    resolved = json.loads((straight.run_dir / "config.json").read_text())
    assert resolved["train"]["steps"] == 8 and resolved["model"]["num_classes"] == 10


def test_existing_run_dir_is_never_overwritten(tmp_path):
    args = TINY + [f"train.out_dir={tmp_path}", "train.name=r", "train.steps=2"]
    train("gan", overrides=args, progress=False)
    with pytest.raises(ConfigError, match="already exists"):
        train("gan", overrides=args, progress=False)
    with pytest.raises(ConfigError, match="no checkpoints|not found"):
        train("gan", resume=tmp_path / "absent", progress=False)


def test_keep_last_k_and_metrics(tmp_path):
    result = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=k", "train.steps=16",
                                            "train.keep_last=2"], progress=False)
    kept = sorted(p.name for p in (result.run_dir / "checkpoints").glob("step_*"))
    assert kept == ["step_00000012", "step_00000016"]
    assert (result.run_dir / "checkpoints" / "latest").read_text().strip() == "step_00000016"
    rows = [json.loads(l) for l in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(2, 17, 2))
    assert all(k in rows[-1] for k in ("loss_d", "loss_g", "images_per_s", "steps_per_s"))
    assert (result.run_dir / "config.yaml").is_file()
    assert (result.run_dir / "samples" / "step_00000016.png").is_file()


def _nan_after(dataset, first_bad: int, last_bad: int | None):
    """Wrap get_batch so batches with index in [first_bad, last_bad] are all NaN."""
    calls = {"n": 0}
    original = dataset.get_batch

    def get_batch(indices):
        images, labels = original(indices)
        calls["n"] += 1
        if calls["n"] > first_bad and (last_bad is None or calls["n"] <= last_bad):
            images = torch.full_like(images, float("nan"))
        return images, labels

    dataset.get_batch = get_batch
    return dataset


@pytest.fixture
def nan_data(monkeypatch):
    import genvision.data as data

    real = data.dataset_from_config

    def install(first_bad, last_bad=None):
        monkeypatch.setattr(data, "dataset_from_config",
                            lambda cfg, split="train": _nan_after(real(cfg, split), first_bad, last_bad))

    return install


def test_a_nan_batch_is_skipped_and_never_reaches_weights(tmp_path, nan_data):
    nan_data(first_bad=3, last_bad=4)  # batches 4 and 5 are NaN
    result = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=n", "train.steps=8"],
                   progress=False)
    assert result.step == 8
    weights = _weights(result.run_dir)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_repeated_nans_stop_the_run_naming_the_step(tmp_path, nan_data):
    nan_data(first_bad=5)  # every batch from the 6th on
    overrides = TINY + [f"train.out_dir={tmp_path}", "train.name=n", "train.steps=50", "train.max_nonfinite=3"]
    with pytest.raises(TrainingError, match=r"stopped at step 8: 3 consecutive"):
        train("gan", overrides=overrides, progress=False)
    # The checkpoint written at step 4 is intact and finite.
    weights = _weights(tmp_path / "n")
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


class _Exploit:
    """Unpickling this would create a file: the loaders must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickles_are_refused_and_never_executed(tmp_path):
    model = create_model("dcgan", {"width": 8})
    model_dir = ckpt.save_pretrained(model, tmp_path / "m", trainer_state={"step": 1})
    marker = tmp_path / "pwned"
    torch.save({"x": _Exploit(marker)}, model_dir / ckpt.STATE_FILE)
    with pytest.raises(CheckpointError, match="refused"):
        ckpt.load_trainer_state(model_dir)
    torch.save(_Exploit(marker), model_dir / ckpt.WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ckpt.load_pretrained(model_dir)
    assert not marker.exists()


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = create_model("dcgan", {"width": 8, "num_classes": 10, "spectral_norm": True}).eval()
    loaded = ckpt.load_pretrained(ckpt.save_pretrained(model, tmp_path / "m"))
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    z = model.sample_latent(4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.equal(model.generate(z, labels), loaded.generate(z, labels))


def test_failed_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = create_model("dcgan", {"width": 8})
    manager = ckpt.CheckpointManager(tmp_path / "checkpoints", keep_last=3)
    manager.save(1, model, trainer_state={"step": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(OSError):
        manager.save(2, model, trainer_state={"step": 2})
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints").name == "step_00000001"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_00000001"]
    ckpt.load_pretrained(tmp_path / "checkpoints" / "step_00000001")


def test_wrong_model_kind_and_missing_dirs(tmp_path):
    with pytest.raises(CheckpointError, match="model not found"):
        ckpt.load_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no model"):
        ckpt.load_pretrained(tmp_path / "empty")
    model_dir = ckpt.save_pretrained(create_model("dcgan", {"width": 8}), tmp_path / "m")
    with pytest.raises(CheckpointError, match="holds a gan model"):
        ckpt.load_pretrained(model_dir, kind="classifier")


@pytest.mark.slow
def test_sigterm_saves_a_loadable_checkpoint_and_exits_143(tmp_path):
    cmd = [sys.executable, "-m", "genvision", "train", "gan", *TINY, f"train.out_dir={tmp_path}", "train.name=s",
           "train.steps=100000", "train.ckpt_every=100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "s" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.is_file() and metrics.stat().st_size > 0):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "training did not start"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err  # schedulers must see the interruption
    assert "interrupted at step" in out and "--resume" in out
    latest = ckpt.latest_checkpoint(tmp_path / "s" / "checkpoints")
    state = ckpt.load_trainer_state(latest)
    assert state["step"] >= 2
    ckpt.load_pretrained(tmp_path / "s", kind="gan")
    resumed = train("gan", resume=tmp_path / "s", overrides=[f"train.steps={state['step'] + 2}"], progress=False)
    assert resumed.step == state["step"] + 2


def test_a_time_stopped_run_logs_its_last_partial_window(tmp_path):
    result = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=t", "train.steps=100000",
                                            "train.log_every=100000", "train.max_minutes=0.01"], progress=False)
    assert result.stopped_by == "time"
    rows = [json.loads(l) for l in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == result.step and "loss_d" in rows[-1]


def test_layers_that_crash_channels_last_backward_train_in_the_default_layout(tmp_path):
    """A 1x1 stride-2 conv with 2-7 input channels corrupts the heap in oneDNN's channels_last
    weight gradient on AVX2 CPUs: a ResNet of width 4 has one (its first shortcut)."""
    from genvision.runtime import channels_last_hazard

    narrow = create_model("resnet", {"image_size": 28, "channels": 1, "num_classes": 10, "width": 4,
                                     "blocks": [1, 1]})
    wide = create_model("resnet", {"image_size": 28, "channels": 1, "num_classes": 10, "width": 8,
                                   "blocks": [1, 1]})
    assert channels_last_hazard(narrow) == "stages.1.0.shortcut.0"
    assert channels_last_hazard(wide) is None
    with pytest.warns(UserWarning, match="stages.1.0.shortcut.0"):
        result = train("classifier", overrides=["data.name=mnist-mini", "data.limit=64", "arch=resnet",
                                                "model.width=4", "model.blocks=[1,1]", "train.steps=2",
                                                "train.batch_size=16", "train.tensorboard=false",
                                                f"train.out_dir={tmp_path}", "train.name=narrow"], progress=False)
    assert result.step == 2
