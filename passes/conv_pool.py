"""Convolution -> ReLU -> max Pooling as one op (inference, the CPU backend): the convolution's output, the
largest activation of a LeNet or a ResNet stem, is then never written out in NCHW. The CPU backend runs the op
as one chain of oneDNN primitives (runtime/onednn.conv_act_pool: ReLU in the convolution's epilogue, the
pooling over its blocked output in the reorder arena), else its parts one by one.

A chain is rewritten only where its intermediates have no other reader and are no graph output: in a training
step's forward they are saved for the backward, so training graphs keep their ops. Switch off by name:
GRAPHC_DISABLE_PASSES=conv_pool.
"""
import numpy as np

from ..graph import Node, rebuild
from ..registry import Op, get
from . import fusion
from .manager import register_pass

CHANNEL_FIRST = ('None', 'NCHW')


def _parts(attrs):
    return [(get('Convolution'), attrs['conv'])] + ([(get('Activation'), {'act_type': attrs['act']})] if attrs['act']
                                                    else []) + [(get('Pooling'), attrs['pool'])]


def _run(attrs, *arrays, kernel=None):
    """The ops one after another, each by kernel(op) (default: its ref, the spec); the activation in place."""
    (conv, ca), *rest = _parts(attrs)
    y = (kernel(conv) if kernel else conv.ref)(ca, *arrays)
    for op, a in rest:
        y = (kernel(op) if kernel else op.ref)(a, y)
    return y


def _infer(attrs, shapes, dtypes):
    for op, a in _parts(attrs):
        shapes, dtypes = op.infer(a, shapes, dtypes)
    return shapes, dtypes


CONV_ACT_POOL = Op('_conv_act_pool', _run, infer=_infer, kind='opaque',
                   inputs=lambda a: ('data', 'weight') + (() if a['conv']['no_bias'] else ('bias',)))


def _relu(n):
    return n.op.name == 'relu' or n.op.name == 'Activation' and n.attrs['act_type'] == 'relu'


@register_pass('conv_pool')
def conv_pool(graph, stats):
    """Convolution (-> ReLU) -> max Pooling, float32, 2-d, channel-first, as one op where only the pooling's
    output is read (the CPU backend only)."""
    if fusion.target is None or fusion.target().name != 'cpu':
        return graph
    users, count = graph.users(), [0]

    def sole(entry, reader):   # the value is read by `reader` alone (and is no graph output)
        return entry[1] == 0 and users.get(entry) == [reader]

    def rep(n, ins):
        if n.op.name != 'Pooling' or n.attrs['pool_type'] != 'max' or str(n.attrs.get('layout')) not in CHANNEL_FIRST \
                or len(n.shapes[0]) != 4 or np.dtype(n.dtypes[0]) != np.float32:
            return None
        conv, new, act = n.inputs[0][0], ins[0][0], None   # (new: conv's node in the graph being built)
        if conv.op is not None and _relu(conv) and sole(n.inputs[0], n):
            act, reader, conv, new = 'relu', conv, conv.inputs[0][0], new.inputs[0][0]
            if not sole(reader.inputs[0], reader):
                return None
        elif not sole(n.inputs[0], n):
            return None
        if conv.op is None or conv.op.name != 'Convolution' or str(conv.attrs.get('layout')) not in CHANNEL_FIRST \
                or len(conv.shapes[0]) != 4:
            return None
        count[0] += 1
        node = Node(CONV_ACT_POOL, n.name, {'conv': conv.attrs, 'act': act, 'pool': n.attrs}, list(new.inputs),
                    n.shapes, n.dtypes, n.where, n.block)
        return [(node, 0)]
    g = rebuild(graph, rep)
    stats['chains'] = count[0]
    return g.sorted() if count[0] else graph
