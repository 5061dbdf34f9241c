"""``folder:PATH`` — a dataset from a folder of image files.

* Files are found recursively and sorted, so the order (and a ``limit``) is deterministic.
  Files whose suffix is not an image suffix (``genvision.io.IMAGE_SUFFIXES``) and hidden
  files/folders (names starting with '.') are ignored silently.
* Labels: if every image sits inside a first-level sub-folder, the sorted sub-folder names
  are the classes; otherwise the data is unlabelled (``num_classes`` 0, label -1).
* Splits: if PATH has both ``train/`` and ``test/`` sub-folders, ``split`` picks one of them;
  otherwise PATH is the ``train`` split and there is no ``test`` split.
* Every image is decoded once at construction (with ``genvision.io.load_image``) and then
  dropped, so only a list of ``(path, label)`` stays in memory. Unreadable images are skipped
  with a warning naming them (also kept in ``.skipped``); more than ``max_bad_fraction`` of
  them means something is wrong with the folder and raises DataError.
* Images are resized so the shorter side is ``image_size`` (default 64) and centre-cropped to
  a square; ``channels`` defaults to 3 (RGB).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from .. import io as gio  # lazy: keeps `import genvision.data` light
from ..errors import DataError, ImageLoadError
from . import transforms as T
from .base import ImageDataset

DEFAULT_IMAGE_SIZE = 64
DEFAULT_CHANNELS = 3


def _scan(root: Path, suffixes: frozenset[str]) -> list[Path]:
    files = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).parts
        if any(part.startswith(".") for part in rel):
            continue  # hidden files and folders (.git, .DS_Store, macOS ._ resource forks)
        if p.suffix.lower() in suffixes and p.is_file():
            files.append(p)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


class FolderImageDataset(ImageDataset):
    def __init__(self, root: str | Path, *, split: str = "train", image_size: int | None = None,
                 channels: int | None = None, train_augment: bool = False, random_crop: bool = False,
                 hflip: bool = False, limit: int | None = None, max_bad_fraction: float = 0.1):
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
        labelled = all(len(f.relative_to(root).parts) >= 2 for f in files)
        self.class_names = sorted({f.relative_to(root).parts[0] for f in files}) if labelled else []
        self.num_classes = len(self.class_names)
        class_index = {c: i for i, c in enumerate(self.class_names)}

        # decode every candidate once (stopping once `limit` good ones are found), keep paths only
        self.samples: list[tuple[Path, int]] = []
        self.skipped: list[tuple[str, str]] = []
        for f in files:
            if limit is not None and len(self.samples) >= limit:
                break
            try:
                gio.load_image(f, mode=self._mode)
            except ImageLoadError as exc:
                self.skipped.append((str(f), str(exc)))
                continue
            label = class_index[f.relative_to(root).parts[0]] if labelled else -1
            self.samples.append((f, label))
        checked = len(self.samples) + len(self.skipped)
        if self.skipped:
            names = ", ".join(Path(p).name for p, _ in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            if len(self.skipped) > max_bad_fraction * checked or not self.samples:
                raise DataError(f"{self.name}: {len(self.skipped)} of {checked} images are unreadable "
                                f"(more than {max_bad_fraction:.0%}): {names}{more}")
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} unreadable image(s): {names}{more}",
                          stacklevel=2)

        self.train_augment = train_augment
        self.random_crop, self.hflip = random_crop, hflip
        self._fingerprint_text = f"{self.root}|{split}|{self.image_size}|{self.channels}|" + "|".join(
            f"{p.relative_to(root)}:{p.stat().st_size}:{p.stat().st_mtime_ns}:{label}" for p, label in self.samples)
        augment = train_augment
        self.transform = T.folder_transform(self.image_size, random_crop=augment and random_crop,
                                            hflip=augment and hflip)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from torchvision.transforms.v2.functional import pil_to_tensor

        path, label = self.samples[index]
        image = pil_to_tensor(gio.load_image(path, mode=self._mode))  # (C, H, W) uint8
        return T.to_signed_unit(self.transform(image)), torch.tensor(label, dtype=torch.int64)

    def fingerprint(self) -> str:
        # Paths, sizes and modification times: cheap, and any edited file changes the hash.
        return hashlib.sha256(self._fingerprint_text.encode()).hexdigest()[:16]
