"""Symbolic reverse mode: the gradient graph of a Graph, built from the registry's gradient rules.

The same rules that eager autograd runs with F = graphc.nd run here with F = graphc.sym, so the
backward of a traced model is itself a graph that later passes can optimize and compile. Only
nodes on a path from a requested input to an output get gradient nodes.
"""
from ..graph import Graph
from ..symbol.symbol import Symbol, TraceContext, input_var
from ..util import legacy_grad


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
            igrads = legacy_grad(n.op, F, attrs, [Symbol([e]) for e in n.inputs], outs, ograds)
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


def split_training_step(graph, wrt, outputs=None):
    """The training step as the compiled backend runs it: (forward, backward, saved, heads, grads).

    forward: `graph` with, after its outputs, the values of its nodes that the backward reads (`saved`: the
    backward's variables for them, aligned); backward: the gradients that exist, whose inputs are the saved
    values, then the variables it reads (head gradients `heads`, parameters, data). The two share no node, so
    each goes through the training pipeline on its own. grads: as gradient() (None where no gradient)."""
    from ..graph import Node, rebuild
    heads, grads = gradient(graph, wrt, outputs)
    fwd = set(graph.nodes)
    saved_of, inputs = {}, []

    def rep(n, ins):  # a forward op: its values come in as saved inputs
        if n not in fwd or n.is_var:
            return None
        for j in range(n.num_outputs):
            if (n, j) not in saved_of:
                v = Node(None, f"{n.name}_saved{j}", shapes=[n.shapes[j]], dtypes=[n.dtypes[j]])
                saved_of[(n, j)] = v
                inputs.append(v)
        return [(saved_of[(n, j)], 0) for j in range(n.num_outputs)]
    joint = Graph([g for g in grads if g is not None])
    inputs.extend(joint.inputs)
    backward = rebuild(joint, rep, inputs=inputs)
    used = set(backward.nodes)
    saved = [(e, v) for e, v in saved_of.items() if v in used]
    forward = Graph(list(graph.outputs) + [e for e, _ in saved], graph.inputs)
    return forward, backward, [v for _, v in saved], heads, grads
