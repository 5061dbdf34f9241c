"""Denoising by residual learning: ``genvision train denoise --data folder:IMAGES [key=value ...]``.

Data: random clean patches (``data.patch_size``, 8 flips/rotations) from a folder of images of
any size (:class:`genvision.data.patches.RandomPatchDataset`), grey (``data.channels`` 1, the
default: BT.601 luma) or RGB (3). Each step adds white Gaussian noise to every patch, its
standard deviation drawn uniformly from ``objective.sigma`` (8-bit levels; the default
``[0, 55]`` is DnCNN-B's blind range, equal ends a fixed level as DnCNN-S), drawn from torch's
global RNG so a resumed run adds the same noise.

Loss: the network predicts the noise (:meth:`genvision.models.denoise.DnCNN.noise`) and the
loss compares it with the noise that was added: L2 (``mean (R(y) - v)^2``, the paper's) or L1.
Adam with a linear warm-up and a cosine decay to ``min_lr_ratio * lr`` at ``train.steps``.
Conditioned models (``model.conditioned=true``) see each patch's sigma as an input map.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config import (
    TrainConfig,
    check_optimizer,
    check_range,
)
from ...data.patches import CHANNELS_WHERE, PatchDataConfig, RandomPatchDataset, folder_patches
from ...errors import ConfigError
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer, trainable
from ...training.schedules import config_schedules

ARCHS = ("dncnn",)
MAX_SIGMA = 255.0  # 8-bit levels
SAMPLE_SIGMA = 25.0  # the noise level of the periodic sample grid


@dataclass
class DenoiseDataConfig(PatchDataConfig):
    patch_size: int = 48  # DnCNN: 40 for a known sigma, 50 blind


@dataclass
class DenoiseObjectiveConfig:
    sigma: tuple[float, float] = (0.0, 55.0)  # noise std range in 8-bit levels, uniform per patch; equal = fixed
    loss: str = "l2"  # l2 (DnCNN: MSE on the predicted noise) | l1
    lr: float = 1e-3  # Adam peak lr
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.01  # final lr / peak lr (cosine)

    def validate(self) -> None:
        low, high = self.sigma
        check_range("objective.sigma", low, 0.0, MAX_SIGMA)
        check_range("objective.sigma", high, 0.0, MAX_SIGMA)
        if low > high:
            raise ConfigError(f"objective.sigma must be [low, high] with low <= high, got {list(self.sigma)}")
        if high == 0:
            raise ConfigError("objective.sigma must allow some noise (its high end is 0)")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"objective.loss must be l1 or l2, got {self.loss!r}")
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"objective.schedule must be cosine or constant, got {self.schedule!r}")
        check_range("objective.warmup_steps", self.warmup_steps, 0)
        check_range("objective.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)


@dataclass
class DenoiseRecipe:
    arch: str = "dncnn"
    model: dict[str, Any] = field(default_factory=dict)  # the arch's config fields (depth, width, conditioned, ...)
    objective: DenoiseObjectiveConfig = field(default_factory=DenoiseObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, batch_size=32, ema=True, ema_decay=0.999, sample_every=2000, ckpt_every=1000))
    data: DenoiseDataConfig = field(default_factory=DenoiseDataConfig)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown denoise arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        self.model_config(self.data.channels or 1)
        self.objective.validate()

    def model_config(self, channels: int):
        """The ``model`` section as the arch's config dataclass, with the data's channels."""
        pinned = {"channels": (channels, CHANNELS_WHERE.format(channels))}
        return arch_section(self.arch, self.model, "denoise", pinned)


def build_dataset(recipe: DenoiseRecipe) -> RandomPatchDataset:
    """The family's training data: clean patches (``training.run`` uses it instead of the named datasets)."""
    recipe.validate()
    return folder_patches(recipe.data, "denoise", 1, "clean images")


def add_noise(clean: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``clean`` (B, C, H, W) in [0, 1] -> (noisy, noise, sigma (B,)), sigma uniform in [low, high]
    (fractions of the range), from torch's global RNG on ``clean``'s device."""
    b = clean.shape[0]
    sigma = low + (high - low) * torch.rand(b, device=clean.device, dtype=clean.dtype)
    noise = torch.randn_like(clean) * sigma.view(b, 1, 1, 1)
    return clean + noise, noise, sigma


class DenoiseObjective(Objective):
    """L2 (or L1) between the predicted and the added noise; one optimizer, ``"model"``."""
    name = "denoise"

    def __init__(self, model: nn.Module, config: DenoiseObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.total_steps = total_steps
        self.low, self.high = config.sigma[0] / 255.0, config.sigma[1] / 255.0
        self._samples: torch.Tensor | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": fast_optimizer(torch.optim.Adam, trainable(self.model.parameters()), lr=cfg.lr,
                                        betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        clean, _ = batch  # (B, C, p, p) in [0, 1]; labels are -1
        if self._samples is None:
            self._samples = clean[:3].detach().float().cpu().contiguous()
        noisy, noise, sigma = add_noise(clean, self.low, self.high)
        with ctx.autocast():
            predicted = self.model.noise(noisy, sigma if self.model.conditioned else None)
        predicted = predicted.float()
        loss = F.mse_loss(predicted, noise) if self.config.loss == "l2" else F.l1_loss(predicted, noise)
        ctx.update(loss, "model")
        with torch.no_grad():
            mse = F.mse_loss((noisy - predicted.detach()).clamp(0, 1), clean)
            psnr = -10.0 * torch.log10(mse.clamp_min(1e-10))  # of the batch, all noise levels (a training signal)
            noisy_psnr = -10.0 * torch.log10(F.mse_loss(noisy, clean).clamp_min(1e-10))
        return {"loss": loss.detach(), "psnr": psnr, "psnr_noisy": noisy_psnr}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """3 fixed training patches at sigma 25, one per row: noisy | denoised | clean."""
        if self._samples is None:
            return None
        clean = self._samples
        generator = torch.Generator().manual_seed(seed)
        noisy = clean + torch.randn(clean.shape, generator=generator) * (SAMPLE_SIGMA / 255.0)
        device = next((p.device for p in network.parameters()), torch.device("cpu"))
        sigma = torch.full((clean.shape[0],), SAMPLE_SIGMA / 255.0, device=device)
        out = network(noisy.to(device), sigma if network.conditioned else None).float().cpu()
        rows = torch.stack([noisy.clamp(0, 1), out.clamp(0, 1), clean], dim=1).flatten(0, 1)  # (3n, C, p, p)
        return rows * 2 - 1  # the trainer's grids are in [-1, 1]


RECIPE = DenoiseRecipe
DESCRIPTION = ("denoising (arch=dncnn, blind or model.conditioned=true): L2 on the predicted noise of random "
               "patches with Gaussian noise of sigma in objective.sigma (8-bit levels)")


def build(recipe: DenoiseRecipe, data: DataInfo) -> tuple[nn.Module, DenoiseObjective]:
    recipe.validate()
    config = recipe.model_config(data.channels)
    recipe.model = dataclasses.asdict(config)
    model = create_model(recipe.arch, config)
    return model, DenoiseObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = [
    "ARCHS",
    "DESCRIPTION",
    "RECIPE",
    "DenoiseDataConfig",
    "DenoiseObjective",
    "DenoiseObjectiveConfig",
    "DenoiseRecipe",
    "add_noise",
    "build",
    "build_dataset",
]
