"""SRGAN-style adversarial refinement: ``genvision train srgan --data folder:HR init=RUN_OR_MODEL_DIR``.

Starting from a pixel-loss model (``init``: an sr run or model directory; its arch, scale and
config are taken over), the generator G is trained against a VGG-style discriminator D
(Ledig et al. 2017; weights as ESRGAN, Wang et al. 2018):

    L_D = E[softplus(-D(HR))] + E[softplus(D(G(LR)))]                    (non-saturating GAN)
    L_G = w_pix * |G(LR) - HR|_1 + w_feat * L_feat(G(LR), HR) + w_adv * E[softplus(-D(G(LR)))]

The feature ("perceptual") loss ``L_feat`` is one of:

* ``vgg`` — L1 between VGG19 ``conv5_4`` features (before the ReLU, as ESRGAN), ImageNet-normalised.
  Needs ``objective.vgg_weights=PATH`` to torchvision's ``vgg19`` weights (e.g.
  ``vgg19-dcbb9e9d.pth``, or a .safetensors of the same state dict): genvision downloads nothing.
* ``dfeat`` — feature matching on the discriminator's own stage outputs (Salimans et al. 2016;
  pix2pixHD): L1 between D's features of G(LR) and of HR. It is *not* a perceptual network
  trained on ImageNet; it is the honest default when no VGG weights are available offline, and
  runs are labelled with the loss they used (``feature_loss`` in the saved recipe and logs).
* ``none`` — adversarial + pixel loss only.

``perceptual=auto`` picks ``vgg`` when ``vgg_weights`` is set, else ``dfeat``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...checkpoints import load_pretrained, read_model_card, read_state_dict
from ...config import MAX_LOSS_WEIGHT, TrainConfig, check_optimizer, check_path, check_range, shown
from ...errors import ConfigError, GenvisionError
from ...models.sr import SRGAN, SRGANConfig, check_discriminator
from ...nn.features import MultiLayerFeatures, vgg_features
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext
from ...training.schedules import config_schedules
from .objective import ARCHS, SRDataConfig, SRSampleMixin, arch_config, check_sr_recipe, make_adam
from .objective import build_dataset as sr_dataset

PERCEPTUAL = ("auto", "vgg", "dfeat", "none")


@dataclass
class SRGANObjectiveConfig:
    lr_g: float = 1e-4  # Adam lr of the generator
    lr_d: float = 1e-4  # Adam lr of the discriminator
    betas: tuple[float, float] = (0.9, 0.999)
    pixel_weight: float = 1e-2  # w_pix (ESRGAN)
    feature_weight: float = 1.0  # w_feat
    adversarial_weight: float = 5e-3  # w_adv (ESRGAN)
    perceptual: str = "auto"  # auto | vgg | dfeat | none (see the module docstring)
    vgg_weights: str | None = None  # torchvision vgg19 state dict (.pth / .safetensors) for perceptual=vgg
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | cosine
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        if self.perceptual not in PERCEPTUAL:
            raise ConfigError(f"perceptual must be one of {', '.join(PERCEPTUAL)}, got {self.perceptual!r}")
        if self.perceptual == "vgg" and not self.vgg_weights:
            raise ConfigError("perceptual=vgg needs objective.vgg_weights=PATH (torchvision vgg19 weights); "
                              "genvision does not download them")
        if self.vgg_weights and not check_path("objective.vgg_weights", self.vgg_weights).is_file():
            raise ConfigError(f"objective.vgg_weights file not found: {shown(self.vgg_weights)}")
        check_optimizer("objective", self.lr_g, self.betas, lr_name="lr_g")
        check_optimizer("objective", self.lr_d, lr_name="lr_d")
        for name in ("pixel_weight", "feature_weight", "adversarial_weight"):
            check_range(f"objective.{name}", getattr(self, name), 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.warmup_steps", self.warmup_steps, 0)
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be cosine or constant, got {self.schedule!r}")
        check_range("objective.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)

    @property
    def feature_loss(self) -> str:
        if self.perceptual == "auto":
            return "vgg" if self.vgg_weights else "dfeat"
        return self.perceptual


@dataclass
class SRGANRecipe:
    init: str | None = None  # sr run / model directory whose generator starts the refinement (recommended)
    arch: str = "edsr"  # generator arch when there is no init: espcn | edsr
    scale: int = 4  # upscaling factor (taken from init when given)
    model: dict[str, Any] = field(default_factory=dict)  # generator config fields (taken from init when given)
    d_width: int = 64  # discriminator base width
    d_blocks: int = 4  # discriminator stages (each halves the patch)
    objective: SRGANObjectiveConfig = field(default_factory=SRGANObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=5000, batch_size=16, ema=True, ema_decay=0.999, sample_every=1000, ckpt_every=1000))
    data: SRDataConfig = field(default_factory=SRDataConfig)

    def validate(self) -> None:
        check_sr_recipe(self.arch, self.scale, self.data.patch_size)
        check_discriminator(self.d_width, self.d_blocks)
        if self.init:
            check_path("init", self.init)
        else:  # with init, the model section is replaced by init's config when the model is built
            arch_config(self.arch, self.model, self.scale)
        self.objective.validate()


def _init_model(recipe: SRGANRecipe):
    """Load ``init`` and copy its arch / scale / config into the recipe; returns the generator."""
    if not recipe.init:
        return None
    try:
        loaded = load_pretrained(recipe.init, kind="sr", use_ema=True)
    except GenvisionError as exc:  # name the recipe key: "model not found: X" alone does not say where X came from
        raise type(exc)(f"init: {exc}") from None
    generator = loaded.generator if isinstance(loaded, SRGAN) else loaded
    arch = getattr(generator, "registry_name", None)
    if arch not in ARCHS:
        raise ConfigError(f"init must hold an espcn or edsr model (or an srgan), got {arch}")
    recipe.arch = arch
    recipe.scale = generator.config.scale
    recipe.model = dataclasses.asdict(generator.config)
    return generator


def perceptual_features(weights_path: str) -> MultiLayerFeatures:
    """VGG19 up to conv5_4 (before its ReLU, as ESRGAN) from the user's torchvision weights file."""
    state = read_state_dict(weights_path, "objective.vgg_weights")
    try:
        return vgg_features("vgg19", state, outputs=("conv5_4",))
    except ConfigError as exc:
        raise ConfigError(f"objective.vgg_weights: {shown(str(weights_path))} is {exc}") from None


class SRGANObjective(SRSampleMixin, Objective):
    """Alternating D and G updates; G's fakes from one forward pass serve both."""
    name = "srgan"

    def __init__(self, model: nn.Module, config: SRGANObjectiveConfig, data: DataInfo, *, scale: int,
                 total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.scale, self.total_steps = scale, total_steps
        self.feature_loss = config.feature_loss
        self.vgg = perceptual_features(config.vgg_weights) if self.feature_loss == "vgg" else None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"generator": make_adam(self.model.generator.parameters(), cfg.lr_g, cfg.betas),
                "discriminator": make_adam(self.model.discriminator.parameters(), cfg.lr_d, cfg.betas)}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def ema_target(self) -> nn.Module:
        return self.model.generator

    def _features(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.feature_loss == "vgg":
            if self.vgg.mean.device != sr.device:
                self.vgg.to(sr.device)
            with torch.no_grad():
                target = self.vgg(hr)["conv5_4"]
            return F.l1_loss(self.vgg(sr)["conv5_4"], target)
        if self.feature_loss == "dfeat":
            d = self.model.discriminator
            with torch.no_grad():
                targets = d.features(hr)
            return sum(F.l1_loss(f, t) for f, t in zip(d.features(sr), targets)) / len(targets)
        return sr.new_zeros(())

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        lr, hr = batch
        self._remember(lr, hr)
        g, d, cfg = self.model.generator, self.model.discriminator, self.config
        with ctx.autocast():
            sr = g(lr)
        sr = sr.float()
        # D step on the detached fakes
        d_loss = F.softplus(-d(hr)).mean() + F.softplus(d(sr.detach())).mean()
        ctx.update(d_loss, "discriminator")
        # G step: D's weights get no gradients (they are not being updated here)
        d.requires_grad_(False)
        try:
            pix = F.l1_loss(sr, hr)
            feat = self._features(sr, hr)
            adv = F.softplus(-d(sr)).mean()
            g_loss = cfg.pixel_weight * pix + cfg.feature_weight * feat + cfg.adversarial_weight * adv
            ctx.update(g_loss, "generator")
        finally:
            d.requires_grad_(True)
        return {"loss_d": d_loss.detach(), "loss_g": g_loss.detach(), "loss_pixel": pix.detach(),
                "loss_feature": feat.detach(), "loss_adv": adv.detach()}


RECIPE = SRGANRecipe
DESCRIPTION = ("SRGAN-style refinement of an sr model (init=DIR): discriminator + adversarial + feature loss "
               "(VGG19 with vgg_weights=PATH, else feature matching on D) + L1")


def build(recipe: SRGANRecipe, data: DataInfo) -> tuple[nn.Module, SRGANObjective]:
    generator = _init_model(recipe)
    recipe.validate()
    gen_config = arch_config(recipe.arch, recipe.model, recipe.scale)
    recipe.model = dataclasses.asdict(gen_config)
    config = SRGANConfig(arch=recipe.arch, generator=dict(recipe.model), scale=recipe.scale,
                         channels=gen_config.channels, d_width=recipe.d_width, d_blocks=recipe.d_blocks)
    model = create_model("srgan", config)  # through the registry: the meta-device size bound applies
    if generator is not None:
        model.generator.load_state_dict(generator.state_dict())
    return model, SRGANObjective(model, recipe.objective, data, scale=recipe.scale, total_steps=recipe.train.steps)


def build_dataset(recipe: SRGANRecipe):
    if recipe.init:  # the patches must match init's scale
        try:
            card = read_model_card(recipe.init)
        except GenvisionError as exc:
            raise type(exc)(f"init: {exc}") from None
        scale = card["config"].get("scale")
        if isinstance(scale, int):
            recipe.scale = scale
    return sr_dataset(recipe)


__all__ = ["RECIPE", "DESCRIPTION", "build", "build_dataset", "SRGANRecipe", "SRGANObjectiveConfig",
           "SRGANObjective", "perceptual_features", "PERCEPTUAL"]
