"""Reverse-mode autodiff over a tape of eager ops, as MXNet's autograd.

Each recorded op becomes a TapeNode holding the NumPy values it needs; backward
walks the nodes in reverse and applies each op's registry gradient rule, written
in registry ops, with F = graphc.nd.
"""
import threading

import numpy as np

from .base import GraphcError
from .util import legacy_grad


class _State(threading.local):
    recording = False
    training = False


_st = _State()


def is_recording():
    return _st.recording


def is_training():
    return _st.training


def set_recording(flag):
    old, _st.recording = _st.recording, bool(flag)
    return old


def set_training(flag):
    old, _st.training = _st.training, bool(flag)
    return old


class _Scope:
    def __init__(self, recording, training):
        self.rec, self.train = recording, training

    def __enter__(self):
        self.old = (_st.recording, _st.training)
        if self.rec is not None:
            _st.recording = self.rec
        if self.train is not None:
            _st.training = self.train
        return self

    def __exit__(self, *exc):
        _st.recording, _st.training = self.old


def record(train_mode=True):
    """Record ops for backward(); train_mode=True makes Dropout and BatchNorm train."""
    return _Scope(True, train_mode)


def pause(train_mode=False):
    return _Scope(False, train_mode)


def train_mode():
    return _Scope(None, True)


def predict_mode():
    return _Scope(None, False)


class TapeNode:
    """One recorded op (or, with op None, a leaf variable made by attach_grad)."""
    __slots__ = ('op', 'attrs', 'in_entries', 'in_data', 'out_data', 'variable', 'freed', '__weakref__')

    def __init__(self, op=None, attrs=None, in_entries=(), in_data=(), out_data=(), variable=None):
        self.op, self.attrs, self.in_entries = op, attrs, in_entries
        self.in_data, self.out_data, self.variable, self.freed = in_data, out_data, variable, False


def mark_leaf(array):
    """Make `array` a variable: its gradient is written to array.grad by backward."""
    array._ag = (TapeNode(variable=array), 0)


def mark_variables(variables, gradients, grad_reqs='write'):
    """MXNet's mark_variables: each array becomes a variable whose gradient backward writes (or, with
    grad_req 'add', adds) into the given gradient array."""
    from .ndarray.ndarray import NDArray
    if isinstance(variables, NDArray):
        variables, gradients = [variables], [gradients]
    variables, gradients = list(variables), list(gradients)
    reqs = [grad_reqs] * len(variables) if isinstance(grad_reqs, str) else list(grad_reqs)
    if not len(variables) == len(gradients) == len(reqs):
        raise GraphcError(f"mark_variables: {len(variables)} variables, {len(gradients)} gradients and "
                          f"{len(reqs)} grad_reqs must match")
    for v, g, r in zip(variables, gradients, reqs):
        if r not in ('write', 'add', 'null'):
            raise GraphcError(f"mark_variables: grad_req must be 'write', 'add' or 'null', got {r!r}")
        if not isinstance(v, NDArray) or not isinstance(g, NDArray) or g.shape != v.shape:
            raise GraphcError("mark_variables: each variable and its gradient must be NDArrays of one shape")
        v._grad, v._grad_req = g, r
        if r == 'null':
            v._ag = None
        else:
            mark_leaf(v)


def record_op(op, attrs, inputs, in_data, outputs, out_data):
    # an input whose graph a backward freed is a constant from then on (MXNet detaches it)
    node = TapeNode(op, attrs, tuple(None if x._ag is None or x._ag[0].freed else x._ag for x in inputs), in_data,
                    out_data)
    for i, y in enumerate(outputs):
        y._ag = (node, i)


def _topo(heads):
    """Tape nodes reachable from heads, heads first."""
    from .graph import topo_order
    return topo_order(heads, lambda n: [e[0] for e in n.in_entries if e is not None])[::-1]


def _run_backward(heads, head_grads, retain_graph, want=None, on_leaf=None):
    """Propagate gradients from heads. Returns {id(leaf node): grad ndarray}; on_leaf(node, grad) runs as soon
    as a leaf's gradient is complete (every node that reads the leaf has been differentiated)."""
    from .ndarray.ndarray import NDArray
    from . import nd as F
    heads = list(heads)
    if head_grads is None:
        head_grads = [None] * len(heads)
    elif isinstance(head_grads, NDArray) or head_grads is None:
        head_grads = [head_grads]
    grads = {}
    for h, hg in zip(heads, head_grads):
        if h._ag is None:
            raise GraphcError("backward(): the output was not computed under autograd.record() from arrays "
                              "with attach_grad(); nothing to differentiate")
        g = np.ones_like(h._data) if hg is None else hg._data.astype(h._data.dtype, copy=False) \
            if isinstance(hg, NDArray) else np.asarray(hg, dtype=h._data.dtype)  # (astype: cupy stays cupy)
        if g.shape != h._data.shape:
            raise GraphcError(f"backward(): head gradient shape {g.shape} does not match output shape {h._data.shape}")
        key = (id(h._ag[0]), h._ag[1])
        grads[key] = grads[key] + g if key in grads else g
    nodes = _topo([h._ag[0] for h in heads])
    leaf_grads = {}
    old = set_recording(False)
    try:
        for node in nodes:
            if node.op is None:
                g = grads.get((id(node), 0))
                if g is not None:
                    leaf_grads[id(node)] = (node, g)
                    if on_leaf is not None:
                        on_leaf(node, g)
                continue
            if node.freed:
                raise GraphcError(f"backward through {node.op.name} a second time: the graph was freed by the first "
                                  "backward; pass retain_graph=True to the first call")
            n_out = len(node.out_data)
            ograds = [grads.get((id(node), i)) for i in range(n_out)]
            if all(g is None for g in ograds):
                continue
            ograds = [np.zeros_like(node.out_data[i]) if g is None else g for i, g in enumerate(ograds)]
            if not node.op.differentiable:
                raise GraphcError(f"{node.op.name} is not differentiable")
            wrap = lambda a: NDArray(a)  # noqa: E731  fresh arrays: grad rules see values, not tape entries
            attrs = node.attrs
            if None in node.in_entries:  # tell costly rules (dense, conv) which input grads to skip
                attrs = dict(attrs, _need=tuple(e is not None for e in node.in_entries))
            igrads = legacy_grad(node.op, F, attrs, [wrap(a) for a in node.in_data],
                                 [wrap(a) for a in node.out_data], [wrap(g) for g in ograds])
            for i, (e, g) in enumerate(zip(node.in_entries, igrads)):
                if e is None or g is None or i in node.op.nograd_inputs:
                    continue
                g = g._data
                if g.shape != node.in_data[i].shape:
                    raise AssertionError(f"grad rule of {node.op.name} gave shape {g.shape} for input {i} "
                                         f"of shape {node.in_data[i].shape}")
                key = (id(e[0]), e[1])
                g = grads[key] + g if key in grads else g
                grads[key] = np.asarray(g) if isinstance(g, np.generic) else g  # (0-d + 0-d gives a NumPy scalar)
            if not retain_graph:
                node.freed, node.in_data, node.out_data = True, (), ()
    finally:
        set_recording(old)
    return leaf_grads


def backward(heads, head_grads=None, retain_graph=False, train_mode=True):
    """Compute gradients of heads and write them into each variable's .grad (per its grad_req)."""
    from .ndarray.ndarray import NDArray
    if isinstance(heads, NDArray):
        heads = [heads]
    with _on(heads):
        _run_backward(heads, head_grads, retain_graph, on_leaf=_write_grad)


grad_hooks = []  # fn(variable), run as soon as backward has written a variable's gradient (a Trainer's allreduce)


def _write_grad(node, g):
    var = node.variable
    if var._grad.stype != 'default':  # a sparse .grad: the values stored in its storage type
        if var._grad_req != 'null':
            var._grad._assign(g if var._grad_req == 'write' else var._grad._data + g)
    elif var._grad_req == 'add':
        var._grad._data += g
    elif var._grad_req == 'write':
        var._grad._data[...] = g
    var._fresh_grad = True
    for hook in grad_hooks:
        hook(var)


def _on(heads):
    """Heads on a GPU: the raw array work of backward (seeds, sums, writes) runs on that cupy device."""
    from .device import on
    return on(heads[0]._data if heads else np.empty(0))


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False, train_mode=True):
    """Gradients of heads with respect to variables, returned rather than written to .grad: always a list,
    one per variable, even for a single NDArray variable (as MXNet 1.x's autograd.grad)."""
    from .ndarray.ndarray import NDArray
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    variables = [variables] if isinstance(variables, NDArray) else list(variables)
    for v in variables:
        if v._ag is None or v._ag[0].op is not None:
            raise GraphcError("autograd.grad(): each variable must have attach_grad() called before recording")
    if retain_graph is None:
        retain_graph = create_graph
    with _on(heads):
        if create_graph:  # the gradient computation is itself recorded: its results can be differentiated
            got = _run_backward_recorded(heads, head_grads)
            out = [got[id(v._ag[0])] if id(v._ag[0]) in got else NDArray(np.zeros_like(v._data)) for v in variables]
            from . import nd
            with _Scope(True, None):  # a gradient constant in v (radians') stays on the tape, with gradient 0 in v,
                out = [nd._identity_with_attr_like_rhs(o, v) if o._ag is None and id(v._ag[0]) in got else o
                       for o, v in zip(out, variables)]  # as MXNet's backward node reads v
        else:
            got = _run_backward(heads, head_grads, bool(retain_graph))
            out = [NDArray(got[id(v._ag[0])][1]) if id(v._ag[0]) in got else NDArray(np.zeros_like(v._data))
                   for v in variables]
            out = [o if v._grad is None or v._grad.stype == 'default' else o.tostype(v._grad.stype)
                   for o, v in zip(out, variables)]  # in the storage type attach_grad(stype=) asked for
    return out


def _run_backward_recorded(heads, head_grads):
    """Backward with every gradient op recorded on the tape ({id(leaf node): grad NDArray}): the rules run
    on arrays that stand for the recorded inputs and outputs, so gradients of gradients follow the tape."""
    from . import nd as F
    from .ndarray.ndarray import NDArray
    head_grads = [None] * len(heads) if head_grads is None else \
        [head_grads] if isinstance(head_grads, NDArray) else list(head_grads)
    grads = {}

    def add(key, g):
        grads[key] = grads[key] + g if key in grads else g

    def linked(data, entry):
        a = NDArray(data)
        a._ag = entry
        return a
    with _Scope(True, None):
        for h, hg in zip(heads, head_grads):
            if h._ag is None:
                raise GraphcError("grad(): the output was not computed under autograd.record() from arrays "
                                  "with attach_grad(); nothing to differentiate")
            add((id(h._ag[0]), h._ag[1]), F.ones_like(h.detach()) if hg is None else hg)
        leaf = {}
        for node in _topo([h._ag[0] for h in heads]):
            if node.op is None:
                if (id(node), 0) in grads:
                    leaf[id(node)] = grads[(id(node), 0)]
                continue
            if node.freed:
                raise GraphcError(f"grad through {node.op.name}: the graph was freed by an earlier backward; pass "
                                  "retain_graph=True to it")
            if node.op.name.startswith('_CachedOp'):
                raise GraphcError(f"grad(create_graph=True) through {node.op.name}: higher-order gradients of a "
                                  "hybridized block are not supported; call hybridize(False) on it")
            ograds = [grads.get((id(node), i)) for i in range(len(node.out_data))]
            if all(g is None for g in ograds):
                continue
            if not node.op.differentiable:
                raise GraphcError(f"{node.op.name} is not differentiable")
            xs = [linked(a, e) for a, e in zip(node.in_data, node.in_entries)]
            ys = [linked(a, (node, i)) for i, a in enumerate(node.out_data)]
            ograds = [F.zeros_like(y.detach()) if g is None else g for y, g in zip(ys, ograds)]
            attrs = node.attrs
            if None in node.in_entries:
                attrs = dict(attrs, _need=tuple(e is not None for e in node.in_entries))
            for i, (e, g) in enumerate(zip(node.in_entries, legacy_grad(node.op, F, attrs, xs, ys, ograds))):
                if e is not None and g is not None and i not in node.op.nograd_inputs:
                    add((id(e[0]), e[1]), g)
    return leaf


class Function:
    """A custom differentiable function (MXNet's autograd.Function): subclass it with forward(*inputs) and
    backward(*output_grads) on NDArrays; save_for_backward keeps what backward needs."""

    def __init__(self):
        self.saved_tensors = ()

    def save_for_backward(self, *args):
        self.saved_tensors = args

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, *output_grads):
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def __call__(self, *inputs):
        from .ndarray.ndarray import NDArray
        with pause():
            outputs = self.forward(*inputs)
        single = isinstance(outputs, NDArray)
        outs = [outputs] if single else list(outputs)
        if is_recording() and any(getattr(x, '_ag', None) is not None for x in inputs):
            outs = [o if all(o is not x for x in inputs) else o.copy() for o in outs]
            record_op(_FunctionOp(self), {}, inputs, tuple(x._data for x in inputs), outs,
                      tuple(o._data for o in outs))
        return outs[0] if single else type(outputs)(outs) if isinstance(outputs, tuple) else outs


class _FunctionOp:
    """The tape's op for one call of a Function: its gradient is the user's backward."""
    kind, differentiable, mode_dependent, aux_inputs, nograd_inputs = 'opaque', True, False, (), frozenset()

    def __init__(self, fn):
        self.fn, self.name = fn, f"Function({type(fn).__name__})"

    def grad(self, F, attrs, xs, ys, dys):
        from .ndarray.ndarray import NDArray
        res = self.fn.backward(*dys)
        res = [res] if isinstance(res, NDArray) else list(res)
        if len(res) != len(xs):
            raise GraphcError(f"{self.name}.backward returned {len(res)} gradients for {len(xs)} inputs")
        return [r if isinstance(r, NDArray) or r is None else NDArray(np.asarray(r, xs[i].dtype))
                for i, r in enumerate(res)]


def get_symbol(x):
    """The recorded computation that produced x, as a Symbol: variables for the arrays marked with
    attach_grad (var0, var1, ...), constants for the other arrays it read."""
    from .graph import Node, partial_infer
    from .symbol.symbol import Symbol
    if x._ag is None:
        raise GraphcError("get_symbol: the array was not computed under autograd.record() from variables")
    made, nvar = {}, [0]
    for node in _topo([x._ag[0]])[::-1]:
        if node.op is None:
            v = node.variable
            made[id(node)] = [(Node(None, f"var{nvar[0]}", shapes=[tuple(v.shape)], dtypes=[v.dtype]), 0)]
            nvar[0] += 1
            continue
        if node.freed:
            raise GraphcError("get_symbol: the graph was freed by backward; call it before, or retain_graph=True")
        ins = []
        for e, a in zip(node.in_entries, node.in_data):
            if e is None:
                c = Node(None, f"_const{len(made)}", shapes=[tuple(a.shape)], dtypes=[a.dtype])
                c.extra['value'] = np.array(a)
                ins.append((c, 0))
            else:
                ins.append(made[id(e[0])][e[1]])
        entry = getattr(node.op, 'entry', None)
        if entry is not None:  # a hybridized block's call: its graph inlined, or one _CachedOp node (MXNet's rule)
            made[id(node)] = _inline(entry, ins) if _inlined(entry) else _cached_call(entry, ins)
            continue
        if hasattr(node.op, 'symbol'):  # an op fused for eager speed (gluon.loss._SparseCE): its graph
            made[id(node)] = node.op.symbol(ins)
            continue
        if not hasattr(node.op, 'ref'):
            raise GraphcError(f"get_symbol: {node.op.name} (a custom Function) has no symbolic form")
        m = Node(node.op, f"{node.op.name.lower().lstrip('_')}{len(made)}", node.attrs, ins)
        m.shapes, m.dtypes = partial_infer(m)
        made[id(node)] = [(m, j) for j in range(m.num_outputs)]
    return Symbol([made[id(x._ag[0])][x._ag[1]]])


def _inlined(entry):
    """MXNet's rule: a recorded call of a hybridized block shows its ops when they are at most its
    inline_limit (hybridize's flag, default 2) and static_alloc is off; else one _CachedOp node."""
    limit = getattr(entry, 'inline_limit', 2)
    return limit is not None and sum(not n.is_var for n in entry.graph.nodes) <= limit


def _cached_call(entry, ins):
    """One _CachedOp node calling the traced graph's visible outputs, on the entries `ins` for its inputs."""
    from .graph import Graph, Node
    from .ops.control import CachedCallOp
    body = Graph(entry.graph.outputs[:len(entry.visible)])
    feed = dict(zip(entry.input_vars, ins))
    op = CachedCallOp([body])
    n = Node(op, entry.block_name, {'num_outputs': len(body.outputs), '_body': id(op)},
             [feed.get(v, (v, 0)) for v in body.inputs])  # (a var not fed: a constant captured by the trace)
    n.shapes = [tuple(m.shapes[j]) for m, j in body.outputs]
    n.dtypes = [m.dtypes[j] for m, j in body.outputs]
    return [(n, j) for j in range(len(body.outputs))]


def _inline(entry, ins):
    """The visible outputs of a traced graph, rebuilt on the entries `ins` for its inputs."""
    from .graph import Node
    new = {v: e for v, e in zip(entry.input_vars, ins)}
    for n in entry.graph.nodes:
        if n.is_var:
            if n not in new:  # a constant captured by the trace
                new[n] = (n, 0)
            continue
        m = Node(n.op, n.name, n.attrs, [new[s] if s.is_var else (new[s][0], j) for s, j in n.inputs],
                 n.shapes, n.dtypes, n.where, n.block)
        new[n] = (m, 0)
    return [(new[n][0], j) for n, j in entry.graph.outputs[:len(entry.visible)]]
