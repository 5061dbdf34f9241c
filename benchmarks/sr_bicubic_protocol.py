"""The SR protocol check: bicubic PSNR/SSIM on Set5 and Set14 at x2/x3/x4 vs the published numbers.

    python benchmarks/sr_bicubic_protocol.py --data-root ../shared/data            # all six (~1-2 min)
    python benchmarks/sr_bicubic_protocol.py --data-root ../shared/data --part Set14:2   # one cell
    python benchmarks/sr_bicubic_protocol.py --record-only      # the harness row from the cached cells

LR = MATLAB bicubic down (genvision.nn.resize.imresize, 8-bit), bicubic baseline = MATLAB bicubic
up (8-bit), PSNR/SSIM on BT.601 Y with ``scale`` pixels shaved (genvision.metrics.image.sr_psnr_ssim).
Each cell is cached in benchmarks/results/runs/sr-protocol-cells.json, so the six cells can be
computed by separate short invocations; the harness row is written once all six exist.
Pass criteria (issue 6): Set5 within 0.05 dB, Set14 within 0.1 dB of the published values.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, record, render_docs  # noqa: E402

from genvision.apps.sr.evaluate import PUBLISHED_BICUBIC, bicubic_upscaler, evaluate_upscaler  # noqa: E402

CELLS = [(d, s) for d in ("Set5", "Set14") for s in (2, 3, 4)]
CACHE = RESULTS / "runs" / "sr-protocol-cells.json"
TOLERANCE = {"Set5": 0.05, "Set14": 0.1}


def compute(dataset: str, scale: int, data_root: str | None) -> dict:
    start = time.perf_counter()
    result = evaluate_upscaler(bicubic_upscaler(scale), f"sr:{dataset}", scale=scale, data_root=data_root,
                               compare_bicubic=False)
    m = result["metrics"]
    return {"psnr": round(m["psnr"], 3), "ssim": round(m["ssim"], 4), "images": m["images"],
            "wall_s": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="directory holding sr-benchmarks/Set5 and Set14")
    parser.add_argument("--part", action="append", help="only this cell, e.g. Set14:3 (repeatable)")
    parser.add_argument("--record-only", action="store_true", help="record the row from the cached cells")
    args = parser.parse_args()
    cells = [(p.split(":")[0], int(p.split(":")[1])) for p in args.part] if args.part else CELLS
    if args.record_only:
        cells = []
    cache = json.loads(CACHE.read_text()) if CACHE.is_file() else {}
    for dataset, scale in cells:
        key = f"{dataset}:x{scale}"
        cache[key] = compute(dataset, scale, args.data_root)
        published = PUBLISHED_BICUBIC[(dataset, scale)][0]
        diff = cache[key]["psnr"] - published
        print(f"{key}: {cache[key]['psnr']:.3f} dB (published {published:.2f}, diff {diff:+.3f}), "
              f"SSIM {cache[key]['ssim']:.4f}  [{cache[key]['wall_s']} s]")
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        CACHE.write_text(json.dumps(cache, indent=2) + "\n")
    if all(f"{d}:x{s}" in cache for d, s in CELLS):
        quality, ok = {}, True
        for d, s in CELLS:
            ours, published = cache[f"{d}:x{s}"]["psnr"], PUBLISHED_BICUBIC[(d, s)][0]
            quality[f"{d} x{s} dB"] = ours
            quality[f"{d} x{s} published"] = published
            ok &= abs(ours - published) <= TOLERANCE[d]
        quality["within tolerance"] = "yes" if ok else "NO"
        wall = sum(cache[f"{d}:x{s}"]["wall_s"] for d, s in CELLS)
        path = record("sr-protocol", "bicubic Set5 + Set14", recipe="MATLAB bicubic down/up, 8-bit, Y BT.601, "
                      "shave=scale; grey files (Set14 bridge) as grey", wall_s=wall, quality=quality,
                      notes="reproduces the published bicubic baselines (EDSR/RCAN tables); wall = sum over the "
                      "six cells (each may come from its own --part run, cached in runs/sr-protocol-cells.json)")
        print(f"recorded {path}; {render_docs()}")


if __name__ == "__main__":
    main()
