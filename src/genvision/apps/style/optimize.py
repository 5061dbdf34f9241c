"""The optimisation itself: image sizes for coarse-to-fine, and one scale's L-BFGS or Adam loop.

Coarse-to-fine: a 1/4-size pastiche costs 1/16 of a full-size evaluation and settles the large
structures (where the style's big strokes go); each finer scale starts from the previous result,
upsampled, and only has to add detail, so it needs far fewer of its expensive steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ...errors import TrainingError
from .losses import LossParts, StyleObjective


@dataclass(frozen=True)
class StepInfo:
    """What a callback sees after every step: the scale (0 = coarsest), the step within it, the
    seconds since the whole transfer started, and the weighted losses before that step's update."""

    scale: int
    scales: int
    size: tuple[int, int]  # (H, W) of this scale
    step: int
    elapsed_s: float
    losses: dict[str, float]


@dataclass(frozen=True)
class ScaleReport:
    size: tuple[int, int]
    steps: int
    seconds: float
    losses: dict[str, float]  # of the scale's final image (one more evaluation after the last step)


def fit_size(height: int, width: int, longest: int | None) -> tuple[int, int]:
    """(H, W) shrunk (never enlarged) so the longest side is ``longest``, aspect kept, rounded as
    pastiche and Pillow-based tools do (the long side exact, the other rounded)."""
    if longest is None or max(height, width) <= longest:
        return height, width
    if width >= height:
        return max(1, round(height * longest / width)), longest
    return longest, max(1, round(width * longest / height))


def scale_sizes(height: int, width: int, scales: int, min_side: int) -> list[tuple[int, int]]:
    """(H, W) of each scale, coarse to fine, halving per level; levels whose short side would be under
    ``min_side`` are left out (the finest always stays)."""
    sizes = []
    for level in range(scales - 1, -1, -1):
        factor = 0.5 ** level
        size = (max(1, round(height * factor)), max(1, round(width * factor)))
        if level == 0 or min(size) >= min_side:
            sizes.append(size)
    return sizes


def area_size(height: int, width: int, pixels: float) -> tuple[int, int]:
    """(H, W) with about ``pixels`` pixels and the same aspect (pastiche's rule for its style images)."""
    h = max(1, round(math.sqrt(pixels * height / width)))
    return h, max(1, round(width / height * h))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, h, w) bilinear, antialiased when shrinking; unchanged if already that size."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)


def _optimizer(param: torch.Tensor, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "lbfgs":
        # one iteration (one evaluation, no line search) per .step(): the loop below then sees every
        # loss, and the history (100 pairs) lives in the optimizer's state across calls, as in one long
        # call. The step count is the stopping rule, so the gradient tolerance is off (tiny per-pixel
        # gradients of a large image must not read as convergence).
        return torch.optim.LBFGS([param], lr=lr, max_iter=1, history_size=100, tolerance_grad=0.0)
    return torch.optim.Adam([param], lr=lr)


def optimise(objective: StyleObjective, start: torch.Tensor, *, steps: int, optimizer: str, lr: float,
             on_step: Callable[[int, LossParts], None] | None = None) -> tuple[torch.Tensor, LossParts]:
    """Minimise ``objective`` over the pixels of ``start`` (not clamped on the way: clamping would break
    L-BFGS's curvature pairs; the result is clamped by the caller). Returns the final tensor and its losses."""
    # the parameter stays in the default (contiguous) layout: LBFGS flattens gradients with .view(-1);
    # the objective converts it to channels_last itself, a copy of a 1-3 channel image
    param = start.detach().clone().contiguous().requires_grad_(True)
    opt = _optimizer(param, optimizer, lr)
    # The optimiser sees the loss divided by its value at the start. The minimiser is the same, but
    # L-BFGS is not quite scale-free: when a curvature pair is rejected (negative curvature, common at
    # the content image) it steps by lr * gradient, which at VGG's raw scale (~1e9) throws pixels to 1e7.
    scale: list[float] = []
    seen: list[LossParts] = []  # the evaluations of the current step (one: no line search)
    current = 0  # the step the closure is evaluated for, for the error message

    def closure():
        opt.zero_grad(set_to_none=True)
        parts = objective(param)
        if not torch.isfinite(parts.total):
            raise TrainingError(f"the style loss became {float(parts.total)} at step {current}; lower the "
                                f"learning rate or the loss weights")
        if not scale:
            scale.append(1.0 / max(float(parts.total.detach()), 1e-12))
        scaled = parts.total * scale[0]
        scaled.backward()
        seen.append(parts)
        return scaled.detach()

    for step in range(steps):
        current = step
        seen.clear()
        if optimizer == "lbfgs":
            opt.step(closure)
        else:
            closure()
            opt.step()
        if on_step is not None:
            on_step(step, seen[0])
    with torch.no_grad():
        final = objective(param)
    return param.detach(), final


def clock() -> Callable[[], float]:
    """Seconds since this call (a transfer's elapsed time for its callbacks)."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


__all__ = ["ScaleReport", "StepInfo", "area_size", "clock", "fit_size", "optimise", "resize", "scale_sizes"]
