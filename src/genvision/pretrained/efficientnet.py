"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant: ReLU6, no squeeze-excitation, fixed stem
and head), with attribute names of the ``efficientnet_lite_pytorch`` layout so its state dict loads as is.

Convolutions pad like TensorFlow's ``SAME`` (extra padding on the bottom/right at stride 2), since the
weights were trained in TensorFlow; a symmetric padding shifts every stride-2 feature map by half a pixel.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError, InputShapeError

BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the checkpoint's statistics assume
# (repeats, kernel, first stride, expansion, input channels, output channels) per stage of Lite0
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
STEM, HEAD, NUM_CLASSES = 32, 1280, 1000
LABELS_FILE = Path(__file__).with_name("imagenet_classes.json")


@lru_cache(maxsize=1)
def imagenet_labels() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the usual index order (torchvision's names)."""
    labels = json.loads(LABELS_FILE.read_text(encoding="utf-8"))
    if len(labels) != NUM_CLASSES:
        raise CheckpointError(f"{LABELS_FILE.name}: {len(labels)} labels, expected {NUM_CLASSES}")
    return tuple(labels)


class Conv2dSame(nn.Conv2d):
    """A bias-free conv with TensorFlow 'SAME' padding computed from the input size."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        pads = []
        for size in (x.shape[-1], x.shape[-2]):  # F.pad wants (left, right, top, bottom)
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, cin: int, cout: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = Conv2dSame(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._expand_conv(inputs))) if self.expand else inputs  # (B, mid, H, W)
        x = F.relu6(self._bn1(self._depthwise_conv(x)))  # (B, mid, H/s, W/s)
        x = self._bn2(self._project_conv(x))  # (B, cout, H/s, W/s): linear bottleneck, no activation
        return x + inputs if self.skip else x


class EfficientNetLite0(nn.Module):
    """Frozen ImageNet classifier: forward takes RGB in [0, 1], (B, 3, H, W) (224 is the trained size)."""

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None, *,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (0.5, 0.5, 0.5)):
        super().__init__()
        self._conv_stem = Conv2dSame(3, STEM, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(STEM, eps=BN_EPS)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(kernel, stride if i == 0 else 1, expand, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(LITE0_STAGES[-1][-1], HEAD, 1)
        self._bn1 = nn.BatchNorm2d(HEAD, eps=BN_EPS)
        self._fc = nn.Linear(HEAD, NUM_CLASSES)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        if state is not None:
            try:
                self.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"not EfficientNet-Lite0 weights ({' '.join(str(exc).split())[:200]})") from None
        self.eval().requires_grad_(False)

    @property
    def labels(self) -> tuple[str, ...]:
        return imagenet_labels()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1280) globally pooled features."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputShapeError(f"expected RGB images (B, 3, H, W), got {tuple(images.shape)}")
        x = F.relu6(self._bn0(self._conv_stem((images - self.mean) / self.std)))  # (B, 32, H/2, W/2)
        for block in self._blocks:
            x = block(x)  # ... -> (B, 320, H/32, W/32)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))  # (B, 1280)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(images))  # (B, 1000) logits

    @torch.no_grad()
    def top_k(self, images: torch.Tensor, k: int = 5) -> list[list[tuple[str, float]]]:
        """Per image, the ``k`` most probable ImageNet labels with their softmax probabilities."""
        probs = self(images).softmax(dim=1)  # (B, 1000)
        values, indices = probs.topk(k, dim=1)  # (B, k)
        return [[(self.labels[i], float(p)) for p, i in zip(vs.tolist(), ix.tolist())]
                for vs, ix in zip(values, indices)]


def center_crop_resize(image: torch.Tensor, size: int = 224, crop_fraction: float = 224 / 256) -> torch.Tensor:
    """(3, H, W) in [0, 1] -> (3, size, size): the TF EfficientNet evaluation crop (a centred square of
    ``crop_fraction`` of the shorter side, bicubic resize, clamped back into [0, 1])."""
    if image.ndim != 3:
        raise InputShapeError(f"expected one image (3, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    side = max(1, round(min(h, w) * crop_fraction))
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[:, top:top + side, left:left + side].unsqueeze(0)  # (1, 3, side, side)
    out = F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return out.squeeze(0).clamp(0, 1)  # (3, size, size)


__all__ = ["LITE0_STAGES", "EfficientNetLite0", "center_crop_resize", "imagenet_labels"]
