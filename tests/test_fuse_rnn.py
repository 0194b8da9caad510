"""passes/recurrent.py: hybridized `cell.unroll` graphs run as one fused RNN op per chain of steps, with the
values and gradients of the cells run eagerly (float32: the fused op sums the two projections in another
order, so values agree to rtol 1e-5 and gradients, accumulated over the steps, to rtol 1e-4)."""
import json

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import HybridBlock, SymbolBlock, rnn

CELLS = {'lstm': lambda: rnn.LSTMCell(5, input_size=3), 'gru': lambda: rnn.GRUCell(5, input_size=3),
         'rnn_tanh': lambda: rnn.RNNCell(5, activation='tanh', input_size=3),
         'rnn_relu': lambda: rnn.RNNCell(5, activation='relu', input_size=3)}


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


class Unroller(HybridBlock):
    """cell.unroll over x with explicit begin states; returns outputs then the final states."""

    def __init__(self, cell, length, layout='NTC', merge=True, **kwargs):
        super().__init__(**kwargs)
        self._length, self._layout, self._merge = length, layout, merge
        with self.name_scope():
            self.cell = cell

    def hybrid_forward(self, F, x, *states):
        outs, st = self.cell.unroll(self._length, x, begin_state=list(states) or None, layout=self._layout,
                                    merge_outputs=self._merge)
        return (list(outs) if isinstance(outs, list) else [outs]) + list(st)


def init_nonzero(block):
    block.initialize()
    for i, p in enumerate(block.collect_params().values()):   # biases too, so they are checked
        p.set_data(nd.array(rand(*p.shape, seed=100 + i) * 0.5))


def ops_of(net):
    return [n.op.name for n in net.cached_graph().graph.nodes if not n.is_var]


def run(net, x, states, proj):
    """Outputs, then d(sum of outputs * proj)/d(x, states, parameters)."""
    params = list(net.collect_params().values())
    for a in [x] + states:
        a.attach_grad()
    with autograd.record():
        outs = net(x, *states)
        loss = sum((o * nd.array(p)).sum() for o, p in zip(outs, proj))
    loss.backward()
    return [o.asnumpy() for o in outs], [a.grad.asnumpy() for a in [x] + states] + \
        [p.grad().asnumpy() for p in params]


def eager_vs_hybridized(make, T, layout, merge, n_states, hidden=5, channels=3):
    net = make()
    init_nonzero(net)
    N, C = 2, channels
    x = nd.array(rand(N, T, C, seed=1) if layout == 'NTC' else rand(T, N, C, seed=1))
    states = [nd.array(rand(N, hidden, seed=2 + k)) for k in range(n_states)]
    ref_out = net(x, *states)
    proj = [rand(*o.shape, seed=10 + k) for k, o in enumerate(ref_out)]
    ref = run(net, x, states, proj)
    net.hybridize()
    got = run(net, x, states, proj)
    for a, b in zip(ref[0], got[0]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for a, b in zip(ref[1], got[1]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    return net


@pytest.mark.parametrize('kind', sorted(CELLS))
@pytest.mark.parametrize('layout,merge', [('NTC', True), ('TNC', False)])
def test_unrolled_cells_run_as_one_fused_op(kind, layout, merge):
    T = 4
    net = eager_vs_hybridized(lambda: Unroller(CELLS[kind](), T, layout, merge), T, layout, merge,
                              2 if kind == 'lstm' else 1)
    ops = ops_of(net)
    assert ops.count('RNN') == 1 and 'FullyConnected' not in ops and 'SliceChannel' not in ops or not merge, ops
    rnn_node = next(n for n in net.cached_graph().graph.nodes if not n.is_var and n.op.name == 'RNN')
    assert rnn_node.attrs['mode'] == kind and rnn_node.shapes[0] == (T, 2, 5)
    row = next(r for r in net.cached_graph().trace_report.rows if r[0] == 'fuse_rnn')
    assert row[4] == {'chains': 1, 'steps': T}
    if merge:   # NTC in and out: the stacked steps are the op's output with the first two axes swapped
        assert ops.count('SwapAxis') == 2 and 'stack' not in ops, ops


def test_stacked_cells_fuse_layer_by_layer():
    def make():
        seq = rnn.SequentialRNNCell()
        with seq.name_scope():
            seq.add(rnn.LSTMCell(5, input_size=3))
            seq.add(rnn.GRUCell(5, input_size=5))
        return Unroller(seq, 3)
    net = eager_vs_hybridized(make, 3, 'NTC', True, 3)
    modes = [n.attrs['mode'] for n in net.cached_graph().graph.nodes if not n.is_var and n.op.name == 'RNN']
    assert modes == ['lstm', 'gru']


class FeedBack(HybridBlock):
    """Sampling-style: each step's input is the previous step's output (a chain the op cannot run)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.cell = rnn.GRUCell(3, input_size=3)

    def hybrid_forward(self, F, x, h):
        x, outs = F.squeeze(F.slice_axis(x, axis=1, begin=0, end=1), axis=1), []
        for _ in range(3):
            x, (h,) = self.cell(x, [h])
            outs.append(x)
        return [F.stack(*outs, axis=1), h]


class AllStates(HybridBlock):
    """Returns every step's c: the chain is cut where a c is read outside it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.cell = rnn.LSTMCell(5, input_size=3)

    def hybrid_forward(self, F, x, h, c):
        hs, cs = [], []
        for t in range(4):
            out, (h, c) = self.cell(F.squeeze(F.slice_axis(x, axis=1, begin=t, end=t + 1), axis=1), [h, c])
            hs.append(out)
            cs.append(c)
        return [F.stack(*hs, axis=1), cs[1], h, c]


class Masked(HybridBlock):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.cell = rnn.LSTMCell(5, input_size=3)

    def hybrid_forward(self, F, x, h, c):
        outs, st = self.cell.unroll(3, x, begin_state=[h, c], valid_length=F.ones_like(h).sum(axis=1) - 3,
                                    merge_outputs=True)
        return [outs] + list(st)


class AlmostGRU(HybridBlock):
    """GRUCell's math over 3 steps, but each step's i2h[2] is also read outside the cell: the matcher must
    decline (not crash) and the block compute as eagerly."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.i2h_weight = self.params.get('i2h_weight', shape=(15, 3))
        self.h2h_weight = self.params.get('h2h_weight', shape=(15, 5))
        self.i2h_bias = self.params.get('i2h_bias', shape=(15,))
        self.h2h_bias = self.params.get('h2h_bias', shape=(15,))

    def hybrid_forward(self, F, x, h, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        leak = []
        for t in range(3):
            xt = F.squeeze(F.slice_axis(x, axis=1, begin=t, end=t + 1), axis=1)
            i2h = F.SliceChannel(F.FullyConnected(xt, i2h_weight, i2h_bias, num_hidden=15), num_outputs=3)
            h2h = F.SliceChannel(F.FullyConnected(h, h2h_weight, h2h_bias, num_hidden=15), num_outputs=3)
            r, z = F.sigmoid(i2h[0] + h2h[0]), F.sigmoid(i2h[1] + h2h[1])
            n = F.tanh(i2h[2] + r * h2h[2])
            h = (1 - z) * n + z * h
            leak.append(i2h[2])
        return [h, F.stack(*leak, axis=1)]


class Coupled(HybridBlock):
    """Two LSTM cells, each step fed the other's previous output: neither sequence can run before the other."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.a, self.b = rnn.LSTMCell(5, input_size=5), rnn.LSTMCell(5, input_size=5)

    def hybrid_forward(self, F, x, h, c):
        sa, sb = [h, c], [h * 0.5, c]
        xa = xb = F.squeeze(F.slice_axis(x, axis=1, begin=0, end=1), axis=1)
        outs = []
        for _ in range(3):
            ya, sa = self.a(xb, sa)
            yb, sb = self.b(xa, sb)
            xa, xb = ya, yb
            outs += [ya, yb]
        return [F.stack(*outs, axis=1)] + sa + sb


@pytest.mark.parametrize('make,n_states,T,steps', [
    (FeedBack, 1, 3, 0),          # x_{t+1} = h_t: not fused
    (AllStates, 2, 4, 2 + 2),     # c_1 read outside: steps 0-1 and 2-3 fuse apart
    (Masked, 2, 3, 0),            # valid_length masks sit between the steps
    (AlmostGRU, 1, 3, 0),         # a gate's input read outside the step
    (Coupled, 2, 3, 0),           # two chains that feed each other
    (lambda: Unroller(rnn.LSTMCell(5, input_size=3, activation='relu'), 3), 2, 3, 0),   # not MXNet's LSTM
    (lambda: Unroller(rnn.LSTMCell(5, input_size=3), 1), 2, 1, 0)])                    # one step
def test_what_does_not_fuse_still_computes_the_same(make, n_states, T, steps):
    net = eager_vs_hybridized(make, T, 'NTC', True, n_states, hidden=3 if make is FeedBack else 5,
                              channels=5 if make is Coupled else 3)
    row = next(r for r in net.cached_graph().trace_report.rows if r[0] == 'fuse_rnn')
    assert row[4]['steps'] == steps
    assert ops_of(net).count('RNN') == (2 if steps else 0)


def test_fuse_rnn_switches_off_by_name(monkeypatch):
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'fuse_rnn')
    net = eager_vs_hybridized(lambda: Unroller(CELLS['lstm'](), 3), 3, 'NTC', True, 2)
    assert 'RNN' not in ops_of(net) and 'FullyConnected' in ops_of(net)
    assert 'fuse_rnn' in net.cached_graph().trace_report.table() and 'disabled' in \
        net.cached_graph().trace_report.table()


def test_export_writes_the_cells_as_traced(tmp_path):
    net = Unroller(CELLS['lstm'](), 3)
    init_nonzero(net)
    x, h, c = nd.array(rand(2, 3, 3)), nd.array(rand(2, 5, seed=1)), nd.array(rand(2, 5, seed=2))
    net.hybridize()
    want = [o.asnumpy() for o in net(x, h, c)]
    assert 'RNN' in ops_of(net)
    sym_file, params_file = net.export(str(tmp_path / 'cells'))
    ops = [n['op'] for n in json.load(open(sym_file))['nodes']]
    assert 'RNN' not in ops and ops.count('FullyConnected') == 6
    back = SymbolBlock.imports(sym_file, ['data0', 'data1', 'data2'], params_file)
    for a, b in zip(want, back(x, h, c)):
        np.testing.assert_allclose(b.asnumpy(), a, rtol=1e-5, atol=1e-6)
    back.hybridize()   # a file of unrolled cells (as MXNet writes them too) runs fused once hybridized
    for a, b in zip(want, back(x, h, c)):
        np.testing.assert_allclose(b.asnumpy(), a, rtol=1e-5, atol=1e-6)
    assert ops_of(back).count('RNN') == 1


def test_explain_shows_the_fusion():
    net = Unroller(CELLS['gru'](), 3)
    init_nonzero(net)
    text = gc.explain(net, nd.ones((2, 3, 3)), nd.ones((2, 5)), training=True, print_graph=False, file=open('/dev/null', 'w'))
    assert 'fuse_rnn' in text and 'chains=1, steps=3' in text and 'RNN' in text


class NearLSTM(HybridBlock):
    """An LSTM written out step by step with random deviations (per seed): operand orders swapped, a gate's
    activation changed, an inner value also returned. Whatever the matcher decides, results must not change."""

    def __init__(self, seed, **kwargs):
        super().__init__(**kwargs)
        self.rng = np.random.default_rng(seed)
        self.i2h_weight = self.params.get('i2h_weight', shape=(20, 3))
        self.h2h_weight = self.params.get('h2h_weight', shape=(20, 5))
        self.i2h_bias = self.params.get('i2h_bias', shape=(20,))
        self.h2h_bias = self.params.get('h2h_bias', shape=(20,))
        r = self.rng
        self.plan = [dict(swap=r.random(4) < [0.1, 0.4, 0.4, 0.4],
                          acts=['sigmoid', 'sigmoid', 'tanh', 'sigmoid'] if r.random() < 0.8
                          else list(r.choice(['sigmoid', 'tanh', 'relu'], 4)), leak=int(r.integers(-18, 6)))
                     for _ in range(4)]

    def hybrid_forward(self, F, x, h, c, i2h_weight, h2h_weight, i2h_bias, h2h_bias):
        def mul(a, b, s):
            return b * a if s else a * b
        extra = []
        for t, p in enumerate(self.plan):
            xt = F.squeeze(F.slice_axis(x, axis=1, begin=t, end=t + 1), axis=1)
            a = F.FullyConnected(xt, i2h_weight, i2h_bias, num_hidden=20)
            b = F.FullyConnected(h, h2h_weight, h2h_bias, num_hidden=20)
            g = F.SliceChannel(b + a if p['swap'][0] else a + b, num_outputs=4)
            i, f, gg, o = (F.Activation(g[k], act_type=p['acts'][k]) for k in range(4))
            c = mul(f, c, p['swap'][1]) + mul(i, gg, p['swap'][2])
            h = mul(o, F.tanh(c), p['swap'][3])
            inner = [a, b, i, f, gg, o]
            if 0 <= p['leak'] < len(inner):
                extra.append(inner[p['leak']])
        return [h, c] + extra


@pytest.mark.parametrize('seed', range(16))
def test_near_misses_never_change_results(seed):
    net = eager_vs_hybridized(lambda: NearLSTM(seed), 4, 'NTC', True, 2)
    fused = next(r for r in net.cached_graph().trace_report.rows if r[0] == 'fuse_rnn')[4]['steps']
    FUSED_STEPS[seed] = fused


FUSED_STEPS = {}


def test_near_misses_cover_both_outcomes():
    """The seeds above include graphs that fuse and graphs that do not (so both paths were compared)."""
    for seed in range(16):
        if seed not in FUSED_STEPS:
            test_near_misses_never_change_results(seed)
    assert 0 < sum(v > 0 for v in FUSED_STEPS.values()) < 16, FUSED_STEPS
