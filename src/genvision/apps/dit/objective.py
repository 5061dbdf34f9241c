"""``genvision train dit``: a DiT trained with flow matching (the process, its convention and its
samplers are ``genvision.processes.flow``; the network is ``genvision.models.dit``).

One AdamW update per step on the flow-matching loss, t drawn uniformly or from a logit-normal
(optionally shifted); with probability ``label_dropout`` a label is replaced by the null class (index
``num_classes``), so the same network also learns the unconditional field classifier-free guidance needs.

With ``vqvae=RUN`` (a trained VQ-VAE: run or model directory, or zoo:NAME) the DiT is a latent DiT:
the flow runs on the VQ-VAE's continuous latents, scaled by 1 / (std of its codebook entries) so the
data end has about unit variance like the noise end (``genvision.models.dit``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import load_recipe_model
from ...config import DataConfig, TrainConfig, check_optimizer, check_path, check_range, to_dict
from ...errors import ConfigError
from ...models.dit import DiTConfig
from ...nn.embeddings import patchify
from ...processes.flow import TIME_SAMPLINGS, drop_labels, flow_matching_loss, interpolate, sample_times
from ...registry import create_model, model_config
from ...training.objective import DataInfo, Objective, StepContext, check_class_count, fit_config_to_data
from ...training.optim import decay_groups, fast_optimizer
from ...training.schedules import warmup_schedule


@dataclass
class FlowObjectiveConfig:
    lr: float = 3e-4  # AdamW peak learning rate, reached at the end of the warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay on weight matrices
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    warmup_steps: int = 200  # linear warm-up; then constant (EMA does the averaging)
    label_dropout: float = 0.1  # probability of replacing a label by the null class (CFG training)
    # uniform | logit-normal (sigmoid of N(0, 1): more weight mid-path). logit-normal is the default by
    # measurement: domain FID 204.6 vs 224.7 after 600 steps (docs/BENCHMARKS.md, dit-fewstep-domain).
    time_sampling: str = "logit-normal"
    time_shift: float = 1.0  # SD3's shift of the drawn times: > 1 trains more near the noise end (processes.flow)
    # Fewer tokens early (token dropping, as in MaskDiT, Zheng et al. 2023): for the first token_drop_steps
    # steps the blocks see a random token_keep share of each image's tokens and the loss covers those
    # patches; then every token, so training ends on what sampling uses. 0 = off.
    token_drop_steps: int = 0
    token_keep: float = 0.5

    def validate(self) -> None:
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ConfigError(f"label_dropout must be in [0, 1], got {self.label_dropout}")
        if self.time_sampling not in TIME_SAMPLINGS:
            raise ConfigError(f"time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, got {self.time_sampling!r}")
        check_range("objective.time_shift", self.time_shift, 0.0, 100.0, low_open=True)
        check_range("objective.token_drop_steps", self.token_drop_steps, 0, 10**9)
        check_range("objective.token_keep", self.token_keep, 0.0, 1.0, low_open=True)


# --------------------------------------------------------------------------------------
# The recipe


@dataclass
class FlowRecipe:
    model: DiTConfig = field(default_factory=DiTConfig)  # channels/image_size/num_classes come from the data
    objective: FlowObjectiveConfig = field(default_factory=FlowObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=20000, batch_size=128, ema_decay=0.9999,
                                                                   grad_clip=1.0, sample_every=1000,
                                                                   ckpt_every=1000))
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))
    conditional: bool = True  # class-conditional DiT with label dropout (needs a labelled dataset)
    vqvae: str | None = None  # latent DiT: the trained VQ-VAE whose latent space the flow runs in (run, model, zoo:NAME)

    def validate(self) -> None:
        if self.vqvae:
            check_path("vqvae", self.vqvae)
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
        self.conditional = self.uses_labels = model.num_classes > 0
        check_class_count(model, data)
        self.total_steps = total_steps

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        groups = decay_groups(self.model, cfg.weight_decay)
        return {"model": fast_optimizer(torch.optim.AdamW, groups, lr=cfg.lr, betas=cfg.betas)}

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {"model": warmup_schedule(self.optimizers()["model"], total_steps=self.total_steps,
                                         warmup_steps=self.config.warmup_steps, schedule="constant")}

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        self.check_labels(labels)
        x1 = self.model.to_field(images).contiguous()  # the images, or a latent DiT's scaled latents
        B = x1.shape[0]
        # ctx.draw: under torchrun each rank takes its rows of the global batch's noise and times.
        x0 = ctx.draw(lambda n: torch.randn((n, *x1.shape[1:]), device=x1.device, dtype=x1.dtype), B)  # noise end
        t = ctx.draw(lambda n: sample_times(n, self.config.time_sampling, x1.device, self.config.time_shift), B)  # (B,)
        y = None
        if self.conditional:
            p = self.config.label_dropout
            drop = ctx.draw(lambda n: torch.rand(n, device=labels.device) < p, B) if p > 0 else None
            y = drop_labels(labels, p, self.model.null_class, drop)
        with ctx.autocast():
            if ctx.step < self.config.token_drop_steps:
                loss = self._loss_on_kept_tokens(x1, x0, t, y, ctx)
            else:
                loss = flow_matching_loss(self.model, x1, x0, t, y)
        ctx.update(loss, "model")
        return {"loss": loss.detach()}

    def _loss_on_kept_tokens(self, x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None,
                             ctx: StepContext) -> torch.Tensor:
        """The flow-matching loss over a random ``token_keep`` share of each image's patches."""
        B, p = x1.shape[0], self.model.config.patch_size
        n_tokens = self.model.grid ** 2
        k = max(1, round(self.config.token_keep * n_tokens))
        keep = ctx.draw(lambda n: torch.rand(n, n_tokens, device=x1.device).argsort(dim=1)[:, :k], B)  # (B, k)
        pred = self.model(interpolate(x0, x1, t), t, y, keep=keep)  # (B, k, p*p*C)
        target = patchify(x1 - x0, p)  # (B, N, p*p*C)
        target = target.gather(1, keep[:, :, None].expand(-1, -1, target.shape[2]))  # (B, k, p*p*C)
        return F.mse_loss(pred.float(), target.float())

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
    recipe.validate()
    vqvae = None
    if recipe.vqvae:
        vqvae = load_recipe_model(recipe.vqvae, "vqvae", accepts=lambda entry: getattr(entry.cls, "is_vq", False),
                                  wanted="a VQ-VAE", hint="a vqvae run")
        if recipe.model.vqvae and model_config("vqvae", recipe.model.vqvae, "model.vqvae") != vqvae.config:
            raise ConfigError("model.vqvae contradicts the recipe's vqvae: leave model.vqvae out (it is copied)")
        # The std of the codebook entries is the std of what the latents snap to: scale it to 1.
        spread = float(vqvae.quantizer.codebook.float().std())
        recipe.model = dataclasses.replace(recipe.model, vqvae=to_dict(vqvae.config), latent_scale=1.0 / spread)
    recipe.model = fit_config_to_data(recipe.model, data, recipe.conditional)
    model = create_model("dit", recipe.model)
    if vqvae is not None:
        model.vqvae.load_state_dict(vqvae.state_dict())
    return model, FlowObjective(model, recipe.objective, data, total_steps=recipe.train.steps)


__all__ = ["RECIPE", "DESCRIPTION", "build", "FlowRecipe", "FlowObjective", "FlowObjectiveConfig"]
