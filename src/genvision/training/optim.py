"""Optimizer construction shared by every objective."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def fast_optimizer(cls: type[torch.optim.Optimizer], params, **kwargs) -> torch.optim.Optimizer:
    """``cls`` with its fused kernel (one kernel per step for all tensors) where the device and
    dtype have one, else the multi-tensor ``foreach`` implementation."""
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this optimizer/device/dtype
        return cls(params, foreach=True, **kwargs)


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights (ndim >= 2) only: decaying norm scales and biases only
    fights the normalisation."""
    decay = [p for p in module.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [p for p in params if p.requires_grad]


__all__ = ["decay_groups", "fast_optimizer", "trainable"]
