"""MNIST, Fashion-MNIST and the embedded mnist-mini: finding the IDX files and reading them.

Lookup order for a split's two files (``.gz`` or uncompressed) — the first folder that has
both wins:
  mnist:          ROOT, ROOT/mnist, ROOT/MNIST/raw (torchvision's layout)
  fashion-mnist:  ROOT/fashion-mnist, ROOT/FashionMNIST/raw
When none has them they are downloaded (if allowed) into ROOT/mnist or ROOT/fashion-mnist.
Canonical ``.gz`` files are md5-checked on every load (about 20 ms for the largest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from . import download as dl
from .idx import read_idx

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MINI_DIR = Path(__file__).resolve().parent.parent / "assets" / "mnist-mini"


def _search_dirs(dataset: str, root: Path) -> list[Path]:
    if dataset == "mnist":
        return [root, root / "mnist", root / "MNIST" / "raw"]
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw"]


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def locate(dataset: str, root: Path, split: str, *, download: bool) -> tuple[Path, Path]:
    """Paths of the (images, labels) files of ``split``, downloading them if needed and allowed."""
    stems = SPLIT_FILES[split]
    for d in _search_dirs(dataset, root):
        found = [_find(d, s) for s in stems]
        if all(found):
            return found[0], found[1]
    target = root / dataset  # ROOT/mnist or ROOT/fashion-mnist
    dl.fetch(dataset, [s + ".gz" for s in stems], target, download=download)
    return target / (stems[0] + ".gz"), target / (stems[1] + ".gz")


def read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and cross-check an images/labels IDX pair -> (uint8 (N, 1, 28, 28), int64 (N,))."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DataError(f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape} labels for {images.shape[0]} images in {images_path.name}")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels outside 0..9")
    return images[:, None], labels.astype(np.int64)  # (N, 1, H, W): add the channel axis


def load_arrays(dataset: str, root: Path, split: str, *, download: bool) -> tuple[np.ndarray, np.ndarray]:
    if dataset == "mnist-mini":
        stems = SPLIT_FILES[split]
        return read_pair(MINI_DIR / (stems[0] + ".gz"), MINI_DIR / (stems[1] + ".gz"))
    images_path, labels_path = locate(dataset, root, split, download=download)
    for p in (images_path, labels_path):
        dl.verify_canonical(dataset, p)
    return read_pair(images_path, labels_path)
