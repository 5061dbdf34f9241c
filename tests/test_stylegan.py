"""The StyleGAN2-like generator: modulation equals convolving with per-sample weights, demodulation gives
unit-norm weights, shapes at 28 and 32 px, class conditioning, and a game that trains with it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from genvision.apps.gan.objective import GANObjectiveConfig
from genvision.errors import ConfigError
from genvision.models.gan import DCGAN, DCGANConfig
from genvision.models.stylegan import ModulatedConv
from test_gan import run_game


def _per_sample_reference(conv: ModulatedConv, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's definition: per-sample weights w'_ijk = s_i w_ijk, demodulated by their norm."""
    style = conv.affine(w)  # (B, in)
    outs = []
    for b in range(x.shape[0]):
        weight = conv.weight * style[b][None, :, None, None]  # (out, in, k, k)
        if conv.demodulate:
            weight = weight / weight.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
        outs.append(F.conv2d(x[b:b + 1], weight, padding=conv.padding))
    return torch.cat(outs) + conv.bias[None, :, None, None]


@pytest.mark.parametrize("demodulate,kernel", [(True, 3), (False, 1)])
def test_modulated_conv_equals_per_sample_weights(demodulate, kernel):
    torch.manual_seed(0)
    conv = ModulatedConv(6, 5, w_dim=8, kernel=kernel, demodulate=demodulate)
    x, w = torch.randn(3, 6, 7, 7), torch.randn(3, 8)
    torch.testing.assert_close(conv(x, w), _per_sample_reference(conv, x, w), rtol=1e-4, atol=1e-5)


def test_demodulation_makes_the_output_scale_independent_of_the_style():
    torch.manual_seed(0)
    conv = ModulatedConv(4, 4, w_dim=2, kernel=3)
    x, w = torch.randn(2, 4, 9, 9), torch.randn(2, 2)
    base = conv(x, w)
    with torch.no_grad():
        conv.affine.weight.mul_(7.0)  # every style 7x larger
        conv.affine.bias.mul_(7.0)
    torch.testing.assert_close(conv(x, w), base, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size,channels,classes", [(28, 1, 10), (32, 3, 0)])
def test_style_generator_shapes_range_and_labels(size, channels, classes):
    torch.manual_seed(0)
    model = DCGAN(DCGANConfig(image_size=size, channels=channels, num_classes=classes, width=16, latent_dim=12,
                              generator="style"))
    z = torch.randn(4, 12)
    labels = torch.tensor([0, 1, 2, 3]) if classes else None
    x = model(z, labels)
    assert x.shape == (4, channels, size, size) and float(x.detach().abs().max()) <= 1.0
    assert float(x.detach().std()) > 0
    if classes:  # the label reaches the image through the mapping network
        assert not torch.equal(model(z, torch.tensor([5, 5, 5, 5])), x)


def test_unknown_generator_is_refused():
    with pytest.raises(ConfigError, match="generator must be one of dcgan, style"):
        DCGANConfig(generator="stylegan3").validate()


def test_a_game_with_the_style_generator_trains():
    model, _, history = run_game(GANObjectiveConfig(), 6, conditional=True, model_kwargs={"generator": "style"})
    assert type(model.generator).__name__ == "StyleGenerator"
    assert all(math.isfinite(v) for row in history for v in row.values())
    assert history[-1]["mode_seeking_ratio"] > 0  # z reaches the images
