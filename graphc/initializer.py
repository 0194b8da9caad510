"""Weight initializers, as MXNet's mx.init: Uniform, Normal, Xavier, MSRAPrelu, Constant, Zero, One.

An initializer is called as `init(name, arr)` and fills the NDArray `arr` in place. The name's
suffix picks the rule (weight: _init_weight, bias/beta/means: 0, gamma/vars: 1), as MXNet does;
a parameter's own initializer (`Parameter(init=...)`) is applied with `_init_weight` directly.
Every random draw comes from graphc.random.generator(), so gc.random.seed(n) fixes the result.
"""
import json

import numpy as np

from . import random as _random
from .base import GraphcError

_REGISTRY = {}


def register(klass):
    """Make `klass` creatable by its lowercase name (and from its dumps() JSON)."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*names):
    def deco(klass):
        for n in names:
            _REGISTRY[n.lower()] = klass
        return klass
    return deco


def create(init):
    """An Initializer from an instance, a registered name ('xavier', 'zeros') or dumps() JSON."""
    if isinstance(init, Initializer):
        return init
    if isinstance(init, str):
        name, kwargs = init, {}
        if init.lstrip().startswith('['):
            try:
                name, kwargs = json.loads(init)
            except (ValueError, TypeError):
                raise GraphcError(f"initializer JSON {init!r} is not of the form [\"name\", {{kwargs}}]") from None
        klass = _REGISTRY.get(str(name).lower())
        if klass is None:
            raise GraphcError(f"unknown initializer {name!r}; known: {', '.join(sorted(_REGISTRY))}")
        return klass(**kwargs)
    raise GraphcError(f"cannot make an initializer from {init!r}: give an Initializer, a name or its JSON")


def _fill(arr, values):
    from .ndarray.ndarray import WRITES
    WRITES[0] += 1
    arr._data[...] = np.asarray(values).astype(arr.dtype, copy=False)


class Initializer:
    """Base class. Subclasses implement _init_weight(name, arr) and pass their kwargs to __init__."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs

    def dumps(self):
        """MXNet's JSON form, e.g. '["xavier", {"rnd_type": "uniform", ...}]'."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __repr__(self):
        return f"{self.__class__.__name__}({', '.join(f'{k}={v!r}' for k, v in self._kwargs.items())})"

    def __call__(self, name, arr):
        name = str(name)
        if name.endswith(('bias', 'beta', 'running_mean', 'moving_mean', 'moving_avg', 'moving_inv_var')):
            _fill(arr, 0.0)
        elif name.endswith(('gamma', 'running_var', 'moving_var')):
            _fill(arr, 1.0)
        else:  # 'weight' and, as in Gluon, any other name
            self._init_weight(name, arr)

    def _init_weight(self, name, arr):
        raise NotImplementedError(f"{self.__class__.__name__} must implement _init_weight")


@register
class Uniform(Initializer):
    """U(-scale, scale)."""

    def __init__(self, scale=0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, name, arr):
        _fill(arr, _random.generator().uniform(-self.scale, self.scale, arr.shape))


@register
class Normal(Initializer):
    """N(0, sigma^2)."""

    def __init__(self, sigma=0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, name, arr):
        _fill(arr, _random.generator().normal(0.0, self.sigma, arr.shape))


@register
@alias('zeros')
class Zero(Initializer):
    def __init__(self):
        super().__init__()

    def _init_weight(self, name, arr):
        _fill(arr, 0.0)


@register
@alias('ones')
class One(Initializer):
    def __init__(self):
        super().__init__()

    def _init_weight(self, name, arr):
        _fill(arr, 1.0)


@register
class Constant(Initializer):
    """Fill with `value` (a scalar, or anything that broadcasts to the array's shape)."""

    def __init__(self, value):
        super().__init__(value=value.tolist() if hasattr(value, 'tolist') else value)
        self.value = value

    def _init_weight(self, name, arr):
        v = np.asarray(getattr(self.value, '_data', self.value))
        try:
            _fill(arr, np.broadcast_to(v, arr.shape))
        except ValueError:
            raise GraphcError(f"Constant initializer: value of shape {v.shape} does not fit parameter "
                              f"{name!r} of shape {arr.shape}") from None


@register
class Xavier(Initializer):
    """Glorot: scale = sqrt(magnitude / factor), factor = fan_in, fan_out or their average."""

    def __init__(self, rnd_type='uniform', factor_type='avg', magnitude=3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        if rnd_type not in ('uniform', 'gaussian'):
            raise GraphcError(f"Xavier: rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ('avg', 'in', 'out'):
            raise GraphcError(f"Xavier: factor_type must be 'avg', 'in' or 'out', got {factor_type!r}")
        self.rnd_type, self.factor_type, self.magnitude = rnd_type, factor_type, float(magnitude)

    def _init_weight(self, name, arr):
        shape = arr.shape
        if len(shape) < 2:
            raise GraphcError(f"Xavier initializer cannot be applied to {name!r} of shape {shape}: "
                              "it needs at least 2 dimensions")
        hw = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * hw, shape[0] * hw
        factor = {'avg': (fan_in + fan_out) / 2.0, 'in': fan_in, 'out': fan_out}[self.factor_type]
        scale = np.sqrt(self.magnitude / factor)
        rng = _random.generator()
        if self.rnd_type == 'uniform':
            _fill(arr, rng.uniform(-scale, scale, shape))
        else:
            _fill(arr, rng.normal(0.0, scale, shape))


@register
class MSRAPrelu(Xavier):
    """He et al.: gaussian Xavier with magnitude 2 / (1 + slope^2)."""

    def __init__(self, factor_type='avg', slope=0.25):
        super().__init__('gaussian', factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {'factor_type': factor_type, 'slope': slope}
