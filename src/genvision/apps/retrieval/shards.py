"""Sharded index builds: ``genvision index build FOLDER -o OUT --shard I/N`` on N processes or machines.

Embedding is the whole cost of a build, so that is what is split. Shard I embeds its share of the folder's
files (every N-th of the sorted list, :class:`genvision.jobs.Shard`) into the embedding cache of a *part*,
``OUT.shards/part-I-of-N/`` (an index folder with no items), committing each batch as it goes: a killed
shard rerun with ``--resume`` skips what its part holds. The merge is an ordinary ``genvision index build
FOLDER -o OUT`` that first imports every part's cache, so it embeds only what no shard finished and writes
the index one process would have written; then the parts are deleted. Under ``torchrun`` rank 0 waits for
every part's ``done`` marker and merges by itself.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from pathlib import Path

from ...errors import ConfigError, display_path
from ...jobs import Shard
from .database import Database, is_index
from .ingest import AddReport, cache_key
from .store import Index

PARTS_SUFFIX = ".shards"
PART_NAME = re.compile(r"part-\d+-of-\d+")
DONE = "done"  # marker file in a finished part


def parts_dir(output: Path) -> Path:
    return output.with_name(output.name + PARTS_SUFFIX)


def part_path(output: Path, shard: Shard) -> Path:
    return parts_dir(output) / f"part-{shard.index}-of-{shard.count}"


def embed_part(output: Path, files: list[Path], shard: Shard, *, embedder, index_type: str, resume: bool,
               overwrite: bool, progress: bool) -> AddReport:
    """Shard ``shard``'s share of ``files`` into its part's embedding cache; marks the part done."""
    part = part_path(output, shard)
    if part.exists():
        if not is_index(part):
            raise ConfigError(f"{display_path(part)} exists and is not a shard's part; move it away")
        if overwrite and not resume:
            shutil.rmtree(part)
        elif not resume:
            raise ConfigError(f"{display_path(part)} exists from an earlier run: pass --resume to continue it, or "
                              f"--overwrite to start this shard again")
    if not part.exists():
        part.mkdir(parents=True)
        Database.initialise(part, spec=embedder.spec, key=cache_key(embedder), dim=embedder.dim,
                            binary=embedder.binary, index_type=index_type)
    (part / DONE).unlink(missing_ok=True)
    with Index.open(part, writable=True, embedder=embedder) as cache:
        report = cache.embed_to_cache(shard.take(files), progress=progress)
    (part / DONE).touch()
    return report


def wait_for_parts(output: Path, count: int, *, poll_s: float = 1.0) -> None:
    """Until every part of an N-shard build is done (torchrun stops every rank if one of them fails)."""
    pending = [part_path(output, Shard(i, count)) for i in range(count)]
    while pending:
        pending = [p for p in pending if not (p / DONE).is_file()]
        if pending:
            time.sleep(poll_s)


def import_parts(index: Index, output: Path) -> int:
    """Every part's cached vectors into the index being built; how many there were."""
    return sum(index.import_cache(part) for part in _parts(output))


def _parts(output: Path) -> list[Path]:
    """The part folders under OUT.shards/ (what a shard wrote; anything else there is left alone)."""
    folder = parts_dir(output)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if PART_NAME.fullmatch(p.name) and is_index(p))


def remove_parts(output: Path) -> None:
    """Delete the parts once the merged index is committed, and OUT.shards/ if nothing else is in it."""
    for part in _parts(output):
        shutil.rmtree(part, ignore_errors=True)
    with contextlib.suppress(OSError):
        parts_dir(output).rmdir()  # only when empty: a file of the user's there stays
