"""Shape and dtype inference over a Symbol's graph with partial information, as MXNet's infer_shape.

Forward inference runs the registry's rules once a node's inputs are known. MXNet also infers
backward: a layer's weights from its data (FullyConnected's weight is (num_hidden, features)), and
the inputs of an elementwise op from each other; those rules are the table below. Unknown dims
are None here (0 in MXNet's results), a wholly unknown shape is None.
"""
import numpy as np

from ..base import GraphcShapeError
from ..graph import describe


def _merge(a, b, node):
    """Two partial shapes of one value made into one; a clear error when they disagree."""
    if a is None:
        return b
    if b is None:
        return a
    if len(a) != len(b) or any(x is not None and y is not None and x != y for x, y in zip(a, b)):
        raise GraphcShapeError(f"{describe(node)}{node.op.name if node.op else 'variable'} {node.name!r}: "
                               f"shape {_fmt(a)} does not match the inferred {_fmt(b)}")
    return tuple(x if x is not None else y for x, y in zip(a, b))


def _fmt(s):
    return '(' + ', '.join('?' if d is None else str(d) for d in s) + ')'


def _dim(s, i):
    return None if s is None or not -len(s) <= i < len(s) else s[i]


def _prod(dims):
    return None if any(d is None for d in dims) else int(np.prod(dims, dtype=np.int64))


# op name -> fn(attrs, input shapes, output shapes) -> input shapes (None where it cannot say)
def _fc(a, ins, outs):
    d = ins[0]
    if d is None or not d:  # MXNet's rule needs the data's rank at least (and a 0-d input is an error)
        return [None] * len(ins)
    feat = None if d is None else (d[-1] if not a.get('flatten', True) else _prod(d[1:]))
    data = None
    if outs[0] is not None and a.get('flatten', True):  # the batch from the output (MXNet's rule)
        data = (outs[0][0],) + (None,) * (len(d) - 1)
    return [data, (a['num_hidden'], feat), (a['num_hidden'],)][:len(ins)]


def _conv(a, ins, outs, deconv=False):
    k, g, nf = tuple(a['kernel']), a.get('num_group', 1), a['num_filter']
    if ins[0] is None:
        return [None] * len(ins)
    layout = a.get('layout') if a.get('layout') not in (None, 'None') else 'NC' + 'DHW'[3 - len(k):]
    c = _dim(ins[0], layout.index('C'))
    if deconv:
        w = (c, nf // g) + k
    else:
        w = (nf, None if c is None else c // g) + k
    if layout.index('C') != 1:  # channels-last weights: (num_filter, *kernel, C/g)
        w = (w[0],) + k + (w[1],)
    data = None
    o = outs[0]
    if o is not None and not deconv and layout.index('C') == 1 and len(o) == len(ins[0]):
        # MXNet: the batch from the output, and each spatial size where the stride is 1
        st, dl, pd = a.get('stride') or (1,) * len(k), a.get('dilate') or (1,) * len(k), a.get('pad') or (0,) * len(k)
        data = (o[0], None) + tuple(o[2 + i] + dl[i] * (k[i] - 1) - 2 * pd[i] if o[2 + i] is not None and st[i] == 1
                                    else None for i in range(len(k)))
    return [data, w, (nf,)][:len(ins)]


def _channel(axis_default):
    def rule(a, ins, outs):
        c = _dim(ins[0], a.get('axis', axis_default))
        return [None] + [(c,) if c is not None else None] * (len(ins) - 1)
    return rule


def _embedding(a, ins, outs):
    return [None, (a['input_dim'], a['output_dim'])]


def _dot(a, ins, outs):
    """dot's contracted dims from each other (a's last with b's first; 2-d operands may be transposed), and the
    free dims from the output: a weight's unknown dims from its data, as MXNet's."""
    x, y = ins
    ta, tb = a.get('transpose_a', False), a.get('transpose_b', False)
    if (ta or tb) and ((x is not None and len(x) != 2) or (y is not None and len(y) != 2)):
        return [None, None]
    kx, ky = (0 if ta else -1), (-1 if tb else 0)  # where each operand's contracted dim sits
    k = _dim(x, kx) if _dim(x, kx) is not None else _dim(y, ky)
    o = outs[0]

    def fill(s, kpos, free):
        if s is None:
            return None
        d = list(s)
        d[kpos] = k if d[kpos] is None else d[kpos]
        idx = [i for i in range(len(s)) if i != kpos % len(s)]
        if free is not None and len(free) == len(idx):
            for i, f in zip(idx, free):
                d[i] = f if d[i] is None else d[i]
        return tuple(d)
    nx = None if x is None else len(x) - 1
    fx = None if o is None or nx is None or len(o) < nx else o[:nx]
    fy = None if o is None or nx is None or len(o) < nx else o[nx:]
    return [fill(x, kx, fx), fill(y, ky, fy)]


def _lrelu(a, ins, outs):
    same = _merge(ins[0], outs[0], _Anon)
    return [same] + [(_dim(same, 1),) if _dim(same, 1) is not None else None] * (len(ins) - 1)


class _Anon:
    op, name, block, where = None, '?', '', None


def _upsampling(a, ins, outs):
    if a['sample_type'] != 'bilinear':
        return [None] * len(ins)
    k = 2 * a['scale'] - a['scale'] % 2
    return [None, (a['num_filter'], 1, k, k)][:len(ins)]


def _reshape(a, ins, outs):
    """MXNet's Reshape infers one unknown input dim from a known output's size."""
    d, o = ins[0], outs[0]
    if d is None or o is None or None in o or [x for x in d].count(None) != 1:
        return [None]
    known = _prod([x for x in d if x is not None])
    total = _prod(o)
    if not known or total % known:
        return [None]
    return [tuple(total // known if x is None else x for x in d)]


def _rnn(a, ins, outs):
    """RNN's parameters (the packed size) and initial states from the data's (T, N, C)."""
    from ..ops.rnn import _dims, _out_size, param_size
    d = ins[0]
    if d is None or len(d) != 3 or d[2] is None:
        return [None] * len(ins)
    L, D, H, _, _ = _dims(a, d[2])
    N = d[1]
    states = [(L * D, N, _out_size(a)), (L * D, N, H)] if N is not None else [None, None]
    return ([None, (param_size(a, d[2]),)] + states)[:len(ins)] + [None] * max(0, len(ins) - 4)


def _where(a, ins, outs):
    """x, y and the output share a shape; the condition is that shape or 1-d over axis 0 (not inferred)."""
    same = _merge(_merge(ins[1], ins[2], _Anon), outs[0], _Anon)
    return [None, same, same]


def _slice_channel(a, ins, outs):
    """SliceChannel's input from any output: the other dims as they are, the split axis n times its part."""
    d, o = ins[0], None
    for s in outs:  # (the parts share one shape)
        o = _merge(o, s, _Anon)
    if o is None or d is None:
        return [None]
    ax = a['axis'] % len(d)
    n = a['num_outputs']
    o = o[:ax] + (1,) + o[ax:] if a['squeeze_axis'] else o
    return [tuple(None if o[i] is None else (o[i] * n if i == ax else o[i]) for i in range(len(d)))]


def _concat(a, ins, outs):
    """Concat's inputs from its output: the dims off the axis as the output's; on the axis, a single unknown
    input takes what the others leave."""
    o = outs[0]
    if o is None or any(s is None for s in ins):
        return [None] * len(ins)
    ax = a['dim'] % len(o)
    new = [tuple(o[i] if i != ax else s[i] for i in range(len(o))) for s in ins]
    free = [k for k, s in enumerate(new) if s[ax] is None]
    if len(free) == 1 and o[ax] is not None:
        rest = sum(s[ax] for k, s in enumerate(new) if k != free[0])
        new[free[0]] = tuple(o[ax] - rest if i == ax else new[free[0]][i] for i in range(len(o)))
    return new


BACKWARD = {
    'UpSampling': _upsampling, 'Reshape': _reshape, 'RNN': _rnn, 'where': _where, 'SliceChannel': _slice_channel,
    'Concat': _concat,
    'FullyConnected': _fc, 'Convolution': _conv, 'Deconvolution': lambda a, i, o: _conv(a, i, o, True),
    'BatchNorm': _channel(1), 'LayerNorm': _channel(-1), 'InstanceNorm': _channel(1),
    'Embedding': _embedding, 'LeakyReLU': _lrelu, 'dot': _dot,
}


_PROBES = (1 << 20) + 7, (1 << 20) + 37, 1  # stand-ins for unknown dims: two large ones and a small one


def _partial_forward(n, ins):
    """Output shapes with unknown dims from inputs of known rank with some unknown dims, as MXNet's partial
    inference: the op's rule runs with every unknown dim set to each probe value; an output dim is known where
    all runs agree (a dim that follows an unknown one, or is clamped by it, differs between them). Needs the
    two large probes to pass the rule (the small one may fail it: a kernel larger than 1)."""
    dts = [s.dtypes[j] if s.dtypes else np.dtype('float32') for s, j in n.inputs]
    runs = []
    for i, v in enumerate(_PROBES):
        try:
            runs.append(n.op.infer(n.attrs, [tuple(v if d is None else d for d in s) for s in ins], dts)[0])
        except Exception:  # noqa: BLE001  (a rule rejecting a stand-in value says nothing about the real shapes)
            if i < 2:
                return None
    if any(len(r) != len(runs[0]) or any(a is None or b is None or len(a) != len(b) for a, b in zip(r, runs[0]))
           for r in runs):
        return None
    return [tuple(ds[0] if len(set(ds)) == 1 else None for ds in zip(*outs)) for outs in zip(*runs)]


def forward_partial(n, ins):
    """A node's output shapes from inputs of known rank with unknown dims, as a symbol is built (no fixpoint):
    the op's backward rule first fills what the inputs say of each other (dot's contracted dim), then the
    forward rule runs, with probes where dims are still unknown."""
    rule = BACKWARD.get(n.op.name)
    if rule is not None:
        try:
            ins = [_merge(i, r, n) for i, r in zip(ins, rule(n.attrs, ins, [None] * n.num_outputs) + [None] * len(ins))]
        except (GraphcShapeError, IndexError, KeyError, TypeError):
            return None
    if all(None not in s for s in ins):
        dts = [s.dtypes[j] if s.dtypes else np.dtype('float32') for s, j in n.inputs]
        try:
            return [tuple(o) for o in n.op.infer(n.attrs, ins, dts)[0]]
        except Exception:  # noqa: BLE001  (the full check runs when the graph is bound or traced)
            return None
    return _partial_forward(n, ins)


def infer_shapes(graph, given):
    """{(node, j): partial shape} for every entry, from given {var: partial shape}."""
    shape = {}
    for n in graph.nodes:
        if n.is_var:
            shape[(n, 0)] = given.get(n)
    ops = [n for n in graph.nodes if not n.is_var]
    for _ in range(len(ops) + 2):  # a fixpoint: each sweep fills what the last one made possible
        changed = False
        for n in ops:
            ins = [shape.get((s, j)) for s, j in n.inputs]
            outs = [shape.get((n, j)) for j in range(n.num_outputs)]
            new_outs = list(outs)
            if not n.inputs and 0 in (n.attrs.get('shape') or ()):  # zeros((0, H)): 0 is a dim to infer
                new_outs = [_merge(outs[0], tuple(None if d == 0 else d for d in n.attrs['shape']), n)]
            elif all(s is not None and None not in s for s in ins):
                try:
                    got, _ = n.op.infer(n.attrs, ins, [s.dtypes[j] if s.dtypes else np.dtype('float32')
                                                        for s, j in n.inputs])
                except GraphcShapeError as e:
                    raise GraphcShapeError(f"{describe(n)}{e}") from None
                except (IndexError, ValueError, TypeError) as e:  # a rule that did not expect these shapes
                    raise GraphcShapeError(f"{describe(n)}{n.op.name} {n.name!r}: cannot take input shapes "
                                           f"{', '.join(map(_fmt, ins))} ({e})") from None
                new_outs = [_merge(o, tuple(g), n) for o, g in zip(outs, got)]
            elif ins and all(s is not None for s in ins) and n.inputs:
                got = _partial_forward(n, ins)
                if got is not None:
                    new_outs = [_merge(o, g, n) for o, g in zip(outs, got)]
            new_ins = list(ins)
            rule = BACKWARD.get(n.op.name)
            if rule is not None:
                new_ins = [_merge(i, r, n) for i, r in zip(ins, rule(n.attrs, ins, new_outs) + [None] * len(ins))]
            elif n.op.kind == 'elemwise' and n.op.n_out(n.attrs) >= 1:
                same = new_outs[0]
                for s in ins:
                    same = _merge(same, s, n)
                new_ins, new_outs[0] = [same] * len(ins), same
            for (s, j), old, new in zip(n.inputs, ins, new_ins):
                if new != old:
                    shape[(s, j)] = _merge(shape.get((s, j)), new, s)
                    changed = True
            for j, (old, new) in enumerate(zip(outs, new_outs)):
                if new != old:
                    shape[(n, j)] = new
                    changed = True
        if not changed:
            break
    return shape


# ops whose label MXNet types as the data although it takes no gradient (their InferType fills every input)
LABEL_TYPED_AS_DATA = {'SoftmaxOutput', 'LinearRegressionOutput', 'LogisticRegressionOutput', 'MAERegressionOutput',
                       'softmax_cross_entropy'}


def infer_dtypes(graph, given):
    """{(node, j): dtype or None} from given {var: dtype}: an op's outputs take its `dtype`
    attribute (Cast, one_hot, _zeros) or its inputs' dtype, and unknown inputs take the others'."""
    dt = {}
    for n in graph.nodes:
        if n.is_var:
            dt[(n, 0)] = given.get(n)
    ops = [n for n in graph.nodes if not n.is_var]
    for _ in range(len(ops) + 2):
        changed = False
        for n in ops:
            ins = [dt.get((s, j)) for s, j in n.inputs]
            data_in = [d for i, d in enumerate(ins) if i not in n.op.nograd_inputs and d is not None]
            own = n.attrs.get('dtype') if n.op.name in ('Cast', 'one_hot', '_zeros', '_ones', 'Embedding') else None
            out = np.dtype(own) if own not in (None, 'None') else (data_in[0] if data_in else None)
            if out is None and not n.inputs:  # a source op (random_*, arange, ...): the registry's rule
                try:
                    out = np.dtype(n.op.infer(n.attrs, [], [])[1][0])
                except Exception:  # noqa: BLE001  (a rule that needs more than attributes: unknown here)
                    pass
            if out is not None and n.inputs and all(d is not None for d in ins) and n.op.name not in ('Cast',):
                try:  # the registry's rule, where shapes are known, has the last word (argmax, comparisons)
                    if n.shapes and all(s.shapes and s.shapes[j] is not None and None not in s.shapes[j]
                                        for s, j in n.inputs):
                        out = np.dtype(n.op.infer(n.attrs, [s.shapes[j] for s, j in n.inputs], ins)[1][0])
                except Exception:  # noqa: BLE001  (shapes may be stale here; the heuristic stands)
                    pass
            for j in range(n.num_outputs):
                if out is not None and dt.get((n, j)) is None:
                    dt[(n, j)] = out
                    changed = True
            fill = data_in[0] if data_in else (out if n.op.name not in ('Cast',) and own in (None, 'None') else None)
            if fill is not None:
                for i, ((s, j), d) in enumerate(zip(n.inputs, ins)):
                    if d is None and (i not in n.op.nograd_inputs or n.op.name in LABEL_TYPED_AS_DATA):
                        dt[(s, j)] = fill
                        changed = True
        if not changed:
            break
    return dt
