"""mx.sym.random: nd.random's samplers on Symbols. Numbers as parameters make a _random_<kind> node of `shape`;
Symbols as parameters a _sample_<kind> node (`shape` draws per parameter element), as MXNet's."""
import numbers

from ..base import GraphcTypeError
from .symbol import Symbol


def _helper(kind, names, params, shape, dtype, kw):
    from .. import symbol as S
    kw.pop('ctx', None)  # a graph runs on the executor's context
    if all(isinstance(p, Symbol) for p in params):
        return getattr(S, f'_sample_{kind}')(*params, shape=() if shape is None else shape, dtype=dtype, **kw)
    if all(isinstance(p, numbers.Number) for p in params):
        return getattr(S, f'_random_{kind}')(**dict(zip(names, params)), shape=() if shape is None else shape,
                                              dtype=dtype, **kw)
    raise GraphcTypeError(f"sym.random.{kind}: distribution parameters must be all Symbols or all numbers, got "
                          f"{', '.join(type(p).__name__ for p in params)}")


def _like(kind, data, params, kw):
    from .. import symbol as S
    kw.pop('ctx', None)
    kw.pop('dtype', None)  # the samples take data's dtype
    return getattr(S, f'_random_{kind}_like')(data, **params, **kw)


def uniform(low=0, high=1, shape=None, dtype=None, **kwargs):
    return _helper('uniform', ('low', 'high'), [low, high], shape, dtype, kwargs)


def normal(loc=0, scale=1, shape=None, dtype=None, **kwargs):
    return _helper('normal', ('loc', 'scale'), [loc, scale], shape, dtype, kwargs)


def gamma(alpha=1, beta=1, shape=None, dtype=None, **kwargs):
    return _helper('gamma', ('alpha', 'beta'), [alpha, beta], shape, dtype, kwargs)


def exponential(scale=1, shape=None, dtype=None, **kwargs):
    """Exponential samples of mean `scale` (the node's lam is its rate, 1/scale)."""
    return _helper('exponential', ('lam',), [1.0 / scale], shape, dtype, kwargs)


def poisson(lam=1, shape=None, dtype=None, **kwargs):
    return _helper('poisson', ('lam',), [lam], shape, dtype, kwargs)


def negative_binomial(k=1, p=1, shape=None, dtype=None, **kwargs):
    return _helper('negative_binomial', ('k', 'p'), [k, p], shape, dtype, kwargs)


def generalized_negative_binomial(mu=1, alpha=1, shape=None, dtype=None, **kwargs):
    return _helper('generalized_negative_binomial', ('mu', 'alpha'), [mu, alpha], shape, dtype, kwargs)


def randint(low, high, shape=None, dtype=None, **kwargs):
    from .. import symbol as S
    kwargs.pop('ctx', None)
    return S._random_randint(low=int(low), high=int(high), shape=() if shape is None else shape, dtype=dtype,
                             **kwargs)


def multinomial(data, shape=None, get_prob=False, dtype='int32', **kwargs):
    from .. import symbol as S
    return S._sample_multinomial(data, shape=() if shape is None else shape, get_prob=get_prob, dtype=dtype,
                                 **kwargs)


def shuffle(data, **kwargs):
    from .. import symbol as S
    return S._shuffle(data, **kwargs)


def uniform_like(data=None, low=0, high=1, **kwargs):
    return _like('uniform', data, {'low': low, 'high': high}, kwargs)


def normal_like(data=None, loc=0, scale=1, **kwargs):
    return _like('normal', data, {'loc': loc, 'scale': scale}, kwargs)


def gamma_like(data=None, alpha=1, beta=1, **kwargs):
    return _like('gamma', data, {'alpha': alpha, 'beta': beta}, kwargs)


def exponential_like(data=None, lam=1, **kwargs):
    return _like('exponential', data, {'lam': lam}, kwargs)


def poisson_like(data=None, lam=1, **kwargs):
    return _like('poisson', data, {'lam': lam}, kwargs)


def negative_binomial_like(data=None, k=1, p=1, **kwargs):
    return _like('negative_binomial', data, {'k': k, 'p': p}, kwargs)


def generalized_negative_binomial_like(data=None, mu=1, alpha=1, **kwargs):
    return _like('generalized_negative_binomial', data, {'mu': mu, 'alpha': alpha}, kwargs)
