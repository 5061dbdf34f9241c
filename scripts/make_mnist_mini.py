"""Rebuild the embedded mnist-mini dataset (src/genvision/assets/mnist-mini/) from canonical MNIST.

    python scripts/make_mnist_mini.py [--source ../shared/data/mnist] [--out src/genvision/assets/mnist-mini]

Selection (deterministic, no randomness): for each digit 0..9, the first 500 images of that
digit in the canonical train order (5000 train) and the first 100 of the canonical t10k order
(1000 test). The chosen images keep their canonical relative order. The source files are
md5-checked first; the output is gzip'd IDX with mtime 0, so reruns give identical bytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from genvision.data import download
from genvision.data.idx import read_idx, write_idx

ROOT = Path(__file__).resolve().parent.parent
PER_CLASS = {"train": 500, "t10k": 100}


def first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first ``k`` examples of each class, in original order."""
    picks = np.concatenate([np.flatnonzero(labels == c)[:k] for c in range(10)])
    return np.sort(picks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "genvision" / "assets" / "mnist-mini")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for prefix, k in PER_CLASS.items():
        images_name = f"{prefix}-images-idx3-ubyte.gz"
        labels_name = f"{prefix}-labels-idx1-ubyte.gz"
        for name in (images_name, labels_name):
            download.verify_md5(args.source / name, download.SOURCES["mnist"].md5[name])
        images, labels = read_idx(args.source / images_name), read_idx(args.source / labels_name)
        keep = first_per_class(labels, k)
        assert len(keep) == 10 * k, "a class has fewer than k examples"
        write_idx(args.out / images_name, images[keep])  # (10k, 28, 28) uint8
        write_idx(args.out / labels_name, labels[keep])  # (10k,) uint8
        print(f"{prefix}: {len(keep)} images")
    total = sum(p.stat().st_size for p in args.out.glob("*.gz"))
    for p in sorted(args.out.glob("*.gz")):
        print(f"{download.md5sum(p)}  {p.name}  {p.stat().st_size} bytes")
    print(f"total {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
