"""The command line: one-line errors with non-zero exits, and a tiny train -> generate -> interpolate."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from genvision.cli import main

TINY = ["data.limit=256", "model.width=8", "train.batch_size=16", "train.log_every=5", "train.sample_every=0",
        "train.tensorboard=false"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["train", "gan", "--data", "mnist-mini", *TINY, f"train.out_dir={out}", "train.name=tiny",
                 "train.steps=10", "conditional=true"])
    assert code == 0
    return out / "tiny"


def test_train_generate_interpolate_end_to_end(trained_run, tmp_path, capsys):
    code, out, err = run_cli(capsys, "generate", "--model", str(trained_run), "-n", "20", "--seed", "3",
                             "--class", "7", "-o", str(tmp_path / "grid.png"), "--nrow", "5")
    assert code == 0, err
    grid = Image.open(tmp_path / "grid.png")
    assert grid.size == (5 * 30 + 2, 4 * 30 + 2)  # 28 px tiles with 2 px padding
    sidecar = json.loads((tmp_path / "grid.png.json").read_text())
    assert sidecar["seed"] == 3 and sidecar["class"] == 7 and "genvision_version" in sidecar

    code, _, err = run_cli(capsys, "generate", "--model", str(trained_run), "-n", "20", "--seed", "3",
                           "--class", "7", "-o", str(tmp_path / "again.png"), "--nrow", "5")
    assert Image.open(tmp_path / "again.png").tobytes() == grid.tobytes()  # same seed, same images

    code, _, err = run_cli(capsys, "interpolate", "--model", str(trained_run), "--seeds", "1", "2", "--frames",
                           "6", "-o", str(tmp_path / "walk.gif"))
    assert code == 0, err
    gif = Image.open(tmp_path / "walk.gif")
    assert gif.n_frames == 6
    code, _, err = run_cli(capsys, "interpolate", "--model", str(trained_run), "-o", str(tmp_path / "walk.png"))
    assert code == 0 and Image.open(tmp_path / "walk.png").size == (8 * 30 + 2, 32)


@pytest.mark.parametrize("argv, message", [
    (["generate", "--model", "/no/such/dir"], "model not found: /no/such/dir"),
    (["train", "nosuchfamily"], "unknown model family 'nosuchfamily'"),
    (["train", "gan", "steps=many"], "train.steps must be an integer"),
    (["train", "gan", "--data", "imagenet-21k"], "unknown dataset"),
    (["generate", "--model", "x", "-n", "abc"], "'abc' is not a valid integer"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["train", "gan", "--config", "/no/such.yaml"], "config file not found"),
])
def test_bad_arguments_give_one_line_and_nonzero_exit(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code != 0
    assert message in err
    assert err.count("\n") == 1, err  # exactly one line
    assert "Traceback" not in err


def test_generate_rejects_wrong_class_and_unconditional_class(trained_run, capsys, tmp_path):
    code, _, err = run_cli(capsys, "generate", "--model", str(trained_run), "--class", "12", "-o",
                           str(tmp_path / "x.png"))
    assert code != 0 and "--class must be in 0..9" in err


def test_wrong_model_kind_is_one_line(tmp_path, capsys):
    card = {"format": "genvision", "model": "dcgan", "kind": "gan", "config": {"image_size": 28}}
    (tmp_path / "config.json").write_text(json.dumps(card))
    (tmp_path / "model.safetensors").write_bytes(b"not really")
    code, _, err = run_cli(capsys, "generate", "--model", str(tmp_path))
    assert code != 0 and "not a valid safetensors file" in err and err.count("\n") == 1


def test_models_and_datasets_listings(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and "dcgan" in out and "gan" in out
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and all(name in out for name in ("mnist-mini", "mnist", "fashion-mnist", "cifar10", "folder:"))


def test_entry_points_and_debug_traceback(tmp_path):
    version = subprocess.run([sys.executable, "-m", "genvision", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "genvision" in version.stdout
    debug = subprocess.run([sys.executable, "-m", "genvision", "--debug", "generate", "--model", str(tmp_path / "x")],
                           capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_sampling_options_a_model_does_not_take_are_refused():
    from genvision.errors import ConfigError
    from genvision.registry import create_model
    from genvision.sampling import generate

    model = create_model("dcgan", {"width": 8}).eval()
    with pytest.raises(ConfigError, match="dcgan models do not take --steps"):
        generate(model, 2, steps=4)
