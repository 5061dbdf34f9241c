"""What each kind of model promises, as ``typing.Protocol``s: callers dispatch on these, never on
registry names or on probing ``model.config`` for attributes.

Every registered network also carries ``registry_name``, ``model_kind`` and ``config`` (see
``genvision.registry``). The protocols are ``runtime_checkable``, so ``isinstance(model, Generator)``
checks that the methods exist (not their signatures: the tests of each family check those).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Generator(Protocol):
    """Samples images from latents: GANs, VAEs (their prior), the DiT (its noise), MaskGIT (per-image seeds).

    A generator whose latents are not points of a continuous space (MaskGIT's seeds) sets the class
    attribute ``continuous_latents = False``, and ``sampling.interpolate`` refuses it."""

    config: Any

    @property
    def num_classes(self) -> int:
        """Classes it conditions on; 0 = unconditional."""

    def sample_latent(self, n: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """n latents (for a seed: drawn on the generator's device, then moved)."""

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None, **sampling: Any) -> torch.Tensor:
        """Images in [-1, 1] (n, C, H, W) from latents ``z`` (and labels for conditional models)."""


@runtime_checkable
class LatentCodec(Protocol):
    """Maps images to the latent space it generates from, and back: VAEs (posterior means),
    VQ-VAEs (quantised code vectors). Interpolating between images walks this space."""

    config: Any

    @property
    def num_classes(self) -> int: ...

    def image_latents(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents of images in [-1, 1] (B, C, H, W)."""

    def decode_latents(self, latents: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [-1, 1] from latents; ``decode_latents(image_latents(x))`` reconstructs x."""


@runtime_checkable
class ImageToImage(Protocol):
    """Maps an image in [0, 1] (B, C, h, w) to an image (B, C, scale*h, scale*w): super-resolution
    (and, with scale 1, restoration models)."""

    config: Any

    @property
    def scale(self) -> int: ...

    def forward(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Denoiser(Protocol):
    """Removes noise from images in [0, 1] (B, C, H, W) -> (B, C, H, W) (an estimate of the clean
    image, not clamped): DnCNN, FFDNet-style noise-level-conditioned nets, classical NL-means.

    ``sigma`` is the noise's standard deviation as a fraction of the [0, 1] range (25/255 for the
    literature's "sigma 25"): a float or a (B,) tensor. ``conditioned`` models use it (and need
    it); blind ones ignore it."""

    config: Any

    @property
    def conditioned(self) -> bool: ...

    def forward(self, noisy: torch.Tensor, sigma: float | torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class Classifier(Protocol):
    """Logits (B, num_classes) for images in [-1, 1]; penultimate features for FID-style scores."""

    config: Any

    @property
    def num_classes(self) -> int: ...

    def forward(self, images: torch.Tensor) -> torch.Tensor: ...

    def forward_features(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Inpainter(Protocol):
    """Fills holes: images in [0, 1] (B, C, H, W) and a mask (B, 1, H, W), 1 = fill -> the filled
    image (B, C, H, W), every known pixel copied from the input."""

    config: Any

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Stylizer(Protocol):
    """Restyles images in [0, 1] (B, 3, H, W) -> (B, 3, H, W) of any size (not clamped). ``arbitrary``
    False: ``forward(content)`` applies the one style in the weights (Johnson et al.); True:
    ``forward(content, style, alpha=1.0)`` takes any style image (AdaIN)."""

    config: Any
    arbitrary: bool

    def forward(self, content: torch.Tensor, *style: Any) -> torch.Tensor: ...


@runtime_checkable
class Translator(Protocol):
    """Unpaired image-to-image translation between two domains (CycleGAN): images in [0, 1]
    (B, C, H, W) of any size -> (B, C, H, W) in [0, 1], ``direction`` "a2b" or "b2a"."""

    config: Any

    def forward(self, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor: ...


@runtime_checkable
class Embedding(Protocol):
    """Images in [0, 1] (B, C, H, W) of any size -> L2-normalised vectors (B, dim) whose inner product is
    their cosine similarity: the retrieval nets (EmbedNet, trained by ``genvision train simclr``)."""

    config: Any

    @property
    def dim(self) -> int: ...

    def embed(self, images: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ImageCodec(Protocol):
    """Compresses images in [0, 1] (B, C, H, W) of any size to byte strings and back (learned codecs):
    ``decompress(compress(x))`` equals ``reconstruct(x)``, bit for bit on the same machine."""

    config: Any

    def compress(self, images: torch.Tensor) -> Any:
        """The coded images (:class:`genvision.models.codec.CodedImages`)."""

    def decompress(self, coded: Any) -> torch.Tensor:
        """Images in [0, 1] of the original size."""

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """What a round trip through the bitstream gives, without writing it."""


__all__ = ["Classifier", "Denoiser", "Embedding", "Generator", "ImageCodec", "ImageToImage", "Inpainter",
           "LatentCodec", "Stylizer", "Translator"]
