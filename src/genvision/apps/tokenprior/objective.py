"""``genvision train maskgit init=VQVAE``: a MaskGIT prior (``genvision.models.maskgit``) over the token
grids of a frozen, trained VQ-VAE (the process: ``genvision.processes.masked_tokens``).

Each step encodes the batch to token grids with the frozen VQ-VAE, masks ``ceil(L cos(pi/2 r))``
random positions per example (r ~ U(0, 1), at least one), replaces labels by the null class with
probability ``label_dropout`` (so one network also learns the unconditional prior that guidance
needs), and takes one AdamW step on the cross-entropy of the masked positions. Mask ratios, mask
positions and label dropout go through ``StepContext.draw``, so torchrun ranks draw what one process
with the global batch would.

**Grey inputs, not binarised ones.** A Bernoulli VQ-VAE (``zoo:vqvae-mnist``) was trained on
dynamically binarised digits, but its tokens of the grey images are the better targets for a prior:
on 2,000 MNIST training digits (domain features, against the test split) the decoded tokens of the
grey images score FID 1.2, those of binarised copies 9.8; grey tokens are also less spread out
(perplexity 86 vs 111 of 128 codes) and deterministic, so the prior learns one grid per image rather
than a noisy mixture (only 14% of positions agree between the two encodings). FID compares samples
with grey test digits, and the decoder's mean images are grey too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from ...checkpoints import load_recipe_model
from ...config import DataConfig, TrainConfig, check_optimizer, check_path, check_range, to_dict
from ...errors import ConfigError
from ...models.maskgit import MaskGITConfig
from ...processes.masked_tokens import MASK_SCHEDULES, masked_counts, masked_token_loss, random_mask
from ...registry import create_model, model_config
from ...training.objective import DataInfo, Objective, StepContext, check_class_count
from ...training.optim import decay_groups, fast_optimizer
from ...training.schedules import check_schedule, config_schedules


@dataclass
class MaskedTokenObjectiveConfig:
    lr: float = 5e-4  # AdamW peak learning rate, reached at the end of the warm-up
    betas: tuple[float, float] = (0.9, 0.96)  # AdamW betas (MaskGIT's)
    weight_decay: float = 0.01  # decoupled weight decay on weight matrices and embedding tables only
    warmup_steps: int = 200  # linear warm-up
    schedule: str = "constant"  # constant (EMA does the averaging; runs stopped by time) | cosine
    min_lr_ratio: float = 0.1  # final lr as a fraction of lr (cosine only)
    label_dropout: float = 0.1  # probability of replacing a label by the null class (CFG training)
    mask_schedule: str = "cosine"  # masked fraction cos(pi/2 r), r ~ U(0, 1) (MaskGIT's)

    def validate(self) -> None:
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        check_schedule(self)
        check_range("objective.label_dropout", self.label_dropout, 0.0, 1.0)
        if self.mask_schedule not in MASK_SCHEDULES:
            raise ConfigError(f"objective.mask_schedule must be one of {', '.join(MASK_SCHEDULES)}, "
                              f"got {self.mask_schedule!r}")


# --------------------------------------------------------------------------------------
# The recipe


@dataclass
class MaskGITRecipe:
    init: str | None = None  # the trained VQ-VAE: a vqvae run or model directory, or zoo:NAME (required)
    model: MaskGITConfig = field(default_factory=MaskGITConfig)  # vqvae and num_classes come from init and the data
    objective: MaskedTokenObjectiveConfig = field(default_factory=MaskedTokenObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=128, ema_decay=0.999,
                                                                   grad_clip=1.0, sample_every=1000,
                                                                   ckpt_every=1000))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))
    conditional: bool | None = None  # class-conditional with label dropout; None: when the data has labels

    def validate(self) -> None:
        # init is required, but by build (a default recipe must validate): see load_vqvae
        if self.init:
            check_path("init", self.init)
        self.model.validate()
        self.objective.validate()


def load_vqvae(init: str | None) -> nn.Module:
    """The VQ-VAE ``init`` names, refusing anything else in one line that names the recipe key."""
    if not init:
        raise ConfigError("maskgit needs init=VQVAE: the trained VQ-VAE whose tokens it models (a vqvae run or "
                          "model directory, or zoo:NAME such as zoo:vqvae-mnist)")
    return load_recipe_model(init, "init", accepts=lambda entry: getattr(entry.cls, "is_vq", False),
                             wanted="a VQ-VAE", hint="a vqvae run")


# --------------------------------------------------------------------------------------
# The objective


class MaskedTokenObjective(Objective):
    """One AdamW update of the prior on the masked-token cross-entropy per step."""
    name = "maskgit"

    def __init__(self, model: nn.Module, config: MaskedTokenObjectiveConfig, data: DataInfo, *, total_steps: int = 1):
        super().__init__(model, config, data)
        config.validate()
        self.conditional = self.uses_labels = model.num_classes > 0
        check_class_count(model, data)
        self.total_steps = total_steps

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        groups = decay_groups(self.model, cfg.weight_decay)  # trainable only: the frozen VQ-VAE is left out
        return {"model": fast_optimizer(torch.optim.AdamW, groups, lr=cfg.lr, betas=cfg.betas)}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        self.check_labels(labels)
        model, device = self.model, images.device
        # fp32 and outside autocast: the targets are the VQ-VAE's exact tokens of the grey images (module docstring)
        grids = model.vqvae.encode(images.float())  # (B, h, w) codes 0..K-1
        B, L = grids.shape[0], model.length
        targets = grids.reshape(B, L)  # (B, L)
        # ctx.draw: under torchrun each rank takes its rows of the global batch's ratios, positions and drops.
        r = ctx.draw(lambda n: torch.rand(n, device=device), B)  # (B,) mask ratios
        scores = ctx.draw(lambda n: torch.rand(n, L, device=device), B)  # (B, L): which positions
        mask = random_mask(masked_counts(r, L), scores)  # (B, L) True = masked
        inputs = targets.masked_fill(mask, model.mask_id).view_as(grids)  # (B, h, w)
        y = None
        if self.conditional:
            p = self.config.label_dropout
            y = labels
            if p > 0:
                drop = ctx.draw(lambda n: torch.rand(n, device=device) < p, B)  # (B,)
                y = torch.where(drop, torch.full_like(labels, model.null_class), labels)
        with ctx.autocast():
            logits = model(inputs, y)  # (B, L, K)
        loss = masked_token_loss(logits, targets, mask)
        ctx.update(loss, "model")
        with torch.no_grad():
            accuracy = (logits.detach()[mask].argmax(dim=-1) == targets[mask]).float().mean()
        return {"loss": loss.detach(), "accuracy": accuracy}

    def ema_target(self) -> nn.Module:
        return self.model  # the whole model: samples need the (frozen, unchanged) VQ-VAE's decoder too

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor:
        z = network.sample_latent(n, generator=torch.Generator().manual_seed(seed))  # (n,) seeds
        labels = torch.arange(n, device=z.device) % network.num_classes if self.conditional else None
        return network.generate(z, labels)


# --------------------------------------------------------------------------------------
# The family entry point used by ``genvision train maskgit``

RECIPE = MaskGITRecipe
DESCRIPTION = ("MaskGIT prior over a trained VQ-VAE's tokens (init=VQVAE): masked-token transformer, "
               "class-conditional with CFG, parallel decoding")


def build(recipe: MaskGITRecipe, data: DataInfo) -> tuple[nn.Module, MaskedTokenObjective]:
    vqvae = load_vqvae(recipe.init)
    recipe.validate()
    vq = vqvae.config
    if (data.channels, data.image_size) != (vq.channels, vq.image_size):
        raise ConfigError(f"init's VQ-VAE takes {vq.channels}-channel {vq.image_size} px images but the data has "
                          f"{data.channels}-channel {data.image_size} px ones: set data.channels / data.image_size "
                          f"to match")
    if recipe.model.vqvae and model_config("vqvae", recipe.model.vqvae, "model.vqvae") != vq:
        raise ConfigError("model.vqvae contradicts init's VQ-VAE: leave model.vqvae out (it is copied from init)")
    conditional = data.num_classes > 0 if recipe.conditional is None else recipe.conditional
    if conditional and data.num_classes <= 0:
        raise ConfigError("conditional=true needs a labelled dataset, but this one has no classes")
    recipe.model = dataclasses.replace(recipe.model, vqvae=to_dict(vq),
                                       num_classes=data.num_classes if conditional else 0)
    model = create_model("maskgit", recipe.model)  # validates the filled-in config; meta-device size bound
    model.vqvae.load_state_dict(vqvae.state_dict())
    return model, MaskedTokenObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["DESCRIPTION", "RECIPE", "MaskGITRecipe", "MaskedTokenObjective", "MaskedTokenObjectiveConfig", "build",
           "load_vqvae"]
