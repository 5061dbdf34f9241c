"""Screenshots of every tab of ``genvision web`` for the docs: docs/images/web-<tab>.png.

    python scripts/screenshots.py [--chromium /usr/bin/chromium] [--out docs/images]

Starts ``genvision web`` on a free loopback port, drives each tab with the photos and paintings that ship
for the demo (src/genvision/assets/demo, licences in its SOURCES.md) and an mnist-mini digit, through
Debian's chromium and Playwright, and saves each page at most 1200 px wide as an optimised PNG.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from genvision.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / "src" / "genvision" / "assets" / "demo"
WIDTH = 1200
RUN_MS = 120_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-m", "genvision", "web", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "Running on local URL" in line:
            return process
    raise SystemExit("genvision web did not start")


def samples(folder: Path) -> dict[str, Path]:
    """The inputs each tab gets: bundled photos, a small crop to upscale, a noisy copy to denoise, a digit."""
    paths = {name: PHOTOS / f"{name}.jpg" for name in ("dog", "eagle", "horses", "amber", "starry_night")}
    paths["dog-crop"] = folder / "dog-crop.png"
    Image.open(paths["dog"]).convert("RGB").crop((100, 100, 228, 228)).save(paths["dog-crop"])
    pixels = np.asarray(Image.open(paths["eagle"]).convert("RGB"), dtype=np.float32)
    noisy = np.clip(pixels + np.random.default_rng(0).normal(0, 25, pixels.shape), 0, 255).astype(np.uint8)
    paths["eagle-noisy"] = folder / "eagle-noisy.png"
    Image.fromarray(noisy).save(paths["eagle-noisy"])
    digit, _ = load_dataset("mnist-mini", split="test")[0]  # (1, 28, 28) in [-1, 1]
    paths["digit"] = folder / "digit.png"
    Image.fromarray(((digit[0].numpy() + 1) * 127.5).astype(np.uint8)).resize((112, 112), Image.NEAREST).save(
        paths["digit"])
    paths["dog-flipped"] = folder / "dog-flipped.jpg"
    Image.open(paths["dog"]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(paths["dog-flipped"])
    return paths


def run(page, tab: str, button: str) -> None:
    status = page.locator(f"#{tab}-status :is(textarea, input)")
    before = status.input_value()
    page.locator(f"#{button}").click()
    expect(status).not_to_have_value(before, timeout=RUN_MS)
    page.wait_for_timeout(500)  # the result image fades in


def upload(page, element: str, *files: Path) -> None:
    page.locator(f"#{element} input[type=file]").set_input_files([str(f) for f in files])


def save(page, out: Path, tab: str) -> None:
    path = out / f"web-{tab}.png"
    page.screenshot(path=str(path), full_page=True)
    image = Image.open(path)
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    image.convert("P", palette=Image.ADAPTIVE, colors=256).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(port)
    try:
        with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
            photos = samples(Path(folder))
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(f"http://127.0.0.1:{port}")
            simple = [("edit", "Edit", "horses"), ("denoise", "Denoise", "eagle-noisy"),
                      ("upscale", "Upscale", "dog-crop"), ("translate", "Translate", "digit"),
                      ("classify", "Classify + explain", "dog"), ("compress", "Compress", "eagle")]
            page.get_by_role("tab", name="Generate", exact=True).click()
            run(page, "generate", "generate-run")
            save(page, args.out, "generate")
            for tab, name, photo in simple:
                page.get_by_role("tab", name=name, exact=True).click()
                upload(page, f"{tab}-upload", photos[photo])
                run(page, tab, f"{tab}-run")
                save(page, args.out, tab)
            page.get_by_role("tab", name="Stylize", exact=True).click()
            upload(page, "stylize-upload", photos["amber"])
            upload(page, "stylize-style", photos["starry_night"])
            run(page, "stylize", "stylize-run")
            save(page, args.out, "stylize")
            page.get_by_role("tab", name="Inpaint", exact=True).click()
            upload(page, "inpaint-upload", photos["dog"])
            expect(page.locator("#inpaint-status :is(textarea, input)")).to_have_value(
                "384x288: paint the hole, then Fill", timeout=RUN_MS)
            page.wait_for_timeout(1500)  # the editor draws its background asynchronously; earlier strokes are lost
            box = page.locator("#inpaint-editor canvas").first.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x - 40, y - 10)
            page.mouse.down()
            page.mouse.move(x + 40, y + 10, steps=10)
            page.mouse.up()
            run(page, "inpaint", "inpaint-run")
            save(page, args.out, "inpaint")
            page.get_by_role("tab", name="Search", exact=True).click()
            upload(page, "search-collection", *(photos[n] for n in ("dog", "eagle", "horses", "amber",
                                                                    "starry_night")))
            run(page, "search", "search-build")
            upload(page, "search-upload", photos["dog-flipped"])
            run(page, "search", "search-run")
            save(page, args.out, "search")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
