"""A small ResNet classifier (He et al. 2016), the CNN baseline for the ViT, sized for 28-32 px.

Read top to bottom: the config, the basic residual block, then the registered
:class:`ResNetClassifier`:

* stem: conv3x3 (stride 1: small images have no pixels to spare) - BatchNorm - ReLU;
* ``len(blocks)`` stages of ``blocks[i]`` basic blocks ``x + BN(conv(ReLU(BN(conv(x)))))``;
  every stage after the first halves the resolution (stride 2) and doubles the width, with a
  1x1 strided projection on the shortcut (28 -> 28 -> 14 -> 7 for three stages);
* :meth:`forward_maps` is the last stage's feature map (what Grad-CAM explains); global
  average pooling gives :meth:`forward_features` (B, width * 2**(stages-1)); ``head`` -> logits.

Same interface as every classifier (``models/classifier.py``). The last BatchNorm of each
block starts at zero so each block starts as the identity (Goyal et al. 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, check_range
from ..errors import ConfigError
from ..nn.checks import check_images
from ..registry import register_model
from .classifier import ImageClassifier


@dataclass
class ResNetConfig:
    image_size: int = 28  # square input side; the recipe sets it from the dataset (>= 8)
    channels: int = 1  # 1 or 3; the recipe sets it from the dataset
    num_classes: int = 10  # size of the head; the recipe sets it from the dataset
    width: int = 32  # channels of the stem and first stage; stage i has width * 2**i
    blocks: tuple[int, ...] = (1, 1, 1)  # basic blocks per stage (ResNet-18 would be (2, 2, 2, 2))
    dropout: float = 0.0  # dropout on the pooled features before the head (training only)
    class_names: tuple[str, ...] = ()  # optional names of the classes, index order; () = unnamed

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)  # JSON gives lists back
        self.blocks = tuple(int(b) for b in self.blocks)

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"resnet channels must be 1 or 3, got {self.channels}")
        # Stages past the 12th would shrink any image (<= 4096 px) below a pixel; 64 blocks per
        # stage is well past ResNet-152's 36.
        if not 1 <= len(self.blocks) <= 12 or any(not 1 <= b <= 64 for b in self.blocks):
            raise ConfigError(f"resnet blocks must be a list of 1 to 12 counts, each in 1..64, got {list(self.blocks)}")
        check_range("resnet image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        if self.image_size < 2 ** (len(self.blocks) - 1):
            raise ConfigError(f"resnet image_size {self.image_size} is too small for {len(self.blocks)} stages "
                              f"(blocks={list(self.blocks)})")
        if self.num_classes < 2:
            raise ConfigError(f"resnet num_classes must be >= 2, got {self.num_classes}")
        if self.width < 4:
            raise ConfigError(f"resnet width must be >= 4, got {self.width}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"resnet dropout must be in [0, 1), got {self.dropout}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"resnet has {self.num_classes} classes but {len(self.class_names)} class_names")


class BasicBlock(nn.Module):
    """(B, c_in, H, W) -> (B, c_out, H / stride, W / stride): two conv3x3 and a shortcut."""
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def resnet_stages(width: int, blocks) -> tuple[nn.Sequential, int]:
    """Stage i: ``blocks[i]`` basic blocks of ``width * 2**i`` channels, each stage after the first halving the
    resolution; returns the stages and their output channels (shared by the classifier and the embedding net)."""
    stages, c_in = [], width
    for i, count in enumerate(blocks):
        c_out = width * 2 ** i
        layers = [BasicBlock(c_in, c_out, stride=1 if i == 0 else 2)]
        layers += [BasicBlock(c_out, c_out) for _ in range(count - 1)]
        stages.append(nn.Sequential(*layers))
        c_in = c_out
    return nn.Sequential(*stages), c_in


def init_resnet_weights(model: nn.Module) -> None:
    """He init for convolutions, unit BatchNorm, and each residual branch's last BatchNorm at zero so every
    block starts as the identity (Goyal et al. 2017): shared by the classifier and the embedding net."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


@register_model("resnet", kind="classifier", config_cls=ResNetConfig,
                tiny={"image_size": 16, "width": 4, "blocks": [1, 1]})
class ResNetClassifier(ImageClassifier, nn.Module):
    """Small ResNet classifier (conv stem, basic residual blocks, global average pool)."""
    def __init__(self, config: ResNetConfig):
        super().__init__()
        config.validate()
        self.config = config
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(config.channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                  nn.ReLU(inplace=True))
        self.stages, c_in = resnet_stages(w, config.blocks)
        self.feature_dim = c_in
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(c_in, config.num_classes)
        init_resnet_weights(self)

    def cam_layer(self) -> nn.Module:
        """The module whose output Grad-CAM explains: the last stage."""
        return self.stages[-1]

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> the last stage's map (B, width * 2**(stages-1), S', S')."""
        check_images(x, channels=self.config.channels, who="resnet")
        return self.stages(self.stem(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> (B, feature_dim) pooled features."""
        return self.drop(self.pool(self.forward_maps(x)).flatten(1))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> logits (B, num_classes)."""
        return self.head(self.forward_features(x))


__all__ = ["BasicBlock", "ResNetClassifier", "ResNetConfig", "init_resnet_weights", "resnet_stages"]
