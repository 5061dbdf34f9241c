"""Fully sharded data parallel (``train.fsdp=true``) for transformer models that do not fit one device.

PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) does the work: each transformer block, then the
whole model, is sharded over the ranks, so a rank holds 1/N of the weights, gradients and optimizer state
and gathers one block's weights at a time for its forward and backward; gradients are reduce-scattered (and
averaged) during the backward pass, so the trainer's own gradient all-reduce is skipped. This module is the
little the trainer needs around it: which blocks to shard, and full (unsharded) state dicts for checkpoints,
samples and resume, gathered collectively and kept on rank 0's CPU (``torch.distributed.checkpoint``'s
state-dict helpers).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

BLOCK_LISTS = "blocks"  # the attribute holding a transformer's blocks (DiT, MaskGIT, ViT)


def transformer_blocks(model: nn.Module) -> list[nn.Module]:
    """Every child of an ``nn.ModuleList`` named ``blocks`` anywhere in ``model``: FSDP's units."""
    return [block for name, module in model.named_modules()
            if name.rsplit(".", 1)[-1] == BLOCK_LISTS and isinstance(module, nn.ModuleList) for block in module]


def shard(model: nn.Module) -> None:
    """Shard ``model`` in place over the default process group, block by block."""
    from torch.distributed.fsdp import fully_shard

    blocks = transformer_blocks(model)
    if not blocks:
        raise ConfigError(f"train.fsdp=true shards transformer blocks, and {type(model).__name__} has none: use it "
                          f"for dit, maskgit or a vit classifier (other models fit one device; --nproc alone "
                          f"replicates them)")
    for block in blocks:
        fully_shard(block)
    fully_shard(model)


def _options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def full_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The unsharded state dict on rank 0's CPU ({} on the other ranks); a collective."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(module, options=_options(cpu_offload=True))


def load_full_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load an unsharded state dict (every rank passes the whole of it) into the sharded ``module``."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(module, state, options=_options())


def full_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's unsharded state, keyed by parameter names, on rank 0's CPU; a collective."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_options(cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=_options())


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The global L2 norm of sharded gradients (DTensors), the same plain tensor on every rank; a collective."""
    norm = torch.nn.utils.get_total_norm(grads)
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


__all__ = ["transformer_blocks", "shard", "full_state", "load_full_state", "full_optimizer_state",
           "load_optimizer_state", "total_norm"]
