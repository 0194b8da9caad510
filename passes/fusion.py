"""Fusion by the registry's op kinds: maximal groups of elementwise and broadcast ops with at most one
reduction, and elementwise epilogues attached to a GEMM or convolution. Each group of two or more
ops becomes one fused node, which holds its subgraph and is one kernel for the code generators.

Materialized values (the outputs of a fused node) are exactly: graph outputs, and values used by an
op outside the group. Fusion never creates a cycle: a node joins a group only if none of its other
inputs depends on that group.
"""
from ..graph import Graph, Node
from ..interpreter import interpret
from ..registry import Op
from .manager import register_pass

ANCHORS = ('FullyConnected', 'Convolution', 'Deconvolution', 'dot', 'batch_dot')
NOT_FUSED = ('argmax', 'argmin', 'Cast', 'amp_cast', 'one_hot', 'Dropout')
MAX_GROUP_OPS = 256   # ops in one fused kernel: LLVM's optimizer is superlinear in a function's size
# elementwise ops worth a kernel of their own: their NumPy references are several passes or a scalar libm loop
# (1M float32 at one thread, reference / compiled ms: sigmoid 15.8 / 0.89, exp 11.2 / 0.86, tanh 3.3 / 0.77, erf
# 174 / 2.8, sin 2.2 / 1.0, log 2.0 / 0.86 since its float32 polynomial, 3.1 in double before); not one-ufunc arithmetic
ALONE = {'sigmoid', 'tanh', 'exp', 'expm1', 'log', 'log2', 'log10', 'log1p', 'softrelu', 'softsign', 'log_sigmoid',
         'mish', 'erf', 'sin', 'cos',
         'tan', 'arcsin', 'arccos', 'arctan', 'sinh', 'cosh', 'arcsinh', 'arccosh', 'arctanh', 'cbrt', 'rcbrt',
         '_power_scalar', '_rpower_scalar'}
# () -> the backend the graph will run on, whose can_fuse(node) says which ops its fused kernels cover (so a
# group never falls back to NumPy unnoticed); runtime/backend.py installs its `current` here when it loads
# (passes import no backend)
target = None


class FusedOp(Op):
    """A kernel made of a subgraph; its NumPy reference runs the subgraph with the interpreter (a backend lowers
    it to one kernel: runtime/backend.py)."""

    def __init__(self, name, subgraph):
        self.subgraph = subgraph
        n_out = len(subgraph.outputs)
        kinds = {n.op.kind for n in subgraph.nodes if not n.is_var}
        kind = 'opaque' if 'opaque' in kinds else 'reduce' if 'reduce' in kinds else 'elemwise'
        super().__init__(name, self._run, infer=self._infer, grad=None, kind=kind,
                         inputs=tuple(v.name for v in subgraph.inputs), num_outputs=n_out)
        self.differentiable = False

    def _run(self, attrs, *arrays, kernel=None):
        """The subgraph's outputs, each op run by kernel(op) (default: its ref)."""
        outs = interpret(self.subgraph, dict(zip(self.subgraph.inputs, arrays)), kernel=kernel)
        return tuple(outs) if len(outs) > 1 else outs[0]

    def _infer(self, attrs, shapes, dtypes):
        return [n.shapes[j] for n, j in self.subgraph.outputs], [n.dtypes[j] for n, j in self.subgraph.outputs]

    def ops(self):
        return [n.op.name for n in self.subgraph.nodes if not n.is_var]

    def format_attrs(self, attrs, all=False):
        return {'ops': '>'.join(self.ops())}


def _alone(n):
    """Is op n worth compiling as a group of one (ALONE)?"""
    act = n.attrs.get('act_type')
    return act in ALONE or act in ('elu', 'selu', 'gelu') if n.op.name in ('Activation', 'LeakyReLU') else n.op.name in ALONE


def _fusable(n, can_fuse, refused):
    op = n.op
    if op.n_out(n.attrs) != 1 or op.name in NOT_FUSED or isinstance(op, FusedOp):
        return None
    if op.name == 'where' and n.inputs[0][0].shapes[n.inputs[0][1]] != n.shapes[0]:
        return None  # MXNet's where with a 1-d condition selects rows: not NumPy broadcasting
    kind = 'ew' if op.kind in ('elemwise', 'broadcast') else 'red' if op.kind == 'reduce' else \
        'anchor' if op.name in ANCHORS else None
    if kind is not None and not can_fuse(n):
        refused.add(op.name)
        return None
    return kind


@register_pass('fuse')
def fuse(graph, stats):
    """Group elementwise/broadcast ops (with at most one reduction, and GEMM/conv epilogues) into kernels."""
    ops = [n for n in graph.nodes if not n.is_var]
    group = {n: i for i, n in enumerate(ops)}      # start: every op its own group
    can_fuse, refused = (target().can_fuse if target else lambda n: True), set()
    kind = [_fusable(n, can_fuse, refused) for n in ops]
    if refused:  # (the backend's kernels do not cover them: they run alone)
        stats['not_fusable'] = ','.join(sorted(refused))
    members = {i: [n] for i, n in enumerate(ops)}
    reduces = {i: int(k == 'red') for i, k in enumerate(kind)}
    anchor = {i: k == 'anchor' for i, k in enumerate(kind)}
    succ = {i: set() for i in range(len(ops))}         # the group DAG (plain sets: no networkx import on this path)
    pred = {i: set() for i in range(len(ops))}
    for n in ops:
        for s, _ in n.inputs:
            if not s.is_var and group[s] != group[n]:
                succ[group[s]].add(group[n])
                pred[group[n]].add(group[s])

    def other_path(a, b):
        """Is b reachable from a without the direct edge a -> b?"""
        stack, seen = [c for c in succ[a] if c != b], set()
        while stack:
            c = stack.pop()
            if c == b:
                return True
            if c not in seen:
                seen.add(c)
                stack.extend(succ[c])
        return False
    # contract producer -> consumer edges while that keeps the group DAG acyclic (no other path a -> b): the
    # smallest legal (a, b) first, again and again. A merge never makes an edge of a smaller `a` legal (groups
    # and paths only grow), so the scan resumes at `a` instead of starting over: linear in the merges, not
    # quadratic. Groups stop at MAX_GROUP_OPS ops, so LLVM's time per kernel stays bounded.
    for a in sorted(succ):
        changed = a in succ
        while changed:
            changed = False
            for b in sorted(succ[a]):
                if kind[a] is None or kind[b] is None or reduces[a] + reduces[b] > 1 or anchor[b]:
                    continue
                if len(members[a]) + len(members[b]) > MAX_GROUP_OPS or other_path(a, b):
                    continue
                for c in succ.pop(b):
                    pred[c].discard(b)
                    if c != a:
                        succ[a].add(c)
                        pred[c].add(a)
                for c in pred.pop(b):
                    succ[c].discard(b)
                    if c != a:
                        succ[c].add(a)
                        pred[a].add(c)
                moved = members.pop(b)
                members[a] += moved
                reduces[a] += reduces.pop(b)
                anchor[a] = anchor[a] or anchor.pop(b)
                for n in moved:
                    group[n] = a
                changed = True
                break
    order = graph.positions()
    groups = {g: sorted(ms, key=lambda n: order[n]) for g, ms in members.items()}
    kernels = [(gi, nodes) for gi, nodes in sorted(groups.items(), key=lambda kv: order[kv[1][0]])
               if len(nodes) > 1 or kind[gi] == 'ew' and _alone(nodes[0])]
    stats['kernels_formed'] = len(kernels)
    if not kernels:
        return graph
    users, copy, moves = graph.users(), {}, []
    out = graph.copy(copy)   # edited in place below: the caller's graph stays as it was
    for k, (gi, nodes) in enumerate(kernels):
        ext, outs, inside = [], [], set(nodes)
        for n in nodes:
            for e in n.inputs:
                if e[0] not in inside and not any(e[0] is a and e[1] == b for a, b in ext):
                    ext.append(e)
            for j in range(n.num_outputs):
                if any(u is None or group.get(u) != gi for u in users.get((n, j), [])):
                    outs.append((n, j))
        node = Node(FusedOp(f"fused{k}", _subgraph(nodes, ext, outs)), f"fused{k}", {}, [(copy[s], j) for s, j in ext],
                    [n.shapes[j] for n, j in outs], [n.dtypes[j] for n, j in outs], nodes[-1].where, nodes[-1].block)
        out.insert(node)
        moves += [((copy[n], j), (node, i)) for i, (n, j) in enumerate(outs)]
    for old, new in moves:   # after every insert, so a kernel that reads another one's value is rewired too
        out.replace_all_uses(old, new)
    out = out.sorted()   # (without the groups' nodes: nothing reads them now)
    stats['ops_fused'] = sum(len(nodes) for _, nodes in kernels)
    stats['kernels'] = sum(not n.is_var for n in out.nodes)
    return out


def _subgraph(nodes, ext, outs):
    """The group's nodes cloned over fresh input variables (one per external entry)."""
    vmap = {(s, j): (Node(None, f"in{i}", shapes=[s.shapes[j]], dtypes=[s.dtypes[j]]), 0)
            for i, (s, j) in enumerate(ext)}
    m = {}
    for n in nodes:
        ins = [vmap.get((s, j)) or (m[s], j) for s, j in n.inputs]
        m[n] = Node(n.op, n.name, n.attrs, ins, n.shapes, n.dtypes, n.where, n.block)
    return Graph([(m[n], j) for n, j in outs], [vmap[(s, j)][0] for s, j in ext])
