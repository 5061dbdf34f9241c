"""Who this process is in a (possibly) distributed run: rank, world size, and the few collectives
the trainer needs. One process is world size 1 and every collective is a no-op, so the single-CPU
path runs exactly as it always has; under ``torchrun`` the launcher's environment variables say
where this process stands (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), and the process group must be
initialised (``torch.distributed.init_process_group``) before a multi-process context is made.

What runs where: every rank computes; only the main rank (0) writes logs, samples and checkpoints.
Logged numbers are averaged over ranks first, so the row rank 0 writes describes the whole step.
"""

from __future__ import annotations

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


SINGLE_PROCESS = DistContext()

__all__ = ["DistContext", "SINGLE_PROCESS"]
