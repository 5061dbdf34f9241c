"""Runs never break: a failed resume changes nothing, allowed changes are recorded, a run killed
before its first checkpoint can still continue, and the run directory is where it was asked to be."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.apps.gan.objective import GANRecipe
from genvision.cli import main
from genvision.config import load_recipe, save_resolved
from genvision.errors import ConfigError
from genvision.workflows.train import RESUME_LOG, train

TINY = ["data.name=mnist-mini", "data.limit=256", "model.width=8", "train.batch_size=16", "train.log_every=1",
        "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=4"]


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.latest_checkpoint(run_dir / "checkpoints") / ckpt.WEIGHTS_FILE))


@pytest.fixture
def short_run(tmp_path):
    return train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=r1", "train.steps=4"],
                 progress=False)


def test_a_refused_resume_changes_nothing_and_the_run_stays_resumable(short_run, capsys):
    before = _tree_digest(short_run.run_dir)
    status = main(["train", "gan", "--resume", str(short_run.run_dir), "train.steps=6", "model.width=16"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.count("\n") == 1 and "model.width" in err and "8" in err and "16" in err
    assert _tree_digest(short_run.run_dir) == before  # not one byte of the run changed
    resumed = train("gan", resume=short_run.run_dir, overrides=["train.steps=6"], progress=False)
    assert resumed.step == 6


@pytest.mark.parametrize("override", ["train.batch_size=32", "train.seed=1", "objective.lr_g=0.001",
                                      "data.name=fashion-mnist", "conditional=false", "train.ema_decay=0.99"])
def test_settings_that_define_the_run_are_refused_on_resume(short_run, override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"cannot change {key} when resuming"):
        train("gan", resume=short_run.run_dir, overrides=["train.steps=6", override], progress=False)


def test_allowed_changes_are_saved_and_logged_with_their_step(short_run):
    train("gan", resume=short_run.run_dir, overrides=["train.steps=6", "train.log_every=2"], progress=False)
    saved = json.loads((short_run.run_dir / "config.json").read_text())
    assert saved["train"]["steps"] == 6 and saved["train"]["log_every"] == 2
    (row,) = [json.loads(line) for line in (short_run.run_dir / RESUME_LOG).read_text().splitlines()]
    assert row["step"] == 4 and row["checkpoint"] == "step_00000004"
    assert row["changes"] == {"train.log_every": {"from": 1, "to": 2}, "train.steps": {"from": 4, "to": 6}}


def test_steps_below_the_reached_step_are_refused(short_run):
    with pytest.raises(ConfigError, match=r"train.steps=2 is below the step this run already reached \(4\)"):
        train("gan", resume=short_run.run_dir, overrides=["train.steps=2"], progress=False)


def test_resuming_with_another_family_names_the_right_command(short_run):
    with pytest.raises(ConfigError, match="is a gan run: resume it with genvision train gan --resume"):
        train("vae", resume=short_run.run_dir, overrides=[], progress=False)


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_zero(tmp_path):
    # What a kill during data loading leaves: the resolved recipe, a metrics row, no checkpoint.
    recipe = load_recipe(GANRecipe, None, TINY + [f"train.out_dir={tmp_path}", "train.name=k", "train.steps=4"])
    run_dir = tmp_path / "k"
    save_resolved(recipe, run_dir)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss_d": 1.0}\n{"step": 2, "lo')
    with pytest.raises(ConfigError, match="--resume .* or start it over with --overwrite"):
        train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=k", "train.steps=4"], progress=False)
    resumed = train("gan", resume=run_dir, progress=False)
    straight = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=s", "train.steps=4"],
                     progress=False)
    assert resumed.step == 4
    a, b = _final_weights(resumed.run_dir), _final_weights(straight.run_dir)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_overwrite_starts_a_run_over_but_only_a_run(tmp_path, short_run):
    again = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=r1", "train.steps=2"],
                  overwrite=True, progress=False)
    assert again.step == 2
    assert sorted(p.name for p in (again.run_dir / "checkpoints").iterdir()) == ["latest", "step_00000002"]
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(ConfigError, match="not a genvision run directory"):
        train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=photos", "train.steps=2"],
              overwrite=True, progress=False)
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"precious"


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "/abs"])
def test_run_names_cannot_leave_the_output_directory(tmp_path, name):
    with pytest.raises(ConfigError, match="train.name"):
        train("gan", overrides=TINY + [f"train.out_dir={tmp_path / 'runs'}", f"train.name={name}"], progress=False)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "runs").exists()


def test_resume_drops_metrics_rows_past_the_checkpoint(tmp_path):
    common = TINY + [f"train.out_dir={tmp_path}"]
    straight = train("gan", overrides=common + ["train.name=a", "train.steps=8"], progress=False)
    killed = train("gan", overrides=common + ["train.name=b", "train.steps=6"], progress=False)
    # A kill -9 after step 6 was logged but before its checkpoint: latest still says step 4.
    checkpoints = killed.run_dir / "checkpoints"
    (checkpoints / "latest").write_text("step_00000004\n")
    with open(killed.run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "loss_d"')  # and a half-written row
    train("gan", resume=killed.run_dir, overrides=["train.steps=8"], progress=False)
    steps = [json.loads(line)["step"] for line in (killed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
    reference = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    resumed = [json.loads(line) for line in (killed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss_d"] for r in resumed] == [r["loss_d"] for r in reference]


def test_checkpoints_get_the_permissions_the_umask_gives(tmp_path):
    old = os.umask(0o022)
    try:
        result = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=p", "train.steps=1"],
                       progress=False)
    finally:
        os.umask(old)
    latest = ckpt.latest_checkpoint(result.run_dir / "checkpoints")
    assert stat.S_IMODE(latest.stat().st_mode) == 0o755
    for f in latest.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name
    assert stat.S_IMODE((result.run_dir / "config.json").stat().st_mode) == 0o644
