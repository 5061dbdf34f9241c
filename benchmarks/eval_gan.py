"""FID-family scores of the MNIST DCGAN, next to reference rows that show the scale.

    python benchmarks/eval_gan.py --data-root ../shared/data [--fid-weights PATH]

Rows (10,000 samples each, against the MNIST test split, domain features of the shipped
MNIST classifier unless --fid-weights is given):
  - the GAN runs written by benchmarks/train_gan.py (after 1 epoch, after 10 minutes);
  - train split vs test split: the floor a perfect generator would reach;
  - Gaussian noise: a generator that learned nothing;
  - only the digit 1 (real images): a perfectly mode-collapsed generator.
Each GAN row also records the wall time of the whole `evaluate` call (the issue's budget: 2
minutes on 2 cores for 10,000 samples).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs  # noqa: E402

from genvision.data import load_dataset  # noqa: E402
from genvision.metrics.reference import reference_stats  # noqa: E402
from genvision.metrics.samples import fixed_images_sampler, sample_metrics  # noqa: E402
from genvision.workflows.evaluate import evaluate  # noqa: E402
from genvision.workflows.extractors import resolve_extractor  # noqa: E402

N = 10_000
KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "class_coverage",
        "class_kl_to_uniform")


def quality(metrics: dict) -> dict:
    return {k: metrics[k] for k in KEYS if k in metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--fid-weights", default=None)
    args = parser.parse_args()
    features = "inception" if args.fid_weights else "domain"
    capability = f"gan-evaluation-{features}"

    for name in ("gan-mnist-1epoch", "gan-mnist-10min"):
        run_dir = RESULTS / "runs" / name
        if not run_dir.is_dir():
            print(f"skipping {name}: run benchmarks/train_gan.py --part quality first")
            continue
        t0 = time.perf_counter()
        result = evaluate(str(run_dir), data="mnist", data_root=args.data_root, n=N, features=features,
                          fid_weights=args.fid_weights, output=RESULTS / "runs" / f"{name}-eval.json",
                          overwrite=True)  # a re-run replaces its own earlier results
        wall = time.perf_counter() - t0
        record(capability, name, recipe="gan default, EMA generator", wall_s=wall,
               throughput={"eval wall s": wall}, quality=quality(result.metrics))
        print(result.table())

    extractor = resolve_extractor(features, dataset_name="mnist", data_root=args.data_root,
                                  fid_weights=args.fid_weights, device="cpu")
    test = load_dataset("mnist", split="test", root=args.data_root, download=False)
    reference = reference_stats(extractor, test, keep=N)
    train = load_dataset("mnist", split="train", root=args.data_root, download=False)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:N]
    train_images, _ = train.get_batch(order)
    ones = train.get_batch(torch.nonzero(train.labels == 1).flatten())[0]
    ones = ones[torch.arange(N) % ones.shape[0]]  # repeat to N images
    noise = torch.randn(N, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1)
    for name, images in [("reference: train split vs test split", train_images),
                         ("reference: Gaussian noise", noise),
                         ("reference: only the digit 1 (real)", ones)]:
        t0 = time.perf_counter()
        metrics = sample_metrics(fixed_images_sampler(images), extractor, reference, n=N)
        record(capability, name, recipe="-", wall_s=time.perf_counter() - t0, quality=quality(metrics))
        print(name, {k: round(v, 4) for k, v in quality(metrics).items()})
    print(render_docs())


if __name__ == "__main__":
    main()
