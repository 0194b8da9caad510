"""GPU plans for hybridized blocks: replay what they run (their optimized graphs and inputs) on a CUDA device,
or on the host emulation of one (runtime/emulate.py), as benchmarks/gpu.py and tests/test_cuda.py do. (Not
named graphc/gpu.py: a submodule of that name would hide the gc.gpu() context function.)"""
import contextlib

from .runtime import cuda


@contextlib.contextmanager
def captured_plans():
    """Within the block, every plan a hybridized block runs (inference, and the forward and backward halves
    of a recorded training step) is appended to the yielded list as (graph, feed {id(variable): array})."""
    from .gluon import cached
    runs, base = [], cached.Plan

    class Recording(base):
        def __init__(self, graph):
            super().__init__(graph)
            self.graph = graph

        def __call__(self, feed):
            runs.append((self.graph, dict(feed)))
            return super().__call__(feed)
    cached.Plan = Recording
    try:
        yield runs
    finally:
        cached.Plan = base


def device(emulate=False, device_id=0):
    """A device for GpuPlan: cupy's (NVRTC, cuBLAS, memory pool), or the host emulation with emulate=True."""
    if emulate:
        from .runtime.emulate import EmuDevice
        return EmuDevice()
    return cuda.CupyDevice(device_id)


def plan(graph, dev):
    """A GpuPlan of graph on dev: call it with a feed {id(variable): array}."""
    return cuda.GpuPlan(graph, dev)


def split(op, need, graph):
    """The training step of `graph` (the cached graph's, or its traced form) split as CachedOp.compiled splits it:
    (forward graph: outputs then saved values, backward graph: the gradients that exist, saved-value vars, head
    vars, which grads exist); both halves through the 'training' pipeline. The gradient graph comes from
    op.built on an entry whose graph is `graph`. (The same split as CachedOp.compiled's, which builds CPU Plans
    of it: one function for both would belong in gluon/cached.py.)"""
    import types

    from .graph import Graph, Node, rebuild
    from .gluon.cached import CachedOp
    from .passes import run_pipeline
    e = op.entry
    sub = CachedOp(types.SimpleNamespace(graph=graph, input_vars=e.input_vars, visible=e.visible,
                                         block_name=e.block_name))
    joint, heads, grads, _ = sub.built(need)
    fwd = {id(n) for n in graph.nodes}
    saved_of, inputs = {}, []

    def rep(n, ins):  # a forward op: its values come in as saved inputs
        if id(n) not in fwd or n.is_var:
            return None
        for j in range(n.num_outputs):
            if (id(n), j) not in saved_of:
                v = Node(None, f"{n.name}_saved{j}", shapes=[n.shapes[j]], dtypes=[n.dtypes[j]])
                saved_of[(id(n), j)] = ((n, j), v)
                inputs.append(v)
        return [(saved_of[(id(n), j)][1], 0) for j in range(n.num_outputs)]
    jg = Graph([g for g in grads if g is not None])
    inputs.extend(jg.inputs)
    bwd = rebuild(jg, rep, inputs=inputs)
    used = {id(n) for n in bwd.nodes}
    saved = [(entry, v) for entry, v in saved_of.values() if id(v) in used]
    fgraph = Graph(list(graph.outputs) + [entry for entry, _ in saved], graph.inputs)
    fopt, _ = run_pipeline(fgraph, 'training', tag=e.block_name + '.gpu.forward')
    bopt, _ = run_pipeline(bwd, 'training', tag=e.block_name + '.gpu.backward')
    return fopt, bopt, [v for _, v in saved], heads, [g is not None for g in grads]


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
        fg, bg, self.svars, self.heads, self.has = split(cg.op, need, graph)
        d = _dev.device(dev_id)
        self.forward, self.backward = cuda.GpuPlan(fg, d), cuda.GpuPlan(bg, d)
        self.name, self.dev_id = f"_GpuStep({cg.block_name})", dev_id

    def grad(self, F, attrs, xs, ys, dys):
        from . import device as _dev
        from .ndarray.ndarray import NDArray
        feed = dict(attrs['feed'])
        feed.update({id(v): a for v, a in zip(self.svars, attrs['saved'])})
        feed.update({id(h): g._data for h, g in zip(self.heads, dys)})
        with _dev.cupy().cuda.Device(self.dev_id):
            _dev.SYNCED.add(self.dev_id)
            it = iter(self.backward(feed))
        out, gi = [], iter(self.has)
        for n in attrs.get('_need', (True,) * len(xs)):
            out.append(NDArray(next(it)) if n and next(gi) else None)
        return out


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
    feed = {id(v): a._data for v, a in zip(cg.input_vars, inputs)}
    with _dev.cupy().cuda.Device(dev_id):
        _dev.SYNCED.add(dev_id)
        vals = op.forward(feed)
        n_keep, nv = len(cg.graph.outputs), len(cg.visible)
        for (param, m), stat in zip(cg.aux, vals[nv:n_keep]):  # BatchNorm moving statistics, on the device
            WRITES[0] += 1
            d = param.data()._data
            v = next(v for p, v in cg.param_vars if p is param)
            feed[id(v)] = d.copy()  # the backward reads the value the forward read
            d *= m
            d += (1 - m) * stat
    outs = [NDArray(v) for v in vals[:nv]]
    autograd.record_op(op, {'feed': feed, 'saved': vals[n_keep:]}, inputs, [x._data for x in inputs], outs,
                       tuple(o._data for o in outs))
    return _unflatten(cg.structure, outs)
