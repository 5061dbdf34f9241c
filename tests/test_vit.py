"""ViT and ResNet classifiers: shapes, the classifier interface, learning a tiny task, the
classifier family with arch=vit|resnet, augmentation options, save/load/resume."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from genvision import checkpoints as ckpt
from genvision.apps.classify.objective import ClassifyObjective, ClassifyObjectiveConfig, mix_batch
from genvision.apps.classify.pipeline import evaluate_classifier, predict
from genvision.errors import ConfigError
from genvision.models.resnet import ResNetClassifier, ResNetConfig
from genvision.models.vit import ViTClassifier, ViTConfig
from genvision.registry import create_model, list_models
from genvision.training.objective import DataInfo, StepContext
from genvision.workflows.train import train

TINY_VIT = ["arch=vit", "model.dim=16", "model.depth=1", "model.heads=2", "model.patch_size=7"]
TINY_RESNET = ["arch=resnet", "model.width=4", "model.blocks=[1,1]"]
COMMON = ["data.name=mnist-mini", "data.limit=128", "train.batch_size=16", "train.log_every=2",
          "train.tensorboard=false", "objective.warmup_steps=2", "train.ckpt_every=2"]


@pytest.mark.parametrize("name,config", [
    ("vit", ViTConfig(image_size=28, channels=1, num_classes=7, patch_size=4, dim=16, depth=2, heads=2)),
    ("vit", ViTConfig(image_size=32, channels=3, num_classes=7, patch_size=8, dim=16, depth=1, heads=4,
                      pool="mean", positions="sincos")),
    ("resnet", ResNetConfig(image_size=28, channels=1, num_classes=7, width=4, blocks=(1, 1, 1))),
    ("resnet", ResNetConfig(image_size=32, channels=3, num_classes=7, width=4, blocks=(2, 1))),
])
def test_classifier_interface(name, config):
    model = create_model(name, config)
    x = torch.randn(3, config.channels, config.image_size, config.image_size)
    features = model.forward_features(x)
    assert features.ndim == 2 and features.shape[0] == 3
    assert isinstance(model.head, nn.Linear) and model.head.in_features == features.shape[1]
    assert model(x).shape == (3, 7)
    model.eval()
    torch.testing.assert_close(model.head(model.forward_features(x)), model(x))
    model.train()
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_registered_and_config_checks():
    names = [e.name for e in list_models("classifier")]
    assert {"cnn", "resnet", "vit"} <= set(names)
    with pytest.raises(ConfigError, match="patch_size 5 must divide image_size 28"):
        ViTConfig(patch_size=5).validate()
    with pytest.raises(ConfigError, match="pool"):
        ViTConfig(pool="max").validate()
    with pytest.raises(ConfigError, match="blocks"):
        ResNetConfig(blocks=()).validate()
    vit = ViTClassifier(ViTConfig(dim=16, heads=2, depth=2))
    logits, weights = vit.forward_with_attention(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10) and len(weights) == 2 and weights[0].shape == (2, 2, 50, 50)  # 49 + cls


def _halves(n: int = 64, size: int = 16, seed: int = 0):
    """Class 0: bright left half; class 1: bright right half; plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.full((n, 1, size, size), -0.8)
    x[labels == 0, :, :, : size // 2] = 0.8
    x[labels == 1, :, :, size // 2:] = 0.8
    return (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1), labels


@pytest.mark.parametrize("model", [
    lambda: ViTClassifier(ViTConfig(image_size=8, channels=1, num_classes=2, patch_size=4, dim=16, depth=1,
                                    heads=2, pool="mean")),
    lambda: ResNetClassifier(ResNetConfig(image_size=8, channels=1, num_classes=2, width=4, blocks=(1, 1))),
], ids=["vit", "resnet"])
def test_tiny_separable_task_is_learned(model):
    torch.manual_seed(0)
    images, labels = _halves(n=32, size=8)
    net = model()
    objective = ClassifyObjective(net, ClassifyObjectiveConfig(lr=1e-2, warmup_steps=2),
                                  DataInfo(channels=1, image_size=8, num_classes=2), total_steps=50)
    scheduler = objective.lr_schedulers()["model"]
    first = None
    for step in range(50):
        ctx = StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                          optimizers=objective.optimizers())
        out = objective.train_step((images, labels), ctx)
        scheduler.step()
        first = out["loss"] if first is None else first
    assert float(out["loss"]) < 0.5 * float(first)
    assert (predict(net, images).argmax(1) == labels).float().mean() == 1.0


def test_mix_batch_keeps_mass_and_reports_lam():
    torch.manual_seed(0)
    x = torch.stack([torch.full((1, 8, 8), float(i)) for i in range(4)])
    labels = torch.arange(4)
    mixed, partner, lam = mix_batch(x, labels, mixup=0.4, cutmix=0.0)
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x[partner])  # partner label == partner index here
    mixed, partner, lam = mix_batch(x, labels, mixup=0.0, cutmix=1.0)
    kept = (mixed == x).float().mean(dim=(1, 2, 3))  # fraction of pixels from the image itself
    swapped = partner != labels
    assert torch.allclose(kept[swapped], torch.full_like(kept[swapped], lam))


def test_family_trains_vit_with_augmentation_and_resumes_exactly(tmp_path):
    common = COMMON + TINY_VIT + [f"train.out_dir={tmp_path}", "objective.augment=randaugment",
                                  "objective.mixup=0.2", "objective.cutmix=1.0", "objective.label_smoothing=0.1"]
    straight = train("classifier", overrides=common + ["train.name=straight", "train.steps=4"], progress=False)
    half = train("classifier", overrides=common + ["train.name=split", "train.steps=2"], progress=False)
    resumed = train("classifier", resume=half.run_dir, overrides=["train.steps=4"], progress=False)
    a = load_file(str(ckpt.latest_checkpoint(straight.run_dir / "checkpoints") / ckpt.WEIGHTS_FILE))
    b = load_file(str(ckpt.latest_checkpoint(resumed.run_dir / "checkpoints") / ckpt.WEIGHTS_FILE))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    model = ckpt.load_pretrained(straight.run_dir, kind="classifier")
    assert model.registry_name == "vit" and model.config.dim == 16 and model.config.class_names[3] == "3"


def test_family_trains_resnet_and_evaluates(tmp_path):
    from genvision.data import load_dataset

    result = train("classifier", overrides=COMMON + TINY_RESNET + [f"train.out_dir={tmp_path}", "train.name=r",
                                                                   "train.steps=3", "objective.augment=trivialaugment",
                                                                   "data.random_crop=true"], progress=False)
    model = ckpt.load_pretrained(result.run_dir, kind="classifier")
    assert model.registry_name == "resnet" and model.config.blocks == (1, 1)
    out = evaluate_classifier(model, load_dataset("mnist-mini", split="test", limit=64))
    assert out["num_samples"] == 64 and out["confusion"].shape == (10, 10)
    assert 0.0 <= out["accuracy"] <= 1.0 and len(out["per_class_accuracy"]) == 10


@pytest.mark.parametrize("overrides,message", [
    (["arch=vit", "model.width=8"], "unknown config key 'model.width'"),
    (["arch=vit", "model.patch_size=5"], "patch_size 5 must divide"),
    (["arch=transformer"], "unknown classifier arch 'transformer'"),
    (["objective.augment=autoaugment"], "augment must be one of"),
    (["objective.mixup=-1"], "mixup and cutmix must be >= 0"),
])
def test_recipe_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        train("classifier", overrides=COMMON + [f"train.out_dir={tmp_path}", "train.steps=1", *overrides],
              progress=False)


@pytest.mark.parametrize("name,config", [
    ("vit", {"dim": 16, "depth": 1, "heads": 2, "positions": "sincos", "class_names": [str(i) for i in range(10)]}),
    ("resnet", {"width": 4, "blocks": [1, 2]}),
    ("dit", {"dim": 16, "depth": 1, "heads": 2, "patch_size": 7}),
])
def test_save_load_round_trip(tmp_path, name, config):
    torch.manual_seed(0)
    model = create_model(name, config).eval()
    with torch.no_grad():
        for p in model.parameters():  # move every weight off its (possibly zero) initial value
            p.add_(0.05 * torch.randn_like(p))
    ckpt.save_pretrained(model, tmp_path / name)
    loaded = ckpt.load_pretrained(tmp_path / name)
    assert loaded.config == model.config and type(loaded) is type(model)
    x = torch.randn(2, 1, 28, 28)
    args = (x,) if name != "dit" else (x, torch.tensor([0.2, 0.7]), torch.tensor([3, 10]))
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args), model(*args))
