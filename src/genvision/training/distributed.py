"""Who this process is in a (possibly) distributed run: rank, world size, and the few collectives
the trainer needs. One process is world size 1 and every collective is a no-op, so the single-CPU
path runs exactly as it always has; under ``torchrun`` the launcher's environment variables say
where this process stands (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), and the process group must be
initialised (``torch.distributed.init_process_group``) before a multi-process context is made.

What runs where: every rank computes; only the main rank (0) writes logs, samples and checkpoints.
Logged numbers are averaged over ranks first, so the row rank 0 writes describes the whole step.

Gradients are averaged over ranks at each optimizer step (:meth:`DistContext.average_gradients`, called
by ``StepContext.update``), not by wrapping networks in ``DistributedDataParallel``: an objective may run a
network several times per update (a GAN's D on real and on fake images, G's loss through D, gradient
penalties that need double backward, which DDP does not support). NVIDIA's StyleGAN2-ADA and StyleGAN3
training loops reduce gradients the same way, one flat all-reduce per update. What DDP does besides,
this module does too: parameters and buffers start from rank 0's (:meth:`broadcast_module`), and
buffers (BatchNorm statistics) follow rank 0's after every step unless BatchNorm is synchronised.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank {self.rank} does not fit world size {self.world_size}")

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environment(cls) -> "DistContext":
        """The context ``torchrun`` describes in the environment; a plain process is rank 0 of 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not (dist.is_available() and dist.is_initialized()):
            raise ConfigError(f"WORLD_SIZE={world} but no process group is initialised: call "
                              f"torch.distributed.init_process_group first")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def mean(self, values: dict[str, float], device: torch.device | str = "cpu") -> dict[str, float]:
        """Average scalar metrics over all ranks (a collective: every rank must call it)."""
        if not self.is_distributed or not values:
            return values
        keys = sorted(values)
        packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
        dist.all_reduce(packed, op=dist.ReduceOp.SUM)
        return {k: float(v) / self.world_size for k, v in zip(keys, packed.tolist())}

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier()

    def max_codes(self, codes: list[int], device: torch.device | str = "cpu") -> list[int]:
        """Element-wise maximum over ranks (a collective): how ranks agree to stop when any one must."""
        if not self.is_distributed:
            return codes
        packed = torch.tensor(codes, dtype=torch.int64, device=device)
        dist.all_reduce(packed, op=dist.ReduceOp.MAX)
        return packed.tolist()

    def broadcast_module(self, module: torch.nn.Module, *, buffers_only: bool = False) -> None:
        """Make every rank's parameters (and buffers) rank 0's, as DistributedDataParallel does."""
        if not self.is_distributed:
            return
        tensors = [*([] if buffers_only else module.parameters()), *module.buffers()]
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)

    def average_gradients(self, params: list[torch.nn.Parameter], poisoned: bool = False) -> None:
        """Replace each parameter's gradient with its mean over ranks, in one flat all-reduce.

        A parameter none of the ranks computed a gradient for keeps ``grad = None`` (so the optimizer
        skips it, as it would in one process); one that only some ranks reached counts zero for the
        others. ``poisoned`` (this rank's loss was non-finite) sends NaN, so every rank refuses the
        update together instead of waiting for each other in different collectives."""
        if not self.is_distributed or not params:
            return
        grads = [torch.full_like(p, math.nan) if poisoned else (p.grad if p.grad is not None else torch.zeros_like(p))
                 for p in params]
        present = torch.tensor([poisoned or p.grad is not None for p in params], dtype=grads[0].dtype,
                               device=grads[0].device)
        flat = torch._utils._flatten_dense_tensors([*grads, present])  # (sum of numels + len(params),)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        *averaged, reached = torch._utils._unflatten_dense_tensors(flat, [*grads, present])
        for param, grad, count in zip(params, averaged, reached.tolist()):
            if count == 0:
                param.grad = None
            else:
                # Copy into a tensor laid out like the parameter (channels_last weights): a fused optimizer
                # steps parameter and gradient element by element in memory order.
                target = param.grad if param.grad is not None and not poisoned else torch.empty_like(param)
                param.grad = target.copy_(grad).div_(self.world_size)


SINGLE_PROCESS = DistContext()

__all__ = ["DistContext", "SINGLE_PROCESS"]
