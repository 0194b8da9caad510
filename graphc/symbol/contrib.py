"""mx.sym.contrib: the contrib ops graphc has (registered as _contrib_<name>) under their short names, and
MXNet's foreach as a graph op (a `_foreach` node that carries its body, graphc/ops/control.py)."""
import sys

from ..base import GraphcError
from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import symbol as sym
    for name in OPS:
        if name.startswith('_contrib_') and hasattr(sym, name):
            setattr(_mod, name[len('_contrib_'):], getattr(sym, name))


def _flat(x, what):
    """(list of Symbols, None for a single Symbol or the list's length)."""
    from .symbol import Symbol
    if isinstance(x, Symbol):
        return [x], None
    if isinstance(x, (list, tuple)) and all(isinstance(v, Symbol) for v in x):
        return list(x), len(x)
    raise GraphcError(f"foreach: {what} must be a Symbol or a list of Symbols, got {type(x).__name__}")


def _step_var(name, s, drop_first):
    import numpy as np
    from ..graph import Node
    n, j = s._one()
    shape = n.shapes[j] if n.shapes else None
    if shape is not None and drop_first:
        if not shape:
            raise GraphcError(f"foreach: data {n.name!r} is 0-d; it needs an axis 0 to loop over")
        shape = tuple(shape[1:])
    return Node(None, name, shapes=[shape], dtypes=[n.dtypes[j] if n.dtypes else np.dtype('float32')])


def _cut(entries, loop_vars, name):
    """The body Graph from the body's output entries: what depends on the loop variables is copied into it;
    every other value it reads (a weight, an outer result, a constant) becomes one more body input.
    Returns (body outputs, the body's extra input vars, the outer entries that feed them)."""
    from ..graph import Graph, Node
    from .symbol import output_name
    inner = {id(v) for v in loop_vars}
    for n in Graph(entries).nodes:
        if not n.is_var and any(id(s) in inner for s, _ in n.inputs):
            inner.add(id(n))
    new, cut, rvars, remain = {id(v): v for v in loop_vars}, {}, [], []

    def entry(s, j):
        if id(s) in inner:
            return new[id(s)], j
        if (id(s), j) not in cut:
            v = Node(None, s.name if s.is_var else output_name(s, j), shapes=[s.shapes[j] if s.shapes else None],
                     dtypes=[s.dtypes[j] if s.dtypes else None])
            cut[(id(s), j)] = v
            rvars.append(v)
            remain.append((s, j))
        return cut[(id(s), j)], 0
    for n in Graph(entries).nodes:
        if not n.is_var and id(n) in inner:
            new[id(n)] = Node(n.op, n.name, n.attrs, [entry(s, j) for s, j in n.inputs], n.shapes, n.dtypes,
                              n.where, n.block)
    outs = []
    for k, (s, j) in enumerate(entries):
        e = entry(s, j)
        if e[0].is_var:  # a body output is an op node, as in MXNet's subgraphs
            c = Node(OPS['_copy'], f"{name}_copy{k}", {}, [e], [e[0].shapes[0]], [e[0].dtypes[0]])
            e = (c, 0)
        outs.append(e)
    return outs, rvars, remain


def foreach(body, data, init_states, name='foreach'):
    """MXNet's contrib.foreach on Symbols: one `_foreach` node whose body is body(data slice, states) traced
    once; (out, states) = body(data_t, states) for each t along axis 0 of data. Returns (outputs stacked
    along axis 0, final states), each a Symbol or a list of them as body returned them."""
    import itertools
    from ..graph import Graph
    from ..ops.control import ForeachOp
    from .symbol import Symbol, sym_invoke
    datas, dfmt = _flat(data, 'data')
    states, sfmt = _flat(init_states, 'init_states')
    dvars = [_step_var(f"{name}_data{i}", d, True) for i, d in enumerate(datas)]
    svars = [_step_var(f"{name}_state{i}", s, False) for i, s in enumerate(states)]
    wrap = lambda vs, fmt: Symbol([(vs[0], 0)]) if fmt is None else [Symbol([(v, 0)]) for v in vs]  # noqa: E731
    res = body(wrap(dvars, dfmt), wrap(svars, sfmt))
    if not (isinstance(res, (list, tuple)) and len(res) == 2):
        raise GraphcError("foreach: body must return (outputs, states)")
    outs, ofmt = ([], 0) if isinstance(res[0], (list, tuple)) and not res[0] else _flat(res[0], 'the body output')
    news, nfmt = ([], 0) if isinstance(res[1], (list, tuple)) and not res[1] else _flat(res[1], 'the body states')
    if len(news) != len(states):
        raise GraphcError(f"foreach: body returns {len(news)} states for {len(states)} initial states")
    entries = [s._one() for s in itertools.chain(outs, news)]
    b_outs, rvars, remain = _cut(entries, dvars + svars, name)
    g = Graph(b_outs, dvars + svars + rvars)
    used = {id(s) for n in g.nodes for s, _ in n.inputs}
    for v in dvars + svars:
        if id(v) not in used:
            raise GraphcError(f"foreach: the body does not use {v.name} (MXNet needs every data and state used)")
    nd_, ns = len(dvars), len(svars)
    attrs = {'num_outputs': len(entries), 'num_out_data': len(outs), 'in_data_locs': tuple(range(nd_)),
             'in_state_locs': tuple(range(nd_, nd_ + ns)), 'remain_locs': tuple(range(nd_ + ns, nd_ + ns + len(rvars))),
             '_body': id(g)}
    op = ForeachOp(g)
    r = sym_invoke(op, datas + states + [Symbol([e]) for e in remain], attrs)
    r = r if isinstance(r, list) else [r]
    o, st = r[:len(outs)], r[len(outs):]
    return (o[0] if ofmt is None else o), (st[0] if sfmt is None else st)


_bind()
