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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import MAX_IMAGE_SIZE, check_range
from ..errors import ConfigError
from ..nn.attention import MLP, SelfAttention
from ..nn.checks import check_images
from ..nn.embeddings import PatchEmbed, TimestepEmbedder, check_patch_grid, sincos_2d, unpatchify
from ..processes.flow import SAMPLERS, check_sampling, integrate
from ..registry import register_model
from ..runtime import model_device

MAX_DEPTH = 1024  # DiT-XL has 28 blocks
MAX_MLP_RATIO = 64.0  # DiT uses 4
MAX_SAMPLE_STEPS = 10_000  # flow sampling saturates long before; 1000 is the DDPM convention
MAX_CFG_SCALE = 100.0


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

    def validate(self) -> None:
        if self.channels not in (1, 3):
            raise ConfigError(f"dit channels must be 1 or 3, got {self.channels}")
        check_range("dit image_size", self.image_size, 8, MAX_IMAGE_SIZE)
        check_patch_grid(self.image_size, self.patch_size, "dit")
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
        self.grid = c.image_size // c.patch_size
        self.patch_embed = PatchEmbed(in_channels=c.channels, dim=c.dim, patch_size=c.patch_size)
        self.register_buffer("pos_embed", sincos_2d(self.grid, self.grid, c.dim)[None], persistent=False)
        self.t_embed = TimestepEmbedder(c.dim)
        # num_classes + 1 rows: the last one is the null class (label dropout / unconditional branch).
        self.y_embed = nn.Embedding(c.num_classes + 1, c.dim) if c.num_classes > 0 else None
        self.blocks = nn.ModuleList([DiTBlock(c.dim, c.heads, c.mlp_ratio) for _ in range(c.depth)])
        self.final = FinalLayer(c.dim, c.patch_size ** 2 * c.channels)
        self._init_weights()

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        c = self.config
        labels = torch.arange(batch) % c.num_classes if c.num_classes else None
        return torch.randn(batch, c.channels, c.image_size, c.image_size), torch.rand(batch), labels

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

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Velocity (B, C, S, S) at points x (B, C, S, S), times t (B,) in [0, 1] and labels (B,)
        in 0..num_classes (num_classes = null class; None = all null)."""
        check_images(x, channels=self.config.channels, size=self.config.image_size, who="dit")
        c = self.t_embed(t.to(x.dtype).expand(x.shape[0]))  # (B, dim)
        if self.y_embed is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.null_class, dtype=torch.long, device=x.device)
            c = c + self.y_embed(labels)  # (B, dim)
        h = self.patch_embed(x) + self.pos_embed  # (B, N, dim)
        for block in self.blocks:
            h = block(h, c)
        out = self.final(h, c)  # (B, N, p*p*C)
        return unpatchify(out, self.config.patch_size, self.config.channels, self.grid)  # (B, C, S, S)

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
        """x0 ~ N(0, I) of shape (n, C, S, S); drawn on the generator's device, then moved."""
        if device is None:
            device = model_device(self)
        c = self.config
        draw_on = generator.device if generator is not None else device
        return torch.randn(n, c.channels, c.image_size, c.image_size, generator=generator, device=draw_on).to(device)

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
        expected = (c.channels, c.image_size, c.image_size)
        if z.ndim != 4 or tuple(z.shape[1:]) != expected:
            raise ConfigError(f"z must have shape (n, {', '.join(map(str, expected))}), got {tuple(z.shape)}")
        if c.num_classes > 0 and labels is not None:
            if labels.shape != (z.shape[0],) or int(labels.min()) < 0 or int(labels.max()) >= c.num_classes:
                raise ConfigError(f"labels must be (n,) in 0..{c.num_classes - 1}")
        elif labels is not None:
            raise ConfigError("this model is unconditional: pass no labels")

        def v(x_, t_):
            return self.velocity(x_, t_, labels, cfg)

        return integrate(v, z, steps=steps, sampler=sampler, progress=progress).clamp(-1, 1)


__all__ = ["DiT", "DiTConfig", "SAMPLERS", "modulate"]
