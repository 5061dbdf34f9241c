"""ADA (adaptive discriminator augmentation): per-image probability, the controller against hand-computed
steps, the game logging p, exact resume, and one adjustment per step under gradient accumulation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.apps.gan.ada import AdaptiveAugment, augment_with_probability
from genvision.apps.gan.objective import GANObjectiveConfig
from genvision.errors import ConfigError
from genvision.training.distributed import DistContext
from genvision.workflows.train import train
from test_gan import run_game

SINGLE = DistContext()


def test_probability_zero_is_the_identity_and_one_augments_every_image():
    x = torch.rand(64, 1, 16, 16) + 0.5  # strictly positive: cutout's zeros show which images it touched
    assert torch.equal(augment_with_probability(x, "cutout", 0.0), x)
    every = augment_with_probability(x, "cutout", 1.0)
    assert bool(((every == 0).flatten(1).any(dim=1)).all())


def test_probability_is_per_image_and_the_draws_do_not_depend_on_p():
    x = torch.rand(2000, 1, 8, 8) + 0.5
    torch.manual_seed(0)
    half = augment_with_probability(x, "cutout", 0.3)
    after_p03 = torch.rand(4)
    touched = (half == 0).flatten(1).any(dim=1).float().mean().item()
    assert abs(touched - 0.3) < 0.05  # 2,000 images: the standard error is 0.01
    torch.manual_seed(0)
    augment_with_probability(x, "cutout", 0.9)
    assert torch.equal(torch.rand(4), after_p03)  # same RNG consumption whatever p is: resumes replay it


def test_probability_keeps_the_gradient_of_augmented_and_plain_images():
    x = torch.rand(8, 3, 16, 16).requires_grad_(True)
    augment_with_probability(x, "color,translation", 0.5).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_controller_steps_by_hand():
    ada = AdaptiveAugment("", target=0.6, kimg=0.1, interval=4)  # p moves 1 per 100 images
    assert ada.policy == "color,translation,cutout"
    ada.observe(torch.tensor([2.0] * 48 + [-1.0] * 16))  # r_t = (48 - 16) / 64 = 0.5 < 0.6: p stays at 0
    ada.adjust(SINGLE, torch.device("cpu"))
    assert ada.p == 0.0 and ada.last_rt == pytest.approx(0.5)
    ada.observe(torch.ones(64))  # r_t = 1 > 0.6: p += 64 / 100
    ada.adjust(SINGLE, torch.device("cpu"))
    assert ada.p == pytest.approx(0.64)
    ada.observe(-torch.ones(32))  # r_t = -1: p -= 32 / 100
    ada.adjust(SINGLE, torch.device("cpu"))
    assert ada.p == pytest.approx(0.32)
    for _ in range(3):  # clamped to [0, 1]
        ada.observe(torch.ones(64))
        ada.adjust(SINGLE, torch.device("cpu"))
    assert ada.p == 1.0
    ada.adjust(SINGLE, torch.device("cpu"))  # nothing observed: p stays
    assert ada.p == 1.0
    state = ada.state_dict()
    again = AdaptiveAugment("", 0.6, 0.1, 4)
    again.load_state_dict(state)
    assert again.p == 1.0 and again.last_rt == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [{"ada_target": 1.5}, {"ada_target": -0.1}, {"ada_kimg": 0.0},
                                 {"ada_interval": 0}, {"ada_target": 0.6, "diffaugment": "rotate"}])
def test_bad_ada_config(bad):
    with pytest.raises(ConfigError):
        GANObjectiveConfig(**bad).validate()


def test_the_game_moves_p_and_logs_it():
    _, objective, history = run_game(GANObjectiveConfig(ada_target=0.6, ada_kimg=0.016, ada_interval=1), 12)
    assert all("ada_p" in row and "ada_rt" in row for row in history)
    ps = [row["ada_p"] for row in history]
    assert ps[0] == 0.0 and all(0.0 <= p <= 1.0 for p in ps)
    # Each adjustment moves p by 16 images / 16 images = 1: p is 0 or 1, and D's confidence on the toy bars
    # (r_t > 0.6 within a few steps) pushes it to 1.
    assert set(ps) <= {0.0, 1.0} and 1.0 in ps
    assert objective.state_dict()["ada"]["p"] == ps[-1]  # no adjustment after the last step's log


TINY = ["data.name=mnist-mini", "data.limit=256", "model.width=8", "train.batch_size=16", "train.log_every=1",
        "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=4", "conditional=true",
        "objective.ada_target=0.6", "objective.ada_kimg=0.32", "objective.ada_interval=1"]


def _weights(run_dir) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_checkpoint(run_dir / "checkpoints")
    return load_file(str(latest / ckpt.WEIGHTS_FILE))


def _ps(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [row["ada_p"] for row in rows if "ada_p" in row]


def test_an_ada_run_resumes_to_the_uninterrupted_weights(tmp_path):
    common = TINY + [f"train.out_dir={tmp_path}"]
    straight = train("gan", overrides=common + ["train.name=straight", "train.steps=8"], progress=False)
    half = train("gan", overrides=common + ["train.name=split", "train.steps=4"], progress=False)
    first_half = _ps(half.run_dir)
    resumed = train("gan", resume=half.run_dir, overrides=["train.steps=8"], progress=False)
    ps = _ps(straight.run_dir)
    assert len(first_half) == 4 and max(first_half) > 0  # p moved: the resume had ADA state to restore
    assert _ps(resumed.run_dir) == ps  # the resumed run appends its 4 rows to the first half's
    a, b = _weights(straight.run_dir), _weights(resumed.run_dir)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_accumulation_adjusts_p_once_per_step_by_the_whole_batch(tmp_path):
    run = train("gan", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=acc", "train.steps=8",
                                         "train.grad_accum=2"], progress=False)
    ps = _ps(run.run_dir)
    assert len(ps) == 8 and max(ps) > 0
    # 16 images per step, 320 per unit of p: every adjustment moves p by 0.05 (0.1 if counted twice)
    steps = [round(b - a, 6) for a, b in zip(ps, ps[1:])]
    assert set(steps) <= {-0.05, 0.0, 0.05}, steps
    assert all(math.isclose(p / 0.05, round(p / 0.05), abs_tol=1e-6) for p in ps)
