"""Feed-forward style transfer networks. Every model of kind ``"style"`` keeps
:class:`~genvision.models.protocols.Stylizer`: images in [0, 1] (B, 3, H, W) in, a stylised image of the
same size out (not clamped: clamp when quantising). Any size works: the networks pad (reflect) to a
multiple of their downsampling factor and crop back.

* :class:`JohnsonNet` — Johnson, Alahi & Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
  Super-Resolution", ECCV 2016, in the form of pytorch/examples' ``fast_neural_style`` TransformerNet:
  a 9x9 stem, two stride-2 3x3 convolutions, ``blocks`` residual blocks, two nearest-neighbour 2x
  upsamplings each followed by a 3x3 convolution (not transposed convolutions: their uneven kernel
  overlap paints checkerboards, Odena et al. 2016), a 9x9 head. Instance norm (Ulyanov et al. 2016)
  after every convolution but the last; reflection padding. One network per style (``arbitrary`` False),
  or, with ``styles=N``, one network for N styles (Dumoulin, Shlens & Kudlur, "A Learned Representation
  for Artistic Style", ICLR 2017): every instance norm keeps one scale and shift per style (conditional
  instance norm), the convolutions are shared, and a convex mix of the styles' scales and shifts blends them.
* :class:`AdaINNet` — Huang & Belongie, "Arbitrary Style Transfer in Real-time with Adaptive Instance
  Normalization", ICCV 2017: a frozen VGG-19 encoder up to relu4_1, :func:`adain` (the content
  features' per-channel mean and std replaced by the style's), a decoder mirroring the encoder with
  nearest upsampling. The encoder's weights are *not* part of the model's state dict (they are
  non-persistent buffers): ``config.encoder`` records which backbone they come from, and the style
  application attaches them (:meth:`AdaINNet.load_encoder`) from ``genvision.pretrained`` when it loads
  the model — this layer may not import the weights layer. ``encoder="random"`` builds a seeded,
  untrained VGG-shaped trunk instead: small models for tests that need no downloaded weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_range
from ..errors import ConfigError, InputShapeError
from ..nn.checks import check_images
from ..nn.padding import pad_to_multiple
from ..registry import register_model

__all__ = ["AdaINConfig", "AdaINNet", "FrozenEncoder", "JohnsonConfig", "JohnsonNet", "StyleNorm", "adain",
           "mean_std", "run_conditioned"]

MAX_WIDTH = 1024
MAX_BLOCKS = 32
ENCODERS = ("vgg19", "random")
# VGG-19 up to relu4_1: convolutions per block (the 4th block stops at its first ReLU), widths
VGG19_BLOCKS, VGG19_WIDTHS = (2, 2, 4, 1), (64, 128, 256, 512)
ENCODER_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the style loss's layers; the last is AdaIN's


# --------------------------------------------------------------------------------------------------
# Johnson et al.: one style per network


MAX_STYLES = 256


@dataclass
class JohnsonConfig:
    width: int = 32  # channels after the 9x9 stem; x2 and x4 after the two downsamplings (paper: 32)
    blocks: int = 5  # residual blocks at 1/4 resolution (paper: 5)
    styles: int = 1  # styles in one network (conditional instance norm when > 1; Dumoulin et al.: 32)
    style_names: tuple[str, ...] = ()  # one name per style when styles > 1 (what --style selects)

    def __post_init__(self) -> None:
        self.style_names = tuple(self.style_names)  # a list from JSON

    def validate(self) -> None:
        check_range("johnson width", self.width, 1, MAX_WIDTH)
        check_range("johnson blocks", self.blocks, 0, MAX_BLOCKS)
        check_range("johnson styles", self.styles, 1, MAX_STYLES)
        if self.style_names and len(self.style_names) != self.styles:
            raise ConfigError(f"johnson style_names has {len(self.style_names)} names for {self.styles} styles")
        if len(set(self.style_names)) != len(self.style_names):
            raise ConfigError(f"johnson style_names repeat a name: {', '.join(self.style_names)}")


class Conditioned(nn.Module):
    """A layer whose forward also takes the style mix (B, S); :func:`run_conditioned` hands it on."""


def run_conditioned(layers: nn.Sequential, x: torch.Tensor, mix: torch.Tensor | None) -> torch.Tensor:
    """``layers`` in order, nested Sequentials included, with ``mix`` handed to the Conditioned ones."""
    for layer in layers:
        if isinstance(layer, nn.Sequential):
            x = run_conditioned(layer, x, mix)
        else:
            x = layer(x, mix) if isinstance(layer, Conditioned) else layer(x)
    return x


class StyleNorm(Conditioned):
    """Conditional instance norm (Dumoulin et al. 2017): normalise each channel over positions, then scale
    and shift it by the mix of the styles' own parameters, ``gamma = mix @ weight``. The styles' rows are
    initialised as nn.InstanceNorm2d's affine (ones, zeros)."""

    def __init__(self, channels: int, styles: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(styles, channels))  # (S, C)
        self.bias = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        gamma, beta = mix @ self.weight, mix @ self.bias  # (B, S) @ (S, C) -> (B, C)
        return F.instance_norm(x) * gamma[:, :, None, None] + beta[:, :, None, None]  # (B, C) -> (B, C, 1, 1)


def _norm(channels: int, styles: int) -> nn.Module:
    # one style keeps nn.InstanceNorm2d: its state-dict keys and shapes are those of the one-style nets shipped
    return nn.InstanceNorm2d(channels, affine=True) if styles == 1 else StyleNorm(channels, styles)


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, padding_mode="reflect")


def _conv_norm_relu(c_in: int, c_out: int, kernel: int, stride: int = 1, styles: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(c_in, c_out, kernel, stride), _norm(c_out, styles), nn.ReLU(inplace=True))


class ResidualBlock(Conditioned):
    """x + IN(conv(ReLU(IN(conv(x))))): no ReLU after the sum (Gross & Wilber's variant, as Johnson's)."""

    def __init__(self, channels: int, styles: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv_norm_relu(channels, channels, 3, styles=styles),
                                  _conv(channels, channels, 3), _norm(channels, styles))

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        return x + run_conditioned(self.body, x, mix)


class UpsampleConv(Conditioned):
    """Nearest-neighbour 2x resize, then a 3x3 convolution: every output pixel sees the same number of
    inputs, so no checkerboard."""

    def __init__(self, c_in: int, c_out: int, styles: int = 1):
        super().__init__()
        self.conv = _conv_norm_relu(c_in, c_out, 3, styles=styles)

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        return run_conditioned(self.conv, F.interpolate(x, scale_factor=2.0, mode="nearest"), mix)  # (B, C, 2H, 2W)



@register_model("johnson", kind="style", config_cls=JohnsonConfig, tiny={"width": 4, "blocks": 1})
class JohnsonNet(nn.Module):
    """Johnson et al.'s image transformation network (one style): IN, residual blocks, resize-convolutions."""

    arbitrary = False  # the style (or the styles, each selected by name) is in the weights

    def __init__(self, config: JohnsonConfig):
        super().__init__()
        config.validate()
        self.config = config
        w, s = config.width, config.styles
        self.down = nn.Sequential(_conv_norm_relu(3, w, 9, styles=s), _conv_norm_relu(w, 2 * w, 3, 2, styles=s),
                                  _conv_norm_relu(2 * w, 4 * w, 3, 2, styles=s))
        self.res = nn.Sequential(*(ResidualBlock(4 * w, s) for _ in range(config.blocks)))
        self.up = nn.Sequential(UpsampleConv(4 * w, 2 * w, s), UpsampleConv(2 * w, w, s), _conv(w, 3, 9))

    @property
    def style_names(self) -> tuple[str, ...]:
        """The names ``--style`` selects; empty for a one-style network."""
        if self.config.styles == 1:
            return ()
        return self.config.style_names or tuple(str(i) for i in range(self.config.styles))

    def style_mix(self, style: int | str | torch.Tensor | None, batch: int) -> torch.Tensor | None:
        """(B, S) mixing weights from a style's index or name, or weights (S,) / (B, S), each row >= 0 and not
        all 0 (normalised to sum 1)."""
        count = self.config.styles
        if count == 1:
            if style is not None:
                raise ConfigError("this johnson network holds one style: it takes no style choice")
            return None
        if style is None:
            raise ConfigError(f"this johnson network holds {count} styles; choose one of {', '.join(self.style_names)}")
        if isinstance(style, str):
            if style not in self.style_names:
                raise ConfigError(f"unknown style {style!r}; this network holds {', '.join(self.style_names)}")
            style = self.style_names.index(style)
        if isinstance(style, int):
            if not 0 <= style < count:
                raise ConfigError(f"style index {style} is outside 0..{count - 1}")
            return F.one_hot(torch.full((batch,), style), count).float()  # (B, S)
        # no check of the values here: it would be data-dependent control flow, which export cannot trace;
        # the weights users give are checked where they are parsed (settings.parse_style_weights)
        mix = style.float().reshape(-1, count).expand(batch, count)  # (S,) or (B, S) -> (B, S)
        return mix / mix.sum(-1, keepdim=True)

    def forward(self, content: torch.Tensor, style: int | str | torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H, W), any H, W >= 1; ``style`` for a multi-style network (see
        :meth:`style_mix`)."""
        check_images(content, channels=3, who="johnson")
        mix = self.style_mix(style, content.shape[0])
        if mix is not None:
            mix = mix.to(content)  # the content's device and dtype
        # two stride-2 convolutions: 4 divides the padded size; 8 at least, so the 9x9 stem's and the 1/4-size
        # blocks' reflection padding (4 and 1 pixels) stays inside the image
        x, (h, w) = pad_to_multiple(content, 4, minimum=8)
        out = run_conditioned(self.up, run_conditioned(self.res, run_conditioned(self.down, x, mix), mix), mix)
        return out[..., :h, :w]  # (B, 3, H', W') -> (B, 3, H, W)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        content = torch.rand(batch, 3, 15, 18)  # odd sizes on purpose: the padding path runs
        if self.config.styles == 1:
            return (content,)
        return content, torch.softmax(torch.randn(batch, self.config.styles), -1)  # (B, S) style mixes


# --------------------------------------------------------------------------------------------------
# AdaIN: any style


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> per-channel mean and std over positions, each (B, C, 1, 1) (std biased, + eps
    inside the root so a flat channel has a finite gradient)."""
    b, c = features.shape[:2]
    flat = features.reshape(b, c, -1)  # (B, C, HW)
    mean = flat.mean(dim=2).view(b, c, 1, 1)  # (B, C) -> (B, C, 1, 1)
    std = (flat.var(dim=2, unbiased=False) + eps).sqrt().view(b, c, 1, 1)  # (B, C) -> (B, C, 1, 1)
    return mean, std


def adain(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation: ``std(s) * (c - mean(c)) / std(c) + mean(s)`` per channel;
    content (B, C, H, W) and style (B, C, h, w) (sizes may differ) -> (B, C, H, W)."""
    if content.ndim != 4 or style.ndim != 4 or content.shape[:2] != style.shape[:2]:
        raise InputShapeError(f"adain takes content and style features of shape (B, C, ., .) with the same B, C; "
                              f"got {tuple(content.shape)} and {tuple(style.shape)}")
    c_mean, c_std = mean_std(content)
    s_mean, s_std = mean_std(style)
    return (content - c_mean) / c_std * s_std + s_mean


@dataclass
class AdaINConfig:
    encoder: str = "vgg19"  # vgg19: the pretrained VGG-19 (genvision weights get vgg19) | random: seeded, for tests
    widths: tuple[int, ...] = VGG19_WIDTHS  # encoder block widths (random encoder only; vgg19 fixes them)
    blocks: tuple[int, ...] = VGG19_BLOCKS  # convolutions per encoder block (random encoder only)
    encoder_seed: int = 0  # the random encoder's weights come from this seed (so they need no storing)

    def __post_init__(self) -> None:
        self.widths, self.blocks = tuple(self.widths), tuple(self.blocks)  # JSON gives lists; configs compare equal

    def validate(self) -> None:
        if self.encoder not in ENCODERS:
            raise ConfigError(f"adain encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")
        if self.encoder == "vgg19" and (tuple(self.widths) != VGG19_WIDTHS or tuple(self.blocks) != VGG19_BLOCKS):
            raise ConfigError("adain widths and blocks are VGG-19's when encoder=vgg19; change them only with "
                              "encoder=random")
        if len(self.widths) != 4 or len(self.blocks) != 4:
            raise ConfigError(f"adain widths and blocks need 4 entries (relu1_1..relu4_1), got {len(self.widths)} "
                              f"and {len(self.blocks)}")
        for width, convs in zip(self.widths, self.blocks):
            check_range("adain widths", width, 1, MAX_WIDTH)
            check_range("adain blocks", convs, 1, 8)
        check_range("adain encoder_seed", self.encoder_seed, 0, 2**32 - 1)


class FrozenEncoder(nn.Module):
    """A VGG-shaped trunk (3x3 convolutions with zero padding, ReLU, 2x2 max pool between blocks) whose
    weights are non-persistent buffers: they move with ``.to()`` but stay out of ``state_dict()`` (and out
    of ``parameters()``, so no optimizer ever touches them). Input: RGB in [0, 1]; ``mean``/``std`` are
    the backbone's preprocessing."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int]):
        super().__init__()
        self.shapes: list[tuple[int, int]] = []  # (c_in, c_out) of every convolution, in order
        channels = 3
        for width, convs in zip(widths, blocks):
            for _ in range(convs):
                self.shapes.append((channels, width))
                channels = width
        self.blocks = tuple(blocks)
        for i, (c_in, c_out) in enumerate(self.shapes):
            self.register_buffer(f"weight{i}", torch.zeros(c_out, c_in, 3, 3), persistent=False)
            self.register_buffer(f"bias{i}", torch.zeros(c_out), persistent=False)
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=False)
        self.loaded = False

    def randomize(self, seed: int) -> None:
        """He-normal weights from ``seed`` (drawn on the CPU, so every device gets the same trunk)."""
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for i, (c_in, c_out) in enumerate(self.shapes):
                weight = torch.randn(c_out, c_in, 3, 3, generator=generator) * (2.0 / (9 * c_in)) ** 0.5
                getattr(self, f"weight{i}").copy_(weight)
                getattr(self, f"bias{i}").zero_()
        self.loaded = True

    def load(self, convs: Sequence[tuple[torch.Tensor, torch.Tensor]], mean: Sequence[float],
             std: Sequence[float]) -> None:
        """The (weight, bias) of each convolution in order, and the preprocessing."""
        if len(convs) < len(self.shapes):
            raise ConfigError(f"the encoder needs {len(self.shapes)} convolutions, the backbone has {len(convs)}")
        with torch.no_grad():
            for i, ((c_in, c_out), (weight, bias)) in enumerate(zip(self.shapes, convs)):
                if tuple(weight.shape) != (c_out, c_in, 3, 3):
                    raise ConfigError(f"encoder convolution {i} expects {(c_out, c_in, 3, 3)}, the backbone has "
                                      f"{tuple(weight.shape)}")
                getattr(self, f"weight{i}").copy_(weight)
                getattr(self, f"bias{i}").copy_(bias)
            self.mean.copy_(torch.tensor(mean).view(1, 3, 1, 1))
            self.std.copy_(torch.tensor(std).view(1, 3, 1, 1))
        self.loaded = True

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the first ReLU of every block: [(B, w1, H, W), (B, w2, H/2, W/2), ...]."""
        x = (images - self.mean) / self.std
        outputs, index = [], 0
        for block, convs in enumerate(self.blocks):
            if block:
                x = F.max_pool2d(x, 2, ceil_mode=True)  # ceil: odd sizes keep their last row/column
            for i in range(convs):
                x = F.relu(F.conv2d(x, getattr(self, f"weight{index}"), getattr(self, f"bias{index}"), padding=1))
                index += 1
                if i == 0:
                    outputs.append(x)
        return outputs


def _decoder(widths: Sequence[int], blocks: Sequence[int]) -> nn.Sequential:
    """The encoder mirrored: each block's convolutions in reverse (c_out -> c_in), nearest 2x upsampling
    where the encoder pooled, reflection padding, no ReLU after the last convolution. For VGG-19 this is
    Huang & Belongie's decoder exactly (512-256, up, 3x 256-256, 256-128, up, 128-128, 128-64, up, 64-64, 64-3)."""
    layers: list[nn.Module] = []
    channels = [3, *widths]
    for block in range(len(blocks) - 1, -1, -1):
        c_in, c_out = channels[block], channels[block + 1]
        for i in range(blocks[block]):
            first = i == blocks[block] - 1  # the block's first conv, mirrored, is the last one here
            layers.append(nn.Conv2d(c_out, c_in if first else c_out, 3, padding=1, padding_mode="reflect"))
            if not (block == 0 and first):
                layers.append(nn.ReLU(inplace=True))
        if block > 0:
            layers.append(nn.Upsample(scale_factor=2.0, mode="nearest"))
    return nn.Sequential(*layers)


@register_model("adain", kind="style", config_cls=AdaINConfig,
                tiny={"encoder": "random", "widths": (4, 6, 8, 8), "blocks": (1, 1, 1, 1)})
class AdaINNet(nn.Module):
    """Huang & Belongie's AdaIN: frozen VGG-19 encoder to relu4_1, AdaIN, a mirrored decoder (any style)."""

    arbitrary = True  # forward takes the style image

    def __init__(self, config: AdaINConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder = FrozenEncoder(config.widths, config.blocks)
        if config.encoder == "random":
            self.encoder.randomize(config.encoder_seed)
        self.decoder = _decoder(config.widths, config.blocks)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.config.blocks) - 1)  # the encoder pools between blocks

    def load_encoder(self, convs: Sequence[tuple[torch.Tensor, torch.Tensor]], mean: Sequence[float],
                     std: Sequence[float]) -> None:
        """Attach the backbone's convolutions (weight, bias), in order, and its preprocessing."""
        self.encoder.load(convs, mean, std)

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> [relu1_1, relu2_1, relu3_1, relu4_1] features."""
        if not self.encoder.loaded:
            raise ConfigError(f"this adain model's {self.config.encoder} encoder weights are not attached; load it "
                              f"with genvision.apps.style.fast.load_style_model (needs `genvision weights get "
                              f"{self.config.encoder}`)")
        return self.encoder(images)

    def target(self, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
               alpha: float = 1.0) -> torch.Tensor:
        """The decoder's input: ``alpha * sum_k w_k AdaIN(f(c), f(s_k)) + (1 - alpha) * f(c)`` at relu4_1,
        (B, C4, H/8, W/8). Mixing the AdaIN outputs, not the images, is the paper's style interpolation."""
        fc = self.encode(content)[-1]
        weights = [1.0 / len(styles)] * len(styles) if weights is None else list(weights)
        mixed = sum(w * adain(fc, self.encode(s)[-1]) for s, w in zip(styles, weights))
        return alpha * mixed + (1.0 - alpha) * fc

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(features)  # (B, C4, h, w) -> (B, 3, 8h, 8w)

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        """content (B, 3, H, W), style (B, 3, h, w) in [0, 1] -> (B, 3, H, W); ``alpha`` 0 = the content
        reconstructed, 1 = fully stylised."""
        check_images(content, channels=3, who="adain")
        check_images(style, channels=3, who="adain")
        return self.stylize(content, [style], alpha=alpha)

    def stylize(self, content: torch.Tensor, styles: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                alpha: float = 1.0) -> torch.Tensor:
        """Several styles mixed by ``weights`` (normalised by the caller), any content size."""
        x, (h, w) = pad_to_multiple(content, self.factor)
        return self.decode(self.target(x, styles, weights, alpha))[..., :h, :w]

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return torch.rand(batch, 3, 17, 20), torch.rand(batch, 3, 16, 16)
