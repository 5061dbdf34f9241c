"""VQ-VAE (van den Oord et al. 2017) with an EMA codebook, commitment loss and dead-code restarts.

Read top to bottom: the config, the :class:`VectorQuantizer`, then :class:`VQVAE`.

An encoder maps an image to a grid of vectors z_e (B, D, h, w); each is replaced by its nearest
codebook entry e_k (the *token* k), and a decoder maps the quantised grid z_q back to likelihood
parameters. We minimise, per image (nats, summed over pixels / grid cells),

    loss = -log p(x | z_q) + commitment * ||z_e - sg(z_q)||^2

with the straight-through estimator (gradients of z_q are copied to z_e). The codebook is not
trained by gradients: it follows exponential moving averages of the encoder vectors assigned to
each code (the paper's appendix; Razavi et al. 2019), with Laplace smoothing of the counts. A code
whose EMA assignment count falls below ``dead_code_threshold`` is *restarted* on a random encoder
vector of the current batch, so the codebook keeps being used. Usage (fraction of codes used in a
batch) and perplexity (exp of the entropy of the batch's code histogram) are reported.

Sampling needs a prior over token grids. This model ships the simplest honest one: a
**per-position categorical prior** p(tokens) = prod_(i,j) Cat(t_ij; pi_ij), its frequencies an
exponential moving average of the training batches' token grids (``prior_decay``), refittable
exactly on a whole dataset with :func:`genvision.tasks.vae.fit_token_prior`. Positions are
sampled independently, so samples are much worse than the reconstructions; the learned prior is
a MaskGIT transformer over the token grids (``genvision.models.maskgit``, ``genvision train maskgit
init=VQVAE``). Without a fitted prior, sampling is refused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import check_range
from ..errors import ConfigError
from ..nn.blocks import ACTIVATIONS, ConvDecoder, ConvEncoder
from ..nn.checks import check_images
from ..registry import register_model
from .vae import _DOWNS, MAX_BLOCKS, MAX_SIGMA, MIN_SIGMA, bernoulli_nll, gaussian_nll, likelihood_channels

VQ_LIKELIHOODS = ("bernoulli", "gaussian-fixed")


@dataclass
class VQVAEConfig:
    image_size: int = 28  # 28, 32 or 64 px; the recipe sets it from the dataset
    channels: int = 1  # 1 or 3; the recipe sets it from the dataset
    width: int = 32  # encoder/decoder channels of the first stage, doubled at each stride-2 stage
    blocks: int = 1  # residual blocks per stage
    activation: str = "elu"  # elu | gelu | silu | relu
    downs: int = 2  # stride-2 stages: the token grid is image_size / 2**downs (28 px -> 7x7)
    codebook_size: int = 256  # K, number of codes (token values 0..K-1)
    code_dim: int = 32  # D, size of each code vector
    commitment: float = 0.25  # weight of ||z_e - sg(z_q)||^2 (the paper's beta)
    ema_decay: float = 0.99  # codebook EMA decay
    dead_code_threshold: float = 0.5  # restart a code whose EMA assignment count per batch falls below this (0 = off)
    likelihood: str = "bernoulli"  # bernoulli (binarised / grey data) | gaussian-fixed (MSE; RGB)
    sigma: float = 0.1  # decoder std of gaussian-fixed, in [-1, 1] units
    prior_decay: float = 0.995  # EMA decay of the per-position token frequencies (the sampling prior)
    num_classes: int = 0  # kept for the generator protocol: VQ-VAEs here are unconditional

    def validate(self) -> None:
        if self.image_size not in _DOWNS:
            raise ConfigError(f"vqvae image_size must be 28, 32 or 64, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ConfigError(f"vqvae channels must be 1 or 3, got {self.channels}")
        # Bounded before 2 ** downs below: 6 halvings take 64 px (the largest size) to 1 px.
        check_range("vqvae downs", self.downs, 1, 6)
        if self.image_size % 2 ** self.downs:
            raise ConfigError(f"vqvae downs must be >= 1 and divide image_size by a power of two, got {self.downs}")
        if self.width < 4 or self.blocks < 0:
            raise ConfigError(f"vqvae width must be >= 4 and blocks >= 0, got {self.width} and {self.blocks}")
        check_range("vqvae blocks", self.blocks, 0, MAX_BLOCKS)
        if self.codebook_size < 2 or self.code_dim < 1:
            raise ConfigError(f"vqvae codebook_size must be >= 2 and code_dim >= 1, got "
                              f"{self.codebook_size} and {self.code_dim}")
        if self.commitment < 0 or not 0.0 < self.ema_decay < 1.0 or not 0.0 < self.prior_decay < 1.0:
            raise ConfigError("vqvae commitment must be >= 0 and ema_decay, prior_decay in (0, 1)")
        if self.dead_code_threshold < 0:
            raise ConfigError(f"vqvae dead_code_threshold must be >= 0, got {self.dead_code_threshold}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"vqvae activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.likelihood not in VQ_LIKELIHOODS:
            raise ConfigError(f"vqvae likelihood must be one of {', '.join(VQ_LIKELIHOODS)}, got {self.likelihood!r}")
        check_range("vqvae sigma", self.sigma, MIN_SIGMA, MAX_SIGMA)
        if self.num_classes != 0:
            raise ConfigError("vqvae is unconditional (num_classes must be 0)")

    @property
    def grid(self) -> int:
        return self.image_size // 2 ** self.downs


# --------------------------------------------------------------------------------------
# The quantiser


@dataclass
class Quantized:
    z_q: torch.Tensor  # (B, D, h, w) straight-through quantised vectors
    tokens: torch.Tensor  # (B, h, w) int64 code indices
    commitment: torch.Tensor  # (B,) sum over the grid of ||z_e - sg(z_q)||^2
    perplexity: torch.Tensor  # scalar: exp(entropy of this batch's code histogram)
    usage: torch.Tensor  # scalar: fraction of codes used in this batch


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation against an EMA-updated codebook (buffers, not parameters)."""
    def __init__(self, codebook_size: int, code_dim: int, *, decay: float, dead_code_threshold: float,
                 eps: float = 1e-5):
        super().__init__()
        self.K, self.D, self.decay, self.threshold, self.eps = codebook_size, code_dim, decay, dead_code_threshold, eps
        codebook = torch.randn(codebook_size, code_dim) / math.sqrt(code_dim)
        self.register_buffer("codebook", codebook)  # (K, D)
        self.register_buffer("ema_count", torch.ones(codebook_size))  # (K,) EMA of assignments per batch
        self.register_buffer("ema_sum", codebook.clone())  # (K, D) EMA of the assigned vectors' sums

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Indices (N,) of the nearest codes to ``flat`` (N, D): argmin ||f||^2 - 2 f.e + ||e||^2."""
        book = self.codebook
        dist = flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ book.t() + book.pow(2).sum(1).unsqueeze(0)  # (N, K)
        return dist.argmin(dim=1)

    def lookup(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w) -> code vectors (B, D, h, w)."""
        return F.embedding(tokens, self.codebook).permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        counts = torch.bincount(idx, minlength=self.K).to(flat.dtype)  # (K,)
        sums = torch.zeros_like(self.ema_sum).index_add_(0, idx, flat)  # (K, D)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.K * self.eps) * total  # Laplace smoothing
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        if self.threshold > 0:
            dead = self.ema_count < self.threshold  # (K,)
            n_dead = int(dead.sum())
            if n_dead:
                # Restart dead codes on random encoder outputs of this batch (torch's global RNG,
                # which the trainer checkpoints, so resume stays exact).
                pick = torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)
                fresh = flat[pick]
                self.codebook[dead] = fresh
                self.ema_sum[dead] = fresh
                self.ema_count[dead] = 1.0

    def forward(self, z_e: torch.Tensor) -> Quantized:
        B, D, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, D).float()  # (B*h*w, D)
        idx = self.nearest(flat)  # (B*h*w,)
        if self.training:
            self._ema_update(flat.detach(), idx)
        z_q = self.lookup(idx.view(B, h, w)).to(z_e.dtype)  # (B, D, h, w)
        commitment = (z_e.float() - z_q.float().detach()).pow(2).flatten(1).sum(1)  # (B,)
        z_q = z_e + (z_q - z_e).detach()  # straight-through estimator
        with torch.no_grad():
            probs = torch.bincount(idx, minlength=self.K).float() / idx.numel()
            entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
            perplexity, usage = entropy.exp(), (probs > 0).float().mean()
        return Quantized(z_q, idx.view(B, h, w), commitment, perplexity, usage)


# --------------------------------------------------------------------------------------
# The model


@dataclass
class VQVAEOutput:
    """What :meth:`VQVAE.forward` returns (per-image terms (B,) in nats / squared units)."""
    loss: torch.Tensor  # scalar: mean(recon + commitment_weight * commitment)
    recon: torch.Tensor  # (B,) -log p(x | z_q)
    commitment: torch.Tensor  # (B,) ||z_e - sg(z_q)||^2 summed over the grid
    reconstruction: torch.Tensor  # (B, C, H, W) decoder mean in [-1, 1]
    z: torch.Tensor  # (B, h, w) tokens
    perplexity: torch.Tensor  # scalar
    usage: torch.Tensor  # scalar, fraction of codes used in the batch


@register_model("vqvae", kind="vae", config_cls=VQVAEConfig,
                tiny={"width": 4, "blocks": 0, "codebook_size": 8, "code_dim": 4},
                description="VQ-VAE: EMA codebook, commitment loss, dead-code restarts, integer token grids")
class VQVAE(nn.Module):
    """VQ-VAE with an EMA codebook and a per-position categorical token prior for sampling."""
    is_vq = True  # latents are integer token grids (callers check this, not the registry name)

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.encoder = ConvEncoder(c.channels, c.width, c.downs, c.blocks, c.activation)
        self.pre_quant = nn.Conv2d(self.encoder.out_channels, c.code_dim, 1)
        self.quantizer = VectorQuantizer(c.codebook_size, c.code_dim, decay=c.ema_decay,
                                         dead_code_threshold=c.dead_code_threshold)
        self.post_quant = nn.Conv2d(c.code_dim, self.encoder.out_channels, 1)
        self.decoder = ConvDecoder(likelihood_channels(c.likelihood, c.channels), c.width, c.downs, c.blocks,
                                   c.activation)
        g = c.grid
        # The sampling prior: per-position token frequencies (h*w, K) and the number of batches seen.
        self.register_buffer("prior_probs", torch.full((g * g, c.codebook_size), 1.0 / c.codebook_size))
        self.register_buffer("prior_batches", torch.zeros(()))

    @property
    def num_dims(self) -> int:
        return self.config.channels * self.config.image_size ** 2

    @property
    def num_classes(self) -> int:
        return 0  # unconditional

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor]:
        c = self.config
        return (torch.rand(batch, c.channels, c.image_size, c.image_size) * 2 - 1,)

    # --- likelihood -------------------------------------------------------------------

    def mean_image(self, params: torch.Tensor) -> torch.Tensor:
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(params.float()) * 2.0 - 1.0
        return params.float().clamp(-1, 1)

    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        params, x = params.float(), x.float()
        if self.config.likelihood == "bernoulli":
            return bernoulli_nll(params, x)
        return gaussian_nll(params, torch.tensor(math.log(self.config.sigma), device=x.device), x)

    # --- encode / decode --------------------------------------------------------------

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        """z_e (B, D, h, w) before quantisation."""
        check_images(x, channels=self.config.channels, size=self.config.image_size, who="vqvae")
        return self.pre_quant(self.encoder(x))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> integer token grids (B, h, w)."""
        z_e = self.encode_continuous(x)
        B, D, h, w = z_e.shape
        return self.quantizer.nearest(z_e.permute(0, 2, 3, 1).reshape(-1, D).float()).view(B, h, w)

    def decode_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Likelihood parameters from a (quantised or not) latent grid (B, D, h, w)."""
        return self.decoder(self.post_quant(z))

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token grids (B, h, w) -> images in [-1, 1]."""
        tokens = tokens.long()
        if tokens.dim() != 3 or tokens.shape[1:] != (self.config.grid, self.config.grid):
            raise ConfigError(f"token grids must have shape (N, {self.config.grid}, {self.config.grid}), "
                              f"got {tuple(tokens.shape)}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.config.codebook_size):
            raise ConfigError(f"tokens must lie in 0..{self.config.codebook_size - 1}")
        return self.mean_image(self.decode_latent(self.quantizer.lookup(tokens.to(self.quantizer.codebook.device))))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(self.encode(x))

    # --- training forward -------------------------------------------------------------

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> VQVAEOutput:
        q = self.quantizer(self.encode_continuous(x))
        params = self.decode_latent(q.z_q)
        recon = self.nll(params, x)  # (B,)
        loss = recon.mean() + self.config.commitment * q.commitment.mean()
        if self.training:
            self._update_prior(q.tokens)
        return VQVAEOutput(loss=loss, recon=recon, commitment=q.commitment, reconstruction=self.mean_image(params),
                           z=q.tokens, perplexity=q.perplexity, usage=q.usage)

    # --- the token prior --------------------------------------------------------------

    @torch.no_grad()
    def token_frequencies(self, tokens: torch.Tensor) -> torch.Tensor:
        """Per-position code frequencies (h*w, K) of a batch of token grids (B, h, w)."""
        B = tokens.shape[0]
        flat = tokens.reshape(B, -1)  # (B, h*w)
        onehot = F.one_hot(flat, self.config.codebook_size).float()  # (B, h*w, K)
        return onehot.mean(0)

    @torch.no_grad()
    def _update_prior(self, tokens: torch.Tensor) -> None:
        freq = self.token_frequencies(tokens)
        # decay ramps as in the trainer's EMA so the first batches are not swamped by the uniform start
        decay = min(self.config.prior_decay, (1.0 + float(self.prior_batches)) / (10.0 + float(self.prior_batches)))
        self.prior_probs.mul_(decay).add_(freq, alpha=1 - decay)
        self.prior_batches.add_(1)

    @property
    def prior_fitted(self) -> bool:
        return float(self.prior_batches) > 0

    def _require_prior(self) -> None:
        if not self.prior_fitted:
            raise ConfigError("this VQ-VAE has no fitted token prior, so it cannot sample: train it "
                              "(the prior is fitted during training) or run genvision.tasks.vae.fit_token_prior")

    # --- the generator protocol (genvision.tasks.generate) ------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Code vectors (n, D, h, w) of token grids drawn from the per-position categorical prior."""
        self._require_prior()
        probs = self.prior_probs.detach().float().cpu().clamp_min(0)  # (h*w, K)
        g = self.config.grid
        flat = torch.multinomial(probs.repeat(n, 1), 1, replacement=True, generator=generator)  # (n*h*w, 1)
        tokens = flat.view(n, g, g)
        return self.quantizer.lookup(tokens.to(self.quantizer.codebook.device)).cpu().to(device or "cpu")

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, temperature: float = 1.0
                 ) -> torch.Tensor:
        """Decode code-vector grids (n, D, h, w) (from :meth:`sample_latent`, or interpolations of
        encoded grids) to images in [-1, 1]. Temperature is not defined for this prior."""
        if temperature != 1.0:
            raise ConfigError("temperature is not supported for VQ-VAE samples (per-position categorical prior)")
        return self.mean_image(self.decode_latent(z.to(self.quantizer.codebook.device)))

    @torch.no_grad()
    # --- the latent codec protocol: code-vector grids, which interpolations walk through --------

    @torch.no_grad()
    def image_latents(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The quantised code-vector grid (B, D, h, w) of images."""
        if labels is not None:
            raise ConfigError("a VQ-VAE is unconditional; drop --class")
        return self.quantizer.lookup(self.encode(images))

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder mean images in [-1, 1] of code-vector grids (B, D, h, w)."""
        return self.generate(latents)


__all__ = ["VQVAE", "VQVAEConfig", "VQVAEOutput", "VectorQuantizer", "Quantized", "VQ_LIKELIHOODS"]
