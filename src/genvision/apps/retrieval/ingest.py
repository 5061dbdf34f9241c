"""What an ``add`` does before it commits: decide which items are new, changed or unchanged, and get
their vectors (from the embedding cache when the content was seen before, else from the embedder in
batches). The store commits the result as one generation.

An item in flight is ``pending[name] = [sha256, size, mtime_ns, metadata, vector]``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ...errors import ConfigError, GenvisionError, display_path, reason
from .database import Database
from .embed import DEFAULT_SPEC, Embedder, make_embedder

VECTORS_PREFIX = "vectors:"  # "vectors:128" / "vectors:256:binary": an index of precomputed vectors
EMBED_BATCH = 64  # images decoded and embedded at a time: bounds memory whatever the file count


@dataclass
class AddReport:
    added: int = 0
    unchanged: int = 0
    updated: int = 0
    embedded: int = 0  # vectors computed by the embedder
    cached: int = 0  # vectors taken from the embedding cache (same content seen before)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (name, one-line reason)


class PrecomputedVectors(Embedder):
    """The embedder of an index made from vectors (benchmarks, other tools): it cannot embed images."""

    def __init__(self, spec: str):
        parts = spec[len(VECTORS_PREFIX):].split(":")
        if not parts[0].isdigit() or not 1 <= int(parts[0]) <= 65536 or parts[1:] not in ([], ["binary"]):
            raise ConfigError(f"bad vector spec {spec!r}: use vectors:DIM (float) or vectors:BITS:binary")
        self.dim, self.binary = int(parts[0]), parts[1:] == ["binary"]
        if self.binary and self.dim % 8:
            raise ConfigError(f"{spec}: binary vectors need a multiple of 8 bits")
        self.spec = self.cache_key = f"{VECTORS_PREFIX}{self.dim}" + (":binary" if self.binary else "")

    def embed(self, images):
        raise ConfigError(f"this index holds precomputed vectors ({self.spec}); search it with a vector, not an image")


def embedder_for(spec: str | None, *, device: str | None = None, batch_size: int = EMBED_BATCH) -> Embedder:
    """The embedder ``spec`` names (None: the default photo embedding), or :class:`PrecomputedVectors`."""
    spec = spec or DEFAULT_SPEC
    if spec.startswith(VECTORS_PREFIX):
        return PrecomputedVectors(spec)
    return make_embedder(spec, device=device, batch_size=batch_size)


def cache_key(embedder: Embedder) -> str:
    """What cached vectors are keyed by: the spec plus a fingerprint of the weights where there are any."""
    return getattr(embedder, "cache_key", None) or embedder.spec


def content_hash(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(data).hexdigest()


def image_hash(image: Image.Image) -> str:
    """In-memory images: the hash of their pixels (mode and size included)."""
    digest = hashlib.sha256(f"{image.mode}|{image.size}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def metadata_list(metadata, count: int) -> list[dict]:
    """One dict per item: ``None``, one dict for all, or a list with one per item."""
    if metadata is None or isinstance(metadata, dict):
        return [dict(metadata or {})] * count
    items = list(metadata)
    if len(items) != count or not all(isinstance(m, dict) for m in items):
        raise ConfigError(f"metadata: expected one dict per item ({count}), got {len(items)}")
    return items


def collect_files(db: Database, paths: list[Path], metas: list[dict], report: AddReport, *,
                  progress: bool) -> tuple[dict, dict, list]:
    """(pending, existing rows, to_embed) for files named by their resolved path. A file with the size,
    mtime and metadata its row records is unchanged without being read; one with the same content gets
    its row's new stat; the others are hashed and queued for a vector."""
    names = [str(p.resolve()) for p in paths]
    existing = db.rows_by_name(names)
    pending, to_embed = {}, []
    for path, name, meta in tqdm(list(zip(paths, names, metas)), desc="hash", unit="file", disable=not progress):
        if name in pending:
            continue  # the same file twice
        try:
            st = os.stat(path)
            old = existing.get(name)
            if old is not None and (old.size, old.mtime_ns, old.metadata) == (st.st_size, st.st_mtime_ns, meta):
                report.unchanged += 1
                continue
            with open(path, "rb") as fh:
                sha = content_hash(fh.read())
        except OSError as exc:
            report.failed.append((display_path(path), reason(exc)))
            continue
        pending[name] = [sha, st.st_size, st.st_mtime_ns, meta, None]
        if old is None or old.sha256 != sha:
            to_embed.append((name, path, sha))
    return pending, existing, to_embed


def fill_vectors(db: Database, embedder: Embedder, check: Callable[[np.ndarray, int], np.ndarray], pending: dict,
                 to_embed: list, report: AddReport, *, load: Callable, progress: bool, existing: dict) -> None:
    """Vectors for ``to_embed`` [(name, source, sha or None)]: from the cache, else ``load(source)`` and
    embed in batches; each batch's vectors go into the cache at once, so a rerun after a crash skips
    them. A None sha (in-memory images) is the hash of the loaded pixels."""
    key = cache_key(embedder)
    bar = tqdm(total=len(to_embed), desc="embed", unit="img", disable=not progress)
    for start in range(0, len(to_embed), EMBED_BATCH):
        chunk = to_embed[start:start + EMBED_BATCH]
        batch, images = [], []
        for name, source, sha in chunk:
            cached = db.cached_vector(sha, key) if sha is not None else None
            if cached is None:
                try:
                    image = load(source)
                except GenvisionError as exc:
                    report.failed.append((display_path(source), reason(exc)))
                    del pending[name]
                    continue
                if sha is None:
                    sha = pending[name][0] = image_hash(image)
                    if name in existing and existing[name].sha256 == sha:
                        continue  # unchanged: its row keeps its vector
                    cached = db.cached_vector(sha, key)
            if cached is not None:
                pending[name][4] = cached
                report.cached += 1
            else:
                batch.append((name, sha))
                images.append(image)
        if images:
            vectors = check(embedder.embed(images), len(images))
            for (name, _), vector in zip(batch, vectors):
                pending[name][4] = vector
            db.cache_vectors([(sha, key, vector.tobytes()) for (_, sha), vector in zip(batch, vectors)])
            report.embedded += len(images)
        bar.update(len(chunk))
    bar.close()


def sort_changes(pending: dict, existing: dict, report: AddReport) -> tuple[list, list, list]:
    """``pending`` -> (inserts, updates, touches): new names, known names with new content, and known
    content with a new stat or metadata (no new vector)."""
    inserts, updates, touches = [], [], []
    for name, (sha, size, mtime, meta, vector) in pending.items():
        old = existing.get(name)
        if old is None:
            inserts.append((name, sha, size, mtime, meta, vector))
            report.added += 1
        elif old.sha256 == sha:
            if (old.size, old.mtime_ns, old.metadata) != (size, mtime, meta):
                touches.append((old.id, size, mtime, meta))
            report.unchanged += 1
        else:
            updates.append((old.id, sha, size, mtime, meta, vector))
            report.updated += 1
    return inserts, updates, touches


def images_to_embed(names: Sequence[str], metas: list[dict]) -> tuple[dict, list]:
    """(pending, to_embed) for in-memory images; their hashes come when they are loaded."""
    pending, to_embed = {}, []
    for position, (name, meta) in enumerate(zip(names, metas)):
        if name not in pending:
            pending[name] = [None, None, None, meta, None]
            to_embed.append((name, position, None))
    return pending, to_embed


__all__ = ["EMBED_BATCH", "VECTORS_PREFIX", "AddReport", "PrecomputedVectors", "cache_key", "collect_files",
           "content_hash", "embedder_for", "fill_vectors", "image_hash", "images_to_embed", "metadata_list",
           "sort_changes"]
