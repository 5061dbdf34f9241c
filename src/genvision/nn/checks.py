"""Input checks at the top of a network's ``forward``: a wrong shape is one clear message naming
what was expected, not a matrix-multiply error from deep inside the net. They cost a few integer
comparisons per call."""

from __future__ import annotations

import torch

from ..errors import InputShapeError


def check_images(x: torch.Tensor, *, channels: int, size: int | None = None, who: str = "model") -> None:
    """``x`` must be (B, channels, H, W), and square of side ``size`` when one is given."""
    if x.ndim != 4 or x.shape[1] != channels or (size is not None and tuple(x.shape[2:]) != (size, size)):
        side = f"{size}, {size}" if size is not None else "H, W"
        raise InputShapeError(f"{who} takes images of shape (B, {channels}, {side}); got {tuple(x.shape)}")


def check_vectors(z: torch.Tensor, *, dim: int, who: str = "model", what: str = "latents") -> None:
    """``z`` must be (B, dim)."""
    if z.ndim != 2 or z.shape[1] != dim:
        raise InputShapeError(f"{who} takes {what} of shape (B, {dim}); got {tuple(z.shape)}")


__all__ = ["check_images", "check_vectors"]
