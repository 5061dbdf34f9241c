"""Super-resolution networks: bicubic (the baseline), ESPCN, EDSR-style, and the SRGAN pair.

Every model of kind ``"sr"`` maps an RGB batch in [0, 1] ``(B, C, h, w)`` to ``(B, C, s*h, s*w)``
(not clamped: clamp when quantising), with ``config.scale`` in {2, 3, 4} and ``config.channels``.

* :class:`BicubicSR` — MATLAB bicubic upsampling (``genvision.sr.degrade.imresize``); no
  weights, still saved/loaded as a model directory (an empty safetensors file).
* :class:`ESPCN` — Shi et al. 2016: conv5x5-tanh, conv3x3-tanh, conv3x3 to ``C*s^2`` channels,
  pixel shuffle ("efficient sub-pixel convolution"): all convolutions at LR resolution.
* :class:`EDSR` — Lim et al. 2017: residual blocks without batch norm (conv-ReLU-conv, output
  scaled by ``res_scale`` before the skip), a global skip over the body, a pixel-shuffle
  upsampler (one x2/x3 stage, or two x2 stages for x4), RGB mean shift. Width/depth configurable
  (``width=64, depth=16`` is EDSR-baseline).
* :class:`SRGAN` — a pixel-loss generator (ESPCN or EDSR, by name) plus a VGG-style
  discriminator (Ledig et al. 2017) for adversarial refinement; ``forward`` is the generator's,
  so a refined model upscales and evaluates like any other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import build_dataclass, check_range
from ..errors import ConfigError, InputShapeError
from ..nn.blocks import ScaledResBlock, pixel_shuffle_upsampler
from ..nn.channel_groups import ChannelGroup
from ..nn.checks import check_images
from ..nn.resize import imresize
from ..registry import create_model, get_entry, register_model

SCALES = (2, 3, 4)
GENERATOR_ARCHS = ("espcn", "edsr")
# Mean RGB of DIV2K, subtracted at the input and added back at the output by EDSR (its MeanShift).
_RGB_MEAN = (0.4488, 0.4371, 0.4040)


MAX_DEPTH = 256  # EDSR has 32 residual blocks, RCAN-style nets ~200
MAX_D_BLOCKS = 16  # each halves the patch: 16 take any patch to one pixel long before


def check_discriminator(d_width: int, d_blocks: int, prefix: str = "") -> None:
    """The SRGAN discriminator's sizes (the recipe checks them at parse time, the config at build)."""
    check_range(f"{prefix}d_width", d_width, 1)
    check_range(f"{prefix}d_blocks", d_blocks, 1, MAX_D_BLOCKS)


def _check_common(name: str, scale: int, channels: int) -> None:
    if scale not in SCALES:
        raise ConfigError(f"{name} scale must be one of {', '.join(map(str, SCALES))}, got {scale}")
    if channels not in (1, 3):
        raise ConfigError(f"{name} channels must be 1 or 3, got {channels}")


class Upscaler:
    """What every SR network here shares: the image-to-image protocol's ``scale`` and example
    inputs (LR images in [0, 1])."""

    config: object

    @property
    def scale(self) -> int:
        return self.config.scale

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        return (torch.rand(batch, self.config.channels, 8, 8),)


# --------------------------------------------------------------------------------------
# Bicubic


@dataclass
class BicubicConfig:
    scale: int = 4  # upscaling factor: 2, 3 or 4
    channels: int = 3  # any channel count works; recorded for symmetry with the learned models

    def validate(self) -> None:
        _check_common("bicubic", self.scale, self.channels)


@register_model("bicubic", kind="sr", config_cls=BicubicConfig, tiny={"scale": 2}, weightless=True)
class BicubicSR(Upscaler, nn.Module):
    """MATLAB-compatible bicubic upsampling (the SR baseline); no weights."""
    any_channels = True  # interpolation works on any number of channels (alpha included)

    def __init__(self, config: BicubicConfig):
        super().__init__()
        config.validate()
        self.config = config

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        if lr.ndim != 4:
            raise InputShapeError(f"bicubic takes images of shape (B, C, h, w); got {tuple(lr.shape)}")
        return imresize(lr, self.config.scale)  # (B, C, s*h, s*w)


# --------------------------------------------------------------------------------------
# ESPCN


@dataclass
class ESPCNConfig:
    scale: int = 3  # upscaling factor: 2, 3 or 4
    channels: int = 3  # image channels in and out
    width: int = 64  # channels of the first (5x5) layer; the paper's n1
    mid_width: int = 32  # channels of the second (3x3) layer; the paper's n2
    activation: str = "tanh"  # tanh (the paper) | relu

    def validate(self) -> None:
        _check_common("espcn", self.scale, self.channels)
        if self.width < 1 or self.mid_width < 1:
            raise ConfigError(f"espcn width and mid_width must be >= 1, got {self.width}, {self.mid_width}")
        if self.activation not in ("tanh", "relu"):
            raise ConfigError(f"espcn activation must be tanh or relu, got {self.activation!r}")


@register_model("espcn", kind="sr", config_cls=ESPCNConfig, tiny={"scale": 2, "width": 4, "mid_width": 4})
class ESPCN(Upscaler, nn.Module):
    """ESPCN (Shi et al. 2016): three LR-resolution convolutions and a pixel shuffle."""
    def __init__(self, config: ESPCNConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, s = config.channels, config.scale
        act = nn.Tanh if config.activation == "tanh" else nn.ReLU
        self.body = nn.Sequential(
            nn.Conv2d(c, config.width, 5, padding=2), act(),
            nn.Conv2d(config.width, config.mid_width, 3, padding=1), act(),
            nn.Conv2d(config.mid_width, c * s * s, 3, padding=1),
        )
        self.shuffle = nn.PixelShuffle(s)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_images(lr, channels=self.config.channels, who="espcn")
        return self.shuffle(self.body(lr))  # (B, C*s*s, h, w) -> (B, C, s*h, s*w)

    def channel_groups(self) -> tuple[ChannelGroup, ...]:
        """The two hidden widths; the last conv's output is the image's sub-pixels, never pruned."""
        return (ChannelGroup("width", outputs=("body.0",), inputs=("body.2",)),
                ChannelGroup("mid_width", outputs=("body.2",), inputs=("body.4",)))


# --------------------------------------------------------------------------------------
# EDSR


@dataclass
class EDSRConfig:
    scale: int = 3  # upscaling factor: 2, 3 or 4
    channels: int = 3  # image channels in and out
    width: int = 64  # feature channels (EDSR-baseline 64, EDSR 256)
    depth: int = 16  # residual blocks (EDSR-baseline 16, EDSR 32)
    block_width: int | None = None  # channels inside each residual block; None: width (narrower once pruned)
    res_scale: float = 1.0  # residual scaling (EDSR uses 0.1 at width 256 for stability)
    mean_shift: bool = True  # subtract/add the DIV2K RGB mean around the network (3 channels only)

    def validate(self) -> None:
        _check_common("edsr", self.scale, self.channels)
        if self.width < 1 or self.depth < 0:
            raise ConfigError(f"edsr width must be >= 1 and depth >= 0, got {self.width}, {self.depth}")
        check_range("edsr depth", self.depth, 0, MAX_DEPTH)  # a Python loop of blocks: bound it before building
        if self.block_width is not None:
            check_range("edsr block_width", self.block_width, 1)
        check_range("edsr res_scale", self.res_scale, 0.0, 10.0, low_open=True)


@register_model("edsr", kind="sr", config_cls=EDSRConfig, tiny={"scale": 2, "width": 4, "depth": 1})
class EDSR(Upscaler, nn.Module):
    """EDSR-style residual SR network (Lim et al. 2017): no BN, residual scaling, pixel shuffle."""
    def __init__(self, config: EDSRConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, f = config.channels, config.width
        self.head = nn.Conv2d(c, f, 3, padding=1)
        self.body = nn.Sequential(*[ScaledResBlock(f, config.res_scale, config.block_width)
                                    for _ in range(config.depth)],
                                  nn.Conv2d(f, f, 3, padding=1))
        self.upsample = pixel_shuffle_upsampler(f, config.scale)
        self.tail = nn.Conv2d(f, c, 3, padding=1)
        mean = torch.tensor(_RGB_MEAN if (c == 3 and config.mean_shift) else (0.0,) * c).view(1, c, 1, 1)
        self.register_buffer("rgb_mean", mean, persistent=False)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_images(lr, channels=self.config.channels, who="edsr")
        x = self.head(lr - self.rgb_mean)  # (B, F, h, w)
        x = x + self.body(x)  # global residual over the body
        x = self.upsample(x)  # (B, F, s*h, s*w)
        return self.tail(x) + self.rgb_mean  # (B, C, s*h, s*w)

    def channel_groups(self) -> tuple[ChannelGroup, ...]:
        """The trunk (head, every block's output, the body's last conv and the upsampler, tied by the
        residual sums and the pixel shuffles) is one group; each block's inner channels are another."""
        depth = self.config.depth
        shuffles = [(f"upsample.{i - 1}", layer.upscale_factor ** 2) for i, layer in enumerate(self.upsample)
                    if isinstance(layer, nn.PixelShuffle)]
        upsampler = tuple(path for path, _ in shuffles)
        trunk = ChannelGroup("width",
                             outputs=("head", *(f"body.{i}.conv2" for i in range(depth)), f"body.{depth}", *upsampler),
                             inputs=(*(f"body.{i}.conv1" for i in range(depth)), f"body.{depth}", *upsampler, "tail"),
                             shuffled=tuple(shuffles))
        blocks = tuple(ChannelGroup("block_width", outputs=(f"body.{i}.conv1",), inputs=(f"body.{i}.conv2",))
                       for i in range(depth))
        return (trunk, *blocks)


# --------------------------------------------------------------------------------------
# SRGAN: a generator plus a discriminator


@dataclass
class SRGANConfig:
    arch: str = "edsr"  # the generator: espcn | edsr
    generator: dict[str, Any] = field(default_factory=dict)  # the generator's config fields
    scale: int = 4  # upscaling factor (copied into the generator's config)
    channels: int = 3
    d_width: int = 64  # discriminator base channels (doubled every second block, up to 8x)
    d_blocks: int = 4  # discriminator stages, each conv3x3 + strided conv3x3 (halves the size)

    def validate(self) -> None:
        _check_common("srgan", self.scale, self.channels)
        if self.arch not in GENERATOR_ARCHS:
            raise ConfigError(f"srgan arch must be one of {', '.join(GENERATOR_ARCHS)}, got {self.arch!r}")
        check_discriminator(self.d_width, self.d_blocks, "srgan ")
        self.generator_config()

    def generator_config(self):
        cls = get_entry(self.arch).config_cls
        values = dataclasses.asdict(self.generator) if dataclasses.is_dataclass(self.generator) else dict(self.generator)
        values.update(scale=self.scale, channels=self.channels)
        try:
            return build_dataclass(cls, values, "generator")
        except ConfigError as exc:  # the generator's fields are those of arch: say which arch
            raise ConfigError(f"srgan generator (arch={self.arch}): {exc}") from None


class SRDiscriminator(nn.Module):
    """VGG-style discriminator (SRGAN): conv3x3 + strided conv3x3 stages with LeakyReLU(0.2), global
    average pooling (so any patch size works), then a linear logit. ``features`` returns the stage
    outputs, used for the feature-matching loss."""

    def __init__(self, channels: int, width: int, blocks: int):
        super().__init__()
        stages, c_in = [], channels
        for i in range(blocks):
            c_out = width * min(2 ** (i // 2 + (i % 2)), 8)
            stages.append(nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c_out, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c_in, 1)
        # Without normalisation layers, PyTorch's default conv init shrinks the signal at each of the
        # 2 * blocks convs: at 4 blocks the pooled features of different images differed by ~1e-4, D's
        # logits were the same for HR and bicubic, and a 408-step refinement never left loss_d = 2 ln 2.
        # He init for LeakyReLU(0.2) keeps the features apart (std ~0.14) so D learns from step 1.
        for module in self.stages.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = x * 2.0 - 1.0  # [0, 1] -> [-1, 1]
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1].mean(dim=(2, 3))).squeeze(1)  # (B,)


@register_model("srgan", kind="sr", config_cls=SRGANConfig,
                tiny={"scale": 2, "arch": "espcn", "generator": {"width": 4, "mid_width": 4}, "d_width": 4,
                      "d_blocks": 1})
class SRGAN(Upscaler, nn.Module):
    """SRGAN-style pair: an ESPCN/EDSR generator (``forward``) and a VGG-style discriminator."""
    def __init__(self, config: SRGANConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.generator = create_model(config.arch, config.generator_config())
        self.discriminator = SRDiscriminator(config.channels, config.d_width, config.d_blocks)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.generator(lr)


def bicubic_model(scale: int, channels: int = 3) -> BicubicSR:
    """The built-in ``bicubic`` baseline of a given scale (what ``--model bicubic`` resolves to)."""
    model = BicubicSR(BicubicConfig(scale=scale, channels=channels))
    model.model_dir = "bicubic"
    return model.eval()


__all__ = ["SCALES", "BicubicConfig", "BicubicSR", "ESPCNConfig", "ESPCN", "EDSRConfig", "EDSR",
           "SRGANConfig", "SRGAN", "SRDiscriminator", "bicubic_model"]
