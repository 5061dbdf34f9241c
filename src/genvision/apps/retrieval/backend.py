"""The faiss side of an index: which index type fits a collection, building and tuning it, searching,
removing and (de)serialising it.

Vectors arrive as the store keeps them: float32 rows (N, dim), L2-normalised, compared by inner
product (= cosine similarity), or packed uint8 rows (N, dim // 8) of hash bits compared by Hamming
distance. Ids are the SQLite row ids (int64), given to faiss with every vector, so a hit is a row.

Scores are "higher is more similar" for both: cosine similarity for float vectors, and
``1 - hamming / bits`` for binary ones (1.0 = identical hashes). Slots faiss could not fill
(fewer vectors than k, or an approximate index that found fewer) have id -1 and score -inf.

Kinds: ``flat`` (exact), ``ivf`` (IVFFlat, nlist ~ 4 sqrt(n)), ``hnsw`` (HNSW32), ``ivfpq`` (IVF with
product quantisation, for collections too big for memory as floats; float only). ``auto`` is flat
below :data:`AUTO_FLAT_LIMIT` vectors and ivf above (trains in seconds, adds and removes in place;
HNSW is faster to query but slower to build and cannot remove). The search-time knob (nprobe,
efSearch) is tuned at build time on a sample of the collection for :data:`TARGET_RECALL`.
"""

from __future__ import annotations

import math

import faiss
import numpy as np

from ...errors import ConfigError

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw", "ivfpq")
AUTO_FLAT_LIMIT = 50_000  # below this an exact scan answers in milliseconds: nothing to tune, nothing to lose
MIN_TRAIN = 1_000  # an approximate index trained on fewer vectors is no faster than flat and less exact
HNSW_NEIGHBOURS = 32  # HNSW32: the usual memory / recall balance
TARGET_RECALL = 0.97  # of the exact top 10 on a sample; the scale target is 0.95 on held-out queries
TUNING_QUERIES = 256
TUNING_K = 10
_NPROBES = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_EF_SEARCH = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
_TRAIN_POINTS_PER_LIST = 64  # k-means sample per list: faiss's default 256 makes 1M-vector training minutes long
_KMEANS_ITERATIONS = 10


def check_index_type(requested: str) -> str:
    if requested not in INDEX_TYPES:
        raise ConfigError(f"unknown index type {requested!r}; choose from {', '.join(INDEX_TYPES)}")
    return requested


def choose_kind(requested: str, count: int, binary: bool) -> str:
    """The kind to build for ``count`` vectors: ``requested`` unless it cannot be trained on so few
    (then flat, which is exact) or is ``auto``."""
    check_index_type(requested)
    if binary and requested == "ivfpq":
        raise ConfigError("index type ivfpq is for float vectors; hash (binary) vectors use flat, ivf or hnsw")
    if requested == "auto":
        return "flat" if count < AUTO_FLAT_LIMIT or binary else "ivf"
    if requested in ("ivf", "ivfpq") and count < MIN_TRAIN:
        return "flat"
    return requested


def nlist_for(count: int) -> int:
    """~4 sqrt(n) inverted lists, with at least 39 training points per list (what k-means needs)."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def pq_subquantizers(dim: int) -> int:
    """PQ sub-vectors of ~4 dimensions each (m must divide dim), at most 64."""
    candidates = [m for m in range(1, min(dim, 64) + 1) if dim % m == 0 and dim // m >= 4]
    return max(candidates) if candidates else 1


def pq_bits(count: int) -> int:
    """Bits per PQ code: 8 (256 centroids) needs ~10,000 training vectors; smaller collections get fewer."""
    return max(4, min(8, int(math.log2(max(count, 1) / 39)))) if count else 8


def _train_sample(vectors: np.ndarray, lists: int, seed: int) -> np.ndarray:
    limit = max(lists * _TRAIN_POINTS_PER_LIST, 10_000)
    if len(vectors) <= limit:
        return vectors
    chosen = np.random.default_rng(seed).choice(len(vectors), limit, replace=False)
    return vectors[np.sort(chosen)]


def _empty(kind: str, dim: int, binary: bool, count: int):
    """An untrained index of ``kind`` for vectors of ``dim`` (bits, for binary)."""
    if binary:
        if kind == "flat":
            return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(dim))
        if kind == "hnsw":
            return faiss.IndexBinaryIDMap(faiss.IndexBinaryHNSW(dim, HNSW_NEIGHBOURS))
        index = faiss.IndexBinaryIVF(faiss.IndexBinaryFlat(dim), dim, nlist_for(count))
        index.cp.niter = _KMEANS_ITERATIONS
        return index
    if kind == "flat":
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if kind == "hnsw":
        return faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT))
    quantizer = faiss.IndexFlatIP(dim)
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantizer, dim, nlist_for(count), faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(quantizer, dim, nlist_for(count), pq_subquantizers(dim), pq_bits(count),
                                 faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = _KMEANS_ITERATIONS
    index.cp.max_points_per_centroid = _TRAIN_POINTS_PER_LIST
    return index


def _inner(index):
    """The index under an id map (or the index itself)."""
    return faiss.downcast_index(index.index) if hasattr(index, "id_map") else index


def search_params(index, kind: str) -> dict:
    if kind in ("ivf", "ivfpq"):
        ivf = index if isinstance(index, faiss.IndexBinaryIVF) else faiss.extract_index_ivf(index)
        return {"nprobe": int(ivf.nprobe)}
    if kind == "hnsw":
        return {"efSearch": int(_inner(index).hnsw.efSearch)}
    return {}


def set_search_params(index, kind: str, params: dict) -> None:
    """Apply the tuned knob (faiss stores it too; set again so an older file gets today's choice)."""
    if kind in ("ivf", "ivfpq") and "nprobe" in params:
        target = index if isinstance(index, faiss.IndexBinaryIVF) else faiss.extract_index_ivf(index)
        target.nprobe = int(params["nprobe"])
    elif kind == "hnsw" and "efSearch" in params:
        _inner(index).hnsw.efSearch = int(params["efSearch"])


def _without_self(rows: np.ndarray, own: np.ndarray, k: int) -> list[set]:
    """Each row of neighbour ids (Q, k + 1) without the query's own id (or, when a duplicate pushed it
    out, without the last) -> Q sets of k ids."""
    kept = []
    for row, me in zip(rows.tolist(), own.tolist()):
        if me in row:
            row.remove(me)
        kept.append(set(row[:k]))
    return kept


def _tune(index, kind: str, ids: np.ndarray, vectors: np.ndarray, binary: bool, dim: int, seed: int) -> dict:
    """The smallest nprobe / efSearch that finds TARGET_RECALL of the exact top 10 for a sample of the
    collection's own vectors used as queries, each with itself left out of both rankings: a query
    that is in the index finds itself at any setting, which would tune for recall the index does not
    have on new queries (measured: HNSW tuned that way gave 0.92 on held-out queries at 1M)."""
    if kind not in ("ivf", "ivfpq", "hnsw") or len(vectors) < 2:
        return {}
    rng = np.random.default_rng(seed + 1)
    chosen_rows = rng.choice(len(vectors), min(TUNING_QUERIES, len(vectors)), replace=False)
    sample, own = vectors[chosen_rows], np.asarray(ids)[chosen_rows]
    k = min(TUNING_K, len(vectors) - 1)
    if binary:
        exact = faiss.IndexBinaryFlat(dim)  # 8 bytes a vector: a copy is cheap
        exact.add(vectors)
        _, truth = exact.search(sample, k + 1)  # (Q, k + 1) positions in ``vectors``
    else:  # brute force without copying the collection (1M x 128 floats is half a gigabyte)
        _, truth = faiss.knn(sample, vectors, k + 1, metric=faiss.METRIC_INNER_PRODUCT)  # (Q, k + 1) positions
    truth_sets = _without_self(np.asarray(ids)[truth], own, k)
    knob, values = ("efSearch", _EF_SEARCH) if kind == "hnsw" else ("nprobe", _NPROBES)
    limit = 1 << 30 if kind == "hnsw" else (index.nlist if binary else faiss.extract_index_ivf(index).nlist)
    chosen, recalls = None, []
    for value in values:
        if value > limit:
            break
        chosen = value
        set_search_params(index, kind, {knob: value})
        _, found = index.search(sample, k + 1)  # (Q, k + 1) ids
        found_sets = _without_self(found, own, k)
        hits = sum(len(truth & got) for truth, got in zip(truth_sets, found_sets))
        recalls.append(hits / (len(sample) * k))
        if recalls[-1] >= TARGET_RECALL:
            break
        if kind == "ivfpq" and len(recalls) >= 3 and recalls[-1] - recalls[-3] < 0.005:
            break  # a plateau (PQ's quantisation error, not the probe count, limits recall): stop paying for probes
        # (HNSW's recall also flattens as efSearch grows, but keeps climbing to the target: no plateau stop)
    params = {knob: int(chosen if chosen is not None else limit)}  # None: fewer lists than the smallest nprobe
    set_search_params(index, kind, params)
    return params


def build(kind: str, dim: int, binary: bool, ids: np.ndarray, vectors: np.ndarray, *, seed: int = 0):
    """A trained, filled, tuned index of ``kind`` over ``vectors`` (rows) with ``ids`` -> (index, params)."""
    index = _empty(kind, dim, binary, len(vectors))
    if kind in ("ivf", "ivfpq"):
        index.cp.seed = seed  # the same collection trains the same lists
        index.train(_train_sample(vectors, index.nlist, seed))
    if len(vectors):
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))
    params = _tune(index, kind, np.asarray(ids), vectors, binary, dim, seed)
    set_search_params(index, kind, params)
    return index, params


def add(index, ids: np.ndarray, vectors: np.ndarray) -> None:
    if len(vectors):
        index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))


def supports_remove(kind: str) -> bool:
    """HNSW graphs cannot drop nodes: removal rebuilds from the database."""
    return kind != "hnsw"


def remove(index, ids: np.ndarray) -> int:
    return int(index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))


def search(index, queries: np.ndarray, k: int, binary: bool, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores float32 (Q, k), ids int64 (Q, k)); k is capped at the index size."""
    k = min(k, index.ntotal)
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    distances, ids = index.search(queries, k)  # (Q, k) each
    if binary:
        scores = 1.0 - distances.astype(np.float32) / float(dim)
    else:
        scores = distances.astype(np.float32)
    scores[ids < 0] = -np.inf
    return scores, ids.astype(np.int64)


def serialize(index, binary: bool) -> np.ndarray:
    """The index as a uint8 array (a buffer: written and hashed without another copy)."""
    return faiss.serialize_index_binary(index) if binary else faiss.serialize_index(index)


def deserialize(data: bytes, binary: bool):
    """The index in ``data`` (whose sha256 the caller has checked against the database)."""
    array = np.frombuffer(data, dtype=np.uint8)
    return faiss.deserialize_index_binary(array) if binary else faiss.deserialize_index(array)


__all__ = ["AUTO_FLAT_LIMIT", "INDEX_TYPES", "TARGET_RECALL", "add", "build", "check_index_type", "choose_kind",
           "deserialize", "nlist_for", "remove", "search", "search_params", "serialize", "set_search_params",
           "supports_remove"]
