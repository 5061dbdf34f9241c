"""Domain feature extractors that ship inside the package (no download, work offline).

A domain extractor is a genvision classifier trained on one dataset; its penultimate features
give FID-style scores for that domain. Such scores are NOT comparable with Inception-FID.
Each shipped model lives in ``genvision/assets/extractors/<name>/`` (config.json,
model.safetensors, MODEL_CARD.md).
"""

from __future__ import annotations

from pathlib import Path

# dataset name -> directory under assets/extractors/
SHIPPED_EXTRACTORS = {"mnist": "mnist-cnn", "mnist-mini": "mnist-cnn"}

EXTRACTORS_DIR = Path(__file__).resolve().parent.parent / "assets" / "extractors"


def shipped_extractor_dir(dataset_name: str) -> Path | None:
    """The shipped extractor directory for ``dataset_name``, or None when none ships for it."""
    key = dataset_name.lower().replace("_", "-")
    sub = SHIPPED_EXTRACTORS.get(key)
    if sub is None:
        return None
    path = EXTRACTORS_DIR / sub
    return path if (path / "model.safetensors").is_file() else None


def load_shipped_extractor(dataset_name: str, device: str = "cpu"):
    """A :class:`~genvision.metrics.features.ClassifierExtractor` over the shipped classifier for
    ``dataset_name``, or None when none ships for it."""
    path = shipped_extractor_dir(dataset_name)
    if path is None:
        return None
    from ..checkpoints import load_pretrained
    from .features import ClassifierExtractor

    model = load_pretrained(path, device=device, kind="classifier")
    return ClassifierExtractor(model, name=f"domain:{path.name}")


__all__ = ["SHIPPED_EXTRACTORS", "EXTRACTORS_DIR", "shipped_extractor_dir", "load_shipped_extractor"]
