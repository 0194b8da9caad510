"""Simplification passes: dead code, common subexpressions, constants, algebraic identities, and
BatchNorm folded into the Convolution or FullyConnected before it (inference)."""
import numpy as np

from ..graph import Node, const_node, entries, is_random, new_node, partial_infer, rebuild
from .manager import register_pass


@register_pass('dce')
def dce(graph, stats):
    """Dead-code elimination: keep only what the outputs need."""
    g = graph.sorted()
    stats['removed'] = len(graph.nodes) - len(g.nodes)
    return g


def _freeze(v):
    return tuple(_freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


@register_pass('cse')
def cse(graph, stats):
    """Common-subexpression elimination: one node per (op, attributes, inputs); random ops excepted."""
    seen, merged = {}, [0]

    def rep(n, ins):
        if is_random(n):
            return None
        key = (n.op.name, tuple(sorted((k, _freeze(v)) for k, v in n.attrs.items())),
               tuple((s, j) for s, j in ins))
        hit = seen.get(key)
        if hit is not None:
            merged[0] += 1
            return hit
        seen[key] = entries(n, ins)
        return seen[key]
    g = rebuild(graph, rep)
    stats['merged'] = merged[0]
    return g


@register_pass('fold_constants')
def fold_constants(graph, stats):
    """Evaluate nodes whose inputs are all constants (values captured in the graph)."""
    folded = [0]

    def rep(n, ins):
        if is_random(n) or not ins or not all(s.is_var and 'value' in s.extra for s, _ in ins):
            return None
        out = n.op.ref(n.attrs, *[s.extra['value'] for s, _ in ins])
        outs = out if isinstance(out, tuple) else (out,)
        folded[0] += 1
        return [(const_node(np.asarray(o), f"{n.name}_const{i}"), 0) for i, o in enumerate(outs)]
    g = rebuild(graph, rep)
    stats['folded'] = folded[0]
    return g


IDENTITY_SCALAR = {'_mul_scalar': 1.0, '_div_scalar': 1.0, '_plus_scalar': 0.0, '_minus_scalar': 0.0,
                   '_power_scalar': 1.0}
RESHAPES = ('Reshape', '_np_reshape', 'Flatten', 'expand_dims', 'squeeze')


@register_pass('algebra')
def algebra(graph, stats):
    """Algebraic identities: x*1, x+0, copies, no-op reshapes, reshape chains, transpose pairs, and
    Dropout at inference."""
    count = {'identities': 0, 'reshape_chains': 0, 'transpose_pairs': 0, 'dropout': 0}

    def same(n, ins):
        s, j = ins[0]
        return s.shapes is not None and n.shapes is not None and s.shapes[j] == n.shapes[0] and \
            s.dtypes[j] == n.dtypes[0]

    def rep(n, ins):
        name = n.op.name
        if (name in IDENTITY_SCALAR and n.attrs['scalar'] == IDENTITY_SCALAR[name] and same(n, ins)) or \
                (name == '_copy') or (name in RESHAPES and same(n, ins)):
            count['identities'] += 1
            return [ins[0]]
        if name == 'Dropout' and not is_random(n):
            count['dropout'] += 1
            mask = new_node('ones_like', [ins[0]], like=n)
            return [ins[0], (mask, 0)]
        if name in RESHAPES and ins[0][0].op is not None and ins[0][0].op.name in RESHAPES and \
                n.shapes and n.shapes[0] is not None and None not in n.shapes[0]:
            count['reshape_chains'] += 1  # reshape(reshape(x)) -> one reshape to the final shape
            return [(new_node('_np_reshape', [ins[0][0].inputs[0]], like=n, newshape=n.shapes[0]), 0)]
        if name == 'transpose' and ins[0][0].op is not None and ins[0][0].op.name == 'transpose':
            inner = ins[0][0]
            nd_ = len(n.shapes[0]) if n.shapes and n.shapes[0] is not None else None
            if nd_ is not None:
                p1 = inner.attrs['axes'] or tuple(range(nd_))[::-1]
                p2 = n.attrs['axes'] or tuple(range(nd_))[::-1]
                perm = tuple(p1[a % nd_] % nd_ for a in p2)
                count['transpose_pairs'] += 1
                if perm == tuple(range(nd_)):
                    return [inner.inputs[0]]
                return [(new_node('transpose', [inner.inputs[0]], like=n, axes=perm), 0)]
        return None
    g = rebuild(graph, rep)
    stats.update({k: v for k, v in count.items() if v})
    return g


@register_pass('fold_batchnorm')
def fold_batchnorm(graph, stats):
    """Inference BatchNorm after a Convolution/FullyConnected becomes a scale of its weights and a new bias
    (computed in the graph from the parameters, so the activations skip one pass)."""
    users = graph.users()
    folded = [0]

    def rep(n, ins):
        if n.op.name != 'BatchNorm' or n.attrs.get('_train') and not n.attrs['use_global_stats']:
            return None
        (src, j) = ins[0]
        if src.op is None or src.op.name not in ('Convolution', 'FullyConnected') or j != 0:
            return None
        old_src = n.inputs[0][0]
        if len(users.get((old_src, 0), [])) != 1 or any(users.get((n, k)) for k in (1, 2)):
            return None  # the conv output is used elsewhere, or the batch statistics are
        ax = n.attrs['axis'] % len(n.shapes[0])
        if ax != 1 or src.op.name == 'FullyConnected' and len(n.shapes[0]) != 2 or \
                src.attrs.get('layout') in ('NWC', 'NHWC', 'NDHWC'):  # (channels-last weights are O...I)
            return None  # (an n-d FullyConnected(flatten=False) has its units last, not on axis 1)
        gamma, beta, mean, var = ins[1:5]
        c = src.shapes[0][1]
        inv = new_node('rsqrt', [(new_node('_plus_scalar', [var], like=n, scalar=n.attrs['eps']), 0)], like=n)
        scale = (inv, 0) if n.attrs['fix_gamma'] else (new_node('elemwise_mul', [gamma, (inv, 0)], like=n), 0)
        w = src.inputs[1]
        wshape = (c,) + (1,) * (len(src.shapes[0]) - 1 if src.op.name == 'Convolution' else 1)
        w2 = new_node('broadcast_mul', [w, (new_node('_np_reshape', [scale], like=n, newshape=wshape), 0)], like=n)
        neg_mean = (new_node('negative', [mean], like=n), 0)
        if src.attrs['no_bias']:
            shifted = neg_mean
        else:
            shifted = (new_node('elemwise_sub', [src.inputs[2], mean], like=n), 0)
        b2 = new_node('elemwise_add', [(new_node('elemwise_mul', [shifted, scale], like=n), 0), beta], like=n)
        attrs = dict(src.attrs, no_bias=False)
        conv = Node(src.op, src.name, attrs, [src.inputs[0], (w2, 0), (b2, 0)], where=src.where, block=src.block)
        conv.shapes, conv.dtypes = partial_infer(conv)
        folded[0] += 1
        return [(conv, 0), ins[3], ins[4]]
    g = rebuild(graph, rep)
    stats['folded'] = folded[0]
    return g.sorted()
