"""``genvision train simclr --data folder:PHOTOS [key=value ...]``: an image embedding learned without labels.

SimCLR (Chen, Kornblith, Norouzi & Hinton, ICML 2020): every image of a batch of N gives two random views
(:mod:`.selfsup_views`: crop, flip, colour jitter, grey, blur, resize, JPEG); the encoder
(:class:`genvision.models.embednet.EmbedNet`, kind ``embed``) and its projection head map the 2N views to
``z``, L2-normalised, and NT-Xent pulls each view towards its partner and away from the other 2N - 2::

    l(i, j) = -log( exp(sim(z_i, z_j) / t) / sum_{k != i} exp(sim(z_i, z_k) / t) )
    L       = 1 / 2N * sum over the N pairs (i, j) of [ l(i, j) + l(j, i) ]

with ``sim`` the cosine and ``t`` the temperature. The trained backbone's pooled features (not the
projection) are the retrieval embedding: ``genvision index build PHOTOS --embed simclr:RUN_DIR``.

Data: ``folder:PATH`` (photos of any size, the shorter side resized to ``data.load_size`` once, then a random
``data.image_size`` square per draw) or a named dataset (``mnist``, ``mnist-mini``: grey digits at their own
size; set ``views.flip=false`` for digits). Batches reach the objective in [0, 1].
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...config import MAX_IMAGE_SIZE, DataConfig, TrainConfig, check_optimizer, check_range
from ...data import dataset_from_config
from ...data.patches import AlignedPatchDataset
from ...errors import ConfigError, DataError
from ...ops import warps
from ...ops.geometry import warp_tensor
from ...registry import create_model
from ...training.objective import DataInfo, Objective, StepContext, arch_section
from ...training.optim import decay_groups, fast_optimizer
from ...training.schedules import check_schedule, config_schedules
from .selfsup_views import ViewConfig, make_views, random_view

__all__ = ["DESCRIPTION", "RECIPE", "PhotoCrops", "SelfSupDataConfig", "SimCLRObjective", "SimCLRObjectiveConfig",
           "SimCLRRecipe", "UnitRangeDataset", "build", "build_dataset", "nt_xent"]

FOLDER_SIDE = 64  # the views' side for folder data when data.image_size is not given
GRID_ROWS = 6  # the sample grid: 6 images, each followed by 5 of its views (a 6 x 6 grid)


@dataclass
class SelfSupDataConfig(DataConfig):
    name: str = "folder:../shared/data/sr-train"  # folder:PATH of photos (any sizes) | mnist | mnist-mini | ...
    image_size: int | None = None  # the views' side; None: 64 for folder data, a named dataset's own (mnist 28)
    load_size: int | None = 80  # folder data: each photo's shorter side is resized to this first (None keeps it)
    repeat: int = 10  # folder data: random squares per photo per "epoch" (only the data order depends on it)

    def validate(self) -> None:
        super().validate()
        if self.load_size is not None:
            check_range("data.load_size", self.load_size, 8, MAX_IMAGE_SIZE)
            if self.name.startswith("folder:") and self.load_size < (self.image_size or FOLDER_SIDE):
                raise ConfigError(f"data.load_size={self.load_size} is smaller than the views' side "
                                  f"{self.image_size or FOLDER_SIDE} (data.image_size)")
        check_range("data.repeat", self.repeat, 1, 10_000)


@dataclass
class SimCLRObjectiveConfig:
    temperature: float = 0.2  # NT-Xent's t (SimCLR: 0.1-0.5; lower = harder negatives)
    lr: float = 1e-3  # AdamW (SimCLR used LARS at batch 4096; Adam suits the small batches of one machine)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-4  # on conv/linear weights only
    warmup_steps: int = 100
    schedule: str = "cosine"  # cosine (SimCLR's) | constant
    min_lr_ratio: float = 0.0

    def validate(self) -> None:
        check_range("objective.temperature", self.temperature, 0.01, 10.0)
        check_optimizer("objective", self.lr, self.betas, self.weight_decay)
        check_schedule(self)


@dataclass
class SimCLRRecipe:
    arch = "embednet"  # the one architecture (a class attribute, not a recipe key): what `model` configures
    model: dict[str, Any] = field(default_factory=dict)  # EmbedNetConfig fields (width, blocks, stem_stride, ...)
    objective: SimCLRObjectiveConfig = field(default_factory=SimCLRObjectiveConfig)
    views: ViewConfig = field(default_factory=ViewConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=3000, batch_size=64, ema=False, log_every=20, sample_every=500, ckpt_every=500))
    data: SelfSupDataConfig = field(default_factory=SelfSupDataConfig)

    def validate(self) -> None:
        if self.train.batch_size < 2:
            raise ConfigError(f"train.batch_size must be >= 2 for simclr (an image's negatives are the other "
                              f"images of its batch), got {self.train.batch_size}")
        self.views.validate()
        self.objective.validate()
        self.model_config(self.data.channels, self.data.image_size)

    def model_config(self, channels: int | None, image_size: int | None):
        """The model section as an EmbedNetConfig, with what the data decides filled in (when known)."""
        pinned = {}
        if channels is not None:
            pinned["channels"] = (channels, f"the data's {channels} channels (set data.channels=)")
        if image_size is not None:
            pinned["image_size"] = (image_size, f"the data's image size {image_size} (set data.image_size=)")
        return arch_section(self.arch, self.model, "simclr", pinned)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss of two views' projections (N, D) each (row i of both: the same image)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2N, D)
    logits = z @ z.T / temperature  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # no self-pairs
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)  # (2N,): i <-> i + N
    return F.cross_entropy(logits, partners)


class PhotoCrops(AlignedPatchDataset):
    """Random ``side`` squares of the photos in ``folder``, each photo's shorter side first resized to
    ``load_size`` (None keeps the photo as it is). ``get_batch``: (B, C, side, side) in [0, 1], labels -1."""

    def __init__(self, folder: str, *, side: int, load_size: int | None, repeat: int, limit: int | None,
                 channels: int):
        prepare = None if load_size is None else lambda image: (_shorter_side_to(image, load_size),)
        super().__init__(folder, patch=side, min_size=side if load_size is None else min(side, 32), prepare=prepare,
                         repeat=repeat, augment=False, limit=limit, channels=channels,
                         fingerprint_key=f"simclr|{side}|{load_size}|{channels}")
        self.image_size = side

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (crops,) = self.crop(indices)  # (B, C, side, side) in [0, 1]
        return crops, torch.full((crops.shape[0],), -1, dtype=torch.long)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        crops, labels = self.get_batch(torch.tensor([index]))
        return crops[0], labels[0]


def _shorter_side_to(image: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 (C, H, W) -> uint8 (C, h, w) with min(h, w) = side, the aspect kept (antialiased)."""
    h, w = image.shape[-2:]
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    resized = warp_tensor(image.float() / 255, warps.resize((h, w), *size))  # (C, h', w') in [0, 1]
    return (resized * 255).round().clamp(0, 255).to(torch.uint8)


class UnitRangeDataset:
    """A named dataset (batches in [-1, 1]) handing out [0, 1], the range the views are made in."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.name, self.channels, self.image_size = dataset.name, dataset.channels, dataset.image_size
        self.num_classes = 0  # the labels are never used for training

    def __len__(self) -> int:
        return len(self.dataset)

    def fingerprint(self) -> str:
        return self.dataset.fingerprint()

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.dataset.get_batch(indices)
        return (images + 1) / 2, labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.dataset[index]
        return (image + 1) / 2, label


def build_dataset(recipe: SimCLRRecipe):
    recipe.validate()
    data = recipe.data
    if data.name.startswith("folder:"):
        folder = data.name[len("folder:"):]
        if not folder:
            raise DataError("data.name folder: needs a path, e.g. --data folder:./photos")
        return PhotoCrops(folder, side=data.image_size or FOLDER_SIDE, load_size=data.load_size, repeat=data.repeat,
                          limit=data.limit, channels=data.channels or 3)
    return UnitRangeDataset(dataset_from_config(data, split="train"))


class SimCLRObjective(Objective):
    """NT-Xent on two views per image; one optimizer, ``"model"`` (backbone and projection head)."""

    name = "simclr"

    def __init__(self, model: nn.Module, config: SimCLRObjectiveConfig, views: ViewConfig, data: DataInfo, *,
                 total_steps: int):
        super().__init__(model, config, data)
        config.validate()
        views.validate()
        self.views = views
        self.total_steps = total_steps
        self._samples: torch.Tensor | None = None  # the first images seen, for the sample grid (and resumed with it)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"model": fast_optimizer(torch.optim.AdamW, decay_groups(self.model, cfg.weight_decay), lr=cfg.lr,
                                        betas=tuple(cfg.betas))}

    def lr_schedulers(self):
        return config_schedules(self.optimizers(), self.config, self.total_steps)

    def state_dict(self) -> dict:
        return {} if self._samples is None else {"samples": self._samples}

    def load_state_dict(self, state: dict) -> None:
        samples = state.get("samples")
        self._samples = samples.float().cpu() if isinstance(samples, torch.Tensor) else None

    def losses(self, images: torch.Tensor, ctx: StepContext | None = None) -> dict[str, torch.Tensor]:
        """NT-Xent and diagnostics for images (B, C, S, S) in [0, 1]: ``top1`` is the share of views whose
        nearest other view (in the projection) is their partner; ``positive``/``negative`` mean cosines."""
        view_a, view_b = make_views(images.float(), self.views)  # (B, C, S, S) each
        views = torch.cat([view_a, view_b])  # (2B, C, S, S): one forward pass, one set of BatchNorm statistics
        with ctx.autocast() if ctx is not None else contextlib.nullcontext():
            z = self.model.project(self.model.forward_features(views))  # (2B, proj_dim)
        z = z.float()
        n = images.shape[0]
        loss = nt_xent(z[:n], z[n:], self.config.temperature)
        with torch.no_grad():
            unit = F.normalize(z, dim=1)
            cosine = unit @ unit.T  # (2B, 2B)
            partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
            positive = cosine[torch.arange(2 * n, device=z.device), partners]  # (2B,)
            others = cosine.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
            top1 = (others.argmax(dim=1) == partners).float().mean()
            negative = (cosine.sum() - cosine.diagonal().sum() - positive.sum()) / max(1, 2 * n * (2 * n - 2))
        return {"loss": loss, "top1": top1, "positive": positive.mean(), "negative": negative}

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, _ = batch  # (B, C, S, S) in [0, 1]; labels unused
        if self._samples is None:
            self._samples = images[:GRID_ROWS].detach().float().cpu().contiguous()
        parts = self.losses(images, ctx)
        ctx.update(parts["loss"], "model")
        return {k: v.detach() for k, v in parts.items()}

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """What the network is taught to ignore: each row an image, then 5 of its views (in [-1, 1])."""
        if self._samples is None:
            return None
        generator = torch.Generator().manual_seed(seed)  # its own RNG: drawing a grid never moves training's
        rows = self._samples[[i % self._samples.shape[0] for i in range(GRID_ROWS)]]  # a short batch repeats
        columns = [rows] + [random_view(rows, self.views, generator) for _ in range(GRID_ROWS - 1)]
        return torch.stack(columns, dim=1).flatten(0, 1) * 2 - 1  # (36, C, S, S): row by row


RECIPE = SimCLRRecipe
DESCRIPTION = ("self-supervised image embedding for retrieval (SimCLR): a small ResNet (embednet) trained with "
               "NT-Xent on two augmented views per unlabelled image (--data folder:PHOTOS or mnist)")


def build(recipe: SimCLRRecipe, data: DataInfo) -> tuple[nn.Module, SimCLRObjective]:
    recipe.validate()
    if recipe.data.channels is not None and data.channels != recipe.data.channels:
        raise ConfigError(f"the data has {data.channels} channels but data.channels={recipe.data.channels}")
    config = recipe.model_config(data.channels, data.image_size)
    recipe.model = dataclasses.asdict(config)
    model = create_model(recipe.arch, config)  # through the registry: the meta-device size bound applies
    return model, SimCLRObjective(model, recipe.objective, recipe.views, data, total_steps=recipe.train.steps)
