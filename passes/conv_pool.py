"""Convolution -> ReLU -> max Pooling as one op (inference, the CPU backend): the convolution's output, the
largest activation of a LeNet or a ResNet stem, is then never written out in NCHW. The CPU backend runs the op
as one chain of oneDNN primitives (runtime/onednn.conv_act_pool: ReLU in the convolution's epilogue, the
pooling over its blocked output in the reorder arena), else its parts one by one. A chain whose data is the sole
output of another (LeNet's second reads its first) joins it as one op ('then' in its attrs, stats 'linked'): the first
pooled output stays in oneDNN's blocked layout for the second convolution, no reorder to NCHW and back between them
(LeNet inference at batch 600: 0.85-0.93x -> 0.75-0.88x of MXNet 1.9's time at one thread, 0.93-1.04x -> 0.89-0.96x
at two, three interleaved `graphc bench --only lenet-infer --peers mxnet` runs each, AVX2).

A chain is rewritten only where its intermediates have no other reader and are no graph output: in a training
step's forward they are saved for the backward, so training graphs keep their ops. There, the backward's max
pooling gradient times the ReLU's mask becomes one op (one pass over the largest gradient, not three:
runtime/conv.maxpool_grad_relu). Switch both off by name: GRAPHC_DISABLE_PASSES=conv_pool.
"""
import numpy as np

from ..graph import Node, rebuild
from ..ops.nn import pool_geom
from ..registry import Op, get
from . import fusion
from .manager import register_pass

CHANNEL_FIRST = ('None', 'NCHW')


def _parts(attrs):
    return [(get('Convolution'), attrs['conv'])] + ([(get('Activation'), {'act_type': attrs['act']})] if attrs['act']
                                                    else []) + [(get('Pooling'), attrs['pool'])]


def split(stage_attrs, items):
    """[(a stage's attrs, its weight and bias items)]: the items (arrays, shapes, dtypes) after an op's data, a
    weight and, unless its convolution has no_bias, a bias per stage."""
    out, at = [], 0
    for a in stage_attrs:
        n = 1 if a['conv']['no_bias'] else 2
        out.append((a, tuple(items[at:at + n])))
        at += n
    return out


def stages(attrs, items):
    """split() of the chain's stages: its own, then the linked chain's that reads its output ('then')."""
    return split([attrs] + ([attrs['then']] if attrs.get('then') else []), items)


def _run(attrs, *arrays, kernel=None):
    """The ops one after another, each by kernel(op) (default: its ref, the spec); the activation in place."""
    y = arrays[0]
    for a, wb in stages(attrs, arrays[1:]):
        for op, pa in _parts(a):
            y = (kernel(op) if kernel else op.ref)(pa, y, *(wb if op.name == 'Convolution' else ()))
    return y


def _infer(attrs, shapes, dtypes):
    s, d = [shapes[0]], [dtypes[0]]
    for (a, ws), (_, wd) in zip(stages(attrs, shapes[1:]), stages(attrs, dtypes[1:])):
        for op, pa in _parts(a):
            s, d = op.infer(pa, s + list(ws), d + list(wd)) if op.name == 'Convolution' else op.infer(pa, s, d)
    return s, d


def _inputs(attrs):
    names = ('data', 'weight') + (() if attrs['conv']['no_bias'] else ('bias',))
    then = attrs.get('then')
    return names + ((('weight2',) + (() if then['conv']['no_bias'] else ('bias2',))) if then else ())


CONV_ACT_POOL = Op('_conv_act_pool', _run, infer=_infer, kind='opaque', inputs=_inputs)


def _run_bwd(attrs, g, x, y, c, native=None):
    """Max pooling's gradient times ReLU's mask (c > 0): runtime/conv's one kernel where it has one, else the two
    ops' references (the spec)."""
    if native is not None and x.ndim == 4:
        k, st, pd, _, out = pool_geom(attrs, x.shape)
        dx = native.maxpool_grad_relu(g, x, y, c, k, st, pd, out)
        if dx is not None:
            return dx
    dx = get('_backward_Pooling').ref(attrs, g, x, y, **({'native': native} if native else {}))
    return dx * get('_greater_scalar').ref({'scalar': 0.0}, c)


BACKWARD_POOL_RELU = Op('_backward_pool_relu', _run_bwd, infer=lambda a, s, d: ([s[1]], [d[1]]), kind='opaque',
                        inputs=('ograd', 'data', 'output', 'relu_input'))


def _relu(n):
    return n.op.name == 'relu' or n.op.name == 'Activation' and n.attrs['act_type'] == 'relu'


@register_pass('conv_pool')
def conv_pool(graph, stats):
    """Convolution (-> ReLU) -> max Pooling, float32, 2-d, channel-first, as one op where only the pooling's
    output is read (the CPU backend only)."""
    if fusion.target is None or fusion.target().name != 'cpu':
        return graph
    users, count = graph.users(), [0, 0, 0]

    def sole(entry, reader):   # the value is read by `reader` alone (and is no graph output)
        return entry[1] == 0 and users.get(entry) == [reader]

    def rep(n, ins):
        if n.op.name == 'elemwise_mul':
            return backward(n, ins)
        if n.op.name != 'Pooling' or n.attrs['pool_type'] != 'max' or str(n.attrs.get('layout')) not in CHANNEL_FIRST \
                or not n.shapes or n.shapes[0] is None or len(n.shapes[0]) != 4 or n.dtypes[0] != np.float32:
            return None
        conv, new, act = n.inputs[0][0], ins[0][0], None   # (new: conv's node in the graph being built)
        if conv.op is not None and _relu(conv) and sole(n.inputs[0], n):
            act, reader, conv, new = 'relu', conv, conv.inputs[0][0], new.inputs[0][0]
            if not sole(reader.inputs[0], reader):
                return None
        elif not sole(n.inputs[0], n):
            return None
        if conv.op is None or conv.op.name != 'Convolution' or str(conv.attrs.get('layout')) not in CHANNEL_FIRST:
            return None
        count[0] += 1
        attrs, inputs = {'conv': conv.attrs, 'act': act, 'pool': n.attrs}, list(new.inputs)
        prev = new.inputs[0][0]
        if prev.op is CONV_ACT_POOL and not prev.attrs.get('then') and sole(conv.inputs[0], conv):
            # a chain reading a chain (LeNet's two): one op, the first's pooled output kept in oneDNN's layout
            count[2] += 1
            attrs, inputs = dict(prev.attrs, then=attrs), list(prev.inputs) + inputs[1:]
        node = Node(CONV_ACT_POOL, n.name, attrs, inputs, n.shapes, n.dtypes, n.where, n.block)
        return [(node, 0)]
    def backward(n, ins):   # elemwise_mul(_backward_Pooling(g, x, y), _greater_scalar(c, 0)), either order
        for i in (0, 1):
            p, m = n.inputs[i][0], n.inputs[1 - i][0]
            if p.op is None or p.op.name != '_backward_Pooling' or m.op is None or m.op.name != '_greater_scalar' \
                    or m.attrs['scalar'] != 0 or not sole(n.inputs[i], n) or p.attrs['pool_type'] != 'max' or \
                    str(p.attrs.get('layout')) not in CHANNEL_FIRST or len(n.shapes[0]) != 4 or \
                    n.dtypes[0] != np.float32 or m.shapes[0] != n.shapes[0]:
                continue
            k, st = pool_geom(p.attrs, p.shapes[0])[:2]
            if any(s < q for s, q in zip(st, k)):   # (overlapping windows: the two ops)
                continue
            count[1] += 1
            node = Node(BACKWARD_POOL_RELU, n.name, p.attrs, list(ins[i][0].inputs) + list(ins[1 - i][0].inputs),
                        n.shapes, n.dtypes, n.where, n.block)
            return [(node, 0)]
        return None
    g = rebuild(graph, rep)
    stats['chains'], stats['pool_relu_grads'], stats['linked'] = count
    return g.sorted() if any(count) else graph
