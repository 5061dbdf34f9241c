"""GAN family: losses against hand-computed values, DCGAN shapes, DiffAugment, a short game."""

from __future__ import annotations

import math

import pytest
import torch

from genvision.apps.gan.objective import (
    GANObjective,
    GANObjectiveConfig,
    GANRecipe,
    d_loss_hinge,
    d_loss_minimax,
    d_loss_wgan,
    g_loss_hinge,
    g_loss_minimax,
    g_loss_nonsaturating,
    g_loss_wgan,
    gradient_penalty,
    mode_seeking_ratio,
    zero_centered_penalty,
)
from genvision.config import load_recipe
from genvision.data.augment import diff_augment
from genvision.errors import ConfigError
from genvision.models.gan import DCGAN, DCGANConfig, minibatch_stddev
from genvision.registry import create_model, list_models
from genvision.training.objective import DataInfo, StepContext, fit_config_to_data

LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75


# --- losses -----------------------------------------------------------------------------


def test_d_loss_minimax_by_hand():
    real = torch.tensor([0.0, LN3])  # D(x) = 0.5, 0.75
    fake = torch.tensor([0.0, LN3])  # D(G(z)) = 0.5, 0.75
    expected = (-math.log(0.5) - math.log(0.75)) / 2 + (-math.log(1 - 0.5) - math.log(1 - 0.75)) / 2
    assert d_loss_minimax(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_d_loss_label_smoothing_is_one_sided():
    real, fake = torch.tensor([LN3]), torch.tensor([LN3])
    s = 0.1
    expected = -(1 - s) * math.log(0.75) - s * math.log(0.25) - math.log(0.25)
    assert d_loss_minimax(real, fake, label_smoothing=s).item() == pytest.approx(expected, rel=1e-6)


def test_g_losses_by_hand():
    fake = torch.tensor([0.0, LN3])
    # the game's saturating loss: mean log(1 - D(G(z))), minimised by G
    assert g_loss_minimax(fake).item() == pytest.approx((math.log(0.5) + math.log(0.25)) / 2, rel=1e-6)
    assert g_loss_minimax(fake).item() == pytest.approx(torch.log(1 - torch.sigmoid(fake)).mean().item(), rel=1e-6)
    assert g_loss_nonsaturating(fake).item() == pytest.approx((-math.log(0.5) - math.log(0.75)) / 2, rel=1e-6)


def test_minimax_g_loss_saturates_and_nonsaturating_does_not():
    # D confidently rejects the fake: D(G(z)) = sigmoid(-12) ~ 6e-6
    grads = {}
    for name, fn in (("minimax", g_loss_minimax), ("nonsaturating", g_loss_nonsaturating)):
        logit = torch.tensor([-12.0], requires_grad=True)
        fn(logit).backward()
        grads[name] = logit.grad.abs().item()
    assert grads["minimax"] < 1e-4  # d/dl [-softplus(l)] = -sigmoid(l) -> 0
    assert grads["nonsaturating"] > 0.99  # d/dl softplus(-l) = -sigmoid(-l) -> -1
    # both losses agree on the direction: raise the fake logit
    logit = torch.tensor([-1.0], requires_grad=True)
    g_loss_minimax(logit).backward()
    assert logit.grad.item() < 0


def test_hinge_and_wgan_by_hand():
    real = torch.tensor([0.5, 2.0])
    fake = torch.tensor([-2.0, 0.5])
    # relu(1 - real) = [0.5, 0], relu(1 + fake) = [0, 1.5]
    assert d_loss_hinge(real, fake).item() == pytest.approx(0.25 + 0.75)
    assert g_loss_hinge(fake).item() == pytest.approx(0.75)
    assert d_loss_wgan(real, fake).item() == pytest.approx(-0.75 - 1.25)
    assert g_loss_wgan(fake).item() == pytest.approx(0.75)


class LinearCritic(torch.nn.Module):
    """D(x) = sum(w * x): its input gradient is w everywhere, with norm |c| * sqrt(C*H*W)."""

    def __init__(self, c: float, shape=(1, 4, 4)):
        super().__init__()
        self.w = torch.nn.Parameter(torch.full(shape, c))

    def forward(self, x, labels=None):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("c", [0.1, 0.25, 1.0])
def test_gradient_penalty_of_linear_critic(c):
    critic = LinearCritic(c)
    real, fake = torch.randn(5, 1, 4, 4), torch.randn(5, 1, 4, 4)
    gp = gradient_penalty(critic, real, fake)
    norm = c * math.sqrt(16)
    assert gp.item() == pytest.approx((norm - 1) ** 2, rel=1e-5, abs=1e-7)
    gp.backward()  # create_graph=True: the penalty trains the critic
    assert critic.w.grad is not None and torch.isfinite(critic.w.grad).all()
    if norm != 1.0:
        assert critic.w.grad.abs().sum() > 0


def test_gradient_penalty_is_fp32_inside_autocast():
    critic = LinearCritic(0.5)
    real, fake = torch.randn(3, 1, 4, 4).bfloat16(), torch.randn(3, 1, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(critic, real, fake)
    assert gp.dtype == torch.float32
    assert gp.item() == pytest.approx((0.5 * 4 - 1) ** 2, rel=1e-5)


class QuadraticCritic(torch.nn.Module):
    """D(x) = sum(w * x^2): grad_x D = 2 w x, so ||grad||^2 = 4 w^2 sum(x^2) per sample."""

    def __init__(self, w: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self, x, labels=None):
        return (self.w * x.pow(2)).flatten(1).sum(1)


def test_zero_centered_penalty_equals_hand_computed_gradient_norm():
    critic = QuadraticCritic(0.3)
    x = torch.randn(6, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    expected = (4 * 0.3**2 * x.pow(2).flatten(1).sum(1)).mean()  # E ||2 w x||^2
    penalty = zero_centered_penalty(critic, x)
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-5)
    penalty.backward()  # d/dw of E[4 w^2 sum x^2] = 8 w E[sum x^2]: the penalty trains D
    assert critic.w.grad.item() == pytest.approx(8 * 0.3 * x.pow(2).flatten(1).sum(1).mean().item(), rel=1e-5)
    assert x.grad is None  # the caller's images are not touched


def test_r1_applies_lazily_with_its_weight():
    cfg = GANObjectiveConfig(r1_gamma=2.0, r2_gamma=0.5, reg_every=4)
    _, _, history = run_game(cfg, 9, model_kwargs={"d_norm": "none"})
    for step, row in enumerate(history):
        assert ("r1" in row) == ("r2" in row) == (step % 4 == 0)
        assert all(math.isfinite(v) for v in row.values())
    # One D step, R1 on, lazy: the D loss carries exactly gamma / 2 * reg_every * R1 (+ R2 term).
    torch.manual_seed(0)
    data = DataInfo(channels=1, image_size=28, num_classes=0)
    model = DCGAN(fit_config_to_data(DCGANConfig(width=8, latent_dim=8, d_norm="none"), data, False))
    objective = GANObjective(model, GANObjectiveConfig(r1_gamma=3.0, reg_every=5), data)
    real = toy_data(4)[0]
    out: dict = {}
    extra = objective._lazy_penalties(real, None, real, None, out)
    assert extra.item() == pytest.approx(3.0 / 2 * 5 * out["r1"].item(), rel=1e-6)
    assert "r2" not in out


def test_mode_seeking_ratio_by_hand_and_pairs_share_labels():
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])  # pairs (0, 2) and (1, 3): |dz| mean 1
    fake = torch.zeros(4, 1, 2, 2)
    fake[2] = 0.6  # pair (0, 2) differs by 0.6 everywhere, pair (1, 3) not at all: mean |dG| = 0.3
    assert mode_seeking_ratio(fake, z).item() == pytest.approx(0.3 / 1.0)
    assert mode_seeking_ratio(fake[[0, 1, 0, 1]], z).item() == 0.0  # G ignores z: the term is maximal
    data = DataInfo(channels=1, image_size=28, num_classes=10)
    model = DCGAN(fit_config_to_data(DCGANConfig(width=8, latent_dim=8), data, True))
    labels = GANObjective(model, GANObjectiveConfig(mode_seeking=1.0), data)._fake_labels(64, torch.device("cpu"))
    assert torch.equal(labels[:32], labels[32:]) and set(labels.tolist()) == set(range(10))
    _, _, history = run_game(GANObjectiveConfig(mode_seeking=1.0), 3, conditional=True)
    assert all(math.isfinite(r["mode_seeking_ratio"]) and r["mode_seeking_ratio"] > 0 for r in history)


def test_balanced_fake_labels_cover_every_class_equally():
    data = DataInfo(channels=1, image_size=28, num_classes=10)
    model = DCGAN(fit_config_to_data(DCGANConfig(width=8, latent_dim=8), data, True))
    labels = GANObjective(model, GANObjectiveConfig(), data)._fake_labels(60, torch.device("cpu"))
    assert torch.equal(torch.bincount(labels, minlength=10), torch.full((10,), 6))
    random = GANObjective(model, GANObjectiveConfig(balanced_labels=False), data)._fake_labels(60, torch.device("cpu"))
    assert random.shape == (60,) and 0 <= int(random.min()) and int(random.max()) < 10


# --- DCGAN ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("num_classes,sn", [(0, False), (10, False), (0, True), (10, True)])
def test_dcgan_shapes(size, channels, num_classes, sn):
    model = DCGAN(DCGANConfig(image_size=size, channels=channels, width=8, latent_dim=16,
                              num_classes=num_classes, spectral_norm=sn))
    z = model.sample_latent(3)
    labels = torch.tensor([0, 4, 9]) if num_classes else None
    x = model.generate(z, labels)
    assert z.shape == (3, 16)
    assert x.shape == (3, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    scores = model.discriminator(x, labels)
    assert scores.shape == (3,)
    scores.sum().backward()
    assert all(p.grad is not None for p in model.discriminator.parameters())


def test_minibatch_stddev_by_hand_and_collapse_signal():
    x = torch.randn(6, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x, 4)  # 6 samples: groups of 3 (the largest divisor <= 4), members i, i + 2, i + 4
    assert out.shape == (6, 4, 2, 2) and torch.equal(out[:, :3], x)
    for i in range(6):
        members = x[[i % 2, i % 2 + 2, i % 2 + 4]]
        expected = members.std(dim=0, unbiased=False).mean()
        assert torch.allclose(out[i, 3], expected.expand(2, 2), atol=1e-6)
    collapsed = x[:1].expand(6, 3, 2, 2)  # a generator that ignores z: every sample alike
    assert float(minibatch_stddev(collapsed, 4)[:, 3].max()) < 1e-3
    assert minibatch_stddev(torch.randn(7, 2, 3, 3), 4).shape == (7, 3, 3, 3)  # prime batch: groups of 1


def test_discriminator_with_minibatch_std_shapes():
    model = DCGAN(DCGANConfig(image_size=32, channels=3, width=8, num_classes=4, minibatch_std=4, d_norm="none"))
    scores = model.discriminator(torch.randn(8, 3, 32, 32), torch.arange(8) % 4)
    assert scores.shape == (8,)
    assert model.discriminator.embed.weight.shape[1] == model.discriminator.head.in_features == (32 + 1) * 4 * 4


def test_dcgan_init_and_d_width():
    model = DCGAN(DCGANConfig(image_size=32, width=16, d_width=8))
    conv = model.generator.ups[0]
    assert abs(conv.weight.std().item() - 0.02) < 0.003
    assert model.discriminator.features[0].out_channels == 8


def test_seeded_latents_are_reproducible():
    model = DCGAN(DCGANConfig(width=8))
    a = model.sample_latent(4, generator=torch.Generator().manual_seed(3))
    b = model.sample_latent(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_conditional_generation_and_label_errors():
    model = DCGAN(DCGANConfig(image_size=28, width=8, num_classes=10)).eval()
    z = model.sample_latent(7)
    assert model.generate(z, torch.arange(7)).shape[0] == 7
    with pytest.raises(ConfigError):
        model.generate(z)  # labels are required
    with pytest.raises(ConfigError):
        model.generate(z, torch.full((7,), 10))  # out of range
    with pytest.raises(ConfigError):
        DCGAN(DCGANConfig(width=8)).generate(z[:, :100], torch.arange(7))  # unconditional


def test_registry():
    model = create_model("dcgan", {"image_size": 28, "width": 8, "num_classes": 10})
    assert isinstance(model, DCGAN) and model.config.num_classes == 10
    assert "dcgan" in [e.name for e in list_models(kind="gan")]


@pytest.mark.parametrize("bad", [
    {"image_size": 64}, {"channels": 2}, {"width": 4}, {"d_width": 4}, {"latent_dim": 0},
    {"num_classes": -1}, {"d_norm": "instance"}, {"minibatch_std": -1}, {"minibatch_std": 65},
])
def test_bad_model_config(bad):
    with pytest.raises(ConfigError):
        create_model("dcgan", bad)


@pytest.mark.parametrize("bad", [
    {"loss": "lsgan"}, {"d_steps": 0}, {"lr_g": 0.0}, {"betas": (0.5, 1.5)}, {"diffaugment": "color,rotate"},
    {"label_smoothing": 0.1, "loss": "hinge"}, {"label_smoothing": 1.0}, {"gp_weight": -1.0},
    {"r1_gamma": -0.1}, {"r2_gamma": float("inf")}, {"reg_every": 0}, {"mode_seeking": -1.0},
])
def test_bad_objective_config(bad):
    with pytest.raises(ConfigError):
        GANObjectiveConfig(**bad).validate()


# --- DiffAugment ------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_diffaugment_shape_grad_determinism(channels):
    x = (torch.rand(4, channels, 16, 16) * 2 - 1).requires_grad_(True)
    torch.manual_seed(0)
    y1 = diff_augment(x)
    torch.manual_seed(0)
    y2 = diff_augment(x)
    assert y1.shape == x.shape and y1.device == x.device
    assert torch.equal(y1, y2)
    y1.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_and_cutout_change_pixels():
    x = torch.rand(8, 1, 16, 16) + 0.5  # strictly positive, so zeros come from the ops
    torch.manual_seed(1)
    t = diff_augment(x, "translation")
    assert not torch.equal(t, x) and (t == 0).any()
    torch.manual_seed(1)
    c = diff_augment(x, "cutout")
    assert (c == 0).any() and (c == 0).float().mean() <= 0.25 + 1e-6  # at most an 8x8 square per image
    kept = c != 0
    assert torch.equal(c[kept], x[kept])


def test_translation_shifts_content():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    torch.manual_seed(0)
    y = diff_augment(x, "translation")
    assert torch.allclose(y.sum(dim=(1, 2, 3)), torch.ones(64))  # the dot moves by <= 2 px, never leaves
    positions = y.flatten(1).argmax(1)
    assert positions.unique().numel() > 1


def test_saturation_skipped_for_grey_and_unknown_policy():
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(0)
    from genvision.data.augment import saturation
    assert torch.equal(saturation(x), x)
    with pytest.raises(ConfigError):
        diff_augment(x, "color,zoom")
    assert torch.equal(diff_augment(x, ""), x)


# --- the game ---------------------------------------------------------------------------


def toy_data(n: int, size: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Bright vertical (class 0) or horizontal (class 1) bars on a dark background, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.full((n, 1, size, size), -1.0)
    pos = torch.randint(4, size - 4, (n,), generator=g)
    for i in range(n):
        if labels[i] == 0:
            images[i, 0, :, pos[i] - 2:pos[i] + 2] = 1.0
        else:
            images[i, 0, pos[i] - 2:pos[i] + 2, :] = 1.0
    return images, labels


def run_game(objective_cfg: GANObjectiveConfig, steps: int, *, conditional=False, model_kwargs=None,
             precision="fp32", batch=16):
    torch.manual_seed(0)
    data = DataInfo(channels=1, image_size=28, num_classes=2)
    cfg = fit_config_to_data(DCGANConfig(width=16, latent_dim=32, **(model_kwargs or {})), data, conditional)
    model = DCGAN(cfg)
    objective = GANObjective(model, objective_cfg, data)
    opts = objective.optimizers()
    images, labels = toy_data(256)
    history = []
    for step in range(steps):
        idx = torch.randint(0, 256, (batch,))
        ctx = StepContext(step=step, device=torch.device("cpu"), precision=precision, grad_clip=None,
                          optimizers=opts)
        out = objective.train_step((images[idx], labels[idx]), ctx)
        assert not ctx.skipped
        history.append({k: v.item() for k, v in out.items()})
    return model, objective, history


def test_short_training_run_is_finite_and_d_learns():
    model, objective, history = run_game(GANObjectiveConfig(), 60)
    for row in history:
        assert set(row) == {"loss_d", "loss_g", "d_real", "d_fake"}
        assert all(math.isfinite(v) for v in row.values())
    early = history[5:25]
    assert sum(r["d_real"] for r in early) / 20 > sum(r["d_fake"] for r in early) / 20 + 0.2
    grid = objective.sample_grid(objective.ema_target(), 8, seed=0)
    assert grid.shape == (8, 1, 28, 28)
    assert torch.equal(grid, objective.sample_grid(objective.ema_target(), 8, seed=0))


@pytest.mark.parametrize("objective_cfg,model_kwargs", [
    (GANObjectiveConfig(loss="minimax", label_smoothing=0.1), {}),
    (GANObjectiveConfig(loss="hinge", diffaugment="color,translation,cutout"), {"spectral_norm": True}),
    (GANObjectiveConfig(loss="wgan-gp", d_steps=2, betas=(0.0, 0.9)), {"d_norm": "layer"}),
])
def test_every_loss_trains_a_few_steps(objective_cfg, model_kwargs):
    _, _, history = run_game(objective_cfg, 4, model_kwargs=model_kwargs)
    assert all(math.isfinite(v) for row in history for v in row.values())
    if objective_cfg.loss == "wgan-gp":
        assert "gp" in history[-1]


def test_conditional_game_and_grid_labels():
    model, objective, history = run_game(GANObjectiveConfig(), 3, conditional=True, precision="bf16")
    assert objective.conditional and model.config.num_classes == 2
    assert all(math.isfinite(v) for row in history for v in row.values())
    grid = objective.sample_grid(model.generator, 6, seed=1)
    assert grid.shape == (6, 1, 28, 28) and grid.dtype == torch.float32


def test_conditional_model_rejects_unlabelled_data():
    unlabelled = DataInfo(channels=1, image_size=28, num_classes=0)
    with pytest.raises(ConfigError):
        fit_config_to_data(DCGANConfig(), unlabelled, conditional=True)
    model = DCGAN(DCGANConfig(image_size=28, width=8, num_classes=2))
    with pytest.raises(ConfigError):
        GANObjective(model, GANObjectiveConfig(), unlabelled)
    objective = GANObjective(model, GANObjectiveConfig(), DataInfo(channels=1, image_size=28, num_classes=2))
    ctx = StepContext(step=0, device=torch.device("cpu"), precision="fp32", grad_clip=None,
                      optimizers=objective.optimizers())
    with pytest.raises(ConfigError):
        objective.train_step((torch.zeros(4, 1, 28, 28), torch.full((4,), -1)), ctx)


def test_wgan_gp_refuses_batchnorm_discriminator():
    model = DCGAN(DCGANConfig(image_size=28, width=8))
    with pytest.raises(ConfigError):
        GANObjective(model, GANObjectiveConfig(loss="wgan-gp"), DataInfo(1, 28, 0))
    with pytest.raises(ConfigError):
        load_recipe(GANRecipe, overrides=["loss=wgan-gp"])
    recipe = load_recipe(GANRecipe, overrides=["loss=wgan-gp", "d_norm=layer"])
    assert recipe.objective.loss == "wgan-gp"


def test_fit_config_to_data():
    cfg = fit_config_to_data(DCGANConfig(), DataInfo(channels=3, image_size=32, num_classes=10), True)
    assert (cfg.channels, cfg.image_size, cfg.num_classes) == (3, 32, 10)
    cfg = fit_config_to_data(DCGANConfig(), DataInfo(channels=1, image_size=28, num_classes=10), False)
    assert (cfg.channels, cfg.image_size, cfg.num_classes) == (1, 28, 0)
    with pytest.raises(ConfigError):
        fit_config_to_data(DCGANConfig(), DataInfo(channels=3, image_size=64, num_classes=0), False)


def test_optimizers_and_recipe_defaults():
    model = DCGAN(DCGANConfig(width=8))
    opts = GANObjective(model, GANObjectiveConfig(lr_d=1e-4), DataInfo(1, 32, 0)).optimizers()
    assert set(opts) == {"d", "g"}
    assert opts["d"].param_groups[0]["lr"] == 1e-4 and opts["d"].param_groups[0]["betas"] == (0.5, 0.999)
    d_params = {id(p) for p in model.discriminator.parameters()}
    assert all(id(p) in d_params for p in opts["d"].param_groups[0]["params"])
    recipe = GANRecipe()
    recipe.validate()
    assert recipe.train.batch_size == 64 and recipe.data.name == "mnist" and not recipe.conditional
