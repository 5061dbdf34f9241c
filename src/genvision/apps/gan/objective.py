"""The GAN game: losses, optimizers and the alternating D/G updates.

Goodfellow et al. (2014) train a generator G against a discriminator D on

    min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

with ``D(x) = sigmoid(logit)``. Every loss below is written on logits with
``softplus(t) = log(1 + e^t)``, the numerically stable form of the logs:

    -log D(x)       = -log sigmoid(l)     = softplus(-l)
    -log(1 - D(x))  = -log sigmoid(-l)    = softplus(l)

The recipe (:class:`GANRecipe`) is the dataclass that ``genvision train gan`` resolves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ...config import MAX_LOSS_WEIGHT, DataConfig, TrainConfig, check_optimizer, check_range
from ...data.augment import diff_augment, parse_policy
from ...errors import ConfigError
from ...models.gan import DCGANConfig
from ...registry import create_model
from ...runtime import model_device
from ...training.objective import DataInfo, Objective, StepContext, check_class_count, eval_mode, fit_config_to_data
from ...training.optim import fast_optimizer
from .ada import AdaptiveAugment

LOSSES = ("minimax", "nonsaturating", "hinge", "wgan-gp")


@dataclass
class GANObjectiveConfig:
    loss: str = "nonsaturating"  # minimax (saturating G loss, as in the game) | nonsaturating | hinge | wgan-gp
    lr_g: float = 2e-4  # Adam learning rate of G (DCGAN paper)
    lr_d: float = 2e-4  # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas; beta1 = 0.5 as in DCGAN (WGAN-GP uses (0.0, 0.9))
    gp_weight: float = 10.0  # gradient penalty weight lambda (wgan-gp only)
    d_steps: int = 1  # D updates per G update (on the same real batch); 5 is usual for wgan-gp
    diffaugment: str = ""  # "" = off, else a DiffAugment policy such as "color,translation,cutout"
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (minimax / nonsaturating only)
    # R1: (gamma / 2) E||grad_x D(x)||^2 on real images (Mescheder et al. 2018); 0 = off; None = 1 for a
    # conditional GAN (the measured best recipe, docs/BENCHMARKS.md), else 0
    r1_gamma: float | None = None
    r2_gamma: float = 0.0  # R2: the same zero-centred penalty on generated images; 0 = off
    reg_every: int = 16  # lazy regularisation (StyleGAN2): R1/R2 every k D steps, weighted by k
    balanced_labels: bool = True  # conditional: each batch's fake labels cycle through the classes
    mode_seeking: float | None = None  # weight of MSGAN's diversity term for G (Mao et al. 2019); None = 0.1 if conditional
    # ADA (Karras et al. 2020): augment what D sees with a probability p steered so that E[sign(D(real))]
    # stays at ada_target (the paper's 0.6); 0 = off. The ops are the diffaugment policy (default: all of them).
    ada_target: float = 0.0
    ada_kimg: float = 100.0  # thousand images over which p can move from 0 to 1 (the paper's 500 is for GPU runs)
    ada_interval: int = 4  # steps between adjustments of p

    def validate(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"gan loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        check_optimizer("objective", self.lr_g, self.betas, lr_name="lr_g")
        check_optimizer("objective", self.lr_d, lr_name="lr_d")
        check_range("objective.gp_weight", self.gp_weight, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.d_steps", self.d_steps, 1, 100)  # WGAN-GP uses 5; each is a full D update
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.label_smoothing and self.loss not in ("minimax", "nonsaturating"):
            raise ConfigError(f"label_smoothing applies to the minimax / nonsaturating losses, not {self.loss}")
        parse_policy(self.diffaugment)
        if self.r1_gamma is not None:
            check_range("objective.r1_gamma", self.r1_gamma, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.r2_gamma", self.r2_gamma, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.reg_every", self.reg_every, 1, 10_000)
        if self.mode_seeking is not None:
            check_range("objective.mode_seeking", self.mode_seeking, 0.0, MAX_LOSS_WEIGHT)
        check_range("objective.ada_target", self.ada_target, 0.0, 1.0)
        check_range("objective.ada_kimg", self.ada_kimg, 1e-3, 1e6)
        check_range("objective.ada_interval", self.ada_interval, 1, 10_000)


# The conditional recipe's defaults, chosen by benchmarks/gan_recipes.py on MNIST: without a diversity
# term a conditional DCGAN ignores z within each class (recall 0); R1 + mode seeking 0.1 keeps labels
# and diversity. Unconditional GANs keep the DCGAN recipe, which measured better without R1 there.
CONDITIONAL_DEFAULTS = {"r1_gamma": 1.0, "mode_seeking": 0.1}


def with_defaults(config: GANObjectiveConfig, conditional: bool) -> GANObjectiveConfig:
    """``config`` with its automatic (None) fields decided for a conditional or unconditional GAN."""
    fills = {name: (value if conditional and config.loss != "wgan-gp" else 0.0)
             for name, value in CONDITIONAL_DEFAULTS.items() if getattr(config, name) is None}
    return dataclasses.replace(config, **fills)


# --------------------------------------------------------------------------------------
# Losses (pure functions of logits / critic scores; each returns a scalar)


def d_loss_minimax(real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """D's side of the game, also used with the non-saturating G loss:

        L_D = E[-log D(x)] + E[-log(1 - D(G(z)))] = mean softplus(-real) + mean softplus(fake)

    With one-sided label smoothing s the real target is 1 - s:
    E[(1 - s) softplus(-real) + s softplus(real)].
    """
    real_term = F.softplus(-real_logits)
    if label_smoothing:
        real_term = (1.0 - label_smoothing) * real_term + label_smoothing * F.softplus(real_logits)
    return real_term.mean() + F.softplus(fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """The saturating G loss of the game, minimised by G:

        L_G = E[log(1 - D(G(z)))] = -mean softplus(fake)

    Its gradient vanishes when D confidently rejects fakes (D(G(z)) -> 0), which is why
    the non-saturating loss is the practical default.
    """
    return -F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_G = E[-log D(G(z))] = mean softplus(-fake) (Goodfellow et al. 2014, section 3)."""
    return F.softplus(-fake_logits).mean()


def d_loss_hinge(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """L_D = E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017; Miyato et al. 2018)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_loss_hinge(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(G(z))]."""
    return -fake_scores.mean()


def d_loss_wgan(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """Critic loss L_D = E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017); add the gradient penalty."""
    return fake_scores.mean() - real_scores.mean()


def g_loss_wgan(fake_scores: torch.Tensor) -> torch.Tensor:
    """L_G = -E[D(G(z))]."""
    return -fake_scores.mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     labels: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] at random
    interpolates x_hat = a x + (1 - a) G(z), a ~ U(0, 1) per sample.

    Computed in fp32 outside any autocast; ``create_graph=True`` so it trains D.
    """
    real, fake = real.detach().float(), fake.detach().float()
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)  # (B, 1, 1, 1)
    x_hat = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = discriminator(x_hat, labels)
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    # sqrt(sum g^2 + eps): finite gradient even where the input gradient is exactly zero
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(dim=1) + 1e-12)  # (B,)
    return (norm - 1.0).pow(2).mean()


def zero_centered_penalty(discriminator: nn.Module, images: torch.Tensor,
                          labels: torch.Tensor | None = None) -> torch.Tensor:
    """E[||grad_x D(x)||_2^2] at the given images: R1 on reals, R2 on fakes (Mescheder et al. 2018,
    "Which training methods for GANs do actually converge?"). Pushes D's gradient to zero on the
    data, which makes the game converge locally; StyleGAN2 and StudioGAN apply it lazily.

    Computed in fp32 outside any autocast; ``create_graph=True`` so it trains D.
    """
    x = images.detach().float().requires_grad_(True)
    with torch.autocast(device_type=x.device.type, enabled=False):
        scores = discriminator(x, labels)
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


def mode_seeking_ratio(fake: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """mean|G(z1) - G(z2)| / mean|z1 - z2| over the pairs (row i, row i + B/2) of a batch whose two
    halves share labels (MSGAN, Mao et al. 2019). G minimises 1 / ratio: a generator that ignores z
    for a class (conditional mode collapse) has ratio ~0 and pays for it."""
    half = fake.shape[0] // 2
    image_gap = (fake[:half].float() - fake[half:2 * half].float()).abs().mean()
    latent_gap = (z[:half] - z[half:2 * half]).abs().mean()
    return image_gap / latent_gap


D_LOSSES = {"minimax": d_loss_minimax, "nonsaturating": d_loss_minimax, "hinge": d_loss_hinge,
            "wgan-gp": d_loss_wgan}
G_LOSSES = {"minimax": g_loss_minimax, "nonsaturating": g_loss_nonsaturating, "hinge": g_loss_hinge,
            "wgan-gp": g_loss_wgan}


# --------------------------------------------------------------------------------------
# Fitting the model to the data, and the recipe




@dataclass
class GANRecipe:
    model: DCGANConfig = field(default_factory=DCGANConfig)  # channels/image_size/num_classes come from the data
    objective: GANObjectiveConfig = field(default_factory=GANObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=64))  # ~3 MNIST epochs
    data: DataConfig = field(default_factory=lambda: DataConfig(name="mnist"))  # 28 px; DCGAN takes 28 or 32
    conditional: bool | None = None  # class-conditional G and projection D; None: when the data has labels

    def validate(self) -> None:
        self.model.validate()
        self.objective.validate()
        if self.objective.loss == "wgan-gp" and self.model.discriminator_norm == "batch":
            raise ConfigError("loss=wgan-gp needs a D without BatchNorm (its penalty is per sample): "
                              "set model.d_norm=layer (or none, or model.spectral_norm=true)")


# --------------------------------------------------------------------------------------
# The objective


class GANObjective(Objective):
    """Alternating updates: ``d_steps`` D updates on (real, G(z).detach()), then one G update
    through the updated D on the last D step's fakes."""

    name = "gan"

    def __init__(self, model: nn.Module, config: GANObjectiveConfig, data: DataInfo):
        config.validate()
        config = with_defaults(config, model.num_classes > 0)
        super().__init__(model, config, data)
        self.conditional = self.uses_labels = model.num_classes > 0
        check_class_count(model, data)
        if config.loss == "wgan-gp" and any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                            for m in model.discriminator.modules()):
            raise ConfigError("loss=wgan-gp needs a D without BatchNorm: set model.d_norm=layer (or none)")
        self.d_loss_fn = D_LOSSES[config.loss]
        self.g_loss_fn = G_LOSSES[config.loss]
        self.use_gp = config.loss == "wgan-gp" and config.gp_weight > 0
        self.probabilities = config.loss in ("minimax", "nonsaturating")  # report sigmoid(logit), else raw scores
        self.ada = (AdaptiveAugment(config.diffaugment, config.ada_target, config.ada_kimg, config.ada_interval)
                    if config.ada_target else None)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        cfg = self.config
        return {"d": fast_optimizer(torch.optim.Adam, self.model.discriminator.parameters(), lr=cfg.lr_d,
                                    betas=cfg.betas),
                "g": fast_optimizer(torch.optim.Adam, self.model.generator.parameters(), lr=cfg.lr_g,
                                    betas=cfg.betas)}

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        if self.ada is not None:
            return self.ada(x)
        return diff_augment(x, self.config.diffaugment) if self.config.diffaugment else x

    def state_dict(self) -> dict:
        return {"ada": self.ada.state_dict()} if self.ada is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.ada is not None:
            self.ada.load_state_dict(state.get("ada", {}))

    def _fake_labels(self, n: int, device: torch.device) -> torch.Tensor | None:
        if not self.conditional:
            return None
        classes = self.model.config.num_classes
        if self.config.mode_seeking:  # the batch's two halves share labels: the pairs the diversity term compares
            return torch.arange(n, device=device) % max(n // 2, 1) % classes
        if self.config.balanced_labels:  # every class equally often in each batch: no sampling noise in class counts
            return torch.arange(n, device=device) % classes
        return torch.randint(0, classes, (n,), device=device)  # uniform over classes

    def _lazy_penalties(self, real_in, real_labels, fake_in, fake_labels, out) -> torch.Tensor:
        """R1 / R2 every ``reg_every`` steps, weighted by ``reg_every`` so the average strength is
        gamma / 2 per step (StyleGAN2's lazy regularisation: the same effect at a fraction of the
        double-backward cost). On the augmented images, as StyleGAN2-ADA does."""
        cfg, D = self.config, self.model.discriminator
        total = real_in.new_zeros(())
        if cfg.r1_gamma:
            r1 = zero_centered_penalty(D, real_in, real_labels)
            total = total + cfg.r1_gamma / 2 * cfg.reg_every * r1
            out["r1"] = r1.detach()
        if cfg.r2_gamma:
            r2 = zero_centered_penalty(D, fake_in, fake_labels)
            total = total + cfg.r2_gamma / 2 * cfg.reg_every * r2
            out["r2"] = r2.detach()
        return total

    def train_step(self, batch: tuple[torch.Tensor, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        images, labels = batch
        self.check_labels(labels)
        G, D, cfg = self.model.generator, self.model.discriminator, self.config
        B, device = images.shape[0], images.device
        real_labels = labels if self.conditional else None
        out: dict[str, torch.Tensor] = {}
        # Under gradient accumulation train_step runs once per micro-batch and phase: p moves once per
        # step (in its first pass) and D's verdicts are tallied only in the pass that accumulates D's update.
        first_pass = ctx.micro is None or (ctx.micro.phase == 0 and ctx.micro.index == 0)
        if self.ada is not None:
            if first_pass and ctx.step % self.ada.interval == 0:
                self.ada.adjust(ctx.dist, device)
            out.update(ada_p=torch.tensor(self.ada.p), ada_rt=torch.tensor(self.ada.last_rt))

        # --- D: maximise the game's value (minimise d_loss) with G fixed ----------------
        for d_step in range(cfg.d_steps):
            last = d_step == cfg.d_steps - 1
            # Drawn through ctx.draw: under torchrun each rank takes its rows of the global batch's noise.
            z = ctx.draw(lambda n: torch.randn(n, self.model.config.latent_dim, device=device), B)
            fake_labels = ctx.draw(lambda n: self._fake_labels(n, device), B) if self.conditional else None
            with ctx.autocast():
                # The last D step's fakes keep their graph and are reused for the G update, as in
                # the DCGAN reference loop: one generator forward per step instead of two.
                with torch.set_grad_enabled(last):
                    fake = G(z, fake_labels)  # (B, C, H, W)
                real_in, fake_in = self._augment(images), self._augment(fake.detach())
                real_logits = D(real_in, real_labels).float()  # (B,)
                fake_logits = D(fake_in, fake_labels).float()  # (B,)
            if self.ada is not None and last and (ctx.micro is None or ctx.micro.phase == cfg.d_steps - 1):
                self.ada.observe(real_logits)
            if self.probabilities:
                d_loss = self.d_loss_fn(real_logits, fake_logits, cfg.label_smoothing)
            else:
                d_loss = self.d_loss_fn(real_logits, fake_logits)
            if self.use_gp:
                gp = gradient_penalty(D, real_in, fake_in, real_labels)
                d_loss = d_loss + cfg.gp_weight * gp
                out["gp"] = gp.detach()
            if last and ctx.step % cfg.reg_every == 0:
                d_loss = d_loss + self._lazy_penalties(real_in, real_labels, fake_in, fake_labels, out)
            ctx.update(d_loss, "d")

        # --- G: fool the updated D (D's weights get no gradient: saves its weight-grad work) -
        D.requires_grad_(False)
        try:
            with ctx.autocast():
                g_logits = D(self._augment(fake), fake_labels).float()  # (B,)
            g_loss = self.g_loss_fn(g_logits)
            if cfg.mode_seeking:
                ratio = mode_seeking_ratio(fake, z)
                g_loss = g_loss + cfg.mode_seeking / (ratio + 1e-5)
                out["mode_seeking_ratio"] = ratio.detach()
            ctx.update(g_loss, "g")
        finally:
            D.requires_grad_(True)

        if self.probabilities:
            d_real, d_fake = torch.sigmoid(real_logits).mean(), torch.sigmoid(fake_logits).mean()
        else:
            d_real, d_fake = real_logits.mean(), fake_logits.mean()
        out.update(loss_d=d_loss.detach(), loss_g=g_loss.detach(), d_real=d_real.detach(), d_fake=d_fake.detach())
        return out

    def ema_target(self) -> nn.Module:
        return self.model.generator

    @torch.no_grad()
    def sample_grid(self, network: nn.Module, n: int, seed: int) -> torch.Tensor:
        """n images from a fixed seeded z (comparable across steps). Conditional: image i has
        class ``i % num_classes``, so a grid with ``nrow = num_classes`` shows one class per column."""
        device = model_device(network)
        gen = torch.Generator().manual_seed(seed)  # on the CPU: same z on every device
        z = torch.randn(n, self.model.config.latent_dim, generator=gen).to(device)
        labels = torch.arange(n, device=device) % self.model.config.num_classes if self.conditional else None
        with eval_mode(network):
            return network(z, labels).float()


# --------------------------------------------------------------------------------------
# The family entry point used by ``genvision train gan``

RECIPE = GANRecipe
DESCRIPTION = "DCGAN-style GANs: minimax / non-saturating / hinge / WGAN-GP, class conditioning, DiffAugment, ADA"


def build(recipe: GANRecipe, data: DataInfo) -> tuple[nn.Module, GANObjective]:
    if recipe.conditional is None:
        recipe.conditional = data.num_classes > 0
    recipe.objective = with_defaults(recipe.objective, recipe.conditional)
    if recipe.model.d_norm == "auto" and recipe.objective.r1_gamma and not recipe.model.spectral_norm:
        # R1 is a per-sample gradient penalty: batch statistics would couple the samples it is taken on
        recipe.model = dataclasses.replace(recipe.model, d_norm="none")
    recipe.model = fit_config_to_data(recipe.model, data, recipe.conditional)
    model = create_model("dcgan", recipe.model)
    return model, GANObjective(model, recipe.objective, data)


__all__ = [
    "RECIPE", "DESCRIPTION", "build",
    "GANObjectiveConfig", "GANObjective", "GANRecipe", "LOSSES",
    "d_loss_minimax", "g_loss_minimax", "g_loss_nonsaturating", "d_loss_hinge", "g_loss_hinge",
    "d_loss_wgan", "g_loss_wgan", "gradient_penalty", "zero_centered_penalty",
    "mode_seeking_ratio", "with_defaults", "CONDITIONAL_DEFAULTS",
]
