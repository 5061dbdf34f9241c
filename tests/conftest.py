"""Shared fixtures. Tests never touch the network; real data comes from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from PIL import Image

# Property-based tests: "fast" (the default, in make test) is derandomised so CI is repeatable;
# "long" (HYPOTHESIS_PROFILE=long, run by benchmarks/reliability_fuzz.py) searches far more cases.
# Tests do not set max_examples themselves, so the profile decides how hard they search.
settings.register_profile("fast", max_examples=40, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Two cores on CI: more torch threads than cores only adds contention. Under pytest-xdist each worker
# process gets its share of the cores (PYTEST_XDIST_WORKER_COUNT workers, `make test` runs two).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1) // WORKERS))


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("shared data not available (../shared/data)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network socket fails loudly: tests must work offline. Unix-domain sockets are
    local IPC (DataLoader workers hand tensors back through them), not the network."""
    import socket

    connect = socket.socket.connect

    def guard(self, *args, **kwargs):
        if self.family == socket.AF_UNIX:
            return connect(self, *args, **kwargs)
        raise RuntimeError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No genvision cache and no torch hub cache: no pretrained weights to load."""
    monkeypatch.setenv("GENVISION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)


@pytest.fixture
def hr_folder(tmp_path) -> Path:
    """Three smooth 48x60 RGB "photos" with a little noise: SR / distillation / pruning training data."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for s in range(3):
        y, x = np.mgrid[0:48, 0:60] / 60
        image = np.stack([x, y, np.sin(9 * x * y + s)], axis=-1) * 0.8 + rng.normal(0, 0.02, (48, 60, 3))
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(folder / f"{s}.png")
    return folder


@pytest.fixture
def photos(tmp_path) -> Path:
    """Seven small random photos in two class folders (a/: odd, b/: even), for folder jobs and indexes."""
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    for i in range(7):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12 + i, 10, 3), dtype=np.uint8)).save(sub / f"p{i}.png")
    return folder
