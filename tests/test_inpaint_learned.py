"""The learned inpainting network (LaMa-style FFC), its training family and the ``net`` method:
known pixels never change, the Fourier blocks see the whole image, a tiny network learns to fill,
training resumes exactly, and the command refuses what it cannot do on one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision import cli
from genvision.apps.edit.inpaint import inpaint_array, inpaint_samples
from genvision.apps.edit.objective import training_masks
from genvision.checkpoints import load_pretrained
from genvision.errors import ConfigError, InputShapeError
from genvision.models.inpaint import FFCResBlock, LamaConfig, LamaInpainter
from genvision.models.protocols import Inpainter
from genvision.workflows.train import train


def _tiny(**changes) -> LamaInpainter:
    torch.manual_seed(0)
    values = {"width": 4, "downsamples": 2, "blocks": 1, "d_width": 4, "d_blocks": 2, **changes}
    return LamaInpainter(LamaConfig(**values)).eval()


def _scene(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth colour photo stand-in: gradients plus a few soft blobs, uint8 (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = []
    for c in range(3):
        value = 0.3 + 0.4 * (rng.uniform() * x + rng.uniform() * y)
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 1, 3)
            value += 0.2 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (0.02 + 0.05 * r))
        channels.append(value)
    return (np.clip(np.stack(channels, -1), 0, 1) * 255).round().astype(np.uint8)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for s in range(3):
        Image.fromarray(_scene(40, 48, s)).save(folder / f"{s}.png")
    return folder


def _train(folder, out_dir, name, extra=()):
    return train("inpaint", progress=False, overrides=[
        f"data.name=folder:{folder}", f"train.out_dir={out_dir}", f"train.name={name}", "data.patch_size=32",
        "data.repeat=2", "batch_size=2", "tensorboard=false", "log_every=1", "model.width=4", "model.blocks=1",
        "model.downsamples=2", "model.d_width=4", "model.d_blocks=2", *extra])


# ----------------------------------------------------------------------------- the network


@pytest.mark.parametrize("size", [(16, 16), (21, 35), (5, 7)])
def test_any_size_is_filled_and_known_pixels_come_back_exactly(size):
    model = _tiny()
    image = torch.rand(2, 3, *size)
    mask = (torch.rand(2, 1, *size) > 0.6).float()
    with torch.no_grad():
        out = model(image, mask)
    assert isinstance(model, Inpainter) and out.shape == image.shape
    known = mask.expand_as(image) == 0
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])  # the hole is the network's
    assert out.min() >= 0 and out.max() <= 1  # a sigmoid head


def test_a_mask_of_the_wrong_shape_is_one_clear_error():
    with pytest.raises(InputShapeError, match=r"mask of shape \(1, 1, 16, 16\)"):
        _tiny()(torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ConfigError, match="global_ratio"):
        LamaConfig(global_ratio=1.0).validate()


def test_the_fourier_block_sees_the_whole_image_from_the_first_layer():
    """A 3x3 convolution reaches one pixel; an FFC's spectral branch reaches every pixel."""
    torch.manual_seed(0)
    for global_channels, far_reaches in ((4, True), (0, False)):
        block = FFCResBlock(8, global_channels).eval()
        x = torch.randn(1, 8, 32, 32, requires_grad=True)
        block(x)[0, :, 0, 0].sum().backward()
        assert bool(x.grad[0, :, 20:, 20:].abs().sum() > 0) is far_reaches


def test_training_masks_are_seeded_and_in_the_hole_range():
    torch.manual_seed(3)
    a = training_masks(6, 32, (0.1, 0.4), 3.0)
    torch.manual_seed(3)
    b = training_masks(6, 32, (0.1, 0.4), 3.0)
    assert a.shape == (6, 1, 32, 32) and torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    fractions = a.mean(dim=(1, 2, 3))
    assert ((fractions >= 0.1) & (fractions <= 0.4)).float().mean() >= 5 / 6  # redrawn until in range (8 tries)


# ----------------------------------------------------------------------------- training


def test_a_tiny_network_overfits_a_fixed_hole():
    """One scene, one hole, L1 in the hole: the fill's error falls to a small part of where it started."""
    model = _tiny(width=8, downsamples=1).train()
    image = torch.from_numpy(_scene(32, 32, 5)).permute(2, 0, 1)[None].float() / 255  # (1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 10:22, 8:20] = 1
    optimizer = torch.optim.Adam(model.generator.parameters(), lr=5e-3)

    def hole_mse() -> float:
        with torch.no_grad():
            return float(((model.generator(image, mask) - image) ** 2 * mask).sum() / (mask.sum() * 3))

    before = hole_mse()
    for _ in range(150):
        loss = ((model.generator.predict(image, mask) - image).abs() * mask).sum() / (mask.sum() * 3)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert hole_mse() < 0.05 * before


def test_training_logs_the_hole_psnr_without_a_discriminator(photos, tmp_path):
    result = _train(photos, tmp_path, "l1", ["steps=2", "objective.adversarial_weight=0",
                                             "objective.feature_weight=0", "sample_every=0", "ema=false"])
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "psnr_hole" in rows[-1] and "loss_d" not in rows[-1]


def test_the_family_trains_with_its_discriminator_saves_and_resumes_exactly(photos, tmp_path):
    from safetensors.torch import load_file

    common = ["sample_every=2", "ckpt_every=2"]
    straight = _train(photos, tmp_path, "straight", [*common, "steps=4"])
    _train(photos, tmp_path, "split", [*common, "steps=2"])
    resumed = train("inpaint", resume=tmp_path / "split", overrides=["steps=4"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("discriminator.") for k in a)
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_d", "loss_g", "loss_feature", "loss_adv", "psnr_hole"} <= set(rows[-1])
    assert any((straight.run_dir / "samples").iterdir())
    model = load_pretrained(straight.run_dir, kind="inpaint")
    assert model.registry_name == "lama" and model.config.width == 4


def test_recipe_errors_name_their_key():
    from genvision.config import load_recipe
    from genvision.workflows.train import get_family

    for bad, key in (("objective.hole=[0.5, 0.2]", "hole"), ("objective.mask_zoom=20", "mask_zoom"),
                     ("model.global_ratio=2", "global_ratio"), ("arch=unet", "arch"),
                     ("objective.hole_weight=0", "hole_weight")):
        overrides = [bad, "objective.adversarial_weight=0"] if "hole_weight" in bad else [bad]
        with pytest.raises(ConfigError, match=key):
            load_recipe(get_family("inpaint").recipe_cls, None, overrides).validate()


# ----------------------------------------------------------------------------- the net method and command


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpaint-net")
    folder = root / "photos"
    folder.mkdir()
    for s in range(2):
        Image.fromarray(_scene(40, 48, s)).save(folder / f"{s}.png")
    return _train(folder, root, "net", ["steps=2", "sample_every=0"]).run_dir


@pytest.mark.parametrize("layout", ["grey", "rgb", "rgba", "uint16", "float32"])
def test_the_net_method_keeps_known_pixels_in_every_layout(trained, layout):
    rgb = _scene(23, 30, 7)
    image = {"grey": rgb[..., 0], "rgb": rgb, "rgba": np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]),
             "uint16": rgb.astype(np.uint16) * 257, "float32": rgb.astype(np.float32) / 255}[layout]
    mask = np.zeros(rgb.shape[:2], bool)
    mask[5:15, 8:20] = True
    filled = inpaint_array(image, mask, method="net", model=str(trained))
    assert filled.shape == image.shape and filled.dtype == image.dtype
    assert np.array_equal(filled[~mask], image[~mask])
    assert not np.array_equal(filled[mask], image[mask])


def test_the_net_method_gives_one_fill_and_refuses_other_models(trained, tmp_path):
    image, mask = _scene(16, 16, 1), np.zeros((16, 16), bool)
    mask[4:8, 4:8] = True
    with pytest.raises(ConfigError, match="gives one fill"):
        inpaint_samples(image, mask, method="net", samples=2, model=str(trained))
    with pytest.raises(ConfigError, match="needs --model"):
        inpaint_array(image, mask, method="net")


def _run(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_inpaint_command_with_the_net(trained, tmp_path, capsys):
    source = tmp_path / "in.png"
    Image.fromarray(_scene(40, 52, 3)).save(source)
    out = tmp_path / "out.png"
    code, stdout, _ = _run(["inpaint", str(source), "--box", "10,8,20,12", "--method", "net", "--model", str(trained),
                            "-o", str(out)], capsys)
    assert code == 0 and "wrote" in stdout
    before, after = np.asarray(Image.open(source)), np.asarray(Image.open(out))
    hole = np.zeros(before.shape[:2], bool)
    hole[8:20, 10:30] = True
    assert np.array_equal(after[~hole], before[~hole]) and not np.array_equal(after[hole], before[hole])
    sidecar = json.loads(out.with_name("out.png.json").read_text()) if out.with_name("out.png.json").exists() else \
        json.loads(out.with_suffix(".json").read_text())
    assert sidecar["method"] == "net"
    # a DiT-only flag, and a model of the wrong kind: one line each, nothing written
    for argv, message in ((["--method", "net", "--model", str(trained), "--steps", "3"], "--steps is for"),
                          (["--method", "net", "--model", str(tmp_path / "missing")], "model not found")):
        target = tmp_path / "never.png"
        code, _, stderr = _run(["inpaint", str(source), "--box", "1,1,4,4", "-o", str(target), *argv], capsys)
        assert code != 0 and message in stderr and len(stderr.strip().splitlines()) == 1
        assert not target.exists()
