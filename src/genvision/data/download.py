"""Canonical dataset files: where they come from, their checksums, and fetching them.

Downloads go to a temporary file in the target directory, are md5-checked, and only then
renamed into place, so an interrupted or tampered download never looks like a real file.
Any network failure becomes one :class:`DataError` line that names the missing files, the
directory to put them in and where to get them — the fix when a machine is offline.

Locally supplied files are md5-checked too when their name is one of the canonical
compressed files below (``*.gz``); uncompressed copies cannot be checked against the
published sums and are accepted as they are (the readers still validate their format).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib import request

from ..errors import DataError

TIMEOUT_S = 30.0  # per network read; a stalled connection fails instead of hanging


@dataclass(frozen=True)
class Source:
    base_url: str  # file names are appended to this
    md5: dict[str, str]  # canonical file name -> md5


SOURCES: dict[str, Source] = {
    "mnist": Source("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }),
    "fashion-mnist": Source("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }),
    "cifar10": Source("https://www.cs.toronto.edu/~kriz/", {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    }),
}


def md5sum(path: str | Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_md5(path: str | Path, md5: str) -> None:
    """Raise DataError unless the file's md5 is ``md5``."""
    actual = md5sum(path)
    if actual != md5.lower():
        raise DataError(f"{path}: checksum mismatch (md5 {actual}, expected {md5}); "
                        "the file is corrupt or not the canonical one — delete it and retry")


def verify_canonical(dataset: str, path: str | Path) -> None:
    """md5-check ``path`` if its name is one of ``dataset``'s canonical files; else no-op."""
    expected = SOURCES[dataset].md5.get(Path(path).name)
    if expected is not None:
        verify_md5(path, expected)


def download_file(url: str, dest: Path, md5: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Fetch ``url`` to ``dest`` atomically (temp file, checksum, rename). Network errors propagate."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        if md5 is not None:
            actual = md5sum(tmp)
            if actual != md5:
                raise DataError(f"{url}: downloaded file has md5 {actual}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def fetch(dataset: str, names: list[str], directory: Path, *, download: bool) -> None:
    """Make sure ``directory`` holds the canonical files ``names`` of ``dataset``.

    Missing files are downloaded when ``download`` is true; failing that (or offline), one
    DataError line says exactly what to put where.
    """
    source = SOURCES[dataset]
    missing = [n for n in names if not (directory / n).is_file()]
    if not missing:
        return
    hint = f"download them from {source.base_url} or pass --data-root DIR"
    listed = ", ".join(missing)
    if not download:
        raise DataError(f"{dataset}: missing {listed} in {directory} (download is off; {hint})")
    for name in missing:
        try:
            download_file(source.base_url + name, directory / name, source.md5.get(name))
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are all OSError
            reason = " ".join(str(getattr(exc, "reason", None) or exc).split())  # keep it one line
            raise DataError(f"{dataset}: missing {listed} in {directory} "
                            f"(offline? {hint}; {type(exc).__name__}: {reason})") from None
