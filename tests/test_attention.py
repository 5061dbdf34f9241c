"""Self-attention over image patches: fast path == explicit path, weights, shapes, embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from genvision.errors import ConfigError
from genvision.nn.attention import PatchSelfAttention, SelfAttention, TransformerBlock
from genvision.nn.embeddings import PatchEmbed, patchify, sincos_2d, timestep_embedding, unpatchify


@pytest.mark.parametrize("heads", [1, 4])
def test_fast_path_equals_explicit_path(heads):
    torch.manual_seed(0)
    attn = SelfAttention(32, heads=heads).eval()
    x = torch.randn(3, 17, 32)
    fast = attn(x)
    slow = attn(x, need_weights=True)
    assert fast.weights is None and slow.weights.shape == (3, heads, 17, 17)
    torch.testing.assert_close(fast.tokens, slow.tokens, atol=1e-5, rtol=1e-5)
    # and gradients agree too
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    attn(x1).tokens.square().sum().backward()
    attn(x2, need_weights=True).tokens.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)


def test_explicit_path_matches_the_formula():
    torch.manual_seed(1)
    attn = SelfAttention(8, heads=2).eval()
    x = torch.randn(1, 5, 8)
    q, k, v = attn.qkv(x).split(8, dim=-1)  # (1, 5, 8) each
    out = []
    for h in range(2):
        sl = slice(4 * h, 4 * h + 4)
        a = torch.softmax(q[0, :, sl] @ k[0, :, sl].T / math.sqrt(4), dim=-1)  # (5, 5)
        out.append(a @ v[0, :, sl])
    want = attn.proj(torch.cat(out, dim=-1))[None]
    got = attn(x, need_weights=True)
    torch.testing.assert_close(got.tokens, want, atol=1e-6, rtol=1e-5)


def test_weights_sum_to_one_over_keys():
    attn = PatchSelfAttention(in_channels=1, dim=16, heads=4, patch_size=4).eval()
    _, weights = attn(torch.randn(2, 1, 28, 28), need_weights=True)
    assert weights.shape == (2, 4, 49, 49)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(dim=-1), torch.ones(2, 4, 49))


@pytest.mark.parametrize("size,patch,channels,tokens", [(224, 16, 3, 196), (28, 4, 1, 49)])
def test_image_batches_are_attended_over_patches(size, patch, channels, tokens):
    attn = PatchSelfAttention(in_channels=channels, dim=32, heads=4, patch_size=patch).eval()
    images = torch.randn(1, channels, size, size)
    out, weights = attn(images)
    assert out.shape == (1, tokens, 32) and weights is None
    out2, weights = attn(images, need_weights=True)
    assert weights.shape == (1, 4, tokens, tokens)
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-5)
    # token sequences are accepted as well
    assert attn(attn.tokens(images)).tokens.shape == (1, tokens, 32)


def test_bad_shapes_are_refused():
    with pytest.raises(ConfigError, match="divisible by heads"):
        SelfAttention(30, heads=4)
    with pytest.raises(ConfigError, match="expected tokens"):
        SelfAttention(16, heads=2)(torch.randn(2, 5, 8))
    with pytest.raises(ConfigError, match="not divisible by patch size"):
        PatchEmbed(in_channels=1, dim=8, patch_size=5)(torch.randn(1, 1, 28, 28))


def test_block_returns_weights_only_when_asked():
    block = TransformerBlock(16, heads=2).eval()
    x = torch.randn(2, 9, 16)
    a, b = block(x), block(x, need_weights=True)
    assert a.weights is None and b.weights.shape == (2, 2, 9, 9)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    tokens = patchify(x, 4)  # (2, 4, 48)
    assert tokens.shape == (2, 4, 48)
    # token 1 is the top-right patch; its first entries are pixel (0, 4) of channels 0, 1, 2
    assert tokens[0, 1, :3].tolist() == [x[0, 0, 0, 4].item(), x[0, 1, 0, 4].item(), x[0, 2, 0, 4].item()]
    torch.testing.assert_close(unpatchify(tokens, 4, 3, 2), x)


def test_sincos_positions_and_timestep_embedding():
    pos = sincos_2d(7, 7, 16)
    assert pos.shape == (49, 16)
    assert torch.allclose(pos[0, :4], torch.zeros(4)) and torch.allclose(pos[0, 4:8], torch.ones(4))  # sin 0, cos 0
    assert len({tuple(r.tolist()) for r in pos}) == 49  # every position distinct
    emb = timestep_embedding(torch.tensor([0.0, 0.5]), 8)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos 0, sin 0
    assert emb[1, 0] == pytest.approx(math.cos(500.0), abs=1e-4)
