"""Super-resolution with a pixel loss: ``genvision train sr --data folder:HR_IMAGES arch=edsr scale=3``.

The network (``arch``: espcn | edsr, a registered model of kind "sr") maps LR patches to HR
patches; the loss is L1 (``mean |SR - HR|``, as EDSR: it converges to sharper results than L2
and is the usual choice since), optimised with Adam under a linear warm-up and a cosine decay to
``min_lr_ratio * lr`` at ``train.steps``.

Data: random aligned patches from a folder of HR images of any size (:class:`SRPatchDataset`:
LR made per whole image with the protocol's MATLAB bicubic, 8 flips/rotations); batches are
``(lr, hr)`` tuples in [0, 1], handed to the trainer in place of ``(images, labels)``.

``scale`` (top level) is the upscaling factor; ``model`` holds the arch's config fields (width,
depth, ...); ``data.patch_size`` is the HR patch side (a multiple of the scale).
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
)
from ...data.patches import PatchDataConfig
from ...errors import ConfigError, DataError
from ...nn.fake_quant import prepare_qat
from ...nn.resize import imresize
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer, trainable
from ...training.schedules import config_schedules
from .data import SRPatchDataset

ARCHS = ("espcn", "edsr")
DEFAULT_LR = {"espcn": 1e-3, "edsr": 4e-4}  # Adam peak learning rates that train stably at batch 16


@dataclass
class SRDataConfig(PatchDataConfig):
    patch_size: int = 96  # HR patch side; a multiple of the scale (the recipe checks), LR patches patch_size / scale


@dataclass
class SRObjectiveConfig:
    loss: str = "l1"  # l1 (EDSR) | l2 (MSE, as SRCNN/ESPCN)
    lr: float | None = None  # Adam peak lr; None = the arch's default (espcn 1e-3, edsr 4e-4)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 100  # linear warm-up
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.01  # final lr / peak lr (cosine)
    # quantization-aware training: the hidden convolutions see int8-rounded weights and inputs, as
    # genvision quantize's static int8 (7-bit weights, first and last convolution in float) will give them
    qat: bool = False

    def validate(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"sr loss must be l1 or l2, got {self.loss!r}")
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"sr schedule must be cosine or constant, got {self.schedule!r}")
        if self.warmup_steps < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError("warmup_steps must be >= 0 and min_lr_ratio in [0, 1]")


def check_sr_recipe(arch: str, scale: int, patch_size: int) -> None:
    """The checks every super-resolution recipe (sr, srgan) shares."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown sr arch {arch!r}; choose from {', '.join(ARCHS)}")
    if scale not in (2, 3, 4):
        raise ConfigError(f"scale must be 2, 3 or 4, got {scale}")
    if patch_size % scale:
        raise ConfigError(f"data.patch_size ({patch_size}) must be a multiple of scale ({scale})")


@dataclass
class SRRecipe:
    arch: str = "edsr"  # espcn | edsr
    scale: int = 3  # upscaling factor: 2, 3 or 4
    model: dict[str, Any] = field(default_factory=dict)  # the arch's config fields (width, depth, ...)
    objective: SRObjectiveConfig = field(default_factory=SRObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, batch_size=16, ema=True, ema_decay=0.999, sample_every=2000, ckpt_every=1000))
    data: SRDataConfig = field(default_factory=SRDataConfig)

    def validate(self) -> None:
        check_sr_recipe(self.arch, self.scale, self.data.patch_size)
        self.model_config()
        self.objective.validate()

    def model_config(self):
        """The ``model`` section as the arch's config dataclass, with this recipe's scale."""
        return arch_config(self.arch, self.model, self.scale)


def arch_config(arch: str, values: Any, scale: int):
    """The ``model`` section as ``arch``'s config dataclass, with the recipe's scale."""
    return arch_section(arch, values, "sr", {"scale": (scale, f"scale={scale}; set only scale=")})


def build_dataset(recipe):
    """The family's training data (``training.run`` uses it instead of the named datasets)."""
    recipe.validate()
    if not recipe.data.name.startswith("folder:"):
        raise DataError(f"sr training needs a folder of HR images: --data folder:PATH (got {recipe.data.name!r})")
    return SRPatchDataset(recipe.data.name[len("folder:"):], scale=recipe.scale, patch_size=recipe.data.patch_size,
                          repeat=recipe.data.repeat, augment=recipe.data.augment, limit=recipe.data.limit,
                          channels=recipe.data.channels or 3)


def make_adam(params, lr: float, betas, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    return fast_optimizer(torch.optim.Adam, trainable(params), lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    return F.l1_loss(sr, hr) if kind == "l1" else F.mse_loss(sr, hr)


class SRSampleMixin:
    """Sample grid: 3 fixed training patches, one per row: bicubic | model | HR (a 3x3 grid)."""
    _samples: tuple[torch.Tensor, torch.Tensor] | None = None

    def _remember(self, lr: torch.Tensor, hr: torch.Tensor) -> None:
        if self._samples is None:
            self._samples = (lr[:3].detach().float().cpu().contiguous(), hr[:3].detach().float().cpu().contiguous())

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        if self._samples is None:
            return None
        lr, hr = self._samples
        device = next((p.device for p in network.parameters()), torch.device("cpu"))
        sr = network(lr.to(device)).float().cpu().clamp(0, 1)
        bic = imresize(lr, self.scale).clamp(0, 1)
        rows = torch.stack([bic, sr, hr], dim=1).flatten(0, 1)  # (3n, C, H, W): bicubic, model, HR
        return rows * 2 - 1  # the trainer's grids are in [-1, 1]


class SRObjective(SRSampleMixin, Objective):
    """L1 (or L2) between the upscaled LR patch and the HR patch; one optimizer, ``"model"``."""
    name = "sr"

    def __init__(self, model: nn.Module, config: SRObjectiveConfig, data: DataInfo, *, arch: str, scale: int,
                 total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.scale, self.total_steps = scale, total_steps
        self.lr = config.lr or DEFAULT_LR[arch]
        if config.qat:
            prepare_qat(model, reduce_range=True, keep_ends=True)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": make_adam(self.model.parameters(), self.lr, cfg.betas, cfg.weight_decay)}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        lr, hr = batch  # (B, C, p, p), (B, C, s*p, s*p) in [0, 1]
        self._remember(lr, hr)
        with ctx.autocast():
            sr = self.model(lr)
        sr = sr.float()
        loss = pixel_loss(sr, hr, self.config.loss)
        ctx.update(loss, "model")
        with torch.no_grad():
            mse = F.mse_loss(sr.detach().clamp(0, 1), hr)
            psnr = -10.0 * torch.log10(mse.clamp_min(1e-10))  # RGB PSNR of the batch (training signal only)
        return {"loss": loss.detach(), "psnr_rgb": psnr}


RECIPE = SRRecipe
DESCRIPTION = "super-resolution (arch=espcn | edsr, scale=2|3|4): L1 on random HR patches, flips/rotations, cosine lr"


def build(recipe: SRRecipe, data: DataInfo) -> tuple[nn.Module, SRObjective]:
    recipe.validate()
    config = recipe.model_config()
    recipe.model = dataclasses.asdict(config)
    model = create_model(recipe.arch, config)
    return model, SRObjective(model, recipe.objective, data, arch=recipe.arch, scale=recipe.scale,
                              total_steps=recipe.train.steps)


__all__ = ["RECIPE", "DESCRIPTION", "build", "build_dataset", "ARCHS", "SRRecipe", "SRDataConfig",
           "SRObjectiveConfig", "SRObjective", "check_sr_recipe", "arch_config", "make_adam", "pixel_loss",
           "SRSampleMixin"]
