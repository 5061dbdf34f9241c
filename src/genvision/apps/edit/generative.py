"""Generative inpainting with the models genvision trains: several plausible fills per hole, seeded.

* :func:`inpaint_dit`: a trained DiT samples the hole by flow matching, RePaint-style: the known
  pixels are re-imposed along the sampling path (the process is
  :func:`genvision.processes.inpaint.repaint_integrate`; ``resample`` > 1 adds RePaint's
  back-and-forth jumps). Without ``label`` a class-conditional DiT samples with its null class
  (the unconditional field it learnt through label dropout), so the class comes from the context.
* :func:`inpaint_vae`: a VAE or CVAE finds, from ``samples`` seeded starts z ~ N(0, I), latents
  whose decoded mean image fits the known pixels: Adam on

      loss(z) = sum over known pixels of (decode(z) - x)^2 + prior_weight * ||z||^2

  the MAP estimate of z under a Gaussian pixel likelihood with variance ``prior_weight``
  (0.01: sigma = 0.1 in [-1, 1] units) and the N(0, I) prior. Different starts land in different
  fits, which are the samples. Without ``label`` a CVAE runs the search for every class and keeps,
  per sample, the class whose fit has the lowest loss. VQ-VAEs (discrete token grids) are refused.

Both take an image in the model's value range ([-1, 1]) at its channels and size, ``(C, H, W)``
or ``(1, C, H, W)``, and a bool mask ``(H, W)`` or ``(B, 1, H, W)`` (B = 1 or ``samples``), True =
fill; they return ``(samples, C, H, W)`` float32 on the CPU whose known pixels are the input's,
exactly. Sample ``i`` starts from the latent ``sampling.latents_for`` draws for ``(seed, i)``, as
``genvision generate`` does, so it does not depend on how many samples are asked for (up to the
float rounding of batched arithmetic).

:func:`fill_dit` and :func:`fill_vae` are the ``dit`` and ``vae`` entries of ``genvision inpaint``'s
method table: they take image arrays of any size and layout (uint8/uint16/float32, grey, grey+alpha,
RGB, RGBA), convert the colour to the model's channels (luminance for a grey model, grey repeated
for a colour one), resize image and hole to the model's square size (bilinear, antialiased; a
model pixel is hole when any image pixel under it is), fill, resize the fills back and take only
the hole from them. An alpha channel is filled by Telea's method. Models are loaded from a model
or run directory once per process (cached by path and modification time).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ...checkpoints import load_with_card, resolve_model_dir
from ...errors import ConfigError
from ...models.protocols import Generator, LatentCodec
from ...processes.flow import check_sampling
from ...processes.inpaint import MAX_RESAMPLE, repaint_integrate
from ...runtime import check_seed, derive_seed, model_device
from ...sampling import class_labels, image_shape, latents_for

__all__ = [
    "DEFAULT_LR",
    "DEFAULT_PRIOR_WEIGHT",
    "DEFAULT_VAE_STEPS",
    "MAX_SAMPLES",
    "check_dit_options",
    "check_vae_options",
    "fill_array",
    "fill_dit",
    "fill_vae",
    "fit_latents",
    "inpaint_dit",
    "inpaint_vae",
    "load_inpainting_model",
]

MAX_SAMPLES = 256  # fills per call: a grid's worth; more is a loop over seeds
DEFAULT_VAE_STEPS = 200  # Adam steps of the latent search (a 28x28 digit converges in ~100)
MAX_VAE_STEPS = 100_000
DEFAULT_LR = 0.05
DEFAULT_PRIOR_WEIGHT = 0.01  # sigma^2 of the pixel likelihood: sigma = 0.1 in [-1, 1] units
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L" conversion
_MODEL_CACHE: dict[tuple, nn.Module] = {}
_MODEL_CACHE_SIZE = 4


# ----------------------------------------------------------------------------- checks


def _holds(model: nn.Module) -> str:
    where = getattr(model, "model_dir", None) or "the model"
    return (f"{where} holds a {getattr(model, 'model_kind', 'non-genvision')} model "
            f"({getattr(model, 'registry_name', type(model).__name__)})")


def _check_dit(model: nn.Module) -> nn.Module:
    if not (isinstance(model, Generator) and callable(getattr(model, "velocity", None))):
        raise ConfigError(f"{_holds(model)}; DiT inpainting needs a flow-matching model (dit)")
    if getattr(model, "latent_space", False):  # RePaint replaces the known pixels along the path
        raise ConfigError(f"{_holds(model)}: a latent DiT's path runs through VQ-VAE latents, not pixels; DiT "
                          f"inpainting needs a pixel-space DiT")
    return model


def _check_vae(model: nn.Module) -> nn.Module:
    if getattr(model, "is_vq", False):
        raise ConfigError(f"{_holds(model)}: VQ-VAE latents are discrete token grids; latent-optimisation "
                          f"inpainting needs a continuous VAE (vae or cvae)")
    if not (isinstance(model, LatentCodec) and isinstance(model, Generator)
            and callable(getattr(model, "decode", None)) and callable(getattr(model, "mean_image", None))):
        raise ConfigError(f"{_holds(model)}; latent-optimisation inpainting needs a VAE or CVAE")
    return model


def _check_count(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")
    return value


def _check_positive(name: str, value, *, zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{name} must be a finite number {'>=' if zero else '>'} 0, got {value!r}")
    return float(value)


def _image_batch(model: nn.Module, image, mask, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (known (1, C, S, S) float32 CPU, hole (1 or samples, 1, S, S) bool CPU), checked."""
    _check_count("samples", samples, 1, MAX_SAMPLES)
    shape = image_shape(model)
    if shape is None:
        raise ConfigError(f"{_holds(model)} whose config gives no image size and channels")
    image = torch.as_tensor(image)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or tuple(image.shape[1:]) != shape or image.shape[0] != 1:
        raise ConfigError(f"the image must be (C, H, W) = {shape} (or (1, C, H, W)) for this model, got "
                          f"{tuple(image.shape)}")
    if not image.is_floating_point() or not torch.isfinite(image).all():
        raise ConfigError("the image must hold finite floating-point values (the model's range, [-1, 1])")
    mask = torch.as_tensor(mask)
    if mask.dtype != torch.bool:
        raise ConfigError(f"the mask must be bool (True = fill), got {mask.dtype}")
    if mask.ndim == 2:
        mask = mask[None, None]
    size = shape[1:]
    if mask.ndim != 4 or mask.shape[1] != 1 or tuple(mask.shape[2:]) != size or mask.shape[0] not in (1, samples):
        raise ConfigError(f"the mask must be (H, W) = {size} or (B, 1, H, W) with B = 1 or {samples}, got "
                          f"{tuple(mask.shape)}")
    return image.detach().float().cpu(), mask.cpu()


def _labels(model: nn.Module, label, n: int) -> torch.Tensor | None:
    """Labels (n,) for a given class; None (no class) stays None, also for conditional models."""
    if label is None:
        return None
    return class_labels(model, label, n, "--class")


# ----------------------------------------------------------------------------- DiT: RePaint


@torch.no_grad()
def inpaint_dit(model: nn.Module, image: torch.Tensor, mask: torch.Tensor, *, samples: int = 4, seed: int = 0,
                steps: int | None = None, sampler: str | None = None, cfg: float | None = None, label=None,
                resample: int = 1, jump: int = 1, progress: bool | None = None) -> torch.Tensor:
    """``samples`` fills of ``mask`` in ``image`` by a DiT (see the module docstring): (samples, C, H, W).

    ``steps`` / ``sampler`` / ``cfg`` default to the model's config; ``cfg`` acts only with a
    ``label``. ``resample`` U > 1 runs every block of ``jump`` steps U times (RePaint), costing
    U times the steps. Seeded: the same arguments give the same fills."""
    _check_dit(model)
    check_seed(seed)
    c = model.config
    steps = c.sample_steps if steps is None else steps
    sampler = c.sampler if sampler is None else sampler
    cfg = c.cfg_scale if cfg is None else cfg
    check_sampling(steps, sampler, cfg)
    _check_count("resample", resample, 1, MAX_RESAMPLE)
    known, hole = _image_batch(model, image, mask, samples)
    device = model_device(model)
    labels = _labels(model, label, samples)
    x0 = latents_for(model, seed, 0, samples).to(device)  # (N, C, S, S) noise, drawn per sample on the CPU
    streams = [torch.Generator().manual_seed(derive_seed(derive_seed(seed, i), 1)) for i in range(samples)]

    def noise_like(x: torch.Tensor) -> torch.Tensor:  # per-sample streams: sample i ignores N
        return torch.stack([torch.randn(x.shape[1:], generator=g) for g in streams]).to(x)

    def velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.velocity(x, t, labels, cfg)

    out = repaint_integrate(velocity, known.to(device), hole.to(device), x0, steps=steps, sampler=sampler,
                            resample=resample, jump=jump, noise_like=noise_like, progress=progress)
    return torch.where(hole, out.float().cpu().clamp(-1, 1), known)


# ----------------------------------------------------------------------------- VAE: latent optimisation


def _decoded(model: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return model.mean_image(model.decode(z, labels))  # with gradients (decode_latents has none)


def fit_latents(model: nn.Module, known: torch.Tensor, hole: torch.Tensor, z: torch.Tensor,
                labels: torch.Tensor | None = None, *, steps: int = DEFAULT_VAE_STEPS, lr: float = DEFAULT_LR,
                prior_weight: float = DEFAULT_PRIOR_WEIGHT, progress: bool | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on latents ``z`` (M, D) from their given values: minimise, per row,
    ``sum_known (decode(z) - known)^2 + prior_weight * ||z||^2`` (``known`` and ``hole`` broadcast
    to (M, C, H, W); ``hole`` True = ignored). Rows are independent (Adam is element-wise).
    Returns (latents (M, D), final loss (M,)), on the model's device; the model is not changed
    (gradients are taken with respect to z only)."""
    _check_count("steps", steps, 0, MAX_VAE_STEPS)
    _check_positive("lr", lr)
    _check_positive("prior_weight", prior_weight, zero=True)
    device = model_device(model)
    target = known.to(device)
    weight = (~hole).to(device=device, dtype=torch.float32)
    labels = None if labels is None else labels.to(device)
    z = z.detach().to(device=device, dtype=torch.float32).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)

    def loss_of(z_: torch.Tensor) -> torch.Tensor:
        error = ((_decoded(model, z_, labels).float() - target).pow(2) * weight).flatten(1).sum(1)  # (M,)
        return error + prior_weight * z_.pow(2).sum(1)

    with torch.enable_grad():
        for _ in tqdm(range(steps), desc="fitting latents", unit="step", leave=False,
                      disable=None if progress is None else not progress):
            (grad,) = torch.autograd.grad(loss_of(z).sum(), z)
            z.grad = grad
            optimizer.step()
    with torch.no_grad():
        return z.detach(), loss_of(z)


@torch.no_grad()
def inpaint_vae(model: nn.Module, image: torch.Tensor, mask: torch.Tensor, *, samples: int = 4, seed: int = 0,
                steps: int = DEFAULT_VAE_STEPS, lr: float = DEFAULT_LR, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
                label=None, progress: bool | None = None, return_labels: bool = False):
    """``samples`` fills of ``mask`` in ``image`` by a VAE/CVAE's latent search (see the module
    docstring): (samples, C, H, W). A CVAE without ``label`` tries every class (K times the work)
    and keeps each sample's best; ``return_labels=True`` also returns the labels used (samples,)
    (None for an unconditional VAE). ``steps=0`` decodes the seeded starts."""
    _check_vae(model)
    check_seed(seed)
    known, hole = _image_batch(model, image, mask, samples)
    labels = _labels(model, label, samples)
    z0 = latents_for(model, seed, 0, samples)  # (N, D) on the CPU
    options = {"steps": steps, "lr": lr, "prior_weight": prior_weight, "progress": progress}
    if model.num_classes and labels is None:
        k = model.num_classes
        every = torch.arange(k, device=model_device(model)).repeat_interleave(samples)  # class-major rows
        holes = hole.repeat(k, 1, 1, 1) if hole.shape[0] == samples else hole
        z, loss = fit_latents(model, known, holes, z0.repeat(k, 1), every, **options)
        best = loss.view(k, samples).argmin(0)  # (N,) each sample's best class
        rows = best * samples + torch.arange(samples, device=best.device)
        z, labels = z[rows], every[rows]
    else:
        z, _ = fit_latents(model, known, hole, z0, labels, **options)
    images = _decoded(model, z, labels).float().cpu().clamp(-1, 1)
    filled = torch.where(hole, images, known)
    if return_labels:
        return filled, None if labels is None else labels.cpu()
    return filled


# ----------------------------------------------------------------------------- the inpaint methods


def _check_net(model: nn.Module) -> nn.Module:
    if getattr(model, "model_kind", None) != "inpaint":
        raise ConfigError(f"{_holds(model)}; the net method needs an inpainting network (genvision train inpaint)")
    return model


_KINDS = {"dit": ("diffusion", "a DiT", _check_dit), "vae": ("vae", "a VAE or CVAE", _check_vae),
          "net": ("inpaint", "an inpainting network (genvision train inpaint)", _check_net)}


def load_inpainting_model(model, method: str) -> nn.Module:
    """A loaded model (returned as is, checked) or a model/run directory (loaded on the CPU in
    eval mode with its EMA weights, once per process while its files are unchanged)."""
    kind, what, check = _KINDS[method]
    if model is None:
        raise ConfigError(f"inpainting method {method!r} needs --model: {what} model or run directory")
    if isinstance(model, nn.Module):
        return check(model)
    directory = resolve_model_dir(model)
    files = sorted(p for p in Path(directory).iterdir() if p.is_file())
    key = (str(Path(directory).resolve()), kind, tuple((p.name, p.stat().st_mtime_ns) for p in files))
    if key not in _MODEL_CACHE:
        loaded, _ = load_with_card(directory, kind=kind)
        if len(_MODEL_CACHE) >= _MODEL_CACHE_SIZE:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = check(loaded)
    return _MODEL_CACHE[key]


def check_dit_options(model=None, seed: int = 0, steps: int | None = None, sampler: str | None = None,
                      cfg: float | None = None, label=None, resample: int = 1) -> None:
    """Everything ``fill_dit`` would refuse, checked before any file is read or written."""
    network = load_inpainting_model(model, "dit")
    check_seed(seed)
    c = network.config
    check_sampling(c.sample_steps if steps is None else steps, c.sampler if sampler is None else sampler,
                   c.cfg_scale if cfg is None else cfg)
    _check_count("resample", resample, 1, MAX_RESAMPLE)
    _labels(network, label, 1)


def check_vae_options(model=None, seed: int = 0, steps: int | None = None, label=None, lr: float = DEFAULT_LR,
                      prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> None:
    """Everything ``fill_vae`` would refuse, checked before any file is read or written."""
    network = load_inpainting_model(model, "vae")
    check_seed(seed)
    _check_count("steps", DEFAULT_VAE_STEPS if steps is None else steps, 0, MAX_VAE_STEPS)
    _check_positive("lr", lr)
    _check_positive("prior_weight", prior_weight, zero=True)
    _labels(network, label, 1)


def _unit_scale(dtype: np.dtype) -> float:
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype), 1.0)


def fill_array(image: np.ndarray, hole: np.ndarray, channels: int, size: int | None,
               fill: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> np.ndarray:
    """Run a tensor fill ((1, channels, size, size) in [-1, 1], bool (size, size) -> (N, channels,
    size, size)) on an image array of any size and layout; -> (N, *image.shape), image's dtype.
    ``size`` None: the fill runs at the image's own size."""
    scale = _unit_scale(image.dtype)
    pixels = image[..., None] if image.ndim == 2 else image  # (H, W, C)
    height, width, have = pixels.shape
    colour_channels = 3 if have >= 3 else 1
    colour = torch.from_numpy(pixels[..., :colour_channels].astype(np.float32) / scale).permute(2, 0, 1)[None]
    if channels == 1 and colour_channels == 3:
        colour = sum(w * colour[:, i:i + 1] for i, w in enumerate(_LUMA))
    elif channels == 3 and colour_channels == 1:
        colour = colour.expand(1, 3, height, width)
    x = colour.clamp(0, 1) * 2.0 - 1.0  # (1, channels, H, W)
    hole_t = torch.from_numpy(hole)[None, None].float()  # (1, 1, H, W)
    resized = size is not None and (height, width) != (size, size)
    if resized:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        hole_t = F.interpolate(hole_t, size=(size, size), mode="area")  # any hole under a model pixel
    out = fill(x.clamp(-1, 1), hole_t[0, 0] > 0)  # (N, channels, size, size)
    if resized:
        out = F.interpolate(out, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    out = (out.clamp(-1, 1) + 1.0) * 0.5  # (N, channels, H, W) in [0, 1]
    if colour_channels == 1 and channels == 3:
        out = sum(w * out[:, i:i + 1] for i, w in enumerate(_LUMA))
    elif colour_channels == 3 and channels == 1:
        out = out.expand(-1, 3, -1, -1)
    values = out.permute(0, 2, 3, 1).numpy() * scale  # (N, H, W, colour_channels)
    if image.dtype == np.float32:
        values = np.clip(values, 0.0, 1.0).astype(np.float32)
    else:
        values = np.clip(np.rint(values), 0, scale).astype(image.dtype)
    if have > colour_channels:  # alpha: Telea from the border, the same for every sample
        alpha = cv2.inpaint(np.ascontiguousarray(pixels[..., -1]), hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        values = np.concatenate([values, np.broadcast_to(alpha[None, ..., None], (len(values), height, width, 1))],
                                axis=-1)
    filled = values.reshape(len(values), *image.shape)
    filled[:, ~hole] = image[~hole]
    return filled


def fill_dit(image: np.ndarray, mask: np.ndarray, *, samples: int = 1, model=None, seed: int = 0,
             steps: int | None = None, sampler: str | None = None, cfg: float | None = None, label=None,
             resample: int = 1) -> np.ndarray:
    """The ``dit`` inpainting method on an image array: (samples, *image.shape), image's dtype."""
    network = load_inpainting_model(model, "dit")
    return fill_array(image, mask, network.config.channels, network.config.image_size,
                       lambda x, hole: inpaint_dit(network, x, hole, samples=samples, seed=seed, steps=steps,
                                                   sampler=sampler, cfg=cfg, label=label, resample=resample,
                                                   progress=False))


def fill_vae(image: np.ndarray, mask: np.ndarray, *, samples: int = 1, model=None, seed: int = 0,
             steps: int | None = None, label=None, lr: float = DEFAULT_LR,
             prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> np.ndarray:
    """The ``vae`` inpainting method on an image array: (samples, *image.shape), image's dtype."""
    network = load_inpainting_model(model, "vae")
    steps = DEFAULT_VAE_STEPS if steps is None else steps
    return fill_array(image, mask, network.config.channels, network.config.image_size,
                       lambda x, hole: inpaint_vae(network, x, hole, samples=samples, seed=seed, steps=steps, lr=lr,
                                                   prior_weight=prior_weight, label=label, progress=False))
