"""The rest of MXNet's elementwise math: trigonometric, hyperbolic, logs, roots, rounding, softmin, nansum."""
import math

import numpy as np

from ..registry import Attr, register
from .elemwise import same_infer
from .reduce import RED_ATTRS, _axes, _expand, _legacy_out, _red_shape


def _f(fn):
    """fn in the input's float dtype (integers computed in float32 and cast back, as MXNet)."""
    return lambda x: fn(x).astype(x.dtype, copy=False) if x.dtype.kind == 'f' else fn(x.astype(np.float32)).astype(x.dtype)


_LN10, _LN2 = math.log(10.0), math.log(2.0)
# name: (kernel, grad(F, x, y, dy) or None for a zero gradient)
MATH = {
    'tan': (np.tan, lambda F, x, y, dy: dy * (y * y + 1.0)),
    'arcsin': (np.arcsin, lambda F, x, y, dy: dy * F.rsqrt(1.0 - x * x)),
    'arccos': (np.arccos, lambda F, x, y, dy: -(dy * F.rsqrt(1.0 - x * x))),
    'arctan': (np.arctan, lambda F, x, y, dy: dy / (x * x + 1.0)),
    'sinh': (np.sinh, lambda F, x, y, dy: dy * F.cosh(x)),
    'cosh': (np.cosh, lambda F, x, y, dy: dy * F.sinh(x)),
    'arcsinh': (np.arcsinh, lambda F, x, y, dy: dy * F.rsqrt(x * x + 1.0)),
    'arccosh': (np.arccosh, lambda F, x, y, dy: dy * F.rsqrt(x * x - 1.0)),
    'arctanh': (np.arctanh, lambda F, x, y, dy: dy / (1.0 - x * x)),
    'log10': (np.log10, lambda F, x, y, dy: dy / (x * _LN10)),
    'log2': (np.log2, lambda F, x, y, dy: dy / (x * _LN2)),
    'cbrt': (np.cbrt, lambda F, x, y, dy: dy / (y * y * 3.0)),
    'rcbrt': (lambda x: 1.0 / np.cbrt(x), lambda F, x, y, dy: dy * y / x * (-1.0 / 3.0)),
    'degrees': (np.degrees, lambda F, x, y, dy: dy * (180.0 / math.pi)),
    'radians': (np.radians, lambda F, x, y, dy: dy * (math.pi / 180.0)),
    'rint': (np.rint, None),
    'fix': (np.fix, None),
    'trunc': (np.trunc, None),
    'logical_not': (lambda x: (x == 0).astype(x.dtype), None),
}


def _sinh(P, x):  # (u + u / (u + 1)) / 2 with u = expm1(|x|): no cancellation near 0
    u = P.expm1(P.abs(x))
    r = P.mul(P.c(0.5), P.add(u, P.div(u, P.add(u, P.c(1)))))
    return P.copysign(P.where(P.cmp('==', u, P.c(math.inf)), u, r), x)


def _cbrt(P, x):
    return P.copysign(P.exp(P.mul(P.log(P.abs(x)), P.c(1 / 3))), x)


LOWER = {  # one element in scalar primitives (ops/scalar.py)
    'arcsin': lambda P, x: P.asin(x), 'arccos': lambda P, x: P.acos(x), 'arctan': lambda P, x: P.atan(x),
    'arcsinh': lambda P, x: P.asinh(x), 'arccosh': lambda P, x: P.acosh(x), 'arctanh': lambda P, x: P.atanh(x),
    'tan': lambda P, x: P.div(P.sin(x), P.cos(x)), 'sinh': _sinh,
    'cosh': lambda P, x: (lambda e: P.mul(P.c(0.5), P.add(e, P.div(P.c(1), e))))(P.exp(P.abs(x))),
    'log10': lambda P, x: P.mul(P.log(x), P.c(1 / _LN10)), 'log2': lambda P, x: P.mul(P.log(x), P.c(1 / _LN2)),
    'cbrt': _cbrt, 'rcbrt': lambda P, x: P.div(P.c(1), _cbrt(P, x)), 'rint': lambda P, x: P.rint(x),
    'degrees': lambda P, x: P.mul(x, P.c(180 / math.pi)), 'radians': lambda P, x: P.mul(x, P.c(math.pi / 180)),
    'fix': lambda P, x: P.where(P.cmp('<', x, P.c(0)), P.ceil(x), P.floor(x)),
    'logical_not': lambda P, x: P.flag(P.cmp('==', x, P.c(0))),
}
LOWER['trunc'] = LOWER['fix']


_ROUNDING = ('rint', 'fix', 'trunc')


def _exact_on_ints(f):
    """Rounding leaves integers as they are (computing them in float32 would round 50000001 to 50000000)."""
    return lambda attrs, x: x.copy() if x.dtype.kind in 'iub' else f(x)


def _math(name, fn, g):
    grad = (lambda F, a, x, y, dy: [g(F, x[0], y[0], dy[0])]) if g else (lambda F, a, x, y, dy: [None])
    low = LOWER.get(name)
    register(name, infer=same_infer, kind='elemwise', inplace=True, grad=grad,
             lower=low and (lambda P, a, x: low(P, x)),
             doc=f"Elementwise {name} (MXNet's {name}).")(_exact_on_ints(_f(fn)) if name in _ROUNDING else lambda attrs, x: _f(fn)(x))


for _n, (_k, _g) in MATH.items():
    _math(_n, _k, _g)


def _softmin_grad(F, a, x, y, dy):
    s = F.sum(dy[0] * y[0], axis=a['axis'], keepdims=True)
    g = -(F.broadcast_mul(F.broadcast_sub(dy[0], s), y[0]) / (a['temperature'] or 1.0))
    return [F.Cast(g, dtype=str(x[0].dtype)) if a['dtype'] and np.dtype(a['dtype']) != x[0].dtype else g]


@register('softmin', kind='opaque', grad=_softmin_grad,
          infer=lambda a, s, d: ([s[0]], [np.dtype(a['dtype']) if a['dtype'] else d[0]]),
          attrs={'axis': Attr('int', -1), 'temperature': Attr('float', None), 'dtype': Attr('dtype', None)},
          doc="softmax(-x / temperature) along axis (MXNet's softmin); dtype: the output's, computed in it.")
def _softmin(attrs, x):
    x = x.astype(attrs['dtype']) if attrs['dtype'] else x
    z = -x / (attrs['temperature'] or 1.0)
    e = np.exp(z - z.max(axis=attrs['axis'], keepdims=True))
    return (e / e.sum(axis=attrs['axis'], keepdims=True)).astype(x.dtype)


@register('nansum', kind='reduce', attrs=RED_ATTRS, infer=lambda a, s, d: ([_red_shape(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F.broadcast_mul(_expand(F, a, dy[0], x[0].shape), x[0] == x[0])],
          doc="sum treating NaN as 0 (MXNet's nansum).")
def _nansum(attrs, x):
    return _legacy_out(np.asarray(np.nansum(x, axis=_axes(attrs, x.ndim), keepdims=attrs['keepdims']), x.dtype))


@register('nanprod', kind='reduce', attrs=RED_ATTRS, infer=lambda a, s, d: ([_red_shape(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F.broadcast_div(F.broadcast_mul(_expand(F, a, dy[0], x[0].shape),
                                                                       _expand(F, a, y[0], x[0].shape)), x[0])],
          doc="prod treating NaN as 1 (MXNet's nanprod).")
def _nanprod(attrs, x):
    return _legacy_out(np.asarray(np.nanprod(x, axis=_axes(attrs, x.ndim), keepdims=attrs['keepdims']), x.dtype))


# ---------------------------------------------------------------- gamma, gammaln, erfinv (MXNet's special functions)
def _safe(fn, pole):
    """math.gamma / lgamma over an array, with C's tgamma / lgamma at their poles: +-inf at +-0, pole (NaN for
    gamma, inf for lgamma) at the negative integers, inf on overflow."""
    def one(v):
        try:
            return fn(v)
        except (ValueError, OverflowError):
            if v == 0:
                return math.copysign(math.inf, v) if pole != math.inf else math.inf
            return pole if v < 0 and v == math.floor(v) else math.inf
    def f(x):
        with np.errstate(over='ignore'):  # (overflow to inf is the value, as in C)
            return np.vectorize(one, otypes=[np.float64])(x.astype(np.float64)).astype(x.dtype)
    return f


def _digamma64(x):
    """psi(x): reflection below 0.5, the recurrence up to 6, then the asymptotic series (error < 1e-12)."""
    x = np.asarray(x, np.float64)
    refl = x < 0.5
    z = np.where(refl, 1.0 - x, x)
    acc = np.zeros_like(z)
    for _ in range(6):
        small = z < 6
        acc = acc - np.where(small, 1.0 / np.where(small, z, 1.0), 0.0)
        z = np.where(small, z + 1, z)
    r = 1.0 / (z * z)
    psi = acc + np.log(z) - 0.5 / z - r * (1 / 12 - r * (1 / 120 - r * (1 / 252 - r * (1 / 240 - r * (1 / 132)))))
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(refl, psi - math.pi / np.tan(math.pi * x), psi)


def _erfinv64(y):
    """erf^-1 by Newton's method on erf from Winitzki's approximation; +-1 give +-inf, |y| > 1 NaN."""
    from .elemwise import _erf
    y = np.asarray(y, np.float64)
    inside = np.abs(y) < 1
    t = np.where(inside, y, 0.0)
    a = 0.147
    ln = np.log1p(-t * t)
    b = 2 / (math.pi * a) + ln / 2
    x = np.sign(t) * np.sqrt(np.sqrt(b * b - ln / a) - b)
    for _ in range(4):
        x = x - (_erf(x) - t) * (math.sqrt(math.pi) / 2) * np.exp(x * x)
    return np.where(inside, x, np.where(np.abs(y) == 1, np.copysign(np.inf, y), np.nan))


SPECIAL = {
    'gamma': (_safe(math.gamma, math.nan), lambda F, x, y, dy: dy * y * F._digamma(x)),
    'gammaln': (_safe(math.lgamma, math.inf), lambda F, x, y, dy: dy * F._digamma(x)),
    'erfinv': (_erfinv64, lambda F, x, y, dy: dy * F.exp(F.square(y)) * (math.sqrt(math.pi) / 2)),
}
for _n, (_k, _g) in SPECIAL.items():
    _math(_n, _k, _g)
register('_digamma', infer=same_infer, kind='elemwise',
         doc="psi(x) = d/dx ln gamma(x) (the gradient of gammaln).")(lambda attrs, x: _f(_digamma64)(x))
