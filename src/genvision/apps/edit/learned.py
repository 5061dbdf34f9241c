"""The ``net`` inpainting method: a trained inpainting network (``genvision train inpaint``, the
LaMa-style :class:`genvision.models.inpaint.LamaInpainter`) fills the hole in one forward pass.

Unlike the generative methods it runs at the image's own size (its Fourier blocks see the whole
image whatever the size) and gives one deterministic fill. Channels are converted as for the
other model methods (grey images through an RGB model are replicated, then turned back to luma);
an alpha channel is filled by Telea. Memory grows with the image: a 12-megapixel photo needs a
few GB for a width-32 network.
"""

from __future__ import annotations

import numpy as np
import torch

from .generative import fill_array, load_inpainting_model

__all__ = ["check_net_options", "fill_net"]


def check_net_options(model=None) -> None:
    """Everything ``fill_net`` would refuse, checked before any file is read or written."""
    load_inpainting_model(model, "net")


@torch.no_grad()
def fill_net(image: np.ndarray, mask: np.ndarray, *, model=None) -> np.ndarray:
    """The ``net`` inpainting method on an image array: the filled array, image's shape and dtype."""
    network = load_inpainting_model(model, "net")
    device = next(network.parameters()).device

    def fill(x: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:  # (1, C, H, W) in [-1, 1], (H, W) bool
        image01 = ((x + 1) * 0.5).to(device)
        out = network(image01, hole[None, None].to(device=device, dtype=image01.dtype))  # (1, C, H, W)
        return out.float().cpu() * 2 - 1

    return fill_array(image, mask, network.config.channels, None, fill)[0]
