"""mx.random: one seeded stream for initializers, Dropout, shuffling and the samplers (those of mx.nd.random)."""
import numpy as np

_rng = np.random.default_rng()


def seed(seed_state, ctx='all'):
    """Seed every random draw graphc makes (initializers, Dropout, shuffling, nd.random.*). Any int (negative
    too, as MXNet's); ctx is accepted for MXNet's per-device seeding, and graphc has one stream for all."""
    global _rng
    if not isinstance(seed_state, (int, np.integer)):
        raise ValueError(f"random.seed: seed_state must be an int, got {type(seed_state).__name__}")
    _rng = np.random.default_rng(int(seed_state) % (1 << 64))


def generator():
    """The current NumPy Generator (re-read it after seed())."""
    return _rng


def get_state():
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state


from .ndarray.random import (uniform, normal, randn, poisson, exponential, gamma, negative_binomial,  # noqa: F401,E402
                             generalized_negative_binomial, randint, multinomial, shuffle)
