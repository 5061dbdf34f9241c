"""The application manifest: every capability genvision has, and where its parts are.

An application is one package under ``genvision/apps/`` (or any importable package) whose
``__init__`` defines ``APP``, an :class:`App`. The CLI, the trainer's front door, the evaluation
entry point (and later the web UI and the zoo) find families, evaluators and commands only
through :data:`APPS`, so adding a capability is its package plus one line here.

Parts are named as ``"module:attribute"`` strings and imported on first use: listing the CLI's
commands or the trainable families imports no application code (and no torch).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..errors import ConfigError

# One line per application, in the order the CLI lists their commands.
APPS: list[str] = [
    "genvision.apps.generation",
    "genvision.apps.gan",
    "genvision.apps.dit",
    "genvision.apps.vae",
    "genvision.apps.tokenprior",
    "genvision.apps.classify",
    "genvision.apps.sr",
    "genvision.apps.denoise",
    "genvision.apps.edit",
    "genvision.apps.style",
    "genvision.apps.translate",
    "genvision.apps.retrieval",
    "genvision.apps.deploy",
    "genvision.apps.codec",
    "genvision.apps.zoo",
]


@dataclass(frozen=True)
class CommandRef:
    """A CLI command an application adds: its name, a one-line summary for ``genvision --help``,
    and the click command object as ``"module:attribute"``."""

    name: str
    target: str
    summary: str


@dataclass(frozen=True)
class FamilyRef:
    """A trainable family (``genvision train NAME``): a module with ``RECIPE``, ``DESCRIPTION``,
    ``build(recipe, data_info)`` and optionally ``build_dataset(recipe)``. ``samples_images``: the
    objective draws images, so training-time FID can watch it (``train.eval_every``)."""

    name: str
    module: str
    samples_images: bool = False


@dataclass(frozen=True)
class App:
    name: str
    summary: str
    families: tuple[FamilyRef, ...] = ()
    # model kind -> "module:function(model, card, request) -> Evaluation"
    evaluators: dict[str, str] = field(default_factory=dict)
    # model kind -> "module:function(model, card, data, data_root, limit) -> list of input tuples": real
    # inputs of the model's inference graph, for calibrating int8 quantization (genvision quantize)
    calibrators: dict[str, str] = field(default_factory=dict)
    commands: tuple[CommandRef, ...] = ()


def resolve(target: str) -> Any:
    """``"package.module:attribute"`` -> the object."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


@lru_cache(maxsize=None)
def _load(app_modules: tuple[str, ...]) -> tuple[App, ...]:
    apps = []
    for module_name in app_modules:
        app = getattr(importlib.import_module(module_name), "APP", None)
        if not isinstance(app, App):
            raise ConfigError(f"{module_name} is listed as an application but defines no APP = App(...)")
        apps.append(app)
    return tuple(apps)


def applications() -> tuple[App, ...]:
    return _load(tuple(APPS))


def families() -> dict[str, FamilyRef]:
    return {family.name: family for app in applications() for family in app.families}


def family(name: str) -> FamilyRef:
    known = families()
    if name not in known:
        raise ConfigError(f"unknown model family {name!r}; choose from {', '.join(sorted(known))}")
    return known[name]


def evaluator(kind: str):
    """The evaluation function for models of ``kind``."""
    targets = {k: target for app in applications() for k, target in app.evaluators.items()}
    if kind not in targets:
        raise ConfigError(f"evaluate does not support {kind} models yet (supported: {', '.join(sorted(targets))})")
    return resolve(targets[kind])


def calibrator(kind: str):
    """The function giving calibration inputs for models of ``kind``."""
    targets = {k: target for app in applications() for k, target in app.calibrators.items()}
    if kind not in targets:
        raise ConfigError(f"int8 calibration is not available for {kind} models yet (available: "
                          f"{', '.join(sorted(targets))})")
    return resolve(targets[kind])


def commands() -> dict[str, CommandRef]:
    return {ref.name: ref for app in applications() for ref in app.commands}


__all__ = ["APPS", "App", "CommandRef", "FamilyRef", "applications", "calibrator", "commands", "evaluator", "families",
           "family", "resolve"]
