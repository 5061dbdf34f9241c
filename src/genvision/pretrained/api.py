"""The Python API over the resolver: list, load and verify backbones."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import CheckpointError, display_path
from .archive import sha256sum
from .build import build_module, smoke_input
from .catalogue import BACKBONES, backbone
from .convert import CONVERTERS
from .sources import SOURCES, Resolved, cached, hub_checkpoints, resolve


def list_backbones() -> list[dict]:
    """One row per backbone: name, title, pinned package and file, licence, and what is present here
    (the converted package weights, a torch hub file); nothing is hashed or fetched."""
    rows = []
    for spec in BACKBONES.values():
        present = cached(spec.name)
        hub = [str(hub_checkpoints() / h.filename) for h in spec.hub if (hub_checkpoints() / h.filename).is_file()]
        rows.append({"name": spec.name, "title": spec.title, "package": spec.pin.requirement,
                     "file": spec.pin.member, "licence": spec.pin.licence,
                     "converted": str(present.path) if present else None, "hub": hub})
    return rows


def load_state(resolved: Resolved) -> dict[str, torch.Tensor]:
    state, _ = CONVERTERS["safetensors"](resolved.path)
    return state


def load_backbone(name: str, weights: str | os.PathLike | None = None, *, device: str | torch.device = "cpu",
                  **options) -> nn.Module:
    """Backbone ``name`` as a frozen module in eval mode, its card as ``module.card``. ``options`` are
    :func:`resolve`'s (sources, allow_download, package_index, variant). Loading never fetches
    unless asked (``package_index=True``): fetching is ``get`` / ``genvision weights get``'s job, so
    a command or a test that only loads cannot start a download."""
    options.setdefault("package_index", False)
    resolved = resolve(name, weights, **options)
    module = build_module(backbone(name).arch, load_state(resolved), resolved.card["preprocessing"])
    module.card = resolved.card
    return module.to(device)


def verify(name: str, weights: str | os.PathLike | None = None, *, sources: tuple[str, ...] = SOURCES) -> dict:
    """Check the weights ``get`` would use, without fetching anything: the safetensors file is the one
    converted (sha256 in its card), its source matched the pin, it loads strictly and a forward pass
    gives finite outputs of the right shape. Returns the checks; raises CheckpointError on a failure."""
    spec = backbone(name)
    resolved = resolve(name, weights, sources=sources, allow_download=False, package_index=False)
    card, checks = resolved.card, []
    recorded = card.get("safetensors_sha256")
    if recorded is not None:
        actual = sha256sum(resolved.path)
        if actual != recorded:
            raise CheckpointError(f"{display_path(resolved.path)}: sha256 {actual[:16]}... differs from the one "
                                  f"recorded at conversion ({recorded[:16]}...): delete it and run "
                                  f"`genvision weights get {name}`")
        checks.append(f"safetensors sha256 {actual[:16]}... as converted")
    source = card.get("source", {})
    if source.get("kind") == "package":
        if source.get("sha256") != spec.pin.sha256:
            raise CheckpointError(f"{display_path(resolved.path)} was converted from a different pin than "
                                  f"{spec.pin.requirement}: delete it and run `genvision weights get {name}`")
        checks.append(f"source {spec.pin.member.rsplit('/', 1)[-1]} sha256 matches the pin of {spec.pin.requirement}")
    module = build_module(spec.arch, load_state(resolved), card["preprocessing"])
    checks.append("loads strictly into the module")
    x, expected = smoke_input(spec.arch)
    with torch.no_grad():
        out = module(x)
    if tuple(out.shape) != expected or not torch.isfinite(out).all():
        raise CheckpointError(f"{name}: forward gave shape {tuple(out.shape)} (expected {expected}) "
                              "or non-finite values")
    checks.append(f"forward pass: finite, shape {expected}")
    return {"name": name, "path": str(resolved.path), "source": source.get("kind"), "variant": card["variant"],
            "checks": checks}


__all__ = ["list_backbones", "load_backbone", "load_state", "verify"]
