"""Image files for editing: read and write pixels at their own bit depth, with what users care about kept.

Reading (:func:`read_editable`) goes through :func:`genvision.io.load_image` (byte and pixel caps,
format allowlist, eager decoding, EXIF orientation), so an edit is as safe as any other load.
Pillow holds 16-bit only for greyscale, so 16-bit grey+alpha, RGB and RGBA PNG/TIFF files (which
Pillow silently decodes to 8 bits) are decoded again with OpenCV, from the same capped bytes
and only after their header passed the pixel cap; their EXIF orientation is applied here since
OpenCV's ``IMREAD_UNCHANGED`` ignores it.

Kept from the source: the ICC profile (when it describes the written pixels: an RGB profile for
RGB(A), a GRAY one for grey), EXIF with its orientation tag set to 1 (the pixels are upright),
and the resolution (dpi). Modes: grey (H, W), grey+alpha (H, W, 2), RGB (H, W, 3), RGBA (H, W, 4);
palette, 1-bit, CMYK, YCbCr... become RGB(A) or grey; 32-bit integer and float grey become 16-bit.

Writing (:func:`write_edited`), atomically, by the output's suffix:

* PNG: 8 or 16 bit, alpha kept. 16-bit grey goes through Pillow, 16-bit RGB(A) through OpenCV with
  the ICC profile, EXIF and dpi added as PNG chunks afterwards, 16-bit grey+alpha (which neither
  writes) through a small encoder here.
* TIFF: 8 or 16 bit, alpha kept; 16-bit grey+alpha/RGB(A) through OpenCV, which cannot write ICC
  profiles, EXIF or dpi: those are dropped (a known limit), and grey+alpha is written as RGBA.
* JPEG (quality 95, 4:4:4 chroma) and WebP (quality 95): 8 bit (16-bit is rounded to 8, as
  ``genvision.io`` does); JPEG has no alpha, so alpha is flattened onto white, as ``genvision.io``
  does; WebP has no grey, so grey is written as RGB.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ... import io as gio
from ...errors import ConfigError, GenvisionError, ImageLoadError, display_path, reason

__all__ = ["WRITE_FORMATS", "EditableImage", "encode_edited", "output_format", "read_editable", "write_edited"]

WRITE_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                                 ".webp": "WEBP"}
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels -> mode
_ORIENTATION = 0x0112
_JPEG_QUALITY = 95
_EXIF_HEADER = b"Exif\x00\x00"


@dataclass(frozen=True)
class EditableImage:
    """Upright pixels and the metadata an edit keeps.

    ``pixels``: (H, W) grey, (H, W, 2) grey+alpha, (H, W, 3) RGB or (H, W, 4) RGBA; uint8 or uint16.
    ``exif`` has its orientation tag at 1 (the pixels are already upright); ``source_format`` is
    Pillow's format name (PNG, JPEG, TIFF, ...), None for images made in memory.
    """

    pixels: np.ndarray
    source_format: str | None = None
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        _check_pixels(self.pixels)

    @property
    def mode(self) -> str:
        """L, LA, RGB or RGBA."""
        return _MODES[1 if self.pixels.ndim == 2 else self.pixels.shape[2]]

    @property
    def bit_depth(self) -> int:
        return 16 if self.pixels.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.pixels.shape[0], self.pixels.shape[1]

    def with_pixels(self, pixels: np.ndarray) -> EditableImage:
        """The same metadata over new pixels (an edit's result)."""
        return replace(self, pixels=pixels)


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"pixels must be a uint8 or uint16 array, got {getattr(pixels, 'dtype', type(pixels))}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (2, 3, 4))) or 0 in pixels.shape[:2]:
        raise ValueError(f"pixels must be (H, W) or (H, W, C) with C in 2, 3, 4, got {pixels.shape}")


# ----------------------------------------------------------------------------- reading


def read_editable(path: str | os.PathLike) -> EditableImage:
    """Read an image file for editing (see the module docstring); ImageLoadError (one line) on failure."""
    img = gio.load_image(path, "keep")  # caps, allowlist, eager decode, EXIF orientation applied
    name = display_path(path)
    wide_channels = _wide_colour_channels(path, img)
    pixels = _decode_wide(path, img, wide_channels) if wide_channels else _pil_pixels(img, name)
    icc = img.info.get("icc_profile") or None
    dpi = img.info.get("dpi")
    return EditableImage(
        pixels=pixels, source_format=img.format,
        icc_profile=icc if _icc_matches(icc, pixels) else None,
        exif=_upright_exif(img),
        dpi=(float(dpi[0]), float(dpi[1])) if dpi and len(dpi) == 2 and min(dpi) > 0 else None)


def _working_mode(img: Image.Image) -> str:
    """The 8-bit mode a Pillow image is edited in: grey stays grey, alpha (or tRNS) is kept."""
    alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    grey = img.mode in ("1", "L", "LA", "La")
    return ("L" if grey else "RGB") + ("A" if alpha else "")


def _pil_pixels(img: Image.Image, name: str) -> np.ndarray:
    if img.mode == "I;16":
        return np.array(img, dtype=np.uint16)  # (H, W)
    if img.mode in ("I", "F"):  # wide grey -> 16 bit, scaled as genvision.io reads it
        return np.rint(gio._grey_unit(img) * 65535.0).astype(np.uint16)  # (H, W)
    work = img if img.mode in ("L", "LA", "RGB", "RGBA") else gio._convert(img, _working_mode(img), name)
    return np.array(work)  # (H, W) or (H, W, C) uint8


def _wide_colour_channels(path: str | os.PathLike, img: Image.Image) -> int:
    """Channels (2, 3, 4) of a 16-bit grey+alpha/RGB/RGBA PNG or TIFF that Pillow cut to 8 bits; else 0."""
    if img.format == "PNG":
        try:
            with open(path, "rb") as fh:  # the IHDR chunk: bytes 24 (bit depth) and 25 (colour type)
                head = fh.read(26)
        except OSError as exc:
            raise ImageLoadError(f"{display_path(path)}: cannot read ({reason(exc)})") from exc
        if len(head) == 26 and head[24] == 16:
            return {4: 2, 2: 3, 6: 4}.get(head[25], 0)
    elif img.format == "TIFF":
        bits = getattr(img, "tag_v2", {}).get(258) or ()  # BitsPerSample, one per sample
        if len(bits) in (2, 3, 4) and max(bits) > 8:
            return len(bits)
    return 0


def _read_capped(path: str | os.PathLike) -> bytes:
    """The file's bytes, refused over genvision.io's byte cap (the same checks genvision.io makes)."""
    name = display_path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ImageLoadError(f"{name}: not a regular file")
        with open(path, "rb") as fh:
            data = fh.read(gio.MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImageLoadError(f"{name}: cannot read ({reason(exc)})") from exc
    if len(data) > gio.MAX_FILE_BYTES:
        raise ImageLoadError(f"{name}: file is over the limit of {gio.MAX_FILE_BYTES} bytes")
    return data


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) as Pillow's ImageOps.exif_transpose does; (H, W[, C])."""
    return {
        2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1],
        8: lambda a: np.rot90(a, 1),
    }.get(orientation, lambda a: a)(pixels)


def _decode_wide(path: str | os.PathLike, img: Image.Image, channels: int) -> np.ndarray:
    """16-bit colour through OpenCV -> (H, W, channels) uint16, RGB(A) order, upright."""
    name = display_path(path)
    data = _read_capped(path)
    try:
        header = Image.open(io.BytesIO(data), formats=[img.format])  # the header only: nothing allocated yet
        width, height = header.size
        orientation = header.getexif().get(_ORIENTATION, 1)
    except Exception as exc:  # Pillow raises assorted types
        raise ImageLoadError(f"{name}: cannot read the image header again ({reason(exc)})") from exc
    if width * height > gio.MAX_PIXELS:  # the file may have changed since genvision.io checked it
        raise ImageLoadError(f"{name}: image is {width}x{height} pixels, over the limit of {gio.MAX_PIXELS} pixels")
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3 or decoded.shape[2] not in (3, 4):
        raise ImageLoadError(f"{name}: cannot decode the 16-bit image data")
    if channels == 2:  # OpenCV expands grey+alpha to BGRA: B = G = R = grey
        pixels = decoded[..., [0, 3]]  # (H, W, 2)
    else:
        pixels = decoded[..., [2, 1, 0, 3][:decoded.shape[2]]]  # BGR(A) -> RGB(A), (H, W, C)
    pixels = np.ascontiguousarray(_orient(pixels, orientation))
    if pixels.shape[:2] != (img.height, img.width) or pixels.shape[2] != channels:
        raise ImageLoadError(f"{name}: the file changed while it was read")
    return pixels


# A TIFF's "EXIF" is its first IFD, layout tags (strip offsets, sample format, its ICC profile...)
# included; only these descriptive tags and the EXIF/GPS sub-IFDs carry over to another file.
_TIFF_TAGS_KEPT = frozenset({270, 271, 272, 274, 305, 306, 315, 33432, 0x8769, 0x8825})


def _upright_exif(img: Image.Image) -> bytes | None:
    """EXIF bytes with orientation 1 (genvision.io already turned the pixels upright), or None."""
    try:
        exif = img.getexif()
        if img.format == "TIFF":
            for tag in [t for t in exif if t not in _TIFF_TAGS_KEPT]:
                del exif[tag]
        if not len(exif) and not img.info.get("exif"):  # no EXIF at all (one holding only the orientation stays)
            return None
        exif[_ORIENTATION] = 1
        return exif.tobytes()
    except (OSError, ValueError, TypeError, KeyError, struct.error):  # unreadable EXIF is dropped, not fatal
        return None


def _icc_matches(icc: bytes | None, pixels: np.ndarray) -> bool:
    """An ICC profile describes the pixels: bytes 16-19 of its header name its colour space."""
    if not icc or len(icc) < 20:
        return False
    grey = pixels.ndim == 2 or pixels.shape[2] == 2
    return icc[16:20] == (b"GRAY" if grey else b"RGB ")


# ----------------------------------------------------------------------------- writing


def output_format(path: str | os.PathLike) -> str:
    """PNG, JPEG, TIFF or WEBP from a path's suffix; ConfigError for anything else."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise ConfigError(f"{display_path(path)}: cannot write {suffix or 'a file without a suffix'!r}; "
                          f"use {', '.join(WRITE_FORMATS)}")
    return WRITE_FORMATS[suffix]


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.rint(pixels / 257.0).astype(np.uint8)  # = round(v / 65535 * 255)


def _flatten_on_white(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 2|4) -> (H, W) | (H, W, 3), composited on white (genvision.io's rule), same dtype."""
    peak = 65535.0 if pixels.dtype == np.uint16 else 255.0
    colour = pixels[..., :-1].astype(np.float32)  # (H, W, 1|3)
    alpha = pixels[..., -1:].astype(np.float32) / peak  # (H, W, 1)
    out = np.rint(colour * alpha + peak * (1.0 - alpha)).astype(pixels.dtype)
    return out[..., 0] if out.shape[2] == 1 else out


def _grey_to_rgb(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)  # (H, W, 3)
    if pixels.shape[2] == 2:
        return pixels[..., [0, 0, 0, 1]]  # (H, W, 4)
    return pixels


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_metadata_chunks(image: EditableImage) -> bytes:
    """iCCP, pHYs and eXIf chunks for a PNG OpenCV wrote (it writes none of them)."""
    chunks = b""
    if image.icc_profile:
        chunks += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(image.icc_profile))
    if image.dpi:
        per_metre = [round(d / 0.0254) for d in image.dpi]
        chunks += _png_chunk(b"pHYs", struct.pack(">IIB", *per_metre, 1))
    if image.exif:
        exif = image.exif.removeprefix(_EXIF_HEADER)
        chunks += _png_chunk(b"eXIf", exif)
    return chunks


def _encode_png_grey_alpha16(pixels: np.ndarray, chunks: bytes) -> bytes:
    """(H, W, 2) uint16 -> PNG colour type 4. Hand-written because neither Pillow (no 16-bit LA mode)
    nor OpenCV (no grey+alpha PNG) writes it; rows 'Up'-filtered as genvision.io.PNGStreamWriter does."""
    height, width = pixels.shape[:2]
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(height, width * 4)  # (H, bytes/row)
    up = raw - np.concatenate([np.zeros((1, raw.shape[1]), np.uint8), raw[:-1]])  # byte minus the one above, mod 256
    lines = np.concatenate([np.full((height, 1), 2, np.uint8), up], axis=1)  # filter type 2 (Up) per row
    header = struct.pack(">IIBBBBB", width, height, 16, 4, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + chunks
            + _png_chunk(b"IDAT", zlib.compress(lines.tobytes(), 6)) + _png_chunk(b"IEND", b""))


def _encode_wide_colour(image: EditableImage, pixels: np.ndarray, fmt: str) -> bytes:
    """16-bit grey+alpha/RGB(A), which Pillow has no modes for. (H, W, C) uint16, RGB(A) order."""
    if fmt == "PNG" and pixels.shape[2] == 2:
        return _encode_png_grey_alpha16(pixels, _png_metadata_chunks(image))
    if pixels.shape[2] == 2:  # OpenCV writes grey+alpha TIFFs only as RGBA
        pixels = pixels[..., [0, 0, 0, 1]]  # (H, W, 4)
    bgr = np.ascontiguousarray(pixels[..., [2, 1, 0, 3][:pixels.shape[2]]])  # RGB(A) -> BGR(A)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 6] if fmt == "PNG" else []
    ok, buffer = cv2.imencode(".png" if fmt == "PNG" else ".tif", bgr, params)
    if not ok:
        raise GenvisionError(f"cannot encode a 16-bit {pixels.shape[2]}-channel {fmt}")
    data = buffer.tobytes()
    if fmt == "PNG":  # metadata chunks go right after IHDR (8-byte signature + 25-byte IHDR chunk)
        data = data[:33] + _png_metadata_chunks(image) + data[33:]
    return data


def encode_edited(image: EditableImage, fmt: str) -> bytes:
    """The file bytes of ``image`` as ``fmt`` (PNG, JPEG, TIFF, WEBP); see the module docstring."""
    pixels = image.pixels
    if fmt in ("JPEG", "WEBP"):
        pixels = _to_8bit(pixels)
    if fmt == "JPEG" and image.mode in ("LA", "RGBA"):
        pixels = _flatten_on_white(pixels)
    if fmt == "WEBP":
        pixels = _grey_to_rgb(pixels)
    kept = image.with_pixels(pixels)
    icc = image.icc_profile if _icc_matches(image.icc_profile, pixels) else None
    kept = replace(kept, icc_profile=icc)
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        return _encode_wide_colour(kept, pixels, fmt)
    pil = Image.fromarray(pixels)  # uint16 (H, W) -> I;16; uint8 (H, W[, C]) -> L, LA, RGB, RGBA
    options: dict = {"icc_profile": icc} if icc else {}
    if image.exif:
        options["exif"] = image.exif
    if image.dpi and fmt != "WEBP":
        options["dpi"] = image.dpi
    options |= {"JPEG": {"quality": _JPEG_QUALITY, "subsampling": 0}, "WEBP": {"quality": _JPEG_QUALITY},
                "TIFF": {"compression": "tiff_adobe_deflate"}, "PNG": {}}[fmt]
    buffer = io.BytesIO()
    try:
        pil.save(buffer, format=fmt, **options)
    except Exception as exc:  # Pillow raises assorted types (EXIF too long for JPEG, ...)
        raise GenvisionError(f"cannot encode the image as {fmt} ({reason(exc)})") from exc
    return buffer.getvalue()


def write_edited(image: EditableImage, path: str | os.PathLike) -> Path:
    """Write ``image`` in the format its suffix names (.png, .jpg/.jpeg, .tif/.tiff, .webp), atomically:
    encoded in memory first, so a failure leaves no file and an existing one as it was."""
    path = Path(path)
    fmt = output_format(path)
    try:
        data = encode_edited(image, fmt)
    except GenvisionError as exc:
        raise GenvisionError(f"{display_path(path)}: {exc}") from exc
    return gio.write_atomically(path, lambda fh: fh.write(data))
