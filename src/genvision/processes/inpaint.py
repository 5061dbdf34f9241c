"""Inpainting with a flow-matching model: RePaint (Lugmayr et al. 2022) on straight paths.

Convention as in :mod:`.flow`: t = 0 is noise, t = 1 is data, ``x_t = (1 - t) x0 + t x1``.

The sampler integrates dx/dt = v(x, t) from noise ``x0`` as :func:`.flow.integrate` does, but the
*known* pixels never follow the network: at every time t they are set to where the straight path
from the same noise to the known image is, ``interpolate(x0, known, t)``. Every network evaluation
(also the inner ones of Heun and midpoint steps) sees known pixels on that path, and after every
step the known region is set again, so the hole is generated in the context of the image. At
t = 1 the path is the known image, and the result takes the known pixels from it exactly.

**Resampling** (RePaint's "jumps"): generating the hole while the context is imposed lets the two
drift apart; RePaint goes back in time and forward again so they harmonise. With ``resample``
U > 1, every block of ``jump`` steps is run U times: after reaching its end (time s) the state is
noised back to its start (time t < s) along the forward process of the path,

    x_t = (t / s) x_s + sqrt((1 - t)^2 - (t / s)^2 (1 - s)^2) eps,     eps ~ N(0, I)

which keeps the marginals of the straight path (x_t ~ t x1 + (1 - t) N(0, I) given data x1), and
integrated forward again. A call costs ``steps * resample`` steps (times 2 network evaluations
for heun and midpoint); ``resample=1`` is plain replacement sampling, deterministic in ``x0``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from tqdm import tqdm

from ..errors import ConfigError
from .flow import VelocityField, interpolate, sample_step

MAX_RESAMPLE = 100  # RePaint uses 10; beyond that nothing improves and the cost grows linearly

__all__ = ["MAX_RESAMPLE", "renoise", "repaint_integrate", "repaint_schedule"]


def repaint_schedule(steps: int, resample: int = 1, jump: int = 1) -> list[int]:
    """The time indices (t_k = k / steps) the sampler visits, from 0 to ``steps``: forward moves
    are ODE steps k -> k + 1, backward moves are jumps back to a block's start (noising).

    >>> repaint_schedule(4, resample=2, jump=2)
    [0, 1, 2, 0, 1, 2, 3, 4, 2, 3, 4]
    """
    for name, value, low in (("steps", steps, 1), ("resample", resample, 1), ("jump", jump, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if resample > MAX_RESAMPLE:
        raise ConfigError(f"resample must be at most {MAX_RESAMPLE}, got {resample}")
    path = [0]
    for end in range(jump, steps + jump, jump):
        start, end = path[-1], min(end, steps)
        for r in range(resample):
            path.extend(range(start + 1, end + 1))
            if r < resample - 1:
                path.append(start)
    return path


def renoise(x: torch.Tensor, s: float, t: float, noise: torch.Tensor) -> torch.Tensor:
    """Move a state at time ``s`` back to an earlier time ``t`` (0 <= t < s <= 1) along the
    forward process of the straight path (see the module docstring); ``noise`` is N(0, I) like x."""
    if not 0.0 <= t < s <= 1.0:
        raise ValueError(f"renoise goes back in time: need 0 <= t < s <= 1, got t={t}, s={s}")
    a = t / s
    std = math.sqrt(max((1.0 - t) ** 2 - (a * (1.0 - s)) ** 2, 0.0))
    return a * x + std * noise


def _check_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise ConfigError(f"the inpainting mask must be a bool tensor (True = fill), got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)}")
    try:
        torch.broadcast_shapes(mask.shape, like.shape)
    except RuntimeError:
        raise ConfigError(f"the mask's shape {tuple(mask.shape)} does not fit images of shape "
                          f"{tuple(like.shape)}") from None
    if mask.ndim != like.ndim:
        raise ConfigError(f"the mask must have as many dimensions as the images ({like.ndim}), got {tuple(mask.shape)}")
    return mask.to(like.device)


def repaint_integrate(velocity: VelocityField, known: torch.Tensor, mask: torch.Tensor, x0: torch.Tensor, *,
                      steps: int, sampler: str, resample: int = 1, jump: int = 1,
                      noise_like: Callable[[torch.Tensor], torch.Tensor] = torch.randn_like,
                      progress: bool | None = None) -> torch.Tensor:
    """Fill ``mask`` (bool, True = generate; broadcastable to ``x0``, e.g. (B or 1, 1, H, W)) in
    ``known`` (images at t = 1, broadcastable to ``x0``) by integrating ``velocity(x, t)`` from the
    noise ``x0`` (B, C, H, W) at t = 0 to t = 1 with known pixels re-imposed along the path (see
    the module docstring). ``noise_like(x)`` draws the noise of resampling jumps (only used when
    ``resample`` > 1: pass a seeded one for reproducible results). Returns (B, C, H, W) whose
    known pixels equal ``known``'s exactly; an all-known mask returns ``known`` without a step."""
    schedule = repaint_schedule(steps, resample, jump)
    mask = _check_mask(mask, x0)
    known = known.to(device=x0.device, dtype=x0.dtype).expand_as(x0)
    if not mask.any():
        return known.clone()
    times = torch.linspace(0.0, 1.0, steps + 1, device=x0.device)  # t_0 = 0 ... t_steps = 1

    def on_path(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, x, interpolate(x0, known, t.expand(x.shape[0])))

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # every evaluation sees the context on its path
        return velocity(on_path(x, t), t)

    moves = list(itertools.pairwise(schedule))
    bar = tqdm(moves, desc=f"inpainting ({sampler}, {steps} steps x {resample})", unit="step", leave=False,
               disable=None if progress is None else not progress)
    x = x0
    for k, k_next in bar:
        if k_next == k + 1:
            x = sample_step(v, x, times[k].reshape(1), 1.0 / steps, sampler)
        else:  # a jump back: noise the state to the block's start
            x = renoise(x, k / steps, k_next / steps, noise_like(x))
        x = on_path(x, times[k_next].reshape(1))
    return torch.where(mask, x, known)
