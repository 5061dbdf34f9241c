"""``genvision demo``: the command line of :func:`genvision.demo.run_demo`.

Its own module (not genvision.core_commands) so that ``genvision train``, which every torchrun rank
runs, does not import the demo's panels and through them every application (about 1.3 s a process).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..cli_params import FiniteFloat
from . import run_demo


@click.command()
@click.option("--out", default="out/demo", show_default=True, type=click.Path(), help="Report directory.")
@click.option("--minutes", default=1.0, show_default=True, type=FiniteFloat(0.0, 24 * 60.0, min_open=True),
              help="The training panel's time budget (0 < minutes <= 1440).")
@click.option("--only", multiple=True, metavar="WORD",
              help="Run only the panels whose title contains WORD (repeatable), e.g. --only style.")
@click.option("--device", default="auto", show_default=True)
def demo(out, minutes, only, device):
    """Show every application with the zoo's models (plus one short training run) in one HTML report."""
    result = run_demo(Path(out), minutes=minutes, device=device, only=list(only), log=click.echo)
    click.echo(f"report: {result.report} ({result.seconds['total']:.0f} s)")
    for title, message in result.skipped.items():
        click.echo(f"skipped: {title}: {message}", err=True)
    if result.failed:
        for title, message in result.failed.items():
            click.echo(f"failed: {title}: {message}", err=True)
        raise click.exceptions.Exit(1)
