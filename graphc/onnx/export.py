"""graphc graph -> ONNX ModelProto, one converter per registry op (EXPORTERS), MXNet's conventions translated.

Shapes are known at export (in_shapes), so converters may bake them in; with dynamic dims the graph is inferred a
second time with those dims changed, and a converter may bake in only the dims that did not change (Reshape
targets get ONNX's 0 'copy' and -1 'infer' codes for the others). Everything a converter cannot express exactly
raises GraphcError naming the node: an export either means the same thing or does not happen.
"""
import math
import os

import numpy as np

from ..base import GraphcError, as_dtype
from ..graph import Graph

MIN_OPSET = 13
DEFAULT_OPSET = 21       # the newest opset onnxruntime 1.16+ runs; any of 13..onnx's newest can be asked for
EXPORTERS = {}           # registry op name -> converter(ctx, node, ins, outs)
NOT_EXPORTABLE = {       # registry op name -> why it has no ONNX counterpart
    '_backward_BatchNorm': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_Convolution': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_Deconvolution': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_LayerNorm': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_Pooling': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_RNN': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_pick': 'a gradient op (training graphs only; ONNX files are for inference)',
    '_backward_take': 'a gradient op (training graphs only; ONNX files are for inference)',
}
INT_MAX, INT_MIN = 2 ** 63 - 1, -2 ** 63


def exports(*names):
    def deco(f):
        for n in names:
            EXPORTERS[n] = f
        return f
    return deco


def _onnx():
    try:
        import onnx
    except ImportError:
        raise GraphcError("ONNX export needs the onnx package: pip install 'graphc[onnx]'") from None
    return onnx


def onnx_dtype(dt):
    from onnx import helper
    return helper.np_dtype_to_tensor_dtype(np.dtype(dt))


class Unsupported(GraphcError):
    pass


# ---------------------------------------------------------------- the conversion context
class Ctx:
    """The ONNX nodes and initializers being built, unique names, and the current node's shapes."""

    def __init__(self, opset, shapes, alt):
        self.opset, self.shapes, self.alt = opset, shapes, alt   # shapes/alt: node -> (shapes, dtypes)
        self.nodes, self.inits, self.names, self._consts = [], [], set(), {}
        self.node = None

    def fresh(self, hint):
        base = hint or 't'
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def add(self, op, ins, outs=None, n=1, **attrs):
        """An ONNX node; returns its output names (fresh ones unless outs is given). '' skips an optional input."""
        from onnx import helper
        hint = self.node.name if self.node is not None else op.lower()
        outs = list(outs) if outs is not None else [self.fresh(f"{hint}_{op.lower()}") for _ in range(n)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op, list(ins), outs, name=self.fresh(f"{hint}/{op}"), **attrs))
        return outs

    def add1(self, op, ins, out=None, **attrs):
        return self.add(op, ins, None if out is None else [out], **attrs)[0]

    def const(self, arr, hint='const'):
        from onnx import numpy_helper
        arr = np.asarray(arr)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 16 else None
        if key is not None and key in self._consts:
            return self._consts[key]
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(arr.copy(order="C"), name))   # (ascontiguousarray makes 0-d 1-d)
        if key is not None:
            self._consts[key] = name
        return name

    def i64(self, vals):
        return self.const(np.asarray(vals, np.int64), 'i64')

    def scalar(self, v, dt):
        return self.const(np.asarray(v, dtype=dt), 'scalar')

    # shapes of the current node's inputs and outputs, and which dims are dynamic
    def in_shape(self, k=0):
        s, j = self.node.inputs[k]
        return tuple(self.shapes[s][0][j])

    def in_dtype(self, k=0):
        s, j = self.node.inputs[k]
        return np.dtype(self.shapes[s][1][j])

    def out_shape(self, j=0):
        return tuple(self.shapes[self.node][0][j])

    def out_dtype(self, j=0):
        return np.dtype(self.shapes[self.node][1][j])

    def _dyn(self, n, j):
        if self.alt is None:
            return (False,) * len(self.shapes[n][0][j])
        return tuple(a != b for a, b in zip(self.shapes[n][0][j], self.alt[n][0][j]))

    def in_dyn(self, k=0):
        s, j = self.node.inputs[k]
        return self._dyn(s, j)

    def out_dyn(self, j=0):
        return self._dyn(self.node, j)

    def static(self, what):
        """Raise when the current node's input or output has dynamic dims where a converter needs sizes."""
        if any(self.in_dyn(k) != (False,) * len(self.in_shape(k)) for k in range(len(self.node.inputs))) or \
                any(self.out_dyn(j) != (False,) * len(self.out_shape(j)) for j in range(len(self.shapes[self.node][0]))):
            raise Unsupported(f"{what} needs static shapes; this node has dynamic dims")

    def alt_shape_in(self, k=0):
        s, j = self.node.inputs[k]
        return tuple(self.alt[s][0][j]) if self.alt else self.in_shape(k)

    def alt_shape_out(self, j=0):
        return tuple(self.alt[self.node][0][j]) if self.alt else self.out_shape(j)


# ---------------------------------------------------------------- helpers every converter uses
def reduce(ctx, op, x, axes, keepdims, out=None):
    if op == 'ReduceSum' or ctx.opset >= 18:
        return ctx.add1(op, [x, ctx.i64(list(axes))], out, keepdims=int(keepdims))
    return ctx.add1(op, [x], out, axes=list(axes), keepdims=int(keepdims))


def unsqueeze(ctx, x, axes, out=None):
    return ctx.add1('Unsqueeze', [x, ctx.i64(list(axes))], out)


def squeeze(ctx, x, axes, out=None):
    return ctx.add1('Squeeze', [x, ctx.i64(list(axes))], out)


def reshape(ctx, x, out_shape, out_dyn, in_shape, in_dyn, out=None, in_alt=None, out_alt=None):
    """Reshape x to out_shape; dynamic output dims become 0 (copy the input dim at the same place) or one -1."""
    codes = list(out_shape)
    dyn = [i for i, d in enumerate(out_dyn) if d]
    copy = [i for i in dyn if i < len(in_shape) and in_dyn[i] and in_shape[i] == out_shape[i]
            and (in_alt is None or in_alt[i] == out_alt[i])]
    rest = [i for i in dyn if i not in copy]
    if len(rest) == 1 and not copy:
        copy, rest = [], rest
    if len(rest) > 1:
        raise Unsupported(f"a reshape to {out_shape} with {len(rest)} dynamic dims that are not copied")
    for i in copy:
        codes[i] = 0
    for i in rest:
        codes[i] = -1
    zero = any(d == 0 for i, d in enumerate(out_shape) if i not in dyn)
    if zero and copy:
        raise Unsupported("a reshape with zero-size and dynamic dims")
    return ctx.add1('Reshape', [x, ctx.i64(codes)], out, allowzero=1 if zero else None)


def reshape_out(ctx, x, out=None, k=0, j=0):
    """Reshape x (shaped like input k) to the shape of the node's output j."""
    return reshape(ctx, x, ctx.out_shape(j), ctx.out_dyn(j), ctx.in_shape(k), ctx.in_dyn(k), out,
                   ctx.alt_shape_in(k), ctx.alt_shape_out(j))


def to_bool(ctx, x):
    return ctx.add1('Cast', [x], to=onnx_dtype(np.bool_))


def from_bool(ctx, b, dt, out=None):
    return ctx.add1('Cast', [b], out, to=onnx_dtype(dt))


def mod(ctx, a, b, dt, out=None):
    """NumPy's mod (the result takes the divisor's sign): ONNX Mod for integers, a - floor(a / b) * b for floats."""
    if np.dtype(dt).kind in 'iu':
        return ctx.add1('Mod', [a, b], out, fmod=0)
    r = ctx.add1('Mod', [a, b], fmod=1)   # C's fmod, moved onto the divisor's side as NumPy does: bit for bit
    zero = ctx.scalar(0, dt)
    off = ctx.add1('Xor', [ctx.add1('Less', [b, zero]), ctx.add1('Less', [r, zero])])
    fix = ctx.add1('And', [ctx.add1('Not', [ctx.add1('Equal', [r, zero])]), off])
    return ctx.add1('Where', [fix, ctx.add1('Add', [r, b]), r], out)


def as_index(ctx, idx, n, mode):
    """Integer indices with MXNet's modes: clip to [0, n), wrap modulo n, or raise (ONNX takes -n..n-1 too)."""
    i = ctx.add1('Cast', [idx], to=onnx_dtype(np.int64))
    if mode == 'clip' and n:
        return ctx.add1('Clip', [i, ctx.scalar(0, np.int64), ctx.scalar(n - 1, np.int64)])
    if mode == 'wrap' and n:
        return ctx.add1('Mod', [i, ctx.scalar(n, np.int64)], fmod=0)
    return i


# ---------------------------------------------------------------- elementwise
UNARY = {'exp': 'Exp', 'log': 'Log', 'sqrt': 'Sqrt', 'abs': 'Abs', 'sign': 'Sign', 'tanh': 'Tanh', 'sin': 'Sin',
         'cos': 'Cos', 'sigmoid': 'Sigmoid', 'relu': 'Relu', 'softrelu': 'Softplus', 'softsign': 'Softsign',
         'erf': 'Erf', '_copy': 'Identity', 'floor': 'Floor', 'ceil': 'Ceil', 'round': 'Round', 'negative': 'Neg',
         'reciprocal': 'Reciprocal'}


def _unary(ctx, name, x, dt, out):
    one = lambda: ctx.scalar(1, dt)  # noqa: E731
    if name == 'relu' and dt.kind in 'iu':
        return ctx.add1('Max', [x, ctx.scalar(0, dt)], out)
    if name in UNARY:
        return ctx.add1(UNARY[name], [x], out)
    if name == 'rsqrt':
        return ctx.add1('Reciprocal', [ctx.add1('Sqrt', [x])], out)
    if name == 'square':
        return ctx.add1('Mul', [x, x], out)
    if name == 'log1p':
        return ctx.add1('Log', [ctx.add1('Add', [x, one()])], out)
    if name == 'expm1':
        return ctx.add1('Sub', [ctx.add1('Exp', [x]), one()], out)
    if name in ('zeros_like', 'ones_like'):
        from onnx import helper
        v = helper.make_tensor('value', onnx_dtype(dt), [1], [0 if name == 'zeros_like' else 1])
        return ctx.add1('ConstantOfShape', [ctx.add1('Shape', [x])], out, value=v)
    raise AssertionError(name)


@exports(*UNARY, 'rsqrt', 'square', 'log1p', 'expm1', 'zeros_like', 'ones_like')
def _x_unary(ctx, node, ins, outs):
    _unary(ctx, node.op.name, ins[0], ctx.in_dtype(), outs[0])


@exports('Activation')
def _x_activation(ctx, node, ins, outs):
    _unary(ctx, node.attrs['act_type'], ins[0], ctx.in_dtype(), outs[0])


BINARY = {'add': 'Add', 'sub': 'Sub', 'mul': 'Mul', 'div': 'Div', 'power': 'Pow', 'maximum': 'Max', 'minimum': 'Min'}
COMPARE = {'equal': 'Equal', 'greater': 'Greater', 'greater_equal': 'GreaterOrEqual', 'lesser': 'Less',
           'lesser_equal': 'LessOrEqual'}


def _binary(ctx, kind, a, b, dt, out):
    if kind in BINARY:
        return ctx.add1(BINARY[kind], [a, b], out)
    if kind == 'mod':
        return mod(ctx, a, b, dt, out)
    if kind == 'not_equal':
        return from_bool(ctx, ctx.add1('Not', [ctx.add1('Equal', [a, b])]), dt, out)
    return from_bool(ctx, ctx.add1(COMPARE[kind], [a, b]), dt, out)


@exports(*[f'broadcast_{k}' for k in list(BINARY) + ['mod', 'not_equal'] + list(COMPARE)],
         *[f'elemwise_{k}' for k in ('add', 'sub', 'mul', 'div')])
def _x_binary(ctx, node, ins, outs):
    _binary(ctx, node.op.name.split('_', 1)[1], ins[0], ins[1], ctx.in_dtype(), outs[0])


SCALAR = {'_plus_scalar': ('add', False), '_minus_scalar': ('sub', False), '_rminus_scalar': ('sub', True),
          '_mul_scalar': ('mul', False), '_div_scalar': ('div', False), '_rdiv_scalar': ('div', True),
          '_power_scalar': ('power', False), '_rpower_scalar': ('power', True), '_maximum_scalar': ('maximum', False),
          '_minimum_scalar': ('minimum', False), '_mod_scalar': ('mod', False), '_rmod_scalar': ('mod', True), '_equal_scalar': ('equal', False),
          '_not_equal_scalar': ('not_equal', False), '_greater_scalar': ('greater', False),
          '_greater_equal_scalar': ('greater_equal', False), '_lesser_scalar': ('lesser', False),
          '_lesser_equal_scalar': ('lesser_equal', False)}


@exports(*SCALAR)
def _x_scalar(ctx, node, ins, outs):
    kind, rev = SCALAR[node.op.name]
    dt = ctx.in_dtype()
    s = ctx.scalar(node.attrs['scalar'], dt)   # the scalar in x's dtype first, as graphc and MXNet compute
    a, b = (s, ins[0]) if rev else (ins[0], s)
    _binary(ctx, kind, a, b, dt, outs[0])


@exports('Cast')
def _x_cast(ctx, node, ins, outs):
    ctx.add1('Cast', ins, outs[0], to=onnx_dtype(node.attrs['dtype']))


@exports('clip')
def _x_clip(ctx, node, ins, outs):
    dt = ctx.in_dtype()
    ctx.add1('Clip', [ins[0], ctx.scalar(node.attrs['a_min'], dt), ctx.scalar(node.attrs['a_max'], dt)], outs[0])


@exports('where')
def _x_where(ctx, node, ins, outs):
    c = ins[0]
    nd_c, nd_x = len(ctx.in_shape(0)), len(ctx.in_shape(1))
    if nd_c < nd_x:   # a 1-d condition selects along axis 0
        c = unsqueeze(ctx, c, range(nd_c, nd_x))
    ctx.add1('Where', [to_bool(ctx, c), ins[1], ins[2]], outs[0])


@exports('add_n')
def _x_add_n(ctx, node, ins, outs):
    ctx.add1('Sum', ins, outs[0])


@exports('LeakyReLU')
def _x_leaky(ctx, node, ins, outs):
    a, x, dt = node.attrs, ins[0], ctx.in_dtype()
    t = a['act_type']
    if t == 'leaky':
        ctx.add1('LeakyRelu', [x], outs[0], alpha=a['slope'])
    elif t == 'elu':
        ctx.add1('Elu', [x], outs[0], alpha=a['slope'])
    elif t == 'selu':
        from ..ops.nn import SELU_A, SELU_L
        ctx.add1('Selu', [x], outs[0], alpha=SELU_A, gamma=SELU_L)
    elif t == 'gelu':   # x * Phi(x), with erf: MXNet's exact GELU (ONNX Gelu exists only from opset 20)
        e = ctx.add1('Erf', [ctx.add1('Mul', [x, ctx.scalar(1 / math.sqrt(2.0), dt)])])
        h = ctx.add1('Mul', [ctx.add1('Add', [e, ctx.scalar(1, dt)]), ctx.scalar(0.5, dt)])
        ctx.add1('Mul', [x, h], outs[0])
    elif t == 'prelu':
        nd = len(ctx.in_shape(0))
        g = unsqueeze(ctx, ins[1], range(1, nd - 1)) if nd > 2 else ins[1]   # (C,) -> (C, 1, 1): channel axis 1
        ctx.add1('PRelu', [x, g], outs[0])
    else:
        raise Unsupported(f"act_type {t!r}")


@exports('Dropout')
def _x_dropout(ctx, node, ins, outs):
    a = node.attrs
    if a['p'] > 0 and (a.get('_train') or a['mode'] == 'always'):
        raise Unsupported("Dropout with p > 0 in training mode (or mode='always') is random; export the "
                          "model in predict mode")
    ctx.add1('Identity', ins, outs[0])
    if len(outs) > 1:   # the mask: all ones
        _unary(ctx, 'ones_like', ins[0], ctx.in_dtype(), outs[1])


# ---------------------------------------------------------------- shape ops
@exports('Reshape', '_np_reshape')
def _x_reshape(ctx, node, ins, outs):
    reshape_out(ctx, ins[0], outs[0])


@exports('Flatten')
def _x_flatten(ctx, node, ins, outs):
    if ctx.in_shape():
        ctx.add1('Flatten', ins, outs[0], axis=1)
    else:
        reshape_out(ctx, ins[0], outs[0])


@exports('expand_dims')
def _x_expand_dims(ctx, node, ins, outs):
    unsqueeze(ctx, ins[0], [node.attrs['axis'] % (len(ctx.in_shape()) + 1)], outs[0])


@exports('squeeze')
def _x_squeeze(ctx, node, ins, outs):
    s, ax = ctx.in_shape(), node.attrs['axis']
    if ax is None:
        axes = [i for i, d in enumerate(s) if d == 1 and not ctx.in_dyn()[i]]
    else:
        axes = sorted({a % len(s) for a in ((ax,) if isinstance(ax, int) else ax)})
    if axes:
        squeeze(ctx, ins[0], axes, outs[0])
    else:
        ctx.add1('Identity', ins, outs[0])


@exports('transpose', 'SwapAxis')
def _x_transpose(ctx, node, ins, outs):
    nd = len(ctx.in_shape())
    if node.op.name == 'transpose':
        from ..ops.shape import _perm
        perm = list(_perm(node.attrs, nd))
    else:
        perm = list(range(nd))
        if nd:
            i, j = node.attrs['dim1'] % nd, node.attrs['dim2'] % nd
            perm[i], perm[j] = perm[j], perm[i]
    ctx.add1('Transpose', ins, outs[0], perm=perm) if nd > 1 else ctx.add1('Identity', ins, outs[0])


@exports('Concat', '_rnn_param_concat')
def _x_concat(ctx, node, ins, outs):
    if len(ins) == 1:
        ctx.add1('Identity', ins, outs[0])
    else:
        ctx.add1('Concat', ins, outs[0], axis=node.attrs['dim'] % len(ctx.in_shape()))


@exports('stack')
def _x_stack(ctx, node, ins, outs):
    ax = node.attrs['axis'] % (len(ctx.in_shape()) + 1)
    parts = [unsqueeze(ctx, x, [ax]) for x in ins]
    ctx.add1('Concat', parts, outs[0], axis=ax) if len(parts) > 1 else ctx.add1('Identity', parts, outs[0])


@exports('SliceChannel')
def _x_split(ctx, node, ins, outs):
    a, s = node.attrs, ctx.in_shape()
    ax, n = a['axis'] % len(s), a['num_outputs']
    outs = outs + [ctx.fresh(f"{node.name}_output{j}") for j in range(len(outs), n)]   # Split writes every part
    if ctx.in_dyn()[ax]:
        raise Unsupported("splitting a dynamic axis")
    parts = outs if not a['squeeze_axis'] else [ctx.fresh(f"{node.name}_part") for _ in outs]
    if n == 1:
        ctx.add1('Identity', ins, parts[0])
    else:
        ctx.add('Split', [ins[0], ctx.i64([s[ax] // n] * n)], parts, axis=ax)
    if a['squeeze_axis']:
        for p, o in zip(parts, outs):
            squeeze(ctx, p, [ax], o)


def _slice(ctx, x, begin, end, step, out):
    starts, ends, axes, steps = [], [], [], []
    for i, (b, e) in enumerate(zip(begin, end)):
        st = step[i] if i < len(step) and step[i] is not None else 1
        if b is None and e is None and st == 1:
            continue
        starts.append((0 if st > 0 else -1) if b is None else b)
        ends.append((INT_MAX if st > 0 else INT_MIN) if e is None else e)
        axes.append(i)
        steps.append(st)
    if not axes:
        return ctx.add1('Identity', [x], out)
    return ctx.add1('Slice', [x, ctx.i64(starts), ctx.i64(ends), ctx.i64(axes), ctx.i64(steps)], out)


@exports('slice')
def _x_slice(ctx, node, ins, outs):
    a = node.attrs
    _slice(ctx, ins[0], a['begin'], a['end'], a['step'], outs[0])


@exports('slice_axis')
def _x_slice_axis(ctx, node, ins, outs):
    a = node.attrs
    ax = a['axis'] % len(ctx.in_shape())
    ctx.add1('Slice', [ins[0], ctx.i64([a['begin']]), ctx.i64([INT_MAX if a['end'] is None else a['end']]),
                       ctx.i64([ax])], outs[0])


def _slice_positions(shape, a):
    from ..ops.shape import slice_key
    key = slice_key(shape, a['begin'], a['end'], a['step']) + (slice(None),) * (len(shape) - len(a['begin']))
    return [np.arange(d)[k] for d, k in zip(shape, key)]


@exports('_slice_assign')
def _x_slice_assign(ctx, node, ins, outs):
    ctx.static('_slice_assign')
    ranges = _slice_positions(ctx.in_shape(), node.attrs)
    idx = np.stack(np.meshgrid(*ranges, indexing='ij'), -1).astype(np.int64) if ranges else np.zeros((0,), np.int64)
    ctx.add1('ScatterND', [ins[0], ctx.const(idx, f"{node.name}_indices"), ins[1]], outs[0])


@exports('_slice_assign_scalar')
def _x_slice_assign_scalar(ctx, node, ins, outs):
    ctx.static('_slice_assign_scalar')
    s = ctx.in_shape()
    mask = np.zeros(s, np.bool_)
    mask[np.ix_(*_slice_positions(s, node.attrs))] = True
    ctx.add1('Where', [ctx.const(mask, f"{node.name}_mask"), ctx.scalar(node.attrs['scalar'], ctx.in_dtype()),
                       ins[0]], outs[0])


@exports('tile')
def _x_tile(ctx, node, ins, outs):
    s, reps = ctx.in_shape(), tuple(node.attrs['reps'])
    x = ins[0]
    if len(reps) > len(s):
        x = unsqueeze(ctx, x, range(len(reps) - len(s)))
    reps = (1,) * (max(len(s), len(reps)) - len(reps)) + reps
    ctx.add1('Tile', [x, ctx.i64(reps)], outs[0])


@exports('repeat')
def _x_repeat(ctx, node, ins, outs):
    s, r, ax = ctx.in_shape(), node.attrs['repeats'], node.attrs['axis']
    x = ins[0]
    if ax is None:
        x, nd, ax = ctx.add1('Reshape', [x, ctx.i64([-1])]), 1, 0
    else:
        nd, ax = len(s), ax % len(s)
    t = ctx.add1('Tile', [unsqueeze(ctx, x, [ax + 1]), ctx.i64([1] * (ax + 1) + [r] + [1] * (nd - ax - 1))])
    reshape_out(ctx, t, outs[0])


@exports('broadcast_to')
def _x_broadcast_to(ctx, node, ins, outs):
    ctx.add1('Expand', [ins[0], ctx.i64([1 if d == 0 else d for d in node.attrs['shape']])], outs[0])


@exports('_zeros')
def _x_zeros(ctx, node, ins, outs):
    from onnx import helper
    v = helper.make_tensor('value', onnx_dtype(ctx.out_dtype()), [1], [0])
    ctx.add1('ConstantOfShape', [ctx.i64(ctx.out_shape())], outs[0], value=v)


# ---------------------------------------------------------------- gathers
def _axis_len(ctx, k, ax, what):
    if ctx.in_dyn(k)[ax]:
        raise Unsupported(f"{what} along a dynamic axis")
    return ctx.in_shape(k)[ax]


@exports('take')
def _x_take(ctx, node, ins, outs):
    ax = node.attrs['axis'] % len(ctx.in_shape())
    i = as_index(ctx, ins[1], _axis_len(ctx, 0, ax, 'take'), node.attrs['mode'])
    ctx.add1('Gather', [ins[0], i], outs[0], axis=ax)


@exports('Embedding')
def _x_embedding(ctx, node, ins, outs):
    i = as_index(ctx, ins[0], ctx.in_shape(1)[0], 'clip')
    ctx.add1('Gather', [ins[1], i], outs[0], axis=0)


@exports('one_hot')
def _x_one_hot(ctx, node, ins, outs):
    a, dt = node.attrs, ctx.out_dtype()
    i = unsqueeze(ctx, ctx.add1('Cast', ins, to=onnx_dtype(np.int64)), [len(ctx.in_shape())])
    hit = ctx.add1('Equal', [i, ctx.const(np.arange(a['depth'], dtype=np.int64), f"{node.name}_range")])
    ctx.add1('Where', [hit, ctx.scalar(a['on_value'], dt), ctx.scalar(a['off_value'], dt)], outs[0])


@exports('pick')
def _x_pick(ctx, node, ins, outs):
    a, s = node.attrs, ctx.in_shape()
    ax = a['axis'] % len(s)
    i = as_index(ctx, ins[1], _axis_len(ctx, 0, ax, 'pick'), a['mode'])
    if len(ctx.in_shape(1)) < len(s):
        i = unsqueeze(ctx, i, [ax])
    if a['keepdims']:
        ctx.add1('GatherElements', [ins[0], i], outs[0], axis=ax)
    else:
        squeeze(ctx, ctx.add1('GatherElements', [ins[0], i], axis=ax), [ax], outs[0])


# ---------------------------------------------------------------- reductions
RED = {'sum': 'ReduceSum', 'mean': 'ReduceMean', 'max': 'ReduceMax', 'min': 'ReduceMin', 'prod': 'ReduceProd'}


@exports(*RED, 'norm')
def _x_reduce(ctx, node, ins, outs):
    from ..ops.reduce import _axes
    a = node.attrs
    axes = _axes(a, len(ctx.in_shape()))
    if not axes:   # nothing reduced; norm still takes the magnitude
        ctx.add1('Identity' if node.op.name != 'norm' else 'Abs', ins, outs[0])
        return
    op = RED.get(node.op.name) or {1: 'ReduceL1', 2: 'ReduceL2'}.get(a['ord'])
    if op is None:
        raise Unsupported(f"norm of ord {a['ord']}")
    if tuple(ctx.out_shape()) == (1,) and not a['keepdims'] and len(axes) == len(ctx.in_shape()):
        # MXNet 1.x: a full reduction has shape (1,), where ONNX's has ()
        ctx.add1('Reshape', [reduce(ctx, op, ins[0], axes, False), ctx.i64([1])], outs[0])
        return
    reduce(ctx, op, ins[0], axes, a['keepdims'], outs[0])


@exports('argmax', 'argmin')
def _x_arg(ctx, node, ins, outs):
    a, op = node.attrs, 'ArgMax' if node.op.name == 'argmax' else 'ArgMin'
    dt = ctx.in_dtype()
    if a['axis'] is None:
        flat = ctx.add1('Reshape', [ins[0], ctx.i64([-1])])
        r = ctx.add1('Reshape', [ctx.add1(op, [flat], axis=0, keepdims=1), ctx.i64(ctx.out_shape())])
    else:
        r = ctx.add1(op, ins, axis=a['axis'] % len(ctx.in_shape()), keepdims=int(a['keepdims']))
    ctx.add1('Cast', [r], outs[0], to=onnx_dtype(dt))   # MXNet returns indices in the input's dtype


@exports('softmax', 'log_softmax')
def _x_softmax(ctx, node, ins, outs):
    a, x = node.attrs, ins[0]
    if a['use_length']:
        raise Unsupported("softmax with use_length")
    if a['temperature'] not in (None, 1.0):
        x = ctx.add1('Div', [x, ctx.scalar(a['temperature'], ctx.in_dtype())])
    ctx.add1('Softmax' if node.op.name == 'softmax' else 'LogSoftmax', [x], outs[0],
             axis=a['axis'] % len(ctx.in_shape()))


@exports('softmax_cross_entropy')
def _x_sce(ctx, node, ins, outs):
    ls = ctx.add1('LogSoftmax', [ins[0]], axis=1)
    i = unsqueeze(ctx, ctx.add1('Cast', [ins[1]], to=onnx_dtype(np.int64)), [1])
    total = reduce(ctx, 'ReduceSum', ctx.add1('GatherElements', [ls, i], axis=1), [0, 1], False)
    ctx.add1('Reshape', [ctx.add1('Neg', [total]), ctx.i64([1])], outs[0])


# ---------------------------------------------------------------- products and layers
@exports('dot')
def _x_dot(ctx, node, ins, outs):
    a, b = ctx.in_shape(0), ctx.in_shape(1)
    A, B = ins
    if node.attrs['transpose_a']:   # MXNet's dot transposes an N-d operand by reversing all its axes
        A, a = ctx.add1('Transpose', [A], perm=list(range(len(a)))[::-1]), a[::-1]
    if node.attrs['transpose_b']:
        B, b = ctx.add1('Transpose', [B], perm=list(range(len(b)))[::-1]), b[::-1]
    if len(a) == 1 and len(b) == 1 and tuple(ctx.out_shape()) == (1,):   # MXNet 1.x: vector . vector is (1,)
        ctx.add1('Reshape', [ctx.add1('MatMul', [A, B]), ctx.i64([1])], outs[0])
        return
    if len(a) <= 2 and len(b) <= 2:
        ctx.add1('MatMul', [A, B], outs[0])
        return
    k = a[-1]
    m = ctx.add1('MatMul', [ctx.add1('Reshape', [A, ctx.i64([-1, k])]), ctx.add1('Reshape', [B, ctx.i64([k, -1])])])
    reshape(ctx, m, ctx.out_shape(), ctx.out_dyn(), (), (), outs[0])


@exports('batch_dot')
def _x_batch_dot(ctx, node, ins, outs):
    A, B = ins
    if node.attrs['transpose_a']:
        A = ctx.add1('Transpose', [A], perm=[0, 2, 1])
    if node.attrs['transpose_b']:
        B = ctx.add1('Transpose', [B], perm=[0, 2, 1])
    ctx.add1('MatMul', [A, B], outs[0])


@exports('FullyConnected')
def _x_fc(ctx, node, ins, outs):
    a = node.attrs
    x = ins[0]
    if a['flatten']:
        if len(ctx.in_shape()) != 2:
            x = ctx.add1('Flatten', [x], axis=1)
        ctx.add1('Gemm', [x, ins[1]] + ins[2:], outs[0], transB=1)
        return
    y = ctx.add1('MatMul', [x, ctx.add1('Transpose', [ins[1]], perm=[1, 0])], None if len(ins) > 2 else outs[0])
    if len(ins) > 2:
        ctx.add1('Add', [y, ins[2]], outs[0])


def _conv_geom(a):
    k = tuple(a['kernel'])
    st, dl, pd = tuple(a['stride'] or (1, 1)), tuple(a['dilate'] or (1, 1)), tuple(a['pad'] or (0, 0))
    return k, st, dl, pd


@exports('Convolution')
def _x_conv(ctx, node, ins, outs):
    k, st, dl, pd = _conv_geom(node.attrs)
    ctx.add1('Conv', ins, outs[0], kernel_shape=list(k), strides=list(st), dilations=list(dl),
             pads=list(pd) * 2, group=node.attrs['num_group'])


@exports('Deconvolution')
def _x_deconv(ctx, node, ins, outs):
    a = node.attrs
    if a['target_shape']:
        raise Unsupported("Deconvolution with target_shape")
    k, st, dl, pd = _conv_geom(a)
    ctx.add1('ConvTranspose', ins, outs[0], kernel_shape=list(k), strides=list(st), dilations=list(dl),
             pads=list(pd) * 2, output_padding=list(a['adj'] or (0, 0)), group=a['num_group'])


@exports('Pooling')
def _x_pool(ctx, node, ins, outs):
    from ..ops.nn import _avg_count, pool_geom
    a, s, dt = node.attrs, ctx.in_shape(), ctx.in_dtype()
    pt = a['pool_type']
    if a['global_pool']:
        if pt == 'sum':
            reduce(ctx, 'ReduceSum', ins[0], [2, 3], True, outs[0])
        else:
            ctx.add1('GlobalMaxPool' if pt == 'max' else 'GlobalAveragePool', ins, outs[0])
        return
    k, st, pd, extra, _ = pool_geom(a, s)
    geo = dict(kernel_shape=list(k), strides=list(st))
    pads = [pd[0], pd[1], pd[0] + extra[0], pd[1] + extra[1]]
    deep = any(p >= k[i % 2] for i, p in enumerate(pads))   # onnxruntime wants pads < kernel; MXNet does not
    if pt == 'max':   # the 'full' convention's overhang as extra bottom/right padding: padding never wins a max
        x = ins[0]
        if deep:   # padded with the dtype's lowest value, as graphc's kernel pads
            lo = np.finfo(dt).min if dt.kind == 'f' else np.iinfo(dt).min
            x = ctx.add1('Pad', [x, ctx.i64([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]]), ctx.scalar(lo, dt)])
            pads = [0, 0, 0, 0]
        ctx.add1('MaxPool', [x], outs[0], pads=pads, **geo)
        return
    if pt == 'avg' and not any(extra) and not deep:
        ctx.add1('AveragePool', ins, outs[0], pads=list(pd) * 2, count_include_pad=int(a['count_include_pad']), **geo)
        return
    # sum pooling, or avg with the 'full' overhang (counted by neither MXNet's divisor nor its sum): a depthwise
    # convolution with ones over zero padding, divided by MXNet's count per output position
    if ctx.in_dyn()[1] or any(ctx.in_dyn()[2:]):
        raise Unsupported(f"{pt} pooling with overhang on dynamic channels or spatial dims")
    c = s[1]
    w = ctx.const(np.ones((c, 1) + k, dt), f"{node.name}_ones")
    y = ctx.add1('Conv', [ins[0], w], None if pt == 'avg' else outs[0], group=c, pads=pads, **geo)
    if pt == 'avg':
        cnt = np.asarray(_avg_count(a, s, k, st, pd, extra), dt)
        ctx.add1('Div', [y, ctx.const(cnt, f"{node.name}_count")], outs[0])


@exports('BatchNorm')
def _x_batchnorm(ctx, node, ins, outs):
    a, s, dt = node.attrs, ctx.in_shape(), ctx.in_dtype()
    ax, nd = a['axis'] % len(s), len(s)
    train = bool(a.get('_train')) and not a['use_global_stats']
    gamma = ctx.const(np.ones((s[ax],), dt), f"{node.name}_gamma_fixed") if a['fix_gamma'] else ins[1]
    x, beta, mm, mv = ins[0], ins[2], ins[3], ins[4]
    if not train and ax == 1 and nd >= 2:
        ctx.add1('BatchNormalization', [x, gamma, beta, mm, mv], outs[0], epsilon=a['eps'])
        for o, v in zip(outs[1:], (mm, mv)):
            ctx.add1('Identity', [v], o)
        return
    bs = ctx.i64([s[ax] if i == ax else 1 for i in range(nd)])
    axes = [i for i in range(nd) if i != ax]
    if train:   # normalized by the batch's statistics (a training-mode graph)
        mean = reduce(ctx, 'ReduceMean', x, axes, True)
        d = ctx.add1('Sub', [x, mean])
        var = reduce(ctx, 'ReduceMean', ctx.add1('Mul', [d, d]), axes, True)
    else:
        mean, var = ctx.add1('Reshape', [mm, bs]), ctx.add1('Reshape', [mv, bs])
        d = ctx.add1('Sub', [x, mean])
    inv = ctx.add1('Reciprocal', [ctx.add1('Sqrt', [ctx.add1('Add', [var, ctx.scalar(a['eps'], dt)])])])
    scale = ctx.add1('Mul', [ctx.add1('Reshape', [gamma, bs]), inv])
    ctx.add1('Add', [ctx.add1('Mul', [d, scale]), ctx.add1('Reshape', [beta, bs])], outs[0])
    for o, v in zip(outs[1:], (mean, var)):
        ctx.add1('Reshape', [v, ctx.i64([s[ax]])], o)


@exports('LayerNorm')
def _x_layernorm(ctx, node, ins, outs):
    a, s, dt = node.attrs, ctx.in_shape(), ctx.in_dtype()
    ax, nd = a['axis'] % len(s), len(s)
    x, gamma, beta = ins
    if ax == nd - 1 and len(outs) == 1 and ctx.opset >= 17:
        ctx.add1('LayerNormalization', ins, outs[0], axis=-1, epsilon=a['eps'])
        return
    bs = ctx.i64([s[ax] if i == ax else 1 for i in range(nd)])
    mean = reduce(ctx, 'ReduceMean', x, [ax], True, outs[1] if len(outs) > 1 else None)
    d = ctx.add1('Sub', [x, mean])
    var = reduce(ctx, 'ReduceMean', ctx.add1('Mul', [d, d]), [ax], True)
    std = ctx.add1('Sqrt', [ctx.add1('Add', [var, ctx.scalar(a['eps'], dt)])], outs[2] if len(outs) > 2 else None)
    y = ctx.add1('Mul', [ctx.add1('Div', [d, std]), ctx.add1('Reshape', [gamma, bs])])
    ctx.add1('Add', [y, ctx.add1('Reshape', [beta, bs])], outs[0])


# ---------------------------------------------------------------- the fused RNN op -> ONNX LSTM / GRU / RNN
# gate blocks of MXNet's layout in ONNX's order: LSTM i,f,c,o -> i,o,f,c; GRU r,z,n -> z,r,h
GATE_ORDER = {'lstm': [0, 3, 1, 2], 'gru': [1, 0, 2], 'rnn_relu': [0], 'rnn_tanh': [0]}


def _gates(w, mode, H):
    return np.concatenate([w[g * H:(g + 1) * H] for g in GATE_ORDER[mode]], 0)


@exports('RNN')
def _x_rnn(ctx, node, ins, outs):
    from ..ops.rnn import _dims, _param_views
    a = node.attrs
    mode = a['mode']
    if a['p'] > 0 and a.get('_train'):
        raise Unsupported("RNN dropout in training mode is random; export the model in predict mode")
    if a['lstm_state_clip_min'] is not None:
        raise Unsupported("lstm_state_clip_min/max (ONNX's LSTM clips the gates' inputs, not the cell state)")
    T, N, C = ctx.in_shape(0)
    L, D, H, G, _ = _dims(a, C)
    w = ctx.value(1)   # constant parameters are reordered here; others by a Gather of the reordered positions
    size = int(ctx.in_shape(1)[0])
    views = _param_views(a, np.asarray(w) if w is not None else np.arange(size, dtype=np.int64), C)

    def weights(arr, what):
        if w is not None:
            return ctx.const(arr, f"{node.name}_{what}")
        return ctx.add1('Gather', [ins[1], ctx.const(arr, f"{node.name}_{what}_positions")], axis=0)
    op = {'lstm': 'LSTM', 'gru': 'GRU'}.get(mode, 'RNN')
    extra = {'linear_before_reset': 1} if mode == 'gru' else {}   # MXNet's GRU: r * (W_hn h + b_hn)
    if op == 'RNN':
        extra['activations'] = ['Relu' if mode == 'rnn_relu' else 'Tanh'] * D
    states = [ins[k] for k in range(2, len(ins))]
    zero = [ctx.is_zeros(k) for k in range(2, len(ins))]
    x, hs, cs = ins[0], [], []
    for l in range(L):
        per = [v for v in views if v[0] == l]
        W = np.stack([_gates(v[2], mode, H) for v in per])
        R = np.stack([_gates(v[3], mode, H) for v in per])
        B = np.stack([np.concatenate([_gates(v[4], mode, H), _gates(v[5], mode, H)]) for v in per])
        init = ['' if z else _slice(ctx, st, [l * D], [(l + 1) * D], [1], None) for st, z in zip(states, zero)]
        y = ctx.add(op, [x, weights(W, f"l{l}_W"), weights(R, f"l{l}_R"), weights(B, f"l{l}_B"), ''] + init, n=2 + (mode == 'lstm'),
                    hidden_size=H, direction='bidirectional' if D == 2 else 'forward', **extra)
        hs.append(y[1])
        cs += y[2:]
        t = ctx.add1('Transpose', [y[0]], perm=[0, 2, 1, 3])   # (T, D, N, H) -> (T, N, D, H) -> (T, N, D*H)
        x = ctx.add1('Reshape', [t, ctx.i64([0, 0, -1])], outs[0] if l == L - 1 else None)
    for o, parts in zip(outs[1:], (hs, cs)):
        ctx.add1('Concat', parts, o, axis=0) if len(parts) > 1 else ctx.add1('Identity', parts, o)


# ---------------------------------------------------------------- the driver
def _infer_all(graph, feed):
    """node -> (shapes, dtypes) from feed {var: (shape, dtype)}; errors name the node."""
    out = {}
    for n in graph.nodes:
        if n.is_var:
            out[n] = ([tuple(feed[n][0])], [np.dtype(feed[n][1])])
            continue
        shapes = [out[s][0][j] for s, j in n.inputs]
        dtypes = [out[s][1][j] for s, j in n.inputs]
        out[n] = n.op.infer(n.attrs, shapes, dtypes)
    return out


def _entry_names(graph):
    """The ONNX tensor name of each (node, output): the graph's names, numbered outputs where there are several."""
    names, used = {}, set()
    for n in graph.nodes:
        k = 1 if n.is_var else n.num_outputs - n.op.hidden_outputs
        for j in range(k):
            base = n.name if j == 0 and (n.is_var or n.op.n_visible(n.attrs) == 1) else f"{n.name}_output{j}"
            name, i = base, 1
            while name in used:
                name, i = f"{base}_{i}", i + 1
            used.add(name)
            names[(n, j)] = name
    return names


def _const_values(graph, values):
    """Fold what converters need as constants (the RNN's flat parameters from _rnn_param_concat): id -> array."""
    def value(n, j):
        if n.is_var:
            return values.get(n)
        if n.op.name not in ('_rnn_param_concat', 'Concat', 'Reshape', '_np_reshape', 'Cast', '_copy'):
            return None
        args = [value(s, k) for s, k in n.inputs]
        if any(v is None for v in args):
            return None
        out = n.op.ref({k: v for k, v in n.attrs.items()}, *args)
        return (out if isinstance(out, tuple) else (out,))[j]
    return value


def graph_to_model(graph, data_vars, values, in_shapes, in_types, opset=None, dynamic_shapes=None,
                   name='graphc', doc=''):
    """ModelProto of graph. data_vars: the input variables, in_shapes/in_types theirs; values: var -> array
    for every other variable (initializers); dynamic_shapes: per input, shapes with None for dynamic dims."""
    onnx = _onnx()
    from onnx import helper
    opset = DEFAULT_OPSET if opset is None else int(opset)
    if not MIN_OPSET <= opset <= onnx.defs.onnx_opset_version():
        raise GraphcError(f"export_model: opset_version {opset} is outside {MIN_OPSET}.."
                          f"{onnx.defs.onnx_opset_version()} (graphc's exporter .. the installed onnx package)")
    feed = {v: (s, t) for v, s, t in zip(data_vars, in_shapes, in_types)}
    for v in graph.inputs:
        if v not in feed:
            if v not in values:
                raise GraphcError(f"export_model: no value for parameter {v.name!r} (pass it in params, or list "
                                  f"it as a data input with a shape)")
            feed[v] = (values[v].shape, values[v].dtype)
    shapes = _infer_all(graph, feed)
    alt = None
    dyn_of = {}
    if dynamic_shapes is not None:
        alt_feed = dict(feed)
        for v, s, ds in zip(data_vars, in_shapes, dynamic_shapes):
            if ds is None:
                continue
            if len(ds) != len(s):
                raise GraphcError(f"export_model: dynamic shape {ds} of input {v.name!r} has {len(ds)} dims, "
                                  f"its shape {tuple(s)} has {len(s)}")
            dyn_of[v] = [d is None for d in ds]
            alt_feed[v] = (tuple(2 * d + 1 if d is None or dd is None else d
                                     for d, dd in zip(s, ds)), feed[v][1])
        try:
            alt = _infer_all(graph, alt_feed)
        except GraphcError as e:
            raise GraphcError(f"export_model: the graph does not accept other sizes of its dynamic dims: {e}") from None
    names = _entry_names(graph)
    ctx = Ctx(opset, shapes, alt)
    ctx.names |= set(names.values())
    value = _const_values(graph, values)
    used = {(s, j) for n in graph.nodes for s, j in n.inputs} | {(n, j) for n, j in graph.outputs}
    inputs, outputs = [], []
    for v in data_vars:
        s, t = feed[v]
        dims = [(f"{'batch' if i == 0 else v.name + '_dim' + str(i)}" if dyn_of.get(v, [False] * len(s))[i]
                 else int(d)) for i, d in enumerate(s)]
        inputs.append(helper.make_tensor_value_info(names[(v, 0)], onnx_dtype(t), dims))
    from onnx import numpy_helper
    for v in graph.inputs:
        if v not in feed or v in data_vars:
            continue
        if v in values:
            ctx.inits.append(numpy_helper.from_array(np.array(values[v], order="C"), names[(v, 0)]))
    for n in graph.nodes:
        if n.is_var:
            continue
        conv = EXPORTERS.get(n.op.name)
        if conv is None:
            why = NOT_EXPORTABLE.get(n.op.name, 'no ONNX converter')
            raise GraphcError(f"export_model: node {n.name!r}: op {n.op.name} cannot be exported to ONNX: {why}")
        nvis = max([j + 1 for j in range(n.num_outputs - n.op.hidden_outputs) if (n, j) in used] + [1])
        for s, j in n.inputs:
            if (s, j) not in names:
                raise GraphcError(f"export_model: node {n.name!r} reads output {j} of {s.name!r}, which MXNet does "
                                  "not expose (not exportable)")
        ctx.node = n
        ctx.value = lambda k, n=n: value(*n.inputs[k])
        ctx.is_zeros = lambda k, n=n: _is_zeros(n.inputs[k], shapes)
        try:
            conv(ctx, n, [names[(s, j)] for s, j in n.inputs], [names[(n, j)] for j in range(nvis)])
        except Unsupported as e:
            raise GraphcError(f"export_model: node {n.name!r} ({n.op.name}) cannot be exported to ONNX: {e}") from None
    ctx.node = None
    seen = set()
    for n, j in graph.outputs:
        nm = names.get((n, j))
        if nm is None:
            raise GraphcError(f"export_model: graph output {j} of {n.name!r} is hidden from MXNet (not exportable)")
        if nm in seen or n.is_var:   # an output listed twice, or an input returned as is: a copy under a new name
            src, nm = nm, ctx.fresh(nm + '_out')
            ctx.add1('Identity', [src], nm)
        seen.add(nm)
        s, t = shapes[n][0][j], shapes[n][1][j]
        dyn = ctx._dyn(n, j)
        outputs.append(helper.make_tensor_value_info(nm, onnx_dtype(t), [None if dd else int(d)
                                                                         for d, dd in zip(s, dyn)]))
    read = {i for nd in ctx.nodes for i in nd.input} | {o.name for o in outputs}
    inits = [t for t in ctx.inits if t.name in read]   # e.g. gamma under fix_gamma: ones are used instead
    g = helper.make_graph(ctx.nodes, name, inputs, outputs, initializer=inits)
    from .. import __version__
    model = helper.make_model(g, opset_imports=[helper.make_opsetid('', opset)], producer_name='graphc',
                              producer_version=__version__, doc_string=doc)
    model.ir_version = min(model.ir_version, _ir_version(opset))
    return model


def _ir_version(opset):
    """The oldest IR version that holds this opset (onnxruntime refuses IR versions newer than it knows), from the
    onnx package's release table (release, IR version, ai.onnx opset, ...)."""
    from onnx import helper
    return min((r[1] for r in helper.VERSION_TABLE if r[2] >= opset), default=helper.VERSION_TABLE[-1][1])


def _is_zeros(entry, shapes):
    n, j = entry
    return (not n.is_var and n.op.name in ('_zeros', 'zeros_like')) or 0 in shapes[n][0][j]


# ---------------------------------------------------------------- MXNet 1.9's API
def _load_params(params):
    if params is None:
        return {}
    if isinstance(params, (str, os.PathLike)):
        from ..serialization import load_ndarrays
        params = load_ndarrays(os.fspath(params))
    if isinstance(params, (list, tuple)):   # MXNet 1.9 also takes [arg_params, aux_params]
        merged = {}
        for p in params:
            merged.update(p or {})
        params = merged
    out = {}
    for k, v in params.items():
        k = k[4:] if k.startswith(('arg:', 'aux:')) else k
        out[k] = v.asnumpy() if hasattr(v, 'asnumpy') else np.asarray(v)
    return out


def _as_graph(sym):
    from ..symbol.symbol import Symbol
    if isinstance(sym, (str, os.PathLike)):
        from ..mxjson import load_json_file
        sym = load_json_file(os.fspath(sym))
    if isinstance(sym, Symbol):
        return Graph(sym._entries)
    if isinstance(sym, Graph):
        return sym
    raise GraphcError(f"export_model: sym must be a Symbol, a -symbol.json path or a HybridBlock, got "
                      f"{type(sym).__name__}")


def _shape_list(in_shapes, n):
    if in_shapes is None:
        return None
    shapes = [in_shapes] if in_shapes and all(isinstance(d, (int, np.integer)) or d is None for d in in_shapes) \
        else list(in_shapes)
    if len(shapes) != n:
        raise GraphcError(f"export_model: {len(shapes)} input shapes for {n} data inputs")
    return [tuple(s) for s in shapes]


def export_model(sym, params=None, in_shapes=None, in_types=np.float32, onnx_file_path='model.onnx', verbose=False,
                 dynamic=False, dynamic_input_shapes=None, run_shape_inference=False, input_type=None,
                 input_shape=None, large_model=False, opset_version=None):
    """MXNet 1.9's `mx.onnx.export_model`: write `sym` (a Symbol, a -symbol.json path, or a hybridized
    HybridBlock) with `params` (a dict name -> array, arg:/aux: prefixes allowed, or a .params path) as ONNX.

    in_shapes: the data inputs' shapes (the graph's variables not in params, in list_arguments order);
    in_types: one dtype or one per input; dynamic=True with dynamic_input_shapes (None marks a dynamic dim;
    default: a dynamic batch, dim 0) makes those dims symbolic. Returns onnx_file_path.
    """
    from ..gluon.block import HybridBlock
    onnx = _onnx()
    in_shapes = in_shapes if in_shapes is not None else input_shape   # MXNet 1.9's deprecated spellings
    in_types = input_type if input_type is not None else in_types
    if isinstance(sym, HybridBlock):
        return export_block(sym, onnx_file_path, in_shapes, in_types, dynamic, dynamic_input_shapes, opset_version,
                            run_shape_inference)
    graph = _as_graph(sym)
    vals = _load_params(params)
    for v in graph.inputs:
        if 'value' in v.extra and v.name not in vals:
            vals[v.name] = np.asarray(v.extra['value'])
    data_vars = [v for v in graph.inputs if v.name not in vals]
    shapes = _shape_list(in_shapes, len(data_vars))
    if shapes is None:
        raise GraphcError(f"export_model: in_shapes is required (data inputs: {[v.name for v in data_vars]})")
    types = list(in_types) if isinstance(in_types, (list, tuple)) else [in_types] * len(data_vars)
    if len(types) != len(data_vars):
        raise GraphcError(f"export_model: {len(types)} input types for {len(data_vars)} data inputs")
    values = {v: vals[v.name] for v in graph.inputs if v.name in vals}
    dyn = None
    if dynamic:
        dyn = _shape_list(dynamic_input_shapes, len(data_vars)) if dynamic_input_shapes is not None else \
            [(None,) + tuple(s[1:]) for s in shapes]
    model = graph_to_model(graph, data_vars, values, shapes, [as_dtype(t) for t in types], opset_version, dyn)
    _write(onnx, model, onnx_file_path, run_shape_inference)
    if verbose:
        print(onnx.helper.printable_graph(model.graph))
    return onnx_file_path


def _write(onnx, model, path, run_shape_inference=False):
    if run_shape_inference:
        model = onnx.shape_inference.infer_shapes(model)
    from ..mxjson import atomic_write
    atomic_write(os.fspath(path), model.SerializeToString())


def export_block(block, path, in_shapes=None, in_types=None, dynamic=False, dynamic_input_shapes=None,
                 opset_version=None, run_shape_inference=False):
    """HybridBlock.export_onnx: the graph of the block's last hybridized call (its input shapes by default)."""
    onnx = _onnx()
    entry = block.cached_graph()
    if entry is None:
        raise GraphcError(f"{block.name}: export_onnx needs a traced graph: call block.hybridize() and run forward "
                          "once before exporting")
    graph = Graph(entry.visible)
    data_vars = list(entry.data_vars)
    values = {v: param.data().asnumpy() for param, v in entry.param_vars}
    for v in graph.inputs:
        if 'value' in v.extra:
            values[v] = np.asarray(v.extra['value'])
    shapes = _shape_list(in_shapes, len(data_vars)) or [tuple(v.shapes[0]) for v in data_vars]
    types = [v.dtypes[0] for v in data_vars] if in_types is None else list(in_types) \
        if isinstance(in_types, (list, tuple)) else [in_types] * len(data_vars)
    dyn = None
    if dynamic:
        dyn = _shape_list(dynamic_input_shapes, len(data_vars)) if dynamic_input_shapes is not None else \
            [(None,) + tuple(s[1:]) for s in shapes]
    model = graph_to_model(graph, data_vars, values, shapes, [as_dtype(t) for t in types], opset_version, dyn,
                           name=block.name)
    _write(onnx, model, path, run_shape_inference)
    return path
