"""What every demo panel shares: the report folder, the bundled photos, saving an image with its sidecar,
and the HTML for a figure and for the command that reproduces the panel."""

from __future__ import annotations

import html
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from .. import io as gio

PHOTOS = Path(__file__).resolve().parent.parent / "assets" / "demo"  # licences: assets/demo/SOURCES.md


@dataclass
class DemoContext:
    out: Path  # the report folder; every file a panel writes lands here, next to index.html
    device: str = "auto"
    files: list[str] = field(default_factory=list)
    numbers: dict[str, dict] = field(default_factory=dict)  # panel -> its measured values (demo.json)

    def record(self, panel: str, **values) -> None:
        self.numbers.setdefault(panel, {}).update(values)

    @staticmethod
    def photo(name: str) -> Path:
        return PHOTOS / name

    def copy_photo(self, name: str) -> str:
        """A bundled photo copied into the report folder, so the panel's commands run from there."""
        shutil.copyfile(PHOTOS / name, self.out / name)
        return name

    def save(self, image: Image.Image | torch.Tensor, name: str, *, value_range=(0.0, 1.0), **metadata) -> str:
        """Write ``name`` (and its JSON sidecar) in the report folder; returns the name for an <img src>."""
        if isinstance(image, torch.Tensor):
            image = gio.tensor_to_pil(image, value_range)
        gio.save_image(image, self.out / name, metadata=metadata)
        self.files.append(name)
        return name

    def save_grid(self, images: torch.Tensor, name: str, *, nrow: int, **metadata) -> str:
        """A grid of (N, C, H, W) images in [-1, 1]."""
        gio.save_grid(images, self.out / name, nrow=nrow, metadata=metadata)
        self.files.append(name)
        return name


@dataclass(frozen=True)
class Panel:
    title: str
    build: Callable[[DemoContext], str]  # -> the panel's HTML body


def figure(src: str, caption: str, width: int | None = None, *, pixelated: bool = False) -> str:
    size = f' width="{width}"' if width else ""
    style = ' style="image-rendering:pixelated"' if pixelated else ""
    return (f'<figure><img src="{html.escape(src)}"{size}{style}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def commands(*lines: str) -> str:
    """The CLI lines that reproduce a panel, run from the report folder."""
    text = "\n".join(html.escape(line) for line in lines)
    return f'<pre class="cmd">{text}</pre>'


def table(rows: list[tuple], header: tuple) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"
