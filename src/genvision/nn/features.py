"""Multi-layer feature extractors over a frozen convolutional trunk (VGG-16/19 today): what
perceptual losses, style transfer (Gram matrices over several layers), CycleGAN's identity checks
and retrieval embeddings all read.

The layer names are the usual ``conv{block}_{i}`` / ``relu{block}_{i}`` / ``pool{block}`` of the
VGG papers, mapped to indices of torchvision's ``vgg16/vgg19().features``. The trunk is cut after
the deepest requested layer, so nothing past it is computed, and its ReLUs run out of place so an
output taken before a ReLU is not overwritten by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_layer_names(blocks: Sequence[int]) -> dict[str, int]:
    """{name: index into features} for VGG with ``blocks[b]`` convolutions in block b + 1."""
    names, index = {}, 0
    for block, convs in enumerate(blocks, start=1):
        for i in range(1, convs + 1):
            names[f"conv{block}_{i}"], names[f"relu{block}_{i}"] = index, index + 1
            index += 2
        names[f"pool{block}"] = index
        index += 1
    return names


VGG_LAYERS = {"vgg16": _vgg_layer_names((2, 2, 3, 3, 3)), "vgg19": _vgg_layer_names((2, 2, 4, 4, 4))}


class MultiLayerFeatures(nn.Module):
    """Frozen ``trunk`` (an ``nn.Sequential``) returning ``{name: (B, C_l, H_l, W_l)}`` for the
    requested layer names; inputs are images in [0, 1] (B, 3, H, W), normalised with ``mean``/``std``."""

    def __init__(self, trunk: nn.Sequential, layer_index: dict[str, int], outputs: Sequence[str],
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        unknown = [name for name in outputs if name not in layer_index]
        if unknown or not outputs:
            raise ConfigError(f"unknown feature layer(s) {', '.join(unknown) or '(none given)'}; "
                              f"choose from {', '.join(layer_index)}")
        self.outputs = {layer_index[name]: name for name in outputs}
        deepest = max(self.outputs)
        self.trunk = trunk[:deepest + 1].eval().requires_grad_(False)
        for module in self.trunk:
            if isinstance(module, nn.ReLU):
                module.inplace = False
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (images - self.mean) / self.std
        features = {}
        for index, layer in enumerate(self.trunk):
            x = layer(x)
            if index in self.outputs:
                features[self.outputs[index]] = x
        return features


def vgg_features(arch: str, state_dict: dict[str, torch.Tensor], outputs: Sequence[str]) -> MultiLayerFeatures:
    """VGG-16 or VGG-19 (torchvision's layout and preprocessing) with ``state_dict``'s weights."""
    from torchvision import models as tv_models  # torchvision is slow to import: only when a VGG is built

    if arch not in VGG_LAYERS:
        raise ConfigError(f"unknown VGG {arch!r}; choose from {', '.join(VGG_LAYERS)}")
    net = getattr(tv_models, arch)()
    try:
        net.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise ConfigError(f"not a torchvision {arch} state dict ({' '.join(str(exc).split())[:160]})") from None
    return MultiLayerFeatures(net.features, VGG_LAYERS[arch], outputs)


__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "MultiLayerFeatures", "VGG_LAYERS", "vgg_features"]
