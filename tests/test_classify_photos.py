"""Recognition of real photos with a pretrained backbone (`genvision classify|explain --model
efficientnet-lite0`) and standard FID through the pretrained `inception-fid` (`evaluate --features
inception`).

The real weights are used where `genvision weights get NAME` has put them (CI fetches them in .ci/run);
the photos are Debian darknet's. Each skip names the command that makes it run. The rule for --model,
the --class parsing and the one-line errors need neither and always run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import click
import pytest
import torch
from real_weights import photo, real

from genvision import pretrained
from genvision.apps.classify import photos
from genvision.apps.classify.commands import ClassLabel
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.metrics.distribution import FeatureStats
from genvision.metrics.samples import fixed_images_sampler, sample_metrics
from genvision.pretrained.efficientnet import imagenet_labels
from genvision.workflows.extractors import resolve_extractor

DOGS = range(151, 269)  # ImageNet's dog classes
LITE0 = "efficientnet-lite0"


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def inception_cache(tmp_path, monkeypatch):
    """A private genvision cache (reference statistics land there) that holds the real inception-fid."""
    real("inception-fid")
    converted = pretrained.cached("inception-fid").path.parent
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # the package conversion, not a hub file
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    (tmp_path / "cache" / "weights").mkdir(parents=True)
    os.symlink(converted, tmp_path / "cache" / "weights" / "inception-fid")
    assert pretrained.cached("inception-fid") is not None


# --- the rule for --model, --class, one-line errors (no weights needed) -------------------------


def test_a_catalogue_name_names_a_backbone_unless_such_a_path_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert photos.names_backbone(LITE0) and photos.names_backbone("vgg16")
    assert not photos.names_backbone("runs/efficientnet-lite0") and not photos.names_backbone("resnet")
    (tmp_path / "vgg16").mkdir()  # a run folder called like a backbone loads as the run
    assert not photos.names_backbone("vgg16")


def test_class_is_an_index_or_an_imagenet_label():
    param = ClassLabel(0, 100_000)
    assert param.convert("22", None, None) == 22 and param.convert("1e2", None, None) == 100
    assert param.convert("bald eagle", None, None) == "bald eagle"
    assert param.convert(" Bald Eagle ", None, None) == "Bald Eagle"
    for bad in ("bald eagles", "abc", "", "nan", "-1", "1.5"):
        with pytest.raises(click.BadParameter):
            param.convert(bad, None, None)
    labels = imagenet_labels()
    assert photos.class_index("bald eagle", labels) == 22 and photos.class_index("BALD EAGLE", labels) == 22
    assert photos.class_index("Cardigan", labels) == 264 and photos.class_index("cardigan", labels) == 474
    with pytest.raises(ConfigError, match="names several classes"):
        photos.class_index("CARDIGAN", labels)  # the corgi and the sweater: the index decides
    with pytest.raises(ConfigError, match=r"--class must be in 0\.\.999, got 1000"):
        photos.class_index(1000, labels)


@pytest.mark.parametrize("argv, message, status", [
    (["classify", "{photo}", "--model", LITE0], f"run `genvision weights get {LITE0}`", 1),
    (["explain", "{photo}", "--model", LITE0, "-o", "{tmp}/x.png"], f"run `genvision weights get {LITE0}`", 1),
    (["classify", "{photo}", "--model", "vgg16"], "vgg16 is a feature backbone without ImageNet classes", 1),
    (["explain", "{photo}", "--model", LITE0, "--class", "bald eagles", "-o", "{tmp}/x.png"],
     "'bald eagles' is neither a class index nor an ImageNet label name", 2),
    (["classify", "{tmp}/empty", "--model", LITE0], "no image files found", 1),
])
def test_errors_are_one_line(empty_caches, tmp_path, capsys, argv, message, status):
    (tmp_path / "empty").mkdir()
    image = tmp_path / "photo.png"
    torch.manual_seed(0)
    from genvision.io import save_image

    save_image(torch.rand(3, 32, 32) * 2 - 1, image)
    code, out, err = run_cli(capsys, *[a.format(photo=image, tmp=tmp_path) for a in argv])
    assert code == status and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_evaluate_with_inception_and_no_weights_is_one_line(empty_caches, tmp_path, capsys):
    from genvision.checkpoints import save_pretrained
    from genvision.registry import create_model

    save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), tmp_path / "gan")
    code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "gan", "--data", "mnist-mini",
                             "--features", "inception", "-n", "4", "-o", tmp_path / "e.json")
    assert code == 1 and "run `genvision weights get inception-fid`" in err and err.count("\n") == 1, err


# --- real weights, real photos -------------------------------------------------------------------


def test_classify_names_the_dog_and_the_eagle(capsys):
    real(LITE0)
    dog, eagle = photo("dog"), photo("eagle")
    code, out, err = run_cli(capsys, "classify", dog, eagle, "--model", LITE0, "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["model"] == LITE0 and [r["image"] for r in payload["results"]] == [str(dog), str(eagle)]
    top = {Path(r["image"]).stem: r["top"] for r in payload["results"]}
    assert all(len(t) == 5 and set(t[0]) == {"class", "name", "probability"} for t in top.values())
    assert all(a["probability"] >= b["probability"] for t in top.values() for a, b in zip(t, t[1:]))
    assert top["dog"][0]["class"] in DOGS  # measured: malamute 0.34, German shepherd 0.28
    assert {"malamute", "German shepherd", "Siberian husky", "Eskimo dog"} & {e["name"] for e in top["dog"]}
    assert {"bald eagle", "kite"} & {e["name"] for e in top["eagle"][:2]}  # measured: kite 0.54, bald eagle 0.19
    assert imagenet_labels()[top["eagle"][0]["class"]] == top["eagle"][0]["name"]


def test_classify_a_folder_as_a_table_and_goes_on_past_a_bad_file(tmp_path, capsys):
    real(LITE0)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photo("dog"), folder / "dog.jpg")
    shutil.copy(photo("eagle"), folder / "sub" / "eagle.jpg")
    code, out, err = run_cli(capsys, "classify", folder, "--model", LITE0, "--top-k", "2")
    assert code == 0, err
    assert out.splitlines()[0] == str(folder / "dog.jpg") and str(folder / "sub" / "eagle.jpg") in out
    assert out.count("  1. ") == 2 and out.count("  2. ") == 2 and "  3. " not in out
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    code, out, err = run_cli(capsys, "classify", folder, "--model", LITE0, "--json")
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and "broken.png" in lines[0] and lines[1] == "error: classified 2 of 3 images; 1 failed"
    results = json.loads(out)["results"]
    assert [Path(r["image"]).name for r in results] == ["broken.png", "dog.jpg", "eagle.jpg"]
    assert "error" in results[0] and len(results[1]["top"]) == 5


def test_grad_cam_of_the_dog_is_on_the_dog():
    real(LITE0)
    from genvision.io import load_image_tensor

    net = photos.load_photo_classifier(LITE0)
    result = photos.explain_photo(net, load_image_tensor(photo("dog"), channels=3))
    cam = result.maps["grad-cam"]
    assert result.method == "grad-cam" and cam.shape == (224, 224) and result.image.shape == (3, 224, 224)
    assert cam.min() == 0 and cam.max() == pytest.approx(1.0)
    assert result.predicted in DOGS and result.target == result.predicted
    # In the 224/256 centre crop the dog sits bottom-left; the top-right is the street and a van.
    dog, corner = cam[112:, :64].mean(), cam[:64, 160:].mean()
    assert dog > 0.5 and dog > 5 * corner  # measured: ~0.8 vs ~0.0
    assert all(p.grad is None for p in net.parameters())


def test_explain_cli_writes_the_overlay_for_a_named_class(tmp_path, capsys):
    real(LITE0)
    target = tmp_path / "eagle.png"
    code, out, err = run_cli(capsys, "explain", photo("eagle"), "--model", LITE0, "--class", "bald eagle",
                             "-o", target)
    assert code == 0, err
    assert out.startswith("grad-cam: predicted ") and str(target) in out
    sidecar = json.loads((tmp_path / "eagle.png.json").read_text())
    assert sidecar["target"] == 22 and sidecar["target_name"] == "bald eagle" and sidecar["maps"] == ["grad-cam"]
    assert sidecar["weights_sha256"] == pretrained.cached(LITE0).card["safetensors_sha256"]
    from PIL import Image

    assert Image.open(target).width >= 2 * 224
    code, out, err = run_cli(capsys, "explain", photo("eagle"), "--model", LITE0, "--class", "1000", "-o",
                             tmp_path / "other.png")
    assert code == 1 and "--class must be in 0..999" in err and err.count("\n") == 1


# --- standard FID with the pretrained inception-fid -------------------------------------------


def _images(seed: int, n: int = 6) -> torch.Tensor:
    """Smooth random colour images (n, 3, 48, 48) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 6, 6, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(48, 48), mode="bilinear", align_corners=False)


def test_features_inception_uses_the_pretrained_backbone_and_fid_of_a_set_with_itself_is_zero(inception_cache):
    extractor = resolve_extractor("inception", dataset_name="unused")
    card = pretrained.cached("inception-fid").card
    assert extractor.inception_comparable and extractor.dim == 2048
    assert card["safetensors_sha256"][:16] in extractor.key()
    assert "standard FID Inception-v3" in extractor.describe()
    images = _images(0)
    out = extractor(images)
    assert out.features.shape == (6, 2048) and (out.features >= 0).all()
    assert (out.probs is None) == (card["source"]["kind"] == "package")  # the TorchScript port has no fc
    reference = FeatureStats(keep=6).update(out.features)
    same = sample_metrics(fixed_images_sampler(images), extractor, reference, n=6, batch_size=4, progress=False)
    # the same images in other batches give identical statistics up to rounding (6 rows: density needs k + 1)
    assert abs(same["fid"]) < 1e-3
    assert (extractor(_images(1, 1)).features - out.features[:1]).abs().max() > 0.1  # other images, other features


def test_evaluate_cli_with_features_inception(inception_cache, tmp_path, capsys):
    from PIL import Image

    from genvision.checkpoints import save_pretrained
    from genvision.registry import create_model

    save_pretrained(create_model("dcgan", {"image_size": 28, "width": 8}), tmp_path / "gan")
    reference = tmp_path / "ref"
    reference.mkdir()
    for i in range(6):
        Image.new("L", (28, 28), i * 40).save(reference / f"{i}.png")
    code, out, err = run_cli(capsys, "evaluate", "--model", tmp_path / "gan", "--data", f"folder:{reference}",
                             "-n", "6", "--features", "inception", "--batch-size", "4", "-o", tmp_path / "e.json")
    assert code == 0, err
    assert "standard FID Inception-v3" in out and "inception-v3-fid" in out
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert metrics["fid"] > 0 and metrics["num_samples"] == 6
