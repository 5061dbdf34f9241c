"""A small StyleGAN2-like generator (Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN"), a drop-in for the DCGAN generator: ``model.generator=style``.

* Mapping: z and (conditional) a class embedding, each normalised to unit RMS and concatenated, as in
  StyleGAN2-ADA, go through an MLP with LeakyReLU(0.2) to the style vector w.
* Synthesis: a learned constant (top channels x side x side, 7x7 at 28 px, 4x4 at 32 px), then per
  resolution two 3x3 convolutions whose weights are modulated by an affine map of w and demodulated
  (each output channel's weight rescaled to unit norm per sample), bilinear x2 upsampling between
  resolutions, and skip connections: a 1x1 modulated "toRGB" at every resolution, summed upsampled.
* Not included: per-pixel noise inputs (they make seeded sampling and multi-process equality depend on
  extra draws, and add stochastic detail digits do not have), style mixing, path-length regularisation
  and equalised learning rates (Adam with the DCGAN recipe's rates trains it here).

Written here because no well-kept pip package ships a StyleGAN2 generator as a torch module of its own.
Modulation is computed as StyleGAN2's non-fused path does: scale the input channels by the style,
convolve with the shared weight, then scale the output channels by the demodulation coefficients; it
equals convolving with per-sample weights, and runs as one ordinary convolution for the whole batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _unit_rms(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # (B, D), each row at RMS 1


class ModulatedConv(nn.Module):
    """A k x k convolution whose input channels are scaled per sample by ``affine(w)`` (bias 1 at init),
    optionally demodulated."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, kernel: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel) / math.sqrt(in_ch * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.affine = nn.Linear(w_dim, in_ch)  # weights at torch's 1/sqrt(fan-in) scale, as StyleGAN2's
        nn.init.ones_(self.affine.bias)  # styles start around 1
        self.demodulate = demodulate
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # (B, in_ch)
        out = F.conv2d(x * style[:, :, None, None], self.weight, padding=self.padding)  # (B, out_ch, H, W)
        if self.demodulate:
            # ||weight[o] * style||_2 per sample and output channel, from the squared weights summed over k x k
            squared = self.weight.pow(2).sum(dim=(2, 3))  # (out_ch, in_ch)
            coefs = torch.rsqrt(style.pow(2) @ squared.t() + 1e-8)  # (B, out_ch)
            out = out * coefs[:, :, None, None]
        return out + self.bias[None, :, None, None]


class StyleGenerator(nn.Module):
    """G(z, labels) -> images in [-1, 1] (B, C, H, W); the same layout table as the DCGAN generator."""

    def __init__(self, config, layout: tuple[int, int], mapping_layers: int = 4):
        super().__init__()
        self.config = config
        side, blocks = layout
        self.side = side
        top = config.width * 2 ** (blocks - 1)  # 128 at 28 px, 256 at 32 px (width 64): DCGAN's top width
        w_dim = max(top, 64)
        self.embed = nn.Embedding(config.num_classes, config.latent_dim) if config.num_classes else None
        in_dim = config.latent_dim * (2 if self.embed is not None else 1)
        layers: list[nn.Module] = []
        for i in range(mapping_layers):
            layers += [nn.Linear(in_dim if i == 0 else w_dim, w_dim), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*layers)
        self.const = nn.Parameter(torch.randn(1, top, side, side))
        channels = [top // 2 ** i for i in range(blocks + 1)]  # per resolution: side, 2 side, ..., image size
        self.convs = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for level, ch in enumerate(channels):
            in_ch = top if level == 0 else channels[level - 1]
            self.convs.append(nn.ModuleList([ModulatedConv(in_ch, ch, w_dim, 3), ModulatedConv(ch, ch, w_dim, 3)]))
            self.to_rgb.append(ModulatedConv(ch, config.channels, w_dim, 1, demodulate=False))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        code = _unit_rms(z)
        if self.embed is not None:
            code = torch.cat([code, _unit_rms(self.embed(labels))], dim=1)  # (B, 2 * latent_dim)
        w = self.mapping(code)  # (B, w_dim)
        x = self.const.expand(z.shape[0], -1, -1, -1)  # (B, top, side, side)
        image = None
        for level, (convs, to_rgb) in enumerate(zip(self.convs, self.to_rgb)):
            if level > 0:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)  # (B, ch, 2h, 2w)
                image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False)
            for conv in convs:
                x = F.leaky_relu(conv(x, w), 0.2)
            rgb = to_rgb(x, w)  # (B, C, h, w)
            image = rgb if image is None else image + rgb
        return torch.tanh(image)  # (B, C, H, W) in [-1, 1]


__all__ = ["StyleGenerator", "ModulatedConv"]
