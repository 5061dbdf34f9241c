"""Sampling from trained generators, in batches with bounded memory, reproducibly per seed.

Every generator implements :class:`genvision.models.protocols.Generator` (``sample_latent``,
``generate``, ``num_classes``), and every model that maps images to that latent space
:class:`~genvision.models.protocols.LatentCodec`, so these functions (and the generation commands,
evaluators and web UI on top of them) never ask which family a model belongs to. Several
applications use them (generation, VAE evaluation, the demo), so they live below the applications.

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

import inspect
import math
from collections.abc import Iterator

import torch
from torch import nn

from .errors import ConfigError
from .models.protocols import Generator, LatentCodec
from .runtime import check_seed, derive_seed, model_device

MAX_GENERATE_BYTES = 4 * 2**30  # the in-memory generate(): larger requests must stream (iter_generate)
DEFAULT_BATCH_SIZE = 256
MAX_FRAMES = 1000


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


def _holds(model: nn.Module) -> str:
    where = getattr(model, "model_dir", None) or "the model"
    return f"{where} holds a {getattr(model, 'model_kind', 'non-genvision')} model " \
           f"({getattr(model, 'registry_name', type(model).__name__)})"


def check_generator(model: nn.Module) -> Generator:
    if not isinstance(model, Generator):
        raise ConfigError(f"{_holds(model)}; this command needs a generator (gan, vae, diffusion or token-prior) "
                          f"model")
    return model


def _check_class(model: Generator, class_label: int | None) -> None:
    if class_label is None:
        return
    if model.num_classes == 0:
        raise ConfigError("this model is unconditional; drop --class")
    if not 0 <= class_label < model.num_classes:
        raise ConfigError(f"--class must be in 0..{model.num_classes - 1}, got {class_label}")


def class_labels(model: Generator | LatentCodec, labels, n: int, flag: str = "--class") -> torch.Tensor | None:
    """Class labels (n,) on the model's device for a conditional model (one label is repeated);
    None for an unconditional one. Missing or out-of-range labels are one-line errors."""
    k = model.num_classes
    if k == 0:
        if labels is not None:
            raise ConfigError(f"this model is unconditional; drop {flag}")
        return None
    if labels is None:
        raise ConfigError(f"this model is conditional: give the class with {flag} (0..{k - 1})")
    t = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ConfigError(f"{flag}: got {t.numel()} labels for {n} images")
    if int(t.min()) < 0 or int(t.max()) >= k:
        raise ConfigError(f"{flag} must be in 0..{k - 1}")
    return t.to(model_device(model))


def _check_sampling_options(model: nn.Module, sampling: dict) -> None:
    """Sampler options a model does not take are an error, not silently ignored."""
    accepted = inspect.signature(model.generate).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        return
    unknown = sorted(set(sampling) - set(accepted))
    if unknown:
        options = ", ".join("--" + name.replace("_", "-") for name in unknown)
        raise ConfigError(f"{getattr(model, 'registry_name', 'this model')} models do not take {options}")


def _check_request(model: nn.Module, n: int, seed: int, class_label: int | None, batch_size: int,
                   sampling: dict) -> None:
    check_generator(model)
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
    device = model_device(model)
    num_classes = model.num_classes
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
                          f"genvision.sampling.iter_generate() (or genvision generate -o FOLDER/)")


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
    check_generator(model)
    if not getattr(model, "continuous_latents", True):  # e.g. MaskGIT: a latent is the seed of its random numbers
        raise ConfigError(f"{_holds(model)} whose latents are per-image seeds, with nothing between two of them: "
                          f"interpolate does not apply (sample with genvision generate)")
    _check_class(model, class_label)
    for seed in seeds:
        check_seed(seed, "--seeds")
    z0 = latents_for(model, seeds[0], 0, 1)[0]
    z1 = latents_for(model, seeds[1], 0, 1)[0]
    path = interpolate_latents(z0, z1, frames, method)
    device = model_device(model)
    labels = None
    if model.num_classes:
        labels = torch.full((frames,), class_label if class_label is not None else 0, dtype=torch.long,
                            device=device)
    parts = [model.generate(path[i:i + batch_size].to(device), None if labels is None else labels[i:i + batch_size])
             .float().cpu() for i in range(0, frames, batch_size)]
    return torch.cat(parts).clamp(-1, 1)


@torch.no_grad()
def interpolate_images(model: LatentCodec, a: torch.Tensor, b: torch.Tensor, frames: int = 8, *,
                       method: str = "slerp", labels=None) -> torch.Tensor:
    """Frames (frames, C, H, W) decoded along a lerp/slerp path from image a's latent to image b's
    (images in [-1, 1], (C, H, W) or (1, C, H, W)); the endpoints are exactly the reconstructions of
    a and b. A conditional model takes one label for both images or a pair (the class is held at
    a's label along the path)."""
    if not isinstance(model, LatentCodec):
        raise ConfigError(f"{_holds(model)}; this command needs a vae model (--images walks between encoded "
                          f"images)")
    if labels is not None and not isinstance(labels, int):
        pair = list(labels)
        if len(pair) != 2:
            raise ConfigError("give one --class for both images or two (one each)")
        la, lb = pair
    else:
        la = lb = labels
    device = model_device(model)
    za = model.image_latents(a.reshape(1, *a.shape[-3:]).to(device), class_labels(model, la, 1))[0]
    zb = model.image_latents(b.reshape(1, *b.shape[-3:]).to(device), class_labels(model, lb, 1))[0]
    path = interpolate_latents(za.cpu(), zb.cpu(), frames, method).to(device)
    held = class_labels(model, la, frames)
    return model.decode_latents(path, held).float().cpu().clamp(-1, 1)


def sampler_for(model: Generator, class_label: int | None = None):
    """A ``metrics.samples.Sampler`` ``(n, seed) -> images`` drawing from ``model``."""
    check_generator(model)
    return lambda n, seed: generate(model, n, seed=seed, class_label=class_label)


__all__ = ["DEFAULT_BATCH_SIZE", "MAX_FRAMES", "MAX_GENERATE_BYTES", "check_generator", "class_labels", "generate",
           "image_shape", "interpolate", "interpolate_images", "interpolate_latents", "iter_generate", "latents_for",
           "sampler_for", "slerp"]
