"""The style-transfer gallery: each content photo under each method and several paintings, one figure.

    genvision weights get vgg19
    python benchmarks/style_fast.py ...            # trains runs/style-fast/johnson and runs/style-fast/adain
    python benchmarks/style_gallery.py [--data-root ../shared/data] [--runs benchmarks/results/runs/style-fast]

Rows: the three photos of ../shared/data/style-images/content, centre-cropped square and resized to
``--size``. Columns: the photo; ``stylize --method optimize`` (Gatys, VGG-19, coarse to fine) with two
paintings; the Johnson network trained on the first painting; AdaIN with the first painting (seen in
training) and the second (held out, never seen). The Johnson and AdaIN networks are the ones
benchmarks/style_fast.py trained, so the figure shows exactly what its rows measure. Writes
docs/images/style-gallery.png with a JSON sidecar naming every column.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT

from genvision import io as gio
from genvision.apps.style import pipeline
from genvision.apps.style.fast import load_style_model, run
from genvision.apps.style.optimize import resize

FIGURE = ROOT / "docs" / "images" / "style-gallery.png"


def square(image: torch.Tensor, size: int) -> torch.Tensor:
    """(1, 3, H, W) -> (1, 3, size, size): the centred square crop, resized."""
    h, w = image.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return resize(image[..., top:top + side, left:left + side], (size, size))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--runs", default="benchmarks/results/runs/style-fast")
    parser.add_argument("--styles", default="starry_night.jpg,udnie.jpg",
                        help="two paintings: the Johnson net's (seen by AdaIN) and AdaIN's held-out one")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="optimisation steps per scale")
    parser.add_argument("--out", default=str(FIGURE))
    args = parser.parse_args(argv)
    data, runs = Path(args.data_root), Path(args.runs)
    seen, held = (data / "style-images" / "style" / name for name in args.styles.split(","))
    photos = sorted((data / "style-images" / "content").glob("*.jpg"))
    johnson, adain = load_style_model(str(runs / "johnson")), load_style_model(str(runs / "adain"))
    styles = [gio.load_image_tensor(p, channels=3)[None] for p in (seen, held)]  # (1, 3, H, W) in [0, 1]
    tiles, started = [], time.perf_counter()
    for photo in photos:
        content = square(gio.load_image_tensor(photo, channels=3)[None], args.size)
        row = [content[0]]
        row += [pipeline.transfer(content, [style], size=args.size, steps=args.steps).image for style in styles]
        row.append(run(johnson, content).image)
        row += [run(adain, content, [style]).image for style in styles]
        tiles += [tile.clamp(0, 1) for tile in row]
        print(f"{photo.name}: {time.perf_counter() - started:.0f} s")
    columns = ["photo", f"optimize {seen.stem}", f"optimize {held.stem}", f"johnson {seen.stem}",
               f"adain {seen.stem} (seen)", f"adain {held.stem} (held out)"]
    gio.save_grid(torch.stack(tiles), args.out, nrow=len(columns), value_range=(0.0, 1.0),
                  metadata={"rows": [p.name for p in photos], "columns": columns, "size": args.size,
                            "optimize_steps_per_scale": args.steps, "runs": str(runs)})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
