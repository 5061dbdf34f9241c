"""Recognition with a trained classifier: class probabilities, and accuracy on a labelled dataset.

Works with any registered model of kind ``classifier`` (``forward(x) -> logits`` on images in
[-1, 1], ``config.image_size / channels / num_classes``). Images of another size or channel
count are converted the same way the FID-style feature extractor converts them
(:mod:`genvision.metrics.features`), so a score and a prediction see the same pixels.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...data.transforms import to_signed_unit
from ...errors import ConfigError
from ...metrics.classification import confusion_matrix, per_class_accuracy
from ...metrics.features import match_channels
from ...runtime import model_device
from ...training.objective import eval_mode

CLASSIFIER_KINDS = ("classifier",)


def prepare(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1], C in {1, 3} -> float32 (B, model C, S, S) on the model's device."""
    if images.ndim != 4:
        raise ConfigError(f"expected images (B, C, H, W), got shape {tuple(images.shape)}")
    cfg = model.config
    device = model_device(model)
    x = match_channels(images.to(device, torch.float32), cfg.channels)
    if x.shape[-2:] != (cfg.image_size, cfg.image_size):
        x = F.interpolate(x, size=(cfg.image_size, cfg.image_size), mode="bilinear", antialias=True,
                          align_corners=False)
    return x


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, *, batch_size: int = 500) -> torch.Tensor:
    """Class probabilities float32 (B, K) on the CPU for images in [-1, 1] (B, C, H, W)."""
    out = []
    with eval_mode(model):
        for start in range(0, images.shape[0], batch_size):
            logits = model(prepare(model, images[start:start + batch_size]))  # (b, K)
            out.append(logits.float().softmax(dim=1).cpu())
    if not out:
        return torch.empty(0, model.config.num_classes)
    return torch.cat(out)


def _batches(dataset, batch_size: int):
    """(images in [-1, 1], labels) chunks in dataset order, never augmented."""
    if hasattr(dataset, "images") and hasattr(dataset, "labels") and isinstance(dataset.images, torch.Tensor):
        # In-memory uint8 data: slice it directly (get_batch would augment a train split).
        for start in range(0, len(dataset), batch_size):
            yield to_signed_unit(dataset.images[start:start + batch_size]), dataset.labels[start:start + batch_size]
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
        yield from loader


def evaluate_classifier(model: nn.Module, dataset, batch_size: int = 500) -> dict[str, Any]:
    """Accuracy of ``model`` on a labelled dataset, in memory-bounded batches.

    Returns ``accuracy`` (float), ``per_class_accuracy`` (list of floats, NaN for a class with
    no samples), ``confusion`` (LongTensor (K, K), row = true class, column = predicted),
    ``num_samples`` and ``class_names`` (the dataset's, else the model's, else ``[]``).
    """
    num_classes = model.config.num_classes
    data_classes = getattr(dataset, "num_classes", 0)
    if data_classes == 0:
        raise ConfigError(f"{getattr(dataset, 'name', 'the dataset')} is unlabelled: cannot measure accuracy")
    if data_classes != num_classes:
        raise ConfigError(f"the model has {num_classes} classes but the dataset has {data_classes}")
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for images, labels in _batches(dataset, batch_size):
        probs = predict(model, images, batch_size=batch_size)  # (b, K)
        confusion += confusion_matrix(probs.argmax(dim=1), labels, num_classes)
    n = int(confusion.sum())
    if n == 0:
        raise ConfigError("the dataset is empty")
    class_names = list(getattr(dataset, "class_names", []) or getattr(model.config, "class_names", ()) or [])
    return {
        "accuracy": float(confusion.diagonal().sum()) / n,
        "per_class_accuracy": [float(v) for v in per_class_accuracy(confusion)],
        "confusion": confusion,
        "num_samples": n,
        "class_names": class_names,
    }


__all__ = ["CLASSIFIER_KINDS", "predict", "prepare", "evaluate_classifier"]
