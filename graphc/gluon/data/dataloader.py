"""DataLoader and samplers, as MXNet Gluon 1.x (gluon.data.DataLoader, gluon.data.sampler).

Batches are NDArrays (a tuple of NDArrays when samples are tuples). With the default batchify,
a dataset backed by whole arrays (ArrayDataset, MNIST, their batchable transforms) is batched
by fancy-indexing those arrays once per batch, not by a Python call per sample: same values,
a few microseconds per batch. Everything runs in the calling process; shuffling draws from
graphc.random's generator, so graphc.random.seed() makes epochs reproducible.
"""
import numpy as np

from ... import random as _random
from ...base import DTYPE_CODES, GraphcError
from ...ndarray.ndarray import NDArray


class Sampler:
    """Iterates over sample indices."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    def __init__(self, length, start=0):
        self._length, self._start = length, start

    def __iter__(self):
        return iter(range(self._start, self._start + self._length))

    def __len__(self):
        return self._length


class RandomSampler(Sampler):
    """A fresh permutation of range(length) every epoch, from graphc.random.generator()."""

    def __init__(self, length):
        self._length = length

    def __iter__(self):
        return iter(_random.generator().permutation(self._length).tolist())

    def __len__(self):
        return self._length


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of batch_size. The last, short batch is kept ('keep'),
    dropped ('discard') or carried over to the start of the next epoch ('rollover')."""

    def __init__(self, sampler, batch_size, last_batch='keep'):
        if last_batch not in ('keep', 'discard', 'rollover'):
            raise GraphcError(f"last_batch must be 'keep', 'discard' or 'rollover', got {last_batch!r}")
        if batch_size < 1:
            raise GraphcError(f"batch_size must be >= 1, got {batch_size}")
        self._sampler, self._batch_size, self._last_batch = sampler, batch_size, last_batch
        self._prev = []

    def __iter__(self):
        batch, self._prev = self._prev, []
        for i in self._sampler:
            batch.append(i)
            if len(batch) == self._batch_size:
                yield batch
                batch = []
        if batch:
            if self._last_batch == 'keep':
                yield batch
            elif self._last_batch == 'rollover':
                self._prev = batch

    def __len__(self):
        n, b = len(self._sampler), self._batch_size
        if self._last_batch == 'keep':
            return (n + b - 1) // b
        if self._last_batch == 'discard':
            return n // b
        return (len(self._prev) + n) // b


def _nd(a):
    if a.dtype not in DTYPE_CODES:
        raise GraphcError(f"DataLoader: samples of dtype {a.dtype} cannot become an NDArray; supported: "
                          f"{', '.join(str(d) for d in DTYPE_CODES)} (use a transform to cast them)")
    return NDArray(a)


def default_batchify_fn(data):
    """Stack a list of samples into a batch: NDArrays and NumPy values stack along a new axis 0;
    tuples are batched element by element into a tuple."""
    first = data[0]
    if isinstance(first, NDArray):
        return NDArray(np.stack([d._data for d in data]))
    if isinstance(first, tuple):
        return tuple(default_batchify_fn(list(col)) for col in zip(*data))
    return _nd(np.asarray(data))


def _column_batch(cols):
    if isinstance(cols, tuple):
        return tuple(_column_batch(c) for c in cols)
    return cols if isinstance(cols, NDArray) else _nd(np.asarray(cols))


class DataLoader:
    """Loads batches from a dataset.

    DataLoader(dataset, batch_size, shuffle=False, sampler=None, last_batch='keep',
    batch_sampler=None, batchify_fn=None, num_workers=0). num_workers is accepted for MXNet
    compatibility; loading stays in this process (the array fast path makes workers moot).
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None, last_batch=None,
                 batch_sampler=None, batchify_fn=None, num_workers=0):
        self._dataset = dataset
        if batch_sampler is None:
            if batch_size is None:
                raise GraphcError("DataLoader: batch_size must be given unless batch_sampler is")
            if sampler is None:
                sampler = RandomSampler(len(dataset)) if shuffle else SequentialSampler(len(dataset))
            elif shuffle:
                raise GraphcError("DataLoader: shuffle must not be given together with sampler")
            batch_sampler = BatchSampler(sampler, batch_size, last_batch or 'keep')
        elif batch_size is not None or shuffle or sampler is not None or last_batch is not None:
            raise GraphcError("DataLoader: batch_size, shuffle, sampler and last_batch must not be given "
                              "together with batch_sampler")
        self._batch_sampler = batch_sampler
        self._batchify_fn = batchify_fn

    def __iter__(self):
        fast = self._batchify_fn is None and hasattr(self._dataset, '_batch')
        batchify = self._batchify_fn or default_batchify_fn
        for idx in self._batch_sampler:
            if fast:
                cols = self._dataset._batch(np.asarray(idx, dtype=np.intp))
                if cols is not None:
                    yield _column_batch(cols)
                    continue
                fast = False  # this dataset cannot batch whole arrays: do not ask again
            yield batchify([self._dataset[i] for i in idx])

    def __len__(self):
        return len(self._batch_sampler)
