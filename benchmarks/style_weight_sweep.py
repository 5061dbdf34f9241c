"""Which default style weight keeps a photo's content under `stylize --method optimize`.

    python benchmarks/style_weight_sweep.py --size 256 --weights 100,30,10
    python benchmarks/style_weight_sweep.py --size 512 --weights 30,10

The first content photo (centre square at ``--size``) under starry_night with the default settings
(VGG-19, coarse to fine, ``--steps`` per scale) at each style weight; one grid (photo, then one tile
per weight) and the final scale's losses and time per weight, recorded as results/style/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, record
from style_gallery import square

from genvision import io as gio
from genvision.apps.style import pipeline


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--weights", default="100,30,10")
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps per scale")
    parser.add_argument("--out", help="the grid (default docs/images/style-weight-SIZE.png)")
    args = parser.parse_args(argv)
    data = Path(args.data_root) / "style-images"
    photo = min((data / "content").glob("*.jpg"))
    style = gio.load_image_tensor(data / "style" / "starry_night.jpg", channels=3)[None]  # (1, 3, H, W)
    content = square(gio.load_image_tensor(photo, channels=3)[None], args.size)
    out = Path(args.out or ROOT / "docs" / "images" / f"style-weight-{args.size}.png")
    weights = [float(w) for w in args.weights.split(",")]
    tiles, started = [content[0]], time.perf_counter()
    for weight in weights:
        t = time.perf_counter()
        result = pipeline.transfer(content, [style], size=args.size, steps=args.steps, style_weight=weight)
        seconds = time.perf_counter() - t
        losses = {k: round(v, 1) for k, v in result.scales[-1].losses.items()}
        print(f"{photo.stem} weight {weight:g}: {losses} {seconds:.0f} s", flush=True)
        tiles.append(result.image.clamp(0, 1))  # (3, H, W)
        record("style", f"style weight {weight:g} at {args.size} px", recipe=f"optimize, {args.steps} steps/scale",
               wall_s=seconds, quality={"content_loss": losses["content"], "style_loss": losses["style"]},
               notes=f"{photo.name} x starry_night; grid {out.name}")
    gio.save_grid(torch.stack(tiles), out, nrow=len(tiles), value_range=(0.0, 1.0),
                  metadata={"photo": photo.name, "style": "starry_night.jpg", "weights": weights,
                            "size": args.size, "steps_per_scale": args.steps,
                            "seconds": round(time.perf_counter() - started)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
