"""Random aligned patches from a folder of images of any size, for image-to-image training
(super-resolution: LR/HR pairs; denoising: clean patches the objective adds noise to).

At construction every image is decoded once (``channels`` 1: greyscale by BT.601, 3: RGB with
greyscale replicated), turned into its *views* by ``prepare`` (SR: the mod-cropped HR image and
its MATLAB-bicubic LR image; denoising: the image itself) and kept in memory as uint8. Degrading
whole images, not patches, matters: a patch degraded alone gets mirrored borders that no test
image has.

``crop(indices)`` cuts one random patch per index (``index % num_images`` picks the image): a
``patch x patch`` square of view 0 and the same region of every other view (view ``k`` is
``factors[k]`` times the size of view 0), then one random flip / 90-degree rotation (the 8
symmetries of the square) applied to all views alike, and returns float32 tensors in [0, 1].
All randomness comes from torch's global RNG, which the trainer checkpoints, so resumed runs see
the same patches. ``len()`` is ``num_images * repeat`` (an "epoch" visits every image ``repeat``
times).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import io as gio
from ..config import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, DataConfig, check_range
from ..errors import DataError, ImageLoadError
from .transforms import dihedral

# where a patch family's channels are set (the model section must not say otherwise)
CHANNELS_WHERE = "the data's {} channels; set data.channels= (1 grey, 3 RGB) only"

__all__ = ["CHANNELS_WHERE", "AlignedPatchDataset", "PatchDataConfig", "RandomPatchDataset", "folder_patches",
           "list_image_files"]


@dataclass
class PatchDataConfig(DataConfig):
    """The data section of a family trained on random patches (super-resolution, denoising)."""

    name: str = "folder:../shared/data/sr-train"  # folder:PATH of images (any sizes), e.g. T91 + BSD200
    patch_size: int = 96  # patch side in pixels
    repeat: int = 20  # patches per image per "epoch" (the epoch length only matters for the data order)
    augment: bool = True  # random flips and 90-degree rotations (the 8 symmetries of the square)

    def validate(self) -> None:
        super().validate()
        check_range("data.patch_size", self.patch_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        # An epoch is a random permutation of num_images * repeat indices, held in memory.
        check_range("data.repeat", self.repeat, 1, 10_000)


def list_image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted; hidden files and folders skipped)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class AlignedPatchDataset:
    """Aligned random patches of the views of every image in ``folder`` (recursively; hidden files
    skipped). Images whose shorter side is under ``min_size`` pixels are skipped with a warning."""

    def __init__(self, folder: str | Path, *, patch: int, min_size: int, factors: tuple[int, ...] = (1,),
                 prepare: Callable[[torch.Tensor], tuple[torch.Tensor, ...]] | None = None, repeat: int = 1,
                 augment: bool = True, limit: int | None = None, channels: int = 3, fingerprint_key: str = ""):
        folder = Path(folder).expanduser()
        self.name = f"folder:{folder}"
        if not folder.is_dir():
            raise DataError(f"{self.name}: no such folder")
        files = list_image_files(folder)
        if not files:
            raise DataError(f"{self.name}: no image files found")
        if channels not in (1, 3):
            raise DataError(f"{self.name}: channels must be 1 or 3, got {channels}")
        self.patch, self.factors = patch, tuple(factors)
        self.repeat, self.augment = max(1, repeat), augment
        self.channels, self.num_classes, self.split = channels, 0, "train"
        mode = "L" if channels == 1 else "RGB"
        self.views: list[tuple[torch.Tensor, ...]] = []
        self.files: list[Path] = []
        self.skipped: list[str] = []
        for path in files:
            if limit is not None and len(self.views) >= limit:
                break
            try:
                arr = gio.to_uint8_array(path, mode)  # (H, W, C) uint8
            except ImageLoadError as exc:
                self.skipped.append(f"{path.name} ({exc})")
                continue
            image = torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (C, H, W)
            if min(image.shape[-2:]) < min_size:
                self.skipped.append(f"{path.name} (smaller than the {min_size}px patch)")
                continue
            self.views.append(tuple(prepare(image)) if prepare is not None else (image,))
            self.files.append(path)
        if not self.views:
            raise DataError(f"{self.name}: no usable images ({'; '.join(self.skipped[:3])})")
        if self.skipped:
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} image(s): {', '.join(self.skipped[:5])}",
                          stacklevel=3)
        self._fingerprint = hashlib.sha256(
            f"{folder}|{fingerprint_key}".encode() + "|".join(
                f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.files).encode()
        ).hexdigest()[:16]

    @property
    def num_images(self) -> int:
        return len(self.views)

    def __len__(self) -> int:
        return len(self.views) * self.repeat

    def fingerprint(self) -> str:
        return self._fingerprint

    def crop(self, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """LongTensor (B,) -> one float32 (B, C, p * f, p * f) batch in [0, 1] per view."""
        p = self.patch
        out: list[list[torch.Tensor]] = [[] for _ in self.factors]
        for index in indices.tolist():
            views = self.views[index % len(self.views)]
            h, w = views[0].shape[-2:]
            y = int(torch.randint(0, h - p + 1, ()))
            x = int(torch.randint(0, w - p + 1, ()))
            crops = [v[:, y * f:(y + p) * f, x * f:(x + p) * f] for v, f in zip(views, self.factors)]
            if self.augment:
                code = int(torch.randint(0, 8, ()))
                crops = [dihedral(c, code) for c in crops]
            for k, c in enumerate(crops):
                out[k].append(c)
        return tuple(torch.stack(batch).float().div_(255.0) for batch in out)


class RandomPatchDataset(AlignedPatchDataset):
    """Random ``patch_size`` squares of the images in ``folder`` (flips/rotations when ``augment``):
    ``get_batch`` returns ``(patches float32 (B, C, p, p) in [0, 1], labels -1)``, the trainer's
    ``(images, labels)`` for unlabelled data. What a restoration objective degrades on the fly."""

    def __init__(self, folder: str | Path, *, patch_size: int, repeat: int = 1, augment: bool = True,
                 limit: int | None = None, channels: int = 3):
        if patch_size < 2:
            raise DataError(f"data.patch_size must be at least 2 pixels, got {patch_size}")
        super().__init__(folder, patch=patch_size, min_size=patch_size, repeat=repeat, augment=augment, limit=limit,
                         channels=channels, fingerprint_key=f"patches|{patch_size}|{channels}|")
        self.patch_size = self.image_size = patch_size

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (patches,) = self.crop(indices)
        return patches, torch.full((patches.shape[0],), -1, dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        patches, labels = self.get_batch(torch.tensor([index]))
        return patches[0], labels[0]

    def __repr__(self) -> str:
        return (f"RandomPatchDataset({self.name!r}, images={self.num_images}, patch={self.patch_size}, "
                f"channels={self.channels}, repeat={self.repeat})")


def folder_patches(data: PatchDataConfig, family: str, default_channels: int, needs: str) -> RandomPatchDataset:
    """The random patches of a restoration family's ``data`` section (``name: folder:PATH``);
    ``needs`` says what the folder holds, for the error when ``name`` is not a folder."""
    if not data.name.startswith("folder:"):
        raise DataError(f"{family} training needs a folder of {needs}: --data folder:PATH (got {data.name!r})")
    return RandomPatchDataset(data.name[len("folder:"):], patch_size=data.patch_size, repeat=data.repeat,
                              augment=data.augment, limit=data.limit, channels=data.channels or default_channels)
