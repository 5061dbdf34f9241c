"""Padding an image batch up to a size a network can take (multiples of its total stride), for the
fully convolutional nets that run at any size and crop their output back.

The sizes are computed as ceiling divisions and ``torch.sym_max``, not as ``-h % multiple`` and
``max``: under torch.export (ONNX export) the sides are symbols, and ``Mod``/``Max`` terms carried
through every convolution's output size made sympy's reasoning the bulk of an export (Johnson at its
default config: 28.6 s -> 14.9 s, docs/BENCHMARKS.md table ``export-time``), and a Python ``max`` of
symbols adds a guard to the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..runtime import exporting


def padded_side(side: int, multiple: int, minimum: int = 1) -> int:
    """The smallest multiple of ``multiple`` that is >= ``side`` and >= ``minimum`` (a SymInt while
    exporting)."""
    floor = -(-minimum // multiple) * multiple  # the minimum rounded up to a multiple
    return torch.sym_max((side + multiple - 1) // multiple * multiple, floor)


def pad_to_multiple(x: torch.Tensor, multiple: int, *, minimum: int = 1,
                    mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, C, H, W) -> (B, C, H', W') padded at the bottom/right to :func:`padded_side`, and the (H, W) to
    crop the network's output back to. ``mode`` is ``"reflect"`` or ``"replicate"``; reflection needs the
    padding smaller than the side, so tiny images replicate their edge instead. An exported graph cannot
    branch on sizes: it always pads with ``mode``, so its inputs need sides larger than the padding."""
    h, w = x.shape[-2:]
    pad_h, pad_w = padded_side(h, multiple, minimum) - h, padded_side(w, multiple, minimum) - w
    if not exporting():
        if pad_h == 0 and pad_w == 0:
            return x, (h, w)
        if mode == "reflect" and not (pad_h < h and pad_w < w):
            mode = "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)  # (B, C, H + pad_h, W + pad_w)


__all__ = ["pad_to_multiple", "padded_side"]
