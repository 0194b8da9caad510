"""The graph IR: Nodes in topological order with inferred shapes and dtypes.

A Node is a variable (op None) or an op application; an entry (node, index) names one
output. The text form, one line a node, is what errors, dumps and tests show:

    %3 = FullyConnected[num_hidden=10](%0, %1, %2)  f32[64,10]   # model.py:12 dense0
"""
import numpy as np

from .base import GraphcShapeError, GraphcError, fmt_shape


class Node:
    __slots__ = ('op', 'name', 'attrs', 'inputs', 'shapes', 'dtypes', 'where', 'block', 'extra')

    def __init__(self, op, name, attrs=None, inputs=(), shapes=None, dtypes=None, where=None, block=''):
        self.op, self.name, self.attrs, self.inputs = op, name, attrs or {}, list(inputs)
        self.shapes, self.dtypes = shapes, dtypes  # lists per output; a shape may hold None (unknown) dims
        self.where, self.block = where, block     # (file, line, source) of the user's code; block path
        self.extra = {}                            # variables: __shape__, __init__, ...; kept for export

    @property
    def is_var(self):
        return self.op is None

    @property
    def num_outputs(self):
        return 1 if self.op is None else self.op.n_out(self.attrs)

    def __repr__(self):
        return f"Node({self.name}: {'var' if self.is_var else self.op.name})"


def _dt(d):
    return {'float32': 'f32', 'float64': 'f64', 'float16': 'f16', 'int32': 'i32', 'int64': 'i64', 'uint8': 'u8',
            'bool': 'b8', 'int8': 'i8'}.get(str(d), str(d)) if d is not None else '?'


def _sh(s):
    return '?' if s is None else '[' + ','.join('?' if d is None else str(d) for d in s) + ']'


def where_str(node):
    if node.where and node.where[0]:
        import os
        return f"{os.path.basename(node.where[0])}:{node.where[1]}"
    return ''


class Graph:
    """inputs: variable nodes (data, then parameters and aux states); nodes: every node, topologically;
    outputs: entries (node, index)."""

    def __init__(self, outputs, inputs=None):
        self.outputs = list(outputs)
        self.nodes = topo_order([n for n, _ in self.outputs])
        vars_ = [n for n in self.nodes if n.is_var]
        if inputs is not None:
            listed = {id(n) for n in inputs}
            missing = [n.name for n in vars_ if id(n) not in listed and 'value' not in n.extra]
            if missing:
                raise GraphcError(f"graph uses variables not listed as inputs: {missing}")
            inputs = list(inputs) + [n for n in vars_ if id(n) not in listed]  # constants made by passes
        self.inputs = list(inputs) if inputs is not None else vars_

    def index(self):
        return {id(n): i for i, n in enumerate(self.nodes)}

    def text(self):
        """One line a node: `%i = op[attrs](%a, %b.1)  dtype[shape]   # file:line block`."""
        idx = self.index()
        lines = []
        for i, n in enumerate(self.nodes):
            ty = ', '.join(f"{_dt(d)}{_sh(s)}" for s, d in zip(n.shapes or [None] * n.num_outputs,
                                                                 n.dtypes or [None] * n.num_outputs))
            if n.is_var:
                lines.append(f"%{i} = var {n.name}  {ty}")
                continue
            attrs = {} if hasattr(n.op, 'subgraph') else n.op.format_attrs(n.attrs)
            a = '[' + ', '.join(f"{k}={v}" for k, v in attrs.items()) + ']' if attrs else ''
            args = ', '.join(f"%{idx[id(s)]}" + (f".{j}" if j else '') for s, j in n.inputs)
            loc = ' '.join(x for x in (where_str(n), n.block) if x)
            lines.append(f"%{i} = {n.op.name}{a}({args})  {ty}" + (f"   # {loc}" if loc else ''))
            sub = getattr(n.op, 'subgraph', None)
            if sub is not None:  # a fused kernel: its body, indented
                lines += ['    | ' + ln.split('   # ')[0] for ln in sub.text().splitlines()]
        outs = ', '.join(f"%{idx[id(n)]}" + (f".{j}" if j else '') for n, j in self.outputs)
        lines.append(f"return {outs}")
        return '\n'.join(lines)

    __str__ = text

    def verify(self):
        """Topological order, inputs that exist, and shapes/dtypes that re-infer to what is stored."""
        pos = self.index()
        for i, n in enumerate(self.nodes):
            for s, j in n.inputs:
                if id(s) not in pos or pos[id(s)] >= i:
                    raise GraphcError(f"IR verify: node %{i} ({n.name}) uses {s.name}, which is not before it")
                if j >= s.num_outputs:
                    raise GraphcError(f"IR verify: node %{i} ({n.name}) uses output {j} of {s.name}, "
                                      f"which has {s.num_outputs}")
            known = all(s.shapes is not None and s.shapes[j] is not None and None not in s.shapes[j] for s, j in n.inputs)
            if not n.is_var and n.shapes is not None and known:
                shapes, dtypes = infer_node(n)
                if [tuple(x) for x in shapes] != [tuple(x) for x in n.shapes] or list(dtypes) != list(n.dtypes):
                    raise GraphcError(f"IR verify: node %{i} ({n.name}) stores {n.shapes}/{n.dtypes} but infers "
                                      f"{shapes}/{dtypes}")
        for n, j in self.outputs:
            if id(n) not in pos:
                raise GraphcError(f"IR verify: output {n.name} is not in the graph")
        return True

    def aux_ids(self):
        """ids of the variables that are auxiliary states (BatchNorm's moving mean/var), as MXNet marks them."""
        return {id(n.inputs[i][0]) for n in self.nodes if not n.is_var for i in n.op.aux_inputs if i < len(n.inputs)}

    def to_networkx(self):
        """A networkx MultiDiGraph (node index -> node index, edge data: output index)."""
        import networkx as nx
        g = nx.MultiDiGraph()
        idx = self.index()
        for i, n in enumerate(self.nodes):
            g.add_node(i, name=n.name, op='var' if n.is_var else n.op.name)
            for s, j in n.inputs:
                g.add_edge(idx[id(s)], i, index=j)
        return g


def topo_order(roots, inputs_of=lambda n: [s for s, _ in n.inputs]):
    """Every node reachable from roots, inputs before users (iterative DFS, so deep graphs do not recurse)."""
    order, seen, stack = [], set(), [(r, False) for r in reversed(roots)]
    while stack:
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.append((n, True))
        for s in reversed(inputs_of(n)):
            if id(s) not in seen:
                stack.append((s, False))
    return order


def infer_node(node):
    """(shapes, dtypes) of node's outputs from its inputs'; errors name the node, its block and line."""
    shapes = [s.shapes[j] for s, j in node.inputs]
    dtypes = [s.dtypes[j] for s, j in node.inputs]
    try:
        return node.op.infer(node.attrs, shapes, dtypes)
    except GraphcShapeError as e:
        raise GraphcShapeError(describe(node) + str(e)) from None


def describe(node):
    """'in block dense1 (model.py:12): ' for error messages."""
    parts = []
    if node.block:
        parts.append(f"block {node.block}")
    w = where_str(node)
    if w:
        parts.append(f"at {w}" + (f" `{node.where[2]}`" if len(node.where) > 2 and node.where[2] else ''))
    return (', '.join(parts) + ': ') if parts else ''


def partial_infer(node):
    """Shapes when some input dims are unknown: None where the registry cannot say."""
    ins = [s.shapes[j] if s.shapes is not None else None for s, j in node.inputs]
    if all(s is not None and None not in s for s in ins):
        return infer_node(node)
    n = node.num_outputs
    dts = [s.dtypes[j] if s.dtypes is not None else None for s, j in node.inputs]
    dt = next((d for d in dts if d is not None), np.dtype('float32'))
    return [None] * n, [dt] * n


def fmt_entry_shape(node, j=0):
    return fmt_shape(node.shapes[j]) if node.shapes else '?'
