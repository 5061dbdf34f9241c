"""CycleGAN's image pool (Shrivastava et al. 2017): the critics see a history of fakes, not only
the latest generator's, which damps the oscillation of the GAN game.

Until ``size`` fakes are stored, every new fake is stored and returned. After that each new fake,
with probability 1/2, replaces a random stored one and the stored one is returned instead; else it
is returned as it is. The coin flips and slots come from torch's global RNG (the trainer saves
it) and the stored images are part of the objective's state, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch

__all__ = ["ImagePool"]


class ImagePool:
    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"pool size must be >= 0, got {size}")
        self.size = size
        self.images: torch.Tensor | None = None  # (n <= size, C, H, W), detached

    def __len__(self) -> int:
        return 0 if self.images is None else self.images.shape[0]

    @torch.no_grad()
    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """``fakes`` (B, C, H, W) -> (B, C, H, W): each row new or from the history."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        out = []
        for fake in fakes:
            if len(self) < self.size:
                self.images = fake[None] if self.images is None else torch.cat([self.images, fake[None]])
                out.append(fake)
            elif float(torch.rand(())) < 0.5:
                slot = int(torch.randint(0, self.size, ()))
                out.append(self.images[slot].clone())
                self.images[slot] = fake
            else:
                out.append(fake)
        return torch.stack(out)  # (B, C, H, W)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.images is None else {"images": self.images.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
        images = state.get("images")
        if images is not None and images.shape[0] > self.size:
            raise ValueError(f"a pool of {images.shape[0]} images does not fit a pool of size {self.size}")
        self.images = None if images is None else images.to(device or images.device)
