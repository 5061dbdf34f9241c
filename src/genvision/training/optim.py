"""Optimizer construction shared by every objective."""

from __future__ import annotations

import torch


def fast_optimizer(cls: type[torch.optim.Optimizer], params, **kwargs) -> torch.optim.Optimizer:
    """``cls`` with its fused kernel (one kernel per step for all tensors) where the device and
    dtype have one, else the multi-tensor ``foreach`` implementation."""
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this optimizer/device/dtype
        return cls(params, foreach=True, **kwargs)
