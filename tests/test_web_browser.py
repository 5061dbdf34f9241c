"""genvision web in a real headless browser: `genvision web` runs as its own process on a free loopback
port and Debian's chromium, driven by Playwright, uses every tab with real photo crops, uploads a file
over the size cap and a file that is not an image, and asks the server for a file outside the app.

Chromium comes from Debian (`apt-get install chromium`; .ci/run does it): without it these tests fail
rather than skip, so a CI machine missing it cannot pass quietly.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

PHOTOS = Path(__file__).resolve().parents[1] / "src" / "genvision" / "assets" / "demo"  # ship with genvision
CHROMIUM = os.environ.get("GENVISION_CHROMIUM", "/usr/bin/chromium")
UPLOAD_CAP_MB = 1
STARTUP_SECONDS = 90
RUN_MS = 30_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    """64x64 crops of real photos, a PNG over the upload cap, and a text file named .png."""
    folder = tmp_path_factory.mktemp("uploads")
    files = {}
    for name in ("dog", "eagle", "horses"):
        files[name] = folder / f"{name}.png"
        Image.open(PHOTOS / f"{name}.jpg").convert("RGB").crop((100, 100, 164, 164)).save(files[name])
    noise = np.random.default_rng(0).integers(0, 256, (800, 1000, 3), np.uint8)  # ~2.4 MB: incompressible
    files["big"] = folder / "big.png"
    Image.fromarray(noise).save(files["big"])
    assert files["big"].stat().st_size > 2 * UPLOAD_CAP_MB * 2**20
    files["fake"] = folder / "notes.png"
    files["fake"].write_text("not an image")
    return files


@pytest.fixture(scope="module")
def server():
    """`genvision web` on a free loopback port; its URL once it serves."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "-m", "genvision", "web", "--port", str(port),
                                "--max-upload-mb", str(UPLOAD_CAP_MB)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    deadline = time.monotonic() + STARTUP_SECONDS
    try:
        for line in process.stdout:
            lines.append(line)
            if "Running on local URL" in line:
                break
            if time.monotonic() > deadline:
                break
        if process.poll() is not None or not any("Running on" in line for line in lines):
            pytest.fail("genvision web did not start:\n" + "".join(lines[-30:]))
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y --no-install-recommends chromium "
                    "(or set GENVISION_CHROMIUM)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).is_file()
                                              else shutil.which("chromium"), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def page(browser, server):
    opened = browser.new_page(viewport={"width": 1200, "height": 900})
    opened.goto(server)
    yield opened
    opened.close()


def open_tab(page, name: str):
    page.get_by_role("tab", name=name, exact=True).click()


def upload(page, element: str, *files: Path) -> None:
    clear = page.locator(f"#{element} button[aria-label='Clear']")
    if clear.count():  # a file is already there: its drop zone comes back once it is cleared
        clear.first.click()
    page.locator(f"#{element} input[type=file]").set_input_files([str(f) for f in files])


def status_after(page, tab: str, button: str | None = None) -> str:
    """Click the tab's button (if any) and wait for its one-line status to change."""
    status = page.locator(f"#{tab}-status :is(textarea, input)")
    before = status.input_value()
    if button is not None:
        page.locator(f"#{button}").click()
    expect(status).not_to_have_value(before, timeout=RUN_MS)
    return status.input_value()


def downloads(page, tab: str) -> list[str]:
    cells = page.locator(f"#{tab}-files td.filename")
    return [cells.nth(i).get_attribute("aria-label") for i in range(cells.count())]


def shown_image(page, element: str) -> bytes:
    """The bytes of the image an output shows, fetched as the browser fetches it."""
    source = page.locator(f"#{element} img").first.get_attribute("src")
    response = page.request.get(source)
    assert response.ok
    return response.body()


def decoded_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


@pytest.mark.parametrize("tab, name, expected", [
    ("upscale", "Upscale", r"x3: 64x64 -> 192x192"),
    ("denoise", "Denoise", r"denoised 64x64 with zoo:dncnn"),
    ("edit", "Edit", r"applied 4 ops: \d+x\d+"),
    ("translate", "Translate", r"a2b with zoo:cyclegan-digits"),
    ("stylize", "Stylize", r"zoo:adain-vgg19: 64x64 in [\d.]+ s|error: .*vgg19.*"),  # AdaIN needs the VGG-19 weights
    ("compress", "Compress",
     r"zoo:codec-hyperprior: [\d.]+ bpp, [\d.]+ dB; JPEG q\d+: [\d.]+ bpp, [\d.]+ dB \([+-][\d.]+ dB\)"),
    ("classify", "Classify + explain", r"predicted .+ \(\d+\.\d%\)|error: .*run `genvision weights get efficientnet-lite0`.*"),
], ids=lambda value: value if value.isalpha() and value.islower() else "")
def test_each_tab_turns_an_upload_into_a_result_and_its_sidecar(page, photos, tab, name, expected):
    open_tab(page, name)
    upload(page, f"{tab}-upload", photos["dog"])
    if tab == "stylize":
        upload(page, "stylize-style", photos["horses"])
    message = status_after(page, tab, f"{tab}-run")
    assert re.fullmatch(expected, message), message
    if message.startswith("error:"):
        return
    files = downloads(page, tab)
    images = [f for f in files if not f.endswith(".json") and not f.endswith(".gvc")]
    assert images and all(f"{image}.json" in files for image in images), files
    size = decoded_size(shown_image(page, f"{tab}-result"))
    assert size == {"upscale": (192, 192)}.get(tab, size) and min(size) >= 54


def test_generate_samples_digits_without_an_upload(page):
    open_tab(page, "Generate")
    assert re.fullmatch(r"16 samples from zoo:cvae-mnist, seed 0", status_after(page, "generate", "generate-run"))
    assert decoded_size(shown_image(page, "generate-result")) == (4 * 30 + 2, 4 * 30 + 2)
    assert sorted(downloads(page, "generate"))[1].endswith(".png.json")


def test_inpaint_fills_a_painted_stroke(page, photos):
    open_tab(page, "Inpaint")
    # The editor draws its background asynchronously and drops strokes made before it has; on a loaded
    # machine that can take seconds, so a stroke the app did not receive is drawn again on a fresh upload.
    for _ in range(5):
        upload(page, "inpaint-upload", photos["eagle"])
        assert status_after(page, "inpaint") == "64x64: paint the hole, then Fill"
        page.wait_for_timeout(1_000)
        canvas = page.locator("#inpaint-editor canvas").first.bounding_box()
        x, y = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
        page.mouse.move(x - 40, y)
        page.mouse.down()
        page.mouse.move(x + 40, y, steps=8)
        page.mouse.up()
        message = status_after(page, "inpaint", "inpaint-run")
        if message != "error: draw over the part of the image to fill first":
            break
    assert re.fullmatch(r"filled \d+\.\d% of the image with zoo:lama-photos", message), message
    assert decoded_size(shown_image(page, "inpaint-result")) == (64, 64)


def test_search_finds_the_query_in_an_index_built_from_uploads(page, photos):
    open_tab(page, "Search")
    upload(page, "search-collection", photos["dog"], photos["eagle"], photos["horses"])
    assert status_after(page, "search", "search-build") == "indexed 3 images with zoo:simclr-photos"
    upload(page, "search-upload", photos["eagle"])
    message = status_after(page, "search", "search-run")
    assert message.startswith("best match eagle.png (score 1.000)"), message


def test_an_upload_over_the_cap_is_refused_with_a_message(page, photos):
    open_tab(page, "Denoise")
    upload(page, "denoise-upload", photos["big"])
    toast = page.get_by_text(re.compile(r"exceed the maximum allowed size of 1(\.0)? ?Mb", re.IGNORECASE)).first
    expect(toast).to_be_visible(timeout=10_000)


def test_a_file_that_is_not_an_image_gets_one_line(page, photos):
    open_tab(page, "Upscale")
    upload(page, "upscale-upload", photos["fake"])
    page.locator("#upscale-run").click()
    status = page.locator("#upscale-status :is(textarea, input)")
    expect(status).to_have_value(re.compile(r"error: notes\.png: not a supported image.*"), timeout=RUN_MS)
    assert "\n" not in status.input_value() and "/tmp" not in status.input_value()


@pytest.mark.parametrize("path", ["/gradio_api/file=/etc/passwd", "/file=/etc/passwd",
                                  "/gradio_api/file=../../../../etc/passwd", "/gradio_api/file=" + __file__])
def test_files_outside_the_app_are_not_served(page, server, path):
    response = page.request.get(server + path)
    assert response.status != 200 or b"root:" not in response.body()
    assert response.status in (403, 404), response.status


def choose(page, element: str, option: str) -> None:
    """Pick ``option`` in the Gradio dropdown ``element``: open its list, click the entry."""
    page.locator(f"#{element} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_stylize_with_a_painting_chosen_in_the_menu(page, photos):
    # last in the file: it leaves the stylize tab on the multi-style model
    open_tab(page, "Stylize")
    upload(page, "stylize-upload", photos["dog"])
    choose(page, "stylize-model", "zoo:johnson-paintings")
    choose(page, "stylize-painting", "zoo:johnson-paintings / the_scream")
    message = status_after(page, "stylize", "stylize-run")
    assert re.fullmatch(r"zoo:johnson-paintings \(the_scream\): 64x64 in [\d.]+ s", message), message
    assert decoded_size(shown_image(page, "stylize-result")) == (64, 64)
