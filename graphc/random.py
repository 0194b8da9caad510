"""mx.random: one seeded stream for initializers, Dropout, shuffling and the samplers (those of mx.nd.random)."""
import numpy as np

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


from .ndarray.random import (uniform, normal, randn, poisson, exponential, gamma, negative_binomial,  # noqa: F401,E402
                             generalized_negative_binomial, randint, multinomial, shuffle)
