"""The SQLite half of an index (``index.sqlite``), its writer lock, and the checks that refuse a
corrupt or foreign index with one line.

Tables: ``meta(key, value)`` (format, version, embedder spec, dim, binary, index type and the
committed state: generation, count, next id, faiss kind and search parameters, the faiss file's
sha256); ``items(id, name UNIQUE, sha256, size, mtime_ns, metadata JSON, vector BLOB)``; and
``embedding_cache(sha256, spec, vector)`` so content seen before (a re-added or moved file) is not
embedded again. Ids come from ``next_id`` and are never reused.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ...errors import ConfigError, display_path, reason

try:
    import fcntl
except ImportError:  # not POSIX: writers are not serialised (documented limitation)
    fcntl = None

FORMAT = "genvision-index"
FORMAT_VERSION = 1
DB_NAME = "index.sqlite"
LOCK_NAME = "writer.lock"
SQLITE_MAGIC = b"SQLite format 3\x00"
_CHUNK = 500  # names per IN (...) query: under SQLite's variable limit

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, sha256 TEXT NOT NULL, size INTEGER,
                   mtime_ns INTEGER, metadata TEXT NOT NULL, vector BLOB NOT NULL);
CREATE INDEX items_sha256 ON items(sha256);
CREATE TABLE embedding_cache(sha256 TEXT NOT NULL, spec TEXT NOT NULL, vector BLOB NOT NULL,
                             PRIMARY KEY (sha256, spec)) WITHOUT ROWID;
"""
_SETTINGS = ("format", "format_version", "spec", "dim", "binary", "index_type", "created")


@dataclass(frozen=True)
class State:
    """What one commit recorded (the ``meta`` rows that change)."""

    generation: int = 0
    count: int = 0
    next_id: int = 1
    kind: str = "flat"
    params: dict | None = None
    trained_on: int = 0
    vectors_sha256: str = ""
    updated: str = ""

    def replace(self, **changes) -> State:
        return replace(self, **changes)


@dataclass(frozen=True)
class Row:
    id: int
    name: str
    sha256: str
    size: int | None
    mtime_ns: int | None
    metadata: dict


def is_index(path: Path) -> bool:
    """Whether ``path`` looks like a genvision index folder (what --overwrite may replace)."""
    db = path / DB_NAME
    try:
        with open(db, "rb") as fh:
            return path.is_dir() and fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def check_location(target: Path, *, overwrite: bool) -> None:
    """An index may be written at ``target``: nothing is there, or (with overwrite) an index or an empty folder."""
    if not os.path.lexists(target):
        return
    name = display_path(target)
    if not overwrite:
        raise ConfigError(f"{name} already exists; pass --overwrite to replace it")
    empty_folder = target.is_dir() and not target.is_symlink() and not any(target.iterdir())
    if not (empty_folder or (is_index(target) and not target.is_symlink())):
        raise ConfigError(f"{name} exists and is not a genvision index; refusing to replace it")


def _guarded(method):
    """SQLite errors on a damaged file become one line naming the index."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise ConfigError(f"{display_path(self.path)}: cannot use the index database ({reason(exc)})") from exc
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{display_path(self.path)}: corrupt index ({reason(exc)})") from exc
    return wrapper


class Database:
    def __init__(self, path: Path, connection: sqlite3.Connection, meta: dict):
        self.path, self._conn, self.meta, self._depth = path, connection, meta, 0
        self.width = int(meta["dim"]) // 8 if meta["binary"] == "1" else int(meta["dim"]) * 4  # bytes per vector
        self.dtype = np.uint8 if meta["binary"] == "1" else np.float32

    @staticmethod
    def initialise(folder: Path, *, spec: str, key: str, dim: int, binary: bool, index_type: str) -> None:
        conn = sqlite3.connect(folder / DB_NAME, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
            conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
            now = datetime.now(UTC).isoformat(timespec="seconds")
            meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "spec": spec, "dim": str(int(dim)),
                    "binary": "1" if binary else "0", "index_type": index_type, "created": now, "embedder_key": key}
            meta |= _state_rows(State(updated=now))
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", meta.items())
            conn.execute("COMMIT")
        finally:
            conn.close()

    @classmethod
    def connect(cls, path: Path, *, writable: bool) -> Database:
        name = display_path(path)
        if not path.exists():
            raise ConfigError(f"{name}: no such index (make one with genvision index build)")
        if not path.is_dir():
            raise ConfigError(f"{name}: not a genvision index (an index is a folder made by genvision index build)")
        db = path / DB_NAME
        try:
            with open(db, "rb") as fh:
                head = fh.read(16)
        except FileNotFoundError:
            raise ConfigError(f"{name}: not a genvision index (it has no {DB_NAME})") from None
        except OSError as exc:
            raise ConfigError(f"{name}: cannot read {DB_NAME} ({reason(exc)})") from exc
        if head != SQLITE_MAGIC:
            raise ConfigError(f"{name}: corrupt index ({DB_NAME} is not an SQLite database)")
        uri = f"file:{urllib.parse.quote(str(db.resolve()))}?mode={'rw' if writable else 'ro'}"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"{name}: cannot open the index ({reason(exc)})") from exc
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"meta", "items", "embedding_cache"} <= tables:
                raise ConfigError(f"{name}: not a genvision index (its database has other tables)")
            meta = dict(conn.execute("SELECT key, value FROM meta"))
            _check_meta(meta, name)
            if writable:
                conn.execute("PRAGMA synchronous=FULL")  # a commit survives power loss, not just a kill
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConfigError(f"{name}: corrupt index ({reason(exc)})") from exc
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, meta)

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def reading(self):
        """One consistent snapshot for everything read inside (nested uses share the outer one)."""
        self._depth += 1
        try:
            if self._depth == 1:
                self._conn.execute("BEGIN")
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._conn.in_transaction:
                self._conn.execute("COMMIT")

    @_guarded
    def state(self) -> State:
        meta = dict(self._conn.execute("SELECT key, value FROM meta"))
        try:
            return State(generation=int(meta["generation"]), count=int(meta["count"]), next_id=int(meta["next_id"]),
                         kind=meta["kind"], params=json.loads(meta["params"]), trained_on=int(meta["trained_on"]),
                         vectors_sha256=meta["vectors_sha256"], updated=meta["updated"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{display_path(self.path)}: corrupt index (bad meta: {reason(exc)})") from exc

    @_guarded
    def generation(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else -1

    def read_vectors_file(self, state: State) -> bytes | None:
        """The faiss file of ``state``'s generation if it is there and is the one committed (sha256)."""
        try:
            data = (self.path / f"vectors.{state.generation}.faiss").read_bytes()
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == state.vectors_sha256 else None

    @_guarded
    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self._conn.execute("SELECT id, vector FROM items ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        blob = b"".join(r[1] for r in rows)
        if len(blob) != len(rows) * self.width or any(len(r[1]) != self.width for r in rows):
            raise ConfigError(f"{display_path(self.path)}: corrupt index (a stored vector has the wrong length)")
        per_row = self.width // np.dtype(self.dtype).itemsize
        return ids, np.frombuffer(blob, dtype=self.dtype).reshape(len(rows), per_row).copy()  # (N, width)

    def _rows(self, column: str, keys: list) -> dict:
        found = {}
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start:start + _CHUNK]
            query = (f"SELECT id, name, sha256, size, mtime_ns, metadata FROM items WHERE {column} IN "
                     f"({', '.join('?' * len(chunk))})")
            for r in self._conn.execute(query, chunk):
                row = Row(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]))
                found[row.name if column == "name" else row.id] = row
        return found

    @_guarded
    def rows_by_name(self, names: list[str]) -> dict[str, Row]:
        return self._rows("name", list(dict.fromkeys(names)))

    @_guarded
    def rows_by_id(self, ids: list[int]) -> dict[int, Row]:
        return self._rows("id", list(dict.fromkeys(ids)))

    @_guarded
    def names(self) -> dict[int, str]:
        return dict(self._conn.execute("SELECT id, name FROM items ORDER BY id"))

    @_guarded
    def metadata(self) -> dict[int, dict]:
        return {item: json.loads(text) for item, text in self._conn.execute("SELECT id, metadata FROM items ORDER BY id")}

    @_guarded
    def cached_vector(self, sha256: str, spec: str) -> np.ndarray | None:
        row = self._conn.execute("SELECT vector FROM embedding_cache WHERE sha256 = ? AND spec = ?",
                                 (sha256, spec)).fetchone()
        if row is None or len(row[0]) != self.width:
            return None
        return np.frombuffer(row[0], dtype=self.dtype).copy()

    @_guarded
    def cache_vectors(self, entries: list[tuple[str, str, bytes]]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO embedding_cache(sha256, spec, vector) VALUES (?, ?, ?)",
                                   entries)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    @_guarded
    def import_cache(self, other: Path, spec: str) -> int:
        """Copy ``other``'s (an index folder's) cached vectors for ``spec`` into this cache, in one transaction."""
        source = Database.connect(other, writable=False)
        try:
            rows = source._conn.execute("SELECT sha256, spec, vector FROM embedding_cache WHERE spec = ?",
                                        (spec,)).fetchall()
        finally:
            source.close()
        rows = [row for row in rows if len(row[2]) == self.width]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR IGNORE INTO embedding_cache(sha256, spec, vector) VALUES (?, ?, ?)", rows)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return len(rows)

    @_guarded
    def commit(self, state: State, inserts: list, updates: list, touches: list, deletes: list[int]) -> None:
        """Rows and the new state in one transaction: the commit point of a change."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("DELETE FROM items WHERE id = ?", [(int(i),) for i in deletes])
            conn.executemany("UPDATE items SET sha256 = ?, size = ?, mtime_ns = ?, metadata = ?, vector = ? "
                             "WHERE id = ?", [(sha, size, mtime, json.dumps(meta), vector.tobytes(), int(item))
                                              for item, sha, size, mtime, meta, vector in updates])
            conn.executemany("UPDATE items SET size = ?, mtime_ns = ?, metadata = ? WHERE id = ?",
                             [(size, mtime, json.dumps(meta), int(item)) for item, size, mtime, meta in touches])
            conn.executemany("INSERT INTO items(id, name, sha256, size, mtime_ns, metadata, vector) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(item, name, sha, size, mtime, json.dumps(meta), vector.tobytes())
                              for item, name, sha, size, mtime, meta, vector in inserts])
            count = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            if count != state.count:  # a bug, never a user error: refuse to record a mismatch
                raise RuntimeError(f"index commit would record {state.count} items but the table has {count}")
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", _state_rows(state).items())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


def _state_rows(state: State) -> dict[str, str]:
    return {"generation": str(state.generation), "count": str(state.count), "next_id": str(state.next_id),
            "kind": state.kind, "params": json.dumps(state.params or {}), "trained_on": str(state.trained_on),
            "vectors_sha256": state.vectors_sha256, "updated": state.updated}


def _check_meta(meta: dict, name: str) -> None:
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{name}: not a genvision index (format {meta.get('format')!r})")
    try:
        version = int(meta["format_version"])
        dim, binary = int(meta["dim"]), meta["binary"]
        missing = [key for key in _SETTINGS if key not in meta]
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{name}: corrupt index (bad meta: {reason(exc)})") from exc
    if version > FORMAT_VERSION:
        raise ConfigError(f"{name}: made by a newer genvision (index format {version}; this one reads "
                          f"{FORMAT_VERSION}); upgrade genvision")
    if missing or dim < 1 or binary not in ("0", "1") or (binary == "1" and dim % 8):
        raise ConfigError(f"{name}: corrupt index (bad meta: dim={meta.get('dim')}, binary={meta.get('binary')})")


def read_settings(db: Database, path: Path) -> dict:
    meta = db.meta
    return {"spec": meta["spec"], "dim": int(meta["dim"]), "binary": meta["binary"] == "1",
            "index_type": meta["index_type"], "created": meta["created"],
            "format_version": int(meta["format_version"]), "embedder_key": meta.get("embedder_key", "")}


class IndexLock:
    """An exclusive fcntl lock on ``writer.lock``: one writer at a time; released by the OS if the writer dies."""

    def __init__(self, fd: int | None):
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path, *, timeout: float) -> IndexLock:
        if fcntl is None:
            return cls(None)
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
                    os.close(fd)
                    raise ConfigError(f"{display_path(path)} is being changed by process {holder} (waited "
                                      f"{timeout:g} s); try again when it has finished") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)  # who holds it, for the message above
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
