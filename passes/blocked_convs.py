"""Convolutions that read each other as one op (inference, the CPU backend): a ResNet's body between its stem and
its pooling. The CPU backend runs the op as one chain of oneDNN primitives (runtime/onednn.conv_region): every
activation stays in the blocked layout oneDNN chose for it, ReLU and the residual add run in the convolutions'
epilogues (post-ops: the add sums into the residual's buffer in place), and only the op's data and output are in
NCHW -- one reorder in and one out, where each convolution alone reorders its input, its weights and its output.

A stage is a Convolution (float32, 2-d, channel-first), then optionally an add of a value of the region (its data
or an earlier stage's output: the shortcut), then optionally a ReLU or a clip (MobileNet V2's ReLU6); it joins the
region of its data. Its attrs: the convolution's ('conv'), the value it convolves ('src': 0 the op's data, i + 1
stage i's output), the one it adds ('add', or None) and its activation ('act': None, 'relu', or (a_min, a_max) for
a clip). A region is
rewritten where the backend wants the op (the CPU's with oneDNN's wheel: without it the parts would run one by one,
slower than the fused convolution epilogues that run them otherwise), it has two stages or more, only its last
value is read outside it, and no stage reads a summed residual after the sum overwrote it. Switch it off by name:
GRAPHC_DISABLE_PASSES=blocked_convs.
"""
import numpy as np

from ..graph import Node, rebuild
from ..registry import Op, get
from . import fusion
from .conv_pool import CHANNEL_FIRST, _relu, split
from .manager import register_pass


def stages(attrs, items):
    """[(a stage's attrs, its weight and bias items)] of the op's inputs after the data."""
    return split(attrs['stages'], items)


def in_place(stage_attrs):
    """No stage reads a residual after the stage that summed into it (its buffer then holds the sum), nor sums
    into the value it convolves."""
    for i, a in enumerate(stage_attrs):
        r = a['add']
        if r is not None and (r == a['src'] or any(b['src'] == r or b['add'] == r for b in stage_attrs[i + 1:])):
            return False
    return True


def _run(attrs, x, *items, kernel=None):
    """The stages one after another, each op by kernel(op) (default: its ref, the spec)."""
    conv, add, relu, clip = [kernel(get(n)) if kernel else get(n).ref
                             for n in ('Convolution', 'elemwise_add', 'Activation', 'clip')]
    values = [x]
    for a, wb in stages(attrs, items):
        y = conv(a['conv'], values[a['src']], *wb)
        if a['add'] is not None:
            y = add({}, values[a['add']], y)
        if a['act'] == 'relu':
            y = relu({'act_type': 'relu'}, y)
        elif a['act'] is not None:
            y = clip({'a_min': a['act'][0], 'a_max': a['act'][1]}, y)
        values.append(y)
    return values[-1]


def _infer(attrs, shapes, dtypes):
    conv, values = get('Convolution'), [shapes[0]]
    for a, ws in stages(attrs, shapes[1:]):
        s, d = conv.infer(a['conv'], [values[a['src']]] + list(ws), [dtypes[0]] * (1 + len(ws)))
        values.append(s[0])
    return [values[-1]], d


def _inputs(attrs):
    return ('data',) + tuple(f"{w}{i}" for i, a in enumerate(attrs['stages'])
                             for w in (('weight',) if a['conv']['no_bias'] else ('weight', 'bias')))


CONV_REGION = Op('_conv_region', _run, infer=_infer, kind='opaque', inputs=_inputs)


def _act(n):
    """A stage's activation where n is one: 'relu', (a_min, a_max) of a clip, else None."""
    if n.dtypes[0] != np.float32:
        return None
    return 'relu' if _relu(n) else (n.attrs['a_min'], n.attrs['a_max']) if n.op.name == 'clip' else None


def _conv(n):
    return n.op is not None and n.op.name == 'Convolution' and str(n.attrs.get('layout')) in CHANNEL_FIRST and \
        bool(n.shapes) and n.shapes[0] is not None and len(n.shapes[0]) == 4 and n.dtypes[0] == np.float32 and \
        all(s is not None for s in n.shapes[0])


@register_pass('blocked_convs')
def blocked_convs(graph, stats):
    """Chains of float32 Convolutions (+ residual add) (+ ReLU or clip) as one op whose activations stay in oneDNN's blocked
    layout (where the backend wants the op: the CPU's, with oneDNN)."""
    if fusion.target is None or not fusion.target().wants(CONV_REGION.name):   # (the CPU's, with oneDNN)
        return graph
    users = graph.users()

    def sole(entry):   # the one node that reads the value (no graph output), or None
        r = users.get(entry, [])
        return r[0] if len(r) == 1 and r[0] is not None else None

    # each convolution's stage: its add and ReLU where it is their sole reader, the entry that stands for it (tail)
    found = []
    for n in graph.nodes:
        if not _conv(n):
            continue
        tail, other, act, nodes = (n, 0), None, None, {n}
        r = sole(tail)
        if r is not None and r.op.name == 'elemwise_add' and r.shapes[0] == n.shapes[0]:
            other = r.inputs[1] if r.inputs[0] == tail else r.inputs[0]
            tail, r = (r, 0), sole((r, 0))
            nodes.add(tail[0])
        if r is not None and _act(r) is not None:
            tail, act = (r, 0), _act(r)
            nodes.add(r)
        found.append((n, other, act, tail, nodes))
    # regions, stages in the order of their tails: a stage's data and its residual are tails of earlier ones
    pos = {n: i for i, n in enumerate(graph.nodes)}
    value = {}     # entry -> (region, value index)
    regions = []   # {'stages': [stage attrs], 'convs': [node], 'tails': [entry of each value], 'nodes': {node}}
    for n, other, act, tail, nodes in sorted(found, key=lambda f: pos[f[3][0]]):
        region, at = value.get(n.inputs[0], (None, 0))
        reg, add = value.get(other, (None, None))
        if other is not None and (region is None or reg is not region or add == at):
            tail, add, act, nodes = (n, 0), None, None, {n}   # (a residual from elsewhere: the add stays outside)
        if region is None:
            region = {'stages': [], 'convs': [], 'tails': [n.inputs[0]], 'nodes': set()}
            regions.append(region)
            value[n.inputs[0]] = (region, 0)
        region['stages'].append({'conv': n.attrs, 'src': at, 'add': add, 'act': act})
        region['convs'].append(n)
        region['tails'].append(tail)
        region['nodes'] |= nodes
        value[tail] = (region, len(region['tails']) - 1)
    kept = {}
    for reg in regions:
        tails = reg['tails']
        read_out = [i for i, t in enumerate(tails) if i and any(u is None or u not in reg['nodes']
                                                                 for u in users.get(t, []))]
        if len(reg['stages']) >= 2 and read_out == [len(tails) - 1] and in_place(reg['stages']):
            kept[tails[-1][0]] = reg
    if not kept:
        stats['regions'] = 0
        return graph
    ins_of = {}   # conv node -> its inputs in the graph being built

    def rep(n, ins):
        if _conv(n):
            ins_of[n] = ins
        reg = kept.get(n)
        if reg is None:
            return None
        inputs = [ins_of[reg['convs'][0]][0]] + [e for c in reg['convs'] for e in ins_of[c][1:]]
        node = Node(CONV_REGION, n.name, {'stages': tuple(reg['stages'])}, inputs, n.shapes, n.dtypes, n.where,
                    n.block)
        return [(node, 0)]
    g = rebuild(graph, rep)
    stats['regions'], stats['convs'] = len(kept), sum(len(r['stages']) for r in kept.values())
    return g.sorted()

