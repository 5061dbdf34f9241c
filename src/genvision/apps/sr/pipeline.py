"""Upscale images of any size with a super-resolution model: tiled, seam-free, bounded memory.

Tiling and streaming are :mod:`genvision.tiling`'s (shared with denoising): tiles of ``tile``
input pixels blended over ``overlap`` with raised-cosine weights that sum to 1 (a model whose
receptive field radius is at most ``overlap // 4`` input pixels gives the untiled result), and
output rows handed to a sink as soon as no later tile touches them: a tensor, or a PNG written
row by row, so an 8000x6000 input upscaled x4 never needs the whole output in memory. JPEG/WebP
output goes through Pillow and holds the whole 8-bit output. ``tile_starts``, ``axis_weights``,
``iter_bands`` and ``PNGStreamWriter`` stay importable from here.

Modes. RGB goes through the model; greyscale is replicated to RGB for 3-channel models and the
result converted back with BT.601 luma weights; alpha (LA/RGBA) is upscaled separately with
bicubic. 16-bit greyscale input keeps its precision (float tensors in [0, 1]) and is written as
16-bit PNG by default (``bit_depth``). EXIF orientation is applied on loading (``genvision.io``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ... import io as gio
from ... import tiling
from ...checkpoints import is_weightless, load_with_card
from ...errors import ConfigError
from ...io import PNGStreamWriter
from ...jobs import Shard
from ...models.protocols import ImageToImage
from ...models.sr import SCALES
from ...nn.resize import imresize
from ...outputs import JobReport, OutputGuard
from ...tiling import DEFAULT_OVERLAP, DEFAULT_TILE, axis_weights, tile_starts
from .ensemble import SelfEnsemble

__all__ = ["tile_starts", "axis_weights", "iter_bands", "upscale_tensor", "upscale", "upscale_image",
           "upscale_file", "upscale_path", "resolve_sr_model", "PNGStreamWriter", "DEFAULT_TILE",
           "DEFAULT_OVERLAP"]

_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 (what Pillow's RGB -> L uses)


# ----------------------------------------------------------------------------- models


def resolve_sr_model(model: str | nn.Module, scale: int | None = None, *, device: str | torch.device = "cpu",
                     use_ema: bool = True, self_ensemble: bool = False) -> nn.Module:
    """A model directory, a weightless model's name (``bicubic``, with ``scale``) or a module -> an
    SR model in eval mode.

    ``scale`` builds a weightless model and is checked against a saved model's own (a mismatch is a
    one-line ConfigError). ``self_ensemble`` wraps the model in :class:`.ensemble.SelfEnsemble`
    (8 symmetric passes averaged).
    """
    if scale is not None and scale not in SCALES:
        raise ConfigError(f"--scale must be one of {', '.join(map(str, SCALES))}, got {scale}")
    if isinstance(model, nn.Module):
        net = model
    elif scale is None and is_weightless(model):
        raise ConfigError(f"--model {model} needs --scale {' or '.join(map(str, SCALES))}")
    else:
        net, _ = load_with_card(model, kind="sr", device=device, use_ema=use_ema,
                            config={"scale": scale} if scale is not None else None)
    if not isinstance(net, ImageToImage):
        raise ConfigError(f"{type(net).__name__} is not an image-to-image model (no scale)")
    if scale is not None and net.scale != scale:
        raise ConfigError(f"the model upscales x{net.scale} but --scale {scale} was given")
    return (SelfEnsemble(net) if self_ensemble else net).eval()


def _model_scale(model: nn.Module) -> int:
    if not isinstance(model, ImageToImage):
        raise ConfigError(f"{type(model).__name__} has no integer scale: not a super-resolution model")
    return model.scale


class _ChannelAdapter(nn.Module):
    """Runs an RGB (or grey) SR model on 1-4 channel images: grey <-> RGB, alpha by bicubic."""
    def __init__(self, model: nn.Module, in_channels: int):
        super().__init__()
        self.model, self.in_channels = model, in_channels
        self.scale = _model_scale(model)
        self.any_channels = getattr(model, "any_channels", False)
        self.model_channels = getattr(model.config, "channels", 3)
        colour = in_channels - 1 if in_channels in (2, 4) else in_channels
        if in_channels not in (1, 2, 3, 4):
            raise ConfigError(f"images must have 1-4 channels, got {in_channels}")
        if not self.any_channels and (colour, self.model_channels) not in ((1, 1), (3, 3), (1, 3)):
            raise ConfigError(f"a {self.model_channels}-channel model cannot upscale {colour}-channel images")
        self.colour = colour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.any_channels:
            return self.model(x)
        colour, alpha = x[:, :self.colour], x[:, self.colour:]
        # channels_last: oneDNN's NCHW convolutions measured 1.3-1.6x slower on the CI CPU
        colour = colour.contiguous(memory_format=torch.channels_last)
        if self.colour == 1 and self.model_channels == 3:
            out = self.model(colour.expand(-1, 3, -1, -1))  # (B, 3, sh, sw)
            w = torch.tensor(_LUMA, dtype=out.dtype, device=out.device).view(1, 3, 1, 1)
            out = (out * w).sum(dim=1, keepdim=True)  # (B, 1, sh, sw)
        else:
            out = self.model(colour)
        if alpha.shape[1]:
            out = torch.cat([out, imresize(alpha.to(out.dtype), self.scale)], dim=1)
        return out


# ----------------------------------------------------------------------------- tiling


def iter_bands(net: nn.Module, read: tiling.Reader, height: int, width: int, channels: int, *, tile: int | None,
               overlap: int, batch: int = 4, device: torch.device | str = "cpu", progress: bool = False,
               desc: str = "upscale"):
    """:func:`genvision.tiling.iter_bands` at the upscaler's own scale: yields ``(first_output_row,
    rows)`` with ``rows`` float32 ``(C, n, width * s)``, in order."""
    scale = _model_scale(net.model if isinstance(net, _ChannelAdapter) else net)
    return tiling.iter_bands(net, read, height, width, channels, scale=scale, tile=tile, overlap=overlap,
                             batch=batch, device=device, progress=progress, desc=desc)


# ----------------------------------------------------------------------------- the Python API


def upscale_tensor(model: nn.Module, image: torch.Tensor, *, tile: int | None = None,
                   overlap: int = DEFAULT_OVERLAP, batch: int = 4, progress: bool = False) -> torch.Tensor:
    """Upscale float ``(C, H, W)`` or ``(B, C, H, W)`` in [0, 1] (C = 1-4) -> float32, not clamped.

    ``tile=None`` runs each image whole; otherwise tiles of ``tile`` pixels blended over ``overlap``.
    """
    if image.ndim == 4:
        return torch.stack([upscale_tensor(model, im, tile=tile, overlap=overlap, batch=batch, progress=progress)
                            for im in image])
    if image.ndim != 3 or not image.is_floating_point():
        raise ConfigError(f"upscale_tensor expects a float (C, H, W) or (B, C, H, W) image in [0, 1], "
                          f"got {image.dtype} {tuple(image.shape)}")
    net = _ChannelAdapter(model, image.shape[0])
    return tiling.run_tiled(net, image, scale=net.scale, tile=tile, overlap=overlap, batch=batch,
                            device=tiling.module_device(model), progress=progress, desc="upscale")


def upscale_image(model: nn.Module, image, *, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                  progress: bool = False):
    """PIL image -> upscaled PIL image of the same kind (L, LA, RGB, RGBA; 16-bit grey -> I;16)."""
    x, mode = tiling.pil_to_unit(image)
    out = upscale_tensor(model, x, tile=tile, overlap=overlap, progress=progress)
    return tiling.unit_to_pil(out, mode)


def upscale(model: nn.Module | str, image, *, scale: int | None = None, tile: int | None = DEFAULT_TILE,
            overlap: int = DEFAULT_OVERLAP, progress: bool = False):
    """Upscale a tensor (float in [0, 1] or uint8, ``(C, H, W)`` or ``(B, C, H, W)``) or a PIL image.

    ``model``: an SR module, a model directory or ``"bicubic"`` (with ``scale``). Returns the
    same kind of object: float32 (unclamped) for float tensors, uint8 for uint8, PIL for PIL.
    """
    net = resolve_sr_model(model, scale)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.uint8:
            out = upscale_tensor(net, image.float() / 255.0, tile=tile, overlap=overlap, progress=progress)
            return (out.clamp_(0, 1) * 255.0).round_().to(torch.uint8)
        return upscale_tensor(net, image, tile=tile, overlap=overlap, progress=progress)
    return upscale_image(net, image, tile=tile, overlap=overlap, progress=progress)


# ----------------------------------------------------------------------------- files


def upscale_file(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch: int = 4,
                 bit_depth: str | int = "auto", compress_level: int = 6, progress: bool = False,
                 metadata: dict | None = None) -> Path:
    """Upscale one image file into ``output`` (.png streams with bounded memory; .jpg/.jpeg/.webp
    hold the whole 8-bit output). ``bit_depth``: auto (16 for 16-bit sources written as PNG), 8, 16."""
    output = Path(output)
    suffix = tiling.check_output_suffix(output)
    # never replace the source, whatever the caller planned (existing outputs are the caller's decision)
    OutputGuard().add_inputs(source).claim(output, check_exists=False)
    src = tiling.open_image_source(source)
    depth = tiling.output_bit_depth(bit_depth, src.wide, suffix)
    net = _ChannelAdapter(model, src.channels)
    s = net.scale
    if suffix != ".png" and src.height * s * src.width * s > gio.MAX_PIXELS:  # before any tile runs
        raise ConfigError(f"{output}: a {src.width * s}x{src.height * s} output is over {gio.MAX_PIXELS} pixels; "
                          f"write a .png, which streams with bounded memory")
    bands = tiling.iter_bands(net, src.read, src.height, src.width, src.channels, scale=s, tile=tile,
                              overlap=overlap, batch=batch, device=tiling.module_device(model), progress=progress,
                              desc=Path(source).name)
    tiling.write_bands(bands, output, width=src.width * s, height=src.height * s, channels=src.channels,
                       bit_depth=depth, compress_level=compress_level)
    if metadata is not None:
        gio.write_sidecar(output, {**metadata, "source": str(source), "scale": s, "tile": tile, "overlap": overlap,
                                   "size": [src.width * s, src.height * s], "bit_depth": depth})
    return output


def upscale_path(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch: int = 4,
                 bit_depth: str | int = "auto", progress: bool = True, metadata: dict | None = None,
                 overwrite: bool = False, fail_fast: bool = False, shard: Shard | None = None,
                 resume: bool = False) -> JobReport:
    """One image file -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder
    of PNGs with the same relative names, by :func:`genvision.tiling.process_path` (every output
    planned before anything is written; a file that fails is reported and the rest go on, unless
    ``fail_fast``); the returned :class:`~genvision.outputs.JobReport` says what was written and
    what failed.
    """
    def work(src: Path, out: Path, show: bool) -> Path:
        return upscale_file(model, src, out, tile=tile, overlap=overlap, batch=batch, bit_depth=bit_depth,
                            progress=show, metadata=metadata)

    return tiling.process_path(source, output, work, overwrite=overwrite, fail_fast=fail_fast, progress=progress,
                               sidecar=metadata is not None, shard=shard, resume=resume, desc="upscale")
