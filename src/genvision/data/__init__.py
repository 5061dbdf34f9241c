"""Datasets: mnist, fashion-mnist, cifar10, the embedded mnist-mini, and folder:PATH.

    from genvision.data import load_dataset
    ds = load_dataset("mnist-mini", image_size=32)   # no download: ships with genvision
    x, y = ds[0]                                     # float32 (1, 32, 32) in [-1, 1], int64 label
    xb, yb = ds.get_batch(torch.arange(64))          # fast path for in-memory datasets

Files live under :func:`default_data_root` (explicit root > $GENVISION_DATA >
~/.cache/genvision/data); missing canonical files are downloaded and md5-checked, and
offline a one-line DataError says which files to put where.
"""

from .base import DatasetInfo, ImageDataset, TensorImageDataset
from .folder import FolderImageDataset
from .registry import dataset_from_config, default_data_root, list_datasets, load_dataset, test_split

__all__ = [
    "DatasetInfo",
    "ImageDataset",
    "TensorImageDataset",
    "FolderImageDataset",
    "list_datasets",
    "load_dataset",
    "dataset_from_config",
    "default_data_root",
    "test_split",
]
