"""KVStore: gradient reduction and (optionally) weight updates across the copies of a parameter, as MXNet's.

`create('local'|'device')` reduces the copies of one process (one per context of `Parameter.list_data()`);
`create('dist_sync'|'dist_sync_device'|'horovod')` also reduces across processes over MPI (kvstore/dist.py,
needs `pip install 'graphc[dist]'`). Classes registered with `KVStoreBase.register` are created by their
lower-case name, as in MXNet (`teststore` is MXNet's example of one).

Semantics (MXNet 1.9's): `init(key, value)` stores a copy; `push(key, values)` sums the values (one per
device) and, with an optimizer set (`set_optimizer`, "update on kvstore"), applies it to the stored weight
with the sum as gradient, else stores the sum; `pull(key, out)` copies the stored value into every out;
`pushpull` is push then pull (into the values themselves when out is None); `broadcast` is init then pull.
Keys are ints or strs, or lists of them with a list of values (each an NDArray or a list, one per device).
"""
import warnings

import numpy as np

from ..base import GraphcError
from ..ndarray.ndarray import NDArray, WRITES
from .. import device as _dev


class KVStoreBase:
    """The interface every kvstore has (MXNet's KVStoreBase); subclasses registered by name."""
    OPTIMIZER = 'optimizer'
    kv_registry = {}

    @staticmethod
    def register(klass):
        name = klass.__name__.lower()
        if name in KVStoreBase.kv_registry:
            warnings.warn(f"a KVStore named {name!r} is already registered; replacing it", stacklevel=2)
        KVStoreBase.kv_registry[name] = klass
        return klass

    def broadcast(self, key, value, out, priority=0):
        raise NotImplementedError

    def pushpull(self, key, value, out=None, priority=0):
        raise NotImplementedError

    def set_optimizer(self, optimizer):
        raise NotImplementedError

    @staticmethod
    def is_capable(capability):
        raise NotImplementedError

    def save_optimizer_states(self, fname, dump_optimizer=False):
        raise NotImplementedError

    def load_optimizer_states(self, fname):
        raise NotImplementedError

    type = property(lambda self: NotImplementedError)
    rank = property(lambda self: 0)
    num_workers = property(lambda self: 1)


def _pairs(key, value):
    """[(key, [arrays])] in order, the arrays of a repeated key joined (MXNet's key/value conventions)."""
    if isinstance(key, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(key):
            raise GraphcError(f"kvstore: {len(key)} keys need a list of {len(key)} values (an NDArray or a list "
                              f"of them per key), got {type(value).__name__}")
        out = {}
        for k, v in zip(key, value):
            out.setdefault(_key(k), []).extend(_arrays(k, v))
        return list(out.items())
    return [(_key(key), _arrays(key, value))]


def _key(k):
    if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
        return int(k)
    if isinstance(k, str):
        return k
    raise GraphcError(f"kvstore: a key is an int or a str, got {type(k).__name__} {k!r}")


def _arrays(k, v):
    vs = [v] if isinstance(v, NDArray) else list(v)
    if not vs or not all(isinstance(a, NDArray) for a in vs):
        raise GraphcError(f"kvstore: the value of key {k!r} must be an NDArray or a non-empty list of NDArrays")
    return vs


def _host(a):
    d = a._data
    return d if _dev.device_id(d) is None else _dev.to_host(d)


def _write(dst, src):
    """dst (NDArray) <- src (host array), on dst's device (a sparse dst in its storage type)."""
    if dst.stype != 'default':
        dst._assign(src)
        return
    d = dst._data
    WRITES[0] += 1
    with _dev.on(d):
        d[...] = src if _dev.device_id(d) is None else _dev.to_device(src, _dev.device_id(d))


class _Compression:
    """MXNet's gradient compression. '2bit': each pushed gradient plus the error left from the previous push
    is quantized to {-threshold, 0, +threshold}, and what quantizing dropped is kept for the next push (per
    key and device). 'fp16': values are rounded to float16 before they are summed (halves MPI traffic)."""

    def __init__(self, params):
        params = dict(params)
        kind = params.pop('type', None)
        if kind not in ('2bit', 'fp16'):
            raise GraphcError(f"compression_params: 'type' must be '2bit' or 'fp16', got {kind!r}")
        self.kind, self.threshold = kind, float(params.pop('threshold', 0.5))
        if params:
            raise GraphcError(f"compression_params: unknown entries {sorted(params)} for type {kind!r}")
        if kind == '2bit' and not self.threshold > 0:
            raise GraphcError(f"compression_params: threshold must be > 0, got {self.threshold}")
        self._residual = {}

    def __call__(self, key, i, g):
        if self.kind == 'fp16':
            return g.astype(np.float16).astype(g.dtype)
        r = self._residual.get((key, i))
        acc = g + r if r is not None else g.copy()
        t = g.dtype.type(self.threshold)
        q = np.where(acc >= t, t, np.where(acc <= -t, -t, g.dtype.type(0)))
        self._residual[(key, i)] = acc - q
        return q


class KVStore(KVStoreBase):
    """MXNet's 'local' and 'device' kvstores: the copies of one process are summed in order, in their dtype
    ('device' keeps the store on the first copy's device, 'local' on the host; here both reduce on the host)."""

    def __init__(self, kind='local'):
        self._type = kind
        self._store = {}       # key -> host array
        self._sparse = set()   # keys initialized with a row_sparse value: the optimizer sees a row_sparse weight
        self._updater = None
        self._compression = None

    type = property(lambda self: self._type)
    rank = property(lambda self: 0)
    num_workers = property(lambda self: 1)

    @staticmethod
    def is_capable(capability):
        if capability.lower() == KVStoreBase.OPTIMIZER:
            return True
        raise GraphcError(f"unknown kvstore capability {capability!r}")

    def init(self, key, value):
        for k, vs in _pairs(key, value):
            kind = type(k).__name__
            if self._store and type(next(iter(self._store))) is not type(k):
                have = type(next(iter(self._store))).__name__
                raise GraphcError(f"kvstore: this store has {have} keys; {kind} key {k!r} cannot join them "
                                  "(one key type per store, as MXNet)")
            if k in self._store:
                raise GraphcError(f"kvstore: key {k!r} is already initialized")
            self._store[k] = _host(vs[0]).copy()
            if vs[0].stype == 'row_sparse':
                self._sparse.add(k)

    def _stored(self, k, what):
        s = self._store.get(k)
        if s is None:
            raise GraphcError(f"kvstore.{what}: key {k!r} has not been initialized (call init first)")
        return s

    def _reduce(self, k, vs):
        """The sum of the pushed values, in order; every value must have the stored shape and dtype."""
        s = self._stored(k, 'push')
        total = None
        for i, v in enumerate(vs):
            if v.shape != s.shape or v.dtype != s.dtype:
                raise GraphcError(f"kvstore.push: key {k!r} holds {s.dtype}{list(s.shape)}, value {i} is "
                                  f"{v.dtype}{list(v.shape)}")
            a = _host(v)
            if self._compression is not None:
                a = self._compression(k, i, a)
            total = a.copy() if total is None else np.add(total, a, out=total)
        if all(v.stype == 'row_sparse' for v in vs):  # the sum of row_sparse values: the union of their rows
            from ..ndarray.sparse import RowSparseNDArray
            rows = np.unique(np.concatenate([v._aux[0] for v in vs]))
            return RowSparseNDArray(total[rows], (rows,), total.shape)
        return total

    def _apply(self, k, merged):
        """The reduced gradient into the store: an optimizer step on the stored weight, or the sum itself."""
        if self._updater is not None:  # (a row_sparse sum stays sparse: the optimizer's lazy update applies)
            g, s = merged if isinstance(merged, NDArray) else NDArray(merged), self._store[k]
            if k in self._sparse:  # as MXNet's store holds it: row_sparse, every row (its states follow)
                from ..ndarray.sparse import RowSparseNDArray
                w = RowSparseNDArray(s, (np.arange(len(s)),), s.shape)
                self._updater(k, g, w)
                s[...] = w._dense()
            else:
                self._updater(k, g, NDArray(s))
        else:
            self._store[k][...] = merged._data if isinstance(merged, NDArray) else merged

    def push(self, key, value, priority=0):
        for k, vs in _pairs(key, value):
            self._apply(k, self._reduce(k, vs))

    def pull(self, key, out=None, priority=0, ignore_sparse=True):
        if out is None:
            raise GraphcError("kvstore.pull: give out= (the arrays to write the stored value into)")
        from ..ndarray.sparse import RowSparseNDArray
        for k, outs in _pairs(key, out):
            s = self._stored(k, 'pull')
            for o in outs:
                if ignore_sparse and isinstance(o, RowSparseNDArray):
                    continue  # MXNet's default: sparse outputs are left alone (use row_sparse_pull)
                if o.shape != s.shape:
                    raise GraphcError(f"kvstore.pull: key {k!r} holds shape {list(s.shape)}, out is "
                                      f"{list(o.shape)}")
                _write(o, s)

    def row_sparse_pull(self, key, out=None, priority=0, row_ids=None):
        """Into each RowSparseNDArray of out, the stored rows that row_ids (an NDArray, one per out or one for
        all) names: out then holds those rows only (MXNet's)."""
        if out is None or row_ids is None:
            raise GraphcError("kvstore.row_sparse_pull: give out= and row_ids=")
        from ..ndarray.sparse import RowSparseNDArray
        many = isinstance(key, (list, tuple))
        keys, outs_of, ids_of = (key, out, row_ids) if many else ([key], [out], [row_ids])
        if not isinstance(outs_of, (list, tuple)) or not isinstance(ids_of, (list, tuple)) or \
                not len(keys) == len(outs_of) == len(ids_of):
            raise GraphcError(f"kvstore.row_sparse_pull: {len(keys)} keys need as many outs and row_ids (an NDArray "
                              "or a list of them per key)")
        for k, outs, ids in zip(keys, outs_of, ids_of):  # row_ids are laid out as out is
            k, outs = _key(k), _arrays(k, outs)
            s = self._stored(k, 'row_sparse_pull')
            ids = [ids] * len(outs) if isinstance(ids, NDArray) else list(ids)
            if len(ids) != len(outs):
                raise GraphcError(f"kvstore.row_sparse_pull: {len(ids)} row_ids for {len(outs)} outputs of key {k!r}")
            for o, r in zip(outs, ids):
                if not isinstance(o, RowSparseNDArray) or o.shape != s.shape:
                    raise GraphcError(f"kvstore.row_sparse_pull: out must be a RowSparseNDArray of shape "
                                      f"{list(s.shape)}, got {o.stype} {list(o.shape)}")
                rows = np.unique(_host(r).astype(np.int64).reshape(-1))
                WRITES[0] += 1
                o._vals, o._aux = s[rows].astype(o.dtype), (rows,)

    def pushpull(self, key, value, out=None, priority=0):  # (sparse outs are written: they asked for it)
        self.push(key, value, priority)
        self.pull(key, value if out is None else out, priority, ignore_sparse=False)

    def broadcast(self, key, value, out, priority=0):
        self.init(key, value)
        self.pull(key, out, priority, ignore_sparse=False)

    def set_gradient_compression(self, compression_params):
        if 'device' not in self._type and 'dist' not in self._type:
            raise GraphcError(f"gradient compression is not supported by the {self._type!r} kvstore; "
                              "use 'device' or a 'dist_*' one")
        self._compression = _Compression(compression_params)

    def set_optimizer(self, optimizer):
        """Update on the kvstore: each push applies `optimizer` to the stored weight."""
        from .. import optimizer as opt
        self._updater = opt.get_updater(optimizer)

    def _set_updater(self, updater):
        """updater(key, grad, weight) runs on every push instead of storing the sum (MXNet's)."""
        self._updater = updater

    def barrier(self):
        """All workers wait here; one process has nothing to wait for."""

    _barrier = barrier

    def save_optimizer_states(self, fname, dump_optimizer=False):
        if self._updater is None or not hasattr(self._updater, 'states'):
            raise GraphcError("kvstore.save_optimizer_states: no optimizer is set on this kvstore (set_optimizer)")
        from .states import save_states
        save_states(fname, self._updater, {k: str(k) for k in self._updater.states})

    def load_optimizer_states(self, fname):
        if self._updater is None or not hasattr(self._updater, 'states'):
            raise GraphcError("kvstore.load_optimizer_states: no optimizer is set on this kvstore (set_optimizer)")
        from .states import load_states
        load_states(fname, self._updater, {str(k): (k, NDArray(v)) for k, v in self._store.items()})


@KVStoreBase.register
class TestStore(KVStoreBase):
    """MXNet's example of a registered kvstore: sums in Python, cannot update weights."""

    def broadcast(self, key, value, out, priority=0):
        for o in (out if isinstance(out, list) else [out]):
            value.copyto(o)

    def pushpull(self, key, value, out=None, priority=0):
        if isinstance(value, NDArray):
            for o in ([] if out is None else out if isinstance(out, list) else [out]):
                value.copyto(o)
            return
        total = value[0].copy()
        for v in value[1:]:
            total += v.as_in_context(value[0].context)
        for o in (value if out is None else out if isinstance(out, list) else [out]):
            total.copyto(o)

    @staticmethod
    def is_capable(capability):
        if capability.lower() == KVStoreBase.OPTIMIZER:
            return False
        raise GraphcError(f"unknown kvstore capability {capability!r}")

    type = property(lambda self: 'teststore')


def create(name='local'):
    """A kvstore by name: 'local', 'device', 'dist_sync', 'dist_sync_device', 'horovod', or a registered class."""
    if not isinstance(name, str):
        raise TypeError(f"kvstore name must be a str, got {type(name).__name__}")
    name = name.lower()
    if name == 'horovod':
        from . import dist  # noqa: F401  (registers Horovod)
    if name in KVStoreBase.kv_registry:
        return KVStoreBase.kv_registry[name]()
    if name in ('local', 'device', 'local_update_cpu', 'local_allreduce_cpu', 'local_allreduce_device', 'nccl'):
        return KVStore('device' if name in ('local_allreduce_device', 'nccl') else name)
    if name in ('dist_sync', 'dist_sync_device', 'dist', 'dist_device_sync'):
        from .dist import DistKVStore
        return DistKVStore(name)
    if name == 'dist_async':
        raise GraphcError("kvstore 'dist_async' (a parameter server) is not supported: graphc reduces over MPI; "
                          "use 'dist_sync'")
    raise GraphcError(f"unknown kvstore type {name!r}; use 'local', 'device', 'dist_sync', 'dist_sync_device', "
                      f"'horovod' or one of the registered {sorted(KVStoreBase.kv_registry)}")
