"""Token embeddings shared by the transformer families (ViT, DiT).

* :class:`PatchEmbed` -- an image (B, C, H, W) to patch tokens (B, N, D), N = (H / p) (W / p),
  with a stride-p convolution (the same as a linear map of each flattened p x p patch).
* :func:`sincos_2d` -- fixed 2-D sine-cosine positions (MAE / DiT): half the channels encode
  the row, half the column, each as ``[sin(pos w_k), cos(pos w_k)]`` with ``w_k = 10000^(-k/(D/4))``.
* :func:`timestep_embedding` + :class:`TimestepEmbedder` -- sinusoidal features of a scalar
  time followed by an MLP (DDPM / DiT).
* :func:`patchify` / :func:`unpatchify` -- the einops round trip between images and per-patch
  pixel vectors, ``'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'``.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from ..errors import ConfigError


def check_patch_grid(image_size: int, patch_size: int, where: str = "model") -> int:
    """Patches per side; raises ConfigError unless ``patch_size`` divides ``image_size``."""
    if patch_size < 1 or image_size % patch_size:
        raise ConfigError(f"{where}: patch_size {patch_size} must divide image_size {image_size}")
    return image_size // patch_size


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C) with N = (H/p)(W/p), patches in row-major order."""
    return rearrange(images, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int, grid: int) -> torch.Tensor:
    """(B, N, p*p*C) -> (B, C, grid*p, grid*p): the inverse of :func:`patchify` for square grids."""
    return rearrange(tokens, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=grid, w=grid, p1=patch_size,
                     p2=patch_size, c=channels)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, dim) patch tokens, N = (H / p) * (W / p)."""

    def __init__(self, *, in_channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4:
            raise ConfigError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
        p = self.patch_size
        if images.shape[-1] % p or images.shape[-2] % p:
            raise ConfigError(f"image size {tuple(images.shape[-2:])} is not divisible by patch size {p}")
        x = self.proj(images)  # (B, dim, H/p, W/p)
        return rearrange(x, "b d h w -> b (h w) d")  # (B, N, dim)


def _sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions -> (N, dim) as [sin(pos w), cos(pos w)], w_k = 10000^(-k / (dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None]  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (N, dim)


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """Fixed 2-D positions, float32 (grid_h * grid_w, dim), row-major like :class:`PatchEmbed`."""
    if dim % 4:
        raise ConfigError(f"sin-cos 2-D positions need dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")  # (gh, gw) each
    emb = torch.cat([_sincos_1d(rows.flatten(), dim // 2), _sincos_1d(cols.flatten(), dim // 2)], dim=1)
    return emb.float()  # (gh * gw, dim)


def timestep_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10000.0, scale: float = 1000.0
                       ) -> torch.Tensor:
    """(B,) times -> (B, dim) ``[cos(s t f_k), sin(s t f_k)]`` with ``f_k = max_period^(-k / (dim/2))``.

    ``scale`` maps flow-matching times in [0, 1] onto the 0..1000 range the frequencies were
    designed for (DDPM's integer steps).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = (t.float() * scale)[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2 half)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)  # (B, dim)
    return emb


class TimestepEmbedder(nn.Module):
    """(B,) times in [0, 1] -> (B, dim): sinusoidal features then Linear-SiLU-Linear."""

    def __init__(self, dim: int, frequency_dim: int = 256):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t, self.frequency_dim))  # (B, dim)


__all__ = ["PatchEmbed", "TimestepEmbedder", "check_patch_grid", "patchify", "sincos_2d", "timestep_embedding",
           "unpatchify"]
