"""Tone ops: per-pixel tone and colour changes that leave the geometry alone, each as an array
function, a tensor function and a parser for ``genvision edit --op NAME=ARGS``, gathered in TONE_OPS.

Semantics follow Pillow (ImageEnhance, ImageOps) and torchvision where they have the op, so results
can be compared with theirs: brightness blends with black, contrast with the mean of the luma,
saturation with the luma image. ``gamma`` is out = in ** GAMMA as in torchvision/kornia/scikit-image,
while the GAMMA of ``levels`` is GIMP's and Photoshop's midtone slider (> 1 brightens). Array and
tensor conventions are in :mod:`.colour`, which holds the colour ops and the shared helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import kornia
import numpy as np
import torch

from ..errors import ConfigError, display_path
from .colour import (
    LUMA_WEIGHTS,
    apply_lut,
    apply_point,
    batched,
    channel_means,
    channels_last,
    clahe,
    clahe_tensor,
    from_float,
    hue,
    hue_tensor,
    levels_of,
    luma_tensor,
    saturation,
    saturation_tensor,
    to_float,
    white_balance,
    white_balance_tensor,
)

_LUMA = np.asarray(LUMA_WEIGHTS)
_CV_DEPTHS = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U, np.dtype(np.float32): cv2.CV_32F}


def _safe_pow(values: torch.Tensor, exponent: float) -> torch.Tensor:
    """values ** exponent on [0, 1] whose gradient at 0 is 0 rather than inf (then NaN downstream)."""
    return torch.where(values > 0, values.clamp_min(1e-12) ** exponent, torch.zeros_like(values))


# --- point ops --------------------------------------------------------------------------------

def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with black (Pillow ImageEnhance.Brightness): 0 = black, 1 = unchanged."""
    return apply_point(image, lambda values: values * np.float32(factor))


@batched
def brightness_tensor(image: torch.Tensor, factor: float) -> torch.Tensor:
    """:func:`brightness` on (B, C, H, W) or (C, H, W) tensors."""
    return (image * factor).clamp(0, 1)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blend with the mean of the luma (Pillow ImageEnhance.Contrast): 0 = flat grey, 1 = unchanged."""
    means = channel_means(image)
    mean = np.float32(means[0] if means.size == 1 else means @ _LUMA)  # the mean of the luma, exactly
    return apply_point(image, lambda values: mean + np.float32(factor) * (values - mean))


@batched
def contrast_tensor(image: torch.Tensor, factor: float) -> torch.Tensor:
    """:func:`contrast` on (B, C, H, W) or (C, H, W) tensors."""
    mean = luma_tensor(image).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (mean + factor * (image - mean)).clamp(0, 1)


def gamma(image: np.ndarray, gamma: float) -> np.ndarray:
    """out = in ** gamma (torchvision adjust_gamma with gain 1): below 1 brightens, above 1 darkens."""
    return apply_point(image, lambda values: np.power(values, np.float32(gamma)))


@batched
def gamma_tensor(image: torch.Tensor, gamma: float) -> torch.Tensor:
    """:func:`gamma` on (B, C, H, W) or (C, H, W) tensors."""
    return _safe_pow(image.clamp(0, 1), gamma)


def levels(image: np.ndarray, black: float, white: float, gamma: float = 1.0) -> np.ndarray:
    """Map [black, white] to [0, 1], clip, then the midtone gamma: out ** (1 / gamma), > 1 brightens."""
    _check_levels(black, white, gamma)
    span, exponent = np.float32(white - black), np.float32(1 / gamma)
    return apply_point(image, lambda values: np.clip((values - np.float32(black)) / span, 0, 1) ** exponent)


@batched
def levels_tensor(image: torch.Tensor, black: float, white: float, gamma: float = 1.0) -> torch.Tensor:
    """:func:`levels` on (B, C, H, W) or (C, H, W) tensors."""
    _check_levels(black, white, gamma)
    return _safe_pow(((image - black) / (white - black)).clamp(0, 1), 1 / gamma)


def _check_levels(black: float, white: float, gamma: float) -> None:
    if not (0 <= black < white <= 1 and gamma > 0):
        raise ConfigError(f"levels needs 0 <= black < white <= 1 and gamma > 0; got {black}, {white}, {gamma}")


# --- histogram ops ----------------------------------------------------------------------------

def autocontrast(image: np.ndarray, cutoff: float = 0.0, preserve_tone: bool = False) -> np.ndarray:
    """Stretch each channel so that its darkest and brightest samples, after ignoring ``cutoff`` per cent
    at each end, become 0 and 1 (Pillow ImageOps.autocontrast). ``preserve_tone`` stretches all channels
    alike, from the lowest to the highest of those channel limits (Photoshop's Auto Contrast), which
    keeps colours; Pillow's preserve_tone takes the luma's range instead, which clips vivid colours."""
    hwc = channels_last(image)
    samples = hwc.reshape(-1, hwc.shape[2])  # (H, W, C) -> (H*W, C)
    count = samples.shape[0]
    cut = min(int(count * cutoff // 100), (count - 1) // 2)  # Pillow's count of samples dropped at each end
    ranks = np.partition(samples, [cut, count - 1 - cut], axis=0)
    scale = np.float32(max(levels_of(hwc.dtype) - 1, 1))  # integer levels -> [0, 1]
    low, high = ranks[cut].astype(np.float32) / scale, ranks[count - 1 - cut].astype(np.float32) / scale
    if preserve_tone:
        low, high = low.min(keepdims=True), high.max(keepdims=True)
    stretch = high > low
    offset = np.where(stretch, low, 0).astype(np.float32)
    gain = np.where(stretch, 1 / np.where(stretch, high - low, 1), 1).astype(np.float32)
    return apply_point(image, lambda values: (values - offset) * gain)


@batched
def autocontrast_tensor(image: torch.Tensor, cutoff: float = 0.0, preserve_tone: bool = False) -> torch.Tensor:
    """:func:`autocontrast` on (B, C, H, W) or (C, H, W) tensors."""
    flat = image.flatten(2)  # (B, C, H, W) -> (B, C, H*W)
    count = flat.shape[2]
    cut = min(int(count * cutoff // 100), (count - 1) // 2)
    if cut == 0:
        low, high = flat.amin(dim=2), flat.amax(dim=2)
    else:
        low, high = flat.kthvalue(cut + 1, dim=2).values, flat.kthvalue(count - cut, dim=2).values
    if preserve_tone:
        low, high = low.amin(dim=1, keepdim=True), high.amax(dim=1, keepdim=True)
    low, high = low[..., None, None], high[..., None, None]  # (B, C) -> (B, C, 1, 1)
    stretch = high > low
    gain = torch.where(stretch, 1 / (high - low).clamp_min(1e-12), torch.ones_like(high))
    return ((image - torch.where(stretch, low, torch.zeros_like(low))) * gain).clamp(0, 1)


def equalize(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of each channel with Pillow's ImageOps.equalize table (as torchvision
    and kornia). uint16 images count 65536 bins but keep Pillow's step in 8-bit units, so that a
    16-bit image equalises like its 8-bit version; float images are equalised as 16-bit levels."""
    if levels_of(image.dtype) == 0:
        levels16 = np.rint(to_float(image) * 65535).astype(np.uint16)
        return from_float(to_float(equalize(levels16)), image)
    hwc = channels_last(image)
    levels = levels_of(image.dtype)
    lut = np.empty((levels, hwc.shape[2]), np.float32)
    for channel in range(hwc.shape[2]):
        counts = np.bincount(hwc[:, :, channel].ravel(), minlength=levels)
        lut[:, channel] = _equalize_table(counts) / np.float32(levels - 1)
    return apply_lut(image, lut)


def _equalize_table(counts: np.ndarray) -> np.ndarray:
    """Pillow's equalize table for one channel's histogram ``counts`` (L,), in levels: level v goes to
    (step // 2 + samples below v) // step, step = (samples not in the top used bin) // 255."""
    levels = counts.size
    used = counts[counts > 0]
    step = int(counts.sum() - used[-1]) // 255 if used.size > 1 else 0
    if step == 0:
        return np.arange(levels, dtype=np.float64)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.float64)
    in_8bit_units = (step // 2 + below) / step  # Pillow floors this; 16-bit keeps 257 steps per 8-bit one
    return np.minimum(np.floor(in_8bit_units * ((levels - 1) / 255)), levels - 1)


@batched
def equalize_tensor(image: torch.Tensor) -> torch.Tensor:
    """:func:`equalize` on (B, C, H, W) or (C, H, W) tensors."""
    return kornia.enhance.equalize(image.clamp(0, 1))


# --- filters ----------------------------------------------------------------------------------

def _kernel_size(sigma: float, height: int, width: int) -> int:
    """Odd kernel reaching 3 sigma, as torchvision suggests; OpenCV's automatic size depends on the dtype
    (3 sigma for uint8, 4 otherwise), so it is set explicitly. Capped so reflect padding stays valid."""
    return 2 * max(min(math.ceil(3 * sigma), height - 1, width - 1), 0) + 1


def _gaussian(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float (H, W, C) image with reflect-101 borders (kornia's 'reflect')."""
    size = _kernel_size(sigma, values.shape[0], values.shape[1])
    if size == 1:
        return values.copy()
    blurred = cv2.GaussianBlur(values, (size, size), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    return blurred.reshape(values.shape)


def _gaussian_tensor(image: torch.Tensor, sigma: float) -> torch.Tensor:
    size = _kernel_size(sigma, image.shape[2], image.shape[3])
    if size == 1:
        return image
    return kornia.filters.gaussian_blur2d(image, (size, size), (sigma, sigma), border_type="reflect")


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (Pillow's GaussianBlur radius)."""
    return from_float(_gaussian(to_float(image), sigma), image)


@batched
def blur_tensor(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`blur` on (B, C, H, W) or (C, H, W) tensors."""
    return _gaussian_tensor(image, sigma)


def sharpen(image: np.ndarray, amount: float = 1.0, radius: float = 1.0, threshold: float = 0.0) -> np.ndarray:
    """Unsharp mask (Pillow's UnsharpMask with percent = 100 * amount and threshold = 255 * threshold):
    add ``amount`` times the detail lost by a Gaussian blur of sigma ``radius``, where that detail is at
    least ``threshold`` (in [0, 1] units, so that noise below it is left alone)."""
    hwc = channels_last(image)
    if threshold == 0 and hwc.dtype in _CV_DEPTHS:
        # v + a (v - blur v) = (1 + a) v - a blur v is linear, so it runs in the image's own units and
        # cv2.addWeighted rounds and saturates in the same pass (no float round trip through numpy)
        values = hwc.astype(np.float32)
        out = cv2.addWeighted(values, 1.0 + amount, _gaussian(values, radius), -amount, 0.0,
                              dtype=_CV_DEPTHS[hwc.dtype])
        return (np.clip(out, 0.0, 1.0, out=out) if out.dtype.kind == "f" else out).reshape(image.shape)
    values = to_float(image)
    detail = values - _gaussian(values, radius)
    if threshold > 0:
        detail[np.abs(detail) < threshold] = 0
    return from_float(values + np.float32(amount) * detail, image)


@batched
def sharpen_tensor(image: torch.Tensor, amount: float = 1.0, radius: float = 1.0,
                   threshold: float = 0.0) -> torch.Tensor:
    """:func:`sharpen` on (B, C, H, W) or (C, H, W) tensors."""
    # kornia.filters.unsharp_mask has a fixed amount of 1 and no threshold
    detail = image - _gaussian_tensor(image, radius)
    if threshold > 0:
        detail = detail * (detail.abs() >= threshold)
    return (image + amount * detail).clamp(0, 1)


# --- auto -------------------------------------------------------------------------------------

# A one-shot enhance for a dull photo. The stretch keeps the tone (one range for all channels), so
# colours are left to the white balance, which runs at half strength: a sunset should stay warm.
AUTO_STEPS = (("autocontrast", {"cutoff": 0.5, "preserve_tone": True}),
              ("white_balance", {"strength": 0.5}),
              ("sharpen", {"amount": 0.5, "radius": 1.0, "threshold": 0.01}))


def auto(image: np.ndarray) -> np.ndarray:
    """Autocontrast (0.5 % cutoff, tone kept), half-strength grey-world white balance, mild unsharp mask;
    computed in float and rounded once."""
    values = to_float(image)
    for name, params in AUTO_STEPS:
        values = TONE_OPS[name].array(values, **params)
    return from_float(values, image)


@batched
def auto_tensor(image: torch.Tensor) -> torch.Tensor:
    """:func:`auto` on (B, C, H, W) or (C, H, W) tensors."""
    for name, params in AUTO_STEPS:
        image = TONE_OPS[name].tensor(image, **params)
    return image


# --- parsing and the registry -----------------------------------------------------------------

def _arguments(name: str, form: str, example: str, params: tuple, required: int = 0,
               valid: Callable[..., bool] = lambda **_: True) -> Callable[[str], dict]:
    """A parser of "A:B:C" for ``name``: ``params`` is ((param, is_integer, in_range), ...), the first
    ``required`` of them must be given; ``valid`` checks them together. Errors are one line."""
    def parse(text: str) -> dict:
        failure = ConfigError(f"{name}={display_path(text)}: expected {form}, e.g. {example}")
        parts = text.split(":") if text.strip() else []
        if not required <= len(parts) <= len(params):
            raise failure
        values = {}
        for part, (param, is_integer, in_range) in zip(parts, params):
            try:
                number = float(part)
            except ValueError:
                raise failure from None
            if not math.isfinite(number) or not in_range(number) or (is_integer and not number.is_integer()):
                raise failure
            values[param] = int(number) if is_integer else number
        if not valid(**values):
            raise failure
        return values
    return parse


_AUTOCONTRAST_FORM = "CUTOFF[:tone] with 0 <= CUTOFF < 50 (per cent at each end), e.g. autocontrast=0.5:tone"
_parse_cutoff = _arguments("autocontrast", _AUTOCONTRAST_FORM, "", (("cutoff", False, lambda v: 0 <= v < 50),))


def _parse_autocontrast(text: str) -> dict:
    """"CUTOFF", "CUTOFF:tone" (all channels stretched alike) or ""."""
    cutoff, colon, flag = text.partition(":")
    try:
        if colon and flag != "tone":
            raise ValueError(flag)
        values = _parse_cutoff(cutoff)
    except (ConfigError, ValueError):
        raise ConfigError(f"autocontrast={display_path(text)}: expected {_AUTOCONTRAST_FORM}") from None
    return values | ({"preserve_tone": True} if colon else {})


def _factor(name: str, example: str, what: str) -> Callable[[str], dict]:
    return _arguments(name, f"a number >= 0 ({what})", f"{name}={example}",
                      (("factor", False, lambda v: v >= 0),), required=1)


@dataclass(frozen=True)
class ToneOp:
    name: str
    array: Callable[..., np.ndarray]      # (image, **params) -> same shape and dtype
    tensor: Callable[..., torch.Tensor]   # (image, **params) -> same shape
    parse: Callable[[str], dict]          # the text after "NAME=" -> params; "" for defaults
    doc: str                              # one line for --list-ops


def _positive(limit: float) -> Callable[[float], bool]:
    return lambda v: 0 < v <= limit


TONE_OPS: dict[str, ToneOp] = {op.name: op for op in (
    ToneOp("brightness", brightness, brightness_tensor, _factor("brightness", "1.2", "0 = black, 1 = unchanged"),
           "brightness=FACTOR  scale towards black (Pillow ImageEnhance.Brightness); 1 = unchanged"),
    ToneOp("contrast", contrast, contrast_tensor, _factor("contrast", "1.2", "0 = flat grey, 1 = unchanged"),
           "contrast=FACTOR  blend with the mean grey (Pillow ImageEnhance.Contrast); 1 = unchanged"),
    ToneOp("saturation", saturation, saturation_tensor, _factor("saturation", "1.3", "0 = grey, 1 = unchanged"),
           "saturation=FACTOR  blend with the luma image (Pillow ImageEnhance.Color); 0 = grey, 1 = unchanged"),
    ToneOp("hue", hue, hue_tensor,
           _arguments("hue", "DEGREES in [-180, 180]", "hue=-15", (("degrees", False, lambda v: -180 <= v <= 180),),
                      required=1),
           "hue=DEGREES  rotate the hue in HSV (torchvision adjust_hue), -180..180"),
    ToneOp("gamma", gamma, gamma_tensor,
           _arguments("gamma", "GAMMA in (0, 10]", "gamma=0.8", (("gamma", False, _positive(10)),), required=1),
           "gamma=GAMMA  out = in ** GAMMA (torchvision adjust_gamma); below 1 brightens"),
    ToneOp("levels", levels, levels_tensor,
           _arguments("levels", "BLACK:WHITE[:GAMMA] with 0 <= BLACK < WHITE <= 1 and GAMMA in (0, 10]",
                      "levels=0.05:0.95:1.1", (("black", False, lambda v: 0 <= v <= 1),
                                               ("white", False, lambda v: 0 <= v <= 1),
                                               ("gamma", False, _positive(10))),
                      required=2, valid=lambda black, white, **_: black < white),
           "levels=BLACK:WHITE[:GAMMA]  map BLACK..WHITE (0..1) to the full range; GAMMA > 1 brightens midtones"),
    ToneOp("autocontrast", autocontrast, autocontrast_tensor, _parse_autocontrast,
           "autocontrast[=CUTOFF[:tone]]  stretch each channel to the full range, ignoring CUTOFF % at each end "
           "(Pillow ImageOps.autocontrast; :tone stretches all channels alike, keeping colours)"),
    ToneOp("equalize", equalize, equalize_tensor, _arguments("equalize", "no value", "equalize", ()),
           "equalize  histogram equalisation of each channel (Pillow ImageOps.equalize)"),
    ToneOp("clahe", clahe, clahe_tensor,
           _arguments("clahe", "CLIP[:GRID] with 0 <= CLIP <= 1000 and GRID an integer in 1..64", "clahe=2.0:8",
                      (("clip", False, lambda v: 0 <= v <= 1000), ("grid", True, lambda v: 1 <= v <= 64))),
           "clahe[=CLIP[:GRID]]  contrast-limited adaptive equalisation of the lightness (OpenCV CLAHE; 2.0:8)"),
    ToneOp("white_balance", white_balance, white_balance_tensor,
           _arguments("white_balance", "STRENGTH in [0, 1]", "white_balance=0.5",
                      (("strength", False, lambda v: 0 <= v <= 1),)),
           "white_balance[=STRENGTH]  grey-world white balance; STRENGTH 0..1 (default 1)"),
    ToneOp("sharpen", sharpen, sharpen_tensor,
           _arguments("sharpen", "AMOUNT[:RADIUS[:THRESHOLD]] with AMOUNT in [0, 20], RADIUS in (0, 100] "
                      "and THRESHOLD in [0, 1]", "sharpen=1.0:1.5",
                      (("amount", False, lambda v: 0 <= v <= 20), ("radius", False, _positive(100)),
                       ("threshold", False, lambda v: 0 <= v <= 1))),
           "sharpen[=AMOUNT[:RADIUS[:THRESHOLD]]]  unsharp mask (Pillow UnsharpMask; default 1.0:1.0:0)"),
    ToneOp("blur", blur, blur_tensor,
           _arguments("blur", "SIGMA in (0, 100] pixels", "blur=2", (("sigma", False, _positive(100)),), required=1),
           "blur=SIGMA  Gaussian blur, SIGMA in pixels"),
    ToneOp("auto", auto, auto_tensor, _arguments("auto", "no value", "auto", ()),
           "auto  one-shot enhance: autocontrast (0.5 %, tone kept) + half white balance + mild sharpen"),
)}

__all__ = ["TONE_OPS", "ToneOp", "auto", "autocontrast", "blur", "brightness", "clahe", "contrast", "equalize",
           "gamma", "hue", "levels", "saturation", "sharpen", "white_balance"] + [
    f"{name}_tensor" for name in ("auto", "autocontrast", "blur", "brightness", "clahe", "contrast", "equalize",
                                  "gamma", "hue", "levels", "saturation", "sharpen", "white_balance")]
