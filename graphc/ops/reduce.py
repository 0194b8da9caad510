"""Reductions and matrix products."""
import numpy as np

from ..registry import Attr, bad, norm_axis, reduce_axes, register, same_dtype
from ..util import _NP_SHAPE

RED_ATTRS = {'axis': Attr('axis', None), 'keepdims': Attr('bool', False), 'exclude': Attr('bool', False)}


def _axes(a, ndim):
    return reduce_axes(a['axis'], ndim, a.get('exclude', False))


def _legacy(s):
    """MXNet 1.x: a result with no dims has shape (1,), unless NumPy shape semantics are on (mx.util.np_shape)."""
    return (1,) if not s and not _NP_SHAPE[0] else s


def _legacy_out(r):
    return r.reshape(1) if r.ndim == 0 and not _NP_SHAPE[0] else r


def _red_shape(a, s):
    axes = _axes(a, len(s))
    if a['keepdims']:
        return _legacy(tuple(1 if i in axes else d for i, d in enumerate(s)))
    return _legacy(tuple(d for i, d in enumerate(s) if i not in axes))


def _keep_shape(a, s):
    axes = _axes(a, len(s))
    return tuple(1 if i in axes else d for i, d in enumerate(s))


def _expand(F, a, g, shape):
    """A reduced gradient broadcast back to the input shape."""
    if not _axes(a, len(shape)):  # nothing was reduced (a 0-d input: the (1,) result back to 0-d)
        return g if tuple(g.shape) == tuple(shape) else F._np_reshape(g, newshape=shape)
    out = F.broadcast_to(F._np_reshape(g, newshape=_keep_shape(a, shape)), shape=shape)
    for i in _axes(a, len(shape)):
        if shape[i] == 0:  # broadcast_to reads a 0 as "keep this dim": cut the kept 1 down to 0
            out = F.slice_axis(out, axis=i, begin=0, end=0)
    return out


def _count(a, shape):
    n = 1
    for i in _axes(a, len(shape)):
        n *= shape[i]
    return n


def _mean_grad(F, a, shape, g):
    n = _count(a, shape)
    g = _expand(F, a, g, shape)
    return g / float(n) if n > 1 else g


def _minmax_grad(F, a, x, y, dy):
    yb = _expand(F, a, y[0], x[0].shape)
    return [F.broadcast_mul(_expand(F, a, dy[0], x[0].shape), F.broadcast_equal(x[0], yb))]


REDUCTIONS = {
    'sum': (np.sum, lambda F, a, x, y, dy: [_expand(F, a, dy[0], x[0].shape)]),
    'mean': (np.mean, lambda F, a, x, y, dy: [_mean_grad(F, a, x[0].shape, dy[0])]),
    'max': (np.max, _minmax_grad),
    'min': (np.min, _minmax_grad),
    'prod': (np.prod, lambda F, a, x, y, dy: [F.broadcast_div(F.broadcast_mul(_expand(F, a, dy[0], x[0].shape),
                                                                               _expand(F, a, y[0], x[0].shape)), x[0])]),
}


def _reduction(name, fn, grad):
    def ref(attrs, x):
        axes = _axes(attrs, x.ndim)
        if name in ('max', 'min') and any(x.shape[i] == 0 for i in axes):
            bad(f"{name}: cannot reduce over an empty axis of shape {x.shape}")
        return _legacy_out(np.asarray(fn(x, axis=axes, keepdims=attrs['keepdims']), dtype=x.dtype))
    register(name, kind='reduce', attrs=RED_ATTRS, grad=grad,
             infer=lambda a, s, d: ([_red_shape(a, s[0])], [d[0]]))(ref)


for _n, (_f, _g) in REDUCTIONS.items():
    _reduction(_n, _f, _g)


def _norm_grad(F, a, x, y, dy):
    g, out = dy[0], y[0]
    if a['out_dtype'] and np.dtype(a['out_dtype']) != x[0].dtype:  # differentiate in the input's dtype
        g, out = F.Cast(g, dtype=str(x[0].dtype)), F.Cast(out, dtype=str(x[0].dtype))
    g = _expand(F, a, g, x[0].shape)
    if a['ord'] == 1:
        return [F.broadcast_mul(g, F.sign(x[0]))]
    return [F.broadcast_div(F.broadcast_mul(g, x[0]), _expand(F, a, out, x[0].shape))]


@register('norm', kind='reduce', attrs={'ord': Attr('int', 2), 'axis': Attr('axis', None), 'keepdims': Attr('bool', False),
                                        'out_dtype': Attr('dtype', None)},
          infer=lambda a, s, d: ([_red_shape(a, s[0])], [np.dtype(a['out_dtype']) if a['out_dtype'] else d[0]]),
          grad=_norm_grad, doc="The L1 or L2 norm over axis; out_dtype: the result's dtype, accumulated in it.")
def _norm(attrs, x):
    if attrs['ord'] not in (1, 2):
        bad(f"norm: ord must be 1 or 2, got {attrs['ord']}")
    axes = _axes(attrs, x.ndim)
    dt = np.dtype(attrs['out_dtype']) if attrs['out_dtype'] else x.dtype
    xa = x.astype(np.promote_types(dt, x.dtype))
    r = np.sum(np.abs(xa), axes, keepdims=attrs['keepdims']) if attrs['ord'] == 1 else \
        np.sqrt(np.sum(np.square(xa), axes, keepdims=attrs['keepdims']))
    return _legacy_out(np.asarray(r, dtype=dt))


def _arg_infer(a, s, d):
    s = s[0]
    if a['axis'] is None:
        return [_legacy((1,) * len(s) if a['keepdims'] else ())], [d[0]]
    ax = norm_axis(a['axis'], len(s))
    return [s[:ax] + (1,) + s[ax + 1:] if a['keepdims'] else _legacy(s[:ax] + s[ax + 1:])], [d[0]]


def _argreduce(name, fn):
    def ref(attrs, x):
        if x.size == 0:
            bad(f"{name}: empty input of shape {x.shape}")
        r = fn(x, axis=attrs['axis'], keepdims=attrs['keepdims'])
        return _legacy_out(np.asarray(r, dtype=x.dtype))  # MXNet returns indices in the input's dtype
    register(name, kind='reduce', attrs={'axis': Attr('int', None), 'keepdims': Attr('bool', False)},
             infer=_arg_infer, grad=lambda F, a, x, y, dy: [None])(ref)


_argreduce('argmax', np.argmax)
_argreduce('argmin', np.argmin)


# ---------------------------------------------------------------- products
DOT_ATTRS = {'transpose_a': Attr('bool', False), 'transpose_b': Attr('bool', False)}


def _dot_infer(attrs, shapes, dtypes):
    a, b = shapes
    if not a or not b:
        bad("dot: inputs must have at least one dim")
    # MXNet's N-d dot views each input as a matrix: lhs (prod of all dims but the last, last), transposed:
    # (first, prod of the rest) read transposed; rhs likewise. Contracted: lhs's last (transposed: first) dim
    # with rhs's first (transposed: last); the other dims stay in order.
    ka, ra = (a[0], a[1:]) if attrs['transpose_a'] else (a[-1], a[:-1])
    kb, rb = (b[-1], b[:-1]) if attrs['transpose_b'] else (b[0], b[1:])
    if ka != kb:
        ta, tb = attrs['transpose_a'], attrs['transpose_b']
        bad(f"dot: {'first' if ta else 'last'} dim of lhs ({ka}) must equal {'last' if tb else 'first'} dim of rhs "
            f"({kb})" + (f" (transpose_a={ta}, transpose_b={tb})" if ta or tb else ''))
    return [_legacy(ra + rb)], [same_dtype('dot', dtypes)]


def _mat(x, t):
    return x.T if t else x


def _dot_grad(F, a, x, y, dy):
    A, B, g = x[0], x[1], dy[0]
    ta, tb = a['transpose_a'], a['transpose_b']
    if A.ndim == 2 and B.ndim == 2:
        dA = F.dot(B, g, transpose_a=tb, transpose_b=True) if ta else F.dot(g, B, transpose_b=not tb)
        dB = F.dot(g, A, transpose_a=True, transpose_b=ta) if tb else F.dot(A, g, transpose_a=not ta)
        return [dA, dB]
    # as 2-D: A2 (m, k), B2 (k, n), g2 (m, n), with A and B read transposed when flagged
    As, Bs = A.shape, B.shape
    k = (As[0] if ta else As[-1])
    A2 = F._np_reshape(A, newshape=(k, -1) if ta else (-1, k))
    B2 = F._np_reshape(B, newshape=(-1, k) if tb else (k, -1))
    m = A2.shape[1] if ta else A2.shape[0]
    n = B2.shape[0] if tb else B2.shape[1]
    g2 = F._np_reshape(g, newshape=(m, n))
    dA = F.dot(B2, g2, transpose_a=tb, transpose_b=True) if ta else F.dot(g2, B2, transpose_b=not tb)
    dB = F.dot(g2, A2, transpose_a=True, transpose_b=ta) if tb else F.dot(A2, g2, transpose_a=not ta)
    return [F._np_reshape(dA, newshape=As), F._np_reshape(dB, newshape=Bs)]


@register('dot', kind='opaque', inputs=('lhs', 'rhs'), attrs=DOT_ATTRS, infer=_dot_infer, grad=_dot_grad)
def _dot(attrs, a, b):
    ta, tb = attrs['transpose_a'], attrs['transpose_b']
    if a.ndim <= 2 and b.ndim <= 2:
        return _legacy_out(np.asarray(np.dot(a.T if ta else a, b.T if tb else b)))
    out = _dot_infer(attrs, [a.shape, b.shape], [a.dtype, b.dtype])[0][0]
    A2 = a.reshape(a.shape[0], -1).T if ta else a.reshape(-1, a.shape[-1])
    B2 = b.reshape(-1, b.shape[-1]).T if tb else b.reshape(b.shape[0], -1)
    return np.dot(A2, B2).reshape(out)


def _bdot_infer(attrs, shapes, dtypes):
    a, b = shapes
    if len(a) != 3 or len(b) != 3 or a[0] != b[0]:
        bad(f"batch_dot: needs 3-d inputs with the same batch size, got {a} and {b}")
    m, k = (a[2], a[1]) if attrs['transpose_a'] else (a[1], a[2])
    k2, n = (b[2], b[1]) if attrs['transpose_b'] else (b[1], b[2])
    if k != k2:
        bad(f"batch_dot: inner dims differ ({k} vs {k2})")
    return [(a[0], m, n)], [same_dtype('batch_dot', dtypes)]


def _bdot_grad(F, a, x, y, dy):
    A, B, g = x[0], x[1], dy[0]
    ta, tb = a['transpose_a'], a['transpose_b']
    dA = F.batch_dot(B, g, transpose_a=tb, transpose_b=True) if ta else F.batch_dot(g, B, transpose_b=not tb)
    dB = F.batch_dot(g, A, transpose_a=True, transpose_b=ta) if tb else F.batch_dot(A, g, transpose_a=not ta)
    return [dA, dB]


@register('batch_dot', kind='opaque', inputs=('lhs', 'rhs'), attrs=DOT_ATTRS, infer=_bdot_infer, grad=_bdot_grad)
def _batch_dot(attrs, a, b):
    if attrs['transpose_a']:
        a = a.transpose(0, 2, 1)
    if attrs['transpose_b']:
        b = b.transpose(0, 2, 1)
    return np.matmul(a, b)


# ---------------------------------------------------------------- moments
def _mom_attrs(a):
    return {'axis': a['axes'], 'keepdims': a['keepdims'], 'exclude': False}


def _moments_grad(F, a, x, y, dy):
    """d mean = g_m / n; d var = g_v * 2 (x - mean) / n, both broadcast back over the reduced axes."""
    r, shape = _mom_attrs(a), x[0].shape
    n = float(max(_count(r, shape), 1))
    centered = F.broadcast_sub(x[0], _expand(F, r, y[0], shape))
    return [_expand(F, r, dy[0], shape) / n + F.broadcast_mul(_expand(F, r, dy[1], shape), centered) * (2.0 / n)]


@register('moments', kind='reduce', attrs={'axes': Attr('shape', None), 'keepdims': Attr('bool', False)},
          num_outputs=2, infer=lambda a, s, d: ([_red_shape(_mom_attrs(a), s[0])] * 2, [d[0]] * 2),
          grad=_moments_grad, doc="The mean and the (biased) variance of data over axes (all axes: axes=None).")
def _moments(attrs, x):
    axes = _axes(_mom_attrs(attrs), x.ndim)
    kd = attrs['keepdims']
    m = x.mean(axis=axes, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axes, keepdims=kd)
    m = m if kd else m.reshape([d for i, d in enumerate(x.shape) if i not in axes])
    return _legacy_out(np.asarray(m, x.dtype)), _legacy_out(np.asarray(v, x.dtype))
