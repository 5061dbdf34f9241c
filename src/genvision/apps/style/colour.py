"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer",
luminance-only transfer): style and content are reduced to their luminance, the style's luminance is
matched to the content's mean and standard deviation, only the luminance is optimised, and the
result takes the content's chroma back.

The colour space is full-range ITU-R BT.601 YCbCr (JPEG's). It is linear, so the result's Cb and Cr
are the content's *exactly* (up to float rounding): :func:`clamp_luma_to_gamut` keeps every pixel
inside the RGB cube by moving only its Y, never by clipping R, G or B (which would shift the hue).
"""

from __future__ import annotations

import torch

from ...errors import InputShapeError

# rows: Y, Cb, Cr from R, G, B in [0, 1] (Cb and Cr then offset by 0.5 so they lie in [0, 1] too)
RGB_TO_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                             [-0.168736, -0.331264, 0.5],
                             [0.5, -0.418688, -0.081312]], dtype=torch.float64)
# the exact inverse, not the rounded 1.402 / 1.772 textbook constants, so the round trip is as tight as floats allow
YCBCR_TO_RGB = torch.linalg.inv(RGB_TO_YCBCR)
CHROMA_OFFSET = 0.5


def _check(image: torch.Tensor, channels: int, what: str) -> None:
    if image.ndim != 4 or image.shape[1] != channels:
        raise InputShapeError(f"{what} expects (B, {channels}, H, W), got shape {tuple(image.shape)}")


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) Y, Cb, Cr (Cb, Cr centred on 0.5)."""
    _check(rgb, 3, "rgb_to_ycbcr")
    matrix = RGB_TO_YCBCR.to(rgb)
    ycbcr = torch.einsum("oc,bchw->bohw", matrix, rgb)  # (B, 3, H, W)
    offset = rgb.new_tensor([0.0, CHROMA_OFFSET, CHROMA_OFFSET]).view(1, 3, 1, 1)  # (3,) -> (1, 3, 1, 1)
    return ycbcr + offset


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) Y, Cb, Cr -> (B, 3, H, W) RGB (not clamped)."""
    _check(ycbcr, 3, "ycbcr_to_rgb")
    offset = ycbcr.new_tensor([0.0, CHROMA_OFFSET, CHROMA_OFFSET]).view(1, 3, 1, 1)  # (3,) -> (1, 3, 1, 1)
    return torch.einsum("oc,bchw->bohw", YCBCR_TO_RGB.to(ycbcr), ycbcr - offset)  # (B, 3, H, W)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) BT.601 Y."""
    return rgb_to_ycbcr(rgb)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """The style's luminance (B, 1, H, W) shifted and scaled to the content's mean and standard deviation,
    so the optimisation transfers texture, not the painting's overall brightness and contrast."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-6)
    return (style_y - s_mean) * (content_y.std() / s_std) + content_y.mean()


def clamp_luma_to_gamut(y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    """Y (B, 1, H, W) clamped per pixel to the range in which Y with this (B, 2, H, W) CbCr gives
    R, G, B in [0, 1]. The range is never empty for a chroma taken from an RGB image (its own Y is in it)."""
    # RGB = Y * (1, 1, 1) + YCBCR_TO_RGB[:, 1:] @ (chroma - 0.5): each channel is Y plus an offset d_k
    offsets = torch.einsum("oc,bchw->bohw", YCBCR_TO_RGB[:, 1:].to(chroma), chroma - CHROMA_OFFSET)  # (B, 3, H, W)
    low = (-offsets).amax(dim=1, keepdim=True)  # (B, 1, H, W): every R, G, B >= 0
    high = (1.0 - offsets).amin(dim=1, keepdim=True)  # (B, 1, H, W): every R, G, B <= 1
    return torch.minimum(torch.maximum(y, low), high)


def combine_luminance(y: torch.Tensor, content_rgb: torch.Tensor) -> torch.Tensor:
    """The optimised luminance (B, 1, H, W) with the content's chroma -> RGB (B, 3, H, W) in [0, 1]."""
    chroma = rgb_to_ycbcr(content_rgb)[:, 1:]  # (B, 2, H, W)
    y = clamp_luma_to_gamut(y, chroma)
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0.0, 1.0)  # the clamp only removes float rounding


__all__ = ["clamp_luma_to_gamut", "combine_luminance", "luminance", "match_luminance", "rgb_to_ycbcr",
           "ycbcr_to_rgb"]
