"""graphc's random number generator: one seeded stream for initializers, Dropout and random arrays."""
import numpy as np

from .ndarray.ndarray import NDArray, _check_ctx, _new, _shape
from .base import as_dtype

_rng = np.random.default_rng()


def seed(seed_state):
    """Seed every random draw graphc makes (initializers, Dropout, shuffling, nd.random.*)."""
    global _rng
    _rng = np.random.default_rng(int(seed_state))


def generator():
    """The current NumPy Generator (re-read it after seed())."""
    return _rng


def get_state():
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state


def uniform(low=0.0, high=1.0, shape=(1,), ctx=None, dtype=None):
    return _new(_rng.uniform(low, high, _shape(shape)).astype(as_dtype(dtype)), _check_ctx(ctx))


def normal(loc=0.0, scale=1.0, shape=(1,), ctx=None, dtype=None):
    return _new(_rng.normal(loc, scale, _shape(shape)).astype(as_dtype(dtype)), _check_ctx(ctx))


def randint(low, high, shape=(1,), ctx=None, dtype='int32'):
    return _new(_rng.integers(low, high, _shape(shape)).astype(as_dtype(dtype)), _check_ctx(ctx))


def shuffle(data):
    """A copy of data with its first axis permuted."""
    return NDArray(data._data[_rng.permutation(data.shape[0])])
