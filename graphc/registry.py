"""The op registry: every operator declared once, read by every stage.

An Op holds its MXNet name, attribute schema (with MXNet's string form both ways),
shape/dtype inference, a NumPy reference kernel, a gradient written in registry ops,
its fusion kind and whether its output may overwrite its first input.
"""
import re
from typing import Any, Callable, Dict, NoReturn, Optional, Sequence, Tuple, Union

import numpy as np

from .base import GraphcError, GraphcShapeError, as_dtype, fmt_shape

KINDS = ('elemwise', 'broadcast', 'injective', 'reduce', 'opaque')
OPS: Dict[str, 'Op'] = {}


# ---------------------------------------------------------------- attributes
_NUM = r'-?\d+'


def cut(v, n: int = 200) -> str:
    """repr(v) for an error message, cut to about n characters with the full length said."""
    r = repr(v)
    return r if len(r) <= n else f"{r[:n]}... ({len(r)} characters)"


def _parse_bool(s):
    t = s.strip().lower()
    if t in ('true', '1'):
        return True
    if t in ('false', '0'):
        return False
    raise ValueError(f"not a bool: {cut(s)}")


def parse_int(s: str) -> int:
    t = s.strip()
    if not re.fullmatch(_NUM, t):
        raise ValueError(f"not an int: {cut(s)}")
    return int(t)


def _parse_float(s):
    t = s.strip()
    if not re.fullmatch(r'[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|nan)', t, re.I):
        raise ValueError(f"not a float: {cut(s)}")
    return float(t)


def _parse_floats(s: str) -> tuple:
    """MXNet's Tuple<double>: "(-2.5, 2.5)"."""
    t = s.strip()
    if len(t) < 2 or t[0] + t[-1] not in ('()', '[]'):
        raise ValueError(f"not a tuple: {cut(s)}")
    body = t[1:-1].strip().rstrip(',')
    return tuple(_parse_float(p) for p in body.split(',')) if body else ()


def parse_tuple(s: str) -> tuple:
    """Strict parser for MXNet's "(5, 5)", "[5,5]", "5", "()" and "(None, 1)"."""
    t = s.strip()
    if re.fullmatch(_NUM, t):
        return (int(t),)
    if len(t) < 2 or t[0] + t[-1] not in ('()', '[]'):
        raise ValueError(f"not a tuple: {cut(s)}")
    body = t[1:-1].strip().rstrip(',')
    if not body:
        return ()
    items = [p.strip() for p in body.split(',')]
    if len(items) > 32:
        raise ValueError(f"tuple too long: {cut(s)}")
    return tuple(None if p == 'None' else parse_int(p) for p in items)


class Attr:
    """One attribute: type in ('int','float','bool','str','shape','axis','dtype','floats'), a default, and choices."""
    REQUIRED = object()

    def __init__(self, type: str, default=REQUIRED, choices: Optional[Sequence] = None, none_ok: bool = False):
        self.type, self.default, self.choices = type, default, choices
        self.none_ok = none_ok or default is None  # None is a value (sort's axis=None: the flattened array)

    def parse(self, s: Any) -> Any:
        """Python value from MXNet's string form (or a value already parsed)."""
        if not isinstance(s, str) or self.type == 'str':
            return self.check(s)
        if s.strip() == 'None' and self.none_ok:
            return None
        t = self.type
        v = {'int': parse_int, 'float': _parse_float, 'bool': _parse_bool, 'dtype': str,
             'shape': parse_tuple, 'floats': _parse_floats}.get(t)
        if t == 'axis':
            v = parse_tuple(s)
            v = v[0] if len(v) == 1 and not s.strip().startswith(('(', '[')) else v
            return self.check(v)
        return self.check(v(s))

    def check(self, v: Any) -> Any:
        t = self.type
        if v is None and self.none_ok:
            return None
        if t == 'int':
            if isinstance(v, (bool, float)) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"expected an int, got {cut(v)}")
            return int(v)
        if t == 'float':
            if not isinstance(v, (int, float, np.number)) or isinstance(v, bool):
                raise ValueError(f"expected a number, got {cut(v)}")
            return float(v)
        if t == 'bool':
            if not isinstance(v, (bool, np.bool_, int)):
                raise ValueError(f"expected a bool, got {cut(v)}")
            return bool(v)
        if t == 'shape':
            if isinstance(v, (int, np.integer)):
                return (int(v),)
            if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in 'iu':  # shape=np.array([3, 4])
                v = v.tolist()
            if not isinstance(v, (tuple, list)):
                raise ValueError(f"expected a tuple of ints, got {cut(v)}")
            return tuple(None if d is None else int(d) for d in v)
        if t == 'floats':
            if not isinstance(v, (tuple, list)) or any(isinstance(x, bool) or not isinstance(x, (int, float, np.number))
                                                       for x in v):
                raise ValueError(f"expected a tuple of numbers, got {cut(v)}")
            return tuple(float(x) for x in v)
        if t == 'axis':
            if isinstance(v, (tuple, list)):
                return tuple(int(a) for a in v)
            return int(v)
        if t == 'dtype':
            return str(as_dtype(v))
        if t == 'str':
            if isinstance(v, (type, np.dtype)) and self.choices:  # dtype=np.float64 for a dtype name choice
                v = np.dtype(v).name
            v = str(v)
            if self.choices and v not in self.choices:
                raise ValueError(f"expected one of {self.choices}, got {cut(v)}")
            return v
        raise AssertionError(t)

    def format(self, v: Any) -> str:
        """MXNet's string form: str() of the Python value, as MXNet's front end writes it."""
        if isinstance(v, tuple):
            return '(' + ', '.join(map(str, v)) + (',)' if len(v) == 1 else ')')
        return str(v)


# ---------------------------------------------------------------- ops
class Op:
    def __init__(self, name: str, ref: Callable, infer: Callable, grad: Optional[Callable] = None, kind: str = 'opaque',
                 attrs: Optional[Dict[str, Attr]] = None, inputs=('data',),
                 num_outputs=1, inplace=False, mode_dependent=False, differentiable=True,
                 nograd_inputs=(), aux_inputs=(), num_visible=None, hidden_outputs=0, doc='', lower=None,
                 mixed_dtypes=False):
        assert kind in KINDS, kind
        self.name, self.ref, self._infer, self.grad, self.kind = name, ref, infer, grad, kind
        self.attrs = attrs or {}
        self.inputs = inputs              # names; a str '*' name means variadic (Concat, stack)
        self.num_outputs = num_outputs    # int, or callable(attrs) -> int
        self.num_visible = num_visible    # outputs the user sees (BatchNorm: 1 of 3); None: all
        self.hidden_outputs = hidden_outputs  # trailing outputs MXNet does not have (RNN's reserve): not exported
        self.inplace = inplace            # output 0 may overwrite input 0
        self.mode_dependent = mode_dependent  # reads attrs['_train'] (Dropout, BatchNorm)
        self.differentiable = differentiable and grad is not None
        self.nograd_inputs = set(nograd_inputs)  # indices, e.g. labels and indices
        self.aux_inputs = tuple(aux_inputs)       # indices of auxiliary states (BatchNorm running stats)
        self.mixed_dtypes = mixed_dtypes          # its inputs may differ in dtype (amp_multicast)
        self.doc = doc
        self.lower = lower  # lower(P, attrs, *xs): one element in scalar primitives (ops/scalar.py), or None
        self.defaults = {k: a.default for k, a in self.attrs.items() if a.default is not Attr.REQUIRED}
        self.required = [k for k, a in self.attrs.items() if a.default is Attr.REQUIRED]
        self._canon_cache = {}  # callers must not mutate the dicts it returns
        self.positional = None  # attribute order for positional values when MXNet's differs (ops/signatures.py)

    def __repr__(self) -> str:
        return f"Op({self.name})"

    def n_out(self, attrs: dict) -> int:
        return self.num_outputs(attrs) if callable(self.num_outputs) else self.num_outputs

    def n_visible(self, attrs: dict) -> int:
        v = self.num_visible
        return self.n_out(attrs) if v is None else v(attrs) if callable(v) else v

    def input_names(self, attrs: dict) -> Sequence[str]:
        return self.inputs(attrs) if callable(self.inputs) else self.inputs

    @property
    def variadic(self) -> bool:
        return self.inputs == '*'

    def canon(self, kwargs: dict) -> dict:
        """Validated attrs with defaults filled in; errors name the op and the attribute."""
        out = dict(self.defaults)
        for k, v in kwargs.items():
            a = self.attrs.get(k)
            if a is None:
                if k.startswith('_'):   # hidden attributes (__layout__, _train) are kept, not checked
                    out[k] = v
                    continue
                if not self.attrs:  # MXNet: an op without a parameter struct never parses its kwargs
                    continue
                raise GraphcError(f"{self.name}: unknown attribute {cut(k)}; attributes: {', '.join(self.attrs) or 'none'}")
            try:
                out[k] = a.parse(v)
            except (ValueError, TypeError) as e:
                raise GraphcError(f"{self.name}: bad value for attribute {cut(k)}: {e}") from None
        for k in self.required:
            if k not in kwargs:
                raise GraphcError(f"{self.name}: missing required attribute {k!r}")
        return out

    def split_call(self, args: Sequence, kwargs: dict) -> Tuple[list, dict]:
        """MXNet's calling convention -> (inputs, attrs).

        Inputs come by position or by name (FullyConnected(data=x, weight=w, num_hidden=4)); positional
        values past the inputs are attributes in schema order (clip(x, -2, 2)). A missing input is None (the
        Symbol front end makes a variable for it); a None past the inputs (bias=None with no_bias) is dropped.
        """
        named = {k: v for k, v in kwargs.items() if k not in self.attrs and not k.startswith('_')}
        attrs = {k: v for k, v in kwargs.items() if k not in named} if named else dict(kwargs)
        if self.variadic:
            if named:
                self.canon(kwargs)  # raises: names the unknown attribute
            return list(args), attrs
        try:
            names = self.input_names({**self.defaults, **{k: self.attrs[k].parse(v) for k, v in attrs.items()
                                                          if k in self.attrs}})
        except (ValueError, TypeError, KeyError):
            self.canon(attrs)  # raises with the attribute's name; else the inputs did not depend on it
            names = self.input_names(self.canon(attrs))
        inputs = list(args[:len(names)]) + [None] * (len(names) - len(args[:len(names)]))
        for k, v in named.items():
            if v is None:
                continue  # MXNet's generated functions: an optional input given as None is left out
            if k not in names and not self.attrs and not hasattr(v, 'shape'):
                continue  # MXNet: an op without a parameter struct ignores keyword attributes (an array is an input)
            if k not in names:
                raise GraphcError(f"{self.name}: unknown attribute {k!r}; attributes: {', '.join(self.attrs) or 'none'}; "
                                  f"inputs: {', '.join(names) or 'none'}")
            i = names.index(k)
            if inputs[i] is not None:
                raise GraphcError(f"{self.name}: input {k!r} given twice (by position and by name)")
            inputs[i] = v
        extra = [v for v in args[len(names):] if v is not None]
        if extra:
            order = list(self.positional or self.attrs)
            if len(extra) > len(order):
                raise GraphcError(f"{self.name}: takes {len(names)} inputs and {len(order)} attributes, "
                                  f"got {len(args)} positional arguments")
            for k, v in zip(order, extra):
                if k not in self.attrs:
                    raise GraphcError(f"{self.name}: attribute {k!r} (positional argument {order.index(k) + len(names) + 1}) "
                                      "is not supported by graphc")
                if k in attrs:
                    raise GraphcError(f"{self.name}: attribute {k!r} given twice (by position and by name)")
                attrs[k] = v
        return inputs, attrs

    def canon_cached(self, kwargs: dict) -> dict:
        """canon() memoized on the (hashable) keyword values: the eager hot path calls it per op."""
        try:
            key = tuple(kwargs.items())
            hit = self._canon_cache.get(key)
        except TypeError:  # an unhashable value (a list): no caching
            return self.canon(kwargs)
        if hit is None:
            hit = self.canon(kwargs)
            if len(self._canon_cache) < 4096:
                self._canon_cache[key] = hit
        return hit

    def format_attrs(self, attrs: dict, all: bool = False) -> Dict[str, str]:
        """The attrs MXNet would write: non-default ones (all=True: every one), as strings."""
        out = {}
        for k, v in attrs.items():
            a = self.attrs.get(k)
            if a is None or (not all and v == a.default):
                continue
            out[k] = a.format(v)
        return dict(sorted(out.items()))

    def infer(self, attrs: dict, shapes: Sequence[tuple], dtypes: Sequence) -> Tuple[list, list]:
        """(out_shapes, out_dtypes); a GraphcShapeError that names the op and the input shapes (also for
        attribute values an inference function did not expect: a file's attributes never raise raw errors)."""
        try:
            out = self._infer(attrs, [tuple(s) for s in shapes], [np.dtype(d) for d in dtypes])
            for s in out[0]:
                if s is not None and any(d is not None and d < 0 for d in s):
                    bad(f"{self.name}: the attributes give output shape {fmt_shape(s)}, with a negative dimension")
            return out
        except GraphcShapeError as e:
            if str(e).startswith(self.name):
                raise
            raise GraphcShapeError(f"{self.name}: {e} (input shapes {', '.join(map(fmt_shape, shapes))})") from None
        except (IndexError, KeyError, TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
            shown = {k: v for k, v in attrs.items() if not k.startswith('_')}
            raise GraphcShapeError(f"{self.name}: cannot infer the output shapes for input shapes "
                                   f"{', '.join(map(fmt_shape, shapes))} and attributes {cut(shown, 300)} "
                                   f"({type(e).__name__}: {cut(str(e), 200)})") from None


def zeros_of(infer: Callable, attrs: dict, arrays: Sequence[np.ndarray]):
    """The outputs of an op on an empty batch: zeros of the inferred shapes (empty outputs, and sums over no
    samples, such as a weight gradient, are 0)."""
    shapes, dtypes = infer(attrs, [a.shape for a in arrays], [a.dtype for a in arrays])
    out = tuple(np.zeros(sh, dt) for sh, dt in zip(shapes, dtypes))
    return out if len(out) > 1 else out[0]


def register(name: str, **kw) -> Callable:
    """Declare an op. Used as a decorator on the NumPy reference kernel `ref(attrs, *arrays)`."""
    def deco(ref: Callable) -> Callable:
        if name in OPS:
            raise GraphcError(f"op {name!r} registered twice")
        OPS[name] = Op(name, ref, **kw)
        return ref
    return deco


def get(name: str) -> Op:
    op = OPS.get(name)
    if op is None:
        raise GraphcError(f"operator {name!r} is not registered in graphc")
    return op


# ---------------------------------------------------------------- inference helpers
def bad(msg: str) -> NoReturn:
    raise GraphcShapeError(msg)


def same_dtype(name: str, dtypes: Sequence[np.dtype]) -> np.dtype:
    if any(d != dtypes[0] for d in dtypes[1:]):
        bad(f"{name}: inputs must share a dtype, got {', '.join(map(str, dtypes))}")
    return dtypes[0]


def broadcast_shapes(*shapes: tuple) -> tuple:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        bad("shapes " + ' and '.join(map(fmt_shape, shapes)) + " cannot be broadcast together")


def norm_axis(axis: int, ndim: int, name: str = 'axis') -> int:
    if not -ndim <= axis < max(ndim, 1):
        bad(f"{name} {axis} is out of range for a {ndim}-d input")
    return axis % max(ndim, 1)


def reduce_axes(axis: Union[None, int, Sequence[int]], ndim: int, exclude: bool = False) -> tuple:
    if axis is None or axis == ():
        axes = tuple(range(ndim))
        return () if exclude else axes
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = tuple(sorted({norm_axis(a, ndim) for a in axes}))
    return tuple(i for i in range(ndim) if i not in axes) if exclude else axes
