"""Full-reference image metrics: PSNR, SSIM, the super-resolution evaluation protocol.

Conventions: images are float tensors ``(C, H, W)`` or batches ``(B, C, H, W)``; results
are Python floats, averaged per image (the convention of SR papers: mean of per-image dB,
not dB of the pooled MSE).

SSIM is written by hand rather than taken from torchmetrics: torchmetrics (1.x) reflect-pads
the image and averages the SSIM map over the *full* padded image, whereas the reference
definition (Wang et al. 2004, ``ssim_index.m``) and the SR toolkits that report numbers
(BasicSR's ``calculate_ssim``, the MATLAB evaluation scripts) use a ``'valid'`` filter, i.e.
only windows that lie entirely inside the image. The two differ by ~1e-3 on small images,
which is the size of the differences papers report. PSNR comes from torchmetrics.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["rgb_to_y", "psnr", "ssim", "sr_psnr_ssim", "reconstruction_errors"]

# ITU-R BT.601 luma for RGB in [0, 1], giving Y on the [0, 255] scale with range [16, 235]
# (MATLAB rgb2ycbcr, BasicSR's rgb2ycbcr(y_only=True)).
_BT601_Y = (65.481, 128.553, 24.966)
_BT601_Y_OFFSET = 16.0

# SSIM constants of Wang et al. 2004.
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB in [0, 1], on the [0, 255] scale: ``(..., 3, H, W) -> (..., 1, H, W)``.

    ``Y = 16 + 65.481 R + 128.553 G + 24.966 B``: white maps to 235, black to 16 (MATLAB's
    ``rgb2ycbcr``, the conversion behind every "PSNR on Y" number in SR papers).

    >>> rgb_to_y(torch.ones(3, 1, 1)).item()
    235.0
    """
    if img.ndim < 3 or img.shape[-3] != 3:
        raise ValueError(f"rgb_to_y expects (..., 3, H, W), got shape {tuple(img.shape)}")
    if not img.is_floating_point():
        raise ValueError(f"rgb_to_y expects a float image in [0, 1], got dtype {img.dtype}")
    w = torch.tensor(_BT601_Y, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return (img * w).sum(dim=-3, keepdim=True) + _BT601_Y_OFFSET


def _as_batches(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two float64 ``(B, C, H, W)`` tensors of equal shape."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape:
        raise ValueError(f"images must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 3:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if a.ndim != 4:
        raise ValueError(f"expected (C, H, W) or (B, C, H, W) images, got shape {tuple(a.shape)}")
    return a.detach().to(torch.float64), b.detach().to(torch.float64)


def _psnr_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(a, b, data_range=data_range, reduction="none", dim=(1, 2, 3))  # (B,)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``, averaged over the
    images of a batch; ``inf`` for identical images."""
    a, b = _as_batches(a, b)
    return float(_psnr_per_image(a, b, data_range).mean())


def _gaussian_window(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 1-D factor of the 11x11, sigma 1.5 window of Wang et al. (MATLAB
    ``fspecial('gaussian', 11, 1.5)`` is its outer product with itself)."""
    x = torch.arange(_SSIM_WINDOW, dtype=dtype, device=device) - (_SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * _SSIM_SIGMA**2))
    return g / g.sum()  # (11,)


def _ssim_per_image(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM map per image, ``(B,)``; channels are treated separately and averaged.
    Hand-written (see the module docstring): 'valid' filtering as in Wang et al. 2004."""
    _, c, h, w = a.shape
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels, got {h}x{w}")
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    g = _gaussian_window(a.dtype, a.device)
    # The window is separable: a column pass then a row pass is the 2-D 'valid' filter at 22
    # instead of 121 multiply-adds per pixel.
    col, row = g.view(1, 1, -1, 1).expand(5 * c, 1, -1, 1), g.view(1, 1, 1, -1).expand(5 * c, 1, 1, -1)
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)  # (B, 5C, H, W): one filtering call
    blurred = F.conv2d(F.conv2d(stacked, col, groups=5 * c), row, groups=5 * c)  # (B, 5C, H - 10, W - 10)
    mu_a, mu_b, mean_aa, mean_bb, mean_ab = blurred.chunk(5, dim=1)  # five (B, C, H - 10, W - 10)
    var_a = mean_aa - mu_a**2
    var_b = mean_bb - mu_b**2
    cov_ab = mean_ab - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Structural similarity (Wang et al. 2004) with the standard settings: Gaussian window
    11x11, sigma 1.5, K1 = 0.01, K2 = 0.03, only windows fully inside the image. Per-channel
    SSIM averaged over channels, then over the images of a batch. Computed in float64.
    Images must be at least 11x11."""
    a, b = _as_batches(a, b)
    return float(_ssim_per_image(a, b, data_range).mean())


def _quantize_to_levels(x: torch.Tensor, name: str) -> torch.Tensor:
    """Float in [0, 1] (clamped, as when saving a PNG) or uint8 -> float64 levels 0..255."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"{name} must be a (3, H, W) or (1, H, W) image, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.to(torch.float64)
    if not x.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got dtype {x.dtype}")
    return (x.to(torch.float64).clamp(0, 1) * 255).round()


def sr_psnr_ssim(sr: torch.Tensor, hr: torch.Tensor, scale: int, y_only: bool = True) -> tuple[float, float]:
    """PSNR (dB) and SSIM of a super-resolved image against the ground truth, by the protocol
    SR papers report (BasicSR ``calculate_psnr/ssim`` with ``crop_border=scale,
    test_y_channel=True``; the MATLAB scripts of EDSR/RCAN):

    1. quantise to 8-bit levels: ``round(clamp(x, 0, 1) * 255)`` (uint8 input is taken as is);
    2. RGB -> BT.601 luma Y on the [0, 255] scale, kept in float64 (``y_only``; grayscale
       ``(1, H, W)`` input is used as is). MATLAB's ``rgb2ycbcr`` would also round Y to
       integers, which shifts PSNR by about 0.01 dB; we follow BasicSR and keep it float;
    3. shave ``scale`` pixels off every border (upsampling artefacts live there);
    4. PSNR with ``data_range=255``; SSIM (Wang et al. settings) with ``data_range=255``.

    ``sr`` and ``hr`` must have the same shape: crop the ground truth to a multiple of the
    scale (mod-crop) before calling.
    """
    if scale < 0:
        raise ValueError(f"scale must be >= 0, got {scale}")
    a, b = _quantize_to_levels(sr, "sr"), _quantize_to_levels(hr, "hr")
    if a.shape != b.shape:
        raise ValueError(f"sr and hr must have the same shape (mod-crop hr first), got {tuple(a.shape)} and {tuple(b.shape)}")
    if y_only and a.shape[0] == 3:
        a, b = rgb_to_y(a / 255), rgb_to_y(b / 255)  # (1, H, W), in [16, 235]
    if scale:
        if min(a.shape[-2:]) <= 2 * scale:
            raise ValueError(f"image of size {tuple(a.shape[-2:])} is too small to shave {scale} pixels per border")
        a, b = a[..., scale:-scale, scale:-scale], b[..., scale:-scale, scale:-scale]
    mse = float(((a - b) ** 2).mean())
    psnr_db = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
    return psnr_db, ssim(a, b, data_range=255.0)


def reconstruction_errors(
    x: torch.Tensor, y: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)
) -> dict[str, float]:
    """MSE, PSNR and SSIM between a batch and its reconstruction, ``(B, C, H, W)``.

    Both are first mapped from ``value_range`` (``(0, 1)`` or ``(-1, 1)``, the two ranges
    genvision models use) to [0, 1], so numbers are comparable across models: ``mse`` is in
    [0, 1] units, ``psnr`` uses ``data_range=1`` (mean of per-image dB), ``ssim`` is averaged
    over images. Values outside the range are not clipped: the metrics describe the raw
    output. ``ssim`` is NaN for images smaller than the 11x11 SSIM window, where it is
    undefined.
    """
    lo, hi = map(float, value_range)
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
    a, b = _as_batches(x, y)
    a, b = (a - lo) / (hi - lo), (b - lo) / (hi - lo)
    small = min(a.shape[-2:]) < _SSIM_WINDOW
    return {
        "mse": float(((a - b) ** 2).mean()),
        "psnr": float(_psnr_per_image(a, b, 1.0).mean()),
        "ssim": math.nan if small else float(_ssim_per_image(a, b, 1.0).mean()),
    }
