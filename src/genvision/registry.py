"""Model registry shared by the CLI, the web UI, checkpoints and tests.

Every model class registers under a unique name with the *kind* of job it does
(``gan``, ``vae``, ``classifier``, ``sr`` ...) and a config dataclass. A saved model
directory stores that name and the config as JSON, so :func:`create_model` can rebuild it
without unpickling anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    cls: type[nn.Module]
    config_cls: type
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, kind: str, config_cls: type, description: str = "") -> Callable:
    """Class decorator: ``@register_model("dcgan", kind="gan", config_cls=DCGANConfig)``.

    The class must accept its config as the single argument ``cls(config)`` and keep it
    as ``self.config``.
    """

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        summary = description or next(iter((cls.__doc__ or "").strip().splitlines()), "")
        _REGISTRY[name] = ModelEntry(name, kind, cls, config_cls, summary)
        cls.registry_name = name
        cls.model_kind = kind
        return cls

    return decorator


def _ensure_builtin_models_imported() -> None:
    # Importing the model package runs the @register_model decorators; done lazily so
    # `import genvision` stays cheap.
    from . import models  # noqa: F401


def get_entry(name: str) -> ModelEntry:
    _ensure_builtin_models_imported()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[name]


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Build a (possibly nested) config dataclass from plain JSON values, rejecting unknown keys."""
    field_names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - field_names)
    if unknown:
        raise ConfigError(f"{config_cls.__name__} has no field(s) {', '.join(unknown)}")
    kwargs = {}
    for f in dataclasses.fields(config_cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if isinstance(value, list) and f.type in ("tuple[int, ...]", "tuple[float, ...]"):
            value = tuple(value)
        kwargs[f.name] = value
    return config_cls(**kwargs)


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from a config dataclass, a dict of its fields, or defaults."""
    entry = get_entry(name)
    if config is None:
        config = entry.config_cls()
    elif isinstance(config, dict):
        config = config_from_dict(entry.config_cls, config)
    elif not isinstance(config, entry.config_cls):
        raise ConfigError(f"model {name!r} expects a {entry.config_cls.__name__}, got {type(config).__name__}")
    return entry.cls(config)


def list_models(kind: str | None = None) -> list[ModelEntry]:
    _ensure_builtin_models_imported()
    entries = sorted(_REGISTRY.values(), key=lambda e: (e.kind, e.name))
    return [e for e in entries if kind is None or e.kind == kind]
