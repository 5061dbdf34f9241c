"""MATLAB-compatible bicubic ``imresize`` and the LR images of the SR protocol.

Every published SR table (SRCNN, ESPCN, FSRCNN, VDSR, EDSR, ...) makes its low-resolution
inputs with MATLAB's ``imresize(HR, 1/s, 'bicubic')`` on 8-bit images and upsamples its
bicubic baseline with ``imresize(LR, s, 'bicubic')``. Other resizers (PIL, OpenCV,
``torch.nn.functional.interpolate(antialias=True)``) differ from it by up to 0.1-0.3 dB on
Set5, which is the size of the differences the tables report, so numbers are only comparable
when the degradation is MATLAB's. No well-kept pip package gives a bit-compatible MATLAB
``imresize`` for torch tensors (BasicSR's port is numpy-per-image inside a large framework;
the small standalone ports are unmaintained), so it is written here, by hand, following
MATLAB's ``imresize.m``:

* cubic kernel with a = -0.5 (Keys 1981), support [-2, 2];
* when shrinking (scale < 1) with antialiasing, the kernel is widened by 1/scale and scaled
  by scale: ``h(x) = scale * cubic(scale * x)``, support ``4 / scale``;
* output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)``;
  taps ``left = floor(u - width / 2)`` .. ``left + ceil(width) + 1``, weights normalised to sum 1;
* out-of-range taps mirror symmetrically (``[1..n, n..1]``, repeating: the edge pixel is
  repeated, as MATLAB's ``aux`` index table does);
* output size ``ceil(scale * size)``; dimensions are resized in order of increasing scale
  (rows first for equal scales);
* uint8 input stays uint8 after *each* one-dimensional pass: ``resizeAlongDim`` in MATLAB's
  ``imresize.m`` calls ``imresizemex``, whose output "datatype will be same as 'in' datatype"
  (MATLAB's own comment there), i.e. rounded half away from zero and saturated. ``quantize_intermediate=False`` keeps the
  intermediate in float64 instead (what BasicSR's port does); the difference is at most one
  grey level per pixel (~0.005 dB on Set5).

Each 1-D pass is a product with an ``(out, in)`` weight matrix (a banded matrix built from
MATLAB's weight/index tables); for very long axes the same tables are applied with a gather
instead, so memory stays O(out * taps).
"""

from __future__ import annotations

import math

import torch

__all__ = ["cubic", "contributions", "weight_matrix", "imresize", "modcrop", "make_lr", "round_half_up",
           "to_uint8_levels"]

# Above this many matrix entries a 1-D pass gathers its taps instead of building a dense matrix.
_DENSE_LIMIT = 4_000_000


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize``'s ``cubic``).

    >>> cubic(torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0])).tolist()
    [1.0, 0.5625, 0.0, -0.0625, 0.0]
    """
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def contributions(in_length: int, out_length: int, scale: float, antialias: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: float64 weights ``(out, P)`` and 0-based input indices ``(out, P)``.

    Row ``k`` says which input pixels (already mirrored into range) output pixel ``k`` mixes and
    with what weights (summing to 1). Columns whose weights are all zero are dropped, as MATLAB does.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError(f"lengths must be >= 1, got in={in_length}, out={out_length}")
    kernel_width = 4.0
    if scale < 1 and antialias:
        def kernel(t: torch.Tensor) -> torch.Tensor:
            return scale * cubic(scale * t)
        kernel_width = kernel_width / scale
    else:
        kernel = cubic
    x = torch.arange(1, out_length + 1, dtype=torch.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # where each output pixel samples the input (1-based)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(taps, dtype=torch.float64)[None, :]  # (out, P), 1-based
    weights = kernel(u[:, None] - indices)  # (out, P)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # symmetric boundary: index table [1, 2, ..., n, n, n-1, ..., 1], repeated
    aux = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])  # 0-based
    indices = aux[torch.remainder(indices.long() - 1, 2 * in_length)]
    keep = weights.ne(0).any(dim=0)
    return weights[:, keep].contiguous(), indices[:, keep].contiguous()


def weight_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True,
                  dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The 1-D resize as a dense ``(out, in)`` matrix (mirrored taps added into their pixel)."""
    weights, indices = contributions(in_length, out_length, scale, antialias)
    matrix = torch.zeros(out_length, in_length, dtype=torch.float64)
    matrix.scatter_add_(1, indices, weights)
    return matrix.to(dtype)


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, halves away from zero (MATLAB's uint8 cast for x >= 0)."""
    return torch.where(x >= 0, torch.floor(x + 0.5), torch.ceil(x - 0.5))


def to_uint8_levels(x: torch.Tensor) -> torch.Tensor:
    """Float levels -> the values a MATLAB uint8 cast gives (saturate to 0..255, round), still float."""
    return round_half_up(x.clamp(0.0, 255.0))


def _resize_dim(x: torch.Tensor, dim: int, out_length: int, scale: float, antialias: bool) -> torch.Tensor:
    in_length = x.shape[dim]
    if in_length * out_length <= _DENSE_LIMIT:
        matrix = weight_matrix(in_length, out_length, scale, antialias, dtype=x.dtype).to(x.device)  # (out, in)
        moved = x.movedim(dim, -1)  # (..., in)
        return (moved @ matrix.T).movedim(-1, dim)  # (..., out)
    weights, indices = contributions(in_length, out_length, scale, antialias)
    weights, indices = weights.to(x.device, x.dtype), indices.to(x.device)
    moved = x.movedim(dim, -1)  # (..., in)
    out = None
    for p in range(weights.shape[1]):  # P taps (4 for upscaling, 4*s+2 for downscaling)
        term = moved.index_select(-1, indices[:, p]) * weights[:, p]  # (..., out)
        out = term if out is None else out.add_(term)
    return out.movedim(-1, dim)


def imresize(image: torch.Tensor, scale: float | None = None, *, size: tuple[int, int] | None = None,
             antialias: bool = True, quantize_intermediate: bool = True) -> torch.Tensor:
    """MATLAB ``imresize(image, scale, 'bicubic')`` for ``(..., H, W)`` tensors.

    ``scale`` (e.g. ``1/3`` or ``4``) gives the output size ``ceil(scale * (H, W))``; ``size``
    gives it directly (the kernel scale is then ``out / in`` per axis, as in MATLAB).

    * uint8 input: computed in float64, rounded and saturated to uint8 after each axis
      (MATLAB's behaviour; see the module docstring), returned as uint8.
    * float input: computed in the input's float dtype (use float64 for exactness), not
      clamped or rounded (values may overshoot, as with MATLAB doubles).

    >>> imresize(torch.full((1, 6, 6), 0.25, dtype=torch.float64), 1 / 3).shape
    torch.Size([1, 2, 2])
    """
    if image.ndim < 2:
        raise ValueError(f"imresize expects (..., H, W), got shape {tuple(image.shape)}")
    in_h, in_w = image.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        scales = (out_h / in_h, out_w / in_w)
    elif scale is not None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
    else:
        raise ValueError("give scale or size")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size {out_h}x{out_w} is empty")
    is_uint8 = image.dtype == torch.uint8
    if not (is_uint8 or image.is_floating_point()):
        raise ValueError(f"imresize expects uint8 or float images, got {image.dtype}")
    x = image.to(torch.float64) if is_uint8 else image
    # MATLAB: dimensions in order of increasing scale; a stable sort keeps rows first on ties.
    order = sorted(range(2), key=lambda d: scales[d])
    for d in order:
        dim = x.ndim - 2 + d
        x = _resize_dim(x, dim, (out_h, out_w)[d], scales[d], antialias)
        if is_uint8 and quantize_intermediate:
            x = to_uint8_levels(x)
    if is_uint8:
        return to_uint8_levels(x).to(torch.uint8)
    return x


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop ``(..., H, W)`` to a multiple of ``scale`` (the bottom/right remainder is dropped),
    as the SR evaluation scripts do before degrading."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


def make_lr(hr: torch.Tensor, scale: int, *, quantize_intermediate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(hr_cropped, lr)`` by the SR protocol: mod-crop, then MATLAB bicubic down by ``scale``.

    ``hr``: uint8 ``(..., C, H, W)`` (the 8-bit images the papers degrade), or float in [0, 1],
    which is first quantised to 8-bit levels. Returns tensors of the input's kind: uint8 in ->
    uint8 out; float in -> float32 in [0, 1] holding exact 8-bit levels
    (``LR = round(clip(imresize(HR, 1/s)))``).
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    float_input = hr.is_floating_point()
    if float_input:
        hr8 = to_uint8_levels(hr.to(torch.float64) * 255.0).to(torch.uint8)
    elif hr.dtype == torch.uint8:
        hr8 = hr
    else:
        raise ValueError(f"make_lr expects uint8 or float images, got {hr.dtype}")
    hr8 = modcrop(hr8, scale)
    if min(hr8.shape[-2:]) < scale:
        raise ValueError(f"image of size {tuple(hr.shape[-2:])} is smaller than the scale {scale}")
    lr8 = imresize(hr8, 1.0 / scale, quantize_intermediate=quantize_intermediate)
    if float_input:
        return hr8.float() / 255.0, lr8.float() / 255.0
    return hr8, lr8
