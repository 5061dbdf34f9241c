"""GAN recipes side by side on MNIST: the same step count for each, then 10,000 samples scored.

    python benchmarks/gan_recipes.py --data-root ../shared/data                       # every recipe, 4,000 steps
    python benchmarks/gan_recipes.py --steps 1500 --n 2000 --only dcgan,cond-r1     # a quick screen
    python benchmarks/gan_recipes.py --minutes 10 --only cond-r1-mbstd                # a time budget instead
    python benchmarks/gan_recipes.py --steps 2000 --limit 1000 --only cond-r1-ms0.1,cond-r1-ms0.1-diffaug,cond-r1-ms0.1-ada
                                                                    # limited data: augmentation and ADA

Each recipe is a list of ``genvision train gan`` overrides on top of the default recipe (DCGAN
width 64, batch 64, 28 px, EMA generator), explicit about every choice the defaults make. They train one after another (never two PyTorch jobs
at once on 2 cores), for a fixed number of steps so quality compares at equal work; the rows
report the wall time and images/s as well, so "at equal time" can be read off. Scores: domain
FID-family metrics against the MNIST test split, and the smallest / largest share of a class
among the samples as the shipped MNIST classifier labels them (a uniform target is 10% each;
conditional generators are sampled with labels cycling through the classes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.workflows.evaluate import evaluate  # noqa: E402

RUNS = RESULTS / "runs"
KEYS = ("fid", "kid", "precision", "recall", "inception_score", "class_share_min", "class_share_max",
        "class_kl_to_uniform")

# name -> overrides of the default recipe
OFF = ["objective.r1_gamma=0", "objective.mode_seeking=0"]  # the conditional defaults switched off
RECIPES: dict[str, list[str]] = {
    "dcgan": ["conditional=false"],  # round 1's default: unconditional, non-saturating, BatchNorm D
    "cond": ["conditional=true", *OFF],
    "cond-hinge-sn": ["conditional=true", "objective.loss=hinge", "model.spectral_norm=true", *OFF],
    "cond-r1": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1", "objective.mode_seeking=0"],
    "cond-r1-g0.1": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=0.1", "objective.mode_seeking=0"],
    "uncond-r1": ["conditional=false", "model.d_norm=none", "objective.r1_gamma=1"],
    "cond-r1-mbstd": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1", "objective.mode_seeking=0",
                      "model.minibatch_std=4"],
    "cond-r1-ms": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1", "objective.mode_seeking=1"],
    # the default on labelled data since issue 19 (conditional, R1 1, mode seeking 0.1, D without norm)
    "cond-r1-ms0.1": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1", "objective.mode_seeking=0.1"],
    # the StyleGAN2-like generator (mapping + modulated convs) in the default recipe
    "cond-r1-ms0.1-style": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1",
                            "objective.mode_seeking=0.1", "model.generator=style"],
    # unlabelled data: round 1's DCGAN with ADA, or with the mode-seeking term
    "dcgan-ada": ["conditional=false", "objective.ada_target=0.6"],
    "dcgan-ms0.1": ["conditional=false", "objective.mode_seeking=0.1"],
    # limited data (run with --limit): the default with DiffAugment always on, or with ADA steering its probability
    "cond-r1-ms0.1-diffaug": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1",
                              "objective.mode_seeking=0.1", "objective.diffaugment=color,translation,cutout"],
    "cond-r1-ms0.1-ada": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1",
                          "objective.mode_seeking=0.1", "objective.ada_target=0.6"],
    # the default with another seed: the spread a different random stream alone gives
    "cond-r1-ms0.1-seed1": ["conditional=true", "model.d_norm=none", "objective.r1_gamma=1",
                            "objective.mode_seeking=0.1", "train.seed=1"],
}


def final_ada_p(run_dir: Path) -> str:
    """'; ADA's p at the end X' for an ADA run (its last logged value), else ''."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    ps = [row["ada_p"] for row in rows if "ada_p" in row]
    return f"; ADA's p at the end {ps[-1]:.2f}" if ps else ""


def run_recipe(name: str, overrides: list[str], args) -> None:
    budget = f"{args.minutes:g}min" if args.minutes else str(args.steps)
    subset = f"-first{args.limit}" if args.limit else ""
    run_name = f"gan-recipe-{name}-{budget}{subset}"
    limits = [f"train.steps={10**7}", f"train.max_minutes={args.minutes}"] if args.minutes else [
        f"train.steps={args.steps}"]
    run_dir = RUNS / run_name
    if args.reuse and not args.minutes and (run_dir / "checkpoints" / f"step_{args.steps:08d}").is_dir():
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        steps, train_s = args.steps, max(row.get("elapsed_s", 0.0) for row in rows)  # the run's own clock
        print(f"{run_name}: reusing the finished run ({train_s:.0f} s of training)", flush=True)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        t0 = time.perf_counter()
        result = train("gan", overrides=["data.name=mnist", f"data.root={args.data_root}", f"train.out_dir={RUNS}",
                                         f"train.name={run_name}", *limits, "train.sample_every=0",
                                         "train.ckpt_every=100000", "train.tensorboard=false",
                                         f"train.log_every={min(500, args.steps)}",
                                         *([f"data.limit={args.limit}"] if args.limit else []), *overrides],
                       progress=False)
        steps, run_dir, train_s = result.step, result.run_dir, time.perf_counter() - t0
    t1 = time.perf_counter()
    evaluation = evaluate(str(run_dir), data="mnist", data_root=args.data_root, n=args.n, features="domain",
                          output=RUNS / f"{run_name}-eval.json", overwrite=True)
    eval_s = time.perf_counter() - t1
    model = load_pretrained(run_dir, kind="gan")
    grid = gio.save_grid(generate(model, 100, seed=0), ROOT / "docs" / "images" / f"gan-recipe-{name}-{budget}{subset}.png",
                         nrow=10,
                         metadata={"model": run_name, "seed": 0})
    quality = {k: evaluation.metrics[k] for k in KEYS if k in evaluation.metrics}
    label = f"{args.minutes:g} min" if args.minutes else f"{args.steps} steps"
    if args.limit:
        label += f", trained on the first {args.limit} digits"
    record("gan-recipes", f"{name} @ {label}, n={args.n}", recipe=" ".join(overrides) or "default",
           wall_s=train_s + eval_s,
           throughput={"steps": steps, "train s": train_s, "img/s": steps * 64 / train_s,
                       "eval s": eval_s},
           quality=quality, notes=f"grid: docs/images/{grid.name}{final_ada_p(run_dir)}")
    print(name, steps, f"train {train_s:.0f} s", {k: round(v, 4) for k, v in quality.items()}, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--minutes", type=float, default=0.0, help="train for this long instead of --steps")
    parser.add_argument("--n", type=int, default=10_000, help="samples scored per recipe")
    parser.add_argument("--only", default="", help="comma-separated recipe names (default: all)")
    parser.add_argument("--reuse", action="store_true",
                        help="score a finished run of the same name (--steps budgets) instead of training it again")
    parser.add_argument("--limit", type=int, default=0,
                        help="train on the first N training digits only (limited data; scored against the test split)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    for name in names:
        run_recipe(name, RECIPES[name], args)
    print(render_docs())


if __name__ == "__main__":
    main()
