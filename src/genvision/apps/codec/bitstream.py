"""The ``.gvc`` file: one image coded by a learned codec.

Layout (little-endian)::

    b"GVC1"                      magic and format version
    u32  header length, header   JSON: model name, weights fingerprint, image and latent size
    u8   string count            1 (factorized: y) or 2 (hyperprior: y, then z)
    (u32 length, bytes) * count  the rANS-coded latents
    u32  CRC-32 of everything above

The header is JSON, never a pickle. Reading checks the magic, the lengths against the file size and
the checksum before a byte reaches the decoder, so a truncated or damaged file is one line, not a
crash in the coder; and the fingerprint ties the file to the weights that wrote it (another model's
densities would decode garbage without any error).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ...errors import DataError
from ...models.codec import CodedImages

MAGIC = b"GVC1"
SUFFIX = ".gvc"
MAX_HEADER = 1 << 16
MAX_STRINGS = 4

__all__ = ["MAGIC", "SUFFIX", "CodecFile", "decode_file", "encode_file", "weights_fingerprint"]


@dataclass(frozen=True)
class CodecFile:
    model: str
    fingerprint: str
    coded: CodedImages  # one image

    @property
    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.coded.strings[0])


def weights_fingerprint(model: nn.Module) -> str:
    """16 hex digits of a SHA-256 over the model's tensors (names, shapes, dtypes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def encode_file(model_name: str, fingerprint: str, coded: CodedImages) -> bytes:
    """The bytes of a ``.gvc`` file for the first (only) image of ``coded``."""
    header = json.dumps({"model": model_name, "weights": fingerprint, "image_size": list(coded.image_size),
                         "latent_size": list(coded.latent_size)}, separators=(",", ":")).encode()
    strings = coded.strings[0]
    body = [MAGIC, struct.pack("<I", len(header)), header, struct.pack("<B", len(strings))]
    for string in strings:
        body += [struct.pack("<I", len(string)), string]
    data = b"".join(body)
    return data + struct.pack("<I", zlib.crc32(data))


def decode_file(path: str | Path) -> CodecFile:
    """Read and check a ``.gvc`` file; any defect is one DataError line naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data[:4] != MAGIC:
        raise DataError(f"{path} is not a genvision codec file (.gvc): it does not start with {MAGIC!r}")
    if len(data) < 13:
        raise DataError(f"{path} is truncated ({len(data)} bytes)")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise DataError(f"{path} is damaged or truncated: its checksum does not match its contents")
    reader = _Reader(data[:-4], path)
    reader.take(4)
    header_length = reader.u32()
    if header_length > MAX_HEADER:
        raise DataError(f"{path} has a header of {header_length} bytes; the format allows {MAX_HEADER}")
    try:
        header = json.loads(reader.take(header_length))
        image_size = tuple(int(v) for v in header["image_size"])
        latent_size = tuple(int(v) for v in header["latent_size"])
        model, fingerprint = str(header["model"]), str(header["weights"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} has an unreadable header ({exc})") from None
    if len(image_size) != 2 or len(latent_size) != 2 or min(*image_size, *latent_size) < 1:
        raise DataError(f"{path} has an impossible image or latent size: {image_size}, {latent_size}")
    count = reader.u8()
    if not 1 <= count <= MAX_STRINGS:
        raise DataError(f"{path} says it holds {count} coded latents; a codec writes 1 or 2")
    strings = [reader.take(reader.u32()) for _ in range(count)]
    if reader.left():
        raise DataError(f"{path} has {reader.left()} unexpected bytes after its coded latents")
    return CodecFile(model, fingerprint, CodedImages([strings], latent_size, image_size))


class _Reader:
    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.at = data, path, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise DataError(f"{self.path} is truncated: a field needs {n} bytes, {len(self.data) - self.at} are left")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u8(self) -> int:
        return self.take(1)[0]

    def left(self) -> int:
        return len(self.data) - self.at
