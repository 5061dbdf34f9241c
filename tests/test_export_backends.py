"""`--backend onnxruntime` on upscale, classify and generate: an exported file gives what the model directory
gives (images equal after 8-bit rounding within one level, the same top classes, the same seeded samples),
and the wrong file for a command is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision.checkpoints import save_pretrained
from genvision.cli import main
from genvision.export import export_onnx
from genvision.registry import create_model, get_entry


def saved(tmp_path, name: str, **extra):
    torch.manual_seed(0)
    model = create_model(name, {**get_entry(name).tiny, **extra}).eval()
    model_dir = tmp_path / name
    save_pretrained(model, model_dir)
    export_onnx(model, tmp_path / f"{name}.onnx")
    return model_dir, tmp_path / f"{name}.onnx"


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_upscale_runs_an_exported_model_like_the_model_directory(tmp_path, capsys):
    model_dir, onnx_file = saved(tmp_path, "espcn")
    photo = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (21, 30, 3), dtype=np.uint8)).save(photo)
    tiles = ["--tile", "16", "--overlap", "4"]  # edge tiles of other sizes: the graph's free axes at work
    assert main(["upscale", str(photo), "-o", str(tmp_path / "torch.png"), "--model", str(model_dir), *tiles]) == 0
    assert main(["upscale", str(photo), "-o", str(tmp_path / "onnx.png"), "--model", str(onnx_file), *tiles]) == 0
    want, got = pixels(tmp_path / "torch.png"), pixels(tmp_path / "onnx.png")
    assert got.shape == want.shape == (42, 60, 3) and np.abs(got - want).max() <= 1
    sidecar = json.loads((tmp_path / "onnx.png.json").read_text())
    assert sidecar["backend"] == "onnxruntime"
    capsys.readouterr()
    assert main(["upscale", str(photo), "-o", str(tmp_path / "x.png"), "--model", str(onnx_file),
                 "--scale", "3"]) == 1
    assert "upscales x2 but --scale 3" in capsys.readouterr().err


def test_classify_with_onnxruntime_gives_the_same_classes(tmp_path, capsys):
    model_dir, onnx_file = saved(tmp_path, "cnn")
    digits = []
    for i in range(3):
        digits.append(tmp_path / f"d{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8)).save(digits[-1])
    results = {}
    for backend, model in (("torch", model_dir), ("onnxruntime", onnx_file)):
        assert main(["classify", "--model", str(model), "--backend", backend, "--json", *map(str, digits)]) == 0
        results[backend] = json.loads(capsys.readouterr().out)["results"]
    for want, got in zip(results["torch"], results["onnxruntime"]):
        assert [t["class"] for t in got["top"]] == [t["class"] for t in want["top"]]
        np.testing.assert_allclose([t["probability"] for t in got["top"]], [t["probability"] for t in want["top"]],
                                   atol=1e-5)


def test_generate_with_onnxruntime_draws_the_same_seeded_samples(tmp_path, capsys):
    model_dir, onnx_file = saved(tmp_path, "dcgan", num_classes=3)
    for name, model in (("torch", model_dir), ("onnx", onnx_file)):
        assert main(["generate", "--model", str(model), "-n", "4", "--seed", "7", "--class", "2",
                     "-o", str(tmp_path / f"{name}.png")]) == 0
    assert np.abs(pixels(tmp_path / "torch.png") - pixels(tmp_path / "onnx.png")).max() <= 1


@pytest.mark.parametrize("argv, message", [
    (["generate", "--model", "{cnn_onnx}", "-o", "{tmp}/g.png"], "holds a classifier model (cnn); this command"),
    (["classify", "--model", "{cnn_dir}", "--backend", "onnxruntime", "{tmp}/cnn/config.json"],
     "--backend onnxruntime runs an exported .onnx file"),
    (["classify", "--model", "{cnn_onnx}", "--backend", "torch", "x.png"], "is an ONNX file: run it with --backend"),
    (["classify", "--model", "{tmp}/garbage.onnx", "x.png"], "is not an ONNX model file"),
    (["classify", "--model", "{tmp}/missing.onnx", "x.png"], "does not exist"),
])
def test_wrong_files_for_a_backend_are_one_line_errors(tmp_path, capsys, argv, message):
    cnn_dir, cnn_onnx = saved(tmp_path, "cnn")
    (tmp_path / "garbage.onnx").write_bytes(b"\x00garbage")
    values = {"cnn_onnx": cnn_onnx, "cnn_dir": cnn_dir, "tmp": tmp_path}
    assert main([part.format(**values) for part in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
