"""``genvision translate IMAGE_OR_FOLDER --model RUN_DIR --direction a2b -o OUT``."""

from __future__ import annotations

import click

from ...cli_params import fail_fast_option, folder_job_options, overwrite_option
from ...jobs import Shard
from ...runtime import select_device
from .pipeline import load_translator, translate_path


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png, .jpg, .webp) or folder (for a folder input; not the input folder or inside it).")
@click.option("--model", "model", required=True, help="CycleGAN model or run directory.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b: domain A (--data-a of training) to B; b2a: back.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@overwrite_option
@fail_fast_option
@folder_job_options
def translate(source, output, model, direction, device, no_ema, overwrite, fail_fast, shard, resume):
    """Translate an image or a folder of images to the other domain (whole image, any size).

    A folder gives a folder of PNGs with the same relative names; a file that fails is reported and
    the rest go on; the exit status is 1 if any failed. Every output gets a JSON sidecar.
    """
    net = load_translator(model, device=select_device(device), use_ema=not no_ema)
    report = translate_path(net, source, output, direction=direction, progress=True, overwrite=overwrite,
                            fail_fast=fail_fast, metadata={"model": str(model)},
                            shard=Shard.parse(shard), resume=resume)
    report.raise_if_failed(output)  # the summary as the one error line, and a non-zero exit
    click.echo(f"wrote {report.written[0]}" if report.total == 1 else report.summary(output))
