"""Gradient accumulation (``train.grad_accum=K``): one step's update from K micro-batches, for any objective.

An objective's ``train_step`` may make several updates that depend on each other (a GAN steps D, then
computes G's loss through the new D). Accumulating every update over all micro-batches and stepping at the
end would silently turn that alternating game into simultaneous updates. So the step runs *phase by phase*,
as StyleGAN2-ADA's loop does: a pass over the K micro-batches accumulates the first update and steps it
once; the next pass replays ``train_step`` with that update now a no-op (the weights have moved, exactly as
in one full-batch step) and accumulates the second; and so on until a pass runs ``train_step`` to its end.
A single-optimizer objective (VAE, DiT, classifiers, SR) takes one pass; a two-update GAN pays one extra
forward of its first phase per micro-batch.

Every pass restores the step's RNG state and draws per-example noise for the whole batch
(:meth:`StepContext.draw` keeps the micro-batch's rows), so K micro-batches see exactly the noise one
full batch would: the update equals the full-batch one up to float summation order and to statistics
computed over a batch (BatchNorm, which normalises each micro-batch by itself).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..runtime import get_rng_state, set_rng_state
from .objective import MicroPass, Objective, PhaseBoundary, StepContext


def accumulated_step(objective: Objective, batch: tuple[torch.Tensor, torch.Tensor], count: int,
                     make_context: Callable[[MicroPass], StepContext]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Run one training step of ``batch`` as ``count`` micro-batches; returns (the micro-batches' mean
    logged values, the names of updates refused for non-finite values)."""
    images, labels = batch
    size = images.shape[0] // count
    rng = get_rng_state()
    micro = MicroPass(count=count)
    skipped: list[str] = []
    while True:
        logged: list[dict[str, torch.Tensor]] = []
        for index in range(count):
            set_rng_state(rng)
            micro.index = index
            ctx = make_context(micro)
            rows = slice(index * size, (index + 1) * size)
            try:
                logged.append(objective.train_step((images[rows], labels[rows]), ctx))  # (size, C, H, W), (size,)
            except PhaseBoundary:
                pass
            if index == count - 1:
                skipped += ctx.skipped  # the pass's last micro-batch is the one that steps
        if len(logged) == count:
            keys = dict.fromkeys(k for row in logged for k in row)
            return {k: torch.stack([row[k].float() for row in logged if k in row]).mean() for k in keys}, skipped
        if logged:
            raise RuntimeError(f"{objective.name}: micro-batches of one step made different numbers of updates")
        micro.phase += 1
