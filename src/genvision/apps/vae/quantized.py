"""The VQ-VAE objective (``genvision train vqvae``).

Minimises ``-log p(x | z_q) + commitment * ||z_e - sg(z_q)||^2`` per image (see
``genvision.models.vqvae``); the codebook follows EMA updates inside the model's forward pass (no
gradient), restarts dead codes, and fits the per-position token prior used for sampling. Logged:
``recon``, ``commitment``, ``perplexity`` and ``usage`` (fraction of codes used per batch).
Dynamic binarisation applies as for the VAE (``binarize=auto``: Bernoulli likelihood, 1 channel).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from ...config import DataConfig, TrainConfig, check_optimizer, check_range
from ...errors import ConfigError
from ...models.vqvae import VQVAEConfig
from ...registry import create_model
from ...runtime import model_device
from ...training.objective import DataInfo, Objective, StepContext, eval_mode
from ...training.optim import fast_optimizer
from ...training.schedules import config_schedules
from .objective import BINARIZE, binarize_batch, uses_binarization


@dataclass
class VQVAEObjectiveConfig:
    binarize: str = "auto"  # auto (dynamic for bernoulli + 1 channel) | dynamic | none
    lr: float = 1e-3  # Adam learning rate (peak)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam betas
    lr_warmup_steps: int = 0  # linear lr warm-up steps
    schedule: str = "cosine"  # cosine (decay to min_lr_ratio * lr at train.steps) | constant
    min_lr_ratio: float = 0.05  # final lr as a fraction of lr (cosine only)

    def validate(self) -> None:
        if self.binarize not in BINARIZE:
            raise ConfigError(f"binarize must be one of {', '.join(BINARIZE)}, got {self.binarize!r}")
        check_optimizer("objective", self.lr, self.betas)
        check_range("objective.lr_warmup_steps", self.lr_warmup_steps, 0)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"vqvae schedule must be cosine or constant, got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class VQVAERecipe:
    model: VQVAEConfig = field(default_factory=VQVAEConfig)  # channels/image_size come from the data
    objective: VQVAEObjectiveConfig = field(default_factory=VQVAEObjectiveConfig)
    # No weight EMA: the codebook already is an EMA, and the saved weights are the evaluated ones.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, batch_size=128, ema=False, sample_every=1000, ckpt_every=1000, log_every=50))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))

    def validate(self) -> None:
        self.model.validate()
        self.objective.validate()


class VQVAEObjective(Objective):
    name = "vqvae"

    def __init__(self, model: nn.Module, config: VQVAEObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.conditional = False
        self.binarize = uses_binarization(config.binarize, model.config.likelihood, model.config.channels)
        self.total_steps = total_steps

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": fast_optimizer(torch.optim.Adam, self.model.parameters(), lr=self.config.lr,
                                        betas=tuple(self.config.betas))}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return config_schedules(self.optimizers(), self.config, self.total_steps, warmup="lr_warmup_steps")

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return binarize_batch(images) if self.binarize else images

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, _ = batch
        x = self.prepare(images)
        with ctx.autocast():
            out = self.model(x)
        ctx.update(out.loss, "model")
        return {"loss": out.loss.detach(), "recon": out.recon.detach().mean(),
                "commitment": out.commitment.detach().mean(), "perplexity": out.perplexity, "usage": out.usage}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """Samples from the per-position token prior (independent positions)."""
        if not network.prior_fitted:
            return None
        device = model_device(network)
        z = network.sample_latent(n, generator=torch.Generator().manual_seed(seed)).to(device)
        with eval_mode(network):
            return network.generate(z).float()


RECIPE = VQVAERecipe
DESCRIPTION = "VQ-VAE: EMA codebook, commitment loss, dead-code restarts, per-position token prior for sampling"


def build(recipe: VQVAERecipe, data: DataInfo) -> tuple[nn.Module, VQVAEObjective]:
    recipe.validate()
    recipe.model = dataclasses.replace(recipe.model, channels=data.channels, image_size=data.image_size)
    recipe.model.validate()
    model = create_model("vqvae", recipe.model)
    return model, VQVAEObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["RECIPE", "DESCRIPTION", "build", "VQVAERecipe", "VQVAEObjectiveConfig", "VQVAEObjective"]
