"""What the retrieval benchmarks share: smoke runs that record into a throw-away folder, building an
index from a named dataset, and embedders that are skipped (with the reason) when their weights are
not here."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import harness

from genvision.apps.retrieval.commands import dataset_items
from genvision.apps.retrieval.embed import make_embedder
from genvision.apps.retrieval.store import Index
from genvision.errors import GenvisionError

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def smoke_setup(smoke: bool) -> Path:
    """A scratch folder for indexes; with ``smoke``, results are recorded there too (never into
    benchmarks/results, which holds only real runs)."""
    scratch = Path(tempfile.mkdtemp(prefix="gv-retrieval-bench-"))
    if smoke:
        harness.RESULTS = scratch / "results"
    return scratch


def cleanup(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)


def usable(specs: list[str], device: str | None = None) -> tuple[list, list[str]]:
    """(embedders that build here, notes for those that do not: missing weights are skipped, not fatal)."""
    embedders, notes = [], []
    for spec in specs:
        try:
            embedders.append(make_embedder(spec, device=device))
        except GenvisionError as exc:
            notes.append(f"{spec} skipped: {exc}")
            print(f"skipping {spec}: {exc}")
    return embedders, notes


def build_from_dataset(path: Path, embedder, source: str, data_root: str | None, limit: int | None,
                       index_type: str = "flat") -> tuple[float, int]:
    """Index a named dataset (``mnist:train``) as `genvision index build` does: (seconds, items)."""
    names, images, metas = dataset_items(source, data_root, limit)
    start = time.perf_counter()
    with Index.building(path, embed=embedder, index_type=index_type, overwrite=True) as index:
        index.add_images(images, names, metadata=metas, progress=True)
        count = len(index)
    return time.perf_counter() - start, count
