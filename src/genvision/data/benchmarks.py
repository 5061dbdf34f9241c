"""Benchmark image folders for image-to-image evaluation (super-resolution, denoising).

Names: ``sr:Set5``, ``sr:Set14`` (``<data root>/sr-benchmarks/<name>``, data root = ``--data-root``
/ $GENVISION_DATA / ~/.cache/genvision/data; without ``--data-root`` the repository's
``shared/data`` and ``../shared/data`` are tried last), or ``folder:PATH``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import io as gio
from ..errors import DataError
from .patches import list_image_files
from .registry import default_data_root

__all__ = ["BENCHMARKS", "list_benchmark_images", "load_benchmark_image", "resolve_image_folder"]

BENCHMARKS = ("Set5", "Set14")
_REPO = Path(__file__).resolve().parents[3]
_SHARED_DATA = (_REPO / "shared" / "data", _REPO.parent / "shared" / "data")


def resolve_image_folder(data: str, data_root: str | None = None, *, what: str = "SR evaluation") -> tuple[str, Path]:
    """``sr:Set5`` / ``sr:Set14`` / ``folder:PATH`` -> (label, folder)."""
    if data.startswith("folder:"):
        folder = Path(data[len("folder:"):]).expanduser()
        if not folder.is_dir():
            raise DataError(f"{data}: no such folder")
        return data, folder
    if data.startswith("sr:"):
        name = data[len("sr:"):]
        match = next((b for b in BENCHMARKS if b.lower() == name.lower()), None)
        if match is None:
            raise DataError(f"unknown SR benchmark {name!r}; choose sr:Set5, sr:Set14 or folder:PATH")
        candidates = [default_data_root(data_root) / "sr-benchmarks" / match]
        if data_root is None:
            candidates += [shared / "sr-benchmarks" / match for shared in _SHARED_DATA]
        for folder in candidates:
            if folder.is_dir():
                return f"sr:{match}", folder
        raise DataError(f"{data}: {candidates[0]} not found (put the HR images of {match} there, "
                        f"or pass --data-root DIR holding sr-benchmarks/{match}/)")
    raise DataError(f"{what} data must be sr:Set5, sr:Set14 or folder:PATH, got {data!r}")


def list_benchmark_images(folder: Path) -> list[Path]:
    files = list_image_files(folder)
    if not files:
        raise DataError(f"{folder}: no image files found")
    return files


def load_benchmark_image(path: Path, mode: str | None = None) -> torch.Tensor:
    """uint8 ``(C, H, W)``. ``mode`` None: C = 1 for greyscale files, else 3 (alpha flattened on
    white); ``"L"`` or ``"RGB"``: converted to that (RGB -> L by BT.601 luma, as Pillow)."""
    if mode is None:
        file_mode = gio.load_image(path, "keep").mode
        mode = "L" if file_mode in ("1", "L", "LA", "La", "I;16", "I", "F") else "RGB"
    arr = gio.to_uint8_array(path, mode)  # (H, W, C)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
