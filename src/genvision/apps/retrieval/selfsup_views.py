"""The two augmented *views* of each image that SimCLR (Chen et al. 2020) contrasts, made with genvision.ops.

In order, each with its own probability, per image (SimCLR's pipeline, sizes scaled to small images, plus
the degradations a copy of a photo meets on the web, so retrieval learns to ignore them too):

1. random resized crop: a box of ``crop_scale`` of the area and ``crop_ratio`` aspect, resized back to the
   input's side (antialiased when it shrinks), mirrored left-right with probability 1/2 when ``flip``;
2. colour jitter (probability ``jitter_p``): brightness, contrast and saturation factors in
   ``[1 - jitter, 1 + jitter]`` and a hue shift of up to ``hue`` of the colour wheel;
3. greyscale (``grey_p``), kept as 3 equal channels;
4. Gaussian blur (``blur_p``) of sigma in ``blur_sigma`` pixels;
5. down-and-up resize (``resize_p``) by a factor in ``resize_scale``: lost resolution;
6. JPEG-like compression (``jpeg_p``) at a quality in ``jpeg_quality``: 8x8 block DCT quantised with the
   IJG tables scaled as libjpeg scales them, chroma averaged over 2x2 (4:2:0).

Images are float (B, C, H, W) in [0, 1], on any device. Every random number is drawn on the CPU from
``generator`` (None: torch's global RNG, which the trainer checkpoints, so a resumed run makes the same views).
Each step is one batched pass with a parameter per image (the ops' tensor functions take one value per
call; a loop over 2 x 64 images per step cost seconds on a CPU): the crops are :mod:`genvision.ops.warps`
matrices sampled together by ``grid_sample`` in the ops' pixel-centre convention, the blur one batched
matrix product, the hue one kornia call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import numpy as np
import torch
import torch.nn.functional as F

from ...config import check_range
from ...errors import ConfigError
from ...ops import warps
from ...ops.colour import luma_tensor, saturation_tensor
from ...ops.tone import brightness_tensor, contrast_tensor

__all__ = ["ViewConfig", "jpeg_like", "make_views", "random_view"]

# The IJG (libjpeg) base quantisation tables, Annex K of the JPEG standard.
JPEG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
JPEG_CHROMA = (17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
               47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))
BLOCK = 8


@dataclass
class ViewConfig:
    crop_scale: tuple[float, float] = (0.2, 1.0)  # area fraction of the crop (SimCLR: 0.08..1 at 224 px)
    crop_ratio: tuple[float, float] = (0.75, 1.333)  # aspect ratio (width / height) of the crop
    flip: bool = True  # mirror left-right half the time (false for digits and text)
    jitter: float = 0.4  # brightness / contrast / saturation factors in [1 - jitter, 1 + jitter] (SimCLR: 0.8 s)
    hue: float = 0.1  # hue shift up to this fraction of the colour wheel (0.1 = 36 degrees)
    jitter_p: float = 0.8  # probability of the colour jitter
    grey_p: float = 0.2  # probability of greyscale
    blur_p: float = 0.5  # probability of a Gaussian blur
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # blur sigma in pixels
    resize_p: float = 0.2  # probability of a down-and-up resize
    resize_scale: tuple[float, float] = (0.4, 0.8)  # the down-sizing factor
    jpeg_p: float = 0.3  # probability of JPEG-like compression
    jpeg_quality: tuple[int, int] = (30, 90)  # JPEG quality (1..100)

    def validate(self) -> None:
        def interval(name: str, low: float, high: float) -> None:
            pair = getattr(self, name)
            if len(pair) != 2 or not all(low <= v <= high for v in pair) or pair[0] > pair[1]:
                raise ConfigError(f"views.{name} must be two increasing numbers in [{low:g}, {high:g}], "
                                  f"got {list(pair)}")

        interval("crop_scale", 0.01, 1.0)
        interval("crop_ratio", 0.1, 10.0)
        check_range("views.jitter", self.jitter, 0.0, 1.0)
        check_range("views.hue", self.hue, 0.0, 0.5)
        for name in ("jitter_p", "grey_p", "blur_p", "resize_p", "jpeg_p"):
            check_range(f"views.{name}", getattr(self, name), 0.0, 1.0)
        interval("blur_sigma", 0.01, 50.0)
        interval("resize_scale", 0.05, 1.0)
        interval("jpeg_quality", 1, 100)


def _uniform(n: int, bounds: tuple[float, float], generator: torch.Generator | None) -> torch.Tensor:
    low, high = bounds
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)  # (n,)


def _chance(n: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator) < p  # (n,) bool


def _crop_warps(n: int, side: int, config: ViewConfig, generator: torch.Generator | None) -> list[warps.Warp]:
    """One whole-pixel crop box per image, resized back to ``side`` (and maybe mirrored): torchvision's
    RandomResizedCrop sampling, without its retry loop (the box is clamped to the image instead)."""
    area = _uniform(n, config.crop_scale, generator) * side * side
    log_ratio = _uniform(n, (math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1])), generator)
    ratio = log_ratio.exp()
    width = (area * ratio).sqrt().round().clamp(1, side).long()
    height = (area / ratio).sqrt().round().clamp(1, side).long()
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64)  # (n, 2): where the box sits
    flips = _chance(n, 0.5 if config.flip else 0.0, generator)
    boxes = []
    for i in range(n):
        w, h = int(width[i]), int(height[i])
        x, y = int(corner[i, 0] * (side - w + 1)), int(corner[i, 1] * (side - h + 1))
        warp = warps.crop((side, side), x, y, w, h).then(warps.resize((h, w), side, side))
        boxes.append(warp.then(warps.flip((side, side), "h")) if flips[i] else warp)
    return boxes


def _apply_warps(images: torch.Tensor, boxes: list[warps.Warp]) -> torch.Tensor:
    """(B, C, S, S) -> each image resampled by its warp (bilinear). The boxes lie inside the image and
    only enlarge, so no antialiasing is due and ``grid_sample`` computes what ``warp_tensor`` would."""
    side = images.shape[-1]
    # output pixel centre x sits at u = (2x + 1) / S - 1 (align_corners=False): conjugate the pixel maps
    to_pixels = np.array([[side / 2, 0, (side - 1) / 2], [0, side / 2, (side - 1) / 2], [0, 0, 1]])
    to_units = np.linalg.inv(to_pixels)
    theta = np.stack([(to_units @ box.matrix @ to_pixels)[:2] for box in boxes])  # (B, 2, 3)
    theta = torch.as_tensor(theta, dtype=images.dtype, device=images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # (B, S, S, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _colour_jitter(x: torch.Tensor, config: ViewConfig, generator: torch.Generator | None) -> torch.Tensor:
    n = x.shape[0]
    chosen = _chance(n, config.jitter_p, generator)
    span = (1 - config.jitter, 1 + config.jitter)
    # factors of 1 (and a zero hue shift) leave an image as it was: one vectorised pass for the batch
    factors = [torch.where(chosen, _uniform(n, span, generator), 1.0).float().to(x.device).view(n, 1, 1, 1)
               for _ in range(3)]  # brightness, contrast, saturation: (n, 1, 1, 1) each
    turns = torch.where(chosen, _uniform(n, (-config.hue, config.hue), generator), 0.0)  # (n,) of the wheel
    x = saturation_tensor(contrast_tensor(brightness_tensor(x, factors[0]), factors[1]), factors[2])
    if x.shape[1] == 3 and config.hue > 0 and bool(chosen.any()):
        index = chosen.nonzero()[:, 0].to(x.device)
        radians = (turns[chosen] * 2 * math.pi).to(x)  # kornia's hue factor, in radians
        x = x.index_copy(0, index, kornia.enhance.adjust_hue(x[index], radians).clamp(0, 1))
    return x


def _blur(x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of each image (B, C, H, W) by its own sigma (B,) in pixels, reflect borders (as the ops'
    ``blur_tensor``): ``G_h X G_w^T`` with each image's 1-D blur as a matrix (a grouped convolution with a kernel
    per image is many times slower on a CPU)."""
    n, _, h, w = x.shape
    radius = max(1, min(math.ceil(3 * float(sigmas.max())), h - 1, w - 1))  # reflection needs radius < side
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets[None] / sigmas[:, None]) ** 2)  # (B, 2r + 1)
    kernel = kernel / kernel.sum(1, keepdim=True)

    def blur_matrix(length: int) -> torch.Tensor:  # (B, length, length): row i mixes the pixels around i
        taps = torch.arange(length)[:, None] + offsets.long()[None]  # (length, 2r + 1), reflected into range
        taps = torch.where(taps < 0, -taps, torch.where(taps >= length, 2 * (length - 1) - taps, taps))
        matrix = torch.zeros(n, length, length, dtype=torch.float64)
        matrix.scatter_add_(2, taps[None].expand(n, -1, -1), kernel[:, None, :].expand(-1, length, -1))
        return matrix.to(x)

    rows, columns = blur_matrix(h), blur_matrix(w)
    return rows[:, None] @ x @ columns[:, None].transpose(-1, -2)  # (B, C, H, W)


def _down_up(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Each image (B, C, S, S) shrunk by its factor (antialiased) and enlarged back; one pass per size."""
    side = x.shape[-1]
    smalls = [max(1, round(side * float(f))) for f in factors]
    out = x.clone()
    for small in sorted(set(smalls)):
        index = torch.tensor([i for i, s in enumerate(smalls) if s == small], device=x.device)
        down = F.interpolate(x[index], size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        out[index] = F.interpolate(down, size=(side, side), mode="bilinear", align_corners=False)
    return out


def _dct_basis() -> torch.Tensor:
    """(64, 64): the 2-D orthonormal 8x8 DCT-II as one matrix on row-major flattened blocks."""
    n = torch.arange(BLOCK, dtype=torch.float64)
    dct = torch.cos(math.pi * (2 * n[None] + 1) * n[:, None] / (2 * BLOCK))  # (8, 8): row k = frequency k
    dct = dct * torch.where(n == 0, math.sqrt(1 / BLOCK), math.sqrt(2 / BLOCK))[:, None]
    return torch.kron(dct, dct).float()  # vec(D X D^T) = (D kron D) vec(X)


DCT_2D = _dct_basis()


def jpeg_like(images: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's loss without its entropy coding: (B, C, H, W) in [0, 1] and qualities (B,) in 1..100 ->
    the images after YCbCr (BT.601), 4:2:0 chroma, 8x8 DCT quantisation with the IJG tables at that quality."""
    _, c, h, w = images.shape
    pad_h, pad_w = -h % (2 * BLOCK), -w % (2 * BLOCK)
    x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") * 255  # (B, C, H', W')
    if c == 3:
        r, g, bl = x.unbind(1)
        luma = 0.299 * r + 0.587 * g + 0.114 * bl
        cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * bl
        cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * bl
        chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)  # (B, 2, H'/2, W'/2): 4:2:0 subsampling
        chroma = F.interpolate(_quantise(chroma, quality, JPEG_CHROMA), scale_factor=2, mode="bilinear")
        luma = _quantise(luma[:, None], quality, JPEG_LUMA)[:, 0]
        cb, cr = chroma.unbind(1)
        x = torch.stack([luma + 1.402 * (cr - 128), luma - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                         luma + 1.772 * (cb - 128)], 1)  # (B, 3, H', W')
    else:
        x = _quantise(x, quality, JPEG_LUMA)
    return (x[..., :h, :w] / 255).clamp(0, 1)


def _quantise(planes: torch.Tensor, quality: torch.Tensor, base: tuple[int, ...]) -> torch.Tensor:
    """(B, P, H, W) in [0, 255] with H, W multiples of 8 -> DCT-quantised and back, per image's quality."""
    b, p, h, w = planes.shape
    q = quality.to(device=planes.device, dtype=planes.dtype).clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q).view(b, 1, 1)  # libjpeg's quality scaling
    table = torch.tensor(base, dtype=planes.dtype, device=planes.device)  # (64,), row-major 8x8
    table = ((table * scale + 50) / 100).floor().clamp(1, 255)  # (B, 1, 64)
    basis = DCT_2D.to(planes)
    blocks = (planes - 128).view(b, p, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(3, 4)  # (B, P, h8, w8, 8, 8)
    blocks = blocks.reshape(b, -1, BLOCK * BLOCK)  # (B, P * h8 * w8, 64)
    coefficients = blocks @ basis.T  # (B, blocks, 64)
    restored = ((coefficients / table).round() * table) @ basis  # (B, blocks, 64)
    restored = restored.view(b, p, h // BLOCK, w // BLOCK, BLOCK, BLOCK).transpose(3, 4)  # (B, P, h8, 8, w8, 8)
    return restored.reshape(b, p, h, w) + 128  # (B, P, H, W)


def random_view(images: torch.Tensor, config: ViewConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random view of each image: (B, C, S, S) in [0, 1] -> (B, C, S, S) in [0, 1]."""
    n, _, side, other = images.shape
    if side != other:
        raise ConfigError(f"views are made from square images, got {side}x{other}")
    x = _apply_warps(images, _crop_warps(n, side, config, generator))  # (B, C, S, S)
    x = _colour_jitter(x, config, generator)
    grey = _chance(n, config.grey_p, generator).to(x.device).view(n, 1, 1, 1)
    x = torch.where(grey, luma_tensor(x).expand_as(x), x)
    sigmas = _uniform(n, config.blur_sigma, generator)
    blurred = _chance(n, config.blur_p, generator)
    if bool(blurred.any()):
        index = blurred.nonzero()[:, 0].to(x.device)
        x = x.index_copy(0, index, _blur(x[index], sigmas[blurred]))
    factors = _uniform(n, config.resize_scale, generator)
    shrunk = _chance(n, config.resize_p, generator)
    if bool(shrunk.any()):
        index = shrunk.nonzero()[:, 0].to(x.device)
        x = x.index_copy(0, index, _down_up(x[index], factors[shrunk]))
    qualities = _uniform(n, config.jpeg_quality, generator).round()
    compressed = _chance(n, config.jpeg_p, generator)
    if bool(compressed.any()):
        index = compressed.nonzero()[:, 0].to(x.device)
        x = x.index_copy(0, index, jpeg_like(x[index], qualities[compressed]))
    return x.clamp(0, 1)


def make_views(images: torch.Tensor, config: ViewConfig, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent random views of every image: two (B, C, S, S) batches in [0, 1]."""
    return random_view(images, config, generator), random_view(images, config, generator)
