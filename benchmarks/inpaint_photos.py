"""Learned photo inpainting (issue 13): a LaMa-style network against Telea and Navier-Stokes.

    python benchmarks/inpaint_photos.py                         # train configs/inpaint-lama.yaml, then score
    python benchmarks/inpaint_photos.py --steps 3000            # a fixed number of training steps
    python benchmarks/inpaint_photos.py --model runs/RUN        # score a trained network only
    python benchmarks/inpaint_photos.py --steps 20 --limit 2 --no-record      # smoke test

Protocol (the one of ``edit_ops.py --part inpaint``): every Set5 and Set14 image (RGB, full size),
one seeded free-form mask each (``random_mask(area, seed=1000 + i)``) at 10-20% and at 30-40% hole
area; PSNR over the hole's pixels and SSIM over the hole's bounding box, on BT.601 luma. The
network fills each image at its own size in one pass (EMA weights); the classical methods use
radius 3. Training data: ../shared/data/sr-train (T91 + BSD200), none of the test images.
Target: the network >= Telea + 1 dB at 10-20%. Writes ``docs/images/inpaint-photos.png``: crops
of masked input, Telea, the network and the original for three images.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from edit_ops import hole_scores
from harness import RESULTS, ROOT, record, render_docs, run_summary, train

from genvision import io as gio
from genvision.apps.edit.inpaint import inpaint_array
from genvision.ops.masks import random_mask

CONFIG = ROOT / "configs" / "inpaint-lama.yaml"
RUNS = RESULTS / "runs"
RANGES = ((0.10, 0.20), (0.30, 0.40))
METHODS = ("telea", "ns", "net")
CROPS = ROOT / "docs" / "images" / "inpaint-photos.png"


def test_images(data_root: Path, limit: int | None) -> list[Path]:
    bench = data_root / "sr-benchmarks"
    files = sorted((bench / "Set5").glob("*.png")) + sorted((bench / "Set14").glob("*.png"))
    return files[:limit] if limit else files


def score(model_dir: Path, files: list[Path]) -> tuple[dict[str, float], dict[str, float], list]:
    """Mean hole PSNR/SSIM per method and range, seconds per image per method, and crop material."""
    quality, seconds, crops = {}, {m: 0.0 for m in METHODS}, []
    for low, high in RANGES:
        rows = {m: [] for m in METHODS}
        for index, path in enumerate(files):
            image = np.asarray(gio.load_image(path, "RGB"))
            mask = random_mask(image.shape[:2], area=(low, high), seed=1000 + index)
            fills = {}
            for method in METHODS:
                options = {"model": str(model_dir)} if method == "net" else {"radius": 3}
                t0 = time.perf_counter()
                fills[method] = inpaint_array(image, mask, method=method, **options)
                seconds[method] += time.perf_counter() - t0
                rows[method].append(hole_scores(fills[method], image, mask))
            if low == RANGES[0][0] and index in (0, 2, 8):
                crops.append((image, mask, fills))
        for method, values in rows.items():
            label = f"{method} {round(low * 100)}-{round(high * 100)}%"
            quality[f"{label} PSNR"] = float(np.mean([v[0] for v in values]))
            quality[f"{label} SSIM"] = float(np.mean([v[1] for v in values]))
            print(f"{label}: PSNR {quality[f'{label} PSNR']:.2f} dB, SSIM {quality[f'{label} SSIM']:.4f}")
    per_image = {m: s / (len(files) * len(RANGES)) for m, s in seconds.items()}
    return quality, per_image, crops


def write_crops(crops: list, path: Path) -> None:
    """One row per image: masked (hole grey) | Telea | network | original, 192x192 centred on the hole."""
    rows = []
    for image, mask, fills in crops:
        ys, xs = np.nonzero(mask)
        side = min(192, *image.shape[:2])
        cy = int(np.clip(np.median(ys), side // 2, image.shape[0] - side // 2))
        cx = int(np.clip(np.median(xs), side // 2, image.shape[1] - side // 2))
        window = (slice(cy - side // 2, cy - side // 2 + side), slice(cx - side // 2, cx - side // 2 + side))
        masked = image.copy()
        masked[mask] = 128
        tiles = [masked, fills["telea"], fills["net"], image]
        rows.append(np.concatenate([t[window] for t in tiles], axis=1))  # (side, 4 * side, 3)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    gio.save_image(Image.fromarray(sheet), path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--model", help="a trained inpainting run or model directory (default: train one)")
    parser.add_argument("--steps", type=int, help="training steps (default: the config's)")
    parser.add_argument("--limit", type=int, help="score only the first N test images")
    parser.add_argument("--name", help="run name (default inpaint-lama-<steps>steps)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    parser.add_argument("--note", default="", help="added to the row's notes (e.g. that other jobs shared the cores)")
    parser.add_argument("overrides", nargs="*", help="recipe key=value overrides for training")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    data_root = Path(args.data_root)
    train_s, steps, rate = 0.0, None, None
    if args.model:
        model_dir = Path(args.model)
        steps, train_s = run_summary(model_dir)
        rate = steps / train_s if steps and train_s else None
    else:
        steps_override = [f"train.steps={args.steps}"] if args.steps else []
        name = args.name or f"inpaint-lama-{args.steps or 'config'}steps"
        shutil.rmtree(RUNS / name, ignore_errors=True)
        t0 = time.perf_counter()
        result = train("inpaint", config_file=CONFIG, progress=True, overrides=[
            f"data.name=folder:{data_root / 'sr-train'}", f"train.out_dir={RUNS}", f"train.name={name}",
            "train.tensorboard=false", *steps_override, *args.overrides])
        train_s, steps, model_dir = time.perf_counter() - t0, result.step, result.run_dir
        rate = steps / train_s
        print(f"trained {steps} steps in {train_s / 60:.1f} min ({rate:.2f} steps/s)")
    files = test_images(data_root, args.limit)
    t0 = time.perf_counter()
    quality, per_image, crops = score(model_dir, files)
    eval_s = time.perf_counter() - t0
    gain = quality["net 10-20% PSNR"] - quality["telea 10-20% PSNR"]
    print(f"network - Telea at 10-20%: {gain:+.2f} dB (target >= +1 dB)")
    if args.no_record:
        return
    write_crops(crops, CROPS)
    quality["net - telea 10-20% dB"] = gain
    recipe = f"{CONFIG.relative_to(ROOT)} steps={steps} {' '.join(args.overrides)}".strip()
    record("inpainting", f"learned (lama) vs classical, Set5+Set14, {len(files)} images", recipe=recipe,
           wall_s=train_s + eval_s,
           throughput={"train steps/s": rate or 0.0, **{f"{m} s/image": s for m, s in per_image.items()}},
           quality=quality,
           notes=f"run {Path(model_dir).name}; trained {train_s / 60:.1f} min on sr-train; masks random_mask(seed=1000+i); "
                 f"PSNR over hole pixels, SSIM over the hole's bounding box, BT.601 luma" + (
                     f"; {args.note}" if args.note else ""))
    print(render_docs())


if __name__ == "__main__":
    main()
