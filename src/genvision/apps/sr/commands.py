"""Super-resolution commands: ``genvision upscale``.

``genvision evaluate --model DIR|bicubic --data sr:Set5 --scale N`` and ``genvision train sr|srgan``
cover the rest. """

from __future__ import annotations

import click

from ...cli_params import (
    SCALE,
    backend_option,
    fail_fast_option,
    folder_job_options,
    overwrite_option,
    tiled_options,
)
from ...errors import ConfigError
from ...export.onnx_model import load_onnx_model, wants_onnx
from ...jobs import Shard
from ...runtime import select_device
from .pipeline import resolve_sr_model, upscale_path


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png streams with bounded memory; .jpg/.webp) or folder (for a folder input; "
                   "it may not be the input folder or inside it).")
@click.option("--model", "model", required=True,
              help="SR model or run directory, 'bicubic', or an .onnx file from genvision export.")
@click.option("--scale", type=SCALE, help="Upscaling factor (2, 3, 4): needed for bicubic, checked against a model.")
@tiled_options(overlap=16)
@click.option("--device", default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option("--self-ensemble", is_flag=True,
              help="Average the model over the 8 flips/transposes of each tile (8x slower, ~+0.1 dB).")
@backend_option
@overwrite_option
@fail_fast_option
@folder_job_options
def upscale(source, output, model, scale, tile, overlap, batch, bit_depth, device, no_ema, self_ensemble, backend,
            overwrite, fail_fast, shard, resume):
    """Upscale an image or a folder of images with a super-resolution model (tiled, seam-free).

    A folder gives a folder of PNGs with the same relative names; when two inputs would get one
    name (x.jpg and x.tif -> x.png) each gets its suffix added (x_jpg.png, x_tif.png). A file
    that fails is reported and the rest go on; the exit status is 1 if any failed.
    """
    if 0 < tile < 8:
        raise ConfigError(f"--tile must be 0 (whole image) or at least 8 pixels, got {tile}")
    loaded = load_onnx_model(model, kind="sr") if wants_onnx(model, backend) else model
    net = resolve_sr_model(loaded, scale, device=select_device(device), use_ema=not no_ema,
                           self_ensemble=self_ensemble)
    report = upscale_path(net, source, output, tile=tile or None, overlap=overlap, batch=batch,
                          bit_depth=bit_depth, progress=True, overwrite=overwrite, fail_fast=fail_fast,
                          shard=Shard.parse(shard), resume=resume,
                          metadata={"model": str(model), "scale": net.scale, "self_ensemble": self_ensemble,
                                    "backend": "onnxruntime" if loaded is not model else "torch"})
    report.raise_if_failed(output)  # the summary as the one error line, and a non-zero exit
    click.echo(f"wrote {report.written[0]}" if report.total == 1 else report.summary(output))

