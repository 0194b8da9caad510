"""DataLoader, as MXNet Gluon 1.x's gluon.data.DataLoader.

Batches are NDArrays (a tuple of NDArrays when samples are tuples). With the default batchify,
a dataset backed by whole arrays (ArrayDataset, MNIST, their batchable transforms) is batched
by fancy-indexing those arrays once per batch, not by a Python call per sample: same values, a
few microseconds per batch, so it always runs in the calling process. Any other dataset with
num_workers > 0 is loaded by a pool of worker processes (forked, so the dataset and batchify_fn
need not be picklable; each batch is drawn with its own seed from graphc.random, so random
transforms are reproducible whichever worker runs them) or, with thread_pool=True, of threads.
Shuffling draws from graphc.random's generator, so graphc.random.seed() makes epochs reproducible.
"""
import collections
import multiprocessing
import multiprocessing.pool
import weakref

import numpy as np

from ... import random as _random
from ...base import DTYPE_CODES, GraphcError
from ...ndarray.ndarray import NDArray
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler  # noqa: F401 (MXNet's names here)


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


default_mp_batchify_fn = default_batchify_fn  # MXNet's name for the workers' batchify (shared memory there)


def _column_batch(cols):
    if isinstance(cols, tuple):
        return tuple(_column_batch(c) for c in cols)
    return cols if isinstance(cols, NDArray) else _nd(np.asarray(cols))


# ------------------------------------------------------------------ workers
class _Shipped:
    """An NDArray's buffer on its way back from a worker process."""
    __slots__ = ('data',)

    def __init__(self, data):
        self.data = data


def _map(fn, x):
    if isinstance(x, (tuple, list)):
        return type(x)(_map(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: _map(fn, v) for k, v in x.items()}
    return fn(x)


def _ship(x):
    return _Shipped(np.ascontiguousarray(x.asnumpy())) if isinstance(x, NDArray) else x


def _unship(x):
    return NDArray(x.data) if isinstance(x, _Shipped) else x


def _worker_loop(conn, dataset, batchify_fn):
    """A worker process: (job, indices, seed) in, (job, ok, batch or error) out, until the pipe closes."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        job, indices, seed = msg
        try:
            _random.seed(seed)
            out = (job, True, _map(_ship, batchify_fn([dataset[i] for i in indices])))
        except Exception as e:  # noqa: BLE001 (re-raised in the parent)
            import traceback
            out = (job, False, (e, traceback.format_exc()))
        try:
            conn.send(out)
        except Exception:  # noqa: BLE001 (an unpicklable error or batch: say what it was)
            conn.send((job, False, (None, traceback_text(out))))


def traceback_text(out):
    job, ok, val = out
    return val[1] if not ok else f"batch of type {type(val).__name__} cannot be sent back from the worker"


class _Workers:
    """num_workers forked processes, each with its own pipe; job j goes to worker j % n. No shared locks,
    so closing (killing the processes) can never hang, whatever they are doing."""

    def __init__(self, n, dataset, batchify_fn):
        ctx = multiprocessing.get_context('fork')  # fork: the dataset and batchify_fn are inherited, not pickled
        self._conns, self._procs, self._done, self._next_job, self._abandoned = [], [], {}, 0, set()
        for _ in range(n):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(target=_worker_loop, args=(theirs, dataset, batchify_fn), daemon=True)
            p.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(p)
        self.close = weakref.finalize(self, _kill, self._procs, self._conns)

    def submit(self, indices, seed):
        job, self._next_job = self._next_job, self._next_job + 1
        self._conns[job % len(self._conns)].send((job, list(indices), seed))
        return job

    def result(self, job, timeout):
        conn = self._conns[job % len(self._conns)]
        while job not in self._done:
            if not conn.poll(timeout):
                raise multiprocessing.TimeoutError
            j, ok, val = conn.recv()
            if j in self._abandoned:  # an iterator that stopped early asked for it: drop it
                self._abandoned.discard(j)
            else:
                self._done[j] = (ok, val)
        ok, val = self._done.pop(job)
        if ok:
            return val
        err, text = val
        if err is None:
            raise GraphcError(f"DataLoader worker failed:\n{text}")
        raise err


    def abandon(self, job):
        """Nobody will ask for this job's batch (its iterator was dropped)."""
        if self._done.pop(job, None) is None:
            self._abandoned.add(job)


def _kill(procs, conns):
    for p in procs:
        if p.is_alive():
            p.kill()
    for c in conns:
        c.close()
    for p in procs:
        p.join(5)


class _Pending:
    """A job of a worker pool with the AsyncResult interface."""

    def __init__(self, workers, job):
        self._workers, self._job = workers, job

    def get(self, timeout):
        return self._workers.result(self._job, timeout)

    def abandon(self):
        self._workers.abandon(self._job)


class DataLoader:
    """Loads batches from a dataset.

    DataLoader(dataset, batch_size=None, shuffle=False, sampler=None, last_batch=None, batch_sampler=None,
    batchify_fn=None, num_workers=0, pin_memory=False, pin_device_id=0, prefetch=None, thread_pool=False,
    timeout=120). last_batch: 'keep', 'discard' or 'rollover'; prefetch: batches in flight (2*num_workers);
    timeout: seconds to wait for a worker's batch; pin_memory: batches on cpu_pinned(pin_device_id).
    """

    def __init__(self, dataset, batch_size=None, shuffle=False, sampler=None, last_batch=None, batch_sampler=None,
                 batchify_fn=None, num_workers=0, pin_memory=False, pin_device_id=0, prefetch=None,
                 thread_pool=False, timeout=120, auto_reload=True):
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
        if num_workers < 0:
            raise GraphcError(f"DataLoader: num_workers must be >= 0, got {num_workers}")
        self._batch_sampler = batch_sampler
        self._batchify_fn = batchify_fn
        self._num_workers, self._thread_pool, self._timeout = int(num_workers), thread_pool, timeout
        self._prefetch = max(1, int(prefetch) if prefetch is not None else 2 * self._num_workers)
        self._pin = (pin_memory, pin_device_id)
        self._auto_reload = auto_reload
        self._pool = None

    def _worker_pool(self):
        """The pool, made on first need (datasets on the fast path never need one) and closed with the loader."""
        if self._pool is None:
            batchify = self._batchify_fn or default_batchify_fn
            if self._thread_pool:
                self._pool = multiprocessing.pool.ThreadPool(self._num_workers)
                weakref.finalize(self, self._pool.terminate)
            else:
                self._pool = _Workers(self._num_workers, self._dataset, batchify)
        return self._pool

    def _submit(self, indices):
        pool = self._worker_pool()
        if self._thread_pool:
            ds, batchify = self._dataset, self._batchify_fn or default_batchify_fn
            return pool.apply_async(lambda: batchify([ds[i] for i in indices]))
        seed = int(_random.generator().integers(0, 2 ** 63))
        return _Pending(pool, pool.submit(indices, seed))

    def _pinned(self, batch):
        pin, dev = self._pin
        if not pin:
            return batch
        from ... import context as _ctx
        cpu_pinned = getattr(_ctx, 'cpu_pinned', None)
        if cpu_pinned is None:  # this graphc has no pinned-memory context: host memory is what it has
            return batch
        where = cpu_pinned(dev)
        return _map(lambda x: x.as_in_context(where) if isinstance(x, NDArray) else x, batch)

    def __iter__(self):
        batches = iter(self._batch_sampler)
        if self._batchify_fn is None and hasattr(self._dataset, '_batch'):
            for idx in batches:
                cols = self._dataset._batch(np.asarray(idx, dtype=np.intp))
                if cols is None:  # this dataset cannot batch whole arrays: per sample from here on
                    batches = _chain([idx], batches)
                    break
                yield self._pinned(_column_batch(cols))
            else:
                return
        if self._num_workers == 0:
            batchify = self._batchify_fn or default_batchify_fn
            for idx in batches:
                yield self._pinned(batchify([self._dataset[i] for i in idx]))
            return
        yield from _MultiWorkerIter(self, batches)

    def __len__(self):
        return len(self._batch_sampler)


def _chain(first, rest):
    yield from first
    yield from rest


class _MultiWorkerIter:
    """Keeps `prefetch` batches in flight and returns them in order. Holds the loader (and so its pool)."""

    def __init__(self, loader, batches):
        self._loader, self._batches, self._pending = loader, batches, collections.deque()
        for _ in range(loader._prefetch):
            self._push()

    def _push(self):
        idx = next(self._batches, None)
        if idx is not None:
            self._pending.append(self._loader._submit(idx))

    def __iter__(self):
        return self

    def __del__(self):
        for ret in self._pending:  # stopped early: the workers' batches for these are not wanted
            if hasattr(ret, 'abandon'):
                ret.abandon()

    def __next__(self):
        if not self._pending:
            raise StopIteration
        ret = self._pending.popleft()
        self._push()
        try:
            batch = ret.get(self._loader._timeout)
        except multiprocessing.TimeoutError:
            raise GraphcError(f"DataLoader: a worker timed out after {self._loader._timeout} seconds. A slow "
                              "transform needs a larger timeout (DataLoader(..., timeout=...)); or use fewer "
                              "num_workers") from None
        return self._loader._pinned(_map(_unship, batch))
