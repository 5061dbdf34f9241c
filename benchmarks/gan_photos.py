"""Unconditional GANs on a small folder of real photos at 32 px, with and without ADA, scored with
Inception features (the standard FID network; `genvision weights get inception-fid` first).

    python benchmarks/gan_photos.py --data-root ../shared/data --steps 3000 --n 2000
    python benchmarks/gan_photos.py --steps 20 --n 50 --no-record      # smoke test

The data are the 291 photos of ../shared/data/sr-train (T91 + BSD200), each centre-cropped to a square and
resized to 32 px once (PIL, antialiased) into a temporary folder, so that training reads small files; the
GAN trains on that folder with horizontal flips (``folder:`` data, unconditional: its two sub-folders are
not classes a user would want), and the evaluation compares --n samples with the same 291 photos in
Inception-v3 pool features (FID and KID; with 291 reference images FID is biased upward, so compare rows
with each other, not with published CIFAR numbers). This is the "folder of photos at 32-64 px" row that
issue 19 asks for where CIFAR-10 is not available; 291 images is the small-data regime ADA was made for.
Recipes run one after another, each for --steps steps.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, ROOT, record, render_docs, train  # noqa: E402

from genvision import io as gio  # noqa: E402
from genvision.checkpoints import load_pretrained  # noqa: E402
from genvision.sampling import generate  # noqa: E402
from genvision.workflows.evaluate import evaluate  # noqa: E402

RUNS = RESULTS / "runs"
SIZE = 32
RECIPES = {
    "dcgan": [],  # the default unconditional recipe (non-saturating loss, BatchNorm D)
    "dcgan-ada": ["objective.ada_target=0.6"],
}
KEYS = ("fid", "kid", "precision", "recall")


def prepare(source: Path, target: Path) -> int:
    """Every photo under ``source`` as a SIZE x SIZE centre crop in ``target``; returns the count."""
    count = 0
    for path in sorted(p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp")):
        with Image.open(path) as image:
            image = image.convert("RGB")
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), Image.LANCZOS)
            square.save(target / f"{path.parent.name}-{path.stem}.png")
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--n", type=int, default=2000, help="samples scored per recipe")
    parser.add_argument("--only", default="", help="comma-separated recipe names (default: all)")
    parser.add_argument("--no-record", action="store_true", help="smoke test: print, record nothing")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(RECIPES)
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        count = prepare(Path(args.data_root) / "sr-train", photos)
        print(f"{count} photos at {SIZE} px in {photos}", flush=True)
        for name in names:
            run_name = f"gan-photos-{name}-{args.steps}"
            shutil.rmtree(RUNS / run_name, ignore_errors=True)
            t0 = time.perf_counter()
            result = train("gan", overrides=[f"data.name=folder:{photos}", f"data.image_size={SIZE}", "data.channels=3",
                                             "data.hflip=true", "conditional=false", f"train.out_dir={RUNS}",
                                             f"train.name={run_name}", f"train.steps={args.steps}",
                                             "train.sample_every=0", "train.ckpt_every=100000",
                                             "train.tensorboard=false", f"train.log_every={min(500, args.steps)}",
                                             *RECIPES[name]], progress=False)
            train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            evaluation = evaluate(str(result.run_dir), data=f"folder:{photos}", n=args.n, features="inception",
                                  output=RUNS / f"{run_name}-eval.json", overwrite=True)
            eval_s = time.perf_counter() - t1
            quality = {k: evaluation.metrics[k] for k in KEYS if k in evaluation.metrics}
            print(name, result.step, f"train {train_s:.0f} s", {k: round(v, 4) for k, v in quality.items()},
                  flush=True)
            if args.no_record:
                continue
            model = load_pretrained(result.run_dir, kind="gan")
            grid = gio.save_grid(generate(model, 64, seed=0), ROOT / "docs" / "images" / f"{run_name}.png", nrow=8,
                                 metadata={"model": run_name, "seed": 0})
            record("gan-photos", f"{name} @ {args.steps} steps, {count} photos at {SIZE} px, n={args.n}",
                   recipe=" ".join(RECIPES[name]) or "default (unconditional)", wall_s=train_s + eval_s,
                   throughput={"steps": result.step, "train s": train_s, "img/s": result.step * 64 / train_s,
                               "eval s": eval_s},
                   quality=quality, notes=f"Inception features; grid: docs/images/{grid.name}")
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
