"""Adaptive discriminator augmentation (ADA; Karras, Aittala, Hellsten, Laine, Lehtinen & Aila, "Training
Generative Adversarial Networks with Limited Data", NeurIPS 2020).

Every image D sees (real or generated) is augmented, each transform applied with probability ``p``;
``p`` is steered by how much D overfits. ADA's heuristic r_t = E[sign(D(x_real))] is ~0 while D cannot
tell the training images from fakes and approaches 1 when it has memorised them; every ``interval``
steps p moves by ``sign(r_t - target) * images_seen / (kimg * 1000)``, so p can go from 0 to 1 within
``kimg`` thousand images. The paper's target is 0.6, its kimg 500.

The transforms are DiffAugment's differentiable ops (``genvision.data.augment``: brightness, saturation,
contrast, translation, cutout), not ADA's 18-op pipeline; the controller is ADA's. Written here because
the controller is a few lines tied to the GAN step (no library ships it apart from the StyleGAN2-ADA code).
"""

from __future__ import annotations

import torch

from ...data.augment import POLICIES, parse_policy
from ...training.distributed import DistContext

DEFAULT_POLICY = "color,translation,cutout"


def augment_with_probability(x: torch.Tensor, policy: str, p: float) -> torch.Tensor:
    """Apply each op of ``policy`` to each image of ``x`` (B, C, H, W) with probability ``p``.

    The random draws are the same whatever ``p`` is (every op runs, then is kept or not per image), so
    a run consumes the RNG identically while p moves, and a resumed run replays the same augmentations."""
    for name in parse_policy(policy):
        for op in POLICIES[name]:
            chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p  # (B, 1, 1, 1)
            x = torch.where(chosen, op(x), x)
    return x


class AdaptiveAugment:
    """ADA's augmentation probability and its controller; the GAN objective owns one per run."""

    def __init__(self, policy: str, target: float, kimg: float, interval: int):
        self.policy = policy or DEFAULT_POLICY
        self.target = target
        self.kimg = kimg
        self.interval = interval
        self.p = 0.0
        self._sign_sum: torch.Tensor | float = 0.0  # sum of sign(D(real)) since the last adjustment
        self._count = 0  # real images in that sum (this rank's)
        self.last_rt = 0.0  # r_t at the last adjustment (logged)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment_with_probability(x, self.policy, self.p)

    def observe(self, real_logits: torch.Tensor) -> None:
        """Tally D's verdict on a batch of real images (kept on the device: no host sync per step)."""
        self._sign_sum = self._sign_sum + torch.sign(real_logits.detach().float()).sum()
        self._count += real_logits.numel()

    def adjust(self, dist: DistContext, device: torch.device) -> None:
        """Move p by the tally since the last adjustment (summed over ranks, so every rank keeps the same p)."""
        tally = dist.mean({"sign_sum": float(self._sign_sum), "count": float(self._count)}, device)
        self._sign_sum, self._count = 0.0, 0
        if tally["count"] == 0:
            return
        r_t = tally["sign_sum"] / tally["count"]
        images = tally["count"] * dist.world_size
        step = images / (self.kimg * 1000.0)
        direction = (r_t > self.target) - (r_t < self.target)  # np.sign(r_t - target), as in ADA
        self.p = min(max(self.p + direction * step, 0.0), 1.0)
        self.last_rt = r_t

    def state_dict(self) -> dict:
        return {"p": self.p, "sign_sum": float(self._sign_sum), "count": self._count, "last_rt": self.last_rt}

    def load_state_dict(self, state: dict) -> None:
        self.p = float(state.get("p", 0.0))
        self._sign_sum = float(state.get("sign_sum", 0.0))
        self._count = int(state.get("count", 0))
        self.last_rt = float(state.get("last_rt", 0.0))


__all__ = ["AdaptiveAugment", "augment_with_probability", "DEFAULT_POLICY"]
