"""Translating images with a trained CycleGAN: one file or a folder, any size.

The generator runs on the whole image, not on tiles: its instance norm normalises over the whole
picture, and tiles would each get their own statistics (visible as seams). The size is bounded
(:data:`MAX_PIXELS`) so one request cannot exhaust memory. Outputs go through
:func:`genvision.tiling.process_path` (every output planned before anything is written, inputs
never overwritten, a bad file in a folder reported and the rest go on) and are written atomically,
each with a JSON sidecar.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ... import io as gio
from ... import tiling
from ...checkpoints import load_pretrained
from ...errors import ConfigError, display_path
from ...jobs import Shard
from ...models.cyclegan import DIRECTIONS
from ...outputs import JobReport, OutputGuard

__all__ = ["MAX_PIXELS", "load_translator", "translate_file", "translate_path", "translate_tensor"]

MAX_PIXELS = 16_000_000  # ~1 GB of activations per feature map at width 32 in fp32: above this, resize first


def load_translator(model_dir: str | os.PathLike, *, device: str | torch.device = "cpu", use_ema: bool = True
                    ) -> nn.Module:
    return load_pretrained(model_dir, device=device, use_ema=use_ema, kind="translate")


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ConfigError(f"--direction must be a2b or b2a, got {direction!r}")


@torch.no_grad()
def translate_tensor(model: nn.Module, images: torch.Tensor, direction: str = "a2b") -> torch.Tensor:
    """Images in [0, 1] (B, C, H, W) -> translated (B, C, H, W) in [0, 1], on the model's device."""
    check_direction(direction)
    device = tiling.module_device(model)
    return model(images.to(device), direction).clamp(0, 1).cpu()


def translate_file(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *, direction: str = "a2b",
                   metadata: dict | None = None) -> Path:
    """One image file -> ``output`` (.png, .jpg or .webp), at the source's size (alpha dropped)."""
    output = Path(output)
    tiling.check_output_suffix(output)
    OutputGuard().add_inputs(source).claim(output, check_exists=False)  # never the source
    channels = model.config.channels
    image = gio.load_image_tensor(source, channels)  # (C, H, W) in [0, 1]
    h, w = image.shape[-2:]
    if h * w > MAX_PIXELS:
        raise ConfigError(f"{display_path(source)}: {w}x{h} is over {MAX_PIXELS} pixels for a whole-image "
                          f"translation; resize it first (genvision edit --op resize=...)")
    out = translate_tensor(model, image[None], direction)[0]  # (C, H, W)
    gio.save_image(out, output, value_range=(0.0, 1.0))
    if metadata is not None:
        gio.write_sidecar(output, {**metadata, "source": str(source), "direction": direction, "size": [w, h]})
    return output


def translate_path(model: nn.Module, source: str | os.PathLike, output: str | os.PathLike, *, direction: str = "a2b",
                   progress: bool = True, metadata: dict | None = None, overwrite: bool = False,
                   fail_fast: bool = False, shard: Shard | None = None, resume: bool = False) -> JobReport:
    """A file -> ``output`` (a file, or a folder ending in / or existing); a folder -> a folder of
    PNGs with the same relative names."""
    check_direction(direction)

    def work(src: Path, out: Path, show: bool) -> Path:
        return translate_file(model, src, out, direction=direction, metadata=metadata)

    return tiling.process_path(source, output, work, overwrite=overwrite, fail_fast=fail_fast, progress=progress,
                               sidecar=metadata is not None, shard=shard, resume=resume, desc="translate")
