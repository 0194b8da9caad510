"""Weight initializers, as MXNet 1.9's mx.init: Uniform, Normal, Orthogonal, Xavier, MSRAPrelu, Bilinear,
LSTMBias, FusedRNN, Constant, Zero, One, Mixed, Load; register, create and InitDesc.

An initializer is called as `init(desc, arr)` and fills the NDArray `arr` in place. With an InitDesc
(a str carrying `attrs` and `global_init`), MXNet's rule applies: an `__init__` attribute (an
initializer's JSON, set by Variable(init=...)) wins; otherwise the name's suffix picks the rule
(weight: _init_weight, bias/beta: 0, gamma: 1, ...), and an unknown suffix is an error. Called with a
plain name (what Gluon's Parameter does), the suffix picks the rule and any other name is a weight.
Every random draw comes from graphc.random.generator(), so gc.random.seed(n) fixes the result.
"""
import json
import logging
import re

import numpy as np

from . import random as _random
from .base import GraphcError

_REGISTRY = {}


class InitializerError(GraphcError, ValueError):
    """An initializer that cannot apply (MXNet raises ValueError)."""


class InitDesc(str):
    """A parameter's name with its attributes (`attrs`, e.g. '__init__') and the global initializer."""

    def __new__(cls, name, attrs=None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


def register(klass):
    """Make `klass` creatable by its lowercase name (and from its dumps() JSON)."""
    _REGISTRY[klass.__name__.lower()] = klass
    return klass


def alias(*names):
    """Register the class under more names too: @alias('zeros')."""
    def deco(klass):
        for n in names:
            _REGISTRY[n.lower()] = klass
        return klass
    return deco


def create(init, **kwargs):
    """An Initializer from an instance, a registered name ('xavier', 'zeros'; kwargs go to it) or dumps() JSON."""
    if isinstance(init, Initializer):
        if kwargs:
            raise GraphcError(f"initializer.create: {init!r} is already an instance; keyword arguments "
                              f"{sorted(kwargs)} cannot apply")
        return init
    if isinstance(init, str):
        name = init
        if init.lstrip().startswith('['):
            try:
                name, kw = json.loads(init)
                if not isinstance(name, str) or not isinstance(kw, dict):
                    raise TypeError
            except (ValueError, TypeError):
                raise InitializerError(f"initializer JSON {init!r} is not of the form [\"name\", {{kwargs}}]") from None
            kwargs = dict(kw, **kwargs)
        klass = _REGISTRY.get(name.lower())
        if klass is None:
            raise InitializerError(f"unknown initializer {name!r}; known: {', '.join(sorted(_REGISTRY))}")
        return klass(**kwargs)
    raise GraphcError(f"cannot make an initializer from {init!r}: give an Initializer, a name or its JSON")


def _fill(arr, values):
    from .ndarray.ndarray import WRITES
    WRITES[0] += 1
    if arr.stype != 'default':  # a sparse array: the values stored in its storage type
        arr._assign(np.broadcast_to(np.asarray(values).astype(arr.dtype, copy=False), arr.shape))
        return
    arr._data[...] = np.asarray(values).astype(arr.dtype, copy=False)


def _same_value(a, b):
    if isinstance(a, Initializer) or isinstance(b, Initializer) or np.isscalar(a) and np.isscalar(b):
        return a == b
    if a is None or b is None or isinstance(a, (str, dict)) or isinstance(b, (str, dict)):
        return a == b
    a, b = (np.asarray(x.asnumpy() if hasattr(x, 'asnumpy') else x) for x in (a, b))
    return a.shape == b.shape and bool(np.all(a == b))


class Initializer:
    """Base class. Subclasses implement _init_weight(name, arr) and pass their kwargs to __init__."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose, self._print_func = False, None

    def set_verbosity(self, verbose=False, print_func=None):
        """Log each initialized array; print_func(arr) -> str gives the summary (default: its norm / sqrt(size))."""
        self._verbose, self._print_func = verbose, print_func or (
            lambda x: str((np.linalg.norm(x.asnumpy().ravel()) / np.sqrt(max(x.size, 1))).item()))
        return self

    def _verbose_print(self, desc, init, arr):
        if self._verbose and self._print_func:
            logging.info('Initialized %s as %s: %s', desc, init, self._print_func(arr))

    def dumps(self):
        """MXNet's JSON form, e.g. '["xavier", {"rnd_type": "uniform", ...}]'."""
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __repr__(self):
        return f"{self.__class__.__name__}({', '.join(f'{k}={v!r}' for k, v in self._kwargs.items())})"

    def __eq__(self, other):
        """MXNet's: initializers of one class with equal arguments are equal (array arguments by value)."""
        if not isinstance(other, Initializer):
            return NotImplemented
        if type(self) is not type(other) or self._kwargs.keys() != other._kwargs.keys():
            return False
        return all(_same_value(v, other._kwargs[k]) for k, v in self._kwargs.items())

    def __hash__(self):  # equal initializers share a class
        return hash(type(self))

    def __call__(self, desc, arr):
        if not isinstance(desc, InitDesc):
            return self._legacy_init(str(desc), arr)
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get('__init__', '')
        if init:  # a Variable's own initializer
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        for suffixes, rule in self._SUFFIX_RULES:
            if desc.endswith(suffixes):
                getattr(self, rule)(desc, arr)
                self._verbose_print(desc, rule[len('_init_'):], arr)
                return
        self._init_default(desc, arr)

    # InitDesc names: MXNet's suffixes, and the aux states of BatchNorm (MXNet sets those by attribute)
    _SUFFIX_RULES = ((('weight_quantize',), '_init_quantized_weight'), (('bias_quantize',), '_init_quantized_bias'),
                     (('weight',), '_init_weight'), (('bias',), '_init_bias'), (('gamma',), '_init_gamma'),
                     (('beta',), '_init_beta'), (('min',), '_init_zero'), (('max',), '_init_one'),
                     (('moving_mean', 'running_mean', 'moving_inv_var', 'moving_avg'), '_init_zero'),
                     (('moving_var', 'running_var'), '_init_one'))

    def _legacy_init(self, name, arr):
        if name.startswith('upsampling'):
            self._init_bilinear(name, arr)
        elif name.startswith('stn_loc') and name.endswith('weight'):
            self._init_zero(name, arr)
        elif name.startswith('stn_loc') and name.endswith('bias'):
            self._init_loc_bias(name, arr)
        elif name.endswith(('bias', 'beta', 'running_mean', 'moving_mean', 'moving_avg', 'moving_inv_var')):
            _fill(arr, 0.0)
        elif name.endswith(('gamma', 'running_var', 'moving_var')):
            _fill(arr, 1.0)
        else:  # 'weight' and, as in Gluon, any other name
            self._init_weight(name, arr)

    def _init_bilinear(self, _, arr):
        _fill(arr, _bilinear(arr.shape))

    def _init_loc_bias(self, name, arr):
        if arr.shape[0] != 6:
            raise InitializerError(f"{name}: a spatial transformer's loc bias has 6 values, got shape {arr.shape}")
        _fill(arr, np.array([1.0, 0, 0, 0, 1.0, 0]))

    def _init_zero(self, _, arr):
        _fill(arr, 0.0)

    def _init_one(self, _, arr):
        _fill(arr, 1.0)

    _init_bias = _init_beta = _init_quantized_bias = _init_zero
    _init_gamma = _init_one

    def _init_quantized_weight(self, _, arr):
        _fill(arr, _random.generator().integers(-127, 127, arr.shape).astype(np.int8))

    def _init_weight(self, name, arr):
        raise NotImplementedError(f"{self.__class__.__name__} must implement _init_weight")

    def _init_default(self, name, _):
        raise InitializerError(
            f'Unknown initialization pattern for {name}. Default initialization is now limited to "weight", "bias", '
            '"gamma" (1.0), and "beta" (0.0). Please use mx.sym.Variable(init=mx.init.*) to set initialization pattern')


def _bilinear(shape):
    """The bilinear upsampling kernel (MXNet's): weight[.., y, x] = (1 - |x/f - c|) * (1 - |y/f - c|)."""
    if len(shape) < 2:
        raise InitializerError(f"Bilinear initializer needs at least 2 dimensions, got shape {shape}")
    f = np.ceil(shape[-1] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    x = 1 - np.abs(np.arange(shape[-1]) / f - c)
    y = 1 - np.abs(np.arange(shape[-2]) / f - c)
    return np.broadcast_to((y[:, None] * x[None, :]).astype(np.float32), shape)


@register
class Load(Initializer):
    """Initialize from saved arrays: a dict name -> array or a .params file ('arg:'/'aux:' prefixes are
    dropped); names not there go to default_init."""

    def __init__(self, param, default_init=None, verbose=False):
        super().__init__()
        if isinstance(param, str):
            from .serialization import load_ndarrays
            param = load_ndarrays(param)
        if not isinstance(param, dict):
            raise InitializerError("Load: param must be a dict of name -> array or the path of a file of named arrays")
        self.param = {(n[4:] if n.startswith(('arg:', 'aux:')) else n): a for n, a in param.items()}
        self.default_init, self.verbose = default_init, verbose

    def __call__(self, name, arr):
        if name in self.param:
            src = self.param[name]
            if tuple(src.shape) != tuple(arr.shape):
                raise InitializerError(f"Parameter {name} cannot be initialized from loading. Shape mismatch, "
                                       f"target {arr.shape} vs loaded {tuple(src.shape)}")
            _fill(arr, src.asnumpy() if hasattr(src, 'asnumpy') else src)
            if self.verbose:
                logging.info('Initialized %s by loading', name)
        else:
            if self.default_init is None:
                raise InitializerError(f"Cannot Initialize {name}. Not found in loaded param and no default "
                                       "Initializer is provided.")
            self.default_init(name, arr)
            if self.verbose:
                logging.info('Initialized %s by default', name)

    _init_weight = __call__


@register
class Mixed(Initializer):
    """The first initializer whose regex pattern matches the name (re.match) initializes it."""

    def __init__(self, patterns, initializers):
        super().__init__()
        if len(patterns) != len(initializers):
            raise InitializerError(f"Mixed: {len(patterns)} patterns but {len(initializers)} initializers")
        self.map = [(re.compile(p), create(i)) for p, i in zip(patterns, initializers)]

    def __call__(self, name, arr):
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise InitializerError(f'Parameter name {name} did not match any pattern. Consider adding a ".*" pattern '
                               'at the end with a default Initializer.')

    _init_weight = __call__


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
        super().__init__(value=value)
        self.value = value

    def dumps(self):
        v = self._kwargs['value']
        if not np.isscalar(v):  # MXNet: arrays are written as nested lists
            self._kwargs['value'] = (v.asnumpy() if hasattr(v, 'asnumpy') else np.asarray(v)).tolist()
        return super().dumps()

    def _init_weight(self, name, arr):
        v = self.value
        v = np.asarray(v.asnumpy() if hasattr(v, 'asnumpy') else v)
        try:
            _fill(arr, np.broadcast_to(v, arr.shape))
        except ValueError:
            raise InitializerError(f"Constant initializer: value of shape {v.shape} does not fit parameter "
                                   f"{name!r} of shape {arr.shape}") from None


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
class Orthogonal(Initializer):
    """Saxe et al. 2013: scale * the orthogonal factor (of the SVD) of a random (out, in) matrix, uniform(-1, 1)
    (rand_type='uniform') or standard normal ('normal') entries."""

    def __init__(self, scale=1.414, rand_type='uniform'):
        super().__init__(scale=scale, rand_type=rand_type)
        if rand_type not in ('uniform', 'normal'):
            raise InitializerError(f"Orthogonal: rand_type must be 'uniform' or 'normal', got {rand_type!r}")
        self.scale, self.rand_type = scale, rand_type

    def _init_weight(self, name, arr):
        nout, nin = arr.shape[0], int(np.prod(arr.shape[1:]))
        rng = _random.generator()
        tmp = rng.uniform(-1.0, 1.0, (nout, nin)) if self.rand_type == 'uniform' else rng.normal(0.0, 1.0, (nout, nin))
        u, _, v = np.linalg.svd(tmp, full_matrices=False)
        res = u if u.shape == tmp.shape else v
        _fill(arr, self.scale * res.reshape(arr.shape))


@register
class Xavier(Initializer):
    """Glorot: U(-s, s) or N(0, s^2) with s = sqrt(magnitude / factor), factor = fan_in, fan_out or their average
    (fans of a conv kernel count its spatial size)."""

    def __init__(self, rnd_type='uniform', factor_type='avg', magnitude=3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        if rnd_type not in ('uniform', 'gaussian'):
            raise InitializerError(f"Xavier: rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ('avg', 'in', 'out'):
            raise InitializerError(f"Xavier: factor_type must be 'avg', 'in' or 'out', got {factor_type!r}")
        self.rnd_type, self.factor_type, self.magnitude = rnd_type, factor_type, float(magnitude)

    def _init_weight(self, name, arr):
        shape = arr.shape
        if len(shape) < 2:
            raise InitializerError(f"Xavier initializer cannot be applied to vector {name!r} of shape {shape}: "
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


@register
class Bilinear(Initializer):
    """The bilinear-interpolation kernel, for Deconvolution layers that upsample."""

    def __init__(self):
        super().__init__()

    def _init_weight(self, name, arr):
        self._init_bilinear(name, arr)


@register
class LSTMBias(Initializer):
    """Zeros, except forget_bias on the forget gate (the 2nd of the 4 gate blocks, MXNet's gate order i, f, c, o)."""

    def __init__(self, forget_bias=1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name, arr):
        h = arr.shape[0] // 4
        v = np.zeros(arr.shape)
        v[h:2 * h] = self.forget_bias
        _fill(arr, v)


_RNN_GATES = {'rnn_relu': ('',), 'rnn_tanh': ('',), 'lstm': ('_i', '_f', '_c', '_o'), 'gru': ('_r', '_z', '_o')}


def fused_rnn_slices(flat, num_hidden, num_layers, mode, bidirectional=False, prefix=''):
    """name -> view of the 1-D array `flat` laid out as MXNet's fused RNN parameters: every layer's and
    direction's i2h then h2h gate weights, then all biases in the same order (FusedRNNCell.unpack_weights)."""
    if mode not in _RNN_GATES:
        raise InitializerError(f"fused RNN mode must be one of {', '.join(_RNN_GATES)}, got {mode!r}")
    gates, dirs, h = _RNN_GATES[mode], ('l', 'r') if bidirectional else ('l',), num_hidden
    b, m = len(dirs), len(gates)
    ni = flat.size // b // h // m - (num_layers - 1) * (h + b * h + 2) - h - 2
    out, p = {}, 0

    def take(name, shape):
        nonlocal p
        n = int(np.prod(shape))
        out[name] = flat[p:p + n].reshape(shape)
        p += n

    for layer in range(num_layers):
        for d in dirs:
            for g in gates:
                take(f'{prefix}{d}{layer}_i2h{g}_weight', (h, ni) if layer == 0 else (h, b * h))
            for g in gates:
                take(f'{prefix}{d}{layer}_h2h{g}_weight', (h, h))
    for layer in range(num_layers):
        for d in dirs:
            for kind in ('i2h', 'h2h'):
                for g in gates:
                    take(f'{prefix}{d}{layer}_{kind}{g}_bias', (h,))
    if ni < 1 or p != flat.size:
        raise InitializerError(f"{flat.size} values are not the parameters of a fused {mode} RNN with "
                               f"num_hidden={h}, num_layers={num_layers}, bidirectional={bidirectional}")
    return out


@register
class FusedRNN(Initializer):
    """Initializes the one flat parameter of a fused RNN gate by gate: `init` (or else the global
    initializer) on each weight and bias; an LSTM's forget-gate biases get forget_bias."""

    def __init__(self, init, num_hidden, num_layers, mode, bidirectional=False, forget_bias=1.0):
        if isinstance(init, str):
            init = create(init)
        super().__init__(init=init.dumps() if init is not None else None, num_hidden=num_hidden,
                         num_layers=num_layers, mode=mode, bidirectional=bidirectional, forget_bias=forget_bias)
        self._init, self._num_hidden, self._num_layers = init, num_hidden, num_layers
        self._mode, self._bidirectional, self._forget_bias = mode, bidirectional, forget_bias

    def _init_weight(self, desc, arr):
        from .ndarray.ndarray import NDArray
        flat = np.zeros(arr.size, np.float32)
        glob = getattr(desc, 'global_init', None) or Uniform()
        for name, view in fused_rnn_slices(flat, self._num_hidden, self._num_layers, self._mode,
                                           self._bidirectional).items():
            sub = NDArray(view)  # a view: filling it fills flat
            if self._mode == 'lstm' and name.endswith('_f_bias'):
                view[...] = self._forget_bias
            else:
                (self._init or glob)(InitDesc(name, global_init=glob), sub)
        _fill(arr, flat.reshape(arr.shape))
