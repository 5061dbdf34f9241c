"""A small ResNet-style image encoder for retrieval, trained without labels (SimCLR, Chen et al. 2020).

Every model of kind ``"embed"`` keeps the same promise to the retrieval app: ``embed(images)`` takes
images in **[0, 1]** ``(B, C, H, W)`` of any size (``config.channels`` 1 grey or 3 RGB; best at the
``config.image_size`` it was trained on) and returns L2-normalised vectors ``(B, feature_dim)``, so the
inner product of two rows is their cosine similarity.

Read top to bottom: the config, then the registered :class:`EmbedNet`:

* stem: conv3x3 with stride ``stem_stride`` (2 halves 64 px photos first: 4x cheaper) - BatchNorm - ReLU;
* ``len(blocks)`` stages of basic residual blocks (:class:`genvision.models.resnet.BasicBlock`), every
  stage after the first halving the resolution and doubling the width;
* global average pooling: the *backbone features* ``(B, width * 2**(stages-1))`` that :meth:`embed`
  normalises. These, not the projection, are what retrieval uses: SimCLR's finding is that the layer
  before the projection head keeps more of the image (the head learns to discard what the
  augmentations change);
* ``projector``: Linear - ReLU - Linear to ``proj_dim``, the space the contrastive loss works in
  (training only; :meth:`project`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MAX_IMAGE_SIZE, check_range
from ..errors import ConfigError
from ..nn.checks import check_images
from ..registry import register_model
from .resnet import init_resnet_weights, resnet_stages

__all__ = ["EmbedNet", "EmbedNetConfig"]

MAX_WIDTH = 512
MAX_STAGES = 8
MAX_BLOCKS_PER_STAGE = 16
MAX_PROJECTION = 8192


@dataclass
class EmbedNetConfig:
    channels: int = 3  # 1 (grey) or 3 (RGB); the recipe sets it from the data
    image_size: int = 64  # side of the views it trained on: embedders resize queries to it (any size runs)
    width: int = 32  # channels of the stem and first stage; stage i has width * 2**i
    blocks: tuple[int, ...] = (1, 1, 1)  # basic blocks per stage; the embedding has width * 2**(stages-1) dims
    stem_stride: int = 1  # 1 for digits (28 px); 2 for photos >= 48 px (a quarter of the compute)
    proj_hidden: int = 256  # hidden units of the projection MLP (training only)
    proj_dim: int = 64  # output of the projection MLP, where NT-Xent compares the views

    def __post_init__(self) -> None:
        self.blocks = tuple(int(b) for b in self.blocks)  # JSON gives lists back

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"embednet channels must be 1 or 3, got {self.channels}")
        check_range("embednet image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        check_range("embednet width", self.width, 4, MAX_WIDTH)
        if not 1 <= len(self.blocks) <= MAX_STAGES or any(not 1 <= b <= MAX_BLOCKS_PER_STAGE for b in self.blocks):
            raise ConfigError(f"embednet blocks must be a list of 1 to {MAX_STAGES} counts, each in "
                              f"1..{MAX_BLOCKS_PER_STAGE}, got {list(self.blocks)}")
        if self.stem_stride not in (1, 2):
            raise ConfigError(f"embednet stem_stride must be 1 or 2, got {self.stem_stride}")
        if self.image_size < self.stem_stride * 2 ** (len(self.blocks) - 1):
            raise ConfigError(f"embednet image_size {self.image_size} is too small for stem_stride={self.stem_stride} "
                              f"and {len(self.blocks)} stages (blocks={list(self.blocks)})")
        check_range("embednet proj_hidden", self.proj_hidden, 1, MAX_PROJECTION)
        check_range("embednet proj_dim", self.proj_dim, 1, MAX_PROJECTION)


@register_model("embednet", kind="embed", config_cls=EmbedNetConfig,
                tiny={"image_size": 16, "width": 4, "blocks": [1, 1], "proj_hidden": 8, "proj_dim": 4})
class EmbedNet(nn.Module):
    """Self-supervised ResNet encoder for retrieval: images in [0, 1] -> L2-normalised pooled features (B, D)."""

    def __init__(self, config: EmbedNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(config.channels, w, 3, stride=config.stem_stride, padding=1, bias=False),
                                  nn.BatchNorm2d(w), nn.ReLU(inplace=True))
        self.stages, c_in = resnet_stages(w, config.blocks)
        self.feature_dim = c_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.projector = nn.Sequential(nn.Linear(c_in, config.proj_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(config.proj_hidden, config.proj_dim))
        init_resnet_weights(self)

    @property
    def dim(self) -> int:
        """Length of the vectors :meth:`embed` returns."""
        return self.feature_dim

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, C, H, W) -> pooled backbone features (B, feature_dim), not normalised."""
        check_images(images, channels=self.config.channels, who="embednet")
        x = self.stages(self.stem(images * 2 - 1))  # (B, feature_dim, H', W'), centred input
        return self.pool(x).flatten(1)  # (B, feature_dim)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Backbone features (B, feature_dim) -> the contrastive space (B, proj_dim), not normalised."""
        return self.projector(features)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (B, C, H, W) -> L2-normalised backbone features (B, feature_dim)."""
        return F.normalize(self.forward_features(images).float(), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The same as :meth:`embed`."""
        return self.embed(images)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        side = min(self.config.image_size, 32)
        return (torch.rand(batch, self.config.channels, side, side),)
