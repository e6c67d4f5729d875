"""The DataLoader factory the training engine uses.

::

    loader = build_loader(dataset, batch_size=32, train=True, num_workers=8, seed=0)
    for epoch in range(epochs):
        loader.set_epoch(epoch)          # reshuffles (and tells DistributedSampler the epoch)
        for batch in loader: ...         # batch["video"]: (B, C, T, H, W) or (B, V, C, T, H, W)
        loader.skipped                   # unreadable videos replaced this epoch (all workers)

- Shuffling: ``train=True`` shuffles with a generator seeded by ``seed + epoch`` and drops the
  last incomplete batch; ``train=False`` keeps order and every sample.
- Distributed: when ``torch.distributed`` is initialised, a ``DistributedSampler`` (same seed,
  ``shuffle=train``, ``drop_last=train``) splits the data across ranks.
- Workers: ``num_workers`` processes with ``persistent_workers`` and ``prefetch_factor``; each
  worker seeds ``random``, ``numpy`` and ``torch`` from the loader's seed, epoch and worker id,
  so a run is reproducible for a given (seed, num_workers).
- ``pin_memory``: default on when CUDA is available.
- Skipped videos: the loader adds up the ``"skipped"`` field of each batch (it comes back from every
  worker), logs the total with a warning at the end of each epoch (when it is not zero), and keeps
  it in ``loader.skipped`` until the next epoch starts or :meth:`VideoLoader.reset_skipped`.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, \
    SequentialSampler

log = logging.getLogger(__name__)


def seed_worker(worker_id: int) -> None:
    """Seed ``random`` and ``numpy`` of a worker from the seed torch gave it (loader seed based)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class VideoLoader(DataLoader):
    """A ``DataLoader`` that knows its epoch and counts skipped (unreadable) videos."""

    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.epoch = 0
        self.skipped = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch: reshuffles deterministically from ``seed + epoch``."""
        self.epoch = epoch
        if isinstance(self.sampler, DistributedSampler):
            self.sampler.set_epoch(epoch)
        if self.generator is not None:
            self.generator.manual_seed(self.seed + epoch)

    def reset_skipped(self) -> int:
        """Return the skipped count and set it to zero."""
        count, self.skipped = self.skipped, 0
        return count

    def __iter__(self) -> Iterator[Any]:
        self.skipped = 0
        for batch in super().__iter__():
            if isinstance(batch, dict) and "skipped" in batch:
                self.skipped += int(torch.as_tensor(batch["skipped"]).sum())
            yield batch
        if self.skipped:
            log.warning("epoch %d: %d unreadable video(s) were skipped and replaced by others "
                        "(see the warnings above for their paths)", self.epoch, self.skipped)


def build_loader(dataset: Dataset, batch_size: int, *, train: bool, num_workers: int = 0,
                 seed: int = 0, pin_memory: bool | None = None, drop_last: bool | None = None,
                 prefetch_factor: int = 2, persistent_workers: bool = True) -> VideoLoader:
    """A :class:`VideoLoader` over ``dataset`` (see the module docstring for the behaviour)."""
    drop_last = train if drop_last is None else drop_last
    pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
    generator = torch.Generator().manual_seed(seed)
    if dist.is_available() and dist.is_initialized():
        sampler = DistributedSampler(dataset, shuffle=train, seed=seed, drop_last=drop_last)
    elif train:
        sampler = RandomSampler(dataset, generator=generator)
    else:
        sampler = SequentialSampler(dataset)
    extra = {}
    if num_workers > 0:
        extra = {"persistent_workers": persistent_workers, "prefetch_factor": prefetch_factor,
                 "worker_init_fn": seed_worker}
    return VideoLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                       pin_memory=pin_memory, drop_last=drop_last, generator=generator,
                       seed=seed, **extra)
