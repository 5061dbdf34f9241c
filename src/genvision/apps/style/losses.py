"""The three terms of Gatys et al.'s objective as plain functions of feature maps and images, and
:class:`StyleObjective`, which holds one scale's targets and evaluates all three on a pastiche.

Normalisations (chosen so the default weights need no per-layer constants):

* Gram matrix ``G = F F^T / (C H W)``: dividing by ``H W`` makes it a mean over positions, so a style
  image of another size has comparable statistics; dividing by ``C`` as well keeps the five layers'
  losses within an order of magnitude of each other (their widths are 64..512);
* the style and content losses are means of squared differences (over ``C x C`` Gram entries and over
  feature elements), so image size does not change their scale either;
* total variation is the mean absolute difference of horizontal plus vertical neighbours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import InputShapeError

Extractor = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]  # (B, 3, H, W) in [0, 1] -> {layer: (B, C, h, w)}


def gram_matrix(features: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) = F F^T / (C H W); with ``weight`` (B, 1, H, W) >= 0 the positions
    count with that weight and the mean is over ``sum(weight)`` positions (a masked Gram).

    >>> gram_matrix(torch.ones(1, 2, 3, 3))
    tensor([[[0.5000, 0.5000],
             [0.5000, 0.5000]]])
    """
    if features.ndim != 4:
        raise InputShapeError(f"gram_matrix expects features (B, C, H, W), got shape {tuple(features.shape)}")
    b, c, h, w = features.shape
    if weight is None:
        mass = torch.full((b,), float(h * w), dtype=features.dtype, device=features.device)  # (B,)
    else:
        features = features * weight.sqrt()  # F F^T then weighs each position by weight, not weight^2
        mass = weight.sum(dim=(1, 2, 3)).clamp_min(1e-8)  # (B,)
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # (B, HW, C): a view of NHWC memory, no copy
        gram = flat.transpose(1, 2) @ flat  # (B, C, C)
    else:
        flat = features.reshape(b, c, h * w)  # (B, C, HW)
        gram = flat @ flat.transpose(1, 2)  # (B, C, C)
    return gram / (c * mass).view(b, 1, 1)  # (B,) -> (B, 1, 1), one divisor per Gram


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps of the same shape (a scalar)."""
    if features.shape != target.shape:
        raise InputShapeError(f"content features {tuple(features.shape)} and target {tuple(target.shape)} differ")
    return (features - target).square().mean()


def gram_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of Gram matrices (B, C, C) and a target (C, C) or (B, C, C) (a scalar)."""
    return (gram - target).square().mean()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> mean |horizontal neighbour difference| + mean |vertical neighbour difference|."""
    if image.ndim != 4:
        raise InputShapeError(f"total_variation expects (B, C, H, W), got shape {tuple(image.shape)}")
    across = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()  # (B, C, H, W-1) -> scalar
    down = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()  # (B, C, H-1, W) -> scalar
    return across + down


@dataclass(frozen=True)
class LossParts:
    """One evaluation of the objective: each term already multiplied by its weight, and their sum."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    total: torch.Tensor

    def floats(self) -> dict[str, float]:
        return {"content": float(self.content.detach()), "style": float(self.style.detach()), "tv": float(self.tv.detach()),
                "total": float(self.total.detach())}


def layer_mask(mask: torch.Tensor | None, features: torch.Tensor) -> torch.Tensor | None:
    """A (1, 1, H, W) mask averaged down to a feature map's (h, w): the weight of each position."""
    if mask is None:
        return None
    return F.adaptive_avg_pool2d(mask, features.shape[-2:])  # (1, 1, h, w)


class StyleObjective:
    """One scale's objective of the optimised tensor ``param``: ``to_image(param)`` is the image the
    result will be (``param`` itself, or its composite with the content under a mask), on which total
    variation is measured; ``to_rgb(image)`` is what the extractor sees, (1, 3, H, W) (the image, or its
    luminance repeated to 3 channels). ``style_targets``: the styles' weighted mean Gram per layer
    (:func:`mean_grams`); ``style_mask`` (1, 1, H, W) restricts the pastiche's Grams to the masked region."""

    def __init__(self, extractor: Extractor, *, content_targets: Mapping[str, torch.Tensor],
                 style_targets: Mapping[str, torch.Tensor], style_layer_weights: Sequence[float],
                 content_weight: float, style_weight: float, tv_weight: float,
                 to_image: Callable[[torch.Tensor], torch.Tensor], to_rgb: Callable[[torch.Tensor], torch.Tensor],
                 style_mask: torch.Tensor | None = None):
        self.extractor = extractor
        self.content_targets = dict(content_targets)
        self.style_targets = dict(style_targets)
        self.layer_weights = dict(zip(self.style_targets, style_layer_weights))
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.to_image, self.to_rgb = to_image, to_rgb
        self.style_mask = style_mask
        # an unweighted term is not computed at all (its layers may still be extracted for the other)
        self.layers = [*(self.content_targets if content_weight > 0 else {}),
                       *(self.style_targets if style_weight > 0 else {})]

    def __call__(self, param: torch.Tensor) -> LossParts:
        image = self.to_image(param)  # what the result will be at this scale: (1, C, H, W), C = 3 or 1
        features = self.extractor(self.to_rgb(image))
        zero = image.new_zeros(())
        content = zero
        if self.content_weight > 0:
            content = sum((content_loss(features[name], target) for name, target in self.content_targets.items()),
                          zero) * self.content_weight
        style = zero
        if self.style_weight > 0:
            for name, target in self.style_targets.items():
                gram = gram_matrix(features[name], layer_mask(self.style_mask, features[name]))
                style = style + self.layer_weights[name] * gram_loss(gram, target)
            style = style * self.style_weight
        tv = total_variation(image) * self.tv_weight if self.tv_weight > 0 else zero
        return LossParts(content=content, style=style, tv=tv, total=content + style + tv)


def mean_grams(extractor: Extractor, styles: Sequence[torch.Tensor], weights: Sequence[float],
               layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """``{layer: sum_s weights[s] * G_layer(styles[s])}`` (C, C). Matching this one Gram is the same
    optimisation as the weighted sum of each style's Gram loss: for a quadratic loss the two differ by a
    constant that does not depend on the pastiche (and one target costs one loss term per layer, not N)."""
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for image, weight in zip(styles, weights):
            features = extractor(image)
            for name in layers:
                gram = gram_matrix(features[name])[0] * weight  # (C, C)
                targets[name] = targets[name] + gram if name in targets else gram
    return targets


__all__ = ["Extractor", "LossParts", "StyleObjective", "content_loss", "gram_loss", "gram_matrix", "layer_mask",
           "mean_grams", "total_variation"]
