"""Models on disk: ``config.json`` + ``model.safetensors`` (+ ``ema.safetensors``, ``trainer_state.pt``).

Nothing a user hands us is ever unpickled: weights are safetensors, configs JSON, and the
training state (optimizer moments, RNG states, step) is read with
``torch.load(weights_only=True)``, which refuses arbitrary objects. Every directory is
written to a temporary sibling first and renamed into place, so a crash or a kill mid-save
never leaves a half-written checkpoint where a loader would find it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from . import __version__, atomic
from .config import to_dict
from .errors import CheckpointError, reason
from .registry import create_model, get_entry

FORMAT_NAME = "genvision"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
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
                    extra: dict[str, Any] | None = None, trainer_state: dict[str, Any] | None = None) -> Path:
    """Write a model directory atomically and return its path."""
    if not hasattr(model, "registry_name"):
        raise CheckpointError(f"{type(model).__name__} is not a registered genvision model")
    target = Path(directory)
    tmp = atomic.staging_dir(target)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(model_card(model, extra), indent=2))
        _save_tensors(model.state_dict(), tmp / WEIGHTS_FILE)
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
    """Accept a model directory, a run directory (its latest checkpoint) or a checkpoint dir."""
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
    directory = resolve_model_dir(directory)
    try:
        card = json.loads((directory / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"{directory / CONFIG_FILE} is not valid JSON") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT_NAME or "model" not in card:
        raise CheckpointError(f"{directory / CONFIG_FILE} is not a genvision model card")
    return card


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        # Covers pickles and other files disguised as safetensors: they are never executed.
        raise CheckpointError(f"{path} is not a valid safetensors file ({reason(exc)})") from None


def load_pretrained(directory: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True,
                    kind: str | tuple[str, ...] | None = None) -> nn.Module:
    """Rebuild a registered model from its directory, in eval mode.

    ``kind`` restricts what is accepted (e.g. ``"gan"``), so a command given the wrong
    kind of model fails with one line instead of deep inside a forward pass.
    """
    directory = resolve_model_dir(directory)
    card = read_model_card(directory)
    entry = get_entry(card["model"])
    allowed = (kind,) if isinstance(kind, str) else kind
    if allowed is not None and entry.kind not in allowed:
        raise CheckpointError(f"{directory} holds a {entry.kind} model ({entry.name}); this command needs a "
                              f"{' or '.join(allowed)} model")
    model = create_model(entry.name, card.get("config", {}))
    weights_path = directory / EMA_FILE if use_ema and (directory / EMA_FILE).is_file() else directory / WEIGHTS_FILE
    state = _load_weights(weights_path)
    if weights_path.name == EMA_FILE:
        # EMA covers only the sampled sub-network; the rest comes from the raw weights.
        state = {**_load_weights(directory / WEIGHTS_FILE), **state}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights_path} does not match model {entry.name}: "
                              f"{len(missing)} missing and {len(unexpected)} unexpected tensors")
    model.model_dir = str(directory)
    return model.to(device).eval()


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
