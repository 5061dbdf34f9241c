"""Exported files run by onnxruntime, wearing the protocol of the model they came from, so the commands
that run models (``upscale``, ``classify``, ``generate``) take an ``.onnx`` file where they take a model
directory: ``--backend onnxruntime``.

The file's metadata (written by :func:`.onnx_export.export_onnx`) names the model, its kind and its
config; the config is rebuilt through the registry's checks, so a file with a foreign or damaged card
is refused in one line. Tensors cross to numpy and back on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, display_path
from ..registry import get_entry, model_config
from .onnx_export import read_metadata, session_for

RUNNABLE = ("sr", "classifier", "gan")  # the kinds a command can run from an .onnx file today
BACKENDS = ("auto", "torch", "onnxruntime")


class OnnxModel(nn.Module):
    """One exported graph: ``run(*tensors)`` feeds its inputs in order and returns its output. Carries
    ``config``, ``registry_name``, ``model_kind`` and ``model_dir`` (the file) like a loaded model."""

    def __init__(self, path: Path, metadata: dict[str, str], threads: int | None = None):
        super().__init__()
        self.path = path
        self.registry_name = metadata["genvision.model"]
        self.model_kind = metadata["genvision.kind"]
        self.graph = metadata.get("genvision.graph", "model")
        self.model_dir = str(path)
        self.config = model_config(self.registry_name, json.loads(metadata["genvision.config"]),
                                   f"{display_path(path)} metadata genvision.config")
        self.session = session_for(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, *tensors: torch.Tensor) -> torch.Tensor:
        if len(tensors) != len(self.input_names):
            raise ConfigError(f"{display_path(self.path)} takes {len(self.input_names)} inputs "
                              f"({', '.join(self.input_names)}), got {len(tensors)}")
        feeds = {}
        for name, tensor in zip(self.input_names, tensors):
            array = tensor.detach().cpu().numpy()
            feeds[name] = array.astype(np.int64) if array.dtype.kind in "iu" else array.astype(np.float32)
        return torch.from_numpy(self.session.run(None, feeds)[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """One image batch in, the graph's output back on the batch's device."""
        return self.run(images).to(images.device)


class OnnxUpscaler(OnnxModel):
    """The ImageToImage protocol: (B, C, h, w) in [0, 1] -> (B, C, scale h, scale w)."""

    @property
    def scale(self) -> int:
        return int(self.config.scale)


class OnnxClassifier(OnnxModel):
    """The Classifier protocol's logits; the penultimate features are not part of the exported graph."""

    @property
    def num_classes(self) -> int:
        return int(self.config.num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        raise ConfigError(f"{display_path(self.path)} holds the logits only; features (Grad-CAM, FID) need the "
                          "model directory and the torch backend")


class OnnxGenerator(OnnxModel):
    """The Generator protocol for GAN exports: the same seeded latents as the torch model (z ~ N(0, I)
    drawn on the generator's device), then the exported graph."""

    @property
    def num_classes(self) -> int:
        return int(getattr(self.config, "num_classes", 0) or 0)

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        draw_on = generator.device if generator is not None else (device or "cpu")
        return torch.randn(n, self.config.latent_dim, generator=generator, device=draw_on).to(device or "cpu")

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ConfigError(f"latents must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        if self.num_classes:
            if labels is None:
                raise ConfigError(f"this model is class-conditional: pass labels in 0..{self.num_classes - 1}")
            labels = torch.as_tensor(labels).long().reshape(-1)  # (N,)
            if labels.shape[0] != z.shape[0] or labels.min() < 0 or labels.max() >= self.num_classes:
                raise ConfigError(f"give one label in 0..{self.num_classes - 1} per latent")
            return self.run(z, labels)
        if labels is not None:
            raise ConfigError("this model is unconditional: do not pass labels")
        return self.run(z)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, labels)


_ADAPTERS = {"sr": OnnxUpscaler, "classifier": OnnxClassifier, "gan": OnnxGenerator}


def is_onnx_file(spec: str | Path) -> bool:
    return str(spec).lower().endswith(".onnx")


def wants_onnx(model: str | Path, backend: str) -> bool:
    """Whether ``--model`` runs in onnxruntime: ``auto`` follows the file name (.onnx), ``torch`` and
    ``onnxruntime`` insist, and a mismatch is one line saying what to give instead."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    onnx_file = is_onnx_file(model)
    if backend == "torch" and onnx_file:
        raise ConfigError(f"{model} is an ONNX file: run it with --backend onnxruntime (or give the model directory)")
    if backend == "onnxruntime" and not onnx_file:
        raise ConfigError(f"--backend onnxruntime runs an exported .onnx file; export {model} first: "
                          f"genvision export --model {model} -o model.onnx")
    return onnx_file


def load_onnx_model(path: str | Path, *, kind: str | tuple[str, ...] | None = None,
                    threads: int | None = None) -> OnnxModel:
    """An exported genvision graph as a model of its kind (see :data:`RUNNABLE`), or one ConfigError line:
    not a file, not ONNX, not written by ``genvision export``, another kind than the command needs."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{display_path(path)} does not exist (export one with genvision export --model DIR "
                          f"-o {path.name})")
    metadata = read_metadata(path)
    missing = [key for key in ("genvision.model", "genvision.kind", "genvision.config") if key not in metadata]
    if missing:
        raise ConfigError(f"{display_path(path)} was not written by genvision export (no {missing[0]} metadata)")
    entry = get_entry(metadata["genvision.model"])
    allowed = (kind,) if isinstance(kind, str) else kind
    if allowed is not None and entry.kind not in allowed:
        raise ConfigError(f"{display_path(path)} holds a {entry.kind} model ({entry.name}); this command needs a "
                          f"{' or '.join(allowed)} model")
    if entry.kind not in _ADAPTERS or metadata.get("genvision.graph", "model") != "model":
        raise ConfigError(f"{display_path(path)} ({entry.kind}, graph {metadata.get('genvision.graph')}) cannot be "
                          f"run by a command yet; runnable kinds: {', '.join(RUNNABLE)}")
    return _ADAPTERS[entry.kind](path, metadata, threads).eval()


__all__ = ["BACKENDS", "RUNNABLE", "OnnxClassifier", "OnnxGenerator", "OnnxModel", "OnnxUpscaler", "is_onnx_file",
           "load_onnx_model", "wants_onnx"]
