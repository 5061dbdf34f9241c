"""Feature statistics of real data, computed once per (dataset, feature extractor) and cached.

The cache key is the dataset's fingerprint (its files and preprocessing), the extractor's key
(weights and preprocessing) and how many feature rows are kept, so a changed dataset or extractor
is never matched with stale statistics; a damaged cache entry is recomputed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import torch
from tqdm import tqdm

from ..errors import DataError
from ..runtime import cache_dir
from .distribution import FeatureStats
from .features import FeatureExtractor


def stream_features(batches: Iterable[torch.Tensor], extractor: FeatureExtractor, stats: FeatureStats, total: int,
                    desc: str, progress: bool) -> torch.Tensor | None:
    """Feed image batches through ``extractor`` into ``stats``; the class probabilities (for the
    Inception Score and class coverage) when the extractor gives them."""
    probs = []
    with tqdm(total=total, desc=desc, unit="img", disable=not progress, dynamic_ncols=True) as bar:
        for images in batches:
            out = extractor(images)
            stats.update(out.features)
            if out.probs is not None:
                probs.append(out.probs)
            bar.update(images.shape[0])
    return torch.cat(probs) if probs else None


def stats_cache_path(dataset, extractor: FeatureExtractor, keep: int) -> tuple[Path, str]:
    key = hashlib.sha256(f"{dataset.fingerprint()}|{extractor.key()}|keep={keep}".encode()).hexdigest()[:24]
    return cache_dir() / "stats" / f"{key}.safetensors", key


def reference_stats(extractor: FeatureExtractor, dataset, *, keep: int = 10_000, batch_size: int = 500,
                    progress: bool = True) -> FeatureStats:
    """Feature statistics of a dataset split (any ``genvision.data`` dataset), computed once and cached."""
    path, key = stats_cache_path(dataset, extractor, keep)
    if path.is_file():
        try:
            stats = FeatureStats.load(path)
            if stats.metadata.get("cache_key") == key:
                return stats
        except (DataError, ValueError):
            pass  # a damaged cache entry is recomputed
    stats = FeatureStats(keep=keep, metadata={"cache_key": key, "dataset": dataset.name, "split": dataset.split,
                                              "extractor": extractor.name})
    n = len(dataset)
    if hasattr(dataset, "get_batch"):
        batches = (dataset.get_batch(torch.arange(i, min(i + batch_size, n)))[0] for i in range(0, n, batch_size))
    else:
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size)
        batches = (images for images, _ in loader)
    stream_features(batches, extractor, stats, n, f"reference {dataset.name}:{dataset.split}", progress)
    stats.save(path, metadata=stats.metadata)
    return stats


__all__ = ["reference_stats", "stream_features", "stats_cache_path"]
