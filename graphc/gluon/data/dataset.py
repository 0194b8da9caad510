"""Datasets, as MXNet Gluon 1.x's gluon.data: Dataset (filter, shard, take, sample, transform,
transform_first), SimpleDataset, ArrayDataset, RecordFileDataset.

Besides per-sample `__getitem__`, a dataset backed by whole arrays answers `_batch(indices)`:
the samples at an integer index array, gathered with one fancy-index per array instead of one
Python call per sample. It returns what stacking the samples would (a tuple of columns when the
samples are tuples; a column is an NDArray where samples hold NDArrays, a NumPy array where they
hold NumPy values), or None when it cannot (then DataLoader falls back to per-sample calls).
A lazy transform keeps the fast path when its function is `batchable` (graphc's vision
transforms are: they accept a batch as well as one sample).
"""
import os

import numpy as np

from ...base import GraphcError
from ...ndarray.ndarray import NDArray


class Dataset:
    """Abstract dataset: implement __getitem__ and __len__."""

    def __getitem__(self, idx):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError

    def _batch(self, idx):
        return None

    def filter(self, fn):
        """The samples for which fn(sample) is true (fn sees samples after any lazy transform)."""
        from .sampler import FilterSampler
        return _SampledDataset(self, FilterSampler(fn, self))

    def shard(self, num_shards, index):
        """Part `index` of `num_shards` contiguous parts; the first len % num_shards parts get one more sample."""
        if not 0 <= index < num_shards:
            raise GraphcError(f"Dataset.shard: index {index} out of bound for {num_shards} shards")
        n, rest = divmod(len(self), num_shards)
        start = n * index + min(index, rest)
        from .sampler import SequentialSampler
        return _SampledDataset(self, SequentialSampler(n + (index < rest), start))

    def take(self, count):
        """The first `count` samples (all of them when count is None or larger than the dataset)."""
        if count is None or count > len(self):
            count = len(self)
        from .sampler import SequentialSampler
        return _SampledDataset(self, SequentialSampler(count))

    def sample(self, sampler):
        """The samples at the indices `sampler` yields (a gluon.data.Sampler)."""
        from .sampler import Sampler
        if not isinstance(sampler, Sampler):
            raise TypeError(f"Invalid sampler type: {type(sampler).__name__}. Expected gluon.data.Sampler instead.")
        return _SampledDataset(self, sampler)

    def transform(self, fn, lazy=True):
        """A dataset whose samples are fn(*sample) (fn(sample) when samples are not tuples).

        lazy=False applies fn to every sample now (one vectorized call when fn is batchable)."""
        trans = _LazyTransformDataset(self, fn)
        if lazy:
            return trans
        cols = trans._batch(np.arange(len(trans)))
        if cols is not None:
            return ArrayDataset(*cols) if isinstance(cols, tuple) else SimpleDataset(cols)
        return SimpleDataset([trans[i] for i in range(len(trans))])

    def transform_first(self, fn, lazy=True):
        """Transform only the first element of each sample (the data, not the label)."""
        return self.transform(_TransformFirst(fn), lazy)


def _item(col, idx):
    return NDArray(col._data[idx]) if isinstance(col, NDArray) else col[idx]


def _take(col, idx):
    """Rows idx of one column (NDArray or numpy array), or None for anything else (e.g. a list)."""
    if isinstance(col, NDArray):
        return NDArray(col._data[idx])
    if isinstance(col, np.ndarray):
        return col[idx]
    return None


class SimpleDataset(Dataset):
    """A dataset over anything indexable with a length: a list, a NumPy array, an NDArray."""

    def __init__(self, data):
        self._data = data

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        return _item(self._data, idx)

    def _batch(self, idx):
        return _take(self._data, idx)


class ArrayDataset(Dataset):
    """Samples are (a[i], b[i], ...) of equally long arrays (or a[i] alone for one array).

    1-D NDArrays are kept as NumPy, as MXNet does, so their samples are scalars."""

    def __init__(self, *args):
        if not args:
            raise GraphcError("ArrayDataset needs at least one array")
        n = len(args[0])
        for i, a in enumerate(args):
            if len(a) != n:
                raise GraphcError(f"ArrayDataset: all arrays must have the same length; array 0 has {n} "
                                  f"items, array {i} has {len(a)}")
        self._length = n
        self._data = [a._data if isinstance(a, NDArray) and a.ndim == 1 else a for a in args]

    def __len__(self):
        return self._length

    def __getitem__(self, idx):
        if len(self._data) == 1:
            return _item(self._data[0], idx)
        return tuple(_item(d, idx) for d in self._data)

    def _batch(self, idx):
        cols = tuple(_take(d, idx) for d in self._data)
        if any(c is None for c in cols):
            return None
        return cols[0] if len(cols) == 1 else cols


class _LazyTransformDataset(Dataset):
    def __init__(self, data, fn):
        self._data, self._fn = data, fn

    def __len__(self):
        return len(self._data)

    def __getitem__(self, idx):
        item = self._data[idx]
        return self._fn(*item) if isinstance(item, tuple) else self._fn(item)

    def _batch(self, idx):
        if not getattr(self._fn, 'batchable', False):
            return None
        cols = self._data._batch(idx)
        if cols is None:
            return None
        return self._fn(*cols) if isinstance(cols, tuple) else self._fn(cols)


class _TransformFirst:
    def __init__(self, fn):
        self._fn = fn
        self.batchable = getattr(fn, 'batchable', False)

    def __call__(self, x, *args):
        return (self._fn(x),) + args if args else self._fn(x)


class _SampledDataset(Dataset):
    """The samples of `dataset` at the indices a sampler yields (drawn once, when made)."""

    def __init__(self, dataset, sampler):
        self._dataset, self._sampler = dataset, sampler
        self._indices = np.asarray(list(iter(sampler)), dtype=np.intp)

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, idx):
        return self._dataset[int(self._indices[idx])]

    def _batch(self, idx):
        return self._dataset._batch(self._indices[idx])


class RecordFileDataset(Dataset):
    """The raw records of a RecordIO file (MXNet's .rec, with its .idx index beside it) as bytes."""

    def __init__(self, filename):
        from ...recordio import MXIndexedRecordIO
        self.idx_file, self.filename = os.path.splitext(filename)[0] + '.idx', filename
        self._record = MXIndexedRecordIO(self.idx_file, self.filename, 'r')

    def __getitem__(self, idx):
        return self._record.read_idx(self._record.keys[idx])

    def __len__(self):
        return len(self._record.keys)
