"""``genvision compress`` and ``genvision decompress``: one image to a ``.gvc`` bitstream and back."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from ... import io as gio
from ...checkpoints import load_with_card
from ...cli_params import overwrite_option
from ...errors import DataError
from ...outputs import OutputGuard, write_bytes
from ...runtime import select_device
from .bitstream import SUFFIX, decode_file, encode_file, weights_fingerprint

DEVICE_HELP = ("Device for the transforms. The hyperprior's scales are floats: decompress on the same kind of "
               "device as compress (the default, cpu, everywhere) for an exact decode.")


def _codec(model_dir: str, device: str):
    model, card = load_with_card(model_dir, kind="codec")
    return model.to(select_device(device)).eval(), card


@click.command()
@click.argument("image", type=click.Path())
@click.option("--model", "model_dir", required=True, help="A codec model directory (genvision train codec).")
@click.option("-o", "--output", type=click.Path(), help=f"The {SUFFIX} file (default: IMAGE with {SUFFIX}).")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@overwrite_option
def compress(image, model_dir, output, device, overwrite):
    """Compress an image of any size with a learned codec into a .gvc bitstream.

    Prints the file's size and its bits per pixel (the whole file: header and checksum included).
    """
    output = Path(output) if output else Path(image).with_suffix(SUFFIX)
    guard = OutputGuard(overwrite=overwrite).add_inputs(image).add_model(model_dir)
    guard.claim(output)
    model, card = _codec(model_dir, device)
    pixels = gio.load_image_tensor(image, channels=model.config.channels)  # (C, H, W) in [0, 1]
    start = time.perf_counter()
    coded = model.compress(pixels[None].to(next(model.parameters()).device))
    data = encode_file(card["model"], weights_fingerprint(model), coded)
    seconds = time.perf_counter() - start
    write_bytes(output, data)
    h, w = pixels.shape[-2:]
    click.echo(f"wrote {output} ({len(data):,} bytes, {8 * len(data) / (h * w):.4f} bpp for {w}x{h}, "
               f"{seconds:.2f} s)")


@click.command()
@click.argument("bitstream", type=click.Path())
@click.option("--model", "model_dir", required=True, help="The codec model directory that wrote the file.")
@click.option("-o", "--output", required=True, type=click.Path(), help="The decoded image (.png, .webp, .jpg).")
@click.option("--device", default="cpu", show_default=True, help=DEVICE_HELP)
@overwrite_option
def decompress(bitstream, model_dir, output, device, overwrite):
    """Decode a .gvc file written by genvision compress back to an image."""
    guard = OutputGuard(overwrite=overwrite).add_inputs(bitstream).add_model(model_dir)
    guard.claim(output)
    coded_file = decode_file(bitstream)
    model, card = _codec(model_dir, device)
    fingerprint = weights_fingerprint(model)
    if (coded_file.model, coded_file.fingerprint) != (card["model"], fingerprint):
        raise DataError(f"{bitstream} was written by a {coded_file.model} codec with weights "
                        f"{coded_file.fingerprint}; {model_dir} holds {card['model']} weights {fingerprint}")
    try:
        image = model.decompress(coded_file.coded)
    except (RuntimeError, ValueError) as exc:  # a bitstream the coder cannot parse despite a valid checksum
        raise DataError(f"{bitstream} cannot be decoded: {str(exc).splitlines()[0]}") from None
    gio.save_image(image[0].to("cpu", torch.float32), output, value_range=(0.0, 1.0))
    h, w = coded_file.coded.image_size
    click.echo(f"wrote {output} ({w}x{h})")
