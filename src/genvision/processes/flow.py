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

Few-step distillation (the last section): a student learns, on a grid of K equal segments, the
average velocity of the teacher's guided trajectory over each segment, ``(x_teacher(t_{i+1}) -
x(t_i)) / dt``, at points x(t_i) reached by the student's own Euler steps (so it trains where it
will sample). K Euler steps of the student then land where the teacher's fine integration lands,
guidance folded in: one network evaluation per step instead of two per sub-step.
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


def sample_times(n: int, how: str, device, shift: float = 1.0) -> torch.Tensor:
    """n times in [0, 1]: uniform, or logit-normal (sigmoid of N(0, 1)), then shifted (:func:`shift_times`)."""
    if how == "logit-normal":
        t = torch.sigmoid(torch.randn(n, device=device))
    else:
        t = torch.rand(n, device=device)
    return shift_times(t, shift)


def shift_times(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's timestep shift in this convention: the noise level s = 1 - t becomes shift s / (1 + (shift - 1) s).

    shift > 1 spends more of the draws near the noise end (where few-step samplers make their
    largest errors), shift < 1 near the data end; 1 leaves t unchanged."""
    if shift == 1.0:
        return t
    noise = 1 - t
    return 1 - shift * noise / (1 + (shift - 1) * noise)


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
    bar = tqdm(total=steps, desc=f"sampling ({sampler}, {steps} steps)", unit="step", leave=False,
               disable=None if progress is None else not progress)
    with bar:
        return integrate_between(v, x0, torch.zeros(1, device=x0.device), 1.0, steps=steps, sampler=sampler,
                                 on_step=bar.update)


def integrate_between(v: VelocityField, x: torch.Tensor, t0: torch.Tensor, span: float, *, steps: int, sampler: str,
                      on_step: Callable[[], object] | None = None) -> torch.Tensor:
    """Integrate dx/dt = v from times t0 ((1,) or one per sample, (B,)) over ``span`` in ``steps`` equal steps."""
    dt = span / steps
    for i in range(steps):
        x = sample_step(v, x, t0 + i * dt, dt, sampler)
        if on_step is not None:
            on_step()
    return x


# --- few-step distillation -----------------------------------------------------------------


def student_points(student: VelocityField, x0: torch.Tensor, segment: torch.Tensor, segments: int) -> torch.Tensor:
    """Where the student's own Euler steps take each noise row x0[b] by time segment[b] / segments.

    Every row takes max(segment) steps; a row stops moving once it reached its segment (the
    velocity is evaluated for all rows so each step is one batched call)."""
    dt = 1.0 / segments
    x = x0
    for k in range(int(segment.max())):
        moving = (segment > k).view(-1, *[1] * (x0.ndim - 1))  # (B, 1, 1, 1)
        step = x + dt * student(x, torch.full((1,), k * dt, device=x0.device))
        x = torch.where(moving, step, x)
    return x


def segment_targets(teacher: VelocityField, x: torch.Tensor, segment: torch.Tensor, segments: int, *,
                    substeps: int, sampler: str) -> torch.Tensor:
    """The teacher's average velocity over each row's segment: (x_teacher(t_{i+1}) - x(t_i)) / dt.

    x (B, ...) are points at t_i = segment / segments (B,); the teacher integrates each row over
    its segment in ``substeps`` steps of ``sampler``."""
    dt = 1.0 / segments
    t0 = segment.to(x.dtype) * dt  # (B,)
    end = integrate_between(teacher, x, t0, dt, steps=substeps, sampler=sampler)
    return (end - x) / dt


__all__ = ["SAMPLERS", "TIME_SAMPLINGS", "check_sampling", "drop_labels", "flow_matching_loss", "integrate",
           "integrate_between", "interpolate", "sample_step", "sample_times", "segment_targets", "shift_times",
           "student_points"]
