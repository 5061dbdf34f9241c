"""Feature extractors for distribution metrics (FID, KID, precision/recall, IS), behind one interface.

Three kinds, all offline-safe:

- the standard FID Inception-v3 (``.inception``) when its weights file is available;
- *domain* extractors: genvision classifiers trained on the user's own data (one for MNIST
  ships inside the package), so FID-style scores exist for any labelled dataset without a
  download -- their values are NOT comparable with Inception-FID and are always labelled so;
- any registered classifier of the user's (``--features MODEL_DIR``).

A classifier model offers ``forward(x) -> logits (B, K)`` and ``forward_features(x) -> (B, D)``
on images in [-1, 1]; its config carries ``image_size``, ``channels`` and ``num_classes``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..runtime import model_device


@dataclass
class Features:
    features: torch.Tensor  # (B, D) float32
    probs: torch.Tensor | None  # (B, K) class probabilities, or None


class FeatureExtractor:
    name: str = "extractor"
    dim: int = 0
    num_classes: int = 0
    inception_comparable: bool = False  # True only for the standard FID Inception weights

    def key(self) -> str:
        """Identifies weights and preprocessing, for caching reference statistics."""
        raise NotImplementedError

    def __call__(self, images: torch.Tensor) -> Features:
        """``images``: (B, C, H, W) in [-1, 1], any size and 1 or 3 channels."""
        raise NotImplementedError

    def describe(self) -> str:
        if self.inception_comparable:
            return f"{self.name} (standard FID Inception-v3 features)"
        return (f"{self.name} (domain features: values are NOT comparable with Inception-FID or with "
                f"scores computed with another extractor)")


def match_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 3 and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    if channels == 1 and images.shape[1] == 3:
        weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)  # ITU-R BT.601 luma
        return (images * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot convert {images.shape[1]}-channel images to {channels} channels")


def state_fingerprint(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class ClassifierExtractor(FeatureExtractor):
    """Penultimate features and softmax probabilities of a genvision classifier."""

    def __init__(self, model: nn.Module, name: str | None = None):
        self.model = model.eval()
        cfg = model.config
        self.image_size, self.channels, self.num_classes = cfg.image_size, cfg.channels, cfg.num_classes
        self.name = name or f"classifier:{getattr(model, 'registry_name', type(model).__name__)}"
        self.device = model_device(model)
        with torch.no_grad():
            probe = torch.zeros(1, self.channels, self.image_size, self.image_size, device=self.device)
            self.dim = model.forward_features(probe).shape[1]
        self._key = f"{self.name}-{state_fingerprint(model)}"

    def key(self) -> str:
        return self._key

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> Features:
        x = match_channels(images.to(self.device, torch.float32), self.channels)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        feats = self.model.forward_features(x)  # (B, D)
        logits = self.model.head(feats) if hasattr(self.model, "head") else self.model(x)
        return Features(feats.float().cpu(), logits.float().softmax(dim=1).cpu())
