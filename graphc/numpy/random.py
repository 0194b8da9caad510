"""mx.np.random: NumPy's sampler signatures (size=, 0-d when size is None) over graphc's seeded samplers.

The location-scale families and those with a closed-form inverse CDF (normal, uniform, lognormal, logistic,
gumbel, exponential, rayleigh, weibull, pareto, power) are compositions of registered ops on standard uniform
or normal noise (the reparameterization MXNet's kernels use), so they record gradients with respect to array
parameters and trace in hybridized blocks. gamma, beta and chisquare draw from graphc's gamma sampler (no
gradient, as in MXNet). Parameter checks (scale >= 0, ...) raise ValueError, as MXNet's kernels do; they need
the values, so they run for eager arrays and Python numbers, not for traced symbols.
"""
import numbers as _numbers

import numpy as _onp

from .. import random as _rnd
from ..ndarray import ndarray as _ndm
from ..ndarray import random as _ndr
from ..ndarray.ndarray import NDArray

seed = _rnd.seed


def _size(size):
    return () if size is None else ((size,) if isinstance(size, _numbers.Integral) else tuple(size))


def _tensor(x):
    return isinstance(x, _ndm.TENSORS)


def _out_shape(size, params):
    """size when given, else the broadcast shape of the array parameters (NumPy's rule)."""
    if size is not None:
        return _size(size)
    from .multiarray import shape
    return _onp.broadcast_shapes(*[shape(p) for p in params if _tensor(p)]) if any(map(_tensor, params)) else ()


def _noise(kind, shape, dtype, ctx):
    """Standard uniform [0, 1) or normal noise of `shape` (no gradient: a constant of the graph)."""
    r = getattr(_ndr, kind)(0.0, 1.0, shape=shape or (1,), dtype=dtype, ctx=ctx)
    return r.reshape(()) if not shape else r


def _check(name, cond, what, *params):
    """ValueError unless cond(value) holds for every eager parameter (symbols are not checked)."""
    for p in params:
        v = p.asnumpy() if isinstance(p, NDArray) else (None if _tensor(p) else _onp.asarray(p))
        if v is not None and v.size and not _onp.all(cond(v)):
            raise ValueError(f"np.random.{name}: {what}")


def _sample(kind, fn, params, size, dtype, ctx, out):
    """fn(noise, *params) on noise of the output shape; array parameters broadcast and carry gradients."""
    shp = _out_shape(size, params)
    pdt = next((p.dtype for p in params if _tensor(p) and p.dtype.kind == 'f'), None)
    ndt = _onp.dtype(dtype) if dtype is not None else (pdt or _onp.dtype(_onp.float32))
    ctx = ctx if ctx is not None else next((p.context for p in params if isinstance(p, NDArray)), None)
    wide = _onp.float32 if ndt == _onp.float16 else ndt  # (transforms of float16 noise lose too much)
    z = _noise(kind, shp, wide, ctx)
    ps = [p.astype(wide) if _tensor(p) and p.dtype != wide else p for p in params]
    r = fn(z, *ps)
    if not _tensor(r):  # (a transform of constants only)
        r = z * 0 + r
    from .multiarray import broadcast_to
    r = r if r.shape == shp else broadcast_to(r, shp)
    r = r.astype(ndt) if r.dtype != ndt else r
    if out is not None:
        out[...] = r
        return out
    return r


def _log(x):
    from .multiarray import log
    return log(x)


def _exp(x):
    from .multiarray import exp
    return exp(x)


def _std_exp(u):  # a standard exponential draw from u ~ U[0, 1)
    return -_log(1 - u)


def uniform(low=0.0, high=1.0, size=None, dtype=None, ctx=None, out=None):
    return _sample('uniform', lambda u, lo, hi: lo + (hi - lo) * u, [low, high], size, dtype, ctx, out)


def normal(loc=0.0, scale=1.0, size=None, dtype=None, ctx=None, out=None):
    _check('normal', lambda s: s >= 0, "scale must be non-negative", scale)
    return _sample('normal', lambda z, m, s: m + s * z, [loc, scale], size, dtype, ctx, out)


def lognormal(mean=0.0, sigma=1.0, size=None, dtype=None, ctx=None, out=None):
    _check('lognormal', lambda s: s >= 0, "sigma must be non-negative", sigma)
    return _sample('normal', lambda z, m, s: _exp(m + s * z), [mean, sigma], size, dtype, ctx, out)


def logistic(loc=0.0, scale=1.0, size=None, ctx=None, out=None):
    _check('logistic', lambda s: s >= 0, "scale must be non-negative", scale)
    # (u is clamped away from 0: log(0) would give -inf)
    return _sample('uniform', lambda u, m, s: m + s * _log((u + 1e-12) / (1 - u)), [loc, scale], size, None, ctx,
                   out)


def gumbel(loc=0.0, scale=1.0, size=None, ctx=None, out=None):
    _check('gumbel', lambda s: s >= 0, "scale must be non-negative", scale)
    return _sample('uniform', lambda u, m, s: m - s * _log(_std_exp(u) + 1e-12), [loc, scale], size, None, ctx, out)


def exponential(scale=1.0, size=None, ctx=None, out=None):
    _check('exponential', lambda s: s >= 0, "scale must be non-negative", scale)
    return _sample('uniform', lambda u, s: s * _std_exp(u), [scale], size, None, ctx, out)


def rayleigh(scale=1.0, size=None, ctx=None, out=None):
    _check('rayleigh', lambda s: s >= 0, "scale must be non-negative", scale)
    from .multiarray import sqrt
    return _sample('uniform', lambda u, s: s * sqrt(2 * _std_exp(u)), [scale], size, None, ctx, out)


def weibull(a, size=None, ctx=None, out=None):
    _check('weibull', lambda v: v > 0, "a must be positive", a)
    from .multiarray import power as _pow
    return _sample('uniform', lambda u, k: _pow(_std_exp(u), 1 / k), [a], size, None, ctx, out)


def pareto(a, size=None, ctx=None, out=None):
    _check('pareto', lambda v: v > 0, "a must be positive", a)  # NumPy's pareto: the Lomax (pareto II)
    return _sample('uniform', lambda u, k: _exp(_std_exp(u) / k) - 1, [a], size, None, ctx, out)


def power(a, size=None, ctx=None, out=None):
    _check('power', lambda v: v > 0, "a must be positive", a)
    from .multiarray import power as _pow
    return _sample('uniform', lambda u, k: _pow(1 - u, 1 / k), [a], size, None, ctx, out)


def _gamma_draw(shape, scale, size, dtype, ctx):
    params = [shape, scale]
    shp = _out_shape(size, params)
    if any(map(_tensor, params)):  # array parameters: broadcast, one sample per element
        from .multiarray import broadcast_to
        ref = next(p for p in params if _tensor(p))  # (a number joins as ref * 0 + p: traced with ref)
        ps = [broadcast_to(p if _tensor(p) else ref.astype(_onp.float32) * 0 + p, shp) for p in params]
        ps = [p.astype(_onp.float32) if p.dtype != _onp.float32 else p for p in ps]
        r = _ndm._op('_sample_gamma', *ps, shape=())  # (the registered op: traces too)
    else:
        r = _ndr.gamma(float(shape), float(scale), shape=shp or (1,), ctx=ctx)
        r = r.reshape(()) if not shp else r
    return r.astype(dtype) if dtype is not None and r.dtype != _onp.dtype(dtype) else r


def gamma(shape, scale=1.0, size=None, dtype=None, ctx=None, out=None):
    _check('gamma', lambda v: v > 0, "shape and scale must be positive", shape, scale)
    r = _gamma_draw(shape, scale, size, dtype, ctx)
    if out is not None:
        out[...] = r
        return out
    return r


def beta(a, b, size=None, dtype=None, ctx=None):
    """X / (X + Y) with X ~ gamma(a), Y ~ gamma(b)."""
    _check('beta', lambda v: v > 0, "a and b must be positive", a, b)
    x, y = _gamma_draw(a, 1.0, size, None, ctx), _gamma_draw(b, 1.0, size, None, ctx)
    r = x / (x + y)
    return r.astype(dtype) if dtype is not None else r


def chisquare(df, size=None, dtype=None, ctx=None):
    """2 * gamma(df / 2)."""
    _check('chisquare', lambda v: v > 0, "df must be positive", df)
    r = 2 * _gamma_draw(df / 2 if _tensor(df) else df / 2.0, 1.0, size, None, ctx)
    return r.astype(dtype) if dtype is not None else r


def multivariate_normal(mean, cov, size=None, check_valid=None, tol=None):
    """mean + L z with L the Cholesky factor of cov (batched over mean's and cov's leading axes)."""
    from .multiarray import array, broadcast_to, shape, sum as _sum, expand_dims
    from .linalg import cholesky
    mean = mean if _tensor(mean) else array(mean)
    cov = cov if _tensor(cov) else array(cov, dtype=mean.dtype)
    n, dt = shape(mean)[-1], mean.dtype
    wide = _onp.float32 if dt == _onp.float16 else dt  # (no float16 Cholesky)
    out_shape = _size(size) + _onp.broadcast_shapes(shape(mean)[:-1], shape(cov)[:-2]) + (n,)
    low = cholesky(cov.astype(wide) if cov.dtype != wide else cov)
    z = _noise('normal', out_shape, wide, None)
    r = (mean.astype(wide) if dt != wide else mean) + _sum(
        broadcast_to(low, out_shape[:-1] + (n, n)) * expand_dims(z, -2), axis=-1)
    return r.astype(dt) if r.dtype != dt else r


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
