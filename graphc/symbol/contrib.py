"""mx.sym.contrib: the contrib ops graphc has (registered as _contrib_<name>) under their short names, and
MXNet's control flow as graph ops: foreach, while_loop and cond each make one node that carries its bodies
(graphc/ops/control.py). A body is what its Python function builds when called once on fresh variables;
every other value it reads (a weight, an outer result, a constant) becomes an input of the node."""
import itertools
import sys

from ..base import GraphcError
from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import symbol as sym
    for name in OPS:
        if name.startswith('_contrib_') and hasattr(sym, name):
            setattr(_mod, name[len('_contrib_'):], getattr(sym, name))
    for name in ('ctc_loss', 'CTCLoss'):  # MXNet's contrib names of the CTC loss
        setattr(_mod, name, getattr(sym, name))


def _flat(x, what, who):
    """(list of Symbols, None for a single Symbol or else the list's length); [] and None are empty lists.
    An NDArray (made inside a traced forward) is a constant of the graph."""
    from ..ndarray.ndarray import NDArray
    from .symbol import Symbol, _const_node, _ts
    sym = lambda v: Symbol([(_const_node(v, _ts.ctx), 0)]) if isinstance(v, NDArray) else v  # noqa: E731
    if isinstance(x, (Symbol, NDArray)):
        return [sym(x)], None
    if x is None:
        return [], 0
    if isinstance(x, (list, tuple)) and all(isinstance(v, (Symbol, NDArray)) for v in x):
        return [sym(v) for v in x], len(x)
    raise GraphcError(f"{who}: {what} must be a Symbol or a list of Symbols, got {type(x).__name__}")


def _var(name, s, drop_first=False, who='foreach'):
    import numpy as np
    from ..graph import Node
    n, j = s._one()
    shape = n.shapes[j] if n.shapes else None
    if shape is not None and drop_first:
        if not shape:
            raise GraphcError(f"{who}: data {n.name!r} is 0-d; it needs an axis 0 to loop over")
        shape = tuple(shape[1:])
    return Node(None, name, shapes=[shape], dtypes=[n.dtypes[j] if n.dtypes else np.dtype('float32')])


def _trace(fn, *args):
    """fn(*args), and the set of nodes it made."""
    from .symbol import _ts
    old, _ts.created = _ts.created, set()
    try:
        return fn(*args), _ts.created
    finally:
        if old is not None:
            old |= _ts.created
        _ts.created = old


class _Body:
    """A body Graph cut from the output entries of a traced function: its variables (those used), the nodes the
    function made, and a variable for every other value read (`remain`: the outer entries feeding them)."""

    def __init__(self, entries, loop_vars, created, name, who):
        from ..graph import Graph, Node
        from .symbol import output_name
        inner = set(created) | set(loop_vars)
        for n in Graph(entries).nodes:
            if not n.is_var and any(s in inner for s, _ in n.inputs):
                inner.add(n)
        new, cut, self.rvars, self.remain = {v: v for v in loop_vars}, {}, [], []

        def entry(s, j):
            if s in inner:
                return new[s], j
            if (s, j) not in cut:
                v = Node(None, s.name if s.is_var else output_name(s, j), shapes=[s.shapes[j] if s.shapes else None],
                         dtypes=[s.dtypes[j] if s.dtypes else None])
                cut[(s, j)] = v
                self.rvars.append(v)
                self.remain.append((s, j))
            return cut[(s, j)], 0
        for n in Graph(entries).nodes:
            if not n.is_var and n in inner:
                new[n] = Node(n.op, n.name, n.attrs, [entry(s, j) for s, j in n.inputs], n.shapes, n.dtypes,
                                  n.where, n.block)
        outs = []
        for k, (s, j) in enumerate(entries):
            e = entry(s, j)
            if e[0].is_var:  # a body output is an op node, as in MXNet's subgraphs
                e = (Node(OPS['_copy'], f"{name}_copy{k}", {}, [e], [e[0].shapes[0]], [e[0].dtypes[0]]), 0)
            outs.append(e)
        used = {s for n in Graph(outs).nodes for s, _ in n.inputs}
        self.used = [v for v in loop_vars if v in used]
        self.graph = Graph(outs, self.used + self.rvars)


class _Inputs:
    """The node's inputs: fixed ones first, then each outer entry the bodies read, once."""

    def __init__(self, fixed):
        self.entries, self.index = list(fixed), {}

    def loc(self, e):
        if e not in self.index:
            self.index[e] = len(self.entries)
            self.entries.append(e)
        return self.index[e]


def _node(op, inputs, attrs):
    from .symbol import Symbol, sym_invoke
    # _body: an int unique to this node's Op (attrs stay plain values), so CSE never merges two loops
    r = sym_invoke(op, [Symbol([e]) for e in inputs], dict(attrs, _body=id(op)))
    return r if isinstance(r, list) else [r]


def _regroup(syms, fmt):
    return syms[0] if fmt is None else list(syms)


def foreach(body, data, init_states, name='foreach'):
    """MXNet's contrib.foreach on Symbols: (out, states) = body(data_t, states) for each t along axis 0 of data,
    as one `_foreach` node. Returns (outputs stacked along axis 0, final states) shaped as body returns them."""
    from ..ops.control import ForeachOp
    from .symbol import Symbol
    datas, dfmt = _flat(data, 'data', 'foreach')
    states, sfmt = _flat(init_states, 'init_states', 'foreach')
    if not datas:
        raise GraphcError("foreach: needs at least one data Symbol")
    dvars = [_var(f"{name}_data{i}", d, True) for i, d in enumerate(datas)]
    svars = [_var(f"{name}_state{i}", s) for i, s in enumerate(states)]
    wrap = lambda vs, fmt: Symbol([(vs[0], 0)]) if fmt is None else [Symbol([(v, 0)]) for v in vs]  # noqa: E731
    res, made = _trace(body, wrap(dvars, dfmt), wrap(svars, sfmt))
    if not (isinstance(res, (list, tuple)) and len(res) == 2):
        raise GraphcError("foreach: body must return (outputs, states)")
    outs, ofmt = _flat(res[0], 'the body output', 'foreach')
    news, _ = _flat(res[1], 'the body states', 'foreach')
    if len(news) != len(states):
        raise GraphcError(f"foreach: body returns {len(news)} states for {len(states)} initial states")
    b = _Body([s._one() for s in itertools.chain(outs, news)], dvars + svars, made, name, 'foreach')
    for v in dvars + svars:
        if v not in b.used:
            raise GraphcError(f"foreach: the body does not use {v.name} (MXNet needs every data and state used)")
    nd_, ns = len(dvars), len(svars)
    attrs = {'num_outputs': len(outs) + ns, 'num_out_data': len(outs), 'in_data_locs': tuple(range(nd_)),
             'in_state_locs': tuple(range(nd_, nd_ + ns)), 'remain_locs': tuple(range(nd_ + ns, len(b.graph.inputs)))}
    r = _node(ForeachOp([b.graph]), [s._one() for s in datas + states] + b.remain, attrs)
    return _regroup(r[:len(outs)], ofmt), _regroup(r[len(outs):], sfmt)


def while_loop(cond, func, loop_vars, max_iterations=None, name='while_loop'):
    """MXNet's contrib.while_loop on Symbols: while cond(*loop_vars): (step_output, loop_vars) =
    func(*loop_vars), at most max_iterations times, as one `_while_loop` node. Returns (step outputs stacked
    along axis 0, max_iterations of them, zeros past the last step; final loop_vars)."""
    from ..ops.control import WhileLoopOp
    from .symbol import Symbol
    if max_iterations is None:
        raise GraphcError("while_loop: max_iterations is required (it sizes the outputs)")
    lvs, vfmt = _flat(loop_vars, 'loop_vars', 'while_loop')
    if not lvs:
        raise GraphcError("while_loop: loop_vars must hold at least one Symbol")
    cvars = [_var(f"{name}_cond_var{i}", v) for i, v in enumerate(lvs)]
    pred, made = _trace(cond, *[Symbol([(v, 0)]) for v in cvars])
    if not isinstance(pred, Symbol):
        raise GraphcError(f"while_loop: cond must return a Symbol, got {type(pred).__name__}")
    c = _Body([pred._one()], cvars, made, name + '_cond', 'while_loop')
    fvars = [_var(f"{name}_func_var{i}", v) for i, v in enumerate(lvs)]
    res, made = _trace(func, *[Symbol([(v, 0)]) for v in fvars])
    if not (isinstance(res, (list, tuple)) and len(res) == 2):
        raise GraphcError("while_loop: func must return (step_output, new_loop_vars)")
    outs, ofmt = _flat(res[0], 'the step output', 'while_loop')
    news, _ = _flat(res[1], 'the new loop_vars', 'while_loop')
    if len(news) != len(lvs):
        raise GraphcError(f"while_loop: func returns {len(news)} loop_vars for {len(lvs)}")
    f = _Body([s._one() for s in itertools.chain(outs, news)], fvars, made, name + '_func', 'while_loop')
    for i, v in enumerate(fvars):
        if v not in f.used:
            raise GraphcError(f"while_loop: loop_var {i} is not used by func (MXNet needs every one used)")
    ins = _Inputs([s._one() for s in lvs])
    attrs = {'num_outputs': len(outs) + len(lvs), 'num_out_data': len(outs), 'max_iterations': int(max_iterations),
             'cond_input_locs': tuple([cvars.index(v) for v in c.used] + [ins.loc(e) for e in c.remain]),
             'func_input_locs': tuple(list(range(len(lvs))) + [ins.loc(e) for e in f.remain]),
             'func_var_locs': tuple(range(len(lvs)))}
    r = _node(WhileLoopOp([c.graph, f.graph]), ins.entries, attrs)
    return _regroup(r[:len(outs)], ofmt) if outs else [], _regroup(r[len(outs):], vfmt)


def cond(pred, then_func, else_func, name='cond'):
    """MXNet's contrib.cond on Symbols: then_func() where pred (one element) is nonzero, else else_func(), as
    one `_cond` node that runs only the branch taken."""
    from ..ops.control import CondOp
    from .symbol import Symbol
    if not isinstance(pred, Symbol):
        raise GraphcError(f"cond: pred must be a Symbol, got {type(pred).__name__}")
    bodies, fmt = [], None
    p = _Body([pred._one()], [], (), name + '_pred', 'cond')
    for what, fn in (('then_func', then_func), ('else_func', else_func)):
        res, made = _trace(fn)
        outs, f = _flat(res, f'the output of {what}', 'cond')
        fmt = f if what == 'then_func' else fmt
        bodies.append((_Body([s._one() for s in outs], [], made, f"{name}_{what[:4]}", 'cond'), len(outs)))
    if bodies[0][1] != bodies[1][1] or not bodies[0][1]:
        raise GraphcError(f"cond: then_func gives {bodies[0][1]} outputs and else_func {bodies[1][1]}; they must "
                          "give the same number, at least one")
    ins = _Inputs([])
    attrs = {'num_outputs': bodies[0][1], 'cond_input_locs': tuple(ins.loc(e) for e in p.remain),
             'then_input_locs': tuple(ins.loc(e) for e in bodies[0][0].remain),
             'else_input_locs': tuple(ins.loc(e) for e in bodies[1][0].remain)}
    r = _node(CondOp([p.graph, bodies[0][0].graph, bodies[1][0].graph]), ins.entries, attrs)
    return _regroup(r, fmt)


_bind()


def rand_zipfian(true_classes, num_sampled, range_max):
    """MXNet's sym.contrib.rand_zipfian (see nd.contrib.rand_zipfian): three Symbols."""
    from .. import symbol
    from ..ndarray.contrib import rand_zipfian as _nd_rand_zipfian
    return _nd_rand_zipfian(true_classes, num_sampled, range_max, F=symbol)
