"""Click parameter types and options shared by every command: each number has a type and a range,
checked while the command line is parsed, so a bad value is one usage line naming the flag
(``error: Invalid value for '--seed': ... (see genvision generate --help)``) before any model loads.

Ranges (see also each command's ``--help``):

* seeds: 0..2**63-1 (what ``torch.Generator.manual_seed`` takes as a non-negative number; every
  seed derived from one, see ``genvision.runtime.derive_seed``, stays in that range);
* counts (``-n``, ``--limit``, ``-k``, ``--frames``, ``--steps``, ...): integers from 1 (or 2) up to
  a stated ceiling; ``1e8``-style spellings of whole numbers are accepted;
* floats (``--cfg``, ``--temperature``, ``--range``, ``--minutes``): finite — NaN and infinities
  are refused (click's FloatRange lets NaN through, since every comparison with NaN is false).
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

import click

from .runtime import SEED_MAX

MAX_COUNT = 10**9  # generate/evaluate -n: far beyond any real job, and still exact in float64 and int64


class Count(click.IntRange):
    """An integer in a range that also accepts whole numbers written like ``1e8`` or ``100_000``
    (parsed exactly, with Decimal: ``1234567890123456789e0`` is not rounded through a float)."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, str):
            text = value.strip().replace("_", "")
            try:
                value = int(text)
            except ValueError:
                try:
                    number = Decimal(text)
                except InvalidOperation:
                    self.fail(f"{value!r} is not a valid integer.", param, ctx)
                if not number.is_finite() or number != number.to_integral_value():
                    self.fail(f"{value!r} is not a whole number.", param, ctx)
                if number.adjusted() > 40:  # before int(): 1e999999999 would build a huge integer
                    self.fail(f"{value!r} is not in the range {self._describe_range()}.", param, ctx)
                value = int(number)
        return super().convert(value, param, ctx)


class FiniteFloat(click.FloatRange):
    """A float range that refuses NaN and +-inf (which would pass or confuse plain FloatRange)."""
    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


SEED = Count(0, SEED_MAX)
CLASS = Count(0, 100_000)  # a class index; the model then checks it against its own classes
NROW = Count(1, 100_000)  # images per grid row (more than there are images means one row)
SCALE = Count(2, 4)  # the super-resolution factors genvision's models support


def overwrite_option(func):
    return click.option("--overwrite", is_flag=True,
                        help="Replace existing output files (inputs are never replaced).")(func)


def tiled_options(*, overlap: int):
    """--tile, --overlap, --batch and --bit-depth of the commands that run an image-to-image model in
    tiles (upscale, denoise); ``overlap`` is the default, which depends on the model's receptive field."""
    def decorate(func):
        for option in reversed((
                click.option("--tile", default=256, show_default=True, type=Count(0, 1 << 20),
                             help="Tile size in input pixels, 0 or >= 8 (0 = whole image at once)."),
                click.option("--overlap", default=overlap, show_default=True, type=Count(0, 1 << 19),
                             help="Pixels neighbouring tiles share (at most half of --tile)."),
                click.option("--batch", default=4, show_default=True, type=Count(1, 256),
                             help="Tiles per forward pass."),
                click.option("--bit-depth", type=click.Choice(["auto", "8", "16"]), default="auto",
                             show_default=True, help="PNG bit depth; auto = 16 for 16-bit inputs, else 8."))):
            func = option(func)
        return func
    return decorate


def backend_option(func):
    """--backend of the commands that can run an exported .onnx file as well as a model directory."""
    return click.option("--backend", type=click.Choice(["auto", "torch", "onnxruntime"]), default="auto",
                        show_default=True,
                        help="Run --model in PyTorch or in onnxruntime (an .onnx file from genvision export); "
                             "auto: onnxruntime for a .onnx file.")(func)


def fail_fast_option(func):
    return click.option("--fail-fast", is_flag=True,
                        help="Folder input: stop at the first file that fails (default: report it, go on).")(func)


def folder_job_options(func):
    """--shard I/N and --resume for folder jobs (:mod:`genvision.jobs`)."""
    func = click.option("--resume", is_flag=True,
                        help="Folder input: skip the files the output folder's manifest records as done (a "
                             "killed job goes on where it stopped).")(func)
    return click.option("--shard", metavar="I/N",
                        help="Folder input: process only share I of N (0 <= I < N) of the files; under torchrun "
                             "the default is this process's rank of the world size.")(func)
