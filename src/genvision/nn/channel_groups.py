"""What structured pruning needs to know of a network: which channels must be removed together.

A :class:`ChannelGroup` names one width of a model's config and the layers that width couples: the
layers that *produce* the channels (their output channels: weight rows and bias) and those that *read*
them (their input channels: weight columns). Residual sums tie every layer adding into the same trunk
to one group; a convolution feeding ``PixelShuffle(r)`` produces ``r*r`` consecutive rows per channel it
hands on (``shuffled``). A model that declares its groups (``channel_groups()``) can be pruned into a
smaller instance of its own registered config (genvision.export.pruning).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelGroup:
    field: str  # the config field holding this width (several groups may share one: each block's inner width)
    outputs: tuple[str, ...]  # module paths whose output channels are the group
    inputs: tuple[str, ...]  # module paths whose input channels are the group
    shuffled: tuple[tuple[str, int], ...] = ()  # (module path, output rows per channel) for convs before a shuffle

    def rows_per_channel(self, path: str) -> int:
        return dict(self.shuffled).get(path, 1)


__all__ = ["ChannelGroup"]
