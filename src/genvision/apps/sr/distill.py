"""Distillation: a small super-resolution network learns from a large one (``genvision train sr-distill``).

    genvision train sr-distill --data folder:HR_IMAGES teacher=runs/<edsr-run> arch=espcn [objective.alpha=0.5]
    genvision train sr-distill --data folder:HR_IMAGES teacher=runs/<edsr-run> init=<smaller model dir>

The student (``arch`` and ``model``, or the model directory ``init``: a smaller or pruned network to
fine-tune) sees the same random LR/HR patches as ``train sr`` and minimises

    (1 - alpha) * L1(student(lr), hr)  +  alpha * L1(student(lr), teacher(lr))

with the teacher frozen in eval mode (its EMA weights). The teacher's output is a smoother target than
the HR patch (Hinton et al.'s "dark knowledge" for regression; as in the SR distillation literature,
e.g. Gao et al. 2018, the student imitates the teacher's output): ``alpha`` 0 is plain training, 1 pure
imitation. The scale is the teacher's. Only the student is saved: the run directory holds an ordinary
sr model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import load_pretrained
from ...config import TrainConfig, check_path, check_range
from ...errors import ConfigError, GenvisionError
from ...registry import create_model
from ...training.objective import DataInfo
from .objective import ARCHS, SRDataConfig, SRObjective, SRObjectiveConfig, arch_config, check_sr_recipe, pixel_loss
from .objective import build_dataset as sr_patches


@dataclass
class DistillObjectiveConfig(SRObjectiveConfig):
    alpha: float = 0.5  # weight of the teacher's output as the target; 1 - alpha on the HR patch

    def validate(self) -> None:
        super().validate()
        check_range("objective.alpha", self.alpha, 0.0, 1.0)


@dataclass
class DistillRecipe:
    teacher: str = ""  # the sr run / model directory to learn from (required)
    init: str | None = None  # a model directory the student starts from (its arch and config are taken)
    arch: str = "espcn"  # the student's arch when there is no init: espcn | edsr
    scale: int | None = None  # the teacher's; a value given here must agree with it
    model: dict[str, Any] = field(default_factory=dict)  # the student's config fields
    objective: DistillObjectiveConfig = field(default_factory=DistillObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, batch_size=16, ema=True, ema_decay=0.999, sample_every=2000, ckpt_every=1000))
    data: SRDataConfig = field(default_factory=SRDataConfig)

    def validate(self) -> None:
        # teacher is required, but by build (a default recipe must validate): see _load
        for key in ("init", "teacher"):
            path = getattr(self, key)
            if path:
                check_path(key, path)
                if not Path(path).exists():
                    raise ConfigError(f"{key}: model not found: {path}")
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown sr arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        if self.scale is not None:
            check_sr_recipe(self.arch, self.scale, self.data.patch_size)
        self.objective.validate()


def _load(recipe_key: str, path: str) -> nn.Module:
    if not path:
        raise ConfigError(f"sr-distill needs {recipe_key}=RUN_OR_MODEL_DIR (the network to learn from)")
    try:
        return load_pretrained(path, kind="sr", use_ema=True)
    except GenvisionError as exc:  # name the recipe key: "model not found: X" alone does not say where X came from
        raise type(exc)(f"{recipe_key}: {exc}") from None


class DistillObjective(SRObjective):
    """SRObjective's L1 on the HR patch, mixed with L1 on the frozen teacher's output."""

    name = "sr-distill"

    def __init__(self, model: nn.Module, teacher: nn.Module, config: DistillObjectiveConfig, data: DataInfo, *,
                 arch: str, scale: int, total_steps: int):
        super().__init__(model, config, data, arch=arch, scale=scale, total_steps=total_steps)
        self.teacher = teacher.eval().requires_grad_(False)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx) -> dict[str, torch.Tensor]:
        lr, hr = batch  # (B, C, p, p), (B, C, s*p, s*p) in [0, 1]
        self._remember(lr, hr)
        if next(self.teacher.parameters()).device != lr.device:
            self.teacher.to(lr.device)
        with torch.no_grad():
            target = self.teacher(lr).float()
        with ctx.autocast():
            sr = self.model(lr)
        sr = sr.float()
        alpha = self.config.alpha
        hr_loss, teacher_loss = pixel_loss(sr, hr, self.config.loss), pixel_loss(sr, target, self.config.loss)
        loss = (1 - alpha) * hr_loss + alpha * teacher_loss
        ctx.update(loss, "model")
        with torch.no_grad():
            psnr = -10.0 * torch.log10(F.mse_loss(sr.detach().clamp(0, 1), hr).clamp_min(1e-10))
            teacher_psnr = -10.0 * torch.log10(F.mse_loss(target.clamp(0, 1), hr).clamp_min(1e-10))
        return {"loss": loss.detach(), "loss_hr": hr_loss.detach(), "loss_teacher": teacher_loss.detach(),
                "psnr_rgb": psnr, "teacher_psnr_rgb": teacher_psnr}


def _teacher_scale(recipe: DistillRecipe, teacher: nn.Module) -> int:
    if recipe.scale is not None and recipe.scale != teacher.scale:
        raise ConfigError(f"scale={recipe.scale} contradicts the teacher, a x{teacher.scale} model; leave scale unset")
    return teacher.scale


def build_dataset(recipe: DistillRecipe):
    """The sr family's patches at the teacher's scale."""
    recipe.validate()
    recipe.scale = _teacher_scale(recipe, _load("teacher", recipe.teacher))
    check_sr_recipe(recipe.arch, recipe.scale, recipe.data.patch_size)
    return sr_patches(recipe)


RECIPE = DistillRecipe
DESCRIPTION = ("super-resolution distillation (teacher=RUN, student arch=espcn|edsr or init=MODEL): "
               "(1 - alpha) L1 to HR + alpha L1 to the frozen teacher's output")


def build(recipe: DistillRecipe, data: DataInfo) -> tuple[nn.Module, DistillObjective]:
    recipe.validate()
    teacher = _load("teacher", recipe.teacher)
    recipe.scale = _teacher_scale(recipe, teacher)
    check_sr_recipe(recipe.arch, recipe.scale, recipe.data.patch_size)
    if recipe.init:
        student = _load("init", recipe.init)
        if student.scale != teacher.scale:
            raise ConfigError(f"init is a x{student.scale} model but the teacher is x{teacher.scale}")
        if student.registry_name not in ARCHS:
            raise ConfigError(f"init must hold an espcn or edsr model, got {student.registry_name}")
        recipe.arch, recipe.model = student.registry_name, dataclasses.asdict(student.config)
        model = create_model(recipe.arch, student.config)
        model.load_state_dict(student.state_dict())
    else:
        config = arch_config(recipe.arch, recipe.model, recipe.scale)
        recipe.model = dataclasses.asdict(config)
        model = create_model(recipe.arch, config)
    if model.config.channels != teacher.config.channels:
        raise ConfigError(f"the student has {model.config.channels} channels, the teacher {teacher.config.channels}")
    return model, DistillObjective(model, teacher, recipe.objective, data, arch=recipe.arch, scale=recipe.scale,
                                   total_steps=recipe.train.steps)


__all__ = ["DESCRIPTION", "RECIPE", "DistillObjective", "DistillObjectiveConfig", "DistillRecipe", "build",
           "build_dataset"]
