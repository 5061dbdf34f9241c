"""Sampling from trained generators, in batches with bounded memory, reproducibly per seed.

Every generator family implements the same small protocol, so these tasks (and the CLI and
web UI on top of them) do not care which family a model belongs to:

- ``sample_latent(n, generator=None, device=None) -> z``
- ``generate(z, labels=None) -> images in [-1, 1]`` (B, C, H, W)
- ``config.num_classes`` (0 when unconditional)

**Seeds.** Image ``i`` of a request with seed ``s`` is made from its own latent, drawn on the CPU
by ``model.sample_latent(1, generator=torch.Generator().manual_seed(derive_seed(s, i)))`` with
``derive_seed(s, 0) == s``. So the latents do not depend on the batch size (torch's CPU ``randn``
drawn in pieces does *not* equal one big draw: its vectorised path works in blocks of 16 values),
``generate(model, 1, seed=s)`` is the first image of ``generate(model, n, seed=s)``, and the
endpoints of ``interpolate`` are ``generate(model, 1, seed=a)`` and ``generate(model, 1, seed=b)``
— exactly for the latents, and for the images up to the float rounding of the network's batched
arithmetic (its kernels differ by batch size; ~1e-7, which rarely moves an 8-bit pixel). The same
seed, n and batch size repeat bit for bit.

**Memory.** :func:`iter_generate` draws latents and runs the model one batch at a time, so any
``n`` streams in ``O(batch_size)`` memory (``genvision generate -o folder/`` writes each batch as it
comes). :func:`generate` returns one tensor and refuses requests over ``MAX_GENERATE_BYTES``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ConfigError

# Model kinds that implement the protocol above (sample_latent / generate).
GENERATOR_KINDS = ("gan", "vae", "diffusion")

SEED_MAX = 2**63 - 1  # seeds are 0..2**63-1, and so is every seed derived from one
MAX_GENERATE_BYTES = 4 * 2**30  # the in-memory generate(): larger requests must stream (iter_generate)
DEFAULT_BATCH_SIZE = 256
_MASK64 = 2**64 - 1


def check_seed(seed: int, flag: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{flag} must be an integer in 0..{SEED_MAX} (2**63-1), got {seed!r}")
    return seed


def derive_seed(seed: int, index: int) -> int:
    """A seed in 0..2**63-1 for item ``index`` of a request seeded with ``seed``; ``index`` 0 gives
    ``seed`` itself, others a SplitMix64 mix of (seed, index), so nearby seeds and indices give
    unrelated streams and nothing overflows ``manual_seed``."""
    if index == 0:
        return seed
    x = (seed + (index * 0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1  # 63 bits


def latents_for(model: nn.Module, seed: int, start: int, count: int) -> torch.Tensor:
    """The latents of images ``start .. start + count - 1`` of a request with ``seed``, on the CPU."""
    return torch.cat([model.sample_latent(1, generator=torch.Generator().manual_seed(derive_seed(seed, i)),
                                          device="cpu") for i in range(start, start + count)])


def image_shape(model: nn.Module) -> tuple[int, int, int] | None:
    """(C, H, W) of the model's images from its config, or None when the config does not say."""
    cfg = getattr(model, "config", None)
    size, channels = getattr(cfg, "image_size", None), getattr(cfg, "channels", None)
    if isinstance(size, int) and isinstance(channels, int):
        return channels, size, size
    return None


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


def _check_request(model: nn.Module, n: int, seed: int, class_label: int | None, batch_size: int,
                   sampling: dict) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    check_seed(seed)
    _check_class(model, class_label)
    _check_sampling_options(model, sampling)


def iter_generate(model: nn.Module, n: int, *, seed: int = 0, class_label: int | None = None,
                  batch_size: int = DEFAULT_BATCH_SIZE, **sampling) -> Iterator[torch.Tensor]:
    """Yield ``n`` images in [-1, 1] as CPU batches (b, C, H, W) of at most ``batch_size``, in order;
    memory is bounded by the batch, whatever ``n`` is. Image ``i`` is the same for every batch size
    (see the module docstring). ``sampling`` keyword arguments (e.g. ``temperature``, ``steps``)
    go to ``model.generate``. Arguments are checked on the call, not at the first batch."""
    _check_request(model, n, seed, class_label, batch_size, sampling)
    return _batches(model, n, seed, class_label, batch_size, sampling)


@torch.no_grad()
def _batches(model: nn.Module, n: int, seed: int, class_label: int | None, batch_size: int,
             sampling: dict) -> Iterator[torch.Tensor]:
    device = next(model.parameters()).device
    num_classes = getattr(model.config, "num_classes", 0)
    for start in range(0, n, batch_size):
        count = min(batch_size, n - start)
        # Latents are drawn on the CPU so a seed means the same images on every device.
        z = latents_for(model, seed, start, count).to(device)
        labels = None
        if num_classes and class_label is not None:
            labels = torch.full((count,), class_label, dtype=torch.long, device=device)
        elif num_classes:  # without a requested class, cycle through classes so a grid shows each
            labels = torch.arange(start, start + count, device=device) % num_classes
        yield model.generate(z, labels, **sampling).float().cpu().clamp_(-1, 1)


@torch.no_grad()
def generate(model: nn.Module, n: int = 64, *, seed: int = 0, class_label: int | None = None,
             batch_size: int = DEFAULT_BATCH_SIZE, **sampling) -> torch.Tensor:
    """``n`` images in [-1, 1] (n, C, H, W) on the CPU; the same seed gives the same images.

    The result is one tensor, so requests over ``MAX_GENERATE_BYTES`` (4 GiB of float32) are
    refused: stream them with :func:`iter_generate`. ``sampling`` keyword arguments (e.g.
    ``temperature``, ``steps``) go to ``model.generate``.
    """
    _check_request(model, n, seed, class_label, batch_size, sampling)
    shape = image_shape(model)
    if shape is not None:
        _check_in_memory(n, shape)
    out: torch.Tensor | None = None
    start = 0
    for batch in iter_generate(model, n, seed=seed, class_label=class_label, batch_size=batch_size, **sampling):
        if out is None:  # preallocated: concatenating batches would need twice the memory
            _check_in_memory(n, tuple(batch.shape[1:]))
            out = torch.empty((n, *batch.shape[1:]), dtype=batch.dtype)
        out[start:start + batch.shape[0]] = batch
        start += batch.shape[0]
    return out


def _check_in_memory(n: int, shape: tuple[int, ...]) -> None:
    size = n * math.prod(shape) * 4  # float32
    if size > MAX_GENERATE_BYTES:
        raise ConfigError(f"{n} images of {'x'.join(map(str, shape))} are {size / 2**30:.1f} GiB as one tensor, over "
                          f"the {MAX_GENERATE_BYTES // 2**30} GiB bound of generate(); stream them with "
                          f"genvision.tasks.generate.iter_generate() (or genvision generate -o FOLDER/)")


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


MAX_FRAMES = 1000


def interpolate_latents(z0: torch.Tensor, z1: torch.Tensor, frames: int, method: str = "slerp") -> torch.Tensor:
    if isinstance(frames, bool) or not isinstance(frames, int) or not 2 <= frames <= MAX_FRAMES:
        raise ConfigError(f"--frames must be in 2..{MAX_FRAMES}, got {frames}")
    t = torch.linspace(0, 1, frames)
    if method == "slerp":
        return slerp(z0, z1, t)
    if method == "lerp":
        return torch.lerp(z0.unsqueeze(0), z1.unsqueeze(0), t.view(-1, *[1] * z0.dim()))
    raise ConfigError(f"unknown interpolation method {method!r} (use slerp or lerp)")


@torch.no_grad()
def interpolate(model: nn.Module, seeds: tuple[int, int], frames: int = 8, *, method: str = "slerp",
                class_label: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """Images (frames, C, H, W) in [-1, 1] walking the latent space from seed a to seed b.

    The endpoints are exactly ``generate(model, 1, seed=a)`` and ``generate(model, 1, seed=b)``.
    """
    _check_class(model, class_label)
    for seed in seeds:
        check_seed(seed, "--seeds")
    z0 = latents_for(model, seeds[0], 0, 1)[0]
    z1 = latents_for(model, seeds[1], 0, 1)[0]
    path = interpolate_latents(z0, z1, frames, method)
    device = next(model.parameters()).device
    labels = None
    if getattr(model.config, "num_classes", 0):
        labels = torch.full((frames,), class_label if class_label is not None else 0, dtype=torch.long,
                            device=device)
    parts = [model.generate(path[i:i + batch_size].to(device), None if labels is None else labels[i:i + batch_size])
             .float().cpu() for i in range(0, frames, batch_size)]
    return torch.cat(parts).clamp(-1, 1)


def grid_rows(n: int) -> int:
    return max(1, int(math.ceil(math.sqrt(n))))


def grid_size(n: int, height: int, width: int, nrow: int | None = None, padding: int = 2) -> tuple[int, int]:
    """(width, height) in pixels of ``genvision.io.save_grid`` of ``n`` images of ``height x width``."""
    columns = min(nrow or grid_rows(n), n)
    rows = -(-n // columns)
    return columns * (width + padding) + padding, rows * (height + padding) + padding


def check_grid(n: int, shape: tuple[int, int, int], nrow: int | None = None,
               remedy: str = "write one PNG per image with -o FOLDER/ instead") -> None:
    """Refuse, before anything runs, a grid image over ``genvision.io.MAX_PIXELS`` pixels."""
    from ..io import MAX_PIXELS

    width, height = grid_size(n, shape[1], shape[2], nrow)
    if width * height > MAX_PIXELS:
        raise ConfigError(f"a grid of {n} images of {shape[2]}x{shape[1]} would be {width}x{height} = "
                          f"{width * height} pixels, over the limit of {MAX_PIXELS}; {remedy}")
