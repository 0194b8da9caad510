"""graphc.ndarray (alias graphc.nd): NDArray creation and every registry op as a function (MXNet's mx.nd).

Op functions are generated from the registry, so an op added there appears here. The NDArray class
lives in graphc.ndarray.ndarray, as in MXNet.
"""
import builtins as _builtins
import numbers as _numbers
import operator as _operator
import sys as _sys
import types as _types
from importlib.machinery import ModuleSpec as _ModuleSpec


class _Package(_types.ModuleType):
    """The package must keep its `ndarray` submodule: code written for MXNet imports `mxnet.ndarray.ndarray`,
    which an alias package may resolve to this package itself, and the import system then binds that module
    under the name `ndarray` here."""
    def __setattr__(self, name, value):
        if name == 'ndarray' and value is self:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
_sys.modules['graphc.nd'] = _sys.modules[__name__]  # `import graphc.nd` and `from graphc import nd` work too

from .. import autograd as _ag
from .ndarray import NDArray, arange, array, empty, full, full_like, invoke, ones, waitall, zeros  # noqa: F401
from .ndarray import _STORAGE_TYPE_STR_TO_ID, cast_storage  # noqa: F401  (mxnet.ndarray.ndarray names)
py_slice = _builtins.slice  # mxnet.ndarray.ndarray.py_slice: the builtin, which `slice` (the op) shadows here
from .ndarray import concatenate, eye, from_numpy, linspace, moveaxis  # noqa: F401
from ..base import GraphcError
from ..registry import OPS as _OPS
from .. import ops as _ops  # noqa: F401  (registers every op)


from . import random  # noqa: E402,F401  (nd.random.uniform, as in MXNet)


def _make(op):
    fixed = None if callable(op.inputs) or op.variadic else len(op.inputs)

    def f(*args, **attrs):
        name, out = attrs.pop('name', None), attrs.pop('out', None)
        if fixed is not None and len(args) <= fixed and attrs.keys() <= op.attrs.keys():
            inputs = args  # the eager hot path: inputs by position, attributes by name
        else:
            inputs, attrs = op.split_call(args, attrs)
            names = op.input_names(op.canon_cached(attrs))
            missing = [n for n, x in zip(names, inputs) if x is None]
            if missing:
                raise GraphcError(f"{op.name}: takes {len(names)} inputs ({', '.join(names)}); "
                                  f"missing {', '.join(map(repr, missing))}")
            inputs = tuple(x for x in inputs if x is not None)
        if op.variadic and 'num_args' in op.attrs:
            attrs.setdefault('num_args', len(inputs))
        a = op.canon_cached(attrs)
        res = invoke(op, inputs, a, name)
        if isinstance(res, list):
            nv = op.n_visible(a)
            res = res[0] if nv == 1 else res[:nv]
        return res if out is None else _write_out(op, res, out)
    f.__name__ = f.__qualname__ = op.name
    f.__doc__ = op.doc or f"The {op.name} operator (see graphc's op table)."
    return f


def _write_out(op, res, out):
    """out=: MXNet writes the result into the given array(s) and returns them."""
    pairs = list(zip(res, out)) if isinstance(res, list) else [(res, out)]
    if isinstance(res, list) != isinstance(out, (list, tuple)) or (isinstance(res, list) and len(res) != len(out)):
        raise GraphcError(f"{op.name}: out= must match the outputs ({len(res) if isinstance(res, list) else 1})")
    for r, o in pairs:
        if not isinstance(o, NDArray):
            raise GraphcError(f"{op.name}: out= takes an NDArray, got {type(o).__name__}")
        o[:] = r
    return out


_mod = _sys.modules[__name__]
for _name, _op in _OPS.items():
    if not hasattr(_mod, _name):
        setattr(_mod, _name, _make(_op))


def BatchNorm(data, gamma, beta, moving_mean, moving_var, **attrs):
    """MXNet's BatchNorm; in training mode it also updates moving_mean/moving_var in place."""
    op = _OPS['BatchNorm']
    a = op.canon({k: v for k, v in attrs.items() if k != 'name'})
    out, mean, var = invoke(op, (data, gamma, beta, moving_mean, moving_var), a, attrs.get('name'))
    update_moving_stats(a, moving_mean, moving_var, out, mean, var)
    if not a['output_mean_var']:
        return out
    # MXNet 1.x (CPU) gives the inverse standard deviation, 1/sqrt(var + eps), as the third output
    return [out, mean, rsqrt(var + a['eps'])] if isinstance(out, NDArray) else [out, mean, var]  # noqa: F821


def update_moving_stats(a, moving_mean, moving_var, out, mean, var):
    """BatchNorm's moving averages after a training-mode call (while tracing: noted for the graph's runner)."""
    if a['use_global_stats']:
        return
    if not isinstance(out, NDArray):
        from ..symbol.symbol import current_trace
        ctx = current_trace()
        if ctx is not None and ctx.training:
            ctx.aux_updates += [(moving_mean, mean, a['momentum']), (moving_var, var, a['momentum'])]
    elif _ag.is_training():
        m = a['momentum']
        moving_mean._data[...] = moving_mean._data * m + mean._data * (1 - m)
        moving_var._data[...] = moving_var._data * m + var._data * (1 - m)


def _ufunc(bop, pyop, scalar_op=None, mod=None):
    """MXNet's nd.add, nd.maximum, ... (its _ufunc_helper): two numbers give a number, an array and a number the
    scalar op (either side), two arrays the broadcast op. mod: the namespace of the scalar op (sym's for sym)."""
    def f(lhs, rhs):
        ln, rn = isinstance(lhs, _numbers.Number), isinstance(rhs, _numbers.Number)
        if ln and rn:
            return pyop(lhs, rhs)
        if ln or rn:
            if scalar_op is None:
                return pyop(lhs, rhs)  # the NDArray's own (reflected) operator
            return getattr(mod or _mod, scalar_op)(rhs if ln else lhs, scalar=lhs if ln else rhs)  # max/min commute
        return bop(lhs, rhs)
    f.__name__ = f.__qualname__ = bop.__name__
    f.__doc__ = bop.__doc__
    f.ufunc = (pyop, scalar_op)
    return f


# MXNet's friendlier names
add, subtract, multiply, divide = (_ufunc(b, p) for b, p in ((broadcast_add, _operator.add),  # noqa: F821
                                   (broadcast_sub, _operator.sub), (broadcast_mul, _operator.mul),  # noqa: F821
                                   (broadcast_div, _operator.truediv)))  # noqa: F821
power, modulo = _ufunc(broadcast_power, _operator.pow), _ufunc(broadcast_mod, _operator.mod)  # noqa: F821
maximum = _ufunc(broadcast_maximum, _builtins.max, '_maximum_scalar')  # noqa: F821
minimum = _ufunc(broadcast_minimum, _builtins.min, '_minimum_scalar')  # noqa: F821
equal, not_equal, greater, lesser = (_ufunc(b, p) for b, p in ((broadcast_equal, _operator.eq),  # noqa: F821
                                     (broadcast_not_equal, _operator.ne), (broadcast_greater, _operator.gt),  # noqa: F821
                                     (broadcast_lesser, _operator.lt)))  # noqa: F821
greater_equal = _ufunc(broadcast_greater_equal, _operator.ge)  # noqa: F821
lesser_equal = _ufunc(broadcast_lesser_equal, _operator.le)  # noqa: F821
reshape, flatten, swapaxes, cast = Reshape, Flatten, SwapAxis, Cast  # noqa: F821


def histogram(a, bins=10, range=None, mod=None):  # noqa: A002  (MXNet's names)
    """(counts, bin edges) of a's values: bins equal bins over range, or bins an array of edges (MXNet's)."""
    m = mod or _mod
    if isinstance(bins, _numbers.Number):
        if range is None:
            raise GraphcError("histogram: an int number of bins needs range=(low, high)")
        return m._histogram(a, bin_cnt=int(bins), range=tuple(range))
    return m._histogram(a, bins)


def hypot(lhs, rhs, mod=None):
    """sqrt(lhs^2 + rhs^2), broadcasting; either side may be a number (MXNet's hypot). mod: the op namespace."""
    m = mod or _mod
    ln, rn = isinstance(lhs, _numbers.Number), isinstance(rhs, _numbers.Number)
    if ln and rn:
        import math
        return math.hypot(lhs, rhs)
    if ln or rn:
        x, c = (rhs, lhs) if ln else (lhs, rhs)
        return m.sqrt(m.square(x) + float(c) ** 2)
    return m.broadcast_hypot(lhs, rhs)
identity, copy = _copy, _copy  # noqa: F821


def concat(*data, dim=1, **kw):
    return Concat(*data, dim=dim, **kw)  # noqa: F821


def split(data, num_outputs, axis=1, squeeze_axis=False):
    return SliceChannel(data, num_outputs=num_outputs, axis=axis, squeeze_axis=squeeze_axis)  # noqa: F821


def split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False):
    """MXNet's split_v2 (NumPy's split): an int gives that many equal parts, a tuple the split points."""
    n = ary.shape[axis]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise GraphcError(f"split_v2: {indices_or_sections} sections do not divide axis {axis} of size {n}")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + [int(i) for i in indices_or_sections] + [n]
    parts = [slice_axis(ary, axis=axis, begin=b, end=_builtins.max(b, e))  # noqa: F821
             for b, e in zip(bounds, bounds[1:])]
    if squeeze_axis:
        parts = [squeeze(p, axis=axis) for p in parts]  # noqa: F821
    return parts[0] if len(parts) == 1 else parts


def softmax_cross_entropy_loss(data, label):
    return softmax_cross_entropy(data, label)  # noqa: F821


def save(fname, data):
    """Save a list or a dict of NDArrays in MXNet's .params format (readable by mx.nd.load)."""
    from ..serialization import save_ndarrays
    save_ndarrays(fname, data)


def load(fname):
    """Load a .params file: a dict of NDArrays, or a list when the file has no names."""
    from ..serialization import load_ndarrays
    return load_ndarrays(fname)


def load_frombuffer(buf):
    """nd.load from the bytes of a .params file (a truncated or malformed buffer raises MXNetError)."""
    from ..serialization import load_frombuffer as _lfb
    return _lfb(buf)


# MXNet's names for the samplers (random_uniform, uniform, sample_uniform, ...)
for _k in ('uniform', 'normal', 'gamma', 'exponential', 'poisson', 'negative_binomial', 'generalized_negative_binomial'):
    setattr(_mod, 'random_' + _k, getattr(_mod, '_random_' + _k))
    setattr(_mod, 'sample_' + _k, getattr(_mod, '_sample_' + _k))
uniform, normal, random_randint = _random_uniform, _random_normal, _random_randint  # noqa: F821
sample_multinomial, shuffle = _sample_multinomial, _shuffle  # noqa: F821

flip, stop_gradient, broadcast_axis, pad = reverse, BlockGrad, broadcast_axes, Pad  # noqa: F821  (MXNet's aliases)
ElementWiseSum, broadcast_plus, broadcast_minus, true_divide = add_n, broadcast_add, broadcast_sub, divide  # noqa: F821
BatchNorm_v1 = BatchNorm  # MXNet's legacy BatchNorm: the same math on axis 1
sum_axis, max_axis, min_axis = _mod.sum, _mod.max, _mod.min  # MXNet's legacy names of the reductions
crop, choose_element_0index = _mod.slice, pick  # noqa: F821  (deprecated aliases of slice and pick)


def _logical(bop):
    """nd.logical_and/or/xor (MXNet's ufunc helpers): a number operand is broadcast like an array."""
    def f(lhs, rhs):
        ln, rn = isinstance(lhs, _numbers.Number), isinstance(rhs, _numbers.Number)
        if ln and rn:
            return float(bop.pyop(bool(lhs), bool(rhs)))
        if ln or rn:
            arr = rhs if ln else lhs
            num = full(arr.shape, lhs if ln else rhs, ctx=arr.context, dtype=arr.dtype)
            return bop(num, arr) if ln else bop(arr, num)
        return bop(lhs, rhs)
    f.__name__ = f.__qualname__ = bop.__name__.replace('broadcast_', '')
    f.__doc__ = bop.__doc__
    return f


for _k, _p in (('and', _operator.and_), ('or', _operator.or_), ('xor', _operator.xor)):
    _b = getattr(_mod, 'broadcast_logical_' + _k)
    _b.pyop = _p
    setattr(_mod, 'logical_' + _k, _logical(_b))


def onehot_encode(indices, out):
    """MXNet's deprecated onehot_encode: out[i] = one-hot row of indices[i] (depth out.shape[1]); returns out."""
    if not isinstance(out, NDArray) or out.ndim != 2 or out.shape[0] != indices.size:
        raise GraphcError(f"onehot_encode: out must be a 2-d NDArray with {indices.size} rows, got "
                          f"{getattr(out, 'shape', type(out).__name__)}")
    out[:] = one_hot(indices.reshape(-1), depth=out.shape[1], dtype=out.dtype)  # noqa: F821
    return out
for _name in list(_OPS):
    if _name.startswith('_linalg_'):
        setattr(_mod, 'linalg_' + _name[len('_linalg_'):], getattr(_mod, _name))  # nd.linalg_gemm2, as MXNet


def reset_arrays(*data, num_arrays=None):
    """Set every given array to zero in place (MXNet's reset_arrays)."""
    for d in data:
        d[:] = 0


# mx.nd._internal: the ops with a leading underscore, where MXNet code reaches for them (_internal._plus_scalar)
_internal = _types.ModuleType(__name__ + '._internal', "MXNet's nd._internal: graphc's ops named with a leading '_'.")
for _name in _OPS:
    if _name.startswith('_'):
        setattr(_internal, _name, getattr(_mod, _name))
_internal._crop_assign, _internal._crop_assign_scalar = _slice_assign, _slice_assign_scalar  # noqa: F821  (old names)
for _k, _v in {'_plus': 'elemwise_add', '_add': 'elemwise_add', '_minus': 'elemwise_sub', '_sub': 'elemwise_sub',
               '_mul': 'elemwise_mul', '_div': 'elemwise_div', '_maximum': 'broadcast_maximum',
               '_minimum': 'broadcast_minimum', '_power': 'broadcast_power', '_hypot': 'broadcast_hypot',
               '_mod': 'broadcast_mod', '_equal': 'broadcast_equal', '_not_equal': 'broadcast_not_equal',
               '_greater': 'broadcast_greater', '_lesser': 'broadcast_lesser'}.items():
    setattr(_internal, _k, getattr(_mod, _v))  # MXNet's internal names of the binary ops
_internal.__spec__ = _ModuleSpec(_internal.__name__, None)  # importable: `from mxnet.ndarray import _internal`
_sys.modules[_internal.__name__] = _sys.modules['graphc.nd._internal'] = _internal
from . import linalg, contrib, sparse  # noqa: E402,F401
from . import update as _update  # noqa: E402
for _name in _update.NAMES:  # nd.sgd_update, nd.adam_update, ... (MXNet's optimizer update operators)
    setattr(_mod, _name, getattr(_update, _name))
for _sub in ('ndarray', 'random', 'linalg', 'contrib', 'sparse'):  # `import graphc.nd.random` is the same module
    _sys.modules['graphc.nd.' + _sub] = _sys.modules['graphc.ndarray.' + _sub]
from .ndarray import install_fluent_methods as _install  # noqa: E402
_install(_mod)


class CachedOp:
    """MXNet's nd.CachedOp(sym): calls sym with its inputs (sym.list_inputs() order, parameters included) given
    as NDArrays; recorded by autograd like any op. flags (static_alloc, ...) are accepted for compatibility."""

    def __init__(self, sym, flags=()):
        from ..gluon.symbol_block import SymbolBlock
        from ..symbol import var
        self._names = sym.list_inputs()
        self._block = SymbolBlock(sym, [var(n) for n in self._names])

    def __call__(self, *args, out=None, **kwargs):
        if kwargs or len(args) != len(self._names):
            raise GraphcError(f"CachedOp: takes its {len(self._names)} inputs ({', '.join(self._names)}) by position, "
                              f"got {len(args)}" + (f" and keywords {', '.join(kwargs)}" if kwargs else ''))
        res = self._block(*args)
        if out is None:
            return res
        for r, o in zip(res if isinstance(res, (list, tuple)) else [res], out if isinstance(out, (list, tuple)) else [out]):
            o[:] = r
        return out


class _DLPack:
    """A DLPack capsule (to_dlpack_for_read's) in the protocol NumPy's from_dlpack reads."""
    def __init__(self, capsule):
        self._c = capsule

    def __dlpack__(self, **kw):
        return self._c

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU: graphc's capsules hold host memory


def from_dlpack(dlpack):
    """An NDArray sharing the memory of a DLPack capsule, or of an object with __dlpack__ (a NumPy array...)."""
    import numpy as np
    return NDArray(np.from_dlpack(dlpack if hasattr(dlpack, '__dlpack__') else _DLPack(dlpack)))


def to_dlpack_for_read(data):
    return data.to_dlpack_for_read()


def to_dlpack_for_write(data):
    return data.to_dlpack_for_write()


# ---------------------------------------------------------------- MXNet's deprecated softmax names, AMP casts, checks
Softmax = SoftmaxOutput  # noqa: F821  (MXNet's deprecated alias)


def SoftmaxActivation(data, mode='instance', name=None):
    """MXNet's deprecated SoftmaxActivation: softmax over each instance's flattened values (mode='instance'), or
    over axis 1 at every position (mode='channel')."""
    if mode == 'channel':
        return softmax(data, axis=1)  # noqa: F821
    if mode != 'instance':
        raise GraphcError(f"SoftmaxActivation: mode must be 'instance' or 'channel', got {mode!r}")
    return softmax(data.reshape((data.shape[0], -1)), axis=-1).reshape(data.shape)  # noqa: F821


def multi_sum_sq(*arrays, num_arrays=None):
    """The sum of squares of each array, as one float32 array of num_arrays values (MXNet's multi_sum_sq)."""
    import numpy as np
    return array([float(np.square(a.asnumpy().astype(np.float64)).sum()) for a in arrays[:num_arrays]])


from ..image.ops import ops as _image_ops  # noqa: E402
image = _image_ops(_sys.modules[__name__])  # mx.nd.image: MXNet's image operators
