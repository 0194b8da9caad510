"""The graph IR: Nodes in topological order with inferred shapes and dtypes.

A Node is a variable (op None) or an op application; an entry (node, index) names one
output. The text form, one line a node, is what errors, dumps and tests show:

    %3 = FullyConnected[num_hidden=10](%0, %1, %2)  f32[64,10]   # model.py:12 dense0

Passes rewrite graphs with the API here: `rebuild` (a new graph, node by node), or on a `copy()` in place with
`users`, `replace_all_uses`, `insert` and `erase`. Nodes hash and compare by identity (no __eq__), so a dict
keyed by Node or by entry (node, index) is keyed by the node itself and keeps it alive, unlike id(node).
"""
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .base import GraphcShapeError, GraphcError, fmt_shape
from .registry import get


class Node:
    __slots__ = ('op', 'name', 'attrs', 'inputs', 'shapes', 'dtypes', 'where', 'block', 'extra')

    def __init__(self, op, name: str, attrs: Optional[dict] = None, inputs: Iterable['Entry'] = (), shapes=None,
                 dtypes=None, where=None, block: str = ''):
        self.op, self.name, self.attrs, self.inputs = op, name, attrs or {}, list(inputs)
        self.shapes, self.dtypes = shapes, dtypes  # lists per output; a shape may hold None (unknown) dims
        self.where, self.block = where, block     # (file, line, source) of the user's code; block path
        self.extra = {}                            # variables: __shape__, __init__, ...; kept for export

    @property
    def is_var(self) -> bool:
        return self.op is None

    @property
    def num_outputs(self) -> int:
        return 1 if self.op is None else self.op.n_out(self.attrs)

    def __repr__(self):
        return f"Node({self.name}: {'var' if self.is_var else self.op.name})"


Entry = Tuple[Node, int]   # output j of a node


def _dt(d):
    return {'float32': 'f32', 'float64': 'f64', 'float16': 'f16', 'int32': 'i32', 'int64': 'i64', 'uint8': 'u8',
            'bool': 'b8', 'int8': 'i8'}.get(str(d), str(d)) if d is not None else '?'


def _sh(s):
    return '?' if s is None else '[' + ','.join('?' if d is None else str(d) for d in s) + ']'


def node_line(n: Node, idx: Optional[Dict[Node, int]] = None) -> str:
    """The node's line of the text IR; values are %position with `idx` (node -> position), else %name."""
    def ref(s):
        return f"%{idx[s]}" if idx is not None and s in idx else f"%{s.name}"
    ty = ', '.join(f"{_dt(d)}{_sh(s)}" for s, d in zip(n.shapes or [None] * n.num_outputs,
                                                         n.dtypes or [None] * n.num_outputs))
    if n.is_var:
        return f"{ref(n)} = var {n.name}  {ty}"
    attrs = {} if hasattr(n.op, 'subgraph') else n.op.format_attrs(n.attrs)
    a = '[' + ', '.join(f"{k}={v}" for k, v in attrs.items()) + ']' if attrs else ''
    args = ', '.join(ref(s) + (f".{j}" if j else '') for s, j in n.inputs)
    loc = ' '.join(x for x in (where_str(n), n.block) if x)
    return f"{ref(n)} = {n.op.name}{a}({args})  {ty}" + (f"   # {loc}" if loc else '')


def raise_at(node: Node, e: Exception, nodes: Optional[List[Node]] = None, args: Sequence = ()):
    """Raise `e`, raised while running `node`, again naming the node's IR line and the user's source line (as
    torch.fx's "While executing"). The error stays an instance of e's class, and of GraphcError (so MXNetError)."""
    if getattr(e, 'node', None) is not None:
        raise e   # named already, by the innermost node (a fused kernel's op)
    ours = isinstance(e, GraphcError)
    msg = str(e) if ours else f"{node.op.name}: {e}" + \
        (f" (input shapes {', '.join(fmt_shape(np.shape(a)) for a in args)})" if args else '')
    idx = {n: i for i, n in enumerate(nodes)} if nodes is not None else None
    try:
        cls = type(e) if ours else type(type(e).__name__, (type(e), GraphcError), {'__module__': type(e).__module__})
        err = cls(f"{describe(node)}{msg}\n  while executing {node_line(node, idx)}")
    except Exception:   # a class that cannot be combined (its C layout) or made from one message: e as it was
        raise e from None
    err.node = node
    raise err from (None if ours else e)


def where_str(node: Node) -> str:
    if node.where and node.where[0]:
        import os
        return f"{os.path.basename(node.where[0])}:{node.where[1]}"
    return ''


class Graph:
    """inputs: variable nodes (data, then parameters and aux states); nodes: every node, topologically;
    outputs: entries (node, index)."""

    def __init__(self, outputs: Iterable[Entry], inputs: Optional[Iterable[Node]] = None):
        self.outputs = list(outputs)
        self.nodes = topo_order([n for n, _ in self.outputs])
        self._users = None
        vars_ = [n for n in self.nodes if n.is_var]
        if inputs is not None:
            listed = set(inputs)
            missing = [n.name for n in vars_ if n not in listed and 'value' not in n.extra]
            if missing:
                raise GraphcError(f"graph uses variables not listed as inputs: {missing}")
            inputs = list(inputs) + [n for n in vars_ if n not in listed]  # constants made by passes
        self.inputs = list(inputs) if inputs is not None else vars_

    def positions(self) -> Dict[Node, int]:
        return {n: i for i, n in enumerate(self.nodes)}

    def users(self) -> Dict[Entry, List[Optional[Node]]]:
        """entry -> the nodes that read it, in order (None: a graph output); kept current by the edits below."""
        if self._users is None:
            self._users = {}
            for n in self.nodes:
                for s, j in n.inputs:
                    self._users.setdefault((s, j), []).append(n)
            for n, j in self.outputs:
                self._users.setdefault((n, j), []).append(None)
        return self._users

    def copy(self, memo: Optional[Dict[Node, Node]] = None) -> 'Graph':
        """The graph over fresh copies of its op nodes (variables shared), for a pass to edit in place; `memo`
        receives old node -> copy."""
        memo = {} if memo is None else memo
        for n in self.nodes:
            memo[n] = n if n.is_var else Node(n.op, n.name, n.attrs, [(memo[s], j) for s, j in n.inputs], n.shapes,
                                              n.dtypes, n.where, n.block)
        return Graph([(memo[n], j) for n, j in self.outputs], self.inputs)

    def replace_all_uses(self, old: Entry, new: Entry) -> None:
        """Every reader of entry `old` but `new`'s node (which may wrap it), and the graph's outputs, read `new`."""
        users = self.users()
        readers = users.pop(old, [])
        if new[0] in readers:
            users[old] = [new[0]] * readers.count(new[0])
            readers = [u for u in readers if u is not new[0]]
        for u in readers:
            if u is None:
                self.outputs = [new if e == old else e for e in self.outputs]
            else:
                u.inputs = [new if e == old else e for e in u.inputs]
        self._users.setdefault(new, []).extend(readers)

    def insert(self, node: Node, before: Optional[Node] = None) -> None:
        """Add an op node (before `before`, else last: `sorted()` puts it in order)."""
        users = self.users()
        self.nodes.insert(len(self.nodes) if before is None else self.nodes.index(before), node)
        for s, j in node.inputs:
            users.setdefault((s, j), []).append(node)

    def erase(self, nodes: Iterable[Node]) -> None:
        """Remove nodes that nothing outside them reads any more."""
        gone = set(nodes)
        users = self.users()
        for n in gone:
            for j in range(n.num_outputs):
                if any(u not in gone for u in users.pop((n, j), [])):
                    raise GraphcError(f"IR erase: {n.name} is still read")
            for s, j in n.inputs:
                if (s, j) in users and s not in gone:
                    users[(s, j)] = [u for u in users[(s, j)] if u is not n]
        self.nodes = [n for n in self.nodes if n not in gone]

    def sorted(self) -> 'Graph':
        """The same graph in topological order, without what the outputs do not need."""
        return Graph(self.outputs, self.inputs)

    def text(self) -> str:
        """One line a node: `%i = op[attrs](%a, %b.1)  dtype[shape]   # file:line block`."""
        idx = self.positions()
        lines = []
        for n in self.nodes:
            lines.append(node_line(n, idx))
            sub = getattr(n.op, 'subgraph', None)
            if sub is not None:  # a fused kernel: its body, indented
                lines += ['    | ' + ln.split('   # ')[0] for ln in sub.text().splitlines()]
        outs = ', '.join(f"%{idx[n]}" + (f".{j}" if j else '') for n, j in self.outputs)
        lines.append(f"return {outs}")
        return '\n'.join(lines)

    __str__ = text

    def verify(self) -> bool:
        """Topological order, inputs that exist, and shapes/dtypes that re-infer to what is stored."""
        pos = self.positions()
        for i, n in enumerate(self.nodes):
            for s, j in n.inputs:
                if s not in pos or pos[s] >= i:
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
            if n not in pos:
                raise GraphcError(f"IR verify: output {n.name} is not in the graph")
        return True

    def aux_vars(self) -> set:
        """The variables that are auxiliary states (BatchNorm's moving mean/var), as MXNet marks them."""
        return {n.inputs[i][0] for n in self.nodes if not n.is_var for i in n.op.aux_inputs if i < len(n.inputs)}

    def to_networkx(self):
        """A networkx MultiDiGraph (node index -> node index, edge data: output index)."""
        import networkx as nx
        g = nx.MultiDiGraph()
        idx = self.positions()
        for i, n in enumerate(self.nodes):
            g.add_node(i, name=n.name, op='var' if n.is_var else n.op.name)
            for s, j in n.inputs:
                g.add_edge(idx[s], i, index=j)
        return g


def topo_order(roots: Iterable, inputs_of: Callable = lambda n: [s for s, _ in n.inputs]) -> list:
    """Every node reachable from roots, inputs before users (iterative DFS, so deep graphs do not recurse)."""
    order, seen, stack = [], set(), [(r, False) for r in reversed(roots)]
    while stack:
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if n in seen:
            continue
        seen.add(n)
        stack.append((n, True))
        for s in reversed(inputs_of(n)):
            if s not in seen:
                stack.append((s, False))
    return order


def rebuild(graph: Graph, replace: Callable, inputs: Optional[List[Node]] = None) -> Graph:
    """A new graph with `replace(node, new_inputs)` applied in topological order.

    replace returns None to keep the node (copied when its inputs changed) or a list of entries that
    stand for the node's outputs from now on.
    """
    m = {}
    for n in graph.nodes:
        if n.is_var:
            m[n] = [(n, 0)]
            continue
        ins = [m[s][j] for s, j in n.inputs]
        r = replace(n, ins)
        m[n] = entries(n, ins) if r is None else r
    return Graph([m[n][j] for n, j in graph.outputs], graph.inputs if inputs is None else inputs)


def entries(n: Node, ins: List[Entry]) -> List[Entry]:
    """n's outputs, from a copy of n when its inputs are to be `ins` instead."""
    if any(a[0] is not s or a[1] != j for a, (s, j) in zip(ins, n.inputs)):
        n = Node(n.op, n.name, n.attrs, ins, n.shapes, n.dtypes, n.where, n.block)
    return [(n, i) for i in range(n.num_outputs)]


def new_node(op_name: str, inputs: List[Entry], like: Optional[Node] = None, **attrs) -> Node:
    """A node made by a pass, with its shapes inferred; named, placed and attributed to the user's line as `like`."""
    op = get(op_name)
    n = Node(op, (like.name + '_' if like is not None else '') + op_name.lower().lstrip('_'), op.canon(attrs),
             inputs, where=like.where if like is not None else None, block=like.block if like is not None else '')
    n.shapes, n.dtypes = partial_infer(n)
    return n


def is_random(n: Node) -> bool:
    """Whether n draws random numbers (a sampler, or Dropout while training): passes never merge, fold or hoist it."""
    if n.op.name.startswith(('_random_', '_sample_', '_shuffle')):  # the samplers (graphc/ops/random.py)
        return True
    return n.op.name == 'Dropout' and bool(n.attrs.get('_train') or n.attrs.get('mode') == 'always')


def const_node(value: np.ndarray, name: str) -> Node:
    n = Node(None, name, shapes=[value.shape], dtypes=[value.dtype])
    n.extra['value'] = value
    return n


def infer_node(node: Node) -> Tuple[list, list]:
    """(shapes, dtypes) of node's outputs from its inputs'; errors name the node, its block and line."""
    shapes = [s.shapes[j] for s, j in node.inputs]
    dtypes = [s.dtypes[j] for s, j in node.inputs]
    try:
        return node.op.infer(node.attrs, shapes, dtypes)
    except GraphcShapeError as e:
        raise GraphcShapeError(describe(node) + str(e)) from None


def describe(node: Node) -> str:
    """'in block dense1 (model.py:12): ' for error messages."""
    parts = []
    if node.block:
        parts.append(f"block {node.block}")
    w = where_str(node)
    if w:
        parts.append(f"at {w}" + (f" `{node.where[2]}`" if len(node.where) > 2 and node.where[2] else ''))
    return (', '.join(parts) + ': ') if parts else ''


def partial_infer(node: Node) -> Tuple[list, list]:
    """Shapes when some input dims are unknown: None where the registry cannot say."""
    ins = [s.shapes[j] if s.shapes is not None else None for s, j in node.inputs]
    if all(s is not None and None not in s for s in ins):
        return infer_node(node)
    n = node.num_outputs
    dts = [s.dtypes[j] if s.dtypes is not None else None for s, j in node.inputs]
    dt = next((d for d in dts if d is not None), np.dtype('float32'))
    shapes = None
    if ins and all(s is not None for s in ins):  # known ranks: the dims that do not depend on the unknown ones
        from .symbol.infer import forward_partial
        shapes = forward_partial(node, ins)
    return shapes or [None] * n, [dt] * n
