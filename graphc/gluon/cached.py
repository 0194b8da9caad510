"""Hybridized execution: trace a HybridBlock to a Graph once per cache key, then run the graph.

A call with a new key (input shapes and dtypes, training mode, parameter dtypes) traces again
and says why (logging, or GRAPHC_LOG_RETRACE=1). Under autograd.record(), the whole graph
enters the tape as one node; its backward is the gradient graph from passes.autodiff.
"""
import itertools
import logging
import sys
import threading
import weakref

import numpy as np

from .. import config
from .. import autograd
from ..base import GraphcError, fmt_shape
from ..graph import Graph
from ..ndarray.ndarray import BINDS, CASTS, NDArray, WRITES
from ..symbol import symbol as _symm
from ..symbol.symbol import Symbol, TraceContext, input_var

from ..interpreter import interpret
from ..runtime import backend

# the module by its import name: MXNet's shim rebinds the attribute graphc.ndarray.ndarray to the package
_ndm = sys.modules[NDArray.__module__]

log = logging.getLogger('graphc')
_opt_lock = threading.RLock()
_swap_lock = threading.Lock()   # a first tier's plans replaced by the compiled ones (runtime/tiered.py)


def flatten_inputs(args):
    """(structure, leaves): nested lists, tuples and dicts of inputs flattened depth first (dicts in key order),
    as MXNet flattens a HybridBlock's nested inputs; arrays are leaves, so are other Python values."""
    if isinstance(args, (list, tuple)):
        parts, leaves = [], []
        for a in args:
            s, f = flatten_inputs(a)
            parts.append(s)
            leaves += f
        return (type(args), tuple(parts)), leaves
    if isinstance(args, dict):
        keys = sorted(args, key=repr)
        parts, leaves = [], []
        for k in keys:
            s, f = flatten_inputs(args[k])
            parts.append(s)
            leaves += f
        return (dict, tuple(keys), tuple(parts)), leaves
    return None, [args]


def unflatten_inputs(structure, leaves):
    """flatten_inputs reversed: `leaves` (an iterator) put back into `structure`."""
    if structure is None:
        return next(leaves)
    if structure[0] is dict:
        return {k: unflatten_inputs(s, leaves) for k, s in zip(structure[1], structure[2])}
    return structure[0](unflatten_inputs(s, leaves) for s in structure[1])


def _leaf_key(a):
    return (a.shape, a.dtype.str) if isinstance(a, NDArray) else ('py', repr(a)[:200])


def cache_key(args, params):
    """(input leaves' shapes and dtypes, training, parameter casts, nesting structure); a Python value among the
    inputs is part of the trace (a constant), so its repr is in the key."""
    if all(type(a) is NDArray for a in args):  # the common case, without the nesting walk
        return tuple((a.shape, a.dtype.str) for a in args), autograd._st.training, CASTS[0], len(args)
    structure, leaves = flatten_inputs(tuple(args))
    return tuple(_leaf_key(a) for a in leaves), autograd._st.training, CASTS[0], _structure_key(structure)


def _structure_key(structure):
    """The structure with types by name and dict keys by repr, so that equal nestings give equal keys."""
    if structure is None:
        return None
    if structure[0] is dict:
        return ('dict', tuple(repr(k)[:200] for k in structure[1]), tuple(map(_structure_key, structure[2])))
    return (structure[0].__name__, tuple(map(_structure_key, structure[1])))


def describe_change(old, new):
    """Which part of the cache key changed, in words (for the re-trace log)."""
    (oin, otr, opd, ost), (nin, ntr, npd, nst) = old, new
    why = []
    if ost != nst and not (isinstance(ost, int) and isinstance(nst, int)):
        why.append("input nesting changed")
    if len(oin) != len(nin):
        why.append(f"{len(oin)} inputs -> {len(nin)}")
    else:
        for i, (a, b) in enumerate(zip(oin, nin)):
            if a[0] == 'py' or b[0] == 'py':
                if a != b:
                    why.append(f"input {i} {a[1] if a[0] == 'py' else 'array'} -> {b[1] if b[0] == 'py' else 'array'}")
            elif a[0] != b[0]:
                why.append(f"input {i} shape {fmt_shape(a[0])} -> {fmt_shape(b[0])}")
            elif a[1] != b[1]:
                why.append(f"input {i} dtype {np.dtype(a[1])} -> {np.dtype(b[1])}")
    if otr != ntr:
        why.append(f"training mode {otr} -> {ntr}")
    if opd != npd:
        why.append("parameter dtypes changed (cast)")
    return '; '.join(why) or 'unknown'


_clock = itertools.count()


def remember(block, key, entry):
    """block._cache[key] = entry, evicting the least recently called trace past GRAPHC_MAX_TRACES (default 64; one
    warning a block): its plans and buffers are freed, and it is traced again if that key comes back."""
    cache = block._cache
    cache[key] = entry
    if len(cache) > config.max_traces():
        del cache[min(cache, key=lambda k: cache[k].used)]
        if not getattr(block, '_warned_traces', False):
            block._warned_traces = True
            import warnings
            warnings.warn(f"graphc: {block.name} has more than {config.max_traces()} traced input signatures "
                          "(GRAPHC_MAX_TRACES); the least recently used are dropped and traced again when they "
                          "return: pad or bucket input shapes to avoid re-tracing", RuntimeWarning, stacklevel=4)
    return entry


class _Later:
    """A training step's backward plan, built at its first use; until then its kernels compile ahead, in a forked
    worker (runtime/forked.py) or on the compile thread (runtime/cpu.warm), while the forward runs. Calls and
    attributes are the plan's."""

    def __init__(self, make, graph, child=None):
        from ..runtime.cpu import warm
        self._args, self._plan, self._lock = (make, graph), None, threading.Lock()
        self.ahead = child or warm(graph)   # (a forked worker, runtime/forked.Child; a Future; or None)

    def plan(self):
        if self._plan is None:
            with self._lock:
                if self._plan is None:
                    make, graph = self._args
                    self._plan = make(graph)
        return self._plan

    def __call__(self, feed):
        try:
            return self.plan()(feed)
        finally:
            if hasattr(self.ahead, 'close'):   # (its first run compiled what it needs: the worker stops)
                self.ahead.close()

    def __getattr__(self, name):
        return getattr(self.plan(), name)


class CachedOp:
    """The tape node's op for one traced graph: backward runs its gradient graph."""
    kind, differentiable, mode_dependent, aux_inputs = 'opaque', True, False, ()
    nograd_inputs = frozenset()

    def __init__(self, entry):
        self.entry, self.name, self._grads, self._compiled = entry, f"_CachedOp({entry.block_name})", {}, {}
        self._tiers = {}   # need -> runtime/tiered.Tiers while a first tier's plans are the ones in _compiled

    def built(self, need):
        """(gradient graph, head vars, grads, forward nodes the backward reads) for the inputs in `need`."""
        hit = self._grads.get(need)
        if hit is None:
            from ..passes.autodiff import grad_graph
            e = self.entry
            wrt = [v for v, n in zip(e.input_vars, need) if n]
            joint, heads, grads = grad_graph(e.graph, wrt, e.graph.outputs[:len(e.visible)])
            fwd = set(e.graph.nodes)
            read = {s for n in (joint.nodes if joint else []) if n not in fwd for s, _ in n.inputs}
            keep = [n for n in e.graph.nodes if n in read and not n.is_var]
            hit = self._grads[need] = (joint, heads, grads, keep)
        return hit

    def compiled(self, need, forward=False):
        """The training step split for the compiled backend: (forward Plan, backward Plan, saved-value vars,
        head vars, which grads exist). The forward also outputs the values the backward reads, so both
        halves go through the training pipeline (fusion, compiled kernels) without sharing nodes. forward: asked
        by a block's forward, whose first call runs a first tier (runtime/tiered.py) and whose second swaps in
        the compiled plans."""
        hit = self._compiled.get(need)
        tiers = self._tiers.get(need)
        if tiers is not None and forward and tiers.runs:   # (a compile that fails raises here, each call again)
            with _swap_lock:   # (threads training one block: one swaps, the others then find its plans)
                if self._tiers.get(need) is tiers:
                    self._compiled[need] = tiers.compiled() + hit[2:]
                    del self._tiers[need]
            hit = self._compiled[need]
        if hit is not None and type(hit[1]) is _Later and hit[1]._plan is not None:   # (built: the plan from now on)
            hit = self._compiled[need] = hit[:1] + (hit[1]._plan,) + hit[2:]
        if hit is None:
            from ..passes import run_pipeline
            from ..passes.autodiff import split_training_step
            e = self.entry
            fgraph, bwd, saved, heads, grads = split_training_step(
                e.graph, [v for v, n in zip(e.input_vars, need) if n], e.graph.outputs[:len(e.visible)])
            off = getattr(e, 'disabled', None)  # (an Executor's entry: MXNET_ELIMINATE_COMMON_EXPR=0 turns cse off)
            fopt, _ = run_pipeline(fgraph, 'training', disabled=off, tag=e.block_name + '.forward')
            bopt, _ = run_pipeline(bwd, 'training', disabled=off, tag=e.block_name + '.backward')
            from ..runtime import forked, tiered
            from ..runtime.cpu import warm
            params = [p for p, _ in getattr(e, 'param_vars', ())]   # (an Executor's entry has none: no Trainer)
            has = [g is not None for g in grads]
            if forward and tiered.on((fopt, bopt)):
                tiers = self._tiers[need] = tiered.Tiers(fopt, bopt, params)
                hit = self._compiled[need] = tiers.first + (saved, heads, has)
                return hit
            child = forked.start(fopt, bopt, params)   # (kernels compile in a child meanwhile)
            if child is None:
                warm(fopt)   # (the pooling kernels compile there while this thread builds the plan's fused ones)
            fplan = backend.cpu.executor(fopt)
            bplan = _Later(backend.cpu.executor, bopt, child)
            if bplan.ahead is None:   # (nothing compiles ahead: built now)
                bplan = bplan.plan()
            hit = self._compiled[need] = (fplan, bplan, saved, heads, has)
        return hit

    def grad(self, F, attrs, xs, ys, dys):
        need = attrs.get('_need', (True,) * len(xs))
        out = [None] * len(xs)
        if 'saved' in attrs:  # the compiled split
            _, bplan, svars, heads, has = self.compiled(need)
            feed = dict(attrs['feed'])
            feed.update(zip(svars, attrs['saved']))
            feed.update({h: g._data for h, g in zip(heads, dys)})
            it = iter(bplan(feed))
            gi = iter(has)
            for i, n in enumerate(need):
                if n and next(gi):
                    out[i] = NDArray(next(it))
            return out
        joint, heads, grads, _ = self.built(need)
        if joint is None:
            return out
        env = dict(attrs['env'])  # a second backward (retain_graph) reuses the forward values
        for h, g in zip(heads, dys):
            env[h] = (g._data,)
        vals = interpret(joint, {}, env=env, nodes=[n for n in joint.nodes if n not in env])
        it = iter(vals)
        gi = iter(grads)
        for i, n in enumerate(need):
            if n:
                g = next(gi)
                if g is not None:
                    out[i] = NDArray(next(it))
        return out


class CachedGraph:
    """One traced graph: its inputs (data, parameters, constants), outputs and aux-state updates."""

    def __init__(self, block, args):
        from .. import sym
        self.block_name = block.name
        self.used = next(_clock)
        flags = getattr(block, '_flags', {})  # both: GPU plans replay as CUDA graphs (graphc/gpuplan.Captured)
        self.static = bool(flags.get('static_alloc') and flags.get('static_shape'))
        self.training = training = autograd.is_training()
        self.casts = CASTS[0]   # (part of the cache key: the fast path checks it)
        ctx = TraceContext(training=training)
        in_structure, leaves = flatten_inputs(tuple(args))
        self.flat = all(type(a) is NDArray for a in args)  # the positional fast path takes flat arguments only
        with ctx:
            names = ['data'] if len(leaves) == 1 else [f"data{i}" for i in range(len(leaves))]
            # data inputs carry no shape hint into exported files (any batch size loads)
            syms = [input_var(nm, a.shape, a.dtype) if isinstance(a, NDArray) else a for nm, a in zip(names, leaves)]
            out = block._traced_forward(ctx, *unflatten_inputs(in_structure, iter(syms)))
        self.structure, outs = _flatten(out)
        if not outs:
            raise GraphcError(f"{block.name}: the forward returned no arrays")
        self.visible = [s._one() for s in outs]
        aux = [(p, stat._one(), m) for p, stat, m in ctx.aux_updates]
        self.graph = Graph(self.visible + [e for _, e, _ in aux])
        # the trace pipeline (unrolled cells -> fused RNN) runs before autodiff; export and viz keep `visible`,
        # the graph as traced
        from ..passes import run_pipeline
        self.traced = self.graph
        self.graph, self.trace_report = run_pipeline(self.graph, 'trace', tag=block.name + '.trace')
        inputs = set(self.graph.inputs)
        self.data_vars = [s._one()[0] for s in syms if isinstance(s, Symbol)]
        self.param_vars = [(p, v._one()[0]) for p, v in ctx.param_vars.values() if v._one()[0] in inputs]
        self.aux = []
        for p_sym, entry, momentum in aux:
            param = next((p for p, v in ctx.param_vars.values() if v._one()[0] is p_sym._one()[0]), None)
            if param is not None:
                self.aux.append((param, momentum))
        self.input_vars = self.data_vars + [v for _, v in self.param_vars]
        self.op = CachedOp(self)
        self.optimized, self.report = None, None  # the pass pipeline's graph for calls that are not recorded
        self._fast, self._hoist = None, None
        sym  # noqa: B018  (imported so F = graphc.sym is loaded)

    def __call__(self, args):
        from ..interpreter import owned
        self.used = next(_clock)
        if not all(type(a) is NDArray for a in args):  # nested inputs: their leaves, in trace order
            args = flatten_inputs(tuple(args))[1]
        if _ndm._GPU_LIVE:  # arrays on a GPU: the graph runs there as generated CUDA (runtime/cuda.GpuPlan)
            ctxs = {a.context for a in list(args) + [p._cur for p, _ in self.param_vars] if isinstance(a, NDArray)}
            gpus = [c for c in ctxs if c.device_type != 'cpu']
            if gpus:
                if len(ctxs) > 1:
                    raise GraphcError(f"{self.block_name}: inputs and parameters are on different devices "
                                      f"({', '.join(sorted(map(str, ctxs)))}); move them to one with "
                                      "as_in_context / collect_params().reset_ctx")
                if autograd.is_recording():  # the split training step as device plans (graphc/gpuplan.py)
                    from ..gpuplan import train_step_on_device
                    return train_step_on_device(self, args, gpus[0].device_id)
                return self._run_gpu(args, gpus[0].device_id)
        fast = self._fast
        if fast is not None:
            out = fast(args)
            if out is not None:
                return out
        data = [a for a in args if isinstance(a, NDArray)]
        pdata = [p._cur if p._cur is not None else p.data() for p, _ in self.param_vars]
        feed = {v: a._data for v, a in zip(self.data_vars, data)}
        feed.update({v: a._data for (_, v), a in zip(self.param_vars, pdata)})
        inputs = data + pdata
        need = tuple(x._ag is not None for x in inputs)
        recording = autograd.is_recording() and any(need)
        env = {} if recording else None
        tape_attrs = None
        compiled = backend.current() is not backend.interp
        if recording and compiled:  # compiled: the forward half outputs what the backward half reads
            fplan, _, svars, _, _ = self.op.compiled(need, forward=True)
            vals = fplan(feed)
            n_keep = len(self.graph.outputs)
            tape_attrs = {'feed': feed, 'saved': vals[n_keep:]}
            vals = vals[:n_keep]
        elif recording:  # the reference: keep exactly the forward values the backward reads
            vals = interpret(self.graph, feed, env=env, keep=self.op.built(need)[3])
            tape_attrs = {'env': env}
        else:
            vals = self._run_inference(feed, compiled)
        nv = len(self.visible)
        outs = [NDArray(v) for v in owned(vals[:nv], feed.values())]
        for (param, m), stat in zip(self.aux, vals[nv:]):  # BatchNorm moving statistics, in place
            WRITES[0] += 1
            d = param.data()._data
            if recording:  # the backward must read the value the forward read, not the updated one
                v = next(v for p, v in self.param_vars if p is param)
                feed[v] = d.copy()
                if v in env:
                    env[v] = (feed[v],)
            d *= m
            d += (1 - m) * stat
        if recording:
            autograd.record_op(self.op, tape_attrs, inputs, [x._data for x in inputs], outs,
                               tuple(o._data for o in outs))
        elif self._fast is None and self._hoist is None and not self.aux and len(data) == len(args) and self.flat \
                and compiled:
            self._fast = self._fast_path()
        return _unflatten(self.structure, outs)

    def _fast_path(self):
        """Inference without recording, hoisting or aux updates, with NDArray arguments only: a function of a call's
        positional arguments that runs the plan with its inputs bound by position, so a call is a few checks and
        list operations around it; or returns None where the call needs the whole path: an argument that is not a
        plain NDArray of the traced shape and dtype, recording, another training mode or cast, a trace, arrays on a
        GPU or labelled hosts, the reference interpreter as the backend. The block calls it first (its _fast_call:
        the last traced entry's). One function, not layers of them: cold, each layer cost a batch-1 MLP call 5-9
        us (benchmarks/call_path.py)."""
        from ..interpreter import owned
        plan = self._main_plan
        params = [p for p, _ in self.param_vars]
        keys = self.data_vars + [v for _, v in self.param_vars]
        nv, structure = len(self.visible), self.structure
        run, lean = plan.positional(keys), plan.lean(keys, len(self.data_vars))
        if run is None:
            return None
        want = [(tuple(v.shapes[0]), np.dtype(v.dtypes[0]), np.dtype(v.dtypes[0]).str) for v in self.data_vars]
        n, st, ts, casts, training = len(want), autograd._st, _symm._ts, self.casts, self.training
        interp, cur, one = backend.interp, backend._cur, nv == 1 and structure is None
        # the parameters' buffers, kept between calls (gathering them cost a batch-1 MLP 1-2 us warm, more cold):
        # (BINDS when gathered, the buffers), valid while no array's buffer and no Parameter's copies were replaced
        # (in-place writes keep the buffers); a parameter on several contexts is gathered every call
        bound = [(-1, ())]

        def gather():
            v, bufs, single = BINDS[0], [], True   # (BINDS first: a change while gathering shows next call)
            for p in params:
                c = p._copies  # (Parameter._cur without the property: one copy, or the current context's)
                single = single and c is not None and len(c) == 1
                a = c[0] if c is not None and len(c) == 1 else p._cur or p.data()
                b = a._buf
                bufs.append(b if b is not None else a._data)
            bufs = tuple(bufs)
            if single:
                bound[0] = (v, bufs)
            return bufs

        def fast(args):
            if len(args) != n or st.recording or st.training is not training or CASTS[0] != casts or \
                    ts.ctx is not None or _ndm._GPU_LIVE or _ndm._HOST_IDS or (cur.backend or backend.default) is interp:
                return None
            arrays = []
            for a, (shape, d, dt) in zip(args, want):   # (dtype.str builds a string: 0.3 us; `is` first)
                b = a._buf if type(a) is NDArray else None
                if b is None or b.shape != shape or (b.dtype is not d and b.dtype.str != dt):
                    return None
                arrays.append(b)
            self.used = next(_clock)
            v, pbufs = bound[0]
            if v != BINDS[0]:
                pbufs = gather()
            out = lean(arrays, pbufs) if lean is not None else None   # (arrays of the plan's: the user's now)
            if out is None:
                arrays += pbufs
                out = owned(run(arrays)[:nv], arrays)
            return NDArray(out[0]) if one else _unflatten(structure, [NDArray(v) for v in out])
        return fast

    def _run_gpu(self, args, dev_id):
        """Inference on gpu(dev_id): the optimized graph as one GpuPlan (fused CUDA kernels, cuBLAS GEMMs)."""
        from .. import device as _dev
        plans = self.__dict__.setdefault('_gpu_plans', {})
        plan = plans.get(dev_id)
        if plan is None:
            # from the graph as traced: the fused RNN op has no CUDA form, unrolled steps are cuBLAS GEMMs and kernels
            from ..passes import run_pipeline
            graph = _on_cuda(run_pipeline, self.traced, 'training' if self.training else 'inference',
                             tag=self.block_name)[0]
            plan = plans[dev_id] = backend.cuda.executor(graph, _dev.device(dev_id))
            if self.static:
                from ..gpuplan import Captured
                plan = plans[dev_id] = Captured(plan, self.data_vars, self.block_name)
        data = [a for a in args if isinstance(a, NDArray)]
        feed = {v: a._data for v, a in zip(self.data_vars, data)}
        feed.update({v: (p._cur if p._cur is not None else p.data())._data for p, v in self.param_vars})
        with _dev.cupy().cuda.Device(dev_id):
            _dev.SYNCED.add(dev_id)
            vals = plan(feed)[:len(self.visible)]
            if self.static:  # the graph's buffers: the next replay rewrites them
                vals = [v.copy() for v in vals]
        return _unflatten(self.structure, [NDArray(v) for v in vals])

    def optimize(self):
        """The graph after the inference (or, in training mode, training) pipeline; built once, and split
        into a prelude of parameter-only nodes (run again only after a write to an array) and the rest."""
        if self.optimized is None:
            with _opt_lock:  # threads calling a block at once: one of them builds, the rest wait for it
                if self.optimized is None:
                    from ..passes import run_pipeline
                    opt, self.report = run_pipeline(self.graph, 'training' if self.training else 'inference',
                                                    tag=self.block_name)
                    self._hoist = hoist(opt, {v for _, v in self.param_vars})
                    self._hoisted = (None, {})  # (key, values): replaced whole, so readers see a matching pair
                    self.optimized = opt        # published last: a thread seeing it sees the rest
        return self.optimized

    @property
    def _hoisted_key(self):
        return self._hoisted[0]

    def _run_inference(self, feed, compiled):
        g = self.optimize()
        run = None if compiled else interpret   # (the interp backend: the reference interpreter)
        if self._hoist is None:
            if run is None:
                self._main_plan = getattr(self, '_main_plan', None) or backend.cpu.executor(g)
            return run(g, feed) if run else self._main_plan(feed)
        prelude, hvars, main = self._hoist
        key = (WRITES[0], tuple(id(p._cur) for p, _ in self.param_vars))
        hkey, hvals = self._hoisted
        if key != hkey:
            hvals = dict(zip(hvars, interpret(prelude, feed, kernel=backend.current().kernel)))
            self._hoisted = (key, hvals)
        if run:
            return run(main, {**feed, **hvals})
        self._main_plan = getattr(self, '_main_plan', None) or backend.cpu.executor(main)
        return self._main_plan({**feed, **hvals})


def hoist(graph, params):
    """(prelude, vars, main): nodes that read only parameters and constants move to a prelude graph whose
    outputs feed `main` through new variables; None when there is nothing to hoist. Random ops stay."""
    from ..graph import is_random, rebuild
    live = set()  # nodes that depend on data (or are random)
    for n in graph.nodes:
        if n.is_var:
            if n not in params and 'value' not in n.extra:
                live.add(n)
        elif any(s in live for s, _ in n.inputs) or n.op.name == 'Dropout' or is_random(n):
            live.add(n)
    cut = []
    for n in graph.nodes:
        if n in live and not n.is_var:
            cut += [(s, j) for s, j in n.inputs if s not in live and not s.is_var and (s, j) not in cut]
    if not cut:
        return None
    hvars = [input_var(f"{s.name}_hoisted{j}", s.shapes[j], s.dtypes[j])._one()[0] for s, j in cut]
    to_var = {(s, j): (v, 0) for (s, j), v in zip(cut, hvars)}

    def rep(n, ins):
        if n in live or not any((n, j) in to_var for j in range(n.num_outputs)):
            return None
        return [to_var.get((n, j), (n, j)) for j in range(n.num_outputs)]
    main = rebuild(graph, rep, inputs=list(graph.inputs) + hvars)
    return Graph(cut), hvars, main


def symbol_forward(block, args, kwargs):
    """A block called on Symbols outside any trace returns the Symbol(s) of its graph on them, parameters
    as variables named after them (MXNet's symbolic use of a block, hybridized or not)."""
    ctx = TraceContext(training=autograd.is_training())
    ctx.symbolic = True
    for p in block.collect_params().values():  # one variable per parameter across calls (a cell's steps)
        shape, v = _PARAM_VARS.get(p, (None, None))
        if v is not None and shape == p.shape:
            ctx.param_vars[id(p)] = (p, v)
    with ctx:
        out = block._traced_forward(ctx, *args, **kwargs)
    for p, v in ctx.param_vars.values():
        _PARAM_VARS[p] = (p.shape, v)
    return out


_PARAM_VARS = weakref.WeakKeyDictionary()  # Parameter -> (shape, its Symbol variable), as MXNet's Parameter.var()


def _flatten(out):
    if isinstance(out, Symbol):
        return None, [out]
    if isinstance(out, NDArray):  # computed without the inputs (F._zeros(...)): a constant of the graph
        from ..symbol.symbol import _const_node
        return None, [Symbol([(_const_node(out, None), 0)])]
    if isinstance(out, (list, tuple)):
        struct, flat = [], []
        for o in out:
            s, f = _flatten(o)
            struct.append((s, len(f)))
            flat += f
        return (type(out), struct), flat
    raise GraphcError(f"a hybridized forward must return arrays (or lists/tuples of them), got {type(out).__name__}")


def _unflatten(struct, flat):
    if struct is None:
        return flat[0]
    typ, parts = struct
    out, i = [], 0
    for s, n in parts:
        out.append(_unflatten(s, flat[i:i + n]))
        i += n
    return typ(out)


def _on_cuda(f, *args, **kw):
    with backend.use('cuda'):  # the device's passes (conv_pool is the CPU's)
        return f(*args, **kw)


def log_retrace(block, old_key, new_key):
    msg = f"graphc: re-tracing {block.name} ({type(block).__name__}): {describe_change(old_key, new_key)}"
    log.info(msg)
    if config.log_retrace():
        print(msg, file=sys.stderr)
