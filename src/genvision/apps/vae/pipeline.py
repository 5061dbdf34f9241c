"""Inference with the VAE family (VAE, CVAE, VQ-VAE): reconstruct, encode, decode, traverse,
interpolate between images, "same style, other class" edits, and fitting the VQ-VAE token prior.

Every function takes a loaded model (``load_pretrained(dir, kind="vae")``) and image batches in
[-1, 1] (B, C, H, W); :func:`load_images` reads files with the safe loader and resizes them to
the model's size. Continuous VAEs use the posterior mean ``mu`` as "the" latent of an image;
VQ-VAEs use the integer token grid (or, for interpolation, its code vectors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, DataError, display_path
from ...io import load_images_resized
from ...runtime import model_device
from ...sampling import class_labels
from .objective import binarize_fixed, model_binarizes


def load_images(paths: Sequence[str | Path], model: nn.Module) -> torch.Tensor:
    """Files -> (N, C, H, W) in [-1, 1] at the model's channels and size (bilinear, antialiased)."""
    return load_images_resized(paths, channels=model.config.channels, size=model.config.image_size)


# --- reconstruct / encode / decode ----------------------------------------------------------


@torch.no_grad()
def reconstruct(model: nn.Module, images: torch.Tensor, labels=None) -> torch.Tensor:
    """Reconstructions in [-1, 1] (decoder mean of the posterior mean / of the token grid)."""
    x = images.to(model_device(model))
    if model.is_vq:
        if labels is not None:
            raise ConfigError("a VQ-VAE is unconditional; drop --label")
        return model.reconstruct(x).float().cpu()
    return model.reconstruct(x, class_labels(model, labels, x.shape[0], "--class")).float().cpu()


@torch.no_grad()
def restyle(model: nn.Module, images: torch.Tensor, labels, target_labels) -> torch.Tensor:
    """"Same style, other class" (CVAE): encode with the true ``labels``, decode with ``target_labels``."""
    if model.num_classes == 0 or model.is_vq:
        raise ConfigError("class edits need a conditional VAE (cvae)")
    x = images.to(model_device(model))
    source = class_labels(model, labels, x.shape[0], "--class")
    target = class_labels(model, target_labels, x.shape[0], "--to-class")
    mu, _ = model.encode(x, source)
    return model.mean_image(model.decode(mu, target)).float().cpu()


@torch.no_grad()
def class_swap_grid(model: nn.Module, images: torch.Tensor, labels) -> torch.Tensor:
    """(N * K) images: row i is image i's style decoded as every class 0..K-1."""
    k = model.config.num_classes
    rows = [restyle(model, images, labels, torch.full((images.shape[0],), c)) for c in range(k)]
    return torch.stack(rows, dim=1).flatten(0, 1)  # (N, K, C, H, W) -> (N*K, C, H, W)


@torch.no_grad()
def encode(model: nn.Module, images: torch.Tensor, labels=None) -> np.ndarray:
    """Latents as a NumPy array: float32 posterior means (N, latent_dim) for VAEs, int64 token
    grids (N, h, w) for VQ-VAEs."""
    x = images.to(model_device(model))
    if model.is_vq:
        if labels is not None:
            raise ConfigError("a VQ-VAE is unconditional; drop --label")
        return model.encode(x).cpu().numpy().astype(np.int64)
    mu, _ = model.encode(x, class_labels(model, labels, x.shape[0], "--class"))
    return mu.float().cpu().numpy()


MAX_LATENT_BYTES = 2**30  # a .npy of latents beyond this is not something encode wrote for one grid


def load_latents(path: str | Path) -> np.ndarray:
    """A .npy of latents (floats) or token grids (integers, returned as int64), checked before it
    is read into memory: no pickles, no strings/objects/structured records, not empty, at most
    ``MAX_LATENT_BYTES``. Every problem is a one-line DataError naming the file."""
    name = display_path(path)
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")  # the header only, until we copy
    except (ValueError, OSError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:80] or type(exc).__name__
        raise DataError(f"{name} is not a readable .npy array ({reason})") from None
    if not isinstance(array, np.ndarray):  # np.load gives an NpzFile for .npz archives
        raise DataError(f"{name} is not a .npy array (an .npz archive?); write one with genvision encode")
    kind = array.dtype.kind
    if kind not in "fiu" or array.dtype.fields is not None:
        raise DataError(f"{name} holds a {array.dtype} array; decode needs float latents or integer token grids")
    if array.size == 0:
        raise DataError(f"{name} holds an empty array {array.shape}")
    if array.nbytes > MAX_LATENT_BYTES:
        raise DataError(f"{name} holds {array.nbytes} bytes of latents, over the {MAX_LATENT_BYTES} byte limit")
    if kind in "iu":
        values = np.asarray(array)
        if kind == "u" and values.max() > np.iinfo(np.int64).max:
            raise DataError(f"{name}: token values must be below 2**63")
        return values.astype(np.int64)
    return np.array(array)


@torch.no_grad()
def decode(model: nn.Module, latents: np.ndarray | torch.Tensor, labels=None) -> torch.Tensor:
    """The inverse of :func:`encode`: images in [-1, 1] from latents / token grids."""
    z = torch.as_tensor(np.asarray(latents))
    if z.dtype == torch.bool or z.is_complex():
        raise ConfigError(f"latents must be float latents or integer token grids, got {z.dtype}")
    if model.is_vq:
        if z.is_floating_point() or z.dim() != 3:
            raise ConfigError(f"a VQ-VAE decodes integer token grids (N, {model.config.grid}, {model.config.grid}); "
                              f"got {z.dtype} {tuple(z.shape)}")
        size = model.config.codebook_size
        if z.numel() and not (0 <= int(z.min()) and int(z.max()) < size):
            raise ConfigError(f"token values must be codebook indices in 0..{size - 1}, "
                              f"got {int(z.min())}..{int(z.max())}")
        return model.decode(z.long().to(model_device(model))).float().cpu()
    if z.dim() == 1:
        z = z[None]
    if not z.is_floating_point() or z.dim() != 2 or z.shape[1] != model.config.latent_dim:
        raise ConfigError(f"this VAE decodes float latents (N, {model.config.latent_dim}); got {z.dtype} "
                          f"{tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise ConfigError("latents must be finite")
    z = z.float().to(model_device(model))
    return model.mean_image(model.decode(z, class_labels(model, labels, z.shape[0], "--class"))).float().cpu()


# --- traversal and interpolation ------------------------------------------------------------


def parse_dims(spec: str, latent_dim: int) -> list[int]:
    """"0-9" / "3" / "0,2,5-7" -> dimension indices, each in 0..latent_dim-1."""
    dims: list[int] = []
    try:
        for part in str(spec).split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if hi < lo:
                    raise ConfigError(f"--dims range {part!r} is empty (write low-high)")
                if lo < 0 or hi >= latent_dim:  # before expanding: "0-99999999999" must not build a list
                    raise ConfigError(f"--dims must lie in 0..{latent_dim - 1} (the latent size); got {spec!r}")
                dims.extend(range(lo, hi + 1))
            else:
                dims.append(int(part))
    except ValueError:
        raise ConfigError(f"--dims must look like 0-9 or 0,3,5; got {spec!r}") from None
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad or not dims:
        raise ConfigError(f"--dims must lie in 0..{latent_dim - 1} (the latent size); got {spec!r}")
    return dims


@torch.no_grad()
def traverse(model: nn.Module, image: torch.Tensor, dims: Sequence[int], *, span: float = 3.0, steps: int = 9,
             labels=None) -> torch.Tensor:
    """Latent traversal (len(dims) * steps images): row r sets z[dims[r]] to each of
    ``linspace(-span, span, steps)`` with the other dimensions at the image's posterior mean —
    the disentanglement view for beta-VAEs."""
    if model.is_vq:
        raise ConfigError("traverse needs a continuous latent (a vae or cvae model), not a VQ-VAE")
    if span <= 0 or steps < 2:
        raise ConfigError(f"--range must be > 0 and --steps >= 2, got {span} and {steps}")
    latent_dim = model.config.latent_dim
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if bad:
        raise ConfigError(f"--dims must lie in 0..{latent_dim - 1}; got {bad}")
    x = image.reshape(1, *image.shape[-3:]).to(model_device(model))
    label = class_labels(model, labels, 1, "--class")
    mu, _ = model.encode(x, label)  # (1, D)
    values = torch.linspace(-span, span, steps, device=mu.device)
    z = mu.repeat(len(dims) * steps, 1)  # (rows * steps, D)
    for r, d in enumerate(dims):
        z[r * steps:(r + 1) * steps, d] = values
    lab = None if label is None else label.expand(z.shape[0])
    return model.mean_image(model.decode(z, lab)).float().cpu()


# --- the VQ-VAE token prior -----------------------------------------------------------------


@torch.no_grad()
def fit_token_prior(model: nn.Module, dataset, *, batch_size: int = 500, binarize_seed: int | None = 0,
                    smoothing: float = 0.01, limit: int | None = None) -> torch.Tensor:
    """Refit a VQ-VAE's per-position categorical prior exactly on ``dataset``'s token grids:
    pi_ij = (count_ij + smoothing) / (N + K * smoothing). Binarised models encode images
    binarised with a fixed seed (``binarize_seed``; None = the grey images); ``limit`` = only the
    first N images. Returns the probs."""
    if not model.is_vq:
        raise ConfigError("fit_token_prior needs a VQ-VAE")
    device = model_device(model)
    counts = torch.zeros_like(model.prior_probs, dtype=torch.float64)
    n = len(dataset) if limit is None else min(limit, len(dataset))
    g = torch.Generator().manual_seed(binarize_seed or 0)
    for start in range(0, n, batch_size):
        x = dataset.get_batch(torch.arange(start, min(start + batch_size, n)))[0]
        if model_binarizes(model) and binarize_seed is not None:
            x = binarize_fixed(x, g)
        tokens = model.encode(x.to(device))
        counts += model.token_frequencies(tokens).double() * tokens.shape[0]
    probs = (counts + smoothing) / (n + model.config.codebook_size * smoothing)
    model.prior_probs.copy_(probs.float())
    model.prior_batches.fill_(float(max(1, n // batch_size)))
    return model.prior_probs


__all__ = [
    "load_images", "reconstruct", "restyle", "class_swap_grid", "encode", "decode", "parse_dims", "traverse",
    "fit_token_prior",
]
