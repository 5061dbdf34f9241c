"""The persistent index: ``NAME.gvindex/`` holds ``index.sqlite`` (the truth: rows, vectors, settings)
and ``vectors.<generation>.faiss`` (the search structure built from those vectors).

Commit protocol (so a killed ``add`` leaves the index as it was, and rows and vectors never
disagree): the new faiss file is written to a temporary name, fsynced and renamed to
``vectors.<gen+1>.faiss``; then one SQLite transaction writes the rows, ``generation = gen+1`` and the
file's sha256. Only then are older faiss files deleted. On open, the file named by the database's
generation is used if its sha256 matches; anything else (a crash between the two steps, a damaged
file, a missing one) is ignored and the faiss index is rebuilt from the vectors in SQLite.

One writer at a time holds ``writer.lock`` (fcntl); readers never block (SQLite WAL) and pick up a
newer generation before each search.

Python API::

    with Index.open("photos.gvindex") as index:
        for hit in index.search("query.jpg", k=5):
            print(hit.rank, hit.path, hit.score)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np
from PIL import Image

from ... import atomic
from ...errors import ConfigError, display_path
from . import backend, ingest
from .database import Database, IndexLock, check_location, is_index, read_settings
from .embed import Embedder, load_rgb
from .ingest import AddReport, embedder_for

SUFFIX = ".gvindex"
RETRAIN_GROWTH = 4  # an approximate index trained and tuned on n vectors is rebuilt once the collection passes 4 n


@dataclass(frozen=True)
class Hit:
    rank: int  # 1 = best
    id: int  # the row id (stable: ids are never reused)
    path: str  # the item's name: a resolved file path, or "mnist:train/123"
    score: float  # higher = more similar: cosine for float vectors, 1 - hamming/bits for hashes
    sha256: str
    metadata: dict


class Index:
    """A persistent image index. Make one with :meth:`create`, open one with :meth:`open`."""

    def __init__(self, path: Path, db: Database, *, writable: bool, lock: IndexLock | None,
                 embedder: Embedder | None, device: str | None):
        self.path, self._db, self.writable, self._lock = path, db, writable, lock
        self._embedder, self._device = embedder, device
        self.settings = read_settings(db, path)
        self.spec, self.dim, self.binary = self.settings["spec"], self.settings["dim"], self.settings["binary"]
        self._faiss = None
        self._generation = -1
        self._kind = "flat"
        if embedder is not None:
            self._check_embedder(embedder)
        self._load()

    # ------------------------------------------------------------------ opening

    @classmethod
    def create(cls, path, *, embed: str | Embedder | None = None, index_type: str = "auto", overwrite: bool = False,
               device: str | None = None) -> Index:
        """A new empty index at ``path`` (a folder), opened for writing. ``overwrite`` replaces an
        existing *index* there (never another kind of folder or file)."""
        with cls.building(path, embed=embed, index_type=index_type, overwrite=overwrite, device=device) as staged:
            embedder = staged.embedder
        return cls.open(path, writable=True, embedder=embedder, device=device)

    @classmethod
    @contextlib.contextmanager
    def building(cls, path, *, embed: str | Embedder | None = None, index_type: str = "auto",
                 overwrite: bool = False, device: str | None = None) -> Iterator[Index]:
        """A writable index built in a hidden folder next to ``path`` and moved there when the block
        ends without error (an interrupted build leaves any old index untouched)::

            with Index.building("photos.gvindex", embed="phash") as index:
                index.add(files)
        """
        target = Path(path)
        check_location(target, overwrite=overwrite)
        backend.check_index_type(index_type)
        embedder = embed if isinstance(embed, Embedder) else embedder_for(embed, device=device)
        backend.choose_kind(index_type, 0, embedder.binary)  # ivfpq on hashes fails here, before any work
        staged = atomic.staging_dir(target)
        try:
            Database.initialise(staged, spec=embedder.spec, key=ingest.cache_key(embedder), dim=embedder.dim,
                                binary=embedder.binary, index_type=index_type)
            index = cls.open(staged, writable=True, embedder=embedder, device=device)
            try:
                yield index
            finally:
                index.close()
            check_location(target, overwrite=overwrite)  # again: something may have appeared meanwhile
            # an index being replaced: wait for its writer, so no add lands in the copy that goes away
            old_writer = IndexLock.acquire(target, timeout=30.0) if is_index(target) else None
            try:
                atomic.replace_dir(staged, target)
            finally:
                if old_writer is not None:
                    old_writer.release()
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise

    @classmethod
    def open(cls, path, *, writable: bool = False, embedder: Embedder | None = None, device: str | None = None,
             lock_timeout: float = 30.0) -> Index:
        """Open an existing index; ``writable`` waits up to ``lock_timeout`` s for other writers."""
        path = Path(path)
        db = Database.connect(path, writable=writable)
        lock = None
        try:
            if writable:
                lock = IndexLock.acquire(path, timeout=lock_timeout)
                atomic.remove_stale_temporaries(path)
            return cls(path, db, writable=writable, lock=lock, embedder=embedder, device=device)
        except BaseException:
            db.close()
            if lock is not None:
                lock.release()
            raise

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ loading the vectors

    def _load(self) -> None:
        """Read the faiss file the database names; rebuild from SQLite if it is missing or damaged
        (a writer then saves the rebuilt one as a new generation)."""
        for attempt in range(5):
            with self._db.reading():
                state = self._db.state()
                data = self._db.read_vectors_file(state)
                if data is None and not self.writable and attempt < 4:
                    continue  # a writer may have just replaced it: look again in a fresh snapshot
                index = None
                if data is not None:
                    with contextlib.suppress(RuntimeError):  # faiss cannot parse it: rebuild below
                        index = backend.deserialize(data, self.binary)
                    if index is not None and (index.ntotal != state.count or index.d != self.dim):
                        index = None
                rebuilt = index is None
                if rebuilt:
                    ids, vectors = self._db.vectors()
                    kind = backend.choose_kind(self.settings["index_type"], len(ids), self.binary)
                    index, params = backend.build(kind, self.dim, self.binary, ids, vectors)
                    state = state.replace(kind=kind, params=params, trained_on=len(ids))
                else:
                    backend.set_search_params(index, state.kind, state.params)
            self._faiss, self._generation, self._kind, self._state = index, state.generation, state.kind, state
            if rebuilt and self.writable:
                self._commit(index, state, [], [], [], [])
            elif self.writable:
                self._remove_other_generations()  # what a writer killed before or after its commit left
            return

    def _refresh(self) -> None:
        """Readers: pick up what a writer committed since we loaded."""
        if not self.writable and self._db.generation() != self._generation:
            self._load()

    # ------------------------------------------------------------------ embedding

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._check_embedder(embedder_for(self.spec, device=self._device))
        return self._embedder

    def _check_embedder(self, embedder: Embedder) -> Embedder:
        built_with = self.settings.get("embedder_key")
        if built_with and ingest.cache_key(embedder) != built_with:
            raise ConfigError(f"{display_path(self.path)}: the embedding {embedder.spec} has changed since the index was "
                              "built (its weights differ); build the index again")
        if (embedder.dim, bool(embedder.binary)) != (self.dim, self.binary):
            raise ConfigError(f"{display_path(self.path)}: the embedder {embedder.spec} gives "
                              f"{'binary' if embedder.binary else 'float'} {embedder.dim}-d vectors, the index holds "
                              f"{'binary' if self.binary else 'float'} {self.dim}-d ones ({self.spec})")
        return embedder

    def embed_query(self, images) -> np.ndarray:
        """Images (PIL, or paths) -> vectors as the index stores them."""
        pil = [image if isinstance(image, Image.Image) else load_rgb(image) for image in images]
        return self._checked_vectors(self.embedder.embed(pil), len(pil))

    def _checked_vectors(self, vectors, count: int | None = None) -> np.ndarray:
        """Float: finite, (N, dim), L2-normalised float32. Binary: (N, dim // 8) uint8."""
        width = self.dim // 8 if self.binary else self.dim
        array = np.asarray(vectors)
        if array.ndim == 1:
            array = array[None]  # (width,) -> (1, width)
        if array.ndim != 2 or array.shape[1] != width or (count is not None and len(array) != count):
            raise ConfigError(f"vectors must have shape (N, {width}) for this index ({self.spec}), "
                              f"got {tuple(np.shape(vectors))}")
        if self.binary:
            if array.dtype != np.uint8:
                raise ConfigError(f"binary vectors must be packed uint8, got {array.dtype}")
            return np.ascontiguousarray(array)
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ConfigError("vectors contain NaN or infinite values")
        norms = np.linalg.norm(array, axis=1, keepdims=True)  # (N, 1)
        return array / np.maximum(norms, 1e-12)  # cosine by inner product; a zero vector stays zero

    # ------------------------------------------------------------------ adding

    def _check_writable(self) -> None:
        if not self.writable:
            raise ConfigError(f"{display_path(self.path)} is open for reading; open it with writable=True to change it")

    def add(self, files, *, progress: bool = False, metadata: dict | Sequence[dict] | None = None) -> AddReport:
        """Add image files (by resolved path). Unchanged files (same size and mtime, or same content)
        are skipped; changed ones are re-embedded; content seen before comes from the embedding cache.
        Unreadable files are reported in ``failed`` and the rest are added, in one commit.
        ``metadata``: one dict for all files or one per file (e.g. ``{"label": "cats"}``)."""
        self._check_writable()
        paths = [Path(f) for f in files]
        report = AddReport()
        pending, existing, to_embed = ingest.collect_files(self._db, paths, ingest.metadata_list(metadata, len(paths)),
                                                           report, progress=progress)
        ingest.fill_vectors(self._db, self.embedder, self._checked_vectors, pending, to_embed, report, load=load_rgb,
                            progress=progress, existing=existing)
        return self._apply(pending, existing, report)

    def embed_to_cache(self, files, *, progress: bool = False) -> AddReport:
        """Embed image files into this index's embedding cache without adding them as items: one shard's
        work in a sharded build (:mod:`.shards`). Files whose content the cache holds are skipped, so a
        killed shard continues where it stopped; each batch is committed as it is embedded."""
        self._check_writable()
        paths = [Path(f) for f in files]
        report = AddReport()
        pending, existing, to_embed = ingest.collect_files(self._db, paths, [{}] * len(paths), report,
                                                           progress=progress)
        ingest.fill_vectors(self._db, self.embedder, self._checked_vectors, pending, to_embed, report, load=load_rgb,
                            progress=progress, existing=existing)
        return report

    def import_cache(self, other: Path) -> int:
        """Copy the embedding cache of the index folder ``other`` (a shard's part) into this one; returns
        how many vectors this index's embedder can use from it."""
        self._check_writable()
        return self._db.import_cache(Path(other), ingest.cache_key(self.embedder))

    def add_images(self, images, names, *, metadata: Sequence[dict] | None = None,
                   progress: bool = False) -> AddReport:
        """Add in-memory PIL images under ``names`` (e.g. ``mnist:train/123``); ``images`` may be a lazy
        sequence (only a batch is held at a time)."""
        self._check_writable()
        names = [str(n) for n in names]
        if len(images) != len(names):
            raise ConfigError(f"{len(images)} images but {len(names)} names")
        report = AddReport()
        existing = self._db.rows_by_name(names)
        pending, to_embed = ingest.images_to_embed(names, ingest.metadata_list(metadata, len(names)))
        ingest.fill_vectors(self._db, self.embedder, self._checked_vectors, pending, to_embed, report,
                            load=lambda position: images[position], progress=progress, existing=existing)
        return self._apply(pending, existing, report)

    def add_vectors(self, vectors: np.ndarray, names, *, metadata: Sequence[dict] | None = None) -> AddReport:
        """Add precomputed vectors (float rows are L2-normalised here) under ``names``."""
        self._check_writable()
        names = [str(n) for n in names]
        array = self._checked_vectors(vectors, len(names))
        metas = ingest.metadata_list(metadata, len(names))
        existing = self._db.rows_by_name(names)
        pending = {name: [ingest.content_hash(row.tobytes()), None, None, meta, row]
                   for name, meta, row in zip(names, metas, array)}
        return self._apply(pending, existing, AddReport())

    def _apply(self, pending: dict, existing: dict, report: AddReport) -> AddReport:
        inserts, updates, touches = ingest.sort_changes(pending, existing, report)
        if inserts or updates or touches:
            self._change(inserts, updates, touches, [])
        return report

    # ------------------------------------------------------------------ removing

    def remove(self, names_or_paths) -> int:
        """Remove items by name or path (a path is resolved as ``add`` named it). Any unknown one is a
        ConfigError naming it, and nothing is removed."""
        self._check_writable()
        wanted = [str(n) for n in names_or_paths]
        rows = self._db.rows_by_name(wanted)
        ids, missing = set(), []
        for text in wanted:
            row = rows.get(text)
            if row is None:
                resolved = str(Path(text).resolve())
                row = self._db.rows_by_name([resolved]).get(resolved)
            if row is None:
                missing.append(text)
            else:
                ids.add(row.id)
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ConfigError(f"{display_path(missing[0])}{more} is not in the index {display_path(self.path)}; "
                              "nothing was removed")
        if ids:
            self._change([], [], [], sorted(ids))
        return len(ids)

    # ------------------------------------------------------------------ committing

    def _change(self, inserts: list, updates: list, touches: list, deletes: list[int]) -> None:
        state = self._state
        first_id = state.next_id
        insert_ids = np.arange(first_id, first_id + len(inserts), dtype=np.int64)
        count = state.count + len(inserts) - len(deletes)
        kind = backend.choose_kind(self.settings["index_type"], count, self.binary)
        vector_change = bool(inserts or updates or deletes)
        rebuild = vector_change and (
            kind != state.kind or (kind != "flat" and count > RETRAIN_GROWTH * max(state.trained_on, 1))
            or ((updates or deletes) and not backend.supports_remove(kind)))
        update_ids = np.array([u[0] for u in updates], dtype=np.int64)
        new_ids = np.concatenate([update_ids, insert_ids])
        new_vectors = np.stack([u[5] for u in updates] + [i[5] for i in inserts]) if len(new_ids) else None
        try:
            if rebuild:
                with self._db.reading():
                    old_ids, old_vectors = self._db.vectors()
                keep = ~np.isin(old_ids, np.concatenate([update_ids, np.asarray(deletes, np.int64)]))
                all_ids, all_vectors = old_ids[keep], old_vectors[keep]
                if new_vectors is not None:
                    all_ids = np.concatenate([all_ids, new_ids])
                    all_vectors = np.concatenate([all_vectors, new_vectors])
                index, params = backend.build(kind, self.dim, self.binary, all_ids, all_vectors)
                state = state.replace(kind=kind, params=params, trained_on=len(all_ids))
            else:
                index = self._faiss
                removed = np.concatenate([update_ids, np.asarray(deletes, np.int64)])
                if len(removed):
                    backend.remove(index, removed)
                if new_vectors is not None:
                    backend.add(index, new_ids, new_vectors)
            state = state.replace(count=count, next_id=first_id + len(inserts))
            self._commit(index, state, [(int(i), *row) for i, row in zip(insert_ids, inserts)],
                         updates, touches, deletes)
        except BaseException:
            self._load()  # the in-memory index may be half changed: back to what is on disk
            raise

    def _commit(self, index, state, inserts, updates, touches, deletes) -> None:
        """Write the faiss file for generation + 1, then commit rows and generation in one transaction."""
        generation = state.generation + 1
        data = backend.serialize(index, self.binary)
        target = self.path / f"vectors.{generation}.faiss"
        atomic.write_file(target, lambda fh: fh.write(memoryview(data)))
        _fsync_dir(self.path)
        state = state.replace(generation=generation, vectors_sha256=ingest.content_hash(data),
                              updated=datetime.now(UTC).isoformat(timespec="seconds"))
        self._db.commit(state, inserts, updates, touches, deletes)
        self._faiss, self._generation, self._kind, self._state = index, generation, state.kind, state
        self._remove_other_generations()

    def _remove_other_generations(self) -> None:
        """Delete faiss files the database does not name (older generations, uncommitted ones). Only the
        writer does this; a reader that loses a file this way looks again at the newer generation."""
        current = self.path / f"vectors.{self._generation}.faiss"
        for old in self.path.glob("vectors.*.faiss"):
            if old != current:
                with contextlib.suppress(OSError):
                    old.unlink()

    # ------------------------------------------------------------------ searching

    def search_vectors(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (Q, min(k, count)); see :mod:`.backend` for what a score is."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}")
        queries = self._checked_vectors(queries)
        self._refresh()
        return backend.search(self._faiss, queries, int(k), self.binary, self.dim)

    def search(self, query, k: int = 10) -> list[Hit]:
        """``query``: an image path, a PIL image, or a vector -> the k best hits, best first."""
        if isinstance(query, np.ndarray):
            vector = self._checked_vectors(query)[:1]
        else:
            vector = self.embed_query([query])
        for _ in range(10):
            scores, ids = self.search_vectors(vector, k)
            found = [(float(score), int(item)) for score, item in zip(scores[0], ids[0]) if item >= 0]
            with self._db.reading():  # the rows of the generation that was searched
                current = self.writable or self._db.generation() == self._generation
                rows = self._db.rows_by_id([item for _, item in found]) if current else {}
            if current:
                break  # else a writer committed between the search and the lookup: search again
        else:
            raise ConfigError(f"{display_path(self.path)} changed during 10 searches in a row; try again")
        return [Hit(rank, item, rows[item].name, score, rows[item].sha256, rows[item].metadata)
                for rank, (score, item) in enumerate(found, start=1)]

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids (N,) int64, vectors (N, width)) in id order, as stored."""
        with self._db.reading():
            return self._db.vectors()

    def names(self) -> dict[int, str]:
        """id -> name of every item."""
        with self._db.reading():
            return self._db.names()

    def metadata(self) -> dict[int, dict]:
        """id -> metadata of every item (``label`` for class sub-folders and datasets)."""
        with self._db.reading():
            return self._db.metadata()

    def __len__(self) -> int:
        self._refresh()
        return self._state.count

    def info(self) -> dict:
        self._refresh()
        state = self._state
        size = _stored_bytes(self.path)
        return {"path": str(self.path), "count": state.count, "dim": self.dim, "binary": self.binary,
                "spec": self.spec, "index_type": self.settings["index_type"], "index_kind": state.kind,
                "search_params": state.params, "generation": state.generation, "file_bytes": size,
                "created": self.settings["created"], "updated": state.updated,
                "score": "1 - hamming/bits" if self.binary else "cosine similarity"}


def _stored_bytes(path: Path) -> int:
    """Bytes of the index's files. A writer in another process may rename or delete files while they are
    listed (its staged writes, a superseded generation's vectors): those are skipped, never an error in
    the reader."""
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith(atomic.TMP_PREFIX):  # a write still in progress: not part of any generation
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file():
                    total += entry.stat().st_size
    return total


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable before the database points at its result."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["SUFFIX", "AddReport", "Hit", "Index", "embedder_for"]
