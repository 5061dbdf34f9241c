"""Structured channel pruning: a smaller instance of the same registered model, not a masked one.

Each channel group a model declares (genvision.nn.channel_groups) keeps its most important channels:
importance is the L1 norm of the filters producing the channel (Li et al. 2017, "Pruning Filters for
Efficient ConvNets"), each layer's norms divided by their mean so that no layer of a coupled group
outweighs the others by its scale alone. The kept rows and columns are copied into a model built from
the same config with the narrower widths, so the result saves, loads, exports and fine-tunes like any
model of its arch.

Written here rather than with torch-pruning: that library rewrites module objects in place, and the
result is saved by pickling the module; genvision models must stay a JSON config plus safetensors, so
the pruned widths have to land in the config, which only the model's own declaration can say.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import ConfigError
from ..nn.channel_groups import ChannelGroup
from ..registry import create_model


def kept_channels(width: int, amount: float, multiple_of: int = 1) -> int:
    """How many of ``width`` channels remain after removing the fraction ``amount`` (rounded to a multiple
    of ``multiple_of``, at least one multiple, never more than ``width``)."""
    if not 0.0 <= amount < 1.0:
        raise ConfigError(f"amount must be in [0, 1): the fraction of channels to remove, got {amount}")
    if multiple_of < 1:
        raise ConfigError(f"multiple_of must be >= 1, got {multiple_of}")
    kept = round(width * (1.0 - amount) / multiple_of) * multiple_of
    return min(width, max(multiple_of, kept, 1))


def _row_norms(state: dict[str, torch.Tensor], path: str, rows_per_channel: int) -> torch.Tensor:
    weight = state[f"{path}.weight"]  # (out, in, ...) for convolutions and linear layers
    norms = weight.abs().flatten(1).sum(1).view(-1, rows_per_channel).sum(1)  # (out / rows_per_channel,)
    return norms / norms.mean().clamp_min(1e-12)


def _output_rows(channels: torch.Tensor, rows_per_channel: int) -> torch.Tensor:
    """Indices of the weight rows that make each kept channel (consecutive for a pixel shuffle)."""
    offsets = torch.arange(rows_per_channel)
    return (channels[:, None] * rows_per_channel + offsets).flatten()  # (kept * rows_per_channel,)


def _groups(model: nn.Module) -> tuple[ChannelGroup, ...]:
    declare = getattr(model, "channel_groups", None)
    if declare is None:
        prunable = "espcn, edsr"
        raise ConfigError(f"{getattr(model, 'registry_name', type(model).__name__)} models cannot be pruned yet "
                          f"(they declare no channel groups); prunable archs: {prunable}")
    return declare()


def prune_channels(model: nn.Module, amount: float, multiple_of: int = 1) -> tuple[nn.Module, dict]:
    """Remove the fraction ``amount`` of every channel group; returns the smaller model (same arch, narrower
    config, eval mode) and ``{field: [before, after]}``."""
    groups = _groups(model)
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    original = dict(state)
    widths: dict[str, list[int]] = {}
    for group in groups:
        first = group.outputs[0]
        width = original[f"{first}.weight"].shape[0] // group.rows_per_channel(first)
        kept = kept_channels(width, amount, multiple_of)
        if widths.setdefault(group.field, [width, kept]) != [width, kept]:
            raise ConfigError(f"{group.field}: groups of one field must share a width ({widths[group.field][0]} "
                              f"vs {width})")
        importance = sum(_row_norms(original, path, group.rows_per_channel(path)) for path in group.outputs)
        channels = importance.topk(kept).indices.sort().values  # (kept,) in the original order
        for path in group.outputs:
            rows = _output_rows(channels, group.rows_per_channel(path))
            state[f"{path}.weight"] = state[f"{path}.weight"][rows]
            if f"{path}.bias" in state:
                state[f"{path}.bias"] = state[f"{path}.bias"][rows]
        for path in group.inputs:
            state[f"{path}.weight"] = state[f"{path}.weight"][:, channels]
    config = dataclasses.replace(model.config, **{field: after for field, (_, after) in widths.items()})
    pruned = create_model(model.registry_name, config)
    try:
        pruned.load_state_dict(state)
    except RuntimeError as exc:  # the declaration missed a coupled layer: a bug in the model, not the input
        raise RuntimeError(f"{model.registry_name}.channel_groups() does not match its layers: {exc}") from None
    return pruned.eval(), widths


__all__ = ["kept_channels", "prune_channels"]
