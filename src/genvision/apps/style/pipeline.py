"""``stylize(content, styles)``: optimisation-based style transfer (Gatys, Ecker & Bethge, CVPR 2016)
as one call, coarse to fine, with colour preservation and a mask::

    from genvision.apps.style import stylize
    image = stylize("photo.jpg", ["starry_night.jpg", "the_scream.jpg"], weights=[0.7, 0.3], size=512)
    # (3, H, W) float tensor in [0, 1]

:func:`transfer` does the same and also returns what happened (sizes, steps, losses, seconds, the
backbone's card) for the CLI's sidecar. Not done: tiling the finest scale, so the largest size is bound
by memory (about 5 KB per pixel for VGG-19; :func:`check_memory` refuses what cannot fit).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm import tqdm

from ... import io as gio
from ... import pretrained
from ...errors import ConfigError, InputShapeError, display_path
from ...pretrained.vgg import VGG_BLOCKS, VGG_WIDTHS
from ...runtime import select_device
from .colour import combine_luminance, luminance, match_luminance
from .losses import Extractor, StyleObjective, mean_grams
from .masks import auto_radius, check_mask, composite, feather, resize_mask
from .optimize import (
    ScaleReport,
    StepInfo,
    area_size,
    clock,
    fit_size,
    optimise,
    resize,
    scale_sizes,
)
from .settings import StyleSettings, parse_style_weights, settings_from

ImageLike = torch.Tensor | str | os.PathLike
MIN_SIDE = 16  # four 2x2 max pools before relu5_1: 16 px is the least that leaves one position
BYTES_PER_PIXEL_FLOAT = 4


@dataclass
class StyleResult:
    image: torch.Tensor  # (3, H, W) in [0, 1], on the CPU
    settings: StyleSettings
    style_weights: tuple[float, ...]
    scales: list[ScaleReport] = field(default_factory=list)
    seconds: float = 0.0
    backbone: dict = field(default_factory=dict)  # name, variant, weights source, licence, attribution

    def to_json(self) -> dict:
        return {"method": "optimize", "settings": self.settings.to_json(), "style_weights": list(self.style_weights),
                "size": list(self.image.shape[-2:]), "seconds": round(self.seconds, 2), "backbone": self.backbone,
                "scales": [{"size": list(r.size), "steps": r.steps, "seconds": round(r.seconds, 2),
                            "losses": r.losses} for r in self.scales]}


# ----------------------------------------------------------------------------- inputs


def as_image(image: ImageLike, name: str, *, unit_range: bool = True) -> torch.Tensor:
    """A path (read safely, EXIF applied, alpha flattened) or a (3, H, W) / (1, 3, H, W) tensor in
    [0, 1] (any finite values with ``unit_range=False``) -> (1, 3, H, W) float32."""
    if not isinstance(image, torch.Tensor):
        return gio.load_image_tensor(image, channels=3)[None]  # (1, 3, H, W)
    tensor = image[None] if image.ndim == 3 else image
    if tensor.ndim != 4 or tensor.shape[:2] != (1, 3):
        raise InputShapeError(f"{name}: expected an RGB image tensor (3, H, W) or (1, 3, H, W), got "
                              f"shape {tuple(image.shape)}")
    tensor = tensor.detach().float()
    if not torch.isfinite(tensor).all() or (unit_range and (tensor.min() < 0 or tensor.max() > 1)):
        raise ConfigError(f"{name}: pixel values must be finite and in [0, 1]")
    return tensor


def as_mask(mask: ImageLike, size: tuple[int, int], name: str = "mask") -> torch.Tensor:
    """A path (greyscale, white = stylise) or a tensor (H, W) / (1, H, W) / (1, 1, H, W) in [0, 1] ->
    (1, 1, H, W); its size must be the content's (before any resizing)."""
    if isinstance(mask, torch.Tensor):
        if mask.ndim not in (2, 3, 4) or any(n != 1 for n in mask.shape[:-2]):
            raise InputShapeError(f"{name}: expected (H, W), (1, H, W) or (1, 1, H, W), got {tuple(mask.shape)}")
        tensor = mask.detach().float().reshape(1, 1, *mask.shape[-2:])  # (1, 1, H, W)
    else:
        tensor = gio.load_image_tensor(mask, channels=1)[None]  # (1, 1, H, W)
        name = display_path(mask)
    if tuple(tensor.shape[-2:]) != tuple(size):
        raise ConfigError(f"{name} is {tensor.shape[-1]}x{tensor.shape[-2]} but the content is {size[1]}x{size[0]}: "
                          f"the mask must have the content's size")
    check_mask(tensor, name)
    return tensor


# ----------------------------------------------------------------------------- the network


def load_extractor(settings: StyleSettings) -> tuple[nn.Module, dict]:
    """The frozen VGG trunk cut after the deepest layer the losses read, and a summary of its card.
    The Caffe/Keras weights (genvision's cache) are preferred to a torchvision file in torch hub's cache:
    they are the ones Gatys et al. used, and the default loss weights are set for their feature scale."""
    name, weights = settings.backbone, settings.backbone_weights
    try:
        if weights is not None:
            vgg = pretrained.load_backbone(name, weights)
        else:
            try:
                vgg = pretrained.load_backbone(name, sources=("package",))
            except ConfigError:
                vgg = pretrained.load_backbone(name)  # a torchvision file in torch hub's cache, if any
    except ConfigError as exc:
        if weights is None and "genvision weights get" in str(exc):
            raise ConfigError(f"stylize needs the {name} weights, which are not on this machine: run "
                              f"`genvision weights get {name}` (or pass --backbone-weights FILE)") from None
        raise
    card = vgg.card
    layers = list(dict.fromkeys([*settings.content_layers, *settings.style_layers]))
    info = {"name": card.get("name", name), "variant": card.get("variant"),
            "source": card.get("source", {}).get("kind"), "licence": card.get("licence"),
            "attribution": card.get("attribution")}
    return vgg.multi_layer(layers), info


def check_memory(height: int, width: int, arch: str, device: torch.device) -> None:
    """Refuse a size whose VGG activations (kept for the backward pass, plus their gradients) would not
    fit: about 5 KB per pixel for VGG-19 up to relu5_1, counted from the architecture."""
    floats = 0.0
    for block, (convs, channels) in enumerate(zip(VGG_BLOCKS[arch], VGG_WIDTHS)):
        area = 4.0 ** -block  # each 2x2 pool quarters the positions
        convs = 1 if block == 4 else convs  # relu5_1 is the first layer of block 5
        floats += area * channels * (2 * convs + 0.25)  # conv + ReLU outputs, and the pool's
    needed = 2 * floats * BYTES_PER_PIXEL_FLOAT * height * width  # forward activations and their gradients
    if device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[1]
    else:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return
    if needed > 0.8 * available:
        raise ConfigError(f"a {width}x{height} pastiche needs about {needed / 2**30:.1f} GiB for {arch}'s activations; "
                          f"this {device.type} has {available / 2**30:.1f} GiB: lower --size")


def _frozen(extractor: Extractor, device: torch.device, channels_last: bool) -> Callable:
    """The extractor on ``device`` as a function of (1, 3, H, W) images in [0, 1]; an nn.Module is
    frozen (no parameter gradients are ever needed) and, with ``channels_last``, stored NHWC."""
    if isinstance(extractor, nn.Module):
        extractor.eval().requires_grad_(False).to(device)
        extractor.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if not channels_last:
        return extractor
    return lambda images: extractor(images.contiguous(memory_format=torch.channels_last))


# ----------------------------------------------------------------------------- the transfer


def _working(preserve_color: bool):
    """(to working space, working -> the extractor's RGB): luminance repeated to 3 channels (a grey
    image) for colour preservation, RGB as is otherwise."""
    if preserve_color:
        return luminance, lambda y: y.expand(-1, 3, -1, -1)  # (1, 1, H, W) -> (1, 3, H, W), a view
    return (lambda rgb: rgb), (lambda rgb: rgb)


def transfer(content: ImageLike, styles: ImageLike | Sequence[ImageLike], weights: Sequence[float] | None = None, *,
             mask: ImageLike | None = None, settings: StyleSettings | None = None, extractor: Extractor | None = None,
             progress: bool = False, callback: Callable[[StepInfo], None] | None = None, **overrides) -> StyleResult:
    """Stylise ``content`` with ``styles`` (weights: one per style, normalised to sum 1; default equal).
    ``settings`` / keyword ``overrides`` are :class:`StyleSettings` fields. ``extractor``: a function or
    module from (B, 3, H, W) images in [0, 1] to ``{layer name: features}`` used instead of the pretrained
    VGG (tests inject a small random trunk). ``callback`` gets a :class:`StepInfo` after every step."""
    settings = settings_from(settings, **overrides)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConfigError("give at least one style image")
    style_weights = parse_style_weights(None if weights is None else list(weights), len(style_list))
    content_img = as_image(content, "content")
    style_imgs = [as_image(s, f"style {i + 1}") for i, s in enumerate(style_list)]
    full_mask = None if mask is None else as_mask(mask, tuple(content_img.shape[-2:]))
    height, width = fit_size(*content_img.shape[-2:], settings.size)
    if min(height, width) < MIN_SIDE:
        raise ConfigError(f"the content is {width}x{height} at the working size; it needs at least {MIN_SIDE} "
                          f"pixels per side")
    device = select_device(settings.device)
    info = {"name": "injected extractor"}
    if extractor is None:
        check_memory(height, width, settings.backbone, device)
        extractor, info = load_extractor(settings)
    features = _frozen(extractor, device, settings.channels_last)
    return _run(settings, content_img.to(device), [s.to(device) for s in style_imgs], style_weights,
                None if full_mask is None else full_mask.to(device), (height, width), features, info,
                progress=progress, callback=callback)


def _run(settings: StyleSettings, content: torch.Tensor, styles: list[torch.Tensor], style_weights: tuple[float, ...],
         mask: torch.Tensor | None, size: tuple[int, int], features: Callable, info: dict, *, progress: bool,
         callback: Callable[[StepInfo], None] | None) -> StyleResult:
    height, width = size
    content = resize(content, size)  # (1, 3, H, W): the content at the result's size
    sizes = scale_sizes(height, width, settings.scales, settings.min_side)
    steps = settings.steps_per_scale(len(sizes))
    radius = settings.feather if settings.feather is not None else auto_radius(height, width)
    to_work, to_rgb = _working(settings.preserve_color)
    result = StyleResult(image=content[0], settings=settings, style_weights=style_weights, backbone=info)
    elapsed = clock()
    generator = torch.Generator().manual_seed(settings.seed)
    pastiche = soft = None  # the previous scale's result, (1, C, h, w)
    with tqdm(total=sum(steps), desc="stylize", unit="step", disable=not progress, dynamic_ncols=True,
              file=sys.stderr) as bar:
        for index, (h, w) in enumerate(sizes):
            started = elapsed()
            content_work = to_work(resize(content, (h, w)))  # (1, C, h, w), C = 3 (RGB) or 1 (Y)
            level_radius = radius if (h, w) == size else round(radius * h / height)
            soft = None if mask is None else feather(resize_mask(mask, (h, w)), level_radius)  # (1, 1, h, w)
            objective = _objective(settings, features, content_work, styles, style_weights, soft, to_rgb)
            if pastiche is None:
                start = content_work if settings.init == "content" else \
                    torch.rand(content_work.shape, generator=generator).to(content_work)
            else:
                start = resize(pastiche, (h, w)).clamp(0.0, 1.0)  # the coarser result, upsampled
            bar.set_description(f"stylize {index + 1}/{len(sizes)} {w}x{h}")

            def on_step(step, parts, index=index, h=h, w=w):
                losses = parts.floats()
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)
                bar.update(1)
                if callback is not None:
                    callback(StepInfo(index, len(sizes), (h, w), step, elapsed(), losses))

            x, final = optimise(objective, start, steps=steps[index], optimizer=settings.optimizer,
                                lr=settings.learning_rate, on_step=on_step)
            pastiche = objective.to_image(x).detach()  # the mask composite: what this scale made
            result.scales.append(ScaleReport((h, w), steps[index], elapsed() - started, final.floats()))
    rgb = combine_luminance(pastiche, content) if settings.preserve_color else pastiche.clamp(0.0, 1.0)
    if soft is not None:
        rgb = composite(rgb, content, soft)  # outside the mask: the content's pixels, bit for bit
    result.image = rgb[0].cpu()
    result.seconds = elapsed()
    return result


def _objective(settings: StyleSettings, features: Callable, content_work: torch.Tensor, styles: list[torch.Tensor],
               style_weights: tuple[float, ...], soft: torch.Tensor | None, to_rgb: Callable) -> StyleObjective:
    """One scale's targets: the content's features, the styles' weighted mean Grams at a size of the
    same area as this scale's pastiche (times style_scale^2)."""
    h, w = content_work.shape[-2:]
    with torch.no_grad():
        content_features = features(to_rgb(content_work))
        content_targets = {name: content_features[name] for name in settings.content_layers}
        prepared = []
        for style in styles:
            style_size = area_size(*style.shape[-2:], h * w * settings.style_scale ** 2)
            if min(style_size) < MIN_SIDE:
                raise ConfigError(f"a style image would be {style_size[1]}x{style_size[0]} at this size; it needs at "
                                  f"least {MIN_SIDE} pixels per side (raise --style-scale or crop it)")
            style_rgb = resize(style, style_size)
            if settings.preserve_color:
                prepared.append(to_rgb(match_luminance(luminance(style_rgb), content_work)))
            else:
                prepared.append(style_rgb)
        style_targets = mean_grams(features, prepared, style_weights, settings.style_layers)

    def to_image(param: torch.Tensor) -> torch.Tensor:
        return param if soft is None else composite(param, content_work, soft)

    return StyleObjective(features, content_targets=content_targets, style_targets=style_targets,
                          style_layer_weights=settings.layer_weights(), content_weight=settings.content_weight,
                          style_weight=settings.style_weight, tv_weight=settings.tv_weight, to_image=to_image,
                          to_rgb=to_rgb, style_mask=soft)


def stylize(content: ImageLike, styles: ImageLike | Sequence[ImageLike], weights: Sequence[float] | None = None,
            **options) -> torch.Tensor:
    """The stylised image, (3, H, W) in [0, 1] on the CPU; ``options`` as :func:`transfer`'s."""
    return transfer(content, styles, weights, **options).image


def style_losses(image: ImageLike, content: ImageLike, styles: ImageLike | Sequence[ImageLike],
                 weights: Sequence[float] | None = None, *, settings: StyleSettings | None = None,
                 extractor: Extractor | None = None, **overrides) -> dict[str, float]:
    """The weighted loss terms (content, style, tv, total) of ``image`` as a pastiche of ``content`` (resized
    to ``image``'s size) and ``styles``, as :func:`transfer` measures them at its finest scale (no mask):
    to compare results of different tools, or of one tool at different settings, on one scale. ``image``
    may lie outside [0, 1] (an optimiser's unclamped state)."""
    settings = settings_from(settings, **overrides)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    style_weights = parse_style_weights(None if weights is None else list(weights), len(style_list))
    device = select_device(settings.device)
    pastiche = as_image(image, "image", unit_range=False).to(device)
    content_img = resize(as_image(content, "content").to(device), tuple(pastiche.shape[-2:]))
    style_imgs = [as_image(s, f"style {i + 1}").to(device) for i, s in enumerate(style_list)]
    features = _frozen(extractor if extractor is not None else load_extractor(settings)[0], device,
                       settings.channels_last)
    to_work, to_rgb = _working(settings.preserve_color)
    objective = _objective(settings, features, to_work(content_img), style_imgs, style_weights, None, to_rgb)
    with torch.no_grad():
        return objective(to_work(pastiche)).floats()


__all__ = ["StyleResult", "as_image", "as_mask", "check_memory", "load_extractor", "style_losses", "stylize",
           "transfer"]
