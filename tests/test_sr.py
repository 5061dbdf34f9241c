"""Super-resolution: MATLAB bicubic imresize, the evaluation protocol, models, training, CLI errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from genvision.checkpoints import load_pretrained, save_pretrained
from genvision.cli import main
from genvision.models.sr import SRDiscriminator
from genvision.nn.resize import contributions, cubic, imresize, make_lr, modcrop, weight_matrix
from genvision.registry import create_model, list_models

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# --------------------------------------------------------------------------------------------
# imresize: known values
# --------------------------------------------------------------------------------------------


def test_cubic_kernel_values():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5], dtype=torch.float64)
    # a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1]; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2]
    assert cubic(x).tolist() == [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625]


def test_contributions_match_matlab_tables():
    # x2 down, antialiased: the kernel is cubic(t/2)/2 over 8 taps: -3, -9, 29, 111 (/256) mirrored
    w, idx = contributions(8, 4, 0.5)
    assert w.shape == (4, 8)
    assert w[1].tolist() == [v / 256 for v in (-3, -9, 29, 111, 111, 29, -9, -3)]
    # first output pixel samples u = 1.5 (1-based): taps -2..5 mirror as [2,1,0,0,1,2,3,4] (0-based)
    assert idx[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]
    assert idx[3].tolist() == [3, 4, 5, 6, 7, 7, 6, 5]  # mirrored at the far end too
    # x2 up: cubic at distances 1.25, 0.25, 0.75, 1.75
    w, idx = contributions(4, 8, 2.0)
    assert w[0].tolist() == [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
    assert idx[0].tolist() == [1, 0, 0, 1]
    assert torch.allclose(weight_matrix(8, 4, 0.5).sum(1), torch.ones(4, dtype=torch.float64))


def test_hand_computed_downscale_of_a_ramp():
    ramp = torch.arange(0, 80, 10, dtype=torch.float64).view(1, 1, 8)  # [0, 10, ..., 70]
    out = imresize(ramp, size=(1, 4))
    # output 1 mixes [20, 10, 0, 0, 10, 20, 30, 40] with (-3, -9, 29, 111, 111, 29, -9, -3) / 256
    assert out[0, 0, 0].item() == pytest.approx(1150 / 256, abs=1e-12)
    # interior outputs of a linear ramp are exact: cubic convolution reproduces linear functions
    assert out[0, 0, 1].item() == pytest.approx(25.0, abs=0.6)  # one mirrored tap with weight -3/256 * 2
    assert out.shape == (1, 1, 4)


def _reference_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB's imresize written out pixel by pixel from its formula (an independent check)."""
    def resize_axis(a: np.ndarray, axis: int) -> np.ndarray:
        n = a.shape[axis]
        m = math.ceil(n * scale)
        width = 4.0 / scale if scale < 1 else 4.0
        out = np.zeros(a.shape[:axis] + (m,) + a.shape[axis + 1:])
        for k in range(m):
            u = (k + 1) / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - width / 2)
            taps, weights = [], []
            for j in range(left, left + math.ceil(width) + 2):
                t = u - j
                wgt = scale * float(cubic(torch.tensor(scale * t, dtype=torch.float64))) if scale < 1 \
                    else float(cubic(torch.tensor(t, dtype=torch.float64)))
                src = j
                while src < 1 or src > n:  # symmetric padding that repeats the edge pixel
                    src = 1 - src if src < 1 else 2 * n + 1 - src
                taps.append(src - 1)
                weights.append(wgt)
            weights = np.array(weights) / np.sum(weights)
            sl = [slice(None)] * a.ndim
            acc = 0.0
            for src, wgt in zip(taps, weights):
                sl[axis] = src
                acc = acc + wgt * a[tuple(sl)]
            sl[axis] = k
            out[tuple(sl)] = acc
        return out
    return resize_axis(resize_axis(img.astype(np.float64), 0), 1)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
def test_imresize_matches_the_pixel_by_pixel_formula(scale):
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 255, (13, 11))
    ours = imresize(torch.from_numpy(img), scale).numpy()
    ref = _reference_imresize(img, scale)
    assert ours.shape == ref.shape == (math.ceil(13 * scale), math.ceil(11 * scale))
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_gather_path_equals_dense_path(monkeypatch):
    import genvision.nn.resize as degrade

    x = torch.rand(2, 3, 30, 23, dtype=torch.float64)
    dense = imresize(x, 1 / 3)
    monkeypatch.setattr(degrade, "_DENSE_LIMIT", 0)
    assert torch.allclose(imresize(x, 1 / 3), dense, atol=1e-12)
    assert torch.allclose(imresize(x, 4), imresize(x, 4), atol=1e-12)


# --------------------------------------------------------------------------------------------
# imresize: properties
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3, 4])
def test_constant_images_stay_constant(scale):
    const = torch.full((3, 12, 18), 0.3, dtype=torch.float64)
    assert torch.allclose(imresize(const, scale), torch.full_like(imresize(const, scale), 0.3), atol=1e-12)
    const8 = torch.full((1, 12, 18), 137, dtype=torch.uint8)
    assert (imresize(const8, scale) == 137).all()


def test_uint8_is_rounded_and_saturated_and_float_is_not():
    x = torch.zeros(1, 8, 8, dtype=torch.uint8)
    x[:, :, 4:] = 255  # a hard edge: cubic overshoots below 0 and above 255
    up = imresize(x.double(), 2)
    assert up.min() < 0 and up.max() > 255
    up8 = imresize(x, 2)
    assert up8.dtype == torch.uint8 and up8.min() == 0 and up8.max() == 255


def test_round_trip_on_smooth_images_and_linear_reproduction():
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(60.0), indexing="ij")
    smooth = (torch.sin(xx / 9) * torch.cos(yy / 11) * 0.4 + 0.5).double()[None]
    for s in (2, 3, 4):
        back = imresize(imresize(smooth, 1 / s), s)
        inner = (slice(None), slice(8, -8), slice(8, -8))
        err = (back - smooth)[inner].abs().max().item()
        assert err < 0.03 * s, (s, err)
    # upscaling reproduces a linear ramp exactly away from the borders
    ramp = (xx * 0.01 + yy * 0.02).double()[None]
    up = imresize(ramp, 2)[0]
    j = torch.arange(up.shape[-1], dtype=torch.float64)
    i = torch.arange(up.shape[-2], dtype=torch.float64)
    expected = ((j + 0.5) / 2 - 0.5)[None, :] * 0.01 + ((i + 0.5) / 2 - 0.5)[:, None] * 0.02
    assert torch.allclose(up[4:-4, 4:-4], expected[4:-4, 4:-4], atol=1e-12)
    assert torch.equal(imresize(smooth, 1), smooth)


def test_modcrop_and_make_lr():
    hr = torch.randint(0, 256, (3, 50, 47), dtype=torch.uint8)
    assert modcrop(hr, 4).shape == (3, 48, 44)
    hr8, lr8 = make_lr(hr, 4)
    assert hr8.shape == (3, 48, 44) and lr8.shape == (3, 12, 11) and lr8.dtype == torch.uint8
    assert torch.equal(lr8, imresize(modcrop(hr, 4), 1 / 4))
    hrf, lrf = make_lr(hr.float() / 255, 4)  # float input: same 8-bit levels, as floats
    assert torch.equal((lrf * 255).round().to(torch.uint8), lr8) and torch.equal((hrf * 255).round(), hr8.float())
    with pytest.raises(ValueError):
        make_lr(hr, 0)


# --------------------------------------------------------------------------------------------
# The protocol on the real benchmark images
# --------------------------------------------------------------------------------------------


@pytest.fixture
def sr_benchmarks():
    root = SHARED_DATA / "sr-benchmarks"
    if not (root / "Set5").is_dir():
        pytest.skip("shared SR benchmark images not available (../shared/data/sr-benchmarks)")
    return SHARED_DATA


def test_evaluator_reproduces_published_bicubic_set5_x4(sr_benchmarks, tmp_path):
    from genvision.apps.sr.evaluate import bicubic_upscaler, evaluate_upscaler

    result = evaluate_upscaler(bicubic_upscaler(4), "sr:Set5", scale=4, data_root=str(sr_benchmarks),
                               compare_bicubic=False, crops=tmp_path / "crops.png")
    assert result["metrics"]["images"] == 5
    assert result["metrics"]["psnr"] == pytest.approx(28.42, abs=0.05)
    assert result["metrics"]["ssim"] == pytest.approx(0.8104, abs=0.002)
    assert (tmp_path / "crops.png").is_file()


def test_evaluate_cli_bicubic_and_folder(sr_benchmarks, tmp_path, capsys):
    out = tmp_path / "eval.json"
    folder = tmp_path / "hr"
    folder.mkdir()
    for name in ("bird.png", "butterfly.png"):
        (folder / name).write_bytes((sr_benchmarks / "sr-benchmarks" / "Set5" / name).read_bytes())
    assert main(["evaluate", "--model", "bicubic", "--scale", "3", "--data", f"folder:{folder}", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "sr" and data["metrics"]["images"] == 2
    assert data["metrics"]["psnr"] == pytest.approx(data["metrics"]["bicubic_psnr"], abs=0.05)
    assert "butterfly.png" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

TINY = {"espcn": {"width": 8, "mid_width": 8}, "edsr": {"width": 8, "depth": 2}, "bicubic": {},
        "srgan": {"arch": "edsr", "generator": {"width": 8, "depth": 1}, "d_width": 8, "d_blocks": 2}}


def test_registered_sr_models_shapes_and_save_load(tmp_path):
    names = {e.name for e in list_models("sr")}
    assert {"bicubic", "espcn", "edsr", "srgan"} <= names
    x = torch.rand(2, 3, 10, 9)
    for name in sorted(names):
        for scale in (2, 3, 4):
            model = create_model(name, {**TINY.get(name, {}), "scale": scale}).eval()
            with torch.no_grad():
                y = model(x)
            assert y.shape == (2, 3, 10 * scale, 9 * scale), (name, scale)
        path = save_pretrained(model, tmp_path / name)
        loaded = load_pretrained(path, kind="sr")
        assert loaded.config == model.config
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))


def test_bicubic_model_is_matlab_bicubic():
    x = torch.rand(1, 3, 12, 12, dtype=torch.float64)
    model = create_model("bicubic", {"scale": 3})
    assert sum(p.numel() for p in model.parameters()) == 0
    assert torch.equal(model(x), imresize(x, 3))


@pytest.mark.parametrize("arch", ["espcn", "edsr"])
def test_models_overfit_a_tiny_patch_set(arch):
    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    hr = torch.stack([torch.sin(xx / 5 + k) * torch.cos(yy / 7) * 0.4 + 0.5 for k in range(3)])  # (3, 48, 48)
    hr = torch.stack([hr, hr.flip(-1)])  # (2, 3, 48, 48)
    hr8, lr8 = make_lr((hr * 255).round().to(torch.uint8), 2)
    lr, hr = lr8.float() / 255, hr8.float() / 255
    # channels_last as the trainer does (oneDNN's NCHW backward is pathologically slow for tiny convs)
    model = create_model(arch, {**TINY[arch], "scale": 2}).to(memory_format=torch.channels_last)
    lr = lr.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = (model(lr) - hr).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], (arch, losses[0], losses[-1])
    assert losses[-1] < 0.05


# --------------------------------------------------------------------------------------------
# Training: the sr and srgan families, save / load / resume
# --------------------------------------------------------------------------------------------


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(40, 52), (61, 45), (48, 48)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([np.sin(xx / (4 + i) + c) * np.cos(yy / 6) for c in range(3)], -1) * 90 + 128
        img = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(folder / "too_small.png")  # skipped: < patch
    return folder


def _train(family, folder, out_dir, name, extra=()):
    from genvision.workflows.train import train

    return train(family, overrides=[f"data.name=folder:{folder}", f"train.out_dir={out_dir}", f"train.name={name}",
                                    "data.patch_size=24", "data.repeat=4", "batch_size=4", "tensorboard=false",
                                    "log_every=2", *extra], progress=False)


def test_sr_family_trains_saves_and_resumes_exactly(hr_folder, tmp_path):
    from safetensors.torch import load_file

    common = ["arch=edsr", "scale=2", "model.width=8", "model.depth=1", "sample_every=4", "ckpt_every=3"]
    with pytest.warns(UserWarning, match="too_small"):
        straight = _train("sr", hr_folder, tmp_path, "straight", [*common, "steps=6"])
    with pytest.warns(UserWarning):
        _train("sr", hr_folder, tmp_path, "split", [*common, "steps=3"])
    from genvision.workflows.train import train

    with pytest.warns(UserWarning):
        resumed = train("sr", resume=tmp_path / "split", overrides=["steps=6"], progress=False)
    a = load_file(str(straight.checkpoint / "model.safetensors"))
    b = load_file(str(resumed.checkpoint / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = load_pretrained(straight.run_dir, kind="sr")
    assert model.registry_name == "edsr" and model.config.scale == 2 and model.config.width == 8
    assert (straight.run_dir / "samples").is_dir()
    rows = [json.loads(line) for line in (straight.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in rows if "loss" in r)


def test_srgan_refines_an_sr_model(hr_folder, tmp_path):
    with pytest.warns(UserWarning):
        base = _train("sr", hr_folder, tmp_path, "base", ["arch=espcn", "scale=3", "data.patch_size=24",
                                                          "model.width=8", "model.mid_width=8", "steps=2",
                                                          "sample_every=0"])
    with pytest.warns(UserWarning):
        refined = _train("srgan", hr_folder, tmp_path, "gan", [f"init={base.run_dir}", "d_width=8", "d_blocks=2",
                                                               "steps=2", "sample_every=0"])
    model = load_pretrained(refined.run_dir, kind="sr")
    assert model.registry_name == "srgan" and model.config.scale == 3 and model.config.arch == "espcn"
    recipe = json.loads((refined.run_dir / "config.json").read_text())
    assert recipe["objective"]["perceptual"] == "auto" and recipe["objective"]["vgg_weights"] is None
    rows = [json.loads(line) for line in (refined.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_d", "loss_g", "loss_feature", "loss_adv"} <= set(rows[-1])
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 24, 24)


def test_train_cli_flags_spell_the_recipe_keys(hr_folder, tmp_path, capsys):
    common = ["--data", f"folder:{hr_folder}", f"train.out_dir={tmp_path}", "data.patch_size=24", "data.repeat=4",
              "batch_size=4", "tensorboard=false", "steps=1", "sample_every=0"]
    skipped = "warning: folder:{}: skipped 1 image(s): too_small.png (smaller than the 24px patch)\n".format(hr_folder)
    assert main(["train", "sr", "--arch", "espcn", "--scale", "3", "train.name=base", "model.width=8",
                 "model.mid_width=8", *common]) == 0
    assert capsys.readouterr().err.endswith(skipped)  # the loader's warning, as one line after the run
    assert main(["train", "srgan", "--init", str(tmp_path / "base"), "train.name=gan", "d_width=8",
                 "d_blocks=2", *common]) == 0
    assert capsys.readouterr().err.endswith(skipped)
    model = load_pretrained(tmp_path / "gan", kind="sr")
    assert model.registry_name == "srgan" and model.config.arch == "espcn" and model.config.scale == 3


def test_srgan_vgg_needs_a_weights_file():
    from genvision.apps.sr.adversarial import SRGANObjectiveConfig
    from genvision.errors import ConfigError

    with pytest.raises(ConfigError, match="vgg_weights"):
        SRGANObjectiveConfig(perceptual="vgg").validate()
    assert SRGANObjectiveConfig().feature_loss == "dfeat"


# --------------------------------------------------------------------------------------------
# CLI errors: one line, non-zero exit
# --------------------------------------------------------------------------------------------


def test_cli_errors(tmp_path, capsys):
    model_dir = save_pretrained(create_model("espcn", {**TINY["espcn"], "scale": 3}), tmp_path / "espcn")
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    cases = [
        (["upscale", str(image), "-o", str(tmp_path / "o.png"), "--model", "bicubic", "--scale", "5"], "--scale"),
        (["upscale", str(image), "-o", str(tmp_path / "o.png"), "--model", "bicubic"], "needs --scale"),
        (["upscale", str(bad), "-o", str(tmp_path / "o.png"), "--model", "bicubic", "--scale", "2"], "bad.png"),
        (["upscale", str(image), "-o", str(tmp_path / "o.png"), "--model", str(model_dir), "--scale", "2"],
         "upscales x3"),
        (["evaluate", "--model", str(model_dir), "--scale", "4", "--data", f"folder:{tmp_path}"], "upscales x3"),
        (["train", "sr", "--data", f"folder:{tmp_path}", "scale=5"], "scale"),
        (["train", "sr", "--data", f"folder:{tmp_path}", "--scale", "5"], "scale"),
        (["train", "gan", "--data", "mnist-mini", "--scale", "3"], "unknown config key 'scale'"),
    ]
    for argv, needle in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, (argv, err)


def test_srgan_discriminator_tells_sharp_from_blurred_within_a_few_steps():
    """At the zoo's depth (4 stages, 8 convs, no normalisation) D must see a difference between images
    from its first step: with PyTorch's default conv init its pooled features were equal to ~1e-4 and a
    408-step SRGAN refinement never moved loss_d off 2 ln 2."""
    torch.manual_seed(0)
    d = SRDiscriminator(3, 16, 4)
    sharp = torch.rand(8, 3, 48, 48)
    blurred = F.avg_pool2d(sharp, 5, stride=1, padding=2)
    pooled = d.features(sharp)[-1].mean(dim=(2, 3))  # (8, C): one vector per image
    assert pooled.std(0).mean() > 0.01
    opt = torch.optim.Adam(d.parameters(), 1e-4)
    for _ in range(20):
        loss = F.softplus(-d(sharp)).mean() + F.softplus(d(blurred)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * 2 * math.log(2)  # 2 ln 2 is D at chance
