"""Build a backbone's frozen nn.Module from a state dict and its card's preprocessing."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from .efficientnet import EfficientNetLite0
from .inception import InceptionFID
from .vgg import PretrainedVGG


def build_module(arch: str, state: Mapping[str, torch.Tensor], preprocessing: Mapping) -> nn.Module:
    """The module for ``arch`` with ``state`` loaded strictly (CheckpointError on any mismatch)."""
    mean, std = tuple(preprocessing["mean"]), tuple(preprocessing["std"])
    if arch in ("vgg16", "vgg19"):
        return PretrainedVGG(arch, state, mean, std)
    if arch == "efficientnet-lite0":
        return EfficientNetLite0(state, mean=mean, std=std)
    if arch == "inception-fid":
        return InceptionFID(state)  # its preprocessing (resize to 299, 2x - 1) is pytorch-fid's, fixed
    raise CheckpointError(f"no module for backbone architecture {arch!r}")


def smoke_input(arch: str) -> tuple[torch.Tensor, tuple[int, ...]]:
    """A small deterministic input and the output shape the module must give for it."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # (1, 3, 64, 64) in [0, 1]
    expected = {"vgg16": (1, 512, 2, 2), "vgg19": (1, 512, 2, 2), "efficientnet-lite0": (1, 1000),
                "inception-fid": (1, 2048)}[arch]
    return x, expected


__all__ = ["build_module", "smoke_input"]
