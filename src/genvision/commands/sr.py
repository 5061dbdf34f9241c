"""Super-resolution commands: ``genvision upscale``.

``genvision evaluate --model DIR|bicubic --data sr:Set5 --scale N`` and ``genvision train sr|srgan``
cover the rest. Heavy imports happen inside the command so ``genvision --help`` stays fast.
"""

from __future__ import annotations

import click


@click.command()
@click.argument("source", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Output file (.png streams with bounded memory; .jpg/.webp) or folder (for a folder input).")
@click.option("--model", "model", required=True, help="SR model or run directory, or 'bicubic'.")
@click.option("--scale", type=int, help="Upscaling factor (2, 3, 4): needed for bicubic, checked against a model.")
@click.option("--tile", default=256, show_default=True, type=int,
              help="Tile size in input pixels (0 = whole image at once).")
@click.option("--overlap", default=16, show_default=True, type=int, help="Pixels neighbouring tiles share.")
@click.option("--batch", default=4, show_default=True, type=int, help="Tiles per forward pass.")
@click.option("--bit-depth", type=click.Choice(["auto", "8", "16"]), default="auto", show_default=True,
              help="PNG bit depth; auto = 16 for 16-bit inputs, else 8.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-ema", is_flag=True, help="Use the raw weights instead of the EMA weights.")
@click.option("--self-ensemble", is_flag=True,
              help="Average the model over the 8 flips/transposes of each tile (8x slower, ~+0.1 dB).")
def upscale(source, output, model, scale, tile, overlap, batch, bit_depth, device, no_ema, self_ensemble):
    """Upscale an image or a folder of images with a super-resolution model (tiled, seam-free)."""
    from ..errors import ConfigError
    from ..runtime import select_device
    from ..tasks.upscale import resolve_sr_model, upscale_path

    if tile < 0:
        raise ConfigError(f"--tile must be >= 0, got {tile}")
    if batch < 1:
        raise ConfigError(f"--batch must be >= 1, got {batch}")
    if model == "bicubic" and scale is None:
        raise ConfigError("--model bicubic needs --scale 2, 3 or 4")
    net = resolve_sr_model(model, scale, device=select_device(device), use_ema=not no_ema,
                           self_ensemble=self_ensemble)
    written = upscale_path(net, source, output, tile=tile or None, overlap=overlap, batch=batch,
                           bit_depth=bit_depth, progress=True,
                           metadata={"model": str(model), "scale": net.config.scale,
                                     "self_ensemble": self_ensemble})
    if len(written) == 1:
        click.echo(f"wrote {written[0]}")
    else:
        click.echo(f"wrote {len(written)} images to {output}")


COMMANDS = [upscale]
