"""`genvision demo`: every panel runs from the zoo and the bundled photos into one report, with the numbers
each application is known for; a missing backbone is named, not hidden."""

from __future__ import annotations

import json

from PIL import Image
from real_weights import real

from genvision.cli import main
from genvision.demo import panels


def test_every_panel_runs_into_one_report_and_measures_what_its_models_are_known_for(tmp_path):
    # One test, not two over a module fixture: pytest-xdist may hand two tests to two workers, and each would
    # run the whole demo (about a minute).
    real("efficientnet-lite0")
    real("vgg19")
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--minutes", "0.05"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    _check_the_report(out, summary)
    _check_the_numbers(out, summary)


def _check_the_report(out, summary):
    assert summary["failed"] == {} and summary["skipped"] == {}
    page = (out / "index.html").read_text()
    for panel in panels(0.05):
        assert panel.title in page
        assert panel.title in summary["seconds"]
    for name in ("samples.png", "generate-dcgan-mnist.png", "generate-cvae-mnist.png", "generate-dit-mnist.png",
                 "walk-gan-seeds.png", "traverse-vae.png", "sr-crops.png", "edit-chain.png", "denoise-dncnn.png",
                 "inpaint-lama-photos.png", "style-optimize.png", "style-fast.png", "style-adain-blend.png",
                 "style-paintings-candy.png", "style-paintings-candy-udnie.png",
                 "translate-digits.png", "translate-painted.png", "explain-dog.png", "search-dog-crop.png",
                 "codec-decoded.png"):
        assert f'src="{name}"' in page, name
        assert (out / name).is_file(), name
    assert page.count('class="cmd"') == len(panels(0.05))  # every panel says how to reproduce it


def _check_the_numbers(out, summary):
    numbers = summary["numbers"]
    sr = numbers["super_resolution"]["y_psnr"]
    assert sr["zoo:edsr-x3"] > sr["zoo:espcn-x3"] > sr["bicubic"]
    denoised = numbers["denoising"]["psnr"]
    assert denoised["zoo:dncnn"] > denoised["nlmeans"] > denoised["noisy input"] + 3
    recognised = numbers["recognition"]
    assert recognised["dog.jpg"] == "German shepherd" and recognised["eagle.jpg"] == "kite"
    assert recognised["zoo:resnet-mnist"] == recognised["zoo:vit-mnist"] == recognised["digit_label"]
    retrieval = numbers["retrieval"]
    assert retrieval["simclr:zoo:simclr-photos"] >= 9 and retrieval["queries"] == 12
    codec = numbers["compression"]
    assert codec["bytes"] == (out / "codec.gvc").stat().st_size and codec["jpeg_bytes"] <= codec["bytes"]
    assert numbers["evaluation"]["samples"] == 1000 and numbers["training"]["steps"] > 0
    assert Image.open(out / "samples.png").size == (10 * 30 + 2, 10 * 30 + 2)
    assert Image.open(out / "walk-gan-seeds.gif").n_frames == 10
    assert Image.open(out / "traverse-vae.png").size == (9 * 30 + 2, 4 * 30 + 2)
    sidecar = json.loads((out / "sr-edsr-x3.png.json").read_text())
    assert sidecar["model"] == "zoo:edsr-x3"


def test_a_missing_backbone_skips_its_panel_by_name(empty_caches, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--only", "recognition"]) == 0
    err = capsys.readouterr().err
    assert "skipped: Recognition of photos and digits, explained" in err
    assert "genvision weights get efficientnet-lite0" in err
    assert "Not run: " in (tmp_path / "d" / "index.html").read_text()


def test_a_folder_with_other_files_is_never_written_into(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["demo", "--out", str(tmp_path), "--only", "editing"]) != 0
    assert "is not empty and holds no earlier demo report" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_only_naming_no_panel_is_a_one_line_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--only", "nosuchpanel"]) != 0
    err = capsys.readouterr().err
    assert "no panel title contains 'nosuchpanel'" in err and "Editing chain" in err
    assert not (tmp_path / "d").exists()
