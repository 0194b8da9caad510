"""mx.np's functions (MXNet's mxnet.numpy.multiarray): see the package's docstring."""
import builtins as _b
import functools as _ft
import numbers as _numbers

import numpy as _onp

from .. import ndarray as _nd
from .. import autograd as _ag
from ..base import GraphcError as _GraphcError, GraphcNotSupportedError as _NotSupported
from ..ndarray import ndarray as _ndm
from ..ndarray.ndarray import NDArray as ndarray
from ..util import _NP_SHAPE

pi, e, inf, nan, newaxis, euler_gamma = _onp.pi, _onp.e, _onp.inf, _onp.nan, None, _onp.euler_gamma
NAN, NaN, PINF, NINF, PZERO, NZERO = _onp.nan, _onp.nan, _onp.inf, -_onp.inf, 0.0, -0.0
float16, float32, float64, int8, int32, int64, uint8, bool_ = (_onp.float16, _onp.float32, _onp.float64, _onp.int8,
                                                              _onp.int32, _onp.int64, _onp.uint8, _onp.bool_)
bool = _onp.bool_  # noqa: A001  (MXNet's np.bool)
dtype, finfo, promote_types, result_type = _onp.dtype, _onp.finfo, _onp.promote_types, _onp.result_type


def _npfunc(f):
    """NumPy's shape convention (0-d results) inside an mx.np function, whatever the global switch says."""
    @_ft.wraps(f)
    def g(*args, **kw):
        prev, _NP_SHAPE[0] = _NP_SHAPE[0], True
        try:
            return f(*args, **kw)
        finally:
            _NP_SHAPE[0] = prev
    return g


def _tensor(x):
    return isinstance(x, _ndm.TENSORS)


def _t(x, dtype=None):
    """x as an array (NDArray or traced Symbol kept as is)."""
    return x if _tensor(x) else array(x, dtype=dtype)


def _out(r, out):
    if out is None:
        return r
    if not isinstance(out, ndarray):
        raise _GraphcError(f"out= takes an mx.np.ndarray, got {type(out).__name__}")
    out[...] = r
    return out


def _shape_of(x, fname):
    s = getattr(x, 'shape', None)
    if not isinstance(s, tuple):
        raise _NotSupported(f"np.{fname}: needs the input's shape, which a traced symbol does not have "
                                      "while the block is being traced; compute it outside hybrid_forward")
    return s


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, _numbers.Integral) else axis))


# ---------------------------------------------------------------- creation
def array(object, dtype=None, ctx=None, copy=True):  # noqa: A002  (NumPy's name)
    """An array from a list, a number, a NumPy array or an array (float32 unless dtype, or the source is an
    array, says otherwise: MXNet's default)."""
    if isinstance(object, ndarray):
        r = object.as_in_context(ctx) if ctx is not None else object
        r = r.astype(dtype) if dtype is not None else (r.copy() if r is object else r)
        return r
    src = object.asnumpy() if hasattr(object, 'asnumpy') else object
    if dtype is None and not isinstance(src, _onp.ndarray):
        a = _onp.asarray(src)
        dtype = _onp.float32 if a.dtype.kind in 'fiuc' else a.dtype
    return _nd.array(_onp.asarray(src), ctx=ctx, dtype=dtype if dtype is not None else _onp.asarray(src).dtype)


def asarray(a, dtype=None, ctx=None):
    return a if isinstance(a, ndarray) and dtype is None and ctx is None else array(a, dtype=dtype, ctx=ctx)


def _shape(shape):
    return (shape,) if isinstance(shape, _numbers.Integral) else tuple(shape)


def zeros(shape, dtype=None, order='C', ctx=None):
    return _nd.zeros(_shape(shape), ctx=ctx, dtype=dtype or _onp.float32)


def ones(shape, dtype=None, order='C', ctx=None):
    return _nd.ones(_shape(shape), ctx=ctx, dtype=dtype or _onp.float32)


def empty(shape, dtype=None, order='C', ctx=None):
    if order != 'C':  # MXNet's: only row-major arrays
        raise NotImplementedError(f"np.empty: order={order!r} is not supported; only 'C'")
    return zeros(shape, dtype, order, ctx)


def full(shape, fill_value, dtype=None, order='C', ctx=None, out=None):
    return _out(_nd.full(_shape(shape), fill_value, ctx=ctx, dtype=dtype or _onp.float32), out)


def zeros_like(a, dtype=None, order='C', ctx=None, out=None):
    return _out(full(_shape_of(a, 'zeros_like'), 0, dtype or a.dtype, ctx=ctx or a.context), out)


def ones_like(a, dtype=None, order='C', ctx=None, out=None):
    return _out(full(_shape_of(a, 'ones_like'), 1, dtype or a.dtype, ctx=ctx or a.context), out)


def full_like(a, fill_value, dtype=None, order='C', ctx=None, out=None):
    return _out(full(_shape_of(a, 'full_like'), fill_value, dtype or a.dtype, ctx=ctx or a.context), out)


empty_like = zeros_like


def arange(start, stop=None, step=1, dtype=None, ctx=None):
    return array(_onp.arange(start, stop, step), dtype=dtype or _onp.float32, ctx=ctx)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, ctx=None):
    a, step = _onp.linspace(start, stop, num, endpoint=endpoint, retstep=True, axis=axis)
    r = array(a, dtype=dtype or _onp.float32, ctx=ctx)
    return (r, step) if retstep else r


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0, ctx=None):
    return array(_onp.logspace(start, stop, num, endpoint, base, axis=axis), dtype=dtype or _onp.float32, ctx=ctx)


def eye(N, M=None, k=0, dtype=None, ctx=None, **kwargs):
    return array(_onp.eye(N, M, k), dtype=dtype or _onp.float32, ctx=ctx)


def identity(n, dtype=None, ctx=None):
    return eye(n, dtype=dtype, ctx=ctx)


def copy(a):
    return _t(a).copy()


def shape(a):
    return _shape_of(_t(a), 'shape')


def size(a, axis=None):
    s = shape(a)
    return int(_onp.prod(s)) if axis is None else s[axis]


def ndim(a):
    return len(shape(a))


# ---------------------------------------------------------------- element-wise
def _unary(fn, name):
    @_npfunc
    def f(x, out=None, **kw):
        x = _t(x)
        if getattr(x, 'dtype', None) is not None and x.dtype.kind in 'iub' and name in _FLOAT_RESULT:
            x = x.astype(_onp.float32)  # NumPy: exp/sqrt/... of integers are floats
        return _out(fn(x), out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name} (element-wise)."
    return f


_FLOAT_RESULT = {'exp', 'expm1', 'log', 'log2', 'log10', 'log1p', 'sqrt', 'cbrt', 'sin', 'cos', 'tan', 'arcsin',
                 'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'arcsinh', 'arccosh', 'arctanh', 'degrees', 'radians',
                 'reciprocal', 'deg2rad', 'rad2deg'}
for _n in ('exp', 'expm1', 'log', 'log2', 'log10', 'log1p', 'sqrt', 'cbrt', 'square', 'sin', 'cos', 'tan', 'arcsin',
           'arccos', 'arctan', 'sinh', 'cosh', 'tanh', 'arcsinh', 'arccosh', 'arctanh', 'degrees', 'radians', 'floor',
           'ceil', 'trunc', 'fix', 'rint', 'sign', 'reciprocal', 'negative', 'abs'):
    globals()[_n] = _unary(getattr(_nd, _n), _n)
absolute, fabs = abs, abs  # noqa: F821
deg2rad, rad2deg = radians, degrees  # noqa: F821
positive = _unary(lambda x: x, 'positive')


def _as_pair(x1, x2):
    if not _tensor(x1) and not _tensor(x2):
        x1 = array(x1)
    if not _tensor(x1) and not isinstance(x1, _numbers.Number):
        x1 = array(x1, dtype=x2.dtype)
    if not _tensor(x2) and not isinstance(x2, _numbers.Number):
        x2 = array(x2, dtype=x1.dtype)
    return x1, x2


def _binary(fn, name, result_bool=False):
    @_npfunc
    def f(x1, x2, out=None, **kw):
        x1, x2 = _as_pair(x1, x2)
        r = fn(x1, x2)
        return _out(r.astype(_onp.bool_) if result_bool else r, out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name} (element-wise, broadcasting)."
    return f


add, subtract, multiply = _binary(_nd.add, 'add'), _binary(_nd.subtract, 'subtract'), _binary(_nd.multiply, 'multiply')
divide = true_divide = _binary(_nd.divide, 'divide')
power, mod = _binary(_nd.power, 'power'), _binary(_nd.modulo, 'mod')
float_power, remainder = power, mod
maximum, minimum = _binary(_nd.maximum, 'maximum'), _binary(_nd.minimum, 'minimum')
fmax, fmin = maximum, minimum
equal, not_equal = _binary(_nd.equal, 'equal', True), _binary(_nd.not_equal, 'not_equal', True)
greater, less = _binary(_nd.greater, 'greater', True), _binary(_nd.lesser, 'less', True)
greater_equal = _binary(_nd.greater_equal, 'greater_equal', True)
less_equal = _binary(_nd.lesser_equal, 'less_equal', True)
floor_divide = _binary(lambda a, b: _nd.floor(a / b), 'floor_divide')
hypot = _binary(lambda a, b: _nd.sqrt(a * a + b * b), 'hypot')
logical_and = _binary(lambda a, b: (a != 0) * (b != 0), 'logical_and', True)
logical_or = _binary(lambda a, b: ((a != 0) + (b != 0)) > 0, 'logical_or', True)
logical_xor = _binary(lambda a, b: (a != 0) != (b != 0), 'logical_xor', True)


@_npfunc
def logical_not(x, out=None, **kw):
    return _out((_t(x) == 0).astype(_onp.bool_), out)


@_npfunc
def isnan(x, out=None, **kw):
    x = _t(x)
    return _out((x != x).astype(_onp.bool_), out)


@_npfunc
def isinf(x, out=None, **kw):
    return _out((_nd.abs(_t(x)) == _onp.inf).astype(_onp.bool_), out)


@_npfunc
def isfinite(x, out=None, **kw):
    return _out((_nd.abs(_t(x)) < _onp.inf).astype(_onp.bool_), out)  # (nan < inf is false)


def isposinf(x, out=None):
    return _out((_t(x) == _onp.inf).astype(_onp.bool_), out)


def isneginf(x, out=None):
    return _out((_t(x) == -_onp.inf).astype(_onp.bool_), out)


@_npfunc
def clip(a, a_min, a_max, out=None):
    lo = -_onp.inf if a_min is None else float(a_min)
    hi = _onp.inf if a_max is None else float(a_max)
    return _out(_nd.clip(_t(a), lo, hi), out)


@_npfunc
def around(x, decimals=0, out=None):
    if decimals:
        s = 10.0 ** decimals
        return _out(_nd.rint(_t(x) * s) / s, out)
    return _out(_nd.rint(_t(x)), out)  # NumPy rounds halves to even, as rint


round = round_ = around  # noqa: A001


@_npfunc
def where(condition, x=None, y=None):
    if x is None and y is None:
        return _fallback('nonzero')(condition)
    c = _t(condition)
    x, y = _as_pair(x, y)
    x = x if _tensor(x) else full_like(c, x, dtype=y.dtype)
    y = y if _tensor(y) else full_like(c, y, dtype=x.dtype)
    shp = _onp.broadcast_shapes(*(_shape_of(v, 'where') for v in (c, x, y)))
    c, x, y = (v if v.shape == shp else _nd.broadcast_to(v, shape=shp) for v in (c, x, y))
    return _nd.where(c.astype(x.dtype) if c.dtype != x.dtype else c, x, y)


# ---------------------------------------------------------------- reductions
def _reduce(fn, name, index=False):
    @_npfunc
    def f(a, axis=None, dtype=None, out=None, keepdims=False, **kw):
        a = _t(a)
        if dtype is not None:
            a = a.astype(dtype)
        if index:
            r = fn(a.reshape(-1) if axis is None else a, axis=0 if axis is None else axis, keepdims=keepdims)
            return _out(r.astype(_onp.int64), out)
        ax = () if axis is None else (axis if isinstance(axis, _numbers.Integral) else tuple(axis))
        r = fn(a, axis=ax, keepdims=keepdims) if ax != () else fn(a, keepdims=keepdims)
        return _out(r, out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name}."
    return f


sum, mean, prod = _reduce(_nd.sum, 'sum'), _reduce(_nd.mean, 'mean'), _reduce(_nd.prod, 'prod')  # noqa: A001
max = amax = _reduce(_nd.max, 'max')  # noqa: A001
min = amin = _reduce(_nd.min, 'min')  # noqa: A001
nansum, nanprod = _reduce(_nd.nansum, 'nansum'), _reduce(_nd.nanprod, 'nanprod')
argmax, argmin = _reduce(_nd.argmax, 'argmax', index=True), _reduce(_nd.argmin, 'argmin', index=True)
product = prod


@_npfunc
def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    a = _t(a) if dtype is None else _t(a).astype(dtype)
    d = a - mean(a, axis=axis, keepdims=True)
    r = mean(d * d, axis=axis, keepdims=keepdims)
    if ddof:
        s = _shape_of(a, 'var')
        n = int(_onp.prod([s[i] for i in _axes(axis, len(s))]))
        r = r * (n / (n - ddof))
    return _out(r, out)


@_npfunc
def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    return _out(_nd.sqrt(var(a, axis, dtype, None, ddof, keepdims)), out)


@_npfunc
def average(a, axis=None, weights=None, returned=False):
    a = _t(a)
    if weights is None:
        r, w = mean(a, axis=axis), None
    else:
        w = _t(weights, a.dtype)
        if w.shape != a.shape:  # NumPy: 1-d weights along axis
            shp = [1] * a.ndim
            shp[axis] = -1
            w = _nd.broadcast_to(w.reshape(tuple(shp)), shape=a.shape)
        r = sum(a * w, axis=axis) / sum(w, axis=axis)
    if not returned:
        return r
    return r, (sum(w, axis=axis) if w is not None else full_like(r, a.size / r.size))


@_npfunc
def all(a, axis=None, out=None, keepdims=False):  # noqa: A001
    return _out(min((_t(a) != 0).astype(_onp.float32), axis=axis, keepdims=keepdims).astype(_onp.bool_), out)


@_npfunc
def any(a, axis=None, out=None, keepdims=False):  # noqa: A001
    return _out(max((_t(a) != 0).astype(_onp.float32), axis=axis, keepdims=keepdims).astype(_onp.bool_), out)


alltrue, sometrue = all, any


@_npfunc
def count_nonzero(a, axis=None, keepdims=False):
    return sum((_t(a) != 0).astype(_onp.int64), axis=axis, keepdims=keepdims)


@_npfunc
def cumsum(a, axis=None, dtype=None, out=None):
    a = _t(a)
    return _out(_nd.cumsum(a.reshape(-1) if axis is None else a, axis=0 if axis is None else axis,
                           dtype=dtype), out)


# ---------------------------------------------------------------- shapes
@_npfunc
def reshape(a, newshape, order='C'):
    if order != 'C':
        raise _NotSupported(f"np.reshape: order={order!r} (only 'C')")
    return _ndm._op('_np_reshape', _t(a), newshape=_shape(newshape))


def ravel(x, order='C'):
    return reshape(x, (-1,), order)


@_npfunc
def transpose(a, axes=None):
    return _nd.transpose(_t(a), axes=() if axes is None else tuple(axes))


@_npfunc
def swapaxes(a, axis1, axis2):
    return _nd.swapaxes(_t(a), dim1=axis1, dim2=axis2)


@_npfunc
def moveaxis(a, source, destination):
    a = _t(a)
    n = len(_shape_of(a, 'moveaxis'))
    src, dst = _axes(source, n), _axes(destination, n)
    order = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


def rollaxis(a, axis, start=0):
    n = ndim(a)
    start = start % (n + 1) if start < 0 else start
    return moveaxis(a, axis, start - 1 if start > axis % n else start)


@_npfunc
def expand_dims(a, axis):
    return _nd.expand_dims(_t(a), axis=axis)


@_npfunc
def squeeze(a, axis=None):
    return _nd.squeeze(_t(a), axis=axis)


@_npfunc
def broadcast_to(array, shape):  # noqa: A002
    return _nd.broadcast_to(_t(array), shape=_shape(shape))


def broadcast_arrays(*args):
    s = _onp.broadcast_shapes(*(shape(a) for a in args))
    return [broadcast_to(a, s) if shape(a) != s else _t(a) for a in args]


def atleast_1d(*arys):
    r = [reshape(a, (1,)) if ndim(a) == 0 else _t(a) for a in arys]
    return r[0] if len(r) == 1 else r


def atleast_2d(*arys):
    r = [reshape(a, (1,) * (2 - ndim(a)) + shape(a)) if ndim(a) < 2 else _t(a) for a in arys]
    return r[0] if len(r) == 1 else r


def atleast_3d(*arys):
    def one(a):
        n = ndim(a)
        return reshape(a, (1, 1, 1)) if n == 0 else reshape(a, (1, -1, 1)) if n == 1 else \
            expand_dims(a, 2) if n == 2 else _t(a)
    r = [one(a) for a in arys]
    return r[0] if len(r) == 1 else r


@_npfunc
def concatenate(seq, axis=0, out=None):
    seq = [_t(a) for a in seq]
    if axis is None:
        seq, axis = [ravel(a) for a in seq], 0
    return _out(_nd.concat(*seq, dim=axis) if len(seq) > 1 else seq[0].copy(), out)


@_npfunc
def stack(arrays, axis=0, out=None):
    return _out(_nd.stack(*[_t(a) for a in arrays], axis=axis), out)


def append(arr, values, axis=None):
    return concatenate([arr, values], axis=axis)


def vstack(tup, out=None):
    return concatenate(atleast_2d(*tup) if len(tup) > 1 else [atleast_2d(*tup)], axis=0, out=out)


row_stack = vstack


def hstack(tup, out=None):
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, axis=0 if ndim(arrs[0]) == 1 else 1, out=out)


def dstack(tup):
    return concatenate([atleast_3d(a) for a in tup], axis=2)


def column_stack(tup):
    return concatenate([reshape(a, (-1, 1)) if ndim(a) == 1 else _t(a) for a in tup], axis=1)


@_npfunc
def split(ary, indices_or_sections, axis=0):
    ary = _t(ary)
    if isinstance(indices_or_sections, _numbers.Integral):
        n = _shape_of(ary, 'split')[axis]
        if n % indices_or_sections:
            raise ValueError(f"np.split: array split does not result in an equal division "
                             f"({n} along axis {axis} into {indices_or_sections})")
        r = _nd.split(ary, num_outputs=indices_or_sections, axis=axis)
        return list(r) if isinstance(r, (list, tuple)) else [r]
    return _split_at(ary, list(indices_or_sections), axis)


def _split_at(ary, idx, axis):
    n = _shape_of(ary, 'split')[axis]
    bounds = [0] + [i if i >= 0 else i + n for i in idx] + [n]
    return [_nd.slice_axis(ary, axis=axis, begin=_b.min(a, n), end=_b.max(_b.min(b, n), _b.min(a, n)))
            for a, b in zip(bounds, bounds[1:])]


@_npfunc
def array_split(ary, indices_or_sections, axis=0):
    ary = _t(ary)
    if not isinstance(indices_or_sections, _numbers.Integral):
        return _split_at(ary, list(indices_or_sections), axis)
    n, k = _shape_of(ary, 'array_split')[axis], indices_or_sections
    sizes = [n // k + 1] * (n % k) + [n // k] * (k - n % k)
    return _split_at(ary, list(_onp.cumsum(sizes)[:-1]), axis)


def hsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=1 if ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    return split(ary, indices_or_sections, axis=2)


@_npfunc
def tile(A, reps):
    return _nd.tile(_t(A), reps=_shape(reps))


@_npfunc
def repeat(a, repeats, axis=None):
    a = _t(a)
    if not isinstance(repeats, _numbers.Integral):
        raise _NotSupported("np.repeat: repeats must be one integer (per-element counts are not supported)")
    return _nd.repeat(ravel(a) if axis is None else a, repeats=repeats, axis=0 if axis is None else axis)


@_npfunc
def flip(m, axis=None):
    m = _t(m)
    return _nd.reverse(m, axis=_axes(axis, len(_shape_of(m, 'flip'))) if axis is None else axis)


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


@_npfunc
def roll(a, shift, axis=None):
    a = _t(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), shape(a))
    n = shape(a)[axis]
    k = shift % n if n else 0
    return concatenate(_split_at(a, [n - k], axis)[::-1], axis=axis) if k else a.copy()


@_npfunc
def sort(a, axis=-1, kind=None, order=None):
    a = _t(a)
    return _nd.sort(ravel(a) if axis is None else a, axis=-1 if axis is None else axis)


@_npfunc
def argsort(a, axis=-1, kind=None, order=None):
    a = _t(a)
    return _nd.argsort(ravel(a) if axis is None else a, axis=-1 if axis is None else axis, dtype='int64')


@_npfunc
def take(a, indices, axis=None, mode='raise', out=None):
    a, ind = _t(a), _t(indices, _onp.int64)
    if axis is None:
        a, axis = ravel(a), 0
    if mode == 'raise':
        if isinstance(ind, ndarray) and isinstance(a, ndarray) and ind.size:
            n, lo, hi = a.shape[axis], int(ind.asnumpy().min()), int(ind.asnumpy().max())
            if lo < -n or hi >= n:
                raise IndexError(f"np.take: index {hi if hi >= n else lo} is out of bounds for axis {axis} "
                                 f"with size {n}")
            if lo < 0:
                ind = array(_onp.where(ind.asnumpy() < 0, ind.asnumpy() + n, ind.asnumpy()), dtype=ind.dtype)
        mode = 'clip'
    return _out(_nd.take(a, ind, axis=axis, mode=mode), out)


@_npfunc
def diag(v, k=0):
    return _nd.diag(_t(v), k=k)


def _tri_mask(a, k, lower):
    s = _shape_of(a, 'tril' if lower else 'triu')
    m = _onp.tri(s[-2], s[-1], k, dtype=bool)
    return array(m if lower else ~_onp.tri(s[-2], s[-1], k - 1, dtype=bool), dtype=a.dtype, ctx=a.context)


def tril(m, k=0):
    m = _t(m)
    return m * _tri_mask(m, k, True)


def triu(m, k=0):
    m = _t(m)
    return m * _tri_mask(m, k, False)


# ---------------------------------------------------------------- products
@_npfunc
def dot(a, b, out=None):
    a, b = _as_pair(a, b)
    if not _tensor(a) or not _tensor(b) or a.ndim == 0 or b.ndim == 0:
        return _out(multiply(a, b), out)
    if b.ndim <= 2 or a.ndim == 0:
        return _out(_nd.dot(a, b), out)
    return _out(_nd.dot(a, moveaxis(b, -2, 0)), out)  # NumPy: a's last axis with b's second-to-last


@_npfunc
def matmul(a, b, out=None):
    a, b = _as_pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("np.matmul: input operand does not have enough dimensions (use np.multiply for scalars)")
    if a.ndim <= 2 and b.ndim <= 2:
        return _out(_nd.dot(a, b), out)
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    batch = _onp.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    a3 = broadcast_to(a2, batch + a2.shape[-2:]).reshape((-1,) + a2.shape[-2:])
    b3 = broadcast_to(b2, batch + b2.shape[-2:]).reshape((-1,) + b2.shape[-2:])
    r = _nd.batch_dot(a3, b3).reshape(batch + (a2.shape[-2], b2.shape[-1]))
    if a.ndim == 1:
        r = squeeze(r, -2)
    if b.ndim == 1:
        r = squeeze(r, -1)
    return _out(r, out)


@_npfunc
def tensordot(a, b, axes=2):
    a, b = _t(a), _t(b)
    if isinstance(axes, _numbers.Integral):
        ax_a, ax_b = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        ax_a, ax_b = [list(_axes(x, n)) for x, n in zip(axes, (a.ndim, b.ndim))]
    free_a = [i for i in range(a.ndim) if i not in ax_a]
    free_b = [i for i in range(b.ndim) if i not in ax_b]
    k = int(_onp.prod([a.shape[i] for i in ax_a]))
    a2 = transpose(a, free_a + ax_a).reshape((-1, k))
    b2 = transpose(b, ax_b + free_b).reshape((k, -1))
    return _nd.dot(a2, b2).reshape(tuple(a.shape[i] for i in free_a) + tuple(b.shape[i] for i in free_b))


def inner(a, b):
    return tensordot(a, b, ([-1], [-1]))


@_npfunc
def outer(a, b):
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def vdot(a, b):
    return dot(ravel(a), ravel(b))


# ---------------------------------------------------------------- comparisons over arrays
@_npfunc
def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    a, b = _as_pair(a, b)
    a, b = _t(a), _t(b, a.dtype)
    r = _nd.abs(a - b) <= atol + rtol * _nd.abs(b)
    if equal_nan:
        r = ((r + (isnan(a) * isnan(b))) > 0)
    return r.astype(_onp.bool_)


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    return _b.bool(all(isclose(a, b, rtol, atol, equal_nan)))


def array_equal(a1, a2, equal_nan=False):
    a1, a2 = _t(a1), _t(a2)
    return a1.shape == a2.shape and _b.bool(all(isclose(a1, a2, 0, 0, equal_nan) if equal_nan else equal(a1, a2)))


def array_equiv(a1, a2):
    try:
        return _b.bool(all(equal(*broadcast_arrays(a1, a2))))
    except ValueError:
        return False


# ---------------------------------------------------------------- NumPy on the host (MXNet's fallback list)
_FALLBACK = set('''apply_along_axis apply_over_axes argpartition argwhere bincount bitwise_and bitwise_not bitwise_or
bitwise_xor blackman choose compress copysign corrcoef correlate cov delete diag_indices_from diagflat diagonal diff
digitize divmod ediff1d einsum extract flatnonzero frexp genfromtxt hamming hanning heaviside histogram histogram2d
histogram_bin_edges histogramdd i0 in1d indices insert interp intersect1d invert isin ix_ lcm ldexp lexsort meshgrid
modf msort nan_to_num nanargmax nanargmin nancumprod nancumsum nanmax nanmedian nanmin nanpercentile nanquantile
nonzero packbits pad partition percentile piecewise poly polyadd polydiv polyfit polyint polymul polysub polyval ptp
quantile real resize roots rot90 searchsorted select setdiff1d setxor1d signbit spacing take_along_axis trace trapz
tril_indices_from trim_zeros triu_indices_from union1d unique unpackbits unravel_index unwrap vander arctan2
median'''.split())


def _host_args(fname, x):
    if isinstance(x, ndarray):
        if _ag.is_recording() and x._ag is not None:
            raise _NotSupported(f"np.{fname} runs in NumPy on the host (no graphc kernel) and cannot be "
                                          "differentiated: call it outside autograd.record() or on x.detach()")
        return x.asnumpy()
    if _tensor(x):
        raise _NotSupported(f"np.{fname} runs in NumPy on the host (no graphc kernel) and cannot be part of "
                                      "a hybridized graph: call it outside hybrid_forward")
    if isinstance(x, (list, tuple)):
        return type(x)(_host_args(fname, v) for v in x)
    return x


def _host_result(r, ctx):
    if isinstance(r, (_onp.ndarray, _onp.generic)):
        return _nd.array(_onp.asarray(r), ctx=ctx, dtype=r.dtype)
    if isinstance(r, (list, tuple)):
        return type(r)(_host_result(v, ctx) for v in r)
    return r


def _fallback(fname):
    fn = getattr(_onp, fname)

    @_ft.wraps(fn)
    def f(*args, **kw):
        ctx = next((a.context for a in args if isinstance(a, ndarray)), None)
        return _host_result(fn(*_host_args(fname, list(args)), **{k: _host_args(fname, v) for k, v in kw.items()}),
                            ctx)
    f.__doc__ = f"NumPy's {fname}, computed by NumPy on the host (MXNet's fallback: no gradient, no tracing)."
    return f




# ---------------------------------------------------------------- mx.np.ndarray's methods
def _np_methods():
    """The array methods mx.np.ndarray has beyond NDArray's, and those whose NumPy form differs (flatten gives
    1-d, argmax/argmin int64 indices) switched by npx.set_np()."""
    def method(f):
        return lambda self, *args, **kw: f(self, *args, **kw)

    from ..symbol.symbol import Symbol  # traced values (hybridize, F.np) take the same methods
    for name in ('std', 'var', 'any', 'all', 'dot', 'ravel', 'nonzero', 'trace', 'ptp'):
        if not hasattr(ndarray, name):
            setattr(ndarray, name, method(globals().get(name) or _fallback(name)))
        if not hasattr(Symbol, name):
            setattr(Symbol, name, getattr(ndarray, name))
    for name, npf in (('flatten', ravel), ('argmax', argmax), ('argmin', argmin)):
        nd_method = getattr(ndarray, name)

        def switched(self, *args, _nd=nd_method, _np=npf, **kw):
            return _np(self, *args, **kw) if _ndm._NP_ARRAY[0] else _nd(self, *args, **kw)
        switched.__name__ = name
        switched.__doc__ = f"NDArray's {name}; under npx.set_np(), NumPy's."
        setattr(ndarray, name, switched)


_np_methods()
