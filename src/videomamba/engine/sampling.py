"""Samplers and loaders whose order and randomness depend only on (seed, epoch, index).

That is what makes exact resume possible: the order of an epoch is rebuilt from ``seed + epoch``
and the batches already consumed are skipped; each sample's augmentation is drawn from RNGs
seeded with ``(seed, epoch, index)``, so it does not matter which worker reads it or when.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ResumableSampler(Sampler):
    """Shuffled (or not) indices of one rank's share of an epoch, from ``start`` on.

    Like ``DistributedSampler``: the epoch's permutation is padded (by repeating its head) to a
    multiple of ``world_size`` unless ``drop_last``, then rank r takes items r, r + W, ...
    Yields ``(epoch, index)`` pairs for :class:`SeededDataset`.
    """

    def __init__(self, length: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        self.length, self.shuffle, self.seed = length, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and skip its first ``start`` samples of this rank."""
        self.epoch, self.start = epoch, start

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.length, generator=generator).tolist()
        else:
            order = list(range(self.length))
        if self.drop_last:
            order = order[: len(order) - len(order) % self.world_size]
        else:
            pad = (-len(order)) % self.world_size
            order = order + (order * (pad // max(len(order), 1) + 1))[:pad]
        return order[self.rank :: self.world_size]

    def per_rank(self) -> int:
        return len(self.epoch_indices())

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.epoch_indices()[self.start :]:
            yield (self.epoch, index)

    def __len__(self) -> int:
        return max(self.per_rank() - self.start, 0)


class ShardSampler(Sampler):
    """Evaluation: rank r reads items r, r + W, ... of ``range(length)``.

    Like ``DistributedSampler(shuffle=False)`` the list is padded with its first items to a
    multiple of W, so every rank runs the same number of batches (FSDP needs that); the
    evaluation drops the duplicates by dataset index.
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        order = list(range(length))
        pad = (-length) % world_size
        order += (order * (pad // max(length, 1) + 1))[:pad]
        self.indices = order[rank::world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that differs for every (seed, epoch, index)."""
    mixed = np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(2, np.uint64)
    return int(mixed[0] >> np.uint64(1))


class SeededDataset(Dataset):
    """Reads ``dataset[index]`` with python, NumPy and torch RNGs seeded from ``(seed, epoch, index)``.

    The caller's RNG states are restored afterwards, so reading in the main process
    (``num_workers=0``) does not disturb dropout or anything else drawn there.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        saved = (random.getstate(), np.random.get_state(), torch.default_generator.get_state())
        seed = sample_seed(self.seed, epoch, index)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.default_generator.set_state(saved[2])


def train_loader(dataset: Dataset, sampler: ResumableSampler, batch_size: int, num_workers: int,
                 *, pin_memory: bool = False, collate_fn: Any = None) -> DataLoader:
    """A loader over ``SeededDataset(dataset)`` in ``sampler``'s order, full batches only.

    The loader gets its own generator so that creating an iterator does not draw from the
    global torch RNG (which would make a resumed run diverge).
    """
    generator = torch.Generator().manual_seed(sampler.seed + sampler.epoch)
    return DataLoader(SeededDataset(dataset, sampler.seed), batch_size=batch_size, sampler=sampler,
                      num_workers=num_workers, drop_last=True, pin_memory=pin_memory,
                      generator=generator, collate_fn=collate_fn,
                      persistent_workers=False)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int, rank: int = 0,
                world_size: int = 1, *, collate_fn: Any = None) -> DataLoader:
    """Every sample at least once across ranks (see :class:`ShardSampler`), in index order."""
    sampler = ShardSampler(len(dataset), rank, world_size)  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      drop_last=False, collate_fn=collate_fn,
                      generator=torch.Generator().manual_seed(0))


def steps_per_epoch(sampler: ResumableSampler, batch_size: int) -> int:
    return sampler.per_rank() // batch_size

