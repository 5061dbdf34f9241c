"""train sr-distill: a small SR network learns from a frozen large one; only the student is saved, the
teacher's scale rules, a pruned or smaller model can be the starting point, and the errors name their key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.errors import ConfigError
from genvision.registry import create_model
from genvision.workflows.train import train


@pytest.fixture
def setup(tmp_path, hr_folder):
    folder = hr_folder
    torch.manual_seed(0)
    teacher = create_model("edsr", {"scale": 2, "width": 8, "depth": 2})
    save_pretrained(teacher, tmp_path / "teacher")
    return folder, tmp_path / "teacher"


def _distill(folder, teacher, out_dir, name, extra=()):
    return train("sr-distill", progress=False, overrides=[
        f"data.name=folder:{folder}", f"teacher={teacher}", f"train.out_dir={out_dir}", f"train.name={name}",
        "data.patch_size=24", "batch_size=4", "tensorboard=false", "log_every=1", "sample_every=0", "ema=false",
        "objective.warmup_steps=0", *extra])


def test_the_student_learns_the_teacher_and_is_saved_alone(setup, tmp_path):
    folder, teacher_dir = setup
    before = load_file(str(teacher_dir / "model.safetensors"))
    result = _distill(folder, teacher_dir, tmp_path, "pure", ["objective.alpha=1", "steps=30", "objective.lr=3e-3",
                                                              "model.width=8", "model.mid_width=8"])
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_hr", "loss_teacher", "teacher_psnr_rgb"} <= set(rows[-1])
    first, last = np.mean([r["loss_teacher"] for r in rows[:5]]), np.mean([r["loss_teacher"] for r in rows[-5:]])
    assert last < 0.7 * first  # alpha 1: the student moves toward the teacher's output
    student = load_pretrained(result.run_dir, kind="sr")
    assert student.registry_name == "espcn" and student.scale == 2  # the teacher's scale
    assert not any(k.startswith("teacher") for k in load_file(str(result.checkpoint / "model.safetensors")))
    after = load_file(str(teacher_dir / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # the teacher is never trained


def test_init_starts_from_a_given_smaller_model(setup, tmp_path):
    folder, teacher_dir = setup
    torch.manual_seed(1)
    small = create_model("edsr", {"scale": 2, "width": 4, "depth": 1})
    save_pretrained(small, tmp_path / "small")
    result = _distill(folder, teacher_dir, tmp_path, "init", [f"init={tmp_path / 'small'}", "steps=1",
                                                              "objective.lr=1e-12"])
    student = load_pretrained(result.run_dir, kind="sr")
    assert student.registry_name == "edsr" and student.config.width == 4
    for name, tensor in small.state_dict().items():
        assert torch.allclose(student.state_dict()[name], tensor, atol=1e-6)


def test_errors_name_their_key(setup, tmp_path):
    folder, teacher_dir = setup
    with pytest.raises(ConfigError, match="teacher="):
        train("sr-distill", progress=False, overrides=[f"data.name=folder:{folder}", f"train.out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="^teacher: model not found"):
        _distill(folder, tmp_path / "absent", tmp_path, "x", ["steps=1"])
    save_pretrained(create_model("espcn", {"scale": 3, "width": 4, "mid_width": 4}), tmp_path / "x3")
    with pytest.raises(ConfigError, match="x3 model but the teacher is x2"):
        _distill(folder, teacher_dir, tmp_path, "y", [f"init={tmp_path / 'x3'}", "steps=1"])
    with pytest.raises(ConfigError, match="scale=4 contradicts the teacher, a x2 model"):
        _distill(folder, teacher_dir, tmp_path, "w", ["scale=4", "steps=1"])
    with pytest.raises(ConfigError, match="alpha"):
        _distill(folder, teacher_dir, tmp_path, "z", ["objective.alpha=2", "steps=1"])
