"""mx.nd.sparse: MXNet 1.9's compressed storage types, row_sparse and csr.

RowSparseNDArray keeps the rows of an n-d array that hold non-zeros: `data` (k, *shape[1:]) and `indices` (k,),
sorted. CSRNDArray keeps a 2-d array in compressed sparse row form: `data` and `indices` (column ids) of the nnz
values, `indptr` (rows + 1). Both are NDArrays. An op with a sparse kernel here (KERNELS, with MXNet's storage-type
inference: square(rsp) = rsp, elemwise_add(rsp, rsp) = rsp, dot(csr, dense) = dense, dot(csr.T, dense) = rsp, ...)
works on the compressed values; any other op reads the dense form and returns default storage (MXNet's storage
fallback). Under autograd.record() a sparse op is recorded with the dense values its gradient rule needs, and
gradients are written into a sparse .grad in its storage type. Host (CPU) memory only.
"""
import numbers

import numpy as np

from .. import autograd as _ag
from . import ndarray as _nd
from .ndarray import NDArray, WRITES, _check_ctx, _on_host, invoke
from ..base import GraphcError, GraphcNotSupportedError, GraphcShapeError, as_dtype, fmt_shape
from ..registry import OPS

_IDX = np.int64  # MXNet's aux types: indices and indptr are int64


def _ctx(ctx):
    ctx = _check_ctx(ctx)
    if ctx.device_type == 'gpu':
        raise GraphcNotSupportedError(f"sparse storage on {ctx} is not supported by graphc (host memory only); "
                                      "use tostype('default') for the GPU")
    return ctx


class BaseSparseNDArray(NDArray):
    """The common part of the two compressed storage types: shape, values (`_vals`) and index arrays (`_aux`)."""
    __slots__ = ('_shp', '_vals', '_aux')

    def __init__(self, vals, aux, shape, ctx=None):
        NDArray.__init__(self, None)
        self._shp, self._vals, self._aux = tuple(int(d) for d in shape), vals, aux
        if ctx is not None:
            _on_host(self, ctx)
        _nd._SPARSE = _HOOK

    shape = property(lambda self: self._shp)
    dtype = property(lambda self: self._vals.dtype)

    @property
    def _data(self):
        """The dense form (a new array): what an op without a sparse kernel reads."""
        return self._dense()

    @_data.setter
    def _data(self, value):
        self._from_dense(np.asarray(value))

    def __repr__(self):
        return f"\n<{type(self).__name__} {'x'.join(map(str, self.shape))} @{self.context}>"

    def _like(self, vals, aux):
        return type(self)(vals, aux, self._shp, self.context)

    def _check(self, d):
        if tuple(d.shape) != self._shp:
            raise GraphcShapeError(f"{type(self).__name__}: cannot write shape {fmt_shape(d.shape)} into "
                                   f"{fmt_shape(self._shp)}")
        return d.astype(self.dtype, copy=False)

    def _assign(self, src):
        """Overwrite self with src (NDArray or NumPy array), converted to this storage type. Returns self."""
        WRITES[0] += 1
        if isinstance(src, BaseSparseNDArray) and src.stype == self.stype:
            if src.shape != self._shp:
                raise GraphcShapeError(f"{type(self).__name__}: cannot write shape {fmt_shape(src.shape)} into "
                                       f"{fmt_shape(self._shp)}")
            self._vals, self._aux = src._vals.astype(self.dtype), tuple(a.copy() for a in src._aux)
        else:
            self._from_dense(src._data if isinstance(src, NDArray) else np.asarray(src))
        return self

    # ------------------------------------------------------------ MXNet's API
    @property
    def data(self):
        """A copy of the stored values."""
        return _on_host(NDArray(self._vals.copy()), self.context)

    @property
    def indices(self):
        return _on_host(NDArray(self._aux[0].copy()), self.context)

    def asnumpy(self):
        return self._dense()

    def todense(self):
        return cast_storage(self, 'default')

    def tostype(self, stype):
        return cast_storage(self, stype)

    def copy(self):
        return self._like(self._vals.copy(), tuple(a.copy() for a in self._aux))

    def copyto(self, other):
        """Into an NDArray (converted to its storage type), or onto a context (same storage type)."""
        if isinstance(other, NDArray):
            if other.shape != self.shape:
                raise GraphcShapeError(f"copyto: shape {fmt_shape(self.shape)} into {fmt_shape(other.shape)}")
            if other.stype != 'default':
                return other._assign(self)
            return NDArray.copyto(self, other)
        out = self.copy()
        return _on_host(out, _ctx(other))

    def as_in_context(self, ctx):
        ctx = _ctx(ctx)
        return self if ctx == self.context else self.copyto(ctx)

    as_in_ctx = as_in_context

    def detach(self):
        return self._like(self._vals, self._aux)  # (the buffers are replaced, never written, so they can be shared)

    def wait_to_read(self):
        return self

    def zeros_like(self):
        return zeros(self.stype, self.shape, self.context, self.dtype)

    def astype(self, dtype, copy=True):
        dt = as_dtype(dtype)
        if dt == self.dtype and not copy:
            return self
        return invoke(OPS['Cast'], (self,), {'dtype': str(dt)})

    def _inplace(self, result):
        """x += y keeps x, and its storage type."""
        if result is NotImplemented:
            return result
        if result.shape != self.shape:
            raise GraphcShapeError(f"in-place update would change shape {fmt_shape(self.shape)} to "
                                   f"{fmt_shape(result.shape)}")
        self._assign(result)
        if _ag._st.recording and result._ag is not None:
            self._ag = result._ag
        return self

    def __setitem__(self, key, value):
        """MXNet's: only x[:] = value (an NDArray, a NumPy array or, for row_sparse, a number) on sparse arrays."""
        if not (isinstance(key, slice) and key == slice(None)) and key is not Ellipsis:
            raise GraphcError(f"{type(self).__name__} supports only x[:] = value for assignment, got key {key!r}")
        if isinstance(value, numbers.Number):
            if self.stype == 'csr' and value != 0:
                raise GraphcError("assigning a non-zero number to a CSRNDArray is not supported (MXNet's)")
            WRITES[0] += 1
            if self.stype == 'csr':
                self._vals, self._aux = self._vals[:0], _empty_aux('csr', self._shp)
            else:  # MXNet's _set_value: every row stored
                self._vals, self._aux = np.full(self._shp, value, self.dtype), (np.arange(self._shp[0], dtype=_IDX),)
            return
        self._assign(value)

    def check_format(self, full_check=True):
        """Raise if the indices are not a valid compressed form (sorted, unique, in range)."""
        self._check_format(full_check)


class RowSparseNDArray(BaseSparseNDArray):
    """Rows `indices` (sorted) of an n-d array hold `data`; every other row is zero."""
    __slots__ = ()
    stype = 'row_sparse'

    def _dense(self):
        out = np.zeros(self._shp, self._vals.dtype)
        out[self._aux[0]] = self._vals
        return out

    def _from_dense(self, d, keep=False):
        """Store d's non-zero rows (with keep, also every row stored now: an update in place keeps them)."""
        d = self._check(d)
        rows = np.flatnonzero(d.reshape(d.shape[0], -1).any(1)) if d.size else np.zeros(0, _IDX)
        if keep:
            rows = np.union1d(rows, self._aux[0])
        self._vals, self._aux = d[rows].copy(), (rows.astype(_IDX),)

    def _get_rows(self, rows):
        """The dense values of the given (sorted, unique) rows: zeros where nothing is stored."""
        out = np.zeros((len(rows),) + self._shp[1:], self.dtype)
        idx = self._aux[0]
        pos = np.minimum(np.searchsorted(idx, rows), max(len(idx) - 1, 0))
        hit = idx[pos] == rows if len(idx) else np.zeros(len(rows), bool)
        out[hit] = self._vals[pos[hit]]
        return out

    def _set_rows(self, rows, values):
        """Store values at the given (sorted, unique) rows, keeping the other stored rows."""
        keys = np.union1d(self._aux[0], rows)
        vals = np.zeros((len(keys),) + self._shp[1:], self.dtype)
        vals[np.searchsorted(keys, self._aux[0])] = self._vals
        vals[np.searchsorted(keys, rows)] = values
        WRITES[0] += 1
        self._vals, self._aux = vals, (keys.astype(_IDX),)

    def __getitem__(self, key):
        if isinstance(key, slice) and key == slice(None):
            return self
        raise GraphcError(f"RowSparseNDArray supports only x[:] for indexing (MXNet's), got {key!r}; "
                          "use tostype('default') first")

    def retain(self, indices):
        return retain(self, indices)

    def _check_format(self, full_check):
        idx = self._aux[0]
        if self._vals.shape != (len(idx),) + self._shp[1:]:
            raise GraphcError(f"RowSparseNDArray: data shape {self._vals.shape} does not match {len(idx)} indices "
                              f"and shape {fmt_shape(self._shp)}")
        if full_check and len(idx) and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= self._shp[0]):
            raise GraphcError(f"RowSparseNDArray: indices must be sorted, unique and in [0, {self._shp[0]}), "
                              f"got {idx.tolist()}")


class CSRNDArray(BaseSparseNDArray):
    """A 2-d array in compressed sparse row form: row i's values data[indptr[i]:indptr[i+1]] are at columns
    indices[indptr[i]:indptr[i+1]] (sorted)."""
    __slots__ = ()
    stype = 'csr'

    @property
    def indptr(self):
        return _on_host(NDArray(self._aux[1].copy()), self.context)

    def _rows(self):
        return np.repeat(np.arange(self._shp[0], dtype=_IDX), np.diff(self._aux[1]))

    def _dense(self):
        out = np.zeros(self._shp, self._vals.dtype)
        out[self._rows(), self._aux[0]] = self._vals
        return out

    def _from_dense(self, d, keep=False):
        d = self._check(d)
        r, c = np.nonzero(d)
        ptr = np.zeros(self._shp[0] + 1, _IDX)
        np.cumsum(np.bincount(r, minlength=self._shp[0]), out=ptr[1:])
        self._vals, self._aux = d[r, c], (c.astype(_IDX), ptr)

    def __getitem__(self, key):
        """Rows: x[i] and x[a:b] are CSR (MXNet's)."""
        n = self._shp[0]
        if isinstance(key, numbers.Integral):
            k = int(key) + n if key < 0 else int(key)
            if not 0 <= k < n:
                raise IndexError(f"CSRNDArray: row {key} out of range for {n} rows")
            return self._slice_rows(k, k + 1)
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise GraphcError("CSRNDArray supports only continuous slicing on axis 0")
            b, e, _ = key.indices(n)
            return self._slice_rows(b, max(b, e))
        raise GraphcError(f"CSRNDArray supports indexing rows only (an int or a slice), got {key!r}")

    def _slice_rows(self, b, e):
        ptr = self._aux[1]
        lo, hi = ptr[b], ptr[e]
        return CSRNDArray(self._vals[lo:hi].copy(), (self._aux[0][lo:hi].copy(), ptr[b:e + 1] - lo),
                          (e - b, self._shp[1]), self.context)

    def _check_format(self, full_check):
        idx, ptr = self._aux
        n, m = self._shp
        if len(ptr) != n + 1 or ptr[0] != 0 or ptr[-1] != len(idx) or len(idx) != len(self._vals):
            raise GraphcError(f"CSRNDArray: indptr must have {n + 1} entries from 0 to nnz={len(idx)}, got "
                              f"{ptr.tolist()}")
        if full_check:
            if np.any(np.diff(ptr) < 0):
                raise GraphcError("CSRNDArray: indptr must be non-decreasing")
            if len(idx) and (idx.min() < 0 or idx.max() >= m):
                raise GraphcError(f"CSRNDArray: column indices must be in [0, {m})")
            rows = self._rows()
            if np.any((np.diff(idx) <= 0) & (np.diff(rows) == 0)):
                raise GraphcError("CSRNDArray: column indices must be sorted and unique within each row")


_TYPES = {'row_sparse': RowSparseNDArray, 'csr': CSRNDArray}


def _stype_of(stype):
    if stype not in ('default', 'row_sparse', 'csr'):
        raise GraphcError(f"unknown storage type {stype!r}; MXNet's are 'default', 'row_sparse', 'csr'")
    return stype


def _empty_aux(stype, shape):
    return (np.zeros(0, _IDX),) if stype == 'row_sparse' else (np.zeros(0, _IDX), np.zeros(shape[0] + 1, _IDX))


def _from_dense(stype, d, ctx=None):
    if stype == 'csr' and d.ndim != 2:
        raise GraphcShapeError(f"a CSR array must be 2-d, got shape {fmt_shape(d.shape)}")
    out = _TYPES[stype](np.zeros((0,) + d.shape[1:] if stype == 'row_sparse' else (0,), d.dtype),
                        _empty_aux(stype, d.shape), d.shape, ctx)
    out._from_dense(d)
    return out


# ---------------------------------------------------------------- construction
def zeros(stype, shape, ctx=None, dtype=None, **kwargs):
    """An all-zero array of storage type stype (nothing stored)."""
    shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(d) for d in shape)
    if _stype_of(stype) == 'default':
        return _nd.zeros(shape, ctx, dtype)
    if stype == 'csr' and len(shape) != 2:
        raise GraphcShapeError(f"a CSR array must be 2-d, got shape {fmt_shape(shape)}")
    dt = as_dtype(dtype)
    vals = np.zeros((0,) + shape[1:] if stype == 'row_sparse' else (0,), dt)
    return _TYPES[stype](vals, _empty_aux(stype, shape), shape, _ctx(ctx))


def empty(stype, shape, ctx=None, dtype=None):
    return zeros(stype, shape, ctx, dtype)


def _np(a, dtype=None):
    a = a.asnumpy() if isinstance(a, NDArray) else np.asarray(a)
    return a if dtype is None else a.astype(dtype)


def _dtype(dtype, *sources):
    if dtype is not None:
        return as_dtype(dtype)
    for s in sources:
        if isinstance(s, (np.ndarray, NDArray)) and s.dtype.kind == 'f':
            return np.dtype(s.dtype)
    return np.dtype(np.float32)


def row_sparse_array(arg1, shape=None, ctx=None, dtype=None):
    """A RowSparseNDArray from (data, indices) with shape, a RowSparseNDArray, a dense array, or a shape (zeros)."""
    ctx = _ctx(ctx)
    if isinstance(arg1, RowSparseNDArray):
        return arg1.astype(_dtype(dtype, arg1), copy=True).copyto(ctx)
    if isinstance(arg1, tuple) and all(isinstance(d, numbers.Integral) for d in arg1):
        return zeros('row_sparse', arg1, ctx, dtype)
    if isinstance(arg1, tuple) and len(arg1) == 2:
        data, idx = arg1
        dt = _dtype(dtype, data)
        data, idx = _np(data, dt), _np(idx).astype(_IDX).reshape(-1)
        if shape is None:
            shape = (int(idx.max()) + 1 if len(idx) else 0,) + data.shape[1:]
        order = np.argsort(idx, kind='stable')
        out = RowSparseNDArray(data[order], (idx[order],), shape, ctx)
        out.check_format()
        return out
    d = _np(arg1)
    return _from_dense('row_sparse', d.astype(_dtype(dtype, d)), ctx)


def csr_matrix(arg1, shape=None, ctx=None, dtype=None):
    """A CSRNDArray from (data, indices, indptr) with shape, (data, (row, col)) (COO), a scipy.sparse matrix,
    a CSRNDArray, a dense 2-d array, or a shape (zeros)."""
    ctx = _ctx(ctx)
    if isinstance(arg1, CSRNDArray):
        return arg1.astype(_dtype(dtype, arg1), copy=True).copyto(ctx)
    if hasattr(arg1, 'tocsr') and hasattr(arg1, 'nnz'):  # a scipy.sparse matrix (duck-typed: scipy stays optional)
        m = arg1.tocsr()
        m.sum_duplicates()
        m.sort_indices()
        arg1, shape = (m.data, m.indices, m.indptr), shape or m.shape
    if isinstance(arg1, tuple) and len(arg1) == 2 and all(isinstance(d, numbers.Integral) for d in arg1):
        return zeros('csr', arg1, ctx, dtype)
    if isinstance(arg1, tuple) and len(arg1) == 2:  # COO: (data, (row, col)); duplicates are summed
        data, (row, col) = arg1
        data = _np(data, _dtype(dtype, data)).reshape(-1)
        row, col = _np(row).astype(_IDX).reshape(-1), _np(col).astype(_IDX).reshape(-1)
        if shape is None:
            shape = (int(row.max()) + 1 if len(row) else 0, int(col.max()) + 1 if len(col) else 0)
        d = np.zeros(shape, data.dtype)
        np.add.at(d, (row, col), data)
        return _from_dense('csr', d, ctx)
    if isinstance(arg1, tuple) and len(arg1) == 3:
        data, idx, ptr = arg1
        data = _np(data, _dtype(dtype, data)).reshape(-1)
        idx, ptr = _np(idx).astype(_IDX).reshape(-1), _np(ptr).astype(_IDX).reshape(-1)
        if shape is None:
            shape = (len(ptr) - 1, int(idx.max()) + 1 if len(idx) else 0)
        out = CSRNDArray(data, (idx, ptr), shape, ctx)
        out.check_format()
        return out
    d = _np(arg1)
    return _from_dense('csr', d.astype(_dtype(dtype, d)), ctx)


def array(source_array, ctx=None, dtype=None):
    """A sparse array from a sparse NDArray or a scipy.sparse matrix (MXNet's sparse.array)."""
    if isinstance(source_array, RowSparseNDArray):
        return row_sparse_array(source_array, ctx=ctx, dtype=dtype)
    if isinstance(source_array, CSRNDArray) or hasattr(source_array, 'tocsr'):
        return csr_matrix(source_array, ctx=ctx, dtype=dtype)
    raise GraphcError(f"sparse.array: expects a sparse NDArray or a scipy.sparse matrix, got "
                      f"{type(source_array).__name__}; use row_sparse_array / csr_matrix for dense sources")


# ---------------------------------------------------------------- conversion
def cast_storage(data, stype):
    """data (any storage type) as stype: 'default' (dense), 'row_sparse' or 'csr'. A new array; recorded by
    autograd as an identity, so gradients pass through."""
    stype = _stype_of(stype)
    if stype == 'default':
        out = _on_host(NDArray(data._data if isinstance(data, BaseSparseNDArray) else data._data.copy()),
                       data.context)
    elif data.stype == stype:
        out = data.copy()
    else:
        _ctx(data.context)
        out = _from_dense(stype, data._data, data.context)
    if _ag._st.recording and data._ag is not None:
        _ag.record_op(OPS['_copy'], {}, [data], (data._data,), [out], (out._data,))
    return out


def retain(data, indices):
    """The rows of a RowSparseNDArray listed in indices (the others dropped): MXNet's sparse.retain."""
    if not isinstance(data, RowSparseNDArray):
        raise GraphcError(f"sparse.retain: expects a RowSparseNDArray, got storage type {data.stype!r}")
    want = np.unique(_np(indices).astype(_IDX).reshape(-1))
    keep = np.isin(data._aux[0], want)
    return data._like(data._vals[keep], (data._aux[0][keep],))


# ---------------------------------------------------------------- kernels
def _keys(x):
    """Sorted integer keys of the stored values: rows (row_sparse) or row*cols + col (csr)."""
    return x._aux[0] if x.stype == 'row_sparse' else x._rows() * x._shp[1] + x._aux[0]


def _build(like, keys, vals):
    if like.stype == 'row_sparse':
        return RowSparseNDArray(vals, (keys.astype(_IDX),), like._shp, like.context)
    n, m = like._shp
    rows, cols = np.divmod(keys, m) if m else (keys, keys)
    ptr = np.zeros(n + 1, _IDX)
    np.cumsum(np.bincount(rows, minlength=n), out=ptr[1:])
    return CSRNDArray(vals, (cols.astype(_IDX), ptr), like._shp, like.context)


def _sp(x):
    return isinstance(x, BaseSparseNDArray)


def _unary(op, attrs, x):
    """f(0) = 0: the op runs on the stored values only; the result keeps the storage type."""
    return _build(x, _keys(x), np.asarray(op.ref(attrs, x._vals))) if _sp(x) else None


def _clip(op, attrs, x):
    lo, hi = attrs['a_min'], attrs['a_max']
    return _unary(op, attrs, x) if (lo is None or lo <= 0) and (hi is None or hi >= 0) else None


def _zeros_like(op, attrs, x):
    return zeros(x.stype, x.shape, x.context, x.dtype) if _sp(x) else None


def _scatter(keys, sub, vals, tail, dtype):
    out = np.zeros((len(keys),) + tail, dtype)
    out[np.searchsorted(keys, sub)] = vals
    return out


def _add_like(op, attrs, a, b):
    """rsp+rsp = rsp, csr+csr = csr (on the union of stored positions); a dense operand gives dense."""
    if not (_sp(a) and _sp(b) and a.stype == b.stype and a.shape == b.shape):
        return None
    ka, kb = _keys(a), _keys(b)
    keys = np.union1d(ka, kb)
    tail = a._vals.shape[1:]
    va, vb = _scatter(keys, ka, a._vals, tail, a.dtype), _scatter(keys, kb, b._vals, tail, b.dtype)
    return _build(a, keys, np.asarray(op.ref(attrs, va, vb)))


def _mul(op, attrs, a, b):
    """rsp*rsp = rsp, csr*csr = csr (on the common positions); rsp*dense = dense*rsp = rsp."""
    if a.shape != b.shape:
        return None
    if _sp(a) and _sp(b) and a.stype == b.stype:
        ka, kb = _keys(a), _keys(b)
        keys = np.intersect1d(ka, kb)
        return _build(a, keys, np.asarray(op.ref(attrs, a._vals[np.searchsorted(ka, keys)],
                                                   b._vals[np.searchsorted(kb, keys)])))
    if a.stype == 'row_sparse' and not _sp(b):
        return _build(a, a._aux[0], np.asarray(op.ref(attrs, a._vals, b._data[a._aux[0]])))
    if b.stype == 'row_sparse' and not _sp(a):
        return _build(b, b._aux[0], np.asarray(op.ref(attrs, a._data[b._aux[0]], b._vals)))
    return None


def _dot(op, attrs, a, b):
    """dot(csr, dense) = dense; dot(csr.T, dense) = row_sparse (the rows are the columns csr uses); a row_sparse
    rhs is read densely. Other combinations fall back to the dense dot."""
    if a.stype != 'csr' or _sp(b) and b.stype == 'csr' or attrs['transpose_b'] or b.ndim != 2:
        return None
    B = b._data
    n, m = a.shape
    rows, cols, vals = a._rows(), a._aux[0], a._vals
    dt = np.result_type(vals.dtype, B.dtype)
    if not attrs['transpose_a']:
        if B.shape[0] != m:
            return None
        out = np.zeros((n, B.shape[1]), dt)
        np.add.at(out, rows, vals[:, None] * B[cols])
        return _on_host(NDArray(out), a.context)
    if B.shape[0] != n:
        return None
    keys, inv = np.unique(cols, return_inverse=True)
    acc = np.zeros((len(keys), B.shape[1]), dt)
    np.add.at(acc, inv, vals[:, None] * B[rows])
    return RowSparseNDArray(acc, (keys.astype(_IDX),), (m, B.shape[1]), a.context)


def _slice_rows(op, attrs, x):
    """slice / slice_axis of a CSR array along its rows only stays CSR."""
    if x.stype != 'csr':
        return None
    n = x.shape[0]
    if op.name == 'slice_axis':
        if attrs['axis'] not in (0, -2):
            return None
        b, e = attrs['begin'], attrs['end']
    else:
        begin, end, step = tuple(attrs['begin']), tuple(attrs['end']), tuple(attrs['step'] or ())
        if len(begin) != 1 or any(s not in (None, 1) for s in step):
            return None
        b, e = begin[0], end[0]
    b, e, _ = slice(b, e).indices(n)
    return x._slice_rows(b, max(b, e))


_ZERO_UNARY = ('abs', 'sign', 'negative', 'square', 'sqrt', 'cbrt', 'relu', 'sin', 'tan', 'arcsin', 'arctan',
               'sinh', 'tanh', 'arcsinh', 'arctanh', 'expm1', 'log1p', 'ceil', 'floor', 'round', 'rint', 'fix',
               'trunc', 'degrees', 'radians', '_copy', 'Cast', '_mul_scalar', '_div_scalar')
KERNELS = {**{n: _unary for n in _ZERO_UNARY}, 'clip': _clip, 'zeros_like': _zeros_like,
           'elemwise_add': _add_like, 'elemwise_sub': _add_like, 'elemwise_mul': _mul, 'dot': _dot,
           'slice': _slice_rows, 'slice_axis': _slice_rows}


def _standin(x):
    """A dense NDArray with x's values, on x's autograd entry: what an op without a sparse kernel reads."""
    if not _sp(x):
        return x
    d = _on_host(NDArray(x._data), x.context)
    d._ag = x._ag
    return d


def sparse_invoke(op, inputs, attrs, name=None):
    """invoke() with sparse inputs: the op's sparse kernel where it has one, else the dense op (fallback)."""
    k = KERNELS.get(op.name)
    out = k(op, attrs, *inputs) if k is not None and all(isinstance(x, NDArray) for x in inputs) else None
    if out is None:
        return invoke(op, [_standin(x) for x in inputs], attrs, name)
    if _ag._st.recording and any(x._ag is not None for x in inputs):
        _ag.record_op(op, attrs, inputs, tuple(x._data for x in inputs), [out], (out._data,))
    return out


_HOOK = (BaseSparseNDArray, sparse_invoke)


# ---------------------------------------------------------------- MXNet's nd.sparse functions
def dot(lhs, rhs, transpose_a=False, transpose_b=False, forward_stype=None):
    out = invoke(OPS['dot'], (lhs, rhs), {'transpose_a': bool(transpose_a), 'transpose_b': bool(transpose_b)})
    return out if forward_stype in (None, out.stype) else cast_storage(out, forward_stype)


def _elemwise_or_broadcast(ename, bname):
    def f(lhs, rhs):
        if isinstance(lhs, numbers.Number) or isinstance(rhs, numbers.Number):
            return {'elemwise_add': lambda a, b: a + b, 'elemwise_sub': lambda a, b: a - b,
                    'elemwise_mul': lambda a, b: a * b, 'elemwise_div': lambda a, b: a / b}[ename](lhs, rhs)
        return invoke(OPS[ename if lhs.shape == rhs.shape else bname], (lhs, rhs), {})
    f.__name__ = f.__qualname__ = ename.split('_')[1]
    return f


add = _elemwise_or_broadcast('elemwise_add', 'broadcast_add')
subtract = _elemwise_or_broadcast('elemwise_sub', 'broadcast_sub')
multiply = _elemwise_or_broadcast('elemwise_mul', 'broadcast_mul')
divide = _elemwise_or_broadcast('elemwise_div', 'broadcast_div')


def zeros_like(data, **kwargs):
    return data.zeros_like() if _sp(data) else _nd.zeros_like(data)


def __getattr__(name):
    """Every other op of mx.nd (MXNet's nd.sparse namespace has them all; sparse inputs use the kernels above)."""
    from .. import ndarray as nd
    if name.startswith('__') or not hasattr(nd, name):
        raise AttributeError(f"module 'graphc.ndarray.sparse' has no attribute {name!r}")
    return getattr(nd, name)
