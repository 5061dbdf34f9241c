"""Hole masks for inpainting: from a file, from a box, or drawn at random; all ``bool (H, W)``, True = fill.

**How a mask file is read** (:func:`load_mask`): what is *painted* is the hole.

* no alpha channel (or every pixel opaque): luminance > 127 is the hole (white on black);
* an alpha channel over a single colour (a one-colour layer exported from an editor, an
  "alpha-only" mask): alpha > 127 is the hole, whatever the colour;
* an alpha channel over varying colours: luminance > 127 among opaque pixels (alpha > 127);
  transparent pixels are not painted, so they are kept (as if composited on black).

The opposite convention, "transparent = edit here" (OpenAI's image-edit masks, an image whose hole
was erased to transparency), is ``invert=True`` (``--invert-mask``).

**Random masks** (:func:`random_mask`) follow the free-form generators of DeepFill v2 and LaMa:
random walks drawn as thick lines with round joints, mixed with rectangles, added one shape at a
time until the hole fraction lies in the requested range. Shapes that would overshoot are redrawn
smaller; if shapes alone cannot land in the range, single pixels on the hole's border finish it,
so any range that contains a whole number of pixels is reached. The same seed gives the same mask.
"""

from __future__ import annotations

import math
import os

import cv2
import numpy as np

from ..errors import ConfigError, display_path
from ..io import load_image

__all__ = ["box_mask", "load_mask", "mask_area", "parse_box", "random_mask"]

_THRESHOLD = 127  # a value above this is "on": mid-grey anti-aliased brush edges split evenly
_MAX_SHAPES = 400  # shapes tried before single pixels finish the mask (a few dozen are usual)


def _size(size: tuple[int, int]) -> tuple[int, int]:
    height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise ConfigError(f"a mask needs a size of at least 1x1 pixels, got {width}x{height}")
    return height, width


def load_mask(path: str | os.PathLike, size: tuple[int, int], *, invert: bool = False) -> np.ndarray:
    """Read a mask image (any format genvision.io reads) as bool ``(H, W)``, True = fill.

    ``size`` is the image's ``(height, width)``; a mask of another size is a ConfigError
    ("mask is 64x48 but the image is 128x96"), since resizing would move the hole's edges.
    The rules for grey, colour and alpha masks are in the module docstring.
    """
    height, width = _size(size)
    img = load_image(path, "LA")  # any mode -> 8-bit luminance + alpha (opaque when the file has none)
    if img.size != (width, height):
        raise ConfigError(f"{display_path(path)}: mask is {img.size[0]}x{img.size[1]} but the image is "
                          f"{width}x{height}")
    la = np.asarray(img)  # (H, W, 2) uint8
    luma, alpha = la[..., 0], la[..., 1]
    if alpha.min() == 255:
        hole = luma > _THRESHOLD
    elif luma.min() == luma.max():  # one colour: the shape lives in alpha alone
        hole = alpha > _THRESHOLD
    else:
        hole = (luma > _THRESHOLD) & (alpha > _THRESHOLD)
    return ~hole if invert else hole


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` (pixels; x, y of the top-left corner, may be negative) -> ``(x, y, w, h)``."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 4:
            raise ValueError
        x, y, w, h = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"box {text!r}: expected x,y,w,h as four integers (pixels), e.g. 10,20,64,48") from None
    if w < 1 or h < 1:
        raise ConfigError(f"box {text!r}: width and height must be at least 1 pixel")
    return x, y, w, h


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """bool ``(H, W)`` with the box ``(x, y, w, h)`` set, clipped to the image; a box that misses
    the image entirely is a ConfigError."""
    height, width = _size(size)
    x, y, w, h = box
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    if x0 >= x1 or y0 >= y1:
        raise ConfigError(f"box {x},{y},{w},{h} lies outside the {width}x{height} image")
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def mask_area(mask: np.ndarray) -> float:
    """The fraction of pixels a mask marks for filling, in [0, 1]."""
    mask = np.asarray(mask)
    return float(np.count_nonzero(mask)) / mask.size if mask.size else 0.0


def _stroke(canvas: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    """A random walk of 1-8 segments drawn as a thick line with round joints (DeepFill v2 style)."""
    height, width = canvas.shape
    side = min(height, width)
    thickness = max(1, round(rng.uniform(0.02, 0.09) * side * scale))
    x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
    angle = rng.uniform(0, 2 * math.pi)
    for _ in range(int(rng.integers(1, 9))):
        angle += rng.uniform(-0.6 * math.pi, 0.6 * math.pi)  # wander, but mostly keep going
        length = rng.uniform(0.05, 0.3) * side * scale
        nx = float(np.clip(x + length * math.cos(angle), 0, width - 1))
        ny = float(np.clip(y + length * math.sin(angle), 0, height - 1))
        cv2.line(canvas, (round(x), round(y)), (round(nx), round(ny)), 1, thickness)
        cv2.circle(canvas, (round(nx), round(ny)), thickness // 2, 1, -1)  # round joint
        x, y = nx, ny


def _rectangle(canvas: np.ndarray, rng: np.random.Generator, scale: float) -> None:
    height, width = canvas.shape
    w = max(1, round(rng.uniform(0.05, 0.35) * width * scale))
    h = max(1, round(rng.uniform(0.05, 0.35) * height * scale))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    canvas[y:y + h, x:x + w] = 1


def _finish_with_border_pixels(canvas: np.ndarray, count: int, rng: np.random.Generator) -> None:
    """Add ``count`` pixels, each touching the hole (or anywhere while it is empty), in seeded order."""
    kernel = np.ones((3, 3), np.uint8)
    while count > 0:
        if canvas.any():
            ring = np.flatnonzero((cv2.dilate(canvas, kernel) > 0) & (canvas == 0))
        else:
            ring = np.arange(canvas.size)
        chosen = rng.permutation(ring)[:count]
        canvas.reshape(-1)[chosen] = 1  # (H * W,) view of the canvas
        count -= len(chosen)


def random_mask(size: tuple[int, int], *, area: tuple[float, float] = (0.1, 0.2), seed: int = 0) -> np.ndarray:
    """A free-form hole mask: bool ``(H, W)`` whose hole fraction lies in ``area = (lo, hi)``,
    ``0 < lo <= hi < 1``. Deterministic for a seed (see the module docstring for the method).

    Raises ConfigError if no whole number of pixels lands in the range (a 3x3 image cannot be
    50-52% hole).
    """
    height, width = _size(size)
    lo, hi = (float(v) for v in area)
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi < 1):
        raise ConfigError(f"the hole area range must satisfy 0 < lo <= hi < 1, got {lo}:{hi}")
    total = height * width
    need, limit = math.ceil(lo * total), math.floor(hi * total)
    if need < 1 or need > limit:
        raise ConfigError(f"no hole of {lo:g}-{hi:g} of a {width}x{height} image exists (a whole number of its "
                          f"{total} pixels); widen the range")
    rng = np.random.default_rng(seed)
    # aim at a point drawn in the range, so masks spread over it rather than stopping at lo
    goal = min(max(math.ceil(rng.uniform(lo, hi) * total), need), limit)
    canvas = np.zeros((height, width), np.uint8)
    filled, scale = 0, 1.0
    for _ in range(_MAX_SHAPES):
        if filled >= goal:
            break
        candidate = canvas.copy()
        (_stroke if rng.random() < 0.7 else _rectangle)(candidate, rng, scale)
        count = int(np.count_nonzero(candidate))
        if count > limit:
            scale *= 0.7  # too big: the next shapes are smaller
            continue
        canvas, filled = candidate, count
    if filled < goal:
        _finish_with_border_pixels(canvas, goal - filled, rng)
    return canvas.astype(bool)
