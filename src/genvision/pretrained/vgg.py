"""VGG-16/19 convolutional trunks with pretrained weights, in torchvision's ``features`` layout.

The trunk is built here rather than with ``torchvision.models.vgg16()``: that constructor also
allocates and initialises the 120 M-parameter classifier, which no feature user needs. Indices match
``vgg.features`` exactly, so ``genvision.nn.features.VGG_LAYERS`` names (relu1_1, ...) apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from ..nn.features import VGG_LAYERS, MultiLayerFeatures

VGG_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}  # convolutions per block
VGG_WIDTHS = (64, 128, 256, 512, 512)  # output channels of each block


def vgg_trunk(arch: str) -> nn.Sequential:
    """Untrained ``features`` of torchvision's VGG (conv 3x3 pad 1, ReLU, ..., max pool 2x2 per block)."""
    layers: list[nn.Module] = []
    channels = 3
    for convs, width in zip(VGG_BLOCKS[arch], VGG_WIDTHS):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def conv_indices(arch: str) -> list[int]:
    """Indices of the convolutions in the trunk, in order (13 for VGG-16, 16 for VGG-19)."""
    return [index for name, index in VGG_LAYERS[arch].items() if name.startswith("conv")]


class PretrainedVGG(nn.Module):
    """A frozen VGG trunk with its preprocessing: forward takes RGB in [0, 1], (B, 3, H, W)."""

    def __init__(self, arch: str, state: Mapping[str, torch.Tensor], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.arch = arch
        self.features = vgg_trunk(arch)
        trunk_state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        try:
            self.features.load_state_dict(trunk_state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"not {arch} trunk weights ({' '.join(str(exc).split())[:200]})") from None
        self.features.eval().requires_grad_(False)
        self.mean_values, self.std_values = tuple(mean), tuple(std)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def layer_index(self) -> dict[str, int]:
        return VGG_LAYERS[self.arch]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 512, H/32, W/32), the last pool."""
        return self.features((images - self.mean) / self.std)

    def multi_layer(self, outputs: Sequence[str]) -> MultiLayerFeatures:
        """The named layers' activations as ``{name: (B, C, H, W)}``, with this trunk's preprocessing."""
        return MultiLayerFeatures(self.features, self.layer_index, outputs, mean=self.mean_values, std=self.std_values)


__all__ = ["VGG_BLOCKS", "PretrainedVGG", "conv_indices", "vgg_trunk"]
