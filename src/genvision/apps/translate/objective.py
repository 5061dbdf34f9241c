"""``genvision train cyclegan --data-a folder:PHOTOS --data-b folder:PAINTINGS [key=value ...]``.

CycleGAN's game (Zhu et al. 2017), in [-1, 1] image space as the paper:

    L_GAN(G, D_B) = E_b[(D_B(b) - 1)^2] + E_a[D_B(G(a))^2]            (least squares, Mao et al. 2017)
    L_cyc         = E_a |F(G(a)) - a|_1 + E_b |G(F(b)) - b|_1
    L_idt         = E_b |G(b) - b|_1 + E_a |F(a) - a|_1
    L_G           = (D_B(G(a)) - 1)^2 + (D_A(F(b)) - 1)^2 + lambda L_cyc + identity * lambda L_idt
    L_D           = 1/2 [(D_B(b) - 1)^2 + D_B(pool_B(G(a)))^2] + the same for D_A

with G = ``a2b``, F = ``b2a``, lambda = ``cycle_weight`` (10), ``identity`` 0.5. The critics see
fakes through a 50-image history (:class:`.pool.ImagePool`). Adam (2e-4, betas 0.5, 0.999) for
the two generators together and the two critics together; the lr is constant for the first
``decay_start`` of the steps, then falls linearly to 0 (the paper: 100 epochs + 100 of decay).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config import MAX_LOSS_WEIGHT, TrainConfig, check_optimizer, check_range
from ...errors import ConfigError
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer
from .data import (
    DomainConfig,
    UnpairedDataConfig,
    UnpairedDataset,
    check_domain,
    load_domain,
)
from .pool import ImagePool

SAMPLE_ROWS = 6  # the grid: 6 rows of a | a->b | a->b->a | b | b->a | b->a->b (6 x 6 images: a square grid)
MAX_POOL = 10_000


@dataclass
class CycleObjectiveConfig:
    lr: float = 2e-4  # Adam lr of both optimizers (paper)
    betas: tuple[float, float] = (0.5, 0.999)  # paper
    cycle_weight: float = 10.0  # lambda (paper)
    identity: float = 0.5  # identity loss weight as a fraction of lambda (paper: 0.5; 0 turns it off)
    pool_size: int = 50  # fakes the critics' history holds (paper; 0 = no history)
    decay_start: float = 0.5  # share of train.steps at constant lr before the linear decay to 0

    def validate(self) -> None:
        check_optimizer("objective", self.lr, self.betas)
        check_range("objective.cycle_weight", self.cycle_weight, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.identity", self.identity, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.pool_size", self.pool_size, 0, MAX_POOL)
        check_range("objective.decay_start", self.decay_start, 0.0, 1.0)


@dataclass
class CycleGANRecipe:
    arch = "cyclegan"  # the one architecture (a class attribute, not a recipe key): what `model` configures
    model: dict[str, Any] = field(default_factory=dict)  # CycleGANConfig fields (width, blocks, up, d_width, ...)
    objective: CycleObjectiveConfig = field(default_factory=CycleObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=4000, batch_size=4, ema=False, sample_every=500, ckpt_every=500))
    data: UnpairedDataConfig = field(default_factory=UnpairedDataConfig)
    data_a: DomainConfig = field(default_factory=lambda: DomainConfig("folder:../shared/data/sr-train"))
    # paintings at a shorter side of 256 px: 64 px crops are patches of brushwork, not thumbnails
    data_b: DomainConfig = field(default_factory=lambda: DomainConfig("folder:../shared/data/style-images/style",
                                                                      load_size=256))

    def validate(self) -> None:
        check_domain("data_a", self.data_a, self.data)
        check_domain("data_b", self.data_b, self.data)
        self.model_config(self.data.channels)
        self.objective.validate()

    def model_config(self, channels: int):
        pinned = {"channels": (channels, f"data.channels={channels}")}
        return arch_section(self.arch, self.model, "cyclegan", pinned)


def linear_decay(optimizer: torch.optim.Optimizer, *, total_steps: int, decay_start: float
                 ) -> torch.optim.lr_scheduler.LambdaLR:
    """Factor 1 until ``decay_start * total_steps``, then linearly down to 0 at ``total_steps`` (the
    last update gets ``1 / decay steps``); ``decay_start=1`` never decays. The schedule is laid out
    over ``total_steps``: resuming with a larger ``train.steps`` stretches what is left of it."""
    start = int(decay_start * total_steps)
    span = total_steps - start

    def factor(step: int) -> float:  # a plain function: LambdaLR's state stays numbers only
        return 1.0 if span <= 0 else 1.0 - min(1.0, max(0, step - start) / span)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def cycle_loss(a2b: nn.Module, b2a: nn.Module, real_a: torch.Tensor, real_b: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L_cyc, G(a), F(b))``: L1 of a -> b -> a and b -> a -> b against the inputs."""
    fake_b, fake_a = a2b(real_a), b2a(real_b)
    loss = F.l1_loss(b2a(fake_b).float(), real_a) + F.l1_loss(a2b(fake_a).float(), real_b)
    return loss, fake_b, fake_a


def lsgan(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(scores.float(), torch.full_like(scores.float(), target))


class CycleGANObjective(Objective):
    """Optimizers ``"generator"`` (both directions) and ``"discriminator"`` (both critics)."""
    name = "cyclegan"
    accumulation_blocker = "its history pools take each step's fakes once, and accumulation replays the step"

    def __init__(self, model: nn.Module, config: CycleObjectiveConfig, data: DataInfo, *, total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        if model.critics is None:
            raise ConfigError("this cyclegan has no critics (model.critics: false, a translator as the zoo ships "
                              "it): train from a recipe with model.critics: true")
        self.total_steps = total_steps
        self.pool_a, self.pool_b = ImagePool(config.pool_size), ImagePool(config.pool_size)
        self._samples: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg, g, d = self.config, self.model.generators, self.model.critics
        return {"generator": fast_optimizer(torch.optim.Adam, g.parameters(), lr=cfg.lr, betas=tuple(cfg.betas)),
                "discriminator": fast_optimizer(torch.optim.Adam, d.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))}

    def lr_schedulers(self):
        return {name: linear_decay(opt, total_steps=self.total_steps, decay_start=self.config.decay_start)
                for name, opt in self.optimizers().items()}

    def ema_target(self) -> nn.Module:
        return self.model.generators

    def state_dict(self) -> dict:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        device = next(self.model.parameters()).device
        self.pool_a.load_state_dict(state.get("pool_a", {}), device)
        self.pool_b.load_state_dict(state.get("pool_b", {}), device)

    def _remember(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
        """Keep the first SAMPLE_ROWS images of each domain for the sample grid."""
        have = 0 if self._samples is None else self._samples[0].shape[0]
        if have >= SAMPLE_ROWS:
            return
        take = SAMPLE_ROWS - have
        a, b = real_a[:take].detach().float().cpu(), real_b[:take].detach().float().cpu()
        self._samples = (a, b) if self._samples is None else (torch.cat([self._samples[0], a]),
                                                              torch.cat([self._samples[1], b]))

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, _ = batch  # (2B, C, p, p) in [0, 1]: A rows, then B rows
        half = images.shape[0] // 2
        x = images * 2 - 1  # the paper's [-1, 1]
        real_a, real_b = x[:half], x[half:]  # (B, C, p, p) each
        self._remember(real_a, real_b)
        cfg, g, d = self.config, self.model.generators, self.model.critics
        # G step: the critics' weights get no gradients from it
        d.requires_grad_(False)
        try:
            with ctx.autocast():
                cyc, fake_b, fake_a = cycle_loss(g.a2b, g.b2a, real_a, real_b)
                adv = lsgan(d.b(fake_b), 1.0) + lsgan(d.a(fake_a), 1.0)
                idt = (F.l1_loss(g.a2b(real_b).float(), real_b) + F.l1_loss(g.b2a(real_a).float(), real_a)
                       if cfg.identity > 0 else x.new_zeros(()))
            g_loss = adv + cfg.cycle_weight * cyc + cfg.identity * cfg.cycle_weight * idt
            ctx.update(g_loss, "generator")
        finally:
            d.requires_grad_(True)
        # D step on fakes from the history
        pooled_b, pooled_a = self.pool_b.query(fake_b.float()), self.pool_a.query(fake_a.float())
        with ctx.autocast():
            d_b = 0.5 * (lsgan(d.b(real_b), 1.0) + lsgan(d.b(pooled_b), 0.0))
            d_a = 0.5 * (lsgan(d.a(real_a), 1.0) + lsgan(d.a(pooled_a), 0.0))
        ctx.update(d_a + d_b, "discriminator")
        return {"loss_g": g_loss.detach(), "loss_gan": adv.detach(), "loss_cycle": cyc.detach(),
                "loss_identity": idt.detach(), "loss_d_a": d_a.detach(), "loss_d_b": d_b.detach()}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """6 rows of a | a->b | a->b->a | b | b->a | b->a->b in [-1, 1] (``network``: the generators)."""
        if self._samples is None:
            return None
        rows = [i % self._samples[0].shape[0] for i in range(SAMPLE_ROWS)]  # a short first batch repeats
        device = next(network.parameters()).device
        a, b = (s[rows].to(device) for s in self._samples)  # (6, C, p, p) each
        ab = network.a2b(a)
        ba = network.b2a(b)
        columns = [a, ab, network.b2a(ab), b, ba, network.a2b(ba)]
        return torch.stack(columns, dim=1).flatten(0, 1).float().cpu()  # (36, C, p, p): row by row


RECIPE = CycleGANRecipe
DESCRIPTION = ("CycleGAN unpaired translation (--data-a, --data-b): ResNet generators, PatchGAN critics, "
               "least-squares GAN + cycle + identity losses, image pool, linear lr decay")


def build_dataset(recipe: CycleGANRecipe) -> UnpairedDataset:
    recipe.validate()
    data = recipe.data
    domains = [load_domain(domain.name, channels=data.channels, patch_size=data.patch_size,
                           load_size=domain.load_size if domain.load_size is not None else data.load_size,
                           root=data.root, download=data.download, limit=data.limit, pad=domain.pad)
               for domain in (recipe.data_a, recipe.data_b)]
    return UnpairedDataset(*domains, patch_size=data.patch_size, channels=data.channels, flip=data.flip)


def build(recipe: CycleGANRecipe, data: DataInfo) -> tuple[nn.Module, CycleGANObjective]:
    recipe.validate()
    if data.channels != recipe.data.channels:
        raise ConfigError(f"the data has {data.channels} channels but data.channels={recipe.data.channels}")
    config = recipe.model_config(data.channels)
    recipe.model = dataclasses.asdict(config)
    model = create_model("cyclegan", config)  # through the registry: the meta-device size bound applies
    return model, CycleGANObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["DESCRIPTION", "RECIPE", "CycleGANObjective", "CycleGANRecipe", "CycleObjectiveConfig", "build",
           "build_dataset", "cycle_loss", "linear_decay", "lsgan"]
