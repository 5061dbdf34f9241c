"""scikit-learn's bundled 8x8 handwritten digits (the UCI "optdigits" test set, 1797 images):
a second, offline digit domain for unpaired translation (MNIST <-> 8x8 digits upsampled).

No download: the file ships inside scikit-learn, which is imported only when this dataset is
loaded. The pixel values 0..16 are scaled to 0..255 (white digit on black, as MNIST); the split is
fixed (the last :data:`TEST_SIZE` images are the test split), so every run sees the same sets.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

TEST_SIZE = 297  # 1797 = 1500 train + 297 test
CLASSES = [str(d) for d in range(10)]


def load_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 1, 8, 8), labels int64 (N,)) of ``split`` ("train" or "test")."""
    try:
        from sklearn.datasets import (
            load_digits,  # optional dependency: only this dataset needs it
        )
    except ImportError:
        raise DataError("sklearn-digits needs scikit-learn (pip install scikit-learn)") from None
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = digits.target.astype(np.int64)  # (1797,)
    cut = len(images) - TEST_SIZE
    return (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])


__all__ = ["CLASSES", "TEST_SIZE", "load_arrays"]
