"""Fast feed-forward style (Johnson, Alahi & Fei-Fei 2016): ``genvision train style style=PAINTING.jpg
--data folder:PHOTOS [key=value ...]`` trains one :class:`genvision.models.style.JohnsonNet` per style;
``styles=[A.jpg,B.jpg,...]`` instead trains one network for all of them (conditional instance norm,
Dumoulin et al. 2017), each style then selected by its file's stem (``genvision stylize --style A``).

Data: random ``data.patch_size`` crops of the photos (flips/rotations), in [0, 1]. Loss: the optimisation
method's own objective (:mod:`.losses`) on the network's output ``y`` for a crop ``c``::

    content_weight * mean((F_l(y) - F_l(c))^2) + style_weight * sum_l mean((G_l(y) - G_l(s))^2) + tv_weight * TV(y)

with the same VGG, layers and default weights as ``stylize --method optimize``, so the losses of the two
methods' results compare directly. The style's Gram targets are computed once, at build, from the style
image resized to a crop's area times ``objective.style_scale^2``. The style image's path is the recipe's
``style`` and its sha256 is recorded beside it: a resume refuses a changed file. With several styles, the
i-th crop of step t is trained on style ``(t * batch + i) mod N``: every style gets the same share of
crops, and the choice is a function of the step, so a resumed run continues exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ... import io as gio
from ...config import TrainConfig, check_optimizer, check_range
from ...data.patches import PatchDataConfig, RandomPatchDataset, folder_patches
from ...errors import ConfigError, display_path
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import fast_optimizer, trainable
from ...training.schedules import check_schedule, config_schedules
from .backbones import LOSS_BACKBONES, loss_network
from .losses import content_loss, gram_loss, gram_matrix, mean_grams, total_variation
from .optimize import area_size, resize
from .settings import CONTENT_LAYERS, STYLE_LAYERS

ARCHS = ("johnson",)


@dataclass
class FastStyleDataConfig(PatchDataConfig):
    patch_size: int = 256  # Johnson et al. trained on 256x256 COCO images
    repeat: int = 1


@dataclass
class FastStyleObjectiveConfig:
    backbone: str = "vgg19"  # the loss network: vgg19 | vgg16 | random (untrained, for tests)
    backbone_weights: str | None = None  # a VGG weights file instead of genvision's cache
    style_layers: tuple[str, ...] = STYLE_LAYERS  # Gatys et al.'s five, as the optimisation method
    content_layers: tuple[str, ...] = CONTENT_LAYERS  # relu4_2, as the optimisation method
    content_weight: float = 1.0  # the optimisation method's defaults: its losses and ours compare
    style_weight: float = 1e3
    tv_weight: float = 0.0  # total variation on [0, 1] pixels (losses are ~1e6 at these weights)
    style_scale: float = 1.0  # style image area relative to a crop's (larger = bigger strokes)
    lr: float = 1e-3  # Adam, as Johnson et al.
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "constant"  # constant (the paper's) | cosine
    min_lr_ratio: float = 0.1

    def validate(self) -> None:
        if self.backbone not in LOSS_BACKBONES:
            raise ConfigError(f"objective.backbone must be one of {', '.join(LOSS_BACKBONES)}, got {self.backbone!r}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            check_range(f"objective.{name}", getattr(self, name), 0.0, 1e12)
        if self.style_weight == 0:
            raise ConfigError("objective.style_weight is 0: the network would learn no style")
        if not self.style_layers or not self.content_layers:
            raise ConfigError("objective.style_layers and objective.content_layers need at least one layer each")
        check_range("objective.style_scale", self.style_scale, 0.05, 20.0)
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        check_schedule(self)


@dataclass
class FastStyleRecipe:
    style: str | None = None  # the style image (a painting); this or styles is required
    style_sha256: str | None = None  # filled in at the start of a run: a resume refuses a changed style file
    styles: tuple[str, ...] = ()  # several style images for one network (named by their file stems)
    styles_sha256: tuple[str, ...] = ()  # as style_sha256, one per image of styles
    arch: str = "johnson"
    model: dict[str, Any] = field(default_factory=dict)  # JohnsonConfig fields (width, blocks)
    objective: FastStyleObjectiveConfig = field(default_factory=FastStyleObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2000, batch_size=4, ema=False, log_every=20, sample_every=500, ckpt_every=250))
    data: FastStyleDataConfig = field(default_factory=FastStyleDataConfig)

    def validate(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown style arch {self.arch!r}; choose from {', '.join(ARCHS)}")
        self.model_config()
        self.objective.validate()
        if self.style and self.styles:
            raise ConfigError("give style=PAINTING for one style or styles=[A,B,...] for several, not both")
        if len(self.styles) == 1:
            raise ConfigError("styles= lists several paintings; for one, give style=PAINTING")
        stems = [Path(p).stem for p in self.styles]
        if len(set(stems)) != len(stems):
            raise ConfigError(f"styles name each style by its file stem, and two share one: {', '.join(stems)}")

    def model_config(self):
        return arch_section(self.arch, self.model, "style", {})


def build_dataset(recipe: FastStyleRecipe) -> RandomPatchDataset:
    recipe.validate()
    return folder_patches(recipe.data, "style", 3, "photos")


def _read_checked(name: str, recorded: str | None) -> tuple[torch.Tensor, str]:
    """A style image (1, 3, H, W) in [0, 1] and its sha256, refusing one that differs from ``recorded``."""
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"style image {display_path(path)} not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if recorded not in (None, digest):
        raise ConfigError(f"style image {display_path(path)} changed since this run started (sha256 "
                          f"{digest[:12]}... is not {recorded[:12]}...); start a new run")
    return gio.load_image_tensor(path, channels=3)[None], digest  # (1, 3, H, W)


def read_style(recipe: FastStyleRecipe) -> list[torch.Tensor]:
    """The style images, each (1, 3, H, W) in [0, 1]; records their sha256, or refuses a file that changed
    since. (Checked here, when the run is built, not in ``validate``: a recipe without its style still parses.)"""
    if recipe.styles:
        recorded = list(recipe.styles_sha256) or [None] * len(recipe.styles)
        if len(recorded) != len(recipe.styles):
            raise ConfigError(f"styles_sha256 has {len(recorded)} entries for {len(recipe.styles)} styles")
        read = [_read_checked(name, digest) for name, digest in zip(recipe.styles, recorded)]
        recipe.styles_sha256 = tuple(digest for _, digest in read)
        return [image for image, _ in read]
    if not recipe.style:
        raise ConfigError("give the style image: genvision train style style=PAINTING.jpg --data folder:PHOTOS")
    image, recipe.style_sha256 = _read_checked(recipe.style, recipe.style_sha256)
    return [image]


class FastStyleObjective(Objective):
    """The perceptual loss of Johnson et al. on the network's output; one optimizer, ``"model"``."""

    name = "style"

    def __init__(self, model: nn.Module, config: FastStyleObjectiveConfig, data: DataInfo,
                 *, style: torch.Tensor | list[torch.Tensor], total_steps: int, extractor: nn.Module | None = None):
        super().__init__(model, config, data)
        config.validate()
        self.total_steps = total_steps
        layers = list(dict.fromkeys([*config.content_layers, *config.style_layers]))
        if extractor is None:
            extractor, self.backbone = loss_network(config.backbone, layers, config.backbone_weights)
        self.extractor = extractor.eval().requires_grad_(False)
        styles = [style] if isinstance(style, torch.Tensor) else list(style)
        self.style_count = len(styles)
        per_style = []
        for image in styles:  # the targets are fixed for the whole run: computed once, here
            size = area_size(*image.shape[-2:], data.image_size ** 2 * config.style_scale ** 2)
            per_style.append(mean_grams(self.extractor, [resize(image, size)], [1.0], config.style_layers))
        # layer -> (S, C, C): row s is style s's Gram target
        self.style_targets = {k: torch.stack([g[k] for g in per_style]) for k in config.style_layers}
        self._samples: torch.Tensor | None = None

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": fast_optimizer(torch.optim.Adam, trainable(self.model.parameters()), lr=cfg.lr,
                                        betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def _features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.extractor(images.contiguous(memory_format=torch.channels_last))  # oneDNN's preferred layout

    def style_ids(self, step: int, batch: int) -> torch.Tensor:
        """(B,) the style of each crop at ``step``: round-robin over crops, a function of the step alone."""
        return (step * batch + torch.arange(batch)) % self.style_count

    def losses(self, output: torch.Tensor, content: torch.Tensor,
               style_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The weighted terms and their sum for outputs (B, 3, H, W) of crops ``content``, crop i scored
        against style ``style_ids[i]`` (style 0 for all when None)."""
        cfg = self.config
        if next(iter(self.style_targets.values())).device != output.device:
            self.extractor.to(output.device)
            self.style_targets = {k: v.to(output.device) for k, v in self.style_targets.items()}
        with torch.no_grad():
            content_targets = self._features(content)
        features = self._features(output)
        zero = output.new_zeros(())
        c = sum((content_loss(features[k], content_targets[k]) for k in cfg.content_layers), zero) * cfg.content_weight
        ids = torch.zeros(output.shape[0], dtype=torch.long) if style_ids is None else style_ids
        ids = ids.to(output.device)
        # each crop's Gram against its own style's: targets (S, C, C) indexed to (B, C, C)
        s = sum((gram_loss(gram_matrix(features[k]), t[ids]) for k, t in self.style_targets.items()),
                zero) * cfg.style_weight
        tv = total_variation(output) * cfg.tv_weight if cfg.tv_weight > 0 else zero
        return {"loss": c + s + tv, "content": c, "style": s, "tv": tv}

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        content, _ = batch  # (B, 3, p, p) in [0, 1]; labels are -1
        if self._samples is None:
            self._samples = content[:3].detach().float().cpu().contiguous()
        ids = self.style_ids(ctx.step, content.shape[0]) if self.style_count > 1 else None
        with ctx.autocast():
            # one-hot (B, S) mixes: each crop through its own style's norms
            output = self.model(content) if ids is None else self.model(content, F.one_hot(ids, self.style_count))
        parts = self.losses(output.float(), content, ids)
        ctx.update(parts["loss"], "model")
        return {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """Up to 3 fixed training crops, one per row: crop | stylised."""
        if self._samples is None:
            return None
        device = next(network.parameters()).device
        if self.style_count == 1:
            out = network(self._samples.to(device))
        else:  # the sampled crops in styles 0, 1, 2, ...: one row each
            ids = torch.arange(len(self._samples)) % self.style_count
            out = network(self._samples.to(device), F.one_hot(ids, self.style_count))
        out = out.float().cpu().clamp(0, 1)
        rows = torch.stack([self._samples, out], dim=1).flatten(0, 1)  # (n, 2, 3, p, p) -> (2n, 3, p, p)
        return rows * 2 - 1  # the trainer's grids are in [-1, 1]


RECIPE = FastStyleRecipe
DESCRIPTION = ("fast feed-forward style (Johnson et al., arch=johnson): one network per style=PAINTING (or one "
               "for styles=[A,B,...], conditional instance norm), trained on random photo crops with the "
               "optimisation method's Gram/content losses on VGG-19")


def build(recipe: FastStyleRecipe, data: DataInfo, *, extractor: nn.Module | None = None):
    recipe.validate()
    config = recipe.model_config()
    if recipe.styles:  # the network's style count and names come from the recipe's images
        config.styles, config.style_names = len(recipe.styles), tuple(Path(p).stem for p in recipe.styles)
    elif config.styles != 1:
        raise ConfigError("model.styles is set from styles=[A,B,...]; with one style=PAINTING leave it at 1")
    recipe.model = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
    style = read_style(recipe)
    model = create_model(recipe.arch, config)
    return model, FastStyleObjective(model, recipe.objective, data, style=style, total_steps=recipe.train.steps,
                                     extractor=extractor)


__all__ = ["ARCHS", "DESCRIPTION", "RECIPE", "FastStyleDataConfig", "FastStyleObjective",
           "FastStyleObjectiveConfig", "FastStyleRecipe", "build", "build_dataset", "read_style"]
