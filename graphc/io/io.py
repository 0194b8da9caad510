"""MXNet's data iterators (mx.io): DataDesc, DataBatch, DataIter, NDArrayIter, ResizeIter, PrefetchingIter,
MNISTIter. Batches are NDArrays; an epoch ends with StopIteration and reset() starts the next one."""
import collections
import gzip
import os
import queue
import threading

import numpy as np

from ..base import GraphcError, GraphcLoadError, GraphcTypeError
from ..ndarray.ndarray import NDArray, array


class DataDesc(collections.namedtuple('DataDesc', ['name', 'shape'])):
    """Name and shape of one input (a tuple, as MXNet's), plus its dtype and layout ('NCHW': batch axis 0)."""

    def __new__(cls, name, shape, dtype=np.float32, layout='NCHW'):
        ret = super().__new__(cls, name, tuple(shape))
        ret.dtype, ret.layout = dtype, layout
        return ret

    def __repr__(self):
        return f"DataDesc[{self.name},{self.shape},{self.dtype},{self.layout}]"

    @staticmethod
    def get_batch_axis(layout):
        """The index of 'N' in the layout (0 when no layout is given)."""
        return 0 if layout is None else layout.find('N')

    @staticmethod
    def get_list(shapes, types):
        """DataDescs from [(name, shape)] and, optionally, [(name, dtype)]."""
        types = dict(types) if types is not None else {}
        return [DataDesc(n, s, types.get(n, np.float32)) for n, s in shapes]


class DataBatch:
    """One batch: lists of data and label NDArrays; `pad` counts the trailing samples that are filler."""

    def __init__(self, data, label=None, pad=None, index=None, bucket_key=None, provide_data=None,
                 provide_label=None):
        if data is not None and not isinstance(data, (list, tuple)):
            raise GraphcTypeError(f"DataBatch: data must be a list of NDArrays, got {type(data).__name__}")
        if label is not None and not isinstance(label, (list, tuple)):
            raise GraphcTypeError(f"DataBatch: label must be a list of NDArrays, got {type(label).__name__}")
        self.data, self.label, self.pad, self.index = data, label, pad, index
        self.bucket_key, self.provide_data, self.provide_label = bucket_key, provide_data, provide_label

    def __str__(self):
        shapes = lambda xs: [x.shape for x in xs] if xs else xs  # noqa: E731
        return f"{type(self).__name__}: data shapes: {shapes(self.data)} label shapes: {shapes(self.label)}"


class DataIter:
    """Base class: subclasses define reset() and either next() or iter_next() with getdata()/getlabel()."""

    def __init__(self, batch_size=0):
        self.batch_size = batch_size

    def __iter__(self):
        return self

    def reset(self):
        pass

    def next(self):
        if self.iter_next():
            return DataBatch(data=self.getdata(), label=self.getlabel(), pad=self.getpad(), index=self.getindex())
        raise StopIteration

    def __next__(self):
        return self.next()

    def iter_next(self):
        raise NotImplementedError(f"{type(self).__name__} defines neither next() nor iter_next()")

    def getdata(self):
        raise NotImplementedError

    def getlabel(self):
        return None

    def getindex(self):
        return None

    def getpad(self):
        return 0


def _named_arrays(data, default_name, allow_empty):
    """[(name, NDArray)] sorted by name, from an array, a list of arrays or a dict (MXNet's naming:
    one array is `default_name`, several are `_<i>_<default_name>`)."""
    if data is None:
        if not allow_empty:
            raise GraphcError("NDArrayIter: data is required")
        return []
    if isinstance(data, (np.ndarray, NDArray)):
        data = [data]
    if isinstance(data, (list, tuple)):
        if not data and not allow_empty:
            raise GraphcError("NDArrayIter: data is an empty list")
        data = {default_name: data[0]} if len(data) == 1 else {f'_{i}_{default_name}': d for i, d in enumerate(data)}
    if not isinstance(data, dict):
        raise GraphcTypeError(f"NDArrayIter: input must be an NDArray, a NumPy array, a list of them or a dict "
                              f"of them, got {type(data).__name__}")
    out = []
    for k, v in data.items():
        if not isinstance(v, NDArray):
            try:
                v = array(v)
            except Exception:
                raise GraphcTypeError(f"NDArrayIter: {k!r} is a {type(v).__name__}, not an array") from None
        out.append((k, v))
    return sorted(out, key=lambda kv: kv[0])


class NDArrayIter(DataIter):
    """Batches over in-memory arrays (NDArray, NumPy, a list or a dict of them), along axis 0.

    last_batch_handle: 'pad' fills the last batch from the start of the data (batch.pad says how many),
    'discard' drops an incomplete last batch, 'roll_over' carries its samples into the first batch of the
    next epoch. shuffle permutes the samples at every reset.
    """

    def __init__(self, data, label=None, batch_size=1, shuffle=False, last_batch_handle='pad',
                 data_name='data', label_name='softmax_label'):
        super().__init__(batch_size)
        if last_batch_handle not in ('pad', 'discard', 'roll_over'):
            raise GraphcError(f"NDArrayIter: last_batch_handle must be 'pad', 'discard' or 'roll_over', "
                              f"got {last_batch_handle!r}")
        if int(batch_size) <= 0:
            raise GraphcError(f"NDArrayIter: batch_size must be positive, got {batch_size}")
        self.data = _named_arrays(data, data_name, allow_empty=False)
        self.label = _named_arrays(label, label_name, allow_empty=True)
        # as MXNet's: the first data array sets the sample count; longer inputs are read up to it (their
        # extra samples are never batched), shorter ones cannot fill the batches
        n = self.data[0][1].shape[0]
        for k, v in self.data + self.label:
            if v.shape[0] < n:
                raise GraphcError(f"NDArrayIter: {k!r} has {v.shape[0]} samples along axis 0, fewer than the {n} "
                                  f"of {self.data[0][0]!r}, which sets the sample count")
        if last_batch_handle == 'discard' and n < batch_size:
            raise GraphcError(f"NDArrayIter: batch_size {batch_size} is larger than the {n} samples, and "
                              "last_batch_handle='discard' would leave no batch")
        self.shuffle, self.last_batch_handle = shuffle, last_batch_handle
        self.num_data = n - n % batch_size if last_batch_handle == 'discard' else n
        self.num_samples, self.idx = n, np.arange(n)
        self.cursor = -batch_size
        self._carry = None   # roll_over: the samples of the last incomplete batch, for the next epoch
        self._order = self.idx
        self.reset()

    @property
    def provide_data(self):
        return [DataDesc(k, (self.batch_size,) + v.shape[1:], v.dtype) for k, v in self.data]

    @property
    def provide_label(self):
        return [DataDesc(k, (self.batch_size,) + v.shape[1:], v.dtype) for k, v in self.label]

    def hard_reset(self):
        """Start over, forgetting samples carried over by roll_over."""
        self._carry = None
        self._new_epoch()
        self.cursor = -self.batch_size

    def reset(self):
        self._new_epoch()
        self.cursor = -self.batch_size if self._carry is None else -self.batch_size - len(self._carry)

    def _new_epoch(self):
        if self.shuffle:  # idx: which sample sits at each position of this epoch (MXNet's attribute)
            from ..random import generator
            self._order = self.idx = generator().permutation(self.num_samples)
        else:
            self._order = self.idx

    def iter_next(self):
        self.cursor += self.batch_size
        return self.cursor < self.num_data

    def next(self):
        if not self.iter_next():
            raise StopIteration
        sel, pad = self._selection()
        if self.cursor < 0:
            self._carry = None
        elif self.last_batch_handle == 'roll_over' and len(sel) < self.batch_size:
            self._carry = sel  # too few for a batch: they start the next epoch
            raise StopIteration
        return DataBatch(data=self._take(self.data, sel), label=self._take(self.label, sel), pad=pad, index=None)

    def _selection(self):
        """(sample indices of the current batch, pad)."""
        bs, c = self.batch_size, self.cursor
        if c < 0:  # roll_over: the carried samples, then the first ones of this epoch (pad: how many carried)
            return np.concatenate([self._carry, self._order[:c + bs]]), len(self._carry)
        sel = self._order[c:min(c + bs, self.num_data)]
        if self.last_batch_handle == 'pad' and len(sel) < bs:
            extra = np.resize(self._order, bs - len(sel))  # wraps around for tiny datasets
            return np.concatenate([sel, extra]), bs - len(sel)
        return sel, 0

    @staticmethod
    def _take(source, sel):
        if not source:
            return []
        contiguous = len(sel) and np.all(np.diff(sel) == 1)
        return [v[int(sel[0]):int(sel[-1]) + 1] if contiguous else NDArray(v._data[sel]) for _, v in source]

    def getdata(self):
        return self._take(self.data, self._selection()[0])

    def getlabel(self):
        return self._take(self.label, self._selection()[0])

    def getpad(self):
        return self._selection()[1]


def _read_csv(path, width, dtype, what):
    """The rows of a CSV file (or of every file in a directory, by name) as a (rows, width) array of dtype;
    every row must hold `width` numbers. Memory follows the file's size, nothing it declares."""
    files = sorted(os.path.join(path, f) for f in os.listdir(path)) if os.path.isdir(path) else [path]
    rows = []
    for f in files:
        if not os.path.isfile(f):
            raise GraphcLoadError(f"CSVIter: {what} file {f!r} not found")
        with open(f) as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                cells = line.split(',')
                if len(cells) != width:
                    raise GraphcLoadError(f"CSVIter: {f}:{n}: {len(cells)} values, the {what} shape needs {width}")
                try:
                    rows.append([int(c) if dtype.kind == 'i' else float(c) for c in cells])
                except ValueError:
                    raise GraphcLoadError(f"CSVIter: {f}:{n}: not all {dtype.name} numbers: {line[:80]!r}") from None
    try:
        return np.array(rows, dtype=dtype).reshape(len(rows), width)
    except OverflowError:
        raise GraphcLoadError(f"CSVIter: a value in {path} does not fit {dtype.name}") from None


class CSVIter(DataIter):
    """MXNet's CSVIter: each row of data_csv (a file, or a directory of them) reshaped to data_shape; labels
    from label_csv (label_shape; (1,) gives (batch,) labels) or zeros. dtype: float32, int32 or int64.

    round_batch=True: the last batch is completed from the start of the data (pad: how many), and the next
    epoch goes on after those rows (a reset() right after such a batch does not rewind). round_batch=False:
    the last batch is short, its pad slots keep the previous batch's values, and reset() rewinds."""

    def __init__(self, data_csv, data_shape, label_csv=None, label_shape=(1,), batch_size=1, round_batch=True,
                 dtype='float32', data_name='data', label_name='softmax_label', **kwargs):
        super().__init__(int(batch_size))
        dtype = np.dtype(dtype)
        if dtype.name not in ('float32', 'int32', 'int64'):
            raise GraphcError(f"CSVIter: dtype must be float32, int32 or int64, got {dtype.name}")
        if self.batch_size <= 0:
            raise GraphcError(f"CSVIter: batch_size must be positive, got {batch_size}")
        self._dshape, self._lshape = tuple(int(d) for d in data_shape), tuple(int(d) for d in label_shape)
        self._data = _read_csv(data_csv, int(np.prod(self._dshape)), dtype, 'data')
        n = len(self._data)
        if label_csv in (None, 'NULL'):
            self._label = np.zeros((n, int(np.prod(self._lshape))), np.float32)
        else:
            self._label = _read_csv(label_csv, int(np.prod(self._lshape)), np.dtype('float32'), 'label')
            if len(self._label) != n:
                raise GraphcLoadError(f"CSVIter: {n} data rows but {len(self._label)} label rows")
        self.round_batch, self._names = bool(round_batch), (data_name, label_name)
        lb = self._lshape if self._lshape != (1,) else ()
        self._bdata = np.zeros((self.batch_size,) + self._dshape, dtype)
        self._blabel = np.zeros((self.batch_size,) + lb, np.float32)
        self._bindex = np.zeros(self.batch_size, np.uint64)
        self._pos, self._overflow, self._pad, self._has = 0, 0, 0, False

    @property
    def provide_data(self):
        return [DataDesc(self._names[0], self._bdata.shape, self._bdata.dtype.type)]

    @property
    def provide_label(self):
        return [DataDesc(self._names[1], self._blabel.shape, np.float32)]

    def reset(self):
        if not self.round_batch or not self._overflow:
            self._pos = 0
        self._overflow = 0

    def _put(self, slot):
        r = self._pos
        self._bdata[slot] = self._data[r].reshape(self._dshape)
        self._blabel[slot] = self._label[r].reshape(self._blabel.shape[1:])
        self._bindex[slot] = r
        self._pos += 1

    def iter_next(self):
        self._has = False
        if self._overflow:  # after a wrapped batch the epoch is over until reset()
            return False
        n, bs, top = len(self._data), self.batch_size, 0
        while top < bs and self._pos < n:
            self._put(top)
            top += 1
        if top == 0:
            return False
        self._pad = 0
        if top < bs:
            if self.round_batch:
                self._pos = 0
                while top < bs:
                    if self._pos >= n:
                        raise GraphcError(f"CSVIter: {n} rows cannot complete a batch of {bs} (round_batch)")
                    self._put(top)
                    top, self._overflow = top + 1, self._overflow + 1
                self._pad = self._overflow
            else:
                self._pad = bs - top
        self._has = True
        return True

    def _check(self):
        if not self._has:
            raise GraphcError("CSVIter: no current batch (call next() / iter_next() first)")

    def next(self):
        if not self.iter_next():
            raise StopIteration
        return DataBatch(data=[self.getdata()], label=[self.getlabel()], pad=self.getpad(), index=self.getindex())

    def getdata(self):  # one NDArray, as MXNet's C++ iterators answer
        self._check()
        return array(self._bdata, dtype=self._bdata.dtype)

    def getlabel(self):
        self._check()
        return array(self._blabel)

    def getindex(self):
        self._check()
        return self._bindex.copy()

    def getpad(self):
        return self._pad


class ResizeIter(DataIter):
    """Exactly `size` batches per epoch from data_iter, restarting it when it runs out (reset_internal:
    whether reset() also resets the inner iterator)."""

    def __init__(self, data_iter, size, reset_internal=True):
        super().__init__(data_iter.batch_size)
        self.data_iter, self.size, self.reset_internal = data_iter, int(size), reset_internal
        self.cur, self.current_batch = 0, None
        self.provide_data, self.provide_label = data_iter.provide_data, data_iter.provide_label
        self.default_bucket_key = getattr(data_iter, 'default_bucket_key', None)

    def reset(self):
        self.cur = 0
        if self.reset_internal:
            self.data_iter.reset()

    def iter_next(self):
        if self.cur == self.size:
            return False
        try:
            self.current_batch = self.data_iter.next()
        except StopIteration:
            self.data_iter.reset()
            self.current_batch = self.data_iter.next()
        self.cur += 1
        return True

    def next(self):
        if not self.iter_next():
            raise StopIteration
        return self.current_batch

    def getdata(self):
        return self.current_batch.data

    def getlabel(self):
        return self.current_batch.label

    def getindex(self):
        return self.current_batch.index

    def getpad(self):
        return self.current_batch.pad


class PrefetchingIter(DataIter):
    """Reads the next batch of each iterator in a background thread while the current one is used.
    Several iterators are combined: their data (and labels) are concatenated into one batch;
    rename_data / rename_label (one dict per iterator) rename the provided descriptors."""

    def __init__(self, iters, rename_data=None, rename_label=None):
        iters = iters if isinstance(iters, list) else [iters]
        if not iters:
            raise GraphcError("PrefetchingIter: needs at least one iterator")
        super().__init__(iters[0].batch_size)
        self.iters, self.rename_data, self.rename_label = iters, rename_data, rename_label
        self._queues = [queue.Queue(maxsize=1) for _ in iters]
        self._threads = []
        self._start()

    def _start(self):
        def fetch(it, q):
            while True:
                try:
                    q.put(('batch', it.next()))
                except StopIteration:
                    q.put(('end', None))
                    return
                except Exception as e:  # raised in the consumer, with its type
                    q.put(('error', e))
                    return
        self._threads = [threading.Thread(target=fetch, args=(it, q), daemon=True)
                         for it, q in zip(self.iters, self._queues)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _renamed(descs, renames):
        if renames is None:
            return [d for ds in descs for d in ds]
        return [DataDesc(r.get(d.name, d.name), d.shape, d.dtype, d.layout)
                for ds, r in zip(descs, renames) for d in ds]

    @property
    def provide_data(self):
        return self._renamed([it.provide_data for it in self.iters], self.rename_data)

    @property
    def provide_label(self):
        return self._renamed([it.provide_label for it in self.iters], self.rename_label)

    def reset(self):
        for q in self._queues:  # let every producer finish its epoch, then restart
            while True:
                kind, _ = q.get()
                if kind != 'batch':
                    break
        for t in self._threads:
            t.join()
        for it in self.iters:
            it.reset()
        self._start()

    def next(self):
        got = [q.get() for q in self._queues]
        for kind, v in got:
            if kind == 'error':
                raise v
        ended = [kind == 'end' for kind, _ in got]
        if any(ended):
            if not all(ended):
                raise GraphcError("PrefetchingIter: the iterators have different numbers of batches")
            for q in self._queues:  # keep the end marker for reset()
                q.put(('end', None))
            raise StopIteration
        batches = [v for _, v in got]
        return DataBatch(data=[d for b in batches for d in b.data],
                         label=[lb for b in batches for lb in (b.label or [])], pad=batches[0].pad,
                         index=batches[0].index, provide_data=self.provide_data, provide_label=self.provide_label)


# ---------------------------------------------------------------- MNIST
def _read_idx(path, magic, dims):
    """An IDX file (or its .gz), checked by gluon.data.vision's parser."""
    from ..gluon.data.vision import parse_idx, mnist_search_path
    candidates = [path, path + '.gz'] + [os.path.join(r, os.path.basename(path) + ext)
                                        for r in mnist_search_path() for ext in ('', '.gz')]
    found = next((p for p in candidates if os.path.isfile(p)), None)
    if found is None:
        raise GraphcLoadError(f"MNISTIter: {path} not found (looked for {path}, {path}.gz and the bundled MNIST "
                              f"in {', '.join(mnist_search_path())})")
    if os.path.getsize(found) > 64 << 20:
        raise GraphcLoadError(f"MNISTIter: {found} is {os.path.getsize(found)} bytes, far more than MNIST")
    with open(found, 'rb') as f:
        raw = f.read()
    if found.endswith('.gz'):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise GraphcLoadError(f"MNISTIter: {found}: not a valid gzip file ({e})") from None
    return parse_idx(raw, found, magic, dims)


class MNISTIter(NDArrayIter):
    """MXNet's MNIST iterator over the IDX files: data float32 in [0, 1], (batch, 1, 28, 28) or, with
    flat=True, (batch, 784); labels float32 (batch,). A missing file is also looked for as .gz and in the
    bundled data/mnist. num_parts/part_index take one contiguous part (for several workers)."""

    def __init__(self, image='./train-images-idx3-ubyte', label='./train-labels-idx1-ubyte', batch_size=128,
                 shuffle=False, flat=False, seed=0, silent=False, num_parts=1, part_index=0,
                 data_name='data', label_name='softmax_label', **kwargs):
        labels = _read_idx(label, 0x801, (None,))
        images = _read_idx(image, 0x803, (len(labels), 28, 28))
        if not 0 <= part_index < num_parts:
            raise GraphcError(f"MNISTIter: part_index {part_index} is not in [0, {num_parts})")
        n = len(labels) // num_parts
        part = slice(part_index * n, (part_index + 1) * n)
        x = images[part].astype(np.float32) / 255.0
        x = x.reshape(len(x), 784) if flat else x.reshape(len(x), 1, 28, 28)
        y = labels[part].astype(np.float32)
        if shuffle:  # MNISTIter shuffles once, with its own seed
            p = np.random.RandomState(seed).permutation(len(y))
            x, y = x[p], y[p]
        super().__init__(x, y, batch_size=batch_size, shuffle=False, last_batch_handle='pad',
                         data_name=data_name, label_name=label_name)

    def getdata(self):  # one NDArray, as MXNet's C++ iterators answer
        return super().getdata()[0]

    def getlabel(self):
        return super().getlabel()[0]
