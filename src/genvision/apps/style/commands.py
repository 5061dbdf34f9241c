"""``genvision stylize CONTENT --style STYLE [--style STYLE2 --style-weights 0.7,0.3] -o OUT`` (optimisation),
``genvision stylize CONTENT --model STYLE_RUN -o OUT`` (a fast Johnson net) and ``genvision stylize CONTENT
--model ADAIN_RUN --style STYLE [--alpha 0.8] -o OUT`` (AdaIN): the method is implied by --model. CONTENT may be a
folder: each image is stylised into OUT with the same relative name, sharded and resumable (``--shard``, ``--resume``).

Everything that can be wrong (weights, sizes, files, the mask's size, an output that exists or is an
input) is refused with one line before the network is loaded, and nothing is written until the
image is done: the image is written atomically, then its JSON sidecar (``out.png.json``) with the
inputs, every setting, the backbone's weights and licence, and the losses at each scale.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ... import io as gio
from ...cli_params import SEED, Count, FiniteFloat, fail_fast_option, folder_job_options, overwrite_option
from ...errors import display_path
from ...outputs import OutputGuard
from ...jobs import Shard
from ...runtime import select_device
from ...tiling import check_output_suffix, process_path
from .fast import load_style_model, model_method, model_style_names
from .fast import run as run_model
from .pipeline import as_image, as_mask, transfer
from .settings import (
    BACKBONES,
    INITS,
    MAX_SCALES,
    MAX_SIDE,
    OPTIMIZERS,
    StyleSettings,
    parse_steps,
    parse_style_weights,
    settings_from,
)

METHODS = ("optimize", "fast", "adain")
# options that only steer the optimisation: given with a trained --model they would silently do nothing
OPTIMIZE_ONLY = ("backbone", "steps", "scales", "optimizer", "lr", "content_weight", "style_weight", "tv_weight",
                 "init", "seed")


def output_path(content: str, output: str) -> Path:
    """``-o`` as given, or ``FOLDER/<content name>.png`` for an existing folder or one ending in /."""
    out = Path(output)
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (Path(content).stem + ".png")
    check_output_suffix(out)
    return out


@click.command()
@click.argument("content", type=click.Path())
@click.option("--style", "styles", multiple=True, type=click.Path(),
              help="A style image (a painting); repeat for several, mixed by --style-weights (optimize, adain). "
                   "For a fast model of several styles: a style's name (e.g. zoo:johnson-paintings' candy).")
@click.option("--style-weights", help="One weight per --style, e.g. 0.7,0.3 (normalised to sum 1) [default: equal].")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output image (.png, .jpg, .webp), or a folder (CONTENT's name as .png); never an input.")
@click.option("--method", type=click.Choice(METHODS),
              help="optimize: Gatys et al.'s optimisation of the pixels (slow, any style, no training); fast: a "
                   "Johnson net of genvision train style; adain: a genvision train adain model [default: implied "
                   "by --model, else optimize].")
@click.option("--model", "model_dir", type=click.Path(),
              help="A trained style run or model directory (fast: genvision train style; adain: genvision train adain).")
@click.option("--alpha", type=FiniteFloat(min=0, max=1),
              help="adain: content-style trade-off, 0 = the content, 1 = fully stylised [default: 1].")
@click.option("--backbone", type=click.Choice(BACKBONES), default="vgg19", show_default=True,
              help="The VGG whose features define style and content.")
@click.option("--backbone-weights", type=click.Path(dir_okay=False),
              help="A VGG weights file to use instead of genvision's cache (see genvision weights); adain: its encoder's.")
@click.option("--size", type=Count(0, MAX_SIDE),
              help="Longest side of the result in pixels; larger content is shrunk (0 = the content's size) "
                   "[default: 512 for optimize, the content's size for fast and adain].")
@click.option("--steps", default="200", show_default=True,
              help="Optimiser steps per scale, or one count per scale coarse to fine (e.g. 300,200,100).")
@click.option("--scales", type=Count(1, MAX_SCALES), default=3, show_default=True,
              help="Coarse-to-fine levels, each half the size of the next (1 = full size only).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="lbfgs", show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True, max=100),
              help="Step size [default: 1 for lbfgs, 0.02 for adam].")
@click.option("--content-weight", type=FiniteFloat(min=0), default=1.0, show_default=True)
@click.option("--style-weight", type=FiniteFloat(min=0), default=StyleSettings.style_weight, show_default=True)
@click.option("--tv-weight", type=FiniteFloat(min=0), default=0.0, show_default=True,
              help="Total variation (smoothness) weight on [0, 1] pixels; compare with the losses the progress "
                   "bar shows (about 1e7 at the default weights).")
@click.option("--style-scale", type=FiniteFloat(min=0.05, max=20), default=1.0, show_default=True,
              help="Size of the style image relative to the result (larger = bigger brush strokes).")
@click.option("--init", type=click.Choice(INITS), default="content", show_default=True,
              help="Start from the content image or from noise.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for --init noise.")
@click.option("--preserve-color", is_flag=True,
              help="Transfer only luminance: the content's colours (YCbCr chroma) are kept exactly.")
@click.option("--mask", type=click.Path(dir_okay=False),
              help="Greyscale image of the content's size: white = stylise, black = keep the content.")
@click.option("--feather", type=Count(0, MAX_SIDE),
              help="Mask edge ramp in result pixels, inside the white region [default: longest side / 64].")
@click.option("--device", default="auto", show_default=True)
@overwrite_option
@fail_fast_option
@folder_job_options
@click.pass_context
def stylize(ctx, content, styles, style_weights, output, method, model_dir, alpha, backbone, backbone_weights, size,
            steps, scales, optimizer, lr, content_weight, style_weight, tv_weight, style_scale, init, seed,
            preserve_color, mask, feather, device, overwrite, fail_fast, shard, resume):
    """Restyle CONTENT (an image, or a folder of them) after one or more --style paintings.

    --method optimize (Gatys, Ecker & Bethge 2016) optimises the pixels so their VGG features keep the
    content's (relu4_2) and their Gram matrices match the styles' (relu1_1 ... relu5_1), coarse to fine.
    It runs in minutes on a CPU at 512 px; the progress bar shows the losses. The result's JSON sidecar
    records every setting.

    --model RUN runs a trained network instead, in a second or less: a fast (Johnson et al.) net applies
    the one style it was trained for, or, holding several, the one --style NAME chooses (several names
    mixed by --style-weights); an AdaIN model takes any --style image (several mixed by --style-weights)
    and --alpha. --preserve-color and --mask apply to their results too.

    A folder CONTENT gives a folder of PNGs with the same relative names (each with its sidecar); --shard
    and --resume split it over processes and continue a killed job, as for genvision upscale.
    """
    method = _method(method, model_dir)
    folder = Path(content).is_dir()
    if folder and mask is not None:
        raise click.UsageError("--mask is drawn for one content image; stylize a folder without it")
    if method != "optimize":
        _model_method(ctx, content, styles, style_weights, output, method, model_dir, alpha, backbone_weights, size,
                      style_scale, preserve_color, mask, feather, device, overwrite,
                      job=(fail_fast, shard, resume) if folder else None)
        return
    if alpha is not None:
        raise click.UsageError("--alpha is for --method adain")
    if not styles:
        raise click.UsageError("give at least one --style image (or a trained --model)")
    size = 512 if size is None else size
    weights = parse_style_weights(style_weights, len(styles))
    settings = settings_from(backbone=backbone, backbone_weights=backbone_weights, size=size or None,
                             steps=parse_steps(steps), scales=scales, optimizer=optimizer, lr=lr,
                             content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                             style_scale=style_scale, init=init, seed=seed, preserve_color=preserve_color,
                             feather=feather, device=device)

    def optimise(content_img, mask_img, progress):
        return transfer(content_img, style_imgs, weights, mask=mask_img, settings=settings, progress=progress), {}

    if folder:
        style_imgs = [as_image(path, "style") for path in styles]
        _folder_job(content, output, optimise, styles, overwrite, fail_fast, shard, resume)
        return
    out = output_path(content, output)
    inputs = [content, *styles, *(p for p in (mask, backbone_weights) if p is not None)]
    OutputGuard(overwrite=overwrite).add_inputs(*inputs).claim(out, sidecar=True)
    # every image is read (and the mask's size checked) before the network loads
    content_img = as_image(content, "content")
    style_imgs = [as_image(path, "style") for path in styles]
    mask_img = None if mask is None else as_mask(mask, tuple(content_img.shape[-2:]), display_path(mask))
    result = _write(optimise, content, content_img, mask, mask_img, styles, out, progress=True)
    click.echo(f"wrote {display_path(out)} ({result.image.shape[-1]}x{result.image.shape[-2]}, "
               f"{result.seconds:.0f} s, final loss {result.scales[-1].losses['total']:.4g})")


def _write(run, content, content_img, mask, mask_img, styles, out: Path, progress: bool):
    """``run(content image, mask image, progress)`` -> (result, extra record), written with its JSON sidecar."""
    result, extra = run(content_img, mask_img, progress)
    record = {"content": str(content), "styles": [str(s) for s in styles], "mask": mask and str(mask),
              "content_size": list(content_img.shape[-2:]), **extra, **result.to_json()}
    gio.save_image(result.image, out, metadata=record, value_range=(0.0, 1.0))
    return result


def _folder_job(content, output, run, styles, overwrite, fail_fast, shard, resume) -> None:
    """Every image of the folder ``content`` through ``run``, sharded and resumable (genvision.jobs)."""
    def work(source: Path, out: Path, progress: bool) -> Path:
        _write(run, source, as_image(source, "content"), None, None, styles, out, progress)
        return out

    report = process_path(content, output, work, overwrite=overwrite, fail_fast=fail_fast, progress=True,
                          sidecar=True, desc="stylize", shard=Shard.parse(shard), resume=resume, inputs=styles)
    report.raise_if_failed(output)
    click.echo(report.summary(output))


def _method(method: str | None, model_dir: str | None) -> str:
    """The method --method names, or the one --model's card implies; a contradiction is one line."""
    if model_dir is None:
        if method in ("fast", "adain"):
            raise click.UsageError(f"--method {method} needs --model RUN_DIR (genvision train "
                                   f"{'style' if method == 'fast' else 'adain'})")
        return "optimize"
    implied = model_method(model_dir)
    if method not in (None, implied):
        raise click.UsageError(f"--model {model_dir} is a {implied} model, not --method {method}")
    return implied


def _model_method(ctx, content, styles, style_weights, output, method, model_dir, alpha, backbone_weights, size,
                  style_scale, preserve_color, mask, feather, device, overwrite, job=None):
    """fast / adain: check every argument and input, load the model, run it once (or over the folder ``job``:
    (fail_fast, shard, resume)), write image + sidecar."""
    given = [name for name in OPTIMIZE_ONLY
             if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(f"--{given[0].replace('_', '-')} is for --method optimize, not {method}")
    names = model_style_names(model_dir) if method == "fast" else ()
    if method == "fast" and alpha is not None:
        raise click.UsageError("--alpha is for adain models")
    if method == "fast" and not names and (styles or style_weights):
        raise click.UsageError("a fast model has its style in its weights: --style and --style-weights are for adain "
                               "models and fast models of several styles")
    if names and not styles:
        raise click.UsageError(f"{model_dir} holds {len(names)} styles: choose with --style NAME "
                               f"({', '.join(names)})")
    unknown = [name for name in styles if names and name not in names]
    if unknown:
        raise click.UsageError(f"--style {unknown[0]} is not one of {model_dir}'s styles: {', '.join(names)}")
    if method == "adain" and not styles:
        raise click.UsageError("an adain model needs at least one --style image")
    weights = parse_style_weights(style_weights, len(styles)) if styles else None
    style_files = () if names else styles  # a multi-style fast net's --style values are names, not files

    def apply(content_img, mask_img, progress):
        result = run_model(model, content_img, style_imgs, weights, alpha=1.0 if alpha is None else alpha,
                           size=size or None, style_scale=style_scale, preserve_color=preserve_color, mask=mask_img,
                           feather_radius=feather)
        return result, {"preserve_color": preserve_color, **({"style_names": list(styles)} if names else {})}

    if job is not None:
        style_imgs = list(styles) if names else [as_image(path, "style") for path in styles]
        model = load_style_model(model_dir, device=select_device(device), encoder_weights=backbone_weights)
        _folder_job(content, output, apply, style_files, overwrite, *job)
        return
    out = output_path(content, output)
    inputs = [content, *style_files, *(p for p in (mask, backbone_weights) if p is not None)]
    OutputGuard(overwrite=overwrite).add_inputs(*inputs).claim(out, sidecar=True)
    content_img = as_image(content, "content")
    style_imgs = list(styles) if names else [as_image(path, "style") for path in styles]
    mask_img = None if mask is None else as_mask(mask, tuple(content_img.shape[-2:]), display_path(mask))
    model = load_style_model(model_dir, device=select_device(device), encoder_weights=backbone_weights)
    result = _write(apply, content, content_img, mask, mask_img, style_files, out, progress=False)
    click.echo(f"wrote {display_path(out)} ({result.image.shape[-1]}x{result.image.shape[-2]}, {method}, "
               f"{result.seconds:.2f} s)")
