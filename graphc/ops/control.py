"""MXNet's control flow as a graph op: _foreach, a node that carries its loop body as a Graph (MXNet's
`subgraphs`). Each node has its own Op instance (the body differs per node; attrs['_body'] keeps CSE from merging two
loops), so `_foreach` is not in the registry: sym.contrib.foreach and the JSON loader make them (CONTROL). The body runs with the registry's NumPy kernels, node by node (the interpreter's rule, written
here: ops do not import the runtime); its gradient is the body's gradient graph run backwards over the steps.

Inputs of a node, in MXNet's order: the sequences (sliced along axis 0), the initial states, then the values
the body reads from outside (weights, closures). in_data_locs, in_state_locs and remain_locs say where each
of them sits among the body's inputs. Outputs: the body's num_out_data step outputs stacked along axis 0,
then its final states."""
import numpy as np

from ..base import GraphcError
from ..registry import OPS, Attr, Op, bad

FOREACH_ATTRS = {'num_outputs': Attr('int'), 'num_out_data': Attr('int'), 'in_data_locs': Attr('shape'),
                 'in_state_locs': Attr('shape'), 'remain_locs': Attr('shape')}


def run_body(g, arrays):
    """The outputs of graph g on its inputs' arrays (in g.inputs order)."""
    vals = {id(v): (a,) for v, a in zip(g.inputs, arrays)}
    for n in g.nodes:
        if id(n) in vals:
            continue
        if n.is_var:
            if 'value' not in n.extra:
                raise GraphcError(f"_foreach: body input {n.name!r} has no value")
            vals[id(n)] = (n.extra['value'],)
            continue
        out = n.op.ref(n.attrs, *[vals[id(s)][j] for s, j in n.inputs])
        vals[id(n)] = tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else (np.asarray(out),)
    return [vals[id(n)][j] for n, j in g.outputs]


def concrete(g, shapes, dtypes):
    """g with its inputs of these shapes/dtypes and every node re-inferred (a loop body traced with unknown
    dims, or called with other ones); g itself when nothing changes."""
    from ..graph import Graph, Node
    if all(v.shapes[0] is not None and tuple(v.shapes[0]) == tuple(s) and v.dtypes[0] == d
           for v, s, d in zip(g.inputs, shapes, dtypes)) and all(n.shapes and None not in n.shapes for n, _ in g.outputs):
        return g
    new = {}
    for v, s, d in zip(g.inputs, shapes, dtypes):
        new[id(v)] = Node(None, v.name, shapes=[tuple(s)], dtypes=[np.dtype(d)])
    for n in g.nodes:
        if id(n) in new:
            continue
        if n.is_var:
            new[id(n)] = n
            continue
        m = Node(n.op, n.name, n.attrs, [(new[id(s)], j) for s, j in n.inputs], where=n.where, block=n.block)
        m.shapes, m.dtypes = n.op.infer(n.attrs, [s.shapes[j] for s, j in m.inputs], [s.dtypes[j] for s, j in m.inputs])
        new[id(n)] = m
    return Graph([(new[id(n)], j) for n, j in g.outputs], [new[id(v)] for v in g.inputs])


class ForeachOp(Op):
    """The `_foreach` of one node: its body Graph (inputs in the order the locs index)."""

    def __init__(self, body):
        self.body = body
        self._bodies, self._grads = {}, {}  # the body per input shapes, its gradient graph per body
        super().__init__('_foreach', self._run, self._infer, grad=self._grad, attrs=FOREACH_ATTRS, inputs='*',
                         num_outputs=lambda a: a['num_outputs'],
                         doc="MXNet's foreach: the body run on each slice of the data along axis 0, with states.")

    # ------------------------------------------------------------ the layout of inputs and outputs
    def _split(self, a, xs):
        nd_, ns = len(a['in_data_locs']), len(a['in_state_locs'])
        return list(xs[:nd_]), list(xs[nd_:nd_ + ns]), list(xs[nd_ + ns:])

    def _feed(self, a, data, states, rest):
        """Body inputs in body order, from one step's slices, states and the outside values."""
        feed = [None] * len(self.body.inputs)
        for p, v in zip(tuple(a['in_data_locs']) + tuple(a['in_state_locs']) + tuple(a['remain_locs']),
                        data + states + rest):
            feed[p] = v
        return feed

    def _check(self, a, n_in):
        locs = tuple(a['in_data_locs']) + tuple(a['in_state_locs']) + tuple(a['remain_locs'])
        if sorted(locs) != list(range(len(self.body.inputs))) or n_in != len(locs):
            bad(f"_foreach: {n_in} inputs and locs {locs} do not cover the body's {len(self.body.inputs)} inputs")
        ns = len(a['in_state_locs'])
        if not 0 <= a['num_out_data'] == a['num_outputs'] - ns or len(self.body.outputs) != a['num_outputs']:
            bad(f"_foreach: num_outputs {a['num_outputs']} must be num_out_data {a['num_out_data']} + {ns} states "
                f"= the body's {len(self.body.outputs)} outputs")
        if not a['in_data_locs']:
            bad("_foreach: needs at least one data input")

    def _body_for(self, a, shapes, dtypes):
        data, states, rest = self._split(a, list(zip(shapes, dtypes)))
        T = {s[0] if s else None for s, _ in data}
        if len(T) != 1 or None in T:
            bad(f"_foreach: the data inputs must share their first (step) axis, got {[s for s, _ in data]}")
        sl = [(s[1:], d) for s, d in data]
        ins = self._feed(a, sl, states, rest)
        key = tuple((tuple(s), str(d)) for s, d in ins)
        if key not in self._bodies:
            self._bodies[key] = concrete(self.body, [s for s, _ in ins], [d for _, d in ins])
        return self._bodies[key], T.pop()

    def _infer(self, a, shapes, dtypes):
        self._check(a, len(shapes))
        body, T = self._body_for(a, shapes, dtypes)
        outs = [(n.shapes[j], n.dtypes[j]) for n, j in body.outputs]
        k = a['num_out_data']
        _, states, _ = self._split(a, list(zip(shapes, dtypes)))
        for (s, d), (s2, d2) in zip(states, outs[k:]):
            if tuple(s) != tuple(s2) or np.dtype(d) != np.dtype(d2):
                bad(f"_foreach: a state enters as {d}{list(s)} but the body returns {d2}{list(s2)}")
        return [(T,) + tuple(s) for s, _ in outs[:k]] + [s for s, _ in outs[k:]], [d for _, d in outs]

    # ------------------------------------------------------------ forward
    def _steps(self, a, xs):
        """(stacked outputs, final states, the body's inputs at every step)."""
        data, states, rest = self._split(a, xs)
        body, T = self._body_for(a, [x.shape for x in xs], [x.dtype for x in xs])
        k, outs, feeds = a['num_out_data'], [], []
        for t in range(T):
            feed = self._feed(a, [d[t] for d in data], states, rest)
            res = run_body(body, feed)
            feeds.append(feed)
            outs.append(res[:k])
            states = res[k:]
        stacked = [np.stack([o[i] for o in outs]) if T else np.zeros((0,) + tuple(n.shapes[j]), n.dtypes[j])
                   for i, (n, j) in enumerate(body.outputs[:k])]
        return stacked, states, feeds, body

    def _run(self, a, *xs):
        stacked, states, _, _ = self._steps(a, xs)
        out = stacked + list(states)
        return tuple(out) if len(out) > 1 else out[0]

    # ------------------------------------------------------------ gradient
    def _grad(self, F, a, x, y, dy):
        bw = ForeachGradOp(self)
        attrs = {k: v for k, v in a.items() if k in FOREACH_ATTRS or k == '_body'}
        out = _invoke(bw, list(dy) + list(x), attrs)
        return out if isinstance(out, list) else [out]

    def body_grad(self, body):
        """(gradient Graph of the body: inputs are the body's then one head per output; outputs: the gradient
        of every body input, zeros where there is none)."""
        key = id(body)
        if key not in self._grads:
            from ..passes.autodiff import gradient
            from ..graph import Graph
            from ..symbol.symbol import Symbol
            heads, grads = gradient(body, list(body.inputs), list(body.outputs))
            outs = [g if g is not None else
                    _invoke(OPS['zeros_like'], [Symbol([(v, 0)])], {})._one() for v, g in zip(body.inputs, grads)]
            self._grads[key] = (body, Graph(outs, list(body.inputs) + list(heads)))
        return self._grads[key][1]


class ForeachGradOp(Op):
    """The gradients of a _foreach node's inputs: its steps again, then the body's gradient graph from the
    last step to the first."""

    def __init__(self, fwd):
        self.fwd = fwd
        super().__init__('_backward_foreach', self._run, self._infer, attrs=FOREACH_ATTRS, inputs='*',
                         num_outputs=lambda a: len(a['in_data_locs']) + len(a['in_state_locs']) + len(a['remain_locs']),
                         doc="Gradient of _foreach.")

    def _infer(self, a, shapes, dtypes):
        k = a['num_outputs']
        return [tuple(s) for s in shapes[k:]], [np.dtype(d) for d in dtypes[k:]]

    def _run(self, a, *arrays):
        f, k, nod = self.fwd, a['num_outputs'], a['num_out_data']
        dys, xs = arrays[:k], arrays[k:]
        data, states, rest = f._split(a, list(xs))
        _, _, feeds, body = f._steps(a, xs)
        gb = f.body_grad(body)
        d_data = [np.zeros_like(d) for d in data]
        d_state = [np.asarray(g) for g in dys[nod:]]
        d_rest = [np.zeros_like(r) for r in rest]
        dl, sl, rl = a['in_data_locs'], a['in_state_locs'], a['remain_locs']
        for t in reversed(range(len(feeds))):
            g = run_body(gb, feeds[t] + [dy[t] for dy in dys[:nod]] + d_state)
            for i, p in enumerate(dl):
                d_data[i][t] = g[p]
            d_state = [np.asarray(g[p], dtype=s.dtype) for p, s in zip(sl, states)]
            for i, p in enumerate(rl):
                d_rest[i] = d_rest[i] + g[p]
        out = d_data + d_state + [np.asarray(r, dtype=x.dtype) for r, x in zip(d_rest, rest)]
        return tuple(out) if len(out) > 1 else out[0]


def _invoke(op, ins, attrs):
    """op on NDArrays (eager autograd's grad rules) or Symbols (tracing, autodiff): a list, or one value."""
    from ..symbol.symbol import Symbol, sym_invoke
    if any(isinstance(v, Symbol) for v in ins):
        return sym_invoke(op, ins, attrs)
    from ..ndarray import ndarray as nd
    return nd.invoke(op, ins, attrs)


CONTROL = {'_foreach': ForeachOp}  # op name -> the Op class that holds a body (mxjson reads `subgraphs` with it)
