"""The README's gallery (docs/images/demo-*.png) from a `genvision demo` report folder.

    genvision demo --out out/demo && python scripts/gallery.py out/demo

Each picture is a row of the demo's own outputs (photos resized to one height, digit grids at their own
size), so the gallery shows what the demo produced; the captions live in README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "demo-generation.png": (["generate-dcgan-mnist.png", "generate-cvae-mnist.png", "generate-dit-mnist.png"], None),
    "demo-sr-crops.jpg": (["sr-crops.png"], None),
    "demo-style.jpg": (["amber.jpg", "style-optimize.png", "style-fast.png", "style-adain-scream.png",
                        "style-adain-blend.png"], 192),
    "demo-paintings.jpg": (["amber.jpg", *(f"style-paintings-{name}.png" for name in (
        "candy", "mosaic", "rain-princess", "shipwreck", "starry_night", "the_scream", "udnie", "candy-udnie"))], 128),
    "demo-restore.jpg": (["denoise-input.png", "denoise-dncnn.png", "inpaint-input.png", "inpaint-lama-photos.png"],
                         180),
    "demo-translate.jpg": (["translate-painted.png"], 200),
    "demo-explain.jpg": (["explain-dog.png"], None),
    "demo-search.jpg": (["search-dog-crop.png"], None),
}
GAP = 6


def row(images: list[Image.Image], height: int | None) -> Image.Image:
    if height is not None:  # pixel art (digit grids) scales with nearest neighbours, photos smoothly
        images = [im if im.height == height else im.resize((round(im.width * height / im.height), height),
                                                           Image.NEAREST if im.height < 64 else Image.LANCZOS)
                  for im in images]
    width = sum(im.width for im in images) + GAP * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(im.height for im in images)), "white")
    x = 0
    for im in images:
        canvas.paste(im.convert("RGB"), (x, 0))
        x += im.width + GAP
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the folder `genvision demo --out` wrote")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    for name, (files, height) in ROWS.items():
        picture = row([Image.open(args.report / f) for f in files], height)
        picture.save(args.out / name, optimize=True, **({"quality": 88} if name.endswith(".jpg") else {}))
        print(f"wrote {args.out / name} {picture.size} ({(args.out / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
