"""Training a learned codec: ``genvision train codec --data folder:IMAGES objective.lmbda=0.0067 [arch=...]``.

Data: random RGB patches (``data.patch_size``, 8 flips/rotations) from a folder of images of any size.

Loss (Ballé et al.; CompressAI's convention): ``R + lambda * 255^2 * D`` per image, with ``R`` the
estimated bits per pixel of every coded latent under the entropy model (rounding replaced by
uniform noise while training) and ``D`` the MSE on [0, 1] pixels. ``lmbda`` sets the operating
point: CompressAI's ladder for MSE is 0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800
(about 0.1 to 1.5 bits per pixel). Adam on the transforms and densities with a warm-up and a cosine
decay; a second Adam ("aux", constant lr) fits each factorized density's quantiles, the range its
coder's tables must cover (its loss touches nothing else).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ...config import TrainConfig, check_optimizer, check_range
from ...data.patches import CHANNELS_WHERE, PatchDataConfig, RandomPatchDataset, folder_patches
from ...errors import ConfigError
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer
from ...training.schedules import config_schedules

ARCHS = ("codec-hyperprior", "codec-factorized")
MAX_LAMBDA = 10.0


@dataclass
class CodecDataConfig(PatchDataConfig):
    patch_size: int = 128  # CompressAI trains on 256; 128 keeps a CPU step short (a multiple of 64)


@dataclass
class CodecObjectiveConfig:
    lmbda: float = 0.0067  # rate-distortion trade-off: larger = more bits, higher PSNR
    lr: float = 1e-4  # Adam peak lr for the transforms and densities (CompressAI's)
    aux_lr: float = 1e-3  # Adam lr for the densities' quantiles
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        check_range("objective.lmbda", self.lmbda, 1e-6, MAX_LAMBDA)
        check_optimizer("objective", self.lr, self.betas, 0.0)
        check_optimizer("objective", self.aux_lr, self.betas, 0.0)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"objective.schedule must be cosine or constant, got {self.schedule!r}")
        check_range("objective.warmup_steps", self.warmup_steps, 0)
        check_range("objective.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)


@dataclass
class CodecRecipe:
    arch: str = "codec-hyperprior"
    model: dict[str, Any] = field(default_factory=dict)  # the arch's config fields (width, latent_channels)
    objective: CodecObjectiveConfig = field(default_factory=CodecObjectiveConfig)
    # No EMA: the coder's tables are refreshed from the weights that are saved, and averaging the
    # densities' quantiles with the transforms brings nothing the cosine decay does not.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=20_000, batch_size=8, ema=False, sample_every=2000, ckpt_every=1000))
    data: CodecDataConfig = field(default_factory=CodecDataConfig)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown codec arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        self.model_config(self.data.channels or 3)
        self.objective.validate()

    def model_config(self, channels: int):
        pinned = {"channels": (channels, CHANNELS_WHERE.format(channels))}
        return arch_section(self.arch, self.model, "codec", pinned)


def build_dataset(recipe: CodecRecipe) -> RandomPatchDataset:
    """The family's training data: RGB patches (``training.run`` uses it instead of the named datasets)."""
    recipe.validate()
    return folder_patches(recipe.data, "codec", 3, "images")


class CodecObjective(Objective):
    """``bpp + lmbda * 255^2 * MSE`` on the transforms and densities ("model"); the quantile loss ("aux")."""

    name = "codec"

    def __init__(self, model: nn.Module, config: CodecObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.total_steps = total_steps
        self._samples: torch.Tensor | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": fast_optimizer(torch.optim.Adam, self.model.main_parameters(), lr=cfg.lr,
                                        betas=tuple(cfg.betas)),
                "aux": fast_optimizer(torch.optim.Adam, self.model.aux_parameters(), lr=cfg.aux_lr,
                                      betas=tuple(cfg.betas))}

    def lr_schedulers(self):
        return config_schedules({"model": self.optimizers()["model"]}, self.config, self.total_steps)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, _ = batch  # (B, C, p, p) in [0, 1]; labels are -1
        if self._samples is None:
            self._samples = images[:4].detach().float().cpu().contiguous()
        with ctx.autocast():
            out = self.model(images, rd_lambda=self.config.lmbda)
        loss = out.loss.float().mean()
        ctx.update(loss, "model")
        aux = self.model.aux_loss()
        ctx.update(aux, "aux")
        with torch.no_grad():
            psnr = -10.0 * torch.log10(out.mse.detach().float().mean().clamp_min(1e-10))
        return {"loss": loss.detach(), "bpp": out.bpp.detach().float().mean(), "psnr": psnr, "aux": aux.detach()}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """4 fixed training patches, one per row: original | decoded from the bitstream."""
        if self._samples is None:
            return None
        device = next(network.parameters()).device
        was_training = network.training
        network.eval()
        try:
            decoded = network.reconstruct(self._samples.to(device)).float().cpu()
        finally:
            network.train(was_training)
        rows = torch.stack([self._samples, decoded], dim=1).flatten(0, 1)  # (2n, C, p, p): original, decoded
        return rows * 2 - 1  # the trainer's grids are in [-1, 1]


RECIPE = CodecRecipe
DESCRIPTION = ("learned image codec (arch=codec-hyperprior | codec-factorized): bpp + lmbda * 255^2 * MSE on "
               "random RGB patches; genvision compress / decompress write and read its bitstream")


def build(recipe: CodecRecipe, data: DataInfo) -> tuple[nn.Module, CodecObjective]:
    recipe.validate()
    config = recipe.model_config(data.channels)
    recipe.model = dataclasses.asdict(config)
    model = create_model(recipe.arch, config)
    return model, CodecObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["ARCHS", "DESCRIPTION", "RECIPE", "CodecDataConfig", "CodecObjective", "CodecObjectiveConfig",
           "CodecRecipe", "build", "build_dataset"]
