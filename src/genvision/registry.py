"""Model registry shared by the CLI, the web UI, checkpoints and tests: a leaf, as timm's
``_registry.py`` is: it imports no model. Model modules register themselves when imported
(``import genvision.models`` imports them all; ``genvision.checkpoints`` does so).

Every model class registers under a unique name with the *kind* of job it does
(``gan``, ``vae``, ``classifier``, ``sr`` ...), a config dataclass, and a tiny config (the smallest
sensible instance, used by the registry-wide tests and smoke checks). A saved model directory
stores the name and the config as JSON, so :func:`create_model` can rebuild it without unpickling
anything. A model that needs no weights (``weightless``, e.g. bicubic interpolation) is loaded by
its name alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .config import build_dataclass
from .errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    cls: type[nn.Module]
    config_cls: type
    description: str
    tiny: dict[str, Any]  # the smallest sensible config (tests, smoke checks)
    weightless: bool  # nothing to learn: built from its config alone, no model directory needed


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, kind: str, config_cls: type, tiny: dict[str, Any], description: str = "",
                   weightless: bool = False) -> Callable:
    """Class decorator: ``@register_model("dcgan", kind="gan", config_cls=DCGANConfig, tiny={...})``.

    The class must accept its config as the single argument ``cls(config)``, keep it as
    ``self.config``, and give ``example_inputs(batch)``: arguments its ``forward`` takes.
    """

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        summary = description or next(iter((cls.__doc__ or "").strip().splitlines()), "")
        _REGISTRY[name] = ModelEntry(name, kind, cls, config_cls, summary, dict(tiny), weightless)
        cls.registry_name = name
        cls.model_kind = kind
        return cls

    return decorator


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError(f"unknown model {name!r}; known models: {known}")
    return _REGISTRY[name]


# The largest model create_model builds: parameters and buffers together, 8 GiB in fp32. Far
# above every registered default (the largest, dit, has ~4.2M); a config asking for more is a
# typo (latent_dim=10**12) and is refused before any memory is allocated.
MAX_PARAMETERS = 2**31


def model_config(name: str, values: dict[str, Any] | None = None, where: str = "") -> Any:
    """The config dataclass of model ``name`` built from plain (JSON / YAML) values.

    The one way to turn values into a model config: :func:`genvision.config.build_dataclass`
    checks every key and type (finite numbers, 64-bit integers) and runs the config's
    ``validate()`` (ranges), each error a one-line ConfigError naming the key.
    """
    entry = get_entry(name)
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where or name + ' config'} must be a mapping of {entry.config_cls.__name__} fields")
    return build_dataclass(entry.config_cls, values, where)


def _size_fields(config: Any) -> str:
    """``latent_dim=100, width=64, ...``: the integer fields, which set a model's size."""
    def is_size(value: Any) -> bool:
        if isinstance(value, tuple):
            return bool(value) and all(is_size(v) for v in value)
        return isinstance(value, int) and not isinstance(value, bool)

    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in values.items() if is_size(v))


def meta_model(name: str, config: Any) -> nn.Module:
    """Build model ``name`` on the meta device (shapes only, no memory) and check its size.

    Raises a one-line ConfigError listing the config's sizes when the model would hold more
    than :data:`MAX_PARAMETERS` parameters and buffers, or when a size overflows what torch
    can even describe. Shapes of the result's ``state_dict()`` are those of the real model.
    """
    entry = get_entry(name)
    try:
        with torch.device("meta"):
            model = entry.cls(config)
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        if "overflow" not in str(exc).lower():
            raise
        raise ConfigError(f"model {name} cannot be built: its tensors would exceed 64-bit sizes "
                          f"({_size_fields(config)})") from None
    count = sum(t.numel() for t in (*model.parameters(), *model.buffers()))
    if count > MAX_PARAMETERS:
        raise ConfigError(f"model {name} would hold {count:.3g} parameters and buffers, over the limit of "
                          f"{MAX_PARAMETERS:,} ({_size_fields(config)})")
    return model


def create_model(name: str, config: Any = None) -> nn.Module:
    """Build a registered model from a config dataclass, a dict of its fields, or defaults.

    The config is validated and the model's size checked on the meta device first, so an
    absurd config fails in milliseconds with a one-line ConfigError instead of allocating.
    """
    entry = get_entry(name)
    if config is None or isinstance(config, dict):
        config = model_config(name, config)
    elif not isinstance(config, entry.config_cls):
        raise ConfigError(f"model {name!r} expects a {entry.config_cls.__name__}, got {type(config).__name__}")
    else:
        validate = getattr(config, "validate", None)
        if callable(validate):
            validate()
    meta_model(name, config)
    return entry.cls(config)


def list_models(kind: str | None = None) -> list[ModelEntry]:
    entries = sorted(_REGISTRY.values(), key=lambda e: (e.kind, e.name))
    return [e for e in entries if kind is None or e.kind == kind]
