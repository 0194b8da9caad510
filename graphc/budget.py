"""The cost budget of an untrusted graph: a model file is a program, so before anything is allocated or
compiled its planned memory (every node's outputs from the inferred shapes, summed: an upper bound on the
memory plan) and its node count are checked against limits.

`check_graph_cost(graph, shapes)` is the one entry point (the JSON loader, SymbolBlock and the ONNX importer
call it). Input dimensions that are not known yet count as 1, so a refusal is always right: the real run
would need at least that much; the check is repeated once the input shapes are known.
"""
import math
import os

import numpy as np

from . import config
from .base import GraphcError, GraphcLoadError, GraphcShapeError

MAX_GRAPH_NODES = 200_000


def physical_memory():
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def max_graph_bytes():
    """GRAPHC_MAX_GRAPH_BYTES, default a quarter of physical memory."""
    v = config.max_graph_bytes()
    return physical_memory() // 4 if v is None else v


def max_graph_nodes():
    return config.max_graph_nodes()


def gib(n):
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.1f} MiB"


def _cut(s, n=200):
    s = str(s)
    return s if len(s) <= n else f"{s[:n]}... ({len(s)} characters)"


def check_graph_cost(graph, shapes=None, limit=None, where='graph', strict=False, dtypes=None):
    """Raise GraphcLoadError when `graph` has too many nodes or its outputs, summed over all nodes, need more
    than `limit` bytes (default max_graph_bytes()), naming the node, its op and shape. `shapes` maps input
    variables (by node or name) to shapes (and `dtypes` to dtypes); other variables use their own; unknown
    dimensions count as 1.
    Returns the planned bytes (a lower bound while some shapes are unknown). strict: a shape error of a node
    whose input shapes are all given is raised (as it would be by the run), not skipped."""
    limit = max_graph_bytes() if limit is None else limit
    nodes = graph.nodes
    if len(nodes) > max_graph_nodes():
        raise GraphcLoadError(f"{where}: {len(nodes)} nodes is over the limit of {max_graph_nodes()} "
                              "(GRAPHC_MAX_GRAPH_NODES)")
    shapes = shapes or {}
    known = {}   # node -> (shapes, dtypes), or None when they cannot be worked out yet
    approx = set()   # nodes whose shapes rest on an unknown dimension counted as 1
    total = 0
    for i, n in enumerate(nodes):
        if n.is_var:
            s = shapes.get(n, shapes.get(n.name))
            if s is None:
                s = n.shapes[0] if n.shapes else None
            if s is None:
                known[n] = None
                continue
            if any(d is None for d in s):
                approx.add(n)
            dt = (dtypes or {}).get(n) or (n.dtypes[0] if n.dtypes else 'float32')
            out = ([tuple(1 if d is None else int(d) for d in s)], [np.dtype(dt)])
        else:
            ins = [known.get(src) for src, _ in n.inputs]
            if any(x is None for x in ins):
                known[n] = None
                continue
            if any(src in approx for src, _ in n.inputs):
                approx.add(n)
            try:
                out = n.op.infer(n.attrs, [x[0][j] for x, (_, j) in zip(ins, n.inputs)],
                                 [x[1][j] for x, (_, j) in zip(ins, n.inputs)])
            except (GraphcError, ValueError, TypeError, IndexError, KeyError, OverflowError) as e:
                if strict and isinstance(e, GraphcError) and n not in approx:
                    raise GraphcShapeError(f"{where}: node {i} ({_cut(n.name)}): {e}") from None
                known[n] = None   # the loader or the run reports the error itself, with its context
                continue
        known[n] = out
        if 'value' in n.extra:
            continue   # a constant held by the graph: already in memory
        for s, dt in zip(*out):
            nbytes = math.prod(s) * np.dtype(dt).itemsize
            total += nbytes
            if nbytes > limit or total > limit:
                what = f"output {fmt(s)} {np.dtype(dt)} ({gib(nbytes)})"
                head = f"node {i} ({_cut(n.name)}, {'variable' if n.is_var else n.op.name})"
                raise GraphcLoadError(
                    f"{where}: {head}: {what} takes the graph's planned memory to {gib(total)} or more, over the "
                    f"limit of {gib(limit)} (GRAPHC_MAX_GRAPH_BYTES)")
    return total


def fmt(shape):
    return '(' + ', '.join(map(str, shape)) + (',)' if len(shape) == 1 else ')')
