"""What gets exported for each kind of model: its inference path as one or more graphs, each a module
with plain tensor inputs and one tensor output, example inputs to trace, and the axes that stay free.

The graphs follow the protocols of :mod:`genvision.models.protocols` (never registry names), so a new
network of an existing kind exports with no change here:

=================  ==========================================================================
kind               graphs (inputs -> output)
=================  ==========================================================================
sr                 ``model``: lr (B, C, h, w) in [0, 1] -> (B, C, s h, s w)
denoise            ``model``: noisy (B, C, H, W) [, sigma (B,)] -> (B, C, H, W)
classifier         ``model``: images (B, C, S, S) in [-1, 1] -> logits (B, classes)
gan                ``model``: z (B, latent) [, labels (B,)] -> images (B, C, S, S) in [-1, 1]
diffusion (DiT)    ``step``: x (B, C, S, S), t (B,) [, labels (B,)] -> velocity; the sampler loop
                   stays outside (``genvision.processes``), as the issue asks
vae                ``encoder``: images -> latents (posterior means / code vectors);
                   ``decoder``: latents -> images
style              ``model``: content (B, 3, H, W) [, style (B, 3, H', W')] -> (B, 3, H, W)
translate          ``a2b`` and ``b2a``: images (B, C, H, W) -> translated (B, C, H, W)
embed              ``model``: images (B, C, H, W) -> L2-normalised vectors (B, dim)
inpaint            ``model``: image (B, C, H, W), mask (B, 1, H, W) -> filled image
=================  ==========================================================================

Batch is always free; height and width are free wherever the network is fully convolutional.
Weightless classical models (bicubic is a network and exports; NL-means runs OpenCV) have no graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..models.protocols import (
    Classifier,
    Denoiser,
    Embedding,
    Generator,
    ImageToImage,
    Inpainter,
    LatentCodec,
    Stylizer,
    Translator,
)
from ..nn.padding import pad_to_multiple

BATCH, HEIGHT, WIDTH = "batch", "height", "width"
IMAGE_AXES = {0: BATCH, 2: HEIGHT, 3: WIDTH}
BATCH_AXIS = {0: BATCH}


class _Call(nn.Module):
    """A module whose forward is ``fn(model, *inputs)``: one inference path of ``model`` with plain tensor
    arguments (what an exporter traces). ``model`` is a submodule, so its weights are the graph's."""

    def __init__(self, model: nn.Module, fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model, *inputs)


@dataclass(frozen=True)
class Graph:
    """One exported inference path. ``axes``: per input, the free axes (index -> name). ``probe``: inputs
    of other sizes than ``inputs`` (another batch, and other heights/widths where those are free): the
    parity check runs on them, so a dimension frozen by tracing shows as an error, not as a silent
    shape."""

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_name: str
    axes: tuple[dict[int, str], ...]
    probe: tuple[torch.Tensor, ...]


def _resized(example: torch.Tensor, axes: dict[int, str], batch: int, grow: tuple[int, int]) -> torch.Tensor:
    """A fresh tensor like ``example`` with the free axes changed: batch -> ``batch``, height/width + grow."""
    shape = list(example.shape)
    if BATCH in axes.values():
        shape[0] = batch
    if HEIGHT in axes.values():
        shape[2] += grow[0]
    if WIDTH in axes.values():
        shape[3] += grow[1]
    if example.dtype in (torch.int64, torch.int32):
        high = int(example.max()) + 1 if example.numel() else 1
        return torch.randint(0, max(high, 1), shape, dtype=example.dtype, generator=torch.Generator().manual_seed(1))
    fresh = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=example.dtype)
    low, high = float(example.min()), float(example.max())
    return fresh * (high - low) + low if high > low else fresh + low  # the example's range ([-1, 1], [0, 1], ...)


def _graph(name: str, module: nn.Module, inputs: tuple, input_names: tuple[str, ...], output_name: str,
           axes: tuple[dict[int, str], ...]) -> Graph:
    kept = [(x, n, a) for x, n, a in zip(inputs, input_names, axes) if x is not None]  # None: an unused input
    inputs, input_names, axes = (tuple(part) for part in zip(*kept))
    probe = tuple(_resized(x, a, x.shape[0] + 1, (3, 5)) for x, a in zip(inputs, axes))
    return Graph(name, module.eval(), tuple(inputs), tuple(input_names), output_name, tuple(axes), probe)


def _images(channels: int, side: int, batch: int = 2, low: float = 0.0) -> torch.Tensor:
    """(batch, channels, side, side) uniform in [low, 1]: a traceable example image batch."""
    return torch.rand(batch, channels, side, side, generator=torch.Generator().manual_seed(0)) * (1 - low) + low


def _labels(model: nn.Module, batch: int = 2) -> torch.Tensor | None:
    classes = int(getattr(model, "num_classes", 0) or 0)
    return torch.arange(batch) % classes if classes else None


def _conditional(fn: Callable, model: nn.Module) -> Callable:
    """Drop the labels argument of an unconditional model (its graph has no labels input)."""
    return fn if _labels(model) is not None else (lambda m, *x: fn(m, *x, None))


def graphs_for(model: nn.Module) -> list[Graph]:
    """The graphs that carry ``model``'s inference path (see the table above), or a one-line ConfigError
    for a model no graph can carry."""
    kind = getattr(model, "model_kind", None)
    name = getattr(model, "registry_name", type(model).__name__)
    example = model.example_inputs(2) if hasattr(model, "example_inputs") else ()
    if kind == "diffusion":
        if getattr(model, "latent_space", False):
            raise ConfigError(f"{name} is a latent DiT: its step graph would sample VQ-VAE latents that nothing "
                              f"exported decodes; export a pixel-space DiT")
        x, t, labels = example
        step = _conditional(lambda m, x, t, y: m(x, t, y), model)
        return [_graph("step", _Call(model, step), (x, t, labels), ("x", "t", "labels"), "velocity",
                       (BATCH_AXIS, BATCH_AXIS, BATCH_AXIS))]
    if isinstance(model, LatentCodec) and kind == "vae":
        images = example[0]
        labels = _labels(model)
        with torch.no_grad():
            latents = model.image_latents(images, labels)  # (B, ...) whatever this family's latent shape is
        latent_axes = {0: BATCH}
        encode = _conditional(lambda m, x, y: m.image_latents(x, y), model)
        decode = _conditional(lambda m, z, y: m.decode_latents(z, y), model)
        return [_graph("encoder", _Call(model, encode), (images, labels), ("images", "labels"), "latents",
                       (BATCH_AXIS, BATCH_AXIS)),
                _graph("decoder", _Call(model, decode), (latents, labels), ("latents", "labels"), "images",
                       (latent_axes, BATCH_AXIS))]
    if isinstance(model, Translator) and kind == "translate":
        (images,) = example
        return [_graph(direction, _Call(model, lambda m, x, d=direction: m(x, d)), (images,), ("images",),
                       "translated", (IMAGE_AXES,)) for direction in ("a2b", "b2a")]
    if isinstance(model, Generator) and kind == "gan":
        z, labels = example
        generate = _conditional(lambda m, z, y: m.generate(z, y), model)
        return [_graph("model", _Call(model, generate), (z, labels), ("z", "labels"), "images",
                       (BATCH_AXIS, BATCH_AXIS))]
    if isinstance(model, Classifier) and kind == "classifier":
        return [_graph("model", _Call(model, lambda m, x: m(x)), example, ("images",), "logits", (BATCH_AXIS,))]
    if isinstance(model, ImageToImage) and kind == "sr":
        return [_graph("model", _Call(model, lambda m, x: m(x)), example, ("lr",), "sr", (IMAGE_AXES,))]
    if isinstance(model, Denoiser) and kind == "denoise":
        if not _is_network(model):
            raise ConfigError(f"{name} is a classical method (no network weights): there is nothing to export")
        if model.conditioned:
            return [_graph("model", _Call(model, lambda m, x, s: m(x, s)), example, ("noisy", "sigma"), "denoised",
                           (IMAGE_AXES, BATCH_AXIS))]
        return [_graph("model", _Call(model, lambda m, x: m(x)), example, ("noisy",), "denoised", (IMAGE_AXES,))]
    if isinstance(model, Stylizer) and kind == "style":
        if model.arbitrary:
            return [_graph("model", _Call(model, lambda m, c, s: m(c, s)), example, ("content", "style"), "stylized",
                           (IMAGE_AXES, IMAGE_AXES))]
        if getattr(model, "style_names", ()):  # a multi-style net: its (B, S) style mix is an input
            return [_graph("model", _Call(model, lambda m, c, mix: m(c, mix)), example, ("content", "style_mix"),
                           "stylized", (IMAGE_AXES, BATCH_AXIS))]
        return [_graph("model", _Call(model, lambda m, c: m(c)), example, ("content",), "stylized", (IMAGE_AXES,))]
    if isinstance(model, Embedding) and kind == "embed":
        return [_graph("model", _Call(model, lambda m, x: m.embed(x)), example, ("images",), "vectors",
                       (IMAGE_AXES,))]
    if isinstance(model, Inpainter) and kind == "inpaint":
        return [_graph("model", _Call(model, _fill_at_even_size), example, ("image", "mask"), "filled",
                       (IMAGE_AXES, IMAGE_AXES))]
    raise ConfigError(f"model {name} (kind {kind}) has no exportable inference path")


def _fill_at_even_size(model: nn.Module, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inpainting with the sides padded (replicated edge) so that every Fourier unit sees even sides, then
    cropped back. LaMa's Fourier units need it: the exported real FFT pair is wrong for odd lengths
    (measured against PyTorch: 4e-3 max error at 19x21, 6e-8 at even sizes), and they run after
    ``downsamples`` halvings, so the input is padded to a multiple of 2 ** (downsamples + 1): padding only to
    even sides left 20x22 inputs with a 5x6 bottleneck and a 0.027 error on trained weights."""
    multiple = 2 ** (getattr(model.config, "downsamples", 0) + 1)
    padded_image, (h, w) = pad_to_multiple(image, multiple, mode="replicate")  # (B, C, H', W')
    padded_mask, _ = pad_to_multiple(mask, multiple, mode="replicate")  # (B, 1, H', W')
    return model(padded_image, padded_mask)[..., :h, :w]  # (B, C, H', W') -> (B, C, H, W)


def _is_network(model: nn.Module) -> bool:
    return any(True for _ in model.parameters())


__all__ = ["BATCH", "HEIGHT", "WIDTH", "Graph", "graphs_for"]
