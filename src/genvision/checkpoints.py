"""Models on disk: ``config.json`` + ``model.safetensors`` (+ ``ema.safetensors``, ``trainer_state.pt``).

Nothing a user hands us is ever unpickled: weights are safetensors, configs JSON, and the
training state (optimizer moments, RNG states, step) is read with
``torch.load(weights_only=True)``, which refuses arbitrary objects. Every directory is
written to a temporary sibling first and renamed into place, so a crash or a kill mid-save
never leaves a half-written checkpoint where a loader would find it.

Loading checks a directory before allocating anything: the card's fields, ``config.json``
against the model's config dataclass (types and ranges), the model's size on the meta device
(:data:`genvision.registry.MAX_PARAMETERS`), and every tensor's shape and dtype in the
safetensors headers. Each problem is a one-line CheckpointError naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__, atomic, zoo
from . import models as _networks  # noqa: F401  (registers every network this module can load)
from .config import shown, to_dict
from .errors import CheckpointError, ConfigError, GenvisionError, reason
from .registry import ModelEntry, create_model, get_entry, meta_model, model_config

FORMAT_NAME = "genvision"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
INT8_SCALE_SUFFIX = ".int8_scale"  # beside a tensor stored as int8: its per-output-channel scale
STATE_FILE = "trainer_state.pt"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"


def _tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage; clones make each entry standalone.
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _save_tensors(state: dict[str, torch.Tensor], path: Path) -> None:
    save_file(_tensors_for_saving(state), str(path), metadata={"format": "pt"})
    atomic.give_default_permissions(path)  # safetensors creates its files 0600, whatever the umask


def model_card(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "genvision_version": __version__,
        "model": model.registry_name,
        "kind": model.model_kind,
        "config": to_dict(model.config),
        **(extra or {}),
    }


def save_pretrained(model: nn.Module, directory: str | Path, *, ema_state: dict[str, torch.Tensor] | None = None,
                    extra: dict[str, Any] | None = None, trainer_state: dict[str, Any] | None = None,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a model directory atomically and return its path; ``state`` (the model's tensors in another
    dtype, e.g. fp16 for shipping) is written instead of ``model.state_dict()``."""
    if not hasattr(model, "registry_name"):
        raise CheckpointError(f"{type(model).__name__} is not a registered genvision model")
    target = Path(directory)
    tmp = atomic.staging_dir(target)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(model_card(model, extra), indent=2))
        _save_tensors(model.state_dict() if state is None else state, tmp / WEIGHTS_FILE)
        if ema_state is not None:
            _save_tensors(ema_state, tmp / EMA_FILE)
        if trainer_state is not None:
            torch.save(trainer_state, tmp / STATE_FILE)
        atomic.replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory, a run directory (its latest checkpoint), a checkpoint dir, or ``zoo:NAME``
    (a model shipped with genvision, its files' sha256 checked)."""
    if zoo.is_zoo_spec(path):
        return zoo.resolve(path)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model not found: {path}")
    if not path.is_dir():
        raise CheckpointError(f"{path} is not a model directory (expected {CONFIG_FILE} + {WEIGHTS_FILE})")
    if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
        return path
    latest = latest_checkpoint(path / CHECKPOINTS_DIR)
    if latest is not None:
        return latest
    raise CheckpointError(f"{path} holds no model ({CONFIG_FILE} + {WEIGHTS_FILE}) and no checkpoints/")


def read_model_card(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json``; its ``model``, ``kind`` and ``config`` fields are checked for
    presence and type (their values are checked by :func:`load_pretrained`)."""
    directory = resolve_model_dir(directory)
    path = directory / CONFIG_FILE
    try:
        card = json.loads(path.read_text())
    except (ValueError, RecursionError):  # bad JSON or UTF-8, ints over 4300 digits, deep nesting
        raise CheckpointError(f"{path} is not valid JSON") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path} is not a genvision model card (no \"format\": \"{FORMAT_NAME}\")")
    for key, kind in (("model", str), ("kind", str), ("config", dict)):
        if key not in card:
            raise CheckpointError(f"{path} has no {key!r} field")
        if not isinstance(card[key], kind):
            expected = "a mapping of the model's config fields" if kind is dict else "a string"
            raise CheckpointError(f"{path}: {key!r} must be {expected}, got {shown(card[key])}")
    return card


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return _dequantize(load_file(str(path)))
    except (SafetensorError, OSError, ValueError) as exc:
        # Covers pickles and other files disguised as safetensors: they are never executed.
        raise CheckpointError(f"{path} is not a valid safetensors file ({reason(exc)})") from None


def _dequantize(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors stored as int8 weights (genvision quantize --method int8-weights) back to float32: each is
    ``q * scale`` with one scale per output channel, stored beside it as ``NAME.int8_scale``."""
    for key in [k for k in state if k.endswith(INT8_SCALE_SUFFIX)]:
        name, scale = key[:-len(INT8_SCALE_SUFFIX)], state.pop(key)
        q = state[name]  # (out, ...) int8
        state[name] = q.float() * scale.float().view(-1, *([1] * (q.ndim - 1)))
    return state


def _read_header(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{name: (shape, dtype)}`` of a safetensors file, read from its header alone (no tensor data)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid safetensors file ({reason(exc)})") from None


_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}


def _key(name: str) -> str:
    """A tensor name for a one-line message: as is, or its repr when it holds odd characters."""
    return name if name.isprintable() and name.strip() == name and name else repr(name)


def _names(keys: list[str], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(_key(k) for k in keys[:limit]) + more


def _config_summary(config: Any) -> str:
    """``arch=conv, width=32, ...``: the config's scalar fields (nested mappings as ``generator.width``)."""
    def scalars(values: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, value in values.items():
            if isinstance(value, dict):
                out += scalars(value, f"{prefix}{key}.")
            elif value is None or isinstance(value, (bool, int, float, str)):
                out.append(f"{prefix}{key}={value}")
            elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
                out.append(f"{prefix}{key}={list(value)}")
        return out

    return ", ".join(scalars(dataclasses.asdict(config)))


def _explaining_fields(config: Any, expected: tuple[int, ...], actual: tuple[int, ...]) -> str:
    """The config's integer fields whose value is one of the dimensions that differ; when none
    is (a float such as mlp_ratio, or a product of fields), all of its fields."""
    sizes = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    sizes = {k: v for k, v in sizes.items() if isinstance(v, int) and not isinstance(v, bool)}
    differing = {e for i, e in enumerate(expected) if i >= len(actual) or actual[i] != e}
    named = [f"{k}={v}" for k, v in sizes.items() if v in differing]
    return ", ".join(named) if named else f"config ({_config_summary(config)})"


def _check_weights(path: Path, expected: dict[str, torch.Tensor], config: Any, entry: ModelEntry, *,
                   complete: bool) -> None:
    """Compare a weights file's header with the shapes the config implies, before loading any data.

    ``complete``: every tensor of the model must be there (model.safetensors); an EMA file
    covers only the sampled sub-network, so it may hold a subset.
    """
    stored = _read_header(path)
    int8 = {key[:-len(INT8_SCALE_SUFFIX)]: stored.pop(key) for key in list(stored) if key.endswith(INT8_SCALE_SUFFIX)}
    for key, (scale_shape, scale_dtype) in int8.items():  # int8 weights: one float scale per output channel
        shape, dtype = stored.get(key, ((), None))
        if dtype != "I8" or not shape or scale_shape != shape[:1] or scale_dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f"{path}: {_key(key + INT8_SCALE_SUFFIX)} does not scale an int8 tensor of "
                                  f"{shape[:1] or 'its'} output channels")
    unexpected = sorted(set(stored) - set(expected))
    missing = sorted(set(expected) - set(stored)) if complete else []
    if missing or unexpected:
        parts = [f"missing {_names(missing)}" if missing else "",
                 f"unexpected {_names(unexpected)}" if unexpected else ""]
        # Which config field decides a tensor's presence (arch, pool, likelihood, ...) cannot be
        # told from its name: show them all.
        raise CheckpointError(f"{path} does not match model {entry.name} as {CONFIG_FILE} describes it "
                              f"({_config_summary(config)}): {'; '.join(p for p in parts if p)}")
    for key, (shape, dtype) in stored.items():
        want = tuple(expected[key].shape)
        if shape != want:
            raise CheckpointError(f"{path}: {_key(key)} has shape {shape}, {CONFIG_FILE}'s "
                                  f"{_explaining_fields(config, want, shape)} expects {want}")
        if expected[key].is_floating_point() and dtype not in _FLOAT_DTYPES and key not in int8:
            raise CheckpointError(f"{path}: {_key(key)} is stored as {dtype}; model {entry.name} needs "
                                  "floating-point values")


def load_pretrained(directory: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True,
                    kind: str | tuple[str, ...] | None = None) -> nn.Module:
    """Rebuild a registered model from its directory, in eval mode.

    ``kind`` restricts what is accepted (e.g. ``"gan"``), so a command given the wrong
    kind of model fails with one line instead of deep inside a forward pass.
    """
    directory = resolve_model_dir(directory)
    card = read_model_card(directory)
    try:
        entry = get_entry(card["model"])
    except ConfigError as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {exc}") from None
    allowed = (kind,) if isinstance(kind, str) else kind
    if allowed is not None and entry.kind not in allowed:
        raise CheckpointError(f"{directory} holds a {entry.kind} model ({entry.name}); this command needs a "
                              f"{' or '.join(allowed)} model")
    if card["kind"] != entry.kind:
        raise CheckpointError(f"{directory / CONFIG_FILE} says kind {shown(card['kind'])}, but model {entry.name} "
                              f"is a {entry.kind} model")
    # Everything about the config and the weights' shapes is checked before a real tensor
    # exists: the config against its dataclass, the size on the meta device, the shapes
    # against the safetensors headers.
    try:
        config = model_config(entry.name, card["config"], "config")
        expected = meta_model(entry.name, config).state_dict()
    except ConfigError as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {exc}") from None
    use_ema_file = use_ema and (directory / EMA_FILE).is_file()
    _check_weights(directory / WEIGHTS_FILE, expected, config, entry, complete=True)
    if use_ema_file:
        _check_weights(directory / EMA_FILE, expected, config, entry, complete=False)
    model = entry.cls(config)
    state = _load_weights(directory / WEIGHTS_FILE)
    if use_ema_file:
        # EMA covers only the sampled sub-network; the rest comes from the raw weights.
        state = {**state, **_load_weights(directory / EMA_FILE)}
    model.load_state_dict(state)
    model.model_dir = str(directory)
    return model.to(device).eval()


def load_recipe_model(location: str | None, key: str, *, accepts: Callable[[ModelEntry], bool], wanted: str,
                      hint: str) -> nn.Module:
    """The trained model a recipe key names (a run or model directory, or zoo:NAME), for recipes built
    on another model (a teacher, a frozen VQ-VAE); anything else is refused in one line naming ``key``.

    ``accepts`` judges the registry entry from the card alone, so a wrong model is not even loaded;
    ``wanted`` names what it must be ("a VQ-VAE") and ``hint`` what to give ("a vqvae run")."""
    try:
        entry = get_entry(read_model_card(location)["model"])
        if not accepts(entry):
            raise ConfigError(f"{location} holds a {entry.kind} model ({entry.name}), not {wanted}: give {hint} "
                              f"or model directory, or zoo:NAME")
        return load_pretrained(location, kind=entry.kind)
    except GenvisionError as exc:  # name the key: "model not found: X" alone does not say where X came from
        raise type(exc)(f"{key}: {exc}") from None


def load_with_card(spec: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True,
               kind: str | tuple[str, ...] | None = None, config: dict[str, Any] | None = None
               ) -> tuple[nn.Module, dict[str, Any]]:
    """A model and its card from a model or run directory, or from the name of a weightless
    registered model (``bicubic``) built from ``config`` — the one path every command loads through.

    ``config`` is only for weightless models (a saved model's config is its own); the card of a
    weightless model is ``{"model": name, "kind": kind, "config": ...}``, with no run.
    """
    path = Path(spec)
    entry = _weightless_entry(str(spec)) if not path.exists() else None
    if entry is None:
        model = load_pretrained(path, device=device, use_ema=use_ema, kind=kind)
        return model, read_model_card(path)
    allowed = (kind,) if isinstance(kind, str) else kind
    if allowed is not None and entry.kind not in allowed:
        raise CheckpointError(f"{entry.name} is a {entry.kind} model; this command needs a {' or '.join(allowed)} "
                              f"model")
    if config is None:
        fields = ", ".join(f.name for f in dataclasses.fields(entry.config_cls))
        raise ConfigError(f"{entry.name} has no weights to read its settings from: give them ({fields}), "
                          f"e.g. --scale for an upscaler")
    model = create_model(entry.name, model_config(entry.name, config, entry.name))
    model.model_dir = entry.name
    card = {"format": FORMAT_NAME, "model": entry.name, "kind": entry.kind, "config": to_dict(model.config)}
    return model.to(device).eval(), card


def is_weightless(spec: str | Path) -> bool:
    """``spec`` names a registered model that needs no weights (and is not an existing path)."""
    return not Path(spec).exists() and _weightless_entry(str(spec)) is not None


def _weightless_entry(name: str) -> ModelEntry | None:
    try:
        entry = get_entry(name)
    except ConfigError:
        return None
    return entry if entry.weightless else None


def read_state_dict(path: str | Path, what: str = "weights") -> dict[str, torch.Tensor]:
    """A state dict from a file a user names: ``.safetensors``, or a PyTorch ``.pth`` read with
    ``weights_only=True`` (tensors and plain containers only: nothing in the file runs)."""
    path = Path(path).expanduser()
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, SafetensorError, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ConfigError(f"{what}: {shown(str(path))} is not a readable state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{what}: {shown(str(path))} holds a {type(state).__name__}, not a state dict of tensors")
    return state


def load_trainer_state(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: cannot resume from {directory}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path} holds objects other than plain tensors and was refused "
                              f"({reason(exc)})") from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} is not a readable training state ({reason(exc)})") from None


# --- checkpoints of a run: runs/<name>/checkpoints/step_00001000/, 'latest' pointer, keep-last-K


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def latest_checkpoint(checkpoints_dir: str | Path) -> Path | None:
    checkpoints_dir = Path(checkpoints_dir)
    pointer = checkpoints_dir / LATEST_FILE
    if not pointer.is_file():
        return None
    name = pointer.read_text().strip()
    candidate = checkpoints_dir / name
    if "/" in name or name.startswith(".") or not (candidate / CONFIG_FILE).is_file():
        raise CheckpointError(f"{pointer} points to a missing checkpoint {name!r}")
    return candidate


def _write_pointer(checkpoints_dir: Path, name: str, pointer_name: str = LATEST_FILE) -> None:
    atomic.write_text(checkpoints_dir / pointer_name, name + "\n")


@dataclass
class CheckpointManager:
    """Writes step checkpoints atomically, moves ``latest`` last, prunes to the last K."""
    checkpoints_dir: Path
    keep_last: int = 3

    def save(self, step: int, model: nn.Module, *, ema_state=None, trainer_state=None, extra=None,
             best: bool = False) -> Path:
        self.checkpoints_dir.mkdir(parents=True, exist_ok=True)
        path = save_pretrained(model, self.checkpoints_dir / checkpoint_name(step), ema_state=ema_state,
                               trainer_state=trainer_state, extra=extra)
        _write_pointer(self.checkpoints_dir, path.name)
        if best:
            _write_pointer(self.checkpoints_dir, path.name, "best")
        self._prune()
        return path

    def _prune(self) -> None:
        protected = set()
        for pointer in (LATEST_FILE, "best"):
            if (self.checkpoints_dir / pointer).is_file():
                protected.add((self.checkpoints_dir / pointer).read_text().strip())
        steps = sorted(p for p in self.checkpoints_dir.glob("step_*") if p.is_dir())
        for old in steps[:-self.keep_last] if self.keep_last > 0 else []:
            if old.name not in protected:
                shutil.rmtree(old, ignore_errors=True)
        atomic.remove_stale_temporaries(self.checkpoints_dir)


# The diffusers-style name for the same loader.
from_pretrained = load_pretrained
