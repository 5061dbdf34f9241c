"""x8 geometric self-ensemble: the symmetries invert, the average is the right one, CLI flags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genvision.apps.sr.ensemble import SelfEnsemble, dihedral, dihedral_inverse
from genvision.checkpoints import save_pretrained
from genvision.cli import main
from genvision.models.sr import bicubic_model
from genvision.registry import create_model


def test_the_eight_symmetries_are_distinct_and_invert():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(1, 2, 5, 7)
    images = [dihedral(x, code) for code in range(8)]
    assert len({tuple(img.flatten().tolist()) + tuple(img.shape) for img in images}) == 8
    for code, img in enumerate(images):
        assert torch.equal(dihedral_inverse(img, code), x), code


def test_self_ensemble_is_the_mean_over_rotations_and_mirrors():
    torch.manual_seed(0)
    model = create_model("edsr", {"width": 8, "depth": 1, "scale": 2}).eval()
    x = torch.rand(2, 3, 6, 9)
    with torch.no_grad():
        expected = torch.zeros(2, 3, 12, 18)
        for k in range(4):  # the same group written as rot90^k and rot90^k after a mirror
            expected += torch.rot90(model(torch.rot90(x, k, (-2, -1))), -k, (-2, -1))
            expected += torch.rot90(model(torch.rot90(x.flip(-1), k, (-2, -1))), -k, (-2, -1)).flip(-1)
        got = SelfEnsemble(model)(x)
        single = model(x)
    torch.testing.assert_close(got, expected / 8, atol=1e-5, rtol=0)
    assert (got - single).abs().max() > 1e-3  # a random net is not symmetric: the ensemble changes it


def test_self_ensemble_leaves_a_symmetric_upscaler_unchanged():
    x = torch.rand(1, 3, 7, 11)
    bicubic = bicubic_model(3)
    torch.testing.assert_close(SelfEnsemble(bicubic)(x), bicubic(x), atol=1e-5, rtol=0)
    assert SelfEnsemble(bicubic).config.scale == 3


def _hr_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    yy, xx = np.mgrid[0:36, 0:48]
    for i in range(2):
        img = np.stack([128 + 100 * np.sin(xx / (3 + i)), 128 + 100 * np.cos(yy / 4), (xx * yy) % 256], -1)
        Image.fromarray(img.astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


def test_cli_evaluate_and_upscale_with_self_ensemble(tmp_path, capsys):
    model_dir = save_pretrained(create_model("edsr", {"width": 8, "depth": 1, "scale": 2}), tmp_path / "edsr")
    folder = _hr_folder(tmp_path)
    scores = {}
    for flag in ([], ["--self-ensemble"]):
        out = tmp_path / f"eval{len(flag)}.json"
        assert main(["evaluate", "--model", str(model_dir), "--scale", "2", "--data", f"folder:{folder}",
                     "-o", str(out), *flag]) == 0
        metrics = json.loads(out.read_text())["metrics"]
        assert metrics["self_ensemble"] is bool(flag)
        scores[bool(flag)] = metrics["psnr"]
    assert scores[True] != pytest.approx(scores[False], abs=1e-3)
    assert "x8 self-ensemble" in capsys.readouterr().out

    target = tmp_path / "up.png"
    assert main(["upscale", str(folder / "img0.png"), "-o", str(target), "--model", str(model_dir),
                 "--self-ensemble", "--tile", "16", "--overlap", "8"]) == 0
    assert Image.open(target).size == (96, 72)
    sidecar = json.loads(target.with_name(target.name + ".json").read_text())
    assert sidecar["self_ensemble"] is True


def test_cli_self_ensemble_rejects_non_sr_models(tmp_path, capsys):
    model_dir = save_pretrained(create_model("dcgan", {"image_size": 28, "channels": 1}), tmp_path / "gan")
    assert main(["evaluate", "--model", str(model_dir), "--self-ensemble"]) != 0
    err = capsys.readouterr().err
    assert "--self-ensemble apply to super-resolution models" in err and "Traceback" not in err
