"""Class retrieval on MNIST: database = the 60,000 training digits, queries = the 10,000 test digits;
mAP@R, precision@1 and recall@10 (a digit of the query's class among the first 10) per embedding.

Embeddings: perceptual hashes (phash, dhash), the shipped MNIST classifier's penultimate features
(extractor:mnist-cnn), EfficientNet-Lite0's ImageNet features (when its weights are cached), and
any trained genvision model (--model RUN_DIR) or self-supervised net (--simclr RUN_DIR). The index is
exact (flat) so the numbers measure the embedding, not the approximate search; scores are what
`genvision evaluate --index DB --queries mnist:test` prints.

    OMP_NUM_THREADS=2 python benchmarks/retrieval_mnist.py --data-root ../shared/data/mnist
    python benchmarks/retrieval_mnist.py --smoke      # mnist-mini, 500 + 100 digits, two embeddings
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record
from retrieval_common import SHARED_DATA, build_from_dataset, cleanup, smoke_setup, usable

from genvision.apps.retrieval.evaluate import evaluate_index

DEFAULT_SPECS = ["phash", "dhash", "extractor:mnist-cnn", "efficientnet-lite0"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embed", action="append", help=f"an embedding spec (repeatable; default {DEFAULT_SPECS})")
    parser.add_argument("--model", action="append", default=[], help="a trained genvision model/run (model:PATH)")
    parser.add_argument("--simclr", action="append", default=[], help="a `genvision train simclr` run (simclr:PATH)")
    parser.add_argument("--dataset", default="mnist", help="mnist (needs --data-root or a cache) or mnist-mini")
    parser.add_argument("--data-root", default=str(SHARED_DATA / "mnist"))
    parser.add_argument("--limit", type=int, help="only the first N training digits")
    parser.add_argument("--queries-limit", type=int, help="only the first N test digits")
    parser.add_argument("--device", default=None)
    parser.add_argument("--smoke", action="store_true", help="a one-minute check: mnist-mini, 500 + 100 digits, "
                        "phash and mnist-cnn, results recorded in a temporary folder")
    args = parser.parse_args()
    specs = args.embed or DEFAULT_SPECS
    if args.smoke:
        args.dataset, args.limit, args.queries_limit = "mnist-mini", 500, 100
        specs = args.embed or ["phash", "extractor:mnist-cnn"]
    specs += [f"model:{p}" for p in args.model] + [f"simclr:{p}" for p in args.simclr]
    scratch = smoke_setup(args.smoke)
    try:
        embedders, skipped = usable(specs, args.device)
        for embedder in embedders:
            index_path = scratch / f"{embedder.spec.replace('/', '_').replace(':', '_')}.gvindex"
            build_s, count = build_from_dataset(index_path, embedder, f"{args.dataset}:train", args.data_root,
                                                args.limit)
            result = evaluate_index(index_path, f"{args.dataset}:test", k=10, data_root=args.data_root,
                                    limit=args.queries_limit, progress=True)
            metrics = result["metrics"]
            quality = {key: metrics[key] for key in ("map_at_r", "precision_at_1", "recall_at_10")}
            path = record("retrieval-mnist", f"retrieval-{args.dataset}-{embedder.spec.rsplit('/', 1)[-1]}",
                          recipe=f"{args.dataset} train ({count}) as database, test ({metrics['queries']}) as queries, "
                                 f"embed {embedder.spec}, flat index",
                          wall_s=build_s + metrics["queries"] / metrics["queries_per_s"],
                          throughput={"index_images_per_s": count / build_s, "queries_per_s": metrics["queries_per_s"]},
                          quality=quality, notes="; ".join(result["notes"][1:] + skipped))
            print(embedder.spec, quality, "->", path)
            if args.smoke:
                print(path.read_text())
    finally:
        cleanup(scratch)


if __name__ == "__main__":
    main()
