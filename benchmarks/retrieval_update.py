"""Incremental updates: adding 10 % more items to an index against rebuilding it from scratch
(target: the add costs < 20 % of the rebuild).

Two settings, each timed as ``add`` (open the index built from n items, add n/10 new ones, commit) and
``rebuild`` (a fresh index of all 1.1 n, no embedding cache to draw on):

* images: MNIST training digits embedded with ``--embed`` (default phash; extractor:mnist-cnn is
  the costlier network embedding), where embedding dominates both;
* vectors: clustered 128-d vectors, per index type (flat, ivf, hnsw), where the cost is the
  database rows, the faiss update and writing the new faiss generation.

    OMP_NUM_THREADS=2 python benchmarks/retrieval_update.py --data-root ../shared/data/mnist
    python benchmarks/retrieval_update.py --smoke      # 300 + 30 mnist-mini digits, 5,000 + 500 vectors
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record
from retrieval_common import SHARED_DATA, cleanup, smoke_setup, usable
from retrieval_scale import DIM, clustered

from genvision.apps.retrieval.commands import dataset_items
from genvision.apps.retrieval.store import Index

TARGET = 0.2


def _images(embedder, scratch: Path, dataset: str, data_root: str | None, n: int) -> dict:
    names, images, metas = dataset_items(f"{dataset}:train", data_root, n + n // 10)
    base, extra = range(n), range(n, len(names))

    def add(index, rows) -> object:
        rows = list(rows)
        return index.add_images([images[i] for i in rows], [names[i] for i in rows], metadata=[metas[i] for i in rows])

    with Index.building(scratch / "images.gvindex", embed=embedder, overwrite=True) as index:
        add(index, base)
    start = time.perf_counter()
    with Index.open(scratch / "images.gvindex", writable=True, embedder=embedder) as index:
        report = add(index, extra)
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    with Index.building(scratch / "rebuilt.gvindex", embed=embedder, overwrite=True) as index:
        add(index, range(len(names)))
    rebuild_s = time.perf_counter() - start
    assert report.added == len(extra), report
    return {"add_s": add_s, "rebuild_s": rebuild_s}


def _vectors(kind: str, scratch: Path, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    vectors = clustered(n + n // 10, rng.standard_normal((max(10, n // 250), DIM), dtype=np.float32), rng)
    names = [f"v/{i}" for i in range(len(vectors))]
    with Index.building(scratch / f"{kind}.gvindex", embed=f"vectors:{DIM}", index_type=kind, overwrite=True) as index:
        index.add_vectors(vectors[:n], names[:n])
    start = time.perf_counter()
    with Index.open(scratch / f"{kind}.gvindex", writable=True) as index:
        index.add_vectors(vectors[n:], names[n:])
        kind_after = index.info()["index_kind"]
    add_s = time.perf_counter() - start
    start = time.perf_counter()
    with Index.building(scratch / f"{kind}-rebuilt.gvindex", embed=f"vectors:{DIM}", index_type=kind,
                        overwrite=True) as index:
        index.add_vectors(vectors, names)
    return {"add_s": add_s, "rebuild_s": time.perf_counter() - start, "kind": kind_after}


def _record(name: str, recipe: str, timing: dict, smoke: bool, notes: str = "") -> None:
    ratio = timing["add_s"] / timing["rebuild_s"]
    verdict = f"add/rebuild {ratio:.3f}, target < {TARGET}: {'met' if ratio < TARGET else 'MISSED'}"
    path = record("retrieval-update", name, recipe=recipe, wall_s=timing["add_s"] + timing["rebuild_s"],
                  throughput={"add_10pct_s": timing["add_s"], "rebuild_s": timing["rebuild_s"]},
                  quality={"add_over_rebuild": ratio}, notes="; ".join(filter(None, [verdict, notes])))
    print(name, verdict, "->", path)
    if smoke:
        print(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", action="append", help="image embeddings (repeatable; default phash)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-root", default=str(SHARED_DATA / "mnist"))
    parser.add_argument("--images", type=int, default=20_000, help="digits in the first build")
    parser.add_argument("-n", "--vectors", type=int, default=500_000, help="vectors in the first build")
    parser.add_argument("--kinds", nargs="+", default=["flat", "ivf", "hnsw"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="300 + 30 mnist-mini digits, 5,000 + 500 vectors")
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.images, args.vectors, args.kinds = "mnist-mini", 300, 5_000, ["flat", "ivf"]
    scratch = smoke_setup(args.smoke)
    try:
        embedders, skipped = usable(args.embed or ["phash"], args.device)
        for embedder in embedders:
            timing = _images(embedder, scratch, args.dataset, args.data_root, args.images)
            _record(f"update-{args.dataset}-{args.images}-{embedder.spec.rsplit('/', 1)[-1]}",
                    f"{args.dataset} {args.images} digits + {args.images // 10}, embed {embedder.spec}", timing,
                    args.smoke, "; ".join(skipped))
        for kind in args.kinds:
            timing = _vectors(kind, scratch, args.vectors, seed=0)
            _record(f"update-vectors-{args.vectors}-{kind}", f"{args.vectors} clustered {DIM}-d vectors + "
                    f"{args.vectors // 10}, index type {kind}", timing, args.smoke,
                    f"index kind after the add: {timing['kind']}")
    finally:
        cleanup(scratch)


if __name__ == "__main__":
    main()
