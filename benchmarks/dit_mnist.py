"""DiT on MNIST: FID-family scores vs sampling steps and guidance scale, after a fixed training time.

    python benchmarks/dit_mnist.py --data-root ../shared/data                  # 30 min training + sampling
    python benchmarks/dit_mnist.py --data-root ../shared/data --train-gan      # + a DCGAN for the same time
    python benchmarks/dit_mnist.py --data-root ../shared/data --part eval       # re-evaluate existing runs

The recorded run trained the two side by side, one core each (same machine, same wall time):

    OMP_NUM_THREADS=1 python benchmarks/dit_mnist.py --part train &
    OMP_NUM_THREADS=1 python benchmarks/dit_mnist.py --part train --skip-dit --train-gan &
    wait; OMP_NUM_THREADS=1 python benchmarks/dit_mnist.py --part eval --steps 4 8 16 32 --cfg 2 3 --cfg-steps 8

Protocol (issue 5): train configs/dit-mnist.yaml for --minutes (default 30) of wall time on the
full MNIST train split (``train.max_minutes``), then score the EMA network with the domain
features of the shipped MNIST classifier (FID, KID, precision/recall, density/coverage,
Inception Score and class coverage; NOT comparable with Inception-FID) on --samples generated
images (default 10,000; labels cycle through the classes) against the MNIST test split:

* steps sweep: Euler with 4, 8, 16, 32 steps at guidance 1 (plain conditional sampling), and
  Heun with the same number of network evaluations where --heun is given;
* guidance sweep: Euler, --cfg-steps steps (default 16), guidance 1.5, 2, 3 (each step then
  costs two network evaluations).

With --train-gan the default DCGAN recipe is trained for the same wall time and evaluated with
the same protocol, so the target (DiT better than the DCGAN trained as long) is read off one
table. Rows land in ``benchmarks/results/dit-evaluation-domain/``; the GAN rows from
benchmarks/eval_gan.py (10 minutes, 1 epoch) and the VAE rows stay in their own tables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.checkpoints import load_pretrained, read_model_card  # noqa: E402
from genvision.data import load_dataset  # noqa: E402
from genvision.metrics.reference import reference_stats  # noqa: E402
from genvision.metrics.samples import sample_metrics  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.workflows.extractors import resolve_extractor  # noqa: E402

RUNS = RESULTS / "runs"
CAPABILITY = "dit-evaluation-domain"
RECIPES = {"dit": "configs/dit-mnist.yaml (EMA)", "gan": "gan default (DCGAN, EMA)"}
KEYS = ("fid", "kid", "precision", "recall", "density", "coverage", "inception_score", "class_coverage")


def train_for(family: str, name: str, minutes: float, data: str, data_root: str, extra: list[str]
              ) -> tuple[Path, float, int]:
    shutil.rmtree(RUNS / name, ignore_errors=True)
    t0 = time.perf_counter()
    result = train(family, overrides=[f"data.name={data}", f"data.root={data_root}", f"train.out_dir={RUNS}",
                                      f"train.name={name}", "train.steps=10000000", f"train.max_minutes={minutes}",
                                      "train.tensorboard=false", *extra], progress=True,
                   config_file=ROOT / "configs" / "dit-mnist.yaml" if family == "dit" else None)
    return result.run_dir, time.perf_counter() - t0, result.step


def evaluate_rows(model, label: str, settings: list[dict], extractor, reference, n: int, train_info: dict,
                  save: bool = True) -> None:
    for sampling in settings:
        t0 = time.perf_counter()
        sampler = lambda k, seed, s=sampling: generate(model, k, seed=seed, **s)  # noqa: E731
        metrics = sample_metrics(sampler, extractor, reference, n=n, batch_size=500, seed=0)
        wall = time.perf_counter() - t0
        desc = " ".join(f"{k}={v}" for k, v in sampling.items()) or "default"
        if save:
            record(CAPABILITY, f"{label} {desc}", recipe=train_info["recipe"], wall_s=wall,
                   throughput={"train min": train_info["minutes"], "train steps": train_info["steps"],
                               "sampling s": wall, "img/s": n / wall},
                   quality={k: metrics[k] for k in KEYS if k in metrics},
                   notes=f"{n} samples vs the test split; {extractor.describe()}")
        print(label, desc, {k: round(metrics[k], 4) for k in KEYS if k in metrics}, f"{wall:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--steps", type=int, nargs="*", default=[4, 8, 16, 32], help="Euler steps at guidance 1")
    parser.add_argument("--cfg", type=float, nargs="*", default=[1.5, 2.0, 3.0], help="guidance scales (Euler, --cfg-steps)")
    parser.add_argument("--cfg-steps", type=int, default=16)
    parser.add_argument("--heun", action="store_true", help="also Heun at half the steps (same evaluations)")
    parser.add_argument("--train-gan", action="store_true", help="train and score a DCGAN for the same time")
    parser.add_argument("--skip-dit", action="store_true",
                        help="train only the DCGAN (to run it beside a DiT process, one core each)")
    parser.add_argument("--part", choices=["train", "eval", "all"], default="all")
    parser.add_argument("--data", default="mnist", help="mnist (the benchmark) or mnist-mini (smoke test)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("--suffix", default="", help="appended to run and row names (a re-run beside the recorded ones)")
    args = parser.parse_args()
    save = not args.no_record
    dit_name = f"dit-{args.data}-{args.minutes:g}min{args.suffix}"
    gan_name = f"gan-{args.data}-{args.minutes:g}min{args.suffix}"
    info = {}
    if args.part in ("train", "all") and not args.skip_dit:
        run_dir, wall, steps = train_for("dit", dit_name, args.minutes, args.data, args.data_root, [])
        info["dit"] = {"recipe": RECIPES["dit"], "minutes": wall / 60, "steps": steps}
        model = load_pretrained(run_dir, kind="diffusion")
        grid = generate(model, 100, seed=0, steps=16, sampler="euler")
        grid_dir = ROOT / "docs" / "images" if save and not args.suffix else run_dir
        gio.save_grid(grid, grid_dir / f"{dit_name}.png", nrow=10,
                      metadata={"model": str(run_dir), "seed": 0, "steps": 16, "sampler": "euler"})
    if args.part in ("train", "all"):
        if args.train_gan:
            run_dir, wall, steps = train_for("gan", gan_name, args.minutes, args.data, args.data_root,
                                             ["train.sample_every=0"])
            info["gan"] = {"recipe": RECIPES["gan"], "minutes": wall / 60, "steps": steps}
    if args.part in ("eval", "all"):
        extractor = resolve_extractor("domain", dataset_name=args.data, data_root=args.data_root, device="cpu")
        test = load_dataset(args.data, split="test", root=args.data_root, download=False)
        reference = reference_stats(extractor, test, keep=args.samples)
        for family, name in (("dit", dit_name), ("gan", gan_name)):
            if not (RUNS / name).is_dir():
                continue
            model = load_pretrained(RUNS / name, kind="diffusion" if family == "dit" else "gan")
            card_step = read_model_card(RUNS / name).get("run", {}).get("step", 0)
            train_info = info.get(family, {"recipe": RECIPES[family], "minutes": args.minutes,
                                             "steps": card_step})
            if family == "gan":
                evaluate_rows(model, name, [{}], extractor, reference, args.samples, train_info, save)
                continue
            settings = [{"steps": s, "sampler": "euler", "cfg": 1.0} for s in args.steps]
            if args.heun:
                settings += [{"steps": max(1, s // 2), "sampler": "heun", "cfg": 1.0} for s in args.steps]
            settings += [{"steps": args.cfg_steps, "sampler": "euler", "cfg": c} for c in args.cfg]
            evaluate_rows(model, name, settings, extractor, reference, args.samples, train_info, save)
    if save:
        print(render_docs())


if __name__ == "__main__":
    main()
