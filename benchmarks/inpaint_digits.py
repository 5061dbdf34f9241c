"""Generative inpainting of MNIST digits (issue 13): does the fill recover the digit, and how varied is it?

    python benchmarks/inpaint_digits.py --dit runs/dit-mnist --cvae runs/cvae-mnist        # trained models
    python benchmarks/inpaint_digits.py --dit-steps 2500 --cvae-steps 4000   # trains both first, fixed steps
    python benchmarks/inpaint_digits.py --minutes 15                  # trains both first, 15 min each
    python benchmarks/inpaint_digits.py --dit D --cvae V --limit 10 --no-record             # smoke test

Protocol: the first --limit (1,000) digits of the MNIST test split, the bottom half masked (rows
14-27 of 28). Each method draws --samples k (4) fills per digit, seeded (digit i uses
``derive_seed(--seed, i)``, sample j its j-th latent). No method is told the digit's class
(``--with-label`` gives it to both, as an upper bound): the DiT samples with its null class
(unconditional field, RePaint with --resample), the CVAE fits latents for every class and keeps
each sample's best. Scored with --classifier (default: the shipped MNIST CNN, the domain extractor):

* ``recognised``: fraction of fills (digits x samples) the classifier labels with the digit's own
  class; ``recognised_any``: digits where at least one of the k fills is; for reference the
  same for the masked digit (hole black), Telea's fill, and the original digit;
* ``diversity_l2``: mean pairwise L2 distance between a digit's k fills inside the hole ([-1, 1]
  units, averaged over pairs and digits); ``diversity_std``: mean per-pixel std across the k fills
  inside the hole; ``hole_rmse``: RMS error of the fills against the original inside the hole.

Models missing from the command line are trained first with the shipped recipes
(configs/dit-mnist.yaml, configs/cvae-mnist.yaml) on the MNIST train split, for a fixed number of
steps (--dit-steps / --cvae-steps: the learning-rate schedule ends where training does, and the
result does not depend on how busy the machine is) or, without them, for --minutes each.
Rows land in ``benchmarks/results/inpaint-digits/``.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, run_summary, train

from genvision.apps.classify.pipeline import predict
from genvision.apps.edit.generative import inpaint_dit, inpaint_vae
from genvision.apps.edit.inpaint import inpaint_classical
from genvision.checkpoints import load_pretrained
from genvision.data import load_dataset
from genvision.runtime import derive_seed

CAPABILITY = "inpaint-digits"
RUNS = RESULTS / "runs"
SHIPPED_CLASSIFIER = ROOT / "src" / "genvision" / "assets" / "extractors" / "mnist-cnn"
RECIPES = {"dit": ROOT / "configs" / "dit-mnist.yaml", "cvae": ROOT / "configs" / "cvae-mnist.yaml"}


def train_for(family: str, minutes: float, steps: int | None, data: str, data_root: str) -> Path:
    budget = [f"train.steps={steps}", "train.max_minutes=null"] if steps else [
        "train.steps=10000000", f"train.max_minutes={minutes}"]
    name = f"inpaint-{family}-{data}-" + (f"{steps}steps" if steps else f"{minutes:g}min")
    shutil.rmtree(RUNS / name, ignore_errors=True)
    result = train(family, config_file=RECIPES[family],
                   overrides=[f"data.name={data}", f"data.root={data_root}", f"train.out_dir={RUNS}",
                              f"train.name={name}", *budget,
                              "train.tensorboard=false", "train.sample_every=0"], progress=True)
    return result.run_dir


def hole_stats(fills: torch.Tensor, original: torch.Tensor, hole: torch.Tensor) -> dict[str, float]:
    """fills (k, C, H, W), original (C, H, W), hole bool (H, W) -> diversity and error inside the hole."""
    inside = fills[:, :, hole].flatten(1)  # (k, hole pixels * C)
    pairs = list(itertools.combinations(range(len(inside)), 2))
    l2 = float(np.mean([float((inside[a] - inside[b]).norm()) for a, b in pairs])) if pairs else 0.0
    truth = original[:, hole].flatten()
    return {"diversity_l2": l2, "diversity_std": float(inside.std(0, unbiased=False).mean()),
            "hole_rmse": float((inside - truth).pow(2).mean().sqrt())}


def telea(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    pixels = np.rint((image[0].numpy() + 1) * 127.5).astype(np.uint8)  # (H, W)
    filled = inpaint_classical(pixels, hole.numpy(), method="telea", radius=3)
    return torch.from_numpy(filled.astype(np.float32) / 127.5 - 1)[None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dit", help="DiT model or run directory (default: train one for --minutes)")
    parser.add_argument("--cvae", help="CVAE model or run directory (default: train one for --minutes)")
    parser.add_argument("--classifier", default=str(SHIPPED_CLASSIFIER), help="classifier model directory")
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", default="mnist", help="mnist (the benchmark) or mnist-mini (smoke test)")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget of each missing model")
    parser.add_argument("--dit-steps", type=int, help="train the missing DiT for this many steps (not minutes)")
    parser.add_argument("--cvae-steps", type=int, help="train the missing CVAE for this many steps (not minutes)")
    parser.add_argument("--limit", type=int, default=1000, help="test digits")
    parser.add_argument("--samples", type=int, default=4, help="fills per digit (k)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=16, help="DiT sampling steps")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--resample", type=int, default=1, help="DiT RePaint resampling (U)")
    parser.add_argument("--vae-steps", type=int, default=200, help="CVAE latent optimisation steps")
    parser.add_argument("--with-label", action="store_true", help="give both models the digit's class")
    parser.add_argument("--methods", default="dit,cvae", help="which to score: dit, cvae or both (comma-separated)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("--note", default="", help="added to the rows' notes (e.g. that other jobs shared the cores)")
    args = parser.parse_args()

    models = {}
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not chosen or set(chosen) - {"dit", "cvae"}:
        parser.error(f"--methods takes dit, cvae or dit,cvae, got {args.methods!r}")
    for family in chosen:
        given = getattr(args, family)
        steps = getattr(args, f"{family}_steps")
        model_dir = Path(given) if given else train_for(family, args.minutes, steps, args.data, args.data_root)
        models[family] = (model_dir, load_pretrained(model_dir, kind="diffusion" if family == "dit" else "vae"))
    classifier = load_pretrained(args.classifier, kind="classifier")
    test = load_dataset(args.data, split="test", root=args.data_root, download=False, limit=args.limit)
    images, labels = test.get_batch(torch.arange(len(test)))  # (N, 1, 28, 28) in [-1, 1], (N,)
    size = images.shape[-1]
    hole = torch.zeros(size, size, dtype=torch.bool)
    hole[size // 2:] = True
    k, n = args.samples, len(images)

    def recognised(batch: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        return predict(classifier, batch).argmax(1) == truth

    masked = torch.where(hole, torch.full_like(images, -1.0), images)
    reference = {"original": float(recognised(images, labels).float().mean()),
                 "masked (hole black)": float(recognised(masked, labels).float().mean()),
                 "telea": float(recognised(torch.stack([telea(x, hole) for x in images]), labels).float().mean())}
    print("reference recognition:", {name: round(v, 4) for name, v in reference.items()})

    fills_of = {
        "dit": lambda model, x, y, seed: inpaint_dit(model, x, hole, samples=k, seed=seed, steps=args.steps,
                                                     sampler=args.sampler, resample=args.resample,
                                                     label=y if args.with_label else None, progress=False),
        "cvae": lambda model, x, y, seed: inpaint_vae(model, x, hole, samples=k, seed=seed, steps=args.vae_steps,
                                                      label=y if args.with_label else None, progress=False),
    }
    for family, (model_dir, model) in models.items():
        t0 = time.perf_counter()
        fills, stats = [], []
        for i in range(n):
            filled = fills_of[family](model, images[i], int(labels[i]), derive_seed(args.seed, i))  # (k, 1, H, W)
            assert torch.equal(filled[:, :, ~hole], images[i][None, :, ~hole].expand(k, -1, -1))
            fills.append(filled)
            stats.append(hole_stats(filled, images[i], hole))
        wall = time.perf_counter() - t0
        hits = recognised(torch.cat(fills), labels.repeat_interleave(k)).view(n, k)
        quality = {"recognised": float(hits.float().mean()), "recognised_any": float(hits.any(1).float().mean()),
                   **{key: float(np.mean([s[key] for s in stats])) for key in stats[0]},
                   **{f"recognised {name}": value for name, value in reference.items()}}
        settings = (f"steps={args.steps} sampler={args.sampler} resample={args.resample}" if family == "dit"
                    else f"steps={args.vae_steps} lr=0.05 prior_weight=0.01")
        label_mode = "with label" if args.with_label else "no label"
        trained_steps, trained_s = run_summary(model_dir)
        print(family, settings, label_mode, {key: round(v, 4) for key, v in quality.items()}, f"{wall:.0f} s")
        if not args.no_record:
            record(CAPABILITY, f"{family} bottom half k={k} {label_mode} {settings}", recipe=str(model_dir),
                   wall_s=wall, throughput={"digits/s": n / wall, "fills/s": n * k / wall},
                   quality=quality,
                   notes=f"{n} MNIST test digits, rows {size // 2}-{size - 1} masked, {k} seeded fills each; "
                         f"model trained {trained_steps} steps ({trained_s / 60:.0f} min); classifier "
                         f"{Path(args.classifier).name}" + (f"; {args.note}" if args.note else ""))
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
