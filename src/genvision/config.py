"""Recipes as dataclasses: defaults < YAML file < command-line ``key=value`` overrides.

A recipe is a dataclass whose fields are section dataclasses (``train``, ``data``, ``model``,
``objective``). Overrides name a field as ``section.field=value`` or, when the field name is
unique across sections, as ``field=value``. Values are parsed as YAML scalars and checked
against the field's type (``steps=1e3`` is read as the integer 1000; ``steps=1.5``,
``lr=fast``, ``lr=nan`` or an integer beyond int64 fail with a one-line message naming the key)
and then against the section's range checks (each section's ``validate()``), so a wrong number
never surfaces deep inside training.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import atomic
from .errors import ConfigError, reason

# Bounds shared by the sections below and the model configs.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 4096  # no registered model takes images under 8 px
MAX_BATCH_SIZE = 65536  # larger batches are a typo: the batch is allocated before anything checks memory
MAX_WORKERS = 256
MAX_EVAL_SAMPLES = 100_000  # twice the FID convention (50k)
PRECISIONS = ("auto", "bf16", "fp32")
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,3})?")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def check_range(name: str, value: int | float, low: float | None = None, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    """Raise a one-line ConfigError naming ``name`` unless ``value`` lies in the interval.

    The interval is closed unless ``low_open`` / ``high_open``; a missing bound is infinite.
    NaN is outside every interval.
    """
    inside = value == value
    if low is not None:
        inside = inside and (value > low if low_open else value >= low)
    if high is not None:
        inside = inside and (value < high if high_open else value <= high)
    if inside:
        return
    lo, hi = _bound_text(low), _bound_text(high)
    if low is not None and high is not None:
        interval = f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
    elif low is not None:
        interval = f"{'>' if low_open else '>='} {lo}"
    else:
        interval = f"{'<' if high_open else '<='} {hi}"
    raise ConfigError(f"{name} must be {interval}, got {value!r}")


# Learning rates above 10 diverge with every optimizer here; weight decay above 1 flips the
# sign of a weight in one AdamW step at lr 1.
MAX_LR = 10.0
MAX_WEIGHT_DECAY = 1.0
# Loss weights (beta, gp_weight, ...): typos above this would overflow fp32 losses; papers use <= 250.
MAX_LOSS_WEIGHT = 1e6


def check_optimizer(section: str, lr: float | None, betas: tuple[float, ...] | None = None,
                    weight_decay: float | None = None, lr_name: str = "lr") -> None:
    """The ranges every Adam-style optimizer section shares: lr in (0, 10], two betas in
    [0, 1), weight_decay in [0, 1]."""
    if lr is not None:
        check_range(f"{section}.{lr_name}", lr, 0.0, MAX_LR, low_open=True)
    if betas is not None and (len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas)):
        raise ConfigError(f"{section}.betas must be two numbers in [0, 1), got {list(betas)}")
    if weight_decay is not None:
        check_range(f"{section}.weight_decay", weight_decay, 0.0, MAX_WEIGHT_DECAY)


def check_path(name: str, text: str) -> Path:
    """``Path(text).expanduser()``, or a one-line ConfigError naming ``name`` for text no file
    system takes: a NUL byte, or ``~user`` for an unknown user."""
    try:
        if "\0" in text:
            raise ValueError
        return Path(text).expanduser()
    except (ValueError, RuntimeError):
        raise ConfigError(f"{name} is not a usable path: {shown(text)}") from None


def _bound_text(bound: float | None) -> str:
    return "" if bound is None else str(bound) if isinstance(bound, int) else f"{bound:g}"


def check_run_name(name: str | None) -> None:
    """A run name is one safe path component: it names a directory under train.out_dir."""
    if name is None:
        return
    if (not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable()
            or len(name.encode("utf-8")) > 255):
        raise ConfigError(f"train.name must be a single folder name (no '/', not starting with '.', "
                          f"printable, at most 255 bytes), got {shown(name)}")


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages about user input."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str() (Python caps conversions at 4300 digits)
        text = f"<an integer of {value.bit_length()} bits>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


@dataclass
class DataConfig:
    name: str = "mnist-mini"  # mnist | fashion-mnist | cifar10 | mnist-mini | folder:PATH
    root: str | None = None  # dataset files; default $GENVISION_DATA, then ~/.cache/genvision/data
    image_size: int | None = None  # square resize; None keeps the dataset's own size
    channels: int | None = None  # 1 or 3; None keeps the dataset's own channels
    random_crop: bool = False  # pad-and-crop augmentation (train split only)
    hflip: bool = False  # horizontal flips (not for digits)
    # folder: data only: random-resized crops of at least this area fraction (e.g. 0.35), in place of the centre crop
    resized_crop: float | None = None
    download: bool = True  # fetch canonical files when missing and online
    workers: int = 0  # DataLoader processes decoding files (folder: data); any count gives the same batches
    limit: int | None = None  # use only the first N examples (quick experiments, tests)

    def validate(self) -> None:
        if not self.name:
            raise ConfigError("data.name must name a dataset or folder:PATH, got ''")
        if self.name.startswith("folder:"):
            check_path("data.name", self.name[len("folder:"):])
        if self.root is not None:
            check_path("data.root", self.root)
        if self.image_size is not None:
            check_range("data.image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"data.channels must be 1, 3 or null (the dataset's own), got {self.channels!r}")
        # Each worker is a process: thousands of them would exhaust the machine before a batch loads.
        check_range("data.workers", self.workers, 0, MAX_WORKERS)
        if self.limit is not None:
            check_range("data.limit", self.limit, 1)
        if self.resized_crop is not None:
            check_range("data.resized_crop", self.resized_crop, 0.0, 1.0, low_open=True)
            if not self.name.startswith("folder:"):
                raise ConfigError(f"data.resized_crop applies to folder: datasets of photos, not to {shown(self.name)}")


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
    sync_batchnorm: bool = False  # under torchrun: BatchNorm statistics over the global batch (all ranks)
    reshard: bool = False  # resume with another number of processes (the global batch, so the data order, changes)
    # Split each rank's batch into this many micro-batches whose gradients add up to the batch's: the same
    # update in less activation memory (train.batch_size stays the batch of one update)
    grad_accum: int = 1
    fsdp: bool = False  # under torchrun: shard a transformer's weights, gradients and optimizer state over the ranks

    def validate(self) -> None:
        check_run_name(self.name)
        check_path("train.out_dir", self.out_dir)
        check_range("train.steps", self.steps, 1)
        check_range("train.batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        # Below 2**32: numpy takes 32-bit seeds, and seeds are scaled (seed * 1_000_003 + i) to
        # derive per-batch seeds, which must stay inside torch's 64-bit seed range.
        check_range("train.seed", self.seed, 0, 2**32 - 1)
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {shown(self.device)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {shown(self.precision)}")
        check_range("train.ema_decay", self.ema_decay, 0.0, 1.0, high_open=True)
        check_range("train.ema_start", self.ema_start, 0)
        if self.grad_clip is not None:
            check_range("train.grad_clip", self.grad_clip, 0.0, low_open=True)
        check_range("train.log_every", self.log_every, 1)  # the loop logs when step % log_every == 0
        check_range("train.sample_every", self.sample_every, 0)
        check_range("train.ckpt_every", self.ckpt_every, 1)
        check_range("train.keep_last", self.keep_last, 1)
        check_range("train.max_nonfinite", self.max_nonfinite, 1)
        if self.max_minutes is not None:
            check_range("train.max_minutes", self.max_minutes, 0.0, low_open=True)
        check_range("train.eval_every", self.eval_every, 0)
        # FID needs two samples for a covariance; the features of all of them are kept in memory.
        check_range("train.eval_samples", self.eval_samples, 2, MAX_EVAL_SAMPLES)
        check_range("train.grad_accum", self.grad_accum, 1, self.batch_size)
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"train.batch_size={self.batch_size} must be a multiple of train.grad_accum="
                              f"{self.grad_accum} (each micro-batch has batch_size / grad_accum examples)")


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
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {shown(value)}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            choices = ", ".join(map(str, typing.get_args(tp)))
            raise ConfigError(f"{where} must be one of {choices}, got {shown(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {shown(value)}")
        args = typing.get_args(tp) or (Any, ...)
        if origin is tuple and args[-1] is not Ellipsis:
            # A fixed-length tuple such as betas: tuple[float, float].
            if len(value) != len(args):
                raise ConfigError(f"{where} must be a list of {len(args)} values, got {shown(value)}")
            return tuple(_coerce(v, t, where) for v, t in zip(value, args))
        items = [_coerce(v, args[0], where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping of fields, got {shown(value)}")
        return value
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, got {shown(value)}")
    given = value
    if tp in (int, float) and isinstance(value, str):
        # YAML 1.1 reads "1e3" as a string; accept any plain number spelling.
        try:
            value = float(value)
        except ValueError:
            pass
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not INT64_MIN <= value <= INT64_MAX:
                raise ConfigError(f"{where} must be an integer that fits in 64 bits, got {shown(given)}")
            return value
        raise ConfigError(f"{where} must be an integer, got {shown(given)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            if not math.isfinite(number):
                raise ConfigError(f"{where} must be a finite number, got {shown(given)}")
            return number
        raise ConfigError(f"{where} must be a number, got {shown(given)}")
    if tp is str:
        # YAML 1.1 reads an unquoted 2024-05-01 as a date; a name= or a path means the text.
        if isinstance(value, (str, int, float, datetime.date)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, got {shown(value)}")
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
        except (yaml.YAMLError, ValueError, RecursionError):  # ValueError: ints beyond 4300 digits
            raise ConfigError(f"cannot parse the value of override {shown(item)}") from None
        path = _resolve_key(recipe_cls, key.strip())
        node = nested
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {shown(item)} sets a field inside {part!r}, which an earlier "
                                  f"override set to a value")
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
            raise ConfigError(f"{path} is not valid YAML: {reason(exc)}") from None
        except (ValueError, RecursionError, OSError) as exc:  # binary files, 5000-digit ints, deep nesting
            raise ConfigError(f"{path} is not a readable YAML file ({type(exc).__name__})") from None
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
    "to_dict", "field", "check_range", "check_optimizer", "check_path", "check_run_name", "shown",
    "MIN_IMAGE_SIZE", "MAX_IMAGE_SIZE", "MAX_BATCH_SIZE", "MAX_LR", "MAX_WEIGHT_DECAY", "MAX_LOSS_WEIGHT",
]
