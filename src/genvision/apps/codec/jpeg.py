"""JPEG at a given file size: the baseline a learned codec is shown against at equal bits per pixel."""

from __future__ import annotations

import io

from PIL import Image

QUALITIES = range(1, 96)  # Pillow's useful range; above 95 it only grows the file


def encode_jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def jpeg_within(image: Image.Image, max_bytes: int) -> tuple[bytes, int]:
    """The highest-quality JPEG of ``image`` no larger than ``max_bytes``, and its quality setting; when even
    the lowest quality is larger (small images: JPEG's headers alone take ~600 bytes), that one.

    File size grows with quality (Pillow's quantisation tables scale monotonically), so a bisection over
    1..95 finds it in about 7 encodes."""
    low, high = QUALITIES.start, QUALITIES.stop - 1
    best, best_quality = encode_jpeg(image, low), low
    while low <= high:
        middle = (low + high) // 2
        data = encode_jpeg(image, middle)
        if len(data) <= max_bytes:
            best, best_quality, low = data, middle, middle + 1
        else:
            high = middle - 1
    return best, best_quality
