"""A compact VGG-style CNN classifier (Simonyan & Zisserman 2015, scaled down for 28-32 px).

Read top to bottom: the config, one conv stage, then the registered :class:`CNNClassifier`.

* ``stages`` stages of ``[conv3x3 - BatchNorm - ReLU] x 2`` followed by a 2x2 max-pool; the
  channel count doubles each stage (``width``, ``2 width``, ``4 width``).
* Global average pooling, so any image size >= 16 px works with the same weights layout.
* ``Linear -> ReLU -> Dropout`` to a ``feature_dim`` embedding: :meth:`forward_features`.
  These penultimate features are what FID-style domain metrics use
  (``genvision.metrics.features.ClassifierExtractor``).
* ``head``: ``Linear(feature_dim, num_classes)`` -> logits.

Every classifier family (this one, and later ResNet / ViT) offers the same interface:
``forward(x) -> logits (B, K)``, ``forward_features(x) -> (B, D)``, ``head(features) -> logits``,
and ``config.image_size / channels / num_classes / class_names``. Inputs are images in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, check_range
from ..errors import ConfigError
from ..nn.checks import check_images
from ..registry import register_model


@dataclass
class CNNConfig:
    image_size: int = 28  # square input side; the recipe sets it from the dataset (any size >= 16)
    channels: int = 1  # 1 (grey) or 3 (RGB); the recipe sets it from the dataset
    num_classes: int = 10  # size of the head; the recipe sets it from the dataset
    width: int = 32  # channels of the first stage; stage i has width * 2**i
    stages: int = 3  # conv stages, each halving the resolution (28 -> 14 -> 7 -> 3)
    feature_dim: int = 256  # size of the penultimate embedding (the domain features for FID)
    dropout: float = 0.3  # dropout on the embedding before the head (training only)
    class_names: tuple[str, ...] = ()  # optional names of the classes, index order; () = unnamed

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)  # JSON gives lists back

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"cnn channels must be 1 or 3, got {self.channels}")
        # Each stage halves the image: more stages than log2(4096) cannot fit any image (and
        # bounding stages first keeps 2 ** stages below from computing a huge integer).
        check_range("cnn stages", self.stages, 1, 12)
        check_range("cnn image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        if self.image_size < 2 ** self.stages:
            raise ConfigError(f"cnn image_size must be >= {max(8, 2 ** self.stages)} for {self.stages} "
                              f"stages, got {self.image_size}")
        if self.num_classes < 2:
            raise ConfigError(f"cnn num_classes must be >= 2, got {self.num_classes}")
        if self.width < 4 or self.feature_dim < 1:
            raise ConfigError(f"cnn width must be >= 4 and feature_dim >= 1, got {self.width} and "
                              f"{self.feature_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"cnn dropout must be in [0, 1), got {self.dropout}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ConfigError(f"cnn has {self.num_classes} classes but {len(self.class_names)} class_names")


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    # bias=False: BatchNorm's shift makes a conv bias redundant
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Stage(nn.Sequential):
    """(B, c_in, H, W) -> (B, c_out, H // 2, W // 2)."""
    def __init__(self, c_in: int, c_out: int):
        super().__init__(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out), nn.MaxPool2d(2))


class ImageClassifier:
    """What the image classifiers here share: the classifier protocol's ``num_classes`` and example
    inputs (images in [-1, 1] of the configured size)."""

    config: object

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        c = self.config
        return (torch.rand(batch, c.channels, c.image_size, c.image_size) * 2 - 1,)


@register_model("cnn", kind="classifier", config_cls=CNNConfig, tiny={"width": 4, "stages": 2, "feature_dim": 8})
class CNNClassifier(ImageClassifier, nn.Module):
    """Compact VGG-style CNN classifier (conv-BN-ReLU stages, global average pool, MLP embedding)."""
    def __init__(self, config: CNNConfig):
        super().__init__()
        config.validate()
        self.config = config
        widths = [config.width * 2 ** i for i in range(config.stages)]  # e.g. 32, 64, 128
        self.stages = nn.Sequential(*[Stage(c_in, c_out) for c_in, c_out in
                                      zip([config.channels, *widths[:-1]], widths)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Linear(widths[-1], config.feature_dim), nn.ReLU(inplace=True),
                                   nn.Dropout(config.dropout))
        self.head = nn.Linear(config.feature_dim, config.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=5 ** 0.5)  # PyTorch's default, stated here
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> (B, feature_dim) penultimate features."""
        check_images(x, channels=self.config.channels, who="cnn")
        x = self.stages(x)  # (B, width * 2**(stages-1), S / 2**stages, S / 2**stages)
        x = self.pool(x).flatten(1)  # (B, width * 2**(stages-1))
        return self.embed(x)  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [-1, 1] -> logits (B, num_classes)."""
        return self.head(self.forward_features(x))


__all__ = ["CNNConfig", "CNNClassifier", "ImageClassifier"]
