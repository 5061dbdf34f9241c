"""Multi-head self-attention over tokens, and over the patches of an image batch.

For tokens ``x`` (B, N, D), ``heads`` heads of size ``d = D / heads``:

    q, k, v = x W_q, x W_k, x W_v                      each (B, heads, N, d)
    A = softmax(q k^T / sqrt(d))                         (B, heads, N, N), rows sum to 1 over keys
    out = concat_heads(A v) W_o                          (B, N, D)

Two paths compute the same ``out``:

* fast (``need_weights=False``): :func:`torch.nn.functional.scaled_dot_product_attention`,
  which uses fused / memory-efficient kernels and never materialises ``A`` where it can avoid it;
* explicit (``need_weights=True``): the formula above written out, returning ``A`` as well
  (for attention maps and rollout). The tests check that both agree.

:class:`PatchSelfAttention` takes an image batch directly: a 1x3x224x224 image with patch
size 16 becomes 196 tokens (plus optional fixed sin-cos positions) and is attended over.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError
from .embeddings import PatchEmbed, sincos_2d


class AttentionOutput(NamedTuple):
    tokens: torch.Tensor  # (B, N, D)
    weights: torch.Tensor | None  # (B, heads, N, N) when requested, else None


class SelfAttention(nn.Module):
    """Multi-head self-attention on (B, N, D) tokens."""

    def __init__(self, dim: int, *, heads: int = 8, qkv_bias: bool = True, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0):
        super().__init__()
        if heads < 1 or dim % heads:
            raise ConfigError(f"attention dim {dim} must be divisible by heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_dropout = attn_dropout
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: torch.Tensor, *, need_weights: bool = False) -> AttentionOutput:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected tokens (B, N, {self.dim}), got shape {tuple(x.shape)}")
        qkv = self.qkv(x)  # (B, N, 3 D)
        q, k, v = rearrange(qkv, "b n (three h d) -> three b h n d", three=3, h=self.heads)  # each (B, h, N, d)
        dropout = self.attn_dropout if self.training else 0.0
        if need_weights:
            scores = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale  # (B, h, N, N)
            weights = scores.float().softmax(dim=-1).to(q.dtype)  # (B, h, N, N), sums to 1 over keys j
            attended = F.dropout(weights, dropout, self.training) if dropout else weights
            out = attended @ v  # (B, h, N, d)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, h, N, d)
        out = rearrange(out, "b h n d -> b n (h d)")  # (B, N, D)
        return AttentionOutput(self.proj_drop(self.proj(out)), weights)


class PatchSelfAttention(nn.Module):
    """Self-attention over the patches of an image batch: (B, C, H, W) -> tokens (B, N, dim).

    The image is cut into ``patch_size`` patches (a linear patch embedding), fixed 2-D sin-cos
    positions are added (``positions=False`` leaves them out), and :class:`SelfAttention` runs
    over the N = (H / p)(W / p) tokens. Token sequences (B, N, dim) are accepted as well.
    """

    def __init__(self, *, in_channels: int = 3, dim: int = 256, heads: int = 8, patch_size: int = 16,
                 positions: bool = True, qkv_bias: bool = True):
        super().__init__()
        self.patch_size, self.dim, self.positions = patch_size, dim, positions
        self.embed = PatchEmbed(in_channels=in_channels, dim=dim, patch_size=patch_size)
        self.attention = SelfAttention(dim, heads=heads, qkv_bias=qkv_bias)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, dim) patch tokens with positions."""
        x = self.embed(images)  # (B, N, dim)
        if self.positions:
            gh, gw = images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size
            x = x + sincos_2d(gh, gw, self.dim).to(x.device, x.dtype)[None]  # (1, N, dim) broadcast
        return x

    def forward(self, x: torch.Tensor, *, need_weights: bool = False) -> AttentionOutput:
        tokens = self.tokens(x) if x.ndim == 4 else x  # (B, N, dim)
        return self.attention(tokens, need_weights=need_weights)


class MLP(nn.Sequential):
    """(B, N, dim) -> (B, N, dim): Linear - GELU - Dropout - Linear - Dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                         nn.Dropout(dropout))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``; optionally returns the weights."""

    def __init__(self, dim: int, *, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads=heads, attn_dropout=attn_dropout, proj_dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)

    def forward(self, x: torch.Tensor, *, need_weights: bool = False) -> AttentionOutput:
        attended, weights = self.attn(self.norm1(x), need_weights=need_weights)
        x = x + attended
        x = x + self.mlp(self.norm2(x))
        return AttentionOutput(x, weights)


__all__ = ["AttentionOutput", "MLP", "PatchSelfAttention", "SelfAttention", "TransformerBlock"]
