"""Flow matching with straight paths (rectified flow; Liu et al. 2023, Lipman et al. 2023) for the DiT.

Convention (the one used everywhere in genvision): **t = 0 is noise, t = 1 is data**.

    x0 ~ N(0, I)                       noise
    x1 = a training image in [-1, 1]    data
    x_t = (1 - t) x0 + t x1            the straight path between them
    v*  = d x_t / dt = x1 - x0         the velocity target

The network v(x_t, t, y) is trained with the mean squared error ``E ||v(x_t, t, y) - v*||^2``
(averaged over pixels), t drawn uniformly in [0, 1] (or from a logit-normal, which puts more
weight on the middle of the path; Esser et al. 2024). Sampling integrates dx/dt = v from a
noise sample at t = 0 to t = 1 (``genvision.models.dit``).

Classifier-free guidance (Ho & Salimans 2022): with probability ``label_dropout`` a label is
replaced by the null class (index ``num_classes``), so the same network also learns the
unconditional field used by guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...config import DataConfig, TrainConfig, check_optimizer
from ...errors import ConfigError
from ...models.dit import DiTConfig
from ..objective import DataInfo, Objective, StepContext, check_class_count, fit_config_to_data
from ..optim import fast_optimizer
from .classify import lr_factor

TIME_SAMPLINGS = ("uniform", "logit-normal")


@dataclass
class FlowObjectiveConfig:
    lr: float = 3e-4  # AdamW peak learning rate, reached at the end of the warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay on weight matrices
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    warmup_steps: int = 200  # linear warm-up; then constant (EMA does the averaging)
    label_dropout: float = 0.1  # probability of replacing a label by the null class (CFG training)
    time_sampling: str = "uniform"  # uniform | logit-normal (sigmoid of N(0, 1): more weight mid-path)

    def validate(self) -> None:
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ConfigError(f"label_dropout must be in [0, 1], got {self.label_dropout}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ConfigError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {self.time_sampling!r}")


# --------------------------------------------------------------------------------------
# The math (pure functions)


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t x1 for per-sample t (B,)."""
    t = t.view(-1, *[1] * (x0.ndim - 1))  # (B, 1, 1, 1)
    return (1 - t) * x0 + t * x1


def flow_matching_loss(model: nn.Module, x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
    """mean over batch and pixels of (v(x_t, t, y) - (x1 - x0))^2."""
    pred = model(interpolate(x0, x1, t), t, labels)  # (B, C, H, W)
    return F.mse_loss(pred.float(), (x1 - x0).float())


def drop_labels(labels: torch.Tensor, p: float, null_class: int) -> torch.Tensor:
    """Each label replaced by ``null_class`` with probability p (torch's global RNG)."""
    if p <= 0:
        return labels
    drop = torch.rand(labels.shape, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def sample_times(n: int, how: str, device) -> torch.Tensor:
    if how == "logit-normal":
        return torch.sigmoid(torch.randn(n, device=device))
    return torch.rand(n, device=device)


# --------------------------------------------------------------------------------------
# The recipe


fit_model_config_to_data = fit_config_to_data


@dataclass
class FlowRecipe:
    model: DiTConfig = field(default_factory=DiTConfig)  # channels/image_size/num_classes come from the data
    objective: FlowObjectiveConfig = field(default_factory=FlowObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=128, ema_decay=0.9999,
                                                                   grad_clip=1.0, sample_every=1000,
                                                                   ckpt_every=1000))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))
    conditional: bool = True  # class-conditional DiT with label dropout (needs a labelled dataset)

    def validate(self) -> None:
        self.model.validate()
        self.objective.validate()


# --------------------------------------------------------------------------------------
# The objective


class FlowObjective(Objective):
    """One AdamW update of the DiT on the flow-matching loss per step."""

    name = "flow"

    def __init__(self, model: nn.Module, config: FlowObjectiveConfig, data: DataInfo, *, total_steps: int = 1):
        super().__init__(model, config, data)
        config.validate()
        self.conditional = model.config.num_classes > 0
        check_class_count(model, data)
        self.total_steps = total_steps
        self._optimizer: torch.optim.Optimizer | None = None
        self._labels_checked = False

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self._optimizer is None:
            cfg = self.config
            decay = [p for p in self.model.parameters() if p.ndim >= 2]
            no_decay = [p for p in self.model.parameters() if p.ndim < 2]
            groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
            self._optimizer = fast_optimizer(torch.optim.AdamW, groups, lr=cfg.lr, betas=cfg.betas)
        return {"model": self._optimizer}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        warmup = self.config.warmup_steps

        def factor(step: int) -> float:  # a plain function: the scheduler state stays weights_only-loadable
            return lr_factor(step, total_steps=self.total_steps, warmup_steps=warmup, schedule="constant")

        return {"model": torch.optim.lr_scheduler.LambdaLR(self.optimizers()["model"], factor)}

    def _check_labels(self, labels: torch.Tensor) -> None:
        if self.conditional and not self._labels_checked:
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.data.num_classes):
                raise ConfigError("the model is class-conditional but the batch has no labels (label -1)")
            self._labels_checked = True

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        x1, labels = batch
        self._check_labels(labels)
        x1 = x1.contiguous()
        x0 = torch.randn_like(x1)  # noise end of the path
        t = sample_times(x1.shape[0], self.config.time_sampling, x1.device)  # (B,)
        y = drop_labels(labels, self.config.label_dropout, self.model.null_class) if self.conditional else None
        with ctx.autocast():
            loss = flow_matching_loss(self.model, x1, x0, t, y)
        ctx.update(loss, "model")
        return {"loss": loss.detach()}

    def ema_target(self) -> nn.Module:
        return self.model

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        z = network.sample_latent(n, generator=generator)
        labels = None
        if self.conditional:
            labels = torch.arange(n, device=z.device) % network.config.num_classes
        return network.generate(z, labels, progress=False)


# --------------------------------------------------------------------------------------
# The family entry point used by ``genvision train dit``

RECIPE = FlowRecipe
DESCRIPTION = "diffusion transformer (DiT, adaLN-Zero) trained with flow matching; class-conditional with CFG"


def build(recipe: FlowRecipe, data: DataInfo) -> tuple[nn.Module, FlowObjective]:
    from ...registry import create_model

    recipe.validate()
    recipe.model = fit_model_config_to_data(recipe.model, data, recipe.conditional)
    model = create_model("dit", recipe.model)
    return model, FlowObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["RECIPE", "DESCRIPTION", "build", "FlowRecipe", "FlowObjective", "FlowObjectiveConfig",
           "flow_matching_loss", "interpolate", "drop_labels", "sample_times", "TIME_SAMPLINGS"]
