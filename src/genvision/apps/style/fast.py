"""Running a trained style network: a Johnson net (its one style, or the styles it holds, chosen by name
and mixed by weights) or AdaIN (any style images, mixed by weights, with the content-style trade-off
``alpha``), on a content image of any size::

    from genvision.apps.style.fast import load_style_model, stylize_with
    model = load_style_model("runs/adain-sr-train")
    image = stylize_with(model, "photo.jpg", ["candy.jpg", "udnie.jpg"], weights=[0.5, 0.5], alpha=0.8)
    paintings = load_style_model("zoo:johnson-paintings")  # one network, seven paintings
    image = stylize_with(paintings, "photo.jpg", ["candy", "udnie"], weights=[0.5, 0.5])

The whole image goes through the network at once: instance norm and AdaIN use statistics of the whole
feature map, so tiles would each get their own statistics and show seams. Colour preservation and masks
are applied to the result as the optimisation method defines them (content chroma; feathered composite).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ... import checkpoints as ckpt
from ...errors import ConfigError
from ...models.style import MAX_STYLES
from ...runtime import select_device
from .backbones import attach_encoder
from .colour import combine_luminance, luminance
from .masks import auto_radius, composite, feather
from .optimize import area_size, fit_size, resize
from .pipeline import ImageLike, as_image, as_mask
from .settings import parse_style_weights

METHOD_OF_ARCH = {"johnson": "fast", "adain": "adain"}
MIN_STYLE_SIDE = 16


def model_method(spec: str) -> str:
    """``fast`` or ``adain`` for a model directory, read from its card without loading weights."""
    card = ckpt.read_model_card(spec)  # a missing or foreign directory is the checkpoint layer's one-line error
    if card.get("kind") != "style" or card.get("model") not in METHOD_OF_ARCH:
        raise ConfigError(f"--model {spec} holds a {card.get('kind')} model ({card.get('model')}); stylize needs a "
                          f"style model (genvision train style or genvision train adain)")
    return METHOD_OF_ARCH[card["model"]]


def model_style_names(spec: str) -> tuple[str, ...]:
    """The style names a multi-style fast model holds (empty for one style or AdaIN), read from its card."""
    config = ckpt.read_model_card(spec)["config"]
    count = config.get("styles", 1)
    if not isinstance(count, int) or not 1 < count <= MAX_STYLES:  # out of range: loading the weights says why
        return ()
    names = config.get("style_names") or [str(i) for i in range(count)]  # JohnsonNet.style_names' default
    return tuple(str(n) for n in names) if isinstance(names, list) else ()


def _named_mix(model: nn.Module, styles: Sequence[ImageLike], weights: tuple[float, ...]) -> torch.Tensor | None:
    """(S,) style weights for a multi-style Johnson net from style names; None for a one-style net."""
    names = getattr(model, "style_names", ())
    if not names:
        if styles:
            raise ConfigError("this fast model has its style in its weights; --style is for adain and optimize")
        return None
    if not styles:
        raise ConfigError(f"this fast model holds {len(names)} styles: choose with --style NAME "
                          f"({', '.join(names)})")
    mix = torch.zeros(len(names))
    for style, weight in zip(styles, weights):
        if not isinstance(style, str) or style not in names:
            shown = style if isinstance(style, str) else "an image"
            raise ConfigError(f"--style {shown} is not one of this model's styles: {', '.join(names)}")
        mix[names.index(style)] += weight
    return mix


def load_style_model(spec: str, *, device: str | torch.device = "cpu", encoder_weights: str | None = None) -> nn.Module:
    """A trained style model from its run or model directory, in eval mode, with AdaIN's encoder attached."""
    model = ckpt.load_pretrained(spec, kind="style")
    model.encoder_info = attach_encoder(model, encoder_weights) if model.arbitrary else None
    return model.to(device).eval()


@dataclass
class FastResult:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the CPU
    method: str
    seconds: float
    style_weights: tuple[float, ...] = ()
    alpha: float | None = None
    model: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"method": self.method, "size": list(self.image.shape[-2:]), "seconds": round(self.seconds, 3),
                "style_weights": list(self.style_weights), "alpha": self.alpha, "model": self.model}


def run(model: nn.Module, content: ImageLike, styles: Sequence[ImageLike] = (), weights: Sequence[float] | None = None,
        *, alpha: float = 1.0, size: int | None = None, style_scale: float = 1.0, preserve_color: bool = False,
        mask: ImageLike | None = None, feather_radius: int | None = None, channels_last: bool = True) -> FastResult:
    """Stylise ``content`` with a loaded model. ``styles``: AdaIN's style images, resized to the content's area
    times ``style_scale^2`` as the optimisation method does, or a multi-style fast net's style names; mixed
    by ``weights`` (normalised to sum 1)."""
    if model.arbitrary and not styles:
        raise ConfigError("an adain model needs at least one --style image")
    if not 0.0 <= alpha <= 1.0 or (alpha != 1.0 and not model.arbitrary):
        raise ConfigError(f"alpha must be in [0, 1] and is for adain models only, got {alpha}")
    started = time.perf_counter()
    device = next(model.parameters()).device
    content_img = as_image(content, "content")
    full_mask = None if mask is None else as_mask(mask, tuple(content_img.shape[-2:]))
    height, width = fit_size(*content_img.shape[-2:], size)
    content_img = resize(content_img, (height, width)).to(device)  # (1, 3, H, W)
    style_weights = parse_style_weights(None if weights is None else list(weights), len(styles)) if styles else ()
    mix = None if model.arbitrary else _named_mix(model, styles, style_weights)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=layout)  # NHWC: oneDNN's preferred convolution layout on CPU
    with torch.inference_mode():
        x = content_img.contiguous(memory_format=layout)
        if model.arbitrary:
            prepared = []
            for i, style in enumerate(styles):
                style_img = as_image(style, f"style {i + 1}")
                style_size = area_size(*style_img.shape[-2:], height * width * style_scale ** 2)
                if min(style_size) < MIN_STYLE_SIDE:
                    raise ConfigError(f"style {i + 1} would be {style_size[1]}x{style_size[0]}; it needs at least "
                                      f"{MIN_STYLE_SIDE} pixels per side (raise --style-scale)")
                prepared.append(resize(style_img, style_size).to(device).contiguous(memory_format=layout))
            out = model.stylize(x, prepared, style_weights, alpha)
        else:
            out = model(x) if mix is None else model(x, mix.to(device))
        rgb = out.float().clamp(0.0, 1.0)  # (1, 3, H, W)
        if preserve_color:
            rgb = combine_luminance(luminance(rgb), content_img)  # the content's chroma, the result's luminance
        if full_mask is not None:
            radius = feather_radius if feather_radius is not None else auto_radius(height, width)
            soft = feather(resize(full_mask.to(device), (height, width)).clamp(0, 1), radius)
            rgb = composite(rgb, content_img, soft)
    info = {"dir": getattr(model, "model_dir", None), "arch": model.registry_name,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()}}
    if getattr(model, "encoder_info", None):
        info["encoder"] = model.encoder_info
    return FastResult(rgb[0].cpu(), "adain" if model.arbitrary else "fast", time.perf_counter() - started,
                      style_weights, alpha if model.arbitrary else None, info)


def stylize_with(model: nn.Module | str, content: ImageLike, styles: Sequence[ImageLike] = (),
                 weights: Sequence[float] | None = None, *, device: str = "auto", **options) -> torch.Tensor:
    """The stylised image (3, H, W) in [0, 1]; ``model`` a loaded model or a run/model directory."""
    if not isinstance(model, nn.Module):
        model = load_style_model(str(model), device=select_device(device))
    return run(model, content, styles, weights, **options).image


__all__ = ["FastResult", "load_style_model", "model_method", "model_style_names", "run", "stylize_with"]
