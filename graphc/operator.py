"""mx.operator: MXNet's Python custom operators (CustomOp, CustomOpProp, register) and the `Custom` op.

A registered CustomOpProp becomes usable as `nd.Custom(*inputs, op_type=NAME, **params)` and
`sym.Custom(...)`: eagerly, under autograd (its `backward` is the gradient), in hybridized blocks and bound
symbols (an opaque node that calls the Python operator on the host) and in MXNet's JSON (a `Custom` node names
its op_type; loading one needs that op_type registered in this process, so a file never brings code of its
own). As in MXNet, every parameter reaches the CustomOpProp's constructor as a string. One operator
instance (`create_operator`) serves all calls with the same parameters, shapes and dtypes, as one MXNet
executor's does; its forward and backward see NDArrays on the host.
"""
import numpy as np

from .base import GraphcError, GraphcNotSupportedError
from .registry import OPS, Attr, Op, bad, cut

_PROPS = {}      # op_type -> CustomOpProp subclass
_INSTANCES = {}  # (op_type, params, shapes, dtypes) -> (prop, CustomOp)


class CustomOp:
    """Base of a Python operator: forward(is_train, req, in_data, out_data, aux) and
    backward(req, out_grad, in_data, out_data, in_grad, aux) write their results with assign()."""

    def forward(self, is_train, req, in_data, out_data, aux):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def assign(self, dst, req, src):
        """dst[:] = src ('write', 'inplace'), dst[:] += src ('add'), nothing ('null')."""
        if req in ('write', 'inplace'):
            dst[:] = src
        elif req == 'add':
            dst[:] = dst + src
        elif req != 'null':
            raise GraphcError(f"CustomOp.assign: unknown req {req!r} (write, inplace, add or null)")


class CustomOpProp:
    """Base of an operator's properties: its argument and output names, shape and type inference, and
    create_operator(ctx, in_shapes, in_dtypes) -> CustomOp."""

    def __init__(self, need_top_grad=True):
        self.need_top_grad_ = need_top_grad

    def list_arguments(self):
        return ['data']

    def list_outputs(self):
        return ['output']

    def list_auxiliary_states(self):
        return []

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]] * len(self.list_outputs()), []

    def infer_type(self, in_type):
        return in_type, [in_type[0]] * len(self.list_outputs()), [in_type[0]] * len(self.list_auxiliary_states())

    def infer_storage_type(self, in_stype):
        return in_stype, ['default'] * len(self.list_outputs()), ['default'] * len(self.list_auxiliary_states())

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return (list(out_grad) if self.need_top_grad_ else []) + list(in_data) + list(out_data)

    def create_operator(self, ctx, in_shapes, in_dtypes):
        raise NotImplementedError(f"{type(self).__name__} must implement create_operator()")


def register(reg_name):
    """Decorator: register a CustomOpProp subclass as the op_type reg_name."""
    def deco(prop_cls):
        if not (isinstance(prop_cls, type) and issubclass(prop_cls, CustomOpProp)):
            raise GraphcError(f"operator.register({reg_name!r}): expects a CustomOpProp subclass, got {prop_cls!r}")
        _PROPS[reg_name] = prop_cls
        for k in [k for k in _INSTANCES if k[0] == reg_name]:  # a re-registration replaces the old operator
            del _INSTANCES[k]
        return prop_cls
    return deco


def get_all_registered_operators():
    return sorted(_PROPS)


# ---------------------------------------------------------------- the registry op
def _params(attrs):
    return {k: v for k, v in attrs.items() if k != 'op_type' and not k.startswith('_')}


def _prop(attrs):
    t = attrs.get('op_type')
    cls = _PROPS.get(t)
    if cls is None:
        raise GraphcError(f"Custom: op_type {cut(t)} is not registered in this process (mx.operator.register); "
                          f"registered: {', '.join(sorted(_PROPS)) or 'none'}")
    try:
        p = cls(**_params(attrs))
    except TypeError as e:
        raise GraphcError(f"Custom {t!r}: {cls.__name__}({', '.join(_params(attrs))}) failed: {e}") from None
    if p.list_auxiliary_states():
        raise GraphcNotSupportedError(f"Custom {t!r}: auxiliary states ({', '.join(p.list_auxiliary_states())}) "
                                      "are not supported")
    return p


def _instance(attrs, arrays):
    key = (attrs['op_type'], tuple(sorted(_params(attrs).items())), tuple(a.shape for a in arrays),
           tuple(a.dtype.str for a in arrays))
    hit = _INSTANCES.get(key)
    if hit is None:
        from .context import cpu
        p = _prop(attrs)
        hit = _INSTANCES[key] = (p, p.create_operator(cpu(), [list(a.shape) for a in arrays],
                                                      [a.dtype for a in arrays]))
    return hit


def _call(fn, arrays, n_in, outs, what):
    """Run a CustomOp method on NDArray views of host arrays; returns the outputs' arrays. An error in the
    Python code is an MXNetError naming the op (as MXNet's engine reports it), chained to the original."""
    from . import autograd
    from .ndarray.ndarray import NDArray
    nds = [NDArray(np.asarray(a)) for a in arrays]
    res = [NDArray(np.zeros(s, d)) for s, d in outs]
    with autograd.pause():
        try:
            fn(nds[:n_in], res)
        except GraphcError:
            raise
        except Exception as e:  # noqa: BLE001  (any error of the user's operator)
            raise GraphcError(f"{what} failed: {type(e).__name__}: {cut(str(e), 300)}") from e
    out = tuple(r._data for r in res)
    return out if len(out) > 1 else out[0]


def _forward_ref(attrs, *arrays):
    p, op = _instance(attrs, arrays)
    shapes, dtypes = _infer(attrs, [a.shape for a in arrays], [a.dtype for a in arrays], p)
    train = bool(attrs.get('_train', False))
    return _call(lambda ins, outs: op.forward(train, ['write'] * len(outs), ins, outs, []), arrays, len(arrays),
                 list(zip(shapes, dtypes)), f"Custom {attrs['op_type']!r}: forward")


def _backward_ref(attrs, *arrays):
    """Inputs: the output gradients, the forward's inputs, its outputs; outputs: the inputs' gradients."""
    from .ndarray.ndarray import NDArray
    p = _prop(attrs)
    n_out, n_in = len(p.list_outputs()), len(p.list_arguments())
    og, xs, ys = arrays[:n_out], arrays[n_out:n_out + n_in], arrays[n_out + n_in:]
    _, op = _instance(attrs, xs)
    views = [[NDArray(np.asarray(a)) for a in part] for part in (og, xs, ys)]
    return _call(lambda _, grads: op.backward(['write'] * n_in, *views, grads, []), (), 0,
                 [(a.shape, a.dtype) for a in xs], f"Custom {attrs['op_type']!r}: backward")


def _infer(attrs, shapes, dtypes, p=None):
    p = p or _prop(attrs)  # (the forward passes its operator's prop: a call builds no new one)
    names, outs = p.list_arguments(), p.list_outputs()
    if len(shapes) != len(names):
        bad(f"Custom {attrs['op_type']!r}: takes {len(names)} inputs ({', '.join(names)}), got {len(shapes)}")
    r = p.infer_shape([list(s) for s in shapes])
    arg_s, out_s = r[0], r[1]
    for n, want, got in zip(names, arg_s, shapes):
        if tuple(want) != tuple(got):
            bad(f"Custom {attrs['op_type']!r}: infer_shape wants input {n!r} of shape {tuple(want)}, got {tuple(got)}")
    if len(out_s) != len(outs):
        bad(f"Custom {attrs['op_type']!r}: infer_shape gave {len(out_s)} output shapes for {len(outs)} outputs")
    t = p.infer_type([np.dtype(d).type for d in dtypes])
    return [tuple(int(d) for d in s) for s in out_s], [np.dtype(d) for d in t[1]]


def _backward_infer(attrs, shapes, dtypes):
    p = _prop(attrs)
    n_out, n_in = len(p.list_outputs()), len(p.list_arguments())
    return list(shapes[n_out:n_out + n_in]), list(dtypes[n_out:n_out + n_in])


def _grad(F, attrs, xs, ys, dys):
    attrs = {k: v for k, v in attrs.items() if k != '_train'}
    g = F._backward_Custom(*dys, *xs, *ys, **attrs)
    return list(g) if isinstance(g, (list, tuple)) else [g]


class _CustomDef(Op):
    """The registry's view of Custom: its inputs, outputs and attributes come from the registered prop, and
    every attribute but op_type is a string (MXNet hands them to the prop as strings)."""

    def canon(self, kwargs):
        if 'op_type' not in kwargs:
            raise GraphcError(f"{self.name}: missing required attribute 'op_type'")
        return {k: (v if k.startswith('_') else str(v)) for k, v in kwargs.items()}

    def canon_cached(self, kwargs):
        return self.canon(kwargs)

    def split_call(self, args, kwargs):
        names = self.input_names(self.canon({k: v for k, v in kwargs.items() if not hasattr(v, 'shape')}))
        named = {k: v for k, v in kwargs.items() if k in names}
        inputs = list(args) + [named[n] for n in names[len(args):] if n in named]
        return inputs, {k: v for k, v in kwargs.items() if k not in named}

    def format_attrs(self, attrs, all=False):
        return {k: str(v) for k, v in sorted(attrs.items()) if not k.startswith('_')}


def _names(attrs):
    return _prop(attrs).list_arguments()


def _backward_names(attrs):
    p = _prop(attrs)
    return [f'{n}_grad' for n in p.list_outputs()] + p.list_arguments() + p.list_outputs()


OPS['Custom'] = _CustomDef('Custom', _forward_ref, _infer, grad=_grad, inputs=_names, mode_dependent=True,
                           attrs={'op_type': Attr('str')},
                           num_outputs=lambda a: len(_prop(a).list_outputs()),
                           doc="A Python operator registered with mx.operator.register (op_type=NAME).")
OPS['_backward_Custom'] = _CustomDef('_backward_Custom', _backward_ref, _backward_infer, inputs=_backward_names,
                                     attrs={'op_type': Attr('str')},
                                     num_outputs=lambda a: len(_prop(a).list_arguments()), differentiable=False,
                                     doc="The gradient of a Custom op: its CustomOp.backward.")
