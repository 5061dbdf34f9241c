"""CIFAR-10 "python version" reader that never runs code from the files it reads.

The batches are pickles, and ``pickle.load`` on a file someone handed you can run anything.
So we unpickle with :class:`SafeUnpickler`, whose ``find_class`` resolves *no* real global:
the four names a CIFAR batch legitimately refers to are mapped to inert stand-ins written
here, and every other name is refused before it is looked up.

* ``numpy.core.multiarray._reconstruct`` / ``numpy.ndarray`` / ``numpy.dtype`` (how numpy
  pickles an array; ``numpy._core...`` for arrays pickled by numpy 2) -> stand-ins that only
  *record* shape, dtype and raw bytes; the array is then built by us with ``np.frombuffer``
  after checking it is uint8 (N, 3072). numpy's own reconstruct code is never called.
* ``_codecs.encode`` (how Python 3 writes ``bytes`` at protocol 2) -> accepts only
  ``(str, "latin1")`` and returns the bytes.

The result must be a dict with ``data`` uint8 (N, 3072) and ``labels`` a list of N ints in
0..9, or the file is rejected with a DataError naming it.
"""

from __future__ import annotations

import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_ARCHIVE_FILES = {*SPLIT_FILES["train"], *SPLIT_FILES["test"], "batches.meta", "readme.html"}


# --- inert stand-ins for the globals a numpy-array pickle names ---------------------------

class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` as the first argument of ``_reconstruct``."""


class _DtypeRecord:
    def __init__(self, spec, align=False, copy=True):  # numpy pickles dtype('u1', False, True)
        self.spec = spec.decode("ascii") if isinstance(spec, bytes) else spec

    def __setstate__(self, state):  # (version, byteorder, ...): irrelevant for one-byte values
        pass


class _ArrayRecord:
    shape: tuple = ()
    dtype: _DtypeRecord | None = None
    fortran = False
    raw = b""

    def __setstate__(self, state):
        # numpy's ndarray state: (version, shape, dtype, is_fortran, raw bytes)
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError("unexpected ndarray state")
        _, self.shape, self.dtype, self.fortran, self.raw = state


def _reconstruct(cls, shape, typecode):
    if cls is not _NdarrayMarker:
        raise pickle.UnpicklingError("_reconstruct of something other than ndarray")
    return _ArrayRecord()


def _codecs_encode(text, encoding="utf-8"):
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return text.encode("latin1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _DtypeRecord,
    ("_codecs", "encode"): _codecs_encode,
}


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that maps a fixed set of names to inert stand-ins and refuses all others."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def _to_array(record, path: Path) -> np.ndarray:
    if not isinstance(record, _ArrayRecord) or record.dtype is None or record.dtype.spec != "u1":
        raise DataError(f"{path}: CIFAR 'data' is not a uint8 array")
    shape = tuple(record.shape)
    if len(shape) != 2 or shape[1] != 3072 or not isinstance(record.raw, bytes) or len(record.raw) != shape[0] * 3072:
        raise DataError(f"{path}: CIFAR 'data' must be (N, 3072) uint8, got shape {shape}")
    return np.frombuffer(record.raw, dtype=np.uint8).reshape(shape, order="F" if record.fortran else "C")


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file -> (uint8 (N, 3, 32, 32), int64 (N,))."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            # encoding="bytes": the official batches were pickled by Python 2, whose str are bytes
            obj = SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DataError(f"{path}: not a valid CIFAR batch ({' '.join(str(exc).split())})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a valid CIFAR batch (top level is {type(obj).__name__}, not dict)")
    batch = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: not a valid CIFAR batch (needs 'data' and 'labels')")
    data = _to_array(batch["data"], path)  # (N, 3072): 1024 red, 1024 green, 1024 blue values
    labels = batch["labels"]
    if (not isinstance(labels, list) or len(labels) != data.shape[0]
            or not all(type(v) is int and 0 <= v < 10 for v in labels)):
        raise DataError(f"{path}: CIFAR 'labels' must be a list of {data.shape[0]} ints in 0..9")
    return data.reshape(-1, 3, 32, 32).copy(), np.asarray(labels, dtype=np.int64)  # (N, 3, 32, 32)


# --- the archive -------------------------------------------------------------------------

def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract the batch files of ``cifar-10-python.tar.gz`` into ``dest/cifar-10-batches-py``.

    Any member with an absolute path or a '..' component rejects the whole archive. Only
    regular files with the expected names are written, by us (no links, devices or modes
    from the archive), into a temporary folder renamed into place at the end.
    """
    target = dest / BATCHES_DIR
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                p = PurePosixPath(m.name)
                if p.is_absolute() or ".." in p.parts or "\\" in m.name:
                    raise DataError(f"{archive}: unsafe path {m.name!r} in archive; refusing to extract")
            wanted = [m for m in members if m.isfile() and PurePosixPath(m.name).parent.name == BATCHES_DIR
                      and PurePosixPath(m.name).name in _ARCHIVE_FILES]
            if not wanted:
                raise DataError(f"{archive}: no {BATCHES_DIR}/ batch files in archive")
            tmp = Path(tempfile.mkdtemp(prefix=".cifar-extract-", dir=dest))
            try:
                for m in wanted:
                    src = tar.extractfile(m)
                    with open(tmp / PurePosixPath(m.name).name, "wb") as out:
                        shutil.copyfileobj(src, out)
                if target.exists():
                    shutil.rmtree(target)
                tmp.rename(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:  # DataError passes through
        raise DataError(f"{archive}: cannot read archive ({' '.join(str(exc).split())})") from None
    return target


def load_split(batches_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate a split's batches -> (uint8 (N, 3, 32, 32), int64 (N,))."""
    parts = [read_batch(batches_dir / name) for name in SPLIT_FILES[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
