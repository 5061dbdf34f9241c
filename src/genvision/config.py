"""Recipes as dataclasses: defaults < YAML file < command-line ``key=value`` overrides.

A recipe is a dataclass whose fields are section dataclasses (``train``, ``data``, ``model``,
``objective``). Overrides name a field as ``section.field=value`` or, when the field name is
unique across sections, as ``field=value``. Values are parsed as YAML scalars and checked
against the field's type, so ``steps=1e3`` or ``lr=fast`` fail with a one-line message
instead of surfacing deep inside training.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import atomic
from .errors import ConfigError


@dataclass
class DataConfig:
    name: str = "mnist-mini"  # mnist | fashion-mnist | cifar10 | mnist-mini | folder:PATH
    root: str | None = None  # dataset files; default $GENVISION_DATA, then ~/.cache/genvision/data
    image_size: int | None = None  # square resize; None keeps the dataset's own size
    channels: int | None = None  # 1 or 3; None keeps the dataset's own channels
    random_crop: bool = False  # pad-and-crop augmentation (train split only)
    hflip: bool = False  # horizontal flips (not for digits)
    download: bool = True  # fetch canonical files when missing and online
    workers: int = 0  # DataLoader worker processes; 0 keeps exact resume and is fastest for in-memory data
    limit: int | None = None  # use only the first N examples (quick experiments, tests)


@dataclass
class TrainConfig:
    name: str | None = None  # run directory name; default "<recipe>-<data>-<timestamp>"
    out_dir: str = "runs"  # parent of run directories
    steps: int = 5000  # optimisation steps (for a GAN: one D and one G update per step)
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto picks cuda > mps > cpu
    precision: str = "auto"  # auto | bf16 | fp32; auto = bf16 on GPUs and AMX CPUs, fp32 elsewhere (measured faster)
    channels_last: bool = True  # memory format that oneDNN/cuDNN convolutions prefer
    compile: bool = False  # torch.compile the model; pays off only for long runs
    ema: bool = True  # keep an exponential moving average of the sampled network
    ema_decay: float = 0.999
    ema_start: int = 0  # copy weights (no averaging) before this step
    grad_clip: float | None = None  # max global grad norm, None = no clipping
    log_every: int = 50  # steps between metrics.jsonl rows
    sample_every: int = 500  # steps between sample grids (0 = only at the end)
    ckpt_every: int = 1000  # steps between checkpoints (one is always written at the end)
    keep_last: int = 3  # checkpoints kept besides 'best'
    max_nonfinite: int = 10  # consecutive skipped (non-finite) updates before the run stops
    tensorboard: bool = True
    max_minutes: float | None = None  # stop (with a checkpoint) after this wall time
    eval_every: int = 0  # steps between quality evaluations (0 = off)
    eval_samples: int = 1000  # samples per training-time evaluation


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check (and gently widen, e.g. int -> float) a parsed YAML value against a type hint."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise ConfigError(f"{where} must be one of {choices}, got {value!r}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, where) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if tp in (int, float) and isinstance(value, str):
        # YAML 1.1 reads "1e3" as a string; accept any plain number spelling.
        try:
            value = float(value)
        except ValueError:
            pass
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {value!r}")
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of fields")
        return build_dataclass(tp, value, where)
    return value


def build_dataclass(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build ``cls`` from a nested dict, checking every key and type."""
    hints = _field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        path = f"{where}.{key}" if where else key
        if key not in hints or key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {path!r}{hint}")
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        instance = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from None
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate()
    return instance


def to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON-able dict of a (nested) config dataclass; tuples become lists."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _deep_merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve_key(recipe_cls: type, key: str) -> list[str]:
    """Map ``steps`` or ``train.steps`` to the full dotted path inside the recipe."""
    parts = key.split(".")
    hints = _field_types(recipe_cls)
    if parts[0] in hints:
        return parts
    owners = [name for name, tp in hints.items() if _is_dataclass_type(tp) and parts[0] in _field_types(tp)]
    if len(owners) == 1:
        return [owners[0], *parts]
    if len(owners) > 1:
        options = ", ".join(f"{o}.{key}" for o in owners)
        raise ConfigError(f"override {key!r} is ambiguous; write one of: {options}")
    all_keys = [f"{s}.{k}" for s, tp in hints.items() if _is_dataclass_type(tp) for k in _field_types(tp)]
    all_keys += [k for k, tp in hints.items() if not _is_dataclass_type(tp)]
    by_leaf = {k.rsplit(".", 1)[-1]: k for k in all_keys}
    close = difflib.get_close_matches(key, all_keys, n=1) or [
        by_leaf[m] for m in difflib.get_close_matches(key, list(by_leaf), n=1)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown config key {key!r}{hint}")


def parse_overrides(recipe_cls: type, overrides: list[str]) -> dict[str, Any]:
    """``["steps=100", "model.width=32"]`` -> nested dict with YAML-parsed values."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            raise ConfigError(f"cannot parse the value of override {item!r}") from None
        path = _resolve_key(recipe_cls, key.strip())
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return nested


def load_recipe(recipe_cls: type, config_file: str | Path | None = None, overrides: list[str] | None = None,
                defaults: dict[str, Any] | None = None) -> Any:
    """Resolve a recipe: dataclass defaults < ``defaults`` < YAML file < overrides."""
    # Start from the recipe's own defaults so overriding one field keeps the recipe's other
    # section defaults (a section dataclass alone would fall back to its class defaults).
    values: dict[str, Any] = _deep_merge(to_dict(recipe_cls()), defaults or {})
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must hold a mapping of sections")
        values = _deep_merge(values, loaded)
    values = _deep_merge(values, parse_overrides(recipe_cls, overrides or []))
    return build_dataclass(recipe_cls, values)


def save_resolved(config: Any, directory: str | Path) -> None:
    """Write the resolved recipe as config.yaml (for humans) and config.json (for tools)."""
    directory = Path(directory)
    data = to_dict(config)
    # config.json first: it is what marks a directory as a run (--resume and --overwrite read it)
    atomic.write_text(directory / "config.json", json.dumps(data, indent=2))
    atomic.write_text(directory / "config.yaml", yaml.safe_dump(data, sort_keys=False))


__all__ = [
    "DataConfig", "TrainConfig", "build_dataclass", "load_recipe", "parse_overrides", "save_resolved",
    "to_dict", "field",
]
