"""Tiled, seam-free, bounded-memory inference for image-to-image networks of any size ratio
(super-resolution at ``scale`` 2-4, restoration such as denoising at ``scale`` 1), and the
file side the commands share: readers, the streaming PNG sink, bit depths, folder jobs.

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
APIs), or a PNG written row by row (zlib stream, 'Up' filter), so an 8000x6000 input upscaled x4
(a 32000x24000 output, 2.3 GB as 8-bit RGB) never needs the whole output in memory: peak memory
is the input plus a band of ``(tile + overlap) * scale`` output rows. JPEG/WebP output goes
through Pillow and holds the whole 8-bit output (and Pillow's own copy).

Files. :func:`open_image_source` reads any image the loader accepts (caps, EXIF orientation) as
a reader of float32 pixels in [0, 1]: 8-bit L/LA/RGB/RGBA as they are (other modes converted),
16-bit greyscale with its full precision (``wide``). :func:`process_path` runs a per-file
function over a file or a folder (outputs planned by :class:`genvision.outputs.OutputGuard`
first; a folder job reports a bad file and goes on).

This module is shared by the super-resolution and denoising applications (``genvision.apps.sr``,
``genvision.apps.denoise``); it knows nothing about either.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm import tqdm

from . import io as gio
from .errors import ConfigError, GenvisionError, display_path
from .io import PNGStreamWriter
from .jobs import FolderJob, Shard
from .outputs import JobReport, OutputGuard, plan_folder_job, run_job

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "OUTPUT_SUFFIXES",
    "ImageSource",
    "PNGStreamWriter",
    "Reader",
    "TilePlan",
    "axis_weights",
    "check_output_suffix",
    "image_files",
    "iter_bands",
    "module_device",
    "open_image_source",
    "output_bit_depth",
    "pil_to_unit",
    "plan_tiles",
    "process_path",
    "quantise",
    "run_tiled",
    "tensor_reader",
    "tile_starts",
    "unit_to_pil",
    "working_mode",
    "write_bands",
]

DEFAULT_TILE = 256
DEFAULT_OVERLAP = 16
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")

Reader = Callable[[int, int, int, int], torch.Tensor]  # (y0, y1, x0, x1) -> float32 (C, h, w) in [0, 1]


# ----------------------------------------------------------------------------- tiles and weights


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``length``; neighbours share at
    least ``overlap`` pixels; the last tile ends at the border."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def axis_weights(starts: list[int], size: int, overlap: int, scale: int = 1) -> list[torch.Tensor]:
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
class TilePlan:
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


def plan_tiles(height: int, width: int, scale: int, tile: int | None, overlap: int) -> TilePlan:
    """Tile positions and weights; ``tile`` None, 0 or at least the image's longer side = one tile."""
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
    return TilePlan(height, width, scale, th, tw, ys, xs, axis_weights(ys, th, overlap, scale),
                    axis_weights(xs, tw, overlap, scale))


@torch.no_grad()
def iter_bands(net: Callable[[torch.Tensor], torch.Tensor], read: Reader, height: int, width: int, channels: int, *,
               scale: int = 1, tile: int | None, overlap: int, batch: int = 4, device: torch.device | str = "cpu",
               progress: bool = False, desc: str = "tiles") -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first_output_row, rows)`` with ``rows`` float32 ``(C, n, width * scale)``, in order.

    ``net`` maps ``(B, C, h, w)`` in [0, 1] to ``(B, C, scale*h, scale*w)``; ``read(y0, y1, x0, x1)``
    returns input pixels as float32 ``(C, h, w)``.
    """
    plan = plan_tiles(height, width, scale, tile, overlap)
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


def tensor_reader(image: torch.Tensor) -> Reader:
    """A reader over a float ``(C, H, W)`` tensor."""
    return lambda y0, y1, x0, x1: image[:, y0:y1, x0:x1].float()


def run_tiled(net: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, *, scale: int = 1,
              tile: int | None = None, overlap: int = DEFAULT_OVERLAP, batch: int = 4,
              device: torch.device | str = "cpu", progress: bool = False, desc: str = "tiles") -> torch.Tensor:
    """``net`` over a float ``(C, H, W)`` image, tiled -> float32 ``(C, scale*H, scale*W)`` (not clamped)."""
    c, h, w = image.shape
    out = torch.empty(c, h * scale, w * scale)
    for y0, rows in iter_bands(net, tensor_reader(image.detach().cpu()), h, w, c, scale=scale, tile=tile,
                               overlap=overlap, batch=batch, device=device, progress=progress, desc=desc):
        out[:, y0:y0 + rows.shape[1]] = rows
    return out


def module_device(model: nn.Module) -> torch.device:
    """Where a module's parameters live (CPU for a weightless one)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# ----------------------------------------------------------------------------- PIL images


def working_mode(img: Image.Image) -> str:
    """The 8-bit mode (L, LA, RGB, RGBA) an image is processed in: grey stays grey, alpha is kept."""
    alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    grey = img.mode in ("1", "L", "LA", "La")
    return ("L" if grey else "RGB") + ("A" if alpha else "")


def pil_to_unit(img: Image.Image) -> tuple[torch.Tensor, str]:
    """PIL image -> (float32 (C, H, W) in [0, 1], output mode). 16-bit grey keeps its precision (mode I;16)."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        grey = gio._grey_unit(img).astype(np.float32)  # (H, W), full precision
        return torch.from_numpy(grey)[None], "I;16"
    work = img if img.mode in ("L", "LA", "RGB", "RGBA") else gio._convert(img, working_mode(img), "image")
    arr = np.asarray(work)
    t = torch.from_numpy(arr.copy())
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t.float().div_(255.0), work.mode


def unit_to_pil(image: torch.Tensor, mode: str) -> Image.Image:
    """float ``(C, H, W)`` in [0, 1] (clamped here) -> PIL in ``mode`` (L, LA, RGB, RGBA or I;16)."""
    out = image.clamp(0, 1)
    if mode == "I;16":
        return Image.fromarray((out[0] * 65535.0).round_().numpy().astype(np.uint16))
    arr = (out * 255.0).round_().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr, mode=mode)


# ----------------------------------------------------------------------------- files


@dataclass
class ImageSource:
    """An image file opened for tiled reading: ``read(y0, y1, x0, x1)`` -> float32 ``(C, h, w)`` in [0, 1]."""

    read: Reader
    height: int
    width: int
    channels: int
    wide: bool  # 16-bit (or float) greyscale source: written as 16-bit PNG by default
    pixels: Any  # the decoded array the reader slices (kept alive with the reader)


def open_image_source(path: str | os.PathLike) -> ImageSource:
    """Decode ``path`` once (byte/pixel caps, EXIF orientation) into an :class:`ImageSource`."""
    img = gio.load_image(path, "keep")
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
            img = gio._convert(img, working_mode(img), str(path))
        arr = np.asarray(img)
        arr = arr[..., None] if arr.ndim == 2 else arr  # (H, W, C) uint8
        denom, wide = 255.0, False
    del img
    h, w, c = arr.shape

    def read(y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        piece = torch.from_numpy(np.array(arr[y0:y1, x0:x1])).permute(2, 0, 1)  # (C, h, w), a writable copy
        return piece.float().div_(denom)

    return ImageSource(read, h, w, c, wide, arr)


def quantise(rows: torch.Tensor, bit_depth: int) -> np.ndarray:
    """float (C, n, W) -> (n, W, C) uint8/uint16 (clamped to [0, 1] first)."""
    peak = 255.0 if bit_depth == 8 else 65535.0
    q = rows.clamp(0, 1).mul_(peak).round_()
    q = q.to(torch.uint8) if bit_depth == 8 else q.to(torch.int32)
    arr = q.permute(1, 2, 0).numpy()
    return arr if bit_depth == 8 else arr.astype(np.uint16)


def check_output_suffix(output: Path) -> str:
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"{output}: cannot write {suffix or 'a file without a suffix'!r}; use .png, .jpg or .webp")
    return suffix


def output_bit_depth(bit_depth: str | int, wide: bool, suffix: str) -> int:
    """``auto`` (16 for a 16-bit source written as PNG, else 8), 8 or 16 (PNG only)."""
    if bit_depth == "auto":
        return 16 if (wide and suffix == ".png") else 8
    depth = int(bit_depth)
    if depth not in (8, 16):
        raise ConfigError(f"--bit-depth must be auto, 8 or 16, got {bit_depth}")
    if depth == 16 and suffix != ".png":
        raise ConfigError("16-bit output needs a .png file")
    return depth


def write_bands(bands: Iterator[tuple[int, torch.Tensor]], output: Path, *, width: int, height: int, channels: int,
                bit_depth: int, compress_level: int = 6) -> Path:
    """Write the rows :func:`iter_bands` yields for a ``width x height`` output: a PNG streamed row by
    row (bounded memory), or a JPEG/WebP assembled whole (refused over ``io.MAX_PIXELS``).
    The generator is closed in any case (its progress bar ends now, not at garbage collection)."""
    try:
        if output.suffix.lower() == ".png":
            writer = PNGStreamWriter(output, width, height, channels, bit_depth, compress_level)
            try:
                for _, rows in bands:
                    for start in range(0, rows.shape[1], 64):  # small chunks: no band-sized temporaries
                        writer.write_rows(quantise(rows[:, start:start + 64], bit_depth))
                writer.close()
            except BaseException:
                writer.abort()
                raise
        else:
            if width * height > gio.MAX_PIXELS:  # JPEG/WebP hold the whole output in memory
                raise ConfigError(f"{output}: a {width}x{height} output is over {gio.MAX_PIXELS} pixels; write a "
                                  f".png, which streams with bounded memory")
            full = np.empty((height, width, channels), np.uint8)
            for y0, rows in bands:
                full[y0:y0 + rows.shape[1]] = quantise(rows, 8)
            mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
            pil = Image.fromarray(full[..., 0] if channels == 1 else full, mode=mode)
            del full
            gio.save_image(pil, output)
    finally:
        close = getattr(bands, "close", None)
        if close is not None:
            close()
    return output


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted; hidden files and folders skipped)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def process_path(source: str | os.PathLike, output: str | os.PathLike,
                 work: Callable[[Path, Path, bool], Path], *, overwrite: bool = False, fail_fast: bool = False,
                 progress: bool = True, sidecar: bool = False, desc: str = "", shard: Shard | None = None,
                 resume: bool = False, inputs: Sequence[str | os.PathLike] = ()) -> JobReport:
    """``work(source_file, output_file, progress)`` for one image file (``output`` a file, or a folder
    ending in / or existing) or for every image of a folder (-> a folder of PNGs with the same
    relative names; sub-folders kept, hidden files skipped; colliding names disambiguated by
    :func:`genvision.outputs.output_names`: ``x.jpg`` + ``x.tif`` -> ``x_jpg.png`` + ``x_tif.png``).

    Every output is planned before anything is written (:class:`genvision.outputs.OutputGuard`): an
    output that is the source, an output folder equal to or inside the source folder, colliding
    names and (without ``overwrite``) existing outputs are refused. In a folder job, a file that
    fails is reported on stderr and the rest go on (``fail_fast`` stops at the first); the returned
    :class:`~genvision.outputs.JobReport` says what was written and what failed.

    A folder job takes only ``shard``'s share of the files (default: this torchrun rank's, or all),
    records each finished file in the output folder's manifest, and with ``resume`` skips the files
    it records (:mod:`genvision.jobs`). ``inputs``: other files the work reads (a style image), never
    to be written over either.
    """
    source, out = Path(source), Path(output)
    guard = OutputGuard(overwrite=overwrite)
    if source.is_dir():
        files = image_files(source)
        if not files:
            raise ConfigError(f"{source}: no image files found")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out} exists and is not a folder (a folder input needs an output folder)")
        job = FolderJob(out, shard, resume)
        guard = OutputGuard(overwrite=job.overwrite(overwrite)).add_inputs(*inputs)
        plan = plan_folder_job(files, source, out, guard=guard, sidecar=sidecar, select=job.select)
        job.announce(progress)
        return run_job(plan, lambda p: work(p.source, p.output, False), total=len(plan),
                       label=lambda p: display_path(p.source), fail_fast=fail_fast, progress=progress, desc=desc,
                       on_done=job.record)
    if not source.exists():
        raise ConfigError(f"{source}: no such file or folder")
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (source.stem + ".png")
    guard.add_inputs(source, *inputs)
    guard.claim(out, sidecar=sidecar)
    return JobReport(1, [work(source, out, progress)])
