"""Attention throughput: tokens/s of genvision's self-attention, fast path vs explicit path, in one run.

    python benchmarks/attention_throughput.py            # ~1 minute on 2 cores

The fast path (``need_weights=False``) calls ``F.scaled_dot_product_attention``; the explicit
path (``need_weights=True``) materialises the (B, heads, N, N) softmax weights. Both run the
same module (same weights) on the same inputs; rounds alternate between the two so machine
noise hits both, and the best round of each counts. Shapes: the ViT recipe for MNIST (28 px,
patch 4 -> 49 tokens, dim 128, 4 heads), a ViT-S/16 layer on 224 px (196 tokens, dim 384,
6 heads), the DiT recipe with patch 2 (196 tokens, dim 192, 6 heads), and a long sequence
(1024 tokens, dim 256, 4 heads) where the N x N weights dominate. Forward in inference mode,
and forward + backward (training).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import record, render_docs  # noqa: E402

from genvision.nn.attention import SelfAttention  # noqa: E402

SHAPES = [  # name, batch, tokens, dim, heads
    ("vit-mnist 28px/4", 128, 49, 128, 4),
    ("vit-s 224px/16", 16, 196, 384, 6),
    ("dit 28px/2", 64, 196, 192, 6),
    ("long 1024 tokens", 4, 1024, 256, 4),
]


def tokens_per_s(attn: SelfAttention, x: torch.Tensor, need_weights: bool, train: bool, min_s: float) -> float:
    def once():
        if train:
            xi = x.detach().requires_grad_(True)
            out = attn(xi, need_weights=need_weights).tokens
            out.sum().backward()
        else:
            with torch.inference_mode():
                attn(x, need_weights=need_weights)

    for _ in range(2):  # warm-up (kernel selection, allocator)
        once()
    iters, start = 0, time.perf_counter()
    while True:
        once()
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s and iters >= 3:
            return iters * x.shape[0] * x.shape[1] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=0.8, help="time per measurement")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    t0 = time.perf_counter()
    for name, batch, n, dim, heads in SHAPES:
        attn = SelfAttention(dim, heads=heads).eval()
        x = torch.randn(batch, n, dim)
        with torch.no_grad():  # the two paths agree on this input
            diff = float((attn(x).tokens - attn(x, need_weights=True).tokens).abs().max())
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for mode in ("inference", "training"):
                for path, need in (("fast", False), ("explicit", True)):
                    key = f"{mode} {path}"
                    rate = tokens_per_s(attn, x, need, mode == "training", args.min_seconds)
                    best[key] = max(best.get(key, 0.0), rate)
        throughput = {
            "inference fast tok/s": best["inference fast"], "inference explicit tok/s": best["inference explicit"],
            "inference speed-up": best["inference fast"] / best["inference explicit"],
            "training fast tok/s": best["training fast"], "training explicit tok/s": best["training explicit"],
            "training speed-up": best["training fast"] / best["training explicit"],
        }
        print(name, json.dumps({k: round(v, 2) for k, v in throughput.items()}), f"max |diff| {diff:.2e}")
        if not args.no_record:
            record("attention-throughput", name, recipe=f"B={batch} N={n} dim={dim} heads={heads}, fp32",
                   wall_s=time.perf_counter() - t0, throughput=throughput,
                   notes=f"best of {args.rounds} alternating rounds; max |fast - explicit| = {diff:.1e}")
    if not args.no_record:
        print(render_docs())


if __name__ == "__main__":
    main()
