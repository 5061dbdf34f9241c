"""Named datasets: what exists (``list_datasets``) and how to build one (``load_dataset``)."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch

from ..errors import DataError
from . import cifar, mnist, sklearn_digits
from . import download as dl  # not `download`: that name is load_dataset's flag
from .base import DatasetInfo, ImageDataset, TensorImageDataset
from .folder import FolderImageDataset

_INFOS = [
    DatasetInfo("mnist", "handwritten digits 0-9, 60000 train / 10000 test, 28x28 grey",
                1, 28, 10, ("train", "test"), dl.SOURCES["mnist"].base_url),
    DatasetInfo("fashion-mnist", "Zalando clothing, 10 classes, 60000 train / 10000 test, 28x28 grey",
                1, 28, 10, ("train", "test"), dl.SOURCES["fashion-mnist"].base_url),
    DatasetInfo("cifar10", "small photos, 10 classes, 50000 train / 10000 test, 32x32 RGB",
                3, 32, 10, ("train", "test"), dl.SOURCES["cifar10"].base_url + cifar.ARCHIVE),
    DatasetInfo("mnist-mini", "5000 train / 1000 test real MNIST digits shipped with genvision (no download)",
                1, 28, 10, ("train", "test"), "embedded"),
    DatasetInfo("sklearn-digits", "scikit-learn's bundled 8x8 digits, 1500 train / 297 test, 8x8 grey (no download; "
                "needs scikit-learn)", 1, 8, 10, ("train", "test"), "scikit-learn"),
    DatasetInfo("folder:PATH", "your own images under PATH, resized to 64 (image_size); classes from "
                "sub-folder names, else unlabelled; a test split if PATH has train/ and test/",
                3, 64, 0, ("train",), "local"),
]
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
            "cifar_10": "cifar10", "mnist_mini": "mnist-mini",
            "sklearn_digits": "sklearn-digits"}


def list_datasets() -> list[DatasetInfo]:
    return list(_INFOS)


def default_data_root(root: str | os.PathLike | None = None) -> Path:
    """Where dataset files live: explicit ``root`` > $GENVISION_DATA > ~/.cache/genvision/data."""
    chosen = root or os.environ.get("GENVISION_DATA") or "~/.cache/genvision/data"
    return Path(chosen).expanduser()


def load_dataset(name: str, *, split: str = "train", root: str | None = None, download: bool = True,
                 image_size: int | None = None, channels: int | None = None, train_augment: bool = False,
                 random_crop: bool = False, hflip: bool = False, resized_crop: float | None = None,
                 limit: int | None = None) -> ImageDataset:
    """Build a dataset by name (see :func:`list_datasets`); ``folder:PATH`` for your own images.

    ``image_size``/``channels`` None keep the dataset's own (folder data: 64 and 3).
    Augmentation (``random_crop``, ``hflip``, a folder's ``resized_crop``) happens only when ``train_augment``
    is true.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive integer, got {limit!r}")
    if name.startswith("folder:"):
        path = name[len("folder:"):]
        if not path:
            raise DataError("folder: needs a path, e.g. folder:./my_images")
        return FolderImageDataset(path, split=split, image_size=image_size, channels=channels,
                                  train_augment=train_augment, random_crop=random_crop, hflip=hflip,
                                  resized_crop=resized_crop, limit=limit)
    if resized_crop is not None:
        raise DataError(f"data.resized_crop applies to folder: datasets of photos, not to {name!r}")
    key = _ALIASES.get(name.lower(), name.lower())
    info = next((i for i in _INFOS if i.name == key and not i.name.startswith("folder:")), None)
    if info is None:
        names = [i.name for i in _INFOS]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise DataError(f"unknown dataset {name!r} ({hint}choose from {', '.join(names)})")
    if split not in info.splits:
        raise DataError(f"{key}: unknown split {split!r} (choose {' or '.join(info.splits)})")

    data_root = default_data_root(root)
    if key == "cifar10":
        images, labels = _cifar_arrays(data_root, split, download=download)
        class_names = cifar.CLASS_NAMES
    elif key == "sklearn-digits":
        images, labels = sklearn_digits.load_arrays(split)
        class_names = sklearn_digits.CLASSES
    else:
        images, labels = mnist.load_arrays(key, data_root, split, download=download)
        class_names = mnist.FASHION_CLASSES if key == "fashion-mnist" else mnist.MNIST_CLASSES
    return TensorImageDataset(torch.from_numpy(images), torch.from_numpy(labels), name=key, split=split,
                              class_names=class_names, image_size=image_size, channels=channels,
                              train_augment=train_augment, random_crop=random_crop, hflip=hflip, limit=limit)


def test_split(name: str, root: str | None = None, *, download: bool = False, image_size: int | None = None,
               channels: int | None = None) -> ImageDataset:
    """The split a model is evaluated on: ``test``, or ``train`` for data that has no test split
    (a plain folder of images); ``image_size`` / ``channels`` as for :func:`load_dataset`."""
    try:
        return load_dataset(name, split="test", root=root, download=download, image_size=image_size,
                            channels=channels)
    except DataError as exc:
        if "split" not in str(exc):
            raise
        return load_dataset(name, split="train", root=root, download=download, image_size=image_size,
                            channels=channels)


def _cifar_arrays(root: Path, split: str, *, download: bool):
    """Batches folder in ROOT or ROOT/cifar10; else the archive there (extracted next to it);
    else download the archive to ROOT/cifar10."""
    needed = cifar.SPLIT_FILES[split]
    for d in (root, root / "cifar10"):
        batches = d / cifar.BATCHES_DIR
        if all((batches / n).is_file() for n in needed):
            return cifar.load_split(batches, split)
    archive = next((d / cifar.ARCHIVE for d in (root, root / "cifar10") if (d / cifar.ARCHIVE).is_file()), None)
    if archive is None:
        archive = root / "cifar10" / cifar.ARCHIVE
        dl.fetch("cifar10", [cifar.ARCHIVE], archive.parent, download=download)  # md5-checked
    else:
        dl.verify_canonical("cifar10", archive)
    return cifar.load_split(cifar.extract_archive(archive, archive.parent), split)


def dataset_from_config(cfg, split: str = "train") -> ImageDataset:
    """Build the dataset a :class:`~genvision.config.DataConfig` describes; augmentation
    (cfg.random_crop / cfg.hflip / cfg.resized_crop) only for the train split."""
    return load_dataset(cfg.name, split=split, root=cfg.root, download=cfg.download,
                        image_size=cfg.image_size, channels=cfg.channels, train_augment=split == "train",
                        random_crop=cfg.random_crop, hflip=cfg.hflip, resized_crop=cfg.resized_crop, limit=cfg.limit)
