"""A guard that fails a test as soon as torch creates a real (non-meta) tensor above a byte limit.

Validation must refuse absurd sizes *before* allocating; checking the process's memory after
the fact would be noisy (and a successful 8 GiB allocation on a shared CI machine is itself
the failure). Every aten op's outputs pass through this dispatch mode, so the tensor that
breaks the limit is named with the op that made it.
"""

from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class TensorTooLarge(AssertionError):
    pass


class AllocationGuard(TorchDispatchMode):
    def __init__(self, max_bytes: int):
        super().__init__()
        self.max_bytes = max_bytes
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                size = t.numel() * t.element_size()
                self.largest = max(self.largest, size)
                if size > self.max_bytes:
                    raise TensorTooLarge(f"{func} made a {tuple(t.shape)} tensor of {size} bytes, "
                                         f"over the test's limit of {self.max_bytes}")
        return out
