"""Distillation and pruning of a trained SR model: the size / speed / quality triple, at fixed step counts.

    python benchmarks/compress_sr.py --data-root ../shared/data --teacher benchmarks/results/runs/sr-edsr-x3-15min \
        --steps 2000 [--arms teacher,student,distilled,pruned,pruned-tuned,narrow]

Arms (each a row of table ``sr-compression``; every trained arm runs exactly ``--steps`` steps of the
same recipe: batch 16, 96-pixel HR patches of ../shared/data/sr-train, cosine schedule, EMA):

* ``teacher``: the trained model itself, unchanged;
* ``student``: ESPCN (64/32) trained alone, ``genvision train sr arch=espcn`` (alpha 0);
* ``distilled``: the same ESPCN distilled from the teacher, ``genvision train sr-distill alpha=0.5``;
* ``pruned``: the teacher with half its channels removed by ``genvision prune --amount 0.5``, no training;
* ``pruned-tuned``: that pruned model fine-tuned by distillation from the teacher (``sr-distill init=``);
* ``narrow``: the pruned model's architecture (the same widths) trained from scratch for the same steps,
  the control that says whether pruning kept anything worth keeping.

Each row: parameters, bytes of its weights as safetensors (fp32), eager latency on Set5's first LR image
(every arm in 20 interleaved rounds after all training, the speed-up the median of the per-round ratios to
the teacher), the training time, and Y-PSNR on Set5 and Set14 by the protocol
(genvision.apps.sr.evaluate). ``--score-only`` scores the runs an earlier invocation trained. Run nothing
else meanwhile: the arms share the 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train

from genvision.apps.deploy.prune import PruneJob, run_prune
from genvision.apps.sr.evaluate import evaluate_upscaler, list_hr_images, load_hr, resolve_hr_folder
from genvision.apps.sr.pipeline import upscale_tensor
from genvision.checkpoints import load_pretrained
from genvision.export.quantize import interleaved_latency, median_ratio
from genvision.nn.resize import make_lr

RUNS = RESULTS / "runs"
ALL_ARMS = ("teacher", "student", "distilled", "pruned", "pruned-tuned", "narrow")


def quality(model, data_root: str | None) -> dict:
    row = {"params": sum(p.numel() for p in model.parameters()), "bytes": len(save(model.state_dict()))}
    for dataset in ("Set5", "Set14"):
        res = evaluate_upscaler(lambda lr: upscale_tensor(model, lr[0])[None], f"sr:{dataset}",
                                scale=model.config.scale, data_root=data_root)
        row[f"{dataset} dB"] = round(res["metrics"]["psnr"], 2)
    return row


def train_minutes(run: Path) -> float:
    """The run's own training time (0 for a model that was not trained here)."""
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        return 0.0
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    return max((r.get("elapsed_s", 0.0) for r in rows), default=0.0) / 60


def train_arm(name: str, family: str, overrides: list[str], score_only: bool) -> Path:
    if score_only:  # the run an earlier invocation trained
        return RUNS / name
    if (RUNS / name).exists():
        shutil.rmtree(RUNS / name)
    return train(family, progress=True, overrides=[f"train.out_dir={RUNS}", f"train.name={name}",
                                                   "tensorboard=false", "sample_every=0", *overrides]).run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="holds sr-train/ and sr-benchmarks/ (default ../shared/data)")
    parser.add_argument("--teacher", type=Path, required=True, help="a trained sr run (EDSR)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--amount", type=float, default=0.5, help="fraction of channels the pruned arms remove")
    parser.add_argument("--arms", default=",".join(ALL_ARMS))
    parser.add_argument("--score-only", action="store_true", help="score the runs an earlier invocation trained")
    args = parser.parse_args()
    arms = args.arms.split(",")
    data_root = Path(args.data_root or ROOT.parent / "shared" / "data")
    data = f"folder:{data_root / 'sr-train'}"
    scale = json.loads((args.teacher / "config.json").read_text())["scale"]
    _, set5 = resolve_hr_folder("sr:Set5", str(data_root))
    _, lr8 = make_lr(load_hr(list_hr_images(set5)[0]), scale)  # (C, h, w) uint8
    latency_image = lr8.float().div(255.0)[None]  # (1, C, h, w)
    common = [f"data.name={data}", f"steps={args.steps}", "batch_size=16", "data.patch_size=96"]
    tag = f"{args.teacher.name}-{args.steps}steps"
    pruned_dir = RUNS / f"{args.teacher.name}-pruned{args.amount:g}"

    recipes, dirs = {}, {}
    for arm in arms:
        if arm == "teacher":
            dirs[arm], recipes[arm] = args.teacher, "as trained"
        elif arm == "student":
            dirs[arm] = train_arm(f"compress-{tag}-student", "sr", [*common, "arch=espcn", f"scale={scale}"],
                                  args.score_only)
            recipes[arm] = f"train sr arch=espcn scale={scale} steps={args.steps}"
        elif arm == "distilled":
            dirs[arm] = train_arm(f"compress-{tag}-distilled", "sr-distill",
                                  [*common, f"teacher={args.teacher}", "arch=espcn", "objective.alpha=0.5"],
                                  args.score_only)
            recipes[arm] = f"train sr-distill teacher={args.teacher.name} arch=espcn alpha=0.5 steps={args.steps}"
        elif arm == "pruned":
            if not args.score_only:
                run_prune(PruneJob(str(args.teacher), pruned_dir, amount=args.amount))
            dirs[arm] = pruned_dir
            recipes[arm] = f"genvision prune --amount {args.amount:g} (L1 norm of each channel's group)"
        elif arm == "pruned-tuned":
            dirs[arm] = train_arm(f"compress-{tag}-pruned-tuned", "sr-distill",
                                  [*common, f"teacher={args.teacher}", f"init={pruned_dir}", "objective.alpha=0.5",
                                   "objective.warmup_steps=0", "objective.lr=2e-4"], args.score_only)
            recipes[arm] = (f"train sr-distill init=<pruned> teacher={args.teacher.name} alpha=0.5 lr=2e-4 "
                            f"steps={args.steps}")
        elif arm == "narrow":
            pruned_config = json.loads((pruned_dir / "config.json").read_text())
            fields = [f"model.{key}={value}" for key, value in pruned_config["config"].items()
                      if key in ("width", "mid_width", "block_width", "depth")]
            dirs[arm] = train_arm(f"compress-{tag}-narrow", "sr",
                                  [*common, f"arch={pruned_config['model']}", f"scale={scale}", *fields],
                                  args.score_only)
            recipes[arm] = f"train sr arch={pruned_config['model']} {' '.join(fields)} steps={args.steps} (from scratch)"
        else:
            raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ALL_ARMS)}")

    # Scoring, after all training: latency in interleaved rounds over every arm (a slow spell of the
    # machine hits them all), each arm's speed-up the median of its per-round ratios to the teacher.
    models = {arm: load_pretrained(path, kind="sr").eval() for arm, path in dirs.items()}
    with torch.inference_mode():
        latency, rounds = interleaved_latency({arm: (lambda m=m: m(latency_image)) for arm, m in models.items()},
                                              rounds=20)
    for arm, model in models.items():
        row = quality(model, str(data_root))
        throughput = {"latency_ms": round(1000 * latency[arm], 1), "train min": round(train_minutes(dirs[arm]), 1)}
        if "teacher" in rounds and arm != "teacher":
            throughput["speed-up vs teacher"] = round(median_ratio(rounds, "teacher", arm), 2)
        print(arm, row, throughput, flush=True)
        record("sr-compression", f"{args.teacher.name} {arm}" + ("" if arm == "teacher" else f" {args.steps} steps"),
               recipe=recipes[arm], wall_s=60 * throughput["train min"], throughput=throughput, quality=row,
               notes=f"latency: eager fp32 on Set5's first LR image {tuple(latency_image.shape)}, 20 interleaved "
                     "rounds over all arms")
    print(render_docs())


if __name__ == "__main__":
    main()
