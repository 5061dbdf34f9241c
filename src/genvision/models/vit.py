"""Vision Transformer classifier (Dosovitskiy et al. 2021), sized for small images.

Read top to bottom: the config, then the registered :class:`ViTClassifier`:

* patch embedding: ``patch_size`` patches -> ``dim``-d tokens (N = (S / p)^2; 49 for 28 px / 4);
* ``pool="cls"`` prepends a learned class token whose final state is the image feature;
  ``pool="mean"`` averages the final patch tokens instead;
* positions: ``learned`` (a trained (N [+1], dim) table) or fixed 2-D ``sincos``;
* ``depth`` pre-norm transformer blocks (:class:`genvision.nn.attention.TransformerBlock`),
  a final LayerNorm: :meth:`forward_features` (B, dim); ``head``: Linear -> logits.

The classifier interface is the one every classifier family offers (see
``models/classifier.py``); :meth:`forward_with_attention` also returns every block's attention
weights for explanations (attention rollout, per-head maps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import repeat
from torch import nn

from ..config import MAX_IMAGE_SIZE, check_range
from ..errors import ConfigError
from ..nn.attention import TransformerBlock
from ..nn.checks import check_images
from ..nn.embeddings import PatchEmbed, check_patch_grid, sincos_2d
from ..registry import register_model
from .classifier import ImageClassifier

POOLS = ("cls", "mean")
POSITIONS = ("learned", "sincos")
MAX_DEPTH = 1024  # ViT-H has 32 blocks
MAX_MLP_RATIO = 64.0  # transformers use 2-4


@dataclass
class ViTConfig:
    image_size: int = 28  # square input side; the recipe sets it from the dataset
    channels: int = 1  # 1 or 3; the recipe sets it from the dataset
    num_classes: int = 10  # size of the head; the recipe sets it from the dataset
    patch_size: int = 4  # must divide image_size; 28 / 4 -> 7 x 7 = 49 tokens
    dim: int = 128  # token width
    depth: int = 6  # transformer blocks
    heads: int = 4  # attention heads (dim / heads per head)
    mlp_ratio: float = 2.0  # MLP hidden width = mlp_ratio * dim
    pool: str = "cls"  # cls (class token) | mean (average of the patch tokens)
    positions: str = "learned"  # learned | sincos (fixed 2-D sine-cosine)
    dropout: float = 0.0  # dropout after attention / in the MLP (training only)
    attn_dropout: float = 0.0  # dropout on the attention weights (training only)
    class_names: tuple[str, ...] = ()  # optional names of the classes, index order; () = unnamed

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)  # JSON gives lists back

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"vit channels must be 1 or 3, got {self.channels}")
        check_range("vit image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        check_patch_grid(self.image_size, self.patch_size, "vit")
        if self.num_classes < 2:
            raise ConfigError(f"vit num_classes must be >= 2, got {self.num_classes}")
        if self.dim < 4 or self.heads < 1 or self.dim % self.heads:
            raise ConfigError(f"vit dim ({self.dim}) must be >= 4 and divisible by heads ({self.heads})")
        if self.positions == "sincos" and self.dim % 4:
            raise ConfigError(f"vit positions=sincos needs dim divisible by 4, got {self.dim}")
        # Depth is a Python loop of modules (even on the meta device): bound it before building.
        check_range("vit depth", self.depth, 1, MAX_DEPTH)
        # The MLP's hidden width is int(mlp_ratio * dim): it must be at least one unit.
        check_range("vit mlp_ratio", self.mlp_ratio, 0.0, MAX_MLP_RATIO, low_open=True)
        if int(self.mlp_ratio * self.dim) < 1:
            raise ConfigError(f"vit mlp_ratio * dim must be >= 1 (the MLP's width), got {self.mlp_ratio} * {self.dim}")
        if self.pool not in POOLS:
            raise ConfigError(f"vit pool must be one of {', '.join(POOLS)}, got {self.pool!r}")
        if self.positions not in POSITIONS:
            raise ConfigError(f"vit positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")
        if not (0.0 <= self.dropout < 1.0 and 0.0 <= self.attn_dropout < 1.0):
            raise ConfigError("vit dropout and attn_dropout must be in [0, 1)")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"vit has {self.num_classes} classes but {len(self.class_names)} class_names")


@register_model("vit", kind="classifier", config_cls=ViTConfig,
                tiny={"image_size": 8, "patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "num_classes": 3})
class ViTClassifier(ImageClassifier, nn.Module):
    """Vision Transformer classifier (patch tokens, class token or mean pooling, pre-norm blocks)."""
    def __init__(self, config: ViTConfig):
        super().__init__()
        config.validate()
        self.config = config
        c = config
        n_tokens = c.grid ** 2 + (1 if c.pool == "cls" else 0)
        self.patch_embed = PatchEmbed(in_channels=c.channels, dim=c.dim, patch_size=c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.dim)) if c.pool == "cls" else None
        if c.positions == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, c.dim) * 0.02)
        else:
            pos = sincos_2d(c.grid, c.grid, c.dim)  # (N, dim)
            if c.pool == "cls":
                pos = torch.cat([torch.zeros(1, c.dim), pos])  # the class token gets no position
            self.register_buffer("pos_embed", pos[None], persistent=False)  # (1, n_tokens, dim)
        self.blocks = nn.ModuleList([TransformerBlock(c.dim, heads=c.heads, mlp_ratio=c.mlp_ratio,
                                                      dropout=c.dropout, attn_dropout=c.attn_dropout)
                                     for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, c.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.zeros_(self.head.weight)  # start from uniform predictions

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, n_tokens, dim) with class token and positions."""
        check_images(x, channels=self.config.channels, size=self.config.image_size, who="vit")
        x = self.patch_embed(x)  # (B, N, dim)
        if self.cls_token is not None:
            x = torch.cat([repeat(self.cls_token, "1 1 d -> b 1 d", b=x.shape[0]), x], dim=1)  # (B, 1 + N, dim)
        return x + self.pos_embed

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)  # (B, n_tokens, dim)
        return x[:, 0] if self.cls_token is not None else x.mean(dim=1)  # (B, dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> (B, dim) pooled features (fast attention path)."""
        x = self._tokens(x)
        for block in self.blocks:
            x = block(x).tokens
        return self._pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> logits (B, num_classes)."""
        return self.head(self.forward_features(x))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, K) and each block's attention weights, a list of ``depth`` (B, heads, T, T)
        with T = n_tokens (the class token, if any, is token 0)."""
        x = self._tokens(x)
        weights = []
        for block in self.blocks:
            x, w = block(x, need_weights=True)
            weights.append(w)
        return self.head(self._pool(x)), weights


__all__ = ["ViTConfig", "ViTClassifier", "POOLS", "POSITIONS"]
