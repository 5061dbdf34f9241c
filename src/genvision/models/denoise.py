"""Denoising networks: DnCNN (blind, or conditioned on the noise level as FFDNet is) and
OpenCV's non-local means as a weightless classical baseline.

Every model of kind ``"denoise"`` keeps :class:`~genvision.models.protocols.Denoiser`:
``forward(noisy, sigma=None)`` maps images in [0, 1] ``(B, C, H, W)`` to an estimate of the clean
image of the same shape (not clamped: clamp when quantising). ``sigma`` is the noise's standard
deviation as a fraction of the [0, 1] range (``25 / 255`` for the literature's "sigma 25"), a
float or a ``(B,)`` tensor; ``conditioned`` models use it, blind ones ignore it.

* :class:`DnCNN` — Zhang, Zuo, Chen, Meng & Zhang, "Beyond a Gaussian Denoiser: Residual Learning
  of Deep CNN for Image Denoising", IEEE TIP 2017: ``depth`` 3x3 convolutions of ``width``
  channels (conv-ReLU, then conv-BN-ReLU, then a conv back to the image channels), no pooling,
  zero padding so the output has the input's size. *Residual learning*: the network predicts the
  noise ``v = R(y)`` and the clean estimate is ``y - R(y)`` (:meth:`DnCNN.noise` gives ``R``).
  Depth 17 / width 64 is DnCNN-S (a known sigma), 20 DnCNN-B (blind, sigma in [0, 55]).
  ``conditioned=True`` adds the FFDNet idea (Zhang, Zuo & Zhang, IEEE TIP 2018) without its
  pixel-unshuffle: a constant map of sigma is concatenated to the input as one more channel, so
  one network handles any noise level it was trained on and the level can be dialled at test
  time (spatially varying maps, ``(B, 1, H, W)``, are accepted too).
* :class:`NLMeans` — ``cv2.fastNlMeansDenoising`` (grey) / ``fastNlMeansDenoisingColored`` (RGB;
  OpenCV filters in CIELAB) on the 8-bit image (7x7 patches, 21x21 search window), with the filter
  strength ``h = h_ratio * sigma`` (8-bit levels; 1.0 for grey, 0.6 for colour: the best of
  0.4-1.2 on Set5 at sigma 15 and 25, measured; at sigma 50 grey 0.8 would gain ~0.7 dB). No
  weights: ``--model nlmeans`` works without any training. When no sigma is given it is
  estimated from the image (:func:`estimate_noise_sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..config import check_range
from ..errors import ConfigError, InputShapeError
from ..nn.checks import check_images
from ..registry import register_model

MAX_DEPTH = 256  # DnCNN has 17-20 layers; a Python loop builds them, so the count is bounded before any build
MAX_WIDTH = 4096
_MAD_TO_SIGMA = 0.6745  # median(|N(0, 1)|)

__all__ = ["DnCNN", "DnCNNConfig", "NLMeans", "NLMeansConfig", "estimate_noise_sigma", "nlmeans_model", "sigma_map"]


def estimate_noise_sigma(images: torch.Tensor) -> torch.Tensor:
    """Robust estimate of additive white Gaussian noise's sigma per image (Donoho & Johnstone 1994):
    ``median(|HH|) / 0.6745`` over the finest diagonal Haar wavelet coefficients of all channels.
    ``(B, C, H, W)`` or ``(C, H, W)`` in [0, 1] -> ``(B,)`` float32, in the same units (fraction
    of the range). Image content raises it a little (edges leak into HH); flat noise is exact."""
    x = images if images.ndim == 4 else images[None]
    h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2
    if h == 0 or w == 0:
        return torch.zeros(x.shape[0])
    x = x[..., :h, :w].float()
    hh = (x[..., 0::2, 0::2] - x[..., 0::2, 1::2] - x[..., 1::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(dim=1).values.cpu() / _MAD_TO_SIGMA


def sigma_map(sigma: float | torch.Tensor, like: torch.Tensor, who: str = "model") -> torch.Tensor:
    """A noise level (a number, a ``(B,)`` tensor or a ``(B, 1, H, W)`` map) as a ``(B, 1, H, W)``
    map matching ``like`` (B, C, H, W)."""
    b, _, h, w = like.shape
    s = torch.as_tensor(sigma, dtype=like.dtype, device=like.device)
    if s.ndim == 0:
        s = s.expand(b)
    if s.ndim == 1 and s.shape[0] == b:
        return s.view(b, 1, 1, 1).expand(b, 1, h, w)
    if s.ndim == 4 and tuple(s.shape) == (b, 1, h, w):
        return s
    raise InputShapeError(f"{who} takes sigma as a number, a ({b},) tensor or a ({b}, 1, {h}, {w}) map; "
                          f"got shape {tuple(s.shape)}")


# --------------------------------------------------------------------------------------
# DnCNN


@dataclass
class DnCNNConfig:
    channels: int = 1  # image channels: 1 (grey) or 3 (RGB)
    depth: int = 17  # convolution layers: 17 (DnCNN-S), 20 (DnCNN-B)
    width: int = 64  # feature channels of the hidden layers
    conditioned: bool = False  # FFDNet-style: a constant noise-level map is an extra input channel
    batch_norm: bool = True  # BN after every hidden convolution (the paper's; speeds up training)

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"dncnn channels must be 1 or 3, got {self.channels}")
        check_range("dncnn depth", self.depth, 2, MAX_DEPTH)  # a first and a last convolution at least
        check_range("dncnn width", self.width, 1, MAX_WIDTH)


@register_model("dncnn", kind="denoise", config_cls=DnCNNConfig, tiny={"depth": 3, "width": 4})
class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017): conv-BN-ReLU stack predicting the noise; output = input - noise."""

    def __init__(self, config: DnCNNConfig):
        super().__init__()
        config.validate()
        self.config = config
        c, f = config.channels, config.width
        layers: list[nn.Module] = [nn.Conv2d(c + int(config.conditioned), f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(config.depth - 2):
            layers.append(nn.Conv2d(f, f, 3, padding=1, bias=not config.batch_norm))
            if config.batch_norm:
                layers.append(nn.BatchNorm2d(f))
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(f, c, 3, padding=1))
        self.body = nn.Sequential(*layers)

    @property
    def conditioned(self) -> bool:
        return self.config.conditioned

    def noise(self, noisy: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        """The predicted noise ``R(y)`` (B, C, H, W): what the objective fits (residual learning)."""
        check_images(noisy, channels=self.config.channels, who="dncnn")
        x = noisy
        if self.config.conditioned:
            if sigma is None:
                raise ConfigError("this dncnn is conditioned on the noise level: give sigma (e.g. --sigma 25)")
            x = torch.cat([noisy, sigma_map(sigma, noisy, "dncnn")], dim=1)
        return self.body(x)

    def forward(self, noisy: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        return noisy - self.noise(noisy, sigma)

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        noisy = torch.rand(batch, self.config.channels, 16, 16)
        return (noisy, torch.full((batch,), 25 / 255)) if self.config.conditioned else (noisy,)


# --------------------------------------------------------------------------------------
# Non-local means (OpenCV)


@dataclass
class NLMeansConfig:
    channels: int = 1  # recorded for symmetry with the learned models; grey and RGB images both work
    h_ratio: float = 1.0  # grey filter strength h = h_ratio * sigma (8-bit levels); larger smooths more
    h_ratio_colour: float = 0.6  # RGB: h = hColor = h_ratio_colour * sigma (OpenCV filters in CIELAB)
    template: int = 7  # side of the compared patches (odd)
    search: int = 21  # side of the search window (odd); cost grows with its square

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"nlmeans channels must be 1 or 3, got {self.channels}")
        check_range("nlmeans h_ratio", self.h_ratio, 0.0, 10.0, low_open=True)
        check_range("nlmeans h_ratio_colour", self.h_ratio_colour, 0.0, 10.0, low_open=True)
        check_range("nlmeans template", self.template, 1, 35)
        check_range("nlmeans search", self.search, 1, 105)
        if self.template % 2 == 0 or self.search % 2 == 0:
            raise ConfigError(f"nlmeans template and search must be odd, got {self.template}, {self.search}")


@register_model("nlmeans", kind="denoise", config_cls=NLMeansConfig, tiny={}, weightless=True)
class NLMeans(nn.Module):
    """Non-local means (Buades et al. 2005) by OpenCV on 8-bit images; no weights."""
    any_channels = True  # grey and RGB alike (the config's channels is not enforced)

    def __init__(self, config: NLMeansConfig):
        super().__init__()
        config.validate()
        self.config = config

    @property
    def conditioned(self) -> bool:
        return True  # the filter strength follows sigma (estimated from each image when not given)

    def forward(self, noisy: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor:
        if noisy.ndim != 4 or noisy.shape[1] not in (1, 3):
            raise InputShapeError(f"nlmeans takes images of shape (B, 1 or 3, H, W); got {tuple(noisy.shape)}")
        b = noisy.shape[0]
        if sigma is None:
            levels = estimate_noise_sigma(noisy.detach())
        else:
            levels = torch.as_tensor(sigma, dtype=torch.float32).detach().cpu().flatten()
            if levels.numel() == 1:
                levels = levels.expand(b)
            elif levels.numel() != b:
                raise InputShapeError(f"nlmeans takes sigma as a number or a ({b},) tensor; got {levels.numel()} "
                                      f"values")
        cfg = self.config
        images = (noisy.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu()
        out = []
        for image, level in zip(images, levels.tolist()):
            arr = np.ascontiguousarray(image.permute(1, 2, 0).numpy())  # (H, W, C) uint8
            if arr.shape[2] == 1:
                h = max(float(level) * 255.0 * cfg.h_ratio, 1e-3)
                den = cv2.fastNlMeansDenoising(arr[..., 0], None, h, cfg.template, cfg.search)[..., None]
            else:
                h = max(float(level) * 255.0 * cfg.h_ratio_colour, 1e-3)
                bgr = np.ascontiguousarray(arr[..., ::-1])
                den = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, cfg.template, cfg.search)[..., ::-1]
            out.append(torch.from_numpy(np.ascontiguousarray(den)).permute(2, 0, 1))
        return torch.stack(out).to(device=noisy.device, dtype=noisy.dtype if noisy.is_floating_point() else
                                   torch.float32) / 255.0

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.rand(batch, self.config.channels, 16, 16),)


def nlmeans_model(channels: int = 1) -> NLMeans:
    """The built-in ``nlmeans`` baseline (what ``--model nlmeans`` resolves to)."""
    model = NLMeans(NLMeansConfig(channels=channels))
    model.model_dir = "nlmeans"
    return model.eval()
