"""Learned image codecs: VAEs whose latent is quantised and entropy-coded into a real bitstream.

Both follow Ballé et al.: an analysis transform ``g_a`` (four 5x5 stride-2 convolutions with GDN)
maps an image to a latent ``y`` at 1/16 of its side, a synthesis transform ``g_s`` (the transposed
stack with inverse GDN) maps it back, and an entropy model gives every integer value of the
quantised latent a probability, so ``-log2 p`` is its cost in bits. Training replaces rounding by
additive uniform noise (the "VAE with a uniform posterior" view of the papers) and minimises
``R + lambda * 255^2 * MSE`` (CompressAI's convention, :class:`CodecOutput`).

* :class:`FactorizedCodec` — "End-to-end optimized image compression", ICLR 2017 (the factorized
  prior of "Variational image compression with a scale hyperprior", 2018): one learned density per
  latent channel (CompressAI's ``EntropyBottleneck``).
* :class:`HyperpriorCodec` — the scale hyperprior (Ballé et al., ICLR 2018): a second, smaller
  latent ``z = h_a(|y|)``, coded with a factorized density, predicts the scale of a zero-mean
  Gaussian for every element of ``y`` (CompressAI's ``GaussianConditional``), so the code adapts to
  each image; ``z`` is the side information.

Every model of kind ``"codec"`` keeps :class:`~genvision.models.protocols.ImageCodec`: images in
[0, 1] (B, C, H, W) of any size (padded by edge replication to a multiple of the latent stride,
cropped back after decoding). ``compress`` gives per-image byte strings and ``decompress`` inverts
it exactly: ``decompress(compress(x))`` equals ``reconstruct(x)``, the rounded-latent decode.

The coder's integer tables (quantised CDFs) are buffers saved with the weights, so the decoder
uses the very tables the encoder used instead of recomputing them from floats on another machine.
They are refreshed from the learned densities when weights are read in training mode
(``state_dict``) or before a first use, and have a fixed width so that a model's weight shapes
depend only on its config.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_range
from ..errors import ConfigError, InputShapeError
from ..nn.checks import check_images
from ..nn.entropy import compressai_parts
from ..nn.padding import pad_to_multiple
from ..registry import register_model

MAX_WIDTH = 1024
TABLE_WIDTH = 1024  # columns of a factorized density's CDF table: latents spanning up to ~1000 integers
TAIL_MASS = 1e-9  # probability left outside each density's coded range (escape-coded by the rANS coder)

__all__ = [
    "TABLE_WIDTH",
    "CodecOutput",
    "CodedImages",
    "FactorizedCodec",
    "FactorizedCodecConfig",
    "HyperpriorCodec",
    "HyperpriorCodecConfig",
]


@dataclass
class CodecOutput:
    """A training forward pass, per image (B,): ``bpp`` the estimated rate in bits per pixel of the
    original image, ``mse`` on [0, 1] pixels, ``loss = bpp + rd_lambda * 255^2 * mse``."""

    reconstruction: torch.Tensor
    bpp: torch.Tensor
    mse: torch.Tensor
    loss: torch.Tensor


@dataclass
class CodedImages:
    """What ``compress`` returns: for each image its byte strings (one per coded latent: ``y``, then
    ``z`` for the hyperprior), the latent grid's side and the image's own side."""

    strings: list[list[bytes]]
    latent_size: tuple[int, int]
    image_size: tuple[int, int]


def _conv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2)


def _deconv(cin: int, cout: int, kernel: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel, stride=stride, output_padding=stride - 1, padding=kernel // 2)


def _transforms(channels: int, width: int, latent: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Ballé et al.'s g_a (image -> latent at 1/16 of the side) and g_s (back)."""
    gdn = _on_cpu(compressai_parts().GDN)
    analysis = nn.Sequential(_conv(channels, width), gdn(width), _conv(width, width), gdn(width),
                             _conv(width, width), gdn(width), _conv(width, latent))
    synthesis = nn.Sequential(_deconv(latent, width), gdn(width, inverse=True), _deconv(width, width),
                              gdn(width, inverse=True), _deconv(width, width), gdn(width, inverse=True),
                              _deconv(width, channels))
    return analysis, synthesis


def _on_cpu(layer_class):
    """``layer_class`` built on the CPU: CompressAI's layers make some tensors with the legacy
    ``torch.Tensor(...)`` constructor, which ignores a meta default device (the registry's size
    check builds models on it) and then mixes devices."""

    def build(*args, **kwargs):
        with torch.device("cpu"):
            return layer_class(*args, **kwargs)

    return build


def _follow_default_device(model: nn.Module) -> None:
    """Built under a meta default device (the registry's shape check), move the CPU-built CompressAI parts
    there too, so the whole model is shapes only."""
    if torch.empty(0).device.type == "meta":
        model.to("meta")


def _pad_to(images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Edge-replicate the bottom/right so both sides are multiples of ``multiple`` (edges, not zeros:
    a flat border costs almost no bits)."""
    return pad_to_multiple(images, multiple, mode="replicate")[0]  # (B, C, H', W')


def _bits(likelihoods: torch.Tensor) -> torch.Tensor:
    """-log2 p summed per image: (B, C, h, w) -> (B,)."""
    return -torch.log2(likelihoods).flatten(1).sum(dim=1)


class TableOverflowError(ConfigError):
    """A density spans more integers than the fixed-width tables hold."""


def _fixed_width_tables(bottleneck: nn.Module) -> None:
    """Recompute a factorized density's CDF tables and pad them to TABLE_WIDTH columns (the rANS
    coder reads only each row's ``_cdf_length`` entries)."""
    previous = (bottleneck._quantized_cdf, bottleneck._offset, bottleneck._cdf_length)
    bottleneck.update(force=True)
    table = bottleneck._quantized_cdf
    if table.shape[1] > TABLE_WIDTH:
        bottleneck._quantized_cdf, bottleneck._offset, bottleneck._cdf_length = previous
        raise TableOverflowError(f"a latent channel spans {table.shape[1] - 2} integer values, more than the "
                                 f"codec's tables hold ({TABLE_WIDTH - 2}); the model has not learned a usable density")
    bottleneck._quantized_cdf = F.pad(table, (0, TABLE_WIDTH - table.shape[1]))


def _empty_tables(bottleneck: nn.Module, channels: int) -> None:
    """Tables of the saved shapes before the first refresh (all zero: nothing can be coded yet)."""
    device = bottleneck.quantiles.device
    bottleneck._quantized_cdf = torch.zeros(channels, TABLE_WIDTH, dtype=torch.int32, device=device)
    bottleneck._offset = torch.zeros(channels, dtype=torch.int32, device=device)
    bottleneck._cdf_length = torch.zeros(channels, dtype=torch.int32, device=device)


@lru_cache(maxsize=1)
def _gaussian_tables() -> dict[str, torch.Tensor]:
    """The Gaussian conditional's tables: they depend only on the fixed scale table, so they are made
    once on the CPU (also when the model itself is built on the meta device to check its shapes)."""
    parts = compressai_parts()
    with torch.device("cpu"):
        gaussian = parts.GaussianConditional(None, tail_mass=TAIL_MASS)
        gaussian.update_scale_table(torch.tensor(parts.scale_table()), force=True)
    return {name: buffer.clone() for name, buffer in gaussian.named_buffers()}


class _Codec(nn.Module):
    """What both codecs share: input checks, padding, the factorized bottleneck's tables."""

    stride = 16  # g_a halves the side four times

    def _check(self, images: torch.Tensor) -> None:
        check_images(images, channels=self.config.channels, who=self.registry_name)
        if images.shape[-2] < 1 or images.shape[-1] < 1:
            raise InputShapeError(f"{self.registry_name} takes non-empty images; got {tuple(images.shape)}")

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        return (torch.rand(batch, self.config.channels, self.stride * 2, self.stride * 2),)

    def refresh_tables(self) -> None:
        """Recompute the coder's tables from the learned densities (after training changes them)."""
        with torch.no_grad():
            _fixed_width_tables(self.bottleneck)

    def _tables_empty(self) -> bool:
        return not bool(self.bottleneck._cdf_length.any())

    def state_dict(self, *args, **kwargs):
        # Weights written while training carry tables made from the densities being written. A loaded
        # (eval-mode) model keeps the tables it was saved with: recomputing them from floats on another
        # machine could differ by one count and the file would no longer decode. Stale tables are never
        # wrong, only a little less efficient: encoder and decoder read the same ones.
        if (self.training or self._tables_empty()) and not any(p.is_meta for p in self.parameters()):
            try:
                self.refresh_tables()
            except TableOverflowError:  # early in training: keep the last tables rather than stop a checkpoint
                pass
        return super().state_dict(*args, **kwargs)

    def _ready_to_code(self) -> None:
        if self._tables_empty():
            self.refresh_tables()

    def aux_loss(self) -> torch.Tensor:
        """The bottleneck's quantile loss: fits the range its tables cover (its own optimizer)."""
        return self.bottleneck.loss()

    def main_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.endswith("quantiles")]

    def aux_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.endswith("quantiles")]

    def _rate_distortion(self, images: torch.Tensor, padded_reconstruction: torch.Tensor,
                         likelihoods: list[torch.Tensor], rd_lambda: float) -> CodecOutput:
        h, w = images.shape[-2:]
        reconstruction = padded_reconstruction[..., :h, :w]
        bpp = sum(_bits(lik) for lik in likelihoods) / (h * w)
        mse = (reconstruction - images).pow(2).flatten(1).mean(dim=1)
        return CodecOutput(reconstruction, bpp, mse, bpp + rd_lambda * 255.0**2 * mse)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """The decode of the rounded latents (the inference forward pass, no coder involved): what
        ``decompress(compress(images))`` must return exactly."""
        was_training = self.training
        self.eval()
        try:
            return self(images).reconstruction.clamp(0, 1)
        finally:
            self.train(was_training)


@dataclass
class FactorizedCodecConfig:
    channels: int = 3
    width: int = 128  # N, the transforms' hidden channels (Ballé et al.: 128 for low rates, 192 high)
    latent_channels: int = 192  # M, the latent's channels

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"codec channels must be 1 or 3, got {self.channels}")
        check_range("codec width", self.width, 1, MAX_WIDTH)
        check_range("codec latent_channels", self.latent_channels, 1, MAX_WIDTH)


@register_model("codec-factorized", kind="codec", config_cls=FactorizedCodecConfig,
                tiny={"width": 4, "latent_channels": 4})
class FactorizedCodec(_Codec):
    """Ballé et al. 2017/2018 factorized-prior codec: GDN transforms, one density per latent channel."""

    def __init__(self, config: FactorizedCodecConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.analysis, self.synthesis = _transforms(config.channels, config.width, config.latent_channels)
        self.bottleneck = _on_cpu(compressai_parts().EntropyBottleneck)(config.latent_channels, tail_mass=TAIL_MASS)
        _empty_tables(self.bottleneck, config.latent_channels)
        _follow_default_device(self)

    def forward(self, images: torch.Tensor, rd_lambda: float = 0.01) -> CodecOutput:
        self._check(images)
        y = self.analysis(_pad_to(images, self.stride))  # (B, M, H/16, W/16)
        y_hat, likelihoods = self.bottleneck(y)
        return self._rate_distortion(images, self.synthesis(y_hat), [likelihoods], rd_lambda)

    @torch.no_grad()
    def compress(self, images: torch.Tensor) -> CodedImages:
        self._check(images)
        self._ready_to_code()
        y = self.analysis(_pad_to(images, self.stride))
        strings = self.bottleneck.compress(y)
        return CodedImages([[s] for s in strings], tuple(y.shape[-2:]), tuple(images.shape[-2:]))

    @torch.no_grad()
    def decompress(self, coded: CodedImages) -> torch.Tensor:
        self._ready_to_code()
        y_strings = [image_strings[0] for image_strings in coded.strings]
        y_hat = self.bottleneck.decompress(y_strings, coded.latent_size)
        h, w = coded.image_size
        return self.synthesis(y_hat)[..., :h, :w].clamp(0, 1)


@dataclass
class HyperpriorCodecConfig(FactorizedCodecConfig):
    pass


@register_model("codec-hyperprior", kind="codec", config_cls=HyperpriorCodecConfig,
                tiny={"width": 4, "latent_channels": 4})
class HyperpriorCodec(_Codec):
    """Ballé et al. 2018 scale-hyperprior codec: side information predicts each latent's Gaussian scale."""

    stride = 64  # the hyper-analysis halves the latent's side twice more

    def __init__(self, config: HyperpriorCodecConfig):
        super().__init__()
        config.validate()
        self.config = config
        n, m = config.width, config.latent_channels
        parts = compressai_parts()
        self.analysis, self.synthesis = _transforms(config.channels, n, m)
        self.hyper_analysis = nn.Sequential(_conv(m, n, 3, 1), nn.ReLU(inplace=True), _conv(n, n),
                                            nn.ReLU(inplace=True), _conv(n, n))
        self.hyper_synthesis = nn.Sequential(_deconv(n, n), nn.ReLU(inplace=True), _deconv(n, n),
                                             nn.ReLU(inplace=True), _conv(n, m, 3, 1), nn.ReLU(inplace=True))
        self.bottleneck = _on_cpu(parts.EntropyBottleneck)(n, tail_mass=TAIL_MASS)
        _empty_tables(self.bottleneck, n)
        self.gaussian = _on_cpu(parts.GaussianConditional)(None, tail_mass=TAIL_MASS)
        for name, table in _gaussian_tables().items():
            setattr(self.gaussian, name, table.clone())
        _follow_default_device(self)

    def forward(self, images: torch.Tensor, rd_lambda: float = 0.01) -> CodecOutput:
        self._check(images)
        y = self.analysis(_pad_to(images, self.stride))  # (B, M, H/16, W/16)
        z = self.hyper_analysis(torch.abs(y))  # (B, N, H/64, W/64)
        z_hat, z_likelihoods = self.bottleneck(z)
        scales = self.hyper_synthesis(z_hat)  # (B, M, H/16, W/16)
        y_hat, y_likelihoods = self.gaussian(y, scales)
        return self._rate_distortion(images, self.synthesis(y_hat), [y_likelihoods, z_likelihoods], rd_lambda)

    @torch.no_grad()
    def compress(self, images: torch.Tensor) -> CodedImages:
        self._check(images)
        self._ready_to_code()
        y = self.analysis(_pad_to(images, self.stride))
        z = self.hyper_analysis(torch.abs(y))
        z_strings = self.bottleneck.compress(z)
        z_hat = self.bottleneck.decompress(z_strings, z.shape[-2:])
        indexes = self.gaussian.build_indexes(self.hyper_synthesis(z_hat))
        y_strings = self.gaussian.compress(y, indexes)
        return CodedImages([[ys, zs] for ys, zs in zip(y_strings, z_strings, strict=True)],
                           tuple(y.shape[-2:]), tuple(images.shape[-2:]))

    @torch.no_grad()
    def decompress(self, coded: CodedImages) -> torch.Tensor:
        self._ready_to_code()
        y_strings = [image_strings[0] for image_strings in coded.strings]
        z_strings = [image_strings[1] for image_strings in coded.strings]
        latent_h, latent_w = coded.latent_size
        z_hat = self.bottleneck.decompress(z_strings, (latent_h // 4, latent_w // 4))
        indexes = self.gaussian.build_indexes(self.hyper_synthesis(z_hat))
        y_hat = self.gaussian.decompress(y_strings, indexes, z_hat.dtype)
        h, w = coded.image_size
        return self.synthesis(y_hat)[..., :h, :w].clamp(0, 1)
