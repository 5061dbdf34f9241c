"""Devices, seeding and RNG state: the small pieces of global state training depends on."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from .errors import ConfigError

SEED_MAX = 2**63 - 1  # seeds are 0..2**63-1, and so is every seed derived from one
_MASK64 = 2**64 - 1


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda > mps > cpu; an explicit device that is not there is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r} requested but MPS is not available on this machine")
    return device


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return "amx_bf16" in f.read()
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` picks bf16 where it is faster than fp32: CUDA GPUs with bf16 and CPUs with AMX.

    On AVX-512-bf16 CPUs without AMX (e.g. this project's CI VMs) bf16 convolutions measured slower than
    fp32 (docs/BENCHMARKS.md), so auto keeps fp32 there.
    """
    if precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu" and _cpu_has_amx():
        return "bf16"
    return "fp32"


def channels_last_hazard(model: torch.nn.Module) -> str | None:
    """The first layer whose channels_last backward pass corrupts memory on some CPUs, or None.

    oneDNN's weight gradient of a 1x1, stride > 1 convolution with 2-7 input channels in
    channels_last layout corrupts the heap on AVX2 CPUs (measured with torch 2.14 on an AMD EPYC:
    'double free or corruption', segfaults, hangs; 1, 8 and more channels are fine). Such layers
    only occur in very narrow nets (a ResNet of width 4), so those train in the default layout.
    """
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.Conv2d) and module.kernel_size == (1, 1) and module.stride != (1, 1)
                and 2 <= module.in_channels <= 7):
            return name
    return None


def exporting() -> bool:
    """True while torch.export traces a model (ONNX export): code that branches on tensor values or
    sizes takes its traceable path then. False on a torch too old to export that way."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's parameters (or, for a weightless model, its buffers) live; CPU if neither."""
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def cache_dir() -> Path:
    """$GENVISION_CACHE, else ~/.cache/genvision: reference statistics and domain extractors."""
    return Path(os.environ.get("GENVISION_CACHE", Path.home() / ".cache" / "genvision"))


def check_seed(seed: int, flag: str = "--seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ConfigError(f"{flag} must be an integer in 0..{SEED_MAX} (2**63-1), got {seed!r}")
    return seed


def derive_seed(seed: int, index: int) -> int:
    """A seed in 0..2**63-1 for item ``index`` of a request seeded with ``seed``; ``index`` 0 gives
    ``seed`` itself, others a SplitMix64 mix of (seed, index), so nearby seeds and indices give
    unrelated streams and nothing overflows ``manual_seed``."""
    if index == 0:
        return seed
    x = (seed + (index * 0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (x ^ (x >> 31)) >> 1  # 63 bits


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """RNG states in a form ``torch.load(weights_only=True)`` accepts (tensors, ints, lists)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                         state["numpy_has_gauss"], state["numpy_gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
