"""Masked token modelling (MaskGIT, Chang et al. 2022): the training mask and loss, and the
iterative parallel decoding that samples a whole token grid in a few steps.

A sequence of L tokens (a flattened h x w grid of codes 0..K-1) is corrupted by replacing some
positions with the extra id K, ``[MASK]``; a bidirectional transformer predicts the code of every
position, and is trained with cross-entropy on the masked positions only.

**Training mask.** Per example r ~ U(0, 1) and ``ceil(L * cos(pi/2 * r))`` positions (at least 1)
chosen uniformly at random are masked: the cosine schedule spends more examples on heavily masked
grids, which is where sampling starts.

**Decoding** (S steps, the same cosine schedule run forwards). Start with every position masked.
At step s = 0..S-1: predict logits for all positions; sample a code for every masked position;
score each by ``log p(sampled code) + choice_temperature * (1 - (s+1)/S) * Gumbel noise``; reveal the
most confident ones so that ``floor(L * cos(pi/2 * (s+1)/S))`` positions stay masked (at least one
is revealed per step; revealed codes are never changed). The last step reveals everything.

**Guidance.** Classifier-free guidance on the logits, written as DiT's field is in genvision:
``uncond + s * (cond - uncond)``, so s = 1 is plain conditional sampling, s = 0 unconditional, and
s = 1 + g is MaskGIT/Muse's ``(1 + g) * cond - g * uncond``.

Every random number is taken from tensors of uniforms the caller hands in, so a caller can draw
them per image from that image's own seed (reproducible whatever the batch holds).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

MASK_SCHEDULES = ("cosine",)


# --- training ------------------------------------------------------------------------------


def masked_counts(r: torch.Tensor, length: int) -> torch.Tensor:
    """How many of ``length`` positions to mask for ratios r (B,) in [0, 1): ceil(L cos(pi/2 r)), in 1..L."""
    counts = torch.ceil(length * torch.cos(0.5 * math.pi * r.double()))  # (B,)
    return counts.clamp(1, length).long()


def random_mask(counts: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Boolean mask (B, L): in each row the ``counts[b]`` positions with the smallest ``scores`` (B, L)
    (uniform scores make a uniformly random subset of that size)."""
    ranks = scores.argsort(dim=1, stable=True).argsort(dim=1, stable=True)  # (B, L): rank of each position
    return ranks < counts[:, None]


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked positions of the batch: logits (B, L, K), targets (B, L), mask (B, L)."""
    return F.cross_entropy(logits[mask].float(), targets[mask])  # (M, K) vs (M,), M = masked positions


# --- sampling ------------------------------------------------------------------------------


def decoding_schedule(length: int, steps: int) -> list[int]:
    """Positions still masked after each of ``steps`` decoding steps over ``length`` tokens:
    ``floor(L cos(pi/2 (s+1)/S))``, lowered where needed so each step reveals at least one; ends at 0."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= length:
        raise ConfigError(f"--steps must be an integer in 1..{length} (the number of tokens), got {steps!r}")
    remaining, counts = length, []
    for s in range(steps):
        planned = math.floor(length * math.cos(0.5 * math.pi * (s + 1) / steps)) if s < steps - 1 else 0
        remaining = max(0, min(planned, remaining - 1))
        counts.append(remaining)
    return counts


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance on logits: ``uncond + scale * (cond - uncond)`` (1 = conditional)."""
    return uncond + scale * (cond - uncond)


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (..., K) keeping the k largest of each row (and ties with the k-th), the rest -inf; k = 0 keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]  # (..., 1): the k-th largest value
    return logits.masked_fill(logits < kth, -math.inf)


def sample_with_uniforms(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF categorical sampling: codes (...,) from probabilities (..., K) and uniforms (...,) in [0, 1).
    A code of probability 0 is never drawn (``right=True`` skips the flat steps of the CDF)."""
    cdf = probs.double().cumsum(dim=-1)  # (..., K)
    target = (u.double() * cdf[..., -1]).unsqueeze(-1)  # (..., 1), strictly below the total
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp_max(probs.shape[-1] - 1)


def gumbel(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise -log(-log u) from uniforms u (kept inside (0, 1))."""
    u = u.double().clamp(1e-12, 1.0 - 1e-12)
    return -torch.log(-torch.log(u))


def reveal(tokens: torch.Tensor, sampled: torch.Tensor, confidence: torch.Tensor, keep_masked: int,
           mask_id: int) -> torch.Tensor:
    """One decoding step on sequences (B, L): every masked position gets its ``sampled`` code, except the
    ``keep_masked`` positions of lowest ``confidence``, which stay ``mask_id``. Revealed codes never change."""
    masked = tokens == mask_id  # (B, L)
    confidence = confidence.masked_fill(~masked, math.inf)  # revealed positions are never re-masked
    order = confidence.argsort(dim=1, stable=True)  # (B, L), least confident first
    stay = torch.zeros_like(masked).scatter_(1, order[:, :keep_masked], True)  # (B, L)
    filled = torch.where(masked, sampled, tokens)
    return filled.masked_fill(stay, mask_id)


LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # sequences (B, L) with [MASK]s -> logits (B, L, K)


def iterative_decode(logits_fn: LogitsFn, uniforms: torch.Tensor, *, mask_id: int, temperature: float = 1.0,
                     top_k: int = 0, choice_temperature: float = 4.5) -> torch.Tensor:
    """Sample sequences (B, L) of codes 0..K-1 in S parallel steps (the module docstring's decoding).

    ``uniforms`` (B, 2, S, L) in [0, 1) hold every random number: [:, 0] pick the codes (inverse CDF),
    [:, 1] make the Gumbel noise of the confidences; S = ``uniforms.shape[2]`` is the number of steps.
    ``logits_fn`` gives the (already guided) logits; temperature divides them, top_k filters them.
    """
    B, _, steps, length = uniforms.shape
    tokens = torch.full((B, length), mask_id, dtype=torch.long, device=uniforms.device)  # all [MASK]
    for s, keep_masked in enumerate(decoding_schedule(length, steps)):
        logits = logits_fn(tokens).double() / temperature  # (B, L, K)
        probs = filter_top_k(logits, top_k).softmax(dim=-1)  # (B, L, K)
        sampled = sample_with_uniforms(probs, uniforms[:, 0, s])  # (B, L)
        log_p = probs.gather(-1, sampled.unsqueeze(-1)).squeeze(-1).log()  # (B, L), finite: p > 0 was drawn
        noise_scale = choice_temperature * (1.0 - (s + 1) / steps)  # annealed to 0 at the last step
        confidence = log_p + noise_scale * gumbel(uniforms[:, 1, s])  # (B, L)
        tokens = reveal(tokens, sampled, confidence, keep_masked, mask_id)
    return tokens


__all__ = ["MASK_SCHEDULES", "LogitsFn", "decoding_schedule", "filter_top_k", "guided_logits", "gumbel",
           "iterative_decode", "masked_counts", "masked_token_loss", "random_mask", "reveal", "sample_with_uniforms"]
