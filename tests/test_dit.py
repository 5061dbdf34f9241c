"""DiT + flow matching: the loss and sampler steps by hand, overfitting, determinism, CFG, resume."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from genvision import checkpoints as ckpt
from genvision.apps.dit.objective import FlowObjective, FlowObjectiveConfig
from genvision.errors import ConfigError
from genvision.models.dit import DiT, DiTConfig
from genvision.nn.embeddings import unpatchify
from genvision.processes.flow import drop_labels, flow_matching_loss, sample_step
from genvision.sampling import generate
from genvision.training.objective import DataInfo, StepContext
from genvision.workflows.train import train

TINY = ["data.name=mnist-mini", "data.limit=64", "model.dim=16", "model.depth=1", "model.heads=2",
        "model.patch_size=7", "model.sample_steps=2", "train.batch_size=8", "train.log_every=2",
        "train.tensorboard=false", "train.sample_every=0", "train.ckpt_every=2", "objective.warmup_steps=2"]


def tiny_dit(num_classes: int = 3, seed: int = 0, randomise: bool = True) -> DiT:
    torch.manual_seed(seed)
    model = DiT(DiTConfig(image_size=8, channels=1, num_classes=num_classes, patch_size=4, dim=16, depth=2, heads=2,
                          sample_steps=4))
    if randomise:  # adaLN-Zero starts as the zero field; give every layer some weight
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


class _LinearField(nn.Module):
    """v(x, t, y) = a x + b t: a field whose loss and steps are easy to compute by hand."""

    def __init__(self, a: float, b: float):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x, t, labels=None):
        return self.a * x + self.b * t.view(-1, 1, 1, 1)


def test_flow_matching_loss_by_hand():
    x1 = torch.tensor([0.5, -1.0]).view(2, 1, 1, 1)  # data
    x0 = torch.tensor([1.0, 2.0]).view(2, 1, 1, 1)  # noise
    t = torch.tensor([0.25, 0.5])
    # x_t = (1 - t) x0 + t x1 = [0.875, 0.5]; v = 2 x_t + 1 t = [2.0, 1.5]; target x1 - x0 = [-0.5, -3.0]
    # loss = mean((2.0 + 0.5)^2, (1.5 + 3.0)^2) = (6.25 + 20.25) / 2 = 13.25
    loss = flow_matching_loss(_LinearField(2.0, 1.0), x1, x0, t)
    assert float(loss) == pytest.approx(13.25)


def test_one_sampler_step_by_hand():
    x = torch.tensor([2.0])
    v = lambda x_, t_: x_ + t_  # noqa: E731
    t, dt = torch.tensor(0.5), 0.25
    assert float(sample_step(v, x, t, dt, "euler")) == pytest.approx(2.0 + 0.25 * 2.5)
    # heun: x' = 2.625, v(x', 0.75) = 3.375 -> 2 + 0.125 * (2.5 + 3.375)
    assert float(sample_step(v, x, t, dt, "heun")) == pytest.approx(2.0 + 0.125 * (2.5 + 3.375))
    # midpoint: x_mid = 2 + 0.125 * 2.5 = 2.3125, v(x_mid, 0.625) = 2.9375 -> 2 + 0.25 * 2.9375
    assert float(sample_step(v, x, t, dt, "midpoint")) == pytest.approx(2.0 + 0.25 * 2.9375)


def test_one_euler_step_of_the_dit_by_hand():
    model = tiny_dit(randomise=False)
    with torch.no_grad():  # zero-initialised final layer: the field is exactly its bias, unpatchified
        model.final.linear.bias.copy_(torch.linspace(-0.5, 0.5, 16))
    field = unpatchify(model.final.linear.bias.view(1, 1, 16).expand(1, 4, 16), 4, 1, 2)  # (1, 1, 8, 8)
    z = 0.1 * torch.randn(2, 1, 8, 8)
    out = model.generate(z, torch.tensor([0, 2]), steps=1, sampler="euler", progress=False)
    torch.testing.assert_close(out, (z + field).clamp(-1, 1))


def test_label_dropout():
    labels = torch.arange(1000) % 3
    assert torch.equal(drop_labels(labels, 0.0, 3), labels)
    assert (drop_labels(labels, 1.0, 3) == 3).all()
    dropped = (drop_labels(labels, 0.25, 3) == 3).float().mean()
    assert 0.2 < float(dropped) < 0.3


def test_sampling_is_deterministic_per_seed_and_batched():
    model = tiny_dit()
    a = generate(model, 6, seed=5, batch_size=4, steps=3, sampler="heun")
    b = generate(model, 6, seed=5, batch_size=6, steps=3, sampler="heun")
    c = generate(model, 6, seed=6, steps=3, sampler="heun")
    assert a.shape == (6, 1, 8, 8) and torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)


def test_cfg_scale_one_equals_conditional_and_zero_equals_unconditional():
    model = tiny_dit()
    z, labels = model.sample_latent(4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    x, t = torch.randn(4, 1, 8, 8), torch.full((1,), 0.3)
    null = torch.full_like(labels, model.null_class)
    v_cond, v_null = model(x, t.expand(4), labels), model(x, t.expand(4), null)
    guided = model.velocity(x, t, labels, 2.0)
    torch.testing.assert_close(guided, v_null + 2.0 * (v_cond - v_null), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(v_cond, v_null)
    conditional = model.generate(z, labels, steps=3, cfg=1.0, progress=False)
    torch.testing.assert_close(model.generate(z, labels, steps=3, progress=False), conditional)  # default cfg 1
    # the guided formula at s = 1 is the conditional field (checked without the s = 1 shortcut)
    torch.testing.assert_close(model.velocity(x, t, labels, 1.0 + 1e-12), v_cond, atol=1e-5, rtol=1e-5)
    unconditional = model.generate(z, None, steps=3, progress=False)
    torch.testing.assert_close(model.generate(z, labels, steps=3, cfg=0.0, progress=False), unconditional,
                               atol=1e-5, rtol=1e-5)
    assert not torch.allclose(model.generate(z, labels, steps=3, cfg=3.0, progress=False), conditional)


def test_tiny_dit_overfits_a_few_images():
    from genvision.data import load_dataset

    torch.manual_seed(0)
    data = load_dataset("mnist-mini", limit=4)
    images, labels = data.get_batch(torch.arange(4))
    model = DiT(DiTConfig(image_size=28, channels=1, num_classes=10, patch_size=7, dim=64, depth=2, heads=2))
    objective = FlowObjective(model, FlowObjectiveConfig(lr=3e-3, warmup_steps=5, label_dropout=0.0),
                              DataInfo(1, 28, 10), total_steps=150)
    scheduler = objective.lr_schedulers()["model"]
    batch = (images.repeat(8, 1, 1, 1), labels.repeat(8))  # 32 = the 4 images x 8 noise draws
    losses = []
    for step in range(150):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=1.0,
                          optimizers=objective.optimizers())
        losses.append(float(objective.train_step(batch, ctx)["loss"]))
        scheduler.step()
    first, last = sum(losses[:10]) / 10, sum(losses[-20:]) / 20
    assert last < 0.4 * first, (first, last)  # measured ~0.22


def test_train_save_load_resume(tmp_path):
    common = TINY + [f"train.out_dir={tmp_path}"]
    straight = train("dit", overrides=common + ["train.name=straight", "train.steps=4"], progress=False)
    half = train("dit", overrides=common + ["train.name=split", "train.steps=2"], progress=False)
    resumed = train("dit", resume=half.run_dir, overrides=["train.steps=4"], progress=False)
    assert resumed.step == 4
    for name in (ckpt.WEIGHTS_FILE, ckpt.EMA_FILE):
        a = load_file(str(ckpt.latest_checkpoint(straight.run_dir / "checkpoints") / name))
        b = load_file(str(ckpt.latest_checkpoint(resumed.run_dir / "checkpoints") / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    model = ckpt.load_pretrained(straight.run_dir, kind="diffusion")
    assert model.registry_name == "dit" and model.config.num_classes == 10
    images = generate(model, 3, seed=0, class_label=7, steps=2, cfg=2.0, sampler="midpoint")
    assert images.shape == (3, 1, 28, 28) and images.abs().max() <= 1
    assert (straight.run_dir / "samples" / "step_00000004.png").is_file()


def test_sampling_argument_errors():
    model = tiny_dit()
    z = model.sample_latent(2)
    with pytest.raises(ConfigError, match="--steps must be an integer >= 1"):
        model.generate(z, torch.tensor([0, 1]), steps=0)
    with pytest.raises(ConfigError, match="--sampler must be one of euler, heun, midpoint"):
        model.generate(z, torch.tensor([0, 1]), sampler="rk45")
    with pytest.raises(ConfigError, match="--cfg"):
        model.generate(z, torch.tensor([0, 1]), cfg=-1.0)
    with pytest.raises(ConfigError, match="z must have shape"):
        model.generate(torch.randn(2, 3, 8, 8))
    with pytest.raises(ConfigError, match="labels must be"):
        model.generate(z, torch.tensor([0, 5]))
    with pytest.raises(ConfigError, match="patch_size 3 must divide"):
        DiTConfig(patch_size=3).validate()


def test_training_time_fid_and_evaluate_command(tmp_path, monkeypatch, capsys):
    import json

    from genvision.cli import main

    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    result = train("dit", overrides=TINY + [f"train.out_dir={tmp_path}", "train.name=e", "train.steps=4",
                                            "train.eval_every=2", "train.eval_samples=50"], progress=False)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len([r for r in rows if "eval/fid" in r]) == 2
    assert (result.run_dir / "checkpoints" / "best").is_file()
    code = main(["evaluate", "--model", str(result.run_dir), "-n", "50", "--batch-size", "25",
                 "-o", str(tmp_path / "e.json")])
    out = capsys.readouterr().out
    assert code == 0 and "diffusion model" in out and "fid" in out
