"""Diffusion Transformer (Peebles & Xie 2023) as a velocity field for flow matching.

Read top to bottom: the config, the adaLN-Zero block, the final layer, then the registered
:class:`DiT` with its samplers.

The network ``v(x_t, t, y)`` predicts the velocity of the straight path between noise and
data (rectified flow; ``genvision.processes.flow`` holds the convention, the loss and the samplers):

    x_t = (1 - t) x0 + t x1,   x0 ~ N(0, I) (noise, t = 0),   x1 = data (t = 1),   v* = x1 - x0

* patchify: (B, C, S, S) -> (B, N, dim) tokens (N = (S / p)^2) + fixed 2-D sin-cos positions;
* conditioning c = embed(t) + embed(y) (y = ``num_classes`` is the *null* class used for
  classifier-free guidance), fed to every block through adaLN-Zero: LayerNorm without affine
  parameters, then ``x * (1 + scale(c)) + shift(c)``, and the residual branch multiplied by a
  ``gate(c)``; the modulation layers start at zero, so every block starts as the identity;
* final layer: adaLN-modulated LayerNorm, Linear to p*p*C (zero-initialised), unpatchify.

Sampling integrates dx/dt = v from t = 0 (noise) to t = 1 (data) with ``processes.flow.integrate``
(Euler, Heun or midpoint); with guidance scale s the field is ``v_null + s (v_y - v_null)``.

**Latent DiT** (``vqvae`` set; the DiT paper's own setting, with a VQ-VAE in place of SD's VAE): the
flow runs in a frozen VQ-VAE's continuous latent space, ``x1 = latent_scale * z_e(image)`` of shape
(code_dim, h, w); ``generate`` snaps the sampled latents to the nearest codes and decodes them. The
VQ-VAE is a frozen submodule, so one checkpoint holds everything, as for the MaskGIT prior.
``image_size`` and ``channels`` stay the image's (what generation and evaluation read); the field's
own shape is ``config.field_shape()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, build_dataclass, check_range
from ..errors import ConfigError
from ..nn.attention import MLP, SelfAttention
from ..nn.checks import check_images
from ..nn.embeddings import PatchEmbed, TimestepEmbedder, check_patch_grid, patchify, sincos_2d, unpatchify
from ..processes.flow import SAMPLERS, check_sampling, integrate
from ..registry import register_model
from ..runtime import model_device
from .vqvae import VQVAE, VQVAEConfig

MAX_DEPTH = 1024  # DiT-XL has 28 blocks
MAX_MLP_RATIO = 64.0  # DiT uses 4
MAX_SAMPLE_STEPS = 10_000  # flow sampling saturates long before; 1000 is the DDPM convention
MAX_CFG_SCALE = 100.0
PREDICTIONS = ("velocity", "data")
# x-prediction turns x1_hat into a velocity by dividing by the remaining noise 1 - t; JiT (Li & He 2025)
# clips it at 0.05 so the last steps do not amplify the head's error twentyfold and more.
MIN_NOISE_LEVEL = 0.05


@dataclass
class DiTConfig:
    image_size: int = 28  # square input side; the recipe sets it from the dataset
    channels: int = 1  # 1 or 3; the recipe sets it from the dataset
    num_classes: int = 10  # 0 = unconditional; the recipe sets it from the dataset (conditional=true)
    patch_size: int = 2  # must divide image_size; 28 / 2 -> 14 x 14 = 196 tokens
    dim: int = 192  # token width
    depth: int = 6  # DiT blocks
    heads: int = 6  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * dim
    sample_steps: int = 20  # default number of integration steps for generate()
    sampler: str = "heun"  # default integrator: euler | heun (2 evaluations/step) | midpoint (2 evaluations/step)
    cfg_scale: float = 1.0  # default classifier-free guidance scale (1 = plain conditional sampling)
    prediction: str = "velocity"  # what the head predicts: velocity (x1 - x0) | data (x1; forward returns its velocity)
    guidance_folded: float = 0.0  # > 0: a few-step student with this guidance scale baked in (genvision train dit-distill)
    vqvae: dict[str, Any] = field(default_factory=dict)  # latent DiT: the frozen VQ-VAE's config (the recipe copies it)
    latent_scale: float = 1.0  # latent DiT: x1 = latent_scale * z_e, so the data end has about unit variance

    def vqvae_config(self) -> VQVAEConfig | None:
        if not self.vqvae:
            return None
        try:
            return build_dataclass(VQVAEConfig, dict(self.vqvae), "vqvae")
        except ConfigError as exc:
            raise ConfigError(f"dit vqvae: {exc}") from None

    def field_shape(self) -> tuple[int, int]:
        """(channels, side) of what the flow runs on: the image, or a latent DiT's (code_dim, grid)."""
        vq = self.vqvae_config()
        return (vq.code_dim, vq.grid) if vq is not None else (self.channels, self.image_size)

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"dit channels must be 1 or 3, got {self.channels}")
        check_range("dit image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        vq = self.vqvae_config()
        if vq is not None and (vq.channels, vq.image_size) != (self.channels, self.image_size):
            raise ConfigError(f"dit vqvae takes {vq.channels}-channel {vq.image_size} px images, the DiT "
                              f"{self.channels}-channel {self.image_size} px ones")
        check_range("dit latent_scale", self.latent_scale, 0.0, 1e6, low_open=True)
        check_patch_grid(self.field_shape()[1], self.patch_size, "dit")
        if self.num_classes < 0:
            raise ConfigError(f"dit num_classes must be >= 0, got {self.num_classes}")
        if self.dim < 4 or self.dim % 4 or self.heads < 1 or self.dim % self.heads:
            raise ConfigError(f"dit dim ({self.dim}) must be a multiple of 4 and divisible by heads ({self.heads})")
        # Depth is a Python loop of modules (even on the meta device): bound it before building.
        check_range("dit depth", self.depth, 1, MAX_DEPTH)
        # The MLP's hidden width is int(mlp_ratio * dim): it must be at least one unit.
        check_range("dit mlp_ratio", self.mlp_ratio, 0.0, MAX_MLP_RATIO, low_open=True)
        if int(self.mlp_ratio * self.dim) < 1:
            raise ConfigError(f"dit mlp_ratio * dim must be >= 1 (the MLP's width), got {self.mlp_ratio} * {self.dim}")
        # The sampling defaults, named as config keys (check_sampling names the CLI flags).
        check_range("dit sample_steps", self.sample_steps, 1, MAX_SAMPLE_STEPS)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"dit sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        # Guidance extrapolates by (cfg - 1) times the class signal; far past 20 images saturate.
        check_range("dit cfg_scale", self.cfg_scale, 0.0, MAX_CFG_SCALE)
        if self.prediction not in PREDICTIONS:
            raise ConfigError(f"dit prediction must be one of {', '.join(PREDICTIONS)}, got {self.prediction!r}")
        check_range("dit guidance_folded", self.guidance_folded, 0.0, MAX_CFG_SCALE)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(B, N, D) tokens, (B, D) shift and scale -> x * (1 + scale) + shift, per sample."""
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Transformer block with adaLN-Zero conditioning on c (B, dim)."""
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, heads=heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=1)  # 6 x (B, dim)
        x = x + gate1[:, None] * self.attn(modulate(self.norm1(x), shift1, scale1)).tokens
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class FinalLayer(nn.Module):
    """(B, N, dim) -> (B, N, p*p*C) with an adaLN-modulated LayerNorm."""
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c).chunk(2, dim=1)  # 2 x (B, dim)
        return self.linear(modulate(self.norm(x), shift, scale))


@register_model("dit", kind="diffusion", config_cls=DiTConfig,
                tiny={"image_size": 8, "patch_size": 4, "dim": 8, "depth": 1, "heads": 2, "num_classes": 3})
class DiT(nn.Module):
    """Diffusion Transformer (adaLN-Zero) predicting flow-matching velocities; class-conditional with CFG."""
    def __init__(self, config: DiTConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        self.field_channels, self.field_size = c.field_shape()
        self.grid = self.field_size // c.patch_size
        self.patch_embed = PatchEmbed(in_channels=self.field_channels, dim=c.dim, patch_size=c.patch_size)
        self.register_buffer("pos_embed", sincos_2d(self.grid, self.grid, c.dim)[None], persistent=False)
        self.t_embed = TimestepEmbedder(c.dim)
        # num_classes + 1 rows: the last one is the null class (label dropout / unconditional branch).
        self.y_embed = nn.Embedding(c.num_classes + 1, c.dim) if c.num_classes > 0 else None
        self.blocks = nn.ModuleList([DiTBlock(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.final = FinalLayer(c.dim, c.patch_size ** 2 * self.field_channels)
        self._init_weights()
        vq = c.vqvae_config()
        # Built last so the DiT's initial weights do not depend on the VQ-VAE; frozen, always in eval.
        self.vqvae = VQVAE(vq).requires_grad_(False).eval() if vq is not None else None

    def train(self, mode: bool = True) -> DiT:
        super().train(mode)
        if self.vqvae is not None:
            self.vqvae.eval()  # frozen: its codebook EMA and token-prior updates must never run
        return self

    @property
    def latent_space(self) -> bool:
        """True for a latent DiT: the field runs on VQ-VAE latents, not pixels."""
        return self.vqvae is not None

    @torch.no_grad()
    def to_field(self, images: torch.Tensor) -> torch.Tensor:
        """Training data for the flow: the images themselves, or a latent DiT's scaled latents (B, D, h, w)."""
        if self.vqvae is None:
            return images
        return self.vqvae.encode_continuous(images.float()) * self.config.latent_scale

    @torch.no_grad()
    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        """The flow's end points as images in [-1, 1]: clamped, or a latent DiT's decoded nearest codes."""
        if self.vqvae is None:
            return x.clamp(-1, 1)
        z = x.float() / self.config.latent_scale  # (B, D, h, w)
        B, D, h, w = z.shape
        tokens = self.vqvae.quantizer.nearest(z.permute(0, 2, 3, 1).reshape(-1, D)).view(B, h, w)  # (B, h, w)
        return self.vqvae.decode(tokens)

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self.config
        labels = torch.arange(batch) % c.num_classes if c.num_classes else None
        return torch.randn(batch, self.field_channels, self.field_size, self.field_size), torch.rand(batch), labels

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        for layer in self.t_embed.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.normal_(layer.weight, std=0.02)
        if self.y_embed is not None:
            nn.init.normal_(self.y_embed.weight, std=0.02)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        nn.init.zeros_(self.final.modulation[-1].weight)
        nn.init.zeros_(self.final.modulation[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)

    # --- the velocity field ---------------------------------------------------------------

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity (B, C, S, S) at points x (B, C, S, S), times t (B,) in [0, 1] and labels (B,)
        in 0..num_classes (num_classes = null class; None = all null).

        ``keep`` (B, K) token indices (training with fewer tokens, as MaskDiT drops them): the blocks see
        only those tokens, and the velocity comes back per kept patch, (B, K, p*p*C) in patchify order."""
        check_images(x, channels=self.field_channels, size=self.field_size, who="dit")
        c = self.t_embed(t.to(x.dtype).expand(x.shape[0]))  # (B, dim)
        if self.y_embed is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.null_class, dtype=torch.long, device=x.device)
            c = c + self.y_embed(labels)  # (B, dim)
        h = self.patch_embed(x) + self.pos_embed  # (B, N, dim)
        if keep is not None:
            h = h.gather(1, keep[:, :, None].expand(-1, -1, h.shape[2]))  # (B, K, dim)
        for block in self.blocks:
            h = block(h, c)
        out = self.final(h, c)  # (B, N or K, p*p*C)
        if keep is not None:
            if self.config.prediction == "data":
                kept = patchify(x, self.config.patch_size).gather(1, keep[:, :, None].expand(-1, -1, out.shape[2]))
                noise_left = (1 - t.to(x.dtype)).clamp_min(MIN_NOISE_LEVEL).expand(x.shape[0])  # (B,)
                return (out - kept) / noise_left.view(-1, 1, 1)  # (B, K, p*p*C)
            return out
        out = unpatchify(out, self.config.patch_size, self.field_channels, self.grid)  # (B, C, S, S)
        if self.config.prediction == "data":  # out is x1_hat: v = (x1_hat - x_t) / (1 - t)
            noise_left = (1 - t.to(x.dtype)).clamp_min(MIN_NOISE_LEVEL).expand(x.shape[0])  # (B,)
            return (out - x) / noise_left.view(-1, 1, 1, 1)
        return out

    def velocity(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, cfg_scale: float
                 ) -> torch.Tensor:
        """The guided field ``v_null + s (v_y - v_null)``; s = 1 (or no labels) is one plain call."""
        t = t.expand(x.shape[0])
        if labels is None or self.y_embed is None or cfg_scale == 1.0:
            return self(x, t, labels)
        null = torch.full_like(labels, self.null_class)
        both = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))  # (2B, C, S, S)
        v_cond, v_null = both.chunk(2)
        return v_null + cfg_scale * (v_cond - v_null)

    # --- the generator protocol (genvision.tasks.generate) ---------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """x0 ~ N(0, I) of the field's shape (n, C, S, S); drawn on the generator's device, then moved."""
        if device is None:
            device = model_device(self)
        draw_on = generator.device if generator is not None else device
        shape = (n, self.field_channels, self.field_size, self.field_size)
        return torch.randn(*shape, generator=generator, device=draw_on).to(device)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, steps: int | None = None,
                 cfg: float | None = None, sampler: str | None = None, progress: bool | None = None
                 ) -> torch.Tensor:
        """Integrate from noise z (n, C, S, S) at t = 0 to images in [-1, 1] at t = 1.

        ``steps`` / ``cfg`` / ``sampler`` default to the config's sample_steps / cfg_scale /
        sampler. Deterministic: the same z gives the same images. ``progress`` shows a bar over
        the steps (default: only on a terminal).
        """
        c = self.config
        steps = c.sample_steps if steps is None else steps
        cfg = c.cfg_scale if cfg is None else cfg
        sampler = c.sampler if sampler is None else sampler
        check_sampling(steps, sampler, cfg)
        if c.guidance_folded and cfg != 1.0:
            raise ConfigError(f"this model was distilled with guidance {c.guidance_folded:g} folded in: sample it "
                              f"without --cfg (its teacher takes other scales)")
        expected = (self.field_channels, self.field_size, self.field_size)
        if z.ndim != 4 or tuple(z.shape[1:]) != expected:
            raise ConfigError(f"z must have shape (n, {', '.join(map(str, expected))}), got {tuple(z.shape)}")
        if c.num_classes > 0 and labels is not None:
            if labels.shape != (z.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= c.num_classes:
                raise ConfigError(f"labels must be (n,) in 0..{c.num_classes - 1}")
        elif labels is not None:
            raise ConfigError("this model is unconditional: pass no labels")

        def v(x_, t_):
            return self.velocity(x_, t_, labels, cfg)

        return self.to_images(integrate(v, z, steps=steps, sampler=sampler, progress=progress))


__all__ = ["DiT", "DiTConfig", "PREDICTIONS", "SAMPLERS", "modulate"]
