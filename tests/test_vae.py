"""The VAE family: loss terms against hand-computed values, the importance-weighted bound,
interpolation endpoints, class-conditional samples, the VQ codebook, save/load/resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from genvision import checkpoints as ckpt
from genvision.apps.vae import pipeline as tv
from genvision.sampling import interpolate_images
from genvision.apps.vae.objective import kl_weight
from genvision.errors import ConfigError
from genvision.models.vae import (
    VAE,
    VAEConfig,
    bernoulli_nll,
    discretized_logistic_nll,
    gaussian_kl,
    gaussian_nll,
)
from genvision.models.vqvae import VQVAE, VQVAEConfig
from genvision.registry import create_model
from genvision.workflows.train import train

TINY_TRAIN = ["data.name=mnist-mini", "data.limit=256", "train.batch_size=16", "train.log_every=2",
              "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=4", "objective.schedule=constant"]
TINY_VAE = ["model.arch=mlp", "model.hidden=32", "model.latent_dim=4"]
TINY_VQ = ["model.width=4", "model.blocks=0", "model.codebook_size=16", "model.code_dim=4"]


def _batch(n: int = 8, seed: int = 0, size: int = 28) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((n, 1, size, size), 0.3), generator=g) * 2 - 1


# --- loss terms -----------------------------------------------------------------------------


def test_kl_of_two_known_gaussians():
    # KL(N(mu, s^2) || N(0, 1)) = 0.5 (mu^2 + s^2 - 1 - log s^2), per dimension
    mu = torch.tensor([[0.0, 1.0, -2.0]])
    logvar = torch.tensor([[0.0, 0.0, 1.0]])
    expected = torch.tensor([[0.0, 0.5, 0.5 * (4.0 + math.e - 1.0 - 1.0)]])
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-6)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                   torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(gaussian_kl(mu, logvar), reference, atol=1e-6)


def test_bernoulli_log_likelihood_by_hand():
    logits = torch.tensor([0.0, 2.0, -1.0, 3.0]).view(1, 1, 2, 2)
    x = torch.tensor([1.0, 1.0, -1.0, -1.0]).view(1, 1, 2, 2)  # targets 1, 1, 0, 0
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    expected = -(math.log(0.5) + math.log(sig(2.0)) + math.log(1 - sig(-1.0)) + math.log(1 - sig(3.0)))
    assert bernoulli_nll(logits, x).item() == pytest.approx(expected, rel=1e-6)


def test_gaussian_and_discretized_logistic_likelihoods():
    mean, x = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    log_sigma = torch.tensor(-0.5)
    ref = -torch.distributions.Normal(mean, log_sigma.exp()).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(gaussian_nll(mean, log_sigma, x), ref, atol=1e-5)
    # the 256 bins of one sub-pixel carry all the probability mass
    grid = torch.linspace(-1, 1, 256).view(256, 1, 1, 1)
    for m, s in ((0.1, -2.0), (-0.95, -4.0), (0.7, 0.5)):
        nll = discretized_logistic_nll(torch.full_like(grid, m), torch.full_like(grid, s), grid)
        assert torch.exp(-nll).sum().item() == pytest.approx(1.0, abs=1e-4)


def test_forward_terms_and_sign_convention():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=16, latent_dim=3))
    x = _batch()
    torch.manual_seed(1)
    out = model(x, beta=2.0)
    assert out.recon.shape == out.kl.shape == (8,) and out.z.shape == (8, 3)
    assert out.reconstruction.shape == x.shape and out.reconstruction.abs().max() <= 1
    assert out.loss.item() == pytest.approx((out.recon + 2.0 * out.kl).mean().item(), rel=1e-6)  # minimised: -ELBO_b
    assert torch.allclose(out.elbo, -(out.recon + out.kl))
    assert torch.allclose(out.kl, gaussian_kl(out.mu, out.logvar).sum(1))
    # free bits: each dimension's batch-mean KL counts at least lambda
    torch.manual_seed(1)
    fb = model(x, beta=1.0, free_bits=5.0)
    assert fb.loss.item() == pytest.approx(fb.recon.mean().item() + 3 * 5.0, rel=1e-5)
    assert kl_weight(0, 1.0, 10) == pytest.approx(0.1) and kl_weight(50, 1.0, 10) == 1.0 and kl_weight(0, 4.0, 0) == 4


def test_importance_weighted_bound_is_above_the_elbo_and_tightens_with_k():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=32, latent_dim=4)).eval()
    x = _batch(32)

    def bound(k: int) -> float:
        torch.manual_seed(123)
        return model.importance_log_likelihood(x, k=k, chunk=7).mean().item()

    torch.manual_seed(123)
    elbo = torch.stack([model.elbo(x) for _ in range(20)]).mean().item()
    l1, l10, l100 = bound(1), bound(10), bound(100)
    assert l1 == pytest.approx(elbo, abs=2.0)  # L_1 is the ELBO
    assert elbo < l10 < l100
    assert l1 < l10


# --- the generator protocol, interpolation and traversal --------------------------------------


@pytest.mark.parametrize("name, config", [
    ("vae", VAEConfig(arch="mlp", hidden=16, latent_dim=4)),
    ("cvae", VAEConfig(arch="conv", width=4, latent_dim=4, num_classes=10)),
    ("vqvae", VQVAEConfig(width=4, blocks=0, codebook_size=16, code_dim=4)),
])
def test_interpolation_endpoints_reproduce_the_encoded_images(name, config):
    torch.manual_seed(0)
    model = create_model(name, config).eval()
    a, b = _batch(2)
    label = 3 if name == "cvae" else None
    frames = interpolate_images(model, a, b, 5, method="slerp", labels=label)
    assert frames.shape == (5, 1, 28, 28)
    recon = tv.reconstruct(model, torch.stack([a, b]), label)
    assert torch.allclose(frames[0], recon[0], atol=1e-5) and torch.allclose(frames[-1], recon[1], atol=1e-5)
    lerp = interpolate_images(model, a, b, 3, method="lerp", labels=label)
    assert torch.allclose(lerp[0], recon[0], atol=1e-5)


def test_traversal_rows_and_dimension_checks():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=16, latent_dim=6)).eval()
    grid = tv.traverse(model, _batch(1)[0], [0, 2, 5], span=2.0, steps=4)
    assert grid.shape == (12, 1, 28, 28)
    assert tv.parse_dims("0-2,5", 6) == [0, 1, 2, 5]
    for bad in ("3-9", "x", "4-1", "-1"):
        with pytest.raises(ConfigError, match="dims"):
            tv.parse_dims(bad, 6)


def test_temperature_scales_the_prior_latent():
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="mlp", hidden=16, latent_dim=4)).eval()
    z = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model.generate(z, temperature=0.5), model.generate(z * 0.5))
    with pytest.raises(ConfigError, match="temperature"):
        model.generate(z, temperature=0.0)


# --- VQ-VAE ---------------------------------------------------------------------------------


def test_vq_codebook_round_trip_and_ema_updates():
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(width=8, blocks=0, codebook_size=16, code_dim=4)).eval()
    x = _batch(4)
    tokens = model.encode(x)
    assert tokens.shape == (4, 7, 7) and tokens.dtype == torch.int64
    # codes map to themselves: token grid -> code vectors -> nearest codes
    book = model.quantizer.codebook
    assert torch.equal(model.quantizer.nearest(book), torch.arange(16))
    # encode -> decode through NumPy, as the CLI does, is the model's reconstruction
    array = tv.encode(model, x)
    assert array.dtype.name == "int64" and (array == tokens.numpy()).all()
    assert torch.allclose(tv.decode(model, array), model.reconstruct(x), atol=1e-6)
    with pytest.raises(ConfigError, match="token grids"):
        tv.decode(model, array.astype("float32"))
    with pytest.raises(ConfigError, match="tokens must lie"):
        model.decode(torch.full((1, 7, 7), 16))

    # training-mode forward: EMA moves the codebook, dead codes restart, stats are sane
    model.train()
    model.quantizer.ema_count[:8] = 0.0  # codes 0..7 are "dead"
    before = book.clone()
    out = model(x)
    assert not torch.equal(before, model.quantizer.codebook)
    assert (model.quantizer.ema_count[:8] >= 0.99).all()  # restarted on encoder outputs
    assert 1.0 <= out.perplexity.item() <= 16 and 0 < out.usage.item() <= 1
    assert model.prior_fitted


def test_vq_generation_needs_a_fitted_prior():
    model = VQVAE(VQVAEConfig(width=4, blocks=0, codebook_size=8, code_dim=4)).eval()
    with pytest.raises(ConfigError, match="no fitted token prior"):
        model.sample_latent(2)
    from genvision.data import load_dataset

    data = load_dataset("mnist-mini", split="test")
    probs = tv.fit_token_prior(model, data, batch_size=25, limit=50)
    assert torch.allclose(probs.sum(1), torch.ones(49), atol=1e-4)
    z = model.sample_latent(3, generator=torch.Generator().manual_seed(0))
    assert model.generate(z).shape == (3, 1, 28, 28)


# --- save / load / resume -------------------------------------------------------------------


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(ckpt.latest_checkpoint(run_dir / "checkpoints") / ckpt.WEIGHTS_FILE))


@pytest.mark.parametrize("family, extra", [
    ("vae", TINY_VAE + ["objective.kl_warmup_steps=3", "objective.free_bits=0.1"]),
    ("cvae", ["model.arch=conv", "model.width=4", "model.latent_dim=4"]),
    ("vqvae", TINY_VQ),
])
def test_save_load_and_exact_resume(tmp_path, family, extra):
    common = TINY_TRAIN + extra + [f"train.out_dir={tmp_path}"]
    straight = train(family, overrides=common + ["train.name=straight", "train.steps=8"], progress=False)
    half = train(family, overrides=common + ["train.name=split", "train.steps=4"], progress=False)
    resumed = train(family, resume=half.run_dir, overrides=["train.steps=8"], progress=False)
    assert resumed.step == 8
    a, b = _state(straight.run_dir), _state(resumed.run_dir)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    first = load_file(str(straight.run_dir / "checkpoints" / "step_00000004" / ckpt.WEIGHTS_FILE))
    assert any(not torch.equal(first[k], a[k]) for k in first)
    model = ckpt.load_pretrained(straight.run_dir, kind="vae")
    assert model.registry_name == family
    for key, value in model.state_dict().items():
        assert torch.equal(value, a[key]), key
    if family == "cvae":
        assert model.config.num_classes == 10


# --- conditional samples are of the requested class ---------------------------------------


@pytest.fixture(scope="module")
def trained_cvae(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("cvae")
    result = train("cvae", overrides=["data.name=mnist-mini", "model.arch=mlp", "model.hidden=256",
                                      "model.latent_dim=2", "train.batch_size=64", "train.steps=1000",
                                      "train.sample_every=0", "train.tensorboard=false", "train.ckpt_every=1000",
                                      "objective.lr=2e-3", f"train.out_dir={out}", "train.name=c"], progress=False)
    return ckpt.load_pretrained(result.run_dir, kind="vae")


def test_conditional_samples_are_classified_as_the_requested_class(trained_cvae):
    from genvision.sampling import generate
    from genvision.workflows.extractors import load_shipped_extractor

    extractor = load_shipped_extractor("mnist")
    correct = 0
    for c in range(10):
        images = generate(trained_cvae, 20, seed=c, class_label=c, temperature=0.8)
        probs = extractor(images).probs
        correct += int((probs.argmax(1) == c).sum())
    assert correct / 200 >= 0.7, correct  # ~0.83 measured; a 2-d latent leaves the class to the label


def test_same_style_other_class_edit(trained_cvae):
    from genvision.data import load_dataset
    from genvision.workflows.extractors import load_shipped_extractor

    data = load_dataset("mnist-mini", split="test")
    x, y = data.get_batch(torch.arange(50))
    extractor = load_shipped_extractor("mnist")
    target = (y + 1) % 10
    edited = tv.restyle(trained_cvae, x, y, target)
    assert (extractor(edited).probs.argmax(1) == target).float().mean() >= 0.5  # chance: 0.1; ~0.65 measured
    grid = tv.class_swap_grid(trained_cvae, x[:2], y[:2])
    assert grid.shape == (20, 1, 28, 28)
    with pytest.raises(ConfigError, match="conditional"):
        tv.reconstruct(trained_cvae, x[:2])
