"""MaskGIT (Chang et al. 2022): a class-conditional bidirectional transformer prior over the token
grids of a frozen VQ-VAE, sampled by iterative parallel decoding.

Read top to bottom: the config, then the registered :class:`MaskGIT`.

* The VQ-VAE (``models/vqvae.py``) is a frozen submodule, so one checkpoint holds everything that
  turns a seed into an image: images -> (B, h, w) token grids of codes 0..K-1, and back.
* The prior sees a grid flattened to L = h*w tokens, some replaced by the id K = ``[MASK]``:
  token embedding (K + 1 rows) + learned positions (L, dim), a class token prepended (num_classes
  + 1 rows; the last is the null class of classifier-free guidance), ``depth`` pre-LN transformer
  blocks (``nn.attention.TransformerBlock``), a final LayerNorm and a linear head to K logits
  at every grid position.
* Training (``apps/tokenprior``) and sampling (``processes/masked_tokens``) are MaskGIT's: cross-entropy
  on masked positions; decoding in ``sample_steps`` steps with guidance ``uncond + s (cond - uncond)``.

**Latents are seeds.** ``sample_latent`` draws one int64 seed per image; :meth:`MaskGIT.generate`
takes every random number of image i (the categorical and Gumbel uniforms of all steps) from a
generator seeded with seed i, so an image depends on its seed alone, never on the batch around it.
There is nothing between two seeds, so ``sampling.interpolate`` refuses these models
(``continuous_latents = False``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import build_dataclass, check_range
from ..errors import ConfigError, InputShapeError
from ..nn.attention import TransformerBlock
from ..processes.masked_tokens import guided_logits, iterative_decode
from ..registry import register_model
from ..runtime import SEED_MAX, model_device
from .vqvae import VQVAE, VQVAEConfig

MAX_DEPTH = 1024  # MaskGIT's ImageNet prior has 24 blocks
MAX_MLP_RATIO = 64.0  # transformers use 2-4
MAX_SAMPLING_FACTOR = 100.0  # bound of temperature, guidance and choice temperature (far past any useful value)


@dataclass
class MaskGITConfig:
    vqvae: dict[str, Any] = field(default_factory=dict)  # the frozen VQ-VAE's config fields (the recipe copies init's)
    num_classes: int = 10  # 0 = unconditional; the recipe sets it from the dataset
    dim: int = 256  # token width
    depth: int = 4  # transformer blocks (~3.3M parameters at dim 256: CPU-sized)
    heads: int = 8  # attention heads (dim / heads per head)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * dim
    dropout: float = 0.1  # on the embeddings, after attention and in the MLP (MaskGIT's 0.1); training only
    sample_steps: int = 8  # default decoding steps of generate() (at most h*w)
    temperature: float = 1.0  # default divisor of the logits before sampling a code
    top_k: int = 0  # default: sample among the k most likely codes only (0 = all)
    cfg_scale: float = 1.0  # default guidance s in uncond + s (cond - uncond): 1 = conditional, 0 = unconditional
    choice_temperature: float = 4.5  # scale of the Gumbel noise on the confidences, annealed to 0 (MaskGIT's 4.5)

    def vqvae_config(self) -> VQVAEConfig:
        try:
            return build_dataclass(VQVAEConfig, dict(self.vqvae), "vqvae")
        except ConfigError as exc:
            raise ConfigError(f"maskgit vqvae: {exc}") from None

    @property
    def image_size(self) -> int:  # the VQ-VAE's: generation and evaluation read the image shape here
        return self.vqvae_config().image_size

    @property
    def channels(self) -> int:
        return self.vqvae_config().channels

    def validate(self) -> None:
        vq = self.vqvae_config()
        if self.num_classes < 0:
            raise ConfigError(f"maskgit num_classes must be >= 0, got {self.num_classes}")
        if self.dim < 1 or self.heads < 1 or self.dim % self.heads:
            raise ConfigError(f"maskgit dim ({self.dim}) must be >= 1 and divisible by heads ({self.heads})")
        # Depth is a Python loop of modules (even on the meta device): bound it before building.
        check_range("maskgit depth", self.depth, 1, MAX_DEPTH)
        check_range("maskgit mlp_ratio", self.mlp_ratio, 0.0, MAX_MLP_RATIO, low_open=True)
        if int(self.mlp_ratio * self.dim) < 1:
            raise ConfigError(f"maskgit mlp_ratio * dim must be >= 1 (the MLP's width), got "
                              f"{self.mlp_ratio} * {self.dim}")
        check_range("maskgit dropout", self.dropout, 0.0, 1.0, high_open=True)
        check_range("maskgit sample_steps", self.sample_steps, 1, vq.grid ** 2)
        check_range("maskgit temperature", self.temperature, 0.0, MAX_SAMPLING_FACTOR, low_open=True)
        check_range("maskgit top_k", self.top_k, 0, vq.codebook_size)
        check_range("maskgit cfg_scale", self.cfg_scale, 0.0, MAX_SAMPLING_FACTOR)
        check_range("maskgit choice_temperature", self.choice_temperature, 0.0, MAX_SAMPLING_FACTOR)


def check_sampling_options(steps: int, cfg: float, temperature: float, top_k: int, choice_temperature: float,
                           *, length: int, codebook_size: int) -> None:
    """The options of :meth:`MaskGIT.generate`, named as ``genvision generate``'s flags."""
    def number(value) -> bool:  # NaN then fails every range comparison below
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not integer(steps) or not 1 <= steps <= length:
        raise ConfigError(f"--steps must be an integer in 1..{length} (the number of tokens), got {steps!r}")
    if not number(cfg) or not 0 <= cfg <= MAX_SAMPLING_FACTOR:
        raise ConfigError(f"--cfg must be a number in [0, {MAX_SAMPLING_FACTOR:g}], got {cfg!r}")
    if not number(temperature) or not 0 < temperature <= MAX_SAMPLING_FACTOR:
        raise ConfigError(f"--temperature must be a number in (0, {MAX_SAMPLING_FACTOR:g}], got {temperature!r}")
    if not integer(top_k) or not 0 <= top_k <= codebook_size:
        raise ConfigError(f"top_k must be an integer in 0..{codebook_size}, got {top_k!r}")
    if not number(choice_temperature) or not 0 <= choice_temperature <= MAX_SAMPLING_FACTOR:
        raise ConfigError(f"choice_temperature must be a number in [0, {MAX_SAMPLING_FACTOR:g}], "
                          f"got {choice_temperature!r}")


@register_model("maskgit", kind="token-prior", config_cls=MaskGITConfig,
                tiny={"vqvae": {"width": 4, "blocks": 0, "codebook_size": 8, "code_dim": 4}, "num_classes": 3,
                      "dim": 8, "depth": 1, "heads": 2, "sample_steps": 4},
                description="MaskGIT: class-conditional masked-token transformer prior over a frozen VQ-VAE's tokens")
class MaskGIT(nn.Module):
    """Bidirectional masked-token transformer over a frozen VQ-VAE's token grids (MaskGIT)."""
    continuous_latents = False  # latents are per-image seeds: there is nothing to interpolate between them

    def __init__(self, config: MaskGITConfig):
        super().__init__()
        config.validate()
        self.config = c = config
        vq = c.vqvae_config()
        self.grid, self.codebook_size = vq.grid, vq.codebook_size
        self.length = vq.grid ** 2  # L tokens per image
        self.mask_id = vq.codebook_size  # the extra token id K = [MASK]
        self.token_embed = nn.Embedding(vq.codebook_size + 1, c.dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.length, c.dim))
        # num_classes + 1 rows: the last one is the null class (label dropout / unconditional branch).
        self.class_embed = nn.Embedding(c.num_classes + 1, c.dim)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([TransformerBlock(c.dim, heads=c.heads, mlp_ratio=c.mlp_ratio, dropout=c.dropout)
                                     for _ in range(c.depth)])
        self.norm = nn.LayerNorm(c.dim)
        self.head = nn.Linear(c.dim, vq.codebook_size)
        self._init_weights()
        # Built last so the prior's initial weights do not depend on the VQ-VAE's size; frozen, always in eval.
        self.vqvae = VQVAE(vq).requires_grad_(False).eval()

    def _init_weights(self) -> None:
        for m in self.modules():  # the VQ-VAE does not exist yet: only the prior is initialised here
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def train(self, mode: bool = True) -> MaskGIT:
        super().train(mode)
        self.vqvae.eval()  # frozen: its codebook EMA and token-prior updates must never run
        return self

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = torch.randint(0, self.mask_id + 1, (batch, self.grid, self.grid))  # some of them [MASK]
        labels = torch.arange(batch) % self.num_classes if self.num_classes else None
        return tokens, labels

    # --- the prior ----------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, L, K) of the code at every position of token grids (B, h, w) holding codes 0..K-1
        and [MASK] = K; labels (B,) in 0..num_classes (num_classes = null class; None = all null)."""
        g = self.grid
        if tokens.ndim != 3 or tuple(tokens.shape[1:]) != (g, g):
            raise InputShapeError(f"maskgit takes token grids of shape (B, {g}, {g}); got {tuple(tokens.shape)}")
        if tokens.is_floating_point() or tokens.is_complex():
            raise InputShapeError(f"maskgit takes integer token grids (codes 0..{self.mask_id}), got {tokens.dtype}")
        B = tokens.shape[0]
        if labels is None:
            labels = torch.full((B,), self.null_class, dtype=torch.long, device=tokens.device)
        x = self.token_embed(tokens.reshape(B, self.length)) + self.pos_embed  # (B, L, dim)
        x = torch.cat([self.class_embed(labels)[:, None], x], dim=1)  # (B, 1 + L, dim): class token first
        x = self.drop(x)
        for block in self.blocks:
            x = block(x).tokens  # (B, 1 + L, dim)
        return self.head(self.norm(x[:, 1:]))  # (B, L, K): the class token predicts nothing

    # --- the generator protocol (genvision.sampling) ---------------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """n int64 seeds (n,), one per image; drawn on the generator's device (CPU by default), then moved."""
        if device is None:
            device = model_device(self)
        draw_on = generator.device if generator is not None else "cpu"
        return torch.randint(0, SEED_MAX, (n,), generator=generator, device=draw_on, dtype=torch.int64).to(device)

    def _uniforms(self, seeds: torch.Tensor, steps: int) -> torch.Tensor:
        """(n, 2, S, L) uniforms in [0, 1): image i's from a CPU generator seeded with seeds[i] alone."""
        per_image = [torch.rand(2, steps, self.length, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(int(seed))) for seed in seeds.tolist()]
        return torch.stack(per_image).to(model_device(self))  # (n, 2, S, L)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, *, steps: int | None = None,
                 cfg: float | None = None, temperature: float | None = None, top_k: int | None = None,
                 choice_temperature: float | None = None) -> torch.Tensor:
        """Images in [-1, 1] (n, C, H, W) from seeds z (n,) (see :meth:`sample_latent`) and labels (n,).

        Options default to the config's sample_steps / cfg_scale / temperature / top_k / choice_temperature.
        Guidance follows ``uncond + cfg * (cond - uncond)`` on the logits (1 = conditional); labels
        None on a conditional model samples the null class (unconditional).
        """
        c = self.config
        steps = c.sample_steps if steps is None else steps
        cfg = c.cfg_scale if cfg is None else cfg
        temperature = c.temperature if temperature is None else temperature
        top_k = c.top_k if top_k is None else top_k
        choice_temperature = c.choice_temperature if choice_temperature is None else choice_temperature
        check_sampling_options(steps, cfg, temperature, top_k, choice_temperature, length=self.length,
                               codebook_size=self.codebook_size)
        if z.ndim != 1 or z.is_floating_point():
            raise ConfigError(f"z must be a (n,) tensor of integer seeds (from sample_latent), got {tuple(z.shape)} "
                              f"{z.dtype}")
        n, device = z.shape[0], model_device(self)
        if labels is not None:
            if c.num_classes == 0:
                raise ConfigError("this model is unconditional: pass no labels")
            if labels.shape != (n,) or int(labels.min()) < 0 or int(labels.max()) >= c.num_classes:
                raise ConfigError(f"labels must be (n,) in 0..{c.num_classes - 1}")
            labels = labels.to(device)
        guided = labels is not None and cfg != 1.0

        def logits_fn(tokens: torch.Tensor) -> torch.Tensor:
            grids = tokens.view(n, self.grid, self.grid)  # (n, h, w)
            if not guided:
                return self(grids, labels)  # (n, L, K)
            null = torch.full_like(labels, self.null_class)
            cond, uncond = self(torch.cat([grids, grids]), torch.cat([labels, null])).chunk(2)  # 2 x (n, L, K)
            return guided_logits(cond, uncond, cfg)

        tokens = iterative_decode(logits_fn, self._uniforms(z, steps), mask_id=self.mask_id, temperature=temperature,
                                  top_k=top_k, choice_temperature=choice_temperature)  # (n, L)
        return self.vqvae.decode(tokens.view(n, self.grid, self.grid))  # (n, C, H, W) in [-1, 1]


__all__ = ["MaskGIT", "MaskGITConfig", "check_sampling_options"]
