"""Calibration inputs for the int8 quantization of a generator (``genvision quantize`` on a GAN)."""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ...sampling import latents_for

CALIBRATION_BATCH = 16


def calibration_inputs(model, card: dict, data: str | None, data_root: str | None, limit: int) -> list[tuple]:
    """``limit`` latents from the generator's own prior (seed 0, the same as ``generate --seed 0``), in batches
    of 16, each with its labels for a conditional model (every class in turn): the inputs of its graph."""
    if data is not None:
        raise ConfigError("a generator is calibrated on latents from its own prior: drop --calibrate")
    samples = []
    for start in range(0, limit, CALIBRATION_BATCH):
        count = min(CALIBRATION_BATCH, limit - start)
        z = latents_for(model, 0, start, count)  # (count, *latent shape)
        if model.num_classes:
            labels = torch.arange(start, start + count) % model.num_classes  # (count,)
            samples.append((z, labels))
        else:
            samples.append((z,))
    return samples


__all__ = ["calibration_inputs"]
