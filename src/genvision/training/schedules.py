"""Learning-rate schedules shared by every objective: a linear warm-up, then a cosine decay (or a
constant rate), as one LambdaLR factor.

The factor is a plain function closing over numbers, not a callable object, so LambdaLR's
``state_dict`` holds only numbers and the trainer state stays loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math

import torch

from ..config import check_range
from ..errors import ConfigError

SCHEDULES = ("cosine", "constant")


def lr_factor(step: int, *, total_steps: int, warmup_steps: int, schedule: str = "cosine",
              min_lr_ratio: float = 0.0) -> float:
    """Multiplier of the base lr for the update made at ``step`` (0-based).

    Warm-up: ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (so the first update is
    not wasted at lr 0). Cosine: with ``p = (step - warmup) / (total - warmup)`` in [0, 1),
    ``min + (1 - min) * (1 + cos(pi p)) / 2``. Constant: 1 after the warm-up.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_schedule(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int,
                    schedule: str = "cosine", min_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """``optimizer``'s lr times :func:`lr_factor` of the step."""

    def factor(step: int) -> float:
        return lr_factor(step, total_steps=total_steps, warmup_steps=warmup_steps, schedule=schedule,
                         min_lr_ratio=min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def config_schedules(optimizers: dict[str, torch.optim.Optimizer], config, total_steps: int, *,
                     warmup: str = "warmup_steps") -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """One :func:`warmup_schedule` per optimizer, set by an objective config's ``schedule``,
    ``min_lr_ratio`` and warm-up steps (the field ``warmup`` names)."""
    return {name: warmup_schedule(optimizer, total_steps=total_steps, warmup_steps=getattr(config, warmup),
                                  schedule=config.schedule, min_lr_ratio=config.min_lr_ratio)
            for name, optimizer in optimizers.items()}


def check_schedule(config, prefix: str = "objective") -> None:
    """The range checks of an objective config's ``schedule``, ``warmup_steps`` and ``min_lr_ratio``
    (what :func:`config_schedules` reads), with messages naming ``prefix.key``."""
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"{prefix}.schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}")
    check_range(f"{prefix}.warmup_steps", config.warmup_steps, 0)
    check_range(f"{prefix}.min_lr_ratio", config.min_lr_ratio, 0.0, 1.0)


__all__ = ["SCHEDULES", "check_schedule", "config_schedules", "lr_factor", "warmup_schedule"]
