"""A training step's first tier (GRAPHC_TIERED): its first call does not wait for LLVM. The forward and backward
graphs (after the passes, the same ones the compiled plans run) run as plain plans of Python steps with
cpu.deferring() on: an op whose kernel is not built takes its NumPy form (the fused groups op by op, the
forward's max pooling), the convolutions and GEMMs run in oneDNN and BLAS as always, the kernels whose NumPy
form costs more than their compile (runtime/conv.NOW) are built, and the Trainer updates parameter by parameter.
Meanwhile, where a core is spare beyond the threads this process runs, a forked worker (runtime/forked.py) compiles
every kernel of the compiled plans there, at the lowest priority. The second call swaps in the compiled plans,
always (the same bits from the second step on, however fast the worker was): it waits for the worker, loads its
object code and builds the plans, compiling here whatever the worker did not deliver (no spare core, no fork, a
failed or timed-out worker). Without a worker, what the first tier saves is LLVM's time in the first call, not
in all: the second call pays it (benchmarks/cold_ab.py --steps 10 shows both).

GRAPHC_TIERED=auto (the default) runs a first tier only where it computes the compiled step's bits (exact(): every
op in EXACT), so a run resumed from a checkpoint in a new block or process equals an uninterrupted one exactly
(examples/char_lstm.py --resume, tests/test_distributed.py's resume); elsewhere the first call compiles first.
GRAPHC_TIERED=1 runs one for any graph (NumPy's forms of the other fused kernels: within float32 rounding)."""
import threading
import weakref

from .. import config
from . import cpu, forked

_pending = weakref.WeakSet()   # first tiers that ran and are not swapped yet: their Trainers' updates wait too


def on(graphs):
    """Whether a training step's first call runs a first tier of its optimized (forward, backward) graphs:
    GRAPHC_TIERED (1; auto: where it computes the compiled plans' bits, exact()), the compiled CPU backend and no
    compile thread (GRAPHC_COMPILE_AHEAD=1 keeps the kernels on it)."""
    mode = config.tiered()
    return mode != '0' and cpu.enabled() and not config.compile_ahead() and (mode == '1' or exact(graphs))


# The ops whose first-tier form computes the compiled plan's bits (tests/test_tiered.py trains LeNet and an MLP both
# ways and compares the weights with np.array_equal), with the conditions _exact() checks: a ReLU, a comparison with
# a scalar and a two-operand add or multiply are one IEEE operation an element in NumPy and in LLVM (no fast-math);
# a max is exact in any order; a sum over leading axes adds row after row in both (build_col_ir, NumPy's outer-axis
# reduction); GEMMs call the native row's BLAS (gemm()); convolutions run in oneDNN in both, or copy the one window
# that is the whole image; the pooling gradients are built in both (conv.NOW); views move no value. The Trainer's
# per-parameter update equals its multi-tensor kernel bit for bit (runtime/multi_tensor.py, tests/test_multi_tensor.py).
EXACT = frozenset({'Activation', 'relu', '_greater_scalar', 'elemwise_add', 'elemwise_mul', 'sum', 'FullyConnected',
                   'dot', 'Convolution', '_backward_Convolution', 'Pooling', '_backward_Pooling', '_backward_pool_relu',
                   'Reshape', '_np_reshape', 'Flatten', 'expand_dims', 'squeeze'})


def exact(graphs):
    """Whether every op of these optimized graphs (a fused group's too) is in EXACT and meets its condition."""
    return all(_exact(n) for g in graphs for n in g.nodes if not n.is_var)


def _exact(n, group=None):
    import numpy as np
    from . import native, onednn
    sub, name, a = getattr(n.op, 'subgraph', None), n.op.name, n.attrs
    if sub is not None:
        return all(_exact(m, n) for m in sub.nodes if not m.is_var)
    dts = {np.dtype(d) for d in n.dtypes or ()} | {np.dtype(s.dtypes[j]) for s, j in n.inputs}
    if name not in EXACT or len(dts) != 1 or dts.pop() not in (np.float32, np.float64):
        return False
    ins = [s.shapes[j] for s, j in n.inputs]
    if name == 'Activation':
        return a.get('act_type') == 'relu'
    if name in ('Pooling', '_backward_Pooling'):
        return a.get('pool_type', 'max') == 'max'
    if name == 'sum':   # (alone: its ref in both tiers)
        from ..registry import reduce_axes
        axes = reduce_axes(a['axis'], len(ins[0]), a.get('exclude', False))
        return group is None or 0 < len(axes) < len(ins[0]) and axes == tuple(range(len(axes)))
    if name in ('FullyConnected', 'dot'):   # a native GEMM row in the compiled plan (rows: 1 is a GEMV there)
        if name == 'dot' and (len(ins[0]) != 2 or len(ins[1]) != 2):
            return group is None   # (alone: its ref in both tiers)
        rows = int(np.prod(n.shapes[0][:-1]))
        return native.blas() is not None and rows >= 2 and \
            (group is None or int(np.prod(n.shapes[0])) < native.SMALL)   # (a larger group's GEMM runs NumPy's)
    if name in ('Convolution', '_backward_Convolution'):
        from .conv import _covers
        x, w = ins[1:3] if name == '_backward_Convolution' else ins[:2]
        geo = onednn._geometry(a)
        out = (x[0], w[0]) + onednn._out(x, *geo[:4])
        if len(x) == 4 and _covers(x, geo[0], geo[3], out[2:]):
            return True   # (the im2col path without a kernel, oneDNN's or not: the GEMMs are NumPy's in both)
        if not onednn.usable(a, tuple(x), tuple(w), (np.float32,)):
            return False
        if name == 'Convolution':
            return True
        need_dx = a.get('_need', (True,))[0]
        if onednn.layout_for('bwd_weights', x, w, geo) is None:   # the im2col path: its weight gradient's columns
            return not need_dx   # are copies and its GEMMs NumPy's in both tiers; col2im's sums are not in one order
        return not need_dx or onednn.layout_for('bwd_data', x, w, geo) is not None
    return True


NOW = ('_backward_Pooling', '_backward_pool_relu')   # (ops whose kernels, conv.NOW, a first tier builds)


def _build(nodes):
    try:
        cpu._build_all(nodes)
    except Exception:   # (built where first needed instead, which raises the failure there)
        pass


def pending(trainer):
    """Whether a first tier of a step that `trainer` updates ran and is not swapped yet."""
    return any(trainer in t.trainers for t in _pending)


class Tiers:
    """The first tier's (forward, backward) plans of optimized graphs fopt, bopt, the worker compiling the
    second's kernels, and compiled(): the plans of the second tier."""

    def __init__(self, fopt, bopt, params=()):
        from .backend import cpu as be
        self.graphs, self.runs = (fopt, bopt), 0
        self.trainers = weakref.WeakSet(t for t in (getattr(p, '_trainer', None) for p in params) if t is not None)
        self.child = forked.start(fopt, bopt, params, whole=True)
        if config.num_threads() > 1:   # the gradients' kernels it builds (conv.NOW), on a thread while the forward runs
            now = [n for n in bopt.nodes if not n.is_var and n.op.name in NOW and n.dtypes]
            threading.Thread(target=_build, args=(now,), daemon=True, name='graphc-tier').start()
        self.first = (First(self, be.executor(fopt, False)), First(self, be.executor(bopt, False)))

    def compiled(self):
        """The compiled (forward, backward) plans: the worker waited for (at most forked.TIMEOUT_S from its start)
        and its modules loaded, the rest compiled here."""
        from .backend import cpu as be
        _pending.discard(self)
        if self.child is not None:
            self.child.join()
            self.child = None
        fopt, bopt = self.graphs
        return be.executor(fopt), be.executor(bopt)

    def close(self):
        if self.child is not None:
            self.child.close()
            self.child = None

    def __del__(self):   # (a block dropped after its first step: the worker is not left behind)
        self.close()


class First:
    """A first-tier plan: the Plan's call with cpu.deferring() on; its attributes are the plan's. Its GEMMs are the
    native rows' (gemm()) where the compiled plan will have native rows (native_rows()), else NumPy's as there."""

    def __init__(self, tiers, plan):
        self.tiers, self.plan, self.native = tiers, plan, native_rows(plan.graph)

    def __call__(self, feed):
        self.tiers.runs += 1
        _pending.add(self.tiers)
        was, _gemms.native = getattr(_gemms, 'native', True), self.native
        try:
            with cpu.deferring():
                return self.plan(feed)
        finally:
            _gemms.native = was

    def __getattr__(self, name):
        return getattr(self.plan, name)


_gemms = threading.local()   # .native: the running first tier's compiled plan will run its GEMMs in native rows


def native_rows(graph):
    """Whether the compiled plan of an optimized graph will have a native program (plan._native_program: two steps
    or more that compile_step takes: GEMMs, views, fused groups below native.SMALL without a convolution), so
    its GEMMs are native rows; else every step runs from Python and its GEMMs are NumPy's."""
    import numpy as np
    from . import native
    if not config.native():
        return False
    steps = 0
    for n in graph.nodes:
        sub = None if n.is_var else getattr(n.op, 'subgraph', None)
        if n.is_var or sub is None and n.op.name not in ('FullyConnected', 'dot') + native.VIEWS:
            continue
        if sub is not None and (any(m.op.name in ('Convolution', 'Deconvolution') for m in sub.nodes if not m.is_var)
                                or max(int(np.prod(m.shapes[0])) for m in sub.nodes if not m.is_var) >= native.SMALL):
            continue
        steps += n.op.name != 'dot' or all(len(s.shapes[j]) == 2 for s, j in n.inputs)
    return steps >= 2


def gemm(name, attrs, arrays):
    """A FullyConnected's or a 2-d dot's value in a first tier by the GEMM the compiled plan's native row calls
    (runtime/native.gemm_now; a bias filled in first, as its ROWFILL row: the same bits), or None (its ref runs:
    also where that plan has no native rows, First)."""
    import numpy as np
    from .native import gemm_now
    if not getattr(_gemms, 'native', True):
        return None
    if name == 'dot':
        a, b = arrays
        ta, tb = attrs['transpose_a'], attrs['transpose_b']
        if a.ndim != 2 or b.ndim != 2:
            return None
        c = np.empty((a.shape[1] if ta else a.shape[0], b.shape[0] if tb else b.shape[1]), a.dtype)
        return c if gemm_now(ta, tb, np.ascontiguousarray(a), np.ascontiguousarray(b), c, 0) else None
    d, w = arrays[:2]
    x = np.ascontiguousarray(d).reshape(-1, w.shape[1])   # (m rows of k, flattened or not: as _gemm_step)
    c = np.empty((x.shape[0], w.shape[0]), d.dtype)
    if len(arrays) > 2:
        c[...] = arrays[2]
    if not gemm_now(False, True, x, np.ascontiguousarray(w), c, len(arrays) > 2):
        return None
    return c.reshape((d.shape[0], w.shape[0]) if attrs['flatten'] else d.shape[:-1] + (w.shape[0],))
