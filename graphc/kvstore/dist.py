"""Distributed kvstores over MPI (mpi4py): 'dist_sync', 'dist_sync_device' and 'horovod'.

Every worker (MPI rank) keeps the whole model. `init`/`broadcast` give every rank rank 0's values; a push
sums the values of this rank's devices, then over the ranks with MPI allreduce, so each rank holds the same
sum; with an optimizer set (update on kvstore) each rank applies it to its own copy of the weight (the
states stay per rank and identical, as with Horovod), else the sum is what pull gives back.

Gradients are packed into buckets of at most `bucket_cap_mb` (DDP's knob, default 25 MB; env
GRAPHC_BUCKET_MB) in the reverse order of the keys — the order backward produces them — and each bucket's
non-blocking allreduce starts as soon as it is packed, so packing the next bucket and unpacking/updating
the finished ones overlap the communication. Sums are in float32 (float16 on the wire with
compression_params={'type': 'fp16'}).

One worker (not started by mpirun, or started with -np 1) runs without MPI in the process. Under mpirun
without mpi4py installed, creating the kvstore says what to install. A rank that raises makes every rank
stop (MPI_Abort, after printing the rank and the exception); a rank that dies is noticed by mpirun, which
stops the others. Shapes and dtypes of the keys are compared across ranks when they are initialized: a
mismatch names the parameter and both shapes.
"""
import os
import sys
import time

import numpy as np

from .. import config
from ..base import GraphcError
from . import KVStore, KVStoreBase, _host, _pairs

_SIZE_VARS = ('OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'PMIX_SIZE', 'MPI_LOCALNRANKS', 'SLURM_NTASKS')
_INSTALL = "pip install 'graphc[dist]' (mpi4py and an MPI), then start the ranks with " \
           "`python -m graphc.launch -n N script.py` or `mpirun -np N python script.py`"


def launched_size():
    """The number of ranks the MPI launcher started (1 when this process was not started by one)."""
    for v in _SIZE_VARS:
        if os.environ.get(v, '').isdigit():
            return int(os.environ[v])
    return 1


def mpi():
    """mpi4py's MPI module, or an error saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise GraphcError(f"a distributed kvstore needs MPI, which is not installed ({e}): {_INSTALL}") from None
    return MPI


_hooked = []


def _abort_on_uncaught(comm):
    """An uncaught exception on one rank stops every rank (instead of the others waiting forever in a collective)."""
    if _hooked:
        return
    _hooked.append(sys.excepthook)

    def hook(kind, value, tb):
        _hooked[0](kind, value, tb)
        sys.stderr.write(f"graphc.dist: rank {comm.Get_rank()} of {comm.Get_size()} failed with "
                         f"{kind.__name__}: {value}; aborting every rank\n")
        sys.stderr.flush()
        comm.Abort(1)
    sys.excepthook = hook


_DTYPES = {np.dtype(t): i for i, t in enumerate(('float32', 'float64', 'float16', 'int32', 'int64', 'uint8', 'int8',
                                                  'bool'))}
_MAXDIM = 8


class DistKVStore(KVStore):
    """MXNet's 'dist_sync' / 'dist_sync_device' kvstores, on MPI allreduce."""

    def __init__(self, kind='dist_sync', bucket_cap_mb=None):
        super().__init__(kind)
        self._comm = None
        if launched_size() > 1:
            MPI = mpi()
            self._MPI, self._comm = MPI, MPI.COMM_WORLD
            _abort_on_uncaught(self._comm)
        self._bucket_bytes = int(float(bucket_cap_mb) * 2 ** 20) if bucket_cap_mb else config.bucket_bytes()
        self._names = {}   # key -> parameter name (the Trainer tells), for errors
        self.timings = []  # seconds per pushpull spent in MPI (wait for allreduce): for benchmarks
        self.last_buckets = 0

    rank = property(lambda self: self._comm.Get_rank() if self._comm is not None else 0)
    num_workers = property(lambda self: self._comm.Get_size() if self._comm is not None else 1)

    def _name(self, k):
        n = self._names.get(k)
        return f"parameter {n!r} (key {k!r})" if n is not None else f"key {k!r}"

    def barrier(self):
        if self._comm is not None:
            self._comm.Barrier()

    _barrier = barrier

    # ------------------------------------------------------------ init: rank 0's values everywhere
    def init(self, key, value):
        pairs = _pairs(key, value)
        for k, vs in pairs:
            if k in self._store:
                raise GraphcError(f"kvstore: {self._name(k)} is already initialized")
        if self._comm is not None:
            self._check_same(pairs)
        for k, vs in pairs:
            self._store[k] = _host(vs[0]).copy()
        if self._comm is not None:  # one broadcast per bucket of rank 0's values
            for bucket in self._buckets([k for k, _ in pairs]):
                buf = self._pack(bucket, [self._store[k] for k in bucket])
                self._comm.Bcast(buf, root=0)
                self._unpack(bucket, buf, lambda k, a: self._store[k].__setitem__(Ellipsis, a))

    def broadcast(self, key, value, out, priority=0):
        self.init(key, value)
        self.pull(key, out, priority)

    def _check_same(self, pairs):
        """Every rank must init the same keys with the same shapes and dtypes; else name the first that differs."""
        comm = self._comm
        n = np.array([len(pairs)], np.int64)
        ns = np.empty(comm.Get_size(), np.int64)
        comm.Allgather(n, ns)
        if len(set(ns.tolist())) > 1:
            raise GraphcError(f"kvstore.init: the ranks initialize different numbers of keys ({ns.tolist()} on ranks "
                              f"0..{len(ns) - 1}): every rank must build the same model")
        rows = np.full((len(pairs), _MAXDIM + 3), -1, np.int64)
        for r, (k, vs) in enumerate(pairs):
            a = vs[0]
            if a.ndim > _MAXDIM:
                raise GraphcError(f"kvstore.init: {self._name(k)} has {a.ndim} dimensions, at most {_MAXDIM}")
            rows[r, 0] = _keyhash(k)
            rows[r, 1] = _DTYPES.get(np.dtype(a.dtype), 99)
            rows[r, 2] = a.ndim
            rows[r, 3:3 + a.ndim] = a.shape
        everyone = np.empty((comm.Get_size(),) + rows.shape, np.int64)
        comm.Allgather(rows, everyone)
        bad = np.nonzero((everyone != everyone[0]).any(axis=(0, 2)))[0]
        if len(bad):
            r = int(bad[0])
            k = pairs[r][0]
            other = int(np.nonzero((everyone[:, r] != everyone[0, r]).any(axis=1))[0][0])
            desc = [_describe(row) for row in (everyone[0, r], everyone[other, r])]
            raise GraphcError(f"kvstore.init: {self._name(k)} differs between ranks: rank 0 has {desc[0]}, rank "
                              f"{other} has {desc[1]}; every rank must build the same model")

    # ------------------------------------------------------------ push: sum over devices, then over ranks
    def _buckets(self, keys):
        """Keys in reverse order (backward's), cut where a bucket would pass bucket_cap_mb."""
        out, cur, size = [], [], 0
        for k in reversed(keys):
            nbytes = self._store[k].size * 4
            if cur and size + nbytes > self._bucket_bytes:
                out.append(cur)
                cur, size = [], 0
            cur.append(k)
            size += nbytes
        if cur:
            out.append(cur)
        return out

    def _wire(self):
        return np.float16 if self._compression is not None and self._compression.kind == 'fp16' else np.float32

    def _pack(self, keys, arrays, dtype=None):
        buf = np.empty(sum(self._store[k].size for k in keys), dtype or self._store[keys[0]].dtype)
        o = 0
        for k, a in zip(keys, arrays):
            buf[o:o + a.size] = a.ravel()
            o += a.size
        return buf

    def _unpack(self, keys, buf, put):
        o = 0
        for k in keys:
            s = self._store[k]
            put(k, buf[o:o + s.size].reshape(s.shape).astype(s.dtype, copy=False))
            o += s.size

    def push(self, key, value, priority=0):
        pairs = _pairs(key, value)
        if self._comm is not None and self._compression is None:  # one device: packed straight from the gradient
            merged = {k: _host(vs[0]) if len(vs) == 1 and self._check(k, vs[0]) else self._reduce(k, vs)
                      for k, vs in pairs}
        else:
            merged = {k: self._reduce(k, vs) for k, vs in pairs}
        if self._comm is None:
            for k, _ in pairs:
                self._apply(k, merged[k])
            return
        for k in merged:
            if merged[k].dtype.kind != 'f':
                raise GraphcError(f"kvstore.push: {self._name(k)} is {merged[k].dtype}; gradients are reduced as "
                                  "floating point")
        wire, MPI = self._wire(), self._MPI
        keys = [k for k, _ in pairs]
        pending = []
        for bucket in self._buckets(keys):  # start each bucket's allreduce as soon as it is packed
            buf = self._pack(bucket, [merged[k] for k in bucket], wire)
            pending.append((bucket, buf, self._comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)))
        self.last_buckets = len(pending)
        waited = 0.0
        for bucket, buf, req in pending:  # the finished ones are unpacked/updated while the rest travel
            t = time.perf_counter()
            req.Wait()
            waited += time.perf_counter() - t
            self._unpack(bucket, buf, self._apply)
        self.timings.append(waited)

    def _check(self, k, v):
        s = self._stored(k, 'push')
        if v.shape != s.shape or v.dtype != s.dtype:
            raise GraphcError(f"kvstore.push: {self._name(k)} holds {s.dtype}{list(s.shape)}, the value is "
                              f"{v.dtype}{list(v.shape)}")
        return True

    def set_gradient_compression(self, compression_params):
        from . import _Compression
        self._compression = _Compression(compression_params)  # 2bit: each rank quantizes what it sends

    def allreduce_array(self, a):
        """The sum of a host array over the ranks (a helper for layers that reduce statistics, e.g. SyncBatchNorm)."""
        a = np.ascontiguousarray(a)
        if self._comm is None:
            return a.copy()
        out = np.empty_like(a)
        self._comm.Allreduce(a, out, op=self._MPI.SUM)
        return out


@KVStoreBase.register
class Horovod(DistKVStore):
    """horovod.mxnet's kvstore name: MPI allreduce of the gradients; each rank updates its own weights (it
    cannot update on the kvstore, as in MXNet, so the Trainer uses update_on_kvstore=False)."""

    def __init__(self):
        super().__init__('horovod')

    @staticmethod
    def is_capable(capability):
        if capability.lower() == KVStoreBase.OPTIMIZER:
            return False
        raise GraphcError(f"unknown kvstore capability {capability!r}")


def _keyhash(k):
    import zlib
    return zlib.crc32(repr(k).encode())


def _describe(row):
    names = {i: str(t) for t, i in _DTYPES.items()}
    nd = int(row[2])
    return f"{names.get(int(row[1]), '?')}{list(int(d) for d in row[3:3 + nd])}"
