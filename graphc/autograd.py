"""Reverse-mode autodiff over a tape of eager ops, as MXNet's autograd.

Each recorded op becomes a TapeNode holding the NumPy values it needs; backward
walks the nodes in reverse and applies each op's registry gradient rule, written
in registry ops, with F = graphc.nd.
"""
import threading

import numpy as np

from .base import GraphcError


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


def record_op(op, attrs, inputs, in_data, outputs, out_data):
    node = TapeNode(op, attrs, tuple(x._ag for x in inputs), in_data, out_data)
    for i, y in enumerate(outputs):
        y._ag = (node, i)


def _topo(heads):
    """Tape nodes reachable from heads, heads first."""
    from .graph import topo_order
    return topo_order(heads, lambda n: [e[0] for e in n.in_entries if e is not None])[::-1]


def _run_backward(heads, head_grads, retain_graph, want=None):
    """Propagate gradients from heads. Returns {id(leaf node): grad ndarray}."""
    from .ndarray import ndarray as _nd_mod
    from . import nd as F
    NDArray = _nd_mod.NDArray
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
            igrads = node.op.grad(F, attrs, [wrap(a) for a in node.in_data],
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
        for node, g in _run_backward(heads, head_grads, retain_graph).values():
            var = node.variable
            if var._grad_req == 'add':
                var._grad._data += g
            elif var._grad_req == 'write':
                var._grad._data[...] = g
            var._fresh_grad = True


def _on(heads):
    """Heads on a GPU: the raw array work of backward (seeds, sums, writes) runs on that cupy device."""
    from .device import on
    return on(heads[0]._data if heads else np.empty(0))


def grad(heads, variables, head_grads=None, retain_graph=None, create_graph=False, train_mode=True):
    """Gradients of heads with respect to variables, returned rather than written to .grad."""
    from .ndarray.ndarray import NDArray
    if create_graph:
        raise GraphcError("autograd.grad(create_graph=True): higher-order gradients are not supported yet")
    heads = [heads] if isinstance(heads, NDArray) else list(heads)
    single = isinstance(variables, NDArray)
    variables = [variables] if single else list(variables)
    for v in variables:
        if v._ag is None or v._ag[0].op is not None:
            raise GraphcError("autograd.grad(): each variable must have attach_grad() called before recording")
    with _on(heads):
        got = _run_backward(heads, head_grads, bool(retain_graph))
        out = [NDArray(got[id(v._ag[0])][1]) if id(v._ag[0]) in got else NDArray(np.zeros_like(v._data))
               for v in variables]
    return out[0] if single else out
