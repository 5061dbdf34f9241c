"""DiffAugment: differentiable augmentation for data-efficient GAN training.

Zhao, Liu, Lin, Zhu & Han, "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020 (arXiv:2006.10738). The same random transforms are applied to real and fake
images before D sees them; because every op is differentiable, G's gradient flows through.

Written here (a few lines per op) because no well-kept pip package ships it. It follows the
paper's policies: ``color`` (brightness, saturation, contrast), ``translation`` (up to 1/8 of
the image size, zero padding) and ``cutout`` (a square of half the image size set to zero).
Randomness comes from torch's global RNG on ``x``'s device, so a resumed run that restores
the RNG state replays the same augmentations.

>>> x = torch.zeros(2, 3, 8, 8)
>>> diff_augment(x, "translation,cutout").shape
torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError


def _rand(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)  # (B, 1, 1, 1) in [0, 1)


def brightness(x: torch.Tensor) -> torch.Tensor:
    return x + (_rand(x) - 0.5)  # shift by U(-0.5, 0.5)


def saturation(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:  # grey images have no saturation
        return x
    mean = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    return (x - mean) * (_rand(x) * 2) + mean  # scale chroma by U(0, 2)


def contrast(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x - mean) * (_rand(x) + 0.5) + mean  # scale by U(0.5, 1.5)


def translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size in y and x, filling with zeros."""
    B, C, H, W = x.shape
    sy, sx = int(H * ratio + 0.5), int(W * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (B, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (B, 1), device=x.device)
    padded = F.pad(x, (sx, sx, sy, sy))  # (B, C, H + 2sy, W + 2sx)
    rows = (torch.arange(H, device=x.device) + sy - dy).view(B, 1, H, 1).expand(B, C, H, W + 2 * sx)
    out = padded.gather(2, rows)  # (B, C, H, W + 2sx)
    cols = (torch.arange(W, device=x.device) + sx - dx).view(B, 1, 1, W).expand(B, C, H, W)
    return out.gather(3, cols)  # (B, C, H, W)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random centre (it may be clipped)."""
    B, _, H, W = x.shape
    h, w = int(H * ratio + 0.5), int(W * ratio + 0.5)
    top = torch.randint(0, H + (1 - h % 2), (B, 1), device=x.device) - h // 2
    left = torch.randint(0, W + (1 - w % 2), (B, 1), device=x.device) - w // 2
    ys = torch.arange(H, device=x.device)
    xs = torch.arange(W, device=x.device)
    in_rows = (ys >= top) & (ys < top + h)  # (B, H)
    in_cols = (xs >= left) & (xs < left + w)  # (B, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


POLICIES = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str) -> list[str]:
    """``"color,translation"`` -> ``["color", "translation"]``; ConfigError for unknown names."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in POLICIES]
    if unknown:
        raise ConfigError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout") -> torch.Tensor:
    """Augment a batch (B, C, H, W) in [-1, 1]; differentiable, same shape and device."""
    if x.ndim != 4:
        raise ValueError(f"diff_augment expects (B, C, H, W), got shape {tuple(x.shape)}")
    for name in parse_policy(policy):
        for op in POLICIES[name]:
            x = op(x)
    return x


__all__ = ["diff_augment", "parse_policy", "POLICIES", "brightness", "saturation", "contrast", "translation",
           "cutout"]
