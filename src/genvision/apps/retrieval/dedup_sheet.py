"""What ``genvision dedup --sheet`` writes: one row of thumbnails per group, the kept file first.

``.html``: a self-contained page (thumbnails inlined as JPEG data URIs, no JavaScript, no links
to follow), captions with each file's path, size and distance. ``.png``: the same rows as one
image, each thumbnail captioned with its number in the group and its distance. ``report`` is a
:class:`.dedup.DedupReport` (not imported here: dedup imports this module). Both show at most
:data:`MAX_GROUPS` groups and :data:`MAX_PER_ROW` files per group, and say how many were left out.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from PIL import Image, ImageDraw

from ... import __version__, atomic
from ...errors import GenvisionError
from ...io import save_image
from .embed import load_rgb

SHEET_SUFFIXES = (".html", ".png")
THUMB = 128  # thumbnail side in pixels
CAPTION = 26  # pixels of caption under a thumbnail (PNG): its label, then its file name
MIN_WIDTH = 640  # room for the summary line above the rows
NAME_CHARS = 21  # of a file name under a 128-pixel thumbnail, in Pillow's default font
PAD = 6
MAX_GROUPS = 100  # a PNG of 100 rows is 100 * 154 px tall: far below Pillow's pixel cap
MAX_PER_ROW = 8
_MISSING = (200, 200, 200)


def _thumbnail(path: str) -> Image.Image:
    """A THUMB-bounded RGB copy; a grey square if the file can no longer be read."""
    try:
        image = load_rgb(path)
    except GenvisionError:
        return Image.new("RGB", (THUMB, THUMB), _MISSING)
    image.thumbnail((THUMB, THUMB))
    return image


def _label(member, keep: str) -> str:
    if member.path == keep:
        return "keep"
    return "same bytes" if member.exact_copy else f"d={member.distance:.3g}"


def _shown(report):
    return [(g, g.members[:MAX_PER_ROW]) for g in report.groups[:MAX_GROUPS]]


def _left_out(report) -> str:
    groups = max(0, len(report.groups) - MAX_GROUPS)
    files = sum(max(0, len(g.members) - MAX_PER_ROW) for g in report.groups[:MAX_GROUPS])
    parts = [f"{groups} more groups"] * bool(groups) + [f"{files} more files in the groups shown"] * bool(files)
    return f"Not shown: {', '.join(parts)} (all are in the JSON report)." if parts else ""


def _data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(report) -> str:
    rows = []
    for number, (group, members) in enumerate(_shown(report), start=1):
        figures = "".join(
            f'<figure><img src="{_data_uri(_thumbnail(m.path))}" alt=""><figcaption><b>{html.escape(_label(m, group.keep))}'
            f"</b><br>{html.escape(m.path)}<br>{m.width}x{m.height}, {m.bytes:,} bytes</figcaption></figure>"
            for m in members)
        kind = "exact copies" if group.exact else "near-duplicates"
        rows.append(f"<section><h2>group {number}: {len(group.members)} {kind}</h2>{figures}</section>")
    note = _left_out(report)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>duplicates in {html.escape(report.folder)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} section{{border-top:1px solid #ccc}}
figure{{display:inline-block;vertical-align:top;margin:0 1em 1em 0;width:{THUMB + 40}px}}
figcaption{{font-size:12px;color:#555;word-break:break-all}}</style></head>
<body><h1>duplicates in {html.escape(report.folder)}</h1>
<p>{html.escape(report.summary())}</p><p>{html.escape(note)}</p>
{''.join(rows) or '<p>No duplicates found.</p>'}
<p>genvision {__version__}</p>
</body></html>
"""


def render_png(report) -> Image.Image:
    shown = _shown(report)
    columns = max((len(members) for _, members in shown), default=1)
    cell_w, cell_h = THUMB + PAD, THUMB + CAPTION + PAD
    header = CAPTION + 4
    sheet = Image.new("RGB", (max(MIN_WIDTH, PAD + columns * cell_w), header + max(1, len(shown)) * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, 2), report.summary()[:110], fill="black")
    draw.text((PAD, 15), _left_out(report)[:110], fill="black")
    if not shown:
        draw.text((PAD, header), "No duplicates found.", fill="black")
    for row, (group, members) in enumerate(shown):
        top = header + row * cell_h
        for column, member in enumerate(members):
            thumb = _thumbnail(member.path)
            left = PAD + column * cell_w
            sheet.paste(thumb, (left + (THUMB - thumb.width) // 2, top + (THUMB - thumb.height) // 2))
            draw.text((left, top + THUMB + 1), f"{row + 1}.{column + 1} {_label(member, group.keep)}", fill="black")
            name = Path(member.path).name
            name = name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 3] + "..."
            draw.text((left, top + THUMB + 13), name, fill="black")
    return sheet


def write_sheet(report, path: str | os.PathLike) -> Path:
    """Write the sheet atomically, as .html or .png by the suffix."""
    path = Path(path)
    if path.suffix.lower() == ".html":
        return atomic.write_text(path, render_html(report))
    return save_image(render_png(report), path)


__all__ = ["MAX_GROUPS", "MAX_PER_ROW", "SHEET_SUFFIXES", "render_html", "render_png", "write_sheet"]
