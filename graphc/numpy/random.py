"""mx.np.random: NumPy's sampler signatures (size=, 0-d when size is None) over graphc's seeded samplers."""
import numpy as _onp

from .. import random as _rnd
from ..ndarray import random as _ndr
from ..ndarray.ndarray import NDArray

seed = _rnd.seed


def _size(size):
    return () if size is None else ((size,) if isinstance(size, int) else tuple(size))


def _draw(kind, params, size, dtype, ctx, out):
    shape = _size(size)
    if any(isinstance(p, NDArray) for p in params):  # array parameters: broadcast, one sample per element
        from .multiarray import broadcast_arrays
        ps = broadcast_arrays(*[p if isinstance(p, NDArray) else _onp.float32(p) for p in params])
        r = getattr(_ndr, kind)(*ps, shape=(), dtype=dtype)
        return r.reshape(shape) if shape and shape != r.shape else r
    r = getattr(_ndr, kind)(*params, shape=shape or (1,), dtype=dtype or 'float32', ctx=ctx)
    r = r.reshape(()) if not shape else r
    if out is not None:
        out[...] = r
        return out
    return r


def uniform(low=0.0, high=1.0, size=None, dtype=None, ctx=None, out=None):
    return _draw('uniform', [low, high], size, dtype, ctx, out)


def normal(loc=0.0, scale=1.0, size=None, dtype=None, ctx=None, out=None):
    return _draw('normal', [loc, scale], size, dtype, ctx, out)


def gamma(shape=1.0, scale=1.0, size=None, dtype=None, ctx=None, out=None):
    return _draw('gamma', [shape, scale], size, dtype, ctx, out)


def exponential(scale=1.0, size=None, ctx=None, out=None):
    return _draw('exponential', [scale], size, None, ctx, out)


def rand(*size, **kwargs):
    return uniform(size=size or None, **kwargs)


def randn(*size, **kwargs):
    return normal(size=size or None, **kwargs)


def randint(low, high=None, size=None, dtype=None, ctx=None, out=None):
    low, high = (0, low) if high is None else (low, high)
    r = _ndr.randint(low, high, shape=_size(size) or (1,), dtype=dtype or 'int64', ctx=ctx)
    return r.reshape(()) if size is None else r


def _host(a, ctx, dtype=None):
    from .multiarray import array
    return array(a, dtype=dtype or a.dtype, ctx=ctx)


def choice(a, size=None, replace=True, p=None, ctx=None, out=None):
    """NumPy's choice from graphc's seeded stream (drawn on the host)."""
    pool = a.asnumpy() if isinstance(a, NDArray) else a
    pr = p.asnumpy() if isinstance(p, NDArray) else p
    r = _onp.asarray(_rnd.generator().choice(pool, size=size, replace=replace, p=pr))
    return _host(r if isinstance(a, NDArray) or r.dtype.kind == 'f' else r.astype(_onp.int64), ctx)


def shuffle(x):
    """Shuffle x in place along its first axis."""
    x[...] = x.asnumpy()[_rnd.generator().permutation(x.shape[0])]


def multinomial(n, pvals, size=None):
    return _host(_rnd.generator().multinomial(n, _onp.asarray(pvals), size=size).astype(_onp.int64), None)


def _host_sampler(name):
    def f(*args, size=None, ctx=None, **kw):
        return _host(_onp.asarray(getattr(_rnd.generator(), name)(*args, size=size, **kw), dtype=_onp.float32), ctx)
    f.__name__ = name
    f.__doc__ = f"NumPy's random.{name}, drawn on the host from graphc's seeded stream."
    return f


for _n in ('beta', 'chisquare', 'gumbel', 'logistic', 'lognormal', 'pareto', 'power', 'rayleigh', 'weibull',
           'multivariate_normal'):
    globals()[_n] = _host_sampler(_n)
