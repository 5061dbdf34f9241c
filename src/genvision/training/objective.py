"""The contract between a training *objective* (the GAN game, the VAE bound, ...) and the trainer.

Three layers, as in lucidrains' libraries: the net (``genvision.models``), the process that
trains it (an :class:`Objective`), and the loop (``genvision.training.trainer``). The trainer
owns devices, precision, EMA, logging, checkpoints, resume and signal handling; the objective
owns its optimizers and decides what one step does, calling :meth:`StepContext.update` for
every optimizer step so non-finite losses and gradients are caught in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..config import build_dataclass, shown
from ..errors import ConfigError
from ..registry import get_entry
from . import fsdp
from .distributed import SINGLE_PROCESS, DistContext


@dataclass
class DataInfo:
    """What an objective may need to know about the training data."""
    channels: int
    image_size: int
    num_classes: int  # 0 for unlabelled data


def fit_config_to_data(cfg, data: DataInfo, conditional: bool):
    """Copy of a model config with channels, image_size and num_classes taken from the data."""
    if conditional and data.num_classes <= 0:
        raise ConfigError("conditional=true needs a labelled dataset, but this one has no classes")
    fitted = dataclasses.replace(cfg, channels=data.channels, image_size=data.image_size,
                                 num_classes=data.num_classes if conditional else 0)
    fitted.validate()
    return fitted


def arch_section(arch: str, values, family: str, pinned: dict[str, tuple[object, str]]):
    """A recipe's ``model`` section (a mapping or a dataclass) as ``arch``'s config dataclass.

    ``pinned`` holds the fields the recipe decides elsewhere, ``{field: (value, where)}`` (the data's
    channels, the recipe's scale): they are filled in, and a model section that says otherwise is
    refused with a message naming ``where`` the value is set."""
    cls = get_entry(arch).config_cls
    if dataclasses.is_dataclass(values):
        values = dataclasses.asdict(values)
    elif not isinstance(values, dict):
        raise ConfigError(f"the {family} model section must be a mapping of {cls.__name__} fields")
    values = dict(values)
    for name, (value, where) in pinned.items():
        if values.get(name, value) != value:
            raise ConfigError(f"model.{name}={shown(values[name])} contradicts {where}")
        values[name] = value
    return build_dataclass(cls, values, "model")


def check_class_count(model: nn.Module, data: DataInfo) -> None:
    """A conditional model must have as many classes as the data it trains on."""
    if model.num_classes > 0 and data.num_classes == 0:
        raise ConfigError("the model is class-conditional but the dataset is unlabelled")
    if model.num_classes > 0 and model.num_classes != data.num_classes:
        raise ConfigError(f"the model has {model.num_classes} classes but the dataset has {data.num_classes}")


class PhaseBoundary(Exception):
    """Raised out of ``train_step`` by the first update past the phase a micro-batch pass accumulates
    (gradient accumulation; see ``genvision.training.accumulation``)."""


@dataclass
class MicroPass:
    """Where gradient accumulation stands within one step: the pass over micro-batch ``index`` (of ``count``)
    accumulates the step's update number ``phase`` (``update`` calls counted in order). ``outcomes`` holds
    what the step's earlier updates returned (they have stepped already); ``poisoned`` says whether a
    micro-batch of this phase had a non-finite loss. The driver moves one instance from pass to pass."""
    count: int
    phase: int = 0
    index: int = 0
    outcomes: list[bool] = dataclasses.field(default_factory=list)
    poisoned: bool = False


class StepContext:
    """Handed to :meth:`Objective.train_step`; guards every optimizer update."""
    def __init__(self, *, step: int, device: torch.device, precision: str, grad_clip: float | None,
                 optimizers: dict[str, torch.optim.Optimizer], dist: DistContext = SINGLE_PROCESS,
                 micro: MicroPass | None = None, fsdp: bool = False):
        self.step = step
        self.device = device
        self.precision = precision
        self.grad_clip = grad_clip
        self.optimizers = optimizers
        self.dist = dist
        self.micro = micro
        self.fsdp = fsdp  # parameters sharded by FSDP: it reduces the gradients during the backward pass
        self.skipped: list[str] = []  # names of updates skipped for non-finite values this step
        self._calls = 0  # update() calls so far in this train_step

    def draw(self, sample: Callable[[int], torch.Tensor], per_rank: int) -> torch.Tensor:
        """Per-example noise for this rank's ``per_rank`` examples: ``sample(n)`` draws n rows.

        The rows are drawn for the whole global batch and this rank's (and micro-batch's) rows are kept,
        so N ranks, or K micro-batches, train on exactly the noise one process with the whole batch
        would draw (every rank shares the seed; accumulation replays the step's RNG state per pass)."""
        slots, slot = self.dist.world_size, self.dist.rank
        if self.micro is not None:
            slots, slot = slots * self.micro.count, slot * self.micro.count + self.micro.index
        if slots == 1:
            return sample(per_rank)
        return sample(per_rank * slots)[slot * per_rank:(slot + 1) * per_rank]

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast for the forward pass (backward runs outside it, as PyTorch advises)."""
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def update(self, loss: torch.Tensor, optimizer: str) -> bool:
        """Backward ``loss`` and step optimizer ``optimizer`` unless anything is non-finite.

        Returns False (and leaves the weights untouched) when the loss or any gradient is
        NaN/inf; the trainer stops the run after too many consecutive skipped steps.
        """
        if self.micro is not None:
            return self._accumulate(loss, optimizer)
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        finite_loss = bool(torch.isfinite(loss.detach()).all())
        if finite_loss or self.fsdp:  # under FSDP every rank joins the backward's collectives, NaN or not
            loss.backward()
        return self._reduce_and_step(opt, optimizer, finite_loss)

    def _accumulate(self, loss: torch.Tensor, optimizer: str) -> bool:
        """One micro-batch's share of an update: earlier phases already stepped (a no-op here), a later one
        ends the pass; the phase's last micro-batch reduces and steps the summed gradients once, so ranks
        all-reduce once per update, as DDP's ``no_sync`` arranges."""
        micro, call = self.micro, self._calls
        self._calls += 1
        if call < micro.phase:
            return micro.outcomes[call]
        if call > micro.phase:
            raise PhaseBoundary
        opt = self.optimizers[optimizer]
        if micro.index == 0:
            opt.zero_grad(set_to_none=True)
            micro.poisoned = False
        finite = bool(torch.isfinite(loss.detach()).all())
        if finite or self.fsdp:
            (loss / micro.count).backward()  # each loss is its micro-batch's mean; the sum is the batch's mean
        if not finite:
            micro.poisoned = True
        if micro.index < micro.count - 1:
            return not micro.poisoned
        outcome = self._reduce_and_step(opt, optimizer, not micro.poisoned)
        micro.outcomes.append(outcome)
        return outcome

    def _reduce_and_step(self, opt: torch.optim.Optimizer, optimizer: str, finite_loss: bool) -> bool:
        if self.fsdp:
            # The gradients are reduced already; the ranks only agree whether any loss was non-finite.
            if self.dist.max_codes([int(not finite_loss)], self.device)[0]:
                opt.zero_grad(set_to_none=True)
                self.skipped.append(optimizer)
                return False
        elif self.dist.is_distributed:
            # Every rank joins the same all-reduce, even with a non-finite loss (it sends NaN), so all
            # ranks see the same averaged gradients and take (or refuse) the update together.
            trainable = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
            self.dist.average_gradients(trainable, poisoned=not finite_loss)
        elif not finite_loss:
            self.skipped.append(optimizer)
            return False
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        if grads:
            if self.fsdp:  # sharded gradients: the norm over every rank's shards, the same on all of them
                total_norm = fsdp.total_norm(grads)
            else:  # one fused reduction instead of a per-tensor check keeps this cheap
                total_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            if not torch.isfinite(total_norm):
                opt.zero_grad(set_to_none=True)
                self.skipped.append(optimizer)
                return False
            if self.grad_clip is not None and self.fsdp:
                torch.nn.utils.clip_grads_with_norm_(params, self.grad_clip, total_norm)
            elif self.grad_clip is not None:
                torch._foreach_mul_(grads, torch.clamp(self.grad_clip / (total_norm + 1e-6), max=1.0))
        opt.step()
        return True


class Objective:
    """Base class for training objectives. Subclasses set ``name`` and implement the hooks."""
    name: str = "objective"

    def __init__(self, model: nn.Module, config, data: DataInfo):
        self.model = model
        self.config = config
        self.data = data

    # Whether batches must carry labels in 0..data.num_classes-1 (conditional models, classifiers).
    uses_labels: bool = False
    # Why train.grad_accum > 1 cannot reproduce this objective's full-batch step (None: it can). Accumulation
    # replays train_step once per update, so train_step must change no state of its own besides the weights.
    accumulation_blocker: str | None = None

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers by name (built once); the trainer saves and restores their state by name."""
        if getattr(self, "_optimizers", None) is None:
            self._optimizers = self.build_optimizers()
        return self._optimizers

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def check_labels(self, labels: torch.Tensor) -> None:
        """Once per run (one host sync): refuse a batch whose labels the model cannot use
        (unlabelled data arrives with label -1)."""
        if not self.uses_labels or getattr(self, "_labels_checked", False):
            return
        k = self.data.num_classes
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ConfigError(f"this model needs class labels in 0..{k - 1}, but the batch has "
                              f"{int(labels.min())}..{int(labels.max())} (unlabelled data has label -1)")
        self._labels_checked = True

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """One optimisation step on ``(images in [-1, 1] (B, C, H, W), labels (B,))``.

        Returns detached scalar tensors to log (the trainer syncs them only when it logs).
        """
        raise NotImplementedError

    def ema_target(self) -> nn.Module:
        """The sub-network whose weights are averaged and used for sampling."""
        return self.model

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor | None:
        """Images in [-1, 1] (n, C, H, W) for the periodic sample grid; None if not applicable.

        ``network`` is the EMA copy of :meth:`ema_target` when EMA is on.
        """
        return None

    def lr_schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {}

    def state_dict(self) -> dict:
        """Training state the objective keeps besides weights, optimizers and RNG (CycleGAN's
        image pool): tensors and plain values only, saved with the trainer state for exact resume."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (an empty dict for checkpoints written without it)."""


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)
