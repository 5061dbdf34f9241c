"""Retrieval metrics against rankings worked out by hand (the arithmetic is in each test's comments)."""

from __future__ import annotations

import numpy as np
import pytest

from genvision.apps.retrieval.metrics import (
    class_retrieval_scores,
    map_at_r,
    micro_average_precision,
    precision_at_k,
    precision_recall_curve,
    recall_at_k,
    relevance,
)
from genvision.errors import ConfigError

# Two queries. Query 0 (label a) has R = 3 relevant items in the database, query 1 (label b) R = 2.
QUERY_LABELS = np.array(["a", "b"])
RETRIEVED = np.array([["a", "b", "a", "a"],
                      ["a", "b", "b", "a"]])
NUM_RELEVANT = np.array([3, 2])


def test_relevance_marks_hits_with_the_query_label():
    assert relevance(QUERY_LABELS, RETRIEVED).tolist() == [[True, False, True, True], [False, True, True, False]]


def test_map_at_r_by_hand():
    # query 0: first R=3 ranks a b a -> P(1)=1, P(3)=2/3 -> (1 + 2/3) / 3 = 5/9 (the a at rank 4 is past R)
    # query 1: first R=2 ranks a b   -> P(2)=1/2       -> (1/2) / 2     = 1/4
    score, truncated = map_at_r(relevance(QUERY_LABELS, RETRIEVED), NUM_RELEVANT)
    assert score == pytest.approx((5 / 9 + 1 / 4) / 2) and truncated == 0


def test_map_at_r_is_one_only_for_a_perfect_ranking_and_lower_bounded_when_truncated():
    perfect = np.array([[True, True, True, False]])
    assert map_at_r(perfect, [3]) == (1.0, 0)
    # the same class members one rank later: (1/2 + 2/3) / 3
    assert map_at_r(np.array([[False, True, True, True]]), [3])[0] == pytest.approx((1 / 2 + 2 / 3) / 3)
    # only 2 ranks retrieved but R = 3: both relevant -> (1 + 1) / 3, and the query is counted as truncated
    assert map_at_r(np.array([[True, True]]), [3]) == (pytest.approx(2 / 3), 1)


def test_queries_without_relevant_items_are_left_out_of_map_at_r():
    score, _ = map_at_r(np.array([[True, False], [False, False]]), [1, 0])
    assert score == 1.0
    with pytest.raises(ConfigError, match="undefined"):
        map_at_r(np.array([[False, False]]), [0])


def test_precision_and_recall_at_k_by_hand():
    rel = relevance(QUERY_LABELS, RETRIEVED)
    assert precision_at_k(rel, 1) == 0.5  # query 0 hit, query 1 missed
    assert precision_at_k(rel, 4) == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert recall_at_k(rel, 1) == 0.5
    assert recall_at_k(rel, 2) == 1.0  # query 1 finds its class at rank 2
    with pytest.raises(ConfigError, match=r"k must lie in 1\.\.4"):
        precision_at_k(rel, 5)


def test_class_retrieval_scores_bundle():
    scores = class_retrieval_scores(QUERY_LABELS, RETRIEVED, NUM_RELEVANT, ks=(1, 2, 10))
    assert scores.recall_at_k == {1: 0.5, 2: 1.0}  # k=10 > 4 retrieved ranks: left out
    as_dict = scores.as_dict()
    assert as_dict["map_at_r"] == pytest.approx(29 / 72) and as_dict["precision_at_1"] == 0.5
    assert as_dict["recall_at_2"] == 1.0 and as_dict["queries"] == 2


def test_micro_ap_by_hand_with_a_distractor_query():
    # q3 has no copy in the database. Pooled and sorted: (q1,r1) TP, (q3,r5) FP, (q2,r2) TP, (q2,r3) FP
    # precisions 1, 1/2, 2/3, 2/4; recalls (2 true pairs) 1/2, 1/2, 1, 1
    # micro-AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    queries = ["q1", "q3", "q2", "q2"]
    candidates = ["r1", "r5", "r2", "r3"]
    scores = [0.9, 0.8, 0.7, 0.6]
    truth = {("q1", "r1"), ("q2", "r2")}
    assert micro_average_precision(queries, candidates, scores, truth) == pytest.approx(5 / 6)
    precisions, recalls, thresholds = precision_recall_curve(queries, candidates, scores, truth)
    assert precisions == pytest.approx([1, 1 / 2, 2 / 3, 1 / 2]) and recalls == pytest.approx([0.5, 0.5, 1, 1])
    assert thresholds.tolist() == [0.9, 0.8, 0.7, 0.6]


def test_micro_ap_breaks_ties_pessimistically_and_counts_unretrieved_pairs():
    # equal scores: the false positive is ranked first, so the true pair sits at precision 1/2
    assert micro_average_precision([1, 1], [7, 8], [1.0, 1.0], {(1, 8)}) == 0.5
    # one of two true pairs never retrieved: recall stops at 1/2
    assert micro_average_precision([1], [7], [0.3], {(1, 7), (2, 9)}) == 0.5
    assert micro_average_precision([], [], [], {(1, 7)}) == 0.0


def test_micro_ap_counts_a_repeated_pair_once_with_its_best_score():
    # (1,7) predicted twice: kept once at 0.9, ahead of the false (2,5) at 0.5 -> AP 1
    assert micro_average_precision([1, 2, 1], [7, 5, 7], [0.1, 0.5, 0.9], {(1, 7)}) == 1.0


def test_micro_ap_equals_the_textbook_sum_over_true_positives_when_scores_are_distinct():
    # AP = (1 / |truth|) * sum over the true positives of the precision at their rank
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    scores = rng.random(200)
    pairs = np.arange(200)
    truth = {(int(i), int(i)) for i in pairs[labels]}
    ranked = labels[np.argsort(-scores)]
    textbook = sum(ranked[:i + 1].sum() / (i + 1) for i in np.flatnonzero(ranked)) / labels.sum()
    assert micro_average_precision(pairs, pairs, scores, truth) == pytest.approx(textbook)


def test_bad_inputs_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="finite"):
        micro_average_precision([1], [1], [float("nan")], {(1, 1)})
    with pytest.raises(ConfigError, match="no ground-truth"):
        micro_average_precision([1], [1], [0.5], set())
    with pytest.raises(ConfigError, match="one length"):
        micro_average_precision([1, 2], [1], [0.5], {(1, 1)})
    with pytest.raises(ConfigError, match=r"\(Q,\)"):
        relevance(["a", "b", "c"], RETRIEVED)


# ----------------------------------------------------------------------------- genvision evaluate --index


def _pattern(seed: int, size: int = 96):
    """A smooth random picture; pHash distances between seeds 0, 1, 2 are 0-1: 34, 0-2: 22, 1-2: 38 bits."""
    from PIL import Image

    cells = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(cells).resize((size, size), Image.BICUBIC)


@pytest.fixture()
def labelled(tmp_path):
    """Database: class a = two copies of picture 0; class b = two copies of picture 1 and picture 2.
    Queries: picture 0 labelled a, picture 1 labelled b. Index built with pHash."""
    from genvision.cli import main

    for folder, items in {"db/a": [(0, "a0"), (0, "a1")], "db/b": [(1, "b0"), (1, "b1"), (2, "b2")],
                          "queries/a": [(0, "qa")], "queries/b": [(1, "qb")]}.items():
        (tmp_path / folder).mkdir(parents=True)
        for seed, name in items:
            _pattern(seed).save(tmp_path / folder / f"{name}.png")
    assert main(["index", "build", str(tmp_path / "db"), "-o", str(tmp_path / "db.gvindex"), "--embed", "phash"]) == 0
    return tmp_path


def test_evaluate_index_by_hand(labelled):
    from genvision.apps.retrieval.evaluate import evaluate_index

    # qa: a0 a1 (0 bits), b2 (22), b0 b1 (34); R = 2 -> AP 1.      P@5 = 2/5
    # qb: b0 b1 (0 bits), a0 a1 (34), b2 (38); R = 3 -> AP (1 + 1) / 3 = 2/3.  P@5 = 3/5
    result = evaluate_index(labelled / "db.gvindex", f"folder:{labelled / 'queries'}", k=5)
    metrics = result["metrics"]
    assert metrics["map_at_r"] == pytest.approx((1 + 2 / 3) / 2)
    assert metrics["precision_at_1"] == 1.0 and metrics["recall_at_5"] == 1.0
    assert metrics["precision_at_5"] == pytest.approx((2 / 5 + 3 / 5) / 2)
    assert metrics["queries"] == 2 and metrics["database"] == 5 and result["embed"] == "phash"


def test_evaluation_ranks_exactly_whatever_the_index_type(tmp_path):
    """mAP@R needs rankings R deep; an IVF tuned for the top 10 returns far fewer candidates, so the
    evaluation ranks over the stored vectors, exactly as a flat index would."""
    from genvision.apps.retrieval.evaluate import exact_search
    from genvision.apps.retrieval.store import Index

    rng = np.random.default_rng(0)
    vectors = (rng.normal(size=(8, 16))[rng.integers(0, 8, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    queries = vectors[:5] + 0.1 * rng.normal(size=(5, 16)).astype(np.float32)
    with Index.create(tmp_path / "ivf.gvindex", embed="vectors:16", index_type="ivf") as index:
        index.add_vectors(vectors, [f"v{i}" for i in range(3000)])
        assert index.info()["index_kind"] == "ivf"
        _, approximate = index.search_vectors(queries, 2000)  # (5, 2000)
        assert (approximate < 0).any()  # the few probed lists hold fewer than 2000 vectors
        ranked = exact_search(index)(index._checked_vectors(queries), 2000)  # (5, 2000) ids = rows + 1
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = np.argsort(-(q @ unit.T), axis=1, kind="stable")[:, :2000] + 1
    assert (ranked == expected).mean() > 0.999  # float ties aside, the exact order


def test_evaluate_index_leaves_each_query_out_of_its_own_ranking(labelled):
    from genvision.apps.retrieval.evaluate import evaluate_index

    # the database as its own queries, each without itself:
    # a0, a1: R = 1, the other copy first -> AP 1;  b0, b1: R = 2, other copy, then a0 a1 (34) -> AP 1/2
    # b2: R = 2, a0 a1 (22 bits) come first -> AP 0.  P@1: only b2 misses.
    metrics = evaluate_index(labelled / "db.gvindex", str(labelled / "db"), k=1)["metrics"]
    assert metrics["map_at_r"] == pytest.approx((1 + 1 + 0.5 + 0.5 + 0) / 5)
    assert metrics["precision_at_1"] == pytest.approx(0.8) and metrics["queries"] == 5


def test_evaluate_cli_with_an_index(labelled, capsys):
    import json

    from genvision.cli import main

    output = labelled / "retrieval.json"
    code = main(["evaluate", "--index", str(labelled / "db.gvindex"), "--queries", f"folder:{labelled / 'queries'}",
                 "-k", "5", "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "map_at_r" in captured.out and "precision_at_1" in captured.out and "recall_at_5" in captured.out
    result = json.loads(output.read_text())
    assert result["kind"] == "retrieval" and result["metrics"]["map_at_r"] == pytest.approx(5 / 6)


@pytest.mark.parametrize("args, message", [
    (["--index", "{db}"], "--index needs --queries"),
    (["--index", "{db}", "--queries", "{q}", "--model", "{db}"], "not both"),
    (["--index", "{db}", "--queries", "{q}", "-n", "5", "--class", "1"], "-n, --class: for model evaluation only"),
    (["--queries", "{q}"], "Missing option '--model'"),
    (["--model", "{db}", "-k", "3"], "apply to --index evaluation"),
    (["--index", "{tmp}/missing.gvindex", "--queries", "{q}", "-o", "{tmp}/e.json"], "missing.gvindex"),
    (["--index", "{db}", "--queries", "folder:{tmp}/nowhere", "-o", "{tmp}/e.json"], "no such folder"),
    (["--index", "{db}", "--queries", "{q}", "-o", "{db}/e.json"], "inside the input folder"),
    (["--index", "{db}", "--queries", "{q}", "-o", "{tmp}/exists.json"], "already exists"),
    (["--index", "{unlabelled}", "--queries", "{q}", "-o", "{tmp}/e.json"], "no item has a 'label'"),
])
def test_evaluate_index_errors_are_one_line(labelled, capsys, args, message):
    from genvision.cli import main

    (labelled / "exists.json").write_text("{}")
    (labelled / "flat").mkdir()
    _pattern(3).save(labelled / "flat" / "x.png")
    assert main(["index", "build", str(labelled / "flat"), "-o", str(labelled / "flat.gvindex"), "--embed", "phash"]) == 0
    capsys.readouterr()
    names = {"db": labelled / "db.gvindex", "q": f"folder:{labelled / 'queries'}", "tmp": labelled,
             "unlabelled": labelled / "flat.gvindex"}
    code = main(["evaluate", *[a.format(**names) for a in args]])
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err and "unexpected" not in err, err
    assert (labelled / "exists.json").read_text() == "{}" and not (labelled / "db.gvindex" / "e.json").exists()
