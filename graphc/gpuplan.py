"""GPU plans for hybridized blocks: replay what they run (their optimized graphs and inputs) on a CUDA device,
or on the host emulation of one (runtime/emulate.py), as benchmarks/gpu.py and tests/test_cuda.py do. (Not
named graphc/gpu.py: a submodule of that name would hide the gc.gpu() context function.)"""
import contextlib
import logging
import sys

from . import config
from .runtime import backend, cuda

log = logging.getLogger('graphc')


@contextlib.contextmanager
def captured_plans():
    """Within the block, every graph an executor runs (a hybridized block's inference, and the forward and
    backward halves of a recorded training step) is appended to the yielded list as (graph, feed
    {variable node: array}): executors notify runtime/backend.recorders."""
    runs = []
    backend.recorders.append(runs)
    try:
        yield runs
    finally:
        backend.recorders.remove(runs)


def device(emulate=False, device_id=0):
    """A device for GpuPlan: cupy's (NVRTC, cuBLAS, memory pool), or the host emulation with emulate=True."""
    if emulate:
        from .runtime.emulate import EmuDevice
        return EmuDevice()
    return cuda.CupyDevice(device_id)


def split(cg, need, graph):
    """The training step of `graph` (cg's graph, or its traced form) split as CachedOp.compiled splits it
    (passes.autodiff.split_training_step), both halves through the 'training' pipeline: (forward: outputs then
    saved values, backward: the gradients that exist, saved-value vars, head vars, which grads exist)."""
    from .passes import run_pipeline
    from .passes.autodiff import split_training_step
    wrt = [v for v, n in zip(cg.input_vars, need) if n]
    fgraph, bwd, saved, heads, grads = split_training_step(graph, wrt, graph.outputs[:len(cg.visible)])
    with backend.use('cuda'):  # the device's passes (conv_pool is the CPU's)
        fopt, _ = run_pipeline(fgraph, 'training', tag=cg.block_name + '.gpu.forward')
        bopt, _ = run_pipeline(bwd, 'training', tag=cg.block_name + '.gpu.backward')
    return fopt, bopt, saved, heads, [g is not None for g in grads]


class Captured:
    """A GpuPlan replayed as a CUDA graph (hybridize(static_alloc=True, static_shape=True) on a GPU).

    The first call runs the plan (warm-up: kernels compiled and loaded, constants on the device, cuBLAS set up:
    none of that may happen inside a capture). The second captures one run on a stream of its own into a cupy
    CUDA graph and launches it; later calls only launch it. Inputs in `copied` are read from buffers of the
    capture (a call copies its values in, unless it passes the buffer itself: `buffers`); the other inputs
    (parameters) are read where they are, so they must stay the same arrays: another one recaptures, saying why.
    Every allocation of the capture comes from a memory pool of its own, kept with the graph: memory the shared
    pool handed out again would be overwritten by each replay. The outputs are the capture's buffers, rewritten
    by every replay: callers copy what they hand out. A failed capture (an operation a capture cannot hold) is
    reported once and the plan runs as it is from then on."""

    def __init__(self, plan, copied, name, shared=()):
        self.plan, self.copied, self.name, self.shared = plan, frozenset(copied), name, shared
        self.used = {n for n, *_ in plan.inputs}
        self.graph, self.warm, self.failed, self.reasons = None, False, None, []
        self.captures = self.replays = 0
        self.feed, self.outs = {}, None

    def _why_not(self, feed):
        """Why the graph cannot replay this feed (None: it can)."""
        for v, a in feed.items():
            b = self.feed.get(v)
            if v in self.copied:
                if b is None or a.shape != b.shape or a.dtype != b.dtype:
                    return f"input {v.name!r} is {a.dtype}{list(a.shape)}, the graph's {b.dtype}{list(b.shape)}"
            elif a is not b:
                return f"input {v.name!r} is another array than the captured one (its buffer is read in place)"
        return None

    def __call__(self, feed):
        if self.failed:
            return self.plan(feed)
        feed = {v: a for v, a in feed.items() if v in self.used}
        if self.graph is not None:
            why = self._why_not(feed)
            if why:
                self._note(f"re-capturing the CUDA graph of {self.name}: {why}")
                self.graph = None
        if self.graph is None:
            if not self.warm:
                self.warm = True
                return self.plan(feed)
            if not self._capture(feed):
                return self.plan(feed)
        for v, a in feed.items():
            b = self.feed[v]
            if a is not b:
                b[...] = a  # (a device-to-device copy on the current stream, before the launch)
        self.graph.launch()
        self.replays += 1
        return self.outs

    def _note(self, msg):
        self.reasons.append(msg)
        log.info(msg)
        if config.log_retrace():
            print(msg, file=sys.stderr)

    def _capture(self, feed):
        from . import device as _dev
        cp = _dev.cupy()
        pool, stream = cp.cuda.MemoryPool(), cp.cuda.Stream(non_blocking=True)  # (no implicit sync with stream 0)
        try:
            with cp.cuda.using_allocator(pool.malloc):
                keep = {id(a) for a in self.shared()} if self.shared else ()  # another graph's buffers: read in place
                f = {v: cp.empty_like(a) if v in self.copied and id(a) not in keep else a for v, a in feed.items()}
                with stream:
                    stream.begin_capture()
                    try:
                        outs = self.plan(f)
                    finally:
                        graph = stream.end_capture()
        except Exception as e:  # noqa: BLE001  (cupy's and CUDA's errors: the plan runs without a graph)
            self.failed = f"{type(e).__name__}: {e}"
            self._note(f"graphc: the CUDA graph capture of {self.name} failed ({self.failed}); it runs without one")
            return False
        self.graph, self.feed, self.outs, self.pool, self.stream = graph, f, outs, pool, stream
        self.captures += 1
        return True


class DeviceStep:
    """The tape node's op for a hybridized training step on a GPU: the forward GpuPlan ran (its saved values
    stay on the device); backward runs the backward GpuPlan on them and gives device gradients."""
    kind, differentiable, mode_dependent, aux_inputs = 'opaque', True, False, ()
    nograd_inputs = frozenset()

    def __init__(self, cg, need, dev_id):
        from . import device as _dev
        # a fused RNN op the device loop does not cover (cuda.rnn_op): its traced cells instead
        graph = cg.traced if any(n.op.name == 'RNN' and cuda.rnn_op(n) is None for n in cg.graph.nodes
                                 if not n.is_var) else cg.graph
        fg, bg, self.svars, self.heads, self.has = split(cg, need, graph)
        d = _dev.device(dev_id)
        self.forward, self.backward = cuda.GpuPlan(fg, d), cuda.GpuPlan(bg, d)
        self.name, self.dev_id = f"_GpuStep({cg.block_name})", dev_id
        self.graphs = StaticStep(self, cg) if cg.static else None

    def grad(self, F, attrs, xs, ys, dys):
        from . import device as _dev
        from .ndarray.ndarray import NDArray
        feed = dict(attrs['feed'])
        feed.update(zip(self.svars, attrs['saved']))
        feed.update({h: g._data for h, g in zip(self.heads, dys)})
        with _dev.cupy().cuda.Device(self.dev_id):
            _dev.SYNCED.add(self.dev_id)
            it = iter(self.backward(feed) if self.graphs is None else self.graphs.backward(attrs, feed))
        out, gi = [], iter(self.has)
        for n in attrs.get('_need', (True,) * len(xs)):
            out.append(NDArray(next(it)) if n and next(gi) else None)
        return out


class StaticStep:
    """A training step's forward and backward plans as CUDA graphs (Captured). The backward graph reads the
    forward graph's buffers in place (saved values, data inputs): no copy per step. Those buffers belong to one
    recorded step at a time (`owner`); when another forward or backward would overwrite them while the owner's
    backward may still run (its tape node alive and not freed), the owner's values are copied out first and
    copied back by its own backward. The gradients are copied out of the backward graph's buffers (autograd sums
    them, and a block called twice in one step replays its backward twice)."""

    def __init__(self, step, cg):
        aux = {p for p, _ in cg.aux}
        fixed = {v for p, v in cg.param_vars if p not in aux}  # parameters: read where they are
        self.fwd = Captured(step.forward, cg.data_vars, cg.block_name + ' (forward)')
        self.bwd = Captured(step.backward, [v for v in step.backward.graph.inputs if v not in fixed],
                            cg.block_name + ' (backward)', shared=self._buffers)
        self.data_vars, self.fixed, self.owner = cg.data_vars, fixed, None  # owner: (weakref to its node, attrs)

    def _buffers(self):
        return list(self.fwd.outs) + list(self.fwd.feed.values()) if self.fwd.graph is not None else []

    def _release(self, keep=None):
        """Copy the owner's values out of the buffers unless its backward can no longer run (or it is `keep`)."""
        if self.owner is None:
            return
        ref, attrs = self.owner
        node = ref()
        if attrs is not keep and node is not None and not node.freed:  # (views of buffers too: all but parameters)
            attrs['saved'] = [a.copy() for a in attrs['saved']]
            attrs['feed'] = {v: a if v in self.fixed else a.copy() for v, a in attrs['feed'].items()}
        self.owner = None

    def forward(self, feed):
        self._release()
        vals = self.fwd(feed)
        if vals is self.fwd.outs:  # replayed: the backward reads the data inputs from the graph's buffers
            feed.update((v, self.fwd.feed[v]) for v in self.data_vars if v in self.fwd.feed)
        return vals

    def recorded(self, attrs, node):
        import weakref
        if self.fwd.graph is not None:
            self.owner = (weakref.ref(node), attrs)

    def backward(self, attrs, feed):
        self._release(keep=attrs)
        grads = self.bwd(feed)
        return [g.copy() for g in grads] if grads is self.bwd.outs else grads


def train_step_on_device(cg, args, dev_id):
    """A recorded call of CachedGraph cg on gpu(dev_id): the forward GpuPlan (outputs and the values the backward
    reads, all left on the device), BatchNorm moving statistics updated in place by device ops, and a tape node
    whose backward is the backward GpuPlan. No host copy in the step (tests/test_gpu_training.py counts them)."""
    from . import autograd
    from . import device as _dev
    from .ndarray.ndarray import WRITES, NDArray
    from .gluon.cached import _unflatten
    data = [a for a in args if isinstance(a, NDArray)]
    pdata = [p._cur if p._cur is not None else p.data() for p, _ in cg.param_vars]
    inputs = data + pdata
    need = tuple(x._ag is not None for x in inputs)
    if not any(need):  # nothing to differentiate: the step is inference on the device
        return cg._run_gpu(args, dev_id)
    steps = cg.__dict__.setdefault('_gpu_steps', {})
    op = steps.get((need, dev_id))
    if op is None:
        op = steps[(need, dev_id)] = DeviceStep(cg, need, dev_id)
    feed = {v: a._data for v, a in zip(cg.input_vars, inputs)}
    with _dev.cupy().cuda.Device(dev_id):
        _dev.SYNCED.add(dev_id)
        vals = op.forward(feed) if op.graphs is None else op.graphs.forward(feed)
        n_keep, nv = len(cg.graph.outputs), len(cg.visible)
        for (param, m), stat in zip(cg.aux, vals[nv:n_keep]):  # BatchNorm moving statistics, on the device
            WRITES[0] += 1
            d = param.data()._data
            v = next(v for p, v in cg.param_vars if p is param)
            feed[v] = d.copy()  # the backward reads the value the forward read
            d *= m
            d += (1 - m) * stat
        outs = [NDArray(v) for v in (vals[:nv] if op.graphs is None else [v.copy() for v in vals[:nv]])]
    attrs = {'feed': feed, 'saved': vals[n_keep:]}
    autograd.record_op(op, attrs, inputs, [x._data for x in inputs], outs, tuple(o._data for o in outs))
    if op.graphs is not None:
        op.graphs.recorded(attrs, outs[0]._ag[0])
    return _unflatten(cg.structure, outs)
