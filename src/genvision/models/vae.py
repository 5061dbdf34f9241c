"""Variational autoencoders: beta-VAE and conditional VAE (one class, ``num_classes`` 0 or >= 1).

Read top to bottom: likelihoods, the config, the conv encoder/decoder, then :class:`VAE`.

The bound. For an image x with latent z, encoder q(z|x) = N(mu, diag(sigma^2)), prior
p(z) = N(0, I) and decoder likelihood p(x|z), the beta-ELBO (Higgins et al. 2017) is

    ELBO_beta(x) = E_q(z|x)[log p(x|z)] - beta * KL(q(z|x) || p(z))          (maximised)

**Sign convention: we minimise** ``loss = -ELBO_beta = recon + beta * kl`` where, per image,
in nats and summed over all pixels (and channels),

    recon = -log p(x|z)   (one reparameterised sample z = mu + sigma * eps)
    kl    = 0.5 * sum_d (mu_d^2 + sigma_d^2 - 1 - log sigma_d^2)

and the batch loss is the mean over images. beta = 1 is the plain VAE (Kingma & Welling 2014),
whose -ELBO upper-bounds -log p(x); bits/dim = nats / (D * ln 2) with D = C * H * W.

Likelihoods (``likelihood``), all on images x in [-1, 1]:

* ``bernoulli``: decoder logits l, target t = (x + 1) / 2; -log p = sum BCE(l, t). Exact for
  binarised data (t in {0, 1}); for grey levels it is the usual cross-entropy surrogate (not a
  normalised density), so only report it as an NLL on binarised data.
* ``gaussian``: N(x; mu, sigma^2) with one learned log-sigma per channel (the "sigma-VAE",
  Rybkin et al. 2021); ``gaussian-fixed``: sigma = ``sigma`` (so recon = MSE / (2 sigma^2) + const).
  Continuous densities on [-1, 1]; :func:`discrete_nll_offset` converts them to 8-bit bins.
* ``logistic``: discretised logistic per sub-pixel with 256 bins (Salimans et al. 2017, one
  mixture component), a proper likelihood of 8-bit data.

Conditioning (``num_classes`` > 0): the one-hot label is concatenated to the encoder's
flattened features and to z before the decoder, so ``decode(encode(x, y), y')`` keeps the
"style" in z and changes the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_range
from ..errors import ConfigError
from ..nn.blocks import ACTIVATIONS, ConvDecoder, ConvEncoder, mlp
from ..nn.checks import check_images
from ..registry import register_model

ARCHS = ("conv", "mlp")
LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-fixed", "logistic")
# image size -> number of stride-2 stages (28 -> 7, 32 -> 8, 64 -> 8)
_DOWNS = {28: 2, 32: 2, 64: 3}
MAX_BLOCKS = 64  # residual blocks per stage / hidden layers: deep nets here use a handful
# Decoder std in [-1, 1] pixel units: far below one 8-bit level (2/255) the loss is all
# quantisation noise and overflows in bf16; above 10 the decoder explains nothing.
MIN_SIGMA, MAX_SIGMA = 1e-4, 10.0
LOG2 = math.log(2.0)


# --------------------------------------------------------------------------------------
# Likelihoods: per-image negative log-likelihoods in nats, summed over pixels -> (B,)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log Bernoulli(t; sigmoid(logits)) summed per image, t = (x + 1) / 2 (x in [-1, 1])."""
    target = (x + 1.0) * 0.5
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def gaussian_nll(mean: torch.Tensor, log_sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log N(x; mean, exp(log_sigma)^2) summed per image; ``log_sigma`` broadcasts."""
    z = (x - mean) * torch.exp(-log_sigma)
    nll = 0.5 * z.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
    return nll.flatten(1).sum(1)


def discretized_logistic_nll(mean: torch.Tensor, log_scale: torch.Tensor, x: torch.Tensor,
                             bins: int = 256) -> torch.Tensor:
    """-log P(x) for x on the 8-bit grid of [-1, 1] under a logistic(mean, scale) discretised to
    ``bins`` bins of width 2 / (bins - 1); the end bins take the tails (Salimans et al. 2017)."""
    log_scale = log_scale.clamp(min=-7.0)
    half = 1.0 / (bins - 1)
    centred = x - mean
    inv_s = torch.exp(-log_scale)
    plus, minus = inv_s * (centred + half), inv_s * (centred - half)
    cdf_plus, cdf_minus = torch.sigmoid(plus), torch.sigmoid(minus)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus), for the x = -1 bin
    log_one_minus_cdf_min = -F.softplus(minus)  # log(1 - sigmoid(minus)), for the x = 1 bin
    mid = inv_s * centred
    # log pdf at the centre times the bin width: the stable fallback for tiny probabilities
    log_pdf_mid = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * half)
    prob = (cdf_plus - cdf_minus).clamp(min=1e-12)
    log_prob_mid = torch.where(cdf_plus - cdf_minus > 1e-5, torch.log(prob), log_pdf_mid)
    log_prob = torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_prob_mid))
    return -log_prob.flatten(1).sum(1)


def discrete_nll_offset(likelihood: str, num_dims: int) -> float:
    """Nats to add to a continuous NLL on [-1, 1] to get the NLL of 8-bit data (density times
    bin width 2/256 for each of ``num_dims`` values); 0 for bernoulli/logistic (already discrete)."""
    if likelihood in ("gaussian", "gaussian-fixed"):
        return -num_dims * math.log(2.0 / 256.0)
    return 0.0


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension (B, D) — sum for the image's KL."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def log_normal(z: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dimension (standard normal by default)."""
    if mu is None:
        return -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


# --------------------------------------------------------------------------------------
# Config


@dataclass
class VAEConfig:
    image_size: int = 28  # 28, 32 or 64 px; the recipe sets it from the dataset
    channels: int = 1  # 1 or 3; the recipe sets it from the dataset
    latent_dim: int = 32  # size of z
    arch: str = "conv"  # conv (ResNet-style conv encoder/decoder) | mlp (fully connected; far faster on CPUs)
    width: int = 32  # conv: channels of the first stage; doubled at each stride-2 stage
    blocks: int = 1  # conv: residual blocks per stage (encoder and decoder)
    hidden: int = 512  # mlp: units per hidden layer
    layers: int = 2  # mlp: hidden layers in the encoder and in the decoder
    activation: str = "elu"  # elu | gelu | silu | relu
    likelihood: str = "bernoulli"  # bernoulli (binarised / grey data) | gaussian | gaussian-fixed | logistic (RGB)
    sigma: float = 0.1  # decoder std of gaussian-fixed (in [-1, 1] units); the learned one starts here too
    num_classes: int = 0  # 0 = beta-VAE; >= 1 = conditional VAE (label into encoder and decoder)

    def validate(self) -> None:
        if self.image_size not in _DOWNS:
            raise ConfigError(f"vae image_size must be 28, 32 or 64, got {self.image_size} (set data.image_size)")
        if self.channels not in (1, 3):
            raise ConfigError(f"vae channels must be 1 or 3, got {self.channels}")
        if self.latent_dim < 1:
            raise ConfigError(f"vae latent_dim must be >= 1, got {self.latent_dim}")
        if self.width < 4 or self.blocks < 0:
            raise ConfigError(f"vae width must be >= 4 and blocks >= 0, got {self.width} and {self.blocks}")
        # Counts of modules are Python loops (even on the meta device): bound them before building.
        check_range("vae blocks", self.blocks, 0, MAX_BLOCKS)
        if self.arch not in ARCHS:
            raise ConfigError(f"vae arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.hidden < 1 or self.layers < 0:
            raise ConfigError(f"vae hidden must be >= 1 and layers >= 0, got {self.hidden} and {self.layers}")
        check_range("vae layers", self.layers, 0, MAX_BLOCKS)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"vae activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"vae likelihood must be one of {', '.join(LIKELIHOODS)}, got {self.likelihood!r}")
        check_range("vae sigma", self.sigma, MIN_SIGMA, MAX_SIGMA)
        if self.num_classes < 0:
            raise ConfigError(f"vae num_classes must be >= 0 (0 = unconditional), got {self.num_classes}")


def likelihood_channels(likelihood: str, channels: int) -> int:
    """Decoder output channels: one parameter map per channel, two (mean, log-scale) for logistic."""
    return 2 * channels if likelihood == "logistic" else channels


# --------------------------------------------------------------------------------------
# The model


@dataclass
class VAEOutput:
    """What :meth:`VAE.forward` returns. Per-image terms are (B,) in nats; ``loss`` is their
    batch mean of ``recon + beta * kl`` (the quantity minimised: -ELBO_beta)."""

    loss: torch.Tensor  # scalar: mean(recon + beta * kl_for_loss)
    recon: torch.Tensor  # (B,) -log p(x|z), one sample z
    kl: torch.Tensor  # (B,) KL(q(z|x) || p(z)) (before free bits)
    reconstruction: torch.Tensor  # (B, C, H, W) the decoder's mean image in [-1, 1]
    z: torch.Tensor  # (B, latent_dim) the sampled latent
    mu: torch.Tensor  # (B, latent_dim)
    logvar: torch.Tensor  # (B, latent_dim)

    @property
    def elbo(self) -> torch.Tensor:
        """(B,) the plain (beta = 1) ELBO in nats: -(recon + kl)."""
        return -(self.recon + self.kl)


@register_model("vae", kind="vae", config_cls=VAEConfig,
                tiny={"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4},
                description="beta-VAE: conv (ResNet-style) or MLP encoder-decoder, Bernoulli/Gaussian/logistic")
class VAE(nn.Module):
    """Beta-VAE, or a conditional VAE when ``num_classes`` > 0 (registered as "vae" and "cvae")."""
    is_vq = False  # latents are continuous vectors (callers check this, not the registry name)

    def __init__(self, config: VAEConfig):
        super().__init__()
        config.validate()
        self.config = config
        c = config
        out_channels = likelihood_channels(c.likelihood, c.channels)
        if c.arch == "conv":
            downs = _DOWNS[c.image_size]
            self.side = c.image_size // 2 ** downs  # 7 (28 px) or 8 (32, 64 px)
            self.encoder = ConvEncoder(c.channels, c.width, downs, c.blocks, c.activation)
            feat = self.encoder.out_channels * self.side * self.side
            self.to_posterior = nn.Linear(feat + c.num_classes, 2 * c.latent_dim)  # -> (mu, logvar)
            self.from_latent = nn.Linear(c.latent_dim + c.num_classes, feat)
            self.decoder = ConvDecoder(out_channels, c.width, downs, c.blocks, c.activation)
        else:
            pixels = c.image_size * c.image_size
            hidden = [c.hidden] * c.layers
            # encoder: flattened image -> hidden (the head adds the label); decoder: [z, label] -> params
            self.encoder = mlp([c.channels * pixels, *hidden], c.activation) if c.layers else nn.Identity()
            if c.layers:
                self.encoder.append(ACTIVATIONS[c.activation]())
            feat = c.hidden if c.layers else c.channels * pixels
            self.to_posterior = nn.Linear(feat + c.num_classes, 2 * c.latent_dim)
            self.from_latent = nn.Identity()
            self.decoder = mlp([c.latent_dim + c.num_classes, *hidden, out_channels * pixels], c.activation)
        if c.likelihood == "gaussian":
            self.log_sigma = nn.Parameter(torch.full((1, c.channels, 1, 1), math.log(c.sigma)))

    @property
    def num_dims(self) -> int:
        return self.config.channels * self.config.image_size ** 2

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        labels = torch.arange(batch) % c.num_classes if c.num_classes else None
        return torch.rand(batch, c.channels, c.image_size, c.image_size) * 2 - 1, labels

    # --- conditioning -----------------------------------------------------------------

    def _onehot(self, labels: torch.Tensor | None, n: int, device) -> torch.Tensor | None:
        k = self.config.num_classes
        if k == 0:
            return None
        if labels is None:
            raise ConfigError("this VAE is conditional: give class labels")
        return F.one_hot(labels.long().to(device), k).float()  # (B, K)

    # --- the two halves ---------------------------------------------------------------

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): (mu, logvar), each (B, latent_dim)."""
        check_images(x, channels=self.config.channels, size=self.config.image_size, who=self.registry_name)
        h = self.encoder(x.flatten(1) if self.config.arch == "mlp" else x).flatten(1)  # (B, features)
        onehot = self._onehot(labels, x.shape[0], x.device)
        if onehot is not None:
            h = torch.cat([h, onehot], dim=1)
        mu, logvar = self.to_posterior(h).float().chunk(2, dim=1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Likelihood parameters (B, C or 2C, H, W): logits, means, or (mean, log-scale)."""
        onehot = self._onehot(labels, z.shape[0], z.device)
        if onehot is not None:
            z = torch.cat([z, onehot.to(z.dtype)], dim=1)
        c = self.config
        if c.arch == "mlp":
            out = self.decoder(z)  # (B, out_channels * H * W)
            return out.view(z.shape[0], -1, c.image_size, c.image_size)  # (B, C or 2C, H, W)
        h = self.from_latent(z).view(z.shape[0], self.decoder.in_channels, self.side, self.side)  # (B, ch, s, s)
        return self.decoder(h)

    def mean_image(self, params: torch.Tensor) -> torch.Tensor:
        """The decoder's expected image in [-1, 1] from its likelihood parameters."""
        c = self.config
        if c.likelihood == "bernoulli":
            return torch.sigmoid(params.float()) * 2.0 - 1.0
        if c.likelihood == "logistic":
            return params[:, :c.channels].float().clamp(-1, 1)
        return params.float().clamp(-1, 1)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) per image (B,) in nats, computed in fp32."""
        c, params, x = self.config, params.float(), x.float()
        if c.likelihood == "bernoulli":
            return bernoulli_nll(params, x)
        if c.likelihood == "gaussian":
            return gaussian_nll(params, self.log_sigma.float(), x)
        if c.likelihood == "gaussian-fixed":
            return gaussian_nll(params, torch.tensor(math.log(c.sigma), device=x.device), x)
        return discretized_logistic_nll(params[:, :c.channels], params[:, c.channels:], x)

    # --- training forward -------------------------------------------------------------

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, beta: float = 1.0,
                free_bits: float = 0.0) -> VAEOutput:
        """-ELBO_beta on a batch (see the module docstring). ``free_bits`` (nats per latent
        dimension, Kingma et al. 2016) keeps each dimension's batch-mean KL from being pushed
        below it: the loss uses ``sum_d max(mean_b KL_bd, free_bits)``."""
        mu, logvar = self.encode(x, labels)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)  # reparameterisation
        params = self.decode(z, labels)
        recon = self.nll(params, x)  # (B,)
        kl_dims = gaussian_kl(mu, logvar)  # (B, latent_dim)
        kl = kl_dims.sum(1)
        if free_bits > 0:
            kl_loss = kl_dims.mean(0).clamp(min=free_bits).sum()
        else:
            kl_loss = kl.mean()
        loss = recon.mean() + beta * kl_loss
        return VAEOutput(loss=loss, recon=recon, kl=kl, reconstruction=self.mean_image(params), z=z, mu=mu,
                         logvar=logvar)

    # --- likelihood evaluation --------------------------------------------------------

    @torch.no_grad()
    def elbo(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) one-sample ELBO (beta = 1) in nats."""
        return self.forward(x, labels).elbo.double()

    @torch.no_grad()
    def importance_log_likelihood(self, x: torch.Tensor, labels: torch.Tensor | None = None, *, k: int = 500,
                                  chunk: int = 500) -> torch.Tensor:
        """(B,) the importance-weighted bound (Burda et al. 2016) in nats:

            log p(x) >= L_k = log (1/k) sum_i p(x, z_i) / q(z_i|x),   z_i ~ q(z|x)

        L_1 is the ELBO and L_k increases with k towards log p(x). The k samples are drawn
        ``chunk`` at a time (bounding memory at about B * chunk decoded images) and combined
        with a float64 logsumexp.
        """
        if k < 1 or chunk < 1:
            raise ConfigError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}")
        mu, logvar = self.encode(x, labels)
        B, D = mu.shape
        std = torch.exp(0.5 * logvar)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            eps = torch.randn(m, B, D, device=mu.device)
            z = mu.unsqueeze(0) + std.unsqueeze(0) * eps  # (m, B, D)
            log_q = log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0))  # (m, B)
            log_p_z = log_normal(z)  # (m, B)
            flat = z.reshape(m * B, D)
            lab = None if labels is None else labels.repeat(m)
            xs = x.repeat(m, *[1] * (x.dim() - 1))  # (m*B, C, H, W), sample-major like flat
            params = self.decode(flat, lab)
            log_px = -self.nll(params, xs).view(m, B)
            log_w.append((log_px + log_p_z - log_q).double())
        log_w = torch.cat(log_w, dim=0)  # (k, B)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    # --- the generator protocol (genvision.tasks.generate) ------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """z ~ N(0, I), (n, latent_dim)."""
        return torch.randn(n, self.config.latent_dim, generator=generator, device=device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, temperature: float = 1.0
                 ) -> torch.Tensor:
        """Decoder mean images in [-1, 1] for latents ``z`` scaled by ``temperature`` (<1 trades
        diversity for cleaner samples)."""
        if temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        return self.mean_image(self.decode(z * temperature, labels))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean of the posterior mean: images in [-1, 1]."""
        return self.decode_latents(self.image_latents(x, labels), labels)

    # --- the latent codec protocol: posterior means, which interpolations walk through ---------

    @torch.no_grad()
    def image_latents(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior means mu (B, latent_dim) of images in [-1, 1]."""
        mu, _ = self.encode(images, labels)
        return mu

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean images in [-1, 1] of latents (B, latent_dim)."""
        return self.mean_image(self.decode(latents, labels))


@register_model("cvae", kind="vae", config_cls=VAEConfig,
                tiny={"arch": "mlp", "hidden": 8, "layers": 1, "latent_dim": 4, "num_classes": 10},
                description="conditional VAE: the VAE with the class label into encoder and decoder")
class CVAE(VAE):
    """The conditional VAE: :class:`VAE` with ``num_classes`` > 0 (set from the dataset)."""
    def __init__(self, config: VAEConfig):
        if config.num_classes < 1:
            raise ConfigError("cvae needs num_classes >= 1 (a labelled dataset)")
        super().__init__(config)


__all__ = [
    "VAE", "CVAE", "VAEConfig", "VAEOutput", "LIKELIHOODS", "bernoulli_nll", "gaussian_nll",
    "discretized_logistic_nll", "gaussian_kl", "log_normal", "discrete_nll_offset", "likelihood_channels",
]
