"""Denoise images of any size: tiled and seam-free (:mod:`genvision.tiling`), bounded memory,
8/16-bit, grey or RGB, alpha passed through untouched.

``sigma`` here is in 8-bit levels (the literature's "sigma 25" = 25/255 of the range, whatever
the file's bit depth); models receive it as a fraction of the range. Blind models ignore it
(a warning says so when one is given); conditioned models (FFDNet-style DnCNN, NL-means) need it,
and when none is given it is estimated once per image, before tiling, from the finest diagonal
wavelet coefficients of a central crop of at most 1024x1024 pixels
(:func:`genvision.models.denoise.estimate_noise_sigma`), so every tile uses the same level.

Modes. Colour channels go through the model, alpha (LA/RGBA) is copied as it is. A grey image
through an RGB model is replicated to RGB and the result turned back into grey with BT.601 luma
weights; an RGB image through a grey model is denoised channel by channel. 16-bit greyscale
keeps its precision and is written as 16-bit PNG by default. EXIF orientation is applied on
loading.

Tiles. DnCNN-17's receptive field has a radius of 17 pixels; the default overlap of 32 gives it
8 pixels of context at every tile edge it is blended in, so tile seams stay far below the 8-bit
step (a receptive field within ``overlap // 4`` gives exactly the untiled result).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ... import io as gio
from ... import tiling
from ...checkpoints import is_weightless, load_with_card
from ...config import check_range
from ...errors import ConfigError
from ...jobs import Shard
from ...models.denoise import estimate_noise_sigma
from ...models.protocols import Denoiser
from ...outputs import JobReport, OutputGuard

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "MAX_SIGMA",
    "check_sigma",
    "denoise",
    "denoise_file",
    "denoise_image",
    "denoise_path",
    "denoise_tensor",
    "noise_level",
    "resolve_denoiser",
]

DEFAULT_TILE = tiling.DEFAULT_TILE
DEFAULT_OVERLAP = 32
MAX_SIGMA = 255.0  # 8-bit levels: noise with a standard deviation of the whole range
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 (what Pillow's RGB -> L uses)
_ESTIMATE_CROP = 1024


def resolve_denoiser(model: str | nn.Module, *, device: str | torch.device = "cpu", use_ema: bool = True) -> nn.Module:
    """A model directory, ``"nlmeans"`` (the weightless classical baseline) or a module -> a
    denoiser in eval mode."""
    if isinstance(model, nn.Module):
        net = model
    else:
        net, _ = load_with_card(model, kind="denoise", device=device, use_ema=use_ema,
                                config={} if is_weightless(model) else None)
    if not isinstance(net, Denoiser):
        raise ConfigError(f"{type(net).__name__} is not a denoising model")
    return net.eval()


def check_sigma(sigma: float | None, name: str = "--sigma") -> float | None:
    """A noise level in 8-bit levels, in (0, 255], or None."""
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
            raise ConfigError(f"{name} must be a number of 8-bit levels, got {sigma!r}")
        check_range(name, float(sigma), 0.0, MAX_SIGMA, low_open=True)
        return float(sigma)
    return None


def _conditioned(model: nn.Module) -> bool:
    return bool(getattr(model, "conditioned", False))


def noise_level(model: nn.Module, sigma: float | None, read, height: int, width: int) -> float | None:
    """The level (fraction of the range) the model is run at: ``sigma / 255``; for a conditioned model
    without one, estimated from a central crop; None for a blind model (which ignores it)."""
    sigma = check_sigma(sigma)
    if not _conditioned(model):
        if sigma is not None:
            warnings.warn(f"{type(model).__name__} is a blind denoiser: --sigma {sigma:g} is ignored", stacklevel=3)
        return None
    if sigma is not None:
        return sigma / 255.0
    ch, cw = min(height, _ESTIMATE_CROP), min(width, _ESTIMATE_CROP)
    y0, x0 = (height - ch) // 2, (width - cw) // 2
    return float(estimate_noise_sigma(read(y0, y0 + ch, x0, x0 + cw))[0])


class _DenoiseAdapter(nn.Module):
    """Runs a grey or RGB denoiser at one noise level on 1-4 channel images (alpha copied)."""

    scale = 1

    def __init__(self, model: nn.Module, in_channels: int, level: float | None):
        super().__init__()
        if in_channels not in (1, 2, 3, 4):
            raise ConfigError(f"images must have 1-4 channels, got {in_channels}")
        self.model, self.level = model, level
        self.colour = in_channels - 1 if in_channels in (2, 4) else in_channels
        self.any_channels = getattr(model, "any_channels", False)
        self.model_channels = getattr(model.config, "channels", 3)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not _conditioned(self.model):
            return self.model(x)
        return self.model(x, self.level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colour, alpha = x[:, :self.colour], x[:, self.colour:]
        if self.any_channels or self.colour == self.model_channels:
            out = self._run(colour)
        elif self.colour == 1:  # grey image, RGB model
            out = self._run(colour.expand(-1, 3, -1, -1).contiguous())
            w = torch.tensor(_LUMA, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
            out = (out * w).sum(dim=1, keepdim=True)
        else:  # RGB image, grey model: each channel on its own
            b, c, h, w = colour.shape
            out = self._run(colour.reshape(b * c, 1, h, w)).reshape(b, c, h, w)
        return torch.cat([out, alpha.to(out.dtype)], dim=1) if alpha.shape[1] else out


def denoise_tensor(model: nn.Module, image: torch.Tensor, *, sigma: float | None = None, tile: int | None = None,
                   overlap: int = DEFAULT_OVERLAP, batch: int = 4, progress: bool = False) -> torch.Tensor:
    """Denoise float ``(C, H, W)`` or ``(B, C, H, W)`` in [0, 1] (C = 1-4) -> float32, not clamped.

    ``sigma`` in 8-bit levels (see the module docstring); ``tile=None`` runs each image whole,
    otherwise tiles of ``tile`` pixels blended over ``overlap``.
    """
    if image.ndim == 4:
        return torch.stack([denoise_tensor(model, im, sigma=sigma, tile=tile, overlap=overlap, batch=batch,
                                           progress=progress) for im in image])
    if image.ndim != 3 or not image.is_floating_point():
        raise ConfigError(f"denoise_tensor expects a float (C, H, W) or (B, C, H, W) image in [0, 1], "
                          f"got {image.dtype} {tuple(image.shape)}")
    c, h, w = image.shape
    colour = c - 1 if c in (2, 4) else c
    level = noise_level(model, sigma, tiling.tensor_reader(image[:colour].detach().cpu()), h, w)
    net = _DenoiseAdapter(model, c, level)
    return tiling.run_tiled(net, image, tile=tile, overlap=overlap, batch=batch, device=tiling.module_device(model),
                            progress=progress, desc="denoise")


def denoise_image(model: nn.Module, image, *, sigma: float | None = None, tile: int | None = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, progress: bool = False):
    """PIL image -> denoised PIL image of the same kind (L, LA, RGB, RGBA; 16-bit grey -> I;16)."""
    x, mode = tiling.pil_to_unit(image)
    return tiling.unit_to_pil(denoise_tensor(model, x, sigma=sigma, tile=tile, overlap=overlap, progress=progress),
                              mode)


def denoise(model: nn.Module | str, image, *, sigma: float | None = None, tile: int | None = DEFAULT_TILE,
            overlap: int = DEFAULT_OVERLAP, progress: bool = False):
    """Denoise a tensor (float in [0, 1] or uint8, ``(C, H, W)`` or ``(B, C, H, W)``) or a PIL image.

    ``model``: a denoiser module, a model directory or ``"nlmeans"``. Returns the same kind of
    object: float32 (unclamped) for float tensors, uint8 for uint8, PIL for PIL.
    """
    net = resolve_denoiser(model)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            out = denoise_tensor(net, image.float() / 255.0, sigma=sigma, tile=tile, overlap=overlap,
                                 progress=progress)
            return (out.clamp_(0, 1) * 255.0).round_().to(torch.uint8)
        return denoise_tensor(net, image, sigma=sigma, tile=tile, overlap=overlap, progress=progress)
    return denoise_image(net, image, sigma=sigma, tile=tile, overlap=overlap, progress=progress)


def denoise_file(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 sigma: float | None = None, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 batch: int = 4, bit_depth: str | int = "auto", compress_level: int = 6, progress: bool = False,
                 metadata: dict | None = None) -> Path:
    """Denoise one image file into ``output`` (.png streams with bounded memory; .jpg/.jpeg/.webp
    hold the whole 8-bit output). ``bit_depth``: auto (16 for 16-bit sources written as PNG), 8, 16."""
    output = Path(output)
    suffix = tiling.check_output_suffix(output)
    OutputGuard().add_inputs(source).claim(output, check_exists=False)  # never the source, whatever was planned
    src = tiling.open_image_source(source)
    depth = tiling.output_bit_depth(bit_depth, src.wide, suffix)
    colour = src.channels - 1 if src.channels in (2, 4) else src.channels

    def read_colour(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        return src.read(y0, y1, x0, x1)[:colour]

    level = noise_level(model, sigma, read_colour, src.height, src.width)
    net = _DenoiseAdapter(model, src.channels, level)
    bands = tiling.iter_bands(net, src.read, src.height, src.width, src.channels, tile=tile, overlap=overlap,
                              batch=batch, device=tiling.module_device(model), progress=progress,
                              desc=Path(source).name)
    tiling.write_bands(bands, output, width=src.width, height=src.height, channels=src.channels, bit_depth=depth,
                       compress_level=compress_level)
    if metadata is not None:
        gio.write_sidecar(output, {**metadata, "source": str(source), "sigma": sigma,
                                   "sigma_used": None if level is None else round(level * 255.0, 3),
                                   "tile": tile, "overlap": overlap, "size": [src.width, src.height],
                                   "bit_depth": depth})
    return output


def denoise_path(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 sigma: float | None = None, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                 batch: int = 4, bit_depth: str | int = "auto", progress: bool = True, metadata: dict | None = None,
                 overwrite: bool = False, fail_fast: bool = False, shard: Shard | None = None,
                 resume: bool = False) -> JobReport:
    """One image file -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder
    of PNGs with the same relative names (:func:`genvision.tiling.process_path`: every output
    planned before anything is written, inputs never overwritten, a bad file reported and the
    rest go on unless ``fail_fast``)."""
    check_sigma(sigma)

    def work(src: Path, out: Path, show: bool) -> Path:
        return denoise_file(model, src, out, sigma=sigma, tile=tile, overlap=overlap, batch=batch,
                            bit_depth=bit_depth, progress=show, metadata=metadata)

    return tiling.process_path(source, output, work, overwrite=overwrite, fail_fast=fail_fast, progress=progress,
                               sidecar=metadata is not None, shard=shard, resume=resume, desc="denoise")
