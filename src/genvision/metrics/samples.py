"""FID-family scores of generated samples against reference statistics, streamed in batches.

A *sampler* is any ``(n, seed) -> images in [-1, 1] (n, C, H, W)``: a model (see
``genvision.sampling.sampler_for``), a training-time objective's sample grid, or a fixed set of
images (:func:`fixed_images_sampler`, for real-data baselines scored by the same code path).
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from ..runtime import check_seed, derive_seed
from .distribution import (
    FeatureStats,
    class_histogram_stats,
    density_coverage,
    fid_from_stats,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from .features import FeatureExtractor
from .reference import stream_features

Sampler = Callable[[int, int], torch.Tensor]  # (n, seed) -> images in [-1, 1] (n, C, H, W)

# Raw feature rows kept for the sample-based metrics (KID, precision/recall, density/coverage): a
# uniform reservoir sample of at most this many rows per side, so memory (and their O(N^2)
# nearest-neighbour work) is bounded whatever -n is; FID uses the streamed moments of all n.
MAX_KEPT_FEATURES = 50_000


def check_sample_count(n: int) -> None:
    if n < 2:
        raise ConfigError(f"-n must be at least 2 to compare distributions, got {n}")


def sample_metrics(sampler: Sampler, extractor: FeatureExtractor, reference: FeatureStats, *, n: int,
                   batch_size: int = 500, seed: int = 0, progress: bool = True, full: bool = True) -> dict:
    """FID-family metrics of ``n`` generated images against ``reference``.

    ``full=False`` computes FID and KID only (cheap enough for training-time evaluation).
    """
    check_sample_count(n)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    check_seed(seed)
    stats = FeatureStats(keep=min(n, MAX_KEPT_FEATURES))
    # each batch's seed is derived from (seed, first index): distinct, reproducible, within 0..2**63-1
    batches = (sampler(min(batch_size, n - start), derive_seed(seed, start)) for start in range(0, n, batch_size))
    probs = stream_features(batches, extractor, stats, n, "generated", progress)
    real, fake = reference.features, stats.features
    subset = min(1000, real.shape[0], fake.shape[0])
    kid, kid_std = kernel_inception_distance(real, fake, subsets=100 if full else 20, subset_size=subset, seed=seed)
    metrics = {"fid": fid_from_stats(reference, stats), "kid": kid, "kid_std": kid_std}
    if full:
        metrics["precision"], metrics["recall"] = precision_recall(real, fake, k=3)
        metrics["density"], metrics["coverage"] = density_coverage(real, fake, k=5)
        if probs is not None:
            # the original's 10 splits, or one image per split for fewer than 10 samples
            metrics["inception_score"], metrics["inception_score_std"] = inception_score(probs, min(10, len(probs)))
            hist = class_histogram_stats(probs.argmax(dim=1), probs.shape[1])
            metrics["class_coverage"] = hist["coverage"]
            metrics["class_kl_to_uniform"] = hist["kl_to_uniform"]
            shares = [count / n for count in hist["histogram"]]
            metrics["class_share_min"], metrics["class_share_max"] = min(shares), max(shares)
    metrics["num_samples"] = n
    return metrics


def kept_features_note(n: int) -> list[str]:
    """The evaluation note saying that the sample-based metrics saw a subsample (when they did)."""
    if n <= MAX_KEPT_FEATURES:
        return []
    return [f"FID uses all {n} samples; KID, precision/recall and density/coverage use a uniform sample of "
            f"{MAX_KEPT_FEATURES} of their feature rows (and of the reference's)"]


def fixed_images_sampler(images: torch.Tensor) -> Sampler:
    """A 'generator' that hands out ``images`` in order: scores a fixed set (reference rows,
    real-data baselines) with the same code path as a model. The seed is ignored."""
    offset = {"next": 0}

    def sample(n: int, seed: int) -> torch.Tensor:
        start = offset["next"]
        offset["next"] += n
        return images[start:start + n]

    return sample


__all__ = ["MAX_KEPT_FEATURES", "Sampler", "check_sample_count", "fixed_images_sampler", "kept_features_note",
           "sample_metrics"]
