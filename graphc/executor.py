"""Executor: a Symbol bound to arrays (MXNet's Symbol.bind / simple_bind), compiled as hybridize compiles.

bind fixes every input's shape and dtype, so the graph is instantiated once with them known. A
prediction forward runs the inference pipeline's Plan; a training forward and backward run the very
split hybridize uses for a recorded call (gluon.cached.CachedOp.compiled: a forward Plan that also
outputs the values the backward reads, and a backward Plan of the gradient graph), both through the
training pipeline. Outputs and gradients are written into the executor's arrays in place, as MXNet's
are, so arrays taken from `outputs`, `grad_dict` before a run see its results.
"""
import numpy as np

from . import config
from .base import GraphcError, as_dtype, fmt_shape
from .graph import Graph, Node, infer_node
from .interpreter import interpret
from .ndarray.ndarray import NDArray

_REQS = ('write', 'add', 'null')


def _instantiate(symbol, shapes, dtypes, train):
    """(graph, input vars by name) of symbol with every input's shape and dtype known and every
    mode-dependent op (Dropout, BatchNorm) set to `train`."""
    new, by_name = {}, {}
    graph = symbol._graph()
    sources = [n for n in graph.nodes if not n.is_var and not n.inputs and 0 in (n.attrs.get('shape') or ())]
    if sources:  # zeros((0, H)) as MXNet's RNN cells make: the 0 is a dim that inference fills in
        from .symbol.infer import infer_shapes
        got = infer_shapes(graph, {v: tuple(shapes[v.name]) for v in graph.inputs})
        fill = {}
        for n in sources:
            s = got.get((n, 0))
            if s is None or None in s:
                raise GraphcError(f"bind: cannot infer the shape of {n.name} ({n.op.name} of shape "
                                  f"{fmt_shape(n.attrs['shape'])}, 0 for unknown)")
            fill[n] = s
    for n in graph.nodes:
        if n.is_var:
            if n.name in by_name:
                new[n] = by_name[n.name]
                continue
            v = Node(None, n.name, shapes=[tuple(shapes[n.name])], dtypes=[np.dtype(dtypes[n.name])])
            v.extra = {k: x for k, x in n.extra.items() if k != 'value'}
            by_name[n.name] = new[n] = v
            continue
        attrs = dict(n.attrs, _train=train) if n.op.mode_dependent else n.attrs
        if sources and n in fill:
            attrs = dict(attrs, shape=fill[n])
        m = Node(n.op, n.name, attrs, [(new[s], j) for s, j in n.inputs], where=n.where, block=n.block)
        m.extra = dict(n.extra)
        try:
            m.shapes, m.dtypes = infer_node(m)
        except (IndexError, ValueError, TypeError) as e:
            if isinstance(e, GraphcError):
                raise
            raise GraphcError(f"bind: {n.op.name} {n.name!r} cannot take input shapes "
                              f"{', '.join(fmt_shape(s.shapes[j]) for s, j in m.inputs)} ({e})") from None
        new[n] = m
    outs = [(new[n], j) for n, j in symbol._entries]
    return outs, by_name


class _Entry:
    """What CachedOp needs of a traced graph (gluon/cached.py), for a bound symbol."""

    def __init__(self, graph, visible, input_vars, name):
        self.graph, self.visible, self.input_vars, self.block_name = graph, visible, input_vars, name


class Executor:
    def __init__(self, symbol, ctx, args, args_grad, grad_req, aux_states):
        from .context import Context, current_context
        self._symbol, self._ctx = symbol, Context(ctx) if ctx is not None else current_context()
        if self._ctx.device_type != 'cpu':
            raise GraphcError(f"bind: executors run on the cpu; {self._ctx} is not supported yet (a hybridized "
                              "block runs inference on a GPU)")
        self._arg_names, self._aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
        self.arg_arrays, self.grad_arrays, self.aux_arrays = args, args_grad, aux_states
        self._grad_req = grad_req
        self._output_names = symbol.list_outputs()
        self._modes = {}
        self._saved = None  # what the last training forward left for backward
        self._cse = config.eliminate_common_expr()  # read at bind, as MXNet reads MXNET_ELIMINATE_COMMON_EXPR
        entry, _ = self._mode(False)  # shapes are checked here, at bind, as MXNet does
        self.outputs = [NDArray(np.zeros(n.shapes[j], n.dtypes[j])) for n, j in entry.visible]
        self._monitor, self._monitor_all = None, False

    # ------------------------------------------------------------ the compiled forms
    def _mode(self, train):
        """(entry, plans) for one mode: the graph with its inputs' shapes, BatchNorm's batch statistics as
        extra outputs in training mode, and the Plans built lazily."""
        hit = self._modes.get(train)
        if hit is None:
            shapes = {k: a.shape for k, a in zip(self._arg_names + self._aux_names, self.arg_arrays + self.aux_arrays)}
            dtypes = {k: a.dtype for k, a in zip(self._arg_names + self._aux_names, self.arg_arrays + self.aux_arrays)}
            for n in self._symbol._graph().inputs:  # constants captured in the graph
                if 'value' in n.extra and n.name not in shapes:
                    shapes[n.name], dtypes[n.name] = n.extra['value'].shape, n.extra['value'].dtype
            visible, by_name = _instantiate(self._symbol, shapes, dtypes, train)
            graph = Graph(visible)
            aux_updates, stats = [], []
            if train:  # MXNet's training forward updates BatchNorm's moving statistics (aux states)
                for n in graph.nodes:
                    if not n.is_var and n.op.name == 'BatchNorm' and not n.attrs.get('use_global_stats'):
                        mm, mv = n.inputs[3][0], n.inputs[4][0]
                        if mm.is_var and mv.is_var:
                            stats += [(n, 1), (n, 2)]
                            aux_updates += [(mm.name, n.attrs['momentum']), (mv.name, n.attrs['momentum'])]
            from .passes import run_pipeline
            inputs = [by_name[k] for k in self._arg_names + self._aux_names if k in by_name]
            full, trace_report = run_pipeline(Graph(visible + stats, inputs), 'trace', tag='executor.trace')
            entry = _Entry(full, full.outputs[:len(visible)], inputs, 'executor')
            entry.traced, entry.trace_report = Graph(visible, inputs), trace_report
            entry.aux_updates, entry.disabled = aux_updates, self._disabled()
            hit = self._modes[train] = (entry, {})
        return hit

    def _plan(self, train):
        """The Plan of a forward that computes no gradients (inference pipeline; training one in train mode)."""
        entry, plans = self._mode(train)
        if 'fwd' not in plans:
            from .passes import run_pipeline
            from .runtime import backend
            opt, report = run_pipeline(entry.graph, 'training' if train else 'inference', disabled=self._disabled(),
                                       tag='executor')
            plans['fwd'] = backend.current().executor(opt)
            plans['fwd_graph'], plans['report'] = opt, report
        return plans['fwd']

    def _disabled(self):
        """Passes switched off: GRAPHC_DISABLE_PASSES, and cse under MXNET_ELIMINATE_COMMON_EXPR=0 at bind."""
        from .passes.manager import disabled_passes
        return disabled_passes() | (set() if self._cse else {'cse'})

    def _need(self):
        need = [self._grad_req.get(k, 'null') != 'null' and g is not None
                for k, g in zip(self._arg_names, self.grad_arrays)]
        return tuple(need) + (False,) * len(self._aux_names)

    def _cached_op(self, train):
        entry, plans = self._mode(train)
        if 'op' not in plans:
            from .gluon.cached import CachedOp
            plans['op'] = CachedOp(entry)
        return plans['op']

    # ------------------------------------------------------------ running
    def _feed(self, entry):
        arrays = self.arg_arrays + self.aux_arrays
        return {v: a._data for v, a in zip(entry.input_vars, arrays)}

    def forward(self, is_train=False, **kwargs):
        """Run the graph (training mode if is_train); kwargs set named arguments first. Returns outputs."""
        for k, v in kwargs.items():
            if k not in self.arg_dict:
                raise GraphcError(f"forward: unknown argument {k!r}; arguments are {self._arg_names}")
            self.arg_dict[k][:] = v
        train = bool(is_train)
        entry, _ = self._mode(train)
        feed = self._feed(entry)
        need = self._need()
        nv = len(entry.visible)
        if train and any(need):
            fplan, _, _, _, _ = self._cached_op(train).compiled(need)
            vals = fplan(feed)
            n_keep = len(entry.graph.outputs)
            self._saved = (need, dict(feed), vals[n_keep:], True)
            vals = vals[:n_keep]
        else:
            vals = self._plan(train)(feed)
            # MXNet's backward after an inference forward differentiates that forward: its values are
            # recomputed by backward (deterministic in inference mode), so prediction pays nothing for it
            self._saved = (need, None if train else dict(feed), None, train)
        for o, v in zip(self.outputs, vals[:nv]):
            o._data[...] = v
        if train:
            aux, saved_feed = self.aux_dict, self._saved[1]
            ids = {v.name: v for v in entry.input_vars}
            for (name, m), stat in zip(entry.aux_updates, vals[nv:]):
                d = aux[name]._data
                if saved_feed is not None:  # the backward reads what the forward read, not the update
                    saved_feed[ids[name]] = d.copy()
                d *= m
                d += (1 - m) * stat
        if self._monitor is not None:
            if self._monitor_all:  # every node's output, by the reference interpreter (the spec) on the traced graph
                self._monitor_nodes(entry, feed)
            else:
                for name, o in zip(self._output_names, self.outputs):
                    self._monitor(name, o)
        return self.outputs

    def _monitor_nodes(self, entry, feed):
        g, env = entry.traced, {}
        interpret(g, feed, env=env, keep=[n for n in g.nodes if not n.is_var])
        for n in g.nodes:
            if not n.is_var:
                outs = env[n]
                for j, o in enumerate(outs[:n.op.n_visible(n.attrs)] if len(outs) > 1 else outs):
                    self._monitor(f"{n.name}_output{j if len(outs) > 1 else ''}", NDArray(np.array(o)))

    def backward(self, out_grads=None, is_train=True):
        """Gradients of the outputs (weighted by out_grads; ones where not given) into grad_arrays,
        per grad_req: write, add, or null."""
        if self._saved is None:  # MXNet allows it (ops whose gradient needs no forward values): differentiate
            # the graph at the current arguments, as after forward(is_train=False)
            self._saved = (self._need(), dict(self._feed(self._mode(False)[0])), None, False)
        need, feed, saved, train = self._saved
        if not any(need):
            return
        if saved is None:  # after forward(is_train=False)
            saved = self._cached_op(False).compiled(need)[0](feed)[len(self._mode(False)[0].graph.outputs):]
        if isinstance(out_grads, NDArray):
            out_grads = [out_grads]
        elif isinstance(out_grads, dict):
            out_grads = [out_grads.get(k) for k in self._output_names]
        out_grads = list(out_grads or []) + [None] * (len(self.outputs) - len(out_grads or []))
        heads = []
        for (node, _), name, o, g in zip(self._symbol._entries, self._output_names, self.outputs, out_grads):
            g = np.ones(o.shape, o.dtype) if g is None else (g._data if isinstance(g, NDArray) else np.asarray(g))
            if tuple(g.shape) != tuple(o.shape) and node.op is not None and not node.op.differentiable:
                g = np.zeros(o.shape, o.dtype)  # MXNet reads no gradient of shape_array & co.: any shape goes
            if tuple(g.shape) != tuple(o.shape):
                raise GraphcError(f"backward: the gradient for output {name!r} has shape {fmt_shape(g.shape)}, "
                                  f"the output {fmt_shape(o.shape)}")
            heads.append(g.astype(o.dtype, copy=False))
        _, bplan, svars, hvars, has = self._cached_op(train).compiled(need)
        bfeed = dict(feed)
        bfeed.update(zip(svars, saved))
        bfeed.update(zip(hvars, heads))
        it, gi = iter(bplan(bfeed)), iter(has)
        for k, g_arr, n in zip(self._arg_names, self.grad_arrays, need):
            if not n:
                continue
            g = next(it) if next(gi) else None
            req = self._grad_req[k]
            if req == 'write':
                g_arr._data[...] = 0 if g is None else g
            elif req == 'add' and g is not None:
                g_arr._data[...] += g

    # ------------------------------------------------------------ MXNet's views
    @property
    def arg_dict(self):
        return dict(zip(self._arg_names, self.arg_arrays))

    @property
    def grad_dict(self):
        return {k: g for k, g in zip(self._arg_names, self.grad_arrays) if g is not None}

    @property
    def aux_dict(self):
        return dict(zip(self._aux_names, self.aux_arrays))

    @property
    def output_dict(self):
        return dict(zip(self._output_names, self.outputs))

    def copy_params_from(self, arg_params, aux_params=None, allow_extra_params=False):
        """Copy arrays into the bound arguments and aux states by name."""
        for src, dst, what in ((arg_params, self.arg_dict, 'argument'), (aux_params or {}, self.aux_dict, 'aux state')):
            for k, v in src.items():
                if k in dst:
                    dst[k][:] = v
                elif not allow_extra_params:
                    raise GraphcError(f"copy_params_from: {k!r} is not an {what} of this executor "
                                      f"(pass allow_extra_params=True to skip it)")

    def reshape(self, partial_shaping=False, allow_up_sizing=False, **kwargs):
        """A new executor for new input shapes that shares memory with this one (MXNet's): arrays whose shape
        is unchanged are the same arrays, smaller ones (arguments, gradients, outputs) views of this executor's
        memory; only what grows (allow_up_sizing) is new."""
        arg_shapes, _, aux_shapes = self._symbol.infer_shape(**kwargs)
        if arg_shapes is None:  # what the new shapes do not determine keeps its shape
            keep = {k: a.shape for k, a in zip(self._arg_names, self.arg_arrays) if k not in kwargs}
            arg_shapes, _, aux_shapes = self._symbol.infer_shape(**{**keep, **kwargs})
        if arg_shapes is None:
            raise GraphcError(f"reshape: cannot infer every shape from {kwargs}")
        unknown = [k for k in kwargs if k not in self._arg_names and k not in self._aux_names]
        if unknown:
            raise GraphcError(f"reshape: unknown arguments {unknown}")

        def same_or_new(name, arr, shape):
            if arr is None or tuple(arr.shape) == tuple(shape):
                return arr
            if name not in kwargs and not partial_shaping:
                raise GraphcError(f"reshape: {name!r} would change shape {fmt_shape(arr.shape)} -> "
                                  f"{fmt_shape(shape)}; pass partial_shaping=True to allow it")
            if arr.size < int(np.prod(shape)):
                if not allow_up_sizing:
                    raise GraphcError(f"reshape: {name!r} would grow from {fmt_shape(arr.shape)} to "
                                      f"{fmt_shape(shape)}; pass allow_up_sizing=True to allow it")
                return NDArray(np.zeros(shape, arr.dtype))
            return NDArray(_prefix_view(arr._data, shape))
        args = [same_or_new(k, a, s) for k, a, s in zip(self._arg_names, self.arg_arrays, arg_shapes)]
        grads = [same_or_new(k, g, s) for k, g, s in zip(self._arg_names, self.grad_arrays, arg_shapes)]
        aux = [same_or_new(k, a, s) for k, a, s in zip(self._aux_names, self.aux_arrays, aux_shapes)]
        new = Executor(self._symbol, self._ctx, args, grads, dict(self._grad_req), aux)
        for mine, theirs in zip(self.outputs, new.outputs):
            if mine.dtype == theirs.dtype and theirs.size <= mine.size and mine._data.flags.c_contiguous:
                theirs._data = _prefix_view(mine._data, theirs.shape)
        return new

    def set_monitor_callback(self, callback, monitor_all=False):
        """callback(name, array) for each output after every forward; monitor_all: for every node's output."""
        self._monitor, self._monitor_all = callback, monitor_all

    def get_optimized_symbol(self):
        """The graph after the graph-level passes MXNet also runs (dead code, and common subexpressions unless
        MXNET_ELIMINATE_COMMON_EXPR=0), before fusion; an output that repeats another gets a copy, as MXNet's."""
        from .passes import run_pipeline
        from .passes.manager import PASSES
        from .registry import OPS
        from .symbol.symbol import Symbol
        entry, _ = self._mode(True)  # (where Dropout is random: MXNet never merges it)
        g = Graph(entry.visible)
        keep = {'dce', 'cse'} if self._cse else {'dce'}
        opt, _ = run_pipeline(g, 'inference', disabled=set(PASSES) - keep, tag='executor.symbol')
        outs, seen = [], set()
        for n, j in opt.outputs:
            if (n, j) in seen:
                c = Node(OPS['_copy'], f"{n.name}_copy{len(outs)}", {}, [(n, j)], shapes=[n.shapes[j]],
                         dtypes=[n.dtypes[j]])
                n, j = c, 0
            seen.add((n, j))
            outs.append((n, j))
        return Symbol(outs)

    def debug_str(self):
        """The optimized graph and the memory its runs allocate (intermediate values, MXNet's summary line)."""
        plans = [self._plan(False)]
        g = self._modes[False][1]['fwd_graph']
        need = self._need()
        if any(need):
            plans = list(self._cached_op(True).compiled(need)[:2])
        total = 0
        for plan in plans:
            for n in (n for n in plan.graph.nodes if not n.is_var):
                total += sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in zip(n.shapes, n.dtypes))
        return f"{g.text()}\nTotal {total >> 20} MB allocated\n"

    def _explain_entry(self, training):
        """(entry, wrt vars) for gc.explain."""
        entry, _ = self._mode(training)
        need = self._need()
        return entry, [v for v, n in zip(entry.input_vars, need) if n]


def _as_list(what, names, value, allow_none=False):
    """A list aligned with names from a list or a dict (missing names None where allowed)."""
    if value is None:
        return [None] * len(names)
    if isinstance(value, dict):  # names the symbol does not take are ignored, as MXNet's bind does
        out = [value.get(k) for k in names]
        missing = [k for k, v in zip(names, out) if v is None]
        if missing and not allow_none:
            raise GraphcError(f"bind: no {what} for {missing}")
        return out
    value = list(value)
    if len(value) != len(names) and not (allow_none and len(value) < len(names)):
        raise GraphcError(f"bind: {len(value)} {what} for {len(names)} inputs {names}")
    return value + [None] * (len(names) - len(value))


def _reqs(names, grad_req):
    if isinstance(grad_req, str):
        reqs = {k: grad_req for k in names}
    elif isinstance(grad_req, dict):
        reqs = {k: grad_req.get(k, 'null') for k in names}
    else:
        reqs = dict(zip(names, grad_req))
    bad = {k: v for k, v in reqs.items() if v not in _REQS}
    if bad:
        raise GraphcError(f"bind: grad_req must be one of {_REQS}, got {bad}")
    return reqs


def _check_arrays(what, names, arrays):
    for k, a in zip(names, arrays):
        if a is not None and not isinstance(a, NDArray):
            raise GraphcError(f"bind: {what} {k!r} must be an NDArray, got {type(a).__name__}")


def bind(symbol, ctx, args, args_grad=None, grad_req='write', aux_states=None, group2ctx=None, shared_exec=None):
    names, aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
    consts = {n.name for n in symbol._graph().inputs if 'value' in n.extra}
    args = _as_list('arguments', names, args, allow_none=True)
    missing = [k for k, a in zip(names, args) if a is None and k not in consts]
    if missing:
        raise GraphcError(f"bind: no array for arguments {missing}")
    args = [NDArray(next(n.extra['value'] for n in symbol._graph().inputs if n.name == k).copy()) if a is None else a
            for k, a in zip(names, args)]
    grads = _as_list('gradient arrays', names, args_grad, allow_none=True)
    aux = _as_list('aux states', aux_names, aux_states)
    for what, ns, arrs in (('argument', names, args), ('gradient', names, grads), ('aux state', aux_names, aux)):
        _check_arrays(what, ns, arrs)
    reqs = _reqs(names, grad_req)
    for k, g in zip(names, grads):
        if g is None:
            reqs[k] = 'null'
    return Executor(symbol, ctx, args, grads, reqs, aux)


def _prefix_view(a, shape):
    """The first prod(shape) elements of the contiguous array a, as shape: a view sharing a's memory."""
    return np.ascontiguousarray(a).reshape(-1)[:int(np.prod(shape))].reshape(shape)


def simple_bind(symbol, ctx, grad_req, type_dict, stype_dict, shared_exec, shapes):
    stypes = {v.name: {'1': 'row_sparse', '2': 'csr'}.get(v.extra.get('__storage_type__'), 'default')
              for v in symbol._graph().inputs}  # MXNet: a variable's stype attribute, or stype_dict, says
    stypes.update({k: st for k, st in (stype_dict or {}).items() if st is not None})
    shapes = {k: v for k, v in shapes.items() if isinstance(v, (tuple, list))}  # MXNet reads only the shapes
    arg_shapes, _, aux_shapes = symbol.infer_shape(**shapes)
    if arg_shapes is None:
        part, _, _ = symbol.infer_shape_partial(**shapes)
        unknown = [k for k, s in zip(symbol.list_arguments(), part) if not s or 0 in s]
        raise GraphcError(f"simple_bind: cannot infer the shapes of {unknown} from {shapes}; give them by name")
    types = dict(type_dict or {})
    arg_types, _, aux_types = symbol.infer_type_partial(**types)
    names = symbol.list_arguments()
    f32 = np.float32
    arg_types = [t or f32 for t in arg_types]
    aux_types = [t or f32 for t in aux_types]
    shared = shared_exec.arg_dict if shared_exec is not None else {}

    def alloc(name, s, t):
        a = shared.get(name)
        if a is not None and tuple(a.shape) == tuple(s) and a.dtype == np.dtype(t):
            return a
        if stypes.get(name, 'default') != 'default':  # a sparse argument (the graph reads it densely)
            from .ndarray.sparse import zeros
            return zeros(stypes[name], s, None, as_dtype(t))
        return NDArray(np.zeros(s, as_dtype(t)))
    args = [alloc(k, s, t) for k, s, t in zip(names, arg_shapes, arg_types)]
    reqs = _reqs(names, grad_req)
    grads = [None if reqs[k] == 'null' else NDArray(np.zeros(s, as_dtype(t)))
             for k, s, t in zip(names, arg_shapes, arg_types)]
    aux = [NDArray(np.zeros(s, as_dtype(t))) for s, t in zip(aux_shapes, aux_types)]
    return Executor(symbol, ctx, args, grads, reqs, aux)
