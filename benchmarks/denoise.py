"""Denoising benchmark: a blind grey DnCNN trained under a CPU time budget, scored on Set5 / Set14
(greyscale) at sigma 15 / 25 / 50 beside BM3D and OpenCV's non-local means on the same noisy images.

    python benchmarks/denoise.py --data-root ../shared/data                      # train 60 min, evaluate
    python benchmarks/denoise.py --data-root ../shared/data --minutes 30 model.width=64
    python benchmarks/denoise.py --evaluate-only benchmarks/results/runs/denoise-dncnn-60min
    python benchmarks/denoise.py --minutes 0.2 --limit 1 --smoke                 # try the script (records nothing)

Training: ``genvision train denoise --config configs/denoise-dncnn.yaml`` on ``folder:<data-root>/sr-train``
(T91 + BSD200, 291 images, grey, sigma uniform in [0, 55]) with ``train.steps`` set so the cosine
schedule ends at the budget (the rate is measured in a short calibration run first;
``train.max_minutes`` stops the run in any case), into ``benchmarks/results/runs/<name>``.

Evaluation (``genvision.apps.denoise.evaluate``, the published grey protocol): BT.601 grey clean
images, unclipped Gaussian noise seeded per image (seed 0: every method sees the same noisy
images), outputs quantised to 8 bits, PSNR / SSIM over the whole image. The EMA weights of the
run are scored; BM3D is the ``bm3d`` package (``bm3d.bm3d(noisy, sigma_psd=sigma / 255)``, the
reference implementation of Mäkinen, Azzari & Foi, on the unclipped float noisy image); NL-means
is ``cv2.fastNlMeansDenoising`` (h = sigma) on the clipped 8-bit noisy image. One row per method
with a PSNR column per (set, sigma); SSIM and per-image numbers go to ``runs/<name>-eval.json``.

Published numbers are on BSD68 (not shipped here), so they are recorded as reference rows only:
sigma 25, BM3D 28.57, DnCNN-S 29.23 (Zhang et al. 2017, Table II), DRUNet 29.48 (Zhang et al.
2021, "Plug-and-Play Image Restoration with Deep Denoiser Prior", Table 2).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train

from genvision.apps.denoise.evaluate import evaluate_denoiser, model_denoiser
from genvision.checkpoints import load_pretrained

RUNS = RESULTS / "runs"
CONFIG = ROOT / "configs" / "denoise-dncnn.yaml"
DATASETS = ("Set5", "Set14")
SIGMAS = (15, 25, 50)
CAPABILITY = "denoise"
PUBLISHED_BSD68_S25 = {"BM3D": (28.57, "Dabov et al. 2007, as tabulated in DnCNN (Zhang et al. 2017) Table II"),
                       "DnCNN-S": (29.23, "Zhang et al. 2017, Table II"),
                       "DRUNet": (29.48, "Zhang et al. 2021, Table 2")}


def calibrate(data: str, extra: list[str], seconds: float) -> float:
    """Steps per second of the recipe on this machine (a short throw-away run)."""
    name = f"calibrate-denoise-{int(time.time())}"
    result = train("denoise", config_file=CONFIG, progress=False, overrides=[
        f"data.name={data}", f"train.out_dir={RUNS}", f"train.name={name}", "steps=100000",
        f"max_minutes={seconds / 60}", "log_every=5", "ckpt_every=100000", "sample_every=0", "tensorboard=false",
        *extra])
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "elapsed_s" in r and "step" in r]
    shutil.rmtree(result.run_dir, ignore_errors=True)
    if len(rows) >= 2:  # steps over time after the first window (which includes warm-up)
        return (rows[-1]["step"] - rows[0]["step"]) / max(rows[-1]["elapsed_s"] - rows[0]["elapsed_s"], 1e-9)
    return max(result.step, 1) / seconds


def bm3d_denoiser():
    import bm3d  # the benchmark's peer (pip install bm3d==4.0.3, the "bench" extra), never genvision's

    def run(noisy: torch.Tensor, level: float) -> torch.Tensor:
        if noisy.shape[1] != 1:
            raise ValueError("this benchmark runs BM3D on greyscale images")
        out = bm3d.bm3d(noisy[0, 0].double().numpy(), sigma_psd=level)
        return torch.from_numpy(out).float()[None, None]

    return run


def evaluate_run(run_dir: Path, data_root: str | None, *, limit: int | None, with_bm3d: bool,
                 sigmas: tuple[int, ...]) -> dict:
    """Scores of the run's model, BM3D, NL-means and the noisy input: {method: {"Set5 s25": {...}}}."""
    model = load_pretrained(run_dir, kind="denoise")
    scores: dict[str, dict] = {"model": {}, "bm3d": {}, "nlmeans": {}, "noisy": {}}
    times: dict[str, float] = {"model": 0.0, "bm3d": 0.0, "nlmeans": 0.0}
    images = 0
    for dataset in DATASETS:
        for sigma in sigmas:
            key = f"{dataset} s{sigma}"
            res = evaluate_denoiser(model_denoiser(model), f"sr:{dataset}", sigma=sigma, seed=0, channels=1,
                                    data_root=data_root, limit=limit, progress=True,
                                    crops=RUNS / f"{run_dir.name}-{dataset}-s{sigma}-crops.png")
            m = res["metrics"]
            images += m["images"]
            scores["model"][key] = {"psnr": m["psnr"], "ssim": m["ssim"], "per_image": res["per_image"]}
            scores["nlmeans"][key] = {"psnr": m["nlmeans_psnr"], "ssim": m["nlmeans_ssim"]}
            scores["noisy"][key] = {"psnr": m["noisy_psnr"], "ssim": m["noisy_ssim"]}
            times["model"] += m["inference_s"]
            times["nlmeans"] += m["nlmeans_s"]
            if with_bm3d:
                res = evaluate_denoiser(bm3d_denoiser(), f"sr:{dataset}", sigma=sigma, seed=0, channels=1,
                                        data_root=data_root, limit=limit, compare_nlmeans=False, progress=True)
                scores["bm3d"][key] = {"psnr": res["metrics"]["psnr"], "ssim": res["metrics"]["ssim"],
                                       "per_image": res["per_image"]}
                times["bm3d"] += res["metrics"]["inference_s"]
    scores["seconds_per_image"] = {k: v / max(images, 1) for k, v in times.items()}
    scores["images"] = images
    return scores


def _quality(method_scores: dict) -> dict:
    return {key.replace(" s", " σ"): round(v["psnr"], 2) for key, v in method_scores.items()}


def report(run_dir: Path, scores: dict, *, train_s: float, recipe: str, steps_per_s: float | None,
           notes: str, smoke: bool) -> None:
    (RUNS / f"{run_dir.name}-eval.json").write_text(json.dumps(scores, indent=2) + "\n")
    per_image = scores["seconds_per_image"]
    rows = [(f"{run_dir.name} (EMA)", recipe, train_s, scores["model"], per_image["model"], notes),
            ("NL-means (OpenCV, h = sigma)", "cv2.fastNlMeansDenoising 7x7 / 21x21, clipped 8-bit input", 0.0,
             scores["nlmeans"], per_image["nlmeans"], "classical baseline, no training"),
            ("noisy input", "clean + N(0, sigma^2), seed 0", 0.0, scores["noisy"], 0.0,
             "20 log10(255 / sigma) up to sampling")]
    if scores["bm3d"]:
        rows.insert(1, ("BM3D (bm3d 4.0.3)", "bm3d.bm3d(noisy, sigma_psd=sigma/255), unclipped float input", 0.0,
                        scores["bm3d"], per_image["bm3d"], "classical baseline (Dabov et al. 2007), no training"))
    for name, recipe_text, wall_s, method_scores, s_per_img, note in rows:
        quality = _quality(method_scores)
        throughput = {"s/img": round(s_per_img, 3)}
        if steps_per_s is not None and wall_s:
            throughput["steps/s"] = round(steps_per_s, 2)
            throughput["train min"] = round(wall_s / 60, 1)
        print(f"{name:<36} " + "  ".join(f"{k} {v:.2f}" for k, v in quality.items()))
        if not smoke:
            record(CAPABILITY, name, recipe=recipe_text, wall_s=wall_s, throughput=throughput, quality=quality,
                   notes=note)
    for method, (value, source) in PUBLISHED_BSD68_S25.items():
        print(f"{method + ' (published, BSD68)':<36} BSD68 σ25 {value:.2f}")
        if not smoke:
            record(CAPABILITY, f"{method} (published, BSD68)", recipe="reference (not measured here)", wall_s=0.0,
                   quality={"BSD68 σ25": value}, notes=source)
    if not smoke:
        print(render_docs())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="holds sr-train/ and sr-benchmarks/ (default ../shared/data)")
    parser.add_argument("--minutes", type=float, default=60.0, help="training budget")
    parser.add_argument("--name", default=None, help="run name (default denoise-dncnn-<minutes>min)")
    parser.add_argument("--evaluate-only", type=Path, metavar="RUN_DIR", help="score a trained run; no training")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each set (quick tries)")
    parser.add_argument("--sigmas", type=int, nargs="+", default=list(SIGMAS))
    parser.add_argument("--no-bm3d", action="store_true", help="skip BM3D (the slowest column)")
    parser.add_argument("--smoke", action="store_true",
                        help="short calibration; print the rows, record nothing, delete the run afterwards")
    parser.add_argument("overrides", nargs="*", help="extra key=value recipe overrides")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data_root = args.data_root or str(ROOT.parent / "shared" / "data")
    sigmas = tuple(args.sigmas)
    if args.evaluate_only:
        run_dir = args.evaluate_only
        recipe = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").is_file() else {}
        scores = evaluate_run(run_dir, data_root, limit=args.limit, with_bm3d=not args.no_bm3d, sigmas=sigmas)
        report(run_dir, scores, train_s=0.0, recipe=f"{CONFIG.relative_to(ROOT)} (run {run_dir.name})",
               steps_per_s=None, notes=f"evaluated with --evaluate-only; model config {recipe.get('config', '')}",
               smoke=args.smoke)
        return
    data = f"folder:{Path(data_root) / 'sr-train'}"
    extra = list(args.overrides)
    rate = calibrate(data, extra, seconds=10 if args.smoke else 60)
    steps = max(10, int(rate * args.minutes * 60 * 0.97))
    name = args.name or (f"denoise-smoke-{int(time.time())}" if args.smoke else f"denoise-dncnn-{args.minutes:g}min")
    run_dir = RUNS / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    print(f"{name}: {rate:.2f} steps/s -> {steps} steps")
    t0 = time.perf_counter()
    result = train("denoise", config_file=CONFIG, progress=True, overrides=[
        f"data.name={data}", f"train.out_dir={RUNS}", f"train.name={name}", f"steps={steps}",
        f"max_minutes={args.minutes * 1.05}", "tensorboard=false", *extra])
    train_s = time.perf_counter() - t0
    scores = evaluate_run(result.run_dir, data_root, limit=args.limit, with_bm3d=not args.no_bm3d, sigmas=sigmas)
    recipe = f"{CONFIG.relative_to(ROOT)} steps={result.step} {' '.join(extra)}".strip()
    report(result.run_dir, scores, train_s=train_s, recipe=recipe, steps_per_s=rate,
           notes=f"EMA weights; stopped_by={result.stopped_by}; blind (one model for every sigma)", smoke=args.smoke)
    if args.smoke:
        shutil.rmtree(result.run_dir, ignore_errors=True)
        for path in RUNS.glob(f"{name}-*"):
            path.unlink()


if __name__ == "__main__":
    main()
