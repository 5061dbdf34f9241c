"""The one image loader/saver: every genvision path that reads or writes an image goes through here.

Images come from users, scraped folders and the web UI, so loading is defensive: a byte cap
before decoding, a pixel cap before allocating, a format allowlist (Pillow would otherwise try
~40 decoders on hostile bytes), eager decoding so a truncated file fails here and not in a
DataLoader worker an hour later, and one error type whose one-line message names the file.

Pixel conventions (the explicit tables are ``_TO_WORKING`` and ``_DROP_ALPHA`` below):

* 16/32-bit integer and float greyscale become [0, 1] by ``_grey_unit`` (I;16: /65535,
  I: clip 0..65535 then /65535, F: as-is if max <= 1 else clip 0..255 then /255) and 8 bit by
  ``round(x * 255)``, which for 16-bit input is exactly ``round(v / 257)``.
* Alpha is removed by compositing on **white**: transparent areas of logos, icons, sketches and
  line art are drawn to be seen on paper; plain ``convert("RGB")`` exposes whatever colour hides
  under alpha=0 (often black), which turns a black logo on transparency into a black square.
* CMYK uses Pillow's formula without ICC profiles; embedded colour profiles are not applied.
"""

from __future__ import annotations

import io
import json
import math
import os
import shlex
import stat
import struct
import sys
import warnings
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import torch
from PIL import Image, ImageOps

from . import __version__, atomic
from .errors import ConfigError, GenvisionError, ImageLoadError, display_path, reason

ALLOWED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"})
MAX_FILE_BYTES: int = 200 * 2**20
MAX_PIXELS: int = 89_478_485  # Pillow's default Image.MAX_IMAGE_PIXELS
IMAGE_SUFFIXES: frozenset[str] = frozenset({
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm",
})

_OPEN_FORMATS = sorted(ALLOWED_FORMATS)  # Image.open wants a list or tuple
_LOAD_MODES = ("RGB", "L", "RGBA", "LA", "keep")
_CHANNEL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_WIDE16 = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_GREY = _WIDE16 | {"I", "F"}
_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SAVE_OPTIONS = {"PNG": {}, "JPEG": {"quality": 95}, "WEBP": {"quality": 95}}  # PNG is the lossless choice


# ----------------------------------------------------------------------------- mode conversion

def _grey_unit(img: Image.Image) -> np.ndarray:
    """(H, W) float64 in [0, 1] from a wide greyscale image, without a detour through 8 bits."""
    a = np.asarray(img).astype(np.float64)
    if img.mode == "F":
        a = np.nan_to_num(a, nan=0.0, neginf=0.0)
        return np.clip(a, 0.0, 1.0) if a.max(initial=0.0) <= 1.0 else np.clip(a, 0.0, 255.0) / 255.0
    return np.clip(a, 0.0, 65535.0) / 65535.0  # I;16 is already in range; 32-bit I is clipped


def _from_palette(img: Image.Image) -> Image.Image:
    # tRNS (info["transparency"]) or an RGBA palette means some entries are see-through
    has_alpha = "transparency" in img.info or (img.palette is not None and img.palette.mode == "RGBA")
    return img.convert("RGBA" if has_alpha else "RGB")


# source mode -> one of the 8-bit working modes L, LA, RGB, RGBA; anything else is refused
_TO_WORKING: dict[str, Callable[[Image.Image], Image.Image]] = {
    "L": lambda im: im, "LA": lambda im: im, "RGB": lambda im: im, "RGBA": lambda im: im,
    "1": lambda im: im.convert("L"),          # 0/1 -> 0/255
    "La": lambda im: im.convert("LA"),        # un-premultiply
    "RGBa": lambda im: im.convert("RGBA"),
    "RGBX": lambda im: im.convert("RGB"),     # X is padding
    "P": _from_palette,                       # RGBA when it has transparency, else RGB
    "PA": lambda im: im.convert("RGBA"),
    "CMYK": lambda im: im.convert("RGB"),
    "YCbCr": lambda im: im.convert("RGB"),
    "HSV": lambda im: im.convert("RGB"),
    **{m: lambda im: Image.fromarray(np.rint(_grey_unit(im) * 255.0).astype(np.uint8))
       for m in _WIDE_GREY},                  # scaled, not truncated: see _grey_unit
}


def _flatten(img: Image.Image) -> Image.Image:
    """LA -> L, RGBA -> RGB, composited on white (see the module docstring for why white)."""
    base = "L" if img.mode == "LA" else "RGB"
    out = Image.new(base, img.size, "white")
    out.paste(img.convert(base), mask=img.getchannel("A"))
    return out


# (working, target) pairs that lose alpha; every other pair is a plain Image.convert, which
# adds an opaque alpha or maps grey <-> colour (ITU-R 601 luma for RGB -> L)
_DROP_ALPHA: dict[tuple[str, str], Callable[[Image.Image], Image.Image]] = {
    ("LA", "L"): _flatten,
    ("LA", "RGB"): lambda im: _flatten(im).convert("RGB"),
    ("RGBA", "RGB"): _flatten,
    ("RGBA", "L"): lambda im: _flatten(im).convert("L"),
}


def _convert(img: Image.Image, mode: str, name: str) -> Image.Image:
    to_working = _TO_WORKING.get(img.mode)
    if to_working is None:
        raise ImageLoadError(f"{name}: unsupported pixel mode {img.mode!r}")
    try:
        work = to_working(img)
        if work.mode == mode:
            return work
        return _DROP_ALPHA.get((work.mode, mode), lambda im: im.convert(mode))(work)
    except Exception as exc:  # Pillow raises assorted types; the caller only needs one
        raise ImageLoadError(f"{name}: cannot convert {img.mode} to {mode} ({reason(exc)})") from exc


# ----------------------------------------------------------------------------- loading

def _decode(path: str | os.PathLike, max_bytes: int | None, max_pixels: int | None, *,
            header_only: bool = False) -> Image.Image:
    """Open, check, fully decode and EXIF-orient ``path``; raise ImageLoadError on any failure.

    ``header_only`` stops after the checks a header allows (format, size, pixel cap), without reading the
    rest of the file: the returned image has a size and mode but no pixels."""
    name = display_path(path)
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # before open(): opening a FIFO would block
            raise ImageLoadError(f"{name}: not a regular file")
        fh = open(path, "rb")
    except FileNotFoundError as exc:
        raise ImageLoadError(f"{name}: no such file") from exc
    except OSError as exc:
        raise ImageLoadError(f"{name}: cannot read ({reason(exc)})") from exc
    step = "not a supported image"
    try:
        # Pillow's bomb check is only a warning below 2x its limit, so make it an error; the
        # explicit size check below also covers threads whose filters another thread reset
        with fh, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            size = os.fstat(fh.fileno()).st_size  # of what we actually opened
            if size == 0:
                raise ImageLoadError(f"{name}: empty file")
            if size > max_bytes:
                raise ImageLoadError(f"{name}: file is {size} bytes, over the limit of {max_bytes} bytes")
            if header_only:  # Pillow reads only as far as the header from the file itself
                img = Image.open(fh, formats=_OPEN_FORMATS)
                w, h = img.size
                if not 0 < w * h <= max_pixels:
                    raise ImageLoadError(f"{name}: image is {w}x{h} pixels, outside 1..{max_pixels} pixels")
                return img
            # Decoders read chunk lengths from the file: a damaged one asks read() for up to 4 GiB,
            # which a file object allocates before reading. From memory, read(n) returns what exists.
            data = fh.read(max_bytes + 1)  # at most the cap, even if the file grew since fstat
            if len(data) > max_bytes:
                raise ImageLoadError(f"{name}: file is over the limit of {max_bytes} bytes")
            img = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)  # parses the header only
            w, h = img.size
            if w * h > max_pixels:  # refuse before anything the size of the image is allocated
                raise ImageLoadError(f"{name}: image is {w}x{h} = {w * h} pixels, over the limit of "
                                     f"{max_pixels} pixels (possible decompression bomb)")
            if w * h == 0:
                raise ImageLoadError(f"{name}: image has no pixels ({w}x{h})")
            step = "corrupt or truncated image data"
            img.load()  # eagerly: LOAD_TRUNCATED_IMAGES stays off, so truncation raises here
            if img.mode in _WIDE16 and img.mode != "I;16":  # one 16-bit layout for callers
                img = Image.fromarray(np.asarray(img).astype(np.uint16))
            step = "bad EXIF orientation data"
            ImageOps.exif_transpose(img, in_place=True)
            return img
    except ImageLoadError:
        raise
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name}: not a supported image (not {', '.join(_OPEN_FORMATS)}, "
                             f"or not an image at all)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{name}: refused as a possible decompression bomb ({reason(exc)})") from exc
    except MemoryError as exc:
        raise ImageLoadError(f"{name}: out of memory while decoding") from exc
    except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, zlib.error, ...
        raise ImageLoadError(f"{name}: {step} ({reason(exc)})") from exc


def load_image(path: str | os.PathLike, mode: str = "RGB", *, max_bytes: int | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Load one image safely as ``mode`` (RGB, L, RGBA, LA, or "keep" for the decoded mode).

    "keep" returns the EXIF-oriented image in its own mode, except that every 16-bit layout is
    returned as "I;16". Only the first frame of animated/multi-page files is read.
    Raises ImageLoadError (one line, naming the file) for every problem with the file.
    """
    if mode not in _LOAD_MODES:
        raise ValueError(f"mode must be one of {', '.join(_LOAD_MODES)}; got {mode!r}")
    img = _decode(path, max_bytes, max_pixels)
    return img if mode == "keep" else _convert(img, mode, display_path(path))


def probe_image(path: str | os.PathLike, *, max_bytes: int | None = None,
                max_pixels: int | None = None) -> tuple[int, int]:
    """(width, height) from the file's header, or ImageLoadError (one line, naming the file) for what a header
    shows: not a file, empty, too large, not a supported format, over the pixel cap. Damage past the header
    shows only when the pixels are decoded (:func:`load_image`); this is what scanning a huge folder affords."""
    return _decode(path, max_bytes, max_pixels, header_only=True).size


def load_image_tensor(path: str | os.PathLike, channels: int = 3, *, max_bytes: int | None = None,
                      max_pixels: int | None = None) -> torch.Tensor:
    """Load one image as float32 (C, H, W) in [0, 1]; C is 1, 3 or 4.

    16/32-bit and float greyscale keep their precision (I;16 is divided by 65535).
    """
    if channels not in _CHANNEL_MODES:
        raise ValueError(f"channels must be 1, 3 or 4; got {channels!r}")
    img = _decode(path, max_bytes, max_pixels)
    if img.mode in _WIDE_GREY:
        grey = torch.from_numpy(_grey_unit(img).astype(np.float32))[None]  # (1, H, W)
        if channels == 1:
            return grey
        planes = [grey] * 3 + ([torch.ones_like(grey)] if channels == 4 else [])
        return torch.cat(planes)  # (C, H, W)
    arr = np.array(_convert(img, _CHANNEL_MODES[channels], display_path(path)))  # (H, W) or (H, W, C)
    t = torch.from_numpy(arr)
    t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)  # (C, H, W)
    return t.contiguous().float().div_(255.0)


def load_images_resized(paths, *, channels: int, size: int) -> torch.Tensor:
    """Files -> (N, C, size, size) in [-1, 1] (bilinear, antialiased when shrinking): images as a
    model of that input size takes them."""
    if not paths:
        raise ConfigError("give at least one image")
    out = []
    for path in paths:
        image = load_image_tensor(path, channels=channels)  # (C, h, w) in [0, 1]
        if image.shape[1:] != (size, size):
            image = torch.nn.functional.interpolate(image[None], size=(size, size), mode="bilinear", antialias=True,
                                                    align_corners=False)[0].clamp(0, 1)
        out.append(image * 2.0 - 1.0)
    return torch.stack(out)  # (N, C, size, size)


def to_uint8_array(path: str | os.PathLike, mode: str = "RGB", *, max_bytes: int | None = None,
                   max_pixels: int | None = None) -> np.ndarray:
    """Load one image as a uint8 (H, W, C) array; ``mode`` is RGB, L, RGBA or LA."""
    if mode == "keep":
        raise ValueError("to_uint8_array needs an 8-bit mode: RGB, L, RGBA or LA")
    arr = np.array(load_image(path, mode, max_bytes=max_bytes, max_pixels=max_pixels))
    return arr[..., None] if arr.ndim == 2 else arr  # (H, W, C)


# ----------------------------------------------------------------------------- saving

def _unit(t: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """Float tensor mapped from ``value_range`` to [0, 1] and clamped."""
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with low < high; got {value_range!r}")
    t = t.detach().cpu().float()
    if not torch.isfinite(t).all():  # a NaN image means a diverged model: say so, don't save noise
        raise ValueError("image tensor contains NaN or infinite values")
    return ((t - lo) / (hi - lo)).clamp_(0.0, 1.0)


def tensor_to_pil(image: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Image.Image:
    """(C, H, W) or (H, W) tensor -> L / RGB / RGBA image. Float values are read in
    ``value_range`` (clamped, rounded); uint8 and bool tensors are taken as they are."""
    t = image.detach().cpu()
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[0] not in _CHANNEL_MODES:
        raise ValueError(f"expected an image tensor (C, H, W) with C in 1, 3, 4, or (H, W); "
                         f"got shape {tuple(image.shape)}")
    if t.dtype == torch.uint8:
        u8 = t
    elif t.dtype == torch.bool:
        u8 = t.to(torch.uint8) * 255
    elif t.is_floating_point():
        u8 = _unit(t, value_range).mul_(255.0).round_().to(torch.uint8)
    else:
        raise ValueError(f"image tensor must be floating point, uint8 or bool; got {t.dtype}")
    arr = np.ascontiguousarray(u8.permute(1, 2, 0).numpy())  # (H, W, C)
    return Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """``write(fh)`` into a temporary file next to ``path``, then rename it there: readers (and a
    crash) never see half a file. A failing disk is one GenvisionError naming the file."""
    try:
        return atomic.write_file(path, write)
    except OSError as exc:
        raise GenvisionError(f"{display_path(path)}: cannot write ({reason(exc)})") from exc


def _save_format(path: Path, allowed: dict[str, str]) -> str:
    fmt = allowed.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{display_path(path)}: cannot save as {path.suffix or 'a file without a suffix'!r}; "
                          f"use {', '.join(allowed)}")
    return fmt


def _savable(img: Image.Image, fmt: str) -> Image.Image:
    """Convert to a mode ``fmt`` can store, keeping grey as grey and alpha where the format can."""
    native = {"PNG": {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}, "JPEG": {"L", "RGB"},
              "WEBP": {"RGB", "RGBA"}}[fmt]
    if img.mode in native:
        return img
    grey = fmt != "WEBP" and (img.mode in _WIDE_GREY or img.mode in ("1", "L", "LA", "La"))
    alpha = fmt != "JPEG" and (img.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in img.info)
    return _convert(img, ("L" if grey else "RGB") + ("A" if alpha else ""), "image to save")


def save_image(image: Image.Image | torch.Tensor, path: str | os.PathLike, *, metadata: dict | None = None,
               value_range: tuple[float, float] = (-1.0, 1.0)) -> Path:
    """Save a PIL image or an image tensor (see ``tensor_to_pil``) as .png, .jpg/.jpeg or .webp,
    atomically, creating parent directories; with ``metadata`` also write a JSON sidecar."""
    path = Path(path)
    fmt = _save_format(path, _SAVE_FORMATS)
    pil = tensor_to_pil(image, value_range) if isinstance(image, torch.Tensor) else image
    pil = _savable(pil, fmt)
    write_atomically(path, lambda fh: pil.save(fh, format=fmt, **_SAVE_OPTIONS[fmt]))
    if metadata is not None:
        write_sidecar(path, metadata)
    return path


def grid_size(n: int, height: int, width: int, nrow: int | None = None, padding: int = 2) -> tuple[int, int]:
    """(width, height) in pixels of :func:`save_grid` of ``n`` images of ``height x width``."""
    columns = min(nrow or math.ceil(math.sqrt(n)), n)
    rows = -(-n // columns)
    return columns * (width + padding) + padding, rows * (height + padding) + padding


def check_grid(n: int, shape: tuple[int, int, int], nrow: int | None = None,
               remedy: str = "write one PNG per image with -o FOLDER/ instead") -> None:
    """Refuse, before anything runs, a grid of ``n`` (C, H, W) images over :data:`MAX_PIXELS`."""
    width, height = grid_size(n, shape[1], shape[2], nrow)
    if width * height > MAX_PIXELS:
        raise ConfigError(f"a grid of {n} images of {shape[2]}x{shape[1]} would be {width}x{height} = "
                          f"{width * height} pixels, over the limit of {MAX_PIXELS}; {remedy}")


def save_grid(images: torch.Tensor, path: str | os.PathLike, *, nrow: int | None = None, padding: int = 2,
              value_range: tuple[float, float] = (-1.0, 1.0), metadata: dict | None = None) -> Path:
    """Save a (B, C, H, W) batch as one grid image, ``nrow`` images per row (default ceil(sqrt(B))),
    with black padding; 1-channel batches give a greyscale image, uint8 batches are read as 0..255."""
    from torchvision.utils import make_grid  # torchvision is slow to import; only grids need it

    if images.ndim != 4 or images.shape[0] == 0 or images.shape[1] not in _CHANNEL_MODES:
        raise ValueError(f"expected a non-empty batch (B, C, H, W) with C in 1, 3, 4; got {tuple(images.shape)}")
    unit = images.detach().cpu().float() / 255.0 if images.dtype == torch.uint8 else _unit(images, value_range)
    grid = make_grid(unit, nrow=nrow or math.ceil(math.sqrt(images.shape[0])), padding=padding, pad_value=0.0)
    if images.shape[1] == 1:
        grid = grid[:1]  # make_grid repeats one channel to three
    return save_image(grid, path, metadata=metadata, value_range=(0.0, 1.0))


def save_gif(frames: list[Image.Image] | torch.Tensor, path: str | os.PathLike, *, duration_ms: int = 120,
             loop: int = 0, value_range: tuple[float, float] = (-1.0, 1.0), metadata: dict | None = None) -> Path:
    """Save frames (PIL images, or a (T, C, H, W) / (T, H, W) tensor) as an animated GIF that
    loops ``loop`` times (0 = forever). Alpha is flattened on white: GIF has 1-bit transparency."""
    path = Path(path)
    _save_format(path, {".gif": "GIF"})
    pils = [tensor_to_pil(f, value_range) for f in frames] if isinstance(frames, torch.Tensor) else list(frames)
    if len({p.size for p in pils}) != 1:
        raise ValueError(f"save_gif needs one or more frames of one size; got {sorted({p.size for p in pils})}")
    pils = [_convert(p, "RGB", f"frame {i}") for i, p in enumerate(pils)]
    write_atomically(path, lambda fh: pils[0].save(fh, format="GIF", save_all=True, append_images=pils[1:],
                                                duration=duration_ms, loop=loop))
    if metadata is not None:
        write_sidecar(path, metadata)
    return path


def json_default(obj: object) -> object:
    # numpy/torch scalars and arrays, then paths; anything else raises TypeError as json expects
    return obj.tolist() if hasattr(obj, "tolist") else os.fspath(obj)


def write_sidecar(image_path: str | os.PathLike, metadata: dict) -> Path:
    """Write ``<image file name>.json`` (e.g. ``grid.png.json``) next to an image: ``metadata`` plus genvision_version, the command
    line and the UTC creation time (keys in ``metadata`` win)."""
    # The full file name, not the stem: grid.png and grid.gif must not share one sidecar.
    path = Path(image_path).with_name(Path(image_path).name + ".json")
    record = {
        "genvision_version": __version__,
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **metadata,
    }
    text = json.dumps(record, indent=2, default=json_default) + "\n"  # fails before any file exists
    write_atomically(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


# ----------------------------------------------------------------------------- streaming PNG


class PNGStreamWriter:
    """Write a PNG row by row (8/16-bit L, LA, RGB, RGBA), atomically (temp file + rename).

    Rows are 'Up'-filtered and deflated as they arrive, so memory is independent of image size.
    """

    _COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}

    def __init__(self, path: str | os.PathLike, width: int, height: int, channels: int, bit_depth: int = 8,
                 compress_level: int = 6):
        if channels not in self._COLOR_TYPE or bit_depth not in (8, 16):
            raise ValueError(f"unsupported PNG layout: {channels} channels, {bit_depth} bits")
        self.path, self.width, self.height = Path(path), width, height
        self.channels, self.bit_depth = channels, bit_depth
        self.rows_written = 0
        self._prev: np.ndarray | None = None
        self._z = zlib.compressobj(compress_level)
        self._pending: list[bytes] = []
        self._pending_size = 0
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"a PNG is 1..2**31-1 pixels on each side, got {width}x{height}")
        # hidden (skipped by folder scans) and unique, in the target folder so the rename is atomic
        self._tmp = atomic.temporary_sibling(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self._tmp, "wb")
        except OSError as exc:
            raise GenvisionError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        self._write(b"\x89PNG\r\n\x1a\n")
        self._chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, self._COLOR_TYPE[channels], 0, 0, 0))

    def _write(self, data: bytes) -> None:
        try:
            self._fh.write(data)
        except OSError as exc:  # a full disk is one line naming the file, and no half file is left
            self.abort()
            raise GenvisionError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc

    def _chunk(self, kind: bytes, data: bytes) -> None:
        self._write(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    def _emit(self, data: bytes, force: bool = False) -> None:
        if data:
            self._pending.append(data)
            self._pending_size += len(data)
        if self._pending_size >= (1 << 20) or (force and self._pending_size):
            self._chunk(b"IDAT", b"".join(self._pending))
            self._pending, self._pending_size = [], 0

    def write_rows(self, rows: np.ndarray) -> None:
        """``rows``: (n, width, channels) uint8 (8-bit) or uint16 (16-bit)."""
        dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        if rows.dtype != dtype or rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels):
            raise ValueError(f"expected {dtype.__name__} rows (n, {self.width}, {self.channels}), "
                             f"got {rows.dtype} {rows.shape}")
        if self.rows_written + rows.shape[0] > self.height:
            raise ValueError("more rows than the image height")
        raw = np.ascontiguousarray(rows.astype(">u2") if self.bit_depth == 16 else rows)
        raw = raw.view(np.uint8).reshape(rows.shape[0], -1)  # (n, bytes per row)
        prev = np.zeros((1, raw.shape[1]), np.uint8) if self._prev is None else self._prev
        up = raw - np.concatenate([prev, raw[:-1]])  # 'Up' filter: byte minus the byte above, mod 256
        lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        lines[:, 0] = 2  # filter type Up
        lines[:, 1:] = up
        self._emit(self._z.compress(lines.tobytes()))
        self._prev = raw[-1:].copy()
        self.rows_written += rows.shape[0]

    def close(self) -> Path:
        try:
            if self.rows_written != self.height:
                raise GenvisionError(f"{self.path}: wrote {self.rows_written} of {self.height} rows")
            self._emit(self._z.flush(), force=True)
            self._chunk(b"IEND", b"")
            try:
                self._fh.flush()
                os.fsync(self._fh.fileno())  # else a crash after the rename can leave an empty file
                self._fh.close()
                os.replace(self._tmp, self.path)
            except OSError as exc:
                raise GenvisionError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the final name is untouched."""
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:
                pass
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            pass
