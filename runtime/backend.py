"""Backends: where a graph runs. Ops own semantics only (each op's ref is its NumPy spec); a backend owns how
they execute:

  interp  the reference interpreter (graphc/interpreter.py): every op's ref, nothing compiled
  cpu     runtime/plan.Plan with native segments; its lowerings (registered by op name below) are oneDNN's
          convolutions where its wheel is installed (runtime/onednn.py), the compiled im2col/pooling loops
          (runtime/conv.py), BatchNorm (runtime/batchnorm.py), RNN step loops
          (runtime/rnn.py) and fused kernels (runtime/cpu.py); every other op runs its ref
  cuda    runtime/cuda.GpuPlan on a device (generated CUDA; its own kernel tables)

Each has kernel(op) (its lowering, or the op's ref), can_fuse(node) (which the fuser, passes/fusion.py,
consults: an op joins a fused group only where the backend's fused kernels cover it), wants(op name) (whether a
pass should form an op of its own that this backend lowers: passes/blocked_convs.py asks it), compile(group) (a
FusedOp's compiled kernel, or None) and executor(graph) (a callable of a feed {variable node: array} that
returns the output arrays).

The backend in use is the one `use(name)` selects in this thread, else GRAPHC_BACKEND's (config.backend()).
Executors built with it notify `recorders` of each run (graphc/gpuplan.captured_plans).
"""
import contextlib
import threading
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np

from .. import config
from ..base import BF16, GraphcError, bf16_kernel
from ..passes import fusion

Kernel = Callable   # kernel(attrs, *arrays) -> an array or a tuple of arrays


class Backend:
    def __init__(self, name: str, rules: Optional[Dict[str, Callable]] = None,
                 can_fuse: Optional[Callable] = None, compile: Optional[Callable] = None,
                 executor: Optional[Callable] = None, wants: Optional[Callable] = None):
        self.name = name
        self.rules = rules or {}   # op name ('FusedOp' for fused groups) -> rule(op) -> its Kernel here
        self._can_fuse, self._compile, self._executor, self._wants = can_fuse, compile, executor, wants
        self._kernels: Dict[object, Kernel] = {}   # registry op -> kernel (eager calls look it up once per op)

    def kernel(self, op) -> Kernel:
        """op's kernel on this backend: its lowering rule's, else its ref."""
        k = self._kernels.get(op)
        if k is None:
            fused = isinstance(op, fusion.FusedOp)
            rule = self.rules.get('FusedOp' if fused else op.name)
            if rule is None:   # (not kept: a ref replaced later, as a test's monkeypatch, must be the one called)
                return op.ref
            k = rule(op)
            if not fused:  # (fused ops are one per graph kernel: their Plans hold them, not this table)
                self._kernels[op] = k
        return k

    def can_fuse(self, node) -> bool:
        return self._can_fuse is None or self._can_fuse(node)

    def wants(self, op_name: str) -> bool:
        """Whether a pass should form the op (one it makes, as passes/blocked_convs.py's): this backend lowers it
        and, where that depends on a library, has it."""
        return op_name in self.rules and (self._wants is None or self._wants(op_name))

    def compile(self, group):
        """The compiled kernel of a FusedOp, or None where this backend runs its subgraph op by op."""
        return None if self._compile is None else self._compile(group)

    def executor(self, graph, *args):
        return self._executor(self, graph, *args)


# ---------------------------------------------------------------- the CPU backend's lowerings
def _with_native(module):
    """A rule: the op's ref with `native` the compiled helpers of runtime/<module>.py (imported on first use,
    so `import graphc` loads no LLVM)."""
    def rule(op):
        import importlib
        native = importlib.import_module(f"{__package__}.{module}")
        return lambda attrs, *arrays: op.ref(attrs, *arrays, native=native)
    return rule


def _onednn_first(entry):
    """A rule: oneDNN's convolution (runtime/onednn.py `entry`) where its wheel is installed and the rule there
    picks it for the shape, else the ref over the compiled im2col/col2im."""
    def rule(op):
        from . import conv, onednn

        def run(attrs, *arrays):
            out = getattr(onednn, entry)(attrs, *arrays) if all(a.size for a in arrays) else None
            return op.ref(attrs, *arrays, native=conv) if out is None else out
        return run
    return rule


def _onednn_chain(entry):
    """A rule for a pass's op of several convolutions (passes/conv_pool.py, passes/blocked_convs.py): one oneDNN
    chain (runtime/onednn.py `entry`) where it takes it, else its parts by the CPU's kernels."""
    def rule(op):
        from . import onednn

        def run(attrs, *arrays):
            out = getattr(onednn, entry)(attrs, *arrays) if all(a.size for a in arrays) else None
            return op.ref(attrs, *arrays, kernel=cpu.kernel) if out is None else out
        return run
    return rule


def _cpu_wants(op_name):
    """passes/blocked_convs.py's region only where oneDNN runs it as one chain: its parts one by one are slower than
    the fused convolution epilogues that run them otherwise (ResNet-18 at batch 32: 678 vs 618 ms)."""
    from . import onednn
    return op_name != '_conv_region' or config.onednn() and onednn.library() is not None


def _gemm_rule(op):
    """FullyConnected and dot: the op's ref, but in a training step's first tier the GEMM of the compiled plan's
    native row (runtime/tiered.gemm): the same bits from both tiers."""
    from .cpu import deferred

    def run(attrs, *arrays):
        if deferred():
            from .tiered import gemm
            out = gemm(op.name, attrs, arrays)
            if out is not None:
                return out
        return op.ref(attrs, *arrays)
    return run


def _fused_rule(op):
    """A fused group: its compiled kernel (runtime/cpu.run_fused), else its subgraph with the CPU's kernels."""
    from .cpu import run_fused

    def run(attrs, *arrays):
        out = run_fused(op, arrays)
        return op.ref(attrs, *arrays, kernel=cpu.kernel) if out is None else out
    return run


def _cpu_can_fuse(node) -> bool:
    """Whether runtime/cpu.py's fused kernels cover the node: a float32/float64 elementwise op with a scalar
    lowering (graphc/ops/scalar.py), a row reduction it generates, or a GEMM/convolution anchor."""
    from .cpu import ROW_REDUCE
    if any(d is None or np.dtype(d) not in (np.float32, np.float64) for d in node.dtypes or [None]):
        return False
    op = node.op
    if op.kind in ('elemwise', 'broadcast'):
        return op.lower is not None and _lowers(node)
    return op.kind != 'reduce' or op.name in ROW_REDUCE


def _lowers(node) -> bool:
    """Whether node's scalar lowering has a form for its attributes (a lowering may return None)."""
    from ..ops.scalar import emit
    return emit(_Probe(np.dtype(node.dtypes[0]) == np.float64), node, [0.0] * len(node.inputs)) is not None


class _Probe:
    """ops/scalar.Scalar's decompositions over primitives that compute nothing (each returns 0.0): a lowering
    run on it says only whether it has a form."""

    def __init__(self, f64):
        self.f64 = f64

    def __getattr__(self, name):
        from ..ops.scalar import Scalar
        f = getattr(Scalar, name, None)
        return (lambda *a: f(self, *a)) if f is not None else (lambda *a: 0.0)


def _cpu_compile(group):
    from .cpu import epilogue_of, kernel_for
    return epilogue_of(group) or kernel_for(group)


# ---------------------------------------------------------------- executors
class Interpreted:
    """The reference interpreter as an executor: refs only, node by node."""

    def __init__(self, graph):
        self.graph = graph

    def __call__(self, feed):
        from ..interpreter import interpret
        _record(self.graph, feed)
        return interpret(self.graph, feed)


def _plan(backend, graph, native=True):
    from .plan import Plan
    bf = BF16[0]
    if bf is not None and any(bf in (n.dtypes or ()) for n in graph.nodes):  # (nothing compiles for bfloat16)
        return Plan(graph, False, kernel=lambda op: bf16_kernel(op, backend.kernel(op)))
    return Plan(graph, native, kernel=backend.kernel)


def _gpu_plan(backend, graph, device):
    from .cuda import GpuPlan
    return GpuPlan(graph, device)


interp = Backend('interp', executor=lambda b, graph: Interpreted(graph))
cpu = Backend('cpu', rules={
    'Convolution': _onednn_first('convolution'), '_backward_Convolution': _onednn_first('convolution_backward'),
    'Deconvolution': _onednn_first('deconvolution'), '_backward_Deconvolution': _onednn_first('deconvolution_backward'),
    '_conv_act_pool': _onednn_chain('conv_act_pool'), '_conv_region': _onednn_chain('conv_region'),
    '_backward_pool_relu': _with_native('conv'),
    'Pooling': _with_native('conv'), '_backward_Pooling': _with_native('conv'),
    'BatchNorm': _with_native('batchnorm'), '_backward_BatchNorm': _with_native('batchnorm'),
    'RNN': _with_native('rnn'), '_backward_RNN': _with_native('rnn'), 'FusedOp': _fused_rule,
    'FullyConnected': _gemm_rule, 'dot': _gemm_rule},
    can_fuse=_cpu_can_fuse, compile=_cpu_compile, executor=_plan, wants=_cpu_wants)
cuda = Backend('cuda', can_fuse=_cpu_can_fuse, executor=_gpu_plan)   # (the scalar lowerings are shared)
BACKENDS = {b.name: b for b in (interp, cpu, cuda)}


# ---------------------------------------------------------------- which one runs
default = BACKENDS[config.backend()]   # (read once, at start)


class _Current(threading.local):
    backend = None               # this thread's choice (use()); None: GRAPHC_BACKEND's
    kernels = default._kernels   # the kernel table of the backend in use (eager ops read it: one dict lookup)


_cur = _Current()


def current() -> Backend:
    return _cur.backend or default


def get(name: str) -> Backend:
    b = BACKENDS.get(name)
    if b is None:
        raise GraphcError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {name!r}")
    return b


@contextlib.contextmanager
def use(name: str) -> Iterator[Backend]:
    """with backend.use('interp'): ... — the backend hybridized blocks, Symbol executors, the lazy engine, eager
    ops and gc.explain use in this thread, within the block."""
    old = _cur.backend, _cur.kernels
    b = _cur.backend = get(name)
    _cur.kernels = b._kernels
    try:
        yield b
    finally:
        _cur.backend, _cur.kernels = old


# ---------------------------------------------------------------- recording runs
recorders: List[list] = []   # lists that each executor run appends (graph, feed) to (graphc/gpuplan.py)


def _record(graph, feed):
    for r in recorders:
        r.append((graph, dict(feed)))


fusion.target = current
