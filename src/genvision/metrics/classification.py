"""Classification metrics: accuracy, confusion matrix, per-class accuracy, and a confusion-
matrix picture drawn with Pillow (matplotlib is not a dependency)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

from ..io import save_image

__all__ = ["accuracy", "confusion_matrix", "per_class_accuracy", "plot_confusion_matrix"]


def _labels(pred, target) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true labels as 1-D int64 tensors. ``pred`` may be labels ``(N,)`` or
    scores/logits/probabilities ``(N, C)``, in which case the arg-max is taken."""
    p = torch.as_tensor(pred).detach().cpu()
    t = torch.as_tensor(target).detach().cpu()
    if p.ndim == 2:
        p = p.argmax(dim=1)
    if p.ndim != 1 or t.ndim != 1:
        raise ValueError(f"expected pred (N,) or (N, C) and target (N,), got {tuple(p.shape)} and {tuple(t.shape)}")
    if p.is_floating_point() or t.is_floating_point():
        raise ValueError("labels must be integers (pass class scores as an (N, C) matrix)")
    if len(p) != len(t):
        raise ValueError(f"pred and target differ in length: {len(p)} vs {len(t)}")
    if len(t) == 0:
        raise ValueError("no samples")
    return p.long(), t.long()


def accuracy(pred, target) -> float:
    """Fraction of correct predictions; ``pred`` is labels ``(N,)`` or scores ``(N, C)``."""
    p, t = _labels(pred, target)
    return float((p == t).double().mean())


def confusion_matrix(pred, target, num_classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts; row = true class, column = predicted class."""
    p, t = _labels(pred, target)
    for name, x in (("pred", p), ("target", t)):
        if x.min() < 0 or x.max() >= num_classes:
            raise ValueError(f"{name} labels must lie in [0, {num_classes - 1}], got [{int(x.min())}, {int(x.max())}]")
    flat = torch.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> torch.Tensor:
    """Recall of each class from a confusion matrix: ``diag / row sum``, float64 ``(C,)``;
    NaN for a class with no samples."""
    cm = torch.as_tensor(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square (C, C) confusion matrix, got shape {tuple(cm.shape)}")
    cm = cm.to(torch.float64)
    return cm.diagonal() / cm.sum(dim=1)  # 0 / 0 -> NaN


# --------------------------------------------------------------------------------------------
# Picture
# --------------------------------------------------------------------------------------------

_WHITE = (255, 255, 255)
_DARK = (8, 48, 107)  # the dark end of matplotlib's "Blues"
_GRID = (200, 200, 200)
_MAX_LABEL_CHARS = 16


def _blend(rate: float) -> tuple[int, int, int]:
    """White (rate 0) to dark blue (rate 1)."""
    return tuple(round(w + (d - w) * rate) for w, d in zip(_WHITE, _DARK))


def _short(name: str) -> str:
    name = str(name)
    return name if len(name) <= _MAX_LABEL_CHARS else name[: _MAX_LABEL_CHARS - 2] + ".."


def plot_confusion_matrix(
    cm: torch.Tensor, class_names: Sequence[str], path: str | os.PathLike, *, cell: int | None = None
) -> Path:
    """Draw the confusion matrix as a PNG: a C x C grid coloured by the row-normalised rate
    (so classes of different sizes are comparable), each cell labelled with its count, true
    classes down the left, predicted classes (rotated) along the top. The image is square:
    grid plus equal label margins on the left and top. Pillow only; default font.

    ``cell`` is the side of a grid cell in pixels (default: wide enough for the largest
    count). Returns the path written.
    """
    cm = torch.as_tensor(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"expected a square (C, C) confusion matrix, got shape {tuple(cm.shape)}")
    n = cm.shape[0]
    if len(class_names) != n:
        raise ValueError(f"got {len(class_names)} class names for a {n}x{n} confusion matrix")
    counts = cm.to(torch.int64)
    rates = counts.double() / counts.sum(dim=1, keepdim=True).clamp_min(1)

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(s: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), s, font=font)
        return right - left, bottom - top

    names = [_short(s) for s in class_names]
    count_w = max(text_size(str(int(v)))[0] for v in counts.flatten())
    text_h = max(text_size(s)[1] for s in [*names, "0"])
    cell = cell or max(24, count_w + 10, text_h + 10)
    pad = 8
    title_h = text_h + 2 * pad
    margin = max(text_size(s)[0] for s in names) + 2 * pad + title_h  # labels + axis title
    side = margin + n * cell + pad
    img = Image.new("RGB", (side, side), _WHITE)
    draw = ImageDraw.Draw(img)

    for i in range(n):  # true class (row)
        for j in range(n):  # predicted class (column)
            x0, y0 = margin + j * cell, margin + i * cell
            rate = float(rates[i, j])
            draw.rectangle([x0, y0, x0 + cell, y0 + cell], fill=_blend(rate), outline=_GRID)
            s = str(int(counts[i, j]))
            w, h = text_size(s)
            colour = _WHITE if rate > 0.5 else (0, 0, 0)
            draw.text((x0 + (cell - w) / 2, y0 + (cell - h) / 2), s, fill=colour, font=font, anchor="la")

    for k, name in enumerate(names):
        w, h = text_size(name)
        # Row labels, right-aligned against the grid.
        draw.text((margin - pad - w, margin + k * cell + (cell - h) / 2), name, fill=(0, 0, 0), font=font)
        # Column labels, drawn on a strip and rotated to read bottom-up.
        strip = Image.new("RGB", (w + 2, h + 4), _WHITE)
        ImageDraw.Draw(strip).text((1, 0), name, fill=(0, 0, 0), font=font)
        strip = strip.rotate(90, expand=True)
        img.paste(strip, (margin + k * cell + (cell - strip.width) // 2, margin - pad - strip.height))

    # Axis titles: "predicted" across the top, "true" rotated on the left.
    w, h = text_size("predicted")
    draw.text((margin + (n * cell - w) / 2, pad), "predicted", fill=(0, 0, 0), font=font)
    strip = Image.new("RGB", (text_size("true")[0] + 2, h + 4), _WHITE)
    ImageDraw.Draw(strip).text((1, 0), "true", fill=(0, 0, 0), font=font)
    strip = strip.rotate(90, expand=True)
    img.paste(strip, (pad, margin + (n * cell - strip.height) // 2))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(img, path)  # atomically: a temp file renamed into place
    return path
