"""The beta-VAE bound as a training objective (``genvision train vae``; ``cvae`` in cvae.py).

We minimise ``loss = -ELBO_beta = recon + beta_t * KL`` per image in nats (see
``genvision.models.vae``), where ``beta_t`` is the KL warm-up (Bowman et al. 2016; Sønderby
et al. 2016): ``beta_t = beta * min(1, (step + 1) / kl_warmup_steps)``, linear from ~0 to beta.

Dynamic binarisation (``binarize``): every batch is re-sampled as x_bin ~ Bernoulli((x + 1) / 2)
(then mapped back to {-1, 1}); the usual protocol for "dynamically binarised MNIST" likelihoods.
``auto`` binarises when the likelihood is Bernoulli and the data has one channel.

Optimisation: Adam or Adamax, a linear lr warm-up over ``lr_warmup_steps`` then a cosine decay to
``min_lr_ratio * lr`` at ``train.steps`` (``schedule=cosine``) or a constant lr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ...config import MAX_LOSS_WEIGHT, DataConfig, TrainConfig, check_optimizer, check_range
from ...errors import ConfigError
from ...models.vae import VAEConfig
from ...registry import create_model
from ...runtime import model_device
from ...training.objective import DataInfo, Objective, StepContext, check_class_count, eval_mode, fit_config_to_data
from ...training.optim import fast_optimizer
from ...training.schedules import SCHEDULES, config_schedules

BINARIZE = ("auto", "dynamic", "none")
OPTIMIZERS = ("adam", "adamax")


@dataclass
class VAEObjectiveConfig:
    beta: float = 1.0  # weight of the KL term; 1 = the plain VAE (the ELBO), > 1 = beta-VAE (disentangling)
    kl_warmup_steps: int = 0  # linear KL warm-up from ~0 to beta over this many steps (0 = off)
    free_bits: float = 0.0  # nats per latent dimension below which the KL is not penalised (0 = off)
    binarize: str = "auto"  # auto (dynamic for bernoulli + 1 channel) | dynamic | none
    optimizer: str = "adam"  # adam | adamax
    lr: float = 1e-3  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.999)  # Adam(ax) betas
    weight_decay: float = 0.0  # L2 (coupled, as in Adam) — usually 0 for VAEs
    lr_warmup_steps: int = 0  # linear lr warm-up steps
    schedule: str = "cosine"  # cosine (decay to min_lr_ratio * lr at train.steps) | constant
    min_lr_ratio: float = 0.05  # final lr as a fraction of lr (cosine only)

    def validate(self) -> None:
        check_range("objective.beta", self.beta, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.kl_warmup_steps", self.kl_warmup_steps, 0)
        check_range("objective.lr_warmup_steps", self.lr_warmup_steps, 0)
        check_range("objective.free_bits", self.free_bits, 0.0, 100.0)  # nats per latent dimension
        if self.binarize not in BINARIZE:
            raise ConfigError(f"binarize must be one of {', '.join(BINARIZE)}, got {self.binarize!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"vae optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"vae schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """beta_t for the update made at ``step`` (0-based): linear warm-up, then beta."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, (step + 1) / warmup_steps)


def binarize_batch(x: torch.Tensor) -> torch.Tensor:
    """Dynamic binarisation: Bernoulli((x + 1) / 2) in {-1, 1}, drawn from torch's global RNG
    (checkpointed, so a resumed run draws the same bits)."""
    return torch.bernoulli((x + 1.0) * 0.5) * 2.0 - 1.0


def uses_binarization(binarize: str, likelihood: str, channels: int) -> bool:
    if binarize == "auto":
        return likelihood == "bernoulli" and channels == 1
    return binarize == "dynamic"


def binarize_fixed(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Bernoulli((x + 1) / 2) in {-1, 1} drawn from ``generator`` (on the CPU)."""
    return torch.bernoulli(((x.float().cpu() + 1.0) * 0.5).clamp(0, 1), generator=generator) * 2.0 - 1.0


def model_binarizes(model, card: dict | None = None) -> bool:
    """Whether the model was trained on dynamically binarised data (the recipe's ``binarize``)."""
    setting = "auto"
    if card is not None:
        setting = card.get("run", {}).get("recipe", {}).get("objective", {}).get("binarize", "auto")
    return uses_binarization(setting, model.config.likelihood, model.config.channels)



@dataclass
class VAERecipe:
    model: VAEConfig = field(default_factory=VAEConfig)  # channels/image_size come from the data
    objective: VAEObjectiveConfig = field(default_factory=VAEObjectiveConfig)
    # No EMA by default: the cosine lr decay already averages the last steps, and the saved
    # model.safetensors is then exactly the network whose likelihood is evaluated.
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=5000, batch_size=128, ema=False, sample_every=1000, ckpt_every=1000, log_every=50))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))

    def validate(self) -> None:
        self.model.validate()
        self.objective.validate()


def make_optimizer(params, cfg: VAEObjectiveConfig) -> torch.optim.Optimizer:
    cls = torch.optim.Adamax if cfg.optimizer == "adamax" else torch.optim.Adam
    return fast_optimizer(cls, params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


class VAEObjective(Objective):
    """One optimizer ("model") on -ELBO_beta with KL warm-up, free bits and dynamic binarisation."""
    name = "vae"

    def __init__(self, model: nn.Module, config: VAEObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.conditional = self.uses_labels = model.num_classes > 0
        check_class_count(model, data)
        self.binarize = uses_binarization(config.binarize, model.config.likelihood, model.config.channels)
        self.total_steps = total_steps

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": make_optimizer(self.model.parameters(), self.config)}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return config_schedules(self.optimizers(), self.config, self.total_steps, warmup="lr_warmup_steps")

    def _labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        self.check_labels(labels)
        return labels if self.conditional else None

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        return binarize_batch(images) if self.binarize else images

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        x = self.prepare(images)
        beta = kl_weight(ctx.step, self.config.beta, self.config.kl_warmup_steps)
        with ctx.autocast():
            out = self.model(x, self._labels(labels), beta=beta, free_bits=self.config.free_bits)
        ctx.update(out.loss, "model")
        recon, kl = out.recon.detach().mean(), out.kl.detach().mean()
        return {"loss": out.loss.detach(), "recon": recon, "kl": kl, "neg_elbo": recon + kl,
                "beta": torch.tensor(beta)}

    def ema_target(self) -> nn.Module:
        return self.model

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor:
        """Prior samples from a fixed seeded z; conditional: image i has class i % num_classes."""
        device = model_device(network)
        z = network.sample_latent(n, generator=torch.Generator().manual_seed(seed)).to(device)
        labels = torch.arange(n, device=device) % network.config.num_classes if self.conditional else None
        with eval_mode(network):
            return network.generate(z, labels).float()


RECIPE = VAERecipe
DESCRIPTION = "beta-VAE: -ELBO_beta with KL warm-up, free bits, Bernoulli/Gaussian/logistic likelihoods"


def build(recipe: VAERecipe, data: DataInfo, *, conditional: bool = False) -> tuple[nn.Module, VAEObjective]:
    recipe.validate()
    recipe.model = fit_config_to_data(recipe.model, data, conditional)
    model = create_model("cvae" if conditional else "vae", recipe.model)
    return model, VAEObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["RECIPE", "DESCRIPTION", "build", "VAERecipe", "VAEObjectiveConfig", "VAEObjective", "kl_weight",
           "binarize_batch", "binarize_fixed", "model_binarizes", "uses_binarization",
           "make_optimizer"]
