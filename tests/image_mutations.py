"""Valid image files in every format and mode genvision reads, and ways to damage them.

Shared by tests/test_fuzz_images.py (Hypothesis picks the seeds and mutations) and by the
memory check it runs in a child process (a seeded ``random.Random`` picks them), and by
benchmarks/reliability_fuzz_files.py. Nothing here touches genvision.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import numpy as np
from PIL import Image

# The modes the design notes list, plus P with transparency ("PT"); formats genvision allows.
MODES = ("1", "L", "LA", "P", "PT", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
FORMATS = ("PNG", "JPEG", "TIFF", "WEBP", "GIF", "BMP", "PPM")
SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp",
          "PPM": ".ppm"}
# Header size fields are overwritten with these: zero, one, around 2**15/2**16/2**31/2**32.
EXTREMES = (0, 1, 2, 255, 256, 32767, 32768, 65535, 65536, 2**24 - 1, 2**31 - 1, 2**31, 2**32 - 1)


def make_image(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    if mode == "PT":
        rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        img.info["transparency"] = 0
        return img
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(-70_000, 140_000, (height, width), dtype=np.int32))
    if mode == "F":
        values = rng.normal(0.5, 2.0, (height, width)).astype(np.float32)
        values.flat[:: max(1, values.size // 3)] = np.float32("nan")  # NaN pixels exist in real float TIFFs
        return Image.fromarray(values)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def encode(img: Image.Image, fmt: str) -> bytes | None:
    """The image saved as ``fmt``, or None when Pillow cannot store that mode in that format."""
    buf = io.BytesIO()
    kwargs = {"transparency": img.info["transparency"]} if "transparency" in img.info and fmt in ("PNG", "GIF") else {}
    try:
        img.save(buf, format=fmt, **kwargs)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return buf.getvalue()


def valid_file(fmt: str, mode: str, width: int, height: int, seed: int = 0) -> bytes | None:
    return encode(make_image(mode, width, height, seed), fmt)


# ----------------------------------------------------------------------------- mutations


def flip_bytes(data: bytes, rng: random.Random, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        i = rng.randrange(len(out))
        out[i] ^= rng.randrange(1, 256)
    return bytes(out)


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(len(data))]


def _png_set_ihdr(data: bytes, width: int | None = None, height: int | None = None, depth: int | None = None,
                  colour: int | None = None, fix_crc: bool = True) -> bytes:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return data
    ihdr = bytearray(data[16:29])
    if width is not None:
        ihdr[0:4] = struct.pack(">I", width & 0xFFFFFFFF)
    if height is not None:
        ihdr[4:8] = struct.pack(">I", height & 0xFFFFFFFF)
    if depth is not None:
        ihdr[8] = depth & 0xFF
    if colour is not None:
        ihdr[9] = colour & 0xFF
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF) if fix_crc else data[29:33]
    return data[:16] + bytes(ihdr) + crc + data[33:]


def _jpeg_sof(data: bytes) -> int | None:
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            return i
        i += 2 + length
    return None


def _tiff_entries(data: bytes) -> list[tuple[int, int, int]]:
    """(tag, type, offset of the entry) for the first IFD of a TIFF."""
    if data[:2] not in (b"II", b"MM"):
        return []
    e = "<" if data[:2] == b"II" else ">"
    try:
        ifd = struct.unpack(e + "I", data[4:8])[0]
        count = struct.unpack(e + "H", data[ifd:ifd + 2])[0]
        return [(*struct.unpack(e + "HH", data[ifd + 2 + 12 * k:ifd + 6 + 12 * k]), ifd + 2 + 12 * k)
                for k in range(count)]
    except struct.error:
        return []


def set_header_field(data: bytes, fmt: str, field: str, value: int) -> bytes:
    """Overwrite a header field ("width", "height", "depth" = bits per sample, "mode" = colour
    type / photometric / component count) with ``value`` where the format has it; otherwise
    return ``data`` unchanged."""
    out = bytearray(data)
    try:
        if fmt == "PNG":
            key = {"width": "width", "height": "height", "depth": "depth", "mode": "colour"}[field]
            return _png_set_ihdr(data, **{key: value})
        if fmt == "GIF" and len(out) >= 10:
            offset = {"width": 6, "height": 8}.get(field)
            if offset is not None:
                out[offset:offset + 2] = struct.pack("<H", value & 0xFFFF)
            elif field == "depth":
                out[10] = value & 0xFF  # packed field: colour resolution and table size
        elif fmt == "BMP" and len(out) >= 30:
            offset = {"width": 18, "height": 22}.get(field)
            if offset is not None:
                out[offset:offset + 4] = struct.pack("<I", value & 0xFFFFFFFF)
            else:
                out[28:30] = struct.pack("<H", value & 0xFFFF)  # bits per pixel
        elif fmt == "JPEG":
            sof = _jpeg_sof(data)
            if sof is not None:
                offset = {"height": sof + 5, "width": sof + 7}.get(field)
                if offset is not None:
                    out[offset:offset + 2] = struct.pack(">H", value & 0xFFFF)
                elif field == "depth":
                    out[sof + 4] = value & 0xFF  # sample precision
                else:
                    out[sof + 9] = value & 0xFF  # number of components
        elif fmt == "TIFF":
            e = "<" if data[:2] == b"II" else ">"
            tag = {"width": 256, "height": 257, "depth": 258, "mode": 262}[field]
            for t, kind, entry in _tiff_entries(data):
                if t == tag:
                    if kind == 3:  # SHORT, stored left-justified in the value field
                        out[entry + 8:entry + 10] = struct.pack(e + "H", value & 0xFFFF)
                    else:
                        out[entry + 8:entry + 12] = struct.pack(e + "I", value & 0xFFFFFFFF)
        elif fmt == "WEBP" and out[12:16] == b"VP8 " and len(out) >= 30:
            offset = {"width": 26, "height": 28}.get(field)
            if offset is not None:
                out[offset:offset + 2] = struct.pack("<H", value & 0x3FFF)
        elif fmt == "WEBP" and out[12:16] == b"VP8X" and len(out) >= 30:
            offset = {"width": 24, "height": 27}.get(field)
            if offset is not None:
                out[offset:offset + 3] = struct.pack("<I", (value - 1) & 0xFFFFFF)[:3]
        elif fmt == "PPM":
            head = data.split(b"\n", 3)
            if len(head) == 4 and head[1].count(b" ") == 1:
                w, h = head[1].split(b" ")
                if field == "width":
                    w = str(value).encode()
                elif field == "height":
                    h = str(value).encode()
                else:
                    head[2] = str(value).encode()  # maxval
                return b"\n".join([head[0], w + b" " + h, head[2], head[3]])
    except (IndexError, struct.error):
        return data
    return bytes(out)


def random_case(rng: random.Random, *, max_side: int = 40) -> tuple[str, str, bytes]:
    """(format, description, bytes): one damaged (or intact) file picked by ``rng``."""
    fmt = rng.choice(FORMATS)
    for _ in range(20):
        mode = rng.choice(MODES)
        data = valid_file(fmt, mode, rng.randint(1, max_side), rng.randint(1, max_side), rng.randrange(1000))
        if data is not None:
            break
    else:
        return fmt, "random bytes", rng.randbytes(rng.randint(0, 200))
    how = rng.choice(["intact", "flip", "truncate", "header", "header", "random"])
    if how == "flip":
        data = flip_bytes(data, rng, rng.randint(1, 8))
    elif how == "truncate":
        data = truncate(data, rng)
    elif how == "header":
        field = rng.choice(["width", "height", "depth", "mode"])
        data = set_header_field(data, fmt, field, rng.choice(EXTREMES))
    elif how == "random":
        data = rng.randbytes(rng.randint(0, 300))
    return fmt, f"{fmt} {mode} {how}", data
