"""The transformer commands end to end on tiny models trained for a few steps on mnist-mini:
train classifier arch=vit|resnet -> classify / explain / evaluate; train dit -> generate
--steps/--cfg/--sampler; and their one-line errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from genvision import io as gio
from genvision.cli import main
from genvision.data import load_dataset

COMMON = ["train.batch_size=16", "train.log_every=2", "train.tensorboard=false", "data.limit=128"]
VIT = ["arch=vit", "model.dim=16", "model.depth=1", "model.heads=2", "model.patch_size=7", "train.steps=3",
       "objective.warmup_steps=1"]
RESNET = ["arch=resnet", "model.width=4", "model.blocks=[1,1]", "train.steps=3", "objective.warmup_steps=1"]
DIT = ["model.dim=16", "model.depth=1", "model.heads=2", "model.patch_size=7", "model.sample_steps=2",
       "train.steps=2", "train.sample_every=0"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    for family, name, extra in [("classifier", "vit", VIT), ("classifier", "resnet", RESNET), ("dit", "dit", DIT)]:
        code = main(["train", family, "--data", "mnist-mini", *COMMON, *extra, f"train.out_dir={out}",
                     f"train.name={name}"])
        assert code == 0, name
    return out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Three mnist-mini test digits as PNG files (and one as RGB at another size)."""
    out = tmp_path_factory.mktemp("digits")
    images, labels = load_dataset("mnist-mini", split="test", limit=3).get_batch(__import__("torch").arange(3))
    paths = [gio.save_image(img, out / f"digit{i}.png") for i, img in enumerate(images)]
    Image.open(paths[0]).convert("RGB").resize((40, 40)).save(out / "big-rgb.png")
    return [str(p) for p in paths] + [str(out / "big-rgb.png")]


@pytest.mark.parametrize("name", ["vit", "resnet"])
def test_classify_prints_top_k_and_json(runs, digits, capsys, name):
    code, out, err = run_cli(capsys, "classify", "--model", str(runs / name), *digits, "--top-k", "3")
    assert code == 0, err
    assert out.count("  1. ") == 4 and out.count("  3. ") == 4 and "  4. " not in out
    code, out, err = run_cli(capsys, "classify", "--model", str(runs / name), *digits[:2], "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert [r["image"] for r in payload["results"]] == digits[:2]
    top = payload["results"][0]["top"]
    assert len(top) == 5 and top[0]["probability"] >= top[1]["probability"]
    assert {"class", "name", "probability"} <= set(top[0]) and 0 <= top[0]["class"] <= 9


@pytest.mark.parametrize("name,method,panels", [("vit", "attention-rollout", 4), ("resnet", "grad-cam", 2)])
def test_explain_writes_overlays(runs, digits, tmp_path, capsys, name, method, panels):
    target = tmp_path / f"{name}.png"
    code, out, err = run_cli(capsys, "explain", "--model", str(runs / name), digits[3], "-o", str(target))
    assert code == 0, err
    assert method in out and str(target) in out
    picture = Image.open(target)
    assert picture.mode == "RGB" and picture.width >= panels * 112  # 28 px panels drawn 4x
    sidecar = json.loads((tmp_path / f"{name}.png.json").read_text())
    assert sidecar["method"] == method and sidecar["maps"][0] in ("rollout", "grad-cam")


def test_evaluate_a_vit(runs, tmp_path, capsys):
    code, out, err = run_cli(capsys, "evaluate", "--model", str(runs / "vit"), "-o", str(tmp_path / "e.json"))
    assert code == 0, err
    assert "accuracy" in out and "per_class_accuracy" in out


def test_generate_with_steps_cfg_sampler(runs, tmp_path, capsys):
    args = ["generate", "--model", str(runs / "dit"), "-n", "4", "--seed", "1", "--class", "7", "--steps", "2",
            "--cfg", "2.0", "--sampler", "midpoint"]
    code, out, err = run_cli(capsys, *args, "-o", str(tmp_path / "a.png"))
    assert code == 0, err
    code, out, err = run_cli(capsys, *args, "-o", str(tmp_path / "b.png"))
    assert Image.open(tmp_path / "a.png").tobytes() == Image.open(tmp_path / "b.png").tobytes()
    sidecar = json.loads((tmp_path / "a.png.json").read_text())
    assert sidecar["steps"] == 2 and sidecar["cfg"] == 2.0 and sidecar["sampler"] == "midpoint"
    code, out, err = run_cli(capsys, "generate", "--model", str(runs / "dit"), "-n", "2", "-o", str(tmp_path / "c.png"))
    assert code == 0, err  # the model's default sampling settings


@pytest.mark.parametrize("argv, message", [
    (["classify", "--model", "{dit}", "{digit}"], "holds a diffusion model (dit); this command needs a classifier"),
    (["explain", "--model", "{dit}", "{digit}"], "holds a diffusion model (dit); this command needs a classifier"),
    (["generate", "--model", "{vit}"], "holds a classifier model (vit); this command needs a"),
    (["classify", "--model", "{vit}", "{bad}"], "bad.png"),
    (["classify", "--model", "{vit}", "/no/such.png"], "/no/such.png"),
    (["explain", "--model", "{resnet}", "{bad}"], "bad.png"),
    (["classify", "--model", "{vit}", "{digit}", "--top-k", "0"], "--top-k"),
    (["explain", "--model", "{resnet}", "{digit}", "--class", "10"], "--class must be in 0..9"),
    (["generate", "--model", "{dit}", "--steps", "0"], "Invalid value for '--steps': 0 is not in the range 1<=x<=10000"),
    (["generate", "--model", "{dit}", "--steps", "many"], "'many' is not a valid integer"),
    (["generate", "--model", "{dit}", "--sampler", "rk4"], "--sampler must be one of euler, heun, midpoint"),
    (["generate", "--model", "{dit}", "--cfg", "-2"], "Invalid value for '--cfg': -2.0 is not in the range 0.0<=x<=100.0"),
    (["explain", "--model", "{vit}", "{digit}", "-o", "{tmp}/out.bmp"], "cannot save as '.bmp'"),
])
def test_errors_are_one_line(runs, digits, tmp_path, capsys, argv, message):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    fill = {"dit": str(runs / "dit"), "vit": str(runs / "vit"), "resnet": str(runs / "resnet"), "digit": digits[0],
            "bad": str(bad), "tmp": str(tmp_path)}
    code, out, err = run_cli(capsys, *[a.format(**fill) for a in argv])
    assert code != 0
    assert message in err, err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


def test_sampling_options_are_refused_for_other_generators(tmp_path, capsys):
    code = main(["train", "gan", "--data", "mnist-mini", "data.limit=64", "model.width=8", "train.batch_size=16",
                 "train.steps=1", "train.sample_every=0", "train.tensorboard=false", f"train.out_dir={tmp_path}",
                 "train.name=gan"])
    assert code == 0
    code, out, err = run_cli(capsys, "generate", "--model", str(tmp_path / "gan"), "--steps", "4", "-o",
                             str(tmp_path / "x.png"))
    assert code != 0 and "dcgan models do not take --steps" in err
