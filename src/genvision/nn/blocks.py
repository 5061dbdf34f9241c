"""Convolutional building blocks several networks share: residual blocks, a conv encoder and its
mirror decoder, MLPs, and a pixel-shuffle upsampler.

State-dict names are part of the checkpoint format: changing an attribute name here breaks every
saved model that uses the block, so they stay as they were when the blocks were first written.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU, "relu": nn.ReLU}


class PreActResBlock(nn.Module):
    """Pre-activation residual block: x + conv3x3(act(conv3x3(act(x)))). No normalisation, so
    train and eval mode compute the same function (the likelihood is evaluated in eval mode)."""

    def __init__(self, channels: int, activation: str):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.net = nn.Sequential(act(), nn.Conv2d(channels, channels, 3, padding=1),
                                 act(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ConvEncoder(nn.Module):
    """(B, C, S, S) -> (B, width * 2**(downs-1), S / 2**downs, S / 2**downs).

    The stem is already a stride-2 conv, so no hidden layer runs at full resolution (the
    expensive part of a conv net on a CPU); each further stage doubles the channels."""

    def __init__(self, channels: int, width: int, downs: int, blocks: int, activation: str):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1)]  # halves H, W
        ch = width
        for _ in range(downs - 1):
            layers += [PreActResBlock(ch, activation) for _ in range(blocks)]
            layers += [ACTIVATIONS[activation](), nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1)]  # halves H, W
            ch *= 2
        layers += [PreActResBlock(ch, activation) for _ in range(blocks)]
        layers += [ACTIVATIONS[activation]()]
        self.net = nn.Sequential(*layers)
        self.out_channels = ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """(B, width * 2**(downs-1), s, s) -> (B, out_channels, s * 2**downs, s * 2**downs); the mirror
    of :class:`ConvEncoder` (the last transposed conv writes the likelihood parameters)."""

    def __init__(self, out_channels: int, width: int, downs: int, blocks: int, activation: str):
        super().__init__()
        ch = width * 2 ** (downs - 1)
        self.in_channels = ch
        layers: list[nn.Module] = [PreActResBlock(ch, activation) for _ in range(blocks)]
        for _ in range(downs - 1):
            layers += [ACTIVATIONS[activation](), nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1)]  # doubles
            ch //= 2
            layers += [PreActResBlock(ch, activation) for _ in range(blocks)]
        layers += [ACTIVATIONS[activation](), nn.ConvTranspose2d(ch, out_channels, 4, stride=2, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def mlp(sizes: list[int], activation: str) -> nn.Sequential:
    """Linear layers with ``activation`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class ScaledResBlock(nn.Module):
    """conv3x3-ReLU-conv3x3, scaled, plus the input; no batch norm (EDSR's key change to SRResNet).
    ``inner`` is the channels between the two convolutions (default ``width``; narrower once pruned)."""
    def __init__(self, width: int, res_scale: float, inner: int | None = None):
        super().__init__()
        inner = inner or width
        self.conv1 = nn.Conv2d(width, inner, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, width, 3, padding=1)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x))) * self.res_scale


def pixel_shuffle_upsampler(width: int, scale: int) -> nn.Sequential:
    """conv to ``width*r^2`` + PixelShuffle(r): one stage for x2/x3, two x2 stages for x4."""
    stages = [2, 2] if scale == 4 else [scale]
    layers: list[nn.Module] = []
    for r in stages:
        layers += [nn.Conv2d(width, width * r * r, 3, padding=1), nn.PixelShuffle(r)]
    return nn.Sequential(*layers)


__all__ = ["ACTIVATIONS", "ConvDecoder", "ConvEncoder", "PreActResBlock", "ScaledResBlock", "mlp",
           "pixel_shuffle_upsampler"]
