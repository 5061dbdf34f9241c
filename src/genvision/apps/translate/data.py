"""Unpaired training data for CycleGAN: random crops of two domains, drawn independently.

A domain is ``folder:PATH`` (every image under a folder, recursively, or one image file: one
painting's patches) or a named dataset (``mnist``, ``mnist-mini``, ``sklearn-digits``, ...). Every
image is decoded once, its shorter side resized to ``load_size`` (antialiased; ``None`` keeps
it), and kept as uint8. A batch is, per domain, a random ``patch_size`` crop of each chosen image
and a random horizontal flip (``flip``): the paper's resize-286 / crop-256 / flip recipe.

Unpaired sampling: the trainer's step-seeded order picks the A images; each B image is drawn at
random (torch's global RNG, which the trainer checkpoints), so no A is tied to a B and a resumed
run sees the same batches. ``get_batch`` returns both domains stacked on the batch axis:
``(2B, C, p, p)`` in [0, 1], A first, then B (the trainer hands one tensor to the objective).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ... import io as gio
from ...config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, check_path, check_range
from ...data import load_dataset
from ...data.patches import list_image_files
from ...errors import ConfigError, DataError, ImageLoadError

__all__ = ["DomainConfig", "DomainImages", "UnpairedDataConfig", "UnpairedDataset", "load_domain"]


@dataclass
class DomainConfig:
    name: str = ""  # folder:PATH (a folder of images, or one image file) or a named dataset (mnist, sklearn-digits)
    load_size: int | None = None  # shorter side resized to this before cropping; None: data.load_size
    # black border added on every side after resizing: sklearn-digits at load_size=20, pad=4 is framed as MNIST
    # is (the digit in a 20 px box inside 28 px), so a translator need not learn to shrink it
    pad: int = 0


@dataclass
class UnpairedDataConfig:
    """Settings both domains share (``data.*``); the domains themselves are ``data_a`` / ``data_b``."""

    root: str | None = None  # named datasets' files; default $GENVISION_DATA, then ~/.cache/genvision/data
    download: bool = True  # fetch a named dataset's canonical files when missing and online
    channels: int = 3  # 1 (grey) or 3 (RGB): both domains are converted to it
    patch_size: int = 64  # training crop side (paper: 256)
    load_size: int | None = 72  # shorter side before cropping (paper: 286 for 256); None keeps each image's size
    flip: bool = True  # random horizontal flips (off for digits)
    limit: int | None = None  # use only the first N images of each domain (tests, quick runs)
    workers: int = 0  # must stay 0: batches come from get_batch, in memory

    @property
    def name(self) -> str:
        """A label for the default run name (the domains are in data_a / data_b)."""
        return "unpaired"

    def validate(self) -> None:
        if self.root is not None:
            check_path("data.root", self.root)
        if self.channels not in (1, 3):
            raise ConfigError(f"data.channels must be 1 or 3, got {self.channels!r}")
        check_range("data.patch_size", self.patch_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.load_size is not None:
            check_load_size("data.load_size", self.load_size, self.patch_size)
        if self.limit is not None:
            check_range("data.limit", self.limit, 1)
        if self.workers != 0:
            raise ConfigError("data.workers must be 0 for cyclegan (its batches are cut in memory)")


def check_load_size(key: str, value: int, patch_size: int) -> None:
    check_range(key, value, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    if value < patch_size:
        raise ConfigError(f"{key}={value} is smaller than data.patch_size={patch_size}: crops would not fit")


def check_domain(key: str, domain: DomainConfig, data: UnpairedDataConfig) -> None:
    if not domain.name:
        raise ConfigError(f"{key}.name must name a dataset or folder:PATH (--{key.replace('_', '-')})")
    if domain.name.startswith("folder:"):
        check_path(f"{key}.name", domain.name[len("folder:"):])
    check_range(f"{key}.pad", domain.pad, 0, MAX_IMAGE_SIZE // 2)
    if domain.load_size is not None:
        check_range(f"{key}.load_size", domain.load_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if domain.load_size + 2 * domain.pad < data.patch_size:
            raise ConfigError(f"{key}.load_size={domain.load_size} with {key}.pad={domain.pad} is smaller than "
                              f"data.patch_size={data.patch_size}: crops would not fit")
        if domain.load_size + 2 * domain.pad > MAX_IMAGE_SIZE:  # every image of the domain is held in memory
            raise ConfigError(f"{key}.load_size={domain.load_size} with {key}.pad={domain.pad} makes images over "
                              f"{MAX_IMAGE_SIZE} px")


def _resize_shorter(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """uint8 (C, H, W) -> uint8 (C, H', W') with min(H', W') == size (antialiased bilinear)."""
    h, w = image.shape[-2:]
    if size is None or min(h, w) == size:
        return image
    scale = size / min(h, w)
    new = (max(size, round(h * scale)), max(size, round(w * scale)))
    out = F.interpolate(image[None].float(), size=new, mode="bilinear", align_corners=False, antialias=True)
    return out[0].round_().clamp_(0, 255).to(torch.uint8)  # (C, H', W')


@dataclass
class DomainImages:
    name: str
    images: list[torch.Tensor]  # uint8 (C, H, W) each, shorter side >= the patch size
    labels: torch.Tensor  # int64 (N,), -1 when unlabelled


def _folder_files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"folder:{spec}: no such folder or image file")
    files = list_image_files(path)
    if not files:
        raise DataError(f"folder:{spec}: no image files found")
    return files


def _pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """uint8 (C, H, W) -> (C, H + 2 pad, W + 2 pad), the border black (0)."""
    return F.pad(image, (pad, pad, pad, pad)) if pad else image


def load_domain(name: str, *, channels: int, load_size: int | None, patch_size: int, split: str = "train",
                root: str | None = None, download: bool = True, limit: int | None = None, pad: int = 0
                ) -> DomainImages:
    """One domain's images, decoded, resized and padded once (see the module docstring)."""
    if name.startswith("folder:"):
        images, skipped = [], []
        for path in _folder_files(name[len("folder:"):]):
            if limit is not None and len(images) >= limit:
                break
            try:
                arr = gio.to_uint8_array(path, "L" if channels == 1 else "RGB")  # (H, W, C) uint8
            except ImageLoadError as exc:
                skipped.append(f"{path.name} ({exc})")
                continue
            image = _resize_shorter(torch.from_numpy(arr).permute(2, 0, 1).contiguous(), load_size)  # (C, H, W)
            image = _pad(image, pad)  # (C, H + 2 pad, W + 2 pad)
            if min(image.shape[-2:]) < patch_size:
                skipped.append(f"{path.name} (smaller than the {patch_size}px patch)")
                continue
            images.append(image)
        if not images:
            raise DataError(f"{name}: no usable images ({'; '.join(skipped[:3])})")
        if skipped:
            warnings.warn(f"{name}: skipped {len(skipped)} image(s): {', '.join(skipped[:5])}", stacklevel=2)
        return DomainImages(name, images, torch.full((len(images),), -1, dtype=torch.long))
    size = load_size if load_size is not None else patch_size
    dataset = load_dataset(name, split=split, root=root, download=download, image_size=size, channels=channels,
                           limit=limit)
    if size + 2 * pad < patch_size:
        raise ConfigError(f"{name}: images of {size + 2 * pad}px are smaller than data.patch_size={patch_size}")
    images = [_pad(image, pad) for image in dataset.images]  # (C, S + 2 pad, S + 2 pad) uint8 each
    return DomainImages(name, images, dataset.labels.clone())


def random_crops(domain: DomainImages, indices: list[int], patch: int, flip: bool) -> torch.Tensor:
    """One random ``patch`` crop (and flip) per index: float32 (B, C, patch, patch) in [0, 1]."""
    crops = []
    for index in indices:
        image = domain.images[index]
        h, w = image.shape[-2:]
        y = int(torch.randint(0, h - patch + 1, ()))
        x = int(torch.randint(0, w - patch + 1, ()))
        crop = image[:, y:y + patch, x:x + patch]
        if flip and bool(torch.randint(0, 2, ())):
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.stack(crops).float().div_(255.0)


class UnpairedDataset:
    """Both domains; ``get_batch(indices)`` -> ``(images (2B, C, p, p) in [0, 1], labels (2B,))``,
    A then B. ``len`` is the larger domain's size (an epoch visits every A image once)."""

    def __init__(self, a: DomainImages, b: DomainImages, *, patch_size: int, channels: int, flip: bool):
        self.a, self.b = a, b
        self.patch_size = self.image_size = patch_size
        self.channels, self.num_classes, self.split, self.flip = channels, 0, "train", flip
        self.name = f"{a.name} <-> {b.name}"

    def __len__(self) -> int:
        return max(len(self.a.images), len(self.b.images))

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.name.encode())
        for domain in (self.a, self.b):
            digest.update(str([tuple(image.shape) for image in domain.images]).encode())
        return digest.hexdigest()[:16]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a_idx = [i % len(self.a.images) for i in indices.tolist()]
        b_idx = torch.randint(0, len(self.b.images), (len(a_idx),)).tolist()  # unpaired: B drawn on its own
        a = random_crops(self.a, a_idx, self.patch_size, self.flip)
        b = random_crops(self.b, b_idx, self.patch_size, self.flip)
        labels = torch.cat([self.a.labels[a_idx], self.b.labels[b_idx]])  # (2B,)
        return torch.cat([a, b]), labels  # (2B, C, p, p): A rows first

    def __repr__(self) -> str:
        return (f"UnpairedDataset({self.name!r}, a={len(self.a.images)}, b={len(self.b.images)}, "
                f"patch={self.patch_size}, channels={self.channels})")
