"""Model cards: the JSON written beside each converted safetensors file, and their one-screen text.

A card says where the tensors came from (package pin, torch hub file or a user's file, with the
sha256 of what was read), under which licence and attribution, what preprocessing they expect and
what the module returns, so a result can always be traced to its weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..errors import display_path
from .catalogue import Backbone

CARD_VERSION = 1
INPUT_CONVENTION = ("every genvision backbone module takes RGB float images in [0, 1], shape (B, 3, H, W), and "
                    "applies (x - mean) / std itself")


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def make_card(spec: Backbone, *, variant: str, source: dict, origin: str, licence: str, notes: dict,
              attribution: str | None = None) -> dict:
    pre = spec.preprocessing[variant]
    card = {
        "card_version": CARD_VERSION,
        "name": spec.name,
        "title": spec.title,
        "arch": spec.arch,
        "variant": variant,
        "source": source,
        "origin": origin,
        "licence": licence,
        "attribution": attribution or spec.attribution,
        "preprocessing": {**asdict(pre), "input": INPUT_CONVENTION},
        "returns": spec.returns,
        **notes,
        "converted_by": f"genvision {__version__}",
    }
    return json.loads(json.dumps(card))  # as it will read back from disk (tuples become lists)


def read_card(path: Path, name: str) -> dict | None:
    """The card at ``path`` if it is a readable genvision card for backbone ``name``; else None."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(card, dict) and card.get("card_version") == CARD_VERSION and card.get("name") == name
    return card if ok else None


def summary(card: dict) -> str:
    """A few lines for the terminal: source, licence, preprocessing, what it returns."""
    source = card.get("source", {})
    where = {"package": lambda s: f"package {s.get('requirement')} ({s.get('member')})",
             "hub": lambda s: f"torch hub cache {display_path(s.get('path', ''))}",
             "file": lambda s: f"your file {display_path(s.get('path', ''))}"}
    lines = [f"{card['name']}: {card['title']}",
             f"  from:          {where.get(source.get('kind'), lambda s: str(s))(source)}",
             f"  weights:       {card['variant']} ({card['origin']})",
             f"  licence:       {card['licence']}",
             f"  attribution:   {card['attribution']}",
             f"  preprocessing: {card['preprocessing']['description']}",
             f"  returns:       {card['returns']}"]
    if card.get("assumed"):
        lines.append(f"  note:          {card['assumed']}")
    return "\n".join(lines)


__all__ = ["CARD_VERSION", "card_path", "make_card", "read_card", "summary"]
