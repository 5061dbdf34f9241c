"""MaskGIT prior over the zoo VQ-VAE's MNIST tokens: FID-family scores vs decoding steps and guidance,
after a fixed training time, beside the VQ-VAE's own per-position token prior.

    python benchmarks/vq_prior.py --data-root ../shared/data                       # 30 min training + scores
    python benchmarks/vq_prior.py --data-root ../shared/data --part eval           # re-score the existing run
    python benchmarks/vq_prior.py --minutes 1 --n 500 --no-record                  # smoke test (~5 min)

Protocol: train configs/maskgit-mnist.yaml (``init=zoo:vqvae-mnist``, frozen) on the MNIST train split
for --minutes of wall time (``train.steps`` far above what fits, ``train.max_minutes`` stops it), then
score the EMA prior with the domain features of the shipped MNIST classifier (FID, KID,
precision/recall, density/coverage, Inception Score, class coverage; NOT comparable with Inception-FID)
on --n generated images (labels cycle through the classes) against the MNIST test split, exactly as
benchmarks/dit_mnist.py scores the DiT:

* decoding steps: --steps (default 8 and 12) at guidance 1 (plain conditional sampling);
* guidance: --cfg (default 2 and 3, i.e. MaskGIT's g = 1 and 2 in ``(1 + g) cond - g uncond``) at
  --cfg-steps (default 8) steps; each guided step runs the network twice;
* temperature --temperature (default 1.0) throughout, top-k off, choice temperature 4.5;
* the VQ-VAE's per-position categorical prior (``zoo:vqvae-mnist`` sampled directly) as the baseline row.

``img/s`` counts generation alone (seeds to decoded images, batches of 500), not the feature
extraction. Rows land in ``benchmarks/results/maskgit-evaluation-domain/``; a 10x10 grid at the
best-FID setting (columns are classes 0-9) goes to docs/images/maskgit-mnist-samples.png.
On a 2-core machine shared with another job, pass --threads 1 (two-thread kernels then stall).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, render_docs, score_generator, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.checkpoints import load_pretrained, read_model_card  # noqa: E402
from genvision.data import load_dataset  # noqa: E402
from genvision.metrics.reference import reference_stats  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.workflows.extractors import resolve_extractor  # noqa: E402

RUNS = RESULTS / "runs"
CAPABILITY = "maskgit-evaluation-domain"
CONFIG = ROOT / "configs" / "maskgit-mnist.yaml"
RECIPE = "configs/maskgit-mnist.yaml (EMA), init=zoo:vqvae-mnist"
GRID = ROOT / "docs" / "images" / "maskgit-mnist-samples.png"
KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "class_coverage",
        "class_kl_to_uniform")
BATCH = 500


def train_prior(name: str, minutes: float, data_root: str) -> dict:
    shutil.rmtree(RUNS / name, ignore_errors=True)
    t0 = time.perf_counter()
    result = train("maskgit", config_file=CONFIG, progress=True, overrides=[
        f"data.root={data_root}", f"train.out_dir={RUNS}", f"train.name={name}", "train.steps=10000000",
        f"train.max_minutes={minutes}", "train.tensorboard=false"])
    return {"minutes": (time.perf_counter() - t0) / 60, "steps": result.step}


def score(model, label: str, recipe: str, settings: list[dict], extractor, reference, n: int, train_info: dict,
          save: bool) -> list[tuple[float, dict]]:
    """One row per sampling setting; returns (fid, setting) pairs."""
    return score_generator(model, label, recipe, settings, extractor, reference, n=n, train_info=train_info,
                           capability=CAPABILITY, keys=KEYS, save=save, batch=BATCH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training wall time")
    parser.add_argument("--n", type=int, default=10_000, help="samples per setting")
    parser.add_argument("--steps", type=int, nargs="*", default=[8, 12], help="decoding steps at guidance 1")
    parser.add_argument("--cfg", type=float, nargs="*", default=[2.0, 3.0], help="guidance scales at --cfg-steps")
    parser.add_argument("--cfg-steps", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the VQ-VAE per-position prior row")
    parser.add_argument("--part", choices=["train", "eval", "all"], default="all")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("--suffix", default="", help="appended to the run and row names (a re-run beside others)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    save = not args.no_record
    name = f"maskgit-mnist-{args.minutes:g}min{args.suffix}"
    info = None
    if args.part in ("train", "all"):
        info = train_prior(name, args.minutes, args.data_root)
        print(f"trained {name}: {info['steps']} steps in {info['minutes']:.1f} min", flush=True)
    if args.part in ("eval", "all"):
        if info is None:
            info = {"minutes": args.minutes, "steps": read_model_card(RUNS / name).get("run", {}).get("step", 0)}
        extractor = resolve_extractor("domain", dataset_name="mnist", data_root=args.data_root, device="cpu")
        test = load_dataset("mnist", split="test", root=args.data_root, download=False)
        reference = reference_stats(extractor, test, keep=args.n)
        model = load_pretrained(RUNS / name, kind="token-prior")
        t = args.temperature
        settings = [{"steps": s, "cfg": 1.0, "temperature": t} for s in args.steps]
        settings += [{"steps": args.cfg_steps, "cfg": c, "temperature": t} for c in args.cfg]
        scored = score(model, name, RECIPE, settings, extractor, reference, args.n, info, save)
        if not args.no_baseline:
            baseline = load_pretrained("zoo:vqvae-mnist")
            score(baseline, "vqvae-mnist per-position prior", "zoo:vqvae-mnist (no learned prior)", [{}], extractor,
                  reference, args.n, {"minutes": 0.0, "steps": 0}, save)
        best = min(scored, key=lambda pair: pair[0])[1]
        grid_path = GRID if save and not args.suffix else RUNS / name / "samples-best.png"
        grid = generate(model, 100, seed=0, **best)  # labels cycle: column j is class j with 10 per row
        gio.save_grid(grid, grid_path, nrow=10, metadata={"model": str(RUNS / name), "seed": 0, **best})
        print(f"wrote {grid_path} ({' '.join(f'{k}={v}' for k, v in best.items())})")
    if save:
        print(render_docs())


if __name__ == "__main__":
    main()
