"""``genvision zoo list|info|verify``."""

from __future__ import annotations

import dataclasses
import json

import click
import torch

from ... import zoo
from ...checkpoints import load_pretrained


@click.group("zoo")
def zoo_group() -> None:
    """The models that ship with genvision: use one as --model zoo:NAME (load_model("zoo:NAME") in Python)."""


def _metrics(item: zoo.ZooEntry) -> str:
    return ", ".join(f"{key} {value}" for key, value in item.metrics.items())


@zoo_group.command("list")
@click.option("--kind", help="Only models of this kind (sr, gan, vae, classifier, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(kind: str | None, as_json: bool) -> None:
    """Every zoo model: name, task, size, metrics and licence."""
    items = [item for item in zoo.entries().values() if kind is None or item.kind == kind]
    if as_json:
        click.echo(json.dumps([{"spec": item.spec, **dataclasses.asdict(item)} for item in items], indent=2))
        return
    if not items:
        click.echo("no zoo models" + (f" of kind {kind}" if kind else ""))
    name_width = max((len(item.spec) for item in items), default=0)
    task_width = max((len(item.task) for item in items), default=0)
    for item in items:
        click.echo(f"{item.spec:<{name_width}}  {item.task:<{task_width}}  {item.bytes / 2**20:6.2f} MiB {item.dtype:<5} "
                   f"{item.licence:<11} {_metrics(item)}")


@zoo_group.command("info")
@click.argument("name")
def info_command(name: str) -> None:
    """NAME's model card: data, recipe, training time and machine, metrics, licence, sha256."""
    item = zoo.entry(name)
    click.echo((item.directory / "MODEL_CARD.md").read_text())


def _tensors(outputs):
    """Every tensor in a forward pass's result: a tensor, or tuples, lists, dicts and dataclasses of them."""
    if torch.is_tensor(outputs):
        yield outputs
    elif isinstance(outputs, dict):
        for value in outputs.values():
            yield from _tensors(value)
    elif dataclasses.is_dataclass(outputs):
        for item in dataclasses.fields(outputs):
            yield from _tensors(getattr(outputs, item.name))
    elif isinstance(outputs, (tuple, list)):
        for value in outputs:
            yield from _tensors(value)


@zoo_group.command("verify")
@click.argument("names", nargs=-1)
def verify_command(names: tuple[str, ...]) -> None:
    """Check zoo models (all by default): every file's sha256, a strict load, and one forward pass."""
    items = [zoo.entry(name) for name in names] or list(zoo.entries().values())
    for item in items:
        model = load_pretrained(item.spec)  # resolving checks the hashes first
        with torch.no_grad():
            outputs = model(*model.example_inputs(1))
        tensors = list(_tensors(outputs))
        if not tensors or not all(torch.isfinite(t.float()).all() for t in tensors):
            raise click.ClickException(f"zoo:{item.name}: its forward pass gave non-finite values")
        click.echo(f"zoo:{item.name}: ok ({len(item.files)} files match their sha256; loads and runs)")
