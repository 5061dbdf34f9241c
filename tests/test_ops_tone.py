"""Tone ops (genvision.ops.tone / .colour) against Pillow, OpenCV and torchvision on a real photo,
across dtypes and between the array and tensor paths, plus the parsers' one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from genvision.errors import ConfigError, InputShapeError
from genvision.ops.tone import TONE_OPS, ToneOp

BENCHMARKS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sr-benchmarks"

# Parameters that change the image visibly, one set per op (used by the cross-path tests).
PARAMS = {
    "brightness": {"factor": 1.3}, "contrast": {"factor": 1.4}, "saturation": {"factor": 1.5},
    "hue": {"degrees": 25}, "gamma": {"gamma": 0.7}, "levels": {"black": 0.1, "white": 0.9, "gamma": 1.2},
    "autocontrast": {"cutoff": 1.0}, "equalize": {}, "clahe": {"clip": 2.0, "grid": 4},
    "white_balance": {"strength": 1.0}, "sharpen": {"amount": 1.0, "radius": 1.5, "threshold": 0.01},
    "blur": {"sigma": 1.5}, "auto": {},
}
DIFFERENTIABLE = ("brightness", "contrast", "saturation", "hue", "gamma", "levels", "sharpen", "blur")


def _photo(name: str, size: int = 72) -> Image.Image:
    path = BENCHMARKS / name
    if not path.is_file():
        pytest.skip("shared SR benchmark images not available (../shared/data/sr-benchmarks)")
    return Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    """A real 72x72 RGB photo (Set5 baby)."""
    return _photo("Set5/baby.png")


@pytest.fixture(scope="module")
def other_photo() -> Image.Image:
    return _photo("Set5/butterfly.png")


def _levels_apart(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())


def _as_tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(values)).permute(2, 0, 1).float()  # (H, W, C) -> (C, H, W)


def test_registry_is_complete_and_documented():
    assert set(TONE_OPS) == set(PARAMS)
    for name, op in TONE_OPS.items():
        assert isinstance(op, ToneOp) and op.name == name
        assert op.doc.startswith(name) and "\n" not in op.doc


# --- parity with Pillow, OpenCV and torchvision ---------------------------------------------------

@pytest.mark.parametrize("factor", [0.0, 0.5, 1.3, 2.0])
@pytest.mark.parametrize("name, enhancer", [("brightness", ImageEnhance.Brightness),
                                            ("contrast", ImageEnhance.Contrast),
                                            ("saturation", ImageEnhance.Color)])
def test_enhance_matches_pillow(photo, name, enhancer, factor):
    # Pillow truncates where we round, and rounds the contrast mean to a level: one level apart at most
    for image in (photo, photo.convert("L")):
        ours = TONE_OPS[name].array(np.asarray(image), factor=factor)
        assert _levels_apart(ours, np.asarray(enhancer(image).enhance(factor))) <= 1


@pytest.mark.parametrize("cutoff", [0, 1, 5])
def test_autocontrast_matches_pillow(photo, cutoff):
    ours = TONE_OPS["autocontrast"].array(np.asarray(photo), cutoff=cutoff)
    assert _levels_apart(ours, np.asarray(ImageOps.autocontrast(photo, cutoff=cutoff))) <= 1


def test_autocontrast_preserve_tone_stretches_all_channels_alike(photo):
    cast = (np.asarray(photo) * np.array([0.5, 0.6, 0.4]) + 30).astype(np.uint8)
    out = TONE_OPS["autocontrast"].array(cast, preserve_tone=True)
    assert out.min() == 0 and out.max() == 255
    assert out[:, :, 2].max() < 200  # the dim blue channel stays dim: no per-channel stretch
    # one curve for all channels: equal input levels give equal output levels in every channel
    curve = {}
    for value, result in zip(cast.ravel(), out.ravel()):
        assert curve.setdefault(value, result) == result


def test_equalize_matches_pillow_and_is_close_to_opencv(photo):
    assert _levels_apart(TONE_OPS["equalize"].array(np.asarray(photo)), np.asarray(ImageOps.equalize(photo))) == 0
    grey = np.asarray(photo.convert("L"))
    ours = TONE_OPS["equalize"].array(grey)
    assert _levels_apart(ours, np.asarray(ImageOps.equalize(photo.convert("L")))) == 0
    # OpenCV's table counts each level's own samples where Pillow counts those below it: same shape of curve
    assert np.abs(ours.astype(int) - cv2.equalizeHist(grey)).mean() < 4


def test_gamma_and_levels_give_hand_computed_values():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    squared = TONE_OPS["gamma"].array(ramp, gamma=2.0).ravel()
    assert (squared[128], squared[200], squared[255]) == (64, 157, 255)  # 255 (v/255)^2: 64.25, 156.86
    root = TONE_OPS["gamma"].array(ramp, gamma=0.5).ravel()
    assert (root[0], root[64], root[128]) == (0, 128, 181)  # 255 sqrt(v/255): 127.75, 180.69
    values = np.array([[0.1, 0.2, 0.5, 0.8, 0.9]], np.float32)
    stretched = TONE_OPS["levels"].array(values, black=0.2, white=0.8)
    np.testing.assert_allclose(stretched, [[0, 0, 0.5, 1, 1]], atol=1e-6)
    midtones = TONE_OPS["levels"].array(values, black=0.2, white=0.8, gamma=2.0)
    np.testing.assert_allclose(midtones[0, 2], np.sqrt(0.5), atol=1e-6)  # GAMMA > 1 brightens


@pytest.mark.parametrize("degrees", [-180, -90, -15, 40, 179])
def test_hue_matches_torchvision(photo, degrees):
    rgb = np.asarray(photo)
    reference = TF.adjust_hue(_as_tensor(rgb) / 255, degrees / 360).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(TONE_OPS["hue"].array(rgb.astype(np.float32) / 255, degrees=degrees),
                               reference, atol=1e-3)
    assert _levels_apart(TONE_OPS["hue"].array(rgb, degrees=degrees), np.rint(reference * 255)) <= 1


def test_clahe_matches_opencv(photo):
    grey = np.asarray(photo.convert("L"))
    assert _levels_apart(TONE_OPS["clahe"].array(grey), cv2.createCLAHE(2.0, (8, 8)).apply(grey)) == 0
    # the hand-written 256-bin port (float and 16-bit images) against OpenCV, odd sizes and grids included
    odd = np.ascontiguousarray(grey[:67, :53])
    for clip, grid in [(0.0, 3), (2.0, 8), (4.0, 5), (40.0, 1)]:
        ported = TONE_OPS["clahe"].array(odd.astype(np.float32) / 255, clip=clip, grid=grid)
        assert _levels_apart(np.rint(ported * 255), cv2.createCLAHE(clip, (grid, grid)).apply(odd)) <= 1


def test_clahe_of_colour_equalises_lightness_only(photo):
    rgb = np.asarray(photo)
    ours = TONE_OPS["clahe"].array(rgb, grid=4)
    lab_before = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab_after = cv2.cvtColor(ours.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    assert np.median(np.abs(lab_after[:, :, 1:] - lab_before[:, :, 1:])) < 1  # a, b kept (up to gamut)
    assert np.abs(lab_after[:, :, 0] - lab_before[:, :, 0]).mean() > 3  # L changed
    # the usual OpenCV recipe (as albumentations) rounds L to 8 bits first; CLAHE's tables jump where
    # a sample changes bin, so a few pixels differ by more than a level, the image as a whole does not
    lightness = np.rint(lab_before[:, :, 0] * 2.55).astype(np.uint8)
    lab_before[:, :, 0] = cv2.createCLAHE(2.0, (4, 4)).apply(lightness).astype(np.float32) / 2.55
    reference = np.rint(cv2.cvtColor(lab_before, cv2.COLOR_LAB2RGB) * 255)
    assert np.abs(ours - reference).mean() < 1


def test_sharpen_and_blur_match_pillow_inside_the_border(photo):
    rgb = np.asarray(photo)
    inside = (slice(8, -8), slice(8, -8))  # Pillow extends edge pixels where we reflect (OpenCV, kornia)
    for radius in (1.0, 2.0):
        # Pillow's Gaussian is three box blurs: close to a true Gaussian, not equal
        blurred = TONE_OPS["blur"].array(rgb, sigma=radius)
        assert _levels_apart(blurred[inside], np.asarray(photo.filter(ImageFilter.GaussianBlur(radius)))[inside]) <= 2
        sharpened = TONE_OPS["sharpen"].array(rgb, amount=1.5, radius=radius)
        pillow = np.asarray(photo.filter(ImageFilter.UnsharpMask(radius=radius, percent=150, threshold=0)))
        assert _levels_apart(sharpened[inside], pillow[inside]) <= 4
    values = rgb.astype(np.float32) / 255
    reference = cv2.GaussianBlur(values, (7, 7), 1.0, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(TONE_OPS["blur"].array(values, sigma=1.0), reference, atol=1e-6)


def test_sharpen_threshold_leaves_small_detail_alone():
    flat = np.full((16, 16), 0.5, np.float32)
    flat[8, 8] = 0.51  # a speck of noise below the threshold
    assert np.array_equal(TONE_OPS["sharpen"].array(flat, amount=2.0, threshold=0.02), flat)
    assert TONE_OPS["sharpen"].array(flat, amount=2.0)[8, 8] > 0.51


def test_white_balance_greys_the_mean(photo):
    values = np.asarray(photo).astype(np.float32) / 255 * np.array([0.7, 0.6, 0.5], np.float32)
    balanced = TONE_OPS["white_balance"].array(values)
    means = balanced.reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(means, means.mean(), rtol=1e-3)
    half = TONE_OPS["white_balance"].array(values, strength=0.5).reshape(-1, 3).mean(axis=0)
    assert np.ptp(means) < np.ptp(half) < np.ptp(values.reshape(-1, 3).mean(axis=0))
    np.testing.assert_allclose(TONE_OPS["white_balance"].array(values, strength=0.0), values, atol=1e-6)


@pytest.mark.parametrize("name", ["saturation", "hue", "white_balance"])
def test_colour_ops_leave_grey_images_alone(photo, name):
    grey = np.asarray(photo.convert("L"))
    for image in (grey, grey[:, :, None]):
        assert np.array_equal(TONE_OPS[name].array(image, **PARAMS[name]), image)
    tensor = torch.from_numpy(grey.copy()).float()[None] / 255  # (1, H, W)
    assert torch.equal(TONE_OPS[name].tensor(tensor, **PARAMS[name]), tensor)


# --- dtypes, shapes, tensors --------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PARAMS))
def test_uint16_and_float_agree_with_uint8(photo, name):
    rgb = np.asarray(photo)
    eight = TONE_OPS[name].array(rgb, **PARAMS[name])
    sixteen = TONE_OPS[name].array(rgb.astype(np.uint16) * 257, **PARAMS[name])
    floating = TONE_OPS[name].array(rgb.astype(np.float32) / 255, **PARAMS[name])
    assert sixteen.dtype == np.uint16 and floating.dtype == np.float32
    assert np.abs(sixteen / 257 - eight).max() <= 1  # within rounding to 8 bits
    assert np.abs(floating * 255 - eight).max() <= 1


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_arrays_keep_shape_and_dtype_and_input(photo, name):
    grey = np.asarray(photo.convert("L"))
    for image in (grey, grey[:, :, None], np.asarray(photo), np.asarray(photo).astype(np.uint16) * 257,
                  grey.astype(np.float32) / 255):
        before = image.copy()
        out = TONE_OPS[name].array(image, **PARAMS[name])
        assert out.shape == image.shape and out.dtype == image.dtype
        assert np.array_equal(image, before)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_tensor_path_equals_array_path_batched(photo, other_photo, name):
    images = [np.asarray(photo).astype(np.float32) / 255, np.asarray(other_photo).astype(np.float32) / 255]
    batch = torch.stack([_as_tensor(image) for image in images])  # (2, 3, H, W)
    out = TONE_OPS[name].tensor(batch, **PARAMS[name])
    assert out.shape == batch.shape
    for index, image in enumerate(images):
        expected = TONE_OPS[name].array(image, **PARAMS[name])
        gap = (out[index].permute(1, 2, 0).numpy() - expected) * 255
        assert np.abs(gap).max() < 1.01, f"{name}: {np.abs(gap).max():.2f} levels"
    single = TONE_OPS[name].tensor(batch[0], **PARAMS[name])  # (C, H, W)
    torch.testing.assert_close(single, out[0], atol=1e-5, rtol=0)
    grey = np.asarray(photo.convert("L")).astype(np.float32) / 255
    grey_out = TONE_OPS[name].tensor(torch.from_numpy(grey)[None, None], **PARAMS[name])[0, 0].numpy()
    assert np.abs(grey_out - TONE_OPS[name].array(grey, **PARAMS[name])).max() * 255 < 1.01


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_differentiable_ops_have_gradients(photo, name):
    image = _as_tensor(np.asarray(photo)[:24, :24] / 255)[None].requires_grad_()
    image.data[..., :2, :2] = 0  # exact zeros: gamma and levels must not return NaN gradients there
    TONE_OPS[name].tensor(image, **PARAMS[name]).square().sum().backward()
    assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0


def test_wrong_inputs_are_input_shape_errors():
    with pytest.raises(InputShapeError):
        TONE_OPS["contrast"].array(np.zeros((4, 4, 4), np.uint8), factor=1.0)
    with pytest.raises(InputShapeError):
        TONE_OPS["contrast"].array(np.zeros((4, 4), np.int32), factor=1.0)
    with pytest.raises(InputShapeError):
        TONE_OPS["contrast"].tensor(torch.zeros(1, 2, 4, 4), factor=1.0)
    with pytest.raises(InputShapeError):
        TONE_OPS["contrast"].tensor(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), factor=1.0)


# --- auto -----------------------------------------------------------------------------------------

def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("cast", [(1.08, 1.0, 0.85), (0.9, 0.97, 1.1)], ids=["warm", "cool"])
@pytest.mark.parametrize("name", ["Set14/coastguard.png", "Set5/head.png"])
def test_auto_brings_a_dulled_photo_back(name, cast):
    original = np.asarray(_photo(name)).astype(np.float32) / 255
    dull = np.rint(np.clip((0.6 * original + 0.2) * np.float32(cast), 0, 1) * 255).astype(np.uint8)  # washed out, cast
    fixed = TONE_OPS["auto"].array(dull).astype(np.float32) / 255
    assert _psnr(fixed, original) > _psnr(dull / 255, original) + 2


def test_auto_keeps_a_warm_scene_warm(other_photo):
    warm = np.asarray(other_photo)  # orange wings: red twice the blue on average
    red, _, blue = warm.reshape(-1, 3).mean(axis=0)
    red_after, _, blue_after = TONE_OPS["auto"].array(warm).reshape(-1, 3).mean(axis=0)
    # half-strength grey world takes the square root of the red/blue ratio, no more
    assert red_after / blue_after > 0.95 * np.sqrt(red / blue) > 1.3


# --- parsing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, text, expected", [
    ("contrast", "1.2", {"factor": 1.2}),
    ("hue", "-15", {"degrees": -15.0}),
    ("levels", "0.05:0.95", {"black": 0.05, "white": 0.95}),
    ("levels", "0.05:0.95:1.1", {"black": 0.05, "white": 0.95, "gamma": 1.1}),
    ("clahe", "2.0:8", {"clip": 2.0, "grid": 8}),
    ("clahe", "", {}),
    ("sharpen", "1.0:1.5", {"amount": 1.0, "radius": 1.5}),
    ("blur", "2", {"sigma": 2.0}),
    ("autocontrast", "0.5:tone", {"cutoff": 0.5, "preserve_tone": True}),
    ("white_balance", "", {}),
    ("auto", "", {}),
    ("equalize", "", {}),
])
def test_parse_accepts_the_documented_forms(photo, name, text, expected):
    params = TONE_OPS[name].parse(text)
    assert params == expected
    TONE_OPS[name].array(np.asarray(photo)[:16, :16], **params)  # the params fit the function


@pytest.mark.parametrize("name, text", [
    ("contrast", "abc"), ("contrast", ""), ("contrast", "-1"), ("contrast", "nan"), ("brightness", "inf"),
    ("hue", "200"), ("gamma", "0"), ("levels", "0.9:0.1"), ("levels", "0.5"), ("levels", "0:1:1:1"),
    ("clahe", "2.0:8.5"), ("clahe", "2:0"), ("autocontrast", "60"), ("autocontrast", "1:luma"),
    ("sharpen", "1:-1"), ("blur", "1e9"), ("equalize", "3"), ("auto", "1"), ("white_balance", "2"),
    ("contrast", "1.2\nrm"),
])
def test_parse_errors_are_one_line_naming_the_op(name, text):
    with pytest.raises(ConfigError) as caught:
        TONE_OPS[name].parse(text)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{name}=") and "e.g." in message
