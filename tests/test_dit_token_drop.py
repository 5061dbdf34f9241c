"""Fewer tokens early (token dropping): the DiT on a subset of tokens, the loss over the kept patches by
hand, the switch back to every token, and exact resume across it."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.apps.dit.objective import FlowObjective, FlowObjectiveConfig
from genvision.errors import ConfigError
from genvision.nn.embeddings import patchify
from genvision.processes.flow import interpolate
from genvision.training.objective import DataInfo, StepContext
from genvision.workflows.train import train
from test_dit import TINY, tiny_dit


@pytest.mark.parametrize("prediction", ["velocity", "data"])
def test_keeping_every_token_in_order_is_the_full_field(prediction):
    model = tiny_dit()
    model.config.prediction = prediction
    x, t, y = torch.randn(3, 1, 8, 8), torch.tensor([0.1, 0.5, 0.97]), torch.tensor([0, 1, 3])
    every = torch.arange(4).expand(3, 4)  # 8 px / patch 4: 2 x 2 tokens
    full = patchify(model(x, t, y), 4)  # (3, 4, 16)
    torch.testing.assert_close(model(x, t, y, keep=every), full, rtol=1e-5, atol=1e-6)


def test_kept_tokens_follow_their_indices_and_fewer_tokens_change_the_field():
    model = tiny_dit()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.6]), torch.tensor([0, 2])
    ordered = model(x, t, y, keep=torch.tensor([[0, 2], [1, 3]]))  # (2, 2, 16)
    swapped = model(x, t, y, keep=torch.tensor([[2, 0], [3, 1]]))
    torch.testing.assert_close(swapped, ordered.flip(1), rtol=1e-5, atol=1e-6)  # attention is order-free
    full = patchify(model(x, t, y), 4)
    assert not torch.allclose(ordered[0], full[0, [0, 2]], atol=1e-4)  # the dropped tokens mattered


def test_the_loss_covers_the_kept_patches_until_the_switch_step():
    model = tiny_dit(randomise=True).train()
    objective = FlowObjective(model, FlowObjectiveConfig(token_drop_steps=1, token_keep=0.5, label_dropout=0.0),
                              DataInfo(1, 8, 3))
    images, labels = torch.rand(4, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0])
    state = torch.get_rng_state()
    ctx = StepContext(step=0, device=torch.device("cpu"), precision="fp32", grad_clip=None, optimizers={})
    ctx.update = lambda loss, name: True  # the loss only: no optimizer step
    with torch.no_grad():
        loss = objective.train_step((images, labels), ctx)["loss"]
    torch.set_rng_state(state)  # the same draws, in train_step's order: noise, times, kept tokens
    x0, t = torch.randn(4, 1, 8, 8), torch.sigmoid(torch.randn(4))
    keep = torch.rand(4, 4).argsort(dim=1)[:, :2]
    with torch.no_grad():
        pred = model(interpolate(x0, images, t), t, labels, keep=keep)
    target = patchify(images - x0, 4).gather(1, keep[:, :, None].expand(-1, -1, 16))
    torch.testing.assert_close(loss, F.mse_loss(pred, target))
    ctx.step = 1  # past token_drop_steps: every token, the plain loss
    torch.set_rng_state(state)
    with torch.no_grad():
        full = objective.train_step((images, labels), ctx)["loss"]
        plain = F.mse_loss(model(interpolate(x0, images, t), t, labels), images - x0)
    torch.testing.assert_close(full, plain)


@pytest.mark.parametrize("bad", [{"token_keep": 0.0}, {"token_keep": 1.5}, {"token_drop_steps": -1}])
def test_bad_token_drop_config(bad):
    with pytest.raises(ConfigError):
        FlowObjectiveConfig(**bad).validate()


def test_a_run_that_drops_tokens_resumes_across_the_switch(tmp_path):
    common = TINY + [f"train.out_dir={tmp_path}", "model.patch_size=4", "objective.token_drop_steps=3",
                     "objective.token_keep=0.25"]
    straight = train("dit", overrides=common + ["train.name=straight", "train.steps=6"], progress=False)
    half = train("dit", overrides=common + ["train.name=split", "train.steps=2"], progress=False)
    resumed = train("dit", resume=half.run_dir, overrides=["train.steps=6"], progress=False)
    for name in (ckpt.WEIGHTS_FILE, ckpt.EMA_FILE):
        a = load_file(str(ckpt.latest_checkpoint(straight.run_dir / "checkpoints") / name))
        b = load_file(str(ckpt.latest_checkpoint(resumed.run_dir / "checkpoints") / name))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    config = json.loads((straight.run_dir / "config.json").read_text())
    assert config["objective"]["token_drop_steps"] == 3 and config["objective"]["token_keep"] == 0.25
