"""Dataset types: a description record, the common dataset interface, and the in-memory dataset.

Every dataset yields ``(image, label)``: image float32 (C, H, W) in [-1, 1], label an int64
scalar tensor (-1 for unlabelled data). In-memory datasets also offer ``get_batch`` so a
training loop can skip the DataLoader's per-item Python overhead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from ..errors import DataError
from . import transforms as T


@dataclass(frozen=True)
class DatasetInfo:
    name: str  # what load_dataset() accepts
    description: str
    channels: int  # native channels
    image_size: int  # native square side (folder data: the default resize)
    num_classes: int  # 0 when unlabelled / not known in advance
    splits: tuple[str, ...]
    source: str  # download URL, "embedded" (ships with genvision) or "local"


class ImageDataset(Dataset):
    """Common interface; subclasses set these attributes and implement the two methods."""

    name: str
    split: str
    channels: int
    image_size: int  # square side of the images handed out
    num_classes: int  # 0 if unlabelled
    class_names: list[str]

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """A short hash of exactly what this dataset hands out (for caches keyed by data)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"channels={self.channels}, image_size={self.image_size}, num_classes={self.num_classes})")


class TensorImageDataset(ImageDataset):
    """Images held in memory as uint8 (N, C, H, W) with int64 labels (N,).

    Resizing and channel conversion happen once here, for the whole tensor, so ``images``
    is exactly what ``get_batch`` hands out (before augmentation) — metrics code can use it
    directly. Augmentation (``train_augment`` with ``random_crop`` and/or ``hflip``) is
    applied per batch with torch's global RNG.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None, *, name: str, split: str,
                 class_names: list[str] | None = None, image_size: int | None = None,
                 channels: int | None = None, train_augment: bool = False, random_crop: bool = False,
                 hflip: bool = False, limit: int | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"{name}: expected uint8 images (N, 1|3, H, W), got {images.dtype} {tuple(images.shape)}")
        if images.shape[2] != images.shape[3]:
            raise DataError(f"{name}: images must be square, got {images.shape[2]}x{images.shape[3]}")
        if labels is None:
            labels = torch.full((images.shape[0],), -1, dtype=torch.int64)
        if labels.shape != (images.shape[0],):
            raise DataError(f"{name}: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        T.check_channels(channels, name)
        T.check_image_size(image_size, name)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]  # before resizing: cheaper
        self.name, self.split = name, split
        self.class_names = list(class_names or [])
        self.num_classes = len(self.class_names)
        self.image_size = image_size or images.shape[-1]
        self.channels = channels or images.shape[1]
        images = T.resize_uint8(images, self.image_size)
        self.images = T.convert_channels(images, self.channels)  # (N, channels, S, S) uint8
        self.labels = labels.to(torch.int64)  # (N,)
        self.train_augment = train_augment
        self.random_crop = random_crop
        self.hflip = hflip

    @property
    def augmenting(self) -> bool:
        return self.train_augment and (self.random_crop or self.hflip)

    def __len__(self) -> int:
        return self.images.shape[0]

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}|{self.split}|{tuple(self.images.shape)}".encode())
        digest.update(self.images.contiguous().numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectorised fetch: LongTensor (B,) -> (float32 (B, C, S, S) in [-1, 1], int64 (B,))."""
        x = T.to_signed_unit(self.images[indices])  # (B, C, S, S)
        if self.augmenting:
            x = T.augment_batch(x, random_crop=self.random_crop, hflip=self.hflip)
        return x, self.labels[indices]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} out of range for {len(self)} images")
        x, y = self.get_batch(torch.tensor([index]))  # same code path as batches
        return x[0], y[0]
