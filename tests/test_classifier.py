"""The classifier family: the CNN, the objective (loss, schedule), train/save/load, evaluation,
and the MNIST domain extractor that ships inside the package."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from genvision import checkpoints as ckpt
from genvision.apps.classify.objective import ClassifyObjective, ClassifyObjectiveConfig, build
from genvision.apps.classify.pipeline import evaluate_classifier, predict
from genvision.cli import main
from genvision.errors import ConfigError
from genvision.models.classifier import CNNClassifier, CNNConfig
from genvision.registry import create_model, list_models
from genvision.training.objective import DataInfo, StepContext
from genvision.training.schedules import lr_factor
from genvision.workflows.extractors import SHIPPED_EXTRACTORS, load_shipped_extractor, shipped_extractor_dir
from genvision.workflows.train import train

TINY = ["data.name=mnist-mini", "data.limit=256", "model.width=8", "model.feature_dim=32", "train.batch_size=32",
        "train.log_every=2", "train.tensorboard=false", "objective.warmup_steps=2"]


# --------------------------------------------------------------------------------------
# The network


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (28, 3), (32, 1), (16, 1)])
def test_cnn_shapes(size, channels):
    model = create_model("cnn", CNNConfig(image_size=size, channels=channels, num_classes=7, width=8,
                                          feature_dim=24))
    x = torch.randn(3, channels, size, size)
    assert model.forward_features(x).shape == (3, 24)
    assert model(x).shape == (3, 7)
    assert isinstance(model.head, nn.Linear) and model.head.in_features == 24
    model.eval()
    assert torch.allclose(model.head(model.forward_features(x)), model(x))
    model(x).sum().backward()  # every parameter gets a gradient
    assert all(p.grad is not None for p in model.parameters())


def test_cnn_registered_and_config_checks():
    assert "cnn" in [e.name for e in list_models("classifier")]
    with pytest.raises(ConfigError, match="channels"):
        CNNConfig(channels=2).validate()
    with pytest.raises(ConfigError, match="class_names"):
        CNNConfig(num_classes=3, class_names=("a", "b")).validate()
    assert CNNConfig(class_names=["a"] * 10).class_names == ("a",) * 10  # lists from JSON become tuples


# --------------------------------------------------------------------------------------
# The objective


def _halves(n: int = 64, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 0: bright left half; class 1: bright right half; plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    x = torch.full((n, 1, size, size), -0.8)
    x[labels == 0, :, :, : size // 2] = 0.8
    x[labels == 1, :, :, size // 2:] = 0.8
    return (x + 0.3 * torch.randn(x.shape, generator=gen)).clamp(-1, 1), labels


def _ctx(objective: ClassifyObjective, step: int) -> StepContext:
    return StepContext(step=step, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                       optimizers=objective.optimizers())


def test_tiny_separable_task_is_learned():
    torch.manual_seed(0)
    images, labels = _halves()
    model = CNNClassifier(CNNConfig(image_size=16, channels=1, num_classes=2, width=8, feature_dim=16, dropout=0.0))
    cfg = ClassifyObjectiveConfig(lr=1e-2, warmup_steps=2)
    objective = ClassifyObjective(model, cfg, DataInfo(channels=1, image_size=16, num_classes=2), total_steps=30)
    scheduler = objective.lr_schedulers()["model"]
    first = None
    for step in range(30):
        out = objective.train_step((images, labels), _ctx(objective, step))
        scheduler.step()
        first = out["loss"] if first is None else first
        assert set(out) == {"loss", "acc"} and not out["loss"].requires_grad
    assert float(out["loss"]) < 0.5 * float(first)
    probs = predict(model, images)  # eval mode: BatchNorm running statistics
    assert probs.shape == (64, 2) and torch.allclose(probs.sum(1), torch.ones(64))
    assert (probs.argmax(1) == labels).all()


def test_lr_schedule_by_hand():
    f = lambda s, **kw: lr_factor(s, total_steps=110, warmup_steps=10, **kw)  # noqa: E731
    assert f(0) == pytest.approx(0.1) and f(4) == pytest.approx(0.5) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0)  # cosine starts at the top
    assert f(60) == pytest.approx(0.5)  # halfway through the decay: (1 + cos(pi/2)) / 2
    assert f(85) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.75)))
    assert f(60, min_lr_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(110) == pytest.approx(0.0) and f(500, min_lr_ratio=0.2) == pytest.approx(0.2)
    assert f(80, schedule="constant") == 1.0
    assert lr_factor(0, total_steps=5, warmup_steps=0) == pytest.approx(1.0)

    # The objective's LambdaLR follows it, and its state survives a weights_only round trip.
    model = CNNClassifier(CNNConfig(num_classes=2, width=4, feature_dim=4))
    cfg = ClassifyObjectiveConfig(lr=0.01, warmup_steps=10)
    objective = ClassifyObjective(model, cfg, DataInfo(1, 28, 2), total_steps=110)
    opt, sched = objective.optimizers()["model"], objective.lr_schedulers()["model"]
    seen = []
    for _ in range(61):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen[0] == pytest.approx(0.001) and seen[9] == pytest.approx(0.01) and seen[60] == pytest.approx(0.005)
    path = Path(__file__).parent / ".sched-roundtrip.pt"
    try:
        torch.save(sched.state_dict(), path)
        assert torch.load(path, weights_only=True)["last_epoch"] == 61
    finally:
        path.unlink(missing_ok=True)
    # weight decay on conv/linear weights only
    decays = {len(g["params"]): g["weight_decay"] for g in opt.param_groups}
    assert sorted(decays.values()) == [0.0, cfg.weight_decay]


class _FixedLogits(nn.Module):
    """Logits = a learnable (K,) bias for every image: lets the test know the loss exactly."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.bias = nn.Parameter(torch.tensor(logits))
        self.config = CNNConfig(num_classes=len(logits))

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, x):
        return self.bias.expand(x.shape[0], -1)  # (B, K)


def test_label_smoothing_loss_by_hand():
    logits, s = [2.0, 0.0, -1.0], 0.3
    log_z = math.log(sum(math.exp(v) for v in logits))
    nll = [log_z - v for v in logits]  # -log softmax
    want = (1 - s) * nll[0] + s * sum(nll) / 3  # target (1 - s) onehot(0) + s / K
    model = _FixedLogits(logits)
    objective = ClassifyObjective(model, ClassifyObjectiveConfig(label_smoothing=s), DataInfo(1, 28, 3),
                                  total_steps=10)
    out = objective.train_step((torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)), _ctx(objective, 0))
    assert float(out["loss"]) == pytest.approx(want, rel=1e-6)
    assert float(out["acc"]) == 1.0
    plain = ClassifyObjective(_FixedLogits(logits), ClassifyObjectiveConfig(), DataInfo(1, 28, 3), total_steps=10)
    out = plain.train_step((torch.zeros(2, 1, 28, 28), torch.tensor([1, 1])), _ctx(plain, 0))
    assert float(out["loss"]) == pytest.approx(nll[1], rel=1e-6) and float(out["acc"]) == 0.0


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown classifier arch 'resnet9'; choose from cnn"):
        train("classifier", overrides=TINY + ["arch=resnet9"], progress=False)
    with pytest.raises(ConfigError, match="optimizer"):
        ClassifyObjectiveConfig(optimizer="lamb").validate()
    with pytest.raises(ConfigError, match="labelled"):
        from genvision.apps.classify.objective import RECIPE
        build(RECIPE(), DataInfo(channels=3, image_size=64, num_classes=0))


# --------------------------------------------------------------------------------------
# Train -> save -> load, resume, evaluation


def test_train_save_load_round_trip_and_resume(tmp_path):
    # A constant schedule (the cosine depends on train.steps) with a warm-up across the split point,
    # so a scheduler that did not resume at step 3 would give different weights.
    common = TINY + [f"train.out_dir={tmp_path}", "objective.optimizer=sgd", "objective.lr=0.05",
                     "objective.schedule=constant", "objective.warmup_steps=5"]
    straight = train("classifier", overrides=common + ["train.name=a", "train.steps=6"], progress=False)
    half = train("classifier", overrides=common + ["train.name=b", "train.steps=3"], progress=False)
    resumed = train("classifier", resume=half.run_dir, overrides=["train.steps=6"], progress=False)
    a = load_file(str(straight.checkpoint / ckpt.WEIGHTS_FILE))
    b = load_file(str(resumed.checkpoint / ckpt.WEIGHTS_FILE))
    assert all(torch.equal(a[k], b[k]) for k in a)  # LR schedule and optimizer state restored exactly
    assert not (straight.checkpoint / ckpt.EMA_FILE).exists()  # ema off: shipped = trained weights

    model = ckpt.load_pretrained(straight.run_dir, kind="classifier")
    assert isinstance(model, CNNClassifier) and not model.training
    assert model.config.num_classes == 10 and model.config.class_names == tuple("0123456789")
    assert all(torch.equal(v, a[k]) for k, v in model.state_dict().items())
    from genvision.data import load_dataset

    test = load_dataset("mnist-mini", split="test", limit=300)
    result = evaluate_classifier(model, test, batch_size=128)
    assert result["num_samples"] == 300 and int(result["confusion"].sum()) == 300
    assert result["confusion"].dtype == torch.int64 and result["confusion"].shape == (10, 10)
    assert result["accuracy"] == pytest.approx(float(result["confusion"].diagonal().sum()) / 300)
    assert len(result["per_class_accuracy"]) == 10
    # predict converts 3-channel 32 px input the same way the feature extractor does
    assert predict(model, torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_cli_trains_a_classifier(tmp_path, capsys):
    code = main(["train", "classifier", "--data", "mnist-mini", *TINY, f"train.out_dir={tmp_path}", "train.name=c",
                 "train.steps=2"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "c" / "checkpoints" / "step_00000002" / ckpt.WEIGHTS_FILE).is_file()


def test_evaluate_folder_dataset(tmp_path):
    """Folder datasets go through a DataLoader; the confusion matrix still counts every image."""
    from PIL import Image

    from genvision.data import load_dataset

    for cls, value in (("dark", 20), ("light", 230)):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.new("L", (20, 20), value + i).save(tmp_path / cls / f"{i}.png")
    dataset = load_dataset(f"folder:{tmp_path}", image_size=16, channels=1)
    model = CNNClassifier(CNNConfig(image_size=16, num_classes=2, width=4, feature_dim=8)).eval()
    result = evaluate_classifier(model, dataset, batch_size=3)
    assert result["num_samples"] == 10 and int(result["confusion"].sum()) == 10
    assert result["class_names"] == ["dark", "light"]
    with pytest.raises(ConfigError, match="10 classes but the dataset has 2"):
        evaluate_classifier(CNNClassifier(CNNConfig(image_size=16, width=4)), dataset)


# --------------------------------------------------------------------------------------
# The shipped MNIST extractor


def test_shipped_mnist_extractor():
    from genvision.data import load_dataset

    path = shipped_extractor_dir("mnist")
    assert path is not None and shipped_extractor_dir("mnist-mini") == path and set(SHIPPED_EXTRACTORS) >= {"mnist"}
    assert shipped_extractor_dir("cifar10") is None
    assert sum(f.stat().st_size for f in path.iterdir()) < 2_000_000
    assert not (path / ckpt.STATE_FILE).exists() and (path / "MODEL_CARD.md").is_file()
    model = ckpt.load_pretrained(path, kind="classifier")
    result = evaluate_classifier(model, load_dataset("mnist-mini", split="test"))
    assert result["num_samples"] == 1000 and result["accuracy"] >= 0.98
    extractor = load_shipped_extractor("mnist")
    feats = extractor(load_dataset("mnist-mini", split="test", limit=8).images.float() / 127.5 - 1)
    assert feats.features.shape == (8, model.config.feature_dim) and feats.probs.shape == (8, 10)
