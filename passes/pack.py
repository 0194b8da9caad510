"""pack_weights: marks the FullyConnected nodes of an inference graph (alone or as the anchor of a fused group)
whose weight is a graph input, so the CPU backend runs them as oneDNN's matmul primitive over the weight packed
once (runtime/onednn.py) instead of a GEMM that packs it on every call. Inference pipeline only: a training step
changes the weights every call. GRAPHC_DISABLE_PASSES=pack_weights switches it off."""
from ..graph import Node, rebuild
from .manager import register_pass


def _weight_is_input(n):
    sub = getattr(n.op, 'subgraph', None)
    if sub is None:
        return n.op.name == 'FullyConnected' and n.inputs[1][0].is_var
    ops = [m for m in sub.nodes if not m.is_var]
    if not ops or ops[0].op.name != 'FullyConnected':
        return False
    w = ops[0].inputs[1][0]
    return w.is_var and w in sub.inputs and n.inputs[sub.inputs.index(w)][0].is_var


@register_pass('pack_weights', requires=('fuse',))
def pack_weights(graph, stats):
    """mark FullyConnected nodes whose weight is an input: packed once for oneDNN's matmul"""
    def mark(n, ins):
        if not _weight_is_input(n):
            return None
        c = Node(n.op, n.name, n.attrs, ins, n.shapes, n.dtypes, n.where, n.block)   # (a copy: the traced graph's
        c.extra = dict(n.extra, pack=True)                                           # nodes stay unmarked)
        stats['marked'] = stats.get('marked', 0) + 1
        return [(c, j) for j in range(c.num_outputs)]
    return rebuild(graph, mark)
