"""Warps: the pixel-centre convention checked against hand-computed values, whole-pixel moves exact,
resizes equal to OpenCV's, antialiasing, and the torch path agreeing with the numpy one."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from genvision.errors import ConfigError
from genvision.nn.resize import imresize
from genvision.ops import geometry as g

RNG = np.random.default_rng(1234)
NOISE_U8 = RNG.integers(0, 256, (7, 5, 3), dtype=np.uint8)


def smooth_image(height=48, width=64) -> np.ndarray:
    """(H, W, 3) float32 in [0.1, 0.9] varying slowly (interpolation kernels agree closely on it)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return np.stack([0.5 + 0.4 * np.sin(xx / 9 + yy / 13), 0.5 + 0.4 * np.cos(yy / 7),
                     0.5 + 0.3 * np.sin((xx - yy) / 11)], axis=-1).astype(np.float32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)


def to_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)


@pytest.mark.parametrize("image", [NOISE_U8, NOISE_U8[..., 0].astype(np.uint16) * 257,
                                   NOISE_U8.astype(np.float32) / 255], ids=["u8-rgb", "u16-grey", "f32-rgb"])
def test_whole_pixel_moves_are_exact_indexing(image):
    size = image.shape[:2]
    cases = [(g.rotate(size, 90, expand=True), np.rot90(image)), (g.rotate(size, -90, expand=True), np.rot90(image, -1)),
             (g.rotate(size, 180), np.rot90(image, 2)), (g.rotate(size, 450, expand=True), np.rot90(image)),
             (g.flip(size, "h"), image[:, ::-1]), (g.flip(size, "v"), image[::-1]),
             (g.transpose(size), image.swapaxes(0, 1)), (g.crop(size, 1, 2, 3, 4), image[2:6, 1:4])]
    for warp, expected in cases:
        assert warp.moves_whole_pixels
        out = g.warp_array(image, warp, interpolation="bicubic")
        assert out.dtype == image.dtype and np.array_equal(out, expected)
    chained = g.rotate(size, 90, expand=True).then(g.crop((5, 7), 1, 1, 3, 3)).then(g.flip((3, 3), "h"))
    assert np.array_equal(g.warp_array(image, chained), np.rot90(image)[1:4, 1:4][:, ::-1])


def test_pad_fills_in_units_of_full_scale():
    padded = g.warp_array(NOISE_U8, g.pad((7, 5), 1, 2, 3, 4), fill=(1.0, 0.5, 0.0))
    assert padded.shape == (11, 11, 3) and np.array_equal(padded[1:8, 4:9], NOISE_U8)
    assert (padded[0] == (255, 128, 0)).all() and (padded[:, :4] == (255, 128, 0)).all()
    grey16 = g.warp_array(np.full((2, 2), 7, np.uint16), g.pad((2, 2), 1, 0, 0, 0), fill=1.0)
    assert grey16.tolist() == [[65535, 65535], [7, 7], [7, 7]]


def test_rotation_is_counter_clockwise_about_the_centre():
    warp = g.rotate((101, 101), 30)
    angle = math.radians(30)
    # A point 10 px right of the centre (50, 50) turns up and to the right on screen (y points down).
    turned = (50 + 10 * math.cos(angle), 50 - 10 * math.sin(angle))
    np.testing.assert_allclose(warp.map(np.array([turned])), [[60.0, 50.0]], atol=1e-9)
    assert g.rotate((100, 100), 45, expand=True).size == (142, 142)  # ceil(100 * sqrt(2))
    assert g.rotate((30, 50), 90, expand=True).size == (50, 30)
    np.testing.assert_allclose(g.rotate((30, 50), 33).then(g.rotate((30, 50), -33)).matrix, np.eye(3), atol=1e-12)


def test_crop_builders():
    assert g.crop_aspect((1080, 1920), 4, 3).matrix[:2, 2].tolist() == [240, 0]
    assert g.crop_aspect((1080, 1920), 4, 3).size == (1080, 1440)
    assert g.crop_aspect((1000, 1000), 16, 9).size == (562, 1000)  # round(1000 * 9 / 16)
    centre = g.crop_center((101, 200), 0.5)
    assert centre.size == (50, 100) and centre.matrix[:2, 2].tolist() == [50, 25]
    with pytest.raises(ConfigError, match="does not lie inside"):
        g.crop((10, 10), 5, 5, 6, 2)


def test_resize_uses_the_pixel_centre_map_of_cv2():
    ramp = np.tile(np.arange(8, dtype=np.float32), (4, 1))  # (4, 8): value = x
    up = g.warp_array(ramp, g.resize((4, 8), 8, 16))
    # output pixel x' samples the input at (x' + 0.5) / 2 - 0.5; the edges replicate
    np.testing.assert_allclose(up[0, 1:-1], (np.arange(1, 15) + 0.5) / 2 - 0.5, atol=1e-6)
    assert up[0, 0] == 0 and up[0, -1] == 7
    image = smooth_image()
    shrunk = g.warp_array(image, g.resize_factor(image.shape[:2], 0.6))
    np.testing.assert_array_equal(shrunk, cv2.resize(image, (38, 29), interpolation=cv2.INTER_AREA))
    grown = g.warp_array(image, g.resize((48, 64), 70, 90), interpolation="bicubic")
    np.testing.assert_allclose(grown, np.clip(cv2.resize(image, (90, 70), interpolation=cv2.INTER_CUBIC), 0, 1))


def test_subpixel_affine_translation_interpolates_linearly():
    ramp = np.tile(np.arange(1, 11, dtype=np.float32), (6, 1)) / 10  # (6, 10): value = (x + 1) / 10
    moved = g.warp_array(ramp, g.affine((6, 10), [[1, 0, 1.5], [0, 1, 0]]))  # x' = x + 1.5
    np.testing.assert_allclose(moved[:, 2:], (np.arange(2, 10) - 0.5) / 10 * np.ones((6, 1)), atol=1e-6)
    np.testing.assert_allclose(moved[:, 1], 0.05, atol=1e-6)  # x = -0.5: half pixel 0 (0.1), half the black fill
    np.testing.assert_allclose(moved[:, 0], 0.0, atol=1e-6)  # x = -1.5: all fill


def test_perspective_maps_target_points_back_to_source():
    source = [[0, 0], [63, 0], [63, 47], [0, 47]]
    target = [[8, 3], [60, 0], [63, 47], [2, 40]]
    warp = g.perspective((48, 64), source, target)
    assert not warp.is_affine
    np.testing.assert_allclose(warp.map(np.array(target, dtype=float)), source, atol=1e-3)
    with pytest.raises(ConfigError, match="degenerate"):
        g.perspective((48, 64), source, [[0, 0], [1, 1], [2, 2], [3, 3]])


def test_antialiasing_removes_the_aliasing_of_a_shrink():
    stripes = np.tile((np.arange(96) % 2).astype(np.float32), (96, 1))  # period 2 px: only a grey survives a shrink
    warp = g.rotate((96, 96), 20).then(g.resize((96, 96), 24, 24))
    inner = (slice(6, -6), slice(6, -6))
    smooth = g.warp_array(stripes, warp)[inner]
    aliased = g.warp_array(stripes, warp, antialias=False)[inner]
    assert abs(smooth.mean() - 0.5) < 0.02 and smooth.std() < 0.05
    assert aliased.std() > 0.15
    nearest = g.warp_array(stripes, warp, interpolation="nearest")
    assert set(np.unique(nearest)) <= {0.0, 1.0}  # never mixed, even when shrinking


def test_dtypes_and_channels_are_kept():
    grey16 = np.full((20, 30), 40000, np.uint16)
    turned = g.warp_array(grey16, g.rotate((20, 30), 33, expand=True), interpolation="lanczos", fill=1.0)
    assert turned.dtype == np.uint16 and turned.shape == (34, 37)
    assert turned[17, 18] == 40000 and turned[0, 0] == 65535
    rgba = RNG.random((20, 30, 4)).astype(np.float32)
    assert g.warp_array(rgba, g.rotate((20, 30), 10)).shape == (20, 30, 4)
    assert g.warp_array(rgba[..., :1], g.rotate((20, 30), 10)).shape == (20, 30, 1)
    with pytest.raises(ConfigError, match="1 to 4 channels"):
        g.warp_array(np.zeros((4, 4, 5), np.float32), g.rotate((4, 4), 10))
    with pytest.raises(ConfigError, match="dtype|uint8"):
        g.warp_array(np.zeros((4, 4), np.int32), g.rotate((4, 4), 10))


def test_matlab_interpolation_is_the_sr_resize_and_only_for_resizes():
    image = NOISE_U8
    out = g.warp_array(image, g.resize_factor((7, 5), 2), interpolation="matlab")
    expected = imresize(torch.from_numpy(image).permute(2, 0, 1), size=(14, 10)).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ConfigError, match="only for resizes"):
        g.warp_array(image, g.rotate((7, 5), 10), interpolation="matlab")


def test_bad_warps_are_config_errors():
    with pytest.raises(ConfigError, match="singular"):
        g.affine((4, 4), [[1, 2, 0], [2, 4, 0]])
    with pytest.raises(ConfigError, match="pixels"):
        g.resize((4, 4), 100_000, 100_000)
    with pytest.raises(ConfigError, match="interpolation"):
        g.warp_array(NOISE_U8, g.flip((7, 5), "h"), interpolation="cubic")


WARPS = {
    "rotate-expand": g.rotate((48, 64), 30, expand=True),
    "rotate-grow": g.rotate((48, 64), 20).then(g.resize((48, 64), 60, 70)),
    "perspective": g.perspective((48, 64), [[0, 0], [63, 0], [63, 47], [0, 47]], [[8, 3], [60, 0], [63, 47], [2, 40]]),
    "rotate-shrink": g.rotate((48, 64), 25).then(g.resize((48, 64), 20, 30)),
    "resize-shrink": g.resize((48, 64), 29, 37),  # no exact ties for nearest, whose tie rules differ
    "pad-flip": g.pad((48, 64), 1, 2, 3, 4).then(g.flip((52, 70), "v")),
}


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("name", list(WARPS))
def test_warp_tensor_matches_warp_array(name, interpolation):
    image = smooth_image()
    warp = WARPS[name]
    expected = g.warp_array(image, warp, interpolation=interpolation, fill=0.3)
    got = to_array(g.warp_tensor(to_tensor(image), warp, interpolation=interpolation, fill=0.3))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_warp_tensor_is_batched_and_differentiable():
    images = torch.from_numpy(np.stack([smooth_image(), smooth_image()[::-1].copy()])).permute(0, 3, 1, 2)
    images.requires_grad_(True)  # (2, 3, 48, 64)
    out = g.warp_tensor(images, WARPS["rotate-shrink"], interpolation="bicubic")
    assert out.shape == (2, 3, 20, 30)
    torch.testing.assert_close(out[1], g.warp_tensor(images[1].detach(), WARPS["rotate-shrink"],
                                                     interpolation="bicubic"))
    out.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0 and torch.isfinite(images.grad).all()
    moved = g.warp_tensor(images, g.rotate((48, 64), 90, expand=True))  # indexing path: gradients too
    assert moved.requires_grad and torch.equal(moved.detach(), images.detach().rot90(1, dims=(-2, -1)))
