"""mx.nd.random: samplers under MXNet's names. Numbers as parameters draw `shape` samples (default (1,));
NDArrays as parameters draw `shape` samples per element (MXNet's sample_* ops)."""
import numbers

from ..base import GraphcTypeError
from ..registry import OPS
from .ndarray import NDArray, invoke

_Null = None


def _finish(res, ctx, out):
    if ctx is not None and res.context != ctx:
        res = res.as_in_context(ctx)
    if out is None:
        return res
    out[:] = res
    return out


def _helper(kind, params, shape, dtype, ctx, out, **kw):
    """_random_<kind> for numbers, _sample_<kind> for NDArrays (all parameters of one kind)."""
    if isinstance(params[0], NDArray):
        if not all(isinstance(p, NDArray) for p in params):
            raise GraphcTypeError(f"random.{kind}: the parameters must all be NDArrays or all numbers")
        op = OPS[f'_sample_{kind}']
        a = op.canon({'shape': () if shape is None else shape, 'dtype': dtype, **kw})
        return _finish(invoke(op, params, a), None, out)
    if all(isinstance(p, numbers.Number) for p in params):
        op = OPS[f'_random_{kind}']
        if shape is None:
            shape = out.shape if out is not None else (1,)
        names = [k for k in op.attrs if k not in ('shape', 'ctx', 'dtype')]
        a = op.canon({**dict(zip(names, params)), 'shape': shape, 'dtype': dtype, **kw})
        return _finish(invoke(op, (), a), ctx, out)
    raise GraphcTypeError(f"random.{kind}: distribution parameters must be NDArrays or numbers, got "
                          f"{', '.join(type(p).__name__ for p in params)}")


def uniform(low=0, high=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    """Samples from U[low, high)."""
    return _helper('uniform', [low, high], shape, dtype, ctx, out)


def normal(loc=0, scale=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    """Samples from N(loc, scale^2)."""
    return _helper('normal', [loc, scale], shape, dtype, ctx, out)


def randn(*shape, **kwargs):
    """Normal samples of the given shape: randn(2, 3, loc=0, scale=1)."""
    loc, scale = kwargs.pop('loc', 0), kwargs.pop('scale', 1)
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return normal(loc, scale, shape or (1,), **kwargs)


def poisson(lam=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    return _helper('poisson', [lam], shape, dtype, ctx, out)


def exponential(scale=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    """Samples from the exponential distribution of mean `scale` (rate 1/scale)."""
    lam = 1.0 / scale if isinstance(scale, numbers.Number) else 1.0 / scale
    return _helper('exponential', [lam], shape, dtype, ctx, out)


def gamma(alpha=1, beta=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    """Samples from Gamma(shape alpha, scale beta)."""
    return _helper('gamma', [alpha, beta], shape, dtype, ctx, out)


def negative_binomial(k=1, p=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    return _helper('negative_binomial', [k, p], shape, dtype, ctx, out)


def generalized_negative_binomial(mu=1, alpha=1, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    return _helper('generalized_negative_binomial', [mu, alpha], shape, dtype, ctx, out)


def randint(low, high, shape=_Null, dtype=_Null, ctx=None, out=None, **kwargs):
    """Integers from [low, high) (int32 unless dtype says otherwise)."""
    op = OPS['_random_randint']
    shape = (out.shape if out is not None else (1,)) if shape is None else shape
    a = op.canon({'low': int(low), 'high': int(high), 'shape': shape, 'dtype': dtype})
    return _finish(invoke(op, (), a), ctx, out)


def multinomial(data, shape=_Null, get_prob=False, out=None, dtype='int32', **kwargs):
    """Category indices drawn with the probabilities in data's last axis (and their log-probabilities)."""
    op = OPS['_sample_multinomial']
    res = invoke(op, (data,), op.canon({'shape': () if shape is None else shape, 'get_prob': get_prob,
                                        'dtype': dtype}))
    return res if out is None else _finish(res, None, out)


def shuffle(data, **kwargs):
    """A copy of data with its first axis randomly permuted."""
    return invoke(OPS['_shuffle'], (data,), {})


def _like(kind, data, params, out):
    """_random_<kind>_like: samples in data's shape and dtype."""
    op = OPS[f'_random_{kind}_like']
    return _finish(invoke(op, (data,), op.canon(dict(zip(op.attrs, params)))), None, out)


def uniform_like(data=None, low=0, high=1, out=None, **kwargs):
    return _like('uniform', data, [low, high], out)


def normal_like(data=None, loc=0, scale=1, out=None, **kwargs):
    return _like('normal', data, [loc, scale], out)


def gamma_like(data=None, alpha=1, beta=1, out=None, **kwargs):
    return _like('gamma', data, [alpha, beta], out)


def exponential_like(data=None, lam=1, out=None, **kwargs):
    """Exponential samples of rate lam (MXNet's exponential_like takes the rate, exponential the scale)."""
    return _like('exponential', data, [lam], out)


def poisson_like(data=None, lam=1, out=None, **kwargs):
    return _like('poisson', data, [lam], out)


def negative_binomial_like(data=None, k=1, p=1, out=None, **kwargs):
    return _like('negative_binomial', data, [k, p], out)


def generalized_negative_binomial_like(data=None, mu=1, alpha=1, out=None, **kwargs):
    return _like('generalized_negative_binomial', data, [mu, alpha], out)
