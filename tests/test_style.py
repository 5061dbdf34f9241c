"""Optimisation-based style transfer (genvision.apps.style): the loss terms against hand-computed values,
colour preservation and masks exactly, the optimisation lowering its loss (with a small random conv
trunk injected through the API, and with the real VGG-19 where `genvision weights get vgg19` has put
it), and ``genvision stylize``'s outputs and one-line refusals. Images are 32-64 px."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from genvision import pretrained
from genvision.apps.style import pipeline
from genvision.apps.style.colour import clamp_luma_to_gamut, rgb_to_ycbcr, ycbcr_to_rgb
from genvision.apps.style.losses import (
    StyleObjective,
    content_loss,
    gram_loss,
    gram_matrix,
    mean_grams,
    total_variation,
)
from genvision.apps.style.masks import feather
from genvision.apps.style.optimize import area_size, fit_size, scale_sizes
from genvision.apps.style.settings import (
    StyleSettings,
    parse_style_weights,
    settings_from,
)
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.nn.features import MultiLayerFeatures

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1")


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: a second OpenMP thread only adds barrier waits (10 s instead of 0.1 s per
    transfer when the other core is busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_extractor(seed: int = 0) -> MultiLayerFeatures:
    """A random 6-conv trunk whose ReLUs carry the VGG layer names the losses ask for."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    channels = 3
    for i, width in enumerate((8, 8, 12, 12, 12, 16)):
        layers += [nn.Conv2d(channels, width, 3, padding=1, stride=2 if i in (1, 3) else 1), nn.ReLU()]
        channels = width
    return MultiLayerFeatures(nn.Sequential(*layers), {name: 2 * i + 1 for i, name in enumerate(LAYERS)}, LAYERS)


def smooth_image(h: int, w: int, seed: int) -> torch.Tensor:
    """(3, h, w) in [0, 1]: blurred noise, so it has structure at several scales like a photo."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, h // 4, w // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * x + 0.2 * torch.rand(1, 3, h, w, generator=g))[0].clamp(0, 1)


# ----------------------------------------------------------------------------- the loss terms


def test_gram_matrix_by_hand_in_both_memory_layouts():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    # F F^T = [[1+4+9+16, 0+2+0+4], [6, 0+1+0+1]] = [[30, 6], [6, 2]], divided by C H W = 2 * 2 * 2
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8
    assert torch.allclose(gram_matrix(f), expected)
    assert torch.allclose(gram_matrix(f.contiguous(memory_format=torch.channels_last)), expected)
    # a weight per position: only the top-left one counts -> F[:, 0] = (1, 0), mean over 1 position, / C
    weight = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert torch.allclose(gram_matrix(f, weight), torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]) / 2)
    assert torch.allclose(gram_matrix(f, torch.ones(1, 1, 2, 2)), expected)  # all-ones = unmasked


def test_content_and_gram_losses_by_hand():
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [3.0, 6.0]]]])
    assert content_loss(features, target).item() == pytest.approx((0 + 4 + 0 + 4) / 4)
    assert gram_loss(torch.tensor([[[1.0, 2.0], [2.0, 5.0]]]), torch.tensor([[0.0, 2.0], [2.0, 3.0]])).item() == \
        pytest.approx((1 + 0 + 0 + 4) / 4)


def test_total_variation_by_hand():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 3.0]]]])  # (1, 1, 2, 2)
    # across: |1 - 0|, |3 - 3| -> mean 0.5; down: |3 - 0|, |3 - 1| -> mean 2.5
    assert total_variation(image).item() == pytest.approx(3.0)
    assert total_variation(torch.full((1, 3, 5, 4), 0.3)).item() == 0.0


def test_the_objective_weighs_each_term_and_mixes_styles_by_weight():
    identity = lambda x: {"relu1_1": x, "relu4_2": x}  # features = the pixels themselves
    content = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    styles = [torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(s)) for s in (2, 3)]
    targets = mean_grams(identity, styles, (0.75, 0.25), ["relu1_1"])
    mixed = 0.75 * gram_matrix(styles[0])[0] + 0.25 * gram_matrix(styles[1])[0]
    assert torch.allclose(targets["relu1_1"], mixed)
    objective = StyleObjective(identity, content_targets={"relu4_2": content}, style_targets=targets,
                               style_layer_weights=[2.0], content_weight=3.0, style_weight=5.0, tv_weight=7.0,
                               to_image=lambda p: p, to_rgb=lambda p: p)
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    parts = objective(x)
    assert parts.content.item() == pytest.approx(3.0 * (x - content).square().mean().item(), rel=1e-6)
    assert parts.style.item() == pytest.approx(5.0 * 2.0 * (gram_matrix(x)[0] - mixed).square().mean().item(),
                                               rel=1e-6)
    assert parts.tv.item() == pytest.approx(7.0 * total_variation(x).item(), rel=1e-6)
    assert parts.total.item() == pytest.approx(parts.content.item() + parts.style.item() + parts.tv.item(), rel=1e-6)


# ----------------------------------------------------------------------------- colour and masks


def test_ycbcr_round_trip_and_the_gamut_clamp_keeps_chroma():
    rgb = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-6)
    white = rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([1.0, 0.5, 0.5]), atol=1e-6)
    chroma = rgb_to_ycbcr(rgb)[:, 1:]
    wild_y = torch.linspace(-1, 2, 64).view(1, 1, 8, 8)  # luminance far outside what the colours allow
    out = ycbcr_to_rgb(torch.cat([clamp_luma_to_gamut(wild_y, chroma), chroma], 1))
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6  # inside the RGB cube ...
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:], chroma, atol=1e-6)  # ... without touching the chroma


def test_colour_preservation_keeps_the_content_chroma():
    content, style = smooth_image(40, 48, 1), smooth_image(32, 32, 2)
    style[0] = 1.0  # a red painting: without preservation the result would turn red
    out = pipeline.stylize(content, style, extractor=tiny_extractor(), steps=15, preserve_color=True)
    ycc_out, ycc_in = rgb_to_ycbcr(out[None]), rgb_to_ycbcr(content[None])
    assert torch.allclose(ycc_out[:, 1:], ycc_in[:, 1:], atol=2e-6)  # Cb, Cr: the content's
    assert (ycc_out[:, 0] - ycc_in[:, 0]).abs().mean() > 1e-3  # while the luminance was restyled
    plain = pipeline.stylize(content, style, extractor=tiny_extractor(), steps=15)
    assert (rgb_to_ycbcr(plain[None])[:, 1:] - ycc_in[:, 1:]).abs().max() > 1e-2  # the control does change colour


def test_feathering_stays_inside_the_white_region():
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    soft = feather(mask, 3)
    assert torch.equal(soft[mask == 0], torch.zeros_like(soft[mask == 0]))
    assert soft[0, 0, 16, 16] == 1  # deep inside: fully stylised
    assert 0 < soft[0, 0, 8, 16] < 1  # the edge ramps
    full = torch.ones(1, 1, 16, 16)
    assert torch.equal(feather(full, 3), full)  # the image border is not an edge


def test_the_mask_keeps_outside_pixels_exactly():
    content, style = smooth_image(48, 40, 3), smooth_image(32, 32, 4)
    mask = torch.zeros(48, 40)
    mask[8:40, 10:30] = 1.0
    for preserve in (False, True):
        out = pipeline.stylize(content, style, mask=mask, extractor=tiny_extractor(), steps=10,
                               preserve_color=preserve)
        assert torch.equal(out[:, mask == 0], content[:, mask == 0])
        assert (out[:, 20:28, 18:22] - content[:, 20:28, 18:22]).abs().max() > 1e-3  # inside: stylised


def test_a_mask_of_another_size_or_all_black_is_refused():
    content, style = smooth_image(32, 32, 0), smooth_image(32, 32, 1)
    with pytest.raises(ConfigError, match="the mask must have the content's size"):
        pipeline.stylize(content, style, mask=torch.ones(32, 30), extractor=tiny_extractor(), steps=1)
    with pytest.raises(ConfigError, match="black everywhere"):
        pipeline.stylize(content, style, mask=torch.zeros(32, 32), extractor=tiny_extractor(), steps=1)


# ----------------------------------------------------------------------------- the optimisation


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_few_steps_lower_the_loss_with_an_injected_trunk(optimizer):
    losses = []
    result = pipeline.transfer(smooth_image(48, 48, 5), [smooth_image(32, 40, 6)], extractor=tiny_extractor(),
                               steps=12, optimizer=optimizer, callback=lambda info: losses.append(info.losses))
    assert len(losses) == 12
    assert result.scales[-1].losses["total"] < 0.5 * losses[0]["total"]
    assert result.image.shape == (3, 48, 48) and 0 <= result.image.min() and result.image.max() <= 1


def test_style_losses_measure_what_transfer_optimises_in_either_memory_layout():
    content, style = smooth_image(40, 32, 14), smooth_image(32, 32, 15)
    first = []
    pipeline.transfer(content, style, extractor=tiny_extractor(), steps=1, tv_weight=2.0,
                      callback=lambda info: first.append(info.losses))
    for channels_last in (True, False):
        measured = pipeline.style_losses(content, content, style, extractor=tiny_extractor(), tv_weight=2.0,
                                         channels_last=channels_last)
        assert measured["content"] == 0.0
        for term in ("style", "tv", "total"):
            assert measured[term] == pytest.approx(first[0][term], rel=1e-5)


def test_coarse_to_fine_sizes_steps_and_noise_seeding():
    assert scale_sizes(512, 384, 3, 64) == [(128, 96), (256, 192), (512, 384)]
    assert scale_sizes(100, 80, 3, 64) == [(100, 80)]  # coarser levels would be too small
    assert fit_size(300, 600, 512) == (256, 512) and fit_size(30, 60, 512) == (30, 60)
    assert area_size(100, 50, 64 * 64) == (91, 46)
    kwargs = {"extractor": tiny_extractor(), "steps": (4, 3), "scales": 2, "min_side": 16, "init": "noise"}
    first = pipeline.transfer(smooth_image(64, 48, 7), smooth_image(32, 32, 8), seed=5, **kwargs)
    assert [(r.size, r.steps) for r in first.scales] == [((32, 24), 4), ((64, 48), 3)]
    again = pipeline.stylize(smooth_image(64, 48, 7), smooth_image(32, 32, 8), seed=5, **kwargs)
    other = pipeline.stylize(smooth_image(64, 48, 7), smooth_image(32, 32, 8), seed=6, **kwargs)
    assert torch.equal(first.image, again) and not torch.equal(first.image, other)


def test_settings_and_style_weights_are_checked():
    assert parse_style_weights("0.7,0.3", 2) == pytest.approx((0.7, 0.3))
    assert parse_style_weights("2, 1", 2) == pytest.approx((2 / 3, 1 / 3))
    assert parse_style_weights(None, 4) == (0.25,) * 4
    for bad in ("0.7", "a,b", "-1,2", "0,0", "nan,1"):
        with pytest.raises(ConfigError, match="--style-weights"):
            parse_style_weights(bad, 2)
    assert settings_from(steps=[30, 20]).steps == (30, 20)
    for override in ({"steps": (1, 2, 3, 4)}, {"optimizer": "sgd"}, {"style_layers": ("relu9_9",)},
                     {"tv_weight": float("nan")}, {"size": 8}, {"colour": True}):
        with pytest.raises(ConfigError):
            settings_from(**override)
    assert StyleSettings().learning_rate == 1.0 and settings_from(optimizer="adam").learning_rate == 0.02


def test_without_weights_the_message_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    with pytest.raises(ConfigError, match=re.escape("run `genvision weights get vgg19`")):
        pipeline.load_extractor(StyleSettings())


def test_real_vgg19_a_few_steps_lower_the_loss():
    if pretrained.cached("vgg19") is None:
        pytest.skip("the real VGG-19 weights are not in genvision's cache: run `genvision weights get vgg19`")
    extractor, info = pipeline.load_extractor(StyleSettings())
    assert info["variant"] == "caffe" and info["source"] == "package"
    assert list(extractor.trunk)[-1].__class__ is nn.ReLU and len(extractor.trunk) == 30  # cut after relu5_1
    losses = []
    result = pipeline.transfer(smooth_image(48, 48, 9), [smooth_image(48, 48, 10)], extractor=extractor, steps=6,
                               callback=lambda info: losses.append(info.losses["total"]))
    assert result.scales[-1].losses["total"] < 0.7 * losses[0]


# ----------------------------------------------------------------------------- the command


def save(path: Path, image: torch.Tensor | np.ndarray) -> Path:
    array = image if isinstance(image, np.ndarray) else (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A content and two style PNGs; the pretrained VGG replaced by the tiny trunk (its calls counted)."""
    calls = []

    def fake_extractor(settings):
        calls.append(settings.backbone)
        return tiny_extractor(), {"name": "tiny test trunk"}

    monkeypatch.setattr(pipeline, "load_extractor", fake_extractor)
    box = type("Files", (), {})()
    box.root, box.calls = tmp_path, calls
    box.content = save(tmp_path / "content.png", smooth_image(40, 56, 11))
    box.style = save(tmp_path / "style.png", smooth_image(32, 32, 12))
    box.style2 = save(tmp_path / "style2.png", smooth_image(36, 28, 13))
    return box


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith("error:")]  # \r: progress bars
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_writes_the_image_and_a_sidecar_with_the_settings(files, capsys):
    out = files.root / "out" / "pastiche.png"
    mask = save(files.root / "mask.png", np.full((40, 56), 255, np.uint8))
    code, stdout, err = run_cli(capsys, "stylize", files.content, "--style", files.style, "--style", files.style2,
                                "--style-weights", "0.7,0.3", "-o", out, "--steps", "3", "--mask", mask,
                                "--preserve-color", "--seed", "3")
    assert code == 0, err
    assert stdout.startswith(f"wrote {out} (56x40")
    assert Image.open(out).size == (56, 40)
    record = json.loads((out.parent / "pastiche.png.json").read_text())
    assert record["styles"] == [str(files.style), str(files.style2)] and record["style_weights"] == [0.7, 0.3]
    assert record["settings"]["preserve_color"] is True and record["settings"]["seed"] == 3
    assert record["settings"]["optimizer"] == "lbfgs" and record["method"] == "optimize"
    assert record["scales"][-1]["steps"] == 3 and "total" in record["scales"][-1]["losses"]
    assert "stylize 1/1 56x40" in err  # the progress bar, with the losses
    assert re.search(r"style=[0-9.e+-]+", err)
    code, _, err = run_cli(capsys, "stylize", files.content, "--style", files.style, "-o", out, "--steps", "1")
    assert code == 1 and "already exists" in one_line_error(err)


@pytest.mark.parametrize("argv, message", [
    (["--style-weights", "0.7"], "1 weight(s) for 2 style image(s)"),
    (["--style-weights", "0.7,-0.3"], "weights must be finite"),
    (["--style-weights", "x,y"], "expected numbers"),
    (["--mask", "MASK"], "the mask must have the content's size"),
    (["--steps", "1,2,3,4"], "steps"),
])
def test_cli_refusals_are_one_line_and_write_nothing(files, capsys, argv, message):
    save(files.root / "mask.png", np.zeros((40, 40), np.uint8))  # the content is 56x40
    argv = [str(files.root / "mask.png") if a == "MASK" else a for a in argv]
    out = files.root / "out.png"
    code, _, err = run_cli(capsys, "stylize", files.content, "--style", files.style, "--style", files.style2,
                           "-o", out, *argv)
    assert code == 1 and message in one_line_error(err)
    assert not out.exists() and not (files.root / "out.png.json").exists() and files.calls == []


@pytest.mark.parametrize("which", ["content", "style"])
def test_cli_missing_files_are_one_line(files, capsys, which):
    content = files.root / "nope.png" if which == "content" else files.content
    style = files.root / "nope.png" if which == "style" else files.style
    code, _, err = run_cli(capsys, "stylize", content, "--style", style, "-o", files.root / "out.png")
    assert code == 1 and "nope.png: no such file" in one_line_error(err)
    assert sorted(p.name for p in files.root.iterdir()) == ["content.png", "style.png", "style2.png"]


def test_cli_never_writes_over_an_input(files, capsys):
    before = files.style.read_bytes()
    code, _, err = run_cli(capsys, "stylize", files.content, "--style", files.style, "-o", files.style, "--overwrite")
    assert code == 1 and "it is the input" in one_line_error(err)
    assert files.style.read_bytes() == before and files.calls == []
