"""Test accuracy of a trained digit classifier run, recorded in the classifier-accuracy table.

    python benchmarks/score_classifier.py --model benchmarks/results/runs/retrieval-resnet-mnist-5min

Scores runs trained elsewhere (e.g. by benchmarks/retrieval_mnist.py) with the same protocol as
benchmarks/train_classifiers.py: `genvision evaluate` on the 10,000 MNIST test images, the EMA weights
when the run keeps them. The zoo's classifier cards cite these rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs, run_summary

from genvision.workflows.evaluate import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a classifier run directory (repeatable)")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    for run in args.model:
        start = time.perf_counter()
        result = evaluate(run, data=args.data, data_root=args.data_root, progress=False)
        steps, seconds = run_summary(run)
        per_class = result.metrics.get("per_class_accuracy") or []
        path = record("classifier-accuracy", Path(run).name, recipe=f"{Path(run).name}/config.yaml, data={args.data}",
                      wall_s=time.perf_counter() - start,
                      throughput={"train s": round(seconds, 1), "steps": steps},
                      quality={"test accuracy": result.metrics["accuracy"],
                               "min class accuracy": min(per_class) if per_class else ""},
                      notes=f"scored only (trained by the run's own command); run dir {run}")
        print(f"{Path(run).name}: accuracy {result.metrics['accuracy']:.4f} -> {path}")
    render_docs()


if __name__ == "__main__":
    main()
