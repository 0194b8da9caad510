"""graphc.symbol (alias graphc.sym): symbolic graphs (MXNet's mx.sym).

Every registry op is a function here with MXNet's symbolic calling convention: inputs by position or
name, and an input left out becomes a new variable named `{name}_{input}` (FullyConnected(data,
num_hidden=10, name='fc') makes fc_weight and fc_bias; BatchNorm its moving_mean/moving_var aux
states), with the name from NameManager (`fullyconnected0`) and attributes from AttrScope.
Inside a hybridized block's trace (F = graphc.sym) the same names run graphc.nd's functions, which
see the Symbol inputs and add nodes to the trace.

The Symbol class lives in graphc.symbol.symbol, as in MXNet.
"""
import sys as _sys

_sys.modules['graphc.sym'] = _sys.modules[__name__]  # `import graphc.sym` and `from graphc import sym` work too

from .. import ndarray as _nd
from ..base import GraphcError as _GraphcError
from .symbol import Group, Symbol, Variable, var, current_trace as _current_trace, sym_invoke as _sym_invoke  # noqa: F401
from ..registry import OPS as _OPS


def _make(op, nd_fn, alias=None):
    """sym's function for op; an alias (flip for reverse) names its nodes after itself (flip0), as MXNet's."""
    def f(*args, **kwargs):
        if _current_trace() is not None:  # tracing a hybridized block: nd's function adds the node
            return nd_fn(*args, **kwargs)
        from ..attribute import AttrScope
        from ..name import NameManager
        name, attr = kwargs.pop('name', None), dict(kwargs.pop('attr', None) or {})
        for k in ('lr_mult', 'wd_mult'):  # MXNet: on an op, they apply to the variables it makes
            if k in kwargs and k not in op.attrs:
                attr[f"__{k}__"] = str(kwargs.pop(k))
        if kwargs.pop('out', None) is not None:
            raise _GraphcError(f"{op.name}: out= is for NDArrays; a symbol's result is a new Symbol")
        inputs, attrs = op.split_call(args, kwargs)
        if op.variadic and 'num_args' in op.attrs:
            attrs.setdefault('num_args', len(inputs))
        a = op.canon(attrs)
        name = NameManager.current.get(name, (alias or op.name).lower())
        if not op.variadic:
            names = op.input_names(a)
            mults = {k: attr[f"__{k}__"] for k in ('lr_mult', 'wd_mult') if f"__{k}__" in attr}
            # MXNet: the op's own __attributes__ (attr=) go on the variables it makes, too
            own = {k: v for k, v in attr.items() if k.startswith('__') and k not in ('__lr_mult__', '__wd_mult__')}
            inputs = [var(f"{name}_{n}", attr=own, **mults) if x is None else x for n, x in zip(names, inputs)]
            if op.name == 'LeakyReLU' and a.get('act_type') == 'prelu' and len(inputs) > 1 and isinstance(inputs[1], Symbol) and inputs[1]._one()[0].is_var:  # noqa: E501  MXNet's FSetInputVarAttrOnCompose: gamma starts at 0.25
                inputs[1]._one()[0].extra.setdefault('__init__', '["constant", {"value": 0.25}]')
        inputs = [_as_symbol(op, x) for x in inputs]
        res = _sym_invoke(op, inputs, a, name)
        outs = res if isinstance(res, list) else [res]
        extra = AttrScope.current.get(attr)
        node = outs[0]._entries[0][0]
        node.extra.update({k: str(v) for k, v in extra.items()})
        return Symbol([s._entries[0] for s in outs[:op.n_visible(a)]])
    f.__name__ = f.__qualname__ = alias or op.name
    f.__doc__ = op.doc or f"The {op.name} operator on Symbols (see graphc's op table)."
    return f


def _as_symbol(op, x):
    if isinstance(x, Symbol):
        return x
    if isinstance(x, _nd.NDArray):
        return x  # a constant of the graph
    raise _GraphcError(f"{op.name}: inputs must be Symbols, got {type(x).__name__}")


_mod = _sys.modules[__name__]
for _name, _op in _OPS.items():
    setattr(_mod, _name, _make(_op, getattr(_nd, _name)))


def _dual(sym_fn, nd_fn):
    """A name that is an nd helper inside a trace and the symbolic op outside one."""
    def f(*args, **kwargs):
        return (nd_fn if _current_trace() is not None else sym_fn)(*args, **kwargs)
    f.__name__ = f.__qualname__ = getattr(nd_fn, '__name__', 'f')
    f.__doc__ = nd_fn.__doc__
    return f


for _alias, _target in (('add', 'broadcast_add'), ('subtract', 'broadcast_sub'), ('multiply', 'broadcast_mul'),
                        ('divide', 'broadcast_div'), ('maximum', 'broadcast_maximum'),
                        ('minimum', 'broadcast_minimum'), ('power', 'broadcast_power'), ('modulo', 'broadcast_mod'),
                        ('equal', 'broadcast_equal'), ('not_equal', 'broadcast_not_equal'),
                        ('greater', 'broadcast_greater'), ('lesser', 'broadcast_lesser'),
                        ('greater_equal', 'broadcast_greater_equal'), ('lesser_equal', 'broadcast_lesser_equal'),
                        ('reshape', 'Reshape'), ('flatten', 'Flatten'), ('swapaxes', 'SwapAxis'), ('cast', 'Cast'),
                        ('identity', '_copy'), ('copy', '_copy')):
    _nd_fn = getattr(_nd, _alias)
    _sym_fn = _nd._ufunc(getattr(_mod, _target), *_nd_fn.ufunc, _mod) if hasattr(_nd_fn, 'ufunc') else getattr(_mod, _target)
    setattr(_mod, _alias, _dual(_sym_fn, _nd_fn))


# MXNet's other names for registry ops (flip, stop_gradient, random_uniform, linalg_gemm2, ...), as nd has them
for _alias in ('flip', 'stop_gradient', 'broadcast_axis', 'pad', 'uniform', 'normal', 'random_randint', 'shuffle',
               'sample_multinomial', 'ElementWiseSum', 'broadcast_plus', 'broadcast_minus', 'BatchNorm_v1') + tuple(k for k in dir(_nd) if k.startswith(('random_', 'sample_', 'linalg_'))):
    _fn = getattr(_nd, _alias, None)
    if _fn is not None and not hasattr(_mod, _alias) and getattr(_fn, '__name__', None) in _OPS:
        setattr(_mod, _alias, _make(_OPS[_fn.__name__], _fn, _alias))


def _sym_concat(*data, dim=1, **kw):
    return Concat(*data, dim=dim, **kw)  # noqa: F821


def _sym_split(data, num_outputs, axis=1, squeeze_axis=False, name=None, **kw):
    from ..name import NameManager
    name = NameManager.current.get(name, 'split')  # MXNet's alias names its node split0, not slicechannel0
    return SliceChannel(data, num_outputs=num_outputs, axis=axis, squeeze_axis=squeeze_axis, name=name, **kw)  # noqa: F821


def histogram(a, bins=10, range=None):  # noqa: A002
    """(counts, bin edges) of a Symbol's values (MXNet's sym.histogram)."""
    return _nd.histogram(a, bins, range, _mod)


def hypot(lhs, rhs):
    """sqrt(lhs^2 + rhs^2) of Symbols, either side may be a number (MXNet's sym.hypot)."""
    return _nd.hypot(lhs, rhs, _mod)


def _sym_split_v2(ary, indices_or_sections, axis=0, squeeze_axis=False, name=None):
    """MXNet's split_v2 (NumPy's split): an int gives that many equal parts, a tuple the split points; one
    Symbol with an output per part."""
    if isinstance(indices_or_sections, int):
        return SliceChannel(ary, num_outputs=indices_or_sections, axis=axis, squeeze_axis=squeeze_axis,  # noqa: F821
                            name=name)
    bounds = [0] + [int(i) for i in indices_or_sections] + [None]
    parts = [slice_axis(ary, axis=axis, begin=b, end=e) for b, e in zip(bounds, bounds[1:])]  # noqa: F821
    if squeeze_axis:
        parts = [squeeze(p, axis=axis) for p in parts]  # noqa: F821
    return Group(parts)


split_v2 = _dual(_sym_split_v2, _nd.split_v2)
pow = power  # noqa: A001,F821  (MXNet's sym.pow: Symbol or number on either side)
concat = _dual(_sym_concat, _nd.concat)
split = _dual(_sym_split, _nd.split)
BatchNorm = _dual(BatchNorm, _nd.BatchNorm)  # noqa: F821  (in a trace: nd's, which notes the moving-stat updates)


# mx.sym._internal: the ops with a leading underscore (MXNet code reaches for them: _internal._plus_scalar)
import types as _types  # noqa: E402
_internal = _types.ModuleType(__name__ + '._internal', "MXNet's sym._internal: graphc's ops named with a leading '_'.")
for _name in _OPS:
    if _name.startswith('_') and hasattr(_mod, _name):
        setattr(_internal, _name, getattr(_mod, _name))
_sys.modules[_internal.__name__] = _internal


def zeros(shape, dtype=None, name=None, **kw):
    """A Symbol of zeros (MXNet's sym.zeros)."""
    return _zeros(shape=shape, dtype=dtype or 'float32', name=name)  # noqa: F821


def ones(shape, dtype=None, name=None, **kw):
    """A Symbol of ones (MXNet's sym.ones)."""
    if '_ones' in _OPS:
        return _ones(shape=shape, dtype=dtype or 'float32', name=name)  # noqa: F821
    return _plus_scalar(zeros(shape, dtype), scalar=1.0, name=name)  # noqa: F821


def load(fname):
    """A Symbol from an MXNet (or graphc) -symbol.json file."""
    from ..mxjson import load_json_file
    return load_json_file(fname)


def load_json(json_str):
    """A Symbol from MXNet's symbol JSON text."""
    from ..mxjson import json_to_symbol
    return json_to_symbol(json_str, '<string>')


fromjson = load_json


def save(fname, symbol):
    symbol.save(fname)


from .symbol import _install_fluent_methods  # noqa: E402
_install_fluent_methods()

from . import sparse  # noqa: E402,F401  (mx.sym.sparse.dot, as in MXNet)
_sys.modules['graphc.sym.sparse'] = sparse
from . import contrib  # noqa: E402,F401  (mx.sym.contrib: contrib ops, foreach as a graph op)
from ..image.ops import ops as _image_ops  # noqa: E402
image = _image_ops(_sys.modules[__name__])  # mx.sym.image: MXNet's image operators
from . import random  # noqa: E402,F401  (mx.sym.random: the samplers on Symbols)
_sys.modules['graphc.sym.random'] = random
