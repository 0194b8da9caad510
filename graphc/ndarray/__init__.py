"""graphc.ndarray (alias graphc.nd): NDArray creation and every registry op as a function (MXNet's mx.nd).

Op functions are generated from the registry, so an op added there appears here. The NDArray class
lives in graphc.ndarray.ndarray, as in MXNet.
"""
import sys as _sys
import types as _types


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

from .. import random  # noqa: F401  (nd.random.uniform, as in MXNet)
from .. import autograd as _ag
from .ndarray import NDArray, arange, array, empty, full, full_like, invoke, ones, waitall, zeros  # noqa: F401
from ..base import GraphcError
from ..registry import OPS as _OPS
from .. import ops as _ops  # noqa: F401  (registers every op)


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
    return [out, mean, var] if a['output_mean_var'] else out


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


# MXNet's friendlier names
add, subtract, multiply, divide = broadcast_add, broadcast_sub, broadcast_mul, broadcast_div  # noqa: F821
maximum, minimum, power, modulo = broadcast_maximum, broadcast_minimum, broadcast_power, broadcast_mod  # noqa: F821
equal, not_equal, greater, lesser = broadcast_equal, broadcast_not_equal, broadcast_greater, broadcast_lesser  # noqa: F821
greater_equal, lesser_equal = broadcast_greater_equal, broadcast_lesser_equal  # noqa: F821
reshape, flatten, swapaxes, cast = Reshape, Flatten, SwapAxis, Cast  # noqa: F821
identity, copy = _copy, _copy  # noqa: F821


def concat(*data, dim=1, **kw):
    return Concat(*data, dim=dim, **kw)  # noqa: F821


def split(data, num_outputs, axis=1, squeeze_axis=False):
    return SliceChannel(data, num_outputs=num_outputs, axis=axis, squeeze_axis=squeeze_axis)  # noqa: F821


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
