"""Samplers, as MXNet Gluon 1.x's gluon.data.sampler: Sequential, Random, Batch, Filter, Interval."""
from ... import random as _random
from ...base import GraphcError


class Sampler:
    """Iterates over sample indices."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class SequentialSampler(Sampler):
    """start, start+1, ..., start+length-1."""

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


class FilterSampler(Sampler):
    """The indices of the samples of `dataset` for which fn(sample) is true."""

    def __init__(self, fn, dataset):
        self._fn, self._dataset = fn, dataset
        self._indices = [i for i in range(len(dataset)) if fn(dataset[i])]

    def __iter__(self):
        return iter(self._indices)

    def __len__(self):
        return len(self._indices)


class IntervalSampler(Sampler):
    """Every interval-th index: IntervalSampler(13, 3) gives 0, 3, 6, 9, 12, then (rollover) 1, 4, 7, 10, 2, 5, 8, 11."""

    def __init__(self, length, interval, rollover=True):
        if not 0 < interval <= length:
            raise GraphcError(f"IntervalSampler: interval {interval} must be in [1, length={length}]")
        self._length, self._interval, self._rollover = length, interval, rollover

    def __iter__(self):
        for i in range(self._interval if self._rollover else 1):
            yield from range(i, self._length, self._interval)

    def __len__(self):
        return self._length if self._rollover else len(range(0, self._length, self._interval))


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
