"""Image transforms shared by the datasets.

Two flavours of the same operations:

* batched tensor ops for :class:`~genvision.data.base.TensorImageDataset` — whole-batch,
  no Python loop per image, randomness only from torch's global RNG (so a trainer that
  saves and restores ``torch.get_rng_state()`` resumes with the exact same augmentations);
* a torchvision ``transforms.v2`` pipeline for :class:`~genvision.data.folder.FolderImageDataset`,
  which decodes one file at a time anyway (v2 transforms also draw from torch's global RNG).

Pixels are stored as uint8 and handed to models as float32 in [-1, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DataError

# ITU-R BT.601 luma weights: the same ones PIL uses for RGB -> "L".
LUMA_601 = (0.299, 0.587, 0.114)


def crop_padding(image_size: int) -> int:
    """Pixels of reflect padding for pad-and-crop augmentation: 2..4 px, about size/8."""
    return max(2, min(4, image_size // 8))


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1]."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def check_channels(channels: int | None, where: str) -> None:
    if channels is not None and channels not in (1, 3):
        raise DataError(f"{where}: channels must be 1 or 3, got {channels!r}")


def check_image_size(image_size: int | None, where: str) -> None:
    if image_size is not None and (not isinstance(image_size, int) or image_size < 4):
        raise DataError(f"{where}: image_size must be an integer >= 4, got {image_size!r}")


def resize_uint8(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 (N, C, H, W) stack to (N, C, size, size).

    Works in chunks so that a 60000-image dataset never needs a full float copy in memory.
    """
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    for start in range(0, n, chunk):
        x = images[start:start + chunk].to(torch.float32)  # (b, C, H, W)
        # antialias only matters when shrinking, but is harmless when enlarging (28 -> 32)
        y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out[start:start + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) with C in {1, 3} -> (N, channels, H, W).

    1 -> 3 is a zero-copy ``expand`` view (a batch taken from it is a normal tensor);
    3 -> 1 is ITU-R 601 luminance, rounded back to uint8.
    """
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1)  # (N, 3, H, W), no copy
    if c == 3 and channels == 1:
        weights = torch.tensor(LUMA_601, dtype=torch.float32).view(1, 3, 1, 1)
        out = torch.empty((images.shape[0], 1, *images.shape[2:]), dtype=torch.uint8)
        for start in range(0, images.shape[0], 4096):
            x = images[start:start + 4096].to(torch.float32)
            out[start:start + 4096] = (x * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
        return out
    raise DataError(f"cannot convert {c}-channel images to {channels} channels")


def random_crop_batch(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad by ``pad`` then crop back to (H, W) at a random offset per sample."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # (B, C, H+2p, W+2p)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2))  # (B, 2): row and column offset per sample
    rows = offsets[:, 0:1] + torch.arange(h)  # (B, H)
    cols = offsets[:, 1:2] + torch.arange(w)  # (B, W)
    # advanced indexing with broadcast index tensors gathers every sample's own window
    return padded[
        torch.arange(b).view(b, 1, 1, 1),
        torch.arange(c).view(1, c, 1, 1),
        rows.view(b, 1, h, 1),
        cols.view(b, 1, 1, w),
    ]  # (B, C, H, W)


def random_hflip_batch(x: torch.Tensor) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = torch.rand(x.shape[0]) < 0.5  # (B,)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def augment_batch(x: torch.Tensor, *, random_crop: bool, hflip: bool) -> torch.Tensor:
    """Train-time augmentation of a float (B, C, H, W) batch; crop draws first, then flip."""
    if random_crop:
        x = random_crop_batch(x, crop_padding(x.shape[-1]))
    if hflip:
        x = random_hflip_batch(x)
    return x


def dihedral(x: torch.Tensor, code: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on the last two dims (bit 0: h-flip, 1: v-flip, 2: transpose)."""
    if code & 1:
        x = x.flip(-1)
    if code & 2:
        x = x.flip(-2)
    if code & 4:
        x = x.transpose(-1, -2)
    return x


def dihedral_inverse(x: torch.Tensor, code: int) -> torch.Tensor:
    """Undo ``dihedral(., code)``: the same steps in reverse order (each is its own inverse)."""
    if code & 4:
        x = x.transpose(-1, -2)
    if code & 2:
        x = x.flip(-2)
    if code & 1:
        x = x.flip(-1)
    return x


def folder_transform(image_size: int, *, random_crop: bool = False, hflip: bool = False,
                     resized_crop: float | None = None):
    """torchvision v2 pipeline: uint8 (C, H, W) tensor -> uint8 (C, S, S).

    Resize the shorter side to ``image_size`` (antialiased) and centre-crop the square, so
    aspect ratios are kept and nothing is stretched; or, with ``resized_crop``, a random crop of
    [resized_crop, 1] of the area at aspect 3/4..4/3 resized to the square (torchvision's
    RandomResizedCrop, the Inception recipe); then the same pad-and-crop / flip augmentation as
    the in-memory datasets.
    """
    from torchvision.transforms import v2  # lazy: torchvision is slow to import

    if resized_crop is not None:
        steps = [v2.RandomResizedCrop(image_size, scale=(resized_crop, 1.0), antialias=True)]
    else:
        steps = [v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size)]
    if random_crop:
        steps.append(v2.RandomCrop(image_size, padding=crop_padding(image_size), padding_mode="reflect"))
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps)
