"""Distributed kvstores over MPI (mpi4py): 'dist_sync', 'dist_sync_device' and 'horovod'.

Every worker (MPI rank) keeps the whole model. `init`/`broadcast` give every rank rank 0's values; a push
sums the values of this rank's devices, then over the ranks with MPI allreduce, so each rank holds the same
sum; with an optimizer set (update on kvstore) each rank applies it to its own copy of the weight (the
states stay per rank and identical, as with Horovod), else the sum is what pull gives back.

Gradients are packed into buckets of at most `bucket_cap_mb` (DDP's knob, default 25 MB; env
GRAPHC_BUCKET_MB) in the reverse order of the keys — the order backward produces them — and each bucket's
non-blocking allreduce starts as soon as it is packed, so packing the next bucket and unpacking/updating
the finished ones overlap the communication. From a Trainer's second step on, buckets start while the
backward still runs, as autograd writes their gradients (Overlap, below). Sums are in float32 (float16 on
the wire with compression_params={'type': 'fp16'}); on GPUs, NCCL through cupy reduces them on the devices.

One worker (not started by mpirun, or started with -np 1) runs without MPI in the process. Under mpirun
without mpi4py installed, creating the kvstore says what to install. A rank that raises makes every rank
stop (MPI_Abort, after printing the rank and the exception); a rank that dies is noticed by mpirun, which
stops the others. Shapes and dtypes of the keys are compared across ranks when they are initialized: a
mismatch names the parameter and both shapes.
"""
import os
import queue
import sys
import threading
import time
import warnings
import weakref

import numpy as np

from .. import config
from ..base import GraphcError
from .. import device as _dev
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


def world():
    """(MPI, COMM_WORLD) of this run, with the hook that makes a failing rank stop them all."""
    MPI = mpi()
    _abort_on_uncaught(MPI.COMM_WORLD)
    return MPI, MPI.COMM_WORLD


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
        self._sender = None        # the overlapped allreduces (their own communicator and thread)
        self._use_nccl = None      # decided at the first push (every rank's gradients on a GPU)
        self._nccl = None          # (cupy.cuda.nccl, communicator, device)
        self._device_sums = {}     # key -> NCCL's sum on the device, for pull
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
        self.pull(key, out, priority, ignore_sparse=False)

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
        if self._comm is not None and self._nccl_agreed(pairs):
            return self._push_nccl(pairs)
        merged = {k: self._merged(k, vs) if self._comm is not None else self._reduce(k, vs) for k, vs in pairs}
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

    # ------------------------------------------------------------ NCCL: gradients on GPUs stay on them
    def _nccl_agreed(self, pairs):
        """Whether gradients are reduced with NCCL: decided at the first push, by every rank together (all must
        hold their gradients on a GPU and have cupy's NCCL, else all reduce over MPI from host copies)."""
        if self._use_nccl is None:
            ok = all(_dev.device_id(v._data) is not None for _, vs in pairs for v in vs) and \
                (self._compression is None or self._compression.kind == 'fp16')
            if ok:
                try:
                    from cupy.cuda import nccl  # noqa: F401
                except ImportError as e:
                    warnings.warn(f"graphc.dist: gradients are on GPUs but cupy has no NCCL ({e}); reducing them "
                                  "over MPI from host copies", stacklevel=3)
                    ok = False
            flag = np.array([1 if ok else 0], np.int32)
            self._comm.Allreduce(self._MPI.IN_PLACE, flag, op=self._MPI.MIN)
            self._use_nccl = bool(flag[0])
        return self._use_nccl

    def _nccl_comm(self, device):
        """This rank's NCCL communicator on `device`, made once; rank 0's unique id reaches the others over MPI."""
        if self._nccl is None:
            from cupy.cuda import nccl
            raw = np.zeros(129, np.int64)
            if self.rank == 0:
                uid = nccl.get_unique_id()  # bytes (cupy >= 10) or a tuple of ints (older)
                vals = np.frombuffer(uid, np.uint8) if isinstance(uid, bytes) else np.array(uid, np.int64)
                raw[0], raw[1:1 + len(vals)] = isinstance(uid, bytes), vals
            self._comm.Bcast(raw, root=0)
            uid = bytes(raw[1:].astype(np.uint8).tolist()) if raw[0] else tuple(int(v) for v in raw[1:])
            with _dev.cupy().cuda.Device(device):
                self._nccl = (nccl, nccl.NcclCommunicator(self.num_workers, uid, self.rank), device)
        elif self._nccl[2] != device:
            raise GraphcError(f"kvstore: gradients moved from gpu({self._nccl[2]}) to gpu({device}); a rank's "
                              "NCCL communicator belongs to one device")
        return self._nccl

    def _push_nccl(self, pairs):
        """Each bucket: this rank's copies summed on its first device, packed there, allreduced by NCCL in place,
        unpacked on the device (an optimizer on the kvstore gets a host copy: the store lives on the host)."""
        cp = _dev.cupy()
        device = _dev.device_id(pairs[0][1][0]._data)
        nccl, comm, _ = self._nccl_comm(device)
        values = dict(pairs)
        wire = self._wire()
        nccl_type = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float16): nccl.NCCL_FLOAT16}[np.dtype(wire)]
        self.last_buckets = 0
        with cp.cuda.Device(device):
            for bucket in self._buckets([k for k, _ in pairs]):
                parts = []
                for k in bucket:
                    vs = values[k]
                    for v in vs:
                        self._check(k, v)
                    total = cp.asarray(vs[0]._data)  # (a copy where the value lives on another device)
                    for v in vs[1:]:
                        total = total + cp.asarray(v._data)
                    parts.append(total.ravel().astype(wire))
                buf = cp.concatenate(parts)
                comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, nccl_type, nccl.NCCL_SUM,
                               cp.cuda.Stream.null.ptr)
                o = 0
                for k in bucket:
                    st = self._store[k]
                    summed = buf[o:o + st.size].reshape(st.shape).astype(st.dtype)
                    o += st.size
                    if self._updater is not None:
                        self._device_sums.pop(k, None)
                        self._apply(k, _dev.to_host(summed))
                    else:
                        self._device_sums[k] = summed
                self.last_buckets += 1

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        if out is not None and self._device_sums:  # NCCL's sums go to the outs device to device
            rest_k, rest_o = [], []
            for k, outs in _pairs(key, out):
                s = self._device_sums.get(k)
                if s is None:
                    rest_k.append(k)
                    rest_o.append(outs)
                    continue
                for o in outs:
                    if o.shape != s.shape:
                        raise GraphcError(f"kvstore.pull: {self._name(k)} holds shape {list(s.shape)}, out is "
                                          f"{list(o.shape)}")
                    d = _dev.device_id(o._data)
                    with _dev.on(o._data):
                        o._data[...] = _dev.to_host(s) if d is None else _dev.cupy().asarray(s)
            if rest_k:
                super().pull(rest_k, rest_o, priority, ignore_sparse)
            return
        super().pull(key, out, priority, ignore_sparse)

    def _merged(self, k, vs):
        """The sum of this rank's copies of a gradient (the array itself for one device, no compression)."""
        if len(vs) == 1 and self._compression is None and self._check(k, vs[0]):
            return _host(vs[0])
        return self._reduce(k, vs)

    # ------------------------------------------------------------ overlap: allreduce while backward runs
    def overlap(self, keys, copies):
        """An Overlap for these keys (copies[k]: the arrays of key k, one per device), or None where it cannot
        help or be exact (one worker, one bucket, NCCL, 2-bit compression keeps state per push, env
        GRAPHC_OVERLAP=0)."""
        if self._comm is None or not config.overlap() or self._use_nccl or \
                (self._compression is not None and self._compression.kind == '2bit'):
            return None  # (NCCL: the buckets are reduced on the devices at step)
        if len(self._buckets(list(keys))) < 2:
            return None  # one bucket can only leave when the backward ends: nothing to overlap
        if self._sender is None:  # its own communicator: SyncBatchNorm's collectives need no common order
            self._sender = _Sender(self._MPI, self._comm.Dup())
        ov = Overlap(self, keys, copies)
        _live.add(ov)
        from .. import autograd
        if _hook not in autograd.grad_hooks:
            autograd.grad_hooks.append(_hook)
        return ov

    def _check(self, k, v):
        s = self._stored(k, 'push')
        if v.shape != s.shape or v.dtype != s.dtype:
            raise GraphcError(f"kvstore.push: {self._name(k)} holds {s.dtype}{list(s.shape)}, the value is "
                              f"{v.dtype}{list(v.shape)}")
        return True

    def set_gradient_compression(self, compression_params):
        from . import _Compression
        self._compression = _Compression(compression_params)  # 2bit: each rank quantizes what it sends



_live = weakref.WeakSet()  # the Overlaps in use (each belongs to one Trainer)


def _hook(var):
    for ov in list(_live):
        ov(var)


class _Sender:
    """Allreduces of packed buckets, in order, on one communicator. In a thread of their own where MPI allows
    threads (MPI_THREAD_MULTIPLE; mpi4py releases the GIL inside MPI calls, NumPy inside its kernels): Open
    MPI has no progress thread, so a nonblocking request would only advance inside MPI calls made by the
    thread that computes the backward. Else Iallreduce requests, advanced by poll()."""

    def __init__(self, MPI, comm):
        self.MPI, self.comm = MPI, comm
        self.threaded = MPI.Query_thread() >= MPI.THREAD_MULTIPLE
        if self.threaded:
            self.queue = queue.Queue()
            threading.Thread(target=self._loop, daemon=True, name='graphc-allreduce').start()

    def _loop(self):
        while True:
            buf, op, done = self.queue.get()
            try:
                self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=op)
            except BaseException as e:  # noqa: B902  (raised by wait, in the training thread)
                done.error = e
            done.set()

    def send(self, buf, op=None):
        op = op or self.MPI.SUM
        if not self.threaded:
            return self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=op)
        done = threading.Event()
        done.error = None
        self.queue.put((buf, op, done))
        return done

    def poll(self, handles):
        if not self.threaded and handles:
            self.MPI.Request.Testall(handles)

    def wait(self, h):
        if not self.threaded:
            return h.Wait()
        h.wait()
        if h.error is not None:
            raise h.error


class Overlap:
    """One Trainer's gradients, allreduced bucket by bucket while the backward still runs.

    autograd calls the hook as it writes each gradient (graphc.autograd.grad_hooks); a bucket's allreduce
    starts (kvstore's _Sender: a communication thread) once every gradient in it is written, buckets in their
    fixed order (so every rank issues the same collectives in the same order, whatever order its backward
    finishes them in). Trainer.step then starts what backward did not reach, waits, and unpacks / updates as
    push does. A gradient written again after its bucket left (a second backward before step, or grad_req
    'add') makes every rank redo the whole reduction at step: the ranks agree on that first.
    """

    def __init__(self, kv, keys, copies):
        self.kv, self.keys = kv, list(keys)
        self.buckets = kv._buckets(self.keys)
        self.bucket_of = {k: b for b, ks in enumerate(self.buckets) for k in ks}
        self.of = {id(a): (k, a) for k in self.keys for a in copies[k]}
        self.copies = {k: copies[k] for k in self.keys}
        self.stats = {'steps': 0, 'started_in_backward': 0, 'buckets': 0, 'redone': 0}
        self.reset()

    def reset(self):
        self.written, self.next, self.pending, self.dirty = {}, 0, [], False

    def __call__(self, var):
        hit = self.of.get(id(var))
        if hit is None or hit[1] is not var:
            return
        k = hit[0]
        self.written[k] = self.written.get(k, 0) + 1
        if self.bucket_of[k] < self.next or self.written[k] > len(self.copies[k]):
            self.dirty = True
            return
        while self.next < len(self.buckets) and all(self.written.get(j, 0) == len(self.copies[j])
                                                    for j in self.buckets[self.next]):
            self._start()
            self.stats['started_in_backward'] += 1
        self.kv._sender.poll([r for _, _, r in self.pending])

    def _start(self):
        kv, bucket = self.kv, self.buckets[self.next]
        vals = [kv._merged(k, [a._grad for a in self.copies[k]]) for k in bucket]
        for k, v in zip(bucket, vals):
            if v.dtype.kind != 'f':
                raise GraphcError(f"kvstore.push: {kv._name(k)} is {v.dtype}; gradients are reduced as floating point")
        buf = kv._pack(bucket, vals, kv._wire())
        self.pending.append((bucket, buf, kv._sender.send(buf)))
        self.next += 1

    def finish(self, dests):
        """At step: the rest of the buckets, every sum unpacked into the store (or applied by its optimizer), then
        pulled into dests (a list of arrays per key: the weights, or the gradients themselves). Returns False,
        having changed nothing, when the ranks must redo the reduction with pushpull (a gradient was rewritten)."""
        kv, MPI = self.kv, self.kv._MPI
        while self.next < len(self.buckets):
            self._start()
        flag = np.array([1 if self.dirty else 0], np.int32)
        agreed = kv._sender.send(flag, MPI.MAX)  # (after the buckets, in the same order on every rank)
        pending, self.stats['steps'], self.stats['buckets'] = self.pending, self.stats['steps'] + 1, len(self.buckets)
        self.reset()
        t = time.perf_counter()
        kv._sender.wait(agreed)  # (queued after the buckets: it waits for them too)
        waited = time.perf_counter() - t
        if flag[0]:
            for _, _, req in pending:
                kv._sender.wait(req)
            self.stats['redone'] += 1
            return False
        for bucket, buf, req in pending:
            t = time.perf_counter()
            kv._sender.wait(req)
            waited += time.perf_counter() - t
            kv._unpack(bucket, buf, kv._apply)
        kv.timings.append(waited)
        kv.last_buckets = len(pending)
        kv.pull(self.keys, out=dests)
        return True


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
