"""genvision.nn.padding: the sizes the any-size convolutional nets pad to, the reflect/replicate choice,
and the same graph-friendly arithmetic under torch.export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from genvision.nn.padding import pad_to_multiple, padded_side


@pytest.mark.parametrize(("side", "multiple", "minimum", "want"),
                         [(15, 4, 1, 16), (16, 4, 1, 16), (17, 4, 1, 20), (1, 4, 8, 8), (9, 4, 8, 12),
                          (3, 4, 6, 8), (5, 1, 1, 5), (33, 16, 1, 48)])
def test_padded_side_is_the_smallest_multiple_at_least_the_side_and_the_minimum(side, multiple, minimum, want):
    assert padded_side(side, multiple, minimum) == want


def test_sides_already_a_multiple_come_back_unpadded_and_unchanged():
    x = torch.rand(2, 3, 8, 12)
    padded, size = pad_to_multiple(x, 4)
    assert padded is x and size == (8, 12)


def test_reflection_where_the_sides_allow_it_and_the_edge_replicated_where_they_do_not():
    x = torch.rand(1, 3, 15, 18)
    padded, size = pad_to_multiple(x, 4)
    assert size == (15, 18) and torch.equal(padded, F.pad(x, (0, 2, 0, 1), mode="reflect"))
    tiny = torch.rand(1, 3, 2, 5)  # 6 rows of padding cannot reflect 2 rows
    padded, _ = pad_to_multiple(tiny, 4, minimum=8)
    assert padded.shape == (1, 3, 8, 8) and torch.equal(padded, F.pad(tiny, (0, 3, 0, 6), mode="replicate"))
    padded, _ = pad_to_multiple(x, 4, mode="replicate")
    assert torch.equal(padded, F.pad(x, (0, 2, 0, 1), mode="replicate"))


def test_an_exported_graph_pads_every_size_it_is_given():
    class Crop(torch.nn.Module):
        def forward(self, x):
            padded, (h, w) = pad_to_multiple(x, 4)
            return padded * 2  # (B, C, H', W'): the padded size is the output's

    dim = torch.export.Dim.DYNAMIC
    program = torch.export.export(Crop(), (torch.rand(1, 3, 15, 18),), dynamic_shapes=({2: dim, 3: dim},))
    for h, w in [(15, 18), (16, 16), (21, 9)]:
        x = torch.rand(1, 3, h, w)
        want = F.pad(x, (0, padded_side(w, 4) - w, 0, padded_side(h, 4) - h), mode="reflect") * 2
        assert torch.equal(program.module()(x), want)
