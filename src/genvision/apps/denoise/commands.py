"""Denoising commands: ``genvision denoise``.

``genvision evaluate --model DIR|nlmeans --data sr:Set5 --sigma 25`` and ``genvision train denoise``
cover the rest."""

from __future__ import annotations

import click

from ...cli_params import (
    FiniteFloat,
    fail_fast_option,
    folder_job_options,
    overwrite_option,
    tiled_options,
)
from ...errors import ConfigError
from ...jobs import Shard
from ...runtime import select_device
from .pipeline import (
    DEFAULT_OVERLAP,
    MAX_SIGMA,
    denoise_path,
    resolve_denoiser,
)

SIGMA = FiniteFloat(0.0, MAX_SIGMA, min_open=True)


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png streams with bounded memory; .jpg/.webp) or folder (for a folder input; "
                   "it may not be the input folder or inside it).")
@click.option("--model", "model", required=True,
              help="Denoising model or run directory, or 'nlmeans' (OpenCV non-local means, no weights).")
@click.option("--sigma", type=SIGMA,
              help="Noise standard deviation in 8-bit levels, (0, 255] (25 = 25/255 of the range). Used by "
                   "conditioned models and nlmeans (estimated from each image when not given); blind models "
                   "ignore it.")
@tiled_options(overlap=DEFAULT_OVERLAP)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@overwrite_option
@fail_fast_option
@folder_job_options
def denoise(source, output, model, sigma, tile, overlap, batch, bit_depth, device, no_ema, overwrite, fail_fast, shard,
            resume):
    """Remove noise from an image or a folder of images (tiled, seam-free; alpha kept as it is).

    A folder gives a folder of PNGs with the same relative names; when two inputs would get one
    name (x.jpg and x.tif -> x.png) each gets its suffix added (x_jpg.png, x_tif.png). A file
    that fails is reported and the rest go on; the exit status is 1 if any failed.
    """
    if 0 < tile < 8:
        raise ConfigError(f"--tile must be 0 (whole image) or at least 8 pixels, got {tile}")
    net = resolve_denoiser(model, device=select_device(device), use_ema=not no_ema)
    report = denoise_path(net, source, output, sigma=sigma, tile=tile or None, overlap=overlap, batch=batch,
                          bit_depth=bit_depth, progress=True, overwrite=overwrite, fail_fast=fail_fast,
                          shard=Shard.parse(shard), resume=resume, metadata={"model": str(model)})
    report.raise_if_failed(output)  # the summary as the one error line, and a non-zero exit
    click.echo(f"wrote {report.written[0]}" if report.total == 1 else report.summary(output))
