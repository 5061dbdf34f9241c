"""Sampling from trained generators, in batches, reproducibly per seed.

Every generator family implements the same small protocol, so these tasks (and the CLI and
web UI on top of them) do not care which family a model belongs to:

- ``sample_latent(n, generator=None, device=None) -> z``
- ``generate(z, labels=None) -> images in [-1, 1]`` (B, C, H, W)
- ``config.num_classes`` (0 when unconditional)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

# Model kinds that implement the protocol above (sample_latent / generate).
GENERATOR_KINDS = ("gan", "vae", "diffusion")


def _check_class(model: nn.Module, class_label: int | None) -> None:
    num_classes = getattr(model.config, "num_classes", 0)
    if class_label is None:
        return
    if num_classes == 0:
        raise ConfigError("this model is unconditional; drop --class")
    if not 0 <= class_label < num_classes:
        raise ConfigError(f"--class must be in 0..{num_classes - 1}, got {class_label}")


def _check_sampling_options(model: nn.Module, sampling: dict) -> None:
    """Sampler options a model does not take are an error, not silently ignored."""
    import inspect

    accepted = inspect.signature(model.generate).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(sampling) - set(accepted))
    if unknown:
        options = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise ConfigError(f"{getattr(model, 'registry_name', 'this model')} models do not take {options}")


def _labels_for(model: nn.Module, n: int, class_label: int | None, device) -> torch.Tensor | None:
    num_classes = getattr(model.config, "num_classes", 0)
    if num_classes == 0:
        return None
    if class_label is not None:
        return torch.full((n,), class_label, dtype=torch.long, device=device)
    # Without a requested class, cycle through classes so a grid shows each of them.
    return torch.arange(n, device=device) % num_classes


@torch.no_grad()
def generate(model: nn.Module, n: int = 64, *, seed: int = 0, class_label: int | None = None,
             batch_size: int = 256, **sampling) -> torch.Tensor:
    """``n`` images in [-1, 1] (n, C, H, W) on the CPU; the same seed gives the same images.

    ``sampling`` keyword arguments (e.g. ``temperature``, ``steps``) go to ``model.generate``.
    """
    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    _check_class(model, class_label)
    _check_sampling_options(model, sampling)
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    # Latents are drawn on the CPU so a seed means the same images on every device.
    z = model.sample_latent(n, generator=generator).to(device)
    labels = _labels_for(model, n, class_label, device)
    chunks = []
    for start in range(0, n, batch_size):
        part_labels = None if labels is None else labels[start:start + batch_size]
        chunks.append(model.generate(z[start:start + batch_size], part_labels, **sampling).float().cpu())
    return torch.cat(chunks).clamp(-1, 1)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: stays on the shell where Gaussian latents live (White 2016)."""
    flat0, flat1 = z0.flatten(), z1.flatten()
    cos = torch.dot(flat0, flat1) / (flat0.norm() * flat1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(z0.unsqueeze(0), z1.unsqueeze(0), t.view(-1, *[1] * z0.dim()))
    w0 = torch.sin((1 - t) * omega) / torch.sin(omega)
    w1 = torch.sin(t * omega) / torch.sin(omega)
    shape = (-1, *[1] * z0.dim())
    return w0.view(shape) * z0.unsqueeze(0) + w1.view(shape) * z1.unsqueeze(0)


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    if frames < 2:
        raise ConfigError(f"--frames must be at least 2, got {frames}")
    t = torch.linspace(0, 1, frames)
    if method == "slerp":
        return slerp(z0, z1, t)
    if method == "lerp":
        return torch.lerp(z0.unsqueeze(0), z1.unsqueeze(0), t.view(-1, *[1] * z0.dim()))
    raise ConfigError(f"unknown interpolation method {method!r} (use slerp or lerp)")


@torch.no_grad()
def interpolate(model: nn.Module, seeds: tuple[int, int], frames: int = 8, *, method: str = "slerp",
                class_label: int | None = None) -> torch.Tensor:
    """Images (frames, C, H, W) in [-1, 1] walking the latent space from seed a to seed b.

    The endpoints are exactly ``generate(model, 1, seed=a)`` and ``generate(model, 1, seed=b)``.
    """
    _check_class(model, class_label)
    z0 = model.sample_latent(1, generator=torch.Generator().manual_seed(seeds[0]))[0]
    z1 = model.sample_latent(1, generator=torch.Generator().manual_seed(seeds[1]))[0]
    path = interpolate_latents(z0, z1, frames, method)
    device = next(model.parameters()).device
    labels = None
    if getattr(model.config, "num_classes", 0):
        labels = torch.full((frames,), class_label if class_label is not None else 0, dtype=torch.long,
                            device=device)
    return model.generate(path.to(device), labels).float().cpu().clamp(-1, 1)


def grid_rows(n: int) -> int:
    return max(1, int(math.ceil(math.sqrt(n))))
