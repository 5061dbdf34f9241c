"""Classifier accuracy within a time budget: the ResNet and the ViT on MNIST (and Fashion-MNIST).

    python benchmarks/train_classifiers.py --data-root ../shared/data                     # ~21 min
    python benchmarks/train_classifiers.py --data-root ../shared/data --arch resnet       # ~6 min
    python benchmarks/train_classifiers.py --data fashion-mnist --data-root DIR           # if you have it
    python benchmarks/train_classifiers.py --data-root ../shared/data --arch vit --steps 5838   # round 1's steps

Targets (issue 5, 2 CPU cores): MNIST test accuracy ResNet >= 99.5 % within 5 minutes, ViT
>= 99.0 % within 15 minutes; Fashion-MNIST ResNet >= 93.5 %, ViT >= 91.5 %.

Protocol, per architecture (recipes configs/resnet-mnist.yaml and configs/vit-mnist.yaml):
1. measure the recipe's steady-state step rate in a short run (its own 2 x --probe-steps steps,
   discarded), then set ``train.steps`` so that the warm-up + cosine schedule ends at ~95 % of
   the budget (``train.max_minutes`` = the budget is the hard stop);
2. train on the train split; the training wall time (as the trainer measures it) is reported;
3. evaluate the final weights on the untouched test split: accuracy and per-class accuracy
   (``genvision.apps.classify.pipeline.evaluate_classifier``, the same code as ``genvision evaluate``).

``--steps N`` skips step 1: the schedule spans exactly N steps with no time limit (unless
``--minutes`` gives one), so a slower machine reproduces another machine's run step for step
(round 1's budget runs made 1,826 ResNet and 5,838 ViT steps).
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

from genvision.apps.classify.pipeline import evaluate_classifier  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.data import load_dataset  # noqa: E402

RUNS = RESULTS / "runs"
BUDGET_MIN = {"resnet": 5.0, "vit": 15.0}
TARGETS = {("mnist", "resnet"): 0.995, ("mnist", "vit"): 0.990,
           ("fashion-mnist", "resnet"): 0.935, ("fashion-mnist", "vit"): 0.915}


def base_overrides(data: str, data_root: str) -> list[str]:
    return [f"data.name={data}", f"data.root={data_root}", f"train.out_dir={RUNS}", "train.tensorboard=false",
            "train.sample_every=0"]


def measure_steps_per_s(arch: str, data: str, data_root: str, probe_steps: int, extra: list[str]) -> float:
    """Steady-state steps/s of the recipe: the second logging window of a 2 x probe_steps run."""
    name = f"probe-{arch}-{data}"
    shutil.rmtree(RUNS / name, ignore_errors=True)
    train("classifier", config_file=ROOT / "configs" / f"{arch}-mnist.yaml",
          overrides=base_overrides(data, data_root) + [*extra, f"train.name={name}", f"train.steps={2 * probe_steps}",
                                                       f"train.log_every={probe_steps}",
                                                       f"train.ckpt_every={100 * probe_steps}"], progress=False)
    rows = [json.loads(line) for line in (RUNS / name / "metrics.jsonl").read_text().splitlines()]
    shutil.rmtree(RUNS / name, ignore_errors=True)
    return rows[-1]["steps_per_s"]


def run(arch: str, data: str, data_root: str, budget_min: float | None, probe_steps: int, fill: float,
        extra: list[str], save: bool = True, fixed_steps: int | None = None) -> dict:
    if fixed_steps is None:
        rate = measure_steps_per_s(arch, data, data_root, probe_steps, extra)
        steps = max(100, int(rate * budget_min * 60 * fill))
        name, how = f"{arch}-{data}-{budget_min:g}min", f"probe rate {rate:.2f} steps/s -> {steps} scheduled steps"
    else:
        steps, name, how = fixed_steps, f"{arch}-{data}-{fixed_steps}steps", f"{fixed_steps} steps fixed"
    shutil.rmtree(RUNS / name, ignore_errors=True)
    t0 = time.perf_counter()
    limit = [f"train.max_minutes={budget_min}"] if budget_min is not None else []
    result = train("classifier", config_file=ROOT / "configs" / f"{arch}-mnist.yaml",
                   overrides=base_overrides(data, data_root) + [*extra, f"train.name={name}", f"train.steps={steps}",
                                                                *limit, "train.log_every=50"], progress=True)
    wall = time.perf_counter() - t0
    metrics_file = result.run_dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines()] if metrics_file.is_file() else []
    train_s = max((r.get("elapsed_s", 0.0) for r in rows), default=wall)  # a stop by time logs no last row
    model = load_pretrained(result.run_dir, kind="classifier")
    test = load_dataset(data, split="test", root=data_root, download=False)
    out = evaluate_classifier(model, test)
    target = TARGETS.get((data, arch))
    batch = json.loads((result.run_dir / "config.json").read_text())["train"]["batch_size"]
    epochs = result.step * batch / len(load_dataset(data, split="train", root=data_root, download=False))
    quality = {"test accuracy": out["accuracy"], "min class accuracy": min(out["per_class_accuracy"])}
    if target is not None:
        quality["target"] = target
        quality["met"] = "yes" if out["accuracy"] >= target else "no"
    if save:
        record("classifier-accuracy", name, recipe=" ".join([f"configs/{arch}-mnist.yaml, data={data}", *extra]),
               wall_s=wall,
               throughput={"budget min": budget_min or "", "train s": train_s, "steps": result.step, "epochs": epochs,
                           "img/s": result.last_metrics.get("images_per_s", 0.0)},
               quality=quality,
               notes=f"{how}; stopped by {result.stopped_by}; "
                     f"per-class accuracy {json.dumps([round(v, 4) for v in out['per_class_accuracy']])}; "
                     f"run dir {result.run_dir}")
    print(f"{name}: accuracy {out['accuracy']:.4f} after {result.step} steps ({epochs:.1f} epochs, "
          f"{train_s:.0f} s training)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--data", default="mnist", help="mnist or fashion-mnist")
    parser.add_argument("--arch", choices=["resnet", "vit", "all"], default="all")
    parser.add_argument("--minutes", type=float, default=None, help="override the per-arch budget")
    parser.add_argument("--steps", type=int, help="train exactly this many steps (no probe; no time limit "
                        "unless --minutes)")
    parser.add_argument("--probe-steps", type=int, default=20)
    parser.add_argument("--fill", type=float, default=0.95, help="fraction of the budget the schedule spans")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("overrides", nargs="*", help="extra key=value recipe overrides (recorded with the row)")
    args = parser.parse_args()
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    for arch in (["resnet", "vit"] if args.arch == "all" else [args.arch]):
        budget = args.minutes if args.steps else args.minutes or BUDGET_MIN[arch]
        run(arch, args.data, args.data_root, budget, args.probe_steps, args.fill, list(args.overrides),
            save=not args.no_record, fixed_steps=args.steps)
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
