"""A self-contained HTML report (inline SVG charts, relative image links, no JavaScript).

Each capability contributes :class:`Section` objects; ``genvision demo`` assembles them.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


@dataclass
class Section:
    title: str
    body_html: str


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def line_chart_svg(rows: list[dict], keys: list[str], *, x_key: str = "step", width: int = 640,
                   height: int = 260) -> str:
    """One SVG polyline per key; the y-axis spans the data's range."""
    series = {k: [(r[x_key], r[k]) for r in rows if k in r and r[k] == r[k]] for k in keys}
    series = {k: pts for k, pts in series.items() if pts}
    if not series:
        return "<p>(no data)</p>"
    xs = [x for pts in series.values() for x, _ in pts]
    ys = [y for pts in series.values() for _, y in pts]
    x0, x1 = min(xs), max(xs) or 1
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 1, y1 + 1
    pad = 40

    def sx(x):
        return pad + (x - x0) / max(x1 - x0, 1e-12) * (width - 2 * pad)

    def sy(y):
        return height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'style="background:#fff;border:1px solid #ddd">',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>',
             f'<text x="{pad}" y="{pad - 8}" font-size="11">{y1:.3g}</text>',
             f'<text x="{pad}" y="{height - pad + 14}" font-size="11">{y0:.3g}</text>',
             f'<text x="{width - pad}" y="{height - pad + 14}" font-size="11" text-anchor="end">'
             f'{x_key} {x1:g}</text>']
    for i, (key, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
        parts.append(f'<text x="{width - pad - 4}" y="{pad + 14 * (i + 1)}" font-size="12" fill="{colour}" '
                     f'text-anchor="end">{html.escape(key)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def image_html(src: str, caption: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{html.escape(src)}"{size} style="image-rendering:pixelated">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def write_report(path: str | Path, title: str, sections: list[Section]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"<section><h2>{html.escape(s.title)}</h2>\n{s.body_html}</section>" for s in sections)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}}
figure{{display:inline-block;margin:0 1em 1em 0}} figcaption{{font-size:13px;color:#555}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>genvision {__version__} &middot; {time.strftime('%Y-%m-%d %H:%M')}</p>
{body}
</body></html>
"""
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
