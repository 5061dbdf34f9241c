"""Atomic file and directory writes: a reader (or a crash) never sees half a file under its final name.

Everything is written to a hidden temporary sibling in the same directory (same file system),
flushed to disk, then renamed over the final name. Temporaries are created with the permissions
the user's umask gives ordinary files (``mkstemp``/``mkdtemp`` would force 0600/0700, which makes
checkpoints unreadable to a group that shares a run directory).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import BinaryIO, Callable

TMP_PREFIX = ".tmp-"


def temporary_sibling(path: Path, kind: str = "file") -> Path:
    """A fresh hidden name next to ``path`` (``.tmp-<name>-<random>``) for staging a write."""
    return path.with_name(f"{TMP_PREFIX}{path.name}-{secrets.token_hex(4)}{'.tmp' if kind == 'file' else ''}")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (os.umask can only swap it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: swap and restore (a brief window, only at this call)
    os.umask(mask)
    return mask


def give_default_permissions(path: str | os.PathLike) -> None:
    """chmod to what open() would have given: for files written by libraries that force 0600."""
    os.chmod(path, 0o666 & ~current_umask())


def write_file(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temporary file, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        # 0o666 & ~umask, as open() gives any new file; O_EXCL: never write through a planted link
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())  # else a crash right after the rename can leave an empty file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_file(path, lambda fh: fh.write(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def staging_dir(target: Path) -> Path:
    """An empty hidden directory next to ``target`` to assemble it in (mode 0o777 & ~umask)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temporary_sibling(target, kind="dir")
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:  # a 32-bit random collision: draw again
            continue


def replace_dir(staged: Path, target: Path) -> None:
    """Move a fully written ``staged`` directory to ``target``, replacing an existing one.

    rename() cannot replace a non-empty directory, so an existing target is moved aside first;
    a crash between the two renames leaves the old copy under a hidden name, never a half one.
    """
    if target.exists():
        old = target.with_name(f"{TMP_PREFIX}old-{target.name}-{secrets.token_hex(4)}")
        os.rename(target, old)
        os.rename(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, target)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete what writes killed mid-way (SIGKILL, power loss) left behind in ``directory``."""
    for leftover in directory.glob(f"{TMP_PREFIX}*"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                leftover.unlink()


__all__ = ["current_umask", "give_default_permissions", "write_file", "write_bytes", "write_text", "staging_dir",
           "replace_dir", "remove_stale_temporaries", "temporary_sibling", "TMP_PREFIX"]
