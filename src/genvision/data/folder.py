"""``folder:PATH`` — a dataset streamed from a folder of image files, of any size.

* Files are found recursively and sorted, so the order (and a ``limit``) is deterministic.
  Files whose suffix is not an image suffix (``genvision.io.IMAGE_SUFFIXES``) and hidden
  files/folders (names starting with '.') are ignored silently.
* Labels: if every image sits inside a first-level sub-folder, the sorted sub-folder names
  are the classes; otherwise the data is unlabelled (``num_classes`` 0, label -1).
* Splits: if PATH has both ``train/`` and ``test/`` sub-folders, ``split`` picks one of them;
  otherwise PATH is the ``train`` split and there is no ``test`` split.
* Opening a folder reads each file's header only (``genvision.io.probe_image``: format, size, pixel
  cap), so a folder of 100k photos opens in seconds; pixels are decoded when an item is asked for,
  in DataLoader workers when ``data.workers`` > 0. Files the header shows to be unusable are skipped
  with a warning naming them (also kept in ``.skipped``); more than ``max_bad_fraction`` of them
  means something is wrong with the folder and raises DataError. A file whose pixels turn out to be
  damaged is replaced by the next readable item, with a warning naming it (deterministic, so resume
  stays exact).
* What stays in memory per file is its relative path as bytes and its label, in two arrays (no
  per-file Python objects, which DataLoader workers would copy page by page as they touch their
  reference counts).
* Images are resized so the shorter side is ``image_size`` (default 64) and centre-cropped to a
  square; ``channels`` defaults to 3 (RGB). For training, ``resized_crop`` takes random-resized crops
  instead (Inception-style: a random area fraction in [resized_crop, 1] at aspect 3/4..4/3).
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import io as gio  # lazy: keeps `import genvision.data` light
from ..errors import DataError, ImageLoadError
from . import transforms as T
from .base import ImageDataset

DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3


def _scan(root: Path, suffixes: frozenset[str]) -> list[tuple[str, os.stat_result]]:
    """(relative POSIX path, stat) of every image file under root, sorted by path."""
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # hidden folders (.git) are not descended
        base = Path(folder).relative_to(root)
        for name in names:
            if name.startswith(".") or Path(name).suffix.lower() not in suffixes:
                continue  # hidden files (.DS_Store, macOS ._ resource forks)
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:
                continue  # vanished or a dangling link: not an image file
            if stat.S_ISREG(st.st_mode):  # the stat in hand: one system call per file of a huge folder
                found.append(((base / name).as_posix(), st))
    return sorted(found, key=lambda entry: entry[0])


class FolderImageDataset(ImageDataset):
    def __init__(self, root: str | Path, *, split: str = "train", image_size: int | None = None,
                 channels: int | None = None, train_augment: bool = False, random_crop: bool = False,
                 hflip: bool = False, resized_crop: float | None = None, limit: int | None = None,
                 max_bad_fraction: float = 0.1):
        root = Path(root).expanduser()
        self.name = f"folder:{root}"
        if not root.is_dir():
            raise DataError(f"{self.name}: no such folder")
        T.check_channels(channels, self.name)
        T.check_image_size(image_size, self.name)
        if (root / "train").is_dir() and (root / "test").is_dir():
            root = root / split if split in ("train", "test") else None
        elif split != "train":
            root = None
        if root is None:
            raise DataError(f"{self.name}: no {split!r} split (only folders with train/ and test/ "
                            "sub-folders have a test split)")
        self.root, self.split = root, split
        self.image_size = image_size or DEFAULT_IMAGE_SIZE
        self.channels = channels or DEFAULT_CHANNELS
        self._mode = "L" if self.channels == 1 else "RGB"

        files = _scan(root, frozenset(gio.IMAGE_SUFFIXES))
        if not files:
            raise DataError(f"{self.name}: no image files found in {root}")
        labelled = all("/" in rel for rel, _ in files)
        self.class_names = sorted({rel.split("/", 1)[0] for rel, _ in files}) if labelled else []
        self.num_classes = len(self.class_names)
        class_index = {c: i for i, c in enumerate(self.class_names)}

        # Check every header (stopping once `limit` good files are found); keep bytes, not objects.
        kept: list[bytes] = []
        labels: list[int] = []
        self.skipped: list[tuple[str, str]] = []
        digest = hashlib.sha256(f"{root}|{split}|{self.image_size}|{self.channels}".encode())
        for rel, st in files:
            if limit is not None and len(kept) >= limit:
                break
            try:
                gio.probe_image(root / rel)
            except ImageLoadError as exc:
                self.skipped.append((str(root / rel), str(exc)))
                continue
            label = class_index[rel.split("/", 1)[0]] if labelled else -1
            kept.append(os.fsencode(rel))
            labels.append(label)
            # Paths, sizes and modification times: cheap, and any edited file changes the hash.
            digest.update(f"|{rel}:{st.st_size}:{st.st_mtime_ns}:{label}".encode())
        checked = len(kept) + len(self.skipped)
        if self.skipped:
            names = ", ".join(Path(p).name for p, _ in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            if len(self.skipped) > max_bad_fraction * checked or not kept:
                raise DataError(f"{self.name}: {len(self.skipped)} of {checked} images are unreadable "
                                f"(more than {max_bad_fraction:.0%}): {names}{more}")
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} unreadable image(s): {names}{more}",
                          stacklevel=2)
        self._files = np.array(kept)  # (N,) fixed-width bytes: one buffer, however many files
        self._labels = torch.tensor(labels, dtype=torch.int64)  # (N,)
        self._fingerprint = digest.hexdigest()[:16]
        self._damaged: set[int] = set()  # items whose pixels failed to decode (in this process)

        if resized_crop is not None and not 0.0 < resized_crop <= 1.0:
            raise DataError(f"{self.name}: resized_crop must be an area fraction in (0, 1], got {resized_crop!r}")
        self.train_augment = train_augment
        self.random_crop, self.hflip, self.resized_crop = random_crop, hflip, resized_crop
        self.transform = T.folder_transform(self.image_size, random_crop=train_augment and random_crop,
                                            hflip=train_augment and hflip,
                                            resized_crop=resized_crop if train_augment else None)

    def __len__(self) -> int:
        return len(self._files)

    @property
    def labels(self) -> torch.Tensor:
        """(N,) int64 class indices (-1 for unlabelled data)."""
        return self._labels

    def path(self, index: int) -> Path:
        return self.root / os.fsdecode(bytes(self._files[index]))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms.v2.functional import pil_to_tensor

        for offset in range(len(self)):
            item = (index + offset) % len(self)
            try:
                image = pil_to_tensor(gio.load_image(self.path(item), mode=self._mode))  # (C, H, W) uint8
            except ImageLoadError as exc:
                if item not in self._damaged:
                    self._damaged.add(item)
                    warnings.warn(f"{self.name}: {exc}; using the next readable image instead", stacklevel=2)
                continue
            return T.to_signed_unit(self.transform(image)), self._labels[item].clone()
        raise DataError(f"{self.name}: no image in the folder can be decoded")

    def fingerprint(self) -> str:
        return self._fingerprint
