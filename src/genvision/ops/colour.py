"""Colour ops (saturation, hue, grey-world white balance, CLAHE) and the helpers every tone op shares.

Arrays are HW, HW1 or HW3 numpy images in uint8, uint16 or float32 in [0, 1]; the result has the
input's shape and dtype. Work is done in float32 and rounded once at the end, except that a point
op on an integer image is a lookup table over its levels (the same curve, evaluated once per level).
Tensors are (B, C, H, W) or (C, H, W) floats in [0, 1] with C = 1 or 3, on any device.
Grey images have no colour: saturation, hue and white balance return them unchanged.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import kornia
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputShapeError

# ITU-R 601-2 luma, the weights of Pillow's convert("L") (torchvision's 0.2989 differs by 1e-4)
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_INTEGER_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_OPENCV_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))  # the fast paths' dtypes


# --- arrays -----------------------------------------------------------------------------------

def channels_last(image: np.ndarray) -> np.ndarray:
    """The image as (H, W, C) with C in {1, 3} (a view); anything else is an InputShapeError."""
    if image.dtype not in _INTEGER_MAX and image.dtype not in _FLOAT_DTYPES:
        raise InputShapeError(f"tone ops take uint8, uint16 or float images; got dtype {image.dtype}")
    if image.ndim == 2:
        return image[:, :, None]  # (H, W) -> (H, W, 1)
    if image.ndim == 3 and image.shape[2] in (1, 3):
        return image
    raise InputShapeError(f"tone ops take images of shape (H, W), (H, W, 1) or (H, W, 3); got {image.shape}")


def to_float(image: np.ndarray) -> np.ndarray:
    """(H, W, C) float32 in [0, 1] (a new array)."""
    hwc = channels_last(image)
    scale = _INTEGER_MAX.get(hwc.dtype, 1)
    return hwc.astype(np.float32) / np.float32(scale)


def from_float(values: np.ndarray, like: np.ndarray) -> np.ndarray:
    """``values`` (float, [0, 1]) rounded, clipped and cast to the shape and dtype of ``like``."""
    top = _INTEGER_MAX.get(like.dtype)
    if top is None:
        out = np.clip(values, 0.0, 1.0).astype(like.dtype)
    else:
        out = np.clip(np.rint(values * np.float32(top)), 0, top).astype(like.dtype)
    return out.reshape(like.shape)


def levels_of(dtype: np.dtype) -> int:
    """How many levels an integer dtype has (256, 65536); 0 for floats."""
    top = _INTEGER_MAX.get(np.dtype(dtype))
    return 0 if top is None else top + 1


def apply_lut(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Map an integer image through ``lut`` (L, C) of floats in [0, 1], one column per channel."""
    hwc = channels_last(image)
    table = from_float(lut, np.empty(lut.shape, image.dtype))  # (L, C) in the image's dtype
    if hwc.dtype == np.uint8:
        # cv2.LUT: one (256, 1) table for a single channel, (256, 1, C) for one table per channel
        out = cv2.LUT(np.ascontiguousarray(hwc), table if table.shape[1] == 1 else table[:, None, :])
    else:
        out = table[hwc, np.arange(hwc.shape[2])]  # (H, W, C): column c looked up for channel c
    return out.reshape(image.shape)


def apply_point(image: np.ndarray, curve: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply a point curve (float32 (..., C) in [0, 1] -> same) to every pixel.

    Integer images evaluate the curve once per level and look it up; float images evaluate it on the pixels.
    """
    levels = levels_of(image.dtype)
    if levels == 0:
        return from_float(curve(to_float(image)), image)
    channels = channels_last(image).shape[2]
    ramp = np.arange(levels, dtype=np.float32) / np.float32(levels - 1)
    lut = curve(np.repeat(ramp[:, None], channels, axis=1))  # (L, C)
    return apply_lut(image, np.broadcast_to(lut, (levels, channels)))


def luma(values: np.ndarray) -> np.ndarray:
    """(H, W, 1) luma of a float (H, W, C) image; grey images are their own luma."""
    if values.shape[2] == 1:
        return values
    return (values @ np.asarray(LUMA_WEIGHTS, np.float32))[:, :, None]  # (H, W, 3) -> (H, W, 1)


def channel_means(image: np.ndarray) -> np.ndarray:
    """(C,) float64 mean of each channel, in [0, 1]."""
    hwc = channels_last(image)
    if hwc.dtype in _OPENCV_DTYPES:  # cv2.mean accumulates in double, ~10x numpy's speed here
        means = np.asarray(cv2.mean(np.ascontiguousarray(hwc))[:hwc.shape[2]], dtype=np.float64)
    else:
        means = hwc.reshape(-1, hwc.shape[2]).mean(axis=0, dtype=np.float64)  # (H*W, C) -> (C,)
    return means / _INTEGER_MAX.get(hwc.dtype, 1)


def saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the luma image (Pillow ImageEnhance.Color): 0 = grey, 1 = unchanged."""
    hwc = channels_last(image)
    if hwc.shape[2] == 1:
        return image.copy()
    if hwc.dtype in _OPENCV_DTYPES:
        # luma + f (v - luma) is one 3x3 matrix per pixel: cv2.transform applies it in one pass in
        # the image's own units, rounding and saturating integers (float round trips in numpy were
        # the slowest step of a typical edit chain)
        weights = np.tile(np.asarray(LUMA_WEIGHTS, dtype=np.float64), (3, 1))  # (3, 3): every row the luma
        out = cv2.transform(np.ascontiguousarray(hwc), (1.0 - factor) * weights + factor * np.eye(3))
        return (np.clip(out, 0.0, 1.0, out=out) if out.dtype.kind == "f" else out).reshape(image.shape)
    values = to_float(image)
    grey = luma(values)
    return from_float(grey + np.float32(factor) * (values - grey), image)


def hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the HSV hue by ``degrees`` (torchvision adjust_hue with factor degrees / 360)."""
    if channels_last(image).shape[2] == 1:
        return image.copy()
    # float32 HSV keeps H in degrees [0, 360); 8-bit HSV would quantise hue to 2-degree steps
    hsv = cv2.cvtColor(to_float(image), cv2.COLOR_RGB2HSV)
    hsv[:, :, 0] = np.mod(hsv[:, :, 0] + np.float32(degrees), np.float32(360.0))
    return from_float(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), image)


def grey_world_gains(means: np.ndarray, strength: float) -> np.ndarray:
    """Per-channel gains that give every channel the mean of the channel means, raised to ``strength``
    (0 = none, 1 = full) and limited to [0.5, 2] so a nearly empty channel cannot explode."""
    target = means.mean()
    gains = np.where(means > 1e-6, target / np.maximum(means, 1e-6), 1.0) ** strength
    return np.clip(gains, 0.5, 2.0).astype(np.float32)


def white_balance(image: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Grey-world white balance: scale each channel so that the image averages to grey."""
    if channels_last(image).shape[2] == 1:
        return image.copy()
    gains = grey_world_gains(channel_means(image), strength)
    return apply_point(image, lambda values: values * gains)


def clahe_grid(height: int, width: int, grid: int) -> tuple[int, int]:
    """Tiles (rows, columns): ``grid`` each way, fewer on an image too small for two pixels per tile."""
    return max(1, min(grid, height // 2)), max(1, min(grid, width // 2))


def clahe(image: np.ndarray, clip: float = 2.0, grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV's createCLAHE semantics) of the
    lightness: grey images directly, RGB on L of CIELAB so that colours keep their hue (as
    albumentations). 8-bit grey goes to OpenCV; everything else to :func:`clahe_tensor` on the CPU:
    it reads the float lightness without rounding it to 8 bits first, so uint8, uint16 and float
    agree, and kornia's CIELAB round trip is exact where OpenCV's float one is off by up to a level."""
    hwc = channels_last(image)
    if image.dtype == np.uint8 and hwc.shape[2] == 1:  # OpenCV sees exactly our levels
        height, width = hwc.shape[:2]
        tiles = clahe_grid(height, width, grid)
        engine = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(tiles[1], tiles[0]))
        return engine.apply(np.ascontiguousarray(hwc[:, :, 0])).reshape(image.shape)
    values = torch.from_numpy(to_float(image)).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
    return from_float(clahe_tensor(values, clip, grid).permute(1, 2, 0).numpy(), image)


def clahe_planes(planes: torch.Tensor, clip: float, tiles: tuple[int, int]) -> torch.Tensor:
    """CLAHE of float planes (N, H, W) in [0, 1] -> (N, H, W), on any device.

    Written by hand, in torch so that arrays and tensors share it: OpenCV's 16-bit CLAHE clips against
    65536 bins, where the same clip limit barely limits anything, and kornia's equalize_clahe (0.9)
    reads its tables at floored 8-bit levels, half a pixel off OpenCV's phase; on lightness that is
    not on 8-bit levels it jumped by up to 45 levels in our tests. Tiles, reflect-101 padding, clip
    limit, redistribution and the bilinear blend are OpenCV's 8-bit ones on 256 bins; each tile's
    table is read by linear interpolation between levels, so finer than 8-bit input keeps its
    precision. Matches cv2.createCLAHE on 8-bit input within one level (OpenCV rounds its tables).
    """
    count, height, width = planes.shape
    rows, cols = tiles
    levels = planes.float().clamp(0, 1) * 255
    bins = levels.round().long()
    if height % rows or width % cols:  # OpenCV pads both axes as soon as one needs it
        padding = (0, cols - width % cols, 0, rows - height % rows)
        bins = F.pad(bins[:, None].float(), padding, mode="reflect")[:, 0].long()  # torch reflect = reflect-101
    tile_h, tile_w = bins.shape[1] // rows, bins.shape[2] // cols
    # (N, rows*tile_h, cols*tile_w) -> (N, rows*cols, tile_h*tile_w): one row of levels per tile
    per_tile = bins.reshape(count, rows, tile_h, cols, tile_w).permute(0, 1, 3, 2, 4).reshape(count, rows * cols, -1)
    hist = torch.zeros(count, rows * cols, 256, dtype=torch.long, device=planes.device)
    hist.scatter_add_(2, per_tile, torch.ones_like(per_tile))
    area = tile_h * tile_w
    if clip > 0:
        limit = max(int(clip * area / 256), 1)
        excess = (hist - limit).clamp_min(0).sum(dim=2, keepdim=True)  # (N, T, 1)
        hist = hist.clamp_max(limit) + excess // 256
        residual = excess % 256
        step = (256 // residual.clamp_min(1)).clamp_min(1)
        index = torch.arange(256, device=planes.device)
        hist += (index % step == 0) & (index // step < residual)  # OpenCV spreads the rest evenly
    lut = (hist.cumsum(dim=2).float() * (255 / area)).reshape(count, -1)  # (N, T*256) in levels

    lower = levels.floor().clamp(0, 254)
    frac = (levels - lower).reshape(count, -1)  # (N, H*W)
    lower = lower.long()

    def blend(size: int, tile: int, tiles_along: int):
        position = torch.arange(size, device=planes.device, dtype=torch.float32) / tile - 0.5  # OpenCV's phase
        first = position.floor()
        first_index = first.long()
        return first_index.clamp(0, tiles_along - 1), (first_index + 1).clamp(max=tiles_along - 1), position - first

    def read(tile_y: torch.Tensor, tile_x: torch.Tensor) -> torch.Tensor:
        tile = tile_y[:, None] * cols + tile_x[None, :]  # (H, W) tile index per pixel
        index = (tile[None] * 256 + lower).reshape(count, -1)  # (N, H*W) into the flat tables
        low = lut.gather(1, index)
        return (low + frac * (lut.gather(1, index + 1) - low)).reshape(count, height, width)

    y1, y2, wy = blend(height, tile_h, rows)
    x1, x2, wx = blend(width, tile_w, cols)
    wy, wx = wy[None, :, None], wx[None, None, :]
    top = read(y1, x1) * (1 - wx) + read(y1, x2) * wx
    bottom = read(y2, x1) * (1 - wx) + read(y2, x2) * wx
    return ((top * (1 - wy) + bottom * wy) / 255).clamp(0, 1).to(planes.dtype)


# --- tensors ----------------------------------------------------------------------------------

def batched(op: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Let ``op`` (written for (B, C, H, W)) take (C, H, W) as well, after checking the input."""
    @functools.wraps(op)
    def wrapper(image: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not isinstance(image, torch.Tensor) or not image.is_floating_point():
            raise InputShapeError(f"{op.__name__} takes a float tensor in [0, 1]; got {type(image).__name__} "
                                  f"{getattr(image, 'dtype', '')}".rstrip())
        if image.ndim not in (3, 4) or image.shape[-3] not in (1, 3):
            raise InputShapeError(f"{op.__name__} takes (B, C, H, W) or (C, H, W) with C = 1 or 3; "
                                  f"got {tuple(image.shape)}")
        if image.ndim == 3:
            return op(image[None], *args, **kwargs)[0]  # (C, H, W) -> (1, C, H, W) and back
        return op(image, *args, **kwargs)
    return wrapper


def luma_tensor(image: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of (B, C, H, W)."""
    if image.shape[1] == 1:
        return image
    weights = image.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (image * weights).sum(dim=1, keepdim=True)


@batched
def saturation_tensor(image: torch.Tensor, factor: float) -> torch.Tensor:
    """:func:`saturation` on (B, C, H, W) or (C, H, W) tensors."""
    if image.shape[1] == 1:
        return image.clone()
    # kornia.enhance.adjust_saturation scales HSV saturation; Pillow and torchvision blend with luma
    grey = luma_tensor(image)
    return (grey + factor * (image - grey)).clamp(0, 1)


@batched
def hue_tensor(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """:func:`hue` on (B, C, H, W) or (C, H, W) tensors."""
    if image.shape[1] == 1:
        return image.clone()
    return kornia.enhance.adjust_hue(image, math.radians(degrees)).clamp(0, 1)


@batched
def white_balance_tensor(image: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """:func:`white_balance` on (B, C, H, W) or (C, H, W) tensors."""
    if image.shape[1] == 1:
        return image.clone()
    means = image.mean(dim=(2, 3), keepdim=True)  # (B, 3, 1, 1)
    target = means.mean(dim=1, keepdim=True)
    gains = torch.where(means > 1e-6, target / means.clamp_min(1e-6), torch.ones_like(means)) ** strength
    return (image * gains.clamp(0.5, 2.0)).clamp(0, 1)


@batched
def clahe_tensor(image: torch.Tensor, clip: float = 2.0, grid: int = 8) -> torch.Tensor:
    """:func:`clahe` on (B, C, H, W) or (C, H, W) tensors."""
    tiles = clahe_grid(image.shape[2], image.shape[3], grid)
    if image.shape[1] == 1:
        return clahe_planes(image[:, 0], clip, tiles)[:, None]  # (B, 1, H, W) -> (B, H, W) and back
    lab = kornia.color.rgb_to_lab(image.clamp(0, 1))  # (B, 3, H, W), L in [0, 100]
    lightness = clahe_planes(lab[:, 0] / 100, clip, tiles)[:, None] * 100
    return kornia.color.lab_to_rgb(torch.cat([lightness, lab[:, 1:]], dim=1)).clamp(0, 1)
