"""Training data for SR: random aligned (LR, HR) patches from a folder of HR images of any size.

At construction every HR image is decoded once (RGB, greyscale replicated), mod-cropped to the
scale, and its LR image made with the MATLAB bicubic of the protocol (``make_lr``: whole image,
8-bit) — both kept in memory as uint8 (the 291 images of T91 + BSD200 take ~150 MB at x2).
Degrading whole images, not patches, matters: a patch degraded alone gets mirrored borders that
no test image has.

``get_batch(indices)`` crops one random patch per index (``index % num_images`` picks the image),
applies a random flip / 90-degree rotation (the 8 symmetries of the square, identical for LR and
HR), and returns ``(lr, hr)`` float32 in [0, 1]: ``(B, C, p, p)`` and ``(B, C, s*p, s*p)``. All
randomness comes from torch's global RNG, which the trainer checkpoints, so resumed runs see the
same patches. ``len()`` is ``num_images * repeat`` (an "epoch" visits every image ``repeat`` times).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from ... import io as gio
from ...errors import DataError, ImageLoadError
from ...nn.resize import make_lr
from .ensemble import dihedral

__all__ = ["SRPatchDataset", "augment_pair"]


def augment_pair(lr: torch.Tensor, hr: torch.Tensor, code: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same one of the 8 symmetries of the square on both (bit 0: h-flip, 1: v-flip, 2: transpose)."""
    return dihedral(lr, code), dihedral(hr, code)


class SRPatchDataset:
    """Aligned LR/HR patch pairs from ``folder`` (recursively; hidden files skipped)."""
    def __init__(self, folder: str | Path, *, scale: int, patch_size: int, repeat: int = 1, augment: bool = True,
                 limit: int | None = None, channels: int = 3):
        if scale not in (2, 3, 4):
            raise DataError(f"scale must be 2, 3 or 4, got {scale}")
        if patch_size % scale or patch_size < 2 * scale:
            raise DataError(f"data.patch_size ({patch_size}, HR pixels) must be a multiple of the scale ({scale})")
        folder = Path(folder).expanduser()
        self.name = f"folder:{folder}"
        if not folder.is_dir():
            raise DataError(f"{self.name}: no such folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        if not files:
            raise DataError(f"{self.name}: no image files found")
        self.scale, self.patch_size, self.lr_patch = scale, patch_size, patch_size // scale
        self.repeat, self.augment = max(1, repeat), augment
        self.channels, self.image_size, self.num_classes, self.split = channels, patch_size, 0, "train"
        mode = "L" if channels == 1 else "RGB"
        self.hr: list[torch.Tensor] = []
        self.lr: list[torch.Tensor] = []
        self.files: list[Path] = []
        self.skipped: list[str] = []
        for path in files:
            if limit is not None and len(self.hr) >= limit:
                break
            try:
                arr = gio.to_uint8_array(path, mode)  # (H, W, C) uint8
            except ImageLoadError as exc:
                self.skipped.append(f"{path.name} ({exc})")
                continue
            hr = torch.from_numpy(arr).permute(2, 0, 1).contiguous()  # (C, H, W)
            if min(hr.shape[-2:]) < patch_size:
                self.skipped.append(f"{path.name} (smaller than the {patch_size}px patch)")
                continue
            hr8, lr8 = make_lr(hr, scale)
            self.hr.append(hr8)
            self.lr.append(lr8)
            self.files.append(path)
        if not self.hr:
            raise DataError(f"{self.name}: no usable images ({'; '.join(self.skipped[:3])})")
        if self.skipped:
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} image(s): {', '.join(self.skipped[:5])}",
                          stacklevel=2)
        self._fingerprint = hashlib.sha256(
            f"{folder}|{scale}|{patch_size}|".encode() + "|".join(
                f"{p.relative_to(folder)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in self.files).encode()
        ).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.hr) * self.repeat

    def fingerprint(self) -> str:
        return self._fingerprint

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LongTensor (B,) -> (lr float32 (B, C, p, p), hr float32 (B, C, s*p, s*p)), both in [0, 1]."""
        p, s = self.lr_patch, self.scale
        lrs, hrs = [], []
        for index in indices.tolist():
            i = index % len(self.hr)
            lr_img, hr_img = self.lr[i], self.hr[i]
            h, w = lr_img.shape[-2:]
            y = int(torch.randint(0, h - p + 1, ()))
            x = int(torch.randint(0, w - p + 1, ()))
            lr = lr_img[:, y:y + p, x:x + p]  # (C, p, p)
            hr = hr_img[:, y * s:(y + p) * s, x * s:(x + p) * s]  # (C, s*p, s*p)
            if self.augment:
                lr, hr = augment_pair(lr, hr, int(torch.randint(0, 8, ())))
            lrs.append(lr)
            hrs.append(hr)
        return torch.stack(lrs).float().div_(255.0), torch.stack(hrs).float().div_(255.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.get_batch(torch.tensor([index]))
        return lr[0], hr[0]

    def __repr__(self) -> str:
        return (f"SRPatchDataset({self.name!r}, images={len(self.hr)}, scale={self.scale}, "
                f"patch={self.patch_size}, repeat={self.repeat})")
