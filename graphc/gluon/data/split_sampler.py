"""SplitSampler: each worker of a data-parallel run reads its own shard of a dataset.

Every rank draws the same permutation of range(length) (from `seed` and the epoch, so a run is reproducible
and each epoch differs) and takes every num_parts-th index starting at part_index. A local batch t of
size b on every rank is then a part of the same global batch (positions t*N*b .. (t+1)*N*b of the
permutation), so N ranks with batch b see exactly the batches of one process with batch N*b drawing the
same permutation. The tail that does not divide by num_parts is dropped, so every rank has the same number
of samples (a rank with one batch more would wait for the others forever).
"""
import numpy as np

from ...base import GraphcError
from .dataloader import Sampler


class SplitSampler(Sampler):
    """SplitSampler(length, num_parts=1, part_index=0, shuffle=True, seed=0); set_epoch(e) before each epoch."""

    def __init__(self, length, num_parts=1, part_index=0, shuffle=True, seed=0):
        if num_parts < 1 or not 0 <= part_index < num_parts:
            raise GraphcError(f"SplitSampler: part_index must be in [0, num_parts), got part {part_index} of "
                              f"{num_parts}")
        if length < num_parts:
            raise GraphcError(f"SplitSampler: {length} samples cannot be split into {num_parts} parts")
        self._length, self._parts, self._index = int(length), int(num_parts), int(part_index)
        self._shuffle, self._seed, self._epoch = shuffle, int(seed), 0

    def set_epoch(self, epoch):
        """The epoch whose permutation __iter__ gives (the same on every rank)."""
        self._epoch = int(epoch)

    def order(self):
        """The permutation of every index this epoch (what one process with the same seed would read)."""
        if not self._shuffle:
            return np.arange(self._length)
        return np.random.RandomState((self._seed * 1000003 + self._epoch) % 2 ** 32).permutation(self._length)

    def __iter__(self):
        n = len(self) * self._parts
        return iter(self.order()[:n][self._index::self._parts].tolist())

    def __len__(self):
        return self._length // self._parts
