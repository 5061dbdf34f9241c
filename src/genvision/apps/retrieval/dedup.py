"""``genvision dedup FOLDER``: group exact and near-duplicate images.

1. Exact copies: files with the same SHA-256 of their bytes are one group member each, with no
   decoding needed; only one file per distinct content is decoded and embedded.
2. Near-duplicates: every distinct content is embedded (``--embed``, default ``phash``); pairs whose
   distance is at most ``--threshold`` are found with one faiss range search over all of them, and
   union-find joins pairs into groups (so a chain a~b~c is one group even when a and c are further
   apart than the threshold; each member's distance to the group's kept file is reported).

Distances: Hamming bits for hashes (default 10 per 64 bits, imagededup's default), cosine distance
``1 - cos`` for float embeddings (default 0.1, i.e. cosine similarity >= 0.9). The kept file of a
group (``keep``) is the one with the most pixels, then the largest file, then the first name.
A file that cannot be read is reported (``unreadable``) and the rest go on.

The range search compares all pairs (flat indexes: exact, O(N^2) distance computations), which
takes seconds for tens of thousands of images with hashes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click
import faiss
import numpy as np
from tqdm import tqdm

from ...cli_params import FiniteFloat, overwrite_option
from ...data.patches import list_image_files
from ...errors import ConfigError, GenvisionError, display_path, reason
from ...outputs import OutputGuard, write_json
from .dedup_sheet import SHEET_SUFFIXES, write_sheet
from .embed import Embedder, load_rgb, make_embedder

DEFAULT_EMBED = "phash"
HASH_BITS_PER_64 = 10  # default Hamming threshold per 64 bits (imagededup's max_distance_threshold)
FLOAT_THRESHOLD = 0.1  # default cosine distance: similarity >= 0.9 (imagededup's CNN default)
EMBED_BATCH = 64  # images decoded at a time: memory stays bounded whatever the folder holds
QUERY_CHUNK = 4096  # range-search queries at a time: bounds the result buffers
_FLOAT_SLACK = 1e-6  # float32 rounding of a cosine exactly at the threshold


@dataclass
class Member:
    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    distance: float = 0.0  # to the group's kept file: Hamming bits or cosine distance
    exact_copy: bool = False  # same bytes as the kept file


@dataclass
class Group:
    keep: str
    exact: bool  # every member has the same bytes
    members: list[Member]


@dataclass
class DedupReport:
    folder: str
    embed: str
    metric: str  # "hamming bits" or "cosine distance"
    threshold: float
    images: int  # image files found
    distinct: int  # distinct contents (SHA-256)
    groups: list[Group] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Files that could go: every member of a group except the kept one."""
        return sum(len(g.members) - 1 for g in self.groups)

    def to_json(self) -> dict:
        out = asdict(self)
        out["unreadable"] = [{"path": p, "error": e} for p, e in self.unreadable]
        out["duplicates"] = self.duplicates
        return out

    def summary(self) -> str:
        bad = f"; {len(self.unreadable)} unreadable" if self.unreadable else ""
        exact = sum(g.exact for g in self.groups)
        return (f"{len(self.groups)} groups ({exact} exact, {len(self.groups) - exact} near) among {self.images} "
                f"images; {self.duplicates} duplicates ({self.embed}, {self.metric} <= {self.threshold:g}){bad}")


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            if self.size[a] < self.size[b]:
                a, b = b, a
            self.parent[b] = a
            self.size[a] += self.size[b]


def default_threshold(embedder: Embedder) -> float:
    return float(round(HASH_BITS_PER_64 * embedder.dim / 64)) if embedder.binary else FLOAT_THRESHOLD


def check_threshold(threshold: float | None, embedder: Embedder) -> float:
    """The threshold in the embedder's distance, checked: whole bits 0..dim, or a cosine distance 0..2."""
    if threshold is None:
        return default_threshold(embedder)
    value = float(threshold)
    if embedder.binary and not (value == int(value) and 0 <= value <= embedder.dim):
        raise ConfigError(f"--threshold for {embedder.spec} is a Hamming distance in whole bits 0..{embedder.dim}, "
                          f"got {threshold:g}")
    if not embedder.binary and not 0.0 <= value <= 2.0:
        raise ConfigError(f"--threshold for {embedder.spec} is a cosine distance 0..2, got {threshold:g}")
    return value


def file_sha256(path: Path) -> tuple[str, int]:
    """(SHA-256 hex digest, byte count) of a file, read in 1 MiB chunks."""
    digest, count = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
            count += len(chunk)
    return digest.hexdigest(), count


def near_pairs(vectors: np.ndarray, *, binary: bool, dim: int, threshold: float) -> tuple[np.ndarray, ...]:
    """(i, j, distance) for every pair i < j within ``threshold``, by faiss range search."""
    if binary:
        index = faiss.IndexBinaryFlat(dim)
        radius = int(threshold) + 1  # faiss keeps Hamming distances strictly below the radius
    else:
        index = faiss.IndexFlatIP(dim)
        radius = 1.0 - threshold - _FLOAT_SLACK  # faiss keeps inner products strictly above the radius
    index.add(vectors)
    found_i, found_j, found_d = [], [], []
    for start in range(0, len(vectors), QUERY_CHUNK):
        lims, values, ids = index.range_search(vectors[start:start + QUERY_CHUNK], radius)
        rows = np.repeat(np.arange(start, start + len(lims) - 1), np.diff(lims).astype(np.int64))  # query of each result
        distance = values.astype(np.float64) if binary else 1.0 - values.astype(np.float64)
        keep = (rows < ids) & (distance <= threshold + (0 if binary else _FLOAT_SLACK))
        found_i.append(rows[keep])
        found_j.append(ids[keep])
        found_d.append(np.maximum(distance[keep], 0.0))
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return np.concatenate(found_i), np.concatenate(found_j).astype(np.int64), np.concatenate(found_d)


def _distance(a: np.ndarray, b: np.ndarray, binary: bool) -> float:
    if binary:
        return float(np.unpackbits(np.bitwise_xor(a, b)).sum())
    return max(0.0, 1.0 - float(np.dot(a, b)))


def _embed_contents(paths: list[Path], embedder: Embedder, progress: bool):
    """Decode and embed one file per content: (vectors of the readable ones, their sizes, indexes kept,
    unreadable [(path, reason)])."""
    rows, sizes, kept, unreadable = [], [], [], []
    with tqdm(total=len(paths), desc="embed", unit="img", disable=not progress or None) as bar:
        for start in range(0, len(paths), EMBED_BATCH):
            images, batch_kept = [], []
            for i in range(start, min(start + EMBED_BATCH, len(paths))):
                try:
                    image = load_rgb(paths[i])
                except GenvisionError as exc:
                    unreadable.append((display_path(paths[i]), reason(exc)))
                    continue
                images.append(image)
                sizes.append(image.size)
                batch_kept.append(i)
            if images:
                rows.append(embedder.embed(images))
                kept += batch_kept
            bar.update(min(EMBED_BATCH, len(paths) - start))
    width = embedder.dim // 8 if embedder.binary else embedder.dim
    vectors = np.concatenate(rows) if rows else np.zeros((0, width), np.uint8 if embedder.binary else np.float32)
    return np.ascontiguousarray(vectors), sizes, kept, unreadable


def find_duplicates(files: Sequence[str | os.PathLike], embedder: Embedder, *, threshold: float | None = None,
                    folder: str = "", progress: bool = False) -> DedupReport:
    """Group ``files`` into exact and near duplicates (see the module docstring)."""
    threshold = check_threshold(threshold, embedder)
    files = [Path(f) for f in files]
    report = DedupReport(folder=folder, embed=embedder.spec, threshold=threshold, images=len(files), distinct=0,
                         metric="hamming bits" if embedder.binary else "cosine distance")
    by_content: dict[str, list[int]] = {}  # sha256 -> indexes into files
    byte_counts: dict[int, int] = {}
    for i, path in enumerate(tqdm(files, desc="hash", unit="file", disable=not progress or None)):
        try:
            sha, byte_counts[i] = file_sha256(path)
            by_content.setdefault(sha, []).append(i)
        except OSError as exc:
            report.unreadable.append((display_path(path), reason(exc)))
    contents = list(by_content)
    report.distinct = len(contents)
    vectors, sizes, kept, unreadable = _embed_contents([files[by_content[c][0]] for c in contents], embedder,
                                                       progress)
    report.unreadable += unreadable
    for sha in (contents[i] for i in set(range(len(contents))) - set(kept)):  # copies of an unreadable file
        report.unreadable += [(display_path(files[i]), "same bytes as an unreadable file") for i in by_content[sha][1:]]
    sets = UnionFind(len(kept))
    pair_i, pair_j, _ = near_pairs(vectors, binary=embedder.binary, dim=embedder.dim, threshold=threshold)
    for a, b in zip(pair_i.tolist(), pair_j.tolist()):
        sets.union(a, b)
    clusters: dict[int, list[int]] = {}
    for row in range(len(kept)):
        clusters.setdefault(sets.find(row), []).append(row)
    for rows in clusters.values():
        if len(rows) == 1 and len(by_content[contents[kept[rows[0]]]]) == 1:
            continue  # a unique image
        report.groups.append(_group(rows, kept, contents, by_content, files, byte_counts, sizes, vectors,
                                    embedder.binary))
    report.groups.sort(key=lambda g: (-len(g.members), g.keep))
    return report


def _group(rows, kept, contents, by_content, files, byte_counts, sizes, vectors, binary: bool) -> Group:
    def rank(row: int):  # the kept file: most pixels, then largest file, then first name
        first = by_content[contents[kept[row]]][0]
        return -sizes[row][0] * sizes[row][1], -byte_counts[first], str(files[first])

    best = min(rows, key=rank)
    members = []
    for row in sorted(rows, key=rank):
        sha = contents[kept[row]]
        distance = 0.0 if row == best else _distance(vectors[row], vectors[best], binary)
        for i in sorted(by_content[sha], key=lambda i: str(files[i])):
            members.append(Member(display_path(files[i]), sha, byte_counts[i], *sizes[row], distance,
                                  exact_copy=row == best))
    members[0].exact_copy = False  # the kept file itself
    return Group(keep=members[0].path, exact=len(rows) == 1, members=members)


# ----------------------------------------------------------------------------- the command


def _print(report: DedupReport, limit: int = 20) -> None:
    for number, group in enumerate(report.groups[:limit], start=1):
        click.echo(f"group {number} ({'exact' if group.exact else 'near'}, {len(group.members)} files)")
        for member in group.members:
            note = "keep" if member.path == group.keep else (
                "same bytes" if member.exact_copy else f"distance {member.distance:.4g}")
            click.echo(f"  {member.path}  [{note}]")
    if len(report.groups) > limit:
        click.echo(f"... and {len(report.groups) - limit} more groups (write them all with -o groups.json)")
    click.echo(report.summary())


@click.command("dedup")
@click.argument("folder", type=click.Path())
@click.option("--embed", default=DEFAULT_EMBED, show_default=True,
              help="Embedding: phash, dhash, phash:16 (256 bits), efficientnet-lite0, model:PATH, simclr:PATH, ...")
@click.option("--threshold", type=FiniteFloat(0.0, 65536.0),
              help="Largest distance that counts as a duplicate: Hamming bits for hashes (default 10 per 64 bits), "
                   "cosine distance 1 - cos for float embeddings (default 0.1).")
@click.option("-o", "--output", type=click.Path(), help="JSON report of every group (e.g. groups.json).")
@click.option("--sheet", type=click.Path(), help="A page of thumbnails per group: .html (self-contained) or .png.")
@click.option("--device", default="auto", show_default=True, help="For network embeddings: auto, cpu, cuda, mps.")
@overwrite_option
def dedup(folder, embed, threshold, output, sheet, device, overwrite):
    """Group exact copies (same bytes) and near-duplicates (embedding distance) of the images in FOLDER.

    Files are never changed or deleted; the report names which file of each group to keep (the one
    with the most pixels).
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{display_path(folder)}: no such folder")
    if sheet is not None and Path(sheet).suffix.lower() not in SHEET_SUFFIXES:
        raise ConfigError(f"--sheet {display_path(sheet)}: write a .html page or a .png sheet")
    guard = OutputGuard(overwrite=overwrite).add_input_folder(root)
    for path in (output, sheet):
        if path is not None:
            guard.claim(path)
    files = list_image_files(root)
    if not files:
        raise ConfigError(f"{display_path(folder)}: no image files found")
    embedder = make_embedder(embed, device=device)
    report = find_duplicates(files, embedder, threshold=threshold, folder=display_path(root), progress=True)
    if len(report.unreadable) == report.images:
        raise ConfigError(f"{display_path(folder)}: none of the {report.images} image files could be read "
                          f"(first: {report.unreadable[0][1]})")
    for path, error in report.unreadable:
        click.echo(f"warning: skipped {error if path in error else f'{path}: {error}'}", err=True)
    _print(report)
    if output is not None:
        write_json(output, report.to_json())
        click.echo(f"wrote {display_path(output)}")
    if sheet is not None:
        write_sheet(report, sheet)
        click.echo(f"wrote {display_path(sheet)}")


__all__ = ["DedupReport", "Group", "Member", "UnionFind", "check_threshold", "dedup", "default_threshold",
           "find_duplicates", "near_pairs"]
