"""The shape of the code, checked like its behaviour: the layer contract (import-linter, declared in
pyproject.toml), every module placed in a layer, no cycles, applications independent, and no
project module imported inside a function (which would hide an arrow of the graph)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

import genvision

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(genvision.__file__).resolve().parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]

# Third-party packages slow enough to import only where they are used (torchvision and torchmetrics
# take seconds; the tensorboard writer only when a run logs to it; scikit-learn is optional: only the
# sklearn-digits dataset needs it; gradio, for genvision web only, takes seconds and is an extra;
# playwright drives the browser in tests; torch's FSDP and distributed-checkpoint modules take 0.9 s and only
# train.fsdp=true runs need them; torchrun's agent, 1.2 s, only the --nproc launcher).
HEAVY_OPTIONAL = ("torchvision", "torch.utils.tensorboard", "torchmetrics", "sklearn", "gradio", "playwright",
                  "torch.distributed.fsdp", "torch.distributed.checkpoint", "torch.distributed.run",
                  "torch.distributed.elastic")


def test_the_import_contracts_hold(capsys):
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()  # what the lint-imports command does first
    kept = lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None, no_logo=True)
    assert kept, capsys.readouterr().out  # the report names every import that breaks a contract


def test_every_top_level_module_has_a_layer():
    layers = next(c for c in CONTRACTS if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    modules = {f"genvision.{p.stem}" for p in SRC.glob("*.py") if p.stem != "__init__"}
    modules |= {f"genvision.{p.name}" for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert modules - placed == set(), "place each new module in a layer of pyproject.toml's contract"
    assert placed - modules == set(), "the contract names modules that no longer exist"


def _function_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom):
                module = "." * inner.level + (inner.module or "")
                own = inner.level > 0 or module.startswith("genvision")
                if own or not module.startswith(HEAVY_OPTIONAL):
                    found.append(f"{path.relative_to(SRC)}:{inner.lineno} from {module}")
            elif isinstance(inner, ast.Import):
                names = [a.name for a in inner.names if not a.name.startswith(HEAVY_OPTIONAL)]
                found += [f"{path.relative_to(SRC)}:{inner.lineno} import {n}" for n in names]
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_inside_functions_are_only_heavy_optional_packages(path):
    assert _function_level_imports(path) == []
