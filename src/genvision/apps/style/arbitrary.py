"""Arbitrary style (AdaIN, Huang & Belongie 2017): ``genvision train adain --data folder:PHOTOS
style_data=folder:PAINTINGS [hold_out=NAME] [key=value ...]`` trains the decoder of
:class:`genvision.models.style.AdaINNet`; its VGG-19 encoder stays frozen (and out of the checkpoint).

Each step pairs a batch of photo crops ``c`` with as many random style crops ``s`` (:class:`StyleImages`:
each painting resized so its short side is ``styles.resize``, then a random ``data.patch_size`` crop,
a random horizontal flip and a colour jitter), and with ``t = AdaIN(f(c), f(s))`` at relu4_1 and
``g = decoder(t)`` minimises::

    mean((f(g) - t)^2)  +  style_weight * sum_{relu1_1..relu4_1} [mean((mu(f_l(g)) - mu(f_l(s)))^2)
                                                                 + mean((sigma(f_l(g)) - sigma(f_l(s)))^2)]

``hold_out`` names painting(s) left out of training (comma-separated file names or stems), for evaluation
on a style the network never saw. All randomness is torch's global RNG, which the trainer checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ... import io as gio
from ...config import TrainConfig, check_optimizer, check_range
from ...data.patches import (
    PatchDataConfig,
    RandomPatchDataset,
    folder_patches,
    list_image_files,
)
from ...errors import ConfigError, DataError, ImageLoadError
from ...models.style import adain, mean_std
from ...ops.colour import saturation_tensor
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer, trainable
from ...training.schedules import check_schedule, config_schedules
from .backbones import attach_encoder

ARCHS = ("adain",)
DEFAULT_STYLES = "folder:../shared/data/style-images/style"


@dataclass
class AdaINDataConfig(PatchDataConfig):
    patch_size: int = 256  # Huang & Belongie: 256 crops of images resized to 512
    repeat: int = 1


@dataclass
class StyleAugmentConfig:
    resize: int = 512  # each painting's short side before cropping (Huang & Belongie: 512)
    flip: bool = True  # random horizontal flips
    jitter: float = 0.1  # brightness, contrast and saturation each scaled by a factor in [1 - j, 1 + j]

    def validate(self) -> None:
        check_range("styles.resize", self.resize, 16, 8192)
        check_range("styles.jitter", self.jitter, 0.0, 0.9)


@dataclass
class AdaINObjectiveConfig:
    style_weight: float = 10.0  # Huang & Belongie's lambda
    backbone_weights: str | None = None  # a VGG-19 weights file instead of genvision's cache
    lr: float = 1e-4  # Adam, as the paper
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # the paper decays lr / (1 + 5e-5 step); a cosine to min_lr_ratio is close
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        check_range("objective.style_weight", self.style_weight, 0.0, 1e6)
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        check_schedule(self)


@dataclass
class AdaINRecipe:
    style_data: str = DEFAULT_STYLES  # folder:PATH of style images (paintings)
    hold_out: str | None = None  # painting(s) left out for evaluation: file names or stems, comma-separated
    arch: str = "adain"
    model: dict[str, Any] = field(default_factory=dict)  # AdaINConfig fields (encoder vgg19 | random)
    styles: StyleAugmentConfig = field(default_factory=StyleAugmentConfig)
    objective: AdaINObjectiveConfig = field(default_factory=AdaINObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, batch_size=8, ema=False, log_every=20, sample_every=500, ckpt_every=250))
    data: AdaINDataConfig = field(default_factory=AdaINDataConfig)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown adain arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        if not self.style_data.startswith("folder:"):
            raise ConfigError(f"style_data must be folder:PATH of style images, got {self.style_data!r}")
        self.model_config()
        self.styles.validate()
        self.objective.validate()

    def model_config(self):
        return arch_section(self.arch, self.model, "adain", {})


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


class StyleImages:
    """The training paintings of a folder (hold-outs removed), resized once; :meth:`sample` cuts augmented crops."""

    def __init__(self, folder: str, *, hold_out: str | None, resize: int, crop: int, flip: bool, jitter: float):
        root = Path(folder.removeprefix("folder:")).expanduser()
        if not root.is_dir():
            raise DataError(f"style_data {folder}: no such folder")
        files = list_image_files(root)
        left_out = _names(hold_out)
        for name in left_out:
            if not any(name in (p.name, p.stem) for p in files):
                raise ConfigError(f"hold_out {name}: no such image in {folder} (it has "
                                  f"{', '.join(p.name for p in files[:8])})")
        self.files = [p for p in files if p.name not in left_out and p.stem not in left_out]
        self.held_out = [p.name for p in files if p not in self.files]
        if not self.files:
            raise DataError(f"style_data {folder}: no style images left to train on")
        side = max(resize, crop)  # a crop must fit
        self.images: list[torch.Tensor] = []
        for path in self.files:
            try:
                image = gio.load_image_tensor(path, channels=3)[None]  # (1, 3, H, W) in [0, 1]
            except ImageLoadError as exc:
                raise DataError(f"style_data: {exc}") from None
            h, w = image.shape[-2:]
            size = (side, max(side, round(w * side / h))) if h <= w else (max(side, round(h * side / w)), side)
            resized = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
            self.images.append((resized[0].clamp(0, 1) * 255).round().to(torch.uint8))  # (3, h, w): 4x less memory
        self.crop, self.flip, self.jitter = crop, flip, jitter

    def sample(self, n: int) -> torch.Tensor:
        """n random augmented crops, (n, 3, crop, crop) float32 in [0, 1], from torch's global RNG."""
        out = []
        for _ in range(n):
            image = self.images[int(torch.randint(len(self.images), ()))]
            h, w = image.shape[-2:]
            y, x = int(torch.randint(h - self.crop + 1, ())), int(torch.randint(w - self.crop + 1, ()))
            crop = image[:, y:y + self.crop, x:x + self.crop].float() / 255  # (3, p, p)
            if self.flip and bool(torch.rand(()) < 0.5):
                crop = crop.flip(-1)
            if self.jitter > 0:
                brightness, contrast, saturation = (1 + self.jitter * (2 * torch.rand(3) - 1)).tolist()
                crop = crop * brightness
                crop = (crop - crop.mean()) * contrast + crop.mean()
                crop = saturation_tensor(crop.clamp(0, 1), saturation)
            out.append(crop.clamp(0, 1))
        return torch.stack(out)


def style_loss(generated: list[torch.Tensor], style: list[torch.Tensor]) -> torch.Tensor:
    """Sum over layers of the squared differences of per-channel means and stds (Huang & Belongie's L_s)."""
    total = generated[0].new_zeros(())
    for g, s in zip(generated, style):
        g_mean, g_std = mean_std(g)
        s_mean, s_std = mean_std(s)
        total = total + F.mse_loss(g_mean, s_mean) + F.mse_loss(g_std, s_std)
    return total


class AdaINObjective(Objective):
    """Content loss on the AdaIN target plus mean/std style loss; one optimizer over the decoder."""

    name = "adain"

    def __init__(self, model: nn.Module, config: AdaINObjectiveConfig, data: DataInfo, *, styles: StyleImages,
                 total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        self.styles, self.total_steps = styles, total_steps
        self._samples: tuple[torch.Tensor, torch.Tensor] | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": fast_optimizer(torch.optim.Adam, trainable(self.model.decoder.parameters()), lr=cfg.lr,
                                        betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.model
        with torch.no_grad():  # the encoder is frozen: its outputs on the inputs are constants
            target = adain(model.encode(content)[-1], (style_features := model.encode(style))[-1])
        generated = model.encode(model.decode(target))  # gradients reach the decoder through the encoder
        c = F.mse_loss(generated[-1], target)
        s = style_loss(generated, style_features) * self.config.style_weight
        return {"loss": c + s, "content": c, "style": s}

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        content, _ = batch  # (B, 3, p, p) in [0, 1]
        style = self.styles.sample(content.shape[0]).to(content.device)  # (B, 3, p, p)
        if self._samples is None:
            self._samples = (content[:3].detach().float().cpu(), style[:3].detach().float().cpu())
        with ctx.autocast():
            parts = self.losses(content, style)
        ctx.update(parts["loss"].float(), "model")
        return {k: v.detach().float() for k, v in parts.items()}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """Up to 3 fixed (content, style) pairs, one per row: content | style | stylised."""
        if self._samples is None:
            return None
        content, style = self._samples
        device = next(network.parameters()).device
        out = network(content.to(device), style.to(device)).float().cpu().clamp(0, 1)
        rows = torch.stack([content, style, out], dim=1).flatten(0, 1)  # (n, 3, 3, p, p) -> (3n, 3, p, p)
        return rows * 2 - 1


RECIPE = AdaINRecipe
DESCRIPTION = ("arbitrary style (AdaIN, Huang & Belongie): a decoder for a frozen VGG-19 encoder, trained on "
               "photo crops with style_data=folder:PAINTINGS (hold_out=NAME leaves one out)")


def build_dataset(recipe: AdaINRecipe) -> RandomPatchDataset:
    recipe.validate()
    return folder_patches(recipe.data, "adain", 3, "photos")


def build(recipe: AdaINRecipe, data: DataInfo):
    recipe.validate()
    config = recipe.model_config()
    recipe.model = dataclasses.asdict(config)
    styles = StyleImages(recipe.style_data, hold_out=recipe.hold_out, resize=recipe.styles.resize,
                         crop=recipe.data.patch_size, flip=recipe.styles.flip, jitter=recipe.styles.jitter)
    model = create_model(recipe.arch, config)
    attach_encoder(model, recipe.objective.backbone_weights)
    return model, AdaINObjective(model, recipe.objective, data, styles=styles, total_steps=recipe.train.steps)


__all__ = ["ARCHS", "DESCRIPTION", "RECIPE", "AdaINObjective", "AdaINObjectiveConfig", "AdaINRecipe",
           "StyleAugmentConfig", "StyleImages", "build", "build_dataset", "style_loss"]
