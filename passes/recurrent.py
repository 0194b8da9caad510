"""Unrolled LSTM, GRU and RNN cells become MXNet's fused RNN op (the `trace` pipeline: before autodiff, so the
backward is the fused `_backward_RNN` too).

`LSTMCell.unroll(T, ...)` -- Flux's "stateful step function unrolled over time" -- or a Python loop over a cell
traces T copies of it: two FullyConnected, SliceChannel, the gate activations and the state update. Run as
traced, every step is a handful of small GEMMs and kernels forward and more backward, with weight gradients
summed over the steps. When the steps chain (step t+1 reads step t's h (and c), all share the weights, and
nothing else reads a step's gates or its intermediate c), they are one `RNN(mode=...)` over the stacked inputs:
the input projection becomes one GEMM over all steps, the recurrence one compiled loop (runtime/rnn.py), the
weight gradients one GEMM each. Exported files keep the traced graph (the cells, as MXNet writes them).

`rnn_no_reserve` (the inference pipeline): an RNN op whose reserve nothing reads keeps only each step's h, not
the gate activations and cell states that only `_backward_RNN` reads.
"""
import numpy as np

from ..graph import Node, new_node, rebuild, topo_order
from . import fusion
from .manager import register_pass

FLOATS = (np.float32, np.float64)   # the fused op's dtypes here
ADDS, MULS = ('elemwise_add', 'broadcast_add', '_plus', '_add'), ('elemwise_mul', 'broadcast_mul', '_mul')


def _act(n):
    """'sigmoid' / 'tanh' / ... for an activation node, else None."""
    if n is None or n.is_var:
        return None
    if n.op.name == 'Activation':
        return n.attrs.get('act_type')
    return n.op.name if n.op.name in ('sigmoid', 'tanh') else None


def _only(users, node, j=0):
    """The one node reading output j of `node` (None when zero, several, or a graph output reads it)."""
    u = users.get((node, j), [])
    return u[0] if len(u) == 1 else None


def _other(n, entry):
    """n's input that is not `entry` (n a binary op that reads entry once)."""
    a, b = n.inputs
    return b if a == entry else a if b == entry else None


class Step:
    """One traced step of a cell: reads x, the weights w = (Wi, bi, Wh, bh), h_in (and c_in); makes h (and c).
    `inner`: the nodes only the step reads; `c_own`/`c_reader`: the step's nodes that read its c / its c_in."""

    def __init__(self, mode, x, w, h_in, h, inner, c_in=None, c=None, c_own=None, c_reader=None):
        self.mode, self.x, self.w, self.h_in, self.h, self.inner = mode, x, w, h_in, h, inner
        self.c_in, self.c, self.c_own, self.c_reader = c_in, c, c_own, c_reader


def _biased_fc(n):
    """FullyConnected(x, W, b)."""
    return not n.is_var and n.op.name == 'FullyConnected' and len(n.inputs) == 3 and not n.attrs.get('no_bias')


def _fc_pair(add, users, G):
    """(i2h, h2h) when `add` = elemwise_add(FC(x, Wi, bi), FC(h, Wh, bh)) of (N, G*H) with (N, H) h, each FC
    read only by add; else None."""
    fcs = [s for s, _ in add.inputs]
    if len(fcs) != 2 or np.dtype(add.dtypes[0]) not in FLOATS or \
            any(not _biased_fc(s) or _only(users, s) is not add for s in fcs):
        return None
    return fcs if _shapes_ok(fcs, add.shapes[0], G) else None


def _shapes_ok(fcs, out, G):
    """x (N, I) and h (N, H) into FCs of (N, G*H)."""
    x, h = (f.inputs[0] for f in fcs)
    xs, hs = x[0].shapes[x[1]] if x[0].shapes else None, h[0].shapes[h[1]] if h[0].shapes else None
    if xs is None or hs is None or out is None or len(xs) != 2 or len(out) != 2 or \
            any(d is None for d in (*xs, *hs, *out)) or out[1] % G:   # (dims unknown while tracing: not fused)
        return False
    return tuple(hs) == (xs[0], out[1] // G) and out[0] == xs[0]


def _weights(i2h, h2h):
    return (i2h.inputs[1], i2h.inputs[2], h2h.inputs[1], h2h.inputs[2])


def _slices(users, node, k):
    """The SliceChannel into k along axis 1 (no squeeze) that alone reads `node`, or None."""
    sl = _only(users, node)
    ok = sl is not None and sl.op.name == 'SliceChannel' and sl.attrs.get('num_outputs') == k and \
        sl.attrs.get('axis', 1) in (1, -1) and not sl.attrs.get('squeeze_axis')
    return sl if ok else None


def _match_rnn(add, users):
    """h = act(FC(x) + FC(h_in)) with act tanh or relu (RNNCell)."""
    pair = _fc_pair(add, users, 1)
    h = _only(users, add) if pair else None
    act = None if h is None or h.is_var else h.attrs.get('act_type') if h.op.name == 'Activation' else h.op.name
    if act not in ('tanh', 'relu'):
        return None
    i2h, h2h = pair
    return Step('rnn_' + act, i2h.inputs[0], _weights(i2h, h2h), h2h.inputs[0], h, [i2h, h2h, add])


def _match_lstm(add, users):
    """The LSTMCell step whose gate sum is `add`: SliceChannel 4 -> sigmoid i, f, o, tanh g;
    c = f * c_in + i * g; h = o * tanh(c)."""
    pair = _fc_pair(add, users, 4)
    sl = _slices(users, add, 4) if pair else None
    if sl is None:
        return None
    acts = [_only(users, sl, k) for k in range(4)]
    if [_act(a) for a in acts] != ['sigmoid', 'sigmoid', 'tanh', 'sigmoid']:
        return None
    i, f, g, o = acts
    ig, f_mul = _only(users, i), _only(users, f)
    if ig is None or f_mul is None or _only(users, g) is not ig or ig.op.name not in MULS or \
            f_mul.op.name not in MULS or _other(ig, (i, 0)) != (g, 0):
        return None
    c_in, c = _other(f_mul, (f, 0)), _only(users, f_mul)
    if c_in is None or c is None or c.op.name not in ADDS or _only(users, ig) is not c or \
            _other(c, (f_mul, 0)) != (ig, 0) or c_in[0].shapes is None or \
            tuple(c_in[0].shapes[c_in[1]] or ()) != tuple(c.shapes[0]):
        return None
    h = _only(users, o)
    tanh_c = next((u for u in users.get((c, 0), []) if u is not None and _act(u) == 'tanh' and
                   _only(users, u) is h), None)
    if h is None or tanh_c is None or h.op.name not in MULS or _other(h, (o, 0)) != (tanh_c, 0):
        return None
    i2h, h2h = pair
    return Step('lstm', i2h.inputs[0], _weights(i2h, h2h), h2h.inputs[0], h, [i2h, h2h, add, sl, *acts, ig, f_mul,
                tanh_c], c_in=c_in, c=c, c_own=tanh_c, c_reader=f_mul)


def _match_gru(add_r, users):
    """The GRUCell step whose reset-gate sum is `add_r` = i2h[0] + h2h[0] (each FC sliced in 3):
    r, z = sigmoid(i2h[k] + h2h[k]), n = tanh(i2h[2] + r * h2h[2]), h = (1 - z) * n + z * h_in."""
    sa, sb = (s for s, _ in add_r.inputs) if len(add_r.inputs) == 2 else (None, None)
    if sa is None or add_r.inputs != [(sa, 0), (sb, 0)] or sa.is_var or sb.is_var or \
            sa.op.name != 'SliceChannel' or sb.op.name != 'SliceChannel':
        return None
    i2h, h2h = sa.inputs[0][0], sb.inputs[0][0]
    if i2h.is_var or h2h.is_var or _slices(users, i2h, 3) is not sa or _slices(users, h2h, 3) is not sb:
        return None
    if not (_biased_fc(i2h) and _biased_fc(h2h)) or \
            not _shapes_ok([i2h, h2h], i2h.shapes[0], 3) or i2h.shapes[0] != h2h.shapes[0]:
        return None
    r, add_z = _only(users, add_r), _only(users, sa, 1)
    z = _only(users, add_z) if add_z is not None else None
    if _act(r) != 'sigmoid' or _act(z) != 'sigmoid' or add_z.op.name not in ADDS or \
            add_z.inputs != [(sa, 1), (sb, 1)] or _only(users, sb, 1) is not add_z:
        return None
    r_hn, add_n = _only(users, r), _only(users, sa, 2)
    n = _only(users, add_n) if add_n is not None else None
    if r_hn is None or add_n is None or r_hn.op.name not in MULS or _other(r_hn, (r, 0)) != (sb, 2) or \
            _only(users, sb, 2) is not r_hn or add_n.op.name not in ADDS or _only(users, r_hn) is not add_n or \
            _other(add_n, (sa, 2)) != (r_hn, 0) or _act(n) != 'tanh':
        return None
    h_in = h2h.inputs[0]
    zs = users.get((z, 0), [])
    one_minus = next((u for u in zs if u is not None and u.op.name == '_rminus_scalar' and
                      u.attrs.get('scalar') == 1.0), None)
    z_h = next((u for u in zs if u is not None and u.op.name in MULS and _other(u, (z, 0)) == h_in), None)
    if len(zs) != 2 or one_minus is None or z_h is None:
        return None
    n_mul, h = _only(users, one_minus), _only(users, z_h)
    if n_mul is None or n_mul.op.name not in MULS or _other(n_mul, (one_minus, 0)) != (n, 0) or \
            _only(users, n) is not n_mul or h is None or h.op.name not in ADDS or _only(users, n_mul) is not h or \
            _other(h, (n_mul, 0)) != (z_h, 0):
        return None
    return Step('gru', i2h.inputs[0], _weights(i2h, h2h), h_in, h,
                [i2h, h2h, sa, sb, add_r, r, add_z, z, r_hn, add_n, n, one_minus, n_mul, z_h])


def _chains(graph, users):
    """Chains of >= 2 Steps of one mode, each step reading the previous one's h (and c) with the same weights,
    where the previous c is read by nothing else."""
    steps = [s for n in graph.nodes if not n.is_var and n.op.name in ADDS
             for s in [_match_lstm(n, users) or _match_gru(n, users) or _match_rnn(n, users)] if s]
    by_h = {}
    for s in steps:
        by_h.setdefault(s.h_in, []).append(s)
    nxt = {}
    for s in steps:
        t = by_h.get((s.h, 0), [])
        t = t[0] if len(t) == 1 else None
        if t is None or t.mode != s.mode or t.w != s.w:
            continue
        if s.c is None or t.c_in == (s.c, 0) and set(users[(s.c, 0)]) == {s.c_own, t.c_reader}:
            nxt[s] = t
    followers = {t for t in nxt.values()}
    chains = []
    for s in steps:
        if s in followers:
            continue
        chain = [s]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        if len(chain) >= 2:
            chains.append(chain)
    return chains


def _nodes(s):
    return s.inner + [s.h] + ([s.c] if s.c is not None else [])


def _outside(chain):
    """The entries a chain reads from outside: each step's x, the weights, the first state(s)."""
    first = chain[0]
    return [s.x for s in chain] + list(first.w) + [first.h_in] + ([first.c_in] if first.c_in is not None else [])


def _feeds_back(chain, before):
    """True when an input of the chain (an x, a weight, the first state) depends on the chain itself (an
    output fed back as the next input, as in sampling, or through another chain that reads this one): those
    steps cannot run as one op. So the chains kept can run one after another, each as a unit. `before`: every
    node the chain's inputs depend on."""
    inside = {n for s in chain for n in _nodes(s)}
    return any(n in inside for n in before)


def _sequence(xs):
    """The (T, N, I) input of the fused op from the steps' (N, I) inputs: the array they were sliced from
    (SliceChannel over axis 0 or 1, as unroll makes for TNC and NTC), else a stack."""
    s = xs[0][0]
    a = s.attrs.get('axis', 1) if not s.is_var and s.op.name == 'SliceChannel' else None
    if a is not None and s.attrs.get('squeeze_axis') and s.attrs['num_outputs'] == len(xs) and \
            xs == [(s, t) for t in range(len(xs))] and len(s.inputs[0][0].shapes[s.inputs[0][1]]) == 3:
        if a in (0, -3):
            return s.inputs[0]
        if a in (1, -2):
            return (new_node('SwapAxis', [s.inputs[0]], like=s, dim1=0, dim2=1), 0)
    return (new_node('stack', xs, like=xs[0][0] if not xs[0][0].is_var else None, axis=0, num_args=len(xs)), 0)


def _fused(chain, m):
    """New nodes running `chain` as one RNN: ({(old node, 0): new entry} for each step's h and the last
    step's c, the steps' new h entries in order, the RNN node). `m` maps an old entry to its new one."""
    first, last = chain[0], chain[-1]
    T, (N, H) = len(chain), last.h.shapes[0]
    like = last.h
    base = (like.block or like.name) + '_fused'   # names that say where they came from: the cell's block

    def node(name, op, inputs, **attrs):
        n = new_node(op, inputs, like=like, **attrs)
        n.name = f"{base}_{name}"
        return n
    x = _sequence([m(s.x) for s in chain])
    wi, bi, wh, bh = [(node(f'{k}_flat', 'Reshape', [m(e)], shape=(-1,)), 0)
                      for k, e in zip(('i2h_weight', 'i2h_bias', 'h2h_weight', 'h2h_bias'), first.w)]
    params = (node('parameters', '_rnn_param_concat', [wi, wh, bi, bh], dim=0, num_args=4), 0)
    states = [(node(f'{k}0', 'expand_dims', [m(e)], axis=0), 0)
              for k, e in (('h', first.h_in), ('c', first.c_in)) if e]
    rnn = node('rnn', 'RNN', [x, params, *states], state_size=H, num_layers=1, mode=first.mode, state_outputs=True,
               _train=False)
    hs = node('steps', 'SliceChannel', [(rnn, 0)], num_outputs=T, axis=0, squeeze_axis=True)
    out = {(s.h, 0): (hs, t) for t, s in enumerate(chain[:-1])}
    for k, s in ((1, last.h), (2, last.c)):   # the final state: (1, N, H) -> (N, H)
        if s is not None:
            out[(s, 0)] = (node('h' if k == 1 else 'c', 'Reshape', [(rnn, k)], shape=(N, H)), 0)
    return out, tuple(out[(s.h, 0)] for s in chain), rnn


@register_pass('fuse_rnn')
def fuse_rnn(graph, stats):
    """Unrolled LSTM, GRU and RNN cells (T >= 2 chained steps sharing weights) become one fused RNN op."""
    found = [(c, topo_order([e[0] for e in _outside(c)])) for c in _chains(graph, users=graph.users())]
    found = [(c, before) for c, before in found if not _feeds_back(c, before)]
    stats['chains'], stats['steps'] = len(found), sum(len(c) for c, _ in found)
    if not found:
        return graph
    unit = {n: k for k, (c, _) in enumerate(found) for s in c for n in _nodes(s)}
    after = {k: sorted({unit[n] for n in before if n in unit}) for k, (_, before) in enumerate(found)}
    copy, moved, seqs = {}, {}, {}   # seqs: a chain's new h entries, in order -> its RNN node
    out = graph.copy(copy)   # edited in place, a chain after the chains its inputs depend on

    def m(e):
        e = (copy[e[0]], e[1])
        return moved.get(e, e)
    for k in topo_order(range(len(found)), inputs_of=after.get):
        chain = found[k][0]
        new, hs, rnn = _fused(chain, m)
        seqs[hs] = rnn
        for (n, j), e in new.items():
            moved[(copy[n], j)] = e
            out.replace_all_uses((copy[n], j), e)
    for n in out.nodes:
        stacked = _stack_of_steps(n, seqs)
        if stacked is not None:
            out.replace_all_uses((n, 0), stacked)
    out.erase(copy[n] for c, _ in found for s in c for n in _nodes(s))
    return out.sorted()


def _stack_of_steps(n, seqs):
    """stack(axis=a) of a fused chain's h entries, in order: the RNN's output itself (a = 0) or with the first
    two axes swapped (a = 1, unroll's NTC); else None."""
    rnn = seqs.get(tuple(n.inputs)) if not n.is_var and n.op.name == 'stack' else None
    a = n.attrs.get('axis', 0) if rnn is not None else None
    if a == 0:
        return (rnn, 0)
    if a == 1:
        return (new_node('SwapAxis', [(rnn, 0)], like=n, dim1=0, dim2=1), 0)
    return None


@register_pass('rnn_no_reserve')
def rnn_no_reserve(graph, stats):
    """RNN ops whose reserve nothing reads (an inference graph: no backward) do not write it."""
    if fusion.target is not None and fusion.target().name == 'cuda':   # (runtime/cuda.py's RNN fills one)
        return graph
    users = graph.users()

    def mark(n, ins):
        r = (n, n.num_outputs - 1)
        if n.op.name != 'RNN' or n.attrs.get('_no_reserve') or users.get(r) or n.attrs['p'] > 0 and n.attrs.get('_train'):
            return None
        c = Node(n.op, n.name, dict(n.attrs, _no_reserve=True), ins, list(n.shapes[:-1]) + [(0,)], n.dtypes, n.where,
                 n.block)
        c.extra = n.extra
        stats['rnns'] = stats.get('rnns', 0) + 1
        return [(c, j) for j in range(c.num_outputs)]
    return rebuild(graph, mark)
