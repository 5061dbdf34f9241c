"""Retrieval metrics on rankings, in NumPy: class retrieval (mAP@R, precision@k, recall@k) and copy
detection (micro-AP, as the DISC21 / Image Similarity Challenge scores it).

Class retrieval: a database item is *relevant* to a query when it has the query's label. Every
function takes the boolean relevance of each query's ranked list, ``relevant`` of shape (Q, K),
row q = ``retrieved_labels[q] == query_labels[q]`` (:func:`relevance`), best hit first.

* ``precision_at_k``: the fraction of the first k hits that are relevant, averaged over queries.
* ``recall_at_k``: the fraction of queries with at least one relevant item in the first k hits —
  the Recall@K of the metric-learning literature (Song et al. 2016; Musgrave et al. 2020), which is
  what "R@10" means for MNIST-sized classes. The information-retrieval recall (relevant retrieved /
  all relevant) would be at most 10 / 6000 there and says nothing.
* ``map_at_r``: mean average precision at R (Musgrave, Belongie, Lim, "A Metric Learning Reality
  Check", 2020): for a query with R relevant items in the database,
  ``AP@R = (1/R) * sum_{i<=R} P(i) * rel(i)`` over the first R hits. It rewards ranking *all* of the
  class first, unlike P@1 and R@k. The ranked list must hold at least R hits; a shorter list
  counts the missing hits as not relevant (a lower bound: :func:`map_at_r` says so in ``truncated``).

Copy detection (:func:`micro_average_precision`): every (query, candidate, score) prediction of
every query is pooled and sorted by score, highest first; precision and recall are computed down
that one list, with recall's denominator the number of ground-truth (query, reference) pairs (so
queries with no copy in the database, the distractors, only add false positives), and
``micro-AP = sum_i (recall_i - recall_{i-1}) * precision_i``. Ties are broken pessimistically
(negatives before positives at equal scores), as the ISC reference code does, so giving every
prediction the same score cannot earn a good AP. A (query, reference) pair predicted twice counts
once, with its best score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError

__all__ = ["ClassRetrievalScores", "average_precision_at_r", "class_retrieval_scores", "map_at_r", "micro_average_precision",
           "precision_at_k", "precision_recall_curve", "recall_at_k", "relevance"]


def _as_relevance(relevant) -> np.ndarray:
    array = np.asarray(relevant)
    if array.ndim != 2:
        raise ConfigError(f"relevance must be a (queries, ranks) array, got shape {array.shape}")
    return array.astype(bool, copy=False)


def relevance(query_labels, retrieved_labels) -> np.ndarray:
    """(Q,) query labels and (Q, K) labels of the ranked hits -> (Q, K) bool: hit has the query's label."""
    query_labels = np.asarray(query_labels)
    retrieved_labels = np.asarray(retrieved_labels)
    if retrieved_labels.ndim != 2 or query_labels.shape != (retrieved_labels.shape[0],):
        raise ConfigError(f"expected query labels (Q,) and retrieved labels (Q, K), got {query_labels.shape} and "
                          f"{retrieved_labels.shape}")
    return retrieved_labels == query_labels[:, None]  # (Q, K)


def _check_k(k: int, available: int) -> None:
    if not 1 <= k <= available:
        raise ConfigError(f"k must lie in 1..{available} (the ranks retrieved), got {k}")


def precision_at_k(relevant, k: int) -> float:
    """Mean over queries of (relevant hits among the first k) / k."""
    relevant = _as_relevance(relevant)
    _check_k(k, relevant.shape[1])
    return float(relevant[:, :k].mean(axis=1).mean())


def recall_at_k(relevant, k: int) -> float:
    """Fraction of queries with at least one relevant hit among the first k (metric-learning Recall@K)."""
    relevant = _as_relevance(relevant)
    _check_k(k, relevant.shape[1])
    return float(relevant[:, :k].any(axis=1).mean())


def average_precision_at_r(relevant, num_relevant) -> np.ndarray:
    """(Q,) AP@R of each query (NaN where R = 0); ``num_relevant`` (Q,) is each query's R."""
    relevant = _as_relevance(relevant)
    num_relevant = np.asarray(num_relevant, dtype=np.int64)
    if num_relevant.shape != (relevant.shape[0],) or (num_relevant < 0).any():
        raise ConfigError(f"num_relevant must be {relevant.shape[0]} counts >= 0, got shape {num_relevant.shape}")
    ranks = np.arange(1, relevant.shape[1] + 1)  # (K,)
    hits = relevant & (ranks[None, :] <= num_relevant[:, None])  # (Q, K): only the first R ranks count
    precision = np.cumsum(hits, axis=1) / ranks[None, :]  # (Q, K): P(i) over the first i hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return (precision * hits).sum(axis=1) / np.where(num_relevant > 0, num_relevant, np.nan)  # (Q,)


def map_at_r(relevant, num_relevant) -> tuple[float, int]:
    """(mAP@R, number of queries whose ranked list was shorter than their R).

    ``num_relevant`` (Q,): R of each query, the number of relevant items in the database. Queries
    with R = 0 have no defined AP and are left out of the mean (a ConfigError if all are)."""
    per_query = average_precision_at_r(relevant, num_relevant)
    scored = ~np.isnan(per_query)
    if not scored.any():
        raise ConfigError("no query has a relevant item in the database: mAP@R is undefined")
    truncated = int((np.asarray(num_relevant)[scored] > np.shape(relevant)[1]).sum())
    return float(per_query[scored].mean()), truncated


@dataclass(frozen=True)
class ClassRetrievalScores:
    map_at_r: float
    precision_at_1: float
    recall_at_k: dict[int, float]  # k -> Recall@k
    precision_at_k: dict[int, float]
    queries: int
    truncated: int  # queries whose list was shorter than R (their AP@R is a lower bound)

    def as_dict(self) -> dict:
        out = {"map_at_r": self.map_at_r, "precision_at_1": self.precision_at_1}
        out |= {f"recall_at_{k}": v for k, v in self.recall_at_k.items()}
        out |= {f"precision_at_{k}": v for k, v in self.precision_at_k.items() if k != 1}
        return out | {"queries": self.queries, "map_at_r_truncated_queries": self.truncated}


def class_retrieval_scores(query_labels, retrieved_labels, num_relevant, *, ks=(1, 10)) -> ClassRetrievalScores:
    """All class-retrieval numbers at once; ``ks`` beyond the retrieved length are left out."""
    relevant = relevance(query_labels, retrieved_labels)
    ks = sorted({k for k in ks if 1 <= k <= relevant.shape[1]})
    score, truncated = map_at_r(relevant, num_relevant)
    return ClassRetrievalScores(
        map_at_r=score, precision_at_1=precision_at_k(relevant, 1),
        recall_at_k={k: recall_at_k(relevant, k) for k in ks},
        precision_at_k={k: precision_at_k(relevant, k) for k in ks},
        queries=int(relevant.shape[0]), truncated=truncated)


def _best_per_pair(query_ids: np.ndarray, candidate_ids: np.ndarray, scores: np.ndarray):
    """Keep each (query, candidate) pair once, with its highest score."""
    order = np.lexsort((-scores, candidate_ids, query_ids))  # by pair, best score first within a pair
    q, c, s = query_ids[order], candidate_ids[order], scores[order]
    first = np.ones(len(q), dtype=bool)
    first[1:] = (q[1:] != q[:-1]) | (c[1:] != c[:-1])
    return q[first], c[first], s[first]


def precision_recall_curve(query_ids, candidate_ids, scores, ground_truth) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """(precisions, recalls, thresholds) down the pooled predictions sorted by score (see the module doc).

    ``ground_truth``: the true (query id, reference id) pairs, any iterable of 2-tuples."""
    query_ids, candidate_ids = np.asarray(query_ids), np.asarray(candidate_ids)
    scores = np.asarray(scores, dtype=np.float64)
    if not (query_ids.shape == candidate_ids.shape == scores.shape) or query_ids.ndim != 1:
        raise ConfigError(f"predictions must be three 1-d arrays of one length, got shapes {query_ids.shape}, "
                          f"{candidate_ids.shape}, {scores.shape}")
    if not np.isfinite(scores).all():
        raise ConfigError("prediction scores must be finite numbers")
    truth = {(a.item() if isinstance(a, np.generic) else a, b.item() if isinstance(b, np.generic) else b)
             for a, b in ground_truth}
    if not truth:
        raise ConfigError("no ground-truth pairs: micro-AP is undefined")
    if len(scores):
        query_ids, candidate_ids, scores = _best_per_pair(query_ids, candidate_ids, scores)
    positive = np.array([(q, c) in truth for q, c in zip(query_ids.tolist(), candidate_ids.tolist())], dtype=bool)
    # highest score first; at equal scores negatives first (the pessimistic order of the ISC code)
    order = np.lexsort((positive, -scores))
    positive, scores = positive[order], scores[order]
    true_positives = np.cumsum(positive)
    precisions = true_positives / np.arange(1, len(positive) + 1)
    recalls = true_positives / len(truth)
    return precisions, recalls, scores


def micro_average_precision(query_ids, candidate_ids, scores, ground_truth) -> float:
    """The DISC21 micro-AP of pooled predictions (see the module docstring)."""
    precisions, recalls, _ = precision_recall_curve(query_ids, candidate_ids, scores, ground_truth)
    if len(recalls) == 0:
        return 0.0
    steps = np.diff(np.concatenate([[0.0], recalls]))  # recall gained at each prediction
    return float((steps * precisions).sum())
