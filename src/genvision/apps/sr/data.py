"""Training data for SR: random aligned (LR, HR) patches from a folder of HR images of any size.

At construction every HR image is decoded once (RGB, greyscale replicated), mod-cropped to the
scale, and its LR image made with the MATLAB bicubic of the protocol (``make_lr``: whole image,
8-bit) — both kept in memory as uint8 (the 291 images of T91 + BSD200 take ~150 MB at x2).
The patch machinery is :class:`genvision.data.patches.AlignedPatchDataset` (shared with
denoising): ``get_batch(indices)`` crops one random patch per index, applies a random flip /
90-degree rotation identical for LR and HR, and returns ``(lr, hr)`` float32 in [0, 1]:
``(B, C, p, p)`` and ``(B, C, s*p, s*p)``. All randomness comes from torch's global RNG, which
the trainer checkpoints, so resumed runs see the same patches.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...data.patches import AlignedPatchDataset
from ...data.transforms import dihedral
from ...errors import DataError
from ...nn.resize import make_lr

__all__ = ["SRPatchDataset", "augment_pair"]


def augment_pair(lr: torch.Tensor, hr: torch.Tensor, code: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same one of the 8 symmetries of the square on both (bit 0: h-flip, 1: v-flip, 2: transpose)."""
    return dihedral(lr, code), dihedral(hr, code)


class SRPatchDataset(AlignedPatchDataset):
    """Aligned LR/HR patch pairs from ``folder`` (recursively; hidden files skipped)."""
    def __init__(self, folder: str | Path, *, scale: int, patch_size: int, repeat: int = 1, augment: bool = True,
                 limit: int | None = None, channels: int = 3):
        if scale not in (2, 3, 4):
            raise DataError(f"scale must be 2, 3 or 4, got {scale}")
        if patch_size % scale or patch_size < 2 * scale:
            raise DataError(f"data.patch_size ({patch_size}, HR pixels) must be a multiple of the scale ({scale})")

        def lr_and_hr(hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            hr8, lr8 = make_lr(hr, scale)
            return lr8, hr8

        super().__init__(folder, patch=patch_size // scale, min_size=patch_size, factors=(1, scale),
                         prepare=lr_and_hr, repeat=repeat, augment=augment, limit=limit, channels=channels,
                         fingerprint_key=f"{scale}|{patch_size}|")
        self.scale, self.patch_size, self.lr_patch = scale, patch_size, patch_size // scale
        self.image_size = patch_size

    @property
    def lr(self) -> list[torch.Tensor]:
        return [views[0] for views in self.views]

    @property
    def hr(self) -> list[torch.Tensor]:
        return [views[1] for views in self.views]

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LongTensor (B,) -> (lr float32 (B, C, p, p), hr float32 (B, C, s*p, s*p)), both in [0, 1]."""
        lr, hr = self.crop(indices)
        return lr, hr

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        lr, hr = self.get_batch(torch.tensor([index]))
        return lr[0], hr[0]

    def __repr__(self) -> str:
        return (f"SRPatchDataset({self.name!r}, images={self.num_images}, scale={self.scale}, "
                f"patch={self.patch_size}, repeat={self.repeat})")
