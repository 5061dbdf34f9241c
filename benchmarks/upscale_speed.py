"""Upscaling speed (output megapixels per second) per model, and peak memory of an 8000x6000 x4 upscale.

    python benchmarks/upscale_speed.py                                   # bicubic, espcn, edsr (random weights)
    python benchmarks/upscale_speed.py --model runs/sr-edsr-x4 --model bicubic
    python benchmarks/upscale_speed.py --big --big-model bicubic         # + the 8000x6000 x4 memory case

Speed: a 512x512 RGB input upscaled x4 through ``upscale_tensor`` with 256-pixel tiles and
16-pixel overlap (the CLI defaults), best of 3, fp32, in this process. Weights do not change the
speed, so unnamed archs use their default configs with random weights.

Memory: a synthetic 8000x6000 RGB PNG upscaled x4 by ``upscale_file`` to a 32000x24000 PNG (the
8-bit output alone is 2.3 GB) in a child process; its peak RSS (ru_maxrss) is recorded. Issue 6
asks for < 4 GB.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, render_docs  # noqa: E402

from genvision.apps.sr.pipeline import resolve_sr_model, upscale_tensor  # noqa: E402
from genvision.registry import create_model  # noqa: E402


def model_for(spec: str, scale: int):
    if spec in ("espcn", "edsr"):
        return create_model(spec, {"scale": scale}).eval(), f"{spec} (default config)"
    label = Path(spec).name if Path(spec).is_dir() else spec  # a run directory is named by its run
    return resolve_sr_model(spec, scale if spec == "bicubic" else None), label


def speed(model, size: int, tile: int, repeats: int = 3) -> float:
    x = torch.rand(3, size, size)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = upscale_tensor(model, x, tile=tile, overlap=16)
        best = min(best, time.perf_counter() - t0)
    return out.shape[-1] * out.shape[-2] / 1e6 / best


def big_case(model_spec: str, width: int, height: int, tile: int, compress_level: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "big.png", Path(tmp) / "big_x4.png"
        script = textwrap.dedent(f"""
            import resource, time, numpy as np
            from PIL import Image
            yy = np.arange({height}, dtype=np.float32)[:, None]; xx = np.arange({width}, dtype=np.float32)[None, :]
            g = ((np.sin(xx / 37.0) + np.cos(yy / 23.0)) * 60 + 128).astype(np.uint8)
            Image.fromarray(np.stack([g, g[::-1], g[:, ::-1]], -1)).save({str(src)!r}, compress_level=1)
            del g
        """)
        subprocess.run([sys.executable, "-c", script], check=True)
        script = textwrap.dedent(f"""
            import resource, time
            from genvision.apps.sr.pipeline import resolve_sr_model, upscale_file
            m = resolve_sr_model({model_spec!r}, 4 if {model_spec!r} == "bicubic" else None)
            t0 = time.perf_counter()
            upscale_file(m, {str(src)!r}, {str(dst)!r}, tile={tile}, compress_level={compress_level})
            print(time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        """)
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
        seconds, peak = out.stdout.split()
        return {"seconds": float(seconds), "peak_bytes": int(peak), "output_bytes": dst.stat().st_size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="bicubic, espcn, edsr or a model directory (repeatable)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", type=int, default=512, help="input side for the speed test")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--big", action="store_true", help="also run the 8000x6000 x4 memory case")
    parser.add_argument("--big-model", default="bicubic")
    parser.add_argument("--compress-level", type=int, default=1, help="PNG zlib level for the big case")
    args = parser.parse_args()
    for spec in args.model or ["bicubic", "espcn", "edsr"]:
        model, label = model_for(spec, args.scale)
        t0 = time.perf_counter()
        mps = speed(model, args.size, args.tile)
        print(f"{label} x{model.config.scale}: {mps:.3f} output MP/s")
        record("sr-upscale-speed", f"{label} x{model.config.scale}", recipe=f"{args.size}x{args.size} RGB input, "
               f"tile {args.tile}, overlap 16, fp32, {torch.get_num_threads()} threads",
               wall_s=time.perf_counter() - t0, throughput={"output MP/s": round(mps, 3)})
    if args.big:
        t0 = time.perf_counter()
        res = big_case(args.big_model, 8000, 6000, args.tile, args.compress_level)
        print(f"8000x6000 x4 with {args.big_model}: {res['seconds']:.0f} s, peak RSS {res['peak_bytes'] / 2**30:.2f} GiB")
        record("sr-upscale-speed", f"{args.big_model} 8000x6000 -> 32000x24000 PNG",
               recipe=f"upscale_file, tile {args.tile}, overlap 16, PNG zlib level {args.compress_level}",
               wall_s=time.perf_counter() - t0,
               throughput={"output MP/s": round(32000 * 24000 / 1e6 / res["seconds"], 2),
                           "peak RSS GiB": round(res["peak_bytes"] / 2**30, 2)},
               quality={"under 4 GB": "yes" if res["peak_bytes"] < 4e9 else "NO"})
    print(render_docs())


if __name__ == "__main__":
    main()
