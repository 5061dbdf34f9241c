"""Image embeddings for retrieval: one spec string names how images become vectors, and rebuilds it.

======================================  ==========================================================================
spec                                    vectors
======================================  ==========================================================================
``phash``, ``dhash`` (``phash:16``)     ImageHash perceptual / difference hash of an 8x8 (16x16: 256 bits) grid:
                                        binary rows packed as uint8 (N, bits / 8), compared by Hamming distance.
                                        Survive resizing, recompression and tone edits; not crops or rotations.
``efficientnet-lite0`` (the default)    1280-d pooled features of genvision.pretrained's ImageNet EfficientNet-Lite0
                                        (``genvision weights get efficientnet-lite0`` once): photos by content
``model:PATH``                          a genvision model or run directory, by its kind: classifier penultimate
                                        features (ViT: mean patch token), VAE posterior mean, embed nets' embedding;
                                        images go in at the model's size, grey for MNIST-style models
``extractor:NAME``                      a domain classifier shipped with genvision (``mnist-cnn``)
``simclr:PATH``                         a self-supervised embedding net (``genvision train simclr``)
``torchvision:ARCH=WEIGHTS``            torchvision resnet18/resnet50/vit_b_16 with your ImageNet state dict file
======================================  ==========================================================================

Float rows are float32 (N, dim), L2-normalised, so an inner product is the cosine similarity (an all-zero
feature stays zero). :attr:`Embedder.spec` is canonical (paths absolute) and is what an index stores;
:attr:`Embedder.cache_key` adds a fingerprint of the weights, so re-trained weights never reuse old vectors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import imagehash
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ...errors import CheckpointError, ConfigError
from ...io import load_image
from ...runtime import select_device
from ...zoo import is_zoo_spec
from . import embed_models
from .embed_models import LITE0, Network

DEFAULT_SPEC = LITE0  # the best offline photo embedding: real ImageNet weights via `genvision weights get`
HASHES = {"phash": imagehash.phash, "dhash": imagehash.dhash}
DEFAULT_HASH_SIZE = 8  # 8 x 8 = 64 bits, ImageHash's default
HASH_SIZES = tuple(range(4, 33, 4))  # the grid side; bits = side**2 must be a multiple of 8 to pack into bytes
MAX_BATCH_SIZE = 4096
SPECS_HELP = (f"phash[:N], dhash[:N] (N in {HASH_SIZES[0]}..{HASH_SIZES[-1]}, a multiple of 4), {LITE0}, model:PATH, "
              f"extractor:NAME, simclr:PATH, torchvision:ARCH=WEIGHTS")


class Embedder:
    """Turns RGB PIL images into rows of vectors; build one with :func:`make_embedder`."""

    spec: str  # canonical: make_embedder(spec) rebuilds this embedder; an index stores it
    dim: int  # float: vector length; binary: number of bits (a multiple of 8)
    binary: bool  # True: packed uint8 rows (N, dim // 8), Hamming distance; False: float32 (N, dim), L2-normalised
    cache_key: str  # spec plus a fingerprint of the weights: the key for cached vectors

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise NotImplementedError

    @property
    def row_shape(self) -> tuple[int]:
        return (self.dim // 8,) if self.binary else (self.dim,)

    def empty(self) -> np.ndarray:
        return np.zeros((0, *self.row_shape), np.uint8 if self.binary else np.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, dim={self.dim}, binary={self.binary})"


def checked_images(images: Sequence[Image.Image]) -> list[Image.Image]:
    """The images as a list (one image alone too); one ConfigError line for anything that is not a PIL image."""
    images = [images] if isinstance(images, Image.Image) else list(images)
    for i, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise ConfigError(f"embed takes PIL images; item {i} is a {type(image).__name__}")
        if 0 in image.size:
            raise ConfigError(f"embed: item {i} is an empty image ({image.width}x{image.height})")
    return images


def rgb(image: Image.Image) -> Image.Image:
    # Converted one at a time as batches are made: a whole list of grey digits turned RGB at once triples memory.
    return image if image.mode == "RGB" else image.convert("RGB")


class HashEmbedder(Embedder):
    """ImageHash's phash or dhash, as packed bits."""

    binary = True

    def __init__(self, method: str, hash_size: int = DEFAULT_HASH_SIZE):
        self.method, self.hash_size = method, hash_size
        self.spec = method if hash_size == DEFAULT_HASH_SIZE else f"{method}:{hash_size}"
        self.dim = hash_size * hash_size
        self.cache_key = f"{self.spec}@imagehash-{imagehash.__version__}"

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        images = checked_images(images)
        rows = np.zeros((len(images), self.dim // 8), np.uint8)  # (N, bits / 8)
        for i, image in enumerate(images):
            bits = HASHES[self.method](rgb(image), hash_size=self.hash_size).hash  # (side, side) bool
            rows[i] = np.packbits(bits.reshape(-1))  # (side * side,) bits -> (bits / 8,) bytes, row-major
        return rows


class NetworkEmbedder(Embedder):
    """A network's features, ``batch_size`` images per forward pass, L2-normalised float32 rows."""

    binary = False

    def __init__(self, spec: str, network: Network, *, batch_size: int):
        self.spec, self.network, self.batch_size = spec, network, batch_size
        self.cache_key = f"{spec}@{network.fingerprint}"
        # Unless the network states it, one forward pass of a grey image measures the feature length.
        probe = [Image.new("RGB", (64, 64), (128, 128, 128))]
        self.dim = network.dim or int(self._features(probe).shape[1])

    @torch.no_grad()
    def _features(self, images: list[Image.Image]) -> torch.Tensor:
        batch = torch.stack([self.network.prepare(rgb(image)) for image in images])  # (B, C, S, S)
        features = self.network.forward(batch.to(self.network.device))
        return features.float().flatten(1).cpu()  # (B, D)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        images = checked_images(images)
        rows = np.zeros((len(images), self.dim), np.float32)  # (N, D)
        for start in range(0, len(images), self.batch_size):
            features = self._features(images[start:start + self.batch_size])  # (b, D)
            if not torch.isfinite(features).all():
                raise CheckpointError(f"embedding {self.spec} gave non-finite features (broken weights?)")
            rows[start:start + len(features)] = F.normalize(features, dim=1).numpy()
        return rows


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """An image file as RGB, EXIF orientation applied, size-capped; ImageLoadError (one line) names a bad file."""
    return load_image(path, "RGB")


def _hash_size(spec: str, argument: str) -> int:
    if not argument:
        return DEFAULT_HASH_SIZE
    try:
        size = int(argument)
    except ValueError:
        size = -1
    if size not in HASH_SIZES:
        raise ConfigError(f"embedding {spec!r}: the hash size must be one of {', '.join(map(str, HASH_SIZES))} "
                          f"(bits = size squared, a multiple of 8)")
    return size


def _absolute(argument: str, spec: str) -> str:
    if not argument:
        raise ConfigError(f"embedding {spec!r} names no path; use {SPECS_HELP}")
    if is_zoo_spec(argument):  # a shipped model: its name is already the same from any folder
        return argument
    return str(Path(argument).expanduser().resolve())


def make_embedder(spec: str | None = None, *, device: str | None = None, batch_size: int = 64) -> Embedder:
    """The embedder ``spec`` names (None: :data:`DEFAULT_SPEC`); ``device``: None/"auto" picks cuda > mps > cpu.
    Network weights are only read from files and caches here, never downloaded."""
    if spec is None:
        spec = DEFAULT_SPEC
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"the embedding must be a non-empty spec string: {SPECS_HELP}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch_size must be an integer in 1..{MAX_BATCH_SIZE}, got {batch_size!r}")
    spec = spec.strip()
    scheme, _, argument = spec.partition(":")
    if scheme in HASHES:
        return HashEmbedder(scheme, _hash_size(spec, argument))
    if scheme not in (LITE0, "model", "simclr", "extractor", "torchvision") or (scheme == LITE0 and argument):
        raise ConfigError(f"unknown embedding {spec!r}; choose from {SPECS_HELP}")
    on = select_device(device or "auto")
    if scheme == LITE0:
        canonical, network = LITE0, embed_models.efficientnet_lite0(on)
    elif scheme == "model":
        canonical = f"model:{_absolute(argument, spec)}"
        network = embed_models.genvision_model(canonical[6:], on, what="model")
    elif scheme == "simclr":
        canonical = f"simclr:{_absolute(argument, spec)}"
        network = embed_models.genvision_model(canonical[7:], on, what="simclr", kind=embed_models.EMBED_KIND)
    elif scheme == "extractor":
        canonical, network = spec, embed_models.shipped_extractor(argument, on)
    else:
        arch, equals, weights = argument.partition("=")
        if not equals or not weights:
            raise ConfigError(f"embedding {spec!r}: write torchvision:ARCH=WEIGHTS_FILE, ARCH one of "
                              f"{', '.join(embed_models.TORCHVISION_ARCHS)}")
        canonical = f"torchvision:{arch}={_absolute(weights, spec)}"
        network = embed_models.torchvision_net(arch, canonical.split("=", 1)[1], on)
    return NetworkEmbedder(canonical, network, batch_size=batch_size)


__all__ = ["DEFAULT_SPEC", "HASHES", "Embedder", "HashEmbedder", "NetworkEmbedder", "load_rgb", "make_embedder"]
