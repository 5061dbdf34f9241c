"""VAE-family commands end to end on tiny models, and their one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision import io as gio
from genvision.cli import main

TINY = ["data.limit=256", "train.batch_size=16", "train.log_every=5", "train.sample_every=0",
        "train.tensorboard=false", "train.steps=12"]


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    specs = {
        "vae": ["model.arch=mlp", "model.hidden=32", "model.latent_dim=6"],
        "cvae": ["model.arch=mlp", "model.hidden=32", "model.latent_dim=6"],
        "vqvae": ["model.width=4", "model.blocks=0", "model.codebook_size=16", "model.code_dim=4"],
    }
    for family, extra in specs.items():
        assert main(["train", family, "--data", "mnist-mini", *TINY, *extra, f"train.out_dir={out}",
                     f"train.name={family}"]) == 0
    from genvision.checkpoints import save_pretrained
    from genvision.registry import create_model

    save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), out / "gan")
    return out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from genvision.data import load_dataset

    folder = tmp_path_factory.mktemp("digits")
    x, y = load_dataset("mnist-mini", split="test").get_batch(torch.arange(3))
    paths = []
    for i in range(3):
        paths.append(gio.save_image(x[i], folder / f"d{i}_{int(y[i])}.png"))
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return paths, folder / "bad.png", [int(v) for v in y]


def test_train_writes_a_run_for_each_family(runs):
    for family in ("vae", "cvae", "vqvae"):
        card = json.loads((runs / family / "config.json").read_text())
        assert card["train"]["steps"] == 12
        assert (runs / family / "checkpoints" / "latest").is_file()
    rows = [json.loads(line) for line in (runs / "vqvae" / "metrics.jsonl").read_text().splitlines()]
    assert {"recon", "commitment", "perplexity", "usage"} <= rows[-1].keys()


def test_reconstruct_generate_interpolate(runs, digits, tmp_path, capsys):
    paths, _, labels = digits
    code, out, err = run_cli(capsys, "reconstruct", "--model", runs / "vae", *paths, "-o", tmp_path / "r.png")
    assert code == 0, err
    assert Image.open(tmp_path / "r.png").size == (3 * 30 + 2, 2 * 30 + 2)  # originals above reconstructions
    code, _, err = run_cli(capsys, "reconstruct", "--model", runs / "cvae", paths[0], "--label", labels[0],
                           "--to-class", "all", "-o", tmp_path / "swap.png")
    assert code == 0, err
    assert Image.open(tmp_path / "swap.png").size == (11 * 30 + 2, 32)
    code, _, err = run_cli(capsys, "reconstruct", "--model", runs / "cvae", paths[0], "--label", labels[0],
                           "--to-class", "5", "-o", tmp_path / "five.png")
    assert code == 0, err

    for family in ("vae", "cvae", "vqvae"):
        code, _, err = run_cli(capsys, "generate", "--model", runs / family, "-n", "8", "-o",
                               tmp_path / f"{family}.png")
        assert code == 0, err
    code, _, err = run_cli(capsys, "generate", "--model", runs / "cvae", "-n", "4", "--class", "3",
                           "--temperature", "0.7", "-o", tmp_path / "t.png")
    assert code == 0, err

    code, _, err = run_cli(capsys, "interpolate", "--model", runs / "vae", "--images", paths[0], paths[1],
                           "--frames", "6", "-o", tmp_path / "walk.gif")
    assert code == 0, err
    assert Image.open(tmp_path / "walk.gif").n_frames == 6
    code, _, err = run_cli(capsys, "interpolate", "--model", runs / "vqvae", "--images", paths[0], paths[1],
                           "--method", "lerp", "-o", tmp_path / "walk.png")
    assert code == 0, err
    assert Image.open(tmp_path / "walk.png").size == (8 * 30 + 2, 32)
    code, _, err = run_cli(capsys, "interpolate", "--model", runs / "cvae", "--images", paths[0], paths[1],
                           "--class", "2", "-o", tmp_path / "cwalk.png")
    assert code == 0, err


def test_traverse_encode_decode(runs, digits, tmp_path, capsys):
    paths, _, labels = digits
    code, _, err = run_cli(capsys, "traverse", "--model", runs / "vae", "--image", paths[0], "--dims", "0-3",
                           "--range", "2", "--steps", "5", "-o", tmp_path / "trav.png")
    assert code == 0, err
    assert Image.open(tmp_path / "trav.png").size == (5 * 30 + 2, 4 * 30 + 2)

    code, _, err = run_cli(capsys, "encode", "--model", runs / "vae", *paths, "-o", tmp_path / "z.npy")
    assert code == 0, err
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (3, 6) and z.dtype == np.float32
    code, _, err = run_cli(capsys, "decode", "--model", runs / "vae", tmp_path / "z.npy", "-o", tmp_path / "d.png")
    assert code == 0, err

    code, _, err = run_cli(capsys, "encode", "--model", runs / "vqvae", *paths, "-o", tmp_path / "t.npy")
    assert code == 0, err
    tokens = np.load(tmp_path / "t.npy")
    assert tokens.shape == (3, 7, 7) and tokens.dtype == np.int64 and tokens.max() < 16
    code, _, err = run_cli(capsys, "decode", "--model", runs / "vqvae", tmp_path / "t.npy", "-o",
                           tmp_path / "td.png")
    assert code == 0, err
    code, _, err = run_cli(capsys, "encode", "--model", runs / "cvae", paths[0], "--label", labels[0], "-o",
                           tmp_path / "c.npy")
    assert code == 0, err
    code, _, err = run_cli(capsys, "decode", "--model", runs / "cvae", tmp_path / "c.npy", "--label", "4", "-o",
                           tmp_path / "cd.png")
    assert code == 0, err


def test_likelihood_and_evaluate(runs, tmp_path, capsys):
    code, out, err = run_cli(capsys, "likelihood", "--model", runs / "vae", "-k", "8", "--limit", "40", "-o",
                             tmp_path / "nll.json")
    assert code == 0, err
    metrics = json.loads((tmp_path / "nll.json").read_text())["metrics"]
    assert metrics["iwae_k"] == 8 and metrics["likelihood_images"] == 40 and metrics["binarized"]
    assert metrics["nll_iwae_nats"] <= metrics["neg_elbo_nats"] + 1.0
    assert metrics["nll_iwae_bits_per_dim"] == pytest.approx(metrics["nll_iwae_nats"] / (784 * np.log(2)))

    code, out, err = run_cli(capsys, "evaluate", "--model", runs / "vqvae", "-n", "50", "--batch-size", "25",
                             "-o", tmp_path / "vq.json")
    assert code == 0, err
    metrics = json.loads((tmp_path / "vq.json").read_text())["metrics"]
    assert 0 < metrics["codebook_usage"] <= 1 and metrics["codebook_perplexity"] >= 1
    assert {"fid", "kid", "recon_psnr", "recon_ssim", "nll_bound_token_prior_nats"} <= metrics.keys()
    assert "per-position categorical" in out


@pytest.mark.parametrize("argv, message", [
    (["reconstruct", "--model", "{gan}", "{img}"], "holds a gan model (dcgan); this command needs a vae model"),
    (["interpolate", "--model", "{gan}", "--images", "{img}", "{img}"], "this command needs a vae model"),
    (["traverse", "--model", "{vqvae}", "--image", "{img}"], "traverse needs a continuous latent"),
    (["traverse", "--model", "{vae}", "--image", "{img}", "--dims", "3-40"], "--dims must lie in 0..5"),
    (["traverse", "--model", "{vae}", "--image", "{img}", "--dims", "5-2"], "is empty"),
    (["traverse", "--model", "{vae}", "--image", "{img}", "--dims", "a-b"], "--dims must look like"),
    (["reconstruct", "--model", "{vae}", "{bad}"], "bad.png"),
    (["reconstruct", "--model", "{cvae}", "{img}"], "this model is conditional"),
    (["reconstruct", "--model", "{vae}", "{img}", "--to-class", "3"], "class edits need a conditional VAE"),
    (["generate", "--model", "{vqvae}", "--temperature", "0.5"], "temperature is not supported"),
    (["decode", "--model", "{vae}", "{img}"], "is not a readable .npy"),
    (["encode", "--model", "{vae}", "{img}", "-o", "z.txt"], "-o must name a .npy file"),
    (["likelihood", "--model", "{vae}", "-k", "0"], "Invalid value for '-k' / '--k': 0 is not in the range 1<=x<=100000"),
])
def test_one_line_errors(runs, digits, capsys, argv, message):
    paths, bad, _ = digits
    subs = {"{gan}": runs / "gan", "{vae}": runs / "vae", "{cvae}": runs / "cvae", "{vqvae}": runs / "vqvae",
            "{img}": paths[0], "{bad}": bad}
    code, out, err = run_cli(capsys, *[str(subs.get(a, a)) for a in argv])
    assert code != 0
    assert message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_vq_without_prior_refuses_to_sample(tmp_path, capsys):
    from genvision.checkpoints import save_pretrained
    from genvision.models.vqvae import VQVAE, VQVAEConfig

    save_pretrained(VQVAE(VQVAEConfig(width=4, blocks=0, codebook_size=8, code_dim=4)), tmp_path / "vq")
    code, _, err = run_cli(capsys, "generate", "--model", tmp_path / "vq", "-n", "2", "-o", tmp_path / "x.png")
    assert code != 0 and "no fitted token prior" in err
