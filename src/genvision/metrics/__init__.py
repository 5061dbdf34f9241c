"""Offline evaluation: pure math on features, images and labels (no model inside).

- :mod:`.distribution`: FeatureStats, FID, KID, precision/recall, density/coverage, IS,
  class-histogram stats;
- :mod:`.image`: PSNR, SSIM, the SR protocol (Y channel, border shave), reconstruction errors;
- :mod:`.classification`: accuracy, confusion matrix (and its PNG), per-class accuracy.
"""

from .classification import accuracy, confusion_matrix, per_class_accuracy, plot_confusion_matrix
from .distribution import (
    FeatureStats,
    class_histogram_stats,
    density_coverage,
    fid_from_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)
from .image import psnr, reconstruction_errors, rgb_to_y, sr_psnr_ssim, ssim

__all__ = [
    "FeatureStats",
    "accuracy",
    "class_histogram_stats",
    "confusion_matrix",
    "density_coverage",
    "fid_from_stats",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "per_class_accuracy",
    "plot_confusion_matrix",
    "precision_recall",
    "psnr",
    "reconstruction_errors",
    "rgb_to_y",
    "sr_psnr_ssim",
    "ssim",
]
