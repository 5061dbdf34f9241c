"""CycleGAN: the cycle loss of an identity pair is zero, the image pool mixes history by the seed and
never outgrows its size, a tiny model learns, the family saves and resumes exactly, and
``genvision translate`` writes an output with its sidecar or refuses on one line writing nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genvision import cli
from genvision.apps.translate.objective import (
    CycleGANObjective,
    CycleObjectiveConfig,
    cycle_loss,
)
from genvision.apps.translate.pool import ImagePool
from genvision.checkpoints import load_pretrained
from genvision.models.cyclegan import CycleGAN, CycleGANConfig
from genvision.training.objective import DataInfo, StepContext
from genvision.workflows.train import train


def _scene(height: int, width: int, seed: int, warm: bool) -> np.ndarray:
    """Smooth colour pictures: warm ones (domain A) or cool ones (domain B), uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    base = (0.8, 0.4, 0.2) if warm else (0.2, 0.4, 0.8)
    value = np.stack([b + 0.2 * np.sin(6 * (rng.uniform() * x + rng.uniform() * y)) for b in base], -1)
    return (np.clip(value, 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def domains(tmp_path):
    folders = []
    for name, warm in (("a", True), ("b", False)):
        folder = tmp_path / name
        folder.mkdir()
        for s in range(3):
            Image.fromarray(_scene(24, 28, s, warm)).save(folder / f"{s}.png")
        folders.append(folder)
    return folders


def _train(domains, out_dir, name, extra=()):
    a, b = domains
    return train("cyclegan", progress=False, overrides=[
        f"data_a.name=folder:{a}", f"data_b.name=folder:{b}", f"train.out_dir={out_dir}", f"train.name={name}",
        "data.patch_size=16", "data.load_size=20", "batch_size=2", "tensorboard=false", "log_every=1",
        "model.width=4", "model.blocks=1", "model.d_width=4", "model.d_layers=2", "objective.pool_size=3", *extra])


def test_the_cycle_loss_of_an_identity_pair_is_zero():
    a, b = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    loss, fake_b, fake_a = cycle_loss(nn.Identity(), nn.Identity(), a, b)
    assert loss.item() == 0.0 and torch.equal(fake_b, a) and torch.equal(fake_a, b)


def test_the_pool_is_seeded_mixes_history_and_never_outgrows_its_size():
    def run(seed):
        torch.manual_seed(seed)
        pool, outs = ImagePool(4), []
        for step in range(6):
            batch = torch.full((3, 1, 2, 2), float(step))  # every fake of a step carries the step number
            outs.append(pool.query(batch))
            assert len(pool) <= 4
        return torch.stack(outs)

    first, again, other = run(0), run(0), run(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    steps = first[:, :, 0, 0, 0]  # (6, 3): which step each returned image came from
    assert (steps <= torch.arange(6)[:, None]).all()  # never an image from the future
    assert (steps < torch.arange(6)[:, None]).any()  # and some from the history
    assert torch.equal(ImagePool(0).query(first[0]), first[0])


def test_a_tiny_model_lowers_its_losses_in_a_few_steps():
    torch.manual_seed(0)
    model = CycleGAN(CycleGANConfig(channels=3, width=4, blocks=1, d_width=4, d_layers=2))
    objective = CycleGANObjective(model, CycleObjectiveConfig(lr=2e-3, pool_size=2),
                                  DataInfo(channels=3, image_size=16, num_classes=0), total_steps=100)
    a = torch.from_numpy(_scene(16, 16, 0, True)).permute(2, 0, 1).float()[None] / 255  # (1, 3, 16, 16)
    b = torch.from_numpy(_scene(16, 16, 1, False)).permute(2, 0, 1).float()[None] / 255
    batch = (torch.cat([a, a, b, b]), torch.full((4,), -1))
    losses = []
    for step in range(12):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                          optimizers=objective.optimizers())
        losses.append(objective.train_step(batch, ctx))
    first, last = losses[0], losses[-1]
    assert last["loss_cycle"] < 0.5 * first["loss_cycle"] and last["loss_g"] < first["loss_g"]
    grid = objective.sample_grid(model.generators, 64, seed=0)
    assert grid.shape == (36, 3, 16, 16)  # 6 rows of a | a->b | a->b->a | b | b->a | b->a->b


def test_the_lr_is_constant_then_falls_linearly_to_zero():
    from genvision.apps.translate.objective import linear_decay

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule, lrs = linear_decay(opt, total_steps=8, decay_start=0.5), []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs == [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.5, 0.25, 0.0]


def test_the_family_saves_loads_and_resumes_exactly(domains, tmp_path):
    from safetensors.torch import load_file

    # decay_start=1: a constant lr, so the run cut at step 2 (laid out over 2 steps) has the same lr
    common = ["sample_every=2", "ckpt_every=2", "objective.decay_start=1.0"]
    straight = _train(domains, tmp_path, "straight", [*common, "steps=4"])
    _train(domains, tmp_path, "split", [*common, "steps=2"])
    resumed = train("cyclegan", resume=tmp_path / "split", overrides=["steps=4"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("critics.") for k in a)
    state = torch.load(straight.checkpoint / "trainer_state.pt", weights_only=True)
    assert 0 < state["objective"]["pool_a"]["images"].shape[0] <= 3  # the pool travels with the checkpoint
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_g", "loss_cycle", "loss_identity", "loss_d_a", "loss_d_b"} <= set(rows[-1])
    model = load_pretrained(straight.run_dir, kind="translate")
    assert model.registry_name == "cyclegan" and model.config.width == 4


def test_a_translator_without_critics_loads_the_generators_of_a_trained_run_and_refuses_to_train(domains, tmp_path):
    from genvision.errors import ConfigError

    run = _train(domains, tmp_path, "full", ["steps=2"])
    full = load_pretrained(run.run_dir, kind="translate")
    slim = CycleGAN(CycleGANConfig(**{**vars(full.config), "critics": False}))
    missing, unexpected = slim.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected and all(key.startswith("critics.") for key in unexpected)
    images = torch.rand(2, 3, 20, 24)
    for direction in ("a2b", "b2a"):
        assert torch.equal(slim(images, direction), full(images, direction))
    with pytest.raises(ConfigError, match="has no critics"):
        CycleGANObjective(slim, CycleObjectiveConfig(), DataInfo(channels=3, image_size=16, num_classes=0),
                          total_steps=10)


def test_a_padded_domain_keeps_each_image_inside_a_black_border(domains):
    from genvision.apps.translate.data import load_domain
    from genvision.data import load_dataset

    digits = load_domain("mnist-mini", channels=1, load_size=20, patch_size=28, pad=4, limit=5)
    plain = load_dataset("mnist-mini", split="train", image_size=20, channels=1, limit=5).images  # (5, 1, 20, 20)
    for image, inner in zip(digits.images, plain):
        assert image.shape == (1, 28, 28) and torch.equal(image[:, 4:24, 4:24], inner)
        border = image.clone()
        border[:, 4:24, 4:24] = 0
        assert border.max() == 0  # MNIST's framing (sklearn-digits at 20 + 4): a 20 px box, black around it
    assert digits.labels.tolist() == load_dataset("mnist-mini", split="train", limit=5).labels.tolist()
    photos = load_domain(f"folder:{domains[0]}", channels=3, load_size=20, patch_size=16, pad=2)
    assert all(image.shape[0] == 3 and min(image.shape[1:]) == 24 for image in photos.images)


def test_a_domain_too_small_even_with_its_border_is_refused_on_one_line(domains, tmp_path, capsys):
    a, b = domains
    code = cli.main(["train", "cyclegan", f"data_a.name=folder:{a}", f"data_b.name=folder:{b}",
                     "data.patch_size=28", "data_b.load_size=18", "data_b.pad=4", f"train.out_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1, err
    assert "data_b.load_size=18 with data_b.pad=4 is smaller than data.patch_size=28" in err
    for bad, message in (("data_b.pad=-1", "data_b.pad"), ("data_b.pad=2049", "data_b.pad"),
                         ("data_b.pad=100", "makes images over 4096 px")):
        code = cli.main(["train", "cyclegan", f"data_a.name=folder:{a}", f"data_b.name=folder:{b}",
                         "data_b.load_size=4000", bad, f"train.out_dir={tmp_path / 'runs'}"])
        err = capsys.readouterr().err
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "runs").exists()  # nothing written


@pytest.fixture
def trained(domains, tmp_path):
    return _train(domains, tmp_path, "run", ["steps=1", "sample_every=0"]).run_dir


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_translate_writes_any_size_with_a_sidecar(trained, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(_scene(21, 30, 5, True)).save(source)  # not a multiple of 4
    out = tmp_path / "out.png"
    code, stdout, _ = _run(["translate", str(source), "--model", str(trained), "--direction", "b2a",
                            "-o", str(out)], capsys)
    assert code == 0 and "wrote" in stdout
    assert Image.open(out).size == (30, 21)
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["direction"] == "b2a" and sidecar["model"] == str(trained)


def test_translate_refuses_bad_input_on_one_line_writing_nothing(trained, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(_scene(16, 16, 5, True)).save(source)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    for argv, message in (([str(tmp_path / "missing.png"), "--model", str(trained)], "no such file"),
                          ([str(tmp_path / "broken.png"), "--model", str(trained)], "broken.png"),
                          ([str(source), "--model", str(tmp_path / "nomodel")], "not found"),
                          ([str(source), "--model", str(trained), "--direction", "sideways"], "sideways")):
        target = tmp_path / "never.png"
        code, _, stderr = _run(["translate", *argv, "-o", str(target)], capsys)
        assert code != 0 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr
        assert not target.exists() and not (tmp_path / "never.png.json").exists()
