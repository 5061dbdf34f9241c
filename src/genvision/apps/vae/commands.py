"""VAE-family commands: reconstruct, traverse, encode, decode, likelihood.

``genvision generate`` / ``interpolate`` / ``evaluate`` / ``train vae|cvae|vqvae`` cover the rest.
"""

from __future__ import annotations

from pathlib import Path

import click
import torch

from ... import io as gio
from ...checkpoints import load_pretrained
from ...cli_params import CLASS, NROW, SEED, Count, FiniteFloat, overwrite_option
from ...errors import ConfigError, DataError
from ...io import check_grid
from ...outputs import OutputGuard, save_npy, write_json
from ...sampling import image_shape
from . import pipeline as tv
from .evaluate import evaluate_vae

MODEL_HELP = "VAE, CVAE or VQ-VAE model or run directory."


def _load_vae(model_dir: str, no_ema: bool = False):
    return load_pretrained(model_dir, kind="vae", use_ema=not no_ema)


def _class_option(value: str | None, flag: str = "--class"):
    if value is None:
        return None
    try:
        label = int(value)
    except ValueError:
        raise ConfigError(f"{flag} must be an integer class, got {value!r}") from None
    if not 0 <= label <= CLASS.max:  # the model then checks it against its own number of classes
        raise ConfigError(f"{flag} must be a class index >= 0, got {label}")
    return label


def _guard(overwrite: bool, model_dir: str, inputs=()):
    """The outputs check every command here starts with: inputs and the model's files are never
    replaced, existing outputs only with --overwrite."""
    return OutputGuard(overwrite=overwrite).add_model(model_dir).add_inputs(*inputs)


@click.command()
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--class", "--label", "label", help="Class of the images (conditional models). (also --label)")
@click.option("--to-class", "to_class", help="CVAE: decode with this class instead ('all': one column per class).")
@click.option("-o", "--output", default="reconstruction.png", show_default=True, type=click.Path(),
              help="Grid PNG: originals above their reconstructions.")
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@overwrite_option
def reconstruct(model_dir, images, label, to_class, output, no_ema, overwrite):
    """Encode and decode IMAGES (originals above reconstructions); CVAE class edits with --to-class."""
    _guard(overwrite, model_dir, images).claim(output, sidecar=True)
    model = _load_vae(model_dir, no_ema)
    x = tv.load_images(list(images), model)
    labels = _class_option(label)
    meta = {"model": str(model_dir), "images": list(images), "label": labels}
    if to_class is None:
        recon = tv.reconstruct(model, x, labels)
        grid, nrow = torch.cat([x, recon]), x.shape[0]
    elif to_class == "all":
        swapped = tv.class_swap_grid(model, x, labels)  # (N*K) rows of K
        k = model.config.num_classes
        grid = torch.cat([torch.cat([x[i:i + 1], swapped[i * k:(i + 1) * k]]) for i in range(x.shape[0])])
        nrow = k + 1
        meta["to_class"] = "all"
    else:
        target = _class_option(to_class, "--to-class")
        recon = tv.restyle(model, x, labels, target)
        grid, nrow = torch.cat([x, recon]), x.shape[0]
        meta["to_class"] = target
    path = gio.save_grid(grid, output, nrow=nrow, metadata=meta)
    click.echo(f"wrote {path}")


@click.command()
@click.option("--model", "model_dir", required=True, help="VAE or CVAE model or run directory.")
@click.option("--image", required=True, type=click.Path(), help="Image whose posterior mean is the centre.")
@click.option("--dims", default="0-9", show_default=True,
              help="Latent dimensions, one per row: 0-9 or 0,3,5 (each in 0..latent size - 1).")
@click.option("--range", "span", default=3.0, show_default=True, type=FiniteFloat(0.0, 1000.0, min_open=True),
              help="Each row sweeps -R..R (0 < R <= 1000).")
@click.option("--steps", default=9, show_default=True, type=Count(2, 256), help="Images per row.")
@click.option("--class", "--label", "label", help="Class of the image (conditional models). (also --label)")
@click.option("-o", "--output", default="traversal.png", show_default=True, type=click.Path())
@overwrite_option
def traverse(model_dir, image, dims, span, steps, label, output, overwrite):
    """Latent traversal grid: one latent dimension varied per row (beta-VAE disentanglement view)."""
    _guard(overwrite, model_dir, [image]).claim(output, sidecar=True)
    model = _load_vae(model_dir)
    if model.is_vq:
        raise ConfigError("traverse needs a continuous latent (a vae or cvae model), not a VQ-VAE")
    dim_list = tv.parse_dims(dims, model.config.latent_dim)
    shape = image_shape(model)
    if shape is not None:  # one row per dimension: refuse a grid over io.MAX_PIXELS before decoding it
        check_grid(len(dim_list) * steps, shape, steps, remedy="give fewer --dims or --steps")
    x = tv.load_images([image], model)
    grid = tv.traverse(model, x[0], dim_list, span=span, steps=steps, labels=_class_option(label))
    path = gio.save_grid(grid, output, nrow=steps, metadata={"model": str(model_dir), "image": image,
                                                             "dims": dim_list, "range": span, "steps": steps})
    click.echo(f"wrote {path}")


@click.command()
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--class", "--label", "label", help="Class of the images (conditional models). (also --label)")
@click.option("-o", "--output", default="latents.npy", show_default=True, type=click.Path(),
              help=".npy: float32 (N, latent_dim) posterior means, or int64 (N, h, w) VQ token grids.")
@overwrite_option
def encode(model_dir, images, label, output, overwrite):
    """Encode IMAGES to latents (VAE/CVAE posterior means) or token grids (VQ-VAE) in a .npy file."""
    if not str(output).endswith(".npy"):
        raise ConfigError(f"-o must name a .npy file, got {output}")
    _guard(overwrite, model_dir, images).claim(output)
    model = _load_vae(model_dir)
    latents = tv.encode(model, tv.load_images(list(images), model), _class_option(label))
    save_npy(output, latents)
    click.echo(f"wrote {output} ({latents.dtype} {latents.shape})")


@click.command()
@click.option("--model", "model_dir", required=True, help=MODEL_HELP)
@click.argument("latents", type=click.Path())
@click.option("--class", "--label", "label", help="Class to decode with (conditional models). (also --label)")
@click.option("-o", "--output", default="decoded.png", show_default=True, type=click.Path(), help="Grid PNG.")
@click.option("--nrow", type=NROW, help="Images per grid row.")
@overwrite_option
def decode(model_dir, latents, label, output, nrow, overwrite):
    """Decode a .npy of latents or VQ token grids (as written by encode) to an image grid."""
    path = Path(latents)
    if not path.is_file():
        raise DataError(f"latents file not found: {path}")
    _guard(overwrite, model_dir, [path]).claim(output, sidecar=True)
    model = _load_vae(model_dir)
    array = tv.load_latents(path)
    shape = image_shape(model)
    if shape is not None:  # one grid of all latents: refuse one over io.MAX_PIXELS before decoding
        check_grid(array.shape[0] if array.ndim > 1 else 1, shape, nrow, remedy="decode fewer latents at a time")
    images = tv.decode(model, array, _class_option(label))
    out = gio.save_grid(images, output, nrow=nrow, metadata={"model": str(model_dir), "latents": str(path)})
    click.echo(f"wrote {out}")


@click.command()
@click.option("--model", "model_dir", required=True, help="VAE or CVAE model or run directory.")
@click.option("--data", help="Dataset (default: the one the model was trained on).")
@click.option("--data-root", type=click.Path(), help="Where dataset files live.")
@click.option("-k", "--k", "k", default=500, show_default=True, type=Count(1, 100_000),
              help="Importance samples per image.")
@click.option("--limit", type=Count(1, 10**9), help="Only the first N test images.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--device", default="auto", show_default=True)
@click.option("-o", "--output", type=click.Path(), help="Also write the results as JSON.")
@overwrite_option
def likelihood(model_dir, data, data_root, k, limit, seed, device, output, overwrite):
    """Test-set -ELBO and importance-weighted NLL (nats and bits/dim) with a chosen k."""
    if output:
        guard = _guard(overwrite, model_dir)
        if data and data.startswith("folder:"):
            guard.add_input_folder(Path(data[len("folder:"):]).expanduser())
        guard.claim(output)
    result = evaluate_vae(model_dir, data=data, data_root=data_root, k=k, limit=limit, seed=seed,
                          device=device)
    if output:
        write_json(output, result.to_json())
        result.files["json"] = output
    click.echo(result.table())

