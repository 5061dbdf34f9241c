"""Applying geometric ops: a chain of them is one :class:`~.warps.Warp` (a 3x3 matrix from output
to input pixel coordinates, built and composed in :mod:`.warps`), so it resamples the image once.

:func:`warp_array` (numpy, OpenCV) and :func:`warp_tensor` (torch, differentiable) apply a warp,
choosing the exact cheap path when there is one:

1. whole-pixel moves (flips, transposes, 90-degree rotations, crops, pads: a signed permutation
   matrix with integer offsets) are indexing: exact, no resampling;
2. axis-aligned scalings of a whole-pixel box (resize, crop + resize) are a resize of that box
   (``cv2.resize``; edges replicate, so no fill colour bleeds into the border);
3. anything else is ``cv2.warpAffine`` / ``cv2.warpPerspective`` with ``WARP_INVERSE_MAP``
   (torch: ``grid_sample``), filling what lies outside the input with ``fill``.

Antialiasing (when a warp shrinks; ``antialias=True``, and always for "area"): the exact box
filter (``INTER_AREA``; torch: the same overlap weights as two matrix products) for bilinear/area
resizes that shrink and enlarge no axis; otherwise a Gaussian prefilter of the input whose sigma
follows the warp's footprint (see :func:`_prefilter_sigma`), then the chosen kernel. Nearest is
never prefiltered (it is for masks and labels, whose values must not mix). torch has no Lanczos
kernel: ``warp_tensor`` uses bicubic for it. "matlab" is MATLAB's bicubic ``imresize`` from
:mod:`genvision.nn.resize`, for resizes and crops only.

``fill`` is in units of full scale (0 = black, 1 = white, whatever the dtype), a number or one
value per channel.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from genvision.errors import ConfigError, InputShapeError
from genvision.nn.resize import imresize

# The warps and their builders live in .warps; they are re-exported here so that one import gives
# both the ops and their application.
from .warps import (
    EPS,
    Warp,
    affine,
    crop,
    crop_aspect,
    crop_center,
    flip,
    identity,
    integer_moves,
    pad,
    perspective,
    resize,
    resize_factor,
    rotate,
    transpose,
)

__all__ = ["INTERPOLATIONS", "Warp", "affine", "crop", "crop_aspect", "crop_center", "flip", "identity", "pad",
           "perspective", "resize", "resize_factor", "rotate", "transpose", "warp_array", "warp_tensor"]

INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos", "matlab")
# "area" is bilinear plus antialiasing (the box filter where it applies); cv2.resize's INTER_NEAREST
# reads floor(x * scale), half a pixel off the centre convention, so resizes use NEAREST_EXACT.
_CV2_FLAGS = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC,
              "area": cv2.INTER_LINEAR, "lanczos": cv2.INTER_LANCZOS4, "matlab": cv2.INTER_CUBIC}
# grid_sample has no Lanczos or area kernel: the nearest it has.
_TORCH_MODES = {"nearest": "nearest", "bilinear": "bilinear", "area": "bilinear", "bicubic": "bicubic",
                "lanczos": "bicubic", "matlab": "bicubic"}
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0,
               np.dtype(np.float32): 1.0, np.dtype(np.float64): 1.0}


# ---------------------------------------------------------------------------------------------
# Choosing the path


def _valid_span(indices: np.ndarray, length: int) -> tuple[int, int] | None:
    """The contiguous range [start, stop) of output positions whose (monotonic) indices are in range."""
    valid = np.flatnonzero((indices >= 0) & (indices < length))
    return (int(valid[0]), int(valid[-1]) + 1) if len(valid) else None


def _resize_box(warp: Warp, in_size: tuple[int, int]):
    """``(x0, x1, y0, y1, flip_x, flip_y)`` when the warp scales a whole-pixel box of the input
    (inside it) onto the whole output along the axes, else None."""
    m = warp.matrix
    if not warp.is_affine or abs(m[0, 1]) > 1e-12 or abs(m[1, 0]) > 1e-12:
        return None
    box = []
    for scale, offset, out_length, in_length in ((m[0, 0], m[0, 2], warp.size[1], in_size[1]),
                                                 (m[1, 1], m[1, 2], warp.size[0], in_size[0])):
        edges = sorted((scale * -0.5 + offset + 0.5, scale * (out_length - 0.5) + offset + 0.5))
        rounded = [round(e) for e in edges]
        if max(abs(e - r) for e, r in zip(edges, rounded)) > EPS or rounded[0] < 0 \
                or rounded[1] > in_length or rounded[1] - rounded[0] < 1:
            return None
        box.append((rounded[0], rounded[1], scale < 0))
    (x0, x1, flip_x), (y0, y1, flip_y) = box
    return x0, x1, y0, y1, flip_x, flip_y


def _footprint(warp: Warp, in_size: tuple[int, int]) -> tuple[float, float]:
    """How many input pixels one output pixel spans along the input's x and y axes.

    The rows of the map's Jacobian at a 5x5 grid of output points (a perspective map varies; one
    prefilter for the whole image takes the median, a trade-off against per-pixel filtering)."""
    height, width = warp.size
    ys, xs = np.meshgrid(np.linspace(0, height - 1, 5), np.linspace(0, width - 1, 5), indexing="ij")
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])  # (3, N)
    m = warp.matrix
    numerator, q = m[:2] @ points, m[2] @ points  # (2, N), (N,)
    keep = q > 1e-12
    if not keep.any():
        return 1.0, 1.0
    numerator, q = numerator[:, keep], q[keep]
    # d(p/q) = (dp * q - p * dq) / q^2
    jacobian = (m[:2, :2][None] * q[:, None, None] - numerator.T[:, :, None] * m[2, :2][None, None]) \
        / (q * q)[:, None, None]  # (N, 2, 2): input axis x output axis
    extents = np.sqrt((jacobian ** 2).sum(axis=2))  # (N, 2)
    sx, sy = np.median(extents, axis=0)
    return float(sx), float(sy)


def _prefilter_sigma(extent: float) -> float:
    """Gaussian sigma (input pixels) that antialiases a shrink by ``extent`` input px per output px.

    sigma = extent / 2 damps the new Nyquist frequency 1 / (2 extent) to exp(-pi^2 / 8) ~ 0.29 of
    its amplitude (scikit-image's rescale uses (s - 1) / 2, in the same spirit); the ~0.5 px the
    source pixels and the interpolation kernel already blur is taken off in quadrature, so that the
    prefilter fades out continuously as the warp approaches no shrink at all.
    """
    return 0.5 * math.sqrt(max(extent * extent - 1.0, 0.0))


def _gaussian_kernel_size(sigma: float) -> int:
    return 2 * math.ceil(3 * sigma) + 1 if sigma > 0.05 else 1


def _inside(warp: Warp, in_size: tuple[int, int]) -> bool:
    """Whether every output pixel centre maps into the input's pixel area (corners suffice: the map
    is projective, lines stay lines)."""
    height, width = warp.size
    corners = warp.map(np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]]))
    in_height, in_width = in_size
    return bool(np.isfinite(corners).all() and (corners[:, 0] >= -0.5 - EPS).all()
                and (corners[:, 0] <= in_width - 0.5 + EPS).all() and (corners[:, 1] >= -0.5 - EPS).all()
                and (corners[:, 1] <= in_height - 0.5 + EPS).all())


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")


def _antialiases(interpolation: str, antialias: bool) -> bool:
    return interpolation != "nearest" and (antialias or interpolation == "area")


def _box_filter_shrink(interpolation: str, antialias: bool, sx: float, sy: float) -> bool:
    """Whether a resize by (sx, sy) input px per output px is the exact box filter (cv2's INTER_AREA):
    for bilinear/area when it shrinks and enlarges neither axis."""
    return (interpolation in ("bilinear", "area") and _antialiases(interpolation, antialias)
            and min(sx, sy) >= 1 - EPS and max(sx, sy) > 1 + EPS)


def _matlab_only_for_resizes() -> ConfigError:
    return ConfigError("interpolation 'matlab' (MATLAB bicubic) is only for resizes and crops; "
                       "use bicubic for rotations and other warps")


# ---------------------------------------------------------------------------------------------
# numpy


def _fill_values(fill, channels: int, full_scale: float) -> np.ndarray:
    values = np.atleast_1d(np.asarray(fill, dtype=np.float64))
    if values.ndim != 1 or len(values) not in (1, channels) or not np.isfinite(values).all():
        raise ConfigError(f"fill must be one number or {channels} (one per channel), in [0, 1], got {fill!r}")
    return np.broadcast_to(np.clip(values, 0.0, 1.0) * full_scale, (channels,))


def warp_array(image: np.ndarray, warp: Warp, *, interpolation: str = "bilinear", fill=0.0,
               antialias: bool = True) -> np.ndarray:
    """Resample ``image`` (H, W) or (H, W, C), uint8 / uint16 / float32, by ``warp``; same dtype and
    channels out, shape ``warp.size`` (+ C). Up to 4 channels for resampling warps (OpenCV)."""
    _check_interpolation(interpolation)
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.dtype not in _FULL_SCALE:
        raise ConfigError(f"expected an (H, W) or (H, W, C) uint8/uint16/float32 image, got "
                          f"{image.dtype} {image.shape}")
    channels = image.shape[2] if image.ndim == 3 else 1
    fill_values = _fill_values(fill, channels, _FULL_SCALE[image.dtype])
    if np.issubdtype(image.dtype, np.integer):
        fill_values = np.round(fill_values)
    in_size = image.shape[:2]
    moves = integer_moves(warp)
    if moves is not None:
        return _move_pixels_array(image, moves, warp.size, fill_values)
    if not 1 <= channels <= 4:
        raise ConfigError(f"resampling supports 1 to 4 channels, got {channels}")
    box = _resize_box(warp, in_size)
    if box is not None:
        out = _resize_array(image, box, warp.size, interpolation, antialias)
    elif interpolation == "matlab":
        raise _matlab_only_for_resizes()
    else:
        out = _warp_general_array(image, warp, interpolation, fill_values, antialias)
    out = out.reshape(warp.size + image.shape[2:])  # (H, W[, C]): OpenCV drops a single channel
    if image.dtype.kind == "f" and interpolation in ("bicubic", "lanczos", "matlab"):
        np.clip(out, 0.0, 1.0, out=out)  # cubic and Lanczos kernels overshoot
    return out


def _move_pixels_array(image, moves, size, fill_values) -> np.ndarray:
    transposed, rows, cols = moves
    source = image.swapaxes(0, 1) if transposed else image
    out = np.empty(size + image.shape[2:], dtype=image.dtype)
    row_span, col_span = _valid_span(rows, source.shape[0]), _valid_span(cols, source.shape[1])
    if row_span is None or col_span is None or row_span != (0, size[0]) or col_span != (0, size[1]):
        out[...] = fill_values if image.ndim == 3 else fill_values[0]
    if row_span is not None and col_span is not None:
        (r0, r1), (c0, c1) = row_span, col_span
        out[r0:r1, c0:c1] = source[_as_slice(rows[r0:r1]), _as_slice(cols[c0:c1])]
    return out


def _as_slice(indices: np.ndarray) -> slice:
    """An arithmetic progression of step +-1 as a slice (views, not gathers)."""
    step = 1 if len(indices) < 2 else int(indices[1] - indices[0])
    stop = int(indices[-1]) + step
    return slice(int(indices[0]), stop if stop >= 0 else None, step)


def _resize_array(image, box, size, interpolation, antialias) -> np.ndarray:
    x0, x1, y0, y1, flip_x, flip_y = box
    region = image[y0:y1, x0:x1][::-1 if flip_y else 1, ::-1 if flip_x else 1]
    height, width = size
    sx, sy = (x1 - x0) / width, (y1 - y0) / height
    if interpolation == "matlab":
        return _matlab_resize_array(region, size)
    flag = cv2.INTER_NEAREST_EXACT if interpolation == "nearest" else _CV2_FLAGS[interpolation]
    if _box_filter_shrink(interpolation, antialias, sx, sy):
        flag = cv2.INTER_AREA  # the exact box filter: the standard antialiased shrink
    elif _antialiases(interpolation, antialias):
        region = _blur_array(region, _prefilter_sigma(sx), _prefilter_sigma(sy))
    return cv2.resize(np.ascontiguousarray(region), (width, height), interpolation=flag)


def _matlab_resize_array(region: np.ndarray, size) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(region))
    tensor = tensor[..., None] if tensor.ndim == 2 else tensor  # (h, w, C)
    chw = tensor.permute(2, 0, 1)  # (C, h, w)
    if region.dtype == np.uint8:
        return imresize(chw, size=size).permute(1, 2, 0).numpy()
    full_scale = _FULL_SCALE[region.dtype]
    out = imresize(chw.to(torch.float64), size=size).permute(1, 2, 0).numpy()  # (H, W, C)
    if region.dtype.kind == "f":
        return out.astype(region.dtype)
    return np.clip(np.round(out), 0, full_scale).astype(region.dtype)


def _blur_array(image: np.ndarray, sigma_x: float, sigma_y: float) -> np.ndarray:
    kx, ky = _gaussian_kernel_size(sigma_x), _gaussian_kernel_size(sigma_y)
    if kx == ky == 1:
        return image
    # REFLECT_101 is what kornia's "reflect" (torch's pad) does, so both paths agree at the edges.
    return cv2.GaussianBlur(np.ascontiguousarray(image), (kx, ky), sigmaX=max(sigma_x, 1e-3),
                            sigmaY=max(sigma_y, 1e-3), borderType=cv2.BORDER_REFLECT_101)


def _warp_general_array(image, warp, interpolation, fill_values, antialias) -> np.ndarray:
    in_size = image.shape[:2]
    if _antialiases(interpolation, antialias):
        sx, sy = _footprint(warp, in_size)
        image = _blur_array(image, _prefilter_sigma(sx), _prefilter_sigma(sy))
    flags = _CV2_FLAGS[interpolation] | cv2.WARP_INVERSE_MAP
    # With every output pixel inside the input, replicate the edge for the kernel's outer taps;
    # otherwise blend with the fill, which antialiases the image's edge like a bilinear coverage.
    border = cv2.BORDER_REPLICATE if _inside(warp, in_size) else cv2.BORDER_CONSTANT
    height, width = warp.size
    fill = tuple(float(v) for v in fill_values) + (0.0,) * (4 - len(fill_values))
    image = np.ascontiguousarray(image)
    if warp.is_affine:
        return cv2.warpAffine(image, warp.matrix[:2], (width, height), flags=flags, borderMode=border,
                              borderValue=fill)
    return cv2.warpPerspective(image, warp.matrix, (width, height), flags=flags, borderMode=border,
                               borderValue=fill)


# ---------------------------------------------------------------------------------------------
# torch


def warp_tensor(image: torch.Tensor, warp: Warp, *, interpolation: str = "bilinear", fill=0.0,
                antialias: bool = True) -> torch.Tensor:
    """Resample (B, C, H, W) or (C, H, W) float images in [0, 1] by ``warp``: differentiable, on
    the image's device, the same paths as :func:`warp_array` (grid_sample with align_corners=False
    for the general one)."""
    _check_interpolation(interpolation)
    if image.ndim == 3:
        return warp_tensor(image[None], warp, interpolation=interpolation, fill=fill, antialias=antialias)[0]
    if image.ndim != 4:
        raise InputShapeError(f"expected a (B, C, H, W) or (C, H, W) tensor, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ConfigError(f"warp_tensor expects a float tensor in [0, 1], got {image.dtype}")
    in_size = tuple(image.shape[-2:])
    fill_values = torch.as_tensor(_fill_values(fill, image.shape[1], 1.0).copy(), dtype=image.dtype,
                                  device=image.device).view(1, -1, 1, 1)  # (1, C, 1, 1)
    moves = integer_moves(warp)
    if moves is not None:
        return _move_pixels_tensor(image, moves, warp.size, fill_values)
    box = _resize_box(warp, in_size)
    if box is not None:
        x0, x1, y0, y1, flip_x, flip_y = box
        region = image[..., y0:y1, x0:x1]
        flip_dims = [d for d, flipped in ((-1, flip_x), (-2, flip_y)) if flipped]
        region = region.flip(flip_dims) if flip_dims else region
        sx, sy = (x1 - x0) / warp.size[1], (y1 - y0) / warp.size[0]
        if interpolation == "matlab":
            return imresize(region, size=warp.size).clamp(0.0, 1.0)
        if _box_filter_shrink(interpolation, antialias, sx, sy):
            return _area_resize_tensor(region, warp.size)
    elif interpolation == "matlab":
        raise _matlab_only_for_resizes()
    return _warp_general_tensor(image, warp, interpolation, fill_values, antialias)


def _move_pixels_tensor(image, moves, size, fill_values) -> torch.Tensor:
    transposed, rows, cols = moves
    source = image.transpose(-1, -2) if transposed else image
    row_span, col_span = _valid_span(rows, source.shape[-2]), _valid_span(cols, source.shape[-1])
    if row_span is None or col_span is None:
        return fill_values.expand(image.shape[0], -1, *size).clone()
    (r0, r1), (c0, c1) = row_span, col_span
    as_index = {"dtype": torch.long, "device": image.device}
    moved = source.index_select(-2, torch.as_tensor(rows[r0:r1], **as_index)) \
        .index_select(-1, torch.as_tensor(cols[c0:c1], **as_index))  # (B, C, r1-r0, c1-c0)
    if (r0, r1, c0, c1) == (0, size[0], 0, size[1]):
        return moved
    out = fill_values.expand(image.shape[0], -1, *size).clone()
    out[..., r0:r1, c0:c1] = moved  # in place on a fresh tensor: autograd follows it
    return out


def _area_weights(in_length: int, out_length: int, like: torch.Tensor) -> torch.Tensor:
    """The (out, in) box-filter matrix of a shrink: each output pixel averages the input area it
    covers, partial pixels by their overlap (what cv2's INTER_AREA computes for a shrink)."""
    scale = in_length / out_length
    starts = torch.arange(out_length, dtype=torch.float64) * scale  # (out,)
    left = torch.arange(in_length, dtype=torch.float64)  # (in,)
    overlap = (torch.minimum(starts[:, None] + scale, left[None] + 1)
               - torch.maximum(starts[:, None], left[None])).clamp(min=0)  # (out, in)
    return (overlap / scale).to(dtype=like.dtype, device=like.device)


def _area_resize_tensor(region: torch.Tensor, size) -> torch.Tensor:
    rows = _area_weights(region.shape[-2], size[0], region)  # (H, h)
    cols = _area_weights(region.shape[-1], size[1], region)  # (W, w)
    return rows @ region @ cols.T  # (B, C, H, W)


def _sampling_grid(warp: Warp, in_size, like: torch.Tensor) -> torch.Tensor:
    """grid_sample's (1, H, W, 2) grid, built on the image's device. With align_corners=False, pixel
    centre x of a w-pixel axis sits at u = (2x + 1) / w - 1, so the warp is conjugated by that map."""
    height, width = warp.size
    in_height, in_width = in_size
    from_output_units = np.array([[width / 2, 0, (width - 1) / 2], [0, height / 2, (height - 1) / 2], [0, 0, 1]])
    to_input_units = np.array([[2 / in_width, 0, 1 / in_width - 1], [0, 2 / in_height, 1 / in_height - 1], [0, 0, 1]])
    theta = to_input_units @ warp.matrix @ from_output_units  # (3, 3), normalised coordinates
    compute = torch.float64 if like.dtype == torch.float64 else torch.float32
    options = {"dtype": compute, "device": like.device}
    ys = (2 * torch.arange(height, **options) + 1) / height - 1
    xs = (2 * torch.arange(width, **options) + 1) / width - 1
    points = torch.stack([*torch.meshgrid(xs, ys, indexing="xy"), torch.ones(height, width, **options)], -1)  # (H, W, 3)
    mapped = points @ torch.as_tensor(theta.T, **options)  # (H, W, 3)
    depth = mapped[..., 2:]
    # no finite preimage (behind a perspective's horizon): far outside, i.e. the fill
    grid = torch.where(depth > 1e-12, mapped[..., :2] / depth.clamp(min=1e-12), torch.full_like(depth, -1e6))
    return grid[None].to(like.dtype)


def _warp_general_tensor(image, warp, interpolation, fill_values, antialias) -> torch.Tensor:
    in_size = tuple(image.shape[-2:])
    if _antialiases(interpolation, antialias):
        sigma_x, sigma_y = (_prefilter_sigma(s) for s in _footprint(warp, in_size))
        kx, ky = _gaussian_kernel_size(sigma_x), _gaussian_kernel_size(sigma_y)
        if kx > 1 or ky > 1:
            image = gaussian_blur2d(image, (ky, kx), (max(sigma_y, 1e-3), max(sigma_x, 1e-3)),
                                    border_type="reflect")
    grid = _sampling_grid(warp, in_size, image).expand(image.shape[0], -1, -1, -1)  # (B, H, W, 2)
    mode = _TORCH_MODES[interpolation]
    if _inside(warp, in_size):
        out = F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=False)
    else:
        # Zero padding around (image - fill), then + fill: a constant border of the fill colour.
        out = F.grid_sample(image - fill_values, grid, mode=mode, padding_mode="zeros",
                            align_corners=False) + fill_values
    return out.clamp(0.0, 1.0) if mode == "bicubic" else out
