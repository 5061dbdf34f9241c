"""DCGAN (Radford et al. 2016) with optional class conditioning and spectral norm.

Read top to bottom: the config, the generator, the discriminator, then the registered
:class:`DCGAN` that holds both. The GAN game itself (losses, optimizers, the alternating
updates) lives in ``genvision.training.objectives.gan``.

* Generator: ``z`` (plus a learned class embedding concatenated to it) -> linear projection to a
  4x4 (32 px) or 7x7 (28 px) feature map -> stride-2 ConvTranspose blocks with BatchNorm+ReLU
  that double the size -> tanh, so images land in [-1, 1].
* Discriminator: the mirror image, stride-2 convs with LeakyReLU(0.2), no norm on the first
  layer, then a linear head on the flattened features. Class conditioning uses the projection
  discriminator (Miyato & Koyama 2018): ``D(x, y) = w·phi(x) + embed(y)·phi(x)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..errors import ConfigError
from ..nn.checks import check_vectors
from ..registry import register_model
from ..runtime import exporting, model_device
from .stylegan import StyleGenerator

# image size -> (side of the first feature map, number of stride-2 up/down-sampling blocks)
_LAYOUT = {28: (7, 2), 32: (4, 3)}
D_NORMS = ("auto", "batch", "layer", "none")
GENERATORS = ("dcgan", "style")


@dataclass
class DCGANConfig:
    image_size: int = 32  # 28 or 32 px; the recipe sets it from the dataset
    channels: int = 1  # 1 (grey) or 3 (RGB); the recipe sets it from the dataset
    latent_dim: int = 100  # size of z ~ N(0, I)
    width: int = 64  # base channel count; the deepest layer has width * 2**(blocks-1)
    num_classes: int = 0  # 0 = unconditional; else class-conditional G and projection D
    spectral_norm: bool = False  # spectral normalisation on every D layer (Miyato et al. 2018)
    d_width: int | None = None  # D base channel count; None = same as width
    d_norm: str = "auto"  # D feature norm: auto (batch, or none with spectral_norm) | batch | layer | none; wgan-gp needs layer or none
    minibatch_std: int = 0  # D sees the feature std across groups of this many samples (ProGAN); 0 = off
    generator: str = "dcgan"  # G architecture: dcgan (transposed convs) | style (StyleGAN2-like, models/stylegan.py)

    def validate(self) -> None:
        if self.image_size not in _LAYOUT:
            raise ConfigError(f"dcgan image_size must be 28 or 32, got {self.image_size} (set data.image_size=32)")
        if self.channels not in (1, 3):
            raise ConfigError(f"dcgan channels must be 1 or 3, got {self.channels}")
        if self.latent_dim < 1:
            raise ConfigError(f"dcgan latent_dim must be >= 1, got {self.latent_dim}")
        if self.width < 8 or (self.d_width is not None and self.d_width < 8):
            raise ConfigError(f"dcgan width and d_width must be >= 8, got {self.width} and {self.d_width}")
        if self.num_classes < 0:
            raise ConfigError(f"dcgan num_classes must be >= 0 (0 = unconditional), got {self.num_classes}")
        if not 0 <= self.minibatch_std <= 64:
            raise ConfigError(f"dcgan minibatch_std must be a group size in 0..64 (0 = off), got {self.minibatch_std}")
        if self.generator not in GENERATORS:
            raise ConfigError(f"dcgan generator must be one of {', '.join(GENERATORS)}, got {self.generator!r}")
        if self.d_norm not in D_NORMS:
            raise ConfigError(f"dcgan d_norm must be one of {', '.join(D_NORMS)}, got {self.d_norm!r}")

    @property
    def discriminator_norm(self) -> str:
        """The D norm actually used ("auto" resolved)."""
        if self.d_norm == "auto":
            return "none" if self.spectral_norm else "batch"
        return self.d_norm


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------
# Generator


class Generator(nn.Module):
    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        side, blocks = _LAYOUT[config.image_size]
        self.side = side
        self.top_channels = config.width * 2 ** (blocks - 1)  # 256 at 32 px, 128 at 28 px (width 64)
        # Conditioning: a learned class vector, as long as z, concatenated to z (kept at its
        # default N(0, 1) init so it is on the same scale as z).
        self.embed = nn.Embedding(config.num_classes, config.latent_dim) if config.num_classes else None
        in_dim = config.latent_dim * (2 if self.embed is not None else 1)

        # A linear layer on z is a ConvTranspose with a side x side kernel on a 1x1 map.
        self.project = nn.Linear(in_dim, self.top_channels * side * side, bias=False)
        self.project_norm = nn.BatchNorm2d(self.top_channels)
        ups = []
        ch = self.top_channels
        for _ in range(blocks - 1):  # each block doubles the side and halves the channels
            ups += [nn.ConvTranspose2d(ch, ch // 2, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(ch // 2),
                    nn.ReLU(inplace=True)]
            ch //= 2
        ups += [nn.ConvTranspose2d(ch, config.channels, 4, stride=2, padding=1), nn.Tanh()]  # last doubling
        self.ups = nn.Sequential(*ups)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)  # (B, 2 * latent_dim)
        x = self.project(z).view(z.shape[0], self.top_channels, self.side, self.side)  # (B, top, s, s)
        x = torch.relu(self.project_norm(x))
        return self.ups(x)  # (B, C, H, W) in [-1, 1]


# --------------------------------------------------------------------------------------
# Discriminator


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":  # LayerNorm over (C, H, W), the per-sample norm WGAN-GP recommends
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def minibatch_stddev(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """x (B, C, H, W) with one more channel: the std of the features across a group of samples,
    averaged to one number per group (Karras et al. 2018, ProGAN section 3; StyleGAN2's layer).

    A generator that ignores z makes every sample of a group alike, so this channel is ~0 for its
    fakes and not for real batches: D can see and punish the collapse a per-sample D cannot.
    Groups are samples i, i + B/g, i + 2B/g, ... (StyleGAN2's layout); g is the largest divisor of
    B not above ``group_size``, so any batch size works.
    """
    B, C, H, W = x.shape
    g = next(d for d in range(min(group_size, B), 0, -1) if B % d == 0)
    y = x.float().reshape(g, B // g, C, H, W)  # (g, B/g, C, H, W): member, group
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # (B/g, C, H, W)
    per_group = std.mean(dim=(1, 2, 3))  # (B/g,)
    channel = per_group.repeat(g).to(x.dtype).view(B, 1, 1, 1).expand(B, 1, H, W)  # sample i -> group i % (B/g)
    return torch.cat([x, channel], dim=1)  # (B, C + 1, H, W)


class Discriminator(nn.Module):
    def __init__(self, config: DCGANConfig):
        super().__init__()
        self.config = config
        side, blocks = _LAYOUT[config.image_size]
        width = config.d_width or config.width
        norm = config.discriminator_norm
        layers = [nn.Conv2d(config.channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for _ in range(blocks - 1):  # each block halves the side and doubles the channels
            layers += [nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1, bias=norm == "none"), _norm(norm, ch * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        self.features = nn.Sequential(*layers)
        feature_dim = (ch + (1 if config.minibatch_std else 0)) * side * side
        # The linear head on the flattened 4x4 / 7x7 map is DCGAN's final valid conv.
        self.head = nn.Linear(feature_dim, 1)
        # Projection discriminator: per-class vector dotted with the same features.
        self.embed = nn.Embedding(config.num_classes, feature_dim) if config.num_classes else None
        self.apply(dcgan_init)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)  # a class-indexed linear head, same init as head
        if config.spectral_norm:  # after the init, which writes the raw weights
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    _spectral_norm(module)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)  # (B, ch, s, s)
        if self.config.minibatch_std:
            h = minibatch_stddev(h, self.config.minibatch_std)  # (B, ch + 1, s, s)
        phi = h.flatten(1)  # (B, (ch [+ 1]) * s * s)
        out = self.head(phi).squeeze(1)  # (B,)
        if self.embed is not None:
            out = out + (self.embed(labels) * phi).sum(dim=1)  # (B,) projection term
        return out  # logits / critic scores


# --------------------------------------------------------------------------------------
# The registered model


@register_model("dcgan", kind="gan", config_cls=DCGANConfig,
                tiny={"image_size": 28, "channels": 1, "latent_dim": 8, "width": 8})
class DCGAN(nn.Module):
    """DCGAN generator (or the StyleGAN2-like one) + discriminator, 28 or 32 px, optionally class-conditional."""
    def __init__(self, config: DCGANConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.generator = (StyleGenerator(config, _LAYOUT[config.image_size]) if config.generator == "style"
                          else Generator(config))
        self.discriminator = Discriminator(config)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def example_inputs(self, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor | None]:
        labels = torch.arange(batch) % self.num_classes if self.conditional else None
        return torch.randn(batch, self.config.latent_dim), labels

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """z ~ N(0, I) of shape (n, latent_dim). A seeded ``generator`` is drawn from on its own
        device, then moved, so a seed gives the same z on every device."""
        if device is None:
            device = model_device(self)
        draw_on = generator.device if generator is not None else device
        return torch.randn(n, self.config.latent_dim, generator=generator, device=draw_on).to(device)

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] (n, C, H, W) from z (n, latent_dim); ``labels`` (n,) when conditional."""
        check_vectors(z, dim=self.config.latent_dim, who="dcgan")
        if self.conditional:
            if labels is None:
                raise ConfigError(f"this model is class-conditional: pass labels in 0..{self.config.num_classes - 1}")
            labels = torch.as_tensor(labels, device=z.device).long().reshape(-1)
            if labels.shape[0] != z.shape[0]:
                raise ConfigError(f"got {labels.shape[0]} labels for {z.shape[0]} latents")
            # a data-dependent check: skipped while torch.export traces (the graph cannot branch on values)
            if not exporting() and labels.numel() and (
                    labels.min() < 0 or labels.max() >= self.config.num_classes):
                raise ConfigError(f"labels must lie in 0..{self.config.num_classes - 1}")
        elif labels is not None:
            raise ConfigError("this model is unconditional: do not pass labels")
        return self.generator(z, labels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate(z, labels)


__all__ = ["DCGANConfig", "Generator", "Discriminator", "DCGAN", "dcgan_init", "minibatch_stddev"]
