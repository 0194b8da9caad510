"""Elementwise, scalar and broadcast ops."""
import functools
import math

import numpy as np

from ..registry import Attr, bad, broadcast_shapes, register, same_dtype

try:
    from math import erf as _erf1
    _erf = np.vectorize(_erf1, otypes=[np.float64])
except ImportError:  # pragma: no cover
    _erf = None


def unbroadcast(F, g, shape):
    """Sum g over the axes along which an input of `shape` was broadcast."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = len(g.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1)
    if axes:
        g = F.sum(g, axis=axes, keepdims=True)
    return F._np_reshape(g, newshape=shape)


def same_infer(attrs, shapes, dtypes):
    return [shapes[0]], [dtypes[0]]


def _elemwise_infer(name):
    def infer(attrs, shapes, dtypes):
        if any(s != shapes[0] for s in shapes[1:]):
            bad(f"{name} needs inputs of the same shape (use broadcast_* for broadcasting)")
        return [shapes[0]], [same_dtype(name, dtypes)]
    return infer


def _broadcast_infer(name, out_dtype=None):
    def infer(attrs, shapes, dtypes):
        return [broadcast_shapes(*shapes)], [same_dtype(name, dtypes)]
    return infer


def _like(x, a):
    """Keep x's dtype (NumPy may upcast float32 by a Python float)."""
    return np.asarray(a, dtype=x.dtype)


# ---------------------------------------------------------------- unary math
# name: (numpy kernel, grad(F, x, y, dy), lower(P, x) in scalar primitives or the name of one (ops/scalar.py))
_float = lambda f: lambda x: f(x) if x.dtype.kind == 'f' else f(x.astype(np.float32)).astype(x.dtype)  # noqa: E731


def _exp(x):
    """exp correctly rounded for float16/32, as the C library's expf that MXNet calls: NumPy's SIMD float32 exp
    is up to 2.3 ulp off (exp(1) one ulp above e); computed in float64 and rounded once, it is within half an
    ulp but for rare double roundings."""
    if x.dtype.kind != 'f':
        return _exp(x.astype(np.float32)).astype(x.dtype)
    return np.exp(x) if x.dtype.itemsize >= 8 else np.exp(x.astype(np.float64)).astype(x.dtype)


UNARY = {
    'negative': (np.negative, lambda F, x, y, dy: -dy, 'neg'),
    'exp': (_exp, lambda F, x, y, dy: dy * y, 'exp'),
    'log': (_float(np.log), lambda F, x, y, dy: dy / x, 'log'),
    'log1p': (_float(np.log1p), lambda F, x, y, dy: dy / (x + 1.0), 'log1p'),
    'expm1': (_float(np.expm1), lambda F, x, y, dy: dy * (y + 1.0), 'expm1'),
    'sqrt': (_float(np.sqrt), lambda F, x, y, dy: dy / (y * 2.0), 'sqrt'),
    'rsqrt': (_float(lambda x: 1.0 / np.sqrt(x)), lambda F, x, y, dy: dy * y * y * y * -0.5,
              lambda P, x: P.div(P.c(1), P.sqrt(x))),
    'reciprocal': (_float(np.reciprocal), lambda F, x, y, dy: -(dy * y * y), lambda P, x: P.div(P.c(1), x)),
    'square': (np.square, lambda F, x, y, dy: dy * x * 2.0, lambda P, x: P.mul(x, x)),
    'abs': (np.abs, lambda F, x, y, dy: dy * F.sign(x), 'abs'),
    'sign': (np.sign, lambda F, x, y, dy: None, 'sign'),
    'tanh': (_float(np.tanh), lambda F, x, y, dy: dy * (1.0 - y * y), 'tanh'),
    'sin': (_float(np.sin), lambda F, x, y, dy: dy * F.cos(x), 'sin'),
    'cos': (_float(np.cos), lambda F, x, y, dy: -(dy * F.sin(x)), 'cos'),
    'sigmoid': (lambda x: _sigmoid(x), lambda F, x, y, dy: dy * y * (1.0 - y), 'sigmoid'),
    # (y > 0 exactly where x > 0: the backward reads the output, so a training step need not keep the input too)
    'relu': (lambda x: np.maximum(x, 0).astype(x.dtype, copy=False), lambda F, x, y, dy: dy * (y > 0.0), 'relu'),
    'softrelu': (lambda x: _softrelu(x), lambda F, x, y, dy: dy * F.sigmoid(x), 'softrelu'),
    'softsign': (lambda x: x / (1 + np.abs(x)), lambda F, x, y, dy: dy / F.square(F.abs(x) + 1.0), 'softsign'),
    'erf': (lambda x: _erf(x).astype(x.dtype), lambda F, x, y, dy: dy * F.exp(-F.square(x)) * (2.0 / math.sqrt(math.pi)), 'erf'),
    'log_sigmoid': (lambda x: -_softrelu(-x), lambda F, x, y, dy: dy * F.sigmoid(-x),
                    lambda P, x: P.neg(P.softrelu(P.neg(x)))),
    'mish': (lambda x: (x * np.tanh(_softrelu(x))).astype(x.dtype, copy=False),
             lambda F, x, y, dy: (lambda t: dy * (t + x * F.sigmoid(x) * (1.0 - t * t)))(F.tanh(F.softrelu(x))),
             lambda P, x: P.mul(x, P.tanh(P.softrelu(x)))),
    '_copy': (lambda x: x.copy(), lambda F, x, y, dy: dy, lambda P, x: x),
    'zeros_like': (np.zeros_like, lambda F, x, y, dy: None, lambda P, x: P.c(0)),
    'ones_like': (np.ones_like, lambda F, x, y, dy: None, lambda P, x: P.c(1)),
    'floor': (np.floor, lambda F, x, y, dy: None, 'floor'),
    'ceil': (np.ceil, lambda F, x, y, dy: None, 'ceil'),
    'round': (np.round, lambda F, x, y, dy: None, 'rint'),  # halves to even
}


def _sigmoid(x):
    # exp of a non-positive argument only: no overflow warnings at the extremes
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def _softrelu(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype, copy=False)


def _lower1(low):
    return (lambda P, x: getattr(P, low)(x)) if isinstance(low, str) else low


def _unary(name, fn, g, low):
    register(name, infer=same_infer, kind='elemwise', inplace=name not in ('zeros_like', 'ones_like'),
             lower=lambda P, attrs, x: _lower1(low)(P, x),
             grad=lambda F, attrs, x, y, dy: [g(F, x[0], y[0], dy[0])])(lambda attrs, x: fn(x))


for _n, (_f, _g, _l) in UNARY.items():
    _unary(_n, _f, _g, _l)

ACTIVATIONS = ('relu', 'sigmoid', 'tanh', 'softrelu', 'softsign')


@register('Activation', infer=same_infer, kind='elemwise', inplace=True,
          attrs={'act_type': Attr('str', choices=ACTIVATIONS)},
          grad=lambda F, a, x, y, dy: [UNARY[a['act_type']][1](F, x[0], y[0], dy[0])],
          lower=lambda P, a, x: _lower1(UNARY[a['act_type']][2])(P, x))
def _activation(attrs, x):
    return UNARY[attrs['act_type']][0](x)


@register('Cast', kind='elemwise', attrs={'dtype': Attr('dtype')},
          infer=lambda a, s, d: ([s[0]], [np.dtype(a['dtype'])]),
          grad=lambda F, a, x, y, dy: [F.Cast(dy[0], dtype=str(x[0].dtype))])
def _cast(attrs, x):
    return x.astype(attrs['dtype'])


@register('clip', infer=same_infer, kind='elemwise', inplace=True,
          attrs={'a_min': Attr('float'), 'a_max': Attr('float')},
          grad=lambda F, a, x, y, dy: [dy[0] * (x[0] >= a['a_min']) * (x[0] <= a['a_max'])],
          lower=lambda P, a, x: P.clip(x, a['a_min'], a['a_max']))
def _clip(attrs, x):
    return np.clip(x, _like(x, attrs['a_min']), _like(x, attrs['a_max']))


@register('hard_sigmoid', infer=same_infer, kind='elemwise', inplace=True,
          attrs={'alpha': Attr('float', 0.2), 'beta': Attr('float', 0.5)},
          grad=lambda F, a, x, y, dy: [dy[0] * (y[0] > 0.0) * (y[0] < 1.0) * a['alpha']],
          lower=lambda P, a, x: P.clip(P.add(P.mul(x, P.c(a['alpha'])), P.c(a['beta'])), 0, 1))
def _hard_sigmoid(attrs, x):
    return np.clip(x * x.dtype.type(attrs['alpha']) + x.dtype.type(attrs['beta']), 0, 1).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- binary
def _bin_grads(kind):
    """grad(F, x, y, out, dy) -> (dx, dy) before unbroadcasting."""
    return {
        'add': lambda F, a, b, o, g: (g, g),
        'sub': lambda F, a, b, o, g: (g, -g),
        'mul': lambda F, a, b, o, g: (F.broadcast_mul(g, b), F.broadcast_mul(g, a)),
        'div': lambda F, a, b, o, g: (F.broadcast_div(g, b), -F.broadcast_div(F.broadcast_mul(g, o), b)),
        'power': lambda F, a, b, o, g: (F.broadcast_mul(g, F.broadcast_mul(b, F.broadcast_power(a, b - 1.0))),
                                        F.broadcast_mul(g, F.broadcast_mul(o, F.log(a)))),
        'maximum': lambda F, a, b, o, g: (F.broadcast_mul(g, F.broadcast_greater_equal(a, b)),
                                          F.broadcast_mul(g, F.broadcast_lesser(a, b))),
        'minimum': lambda F, a, b, o, g: (F.broadcast_mul(g, F.broadcast_lesser_equal(a, b)),
                                          F.broadcast_mul(g, F.broadcast_greater(a, b))),
        'mod': lambda F, a, b, o, g: (F.zeros_like(a), F.zeros_like(b)) if np.dtype(a.dtype).kind in 'iub' else
        (g, -F.broadcast_mul(g, F.floor(F.broadcast_div(a, b)))),  # (integers: MXNet's zero gradient)
    }.get(kind, lambda F, a, b, o, g: (None, None))


def _cmp(f):
    return lambda a, b: f(a, b).astype(a.dtype)


BINARY = {'add': np.add, 'sub': np.subtract, 'mul': np.multiply, 'div': lambda a, b: _like(a, np.divide(a, b)),
          'power': np.power, 'maximum': np.maximum, 'minimum': np.minimum, 'mod': np.mod,
          'equal': _cmp(np.equal), 'not_equal': _cmp(np.not_equal), 'greater': _cmp(np.greater),
          'greater_equal': _cmp(np.greater_equal), 'lesser': _cmp(np.less), 'lesser_equal': _cmp(np.less_equal)}
ARITH = ('add', 'sub', 'mul', 'div', 'power', 'maximum', 'minimum', 'mod')
CMP = {'equal': '==', 'not_equal': '!=', 'greater': '>', 'greater_equal': '>=', 'lesser': '<', 'lesser_equal': '<='}


def _lower2(kind, swap=False):
    f = (lambda P, x, y: P.flag(P.cmp(CMP[kind], x, y))) if kind in CMP else lambda P, x, y: getattr(P, kind)(x, y)
    return (lambda P, x, y: f(P, y, x)) if swap else f


def _binary(name, fn, kind, broadcast):
    g = _bin_grads(kind)

    def grad(F, attrs, x, y, dy):
        da, db = g(F, x[0], x[1], y[0], dy[0])
        return [None if da is None else unbroadcast(F, da, x[0].shape),
                None if db is None else unbroadcast(F, db, x[1].shape)]
    register(name, infer=(_broadcast_infer if broadcast else _elemwise_infer)(name),
             kind='broadcast' if broadcast else 'elemwise', inputs=('lhs', 'rhs'), inplace=True,
             grad=grad, lower=lambda P, attrs, x, y: _lower2(kind)(P, x, y))(lambda attrs, a, b: fn(a, b))


for _k, _f in BINARY.items():
    _binary('broadcast_' + _k, _f, _k, True)
for _k in ('add', 'sub', 'mul', 'div'):
    _binary('elemwise_' + _k, BINARY[_k], _k, False)


# MXNet's extended broadcast binaries. Logical ops: 1/0 in the input dtype from the operands' nonzero-ness, a zero
# gradient (as the comparisons); hypot: sqrt(a^2 + b^2), d/da = a / out.
def _logical(f):
    return lambda attrs, a, b: f(a != 0, b != 0).astype(a.dtype)


for _k, _f in (('and', np.logical_and), ('or', np.logical_or), ('xor', np.logical_xor)):
    register('broadcast_logical_' + _k, infer=_broadcast_infer('broadcast_logical_' + _k), kind='broadcast',
             inputs=('lhs', 'rhs'), grad=lambda F, a, x, y, dy: [None, None],
             doc=f"1 where lhs {_k} rhs are nonzero, else 0 (with broadcasting, in the input dtype).")(_logical(_f))


def _hypot_grad(F, attrs, x, y, dy):
    g = F.broadcast_div(dy[0], y[0])
    return [unbroadcast(F, F.broadcast_mul(g, x[0]), x[0].shape), unbroadcast(F, F.broadcast_mul(g, x[1]), x[1].shape)]


register('broadcast_hypot', infer=_broadcast_infer('broadcast_hypot'), kind='broadcast', inputs=('lhs', 'rhs'),
         grad=_hypot_grad, doc="sqrt(lhs^2 + rhs^2) with broadcasting.")(lambda attrs, a, b: np.hypot(a, b))


# mx.np's other binaries (MXNet's _npi_*): integer ones without a gradient; copysign: d/da = sign(a b) (0: +1);
# arctan2(a, b): d/da = b / (a^2 + b^2), d/db = -a / (a^2 + b^2); ldexp(a, b) = a 2^b: d/da = 2^b, d/db = out ln 2
def _npi_binary(name, fn, grad, doc, out_dtype=None, mixed=False):
    def infer(attrs, shapes, dtypes):
        d = dtypes[0] if mixed else same_dtype(name, dtypes)
        return [broadcast_shapes(*shapes)], [out_dtype(d) if out_dtype else d]
    register(name, infer=infer, kind='broadcast', inputs=('lhs', 'rhs'), doc=doc, grad=grad, mixed_dtypes=mixed)(
        lambda attrs, a, b: np.asarray(fn(a, b)).astype(out_dtype(a.dtype) if out_dtype else a.dtype))


def _integral(f):  # (integer-valued floats too, as graphc's NDArrays often hold them)
    return lambda a, b: f(a, b) if a.dtype.kind in 'iub' else f(a.astype(np.int64), b.astype(np.int64))


def _grads2(da, db):
    return lambda F, attrs, x, y, dy: [unbroadcast(F, da(F, x[0], x[1], y[0], dy[0]), x[0].shape),
                                       unbroadcast(F, db(F, x[0], x[1], y[0], dy[0]), x[1].shape)]


for _k in ('lcm', 'bitwise_and', 'bitwise_or', 'bitwise_xor'):
    _npi_binary('_npi_' + _k, _integral(getattr(np, _k)), None, f"NumPy's {_k} of integers (or bools), with broadcasting.")
_npi_binary('_npi_copysign', np.copysign,
            _grads2(lambda F, a, b, o, g: F.broadcast_mul(g, F._npi_copysign(F.ones_like(o), F.broadcast_mul(a, b))),
                    lambda F, a, b, o, g: F.zeros_like(b)),
            "|lhs| with the sign of rhs, with broadcasting.")
_npi_binary('_npi_arctan2', np.arctan2,
            _grads2(lambda F, a, b, o, g: F.broadcast_div(F.broadcast_mul(g, b), F.broadcast_add(F.square(a), F.square(b))),
                    lambda F, a, b, o, g: -F.broadcast_div(F.broadcast_mul(g, a), F.broadcast_add(F.square(a), F.square(b)))),
            "The angle of (rhs, lhs) in (-pi, pi], with broadcasting.", out_dtype=lambda d: d if d.kind == 'f' else np.dtype(np.float32))
_npi_binary('_npi_ldexp', lambda a, b: a * np.power(2.0, b.astype(np.float64)),
            _grads2(lambda F, a, b, o, g: F.broadcast_mul(g, F.broadcast_power(F.ones_like(o) * 2.0,
                                                                               F.Cast(b, dtype=str(o.dtype)))),
                    lambda F, a, b, o, g: F.Cast(F.broadcast_mul(g, o) * float(np.log(2.0)), dtype=str(b.dtype))),
            "lhs * 2 ** rhs (rhs: any dtype), with broadcasting.",
            out_dtype=lambda d: d if d.kind == 'f' else np.dtype(np.float32), mixed=True)


# ---------------------------------------------------------------- with a scalar
def _s(a, attrs):
    return a.dtype.type(attrs['scalar'])


SCALAR = {  # name: (kernel(x, s), grad(F, x, y, dy, s))
    '_plus_scalar': (lambda x, s: x + s, lambda F, x, y, g, s: g),
    '_minus_scalar': (lambda x, s: x - s, lambda F, x, y, g, s: g),
    '_rminus_scalar': (lambda x, s: s - x, lambda F, x, y, g, s: -g),
    '_mul_scalar': (lambda x, s: x * s, lambda F, x, y, g, s: g * s),
    '_div_scalar': (lambda x, s: _like(x, x / s), lambda F, x, y, g, s: g / s),
    '_rdiv_scalar': (lambda x, s: _like(x, s / x), lambda F, x, y, g, s: -(g * y / x)),
    '_power_scalar': (lambda x, s: x ** s, lambda F, x, y, g, s: g * F._power_scalar(x, scalar=s - 1) * s),
    '_rpower_scalar': (lambda x, s: _like(x, s ** x), lambda F, x, y, g, s: g * y * math.log(s)),
    '_maximum_scalar': (lambda x, s: np.maximum(x, s), lambda F, x, y, g, s: g * (x >= s)),
    '_minimum_scalar': (lambda x, s: np.minimum(x, s), lambda F, x, y, g, s: g * (x <= s)),
    '_mod_scalar': (lambda x, s: np.mod(x, s), lambda F, x, y, g, s: g),
    '_rmod_scalar': (lambda x, s: np.mod(s, x), lambda F, x, y, g, s: -(g * F.floor(F._rdiv_scalar(x, scalar=s)))),
    '_equal_scalar': (lambda x, s: (x == s).astype(x.dtype), None),
    '_not_equal_scalar': (lambda x, s: (x != s).astype(x.dtype), None),
    '_greater_scalar': (lambda x, s: (x > s).astype(x.dtype), None),
    '_greater_equal_scalar': (lambda x, s: (x >= s).astype(x.dtype), None),
    '_lesser_scalar': (lambda x, s: (x < s).astype(x.dtype), None),
    '_lesser_equal_scalar': (lambda x, s: (x <= s).astype(x.dtype), None),
}


def _scalar(name, fn, g):
    kind = name[1:-7].replace('plus', 'add').replace('minus', 'sub')
    low = _lower2(kind[1:], swap=True) if kind in ('rsub', 'rdiv', 'rpower', 'rmod') else _lower2(kind)
    register(name, infer=same_infer, kind='elemwise', inplace=True, attrs={'scalar': Attr('float')},
             lower=lambda P, a, x: low(P, x, P.c(a['scalar'])),
             grad=lambda F, a, x, y, dy: [g(F, x[0], y[0], dy[0], a['scalar']) if g else None]
             )(lambda attrs, x: fn(x, _s(x, attrs)))


for _n, (_f, _g) in SCALAR.items():
    _scalar(_n, _f, _g)


def _where_infer(attrs, shapes, dtypes):
    if shapes[1] != shapes[2] or (shapes[0] != shapes[1] and shapes[0] != shapes[1][:1]):
        bad(f"where: condition {shapes[0]} and x/y {shapes[1]}, {shapes[2]} must match (or condition be 1-d over axis 0)")
    return [shapes[1]], [same_dtype('where', dtypes[1:])]


def _where(attrs, c, x, y):
    if c.shape != x.shape:
        c = c.reshape(c.shape + (1,) * (x.ndim - 1))
    return np.where(c != 0, x, y)


def _where_grad(F, attrs, x, y, dy):
    z = F.zeros_like(dy[0])
    return [None, F.where(x[0], dy[0], z), F.where(x[0], z, dy[0])]


register('where', infer=_where_infer, kind='elemwise', inputs=('condition', 'x', 'y'), nograd_inputs=(0,),
         grad=_where_grad, lower=lambda P, a, c, x, y: P.where(P.cmp('!=', c, P.c(0)), x, y))(_where)


def _add_n_infer(attrs, shapes, dtypes):
    if any(s != shapes[0] for s in shapes):
        bad("add_n needs inputs of the same shape")
    return [shapes[0]], [same_dtype('add_n', dtypes)]


@register('add_n', infer=_add_n_infer, kind='elemwise', inputs='*', inplace=True,
          attrs={'num_args': Attr('int', 0)}, grad=lambda F, a, x, y, dy: [dy[0]] * len(x),
          lower=lambda P, a, *xs: functools.reduce(P.add, xs))
def _add_n(attrs, *xs):
    out = xs[0].copy()
    for x in xs[1:]:
        out += x
    return out


# MXNet's contrib.isinf / isnan / isfinite: 1 or 0 in the input dtype
_ISX = {'isinf': (np.isinf, lambda P, a, x: P.flag(P.cmp('==', P.abs(x), P.c(math.inf)))),
        'isnan': (np.isnan, lambda P, a, x: P.flag(P.isnan(x))),
        'isfinite': (np.isfinite, lambda P, a, x: P.flag(P.cmp('<', P.abs(x), P.c(math.inf))))}  # (NaN < inf: false)
for _k, (_f, _low) in _ISX.items():
    register('_contrib_' + _k, infer=same_infer, kind='elemwise', lower=_low,
             doc=f"1 where {_k}(x), else 0 (in x's dtype).")(functools.partial(lambda f, attrs, x: f(x).astype(x.dtype), _f))


# MXNet's contrib.quadratic (a x^2 + b x + c) and contrib.gradientmultiplier (identity; the gradient times scalar)
register('_contrib_quadratic', infer=same_infer, kind='elemwise', inplace=True,
         attrs={'a': Attr('float', 0.0), 'b': Attr('float', 0.0), 'c': Attr('float', 0.0)},
         grad=lambda F, a, x, y, dy: [dy[0] * (x[0] * (2.0 * a['a']) + a['b'])],
         lower=lambda P, a, x: P.add(P.mul(P.add(P.mul(P.c(a['a']), x), P.c(a['b'])), x), P.c(a['c'])),
         doc="a * x^2 + b * x + c, elementwise.")(
    lambda attrs, x: _like(x, (attrs['a'] * x + attrs['b']) * x + attrs['c']))
register('_contrib_gradientmultiplier', infer=same_infer, kind='elemwise', inplace=True,
         attrs={'scalar': Attr('float')}, grad=lambda F, a, x, y, dy: [dy[0] * a['scalar']], lower=lambda P, a, x: x,
         doc="x unchanged; its gradient multiplied by scalar (a negative scalar reverses it: gradient reversal).")(
    lambda attrs, x: x.copy())


# ---------------------------------------------------------------- AMP casts and finiteness checks (MXNet's amp_*)
def _amp_to(x_dtype, dtype):
    return np.dtype(dtype) if np.dtype(x_dtype).kind == 'f' else np.dtype(x_dtype)  # non-floats pass unchanged


register('amp_cast', kind='elemwise', attrs={'dtype': Attr('dtype')},
         infer=lambda a, s, d: ([s[0]], [_amp_to(d[0], a['dtype'])]),
         grad=lambda F, a, x, y, dy: [F.amp_cast(dy[0], dtype=str(x[0].dtype))],
         doc="AMP's cast: a floating input to dtype; other dtypes unchanged.")(
    lambda attrs, x: x.astype(_amp_to(x.dtype, attrs['dtype'])))


def _multicast_to(a, dtypes):
    floats = [np.dtype(d) for d in dtypes if np.dtype(d).kind == 'f']
    return (min if a['cast_narrow'] else max)(floats, key=lambda t: t.itemsize) if floats else None


def _multicast_infer(a, s, d):
    if a['num_outputs'] != len(s):
        bad(f"amp_multicast: num_outputs={a['num_outputs']} but {len(s)} inputs")
    to = _multicast_to(a, d)
    return list(s), [_amp_to(t, to) if to is not None else t for t in d]


@register('amp_multicast', kind='opaque', inputs='*', attrs={'num_outputs': Attr('int'), 'cast_narrow': Attr('bool', False)},
          num_outputs=lambda a: a['num_outputs'], infer=_multicast_infer, mixed_dtypes=True,
          grad=lambda F, a, x, y, dy: [F.amp_cast(g, dtype=str(v.dtype)) for g, v in zip(dy, x)],
          doc="AMP's multicast: every floating input cast to the widest (cast_narrow: narrowest) floating dtype of "
              "them all.")
def _amp_multicast(a, *xs):
    to = _multicast_to(a, [x.dtype for x in xs])
    return tuple(x.astype(_amp_to(x.dtype, to)) if to is not None else x.copy() for x in xs)


def _finite_infer(name):
    def infer(a, s, d):
        if name == 'multi_all_finite' and a['num_arrays'] != len(s):
            bad(f"multi_all_finite: num_arrays={a['num_arrays']} but {len(s)} inputs")
        return [(1,)], [np.dtype('float32')]
    return infer


register('all_finite', kind='opaque', attrs={'init_output': Attr('bool', True)}, infer=_finite_infer('all_finite'),
         differentiable=False, doc="[1.] when every element of data is finite, else [0.] (float32).")(
    lambda a, x: np.array([float(np.isfinite(x).all())], np.float32))
register('multi_all_finite', kind='opaque', inputs='*', differentiable=False, mixed_dtypes=True,
         attrs={'num_arrays': Attr('int', 1), 'init_output': Attr('bool', True)}, infer=_finite_infer('multi_all_finite'),
         doc="[1.] when every element of every input is finite, else [0.] (float32).")(
    lambda a, *xs: np.array([float(all(np.isfinite(x).all() for x in xs))], np.float32))


register('_identity_with_attr_like_rhs', kind='elemwise', inputs=('lhs', 'rhs'), nograd_inputs=(1,),
         infer=lambda a, s, d: ([s[1] if s[0] == s[1] else bad(f"_identity_with_attr_like_rhs: lhs {s[0]} and rhs "
                                                                 f"{s[1]} differ in shape")], [d[0]]),
         grad=lambda F, a, x, y, dy: [dy[0], None], lower=lambda P, a, x, r: x, mixed_dtypes=True,
         doc="lhs unchanged, with rhs's shape (MXNet's internal op: rhs constrains lhs's shape inference).")(
    lambda a, x, r: x.copy())
