"""The reference interpreter: runs a Graph node by node with the registry's NumPy kernels (each op's ref).

It is the spec every compiled backend is tested against (runtime/backend.py's `interp` backend). Values are
freed after their last use, so peak memory is that of a simple liveness plan.
"""
import numpy as np

from .base import GraphcError
from .graph import raise_at


def interpret(graph, feed, env=None, nodes=None, outputs=None, keep=(), kernel=None):
    """Run `nodes` (default: all of graph's) given feed {var node: array}; returns the output arrays.
    kernel(op) gives each op's kernel: by default its ref (a backend passes its own, runtime/backend.py).

    env, when given, holds values already computed ({node: tuple of arrays}) and receives the
    values of `keep` nodes, so a later call can run the rest of the graph (training's backward). An error
    names the node's IR line.
    """
    env = {} if env is None else env
    nodes = graph.nodes if nodes is None else nodes
    outputs = graph.outputs if outputs is None else outputs
    last = {s: i for i, n in enumerate(nodes) for s, _ in n.inputs}   # node -> the last node that reads it
    last.update((n, len(nodes)) for n in [n for n, _ in outputs] + list(keep))   # (or the end: kept values)
    for i, n in enumerate(nodes):
        if n.is_var:
            if n not in env:
                v = feed.get(n)
                if v is None:
                    v = n.extra.get('value')
                if v is None:
                    raise GraphcError(f"graph input {n.name!r} has no value")
                env[n] = (v,)
            continue
        args = [env[s][j] for s, j in n.inputs]
        try:
            out = (n.op.ref if kernel is None else kernel(n.op))(n.attrs, *args)
        except Exception as e:
            raise_at(n, e, nodes, args)
        out = out if isinstance(out, tuple) else (out,)
        if any(isinstance(o, np.generic) for o in out):  # NumPy gives scalars for 0-d math; eager keeps arrays
            out = tuple(np.asarray(o) if isinstance(o, np.generic) else o for o in out)
        env[n] = out
        for s, _ in n.inputs:  # free what no later node reads
            if last.get(s, -1) == i and s in env and not s.is_var:
                del env[s]
    return [env[n][j] for n, j in outputs]


def owned(values, feeds):
    """The values, each copied if it may share memory with an input buffer or an earlier value: arrays
    handed to the user must not change when an input, or another output, is written later."""
    out = []
    for v in values:
        if isinstance(v, np.generic):  # a ufunc on 0-d arrays gives a NumPy scalar: users get 0-d arrays
            v = np.asarray(v)
        fresh = v.base is None and all(v is not a for a in feeds) and all(v is not o for o in out)
        if not fresh and (any(np.may_share_memory(v, a) for a in feeds) or any(np.may_share_memory(v, o) for o in out)):
            v = np.array(v, copy=True)
        out.append(v)
    return out
