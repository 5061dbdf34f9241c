"""``genvision evaluate --index my.gvindex --queries SOURCE``: how well an index retrieves by class.

Each query image is embedded with the index's own embedder and searched; a database item is
relevant when its metadata ``label`` equals the query's label (the class sub-folder of a folder
source, the class of a named dataset: :mod:`.commands` labels both sides the same way). The numbers
(:mod:`.metrics`): mAP@R, precision@1, recall@1 / recall@k (the metric-learning Recall@K: a
relevant item within the first k) and precision@k.

A query that is itself in the index (the same name: ``mnist:train/5``, or the same resolved path)
is removed from its own ranking and from its R (leave-one-out), so querying an index with its own
images is a fair evaluation. Queries are embedded and searched ``batch_size`` at a time; the ranked
list is cut at :data:`MAX_RANKS`, and mAP@R of a query with a larger R is then a lower bound (the
result says how many).

The rankings come from an exact search over the vectors the index stores, whatever its faiss type:
mAP@R needs R-deep rankings (6,000 for an MNIST class), and an approximate index tuned for the top 10
(an IVF with a few probes) returns far fewer candidates, which would score the search settings rather
than the embedding (measured: mAP@R 0.12 through a 60,000-digit IVF index against 0.98 exact, for the
same embedding). How close the approximate top-k is to the exact one is the scale benchmark's question.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from ...errors import ConfigError, GenvisionError, display_path, reason
from ...outputs import OutputGuard, write_json
from .commands import dataset_items, folder_images
from .embed import load_rgb
from .metrics import average_precision_at_r
from .store import Index

MAX_RANKS = 10_000  # ranked hits kept per query: MNIST's largest class (6742 training digits) fits
MAX_K = 10_000


class _Queries:
    """Labelled query images from a folder (class sub-folders) or a named dataset, loaded lazily."""

    def __init__(self, source: str, data_root: str | None, limit: int | None):
        folder = source.removeprefix("folder:")
        self.folder = Path(folder).expanduser() if os.path.isdir(Path(folder).expanduser()) else None
        if self.folder is not None:
            files, metas = folder_images(self.folder)
            files, metas = files[:limit], metas[:limit]
            self.names = [str(f.resolve()) for f in files]  # what `index build` stores for a file
            self.images = files
        else:
            if source.startswith("folder:"):
                raise ConfigError(f"--queries {display_path(source)}: no such folder")
            self.names, self.images, metas = dataset_items(source, data_root, limit)
        if not self.names:
            raise ConfigError(f"--queries {display_path(source)}: no images found")
        self.labels = [None if m.get("label") is None else str(m["label"]) for m in metas]

    def __len__(self) -> int:
        return len(self.names)

    def image(self, i: int):
        return load_rgb(self.images[i]) if self.folder is not None else self.images[i]


def _database_labels(index: Index) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """(ids (N,), labels (N,) object, name -> id) of every item in the index."""
    names, metadata = index.names(), index.metadata()
    ids = np.fromiter(names, dtype=np.int64, count=len(names))
    labels = np.array([None if metadata.get(i, {}).get("label") is None else str(metadata[i]["label"])
                       for i in ids.tolist()], dtype=object)
    return ids, labels, {name: item for item, name in names.items()}


def exact_search(index: Index):
    """search(vectors (B, width), k) -> ids (B, k): brute force over every stored vector (float:
    inner product = cosine; hashes: Hamming), the same order an exact (flat) index gives."""
    ids, vectors = index.all_vectors()  # (N,), (N, width)
    if index.binary:
        exact = faiss.IndexBinaryFlat(index.dim)
    else:
        exact = faiss.IndexFlatIP(index.dim)
    exact.add(np.ascontiguousarray(vectors))

    def search(queries: np.ndarray, k: int) -> np.ndarray:
        _, rows = exact.search(queries, min(k, len(ids)))  # (B, k) positions in ``ids``
        return np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)

    return search


def _rank_queries(index: Index, queries: _Queries, chosen: list[int], *, ranks: int, k: int, codes: np.ndarray,
                  query_codes: np.ndarray, own_ids: np.ndarray, num_relevant: np.ndarray, batch_size: int,
                  progress: bool):
    """Embed and search the chosen queries: (relevance of the first k hits (Q, k), AP@R (Q,), loaded (Q,), failed).

    ``codes``: the label code of every id (-1: none); ``query_codes`` (Q,) the queries' label codes."""
    relevant_k = np.zeros((len(chosen), k), dtype=bool)
    search = exact_search(index)
    average_precisions = np.full(len(chosen), np.nan)
    loaded = np.zeros(len(chosen), dtype=bool)
    failed: list[tuple[str, str]] = []
    with tqdm(total=len(chosen), desc="queries", unit="img", disable=not progress or None) as bar:
        for start in range(0, len(chosen), batch_size):
            batch, images = [], []
            for row in range(start, min(start + batch_size, len(chosen))):
                try:
                    images.append(queries.image(chosen[row]))
                    batch.append(row)
                except GenvisionError as exc:
                    failed.append((queries.names[chosen[row]], reason(exc)))
            bar.update(min(batch_size, len(chosen) - start))
            if not batch:
                continue
            ids = search(index.embed_query(images), ranks + 1)  # (B, ranks + 1)
            hits = np.zeros((len(batch), ranks), dtype=bool)  # (B, ranks): missing ranks count as misses
            for slot, row in enumerate(batch):
                found = ids[slot][(ids[slot] >= 0) & (ids[slot] != own_ids[row])][:ranks]  # leave-one-out
                hits[slot, :len(found)] = codes[found] == query_codes[row]
            rows = np.array(batch)
            relevant_k[rows] = hits[:, :k]
            average_precisions[rows] = average_precision_at_r(hits, num_relevant[rows])
            loaded[rows] = True
    return relevant_k, average_precisions, loaded, failed


def evaluate_index(index_path: str | os.PathLike, queries_source: str, *, k: int = 10, data_root: str | None = None,
                   limit: int | None = None, batch_size: int = 256, device: str | None = None,
                   output: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = False) -> dict:
    """Class-retrieval scores of the index at ``index_path`` for the labelled ``queries_source``
    (``folder:PATH`` / a folder with class sub-folders, or ``mnist:test``-style datasets); with
    ``output``, also written there as JSON. Returns the result as a dict."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ConfigError(f"-k must be an integer in 1..{MAX_K}, got {k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive integer, got {batch_size!r}")
    started = time.perf_counter()
    guard = OutputGuard(overwrite=overwrite).add_input_folder(index_path)
    if output is not None:
        guard.claim(output)  # before any work: a refused output costs nothing
    with Index.open(index_path, device=device) as index:
        ids, labels, id_of_name = _database_labels(index)
        if not any(label is not None for label in labels):
            raise ConfigError(f"{display_path(index_path)}: no item has a 'label' (build the index from class "
                              f"sub-folders or a named dataset such as mnist)")
        queries = _Queries(queries_source, data_root, limit)
        chosen = [i for i, label in enumerate(queries.labels) if label is not None]
        if not chosen:
            raise ConfigError(f"--queries {display_path(queries_source)}: no labelled images (put them in class "
                              f"sub-folders)")
        names = sorted({label for label in labels.tolist() if label is not None})
        code_of = {label: code for code, label in enumerate(names)}
        codes = np.full(int(ids.max()) + 1, -1, dtype=np.int64)  # label code by id; -1: unlabelled
        codes[ids] = [code_of.get(label, -1) for label in labels.tolist()]
        class_sizes = Counter(labels.tolist())
        own_ids = np.array([id_of_name.get(queries.names[i], -2) for i in chosen])  # -2: not in the index
        num_relevant = np.array([class_sizes[queries.labels[i]] for i in chosen]) - (own_ids >= 0)
        query_codes = np.array([code_of.get(queries.labels[i], -2) for i in chosen])  # -2: a class not indexed
        ranks = min(max(k, int(num_relevant.max())), MAX_RANKS, len(ids))
        relevant_k, average_precisions, loaded, failed = _rank_queries(
            index, queries, chosen, ranks=ranks, k=min(k, ranks), codes=codes, query_codes=query_codes,
            own_ids=own_ids, num_relevant=num_relevant, batch_size=batch_size, progress=progress)
        spec, count = index.spec, len(ids)
    return _result(index_path, queries_source, spec, count, k, relevant_k, average_precisions, loaded, num_relevant,
                   len(queries) - len(chosen), failed, ranks, time.perf_counter() - started, output)


def _result(index_path, source, spec, count, k, relevant_k, average_precisions, loaded, num_relevant, unlabelled,
            failed, ranks, seconds, output) -> dict:
    if not (loaded & ~np.isnan(average_precisions)).any():
        raise ConfigError("no readable query has an item of its class in the index: nothing to measure")
    relevant_k, num_relevant = relevant_k[loaded], num_relevant[loaded]
    shown_k = relevant_k.shape[1]
    metrics = {"map_at_r": float(np.nanmean(average_precisions[loaded])),
               "precision_at_1": float(relevant_k[:, 0].mean()),
               f"recall_at_{shown_k}": float(relevant_k.any(axis=1).mean()),
               f"precision_at_{shown_k}": float(relevant_k.mean()),
               "queries": int(loaded.sum()), "database": int(count), "queries_per_s": float(loaded.sum() / seconds)}
    notes = [(f"relevant = same 'label'; recall@k = fraction of queries with a relevant item in the first k; "
              f"embedding {spec}; ranked by exact search over the stored vectors")]
    if shown_k < k:
        notes.append(f"k={k} is more than the {shown_k} items ranked; scores are at k={shown_k}")
    if (num_relevant == 0).any():
        notes.append(f"{int((num_relevant == 0).sum())} queries have no item of their class in the index: left out "
                     f"of mAP@R, misses in precision and recall")
    truncated = int((num_relevant > ranks).sum())
    if truncated:
        notes.append(f"{truncated} queries have more than {ranks} relevant items: their AP@R is a lower bound")
    if unlabelled:
        notes.append(f"{unlabelled} unlabelled queries were left out")
    if failed:
        notes.append(f"{len(failed)} queries could not be read and were left out (first: {failed[0][0]}: "
                     f"{failed[0][1]})")
    result = {"kind": "retrieval", "index": str(index_path), "queries": source, "embed": spec, "metrics": metrics,
              "notes": notes, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    if output is not None:
        write_json(output, result)
        result["files"] = {"json": str(output)}
    return result


def describe(result: dict) -> str:
    """The result as the table ``genvision evaluate`` prints."""
    metrics = result["metrics"]
    width = max(len(key) for key in metrics) + 2
    lines = [f"retrieval index {result['index']} ({result['embed']}) with queries {result['queries']}"]
    lines += [f"  {key:<{width}}{value:.5g}" if isinstance(value, float) else f"  {key:<{width}}{value}"
              for key, value in metrics.items()]
    lines += [f"  note: {note}" for note in result["notes"]]
    lines += [f"  wrote {path}" for path in result.get("files", {}).values()]
    return "\n".join(lines)


__all__ = ["MAX_RANKS", "describe", "evaluate_index"]
