"""Exponential moving average of a network's weights (the copy we sample from)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, network: nn.Module, decay: float, start_step: int = 0):
        self.network = network
        self.decay = decay
        self.start_step = start_step
        self.shadow = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, step: int) -> None:
        # Before start_step the average just tracks the weights; after it the decay warms up as
        # (1 + t) / (10 + t), so a short run's average is not dominated by its random start.
        t = step - self.start_step
        weight = 1.0 if t < 0 else 1.0 - min(self.decay, (1 + t) / (10 + t))
        live = [p.detach() for p in self.network.parameters()]
        shadow = list(self.shadow.parameters())
        torch._foreach_lerp_(shadow, live, weight)
        for shadow_buffer, buffer in zip(self.shadow.buffers(), self.network.buffers()):
            shadow_buffer.copy_(buffer)

    def state_dict(self, prefix: str) -> dict[str, torch.Tensor]:
        """Shadow weights keyed as in the full model (``prefix`` = the sub-network's name)."""
        return {f"{prefix}{k}": v for k, v in self.shadow.state_dict().items()}

    def load_state_dict(self, full_state: dict[str, torch.Tensor], prefix: str) -> None:
        own = {k[len(prefix):]: v for k, v in full_state.items() if k.startswith(prefix)}
        self.shadow.load_state_dict(own)


def submodule_prefix(model: nn.Module, target: nn.Module) -> str:
    if target is model:
        return ""
    for name, module in model.named_modules():
        if module is target:
            return name + "."
    raise ValueError("EMA target is not a sub-module of the model")
