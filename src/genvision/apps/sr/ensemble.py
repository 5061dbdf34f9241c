"""Geometric self-ensemble for SR models (the "+" of EDSR+ / RCAN+, Lim et al. 2017, sec. 4.3).

The model runs on the 8 symmetries of the square of its input (flips and transposes), each
output is mapped back, and the 8 are averaged: 8x the inference cost, typically +0.1-0.2 dB on
the standard benchmarks for a model trained with the same symmetries as augmentation (ours are:
``genvision.sr.data``). Published SRCNN / ESPCN / FSRCNN / VDSR numbers are single-pass, so
benchmark tables report the two separately.
"""

from __future__ import annotations

import torch
from torch import nn

from ...data.transforms import dihedral, dihedral_inverse

__all__ = ["dihedral", "dihedral_inverse", "SelfEnsemble"]

SYMMETRIES = 8


class SelfEnsemble(nn.Module):
    """Wraps an SR model: ``forward`` = mean over the 8 symmetries of ``inverse(model(symmetry(x)))``.

    It keeps the wrapped model's ``config`` (scale, channels) so tiling, the channel adapter
    and the evaluator treat it as the model itself.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.config = model.config
        self.model_dir = getattr(model, "model_dir", None)
        self.any_channels = getattr(model, "any_channels", False)

    @property
    def scale(self) -> int:
        return self.model.scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        total = None
        for code in range(SYMMETRIES):
            out = dihedral_inverse(self.model(dihedral(lr, code)), code)  # (B, C, s*h, s*w)
            total = out.clone() if total is None else total.add_(out)
        return total.div_(SYMMETRIES)
