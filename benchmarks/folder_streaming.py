"""Is ``folder:PATH`` ever the bottleneck, and does memory stay flat as the folder grows?

    python benchmarks/folder_streaming.py                 # ~8 minutes on 2 cores, ~0.5 GB of temporary files
    python benchmarks/folder_streaming.py --sizes 1000    # a quick look

Builds labelled folders of 10k and 100k JPEGs (160x160 crops of the 291 SR training photos in ../shared/data,
256 distinct files written round-robin: decoding costs what real photos of that size cost), then per size:

* opening: the wall time of ``FolderImageDataset`` (one header read per file) and the resident memory it adds;
* the loader alone: images/s of ``batch_stream`` (random-resized crops to 64 px, flips, batch 64) with 0, 1
  and 2 DataLoader workers, against the training step: images/s of ``genvision train classifier`` (the default
  ResNet, a photo-recognition recipe at 64 px) on the same folder with 0 and 2 workers, each run alone;
* memory: the peak resident memory of that training process (``os.wait4``), 10k against 100k files.

Rows go to table ``folder-streaming``. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record, render_docs  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "sr-train"
VARIANTS, SIDE, CLASSES = 256, 160, 10


def _variants() -> list[bytes]:
    """JPEG bytes of VARIANTS random SIDE x SIDE crops of real photos."""
    photos = sorted(p for p in SOURCE.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".bmp", ".jpeg"})
    if not photos:
        raise SystemExit(f"no photos under {SOURCE} (see ../shared/data/SOURCES.md)")
    rng = np.random.default_rng(0)
    out = []
    while len(out) < VARIANTS:
        image = Image.open(photos[len(out) % len(photos)]).convert("RGB")
        if min(image.size) < SIDE:
            image = image.resize((max(SIDE, image.width), max(SIDE, image.height)))
        x, y = int(rng.integers(0, image.width - SIDE + 1)), int(rng.integers(0, image.height - SIDE + 1))
        buffer = BytesIO()
        image.crop((x, y, x + SIDE, y + SIDE)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def build_folder(root: Path, count: int, variants: list[bytes]) -> float:
    t0 = time.perf_counter()
    for c in range(CLASSES):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"class{i % CLASSES}" / f"{i:07d}.jpg").write_bytes(variants[i % len(variants)])
    return time.perf_counter() - t0


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_and_load(root: Path, count: int, batches: int) -> dict:
    import torch

    from genvision.data.folder import FolderImageDataset
    from genvision.training.batches import batch_stream

    torch.set_num_threads(2)
    import torchvision.transforms.v2  # noqa: F401  (imported before the timing: opening a folder is what is measured)

    before = _rss_mib()
    t0 = time.perf_counter()
    dataset = FolderImageDataset(root, image_size=64, train_augment=True, resized_crop=0.35, hflip=True)
    opened = time.perf_counter() - t0
    row = {"files": len(dataset), "open s": opened, "open MiB": _rss_mib() - before}
    for workers in (0, 1, 2):
        stream = batch_stream(dataset, 64, seed=0, start_step=0, workers=workers)
        next(stream)  # workers start and warm up outside the timing
        t0 = time.perf_counter()
        for _ in itertools.islice(stream, batches):
            pass
        row[f"loader img/s ({workers} workers)"] = 64 * batches / (time.perf_counter() - t0)
        del stream
    print(count, {k: round(v, 2) for k, v in row.items()}, flush=True)
    return row


def train_on(root: Path, out: Path, steps: int, workers: int) -> tuple[float, float, float]:
    """(training img/s of the last window, peak RSS MiB, wall s) of `genvision train classifier` on the folder."""
    name = f"classifier-{root.name}-{workers}"
    command = [sys.executable, "-m", "genvision", "train", "classifier", f"data.name=folder:{root}", "data.image_size=64",
               "data.resized_crop=0.35", "data.hflip=true", f"data.workers={workers}", f"train.steps={steps}",
               f"train.log_every={steps // 2}", "train.sample_every=0", "train.tensorboard=false",
               f"train.ckpt_every={steps}", f"train.out_dir={out}", f"train.name={name}"]
    t0 = time.perf_counter()
    with open(out / f"{name}.log", "w") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own peak RSS
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"training failed:\n{(out / f'{name}.log').read_text()[-3000:]}")
    logged = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
    return logged[-1]["images_per_s"], usage.ru_maxrss / 1024, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batches", type=int, default=30, help="loader batches timed per worker count")
    parser.add_argument("--steps", type=int, default=60, help="training steps per folder")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="folder-bench-"))
    try:
        variants = _variants()
        for count in args.sizes:
            root = work / f"n{count}"
            built = build_folder(root, count, variants)
            row = open_and_load(root, count, args.batches)
            wall = 0.0
            for workers in (0, 2):
                rate, peak, seconds = train_on(root, work, args.steps, workers)
                wall += seconds
                row.update({f"train img/s ({workers} workers)": rate, f"train peak RSS MiB ({workers} workers)": peak})
                print(count, workers, f"train {rate:.0f} img/s, peak {peak:.0f} MiB, {seconds:.0f} s", flush=True)
            row["build s"] = built
            if not args.no_record:
                record("folder-streaming", f"folder of {count} JPEGs", wall_s=wall,
                       recipe=f"{SIDE}px JPEG crops of real photos, 10 classes; 64 px random-resized crops "
                              f"(area >= 0.35), flips, batch 64; classifier default for {args.steps} steps",
                       throughput={k: v for k, v in row.items() if k != "build s"},
                       notes="loader alone in this process (2 torch threads); training in a child process")
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
