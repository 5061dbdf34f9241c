"""Devices, seeding and RNG state: the small pieces of global state training depends on."""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import ConfigError


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
