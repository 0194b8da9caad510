"""MXNet's control flow as graph ops: _foreach, _while_loop and _cond, nodes that carry their bodies as Graphs
(MXNet's `subgraphs`). Each node has its own Op instance (the bodies differ per node; attrs['_body'] keeps
CSE from merging two loops), so these ops are not in the registry: sym.contrib and the JSON loader make them
(CONTROL). The bodies run with the registry's NumPy kernels, node by node (graphc/interpreter.py: ops import
no backend); gradients run the bodies' gradient graphs backwards over the steps.

The *_locs attributes are MXNet's. _foreach: node inputs are the sequences (sliced along axis 0), the initial
states, then the values the body reads from outside; in_data_locs, in_state_locs and remain_locs give each one's
position among the body's inputs. _while_loop and _cond: cond_input_locs, func_input_locs (then_, else_)
give, for each input of that subgraph, the node input that feeds it; func_var_locs the position of each loop
variable among func's inputs. Outputs: _foreach and _while_loop, the step outputs stacked along axis 0
(_while_loop: max_iterations of them, zeros past the last step), then the final states; _cond, the branch's."""
import numpy as np

from ..base import GraphcError
from ..interpreter import interpret
from ..registry import OPS, Attr, Op, bad

_LOCS = Attr('shape')
FOREACH_ATTRS = {'num_outputs': Attr('int'), 'num_out_data': Attr('int'), 'in_data_locs': _LOCS,
                 'in_state_locs': _LOCS, 'remain_locs': _LOCS}
WHILE_ATTRS = {'num_outputs': Attr('int'), 'num_out_data': Attr('int'), 'max_iterations': Attr('int'),
               'cond_input_locs': _LOCS, 'func_input_locs': _LOCS, 'func_var_locs': _LOCS}
COND_ATTRS = {'num_outputs': Attr('int'), 'cond_input_locs': _LOCS, 'then_input_locs': _LOCS,
              'else_input_locs': _LOCS}


def run_body(g, arrays):
    """The outputs of graph g on its inputs' arrays (in g.inputs order), by the reference interpreter."""
    return interpret(g, dict(zip(g.inputs, arrays)))


def concrete(g, shapes, dtypes):
    """g with its inputs of these shapes/dtypes and every node re-inferred (a body traced with unknown dims,
    or called with other ones); g itself when nothing changes."""
    from ..graph import Graph, Node
    if all(v.shapes[0] is not None and tuple(v.shapes[0]) == tuple(s) and v.dtypes[0] == d
           for v, s, d in zip(g.inputs, shapes, dtypes)) and all(n.shapes and None not in n.shapes for n, _ in g.outputs):
        return g
    new = {v: Node(None, v.name, shapes=[tuple(s)], dtypes=[np.dtype(d)]) for v, s, d in zip(g.inputs, shapes, dtypes)}
    for n in g.nodes:
        if n in new:
            continue
        if n.is_var:
            new[n] = n
            continue
        m = Node(n.op, n.name, n.attrs, [(new[s], j) for s, j in n.inputs], where=n.where, block=n.block)
        m.shapes, m.dtypes = n.op.infer(n.attrs, [s.shapes[j] for s, j in m.inputs], [s.dtypes[j] for s, j in m.inputs])
        new[n] = m
    return Graph([(new[n], j) for n, j in g.outputs], [new[v] for v in g.inputs])


def _truth(p, who):
    p = np.asarray(p)
    if p.size != 1:
        raise GraphcError(f"{who}: the condition must have one element, got shape {p.shape}")
    return bool(p.reshape(-1)[0])


class ControlOp(Op):
    """An op holding bodies (Graphs): concrete bodies per input shapes and their gradient graphs, cached."""
    ATTRS = {}

    def __init__(self, name, bodies, doc):
        self.bodies = list(bodies)
        self._concrete, self._grads = {}, {}
        super().__init__(name, self._run, self._infer, grad=self._grad, attrs=self.ATTRS, inputs='*',
                         num_outputs=lambda a: a['num_outputs'], doc=doc)

    def body(self, k, shapes, dtypes):
        g = self.bodies[k]
        key = (k, tuple(tuple(s) for s in shapes), tuple(str(d) for d in dtypes))
        if key not in self._concrete:
            self._concrete[key] = concrete(g, shapes, dtypes)
        return self._concrete[key]

    def body_grad(self, g):
        """The gradient Graph of body g: inputs g's then one head per output; outputs the gradient of every
        input of g (zeros where there is none)."""
        if g not in self._grads:
            from ..graph import Graph
            from ..passes.autodiff import gradient
            from ..symbol.symbol import Symbol
            heads, grads = gradient(g, list(g.inputs), list(g.outputs))
            outs = [gr if gr is not None else _invoke(OPS['zeros_like'], [Symbol([(v, 0)])], {})._one()
                    for v, gr in zip(g.inputs, grads)]
            self._grads[g] = Graph(outs, list(g.inputs) + list(heads))
        return self._grads[g]

    def _grad(self, F, a, x, y, dy):
        attrs = {k: v for k, v in a.items() if k in self.ATTRS or k == '_body'}
        out = _invoke(ControlGradOp(self), list(dy) + list(x), attrs)
        return out if isinstance(out, list) else [out]

    def _run(self, a, *xs):
        out = self.forward(a, xs)[0]
        return tuple(out) if len(out) > 1 else out[0]


class ControlGradOp(Op):
    """The gradients of a control-flow node's inputs, from its output gradients and inputs."""

    def __init__(self, fwd):
        self.fwd = fwd
        super().__init__('_backward' + fwd.name, self._run, self._infer, attrs=fwd.ATTRS, inputs='*',
                         num_outputs=lambda a: a['_n_in'], doc=f"Gradient of {fwd.name}.")  # one per input

    def _infer(self, a, shapes, dtypes):
        k = a['num_outputs']
        return [tuple(s) for s in shapes[k:]], [np.dtype(d) for d in dtypes[k:]]

    def _run(self, a, *arrays):
        k = a['num_outputs']
        out = self.fwd.backward(a, arrays[k:], arrays[:k])
        out = [np.asarray(g, dtype=x.dtype) for g, x in zip(out, arrays[k:])]
        return tuple(out) if len(out) > 1 else out[0]


def _invoke(op, ins, attrs):
    """op on NDArrays (eager autograd's grad rules) or Symbols (tracing, autodiff): a list, or one value."""
    from ..symbol.symbol import Symbol, sym_invoke
    if isinstance(op, ControlGradOp):
        attrs = dict(attrs, _n_in=len(ins) - attrs['num_outputs'])
    if any(isinstance(v, Symbol) for v in ins):
        return sym_invoke(op, ins, attrs)
    from ..ndarray import ndarray as nd
    return nd.invoke(op, ins, attrs)


def _stack(steps, g, k, n):
    """The i-th step outputs of `steps` stacked along a new axis 0, zero-padded to n steps (g: the body)."""
    out = []
    for i, (node, j) in enumerate(g.outputs[:k]):
        shape, dt = tuple(node.shapes[j]), node.dtypes[j]
        rows = [s[i] for s in steps] + [np.zeros(shape, dt)] * (n - len(steps))
        out.append(np.stack(rows) if rows else np.zeros((0,) + shape, dt))
    return out


# ---------------------------------------------------------------- foreach
class ForeachOp(ControlOp):
    ATTRS = FOREACH_ATTRS

    def __init__(self, bodies):
        super().__init__('_foreach', bodies, "MXNet's foreach: the body run on each slice of the data along "
                                             "axis 0, with states.")

    def _split(self, a, xs):
        nd_, ns = len(a['in_data_locs']), len(a['in_state_locs'])
        return list(xs[:nd_]), list(xs[nd_:nd_ + ns]), list(xs[nd_ + ns:])

    def _feed(self, a, data, states, rest):
        """Body inputs in body order, from one step's slices, states and the outside values."""
        feed = [None] * len(self.bodies[0].inputs)
        for p, v in zip(tuple(a['in_data_locs']) + tuple(a['in_state_locs']) + tuple(a['remain_locs']),
                        data + states + rest):
            feed[p] = v
        return feed

    def check(self, a, n_in):
        locs = tuple(a['in_data_locs']) + tuple(a['in_state_locs']) + tuple(a['remain_locs'])
        if sorted(locs) != list(range(len(self.bodies[0].inputs))) or n_in != len(locs):
            bad(f"_foreach: {n_in} inputs and locs {locs} do not cover the body's {len(self.bodies[0].inputs)} "
                "inputs")
        ns = len(a['in_state_locs'])
        if not 0 <= a['num_out_data'] == a['num_outputs'] - ns or len(self.bodies[0].outputs) != a['num_outputs']:
            bad(f"_foreach: num_outputs {a['num_outputs']} must be num_out_data {a['num_out_data']} + {ns} states "
                f"= the body's {len(self.bodies[0].outputs)} outputs")
        if not a['in_data_locs']:
            bad("_foreach: needs at least one data input")

    def _body_for(self, a, shapes, dtypes):
        data, states, rest = self._split(a, list(zip(shapes, dtypes)))
        T = {s[0] if s else None for s, _ in data}
        if len(T) != 1 or None in T:
            bad(f"_foreach: the data inputs must share their first (step) axis, got {[s for s, _ in data]}")
        ins = self._feed(a, [(s[1:], d) for s, d in data], states, rest)
        return self.body(0, [s for s, _ in ins], [d for _, d in ins]), T.pop()

    def _infer(self, a, shapes, dtypes):
        self.check(a, len(shapes))
        g, T = self._body_for(a, shapes, dtypes)
        outs = [(n.shapes[j], n.dtypes[j]) for n, j in g.outputs]
        k = a['num_out_data']
        _, states, _ = self._split(a, list(zip(shapes, dtypes)))
        _same_states('_foreach', states, outs[k:])
        return [(T,) + tuple(s) for s, _ in outs[:k]] + [s for s, _ in outs[k:]], [d for _, d in outs]

    def forward(self, a, xs):
        """(outputs, the body's inputs at every step, the concrete body)."""
        data, states, rest = self._split(a, xs)
        g, T = self._body_for(a, [x.shape for x in xs], [x.dtype for x in xs])
        k, steps, feeds = a['num_out_data'], [], []
        for t in range(T):
            feeds.append(self._feed(a, [d[t] for d in data], states, rest))
            res = run_body(g, feeds[-1])
            steps.append(res[:k])
            states = res[k:]
        return _stack(steps, g, k, T) + list(states), feeds, g

    def backward(self, a, xs, dys):
        nod = a['num_out_data']
        data, states, rest = self._split(a, list(xs))
        _, feeds, g = self.forward(a, xs)
        gb = self.body_grad(g)
        d_data, d_rest = [np.zeros_like(d) for d in data], [np.zeros_like(r) for r in rest]
        d_state = list(dys[nod:])
        for t in reversed(range(len(feeds))):
            gr = run_body(gb, feeds[t] + [dy[t] for dy in dys[:nod]] + d_state)
            for i, p in enumerate(a['in_data_locs']):
                d_data[i][t] = gr[p]
            d_state = [gr[p] for p in a['in_state_locs']]
            d_rest = [r + gr[p] for r, p in zip(d_rest, a['remain_locs'])]
        return d_data + d_state + d_rest

    def export_locs(self, a, positions):
        """The *_locs as written: positions[0] maps each body input to its place among the written variables."""
        pos = positions[0]
        return {k: tuple(pos[p] for p in a[k]) for k in ('in_data_locs', 'in_state_locs', 'remain_locs')}


def _same_states(who, ins, outs):
    for (s, d), (s2, d2) in zip(ins, outs):
        if tuple(s) != tuple(s2) or np.dtype(d) != np.dtype(d2):
            bad(f"{who}: a loop variable enters as {d}{list(s)} but the body returns {d2}{list(s2)}")


# ---------------------------------------------------------------- while_loop
class WhileLoopOp(ControlOp):
    ATTRS = WHILE_ATTRS

    def __init__(self, bodies):
        super().__init__('_while_loop', bodies, "MXNet's while_loop: func run while cond holds, at most "
                                                "max_iterations times.")

    def check(self, a, n_in):
        c, f = self.bodies
        if len(a['cond_input_locs']) != len(c.inputs) or len(a['func_input_locs']) != len(f.inputs) or \
                any(not 0 <= i < n_in for i in a['cond_input_locs'] + a['func_input_locs']) or \
                any(not 0 <= p < len(f.inputs) for p in a['func_var_locs']):
            bad(f"_while_loop: locs {a['cond_input_locs']}, {a['func_input_locs']}, {a['func_var_locs']} do not fit "
                f"{n_in} inputs and subgraphs of {len(c.inputs)} and {len(f.inputs)} inputs")
        nv = len(a['func_var_locs'])
        if len(c.outputs) != 1 or not 0 <= a['num_out_data'] == a['num_outputs'] - nv or \
                len(f.outputs) != a['num_outputs'] or a['max_iterations'] < 0:
            bad(f"_while_loop: cond needs one output and func num_out_data {a['num_out_data']} + {nv} loop "
                f"variables = num_outputs {a['num_outputs']} outputs (it has {len(f.outputs)}); max_iterations "
                f"{a['max_iterations']}")

    def _var_inputs(self, a):
        return [a['func_input_locs'][p] for p in a['func_var_locs']]  # the node input of each loop variable

    def _bodies_for(self, a, shapes, dtypes):
        return [self.body(k, [shapes[i] for i in a[loc]], [dtypes[i] for i in a[loc]])
                for k, loc in enumerate(('cond_input_locs', 'func_input_locs'))]

    def _infer(self, a, shapes, dtypes):
        self.check(a, len(shapes))
        _, f = self._bodies_for(a, shapes, dtypes)
        outs = [(n.shapes[j], n.dtypes[j]) for n, j in f.outputs]
        k = a['num_out_data']
        _same_states('_while_loop', [(shapes[i], dtypes[i]) for i in self._var_inputs(a)], outs[k:])
        return [(a['max_iterations'],) + tuple(s) for s, _ in outs[:k]] + [s for s, _ in outs[k:]], \
            [d for _, d in outs]

    def forward(self, a, xs):
        vals = list(xs)
        c, f = self._bodies_for(a, [x.shape for x in xs], [x.dtype for x in xs])
        k, vi, steps, feeds = a['num_out_data'], self._var_inputs(a), [], []
        while len(steps) < a['max_iterations'] and \
                _truth(run_body(c, [vals[i] for i in a['cond_input_locs']])[0], '_while_loop'):
            feeds.append([vals[i] for i in a['func_input_locs']])
            res = run_body(f, feeds[-1])
            steps.append(res[:k])
            for i, v in zip(vi, res[k:]):
                vals[i] = v
        return _stack(steps, f, k, a['max_iterations']) + [vals[i] for i in vi], feeds, f

    def backward(self, a, xs, dys):
        nod = a['num_out_data']
        _, feeds, f = self.forward(a, xs)
        gb = self.body_grad(f)
        dx = [np.zeros_like(x) for x in xs]
        d_vars = list(dys[nod:])
        var_pos = set(a['func_var_locs'])
        for t in reversed(range(len(feeds))):
            gr = run_body(gb, feeds[t] + [dy[t] for dy in dys[:nod]] + d_vars)
            d_vars = [gr[p] for p in a['func_var_locs']]
            for p, i in enumerate(a['func_input_locs']):
                if p not in var_pos:  # what the body reads from outside: the same value at every step
                    dx[i] = dx[i] + gr[p]
        for i, g in zip(self._var_inputs(a), d_vars):
            dx[i] = dx[i] + g
        return dx

    def export_locs(self, a, positions):
        pc, pf = positions
        return {'cond_input_locs': _reorder(a['cond_input_locs'], pc), 'func_input_locs': _reorder(a['func_input_locs'], pf),
                'func_var_locs': tuple(pf[p] for p in a['func_var_locs'])}


def _reorder(locs, pos):
    """locs (one per body input, in body order) in the written order of the body's inputs."""
    out = [None] * len(locs)
    for p, i in enumerate(locs):
        out[pos[p]] = i
    return tuple(out)


# ---------------------------------------------------------------- cond
class CondOp(ControlOp):
    ATTRS = COND_ATTRS
    LOCS = ('cond_input_locs', 'then_input_locs', 'else_input_locs')

    def __init__(self, bodies):
        super().__init__('_cond', bodies, "MXNet's cond: then_func's outputs where the condition holds, else "
                                          "else_func's.")

    def check(self, a, n_in):
        for g, loc in zip(self.bodies, self.LOCS):
            if len(a[loc]) != len(g.inputs) or any(not 0 <= i < n_in for i in a[loc]):
                bad(f"_cond: {loc} {a[loc]} does not fit {n_in} inputs and a subgraph of {len(g.inputs)} inputs")
        if len(self.bodies[0].outputs) != 1 or not len(self.bodies[1].outputs) == len(self.bodies[2].outputs) == \
                a['num_outputs']:
            bad(f"_cond: the condition needs one output and both branches num_outputs {a['num_outputs']}")

    def _bodies_for(self, a, shapes, dtypes):
        return [self.body(k, [shapes[i] for i in a[loc]], [dtypes[i] for i in a[loc]])
                for k, loc in enumerate(self.LOCS)]

    def _infer(self, a, shapes, dtypes):
        self.check(a, len(shapes))
        _, t, e = self._bodies_for(a, shapes, dtypes)
        ts = [(tuple(n.shapes[j]), np.dtype(n.dtypes[j])) for n, j in t.outputs]
        es = [(tuple(n.shapes[j]), np.dtype(n.dtypes[j])) for n, j in e.outputs]
        if ts != es:
            bad(f"_cond: the branches give different outputs: then {ts}, else {es}")
        return [s for s, _ in ts], [d for _, d in ts]

    def _branch(self, a, xs):
        c, t, e = self._bodies_for(a, [x.shape for x in xs], [x.dtype for x in xs])
        if _truth(run_body(c, [xs[i] for i in a['cond_input_locs']])[0], '_cond'):
            return t, a['then_input_locs']
        return e, a['else_input_locs']

    def forward(self, a, xs):
        g, locs = self._branch(a, xs)
        return run_body(g, [xs[i] for i in locs]), None, g

    def backward(self, a, xs, dys):
        g, locs = self._branch(a, xs)
        gr = run_body(self.body_grad(g), [xs[i] for i in locs] + list(dys))
        dx = [np.zeros_like(x) for x in xs]
        for p, i in enumerate(locs):
            dx[i] = dx[i] + gr[p]
        return dx

    def export_locs(self, a, positions):
        return {loc: _reorder(a[loc], pos) for loc, pos in zip(self.LOCS, positions)}


# ---------------------------------------------------------------- a hybridized block's call
class CachedCallOp(ControlOp):
    """MXNet's _CachedOp: a hybridized block's call as one node (autograd.get_symbol of a call past the block's
    inline_limit). Its body is the block's graph; the node's inputs feed the body's inputs in the body's order."""
    ATTRS = {'num_outputs': Attr('int')}

    def __init__(self, bodies):
        super().__init__('_CachedOp', bodies, "MXNet's _CachedOp: a hybridized block's graph called as one node.")

    def check(self, a, n_in):
        g = self.bodies[0]
        if len(g.inputs) != n_in or len(g.outputs) != a['num_outputs']:
            bad(f"_CachedOp: {n_in} inputs and num_outputs {a['num_outputs']} do not fit a subgraph of "
                f"{len(g.inputs)} inputs and {len(g.outputs)} outputs")

    def _infer(self, a, shapes, dtypes):
        self.check(a, len(shapes))
        g = self.body(0, shapes, dtypes)
        return [tuple(n.shapes[j]) for n, j in g.outputs], [np.dtype(n.dtypes[j]) for n, j in g.outputs]

    def forward(self, a, xs):
        g = self.body(0, [x.shape for x in xs], [x.dtype for x in xs])
        return run_body(g, list(xs)), None, g

    def backward(self, a, xs, dys):
        g = self.forward(a, xs)[2]
        return run_body(self.body_grad(g), list(xs) + list(dys))

    def export_locs(self, a, positions):
        return {}


CONTROL = {'_foreach': ForeachOp, '_while_loop': WhileLoopOp, '_cond': CondOp, '_CachedOp': CachedCallOp}  # mxjson reads `subgraphs` with it
