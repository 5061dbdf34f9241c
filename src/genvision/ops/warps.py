"""Geometric ops as warps: a :class:`Warp` is a 3x3 matrix mapping OUTPUT pixel coordinates
``(x, y, 1)`` to INPUT pixel coordinates, with pixel centres at integer coordinates (OpenCV's
convention: the image covers ``[-0.5, w - 0.5] x [-0.5, h - 0.5]``), plus the output size.

Builders take the size of their input ``(height, width)``; ``a.then(b)`` is ``a`` followed by
``b``, one matrix product, so a chain of geometric ops is one warp and resamples once
(:mod:`.geometry` applies warps to arrays and tensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from genvision.errors import ConfigError
from genvision.io import MAX_PIXELS

__all__ = ["Warp", "affine", "crop", "crop_aspect", "crop_center", "flip", "identity", "pad", "perspective", "resize",
           "resize_factor", "rotate", "transpose"]

EPS = 1e-6  # coordinates this close to an integer are that integer (cos/sin and product round-off)


@dataclass(frozen=True, eq=False)
class Warp:
    """``matrix`` (3, 3) float64 maps output pixel coords to input pixel coords; ``size`` is the
    output (height, width)."""

    matrix: np.ndarray
    size: tuple[int, int]

    def __post_init__(self):
        matrix = np.array(self.matrix, dtype=np.float64)
        if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
            raise ConfigError(f"a warp needs a finite 3x3 matrix, got shape {matrix.shape}")
        if abs(matrix[2, 2]) > 1e-12:
            matrix = matrix / matrix[2, 2]
        height, width = (int(v) for v in self.size)
        if height < 1 or width < 1 or height * width > MAX_PIXELS:
            raise ConfigError(f"a warp's output must be 1..{MAX_PIXELS} pixels, got {width}x{height}")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "size", (height, width))

    def then(self, other: Warp) -> Warp:
        """``self`` applied first, then ``other`` (whose input is ``self``'s output)."""
        return Warp(self.matrix @ other.matrix, other.size)

    @property
    def is_affine(self) -> bool:
        return bool(np.abs(self.matrix[2] - (0.0, 0.0, 1.0)).max() < 1e-12)

    @property
    def moves_whole_pixels(self) -> bool:
        """Flips, transposes, quarter turns, crops and pads: done by indexing, exactly."""
        return integer_moves(self) is not None

    def map(self, points: np.ndarray) -> np.ndarray:
        """Output pixel coords (N, 2) -> input pixel coords (N, 2) (inf where a perspective map has
        no finite preimage)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        mapped = np.c_[points, np.ones(len(points))] @ self.matrix.T  # (N, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(mapped[:, 2:] > 1e-12, mapped[:, :2] / mapped[:, 2:], np.inf)


def _translation(dx: float, dy: float) -> np.ndarray:
    return np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])


def identity(size: tuple[int, int]) -> Warp:
    return Warp(np.eye(3), size)


def crop(size: tuple[int, int], x: int, y: int, width: int, height: int) -> Warp:
    """The box with top-left pixel (x, y); it must lie inside the image."""
    in_height, in_width = size
    if not (width >= 1 and height >= 1 and x >= 0 and y >= 0 and x + width <= in_width
            and y + height <= in_height):
        raise ConfigError(f"crop box x={x}, y={y}, {width}x{height} does not lie inside the "
                          f"{in_width}x{in_height} image")
    return Warp(_translation(x, y), (height, width))


def crop_center(size: tuple[int, int], fraction: float) -> Warp:
    """The centred box of ``fraction`` (0, 1] of each side (whole pixels)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"crop fraction must be in (0, 1], got {fraction}")
    in_height, in_width = size
    height, width = max(1, round(in_height * fraction)), max(1, round(in_width * fraction))
    return crop(size, (in_width - width) // 2, (in_height - height) // 2, width, height)


def crop_aspect(size: tuple[int, int], ratio_width: float, ratio_height: float) -> Warp:
    """The largest centred box with aspect ratio ``ratio_width:ratio_height`` (e.g. 16:9)."""
    if not (ratio_width > 0 and ratio_height > 0 and math.isfinite(ratio_width / ratio_height)):
        raise ConfigError(f"aspect ratio must be two positive numbers, got {ratio_width}:{ratio_height}")
    in_height, in_width = size
    target = ratio_width / ratio_height
    if in_width / in_height > target:
        height, width = in_height, min(in_width, max(1, round(in_height * target)))
    else:
        height, width = min(in_height, max(1, round(in_width / target))), in_width
    return crop(size, (in_width - width) // 2, (in_height - height) // 2, width, height)


def resize(size: tuple[int, int], height: int, width: int) -> Warp:
    """Scale to (height, width); the image's edges map to the output's edges (cv2.resize's map)."""
    in_height, in_width = size
    sx, sy = in_width / width, in_height / height  # input pixels per output pixel
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return Warp(matrix, (height, width))


def resize_factor(size: tuple[int, int], factor: float) -> Warp:
    if not (factor > 0 and math.isfinite(factor)):
        raise ConfigError(f"resize factor must be > 0, got {factor}")
    in_height, in_width = size
    return resize(size, max(1, round(in_height * factor)), max(1, round(in_width * factor)))


def rotate(size: tuple[int, int], angle: float, *, expand: bool = False) -> Warp:
    """Rotate counter-clockwise (as seen on screen) by ``angle`` degrees about the image centre.

    ``expand`` grows the output to hold the whole rotated image; otherwise the size is kept and the
    corners are cut. Multiples of 90 degrees use exact cosines, so they stay whole-pixel moves.
    """
    if not math.isfinite(angle):
        raise ConfigError(f"rotation angle must be finite, got {angle}")
    in_height, in_width = size
    quarter = angle / 90.0
    if abs(quarter - round(quarter)) < 1e-12:
        cos, sin = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[round(quarter) % 4]
    else:
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    if expand:
        # The pixel area's extent, less a little so that round-off cannot add a row.
        width = max(1, math.ceil(abs(cos) * in_width + abs(sin) * in_height - 1e-6))
        height = max(1, math.ceil(abs(sin) * in_width + abs(cos) * in_height - 1e-6))
    else:
        height, width = in_height, in_width
    # y points down, so screen-counter-clockwise forward is x' = cos x + sin y, y' = -sin x + cos y;
    # the inverse map below is its transpose, between the two centres.
    inverse_rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    matrix = (_translation((in_width - 1) / 2, (in_height - 1) / 2) @ inverse_rotation
              @ _translation(-(width - 1) / 2, -(height - 1) / 2))
    return Warp(matrix, (height, width))


def flip(size: tuple[int, int], direction: str) -> Warp:
    """``"h"`` mirrors left-right, ``"v"`` top-bottom."""
    in_height, in_width = size
    if direction == "h":
        return Warp([[-1.0, 0.0, in_width - 1], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], size)
    if direction == "v":
        return Warp([[1.0, 0.0, 0.0], [0.0, -1.0, in_height - 1], [0.0, 0.0, 1.0]], size)
    raise ConfigError(f"flip direction must be h or v, got {direction!r}")


def transpose(size: tuple[int, int]) -> Warp:
    """Swap rows and columns (mirror about the main diagonal)."""
    return Warp([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], (size[1], size[0]))


def pad(size: tuple[int, int], top: int, right: int, bottom: int, left: int) -> Warp:
    """Add borders (filled with the warp's ``fill``), in CSS order."""
    if min(top, right, bottom, left) < 0:
        raise ConfigError(f"padding must be >= 0, got {top},{right},{bottom},{left} (crop to remove pixels)")
    in_height, in_width = size
    return Warp(_translation(-left, -top), (in_height + top + bottom, in_width + left + right))


def affine(size: tuple[int, int], forward: np.ndarray) -> Warp:
    """A (2, 3) FORWARD matrix (input pixel coords -> output pixel coords); the size is kept."""
    forward = np.asarray(forward, dtype=np.float64)
    if forward.shape != (2, 3) or not np.isfinite(forward).all():
        raise ConfigError(f"an affine matrix needs 6 finite numbers (2x3), got shape {forward.shape}")
    full = np.vstack([forward, (0.0, 0.0, 1.0)])
    if abs(np.linalg.det(full)) < 1e-9:
        raise ConfigError("the affine matrix is singular: it flattens the image onto a line")
    return Warp(np.linalg.inv(full), size)


def perspective(size: tuple[int, int], source: np.ndarray, target: np.ndarray) -> Warp:
    """The homography taking the 4 ``source`` points (4, 2) to the 4 ``target`` points; size kept."""
    source = np.asarray(source, dtype=np.float64).reshape(-1, 2)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    if source.shape != (4, 2) or target.shape != (4, 2) or not (np.isfinite(source).all()
                                                                and np.isfinite(target).all()):
        raise ConfigError("a perspective warp needs 4 finite source and 4 finite target points")
    # Inverse map: target -> source. cv2 takes float32 points (1e-7 relative, far below its 1/32 px
    # interpolation grid).
    matrix = cv2.getPerspectiveTransform(target.astype(np.float32), source.astype(np.float32))
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix)) < 1e-12:
        raise ConfigError("the perspective points are degenerate (three of them on one line?)")
    return Warp(matrix, size)


def integer_moves(warp: Warp):
    """``(transposed, rows, cols)`` when the warp only moves whole pixels, else None.

    ``rows[i]`` / ``cols[j]`` are the input row / column (of the transposed input when
    ``transposed``) that output row i / column j reads; they may fall outside (filled).
    """
    if not warp.is_affine:
        return None
    rounded = np.rint(warp.matrix)
    if np.abs(warp.matrix - rounded).max() > EPS:
        return None
    (a, b, tx), (c, d, ty) = rounded[:2]
    height, width = warp.size
    if b == 0 and c == 0 and abs(a) == 1 and abs(d) == 1:
        return False, (d * np.arange(height) + ty).astype(np.int64), (a * np.arange(width) + tx).astype(np.int64)
    if a == 0 and d == 0 and abs(b) == 1 and abs(c) == 1:
        # x_in = b*y + tx, y_in = c*x + ty: output row y reads column x_in, i.e. row x_in of the transpose
        return True, (b * np.arange(height) + tx).astype(np.int64), (c * np.arange(width) + ty).astype(np.int64)
    return None
