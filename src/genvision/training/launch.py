"""Joining the process group ``torchrun`` describes, and launching torchrun for ``--nproc N``.

genvision does not grow its own launcher: ``torchrun`` (``python -m torch.distributed.run``) starts the
processes, sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``, and handles multi-node
rendezvous; ``genvision train ... --nproc N`` only runs torchrun's own entry point with that command line,
in this process: torch is imported already, and a second interpreter would import it again (seconds).
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist

from ..errors import ConfigError, reason
from ..runtime import select_device
from .distributed import SINGLE_PROCESS, DistContext

# How long a rank waits for the others at a collective before the job fails (rank 0 may spend a
# while writing a checkpoint or evaluating while the others wait).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
NAME_BYTES = 255  # run names are short ASCII (see config.check_run_name); the length fits one byte


def world_size_from_environment() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number") from None


def join_process_group(device_name: str) -> tuple[DistContext, torch.device, bool]:
    """(context, this rank's device, whether this call created the group). One process: no group.

    Under torchrun, CUDA ranks take the GPU of their ``LOCAL_RANK`` and talk over NCCL; CPU ranks use gloo."""
    device = select_device(device_name)
    if world_size_from_environment() <= 1:
        return SINGLE_PROCESS, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ConfigError(f"distributed training runs on cuda (NCCL) or cpu (gloo) devices, not {device.type}")
    created = False
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"could not join the torchrun process group ({reason(exc)}); launch with "
                              f"torchrun --nproc-per-node N -m genvision train ...") from None
        created = True
    return DistContext.from_environment(), device, created


def broadcast_text(context: DistContext, text: str | None) -> str | None:
    """Rank 0's ``text`` on every rank (a default run name holds a timestamp the ranks may not share)."""
    if not context.is_distributed:
        return text
    encoded = (text or "").encode()[:NAME_BYTES]
    buffer = torch.zeros(NAME_BYTES + 1, dtype=torch.uint8)  # (length byte count, then the bytes)
    buffer[0] = len(encoded) if context.is_main else 0
    if context.is_main:
        buffer[1:1 + len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8)
    if dist.get_backend() == "nccl":
        buffer = buffer.cuda()
    dist.broadcast(buffer, src=0)
    length = int(buffer[0])
    return bytes(buffer[1:1 + length].tolist()).decode() or None


def leave_process_group(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


def run_torchrun(nproc: int, args: list[str]) -> int:
    """Run ``genvision ARGS`` as ``nproc`` local processes under torchrun's agent, in this process, and
    return the exit status: 0, the first failed rank's own status (143 after a SIGTERM checkpoint), or
    128 + N when signal N reaches this process (the agent then stops every rank)."""
    # torchrun's agent modules take ~1.2 s to import, and only the --nproc launcher needs them
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc-per-node={nproc}", "-m", "genvision", *args])
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        status = failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode  # -N: killed by signal N
        print(f"error: rank {rank} exited with status {status} (its message is above)", file=sys.stderr)
        return status
    except SignalException as exc:
        return 128 + int(exc.sigval)
    return 0


__all__ = ["broadcast_text", "join_process_group", "leave_process_group", "run_torchrun",
           "world_size_from_environment"]
