"""``genvision stylize CONTENT --style STYLE [--style STYLE2 --style-weights 0.7,0.3] -o OUT``.

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
from ...cli_params import SEED, Count, FiniteFloat, overwrite_option
from ...errors import display_path
from ...outputs import OutputGuard
from ...tiling import check_output_suffix
from .pipeline import as_image, as_mask, transfer
from .settings import (
    BACKBONES,
    INITS,
    MAX_SCALES,
    MAX_SIDE,
    OPTIMIZERS,
    parse_steps,
    parse_style_weights,
    settings_from,
)

METHODS = ("optimize",)  # the fast (Johnson) and AdaIN methods join here


def output_path(content: str, output: str) -> Path:
    """``-o`` as given, or ``FOLDER/<content name>.png`` for an existing folder or one ending in /."""
    out = Path(output)
    if str(output).endswith(("/", os.sep)) or out.is_dir():
        out = out / (Path(content).stem + ".png")
    check_output_suffix(out)
    return out


@click.command()
@click.argument("content", type=click.Path())
@click.option("--style", "styles", multiple=True, required=True, type=click.Path(),
              help="A style image (a painting); repeat for several, mixed by --style-weights.")
@click.option("--style-weights", help="One weight per --style, e.g. 0.7,0.3 (normalised to sum 1) [default: equal].")
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output image (.png, .jpg, .webp), or a folder (CONTENT's name as .png); never an input.")
@click.option("--method", type=click.Choice(METHODS), default="optimize", show_default=True,
              help="optimize: Gatys et al.'s optimisation of the pixels (slow, any style, no training).")
@click.option("--backbone", type=click.Choice(BACKBONES), default="vgg19", show_default=True,
              help="The VGG whose features define style and content.")
@click.option("--backbone-weights", type=click.Path(dir_okay=False),
              help="A VGG weights file to use instead of genvision's cache (see genvision weights).")
@click.option("--size", type=Count(0, MAX_SIDE), default=512, show_default=True,
              help="Longest side of the result in pixels; larger content is shrunk (0 = the content's size).")
@click.option("--steps", default="200", show_default=True,
              help="Optimiser steps per scale, or one count per scale coarse to fine (e.g. 300,200,100).")
@click.option("--scales", type=Count(1, MAX_SCALES), default=3, show_default=True,
              help="Coarse-to-fine levels, each half the size of the next (1 = full size only).")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="lbfgs", show_default=True)
@click.option("--lr", type=FiniteFloat(min=0, min_open=True, max=100),
              help="Step size [default: 1 for lbfgs, 0.02 for adam].")
@click.option("--content-weight", type=FiniteFloat(min=0), default=1.0, show_default=True)
@click.option("--style-weight", type=FiniteFloat(min=0), default=1e3, show_default=True)
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
def stylize(content, styles, style_weights, output, method, backbone, backbone_weights, size, steps, scales,
            optimizer, lr, content_weight, style_weight, tv_weight, style_scale, init, seed, preserve_color, mask,
            feather, device, overwrite):
    """Restyle CONTENT after one or more --style paintings.

    --method optimize (Gatys, Ecker & Bethge 2016) optimises the pixels so their VGG features keep the
    content's (relu4_2) and their Gram matrices match the styles' (relu1_1 ... relu5_1), coarse to fine.
    It runs in minutes on a CPU at 512 px; the progress bar shows the losses. The result's JSON sidecar
    records every setting.
    """
    weights = parse_style_weights(style_weights, len(styles))
    settings = settings_from(backbone=backbone, backbone_weights=backbone_weights, size=size or None,
                             steps=parse_steps(steps), scales=scales, optimizer=optimizer, lr=lr,
                             content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight,
                             style_scale=style_scale, init=init, seed=seed, preserve_color=preserve_color,
                             feather=feather, device=device)
    out = output_path(content, output)
    inputs = [content, *styles, *(p for p in (mask, backbone_weights) if p is not None)]
    OutputGuard(overwrite=overwrite).add_inputs(*inputs).claim(out, sidecar=True)
    # every image is read (and the mask's size checked) before the network loads
    content_img = as_image(content, "content")
    style_imgs = [as_image(path, "style") for path in styles]
    mask_img = None if mask is None else as_mask(mask, tuple(content_img.shape[-2:]), display_path(mask))
    result = transfer(content_img, style_imgs, weights, mask=mask_img, settings=settings, progress=True)
    record = {"content": str(content), "styles": [str(s) for s in styles], "mask": mask and str(mask),
              "content_size": list(content_img.shape[-2:]), **result.to_json()}
    gio.save_image(result.image, out, metadata=record, value_range=(0.0, 1.0))
    click.echo(f"wrote {display_path(out)} ({result.image.shape[-1]}x{result.image.shape[-2]}, "
               f"{result.seconds:.0f} s, final loss {result.scales[-1].losses['total']:.4g})")
