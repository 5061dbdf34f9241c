"""Learned inpainting: ``genvision train inpaint --data folder:PHOTOS [key=value ...]``.

Data: random RGB patches (``data.patch_size``, 8 flips/rotations) from a folder of photos of any
size (:class:`genvision.data.patches.RandomPatchDataset`). Every patch gets its own hole, drawn
like the masks of ``genvision inpaint --random-mask`` (:func:`genvision.ops.masks.random_mask`:
free-form strokes and boxes, DeepFill v2 / LaMa style) on a canvas ``1..objective.mask_zoom``
times the patch side and cropped to the patch, so strokes and boxes come at the widths a whole
photo has (a 512 px photo's strokes are 10-45 px wide, far wider than on a 128 px canvas). The
crop's hole fraction is kept in ``objective.hole`` (redrawn otherwise). Mask seeds come from
torch's global RNG, which the trainer checkpoints, so a resumed run sees the same holes.

Losses, LaMa's recipe (Suvorov et al. 2022) reweighted towards fidelity (the benchmark scores
PSNR inside the hole):

    fill  = image * (1 - m) + G(image * (1 - m), m) * m
    L_D   = E[softplus(-D(image))] + E_patches[m' softplus(D(fill)) + (1 - m') softplus(-D(fill))]
    L_G   = w_hole * |G - image|_1 over the hole + w_known * |G - image|_1 over known pixels
          + w_feat * sum_l |D_l(fill) - D_l(image)|_1 + w_adv * E_patches[m' softplus(-D(fill))]

``m'`` is the mask pooled to D's patch grid: as in LaMa, only patches that hold hole pixels are
"fake" (the known part of ``fill`` *is* the real image; calling it fake would teach D nonsense).
Adam with a linear warm-up and a cosine decay for both networks. ``objective.adversarial_weight
= 0`` (and ``feature_weight = 0``) trains with the L1 losses alone and skips D entirely.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...config import (
    MAX_LOSS_WEIGHT,
    TrainConfig,
    check_optimizer,
    check_range,
)
from ...data.patches import (
    CHANNELS_WHERE,
    PatchDataConfig,
    RandomPatchDataset,
    folder_patches,
)
from ...errors import ConfigError
from ...ops.masks import random_mask
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer, trainable
from ...training.schedules import config_schedules

ARCHS = ("lama",)
MAX_MASK_ZOOM = 8.0
_MASK_TRIES = 8  # redraws before a crop outside the hole range is taken as it is (rare)


@dataclass
class InpaintDataConfig(PatchDataConfig):
    channels: int | None = 3
    patch_size: int = 128


@dataclass
class InpaintObjectiveConfig:
    hole: tuple[float, float] = (0.05, 0.5)  # hole fraction of each training patch
    mask_zoom: float = 3.0  # masks drawn on a canvas of 1..mask_zoom x the patch side, then cropped
    hole_weight: float = 1.0  # w_hole: L1 inside the hole (mean over hole pixels)
    known_weight: float = 0.1  # w_known: L1 of the raw output on known pixels (keeps G's input identity)
    feature_weight: float = 0.03  # w_feat: feature matching on D's stages
    adversarial_weight: float = 0.003  # w_adv: non-saturating GAN loss on hole patches
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.01

    def validate(self) -> None:
        low, high = self.hole
        check_range("objective.hole", low, 0.0, 1.0, low_open=True, high_open=True)
        check_range("objective.hole", high, 0.0, 1.0, low_open=True, high_open=True)
        if low > high:
            raise ConfigError(f"objective.hole must be [low, high] with low <= high, got {list(self.hole)}")
        check_range("objective.mask_zoom", self.mask_zoom, 1.0, MAX_MASK_ZOOM)
        for name in ("hole_weight", "known_weight", "feature_weight", "adversarial_weight"):
            check_range(f"objective.{name}", getattr(self, name), 0.0, MAX_LOSS_WEIGHT)
        if self.hole_weight == 0 and self.adversarial_weight == 0:
            raise ConfigError("objective.hole_weight and adversarial_weight are both 0: nothing teaches the fill")
        check_optimizer("objective", self.lr_g, self.betas, lr_name="lr_g")
        check_optimizer("objective", self.lr_d, lr_name="lr_d")
        check_range("objective.warmup_steps", self.warmup_steps, 0)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"objective.schedule must be cosine or constant, got {self.schedule!r}")
        check_range("objective.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)

    @property
    def adversarial(self) -> bool:
        return self.adversarial_weight > 0 or self.feature_weight > 0


@dataclass
class InpaintRecipe:
    arch: str = "lama"
    model: dict[str, Any] = field(default_factory=dict)  # the arch's config fields (width, blocks, ...)
    objective: InpaintObjectiveConfig = field(default_factory=InpaintObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=4000, batch_size=8, ema=True, ema_decay=0.999, sample_every=500, ckpt_every=500))
    data: InpaintDataConfig = field(default_factory=InpaintDataConfig)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown inpaint arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        self.model_config(self.data.channels or 3)
        self.objective.validate()

    def model_config(self, channels: int):
        pinned = {"channels": (channels, CHANNELS_WHERE.format(channels))}
        return arch_section(self.arch, self.model, "inpaint", pinned)


def build_dataset(recipe: InpaintRecipe) -> RandomPatchDataset:
    """Clean photo patches; the objective cuts the holes."""
    recipe.validate()
    return folder_patches(recipe.data, "inpaint", 3, "photos")


def training_masks(batch: int, size: int, hole: tuple[float, float], zoom: float) -> torch.Tensor:
    """``batch`` hole masks ``(B, 1, size, size)`` float {0, 1}, seeded from torch's global RNG.

    Each is a :func:`random_mask` on a ``size * U(1, zoom)`` canvas (hole fraction in ``hole``)
    cropped at a random place; a crop whose fraction falls outside ``hole`` is redrawn."""
    low, high = hole
    masks = np.zeros((batch, size, size), dtype=bool)
    for i in range(batch):
        for _ in range(_MASK_TRIES):
            seed, canvas_draw, y_draw, x_draw = torch.randint(0, 2**31 - 1, (4,)).tolist()
            canvas = size + int(canvas_draw % (int(size * (zoom - 1)) + 1))
            drawn = random_mask((canvas, canvas), area=(low, high), seed=seed)
            y, x = y_draw % (canvas - size + 1), x_draw % (canvas - size + 1)
            masks[i] = drawn[y:y + size, x:x + size]
            if low <= masks[i].mean() <= high:
                break
    return torch.from_numpy(masks).unsqueeze(1).float()  # (B, 1, size, size)


def _masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over the pixels ``weight`` (B, 1, H, W) selects (all channels)."""
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1]).clamp_min(1.0)


class InpaintObjective(Objective):
    """L1 in and around the hole, plus (optionally) a PatchGAN's adversarial and feature-matching
    losses; optimizers ``"generator"`` and ``"discriminator"``."""
    name = "inpaint"

    def __init__(self, model: nn.Module, config: InpaintObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.total_steps = total_steps
        self._samples: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        optimizers = {"generator": fast_optimizer(torch.optim.Adam, trainable(self.model.generator.parameters()),
                                                  lr=cfg.lr_g, betas=tuple(cfg.betas))}
        if cfg.adversarial:
            optimizers["discriminator"] = fast_optimizer(
                torch.optim.Adam, trainable(self.model.discriminator.parameters()), lr=cfg.lr_d,
                betas=tuple(cfg.betas))
        return optimizers

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def ema_target(self) -> nn.Module:
        return self.model.generator

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        image, _ = batch  # (B, C, p, p) in [0, 1]; labels are -1
        cfg = self.config
        mask = training_masks(image.shape[0], image.shape[-1], tuple(cfg.hole), cfg.mask_zoom).to(image.device)
        if self._samples is None:
            self._samples = (image[:4].detach().float().cpu().contiguous(), mask[:4].cpu())
        g, d = self.model.generator, self.model.discriminator
        with ctx.autocast():
            raw = g.predict(image, mask)
        raw = raw.float()
        fill = image * (1 - mask) + raw * mask
        logs = {}
        if cfg.adversarial:
            real_logits, fake_logits = d(image), d(fill.detach())  # (B, 1, h, w) each
            fake_patches = F.adaptive_max_pool2d(mask, real_logits.shape[-2:])  # (B, 1, h, w): 1 = holds hole
            d_loss = F.softplus(-real_logits).mean() + (
                fake_patches * F.softplus(fake_logits) + (1 - fake_patches) * F.softplus(-fake_logits)).mean()
            ctx.update(d_loss, "discriminator")
            logs["loss_d"] = d_loss.detach()
        hole_l1 = _masked_l1(raw, image, mask)
        known_l1 = _masked_l1(raw, image, 1 - mask)
        g_loss = cfg.hole_weight * hole_l1 + cfg.known_weight * known_l1
        if cfg.adversarial:
            d.requires_grad_(False)  # G's step sends no gradients into D's weights
            try:
                with torch.no_grad():
                    targets = d.features(image)
                features = d.features(fill)
                feat = sum(F.l1_loss(f, t) for f, t in zip(features, targets)) / len(targets)
                adv = (fake_patches * F.softplus(-d.logits(features))).sum() / fake_patches.sum().clamp_min(1.0)
            finally:
                d.requires_grad_(True)
            g_loss = g_loss + cfg.feature_weight * feat + cfg.adversarial_weight * adv
            logs.update(loss_feature=feat.detach(), loss_adv=adv.detach())
        ctx.update(g_loss, "generator")
        with torch.no_grad():
            hole_mse = ((fill - image) ** 2 * mask).sum() / (mask.sum() * image.shape[1]).clamp_min(1.0)
            psnr = -10.0 * torch.log10(hole_mse.clamp_min(1e-10))
        return {"loss_g": g_loss.detach(), "loss_hole": hole_l1.detach(), "loss_known": known_l1.detach(),
                "psnr_hole": psnr, **logs}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """4 fixed training patches, one per row: masked (hole grey) | filled | original."""
        if self._samples is None:
            return None
        image, mask = self._samples
        device = next((p.device for p in network.parameters()), torch.device("cpu"))
        fill = network(image.to(device), mask.to(device)).float().cpu()
        masked = image * (1 - mask) + 0.5 * mask
        rows = torch.stack([masked, fill.clamp(0, 1), image], dim=1).flatten(0, 1)  # (3n, C, p, p)
        return rows * 2 - 1  # the trainer's grids are in [-1, 1]


RECIPE = InpaintRecipe
DESCRIPTION = ("inpainting (arch=lama: FFC generator + PatchGAN): random free-form strokes and boxes over photo "
               "patches; L1 in the hole + feature matching + adversarial")


def build(recipe: InpaintRecipe, data: DataInfo) -> tuple[nn.Module, InpaintObjective]:
    recipe.validate()
    config = recipe.model_config(data.channels)
    recipe.model = dataclasses.asdict(config)
    model = create_model(recipe.arch, config)
    return model, InpaintObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["ARCHS", "DESCRIPTION", "RECIPE", "InpaintDataConfig", "InpaintObjective", "InpaintObjectiveConfig",
           "InpaintRecipe", "build", "build_dataset", "training_masks"]
