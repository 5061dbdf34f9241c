"""CycleGAN (Zhu, Park, Isola & Efros, ICCV 2017): two ResNet generators and two PatchGAN critics.

Every model of kind ``"translate"`` keeps :class:`~genvision.models.protocols.Translator`:
``forward(images, direction="a2b")`` takes images in [0, 1] ``(B, C, H, W)`` of any size and returns
the translated images ``(B, C, H, W)`` in [0, 1].

* :class:`ResnetGenerator` — Johnson et al.'s transformation net as CycleGAN uses it: c7s1-w,
  two stride-2 convolutions (d2w, d4w), ``blocks`` residual blocks (reflection padding, instance
  norm), two upsamplings back (``up="resize"``: nearest x2 + conv3x3, no checkerboard; or
  ``"transposed"`` as the paper), c7s1-C with tanh. It works in [-1, 1] (what the objective uses);
  any size: the input is reflect-padded to a multiple of 4 and the output cropped back.
* :class:`PatchCritic` — the 70x70 PatchGAN of pix2pix/CycleGAN: C64 (no norm), C128, C256 with
  stride 2, C512 stride 1, then a conv to one score per patch; instance norm, LeakyReLU(0.2).
  ``d_layers`` stride-2 stages (3 gives the 70 px receptive field).

:class:`CycleGAN` holds ``generators`` (``a2b``, ``b2a``: what EMA averages and ``translate`` runs)
and ``critics`` (``a`` judges domain A, ``b`` domain B: training only; ``None`` when ``critics=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import check_range
from ..errors import ConfigError
from ..nn.checks import check_images
from ..nn.padding import pad_to_multiple
from ..registry import register_model

__all__ = ["DIRECTIONS", "CycleGAN", "CycleGANConfig", "CycleGenerators", "PatchCritic", "ResnetGenerator"]

DIRECTIONS = ("a2b", "b2a")
UPSAMPLING = ("resize", "transposed")
MAX_WIDTH = 512
MAX_BLOCKS = 32
MAX_D_LAYERS = 5
_MULTIPLE = 4  # two stride-2 convolutions: sides must divide by 4 to come back to the same size


@dataclass
class CycleGANConfig:
    channels: int = 3  # image channels of both domains: 1 (grey) or 3 (RGB)
    width: int = 32  # generator channels after the stem (paper: 64); x2, x4 after the downsamplings
    blocks: int = 6  # residual blocks at the bottleneck (paper: 6 at 128 px, 9 at 256 px)
    up: str = "resize"  # resize (nearest x2 + conv: no checkerboard) | transposed (the paper's)
    d_width: int = 32  # critic channels of the first stage (paper: 64), doubled per stage up to 8x
    d_layers: int = 3  # critic stride-2 stages (3 = the 70x70 PatchGAN)
    critics: bool = True  # False: the generators alone, a translator as the zoo ships it (cannot be trained)

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"cyclegan channels must be 1 or 3, got {self.channels}")
        check_range("cyclegan width", self.width, 1, MAX_WIDTH)
        check_range("cyclegan blocks", self.blocks, 0, MAX_BLOCKS)
        if self.up not in UPSAMPLING:
            raise ConfigError(f"cyclegan up must be one of {', '.join(UPSAMPLING)}, got {self.up!r}")
        check_range("cyclegan d_width", self.d_width, 1, MAX_WIDTH)
        check_range("cyclegan d_layers", self.d_layers, 1, MAX_D_LAYERS)


def _norm_act(channels: int) -> list[nn.Module]:
    # affine=False, no running stats: CycleGAN's instance norm, so train and eval behave alike
    return [nn.InstanceNorm2d(channels), nn.ReLU(inplace=True)]


class ResidualBlock(nn.Module):
    """x + (reflect-pad, conv3x3, IN, ReLU, reflect-pad, conv3x3, IN)(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), *_norm_act(channels),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _up(c_in: int, c_out: int, mode: str) -> list[nn.Module]:
    if mode == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1), *_norm_act(c_out)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3),
            *_norm_act(c_out)]


class ResnetGenerator(nn.Module):
    """One direction: images in [-1, 1] (B, C, H, W) of any size -> (B, C, H, W) in [-1, 1]."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.channels = c = config.channels
        w = config.width
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(c, w, 7), *_norm_act(w)]
        layers += [nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), *_norm_act(2 * w),
                   nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), *_norm_act(4 * w)]
        layers += [ResidualBlock(4 * w) for _ in range(config.blocks)]
        layers += [*_up(4 * w, 2 * w, config.up), *_up(2 * w, w, config.up)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, c, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, _MULTIPLE)  # (B, C, H', W'); an exported graph needs sides >= 4
        return self.net(x)[..., :h, :w]  # (B, C, H', W') -> (B, C, H, W)


class PatchCritic(nn.Module):
    """PatchGAN: images in [-1, 1] (B, C, H, W) -> one unbounded score per patch (B, 1, h, w)."""

    def __init__(self, channels: int, width: int, layers: int):
        super().__init__()
        stack: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        c_in = width
        for i in range(1, layers + 1):
            c_out = width * min(2 ** i, 8)
            stride = 2 if i < layers else 1  # the last stage keeps the size (C512 with stride 1)
            stack += [nn.Conv2d(c_in, c_out, 4, stride=stride, padding=1), nn.InstanceNorm2d(c_out),
                      nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        stack.append(nn.Conv2d(c_in, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*stack)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CycleGenerators(nn.Module):
    """The two directions as one module (EMA averages both; the sample grid runs both)."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.a2b = ResnetGenerator(config)
        self.b2a = ResnetGenerator(config)

    def forward(self, x: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        return (self.a2b if direction == "a2b" else self.b2a)(x)


class PatchCritics(nn.Module):
    def __init__(self, config: CycleGANConfig):
        super().__init__()
        self.a = PatchCritic(config.channels, config.d_width, config.d_layers)
        self.b = PatchCritic(config.channels, config.d_width, config.d_layers)


@register_model("cyclegan", kind="translate", config_cls=CycleGANConfig,
                tiny={"width": 4, "blocks": 1, "d_width": 4, "d_layers": 2})
class CycleGAN(nn.Module):
    """Unpaired translation between domains A and B: ``forward(images in [0, 1], direction)``."""

    def __init__(self, config: CycleGANConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.generators = CycleGenerators(config)
        self.critics = PatchCritics(config) if config.critics else None

    def forward(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
        if direction not in DIRECTIONS:
            raise ConfigError(f"direction must be a2b or b2a, got {direction!r}")
        check_images(images, channels=self.config.channels, who="cyclegan")
        out = self.generators(images * 2 - 1, direction)  # (B, C, H, W) in [-1, 1]
        return (out + 1) / 2

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        return (torch.rand(batch, self.config.channels, 16, 16),)
