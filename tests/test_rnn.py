"""gluon.rnn: cells against NumPy references and finite differences, unroll eager == hybridized,
the multi-layer/bidirectional layers against unrolled cells, and a small training run."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import HybridBlock, Trainer, nn, rnn
from graphc.gluon.loss import SoftmaxCrossEntropyLoss


def rand(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def weights(cell):
    return [cell.params.get(k).data().asnumpy() for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')]


# ---------------------------------------------------------------- NumPy references (MXNet's formulas)
def np_rnn(x, h, wi, wh, bi, bh, act=np.tanh):
    return act(x @ wi.T + bi + h @ wh.T + bh)


def np_lstm(x, h, c, wi, wh, bi, bh):
    g = x @ wi.T + bi + h @ wh.T + bh
    i, f, gg, o = np.split(g, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * np.tanh(gg)
    return sigmoid(o) * np.tanh(c2), c2


def np_gru(x, h, wi, wh, bi, bh):
    ir, iz, in_ = np.split(x @ wi.T + bi, 3, axis=1)
    hr, hz, hn = np.split(h @ wh.T + bh, 3, axis=1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


def init_nonzero(block):
    block.initialize(gc.initializer.Uniform(0.5))
    for i, p in enumerate(block.collect_params().values()):  # biases too, so the reference checks them
        p.set_data(nd.array(rand(*p.shape, seed=100 + i, dtype=p.data().dtype) * 0.5))


# ---------------------------------------------------------------- one step
@pytest.mark.parametrize('act', ['tanh', 'relu'])
def test_rnn_cell_step(act):
    cell = rnn.RNNCell(5, activation=act, input_size=3)
    init_nonzero(cell)
    x, h = rand(2, 3, seed=1), rand(2, 5, seed=2)
    out, st = cell(nd.array(x), [nd.array(h)])
    ref = np_rnn(x, h, *weights(cell), act=np.tanh if act == 'tanh' else lambda v: np.maximum(v, 0))
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st[0].asnumpy(), ref, rtol=1e-5, atol=1e-6)
    assert sorted(cell.collect_params()) == sorted(cell.prefix + k for k in
                                                   ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'))


def test_lstm_cell_step_and_names():
    cell = rnn.LSTMCell(4)
    assert cell.prefix.startswith('lstm')
    cell.initialize()
    x, h, c = rand(3, 6, seed=1), rand(3, 4, seed=2), rand(3, 4, seed=3)
    cell(nd.array(x), [nd.array(h), nd.array(c)])  # deferred input size 6
    assert cell.i2h_weight.shape == (16, 6) and cell.h2h_weight.shape == (16, 4)
    assert cell.i2h_bias.shape == (16,) and cell.h2h_bias.shape == (16,)
    for i, p in enumerate(cell.collect_params().values()):
        p.set_data(nd.array(rand(*p.shape, seed=10 + i)))
    out, (h2, c2) = cell(nd.array(x), [nd.array(h), nd.array(c)])
    rh, rc = np_lstm(x, h, c, *weights(cell))
    np.testing.assert_allclose(out.asnumpy(), rh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h2.asnumpy(), rh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c2.asnumpy(), rc, rtol=1e-5, atol=1e-6)
    assert [s['shape'] for s in cell.state_info(3)] == [(3, 4), (3, 4)]
    assert [s.shape for s in cell.begin_state(3)] == [(3, 4), (3, 4)]


def test_gru_cell_step():
    cell = rnn.GRUCell(4, input_size=3)
    init_nonzero(cell)
    assert cell.i2h_weight.shape == (12, 3)
    x, h = rand(2, 3, seed=1), rand(2, 4, seed=2)
    out, st = cell(nd.array(x), [nd.array(h)])
    ref = np_gru(x, h, *weights(cell))
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st[0].asnumpy(), ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- gradients (float64 central differences)
@pytest.mark.parametrize('kind', ['lstm', 'gru'])
def test_cell_gradients(kind):
    cell = rnn.LSTMCell(3, input_size=2) if kind == 'lstm' else rnn.GRUCell(3, input_size=2)
    cell.initialize()
    cell.cast('float64')
    for i, p in enumerate(cell.collect_params().values()):
        p.set_data(nd.array(rand(*p.shape, seed=20 + i, dtype=np.float64)))
    nst = 2 if kind == 'lstm' else 1
    x = nd.array(rand(2, 2, seed=1, dtype=np.float64))
    states = [nd.array(rand(2, 3, seed=2 + k, dtype=np.float64)) for k in range(nst)]
    proj = [rand(2, 3, seed=30 + k, dtype=np.float64) for k in range(nst)]

    def loss_value():
        _, st = cell(x, states)
        return sum(float((s.asnumpy() * pj).sum()) for s, pj in zip(st, proj))

    x.attach_grad()
    for s in states:
        s.attach_grad()
    with autograd.record():
        _, st = cell(x, states)
        loss = sum((s * nd.array(pj)).sum() for s, pj in zip(st, proj))
    loss.backward()
    targets = [('x', x.asnumpy(), x.grad.asnumpy(), x)] + \
        [(f"state{k}", s.asnumpy(), s.grad.asnumpy(), s) for k, s in enumerate(states)] + \
        [(n, p.data().asnumpy(), p.grad().asnumpy(), p.data()) for n, p in cell.collect_params().items()]
    eps = 1e-6
    for name, _, grad, arr in targets:
        data = arr._data
        num = np.zeros_like(data)
        for idx in np.ndindex(*data.shape):
            old = data[idx]
            data[idx] = old + eps
            up = loss_value()
            data[idx] = old - eps
            down = loss_value()
            data[idx] = old
            num[idx] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7, err_msg=name)


# ---------------------------------------------------------------- unroll: eager == hybridized
class Unroller(HybridBlock):
    def __init__(self, cell, length, layout, merge, **kwargs):
        super().__init__(**kwargs)
        self._length, self._layout, self._merge = length, layout, merge
        self.cell = cell

    def hybrid_forward(self, F, x):
        outs, states = self.cell.unroll(self._length, x, layout=self._layout, merge_outputs=self._merge)
        return (list(outs) if isinstance(outs, list) else [outs]) + list(states)


def make_cell(kind):
    if kind == 'rnn':
        return rnn.RNNCell(5)
    if kind == 'lstm':
        return rnn.LSTMCell(5)
    if kind == 'gru':
        return rnn.GRUCell(5)
    seq = rnn.SequentialRNNCell()
    with seq.name_scope():
        seq.add(rnn.LSTMCell(4))
        seq.add(rnn.DropoutCell(0.5))  # not training: identity
        seq.add(rnn.ResidualCell(rnn.GRUCell(4)))
    return seq


@pytest.mark.parametrize('kind', ['rnn', 'lstm', 'gru', 'seq'])
@pytest.mark.parametrize('layout,merge', [('NTC', True), ('TNC', False)])
def test_unroll_eager_equals_hybridized(kind, layout, merge):
    net = Unroller(make_cell(kind), 4, layout, merge)
    net.initialize()
    x = nd.array(rand(2, 4, 3, seed=5) if layout == 'NTC' else rand(4, 2, 3, seed=5))
    eager = net(x)
    net.hybridize()
    hyb = net(x)
    assert net.trace_count == 1
    assert len(eager) == len(hyb)
    for a, b in zip(eager, hyb):
        assert a.shape == b.shape
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)
    if merge:  # NTC, merged on the time axis
        assert eager[0].shape == (2, 4, 4 if kind == 'seq' else 5)
    else:
        assert len(eager) == 4 + (3 if kind == 'seq' else 2 if kind == 'lstm' else 1)


def test_unroll_list_inputs_and_begin_state():
    cell = rnn.GRUCell(3, input_size=2)
    init_nonzero(cell)
    xs = [rand(2, 2, seed=i) for i in range(3)]
    h0 = rand(2, 3, seed=9)
    outs, st = cell.unroll(3, [nd.array(x) for x in xs], begin_state=[nd.array(h0)])
    assert isinstance(outs, list) and len(outs) == 3
    h = h0
    for x, o in zip(xs, outs):
        h = np_gru(x, h, *weights(cell))
        np.testing.assert_allclose(o.asnumpy(), h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st[0].asnumpy(), h, rtol=1e-5, atol=1e-6)
    merged, _ = cell.unroll(3, [nd.array(x) for x in xs], merge_outputs=True)
    assert merged.shape == (2, 3, 3)


def test_unroll_valid_length():
    cell = rnn.LSTMCell(3, input_size=2)
    init_nonzero(cell)
    x = rand(2, 4, 2, seed=3)
    outs, st = cell.unroll(4, nd.array(x), valid_length=nd.array([2, 4]), merge_outputs=True)
    short, st_short = cell.unroll(2, nd.array(x[:1, :2]))
    np.testing.assert_allclose(outs.asnumpy()[0, :2], short.asnumpy()[0], rtol=1e-5, atol=1e-6)
    assert np.all(outs.asnumpy()[0, 2:] == 0)
    for a, b in zip(st, st_short):
        np.testing.assert_allclose(a.asnumpy()[0], b.asnumpy()[0], rtol=1e-5, atol=1e-6)


def test_hybridized_cell_called_directly():
    cell = rnn.LSTMCell(4, input_size=3)
    init_nonzero(cell)
    x, states = nd.array(rand(2, 3)), [nd.array(rand(2, 4, seed=1)), nd.array(rand(2, 4, seed=2))]
    out, st = cell(x, states)
    cell.hybridize()
    out2, st2 = cell(x, states)
    np.testing.assert_allclose(out.asnumpy(), out2.asnumpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(st, st2):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- layers
LAYERS = {'lstm': (rnn.LSTM, rnn.LSTMCell, 2), 'gru': (rnn.GRU, rnn.GRUCell, 1),
          'rnn': (lambda *a, **k: rnn.RNN(*a, activation='tanh', **k),
                  lambda *a, **k: rnn.RNNCell(*a, activation='tanh', **k), 1)}


@pytest.mark.parametrize('kind', ['lstm', 'gru'])
@pytest.mark.parametrize('layout', ['TNC', 'NTC'])
def test_layer_shapes_and_names(kind, layout):
    layer_cls, _, nst = LAYERS[kind]
    layer = layer_cls(5, num_layers=2, bidirectional=True, layout=layout)
    layer.initialize()
    T, N, C = 4, 3, 6
    x = nd.array(rand(T, N, C) if layout == 'TNC' else rand(N, T, C))
    y = layer(x)
    assert y.shape == ((T, N, 10) if layout == 'TNC' else (N, T, 10))
    y2, st = layer(x, layer.begin_state(N))
    assert len(st) == nst and all(s.shape == (4, N, 5) for s in st)
    np.testing.assert_allclose(y.asnumpy(), y2.asnumpy(), rtol=1e-5, atol=1e-7)  # float32: kernels may fuse differently
    G = 4 if kind == 'lstm' else 3
    names = [n[len(layer.prefix):] for n in layer.collect_params()]
    assert names[:8] == ['l0_i2h_weight', 'l0_h2h_weight', 'l0_i2h_bias', 'l0_h2h_bias',
                         'r0_i2h_weight', 'r0_h2h_weight', 'r0_i2h_bias', 'r0_h2h_bias']
    assert len(names) == 16
    p = layer.collect_params()
    assert p[layer.prefix + 'l0_i2h_weight'].shape == (G * 5, C)
    assert p[layer.prefix + 'l1_i2h_weight'].shape == (G * 5, 10)
    assert p[layer.prefix + 'r1_h2h_weight'].shape == (G * 5, 5)


@pytest.mark.parametrize('kind', ['lstm', 'gru', 'rnn'])
def test_layer_matches_unrolled_cells(kind):
    layer_cls, cell_cls, nst = LAYERS[kind]
    L, H, T, N, C = 2, 4, 3, 2, 5
    layer = layer_cls(H, num_layers=L, bidirectional=True, input_size=C)
    init_nonzero(layer)
    x = rand(T, N, C, seed=7)
    states = [rand(L * 2, N, H, seed=40 + k) for k in range(nst)]
    out, new = layer(nd.array(x), [nd.array(s) for s in states])
    params = layer.collect_params()
    inp = [nd.array(x[t]) for t in range(T)]
    final = [[None] * (L * 2) for _ in range(nst)]
    for i in range(L):
        dir_outs = []
        for d, j in enumerate('lr'):
            cell = cell_cls(H, input_size=C if i == 0 else 2 * H)
            cell.initialize()
            for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'):
                cell.params.get(k).set_data(params[f"{layer.prefix}{j}{i}_{k}"].data())
            seq = inp if d == 0 else inp[::-1]
            outs, st = cell.unroll(T, seq, begin_state=[nd.array(s[i * 2 + d]) for s in states], layout='TNC',
                                   merge_outputs=False)
            dir_outs.append(outs if d == 0 else outs[::-1])
            for k in range(nst):
                final[k][i * 2 + d] = st[k].asnumpy()
        inp = [nd.concat(a, b, dim=1) for a, b in zip(*dir_outs)]
    ref = np.stack([o.asnumpy() for o in inp])
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-5, atol=1e-6)
    for k in range(nst):
        np.testing.assert_allclose(new[k].asnumpy(), np.stack(final[k]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kind', ['lstm', 'gru', 'rnn'])
@pytest.mark.parametrize('layout', ['TNC', 'NTC'])
def test_layer_hybridized_equals_eager(kind, layout):
    layer_cls, _, nst = LAYERS[kind]
    layer = layer_cls(4, num_layers=2, bidirectional=True, layout=layout)
    layer.initialize()
    x = nd.array(rand(3, 2, 5, seed=11))
    states = layer.begin_state(3 if layout == 'NTC' else 2)
    y = layer(x)
    y_s, st = layer(x, states)
    layer.hybridize()
    y_h = layer(x)
    y_hs, st_h = layer(x, states)
    np.testing.assert_allclose(y.asnumpy(), y_h.asnumpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y_s.asnumpy(), y_hs.asnumpy(), rtol=1e-5, atol=1e-5)
    assert len(st_h) == nst
    for a, b in zip(st, st_h):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-5)


def test_layer_in_hybrid_sequential_and_dropout():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(rnn.LSTM(4, num_layers=2, dropout=0.5, layout='NTC'))
        net.add(nn.Dense(3, flatten=False))
    net.initialize()
    x = nd.array(rand(2, 3, 5))
    eager = net(x)  # not training: no dropout
    net.hybridize()
    np.testing.assert_allclose(eager.asnumpy(), net(x).asnumpy(), rtol=1e-5, atol=1e-5)
    assert eager.shape == (2, 3, 3)
    first = list(net.collect_params())[0]
    assert first.startswith('hybridsequential') and first.endswith('lstm0_l0_i2h_weight')


def test_rnn_layer_activation_and_repr():
    layer = rnn.RNN(3, activation='relu', input_size=2)
    init_nonzero(layer)
    x = rand(2, 1, 2)
    y = layer(nd.array(x)).asnumpy()
    w = [layer.collect_params()[layer.prefix + 'l0_' + k].data().asnumpy()
         for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')]
    h = np.zeros((1, 3), np.float32)
    for t in range(2):
        h = np_rnn(x[t], h, *w, act=lambda v: np.maximum(v, 0))
        np.testing.assert_allclose(y[t], h, rtol=1e-5, atol=1e-6)
    assert repr(rnn.LSTM(5, num_layers=2, bidirectional=True)) == 'LSTM(None -> 5, TNC, num_layers=2, bidirectional)'
    with pytest.raises(gc.base.GraphcError):
        rnn.RNN(3, activation='sigmoid')


# ---------------------------------------------------------------- training
def test_lstm_learns_delayed_copy():
    gc.random.seed(0)
    V, T, N, H = 4, 5, 16, 16

    class Net(HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.lstm = rnn.LSTM(H, layout='NTC')
                self.out = nn.Dense(V, flatten=False)

        def hybrid_forward(self, F, x):
            return self.out(self.lstm(x))

    net = Net()
    net.initialize(gc.initializer.Xavier())
    net.hybridize()
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, V, size=(N, T))
    x = nd.array(np.eye(V, dtype=np.float32)[tokens])
    y = nd.array(np.concatenate([np.zeros((N, 1)), tokens[:, :-1]], axis=1).astype(np.float32))  # x shifted by 1
    loss_fn = SoftmaxCrossEntropyLoss()
    trainer = Trainer(net.collect_params(), 'adam', {'learning_rate': 0.05})
    losses = []
    for _ in range(40):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(N)
        losses.append(float(loss.mean().asscalar()))
    assert losses[-1] < 0.3 * losses[0], losses
