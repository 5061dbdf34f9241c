"""Tests that use real pretrained weights or the Debian darknet photos: they run where `genvision weights
get NAME` and `apt-get install darknet` have put them (CI does both), and otherwise skip saying which
command makes them run. (conftest's ``empty_caches`` is the opposite: no weights anywhere.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from genvision import pretrained

DARKNET = Path("/usr/share/darknet/data")


def real(name: str) -> Path:
    """The cached weights file of backbone ``name``, or a skip that names the command fetching it."""
    resolved = pretrained.cached(name)
    if resolved is None:
        pytest.skip(f"real {name} weights are not in genvision's cache: run `genvision weights get {name}`")
    return resolved


def photo(name: str) -> Path:
    path = DARKNET / f"{name}.jpg"
    if not path.is_file():
        pytest.skip(f"{path} missing: `apt-get install darknet` ships the test photos")
    return path
