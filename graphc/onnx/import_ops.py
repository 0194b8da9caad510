"""One builder per ONNX op type: ONNX's semantics in registry ops, or Unsupported saying what is not covered.

Inputs arrive as Symbols, as constants (name, array) from initializers and Constant nodes, or None for an omitted
optional input. ONNX booleans are kept as 0/1 in the producing op's dtype (graphc's comparisons return that).
"""
import numpy as np

from .importer import Unsupported, imports
from .export import GATE_ORDER, INT_MAX

BIG = 1 << 31


class ShapeOf:
    """The output of a Shape node: usable only by ConstantOfShape (zeros_like / ones_like)."""
    def __init__(self, x):
        self.x = x


def _one(b, opname, ins, **attrs):
    return b.op(opname, ins, **attrs)


UNARY = {'Relu': 'relu', 'Sigmoid': 'sigmoid', 'Tanh': 'tanh', 'Exp': 'exp', 'Log': 'log', 'Sqrt': 'sqrt',
         'Abs': 'abs', 'Neg': 'negative', 'Erf': 'erf', 'Floor': 'floor', 'Ceil': 'ceil', 'Round': 'round',
         'Sign': 'sign', 'Sin': 'sin', 'Cos': 'cos', 'Reciprocal': 'reciprocal', 'Softplus': 'softrelu',
         'Softsign': 'softsign', 'Identity': '_copy'}


@imports(*UNARY)
def _unary(b, n, ins, a):
    if n.op_type == 'Identity' and isinstance(ins[0], tuple):
        return [ins[0]]
    return _one(b, UNARY[n.op_type], ins[:1])


@imports('Dropout')
def _dropout(b, n, ins, a):
    if len(n.output) > 1 and n.output[1]:
        raise Unsupported("Dropout's mask output")
    return _one(b, '_copy', ins[:1])


BINARY = {'Add': 'add', 'Sub': 'sub', 'Mul': 'mul', 'Div': 'div', 'Pow': 'power', 'Max': 'maximum', 'Min': 'minimum',
          'Equal': 'equal', 'Greater': 'greater', 'Less': 'lesser', 'GreaterOrEqual': 'greater_equal',
          'LessOrEqual': 'lesser_equal', 'Sum': 'add', 'And': 'mul', 'Or': 'maximum'}


@imports(*BINARY)
def _binary(b, n, ins, a):
    if n.op_type not in ('Max', 'Min', 'Sum') and len(ins) != 2:
        raise Unsupported(f"{n.op_type} takes 2 inputs, got {len(ins)}")
    x = ins[0]
    if n.op_type in ('And', 'Or'):   # ONNX booleans as 0/1: And = product, Or = maximum
        ins = [_one(b, '_not_equal_scalar', [v], scalar=0.0)[0] for v in ins]
        x = ins[0]
    for y in ins[1:]:
        x = _one(b, 'broadcast_' + BINARY[n.op_type], [x, y])[0]
    if len(ins) == 1:
        x = _one(b, '_copy', [x])[0]
    return [x]


@imports('Mean')
def _mean(b, n, ins, a):
    x = ins[0]
    for y in ins[1:]:
        x = _one(b, 'broadcast_add', [x, y])[0]
    return _one(b, '_div_scalar', [x], scalar=float(len(ins)))


@imports('Mod')
def _mod(b, n, ins, a):
    if a.get('fmod', 0):
        raise Unsupported("Mod with fmod=1 (C's fmod)")
    return _one(b, 'broadcast_mod', ins)


@imports('Not')
def _not(b, n, ins, a):
    return _one(b, '_equal_scalar', ins, scalar=0.0)


@imports('Where')
def _where(b, n, ins, a):
    shapes = [b.shape(v) for v in ins]
    out = tuple(np.broadcast_shapes(*shapes))
    return _one(b, 'where', [_broadcast(b, v, s, out) for v, s in zip(ins, shapes)])   # graphc's: equal shapes


def _broadcast(b, x, s, out):
    if s == out:
        return x
    if len(s) < len(out):
        x = _one(b, 'Reshape', [x], shape=(1,) * (len(out) - len(s)) + s)[0]
    return _one(b, 'broadcast_to', [x], shape=out)[0]


@imports('Cast')
def _cast(b, n, ins, a):
    from .importer import DTYPES
    to = DTYPES.get(a.get('to'))
    if to is None:
        raise Unsupported(f"Cast to element type {a.get('to')}")
    if to == 'bool':   # booleans as 0/1
        return _one(b, '_not_equal_scalar', ins, scalar=0.0)
    return _one(b, 'Cast', ins, dtype=to)


@imports('Clip')
def _clip(b, n, ins, a):
    lo = float(b.const(1, ins, 'min')) if len(ins) > 1 and ins[1] is not None else a.get('min', -np.inf)
    hi = float(b.const(2, ins, 'max')) if len(ins) > 2 and ins[2] is not None else a.get('max', np.inf)
    return _one(b, 'clip', ins[:1], a_min=float(lo), a_max=float(hi))


@imports('LeakyRelu', 'Elu', 'Selu', 'PRelu', 'Gelu')
def _leaky(b, n, ins, a):
    t = n.op_type
    if t == 'LeakyRelu':
        return _one(b, 'LeakyReLU', ins, act_type='leaky', slope=a.get('alpha', 0.01))
    if t == 'Elu':
        return _one(b, 'LeakyReLU', ins, act_type='elu', slope=a.get('alpha', 1.0))
    if t == 'Selu':
        from ..ops.nn import SELU_A, SELU_L
        if abs(a.get('alpha', 1.67326319217681884765625) - SELU_A) > 1e-6 or \
                abs(a.get('gamma', 1.05070102214813232421875) - SELU_L) > 1e-6:
            raise Unsupported("Selu with other constants than SELU's (graphc's selu has them fixed)")
        return _one(b, 'LeakyReLU', ins, act_type='selu')
    if t == 'Gelu':
        if a.get('approximate', 'none') != 'none':
            raise Unsupported("Gelu with approximate='tanh'")
        return _one(b, 'LeakyReLU', ins, act_type='gelu')
    slope = ins[1]
    s = b.shape(slope)
    if s != (1,) and (len(s) < 1 or any(d != 1 for d in s[1:])):
        raise Unsupported(f"PRelu with slope shape {s}; graphc's prelu takes one slope per channel (axis 1)")
    g = _one(b, 'Reshape', [slope], shape=(-1,))[0] if len(s) > 1 else slope
    return _one(b, 'LeakyReLU', [ins[0], g], act_type='prelu')


# ---------------------------------------------------------------- layers
def _sym_pads(a, what):
    p = a.get('pads', [0, 0, 0, 0])
    if a.get('auto_pad', 'NOTSET') not in ('NOTSET', 'VALID'):
        raise Unsupported(f"{what} with auto_pad={a['auto_pad']!r}")
    if len(p) != 4:
        raise Unsupported(f"{what}: only 2-D (pads of 4 values), got pads {p}")
    return p


@imports('Conv')
def _conv(b, n, ins, a):
    w = b.shape(ins[1])
    if len(w) != 4:
        raise Unsupported(f"Conv: only 2-D convolutions are supported (weight shape {w})")
    p = _sym_pads(a, 'Conv')
    if p[:2] != p[2:]:
        raise Unsupported(f"Conv with asymmetric pads {p}")
    ins = [x for x in ins if x is not None]
    return _one(b, 'Convolution', ins, kernel=tuple(w[2:]), stride=tuple(a.get('strides', (1, 1))),
                dilate=tuple(a.get('dilations', (1, 1))), pad=tuple(p[:2]), num_filter=w[0],
                num_group=a.get('group', 1), no_bias=len(ins) < 3)


@imports('ConvTranspose')
def _deconv(b, n, ins, a):
    w = b.shape(ins[1])
    if len(w) != 4:
        raise Unsupported(f"ConvTranspose: only 2-D is supported (weight shape {w})")
    if a.get('output_shape'):
        raise Unsupported("ConvTranspose with output_shape")
    p = _sym_pads(a, 'ConvTranspose')
    if p[:2] != p[2:]:
        raise Unsupported(f"ConvTranspose with asymmetric pads {p}")
    g = a.get('group', 1)
    ins = [x for x in ins if x is not None]
    return _one(b, 'Deconvolution', ins, kernel=tuple(w[2:]), stride=tuple(a.get('strides', (1, 1))),
                dilate=tuple(a.get('dilations', (1, 1))), pad=tuple(p[:2]), adj=tuple(a.get('output_padding', (0, 0))),
                num_filter=w[1] * g, num_group=g, no_bias=len(ins) < 3)


@imports('MaxPool', 'AveragePool')
def _pool(b, n, ins, a):
    from ..ops.nn import pool_geom
    what = n.op_type
    if len(n.output) > 1 and n.output[1]:
        raise Unsupported("MaxPool's indices output")
    if any(d != 1 for d in a.get('dilations', (1, 1))) or a.get('storage_order', 0):
        raise Unsupported(f"{what} with dilations or storage_order")
    k = tuple(a.get('kernel_shape', ()))
    if len(k) != 2:
        raise Unsupported(f"{what}: only 2-D pooling is supported (kernel_shape {list(k)})")
    p = _sym_pads(a, what)
    attrs = dict(kernel=k, stride=tuple(a.get('strides', (1, 1))), pad=tuple(p[:2]),
                 pool_type='max' if what == 'MaxPool' else 'avg',
                 pooling_convention='full' if a.get('ceil_mode', 0) else 'valid')
    if what == 'AveragePool':
        attrs['count_include_pad'] = bool(a.get('count_include_pad', 0))
    if p[:2] != p[2:]:   # extra bottom/right padding is MXNet's 'full' overhang where it is exactly that
        full = dict(attrs, pooling_convention='full', global_pool=False, count_include_pad=True)
        _, _, _, extra, _ = pool_geom(full, b.shape(ins[0]))
        if what != 'MaxPool' or a.get('ceil_mode', 0) or [p[2] - p[0], p[3] - p[1]] != list(extra):
            raise Unsupported(f"{what} with asymmetric pads {p}")
        attrs['pooling_convention'] = 'full'
    return _one(b, 'Pooling', ins[:1], **attrs)


@imports('GlobalAveragePool', 'GlobalMaxPool')
def _gpool(b, n, ins, a):
    if len(b.shape(ins[0])) != 4:
        raise Unsupported(f"{n.op_type}: only 4-d NCHW data")
    return _one(b, 'Pooling', ins, kernel=(1, 1), global_pool=True,
                pool_type='max' if n.op_type == 'GlobalMaxPool' else 'avg')


@imports('BatchNormalization')
def _bn(b, n, ins, a):
    if a.get('training_mode', 0) or len([o for o in n.output if o]) > 1:
        raise Unsupported("BatchNormalization in training mode")
    out = _one(b, 'BatchNorm', ins, eps=a.get('epsilon', 1e-5), momentum=a.get('momentum', 0.9), fix_gamma=False,
               use_global_stats=True)
    return out[:1]


@imports('LayerNormalization')
def _ln(b, n, ins, a):
    s = b.shape(ins[0])
    ax = a.get('axis', -1) % len(s)
    if ax != len(s) - 1 or len([o for o in n.output if o]) > 1:
        raise Unsupported("LayerNormalization over more than the last axis, or its mean/inv-std outputs")
    beta = ins[2] if len(ins) > 2 and ins[2] is not None else ('%s_zero_bias' % b.node_name, np.zeros(s[-1:], 'f'))
    return _one(b, 'LayerNorm', [ins[0], ins[1], beta], axis=-1, eps=a.get('epsilon', 1e-5))[:1]


@imports('Gemm')
def _gemm(b, n, ins, a):
    if a.get('transA', 0) or a.get('alpha', 1.0) != 1.0 or a.get('beta', 1.0) != 1.0:
        raise Unsupported("Gemm with transA or alpha/beta other than 1")
    w, tb = ins[1], a.get('transB', 0)
    if isinstance(w, tuple):   # a constant weight is stored as FullyConnected's (units, inputs)
        w = (w[0] + ('' if tb else '_T'), np.ascontiguousarray(w[1] if tb else w[1].T))
    elif not tb:
        w = _one(b, 'transpose', [w])[0]
    units = b.shape(w)[0]
    args = [ins[0], w]
    if len(ins) > 2 and ins[2] is not None:
        c = ins[2]
        if int(np.prod(b.shape(c))) != units or (b.shape(c) != (units,) and b.shape(c)[-1] != units):
            raise Unsupported(f"Gemm with bias of shape {b.shape(c)} (graphc's FullyConnected: one per output)")
        args.append((c[0], c[1].reshape(-1)) if isinstance(c, tuple) else _one(b, 'Reshape', [c], shape=(-1,))[0])
    return _one(b, 'FullyConnected', args, num_hidden=units, no_bias=len(args) < 3, flatten=True)


@imports('MatMul')
def _matmul(b, n, ins, a):
    sa, sb = b.shape(ins[0]), b.shape(ins[1])
    if len(sb) <= 2 and len(sa) >= 1:   # numpy's matmul with a matrix or vector on the right: tensordot = dot
        return _one(b, 'dot', ins)
    if len(sa) == len(sb) == 3 and sa[0] == sb[0]:
        return _one(b, 'batch_dot', ins)
    raise Unsupported(f"MatMul of shapes {sa} and {sb}")


@imports('Softmax', 'LogSoftmax')
def _softmax(b, n, ins, a):
    s = b.shape(ins[0])
    ax = a.get('axis', -1 if b.opset >= 13 else 1) % max(len(s), 1)
    if b.opset < 13 and ax != len(s) - 1:
        raise Unsupported(f"{n.op_type} of opset {b.opset} over axes {ax}.. (flattened)")
    return _one(b, 'softmax' if n.op_type == 'Softmax' else 'log_softmax', ins, axis=ax)


# ---------------------------------------------------------------- shape ops
@imports('Flatten')
def _flatten(b, n, ins, a):
    s = b.shape(ins[0])
    ax = a.get('axis', 1) % (len(s) + 1) if s else a.get('axis', 1)
    if ax == 1:
        return _one(b, 'Flatten', ins)
    return _one(b, '_np_reshape', ins, newshape=(int(np.prod(s[:ax])), -1))


@imports('Reshape')
def _reshape(b, n, ins, a):
    shape = tuple(int(d) for d in b.const(1, ins, 'shape'))
    if a.get('allowzero', 0) and 0 in shape:
        return _one(b, '_np_reshape', ins[:1], newshape=shape)
    return _one(b, 'Reshape', ins[:1], shape=shape)   # ONNX's 0 (copy) and -1 (infer) are MXNet's codes too


@imports('Transpose')
def _transpose(b, n, ins, a):
    return _one(b, 'transpose', ins, axes=tuple(a['perm']) if 'perm' in a else ())


@imports('Concat')
def _concat(b, n, ins, a):
    ins = [x for x in ins if x is not None]
    return _one(b, 'Concat', ins, dim=a['axis'], num_args=len(ins))


def _axes(b, ins, a, k=1):
    if len(ins) > k and ins[k] is not None:
        return [int(v) for v in b.const(k, ins, 'axes')]
    return a.get('axes')


@imports('Squeeze')
def _squeeze(b, n, ins, a):
    axes = _axes(b, ins, a)
    return _one(b, 'squeeze', ins[:1], axis=None if not axes else tuple(axes))


@imports('Unsqueeze')
def _unsqueeze(b, n, ins, a):
    axes = _axes(b, ins, a)
    if not axes:
        raise Unsupported("Unsqueeze without axes")
    r = len(b.shape(ins[0])) + len(axes)
    x = ins[0]
    for ax in sorted(v % r for v in axes):
        x = _one(b, 'expand_dims', [x], axis=ax)[0]
    return [x]


@imports('Slice')
def _slice(b, n, ins, a):
    s = b.shape(ins[0])
    starts = [int(v) for v in b.const(1, ins, 'starts')]
    ends = [int(v) for v in b.const(2, ins, 'ends')]
    axes = [int(v) % len(s) for v in b.const(3, ins, 'axes')] if len(ins) > 3 and ins[3] is not None \
        else list(range(len(starts)))
    steps = [int(v) for v in b.const(4, ins, 'steps')] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes) or 0 in steps:
        raise Unsupported("Slice with starts/ends/axes/steps of different lengths, repeated axes or a zero step")
    nd = max(axes) + 1 if axes else 0
    begin, end, step = [None] * nd, [None] * nd, [1] * nd
    for ax, st, e, sp in zip(axes, starts, ends, steps):   # ends past the dim (INT_MAX, INT_MIN) are open
        begin[ax] = None if abs(st) >= BIG else st
        end[ax] = None if abs(e) >= BIG else e
        step[ax] = sp
    return _one(b, 'slice', ins[:1], begin=tuple(begin), end=tuple(end), step=tuple(step))


@imports('Split')
def _split(b, n, ins, a):
    s = b.shape(ins[0])
    ax = a.get('axis', 0) % len(s)
    k = len(n.output)
    sizes = [int(v) for v in b.const(1, ins, 'split')] if len(ins) > 1 and ins[1] is not None else a.get('split')
    if not sizes:
        if s[ax] % k:
            raise Unsupported(f"Split of {s[ax]} into {k} uneven parts")
        sizes = [s[ax] // k] * k
    if sum(sizes) != s[ax] or len(sizes) != k:
        raise Unsupported(f"Split sizes {sizes} do not add up to dim {ax} ({s[ax]}) for {k} outputs")
    if len(set(sizes)) == 1:
        out = _one(b, 'SliceChannel', ins[:1], num_outputs=k, axis=ax)
        return out
    outs, at = [], 0
    for z in sizes:
        outs += _one(b, 'slice_axis', ins[:1], axis=ax, begin=at, end=at + z)
        at += z
    return outs


@imports('Gather')
def _gather(b, n, ins, a):
    s = b.shape(ins[0])
    return _one(b, 'take', ins, axis=a.get('axis', 0) % len(s), mode='raise')   # ONNX takes -n..n-1, as 'raise'


@imports('GatherElements')
def _gather_elements(b, n, ins, a):
    s, si = b.shape(ins[0]), b.shape(ins[1])
    ax = a.get('axis', 0) % len(s)
    if si != s[:ax] + (1,) + s[ax + 1:]:
        raise Unsupported(f"GatherElements with index shape {si} for data {s} (graphc's pick takes one per row)")
    return _one(b, 'pick', ins, axis=ax, keepdims=True, mode='raise')


RED = {'ReduceSum': 'sum', 'ReduceMean': 'mean', 'ReduceMax': 'max', 'ReduceMin': 'min', 'ReduceProd': 'prod',
       'ReduceL1': 'norm', 'ReduceL2': 'norm'}


@imports(*RED)
def _reduce(b, n, ins, a):
    axes = _axes(b, ins, a)
    keep = bool(a.get('keepdims', 1))
    if not axes:
        if a.get('noop_with_empty_axes', 0):
            return _one(b, '_copy', ins[:1])
        axes = list(range(len(b.shape(ins[0]))))
    extra = {'ord': 1 if n.op_type == 'ReduceL1' else 2} if RED[n.op_type] == 'norm' else {}
    return _one(b, RED[n.op_type], ins[:1], axis=tuple(axes), keepdims=keep, **extra)


@imports('ArgMax', 'ArgMin')
def _arg(b, n, ins, a):
    if a.get('select_last_index', 0):
        raise Unsupported(f"{n.op_type} with select_last_index=1")
    r = _one(b, n.op_type.lower(), ins, axis=a.get('axis', 0), keepdims=bool(a.get('keepdims', 1)))
    return _one(b, 'Cast', r, dtype='int64')


@imports('Constant')
def _constant(b, n, ins, a):
    for k in ('value', 'value_float', 'value_int', 'value_floats', 'value_ints'):
        if k in a:
            v = np.asarray(a[k], dtype=np.float32 if 'float' in k else np.int64 if 'int' in k else None)
            return [(b.name(n.output[0] if n.output else 'const'), v)]
    raise Unsupported("Constant without a value, value_float(s) or value_int(s)")


@imports('Shape')
def _shape(b, n, ins, a):
    if 'start' in a or 'end' in a:
        raise Unsupported("Shape with start/end")
    return [ShapeOf(ins[0])]


@imports('ConstantOfShape')
def _const_of_shape(b, n, ins, a):
    v = a.get('value', np.zeros(1, np.float32))
    if v.size != 1:
        raise Unsupported("ConstantOfShape with a value of more than one element")
    fill, dt = float(v.reshape(-1)[0]), str(v.dtype)
    if isinstance(ins[0], ShapeOf):
        x = b.sym(ins[0].x)
        if b.shape(x) and str(np.dtype(_dtype(x))) != dt:
            x = _one(b, 'Cast', [x], dtype=dt)[0]
        base = _one(b, 'ones_like' if fill == 1 else 'zeros_like', [x])
    else:
        shape = tuple(int(d) for d in b.const(0, ins, 'shape'))
        base = _one(b, '_zeros', [], shape=shape, dtype=dt)
        if fill == 1:
            base = _one(b, '_plus_scalar', base, scalar=1.0)
    if fill not in (0, 1):
        base = _one(b, '_plus_scalar', base, scalar=fill)
    return base


def _dtype(x):
    n, j = x._one()
    return n.dtypes[j]


@imports('Expand')
def _expand(b, n, ins, a):
    s = b.shape(ins[0])
    tgt = [int(d) for d in b.const(1, ins, 'shape')]
    r = max(len(s), len(tgt))
    s2, tgt = (1,) * (r - len(s)) + s, [1] * (r - len(tgt)) + tgt
    shape = tuple(0 if t == 1 else t for t in tgt)   # 1 keeps the input's dim (bidirectional broadcast)
    x = ins[0] if len(s) == r else _one(b, 'Reshape', ins[:1], shape=s2)[0]
    return _one(b, 'broadcast_to', [x], shape=shape)


@imports('Tile')
def _tile(b, n, ins, a):
    return _one(b, 'tile', ins[:1], reps=tuple(int(v) for v in b.const(1, ins, 'repeats')))


# ---------------------------------------------------------------- LSTM / GRU / RNN -> the fused RNN op (one layer)
@imports('LSTM', 'GRU', 'RNN')
def _rnn(b, n, ins, a):
    t = n.op_type
    H = a['hidden_size']
    D = 2 if a.get('direction', 'forward') == 'bidirectional' else 1
    if a.get('direction', 'forward') == 'reverse' or a.get('layout', 0) or a.get('clip') is not None \
            or a.get('input_forget', 0):
        raise Unsupported(f"{t} with direction='reverse', layout=1, clip or input_forget")
    if len(ins) > 4 and ins[4] is not None:
        raise Unsupported(f"{t} with sequence_lens")
    if t == 'GRU' and not a.get('linear_before_reset', 0):
        raise Unsupported("GRU with linear_before_reset=0 (MXNet's GRU resets after the linear map)")
    acts = a.get('activations')
    if t == 'RNN':
        act = (acts or ['Tanh'])[0]
        if act not in ('Tanh', 'Relu') or (acts and len(set(acts)) > 1):
            raise Unsupported(f"RNN with activations {acts}")
        mode = 'rnn_tanh' if act == 'Tanh' else 'rnn_relu'
    else:
        if acts and acts != {'LSTM': ['Sigmoid', 'Tanh', 'Tanh'], 'GRU': ['Sigmoid', 'Tanh']}[t] * D:
            raise Unsupported(f"{t} with activations {acts}")
        mode = t.lower()
    W, R = b.const(1, ins, 'W'), b.const(2, ins, 'R')
    G = len(GATE_ORDER[mode])
    Bv = b.const(3, ins, 'B') if len(ins) > 3 and ins[3] is not None else np.zeros((D, 2 * G * H), W.dtype)
    T, N, C = b.shape(ins[0])
    if W.shape != (D, G * H, C) or R.shape != (D, G * H, H) or Bv.shape != (D, 2 * G * H):
        raise Unsupported(f"{t}: W {W.shape}, R {R.shape}, B {Bv.shape} do not fit hidden_size {H}, input {C}")
    inv = np.argsort(GATE_ORDER[mode])

    def back(w):   # ONNX's gate order -> MXNet's
        return np.concatenate([w[g * H:(g + 1) * H] for g in inv], 0)
    flat = [np.concatenate([back(W[d]).reshape(-1), back(R[d]).reshape(-1)]) for d in range(D)]
    flat += [np.concatenate([back(Bv[d][:G * H]), back(Bv[d][G * H:])]) for d in range(D)]
    params = (b.name(f"{b.node_name}_parameters"), np.concatenate(flat).astype(W.dtype))
    nst = 2 if mode == 'lstm' else 1
    states = []
    for k in range(5, 5 + nst):
        s = ins[k] if len(ins) > k else None
        states.append(s if s is not None else _one(b, '_zeros', [], shape=(D, 0, H), dtype=str(W.dtype))[0])
    outs = _one(b, 'RNN', [ins[0], params] + states, state_size=H, num_layers=1, bidirectional=D == 2, mode=mode,
                state_outputs=True)
    y = _one(b, 'Reshape', [outs[0]], shape=(0, 0, D, H))
    y = _one(b, 'transpose', y, axes=(0, 2, 1, 3))
    return y + outs[1:1 + nst]


assert INT_MAX  # (the exporter's open end, which Slice reads back as None)
