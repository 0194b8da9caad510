"""npx.random (MXNet's mxnet.numpy_extension.random): seed, bernoulli and the batch samplers uniform_n /
normal_n, whose output shape is batch_shape + the parameters' broadcast shape."""
import numbers as _numbers

import numpy as _onp

from .. import random as _rnd
from ..ndarray import ndarray as _ndm
from . import random as _npr


def seed(seed, ctx='all'):  # noqa: A002  (MXNet's parameter name)
    """Seed graphc's random stream (one stream for all devices)."""
    _rnd.seed(seed, ctx)


def _batch(batch_shape):
    return () if batch_shape is None else ((batch_shape,) if isinstance(batch_shape, _numbers.Integral)
                                           else tuple(batch_shape))


def _params_shape(params):
    from .multiarray import shape
    arrays = [shape(p) for p in params if isinstance(p, _ndm.TENSORS)]
    return _onp.broadcast_shapes(*arrays) if arrays else ()


def uniform_n(low=0.0, high=1.0, batch_shape=None, dtype=None, ctx=None):
    """Uniform samples of shape batch_shape + broadcast(low, high).shape."""
    return _npr.uniform(low, high, _batch(batch_shape) + _params_shape([low, high]), dtype, ctx)


def normal_n(loc=0.0, scale=1.0, batch_shape=None, dtype=None, ctx=None):
    """Normal samples of shape batch_shape + broadcast(loc, scale).shape."""
    return _npr.normal(loc, scale, _batch(batch_shape) + _params_shape([loc, scale]), dtype, ctx)


def bernoulli(prob=None, logit=None, size=None, dtype=None, ctx=None, out=None):
    """1 with probability prob (or sigmoid(logit)), else 0; exactly one of prob and logit is given."""
    if (prob is None) == (logit is None):
        raise ValueError("npx.random.bernoulli: give exactly one of prob and logit")
    if prob is not None:
        _npr._check('bernoulli', lambda p: (p >= 0) & (p <= 1), "prob must be in [0, 1]", prob)
        p = prob
    else:
        from ..numpy_extension import sigmoid
        p = sigmoid(logit) if isinstance(logit, _ndm.TENSORS) else 1 / (1 + _onp.exp(-_onp.asarray(logit)))
    r = _npr._sample('uniform', lambda u, q: (u < q), [p], size, None, ctx, None)
    r = r.astype(dtype or _onp.float32)
    if out is not None:
        out[...] = r
        return out
    return r
