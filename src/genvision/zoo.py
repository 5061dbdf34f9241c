"""The model zoo: named, versioned models that ship inside the package and load as ``zoo:NAME``.

    genvision upscale photo.png --model zoo:edsr-x3 -o big.png
    model = genvision.load_model("zoo:edsr-x3")
    genvision zoo list

Each entry is an ordinary model directory under ``assets/zoo/NAME/`` (config.json, model.safetensors,
MODEL_CARD.md) and a row of ``assets/zoo/index.json``: version, task, kind, metrics, licence, the recipe
and the script that reproduce it, and the sha256 of every file. Resolving ``zoo:NAME`` checks those
hashes every time (a few MB: milliseconds), so a damaged or edited installation is refused, never run.
``scripts/build_zoo.py`` writes the entries from trained runs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import CheckpointError

PREFIX = "zoo:"
ZOO_DIR = Path(__file__).resolve().parent / "assets" / "zoo"
INDEX_FILE = "index.json"
INDEX_FORMAT = "genvision-zoo"


@dataclass(frozen=True)
class ZooEntry:
    name: str
    version: str
    task: str  # what it does, in a few words ("x3 super-resolution of photos")
    kind: str  # the registry kind (sr, gan, vae, classifier, ...)
    model: str  # the registered arch
    files: dict[str, str]  # file name -> sha256
    bytes: int
    dtype: str  # how the weights are stored: fp32 | fp16
    licence: str
    metrics: dict[str, Any] = field(default_factory=dict)
    data: str = ""  # what it was trained on, with the data's licence
    recipe: str = ""  # the training command
    reproduce: str = ""  # the script that trains and scores it from scratch
    trained: dict[str, Any] = field(default_factory=dict)  # minutes, steps, machine, date

    @property
    def directory(self) -> Path:
        return ZOO_DIR / self.name

    @property
    def spec(self) -> str:
        return f"{PREFIX}{self.name}"


def is_zoo_spec(spec: str | Path) -> bool:
    return str(spec).startswith(PREFIX)


def _index() -> dict[str, ZooEntry]:
    return _read_index(ZOO_DIR / INDEX_FILE)


@lru_cache(maxsize=4)
def _read_index(path: Path) -> dict[str, ZooEntry]:
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    if raw.get("format") != INDEX_FORMAT:
        raise CheckpointError(f"{path} is not a genvision zoo index")
    return {name: ZooEntry(name=name, **fields) for name, fields in raw["models"].items()}


def entries() -> dict[str, ZooEntry]:
    """Every model in the zoo, by name."""
    return dict(_index())


def entry(name: str) -> ZooEntry:
    name = name[len(PREFIX):] if is_zoo_spec(name) else name
    known = _index()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise CheckpointError(f"no zoo model named {name!r}{hint} (genvision zoo list shows the {len(known)} there are)")
    return known[name]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_files(item: ZooEntry) -> list[str]:
    """The entry's files that are missing or whose sha256 differs from the index (empty: intact)."""
    bad = []
    for name, expected in item.files.items():
        path = item.directory / name
        if not path.is_file() or sha256(path) != expected:
            bad.append(name)
    return bad


def resolve(spec: str | Path) -> Path:
    """``zoo:NAME`` -> the entry's model directory, after checking every file's sha256."""
    item = entry(str(spec))
    bad = check_files(item)
    if bad:
        raise CheckpointError(f"zoo:{item.name}: {', '.join(bad)} missing or not matching its sha256; the installed "
                              "package is damaged: reinstall genvision")
    return item.directory


__all__ = ["INDEX_FILE", "PREFIX", "ZOO_DIR", "ZooEntry", "check_files", "entries", "entry", "is_zoo_spec", "resolve",
           "sha256"]
