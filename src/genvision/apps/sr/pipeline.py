"""Upscale images of any size with a super-resolution model: tiled, seam-free, bounded memory.

Tiling. The input is cut into ``tile x tile`` pieces (the last row/column of tiles is shifted
back to end at the border, so every tile is full size) that share ``overlap`` pixels with their
neighbours. In the strip two neighbours share, the outer ``overlap // 4`` pixels on each side
get weight 0 (the model saw a cut-off context there), and across the middle half the weights
cross-fade with a raised-cosine ramp: ``w_in(t) = sin^2(pi/2 (t + 1/2) / R)`` for the tile
entering and ``1 - w_in`` for the tile leaving. Weights are separable (row ramp x column ramp)
and the 1-D weights sum to 1 everywhere, so their products do too, and a model whose receptive
field radius is at most ``overlap // 4`` input pixels gives the untiled result (to float
rounding; where the shifted last tile makes three tiles meet, weights are normalised by their
sum); for deeper models the cut-off context still affects the result a little, but the
smooth cross-fade leaves no visible step at tile borders.

Streaming. Tiles are processed one tile row at a time into a float32 band of output rows; rows
no later tile touches are handed to a *sink* immediately: a preallocated tensor (the Python
API), or a PNG written row by row (zlib stream, 'Up' filter), so an 8000x6000 input upscaled x4
(a 32000x24000 output, 2.3 GB as 8-bit RGB) never needs the whole output in memory: peak memory
is the input plus a band of ``(tile + overlap) * scale`` output rows. JPEG/WebP output goes
through Pillow and holds the whole 8-bit output (and Pillow's own copy).

Modes. RGB goes through the model; greyscale is replicated to RGB for 3-channel models and the
result converted back with BT.601 luma weights; alpha (LA/RGBA) is upscaled separately with
bicubic. 16-bit greyscale input keeps its precision (float tensors in [0, 1]) and is written as
16-bit PNG by default (``bit_depth``). EXIF orientation is applied on loading (``genvision.io``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from ... import io as gio
from ...checkpoints import is_weightless, load_with_card
from ...errors import ConfigError, GenvisionError, display_path
from ...io import PNGStreamWriter
from ...models.protocols import ImageToImage
from ...models.sr import SCALES
from ...nn.resize import imresize
from ...outputs import JobReport, OutputGuard, plan_folder_job, run_job
from .ensemble import SelfEnsemble

__all__ = ["tile_starts", "axis_weights", "iter_bands", "upscale_tensor", "upscale", "upscale_image",
           "upscale_file", "upscale_path", "resolve_sr_model", "PNGStreamWriter", "DEFAULT_TILE",
           "DEFAULT_OVERLAP"]

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 16
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 (what Pillow's RGB -> L uses)
_SUFFIXES_OUT = {".png", ".jpg", ".jpeg", ".webp"}

Reader = Callable[[int, int, int, int], torch.Tensor]  # (y0, y1, x0, x1) -> float32 (C, h, w) in [0, 1]


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


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``length``; neighbours share at
    least ``overlap`` pixels; the last tile ends at the border."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def axis_weights(starts: list[int], size: int, overlap: int, scale: int) -> list[torch.Tensor]:
    """1-D blending weights in output pixels (``size * scale`` each) for tiles at ``starts``;
    they sum to 1 at every output position.

    In each strip two neighbours share, ``overlap // 4`` pixels at either end get weight 0 in the
    tile whose edge is there, and the middle is a raised-cosine cross-fade. Where three tiles meet
    (the last tile is shifted back to the border) the weights are normalised by their sum.
    """
    margin = overlap // 4
    n = len(starts)
    weights = [torch.ones(size * scale, dtype=torch.float64) for _ in starts]

    def ramp(length: int) -> torch.Tensor:
        t = torch.arange(length, dtype=torch.float64)
        return torch.sin(0.5 * math.pi * (t + 0.5) / max(length, 1)) ** 2  # rising, in (0, 1)

    for i in range(1, n):
        shared = starts[i - 1] + size - starts[i]  # input pixels tiles i-1 and i share
        d = min(margin, shared // 2)
        begin, length = (starts[i] + d) * scale, (shared - 2 * d) * scale  # the ramp, output coordinates
        rising = ramp(length)
        right = weights[i]  # tile i: 0 before the ramp, rising on it
        local = begin - starts[i] * scale
        right[:local] = 0.0
        right[local:local + length] *= rising
        left = weights[i - 1]  # tile i-1: falling on the ramp, 0 after it
        local = begin - starts[i - 1] * scale
        left[local:local + length] *= 1.0 - rising
        left[local + length:] = 0.0
    total = torch.zeros((starts[-1] + size) * scale, dtype=torch.float64)
    for p, w in zip(starts, weights):
        total[p * scale:(p + size) * scale] += w
    return [(w / total[p * scale:(p + size) * scale]).float() for p, w in zip(starts, weights)]


@dataclass
class _Plan:
    height: int
    width: int
    scale: int
    tile_h: int
    tile_w: int
    ys: list[int]
    xs: list[int]
    wy: list[torch.Tensor]
    wx: list[torch.Tensor]

    @property
    def num_tiles(self) -> int:
        return len(self.ys) * len(self.xs)


def _plan(height: int, width: int, scale: int, tile: int | None, overlap: int) -> _Plan:
    if overlap < 0:
        raise ConfigError(f"--overlap must be >= 0, got {overlap}")
    if tile is None or tile <= 0 or tile >= max(height, width):
        tile = max(height, width)  # one tile: the overlap does not matter
    elif tile < 8:
        raise ConfigError(f"--tile must be at least 8 pixels, got {tile}")
    elif 2 * overlap > tile:
        raise ConfigError(f"--overlap ({overlap}) must be at most half of --tile ({tile})")
    th, tw = min(tile, height), min(tile, width)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    return _Plan(height, width, scale, th, tw, ys, xs, axis_weights(ys, th, overlap, scale),
                 axis_weights(xs, tw, overlap, scale))


@torch.no_grad()
def iter_bands(net: nn.Module, read: Reader, height: int, width: int, channels: int, *, tile: int | None,
               overlap: int, batch: int = 4, device: torch.device | str = "cpu", progress: bool = False,
               desc: str = "upscale") -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first_output_row, rows)`` with ``rows`` float32 ``(C, n, width * s)``, in order.

    ``net`` maps ``(B, C, h, w)`` in [0, 1] to ``(B, C, s*h, s*w)``; ``read(y0, y1, x0, x1)``
    returns input pixels as float32 ``(C, h, w)``.
    """
    scale = _model_scale(net.model if isinstance(net, _ChannelAdapter) else net)
    plan = _plan(height, width, scale, tile, overlap)
    out_w = width * scale
    band: torch.Tensor | None = None  # accumulated output rows [band_y0, band_y0 + band.shape[1])
    band_y0 = 0
    bar = tqdm(total=plan.num_tiles, desc=desc, unit="tile", disable=not progress, dynamic_ncols=True)
    try:
        for row, y in enumerate(plan.ys):
            y_end = (y + plan.tile_h) * scale
            if band is None:
                band = torch.zeros(channels, y_end - band_y0, out_w)
            elif band_y0 + band.shape[1] < y_end:
                grown = torch.zeros(channels, y_end - band_y0, out_w)
                grown[:, :band.shape[1]] = band
                band = grown
            wy = plan.wy[row].view(1, -1, 1)  # (1, th*s, 1)
            for b0 in range(0, len(plan.xs), batch):
                xs = plan.xs[b0:b0 + batch]
                tiles = torch.stack([read(y, y + plan.tile_h, x, x + plan.tile_w) for x in xs])  # (B, C, th, tw)
                out = net(tiles.to(device)).float().cpu()  # (B, C, th*s, tw*s)
                expected = (len(xs), channels, plan.tile_h * scale, plan.tile_w * scale)
                if tuple(out.shape) != expected:
                    raise GenvisionError(f"the model returned {tuple(out.shape)} for tiles of "
                                         f"{tuple(tiles.shape)}; expected {expected}")
                # rows above band_y0 were already handed out: this tile's weight is 0 there
                skip = max(0, band_y0 - y * scale)
                for k, x in enumerate(xs):
                    col = plan.xs.index(x)
                    weighted = out[k, :, skip:] * wy[:, skip:] * plan.wx[col].view(1, 1, -1)  # (C, th*s - skip, tw*s)
                    band[:, y * scale + skip - band_y0:y_end - band_y0, x * scale:(x + plan.tile_w) * scale] += weighted
                bar.update(len(xs))
            # rows the next tile row does not touch are final
            if row + 1 < len(plan.ys):
                next_first = (plan.ys[row + 1] + min(overlap // 4, (y + plan.tile_h - plan.ys[row + 1]) // 2)) * scale
            else:
                next_first = height * scale
            done = next_first - band_y0
            if done > 0:
                yield band_y0, band[:, :done]
                band = band[:, done:].clone()
                band_y0 = next_first
    finally:
        bar.close()


# ----------------------------------------------------------------------------- the Python API


def _tensor_reader(image: torch.Tensor) -> Reader:
    return lambda y0, y1, x0, x1: image[:, y0:y1, x0:x1].float()


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
    c, h, w = image.shape
    net = _ChannelAdapter(model, c)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    out = torch.empty(c, h * net.scale, w * net.scale)
    for y0, rows in iter_bands(net, _tensor_reader(image.detach().cpu()), h, w, c, tile=tile, overlap=overlap,
                               batch=batch, device=device, progress=progress):
        out[:, y0:y0 + rows.shape[1]] = rows
    return out


def _working_mode(img) -> str:
    """The 8-bit mode (L, LA, RGB, RGBA) an image is upscaled in: grey stays grey, alpha is kept."""
    alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    grey = img.mode in ("1", "L", "LA", "La")
    return ("L" if grey else "RGB") + ("A" if alpha else "")


def _pil_to_unit(img) -> tuple[torch.Tensor, str]:
    """PIL image -> (float32 (C, H, W) in [0, 1], output mode). 16-bit grey keeps its precision."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = gio._grey_unit(img).astype(np.float32)  # (H, W), full precision
        return torch.from_numpy(grey)[None], "I;16"
    work = img if img.mode in ("L", "LA", "RGB", "RGBA") else gio._convert(img, _working_mode(img), "image")
    arr = np.asarray(work)
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t.float().div_(255.0), work.mode


def upscale_image(model: nn.Module, image, *, tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                  progress: bool = False):
    """PIL image -> upscaled PIL image of the same kind (L, LA, RGB, RGBA; 16-bit grey -> I;16)."""
    x, mode = _pil_to_unit(image)
    out = upscale_tensor(model, x, tile=tile, overlap=overlap, progress=progress).clamp_(0, 1)
    if mode == "I;16":
        arr = (out[0] * 65535.0).round_().numpy().astype(np.uint16)
        return Image.fromarray(arr)
    arr = (out * 255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode=mode)


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


def _load_for_upscale(path: str | os.PathLike):
    """-> (reader, height, width, channels, source is 16-bit, keepalive array)."""
    img = gio.load_image(path, "keep")  # byte/pixel caps, eager decode, EXIF orientation
    if img.mode in ("I;16", "I", "F"):
        if img.mode == "I;16":
            arr = np.asarray(img).astype(np.uint16)[..., None]  # (H, W, 1)
            denom = 65535.0
        else:
            arr = gio._grey_unit(img).astype(np.float32)[..., None]
            denom = 1.0
        wide = True
    else:
        if img.mode not in ("L", "LA", "RGB", "RGBA"):
            img = gio._convert(img, _working_mode(img), str(path))
        arr = np.asarray(img)
        arr = arr[..., None] if arr.ndim == 2 else arr  # (H, W, C) uint8
        denom, wide = 255.0, False
    del img
    h, w, c = arr.shape

    def read(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        piece = torch.from_numpy(np.array(arr[y0:y1, x0:x1])).permute(2, 0, 1)  # (C, h, w), a writable copy
        return piece.float().div_(denom)

    return read, h, w, c, wide, arr


def _quantise(rows: torch.Tensor, bit_depth: int) -> np.ndarray:
    """float (C, n, W) -> (n, W, C) uint8/uint16."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    q = rows.clamp(0, 1).mul_(peak).round_()
    q = q.to(torch.uint8) if bit_depth == 8 else q.to(torch.int32)
    arr = q.permute(1, 2, 0).numpy()
    return arr if bit_depth == 8 else arr.astype(np.uint16)


def upscale_file(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch: int = 4,
                 bit_depth: str | int = "auto", compress_level: int = 6, progress: bool = False,
                 metadata: dict | None = None) -> Path:
    """Upscale one image file into ``output`` (.png streams with bounded memory; .jpg/.jpeg/.webp
    hold the whole 8-bit output). ``bit_depth``: auto (16 for 16-bit sources written as PNG), 8, 16."""



    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in _SUFFIXES_OUT:
        raise ConfigError(f"{output}: cannot write {suffix or 'a file without a suffix'!r}; use .png, .jpg or .webp")
    # never replace the source, whatever the caller planned (existing outputs are the caller's decision)
    OutputGuard().add_inputs(source).claim(output, check_exists=False)
    read, h, w, c, wide, keep = _load_for_upscale(source)
    if bit_depth == "auto":
        depth = 16 if (wide and suffix == ".png") else 8
    else:
        depth = int(bit_depth)
        if depth not in (8, 16):
            raise ConfigError(f"--bit-depth must be auto, 8 or 16, got {bit_depth}")
        if depth == 16 and suffix != ".png":
            raise ConfigError("16-bit output needs a .png file")
    net = _ChannelAdapter(model, c)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    s = net.scale
    if suffix != ".png" and h * s * w * s > gio.MAX_PIXELS:  # JPEG/WebP hold the whole output in memory
        raise ConfigError(f"{output}: a {w * s}x{h * s} output is over {gio.MAX_PIXELS} pixels; write a .png, "
                          f"which streams with bounded memory")
    bands = iter_bands(net, read, h, w, c, tile=tile, overlap=overlap, batch=batch, device=device,
                       progress=progress, desc=Path(source).name)
    if suffix == ".png":
        writer = PNGStreamWriter(output, w * s, h * s, c, depth, compress_level)
        try:
            for _, rows in bands:
                for start in range(0, rows.shape[1], 64):  # small chunks: no band-sized temporaries
                    writer.write_rows(_quantise(rows[:, start:start + 64], depth))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            bands.close()  # ends the progress bar now, not at garbage collection after the error line
    else:
        full = np.empty((h * s, w * s, c), np.uint8)
        try:
            for y0, rows in bands:
                full[y0:y0 + rows.shape[1]] = _quantise(rows, 8)
        finally:
            bands.close()
        del keep
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
        pil = Image.fromarray(full[..., 0] if c == 1 else full, mode=mode)
        del full
        gio.save_image(pil, output)
    if metadata is not None:
        gio.write_sidecar(output, {**metadata, "source": str(source), "scale": s, "tile": tile, "overlap": overlap,
                                   "size": [w * s, h * s], "bit_depth": depth})
    return output


def upscale_path(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *,
                 tile: int | None = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, batch: int = 4,
                 bit_depth: str | int = "auto", progress: bool = True, metadata: dict | None = None,
                 overwrite: bool = False, fail_fast: bool = False) -> JobReport:
    """One image file -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder
    of PNGs with the same relative names (sub-folders kept, hidden files skipped; colliding names
    disambiguated by :func:`genvision.outputs.output_names`: ``x.jpg`` + ``x.tif`` -> ``x_jpg.png`` +
    ``x_tif.png``).

    Every output is planned before anything is written (:class:`genvision.outputs.OutputGuard`): an
    output that is the source, an output folder equal to or inside the source folder, colliding
    names and (without ``overwrite``) existing outputs are refused. In a folder job, a file that
    fails is reported on stderr and the rest go on (``fail_fast`` stops at the first); the returned
    :class:`~genvision.outputs.JobReport` says what was written and what failed.
    """

    source, out = Path(source), Path(output)
    guard = OutputGuard(overwrite=overwrite)
    sidecar = metadata is not None
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(source).parts))
        if not files:
            raise ConfigError(f"{source}: no image files found")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} exists and is not a folder (a folder input needs an output folder)")
        plan = plan_folder_job(files, source, out, guard=guard, sidecar=sidecar)
        return run_job(plan, lambda p: upscale_file(model, p.source, p.output, tile=tile, overlap=overlap,
                                                    batch=batch, bit_depth=bit_depth, progress=False,
                                                    metadata=metadata),
                       total=len(plan), label=lambda p: display_path(p.source), fail_fast=fail_fast,
                       progress=progress, desc="upscale")
    if not source.exists():
        raise ConfigError(f"{source}: no such file or folder")
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (source.stem + ".png")
    guard.add_inputs(source)
    guard.claim(out, sidecar=sidecar)
    return JobReport(1, [upscale_file(model, source, out, tile=tile, overlap=overlap, batch=batch,
                                      bit_depth=bit_depth, progress=progress, metadata=metadata)])
