"""Batches whose order is a pure function of (seed, step), so a resumed run sees the same data.

Each epoch is a permutation drawn from its own generator seeded with (seed, epoch); the
position inside the epoch follows from the step. Nothing about the data order needs saving.

With several ranks each step's *global* batch (``batch_size * world_size`` items of the same
permutation) is cut into ``world_size`` consecutive shards, rank r taking shard r: every example is
seen once per epoch across ranks, and the data order still depends only on (seed, step).

Items loaded one by one (a folder of files, random patches) carry their own seed, a function of (seed,
epoch, position in the epoch): their random crops and flips are then the same with 0 or N DataLoader
workers, on any rank, and after a resume; a worker's own RNG stream would depend on which worker took
which batch and on when the loader started.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import ConfigError


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**63)  # any 64-bit seed fits
    return torch.randperm(num_items, generator=generator)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's index batches from ``start_step`` on, forever; drops each epoch's ragged tail."""

    def __init__(self, num_items: int, batch_size: int, seed: int, start_step: int = 0, *, rank: int = 0,
                 world_size: int = 1, seeded: bool = False):
        self.num_items, self.batch_size, self.seed, self.start_step = num_items, batch_size, seed, start_step
        self.seeded = seeded  # yield (index, item seed) pairs for SeededItems
        self.rank, self.global_batch = rank, batch_size * world_size
        if num_items < self.global_batch:
            # Every batch is full (ragged tails are dropped), so such a run could not take one step.
            ranks = f" x {world_size} ranks" if world_size > 1 else ""
            raise ConfigError(f"train.batch_size={batch_size}{ranks} is larger than the training data ({num_items} "
                              f"examples): lower train.batch_size (or raise data.limit)")
        self.steps_per_epoch = num_items // self.global_batch

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while True:
            epoch, position = divmod(step, self.steps_per_epoch)
            order = epoch_permutation(self.num_items, self.seed, epoch)
            for i in range(position, self.steps_per_epoch):
                first = i * self.global_batch + self.rank * self.batch_size
                indices = order[first:first + self.batch_size].tolist()
                if self.seeded:
                    # Python's hash of a tuple of ints is fixed (PYTHONHASHSEED salts only str and bytes).
                    yield [(index, hash((self.seed, epoch, first + j)) & (2**63 - 1)) for j, index in enumerate(indices)]
                else:
                    yield indices
            step = (epoch + 1) * self.steps_per_epoch

    def __len__(self) -> int:  # DataLoader wants a length; the stream is endless
        return 2**62


class SeededItems(Dataset):
    """``dataset[index]`` with the torch RNG seeded by the item's own seed (and left as it was)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def batch_stream(dataset: Dataset, batch_size: int, seed: int, start_step: int, workers: int = 0, *, rank: int = 0,
                 world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if workers == 0 and hasattr(dataset, "get_batch"):
        # In-memory datasets gather a whole batch with one indexing op: no per-item Python.
        sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, rank=rank, world_size=world_size)
        return (dataset.get_batch(torch.tensor(indices)) for indices in sampler)
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_step, rank=rank, world_size=world_size,
                               seeded=True)
    # A generator of its own: the loader draws its workers' base seed when it starts, and from the global RNG
    # that draw would shift every later noise draw of a resumed run (items carry their seeds anyway).
    loader = DataLoader(SeededItems(dataset), batch_sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)
