"""The frozen networks the trained style methods lean on: the VGG loss network of the Johnson family
(the same extractor, layers and preprocessing as the optimisation method, so their losses compare),
AdaIN's encoder attached from ``genvision.pretrained`` (the model layer may not import the weights
layer, and the encoder is not stored with the model), and a seeded random trunk with VGG layer names
for tests that must run without downloaded weights (``backbone: random``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ... import pretrained
from ...errors import ConfigError
from ...nn.features import VGG_LAYERS, MultiLayerFeatures
from ...pretrained.vgg import conv_indices
from .pipeline import load_extractor
from .settings import StyleSettings

LOSS_BACKBONES = ("vgg19", "vgg16", "random")  # random: an untrained seeded trunk (tests, smoke runs)


def random_trunk(layers: Sequence[str], seed: int = 0) -> MultiLayerFeatures:
    """A small untrained trunk whose ReLUs carry VGG-19's relu names: one 3x3 convolution per VGG ReLU,
    8 channels per block number, stride 2 where VGG pools. Seeded, so a run that uses it resumes exactly."""
    generator = torch.Generator().manual_seed(seed)
    modules: list[nn.Module] = []
    index: dict[str, int] = {}
    channels, block = 3, 1
    for name in (n for n in VGG_LAYERS["vgg19"] if n.startswith("relu")):
        b = int(name[4])
        conv = nn.Conv2d(channels, 8 * b, 3, stride=2 if b != block else 1, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * (2.0 / (9 * channels)) ** 0.5)
            conv.bias.zero_()
        modules += [conv, nn.ReLU()]
        index[name] = len(modules) - 1
        channels, block = 8 * b, b
    return MultiLayerFeatures(nn.Sequential(*modules), index, list(layers))


def loss_network(backbone: str, layers: Sequence[str], weights: str | None = None) -> tuple[nn.Module, dict]:
    """The frozen extractor ``{layer: features}`` of images in [0, 1] and a summary of its card."""
    if backbone == "random":
        return random_trunk(layers).eval(), {"name": "random", "note": "untrained seeded trunk (tests only)"}
    if backbone not in LOSS_BACKBONES:
        raise ConfigError(f"backbone must be one of {', '.join(LOSS_BACKBONES)}, got {backbone!r}")
    deepest = [name for name in VGG_LAYERS[backbone] if name in layers]
    settings = StyleSettings(backbone=backbone, backbone_weights=weights, style_layers=tuple(deepest),
                             content_layers=tuple(deepest[:1]))
    extractor, info = load_extractor(settings)
    return extractor.eval(), info


def attach_encoder(model: nn.Module, weights: str | None = None) -> dict:
    """Give an AdaIN model with ``config.encoder == "vgg19"`` its frozen encoder from ``genvision.pretrained``
    (the Caffe weights in genvision's cache first, as the optimisation method does). Returns the card
    summary; a random encoder needs nothing."""
    name = model.config.encoder
    if name == "random":
        return {"name": "random", "seed": model.config.encoder_seed}
    try:
        if weights is not None:
            vgg = pretrained.load_backbone(name, weights)
        else:
            try:
                vgg = pretrained.load_backbone(name, sources=("package",))
            except ConfigError:
                vgg = pretrained.load_backbone(name)
    except ConfigError as exc:
        if weights is None and "genvision weights get" in str(exc):
            raise ConfigError(f"the adain encoder needs the {name} weights, which are not on this machine: run "
                              f"`genvision weights get {name}`") from None
        raise
    convs = [(vgg.features[i].weight.detach(), vgg.features[i].bias.detach()) for i in conv_indices(name)]
    model.load_encoder(convs, vgg.mean_values, vgg.std_values)
    card = vgg.card
    return {"name": card.get("name", name), "variant": card.get("variant"),
            "source": card.get("source", {}).get("kind"), "licence": card.get("licence"),
            "attribution": card.get("attribution")}


__all__ = ["LOSS_BACKBONES", "attach_encoder", "loss_network", "random_trunk"]
