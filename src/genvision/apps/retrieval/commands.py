"""``genvision index build|add|remove|info|search``: a persistent image index on the command line.

``build SOURCE -o my.gvindex`` indexes a folder (recursively; images in class sub-folders get the
metadata ``label`` = the sub-folder name) or a named dataset (``mnist``, ``mnist:test``: names like
``mnist:train/123``, ``label`` = the class). ``add``/``remove`` change an index in place (one atomic
commit each); ``search`` prints ranked paths and scores (``--json``) and can write a contact sheet.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import click
from PIL import Image, ImageDraw, ImageOps

from ... import io as gio
from ...cli_params import Count, overwrite_option
from ...data import load_dataset
from ...errors import ConfigError, GenvisionError, display_path
from ...jobs import Shard
from .backend import INDEX_TYPES
from .database import check_location
from .embed import SPECS_HELP, load_rgb
from . import shards
from .store import Index, embedder_for

THUMB = 160  # contact-sheet tile side in pixels
SHEET_COLUMNS = 6
CAPTION = 28  # pixels under each tile for its rank, score and name


# ----------------------------------------------------------------------------- sources


def folder_images(folder: Path) -> tuple[list[Path], list[dict]]:
    """Image files under ``folder`` (recursive, hidden ones skipped, sorted) and their metadata:
    ``label`` = the first sub-folder for files inside one (the ImageFolder convention)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in gio.IMAGE_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    metas = [{"label": p.relative_to(folder).parts[0]} if len(p.relative_to(folder).parts) > 1 else {}
             for p in files]
    return files, metas


class DatasetImages(Sequence):
    """A named dataset's images as RGB PIL images, made one at a time (60,000 MNIST digits stay uint8)."""

    def __init__(self, dataset):
        self.images = dataset.images  # (N, C, S, S) uint8

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> Image.Image:
        pixels = self.images[index].numpy()  # (C, S, S)
        if pixels.shape[0] == 1:
            return Image.fromarray(pixels[0], "L").convert("RGB")
        return Image.fromarray(pixels.transpose(1, 2, 0), "RGB")  # (S, S, C)


def parse_dataset(source: str) -> tuple[str, str]:
    """``mnist`` / ``mnist:test`` -> (name, split)."""
    name, _, split = source.partition(":")
    return name, split or "train"


@lru_cache(maxsize=4)
def _dataset(name: str, split: str, root: str | None, limit: int | None):
    return load_dataset(name, split=split, root=root, limit=limit)


def dataset_items(source: str, root: str | None, limit: int | None):
    """(names, lazy images, metadata) of a named dataset."""
    name, split = parse_dataset(source)
    data = _dataset(name, split, root, limit)
    labels = data.labels.tolist()
    metas = [{"label": data.class_names[y] if 0 <= y < len(data.class_names) else str(y)} if y >= 0 else {}
             for y in labels]
    return [f"{data.name}:{split}/{i}" for i in range(len(data))], DatasetImages(data), metas


def load_item(name: str, root: str | None = None) -> Image.Image:
    """An item's image: a file, or a dataset item named ``mnist:train/123``."""
    if not os.path.exists(name) and ":" in name and "/" in name.partition(":")[2]:
        source, _, number = name.rpartition("/")
        if number.isdigit():
            dataset_name, split = parse_dataset(source)
            data = _dataset(dataset_name, split, root, None)
            if int(number) < len(data):
                return DatasetImages(data)[int(number)]
    return load_rgb(name)


def _expand(paths: tuple[str, ...]) -> tuple[list[Path], list[dict]]:
    files, metas = [], []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found, labels = folder_images(path)
            files += found
            metas += labels
        elif path.exists():
            files.append(path)
            metas.append({})
        else:
            raise ConfigError(f"{display_path(text)}: no such file or folder; nothing was added")
    return files, metas


# ----------------------------------------------------------------------------- reporting


def _report_line(path: Path, report, count: int) -> str:
    return (f"{display_path(path)}: added {report.added}, updated {report.updated}, unchanged {report.unchanged} "
            f"({report.embedded} embedded, {report.cached} from the cache); {count} items")


def _raise_failures(report, total: int) -> None:
    """Unreadable files were skipped: list them, then one error line and exit status 1."""
    if report.failed:
        for name, why in report.failed:
            click.echo(f"skipped {name}: {why}", err=True)
        raise ConfigError(f"{len(report.failed)} of {total} images could not be read (listed above); "
                          "the others were indexed")


def contact_sheet(query: Image.Image, hits, path: Path, *, root: str | None = None) -> Path:
    """A PNG grid: the query first, then the hits with their rank, score and file name."""
    tiles = [(query, "query")]
    for hit in hits:
        try:
            image = load_item(hit.path, root)
        except GenvisionError:
            image = Image.new("RGB", (THUMB, THUMB), (96, 96, 96))  # moved or deleted since it was indexed
        tiles.append((image, f"#{hit.rank} {hit.score:.3f} {Path(hit.path).name}"))
    columns = min(SHEET_COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * THUMB, rows * (THUMB + CAPTION)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for number, (image, caption) in enumerate(tiles):
        x, y = (number % columns) * THUMB, (number // columns) * (THUMB + CAPTION)
        thumb = ImageOps.pad(image.convert("RGB"), (THUMB - 4, THUMB - 4), color=(255, 255, 255))
        sheet.paste(thumb, (x + 2, y + 2))
        draw.text((x + 3, y + THUMB + 2), caption[:26], fill=(0, 0, 0))
    return gio.save_image(sheet, path)


# ----------------------------------------------------------------------------- the commands


@click.group()
def index():
    """Build, update and search a persistent image index (a NAME.gvindex folder: SQLite + faiss).

    An interrupted build or add leaves the index as it was; one writer at a time, readers any time.
    """


index_option = click.option("--index", "index_path", required=True, type=click.Path(),
                            help="The index folder (NAME.gvindex).")
device_option = click.option("--device", help="Where to embed images: auto (cuda > mps > cpu), cpu, cuda, ...")
data_root_option = click.option("--data-root", type=click.Path(), help="Where dataset files live (default "
                                                                       "$GENVISION_DATA).")


@index.command()
@click.argument("source")
@click.option("-o", "--output", required=True, type=click.Path(), help="The index to write (a folder, NAME.gvindex).")
@click.option("--embed", "spec", help=f"The embedding: {SPECS_HELP}. Default: the best offline photo embedding.")
@click.option("--index-type", type=click.Choice(INDEX_TYPES), default="auto", show_default=True,
              help="faiss index: auto = exact (flat) below 50,000 images, ivf above.")
@click.option("--limit", type=Count(1, 10**9), help="Index only the first N images (of a dataset, or of a folder sorted by name).")
@device_option
@data_root_option
@overwrite_option
@click.option("--shard", "shard_text", metavar="I/N",
              help="Folder input: embed only share I of N (0 <= I < N) into OUT.shards/; a later build without "
                   "--shard merges the shares. Under torchrun the default is this rank's share, and rank 0 merges.")
@click.option("--resume", is_flag=True, help="With --shard: continue this shard's part, skipping what it holds.")
def build(source, output, spec, index_type, limit, device, data_root, overwrite, shard_text, resume):
    """Index SOURCE: a folder of images (recursive) or a dataset (mnist, mnist:test, ...)."""
    output = Path(output)
    shard = Shard.parse(shard_text)
    if shard.count == 1 and resume:
        raise click.UsageError("--resume continues a shard's part: give it with --shard I/N")
    check_location(output, overwrite=overwrite)  # before any image is read or model loaded
    if os.path.isdir(source) or source.startswith("folder:"):
        folder = Path(source.removeprefix("folder:"))
        if not folder.is_dir():
            raise ConfigError(f"{display_path(folder)}: no such folder")
        files, metas = folder_images(folder)
        if not files:
            raise ConfigError(f"{display_path(folder)}: no image files found")
        names, images = None, None
        total = len(files[:limit]) if limit else len(files)
        files, metas = files[:total], metas[:total]
    elif os.path.exists(source):
        raise ConfigError(f"{display_path(source)}: SOURCE must be a folder or a dataset name (use index add for "
                          "single files)")
    elif "/" in source.partition(":")[0] or source.startswith((".", "~")):
        raise ConfigError(f"{display_path(source)}: no such folder")
    else:
        names, images, metas = dataset_items(source, data_root, limit)
        total = len(names)
    if shard.count > 1 and names is not None:
        raise ConfigError("--shard splits a folder's files; a dataset is indexed by one process")
    embedder = embedder_for(spec, device=device)
    if shard.count > 1:
        part = shards.embed_part(output, files, shard, embedder=embedder, index_type=index_type, resume=resume,
                                 overwrite=overwrite, progress=True)
        click.echo(f"shard {shard.index}/{shard.count}: {part.embedded} embedded, {part.cached} already in "
                   f"{display_path(shards.part_path(output, shard))}")
        under_torchrun = Shard.from_environment().count > 1
        if not under_torchrun:
            click.echo(f"when every shard is done, merge them: genvision index build {source} -o {output}")
        if not under_torchrun or shard.index != 0:
            _raise_failures(part, len(shard.take(files)))
            return
        shards.wait_for_parts(output, shard.count)  # rank 0 merges once every rank's part is done
    with Index.building(output, embed=embedder, index_type=index_type, overwrite=overwrite) as built:
        shards.import_parts(built, output)
        report = (built.add(files, progress=True, metadata=metas) if names is None
                  else built.add_images(images, names, metadata=metas, progress=True))
        count = len(built)
    shards.remove_parts(output)
    click.echo(_report_line(output, report, count))
    _raise_failures(report, total)


@index.command()
@click.argument("files", nargs=-1, required=True)
@index_option
@device_option
def add(files, index_path, device):
    """Add image FILES (and folders, recursively) to an index; changed files are re-embedded."""
    paths, metas = _expand(files)
    with Index.open(index_path, writable=True, device=device) as opened:
        report = opened.add(paths, progress=True, metadata=metas)
        count = len(opened)
    click.echo(_report_line(Path(index_path), report, count))
    _raise_failures(report, len(paths))


@index.command()
@click.argument("files", nargs=-1, required=True)
@index_option
def remove(files, index_path):
    """Remove FILES (paths or item names) from an index; an unknown one is an error and nothing is removed."""
    with Index.open(index_path, writable=True) as opened:
        removed = opened.remove(files)
        count = len(opened)
    click.echo(f"{display_path(index_path)}: removed {removed}; {count} items")


@index.command()
@click.argument("index_path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the information as JSON.")
def info(index_path, as_json):
    """Describe an index: size, embedding, index type, generation."""
    with Index.open(index_path) as opened:
        details = opened.info()
    if as_json:
        click.echo(json.dumps(details, indent=2))
        return
    for key, value in details.items():
        click.echo(f"{key:>14}: {value}")


@index.command()
@click.argument("query")
@index_option
@click.option("-k", "k", type=Count(1, 10_000), default=10, show_default=True, help="How many hits.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@click.option("--sheet", type=click.Path(dir_okay=False), help="Write a contact sheet PNG: the query, then the hits.")
@device_option
@data_root_option
@overwrite_option
def search(query, index_path, k, as_json, sheet, device, data_root, overwrite):
    """Find the images of an index most like QUERY (an image file, or a dataset item like mnist:test/7)."""
    if sheet is not None:
        sheet_path = Path(sheet)
        if sheet_path.suffix.lower() != ".png":
            raise ConfigError(f"--sheet {display_path(sheet)}: the contact sheet is a PNG; name it *.png")
        if os.path.lexists(sheet_path) and not overwrite:
            raise ConfigError(f"{display_path(sheet)} already exists; pass --overwrite to replace it")
        if os.path.exists(sheet_path) and os.path.exists(query) and os.path.samefile(query, sheet_path):
            raise ConfigError(f"--sheet {display_path(sheet)} is the query image; refusing to overwrite an input")
    with Index.open(index_path, device=device) as opened:
        image = load_item(query, data_root)
        hits = opened.search(image, k=k)
        score = opened.info()["score"]
    if sheet is not None:
        contact_sheet(image, hits, Path(sheet), root=data_root)
    if as_json:
        click.echo(json.dumps({"query": query, "index": str(index_path), "k": k, "score": score,
                               "hits": [dataclasses.asdict(hit) for hit in hits]}, indent=2))
    else:
        for hit in hits:
            click.echo(f"{hit.rank:>4}  {hit.score:.4f}  {display_path(hit.path)}")
    if sheet is not None and not as_json:
        click.echo(f"wrote {display_path(sheet)}")


__all__ = ["contact_sheet", "dataset_items", "folder_images", "index", "load_item"]
