"""genvision web without a browser: each tab's handler on real photo crops and the real zoo models (its
pixels, files and JSON sidecar), the upload caps, and the CLI's refusal to serve a public host unguarded."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance
from real_weights import real

from genvision import cli, zoo
from genvision.data import load_dataset
from genvision.errors import ConfigError, ImageLoadError
from genvision.web import app, handlers
from genvision.web.handlers import Limits, Workspace

PHOTOS = Path(__file__).resolve().parents[1] / "src" / "genvision" / "assets" / "demo"  # ship with genvision
torch.set_num_threads(1)


def crop(name: str, folder: Path, box=(100, 100, 164, 164)) -> Path:
    source = PHOTOS / f"{name}.jpg"
    path = folder / f"{name}.png"
    Image.open(source).convert("RGB").crop(box).save(path)
    return path


@pytest.fixture
def photo(tmp_path) -> Path:
    """A real 64x64 photo crop (the demo's dog photo)."""
    return crop("dog", tmp_path)


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return Workspace(tmp_path / "results")


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2)))


def sidecar_of(result: handlers.Result) -> dict:
    image, record = result.files[0], result.files[1]
    assert record == image.with_name(image.name + ".json") and image.is_file()
    return json.loads(record.read_text())


def test_every_tab_offers_exactly_its_zoo_models():
    offered = {spec for tab in handlers.TAB_KINDS for spec in handlers.zoo_choices(tab)}
    assert offered == {item.spec for item in zoo.entries().values()}  # every zoo model is selectable somewhere
    assert handlers.zoo_choices("upscale") == sorted(item.spec for item in zoo.entries().values() if item.kind == "sr")
    assert {"zoo:edsr-x3", "zoo:espcn-x3"} <= set(handlers.zoo_choices("upscale"))
    assert handlers.zoo_choices("generate") == ["zoo:cvae-mnist", "zoo:dcgan-mnist", "zoo:dit-fast-mnist",
                                                "zoo:dit-mnist", "zoo:maskgit-mnist", "zoo:vae-mnist",
                                                "zoo:vqvae-mnist"]
    assert "zoo:lama-photos" in handlers.zoo_choices("inpaint")
    assert "zoo:johnson-starry-night" in handlers.zoo_choices("stylize")
    assert handlers.zoo_choices("search") == ["zoo:simclr-photos"]
    with pytest.raises(ConfigError, match="not one of this tab's models"):
        handlers.check_choice("upscale", "/etc")  # a crafted request naming a path


@pytest.mark.parametrize("model", ["zoo:espcn-x3", "zoo:edsr-x3"])
def test_upscale_triples_the_photo_and_records_the_model(photo, workspace, model):
    result = handlers.upscale(str(photo), model, workspace)
    out = pixels(result.image)
    assert out.shape == (192, 192, 3)
    bicubic = np.asarray(Image.open(photo).resize((192, 192), Image.BICUBIC)).astype(np.float64)
    assert psnr(out, bicubic) > 25  # the same picture, sharpened
    assert sidecar_of(result) | {"model": model, "scale": 3} == sidecar_of(result)


def test_denoise_removes_most_of_added_noise(photo, workspace, tmp_path):
    clean = pixels(photo)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    result = handlers.denoise(str(tmp_path / "noisy.png"), "zoo:dncnn", workspace)
    assert psnr(pixels(result.image), clean) > psnr(noisy.astype(np.float64), clean) + 3
    assert sidecar_of(result)["model"] == "zoo:dncnn"


def test_edit_applies_the_chain_exactly(photo, workspace):
    result = handlers.edit(str(photo), "flip=h\n\nrotate=90", workspace)
    expected = np.rot90(np.fliplr(pixels(photo)))
    np.testing.assert_array_equal(pixels(result.image), expected)
    assert [op["op"] for op in sidecar_of(result)["chain"]] == ["flip", "rotate"]


def test_edit_without_ops_is_one_line(photo, workspace):
    with pytest.raises(ConfigError, match="no edit ops given"):
        handlers.edit(str(photo), "  \n", workspace)


@pytest.mark.parametrize("model", ["zoo:lama-photos", handlers.CLASSICAL_INPAINT])
def test_inpaint_fills_only_the_drawn_hole(photo, workspace, model):
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:36, 24:40] = (255, 0, 255, 255)  # a stroke as the image editor sends it
    hole = handlers.mask_from_layers([layer], (64, 64))
    assert hole.sum() == 16 * 16
    result = handlers.inpaint(str(photo), hole, model, 0, workspace)
    before, after = pixels(photo), pixels(result.image)
    np.testing.assert_array_equal(after[~hole], before[~hole])
    assert np.abs(after[hole] - 255 * np.array([1, 0, 1])).mean() > 60  # not the stroke's magenta
    assert sidecar_of(result)["hole_fraction"] == pytest.approx(0.0625)


def test_inpaint_needs_a_drawn_hole(photo, workspace):
    with pytest.raises(ConfigError, match="draw over"):
        handlers.inpaint(str(photo), handlers.mask_from_layers([], (64, 64)), "zoo:lama-photos", 0, workspace)


@pytest.mark.parametrize("model, count", [("zoo:cvae-mnist", 8), ("zoo:dit-mnist", 2)])
def test_generate_writes_a_grid_of_digits(workspace, model, count):
    result = handlers.generate(model, count, 5, 3, workspace)
    grid = Image.open(result.image)
    columns = 3 if count == 8 else 2  # ceil(sqrt(n)) 28-pixel digits a row, 2 pixels of padding
    rows = -(-count // columns)
    assert grid.size == (columns * 30 + 2, rows * 30 + 2)
    assert sidecar_of(result) | {"model": model, "n": count, "seed": 5, "class": 3} == sidecar_of(result)
    again = handlers.generate(model, count, 5, 3, workspace)
    np.testing.assert_array_equal(pixels(again.image), pixels(result.image))  # seeded


def test_stylize_with_the_fast_zoo_model(photo, workspace):
    result = handlers.stylize(str(photo), "zoo:johnson-starry-night", None, 5, workspace)
    out = pixels(result.image)
    assert out.shape == (64, 64, 3) and psnr(out, pixels(photo)) < 20  # repainted
    assert sidecar_of(result)["zoo_model"] == "zoo:johnson-starry-night"


def test_stylize_with_a_painting_of_the_multi_style_zoo_model(photo, workspace):
    choices = handlers.painting_choices()
    assert [c for c in choices if c.startswith("zoo:johnson-paintings / ")] == [
        f"zoo:johnson-paintings / {name}"
        for name in ("candy", "mosaic", "rain-princess", "shipwreck", "starry_night", "the_scream", "udnie")]
    outs = {}
    for name in ("candy", "udnie"):
        result = handlers.stylize(str(photo), "zoo:johnson-paintings", None, 5, workspace,
                                  painting=f"zoo:johnson-paintings / {name}")
        assert sidecar_of(result)["painting"] == name and sidecar_of(result)["zoo_model"] == "zoo:johnson-paintings"
        outs[name] = pixels(result.image)
    assert outs["candy"].shape == (64, 64, 3) and psnr(outs["candy"], outs["udnie"]) < 25  # two paintings
    for painting in (None, "zoo:johnson-starry-night / udnie", "zoo:johnson-paintings / ../../etc"):
        with pytest.raises(ConfigError, match="holds several paintings: choose one of candy, mosaic"):
            handlers.stylize(str(photo), "zoo:johnson-paintings", None, 5, workspace, painting=painting)


def test_stylize_optimisation_uses_the_style_upload(tmp_path, workspace):
    real("vgg19")
    content, style = crop("dog", tmp_path), crop("horses", tmp_path, (0, 0, 64, 64))
    result = handlers.stylize(str(content), handlers.OPTIMIZE, str(style), 2, workspace)
    record = sidecar_of(result)
    assert record["method"] == "optimize" and record["settings"]["steps"] == 2
    with pytest.raises(ConfigError, match="needs a style image"):
        handlers.stylize(str(content), handlers.OPTIMIZE, None, 2, workspace)


def test_translate_keeps_the_size(photo, workspace):
    result = handlers.translate(str(photo), "zoo:cyclegan-digits", "b2a", workspace)
    assert Image.open(result.image).size == (64, 64)
    assert sidecar_of(result)["direction"] == "b2a"


def test_classify_explains_the_prediction(photo, workspace):
    real("efficientnet-lite0")
    result = handlers.explain(str(photo), workspace)
    labels = result.extra["labels"]
    assert len(labels) == 5 and 0 < sum(labels.values()) <= 1.0001
    record = sidecar_of(result)
    assert record["predicted_name"] == max(labels, key=labels.get) and record["method"] == "grad-cam"


@pytest.mark.parametrize("model, method", [("zoo:resnet-mnist", "grad-cam"), ("zoo:vit-mnist", "attention-rollout")])
def test_classify_recognises_a_real_digit_with_the_zoo_classifiers(model, method, tmp_path, workspace):
    image, label = load_dataset("mnist-mini", split="test")[0]  # (1, 28, 28) in [-1, 1]
    digit = tmp_path / "digit.png"
    Image.fromarray(((image[0].numpy() + 1) * 127.5).round().astype("uint8")).save(digit)
    result = handlers.explain(str(digit), workspace, model=model)
    record = sidecar_of(result)
    assert record["predicted_name"] == str(int(label)) and record["method"] == method
    assert record["weights_sha256"] == zoo.entry(model[4:]).files["model.safetensors"]
    with pytest.raises(ConfigError, match="is not one of this tab's models"):
        handlers.explain(str(digit), workspace, model=str(tmp_path))


def test_classify_without_weights_says_which_command_fetches_them(photo, workspace, empty_caches, monkeypatch):
    monkeypatch.setattr(handlers, "_MODELS", {})  # a classifier loaded by another test stays out of this one
    with pytest.raises(ConfigError, match=r"run `genvision weights get efficientnet-lite0`"):
        handlers.explain(str(photo), workspace)


def test_search_finds_the_edited_copy_of_an_indexed_photo(tmp_path, workspace):
    collection = [crop(name, tmp_path) for name in ("dog", "eagle", "horses", "amber")]
    built = handlers.build_index([str(p) for p in collection], "zoo:simclr-photos", workspace)
    assert built.message.startswith("indexed 4 images")
    query = tmp_path / "query.png"
    ImageEnhance.Brightness(Image.open(collection[2])).enhance(1.2).save(query)
    result = handlers.search(built.extra["index"], str(query), workspace)
    assert Path(result.extra["hits"][0][0]).name == "horses.png"
    assert sidecar_of(result)["hits"][0]["name"] == "horses.png"


def test_compress_compares_with_jpeg_at_the_same_rate(photo, workspace):
    result = handlers.compress(str(photo), "zoo:codec-hyperprior", workspace)
    bitstream, decoded, _, jpeg, _ = result.files
    assert bitstream.suffix == ".gvc" and result.extra["bpp"] == pytest.approx(8 * bitstream.stat().st_size / 64 ** 2)
    assert pixels(decoded).shape == pixels(jpeg).shape == (64, 64, 3)
    assert psnr(pixels(decoded), pixels(photo)) == pytest.approx(result.extra["psnr"], abs=0.2)
    assert json.loads(jpeg.with_name(jpeg.name + ".json").read_text())["codec"] == "JPEG (Pillow)"


def test_uploads_over_the_caps_or_not_images_are_one_line_errors(photo, tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    workspace = Workspace(tmp_path / "results", Limits(max_bytes=10_000, max_pixels=50 * 50))
    for upload, match in ((fake, "notes.png: not a supported image"), (photo, "pixels")):
        with pytest.raises(ImageLoadError, match=match) as caught:
            handlers.upscale(str(upload), "zoo:espcn-x3", workspace)
        assert "\n" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 80, 3), np.uint8)).save(big)
    with pytest.raises(ImageLoadError, match="bytes"):
        handlers.denoise(str(big), "zoo:dncnn", workspace)


def test_the_ui_shows_one_line_for_any_failure(photo, workspace):
    assert app.outcome(lambda: handlers.edit(None, "flip=h", workspace)) == (None, None, "error: upload an image first")

    def bug():
        raise KeyError("line one\nline two")
    assert app.outcome(bug) == (None, None, "error: unexpected KeyError: 'line one\\nline two'")
    image, files, message = app.outcome(lambda: handlers.edit(str(photo), "flip=v", workspace))
    assert Path(image).is_file() and files[1].endswith(".png.json") and message.startswith("applied 1 ops")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org"])
def test_a_public_host_without_auth_is_refused(capsys, host):
    assert cli.main(["web", "--host", host]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--host {host} is reachable from other machines: give --auth USER:PASS" in err


def test_a_malformed_auth_is_refused(capsys):
    assert cli.main(["web", "--host", "0.0.0.0", "--auth", "admin"]) == cli.EXIT_USAGE
    assert "give USER:PASS" in capsys.readouterr().err


def test_without_gradio_the_command_says_what_to_install(capsys, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else find_spec(name, *a))
    assert cli.main(["web"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == "error: genvision web needs gradio: pip install 'genvision[web]'\n"


def test_the_help_does_not_import_gradio():
    code = ("import sys; from genvision import cli; status = cli.main(['--help']); "
            "print('gradio' in sys.modules, 'genvision.web.app' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    assert "web " in out.stdout and out.stdout.strip().endswith("False False")


@pytest.mark.parametrize("model", ["zoo:vae-mnist", "zoo:vqvae-mnist"])
def test_unconditional_generators_sample_and_refuse_a_class(model, workspace):
    result = handlers.generate(model, 4, 0, None, workspace)
    assert sidecar_of(result) | {"model": model, "n": 4, "class": None} == sidecar_of(result)
    with pytest.raises(ConfigError, match="unconditional"):
        handlers.generate(model, 4, 0, 3, workspace)
