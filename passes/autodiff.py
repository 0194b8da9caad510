"""Symbolic reverse mode: the gradient graph of a Graph, built from the registry's gradient rules.

The same rules that eager autograd runs with F = graphc.nd run here with F = graphc.sym, so the
backward of a traced model is itself a graph that later passes can optimize and compile. Only
nodes on a path from a requested input to an output get gradient nodes.
"""
from ..graph import Graph
from ..symbol.symbol import Symbol, TraceContext, input_var


def gradient(graph, wrt, outputs=None):
    """Gradient graph of `outputs` (default: graph.outputs) with respect to the variable nodes `wrt`.

    Returns (head_vars, grads): head_vars are new variable nodes holding the output gradients (one per
    output), grads a list aligned with wrt of entries (node, index), or None where an input does not
    influence the outputs.
    """
    from .. import sym as F
    outputs = list(graph.outputs if outputs is None else outputs)
    depends = set(wrt)
    for n in graph.nodes:  # forward reachability from wrt
        if not n.is_var and any(s in depends for s, _ in n.inputs):
            depends.add(n)
    with TraceContext() as ctx:
        ctx.blocks.append(('_grad_', 'backward'))
        heads = [input_var(f"_head_grad{i}", n.shapes[j], n.dtypes[j]) for i, (n, j) in enumerate(outputs)]
        grads = {}

        def add(key, g):
            grads[key] = grads[key] + g if key in grads else g

        for (n, j), h in zip(outputs, heads):
            add((n, j), h)
        for n in reversed(graph.nodes):
            if n.is_var or n not in depends or not n.op.differentiable:
                continue  # (a node without a gradient, e.g. shape_array, passes none back: its outputs are constants)
            ograds = [grads.get((n, i)) for i in range(n.num_outputs)]
            if all(g is None for g in ograds):
                continue
            outs = [Symbol([(n, i)]) for i in range(n.num_outputs)]
            ograds = [F.zeros_like(o) if g is None else g for o, g in zip(outs, ograds)]
            need = tuple(s in depends and i not in n.op.nograd_inputs for i, (s, _) in enumerate(n.inputs))
            attrs = n.attrs if all(need) else dict(n.attrs, _need=need)
            igrads = n.op.grad(F, attrs, [Symbol([e]) for e in n.inputs], outs, ograds)
            for (s, j), g, needed in zip(n.inputs, igrads, need):
                if needed and g is not None:
                    add((s, j), g)
    return [h._entries[0][0] for h in heads], [grads[(v, 0)]._entries[0] if (v, 0) in grads else None
                                               for v in wrt]


def grad_graph(graph, wrt, outputs=None):
    """(joint Graph whose outputs are the gradients that exist, head vars, grads) for running backward."""
    heads, grads = gradient(graph, wrt, outputs)
    present = [g for g in grads if g is not None]
    return (Graph(present) if present else None), heads, grads
