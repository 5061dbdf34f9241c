"""Stylising a region: a mask (white = stylise, black = keep the content), feathered *inward* so the
transition lies inside the white region and every pixel outside it stays the content's exactly.

During the optimisation the image the network sees is ``m * x + (1 - m) * content`` with the feathered
mask ``m``, so the edge is optimised together with the untouched surroundings (no seam), and the style
Gram counts only the positions inside the mask (:func:`genvision.apps.style.losses.gram_matrix` with a
weight): the kept content does not dilute the style statistics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import ConfigError, InputShapeError


def feather(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """(B, 1, H, W) mask in [0, 1] -> a soft mask that is 0 wherever ``mask`` is 0 and ramps up over
    ``2 * radius`` pixels inside the white region: a min filter pulls the edge in by ``radius``, then a
    box blur of the same radius spreads it back out to, never past, the original edge. The image border
    is not an edge (padding is ignored by both filters)."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise InputShapeError(f"feather expects a (B, 1, H, W) mask, got shape {tuple(mask.shape)}")
    if radius <= 0:
        return mask
    size = 2 * radius + 1
    eroded = -F.max_pool2d(-mask, size, stride=1, padding=radius)  # min filter; max_pool pads with -inf
    return F.avg_pool2d(eroded, size, stride=1, padding=radius, count_include_pad=False)  # (B, 1, H, W)


def auto_radius(height: int, width: int) -> int:
    """The default ramp: 1/64 of the longest side (8 px at 512), at least 1 pixel."""
    return max(1, round(max(height, width) / 64))


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 1, h, w), area-averaged when shrinking so thin regions keep their weight."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return F.interpolate(mask, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0.0, 1.0)


def composite(inside: torch.Tensor, outside: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``soft * inside + (1 - soft) * outside``: where ``soft`` is 0 the result is ``outside`` exactly."""
    return torch.lerp(outside, inside, soft)


def check_mask(mask: torch.Tensor, name: str = "mask") -> None:
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise ConfigError(f"{name}: values must be in [0, 1]")
    if float(mask.max()) == 0.0:
        raise ConfigError(f"{name} is black everywhere: there is nothing to stylise (white = stylise)")


__all__ = ["auto_radius", "check_mask", "composite", "feather", "resize_mask"]
