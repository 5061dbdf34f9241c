"""Offline evaluation end to end: extractors, cached reference statistics, sanity of the scores."""

from __future__ import annotations

import json

import pytest
import torch

from genvision.cli import main
from genvision.data import load_dataset
from genvision.errors import ConfigError
from genvision.metrics.distribution import FeatureStats
from genvision.metrics.reference import reference_stats
from genvision.metrics.samples import fixed_images_sampler, sample_metrics
from genvision.workflows.extractors import domain_extractor


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def mini_test():
    return load_dataset("mnist-mini", split="test")


@pytest.fixture(scope="module")
def extractor():
    return domain_extractor("mnist-mini", progress=False)


def _features_metrics(extractor, reference_images, sample_images):
    reference = FeatureStats(keep=len(reference_images)).update(extractor(reference_images).features)
    return sample_metrics(fixed_images_sampler(sample_images), extractor, reference, n=len(sample_images),
                          batch_size=100, progress=False)


def test_halves_of_test_set_score_far_better_than_noise(extractor, mini_test):
    images, labels = mini_test.get_batch(torch.randperm(len(mini_test), generator=torch.Generator().manual_seed(0)))
    first, second = images[:500], images[500:]
    halves = _features_metrics(extractor, first, second)
    noise = _features_metrics(extractor, first, torch.rand(500, 1, 28, 28) * 2 - 1)
    assert halves["fid"] * 20 < noise["fid"]
    assert halves["precision"] > 0.8 and halves["recall"] > 0.8
    assert noise["precision"] < 0.1
    assert halves["class_coverage"] == 1.0
    assert halves["inception_score"] > 8  # ten well-separated digit classes, nearly uniform


def test_one_digit_set_has_minimal_recall_and_coverage(extractor, mini_test):
    images, labels = mini_test.get_batch(torch.arange(len(mini_test)))
    ones = images[labels == 1][:100]
    collapsed = _features_metrics(extractor, images, ones)
    assert collapsed["recall"] < 0.2
    assert collapsed["class_coverage"] == pytest.approx(0.1)
    assert collapsed["class_kl_to_uniform"] > 2.0  # log(10) = 2.30 for a single class
    assert collapsed["precision"] > 0.7  # the ones it does make look real


def test_reference_stats_are_cached_and_reused(extractor, mini_test, monkeypatch):
    first = reference_stats(extractor, mini_test, keep=1000, progress=False)
    calls = {"n": 0}
    original = extractor.__class__.__call__

    def counting(self, images):
        calls["n"] += 1
        return original(self, images)

    monkeypatch.setattr(extractor.__class__, "__call__", counting)
    second = reference_stats(extractor, mini_test, keep=1000, progress=False)
    assert calls["n"] == 0
    assert torch.equal(first.mean, second.mean) and torch.equal(first.features, second.features)


@pytest.fixture(scope="module")
def tiny_gan(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["train", "gan", "--data", "mnist-mini", "data.limit=256", "model.width=8", "train.batch_size=16",
                 "train.steps=6", "train.sample_every=0", "train.tensorboard=false", f"train.out_dir={out}",
                 "train.name=g"]) == 0
    return out / "g"


def test_evaluate_cli_on_a_generator(tiny_gan, tmp_path, capsys):
    output = tmp_path / "eval.json"
    code = main(["evaluate", "--model", str(tiny_gan), "-n", "300", "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "fid" in captured.out and "NOT comparable with Inception-FID" in captured.out
    result = json.loads(output.read_text())
    assert result["kind"] == "gan" and result["data"] == "mnist-mini:test"
    metrics = result["metrics"]
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "class_coverage",
                "class_kl_to_uniform", "inception_score"):
        assert isinstance(metrics[key], float), key
    assert metrics["num_samples"] == 300 and metrics["reference_images"] == 1000


def test_training_time_evaluation_keeps_a_best_checkpoint(tmp_path):
    from genvision.workflows.train import train

    result = train("gan", overrides=["data.name=mnist-mini", "data.limit=256", "model.width=8",
                                     "train.batch_size=16", "train.steps=6", "train.eval_every=3",
                                     "train.eval_samples=100", "train.sample_every=0", "train.tensorboard=false",
                                     f"train.out_dir={tmp_path}", "train.name=e"], progress=False)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    fids = [r["eval/fid"] for r in rows if "eval/fid" in r]
    assert len(fids) == 2
    best = (result.run_dir / "checkpoints" / "best").read_text().strip()
    assert best == ("step_00000003" if fids[0] <= fids[1] else "step_00000006")
    assert (result.run_dir / "checkpoints" / best).is_dir()


def test_unlabelled_folder_has_no_domain_extractor(tmp_path):
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    with pytest.raises(ConfigError, match="need a labelled dataset"):
        domain_extractor(f"folder:{tmp_path}", progress=False)


def test_evaluate_rejects_unsupported_inputs(tiny_gan, capsys):
    code = main(["evaluate", "--model", str(tiny_gan), "-n", "1"])
    assert code != 0 and "at least 2" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(tiny_gan), "--features", "inception", "--fid-weights", "/no/such.pth"])
    err = capsys.readouterr().err
    assert code != 0 and "/no/such.pth" in err and err.count("\n") == 1


def test_evaluate_with_an_inception_weights_file_uses_inception(tiny_gan, tmp_path, capsys):
    from PIL import Image

    from genvision.metrics.inception import FID_WEIGHTS_NAME, fid_inception_v3

    torch.manual_seed(0)
    weights = tmp_path / FID_WEIGHTS_NAME  # random weights: exercises the code path, not real FID values
    torch.save(fid_inception_v3().state_dict(), weights)
    reference = tmp_path / "ref"
    reference.mkdir()
    for i in range(12):
        Image.new("L", (28, 28), i * 20).save(reference / f"{i}.png")
    code = main(["evaluate", "--model", str(tiny_gan), "--data", f"folder:{reference}", "-n", "12",
                 "--fid-weights", str(weights), "--batch-size", "6", "-o", str(tmp_path / "e.json")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "inception-v3-fid" in captured.out and "standard FID Inception-v3" in captured.out
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert metrics["fid"] > 0 and metrics["num_samples"] == 12


def test_a_folder_reference_is_read_at_the_models_size_and_channels(tiny_gan, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from genvision.apps.generation import evaluate as generation_evaluate
    from genvision.metrics.inception import FID_WEIGHTS_NAME, fid_inception_v3

    torch.manual_seed(0)
    weights = tmp_path / FID_WEIGHTS_NAME
    torch.save(fid_inception_v3().state_dict(), weights)
    reference = tmp_path / "photos"
    reference.mkdir()
    for i in range(6):  # RGB photos larger than the 28 px grey GAN, which a folder would default to 64 px RGB
        Image.new("RGB", (96, 80), (i * 40, 200 - i * 30, 90)).save(reference / f"{i}.png")
    seen = []
    original = generation_evaluate.reference_stats

    def spy(extractor, dataset, **kwargs):
        seen.append((dataset.image_size, dataset.channels, tuple(dataset[0][0].shape)))
        return original(extractor, dataset, **kwargs)

    monkeypatch.setattr(generation_evaluate, "reference_stats", spy)
    code = main(["evaluate", "--model", str(tiny_gan), "--data", f"folder:{reference}", "-n", "6",
                 "--fid-weights", str(weights), "--batch-size", "6", "-o", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    assert seen == [(28, 1, (1, 28, 28))]


def test_evaluate_cli_on_a_classifier_writes_confusion_png(tmp_path, capsys):
    from PIL import Image

    assert main(["train", "classifier", "--data", "mnist-mini", "data.limit=512", "model.width=8", "train.steps=5",
                 "train.batch_size=32", "train.sample_every=0", "train.tensorboard=false",
                 f"train.out_dir={tmp_path}", "train.name=c"]) == 0
    output = tmp_path / "cls.json"
    code = main(["evaluate", "--model", str(tmp_path / "c"), "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "accuracy" in captured.out
    result = json.loads(output.read_text())
    assert result["kind"] == "classifier" and result["metrics"]["num_samples"] == 1000
    assert sum(map(sum, result["metrics"]["confusion"])) == 1000
    assert len(result["metrics"]["per_class_accuracy"]) == 10
    assert Image.open(tmp_path / "cls-confusion.png").size[0] > 100


def test_public_api_is_lazy_and_complete():
    import subprocess
    import sys

    code = ("import sys, genvision; assert 'torch' not in sys.modules; "
            "from genvision import load_model, from_pretrained, generate, list_models, train, evaluate; "
            "assert load_model is from_pretrained; print(sorted(m.name for m in list_models()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "dcgan" in out.stdout and "cnn" in out.stdout
