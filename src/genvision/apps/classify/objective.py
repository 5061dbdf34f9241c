"""Supervised image classification: cross-entropy, AdamW/SGD, linear warm-up then cosine decay.

The loss on logits ``l`` (B, K) and labels ``y`` with label smoothing ``s`` (Szegedy et al.
2016) is the cross-entropy against the target ``(1 - s) onehot(y) + s / K``:

    L = (1 - s) * (-log softmax(l)_y) + s * mean_k(-log softmax(l)_k)

The learning rate follows ``genvision.training.schedules.lr_factor``: a linear warm-up over ``warmup_steps`` to the
base rate, then (``schedule=cosine``) a half cosine down to ``min_lr_ratio * lr`` at the last
step. The recipe (:class:`ClassifierRecipe`) is what ``genvision train classifier`` resolves.

``arch`` picks the network (``cnn``, ``resnet``, ``vit``); the ``model`` section holds that
architecture's config fields (unset fields keep its defaults), checked against its config class.

Training-time augmentation on top of the data section's pad-and-crop / flips:
``objective.augment`` applies torchvision's RandAugment (Cubuk et al. 2020) or TrivialAugment
(Mueller & Hutter 2021) per image, and ``objective.mixup`` / ``objective.cutmix`` mix pairs of
images (Zhang et al. 2018; Yun et al. 2019): with ``lam ~ Beta(a, a)``, the loss is
``lam * CE(l, y_a) + (1 - lam) * CE(l, y_b)`` (for CutMix ``lam`` is the kept area). All draws
use torch's global RNG, so resumed runs stay exact.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config import DataConfig, TrainConfig, build_dataclass, check_optimizer, check_range
from ...data import cifar, mnist
from ...errors import ConfigError
from ...registry import create_model, get_entry
from ...training.objective import DataInfo, Objective, StepContext
from ...training.optim import decay_groups, fast_optimizer
from ...training.schedules import SCHEDULES, config_schedules

OPTIMIZERS = ("adamw", "sgd")
# Classifier architectures `arch` may name; each is a registered model of kind "classifier"
# whose config has image_size / channels / num_classes / class_names fields.
ARCHS = ("cnn", "resnet", "vit")
AUGMENTS = ("none", "randaugment", "trivialaugment")


@dataclass
class ClassifyObjectiveConfig:
    optimizer: str = "adamw"  # adamw (decoupled weight decay) | sgd (Nesterov momentum)
    lr: float = 2e-3  # peak learning rate, reached at the end of the warm-up
    weight_decay: float = 5e-4  # on conv/linear weights only (not on biases or BatchNorm)
    momentum: float = 0.9  # sgd only
    label_smoothing: float = 0.0  # s in the target (1 - s) onehot + s / K; 0 = plain cross-entropy
    warmup_steps: int = 100  # linear warm-up from lr / warmup_steps to lr
    schedule: str = "cosine"  # cosine (decay to min_lr_ratio * lr at train.steps) | constant
    min_lr_ratio: float = 0.0  # final lr as a fraction of lr (cosine only)
    augment: str = "none"  # none | randaugment | trivialaugment (torchvision, per image, training only)
    randaugment_ops: int = 2  # RandAugment: operations per image
    randaugment_magnitude: int = 9  # RandAugment: magnitude 0..30
    mixup: float = 0.0  # MixUp Beta(a, a) parameter a; 0 = off
    cutmix: float = 0.0  # CutMix Beta(a, a) parameter a; 0 = off (both on: one of them per batch, 50/50)
    mix_prob: float = 1.0  # probability that a batch is mixed when mixup or cutmix is on

    def validate(self) -> None:
        if self.augment not in AUGMENTS:
            raise ConfigError(f"classifier augment must be one of {', '.join(AUGMENTS)}, got {self.augment!r}")
        check_range("objective.randaugment_ops", self.randaugment_ops, 0, 16)  # RandAugment has 14 operations
        check_range("objective.randaugment_magnitude", self.randaugment_magnitude, 0, 30)
        # Beta(a, a) for a >= 100 is 0.5 +- 0.04 already (and overflows fp32 far beyond).
        if not (0.0 <= self.mixup <= 100.0 and 0.0 <= self.cutmix <= 100.0):
            raise ConfigError(f"mixup and cutmix must be >= 0 and at most 100, got objective.mixup={self.mixup}, "
                              f"objective.cutmix={self.cutmix}")
        check_range("objective.mix_prob", self.mix_prob, 0.0, 1.0)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"classifier optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"classifier schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        check_optimizer("objective", self.lr, weight_decay=self.weight_decay)
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


# --------------------------------------------------------------------------------------
# The recipe


@dataclass
class ClassifierRecipe:
    arch: str = "cnn"  # registered classifier architecture: cnn | resnet | vit (see ARCHS)
    # Fields of the arch's config (CNNConfig / ResNetConfig / ViTConfig); unset ones keep its
    # defaults; channels/image_size/num_classes/class_names come from the data.
    model: dict[str, Any] = field(default_factory=dict)
    objective: ClassifyObjectiveConfig = field(default_factory=ClassifyObjectiveConfig)
    # 1800 steps x 128 = 3.8 MNIST epochs. No EMA: the cosine decay to ~0 already averages the
    # last steps, and without it the shipped model.safetensors is exactly the evaluated network
    # (load_pretrained would otherwise pick ema.safetensors) and the model directory half the size.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1800, batch_size=128, ema=False, sample_every=0, ckpt_every=500, log_every=50))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist", random_crop=True))  # pad-2 crops

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown classifier arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        self.model_config().validate()
        self.objective.validate()

    def model_config(self):
        """The ``model`` section as the arch's config dataclass (unknown keys are an error)."""
        config_cls = get_entry(self.arch).config_cls
        if isinstance(self.model, config_cls):
            return self.model
        if dataclasses.is_dataclass(self.model):
            values = dataclasses.asdict(self.model)
        elif isinstance(self.model, dict):
            values = self.model
        else:
            raise ConfigError(f"the classifier model section must be a mapping of {config_cls.__name__} fields")
        return build_dataclass(config_cls, values, "model")


def known_class_names(data_cfg: DataConfig) -> tuple[str, ...]:
    """Class names of the dataset a DataConfig names, found without loading its images."""
    name = data_cfg.name.lower().replace("_", "-")
    if name in ("mnist", "mnist-mini"):
        return tuple(mnist.MNIST_CLASSES)
    if name in ("fashion-mnist", "fashionmnist"):
        return tuple(mnist.FASHION_CLASSES)
    if name in ("cifar10", "cifar-10"):
        return tuple(cifar.CLASS_NAMES)
    if data_cfg.name.startswith("folder:"):
        root = Path(data_cfg.name[len("folder:"):]).expanduser()
        if (root / "train").is_dir() and (root / "test").is_dir():
            root = root / "train"
        if root.is_dir():  # sorted first-level sub-folders, as FolderImageDataset labels them
            return tuple(sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")))
    return ()


def fit_model_config_to_data(cfg, data: DataInfo, class_names: tuple[str, ...] = ()):
    """Copy of ``cfg`` with channels, image_size, num_classes (and class names) from the dataset."""
    if data.num_classes < 2:
        raise ConfigError("a classifier needs a labelled dataset with at least 2 classes "
                          f"(this one has {data.num_classes}); for folder:PATH put each class in a sub-folder")
    names = tuple(class_names) if len(class_names) == data.num_classes else ()
    fitted = dataclasses.replace(cfg, channels=data.channels, image_size=data.image_size,
                                 num_classes=data.num_classes, class_names=names)
    fitted.validate()
    return fitted


# --------------------------------------------------------------------------------------
# Augmentation (training only)


def policy_augment(images: torch.Tensor, transform) -> torch.Tensor:
    """Apply a torchvision v2 policy (RandAugment / TrivialAugment) to each image of a batch.

    (B, C, H, W) in [-1, 1] -> same shape, via uint8, one independent draw per image.
    """
    u8 = images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()  # (B, C, H, W)
    out = torch.stack([transform(img) for img in u8.contiguous()])  # (B, C, H, W) uint8
    return out.to(images.device, torch.float32).div_(127.5).sub_(1.0).contiguous(
        memory_format=torch.channels_last if images.is_contiguous(memory_format=torch.channels_last)
        else torch.contiguous_format)


def mix_batch(images: torch.Tensor, labels: torch.Tensor, *, mixup: float, cutmix: float
              ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """MixUp or CutMix with a shuffled copy of the batch: (mixed images, partner labels, lam).

    The loss is ``lam * CE(l, labels) + (1 - lam) * CE(l, partner labels)``.
    """
    use_cutmix = cutmix > 0 and (mixup <= 0 or float(torch.rand(())) < 0.5)
    alpha = cutmix if use_cutmix else mixup
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(images.shape[0], device=images.device)
    partner = images[perm]
    if not use_cutmix:
        return lam * images + (1.0 - lam) * partner, labels[perm], lam
    h, w = images.shape[-2:]
    cut_h, cut_w = int(h * math.sqrt(1.0 - lam)), int(w * math.sqrt(1.0 - lam))
    cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
    y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = partner[:, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually kept
    return mixed, labels[perm], lam


# --------------------------------------------------------------------------------------
# The objective


def make_optimizer(model: nn.Module, cfg: ClassifyObjectiveConfig) -> torch.optim.Optimizer:
    groups = decay_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        kwargs = dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
        cls = torch.optim.SGD
    else:
        kwargs = dict(lr=cfg.lr, betas=(0.9, 0.999))
        cls = torch.optim.AdamW
    return fast_optimizer(cls, groups, **kwargs)


class ClassifyObjective(Objective):
    """Cross-entropy (optionally label-smoothed) on one optimizer, ``"model"``."""
    name = "classifier"
    uses_labels = True

    def __init__(self, model: nn.Module, config: ClassifyObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        if total_steps < 1:
            raise ConfigError(f"total_steps must be >= 1, got {total_steps}")
        if model.num_classes != data.num_classes:
            raise ConfigError(f"the model has {model.num_classes} classes but the dataset has {data.num_classes}")
        self.total_steps = total_steps
        self._policy_transform = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": make_optimizer(self.model, self.config)}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def _policy(self):
        if self._policy_transform is None:
            from torchvision.transforms import v2  # lazy: torchvision is slow to import

            cfg = self.config
            self._policy_transform = (v2.RandAugment(num_ops=cfg.randaugment_ops, magnitude=cfg.randaugment_magnitude)
                                      if cfg.augment == "randaugment" else v2.TrivialAugmentWide())
        return self._policy_transform

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        self.check_labels(labels)
        cfg = self.config
        if cfg.augment != "none":
            images = policy_augment(images, self._policy())
        labels_b, lam = labels, None
        if (cfg.mixup > 0 or cfg.cutmix > 0) and float(torch.rand(())) < cfg.mix_prob:
            images, labels_b, lam = mix_batch(images, labels, mixup=cfg.mixup, cutmix=cfg.cutmix)
        with ctx.autocast():
            logits = self.model(images).float()  # (B, K)
        loss = F.cross_entropy(logits, labels, label_smoothing=cfg.label_smoothing)
        if lam is not None:
            loss = lam * loss + (1.0 - lam) * F.cross_entropy(logits, labels_b, label_smoothing=cfg.label_smoothing)
        ctx.update(loss, "model")
        acc = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss": loss.detach(), "acc": acc}

    def ema_target(self) -> nn.Module:
        return self.model


# --------------------------------------------------------------------------------------
# The family entry point used by ``genvision train classifier``

RECIPE = ClassifierRecipe
DESCRIPTION = ("image classifiers (arch=cnn | resnet | vit): cross-entropy, label smoothing, RandAugment / "
               "TrivialAugment, mixup / cutmix, warm-up + cosine lr")


def build(recipe: ClassifierRecipe, data: DataInfo, class_names: tuple[str, ...] | None = None
          ) -> tuple[nn.Module, ClassifyObjective]:
    recipe.validate()
    if class_names is None:
        class_names = known_class_names(recipe.data)
    recipe.model = fit_model_config_to_data(recipe.model_config(), data, tuple(class_names))
    model = create_model(recipe.arch, recipe.model)
    return model, ClassifyObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = [
    "RECIPE", "DESCRIPTION", "build", "ARCHS", "OPTIMIZERS", "SCHEDULES",
    "ClassifyObjectiveConfig", "ClassifierRecipe", "ClassifyObjective", "make_optimizer",
    "known_class_names", "fit_model_config_to_data", "AUGMENTS", "policy_augment", "mix_batch",
]
