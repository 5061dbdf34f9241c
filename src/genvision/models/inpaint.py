"""Inpainting networks: a LaMa-style generator with fast Fourier convolutions, and its discriminator.

Every model of kind ``"inpaint"`` keeps :class:`~genvision.models.protocols.Inpainter`:
``forward(image, mask)`` takes images in [0, 1] ``(B, C, H, W)`` and a hole mask ``(B, 1, H, W)``
(1 = fill) and returns the filled image, every known pixel copied from the input (the output is
``image * (1 - mask) + prediction * mask``). Any size works: the input is padded (reflected) to a
multiple of ``2 ** downsamples`` and the output cropped back.

* :class:`LamaInpainter` — after Suvorov et al., "Resolution-robust Large Mask Inpainting with
  Fourier Convolutions" (LaMa, WACV 2022), smaller: a conv7x7 stem on the masked image and the
  mask, ``downsamples`` strided convolutions, ``blocks`` residual *fast Fourier convolution*
  blocks (Chi, Jiang & Mu, NeurIPS 2020) at the bottleneck, transposed convolutions back up, a
  conv7x7 head with a sigmoid. An FFC splits the channels into a local part (3x3 convolutions)
  and a global part whose *spectral transform* mixes channels in the 2-D Fourier domain
  (real FFT, a 1x1 convolution on the stacked real and imaginary parts, inverse FFT): its
  receptive field is the whole image from the first block, which is what lets a small network
  continue textures and lines across large holes. The pair also holds a PatchGAN
  discriminator (pix2pix: strided conv4x4 stages, a logit per patch) for the adversarial and
  feature-matching losses of training; ``forward`` is the generator's.

Written by hand: torchvision and kornia have no FFC and LaMa's own code is a research repository
(Hydra configs, pinned 2021 dependencies) rather than a library.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_range
from ..errors import ConfigError, InputShapeError
from ..nn.checks import check_images
from ..nn.padding import pad_to_multiple
from ..registry import register_model

__all__ = ["FFCResBlock", "LamaConfig", "LamaGenerator", "LamaInpainter", "PatchDiscriminator", "SpectralTransform"]

MAX_WIDTH = 1024
MAX_BLOCKS = 64
MAX_DOWNSAMPLES = 5
MAX_D_BLOCKS = 6


@dataclass
class LamaConfig:
    channels: int = 3  # image channels: 1 (grey) or 3 (RGB)
    width: int = 32  # channels after the stem; doubled by each downsampling
    downsamples: int = 2  # strided convolutions before the FFC blocks (LaMa: 3)
    blocks: int = 6  # residual FFC blocks at the bottleneck (LaMa-big: 18, LaMa-Fourier: 9)
    global_ratio: float = 0.5  # share of the bottleneck channels in the FFC's spectral (global) branch (LaMa: 0.75)
    d_width: int = 32  # discriminator base channels (doubled per stage, up to 8x)
    d_blocks: int = 3  # discriminator stages, each a strided conv4x4 (halves the size)

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"lama channels must be 1 or 3, got {self.channels}")
        check_range("lama width", self.width, 2, MAX_WIDTH)
        check_range("lama downsamples", self.downsamples, 0, MAX_DOWNSAMPLES)
        check_range("lama blocks", self.blocks, 0, MAX_BLOCKS)
        check_range("lama global_ratio", self.global_ratio, 0.0, 1.0, high_open=True)
        check_range("lama d_width", self.d_width, 1, MAX_WIDTH)
        check_range("lama d_blocks", self.d_blocks, 1, MAX_D_BLOCKS)
        if self.width * 2 ** self.downsamples > 8 * MAX_WIDTH:
            raise ConfigError(f"lama width {self.width} doubled {self.downsamples} times is over {8 * MAX_WIDTH} "
                              f"channels")

    @property
    def bottleneck(self) -> int:
        return self.width * 2 ** self.downsamples


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, padding_mode="reflect",
                                   bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class FourierUnit(nn.Module):
    """A 1x1 convolution in the frequency domain: rfft2 -> conv on (real, imag) -> irfft2."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, 2 * channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(2 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # FFTs run in float32 whatever the autocast dtype: bf16 has no FFT kernels on CPU
        spectrum = torch.fft.rfft2(x.float(), norm="ortho")  # (B, C, H, W // 2 + 1) complex
        stacked = torch.cat([spectrum.real, spectrum.imag], dim=1)  # (B, 2C, H, W // 2 + 1)
        stacked = F.relu(self.bn(self.conv(stacked.to(x.dtype))), inplace=True).float()
        real, imag = stacked.chunk(2, dim=1)  # each (B, C, H, W // 2 + 1)
        return torch.fft.irfft2(torch.complex(real, imag), s=(h, w), norm="ortho").to(x.dtype)


class SpectralTransform(nn.Module):
    """LaMa's global branch: 1x1 reduce to half, a Fourier unit with a skip, 1x1 back up."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        half = max(1, c_out // 2)
        self.reduce = nn.Sequential(nn.Conv2d(c_in, half, 1, bias=False), nn.BatchNorm2d(half), nn.ReLU(inplace=True))
        self.fourier = FourierUnit(half)
        self.expand = nn.Conv2d(half, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        return self.expand(x + self.fourier(x))


class FFC(nn.Module):
    """One fast Fourier convolution on a (local, global) channel split, then BN + ReLU on each part:
    ``local' = conv(local) + conv(global)``, ``global' = conv(local) + spectral(global)``."""

    def __init__(self, channels: int, global_channels: int):
        super().__init__()
        local = channels - global_channels
        self.split = local
        def conv(c_in: int, c_out: int) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="reflect", bias=False)

        self.local_to_local = conv(local, local)
        self.global_to_local = conv(global_channels, local) if global_channels else None
        self.local_to_global = conv(local, global_channels) if global_channels else None
        self.spectral = SpectralTransform(global_channels, global_channels) if global_channels else None
        self.bn_local = nn.BatchNorm2d(local)
        self.bn_global = nn.BatchNorm2d(global_channels) if global_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spectral is None:
            return F.relu(self.bn_local(self.local_to_local(x)), inplace=True)
        xl, xg = x[:, :self.split], x[:, self.split:]
        yl = self.local_to_local(xl) + self.global_to_local(xg)
        yg = self.local_to_global(xl) + self.spectral(xg)
        return torch.cat([F.relu(self.bn_local(yl), inplace=True), F.relu(self.bn_global(yg), inplace=True)], dim=1)


class FFCResBlock(nn.Module):
    """Two FFCs with a residual connection around them (LaMa's FFCResnetBlock)."""

    def __init__(self, channels: int, global_channels: int):
        super().__init__()
        self.first = FFC(channels, global_channels)
        self.second = FFC(channels, global_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x))


class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): strided conv4x4 + LeakyReLU(0.2) stages, then a conv to one
    logit per patch ``(B, 1, h, w)``. ``features`` returns the stage outputs (feature matching)."""

    def __init__(self, channels: int, width: int, blocks: int):
        super().__init__()
        stages, c_in = [], channels
        for i in range(blocks):
            c_out = width * min(2 ** i, 8)
            stages.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1),
                                        nn.LeakyReLU(0.2, inplace=True)))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Conv2d(c_in, 1, 3, padding=1)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        x, out = images * 2.0 - 1.0, []  # [0, 1] -> [-1, 1]
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def logits(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.head(features[-1])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(images))


class LamaGenerator(nn.Module):
    """The generator alone (what EMA averages and what fills holes); see :class:`LamaInpainter`."""

    def __init__(self, config: LamaConfig):
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        layers: list[nn.Module] = [_conv_bn_relu(c + 1, w, 7)]
        for i in range(config.downsamples):
            layers.append(_conv_bn_relu(w * 2 ** i, w * 2 ** (i + 1), 3, stride=2))
        wide = config.bottleneck
        global_channels = min(wide - 1, round(wide * config.global_ratio))
        layers += [FFCResBlock(wide, global_channels) for _ in range(config.blocks)]
        for i in reversed(range(config.downsamples)):
            layers += [nn.ConvTranspose2d(w * 2 ** (i + 1), w * 2 ** i, 3, stride=2, padding=1, output_padding=1,
                                          bias=False),
                       nn.BatchNorm2d(w * 2 ** i), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(w, c, 7, padding=3, padding_mode="reflect"), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def _check(self, image: torch.Tensor, mask: torch.Tensor) -> None:
        check_images(image, channels=self.config.channels, who="lama")
        b, _, h, w = image.shape
        if mask.ndim != 4 or tuple(mask.shape) != (b, 1, h, w):
            raise InputShapeError(f"lama takes a mask of shape ({b}, 1, {h}, {w}) for images {tuple(image.shape)}; "
                                  f"got {tuple(mask.shape)}")

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The raw output ``(B, C, H, W)`` in [0, 1], everywhere (known pixels included)."""
        self._check(image, mask)
        mask = mask.to(image.dtype)
        x = torch.cat([image * (1 - mask), mask], dim=1)  # (B, C + 1, H, W)
        x, (h, w) = pad_to_multiple(x, 2 ** self.config.downsamples)  # (B, C + 1, H', W')
        return self.net(x)[..., :h, :w]  # (B, C, H', W') -> (B, C, H, W)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        predicted = self.predict(image, mask)  # checks the shapes first
        mask = mask.to(image.dtype)
        return image * (1 - mask) + predicted * mask


@register_model("lama", kind="inpaint", config_cls=LamaConfig,
                tiny={"width": 4, "downsamples": 1, "blocks": 1, "d_width": 4, "d_blocks": 2})
class LamaInpainter(nn.Module):
    """LaMa-style FFC inpainting ``generator`` (``forward`` is its) plus a PatchGAN ``discriminator``."""

    def __init__(self, config: LamaConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.generator = LamaGenerator(config)
        self.discriminator = PatchDiscriminator(config.channels, config.d_width, config.d_blocks)

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator.predict(image, mask)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(image, mask)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.rand(batch, self.config.channels, 16, 16)
        mask = torch.zeros(batch, 1, 16, 16)
        mask[..., 4:10, 5:12] = 1
        return image, mask
