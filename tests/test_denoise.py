"""Denoising: DnCNN's residual form, training that learns, tiled == untiled, conditioned vs blind
models, the evaluation protocol's numbers, and the `denoise` / `evaluate --sigma` commands."""

from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT
from PIL import Image

from genvision.apps.denoise.evaluate import (
    evaluate_denoiser,
    model_denoiser,
    noisy_images,
)
from genvision.apps.denoise.objective import (
    DenoiseObjective,
    DenoiseObjectiveConfig,
    add_noise,
)
from genvision.apps.denoise.pipeline import (
    denoise,
    denoise_file,
    denoise_path,
    denoise_tensor,
)
from genvision.checkpoints import save_pretrained
from genvision.cli import main
from genvision.config import load_recipe
from genvision.errors import ConfigError
from genvision.models.denoise import (
    DnCNN,
    DnCNNConfig,
    NLMeans,
    NLMeansConfig,
    estimate_noise_sigma,
)
from genvision.models.protocols import Denoiser, ImageToImage
from genvision.training.objective import DataInfo, StepContext
from genvision.workflows.train import get_family


def _scene(h: int, w: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    """A clean test image in [0.1, 0.9]: smooth shading, a few rectangles (edges) and a stripe texture."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = 0.3 + 0.3 * xx * (1 - yy) + 0.1 * torch.sin(xx * 20 + yy * 7)
    for _ in range(4):
        y0, x0 = int(torch.randint(0, h - 8, (), generator=g)), int(torch.randint(0, w - 8, (), generator=g))
        img[y0:y0 + h // 4, x0:x0 + w // 4] += float(torch.rand((), generator=g)) * 0.4 - 0.2
    img = img.clamp(0.1, 0.9)[None]
    if channels == 3:
        img = torch.cat([img, img.flip(-1), img.flip(-2)])
    return img


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(((a - b) ** 2).mean()))


def _one_error_line(err: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _save_png(path, image: torch.Tensor) -> None:
    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(path)


# ----------------------------------------------------------------------------- the network


def test_dncnn_shapes_residual_form_and_the_paper_size():
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig(depth=5, width=8)).eval()
    x = torch.rand(2, 1, 21, 30)
    with torch.no_grad():
        out = model(x)
        assert out.shape == x.shape and isinstance(model, Denoiser) and not isinstance(model, ImageToImage)
        assert torch.equal(out, x - model.noise(x))  # residual learning: the net predicts the noise
        assert torch.equal(model(x, 0.3), out)  # blind: sigma is ignored
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and convs[0].in_channels == 1 and convs[-1].out_channels == 1
    paper = DnCNN(DnCNNConfig())  # DnCNN-S: 17 layers of 64 channels, ~0.56M parameters
    assert sum(isinstance(m, torch.nn.Conv2d) for m in paper.body) == 17
    assert 550_000 < sum(p.numel() for p in paper.parameters()) < 560_000
    rgb = DnCNN(DnCNNConfig(channels=3, depth=3, width=4))
    assert rgb(torch.rand(1, 3, 9, 9)).shape == (1, 3, 9, 9)
    with pytest.raises(ConfigError, match="channels must be 1 or 3"):
        DnCNN(DnCNNConfig(channels=2))


def test_conditioned_dncnn_takes_a_noise_level_map():
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig(depth=4, width=8, conditioned=True)).eval()
    assert model.conditioned and model.body[0].in_channels == 2  # the image plus one sigma channel
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        with pytest.raises(ConfigError, match="give sigma"):
            model(x)
        a = model(x, 25 / 255)
        assert torch.equal(a, model(x, torch.full((2,), 25 / 255)))
        assert torch.equal(a, model(x, torch.full((2, 1, 16, 16), 25 / 255)))
        assert not torch.allclose(a, model(x, 50 / 255))  # the level changes the output
        per_image = model(x, torch.tensor([25 / 255, 50 / 255]))
        assert torch.equal(per_image[0], a[0]) and not torch.equal(per_image[1], a[1])


def test_noise_level_estimate_and_nlmeans():
    clean = _scene(96, 96)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(1)) * (20 / 255)
    assert abs(float(estimate_noise_sigma(noisy)[0]) * 255 - 20) < 2.5
    nlm = NLMeans(NLMeansConfig()).eval()
    out = nlm(noisy[None], 20 / 255)[0]
    assert out.shape == clean.shape and _psnr(out, clean) > _psnr(noisy.clamp(0, 1), clean) + 4
    assert torch.equal(nlm(noisy[None])[0], nlm(noisy[None], estimate_noise_sigma(noisy))[0])


# ----------------------------------------------------------------------------- training


def test_a_tiny_denoiser_learns_in_a_few_seconds():
    torch.manual_seed(0)
    clean = torch.stack([_scene(32, 32, seed=s) for s in range(4)])  # (4, 1, 32, 32)
    model = DnCNN(DnCNNConfig(depth=5, width=16))
    objective = DenoiseObjective(model, DenoiseObjectiveConfig(sigma=(25.0, 25.0), lr=3e-3, warmup_steps=0,
                                                               schedule="constant"),
                                 DataInfo(channels=1, image_size=32, num_classes=0), total_steps=150)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(9)) * (25 / 255)
    with torch.no_grad():
        before = _psnr(model.eval()(noisy), clean)
    model.train()
    for step in range(150):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                          optimizers=objective.optimizers())
        logged = objective.train_step((clean, torch.full((4,), -1)), ctx)
        assert not ctx.skipped
    with torch.no_grad():
        after = _psnr(model.eval()(noisy), clean)
    noisy_psnr = _psnr(noisy, clean)
    assert abs(noisy_psnr - 20 * math.log10(255 / 25)) < 0.2
    assert after > noisy_psnr + 4 and after > before + 4, (noisy_psnr, before, after)
    assert set(logged) == {"loss", "psnr", "psnr_noisy"}
    grid = objective.sample_grid(model, 3, seed=0)
    assert grid.shape == (9, 1, 32, 32) and grid.min() >= -1 and grid.max() <= 1


def test_noise_is_drawn_per_patch_in_the_range():
    torch.manual_seed(0)
    clean = torch.full((512, 1, 8, 8), 0.5)
    noisy, noise, sigma = add_noise(clean, 10 / 255, 30 / 255)
    assert torch.equal(noisy, clean + noise)
    assert sigma.min() >= 10 / 255 and sigma.max() <= 30 / 255 and sigma.std() > 3 / 255
    measured = noise.flatten(1).std(dim=1)
    assert torch.corrcoef(torch.stack([measured, sigma]))[0, 1] > 0.9


def test_the_recipe_and_the_training_family(tmp_path):
    recipe = load_recipe(get_family("denoise").recipe_cls, REPO_ROOT / "configs" / "denoise-dncnn.yaml", [])
    recipe.validate()
    assert recipe.arch == "dncnn" and tuple(recipe.objective.sigma) == (0.0, 55.0)
    for bad, key in (("objective.sigma=[30, 10]", "sigma"), ("objective.sigma=[0, 300]", "sigma"),
                     ("objective.loss=l3", "loss"), ("model.depth=1", "depth"), ("model.channels=3", "channels")):
        with pytest.raises(ConfigError, match=key):
            load_recipe(get_family("denoise").recipe_cls, None, [bad]).validate()
    images = tmp_path / "clean"
    images.mkdir()
    for s in range(3):
        _save_png(images / f"{s}.png", _scene(40, 48, seed=s))
    from genvision.checkpoints import load_pretrained
    from genvision.workflows.train import train

    result = train("denoise", progress=False, overrides=[
        f"data.name=folder:{images}", "data.patch_size=16", f"train.out_dir={tmp_path / 'runs'}", "train.name=t",
        "steps=4", "batch_size=4", "model.depth=3", "model.width=4", "model.conditioned=true", "log_every=2",
        "sample_every=0", "tensorboard=false", "ckpt_every=100"])
    model = load_pretrained(result.run_dir, kind="denoise")
    assert isinstance(model, Denoiser) and model.conditioned and result.step == 4


# ----------------------------------------------------------------------------- tiling and modes


def test_tiled_equals_untiled_when_the_receptive_field_fits_the_overlap():
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig(depth=3, width=8)).eval()  # receptive-field radius 3 <= overlap // 4
    x = _scene(70, 93)
    whole = denoise_tensor(model, x)
    for tile, overlap in ((32, 16), (40, 16), (24, 12)):
        tiled = denoise_tensor(model, x, tile=tile, overlap=overlap, batch=3)
        assert (tiled - whole).abs().max() < 1e-5, (tile, overlap)
    deep = DnCNN(DnCNNConfig(depth=10, width=8)).eval()  # radius 10: blended, no visible seam
    err = denoise_tensor(deep, x, tile=48, overlap=24) - denoise_tensor(deep, x)
    assert err.abs().max() < 1 / 255


def test_modes_alpha_grey_rgb_and_16_bit(tmp_path):
    torch.manual_seed(0)
    grey_model = DnCNN(DnCNNConfig(depth=3, width=4)).eval()
    rgb_model = DnCNN(DnCNNConfig(channels=3, depth=3, width=4)).eval()
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for model in (grey_model, rgb_model):  # a grey model denoises each colour channel on its own
        img = Image.open(denoise_file(model, tmp_path / "rgba.png", tmp_path / "out.png", tile=16, overlap=8))
        assert img.mode == "RGBA" and img.size == (40, 30)
        assert np.array_equal(np.array(img)[..., 3], rgba[..., 3])  # alpha passed through untouched
    x = torch.rand(3, 20, 24)
    per_channel = torch.cat([denoise_tensor(grey_model, x[c:c + 1]) for c in range(3)])
    assert torch.allclose(denoise_tensor(grey_model, x), per_channel, atol=1e-6)
    assert denoise_tensor(rgb_model, x[:1]).shape == (1, 20, 24)  # grey through an RGB model: luma back
    g16 = np.linspace(0, 65535, 30 * 40).reshape(30, 40).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    img = Image.open(denoise_file(NLMeans(NLMeansConfig()), tmp_path / "g16.png", tmp_path / "g16_out.png",
                                  sigma=5))
    assert img.mode in ("I;16", "I") and img.size == (40, 30)
    assert denoise(grey_model, torch.randint(0, 256, (1, 12, 10), dtype=torch.uint8)).dtype == torch.uint8
    pil = denoise("nlmeans", Image.new("RGB", (16, 12), (10, 200, 30)), sigma=10)
    assert pil.size == (16, 12)  # a constant stays constant (to OpenCV's 8-bit CIELAB round trip)
    assert max(abs(a - b) for a, b in zip(pil.getpixel((5, 5)), (10, 200, 30))) <= 1


class _Probe(torch.nn.Module):
    """A conditioned 'denoiser' that records the sigma it is given and returns its input."""

    def __init__(self):
        super().__init__()
        self.config = DnCNNConfig(depth=3, width=4, conditioned=True)
        self.seen: list = []

    conditioned = True

    def forward(self, noisy, sigma=None):
        self.seen.append(sigma)
        return noisy


def test_conditioned_and_blind_models_in_the_pipeline():
    clean = _scene(64, 64)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(3)) * (15 / 255)
    probe = _Probe()
    denoise_tensor(probe, noisy, sigma=30, tile=32, overlap=16)
    assert probe.seen and all(s == pytest.approx(30 / 255) for s in probe.seen)  # 8-bit levels -> fraction
    probe.seen.clear()
    denoise_tensor(probe, noisy, tile=32, overlap=16)  # no sigma: one estimate for the whole image
    assert len(set(probe.seen)) == 1 and abs(probe.seen[0] * 255 - 15) < 2.5
    blind = DnCNN(DnCNNConfig(depth=3, width=4)).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with_sigma = denoise_tensor(blind, noisy, sigma=25)
    assert any("blind" in str(w.message) for w in caught)
    assert torch.equal(with_sigma, denoise_tensor(blind, noisy))
    with pytest.raises(ConfigError, match="sigma"):
        denoise_tensor(probe, noisy, sigma=0)


# ----------------------------------------------------------------------------- evaluation


@pytest.fixture
def two_images(tmp_path):
    folder = tmp_path / "eval"
    folder.mkdir()
    _save_png(folder / "a.png", _scene(96, 112, channels=3, seed=1))
    _save_png(folder / "b.png", _scene(88, 96, seed=2))
    return folder


def test_evaluation_is_seeded_and_the_noisy_baseline_matches_sigma(two_images):
    torch.manual_seed(0)
    model = DnCNN(DnCNNConfig(depth=3, width=4)).eval()
    data = f"folder:{two_images}"
    first = evaluate_denoiser(model_denoiser(model), data, sigma=25, seed=7)
    again = evaluate_denoiser(model_denoiser(model), data, sigma=25, seed=7)
    assert first["per_image"] == again["per_image"]
    other = evaluate_denoiser(model_denoiser(model), data, sigma=25, seed=8, compare_nlmeans=False)
    assert other["per_image"][0]["psnr"] != first["per_image"][0]["psnr"]
    m = first["metrics"]
    assert m["images"] == 2 and m["channels"] == 1
    assert abs(m["noisy_psnr"] - 20 * math.log10(255 / 25)) < 0.15  # 20.17 dB: unclipped noise of sigma 25
    assert m["nlmeans_psnr"] > m["noisy_psnr"] + 4
    _, _, items = noisy_images(data, sigma=50, seed=7)
    name, clean8, noisy = next(items)
    assert name == "a.png" and clean8.shape == (1, 96, 112) and clean8.dtype == torch.uint8
    assert abs(float((noisy * 255 - clean8.float()).std()) - 50) < 1.5


def test_evaluate_command_with_sigma(two_images, tmp_path, capsys):
    out = tmp_path / "nlm.json"
    code = main(["evaluate", "--model", "nlmeans", "--data", f"folder:{two_images}", "--sigma", "25",
                 "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    metrics = json.loads(out.read_text())["metrics"]
    assert metrics["sigma"] == 25 and metrics["psnr"] > metrics["noisy_psnr"] + 4
    assert "nlmeans_psnr" not in metrics  # no baseline beside the baseline itself
    for bad in ("0", "-3", "nan", "256"):
        code = main(["evaluate", "--model", "nlmeans", "--data", f"folder:{two_images}", "--sigma", bad,
                     "-o", str(tmp_path / "x.json")])
        assert code == 2 and "'--sigma'" in _one_error_line(capsys.readouterr().err)
    code = main(["evaluate", "--model", "bicubic", "--scale", "2", "--data", f"folder:{two_images}",
                 "--sigma", "25", "-o", str(tmp_path / "y.json")])
    assert code == 1 and "--sigma applies to denoising models" in _one_error_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- the command


def test_denoise_command(tmp_path, capsys):
    torch.manual_seed(0)
    model_dir = save_pretrained(DnCNN(DnCNNConfig(depth=3, width=4)).eval(), tmp_path / "model")
    clean = _scene(48, 64, channels=3)
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(5)) * (20 / 255)
    src = tmp_path / "in" / "noisy.png"
    src.parent.mkdir()
    _save_png(src, noisy)
    before = src.read_bytes()
    assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--model", str(model_dir), "--tile", "32",
                 "--overlap", "16"]) == 0
    assert Image.open(tmp_path / "a.png").size == (64, 48)
    assert main(["denoise", str(src), "-o", str(tmp_path / "b.png"), "--model", "nlmeans", "--sigma", "20"]) == 0
    out = torch.from_numpy(np.array(Image.open(tmp_path / "b.png"))).permute(2, 0, 1).float() / 255
    assert _psnr(out, clean) > _psnr(noisy.clamp(0, 1), clean) + 4
    capsys.readouterr()
    # a folder job: outputs under the new folder, with sidecars
    assert main(["denoise", str(src.parent), "-o", str(tmp_path / "out"), "--model", "nlmeans"]) == 0
    assert json.loads((tmp_path / "out" / "noisy.png.json").read_text())["sigma_used"] > 10  # estimated
    capsys.readouterr()
    # never the input, one line and a non-zero exit
    assert main(["denoise", str(src), "-o", str(src), "--model", "nlmeans", "--overwrite"]) != 0
    assert "input" in _one_error_line(capsys.readouterr().err)
    assert src.read_bytes() == before
    assert main(["denoise", str(src), "-o", str(tmp_path / "a.png"), "--model", "nlmeans"]) != 0  # exists
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)
    for bad in ("0", "-1", "nan", "inf", "300", "abc"):
        code = main(["denoise", str(src), "-o", str(tmp_path / "c.png"), "--model", "nlmeans", "--sigma", bad])
        assert code == 2 and "'--sigma'" in _one_error_line(capsys.readouterr().err), bad
    code = main(["denoise", str(src), "-o", str(tmp_path / "c.png"), "--model", "bicubic"])
    assert code == 1 and "denoise" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "c.png").exists()


def test_denoise_path_reports_a_bad_file_and_goes_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    _save_png(folder / "good.png", _scene(20, 24))
    (folder / "broken.png").write_bytes(b"not a png")
    report = denoise_path(NLMeans(NLMeansConfig()), folder, tmp_path / "out", sigma=10, progress=False)
    assert report.total == 2 and len(report.written) == 1 and len(report.failed) == 1
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "broken.png").exists()
