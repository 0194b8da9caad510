"""mx.np's functions (MXNet's mxnet.numpy.multiarray): see the package's docstring."""
import builtins as _b
import functools as _ft
import numbers as _numbers

import numpy as _onp

from .. import ndarray as _nd
from .. import autograd as _ag
from ..base import GraphcDynamicShapeError as _GraphcDynamicShapeError, GraphcError as _GraphcError, \
    GraphcNotSupportedError as _NotSupported
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
    if _tensor(fill_value):  # an array value broadcasts (NumPy), and keeps its dtype unless dtype says otherwise
        r = broadcast_to(fill_value, _shape(shape))
        return _out(r.astype(dtype) if dtype is not None and r.dtype != _onp.dtype(dtype) else r, out)
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
    if N < 0 or (M is not None and M < 0):
        raise _GraphcError(f"np.eye: negative dimensions are not allowed (N={N}, M={M})")
    return array(_onp.eye(N, M, k), dtype=dtype or _onp.float32, ctx=ctx)


def _window(name):
    def f(M, dtype=None, ctx=None):
        return array(getattr(_onp, name)(M), dtype=dtype or _onp.float32, ctx=ctx)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name} window of M points (empty for M < 1), float32 unless dtype says otherwise."
    return f


hanning, hamming, blackman = _window('hanning'), _window('hamming'), _window('blackman')


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
_UFUNC_DEFAULTS = {'where': True, 'casting': 'same_kind', 'order': 'K', 'dtype': None, 'subok': True}
_UFUNC_DTYPES = {'int8', 'uint8', 'int32', 'int64', 'float16', 'float32', 'float64'}


def _ufunc_kwargs(name, kw):
    """MXNet's ufunc keywords: NumPy's names at their defaults are accepted; another legal value raises
    NotImplementedError, an illegal one (or an unknown keyword) TypeError."""
    for k, v in kw.items():
        if k not in _UFUNC_DEFAULTS:
            raise TypeError(f"np.{name}: {k!r} is an invalid keyword")
        if v is _UFUNC_DEFAULTS[k] or (v == _UFUNC_DEFAULTS[k] if isinstance(v, str) else False):
            continue
        legal = {'where': True, 'subok': isinstance(v, _b.bool), 'order': isinstance(v, str),
                 'casting': v in ('no', 'equiv', 'safe', 'same_kind', 'unsafe'),
                 'dtype': (_onp.dtype(v).name if isinstance(v, type) else v) in _UFUNC_DTYPES
                 if isinstance(v, (str, type)) else False}[k]
        if legal:
            raise NotImplementedError(f"np.{name}: {k}={v!r} is not implemented yet")
        raise TypeError(f"np.{name}: {k}={v!r} not understood")


def _unary(fn, name):
    @_npfunc
    def f(x, out=None, **kw):
        _ufunc_kwargs(name, kw)
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
    division = name in ('divide', 'true_divide')

    @_npfunc
    def f(x1, x2, out=None, **kw):
        _ufunc_kwargs(name, kw)
        x1, x2 = _as_pair(x1, x2)
        if _tensor(x1):  # (mixed dtypes as MXNet's mx.np: ndarray._np_promote)
            x1, x2 = _ndm._np_promote(x1, x2, division)
        else:
            x2, x1 = _ndm._np_promote(x2, x1, division)
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
def _npi2(opname):
    def f(a, b):
        a = a if _tensor(a) else array(a, dtype=b.dtype)
        return _ndm._op(opname, a, b if _tensor(b) else array(b, dtype=a.dtype))
    return f


lcm, arctan2, copysign, ldexp = (_binary(_npi2('_npi_' + _n), _n) for _n in ('lcm', 'arctan2', 'copysign', 'ldexp'))
bitwise_and, bitwise_or, bitwise_xor = (_binary(_npi2('_npi_' + _n), _n) for _n in ('bitwise_and', 'bitwise_or',
                                                                                    'bitwise_xor'))
logical_and = _binary(lambda a, b: (a != 0) * (b != 0), 'logical_and', True)
logical_or = _binary(lambda a, b: ((a != 0) + (b != 0)) > 0, 'logical_or', True)
logical_xor = _binary(lambda a, b: (a != 0) != (b != 0), 'logical_xor', True)


def _bool_unary(name, fn):
    @_npfunc
    def f(x, out=None, **kw):
        _ufunc_kwargs(name, kw)
        if out is not None and getattr(out, 'dtype', None) != _onp.bool_:
            raise TypeError(f"np.{name}: out= must be a bool array (the result's type), got {out.dtype}")
        x = _t(x)
        if x.dtype.kind in 'iub' and name != 'logical_not':  # integers are never nan or infinite
            x = x.astype(_onp.float32)
        return _out(fn(x).astype(_onp.bool_), out)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy's {name} (element-wise, bool result)."
    return f


logical_not = _bool_unary('logical_not', lambda x: x == 0)
isnan = _bool_unary('isnan', lambda x: x != x)
isinf = _bool_unary('isinf', lambda x: _nd.abs(x) == _onp.inf)
isfinite = _bool_unary('isfinite', lambda x: _nd.abs(x) < _onp.inf)  # (nan < inf is false)
isposinf = _bool_unary('isposinf', lambda x: x == _onp.inf)
isneginf = _bool_unary('isneginf', lambda x: x == -_onp.inf)


@_npfunc
def bitwise_not(x, out=None, **kw):
    """~x of integers (two's complement: -x - 1; 255 - x for uint8) and logical not of bools."""
    _ufunc_kwargs('bitwise_not', kw)
    x = _t(x)
    if x.dtype.kind == 'f':
        raise TypeError("np.bitwise_not: not supported for floating-point inputs")
    r = (x == 0).astype(_onp.bool_) if x.dtype.kind == 'b' else \
        (_onp.iinfo(x.dtype).max - x if x.dtype.kind == 'u' else -x - 1)
    return _out(r, out)


invert = bitwise_not


@_npfunc
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """nan, +inf and -inf replaced (by 0, the dtype's largest and smallest finite values unless given); the
    gradient is 1 where x is finite, 0 elsewhere. copy=False writes into x."""
    x = _t(x)
    if x.dtype.kind in 'iub':
        return x.copy() if copy else x
    fi = _onp.finfo(x.dtype)
    r = where(isnan(x), float(nan), x)
    r = where(r == _onp.inf, float(fi.max if posinf is None else posinf), r)
    r = where(r == -_onp.inf, float(fi.min if neginf is None else neginf), r)
    if not copy and isinstance(x, ndarray):
        x[...] = r
        return x
    return r


@_npfunc
def clip(a, a_min, a_max, out=None):
    lo = -_onp.inf if a_min is None else float(a_min)
    hi = _onp.inf if a_max is None else float(a_max)
    return _out(_nd.clip(_t(a), lo, hi), out)


@_npfunc
def around(x, decimals=0, out=None):
    x = _t(x)
    if x.dtype.kind in 'iub':  # NumPy: integers stay integers (negative decimals round to tens, ...)
        if decimals >= 0:
            return _out(x.copy(), out)
        return _out(around(x.astype(_onp.float64), decimals).astype(x.dtype), out)
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
        target = _onp.dtype(dtype) if dtype is not None else a.dtype
        if a.dtype.kind == 'f' and not index and (a.dtype == _onp.float16 or target != a.dtype):
            # MXNet: a float input is reduced in its own type (float16 in float32) and the result cast to
            # dtype, so the gradient is the input's (1/N for mean, even with dtype='int32')
            r = f(a.astype(_onp.float32) if a.dtype == _onp.float16 else a, axis, None, None, keepdims)
            return _out(r.astype(target) if r.dtype != target else r, out)
        if dtype is not None:
            a = a.astype(dtype)
        if index:
            if axis is not None and len(_shape_of(a, name)) == 0 and axis in (0, -1):
                axis, keepdims = None, False  # NumPy: a 0-d array's only index is 0 (axis 0 or -1 allowed)
            s = _shape_of(a, name)
            if axis is not None and 0 in s and s[axis % len(s)] != 0:  # empty result along another axis
                rs = tuple(1 if i == axis % len(s) else d for i, d in enumerate(s)) if keepdims else \
                    s[:axis % len(s)] + s[axis % len(s) + 1:]
                return _out(zeros(rs, dtype=_onp.int64, ctx=a.context), out)
            r = fn(a.reshape(-1) if axis is None else a, axis=0 if axis is None else axis, keepdims=keepdims)
            return _out(r.astype(_onp.int64), out)
        if axis is not None and not isinstance(axis, _numbers.Integral) and not tuple(axis):
            return _out(a.copy(), out)  # NumPy: axis=() reduces over no axis (element-wise identity)
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
        r = r * (n / (n - ddof) if n > ddof else _onp.nan)  # NumPy: nan when ddof >= the count
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
    # counts, not min/max: over an empty axis all() is True and any() is False, as in NumPy
    zeros = sum((_t(a) == 0).astype(_onp.float32), axis=axis, keepdims=keepdims)
    return _out((zeros == 0).astype(_onp.bool_), out)


@_npfunc
def any(a, axis=None, out=None, keepdims=False):  # noqa: A001
    nonzeros = sum((_t(a) != 0).astype(_onp.float32), axis=axis, keepdims=keepdims)
    return _out((nonzeros > 0).astype(_onp.bool_), out)


alltrue, sometrue = all, any


@_npfunc
def count_nonzero(a, axis=None, keepdims=False):
    return sum((_t(a) != 0).astype(_onp.int64), axis=axis, keepdims=keepdims)


@_npfunc
def cumsum(a, axis=None, dtype=None, out=None):
    a = _t(a)
    target = _onp.dtype(dtype) if dtype is not None else a.dtype
    if target.kind == 'b':
        target = _onp.dtype(_onp.float32)  # MXNet: the running count of a bool array is float32
    a = a.astype(target)  # (float16 accumulates in float16, as in MXNet and NumPy)
    r = _nd.cumsum(a.reshape(-1) if axis is None else a, axis=0 if axis is None else axis)
    return _out(r.astype(target) if r.dtype != target else r, out)


@_npfunc
def diff(a, n=1, axis=-1, prepend=None, append=None):
    a = _t(a)
    nd_ = len(_shape_of(a, 'diff'))
    axis = axis % nd_
    ends = [v if _tensor(v) else broadcast_to(array(v, dtype=a.dtype, ctx=a.context),
                                                tuple(1 if i == axis else d for i, d in enumerate(a.shape)))
            for v in (prepend, append)]
    if prepend is not None or append is not None:
        a = concatenate(([ends[0]] if prepend is not None else []) + [a] + ([ends[1]] if append is not None else []),
                        axis=axis)
    for _ in range(n):
        m = a.shape[axis]
        if m == 0:
            break
        a = _nd.slice_axis(a, axis=axis, begin=1, end=m) - _nd.slice_axis(a, axis=axis, begin=0, end=m - 1)
    return a if n else a.copy()


def ediff1d(ary, to_end=None, to_begin=None):
    ary = ravel(ary)
    parts = [ravel(_t(v, ary.dtype)) for v in (to_begin,) if v is not None] + [diff(ary)] + \
        [ravel(_t(v, ary.dtype)) for v in (to_end,) if v is not None]
    parts = [p.astype(ary.dtype) if p.dtype != ary.dtype else p for p in parts]
    return concatenate(parts) if len(parts) > 1 else parts[0]


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
    a = _t(a)
    if axis in (0, -1, (0,), (-1,)) and _shape_of(a, 'squeeze') == ():
        return a.copy()  # NumPy: a 0-d array's only axis is 0 (or -1)
    return _nd.squeeze(a, axis=axis)


@_npfunc
def broadcast_to(array, shape):  # noqa: A002
    """NumPy's broadcast_to (0 is a size, npx's -2 keeps the input's dimension). The broadcast_to op reads 0 as
    "keep", so a 0 that the input does not have is broadcast from 1 and then sliced to nothing."""
    a = _t(array)
    tgt = _shape(shape)
    src = _shape_of(a, 'broadcast_to')
    if len(tgt) < len(src):
        raise ValueError(f"np.broadcast_to: cannot broadcast a {src} array to the smaller shape {tgt}")
    src = (1,) * (len(tgt) - len(src)) + src
    tgt = tuple(d if t == -2 else t for d, t in zip(src, tgt))
    r = _nd.broadcast_to(a, shape=tgt)
    for i, (d, t) in enumerate(zip(src, tgt)):
        if t == 0 and d == 1:
            r = _nd.slice_axis(r, axis=i, begin=0, end=0)
    return r


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
    return concatenate([reshape(a, (-1, 1)) if ndim(a) < 2 else _t(a) for a in tup], axis=1)


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


def rot90(m, k=1, axes=(0, 1)):
    m = _t(m)
    n = len(_shape_of(m, 'rot90'))
    a0, a1 = axes[0] % n, axes[1] % n
    if len(axes) != 2 or a0 == a1:
        raise _GraphcError(f"np.rot90: axes must be two different axes, got {axes}")
    k %= 4
    if k == 0:
        return m.copy()
    if k == 2:
        return flip(flip(m, a0), a1)
    perm = list(range(n))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    return transpose(flip(m, a1), perm) if k == 1 else flip(transpose(m, perm), a1)


def resize(a, new_shape):
    """NumPy's resize: a's elements in order, repeated cyclically (zeros when a is empty) to new_shape."""
    a, shp = ravel(a), _shape(new_shape)
    n, m = shape(a)[0], int(_onp.prod(shp))
    if n == 0:
        return zeros(shp, dtype=a.dtype, ctx=getattr(a, 'context', None))
    reps = -(-m // n)
    r = tile(a, (reps,)) if reps > 1 else a
    return reshape(_nd.slice_axis(r, axis=0, begin=0, end=m), shp)


def fliplr(m):
    return flip(m, 1)


def flipud(m):
    return flip(m, 0)


@_npfunc
def roll(a, shift, axis=None):
    """NumPy's roll (MXNet's _np_roll op: it traces without the input's shape)."""
    tup = lambda v: None if v is None else tuple(int(i) for i in _onp.atleast_1d(v))  # noqa: E731
    return _ndm._op('_np_roll', _t(a), shift=tup(shift), axis=tup(axis))


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
    v = _t(v)
    s = _shape_of(v, 'diag')
    if len(s) == 2 and (k >= s[1] or -k >= s[0]):  # NumPy: an offset past the matrix is an empty diagonal
        return _nd.slice_axis(reshape(v, (-1,)), axis=0, begin=0, end=0)
    return _nd.diag(v, k=k)


def diag_indices_from(arr):
    """The indices of arr's main diagonal (a square array): ndim copies of arange(n), int64."""
    s = _shape_of(_t(arr), 'diag_indices_from')
    if len(s) < 2 or len(set(s)) != 1:
        raise _GraphcError(f"np.diag_indices_from: needs a square array of at least 2 dimensions, got {s}")
    return tuple(arange(s[0], dtype=_onp.int64) for _ in s)


def unravel_index(indices, shape, order='C'):
    """The coordinates of flat indices in an array of `shape` (C order), one array per dimension."""
    if order != 'C':
        raise _NotSupported(f"np.unravel_index: order={order!r} (only 'C')")
    idx, dims, out = _t(indices), _shape(shape), []
    for d in reversed(dims):
        out.append(mod(idx, d))
        idx = floor_divide(idx, d)
    return tuple(reversed(out))


def diagflat(v, k=0):
    return diag(ravel(v), k)


@_npfunc
def diagonal(a, offset=0, axis1=0, axis2=1):
    a = _t(a)
    s = _shape_of(a, 'diagonal')
    n = len(s)
    if n < 2:
        raise _GraphcError(f"np.diagonal: needs at least 2 dimensions, got shape {s}")
    if not (-n <= axis1 < n and -n <= axis2 < n):
        raise _GraphcError(f"np.diagonal: axis1={axis1}, axis2={axis2} out of range for a {n}-d array")
    ax1, ax2 = axis1 % n, axis2 % n
    if ax1 == ax2:
        raise _GraphcError(f"np.diagonal: axis1 and axis2 cannot be the same axis ({axis1}, {axis2})")
    if offset >= s[ax2] or -offset >= s[ax1]:  # NumPy: an empty diagonal past the matrix
        rest = tuple(d for i, d in enumerate(s) if i not in (ax1, ax2))
        return _nd.slice_axis(reshape(moveaxis(a, (ax1, ax2), (-2, -1)), rest + (s[ax1] * s[ax2],)), axis=-1,
                              begin=0, end=0)  # (no -1: rest may hold a 0)
    return _nd.diag(a, k=offset, axis1=ax1, axis2=ax2)


@_npfunc
def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return _out(sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype), out)


def _tri_mask(a, k, lower):
    s = _shape_of(a, 'tril' if lower else 'triu')
    m = _onp.tri(s[-2], s[-1], k, dtype=bool)
    return array(m if lower else ~_onp.tri(s[-2], s[-1], k - 1, dtype=bool), dtype=a.dtype, ctx=a.context)


def _2d(m):
    m = _t(m)
    return broadcast_to(m, _shape_of(m, 'tril') * 2) if len(_shape_of(m, 'tril')) == 1 else m


def tril(m, k=0):
    m = _2d(m)
    return m * _tri_mask(m, k, True)


def triu(m, k=0):
    m = _2d(m)
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
        raise _GraphcError("np.matmul: input operand does not have enough dimensions (use np.multiply for scalars)")
    ka, kb = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise _GraphcError(f"np.matmul: core dimensions do not match: {a.shape} @ {b.shape} ({ka} != {kb})")
    if a.ndim <= 2 and b.ndim <= 2:
        return _out(_nd.dot(a, b), out)
    a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
    b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
    try:
        batch = _onp.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise _GraphcError(f"np.matmul: cannot broadcast the batch shapes of {a.shape} and {b.shape}") from None
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
def polyval(p, x):
    """p[0] * x**(n-1) + ... + p[n-1], by Horner's rule (differentiable in p and x)."""
    p, x = _t(p), _t(x)
    n = _shape_of(p, 'polyval')[0]
    r = full_like(x, 0) if n == 0 else None
    for i in range(n):
        c = _nd.slice_axis(p, axis=0, begin=i, end=i + 1).reshape(())
        r = c + 0 * x if r is None else r * x + c
    return r


@_npfunc
def outer(a, b):
    # (broadcast_mul by name: symbols without shapes would otherwise pick the same-shape elemwise_mul)
    return _nd.broadcast_mul(reshape(a, (-1, 1)), reshape(b, (1, -1)))


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


def _host_buffer(x, fname):
    d = getattr(_t(x), '_data', None)
    if not isinstance(d, _onp.ndarray):
        raise _NotSupported(f"np.{fname}: needs arrays in host memory, not traced symbols or device arrays")
    return d


def shares_memory(a, b, max_work=None):
    """Whether a and b use some of the same memory (a view of contiguous basic indexing shares its source's)."""
    return _b.bool(_onp.shares_memory(_host_buffer(a, 'shares_memory'), _host_buffer(b, 'shares_memory'), max_work))


def may_share_memory(a, b, max_work=None):
    return _b.bool(_onp.may_share_memory(_host_buffer(a, 'may_share_memory'), _host_buffer(b, 'may_share_memory'),
                                         max_work))


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


# ---------------------------------------------------------------- functions that are ops of their own (ops/np_array.py)
def _obj_attrs(obj, fname):
    """insert's and delete's obj (an int, a slice, indices) as the op's attributes: known when the block traces."""
    if isinstance(obj, slice):
        return {'slice_ind': (obj.start, obj.stop, obj.step)}
    if isinstance(obj, ndarray):
        obj = obj.asnumpy()
    elif _tensor(obj):
        raise _NotSupported(f"np.{fname}: obj must be known while the block is traced (an int, a slice, a list or an "
                            "NDArray), not a traced symbol")
    o = _onp.asarray(obj)
    if o.size and o.dtype.kind not in 'iu':
        raise _GraphcError(f"np.{fname}: obj must be an int, a slice or integer indices, got dtype {o.dtype}")
    return {'int_ind': int(o)} if o.ndim == 0 else {'indices': tuple(int(i) for i in o.ravel())}


@_npfunc
def insert(arr, obj, values, axis=None):
    """NumPy's insert (values cast to arr's dtype); obj: an int, a slice or indices."""
    arr = _t(arr)
    values = _t(values, arr.dtype)
    if getattr(values, 'dtype', None) is not None and arr.dtype is not None and values.dtype != arr.dtype:
        values = values.astype(arr.dtype)
    return _ndm._op('_npi_insert', arr, values, axis=axis, **_obj_attrs(obj, 'insert'))


@_npfunc
def delete(arr, obj, axis=None):
    """NumPy's delete; indices outside the axis are ignored (MXNet's)."""
    return _ndm._op('_npi_delete', _t(arr), axis=axis, **_obj_attrs(obj, 'delete'))


@_npfunc
def pad(array, pad_width, mode='constant', **kwargs):  # noqa: A002  (NumPy's name)
    """NumPy's pad for the modes constant (one constant_values number), edge, reflect, symmetric (reflect_type),
    maximum and minimum."""
    x = _t(array)
    if not isinstance(mode, str):
        raise _NotSupported("np.pad: mode must be a name; a function is not supported")
    extra = set(kwargs) - {'constant_values', 'reflect_type'}
    if extra:
        raise _NotSupported(f"np.pad: {', '.join(sorted(extra))} not supported")
    cv = kwargs.get('constant_values', 0)
    if not isinstance(cv, _numbers.Number):
        raise _NotSupported(f"np.pad: constant_values must be one number (MXNet's), got {cv!r}")
    nd = len(_shape_of(x, 'pad'))
    try:
        pw = _onp.broadcast_to(_onp.asarray(pad_width, dtype=_onp.int64), (nd, 2))
    except ValueError:
        raise _GraphcError(f"np.pad: pad_width {pad_width!r} does not fit a {nd}-d array") from None
    return _ndm._op('_npi_pad', x, pad_width=tuple(int(v) for v in pw.ravel()), mode=mode, constant_values=float(cv),
                    reflect_type=kwargs.get('reflect_type', 'even'))


@_npfunc
def einsum(*operands, out=None, optimize=False, **kwargs):
    """NumPy's einsum('subscripts', *arrays): explicit or implicit output, '...', repeated labels; differentiable."""
    if kwargs:
        raise _NotSupported(f"np.einsum: {', '.join(sorted(kwargs))} not supported")
    if not operands or not isinstance(operands[0], str):
        raise _NotSupported("np.einsum: takes the subscripts string first (the sublist form is not supported)")
    xs = [_t(x) for x in operands[1:]]
    return _out(_ndm._op('_npi_einsum', *xs, subscripts=operands[0], num_args=len(xs), optimize=int(bool(optimize))),
                out)


def _percentile(fname, a, q, axis, interpolation, keepdims, scale, out, method=None):
    a = _t(a)
    attrs = {'axis': axis, 'interpolation': method or interpolation, 'keepdims': keepdims}
    if isinstance(q, _numbers.Number):
        return _out(_ndm._op('_npi_percentile', a, q_scalar=float(q) * scale, **attrs), out)
    q = _t(q, _onp.float64)
    return _out(_ndm._op('_npi_percentile', a, q.astype(_onp.float64) * scale if scale != 1 else q, **attrs), out)


@_npfunc
def percentile(a, q, axis=None, out=None, overwrite_input=None, interpolation='linear', keepdims=False, method=None):
    """NumPy's percentile (q in [0, 100]); interpolation (or NumPy 2's method): linear, lower, higher, midpoint,
    nearest."""
    return _percentile('percentile', a, q, axis, interpolation, keepdims, 1, out, method)


@_npfunc
def quantile(a, q, axis=None, out=None, overwrite_input=None, interpolation='linear', keepdims=False, method=None):
    """NumPy's quantile (q in [0, 1])."""
    return _percentile('quantile', a, q, axis, interpolation, keepdims, 100, out, method)


@_npfunc
def median(a, axis=None, out=None, overwrite_input=None, keepdims=False):
    return _percentile('median', a, 50.0, axis, 'linear', keepdims, 1, out)


# ---------------------------------------------------------------- NumPy on the host (MXNet's fallback list)
_FALLBACK = set('''apply_along_axis apply_over_axes argpartition argwhere bincount
choose compress corrcoef correlate cov digitize divmod
extract flatnonzero frexp genfromtxt heaviside histogram histogram2d histogram_bin_edges histogramdd i0 in1d indices interp intersect1d isin ix_ lexsort meshgrid
modf msort nanargmax nanargmin nancumprod nancumsum nanmax nanmedian nanmin nanpercentile nanquantile
nonzero packbits partition piecewise poly polyadd polydiv polyfit polyint polymul polysub ptp
real roots searchsorted select setdiff1d setxor1d signbit spacing take_along_axis trapz
tril_indices_from trim_zeros triu_indices_from union1d unique unpackbits unwrap vander'''.split())


# fallbacks whose output shape depends on the input's values: a hybridized block that calls one runs op by op
_DYNAMIC_SHAPE = {'unique', 'bincount', 'nonzero', 'argwhere', 'flatnonzero', 'extract', 'compress', 'trim_zeros',
                  'setdiff1d', 'setxor1d', 'union1d', 'intersect1d', 'linalg.lstsq'}


def _host_args(fname, x):
    if isinstance(x, ndarray):
        if _ag.is_recording() and x._ag is not None:
            raise _NotSupported(f"np.{fname} runs in NumPy on the host (no graphc kernel) and cannot be "
                                          "differentiated: call it outside autograd.record() or on x.detach()")
        return x.asnumpy()
    if _tensor(x):
        if fname in _DYNAMIC_SHAPE:
            raise _GraphcDynamicShapeError(f"np.{fname}: its output shape depends on the input's values")
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
    1-d, argmax/argmin int64 indices, sum/max/... take NumPy's axis=()/dtype=, clip takes min=/max=), switched by
    npx.set_np(). Traced symbols get the same switch (x.max() in a hybridized block is NumPy's under set_np())."""
    from ..symbol import symbol as _symm

    def method(f):
        return lambda self, *args, **kw: f(self, *args, **kw)

    for name in ('std', 'var', 'any', 'all', 'dot', 'ravel', 'nonzero', 'trace', 'ptp'):
        if not hasattr(ndarray, name):
            setattr(ndarray, name, method(globals().get(name) or _fallback(name)))
        if not hasattr(_symm.Symbol, name):
            setattr(_symm.Symbol, name, getattr(ndarray, name))

    def np_clip(self, min=None, max=None, out=None):  # noqa: A002  (NumPy's names)
        return clip(self, min, max, out=out)

    def np_repeat(self, repeats, axis=None):
        return repeat(self, repeats, axis)

    def np_transpose(self, *axes):
        return transpose(self, axes[0] if len(axes) == 1 and (axes[0] is None or not isinstance(
            axes[0], _numbers.Integral)) else (axes or None))

    for name, npf in (('flatten', ravel), ('argmax', argmax), ('argmin', argmin), ('sum', sum), ('mean', mean),
                      ('prod', prod), ('max', max), ('min', min), ('cumsum', cumsum), ('clip', np_clip),
                      ('repeat', np_repeat), ('transpose', np_transpose), ('std', std), ('var', var)):
        nd_method, sym_method = getattr(ndarray, name), getattr(_symm.Symbol, name, None)

        def switched(self, *args, _nd=nd_method, _np=npf, **kw):
            return _np(self, *args, **kw) if _ndm._NP_ARRAY[0] else _nd(self, *args, **kw)

        def sym_switched(self, *args, _sym=sym_method, _np=npf, **kw):
            if _ndm._NP_ARRAY[0] and _symm._ts.ctx is not None:  # inside a trace: NumPy's, as eagerly
                return _np(self, *args, **kw)
            return _sym(self, *args, **kw)
        switched.__name__ = sym_switched.__name__ = name
        switched.__doc__ = sym_switched.__doc__ = f"NDArray's {name}; under npx.set_np(), NumPy's."
        setattr(ndarray, name, switched)
        if sym_method is not None:
            setattr(_symm.Symbol, name, sym_switched)


_np_methods()
