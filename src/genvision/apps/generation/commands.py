"""``genvision generate`` and ``genvision interpolate``: for any model with the generator protocol."""

from __future__ import annotations

import os

import click
import torch

from ... import io as gio
from ...checkpoints import load_with_card
from ...cli_params import CLASS, MAX_COUNT, NROW, SEED, Count, FiniteFloat, backend_option, overwrite_option
from ...export.onnx_model import load_onnx_model, wants_onnx
from ...outputs import NumberedNames, OutputGuard, run_job
from ...sampling import check_generator, image_shape, interpolate_images, iter_generate
from ...sampling import interpolate as interpolate_seeds


def _load_generator(model_dir: str, use_ema: bool, backend: str = "torch"):
    if wants_onnx(model_dir, backend):
        return check_generator(load_onnx_model(model_dir, kind="gan"))
    model, _ = load_with_card(model_dir, use_ema=use_ema)
    return check_generator(model)


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory.")
@click.option("-n", "num", default=64, show_default=True, type=Count(1, MAX_COUNT),
              help="Number of images (generated in batches: any number streams to a folder).")
@click.option("--seed", default=0, show_default=True, type=SEED, help="0..2**63-1; image i is the same for any -n.")
@click.option("--class", "class_label", type=CLASS, help="Class to generate (conditional models).")
@click.option("-o", "--output", default="samples.png", show_default=True, type=click.Path(),
              help="Grid PNG; a directory name (ending in /) writes one PNG per image.")
@click.option("--nrow", type=NROW, help="Images per grid row.")
@click.option("--batch-size", default=256, show_default=True, type=Count(1, 10_000),
              help="Images per forward pass: memory, not results (each image has its own seeded latent).")
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option("--steps", type=Count(1, 10_000), help="Sampling steps (diffusion models), decoding steps (maskgit).")
@click.option("--cfg", type=FiniteFloat(0.0, 100.0),
              help="Classifier-free guidance scale 0..100, 1 = conditional (diffusion and maskgit models).")
@click.option("--sampler", help="ODE sampler: euler, heun or midpoint (diffusion models).")
@click.option("--temperature", type=FiniteFloat(0.0, 100.0, min_open=True),
              help="Scale of the prior latents, > 0; < 1 for cleaner samples (VAEs; maskgit: divides the logits).")
@backend_option
@overwrite_option
def generate(model_dir, num, seed, class_label, output, nrow, batch_size, no_ema, steps, cfg, sampler, temperature,
             backend, overwrite):
    """Sample images from a trained generator."""
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir).add_inputs(model_dir)  # a dir, or an .onnx file
    model = _load_generator(model_dir, use_ema=not no_ema, backend=backend)
    options = {"steps": steps, "cfg": cfg, "sampler": sampler, "temperature": temperature}
    sampling = {k: v for k, v in options.items() if v is not None}
    meta = {"model": str(model_dir), "seed": seed, "n": num, "class": class_label, **sampling}
    # Only options given on the command line are passed; iter_generate refuses ones the model does not take.
    batches = iter_generate(model, num, seed=seed, class_label=class_label, batch_size=batch_size, **sampling)
    if output.endswith(os.sep) or output.endswith("/"):
        folder = guard.claim_numbered(output, NumberedNames(f"{seed}_", num, ".png"), sidecar=True)

        def numbered():
            index = 0
            for batch in batches:
                for image in batch:
                    yield index, image
                    index += 1

        def save(item):
            index, image = item
            return gio.save_image(image, folder / f"{seed}_{index:05d}.png", metadata={**meta, "index": index})

        # fail_fast: a write that fails (a full disk) would fail for every later image too
        report = run_job(numbered(), save, total=num, label=lambda item: f"image {item[0]}", fail_fast=True,
                         desc="generate")
        click.echo(report.summary(output))
    else:
        shape = image_shape(model)
        if shape is not None:
            gio.check_grid(num, shape, nrow)  # before any sampling: a grid over io.MAX_PIXELS is refused
        path = guard.claim(output, sidecar=True)
        images = torch.cat(list(batches))  # the grid check bounds this by io.MAX_PIXELS images' pixels
        path = gio.save_grid(images, path, nrow=nrow, metadata=meta)
        click.echo(f"wrote {path}")


@click.command()
@click.option("--model", "model_dir", required=True, help="Model or run directory.")
@click.option("--seeds", nargs=2, type=SEED, default=(1, 2), show_default=True, help="Start and end seeds.")
@click.option("--frames", default=8, show_default=True, type=Count(2, 1000))
@click.option("--method", type=click.Choice(["slerp", "lerp"]), default="slerp", show_default=True)
@click.option("--class", "class_label", type=CLASS, help="Class for conditional models.")
@click.option("-o", "--output", default="interpolation.png", show_default=True, type=click.Path(),
              help="PNG strip, or a .gif animation.")
@click.option("--images", nargs=2, type=click.Path(), help="VAEs: walk between these two images' latents instead.")
@overwrite_option
def interpolate(model_dir, seeds, frames, method, class_label, output, images, overwrite):
    """Walk the latent space between two seeds or two images (PNG strip or GIF)."""
    guard = OutputGuard(overwrite=overwrite).add_model(model_dir).add_inputs(*(images or ()))
    guard.claim(output, sidecar=True)
    if images:
        model, _ = load_with_card(model_dir)
        pair = gio.load_images_resized(list(images), channels=model.config.channels, size=model.config.image_size)
        frames_out = interpolate_images(model, pair[0], pair[1], frames, method=method, labels=class_label)
        meta = {"model": str(model_dir), "images": list(images), "frames": frames, "method": method}
    else:
        model = _load_generator(model_dir, use_ema=True)
        frames_out = interpolate_seeds(model, tuple(seeds), frames, method=method, class_label=class_label)
        meta = {"model": str(model_dir), "seeds": list(seeds), "frames": frames, "method": method}
    if output.lower().endswith(".gif"):
        path = gio.save_gif(frames_out, output, metadata=meta)
    else:
        path = gio.save_grid(frames_out, output, nrow=frames, metadata=meta)
    click.echo(f"wrote {path}")


__all__ = ["generate", "interpolate"]
