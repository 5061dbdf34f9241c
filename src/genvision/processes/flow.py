"""Flow matching with straight paths (rectified flow; Liu et al. 2023, Lipman et al. 2023).

Convention (the one used everywhere in genvision): **t = 0 is noise, t = 1 is data**.

    x0 ~ N(0, I)                       noise
    x1 = a training image in [-1, 1]    data
    x_t = (1 - t) x0 + t x1            the straight path between them
    v*  = d x_t / dt = x1 - x0         the velocity target

A network v(x_t, t, y) is trained with the mean squared error ``E ||v(x_t, t, y) - v*||^2``
(averaged over pixels), t drawn uniformly in [0, 1] or from a logit-normal, which puts more weight
on the middle of the path (Esser et al. 2024). Sampling integrates dx/dt = v from a noise sample
at t = 0 to t = 1 with Euler, Heun or midpoint steps.

Classifier-free guidance (Ho & Salimans 2022): with probability ``label_dropout`` a label is
replaced by the null class during training, so the same network also learns the unconditional
field; sampling with scale s follows ``v_null + s (v_y - v_null)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..errors import ConfigError

SAMPLERS = ("euler", "heun", "midpoint")
TIME_SAMPLINGS = ("uniform", "logit-normal")

VelocityField = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x (B, ...), t (1,)) -> v like x

# --- training ------------------------------------------------------------------------------


def interpolate(x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t x1 for per-sample t (B,)."""
    t = t.view(-1, *[1] * (x0.ndim - 1))  # (B, 1, 1, 1)
    return (1 - t) * x0 + t * x1


def flow_matching_loss(velocity: Callable[..., torch.Tensor], x1: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
                       labels: torch.Tensor | None = None) -> torch.Tensor:
    """mean over batch and pixels of (v(x_t, t, y) - (x1 - x0))^2."""
    pred = velocity(interpolate(x0, x1, t), t, labels)  # (B, C, H, W)
    return F.mse_loss(pred.float(), (x1 - x0).float())


def drop_labels(labels: torch.Tensor, p: float, null_class: int, drop: torch.Tensor | None = None) -> torch.Tensor:
    """Each label replaced by ``null_class`` with probability p (torch's global RNG), or where ``drop`` says."""
    if p <= 0:
        return labels
    if drop is None:
        drop = torch.rand(labels.shape, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def sample_times(n: int, how: str, device) -> torch.Tensor:
    """n times in [0, 1]: uniform, or logit-normal (sigmoid of N(0, 1))."""
    if how == "logit-normal":
        return torch.sigmoid(torch.randn(n, device=device))
    return torch.rand(n, device=device)


# --- sampling ------------------------------------------------------------------------------


def check_sampling(steps: int, sampler: str, cfg: float) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"--steps must be an integer >= 1, got {steps!r}")
    if sampler not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not isinstance(cfg, (int, float)) or cfg != cfg or cfg < 0:
        raise ConfigError(f"--cfg must be a number >= 0, got {cfg!r}")


def sample_step(v: VelocityField, x: torch.Tensor, t: torch.Tensor, dt: float, sampler: str) -> torch.Tensor:
    """One integration step of dx/dt = v(x, t) from t to t + dt.

    euler:    x + dt v(x, t)
    heun:     x' = x + dt v(x, t);  x + dt/2 (v(x, t) + v(x', t + dt))
    midpoint: x + dt v(x + dt/2 v(x, t), t + dt/2)
    """
    v0 = v(x, t)
    if sampler == "euler":
        return x + dt * v0
    if sampler == "heun":
        x_pred = x + dt * v0
        return x + 0.5 * dt * (v0 + v(x_pred, t + dt))
    if sampler == "midpoint":
        return x + dt * v(x + 0.5 * dt * v0, t + 0.5 * dt)
    raise ConfigError(f"unknown sampler {sampler!r} (use {', '.join(SAMPLERS)})")


def integrate(v: VelocityField, x0: torch.Tensor, *, steps: int, sampler: str, progress: bool | None = None
              ) -> torch.Tensor:
    """Integrate dx/dt = v from noise x0 at t = 0 to t = 1 in ``steps`` equal steps."""
    dt = 1.0 / steps
    times = torch.linspace(0.0, 1.0, steps + 1, device=x0.device)  # t_0 = 0 ... t_steps = 1
    bar = tqdm(range(steps), desc=f"sampling ({sampler}, {steps} steps)", unit="step", leave=False,
               disable=None if progress is None else not progress)
    x = x0
    for i in bar:
        x = sample_step(v, x, times[i].reshape(1), dt, sampler)
    return x


__all__ = ["SAMPLERS", "TIME_SAMPLINGS", "check_sampling", "drop_labels", "flow_matching_loss", "integrate",
           "interpolate", "sample_step", "sample_times"]
