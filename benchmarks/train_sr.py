"""SR training benchmark: ESPCN / EDSR-style at x2 / x3 / x4 under a CPU time budget, scored on Set5/Set14.

    python benchmarks/train_sr.py --data-root ../shared/data                         # 6 runs x 60 min
    python benchmarks/train_sr.py --data-root ../shared/data --arch edsr --scale 3 --minutes 60
    python benchmarks/train_sr.py --data-root ../shared/data --arch edsr --scale 3 --minutes 60 --label zoo  # a rerun
    python benchmarks/train_sr.py --data-root ../shared/data --arch espcn --scale 3 --minutes 1 --smoke
    python benchmarks/train_sr.py --data-root ../shared/data --srgan-from benchmarks/results/runs/sr-edsr-x4-60min \
        --minutes 30                                       # GAN refinement: PSNR drop vs sharpness gain
    python benchmarks/train_sr.py --data-root ../shared/data --srgan-from \
        benchmarks/results/runs/sr-edsr-x4-43821steps --steps 408 --minutes 30  # a fixed step count (round 1 made 408)
    python benchmarks/train_sr.py --data-root ../shared/data --self-ensemble benchmarks/results/runs/sr-edsr-x3-60min
                                                           # single-pass vs x8 self-ensemble scores
    python benchmarks/train_sr.py --data-root ../shared/data --arch edsr --scale 3 --steps 25605 --minutes 120 \
        train.compile=true                                 # a fixed step count, trained in sessions of --minutes

With ``--steps N`` the cosine schedule is fitted to N steps instead of to the time budget, so a
slower machine reproduces another's run step for step (round 1's 60-minute runs made 28,084 /
25,605 / 43,821 steps at x2 / x3 / x4). ``--minutes`` then bounds one sitting: the run stops
with a checkpoint, the same command resumes it exactly (``genvision train --resume``), and it is
scored and recorded once it has made all N steps, with its training time summed over the sittings.

Each run: ``genvision train sr --config configs/sr-<arch>.yaml scale=S`` on
``folder:<data-root>/sr-train`` (T91 + BSD200, 291 images) with ``train.steps`` set so the cosine
schedule ends at the time budget (the rate is measured in a short calibration run first;
``train.max_minutes`` stops the run in any case). The EMA weights are then scored by the protocol
(genvision.apps.sr.evaluate: MATLAB bicubic LR, Y BT.601, shave = scale) on Set5 and Set14, and a row is
recorded next to the published numbers of SRCNN / FSRCNN / ESPCN / VDSR (and the issue-6 targets).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, run_summary, train  # noqa: E402

from genvision.apps.sr.ensemble import SelfEnsemble  # noqa: E402
from genvision.apps.sr.evaluate import evaluate_upscaler  # noqa: E402
from genvision.apps.sr.pipeline import upscale_tensor  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402

RUNS = RESULTS / "runs"
# Published Y-PSNR (dB). Set5 from the issue (SRCNN, ESPCN, FSRCNN, VDSR papers); Set14 from the VDSR table.
PUBLISHED = {
    ("Set5", 2): {"SRCNN": 36.66, "FSRCNN": 37.00, "VDSR": 37.53},
    ("Set5", 3): {"SRCNN": 32.75, "ESPCN": 33.13, "FSRCNN": 33.06, "VDSR": 33.66},
    ("Set5", 4): {"SRCNN": 30.48, "ESPCN": 30.90, "VDSR": 31.35},
    ("Set14", 2): {"SRCNN": 32.42, "VDSR": 33.03},
    ("Set14", 3): {"SRCNN": 29.28, "VDSR": 29.77},
    ("Set14", 4): {"SRCNN": 27.49, "VDSR": 28.01},
}
TARGET_SET5 = {2: 37.2, 3: 33.3, 4: 31.0}  # issue 6: with at most 60 minutes of CPU training


def calibrate(arch: str, scale: int, data: str, extra: list[str], seconds: float) -> float:
    """Steps per second of this recipe on this machine (a short throw-away run)."""
    name = f"calibrate-sr-{arch}-x{scale}-{int(time.time())}"
    result = train("sr", config_file=ROOT / "configs" / f"sr-{arch}.yaml", progress=False, overrides=[
        f"data.name={data}", f"scale={scale}", f"train.out_dir={RUNS}", f"train.name={name}", "steps=100000",
        f"max_minutes={seconds / 60}", "log_every=10", "ckpt_every=100000", "sample_every=0", "tensorboard=false",
        *extra])
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rate = [r["steps_per_s"] for r in rows if "steps_per_s" in r][1:] or [rows[-1]["steps_per_s"]]
    import shutil
    shutil.rmtree(result.run_dir, ignore_errors=True)
    return sum(rate) / len(rate)


def run_fixed_steps(arch: str, scale: int, steps: int, minutes: float, data_root: str | None, extra: list[str],
                    label: str = "") -> None:
    """Train (or go on training) a run of exactly ``steps`` steps for at most ``minutes`` this sitting."""
    data = f"folder:{Path(data_root or ROOT.parent / 'shared' / 'data') / 'sr-train'}"
    name = f"sr-{arch}-x{scale}-{steps}steps" + (f"-{label}" if label else "")
    run_dir = RUNS / name
    done_before, _ = run_summary(run_dir)
    if (run_dir / "config.json").is_file():
        print(f"{name}: resuming from step {done_before or 0} of {steps}")
        result = train("sr", resume=run_dir, progress=True, overrides=[f"max_minutes={minutes}", *extra])
    else:
        result = train("sr", config_file=ROOT / "configs" / f"sr-{arch}.yaml", progress=True, overrides=[
            f"data.name={data}", f"scale={scale}", f"train.out_dir={RUNS}", f"train.name={name}", f"steps={steps}",
            f"max_minutes={minutes}", "tensorboard=false", *extra])
    if result.stopped_by != "completed":
        print(f"{name}: stopped at step {result.step} of {steps}; run the same command again to go on")
        return
    last_step, train_s = run_summary(result.run_dir)
    score_and_record(result.run_dir, arch, scale, steps, train_s, extra,
                     row=f"{arch} x{scale}, {steps} steps" + (f", {label}" if label else ""),
                     rate=round(last_step / train_s, 2) if last_step and train_s else None,
                     stopped_by="completed", data_root=data_root)


def evaluate_model(model_dir: Path, scale: int, data_root: str | None, self_ensemble: bool = False) -> dict:
    model = load_pretrained(model_dir, kind="sr")
    if self_ensemble:
        model = SelfEnsemble(model).eval()
    suffix = "-se" if self_ensemble else ""
    out = {}
    for dataset in ("Set5", "Set14"):
        res = evaluate_upscaler(lambda lr: upscale_tensor(model, lr[0])[None], f"sr:{dataset}", scale=scale,
                                data_root=data_root, crops=RUNS / f"{model_dir.name}{suffix}-{dataset}-crops.png")
        out[dataset] = res["metrics"]
    return out


def score_self_ensemble(run_dir: Path, data_root: str | None) -> None:
    """Single-pass vs x8 self-ensemble scores of a trained run (EDSR+-style, reported apart)."""
    scale = json.loads((run_dir / "config.json").read_text())["scale"]
    t0 = time.perf_counter()
    single = evaluate_model(run_dir, scale, data_root)
    single_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ensemble = evaluate_model(run_dir, scale, data_root, self_ensemble=True)
    ensemble_s = time.perf_counter() - t0
    quality = {}
    for dataset in ("Set5", "Set14"):
        quality[f"{dataset} dB"] = round(single[dataset]["psnr"], 2)
        quality[f"{dataset} dB x8"] = round(ensemble[dataset]["psnr"], 2)
        quality[f"{dataset} SSIM x8"] = round(ensemble[dataset]["ssim"], 4)
    quality["Set5 target"] = TARGET_SET5[scale]
    quality["x8 meets target"] = "yes" if ensemble["Set5"]["psnr"] >= TARGET_SET5[scale] else "no"
    record("sr-self-ensemble", f"{run_dir.name} x8", recipe=f"SelfEnsemble({run_dir.name})", wall_s=ensemble_s,
           throughput={"eval s single": round(single_s, 1), "eval s x8": round(ensemble_s, 1)}, quality=quality,
           notes="8 flips/transposes averaged (EDSR+ protocol); published SRCNN/ESPCN/FSRCNN rows are single-pass")


def run_one(arch: str, scale: int, minutes: float, data_root: str | None, extra: list[str], smoke: bool,
            label: str = "") -> None:
    data = f"folder:{Path(data_root or ROOT.parent / 'shared' / 'data') / 'sr-train'}"
    rate = calibrate(arch, scale, data, extra, seconds=10 if smoke else 60)
    steps = max(10, int(rate * minutes * 60 * 0.97))
    name = f"sr-{arch}-x{scale}-{minutes:g}min" + (f"-{label}" if label else "")
    run_dir = RUNS / name
    if run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    print(f"{name}: {rate:.2f} steps/s -> {steps} steps")
    t0 = time.perf_counter()
    result = train("sr", config_file=ROOT / "configs" / f"sr-{arch}.yaml", progress=True, overrides=[
        f"data.name={data}", f"scale={scale}", f"train.out_dir={RUNS}", f"train.name={name}", f"steps={steps}",
        f"max_minutes={minutes * 1.05}", "tensorboard=false", *extra])
    train_s = time.perf_counter() - t0
    score_and_record(result.run_dir, arch, scale, result.step, train_s, extra,
                     row=f"{arch} x{scale}, {minutes:g} min" + (f", {label}" if label else ""),
                     rate=round(rate, 2), stopped_by=result.stopped_by, data_root=data_root)


def score_and_record(run_dir: Path, arch: str, scale: int, steps: int, train_s: float, extra: list[str], *,
                     row: str, rate: float | None, stopped_by: str, data_root: str | None = None) -> None:
    scores = evaluate_model(run_dir, scale, data_root)
    (RUNS / f"{run_dir.name}-eval.json").write_text(json.dumps(scores, indent=2) + "\n")
    quality = {}
    for dataset in ("Set5", "Set14"):
        m = scores[dataset]
        quality[f"{dataset} dB"] = round(m["psnr"], 2)
        quality[f"{dataset} SSIM"] = round(m["ssim"], 4)
        quality[f"{dataset} bicubic"] = round(m["bicubic_psnr"], 2)
        for paper, value in PUBLISHED[(dataset, scale)].items():
            quality[f"{dataset} {paper}"] = value
    quality["Set5 target"] = TARGET_SET5[scale]
    quality["meets target"] = "yes" if scores["Set5"]["psnr"] >= TARGET_SET5[scale] else "no"
    record("sr-training", row, recipe=f"configs/sr-{arch}.yaml scale={scale} steps={steps} {' '.join(extra)}".strip(),
           wall_s=train_s, throughput={"steps/s": rate, "train min": round(train_s / 60, 1)}, quality=quality,
           notes=f"EMA weights; stopped_by={stopped_by}")


def refine_gan(base_run: Path, minutes: float, data_root: str | None, extra: list[str],
               steps: int | None = None) -> None:
    """SRGAN-style refinement of a trained sr run: PSNR drop vs sharpness gain, with crops.

    With ``steps`` the run makes exactly that many steps (the schedule is constant, so only the
    count matters) and ``minutes`` is just a safety bound; the run is named by its steps.
    """
    data = f"folder:{Path(data_root or ROOT.parent / 'shared' / 'data') / 'sr-train'}"
    name = f"srgan-{base_run.name}-{steps}steps" if steps else f"srgan-{base_run.name}-{minutes:g}min"
    if (RUNS / name).exists():
        import shutil
        shutil.rmtree(RUNS / name)
    t0 = time.perf_counter()
    result = train("srgan", progress=True, overrides=[
        f"init={base_run}", f"data.name={data}", f"train.out_dir={RUNS}", f"train.name={name}",
        f"steps={steps or 1000000}", f"max_minutes={minutes}", "tensorboard=false", *extra])
    train_s = time.perf_counter() - t0
    if steps and result.step < steps:  # a row named by its steps must have made them all
        raise SystemExit(f"{name}: --minutes {minutes:g} stopped it at step {result.step} of {steps}; not recorded")
    quality = {}
    for label, run in (("base", base_run), ("gan", result.run_dir)):
        model = load_pretrained(run, kind="sr")
        for dataset in ("Set5", "Set14"):
            res = evaluate_upscaler(lambda lr: upscale_tensor(model, lr[0])[None], f"sr:{dataset}",
                                    scale=model.config.scale, data_root=data_root, measure_sharpness=True,
                                    crops=RUNS / f"{name}-{label}-{dataset}-crops.png")
            m = res["metrics"]
            quality[f"{dataset} {label} dB"] = round(m["psnr"], 2)
            quality[f"{dataset} {label} sharpness"] = round(m["sharpness"], 1)
            quality[f"{dataset} HR sharpness"] = round(m["hr_sharpness"], 1)
    recipe = json.loads((result.run_dir / "config.json").read_text())
    record("sr-gan-refinement", name, recipe=f"train srgan init={base_run.name}, perceptual="
           f"{recipe['objective']['perceptual']} (vgg_weights={recipe['objective']['vgg_weights']})",
           wall_s=train_s, throughput={"steps": result.step}, quality=quality,
           notes="sharpness = variance of the Laplacian of Y (higher = more detail); dfeat = feature matching on D")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="holds sr-train/ and sr-benchmarks/ (default ../shared/data)")
    parser.add_argument("--arch", action="append", choices=["espcn", "edsr"])
    parser.add_argument("--scale", action="append", type=int, choices=[2, 3, 4])
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget per model")
    parser.add_argument("--steps", type=int, help="train exactly this many steps, resumable over sittings of "
                        "--minutes (instead of fitting the schedule to --minutes)")
    parser.add_argument("--smoke", action="store_true", help="short calibration (for trying the script)")
    parser.add_argument("--srgan-from", type=Path,
                        help="refine this sr run adversarially instead (for --minutes, or --steps)")
    parser.add_argument("--self-ensemble", type=Path, nargs="+", metavar="RUN_DIR",
                        help="score these trained runs single-pass and with the x8 self-ensemble instead")
    parser.add_argument("--label", default="", help="names a rerun apart (run sr-edsr-x3-60min-LABEL, its own row), "
                        "so an earlier machine's row stays beside it")
    parser.add_argument("overrides", nargs="*", help="extra key=value recipe overrides")
    args = parser.parse_args()
    if args.label and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", args.label):
        parser.error(f"--label names a run directory: letters, digits, '-' and '_' only, got {args.label!r}")
    if args.self_ensemble:
        for run_dir in args.self_ensemble:
            score_self_ensemble(run_dir, args.data_root)
        print(render_docs())
        return
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if args.srgan_from:
        refine_gan(args.srgan_from, args.minutes, args.data_root, list(args.overrides), args.steps)
        print(render_docs())
        return
    for arch in args.arch or ["espcn", "edsr"]:
        for scale in args.scale or [2, 3, 4]:
            if args.steps:
                run_fixed_steps(arch, scale, args.steps, args.minutes, args.data_root, list(args.overrides), args.label)
                continue
            run_one(arch, scale, args.minutes, args.data_root, list(args.overrides), args.smoke, args.label)
    print(render_docs())


if __name__ == "__main__":
    main()
