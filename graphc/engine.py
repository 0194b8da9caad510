"""The eager engine: 'naive' runs each op at once; 'lazy' queues ops into a pending graph.

In lazy mode an NDArray op (outside autograd.record(), and not Dropout/BatchNorm, whose randomness
and state must follow program order) adds a node to a pending graph and returns an array without
data. The first use that needs values — asnumpy, item, print, wait_to_read, gc.waitall(), an
in-place write, an eager op — realizes every pending array still alive as one graph, through the
same pass pipeline as hybridize, so imperative code gets fusion too. Shapes are inferred when
each op is called, so a shape error still names the user's line; an error at realization names
the op and the line that created it.

GRAPHC_ENGINE=lazy|naive picks the mode at start (default naive: see the README for why).
"""
import threading
import weakref

from . import config
from .base import GraphcError, user_frame
from .graph import Graph, Node


class _Engine(threading.local):
    lazy = config.engine() == 'lazy'


_eng = _Engine()

_pending = []          # weak references to arrays waiting for data
MAX_PENDING = 512      # realize before a pending graph grows past this many arrays
stats = {'realizations': 0, 'last_kernels': 0, 'last_ops': 0, 'last_report': None}


def is_lazy():
    return _eng.lazy


def set_engine(mode):
    """'lazy' or 'naive' for this thread; returns the previous mode. Pending work is realized first."""
    if mode not in ('lazy', 'naive'):
        raise GraphcError(f"engine mode must be 'lazy' or 'naive', got {mode!r}")
    old = 'lazy' if _eng.lazy else 'naive'
    flush()
    _eng.lazy = mode == 'lazy'
    return old


class engine_mode:
    """with engine_mode('lazy'): ... — the mode for a block of code."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        self.old = set_engine(self.mode)

    def __exit__(self, *exc):
        set_engine(self.old)


def _entry(x):
    """The graph entry of an NDArray input: its pending node, or a constant holding its buffer."""
    if x._buf is None:
        return x._lazy
    n = Node(None, '_input', shapes=[x._buf.shape], dtypes=[x._buf.dtype])
    n.extra['feed'] = x._buf  # fed at realization (not a 'value': constant folding must not run it op by op)
    return (n, 0)


def lazy_invoke(op, inputs, attrs):
    """Queue op; returns NDArray (or a list for several outputs) without data."""
    from .ndarray.ndarray import NDArray
    node = Node(op, op.name.lower().lstrip('_'), attrs, [_entry(x) for x in inputs], where=user_frame())
    # shape errors surface here, at the user's line, with the same message as the naive engine's
    node.shapes, node.dtypes = op.infer(attrs, [x.shape for x in inputs], [x.dtype for x in inputs])
    outs = []
    for j in range(op.n_out(attrs)):
        y = NDArray(None)
        y._lazy = (node, j)
        outs.append(y)
        _pending.append(weakref.ref(y))
    if len(_pending) > MAX_PENDING:
        flush()
    return outs if len(outs) > 1 else outs[0]


def realize(x):
    """Give x (and every other pending array still alive) its data."""
    if x._buf is None:
        flush()


def flush():
    """Run the pending graph: every alive pending array becomes an output (the rest can fuse away)."""
    global _pending
    if not _pending:
        return
    alive = [a for a in (r() for r in _pending) if a is not None and a._buf is None]
    _pending = []
    if not alive:
        return
    from .interpreter import owned
    from .runtime import backend
    b = backend.current()
    g = Graph([a._lazy for a in alive])
    key = (b.name, structure_key(g))
    feeds = [v.extra.pop('feed') for v in g.inputs]  # the cached graph must not keep these buffers alive
    hit = _compiled.get(key)
    if hit is None:  # the same program shape again (a loop body, say) reuses its optimized plan
        from .passes import run_pipeline
        opt, report = run_pipeline(g, 'inference', tag='lazy')
        hit = (b.executor(opt), list(g.inputs), sum(not n.is_var for n in g.nodes),
               sum(not n.is_var for n in opt.nodes), report)
        if len(_compiled) < 256:
            _compiled[key] = hit
    plan, first_vars, n_ops, n_kernels, report = hit
    try:
        vals = owned(plan(dict(zip(first_vars, feeds))), feeds)
    except GraphcError:  # a cached plan's nodes carry the first program's lines: name this one's
        from .interpreter import interpret
        interpret(g, dict(zip(g.inputs, feeds)))
        raise
    for a, v in zip(alive, vals):
        a._buf, a._lazy = v, None
    stats['realizations'] += 1
    stats['last_ops'], stats['last_kernels'], stats['last_report'] = n_ops, n_kernels, report


_compiled = {}  # (backend, structure key) -> (its executor, its input variables, op count, kernel count, pass report)


def structure_key(g):
    """What identifies a pending graph up to its input values: ops, attributes, wiring, input shapes."""
    idx = {n: i for i, n in enumerate(g.nodes)}
    parts = []
    for n in g.nodes:
        if n.is_var:
            parts.append(('v', n.shapes[0], str(n.dtypes[0])))
        else:
            parts.append((n.op.name, tuple(sorted((k, repr(v)) for k, v in n.attrs.items())),
                          tuple((idx[s], j) for s, j in n.inputs)))
    return tuple(parts), tuple((idx[n], j) for n, j in g.outputs)
