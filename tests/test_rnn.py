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
        p.set_data(nd.array(rand(*p.shape, seed=20 + i, dtype=np.float64), dtype="float64"))
    nst = 2 if kind == 'lstm' else 1
    x = nd.array(rand(2, 2, seed=1, dtype=np.float64), dtype="float64")
    states = [nd.array(rand(2, 3, seed=2 + k, dtype=np.float64), dtype="float64") for k in range(nst)]
    proj = [rand(2, 3, seed=30 + k, dtype=np.float64) for k in range(nst)]

    def loss_value():
        _, st = cell(x, states)
        return sum(float((s.asnumpy() * pj).sum()) for s, pj in zip(st, proj))

    x.attach_grad()
    for s in states:
        s.attach_grad()
    with autograd.record():
        _, st = cell(x, states)
        loss = sum((s * nd.array(pj, dtype="float64")).sum() for s, pj in zip(st, proj))
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


# ---------------------------------------------------------------- the fused RNN op behind the layers
def numpy_lstm_layer(x, params, prefix, L, h0=None, c0=None):
    """Multi-layer unidirectional LSTM over x (T, N, C) from the layer's parameter arrays (MXNet's formulas)."""
    T, N, _ = x.shape
    H = params[prefix + 'l0_h2h_weight'].shape[1]
    seq, hs, cs = x, [], []
    for i in range(L):
        wi, wh, bi, bh = (params[f"{prefix}l{i}_{k}"] for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'))
        h = np.zeros((N, H)) if h0 is None else h0[i]
        c = np.zeros((N, H)) if c0 is None else c0[i]
        out = []
        for t in range(T):
            h, c = np_lstm(seq[t], h, c, wi, wh, bi, bh)
            out.append(h)
        seq = np.stack(out)
        hs.append(h)
        cs.append(c)
    return seq, np.stack(hs), np.stack(cs)


def test_layer_is_one_fused_op_and_exports_mxnet_structure(tmp_path):
    import json
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(rnn.LSTM(6, layout='NTC', input_size=5))
        net.add(nn.Dense(3, flatten=False, in_units=6))
    init_nonzero(net)
    net.hybridize()
    x = nd.array(rand(2, 4, 5, seed=3))
    y = net(x)
    net.export(str(tmp_path / 'm'))
    d = json.load(open(tmp_path / 'm-symbol.json'))
    ops = [n['op'] for n in d['nodes'] if n['op'] != 'null']
    assert ops == ['SwapAxis'] + ['Reshape'] * 4 + ['_rnn_param_concat', '_zeros', '_zeros', 'RNN', 'SwapAxis',
                                                     'FullyConnected']
    cat = next(n for n in d['nodes'] if n['op'] == '_rnn_param_concat')
    weights = [d['nodes'][d['nodes'][i]['inputs'][0][0]]['name'] for i, _, _ in cat['inputs']]
    assert [w.split('lstm0_')[1] for w in weights] == ['l0_i2h_weight', 'l0_h2h_weight', 'l0_i2h_bias', 'l0_h2h_bias']
    zeros = [n for n in d['nodes'] if n['op'] == '_zeros']
    assert [z['attrs']['shape'] for z in zeros] == ['(1, 0, 6)'] * 2 and all(z['attrs']['__layout__'] == 'LNC'
                                                                              for z in zeros)
    node = next(n for n in d['nodes'] if n['op'] == 'RNN')
    assert node['attrs'] == {'mode': 'lstm', 'num_layers': '1', 'state_outputs': 'True', 'state_size': '6'}
    assert [d['nodes'][i]['op'] for i, _, _ in node['inputs']] == ['SwapAxis', '_rnn_param_concat', '_zeros', '_zeros']
    assert node['name'].endswith('lstm0_rnn0')
    k = d['nodes'].index(node)  # MXNet's 3 outputs (out, h, c): graphc's reserve output is not exported
    assert d['node_row_ptr'][k + 1] - d['node_row_ptr'][k] == 3
    # the reference: the same LSTM in NumPy on the exported parameters
    params = {k: v.asnumpy().astype(np.float64) for k, v in nd.load(str(tmp_path / 'm-0000.params')).items()}
    params = {k[4:]: v for k, v in params.items()}
    pre = net.prefix + 'lstm0_'
    seq, _, _ = numpy_lstm_layer(x.asnumpy().transpose(1, 0, 2), params, pre, 1)
    ref = seq.transpose(1, 0, 2) @ params[net.prefix + 'dense0_weight'].T + params[net.prefix + 'dense0_bias']
    np.testing.assert_allclose(y.asnumpy(), ref, rtol=1e-5, atol=1e-5)
    # the export loads back and runs at another batch size (the begin states' batch is left to inference)
    blk = gc.gluon.SymbolBlock.imports(str(tmp_path / 'm-symbol.json'), ['data'], str(tmp_path / 'm-0000.params'))
    np.testing.assert_allclose(blk(x).asnumpy(), y.asnumpy(), rtol=1e-6, atol=1e-6)
    x5 = nd.array(rand(5, 3, 5, seed=4))
    np.testing.assert_allclose(blk(x5).asnumpy(), net(x5).asnumpy(), rtol=1e-5, atol=1e-6)


MXNET_LSTM_JSON = """{
  "nodes": [
    {"op": "null", "name": "data", "inputs": []},
    {"op": "SwapAxis", "name": "lstm0_swapaxes0", "attrs": {"dim1": "0", "dim2": "1"}, "inputs": [[0, 0, 0]]},
    {"op": "null", "name": "lstm0_l0_i2h_weight", "attrs": {"__dtype__": "0", "__lr_mult__": "1.0",
      "__shape__": "(16, 0)", "__storage_type__": "0", "__wd_mult__": "1.0"}, "inputs": []},
    {"op": "Reshape", "name": "lstm0_reshape0", "attrs": {"shape": "-1"}, "inputs": [[2, 0, 0]]},
    {"op": "null", "name": "lstm0_l0_h2h_weight", "attrs": {"__shape__": "(16, 4)"}, "inputs": []},
    {"op": "Reshape", "name": "lstm0_reshape1", "attrs": {"shape": "-1"}, "inputs": [[4, 0, 0]]},
    {"op": "null", "name": "lstm0_l0_i2h_bias", "attrs": {"__init__": "zeros", "__shape__": "(16,)"}, "inputs": []},
    {"op": "Reshape", "name": "lstm0_reshape2", "attrs": {"shape": "-1"}, "inputs": [[6, 0, 0]]},
    {"op": "null", "name": "lstm0_l0_h2h_bias", "attrs": {"__init__": "zeros", "__shape__": "(16,)"}, "inputs": []},
    {"op": "Reshape", "name": "lstm0_reshape3", "attrs": {"shape": "-1"}, "inputs": [[8, 0, 0]]},
    {"op": "_rnn_param_concat", "name": "lstm0_rnn_param_concat0", "attrs": {"dim": "0", "num_args": "4"},
     "inputs": [[3, 0, 0], [5, 0, 0], [7, 0, 0], [9, 0, 0]]},
    {"op": "_zeros", "name": "lstm0_h0_0", "attrs": {"__layout__": "LNC", "dtype": "float32", "shape": "(1, 0, 4)"},
     "inputs": []},
    {"op": "_zeros", "name": "lstm0_h0_1", "attrs": {"__layout__": "LNC", "dtype": "float32", "shape": "(1, 0, 4)"},
     "inputs": []},
    {"op": "RNN", "name": "lstm0_rnn0", "attrs": {"bidirectional": "False", "lstm_state_clip_max": "None",
      "lstm_state_clip_min": "None", "lstm_state_clip_nan": "False", "mode": "lstm", "num_layers": "1", "p": "0",
      "projection_size": "None", "state_outputs": "True", "state_size": "4", "use_sequence_length": "False"},
     "inputs": [[1, 0, 0], [10, 0, 0], [11, 0, 0], [12, 0, 0]]},
    {"op": "SwapAxis", "name": "lstm0_swapaxes1", "attrs": {"dim1": "0", "dim2": "1"}, "inputs": [[13, 0, 0]]}
  ],
  "arg_nodes": [0, 2, 4, 6, 8],
  "node_row_ptr": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17],
  "heads": [[14, 0, 0]],
  "attrs": {"mxnet_version": ["int", 10901]}
}"""


def test_imports_an_lstm_as_mxnet_writes_it(tmp_path):
    """An NTC LSTM export in MXNet 1.9.1's form (../shared/MXNET_FORMAT.md) runs and matches NumPy."""
    (tmp_path / 'lstm-symbol.json').write_text(MXNET_LSTM_JSON)
    names = ['lstm0_l0_i2h_weight', 'lstm0_l0_h2h_weight', 'lstm0_l0_i2h_bias', 'lstm0_l0_h2h_bias']
    shapes = [(16, 3), (16, 4), (16,), (16,)]
    params = {n: rand(*s, seed=60 + i) * 0.5 for i, (n, s) in enumerate(zip(names, shapes))}
    nd.save(str(tmp_path / 'lstm-0000.params'), {'arg:' + k: nd.array(v) for k, v in params.items()})
    blk = gc.gluon.SymbolBlock.imports(str(tmp_path / 'lstm-symbol.json'), ['data'],
                                       str(tmp_path / 'lstm-0000.params'))
    x = rand(2, 5, 3, seed=8)
    seq, _, _ = numpy_lstm_layer(x.transpose(1, 0, 2), {k: v.astype(np.float64) for k, v in params.items()},
                                 'lstm0_', 1)
    np.testing.assert_allclose(blk(nd.array(x)).asnumpy(), seq.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('kind', ['lstm', 'gru', 'rnn'])
def test_fused_layer_gradients_equal_unrolled_cells(kind):
    """d(loss)/d(input, states, every weight) of the fused layer (2 layers, bidirectional, hybridized)
    equal autograd through the unrolled cells."""
    layer_cls, cell_cls, nst = LAYERS[kind]
    L, H, T, N, C = 2, 3, 3, 2, 4
    layer = layer_cls(H, num_layers=L, bidirectional=True, input_size=C)
    init_nonzero(layer)
    layer.hybridize()
    params = layer.collect_params()
    x = nd.array(rand(T, N, C, seed=7))
    states = [nd.array(rand(L * 2, N, H, seed=40 + k)) for k in range(nst)]
    proj = rand(T, N, 2 * H, seed=9)
    proj_st = [rand(L * 2, N, H, seed=50 + k) for k in range(nst)]
    for a in [x] + states:
        a.attach_grad()
    with autograd.record():
        out, new = layer(x, states)
        loss = (out * nd.array(proj)).sum() + sum((s * nd.array(p)).sum() for s, p in zip(new, proj_st))
    loss.backward()
    fused = {'x': x.grad.asnumpy()}
    fused.update({f"state{k}": s.grad.asnumpy() for k, s in enumerate(states)})
    fused.update({k[len(layer.prefix):]: p.grad().asnumpy() for k, p in params.items()})
    # the same computation as cells, differentiated by eager autograd
    x2 = nd.array(x.asnumpy())
    st2 = [nd.array(s.asnumpy()) for s in states]
    cells = {}
    for i in range(L):
        for j in 'lr':
            cell = cell_cls(H, input_size=C if i == 0 else 2 * H)
            cell.initialize()
            for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'):
                cell.params.get(k).set_data(params[f"{layer.prefix}{j}{i}_{k}"].data())
            cells[f"{j}{i}"] = cell
    for a in [x2] + st2:
        a.attach_grad()
    with autograd.record():
        inp = [x2[t] for t in range(T)]
        finals = [[] for _ in range(nst)]
        for i in range(L):
            dir_outs = []
            for d, j in enumerate('lr'):
                seq = inp if d == 0 else inp[::-1]
                outs, st = cells[f"{j}{i}"].unroll(T, seq, begin_state=[s[i * 2 + d] for s in st2], layout='TNC',
                                                   merge_outputs=False)
                dir_outs.append(outs if d == 0 else outs[::-1])
                for k in range(nst):
                    finals[k].append(st[k])
            inp = [nd.concat(a, b, dim=1) for a, b in zip(*dir_outs)]
        loss2 = (nd.stack(*inp, axis=0) * nd.array(proj)).sum() + \
            sum((nd.stack(*f, axis=0) * nd.array(p)).sum() for f, p in zip(finals, proj_st))
    loss2.backward()
    np.testing.assert_allclose(float(loss.asscalar()), float(loss2.asscalar()), rtol=1e-5)
    ref = {'x': x2.grad.asnumpy()}
    ref.update({f"state{k}": s.grad.asnumpy() for k, s in enumerate(st2)})
    for name, cell in cells.items():
        for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias'):
            ref[f"{name}_{k}"] = cell.params.get(k).grad().asnumpy()
    assert sorted(ref) == sorted(fused)
    for k in ref:
        np.testing.assert_allclose(fused[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _rnn_case(mode, T, N, C, H, L, D, clip):
    """The RNN op's attributes, its state count and its inputs (x, the flat parameters scaled to keep the gates
    off saturation, the initial states) for a compiled-vs-reference comparison."""
    from graphc.ops.rnn import param_size
    from graphc.registry import OPS
    a = {'state_size': H, 'num_layers': L, 'mode': mode, 'bidirectional': D == 2, 'state_outputs': True}
    if clip:
        a.update(lstm_state_clip_min=clip[0], lstm_state_clip_max=clip[1])
    ns = 2 if mode == 'lstm' else 1
    arrays = [rand(T, N, C, seed=1), rand(param_size(OPS['RNN'].canon(a), C), seed=2) * 0.4 * min(1, (8 / H) ** 0.5)] + \
        [rand(L * D, N, H, seed=3 + k) for k in range(ns)]
    return a, ns, arrays


@pytest.mark.parametrize('mode,L,D,clip,N,H', [
    ('lstm', 2, 2, None, 3, 8), ('lstm', 1, 1, (-0.5, 0.5), 3, 8), ('gru', 2, 2, None, 3, 8),
    ('rnn_tanh', 2, 2, None, 3, 8), ('rnn_relu', 1, 1, None, 3, 8),
    # gate columns of 64: the recurrence (and the input projection) run on runtime/rnn.py's packed GEMM, in
    # register tiles of 4 rows and single rows for the rest of the batch
    ('lstm', 2, 2, None, 4, 64), ('lstm', 1, 1, None, 8, 16), ('gru', 1, 2, None, 4, 64),
    ('rnn_tanh', 1, 1, None, 4, 128), ('rnn_relu', 1, 2, None, 4, 64), ('lstm', 1, 2, (-0.5, 0.5), 7, 16),
    ('gru', 2, 1, None, 5, 64), ('rnn_tanh', 1, 1, None, 1, 64)])
def test_compiled_step_loops_equal_the_numpy_reference(mode, L, D, clip, N, H):
    """float32 with the CPU backend runs the compiled loops (runtime/rnn.py); the interpreter backend the
    NumPy loops: forward outputs and every gradient agree."""
    from graphc.runtime import rnn as native_rnn
    from graphc.runtime.backend import use
    T, C = 4, 5
    a, ns, arrays = _rnn_case(mode, T, N, C, H, L, D, clip)
    heads = [rand(T, N, D * H, seed=10)] + [rand(L * D, N, H, seed=11 + k) for k in range(ns)]
    got = {}
    calls = []
    real = native_rnn._call
    native_rnn._call = lambda fn, words: calls.append(1) or real(fn, words)
    try:
        for backend in ('interp', 'cpu'):
            with use(backend):
                xs = [nd.array(v) for v in arrays]
                for v in xs:
                    v.attach_grad()
                with autograd.record():
                    out = nd.RNN(*xs, **a)
                autograd.backward(out, [nd.array(h) for h in heads])
                got[backend] = [o.asnumpy() for o in out] + [v.grad.asnumpy() for v in xs]
    finally:
        native_rnn._call = real
    if native_rnn._blas() is not None:
        assert len(calls) == 2 * L * D   # forward and backward of every layer and direction ran compiled
    for p, q in zip(got['interp'], got['cpu']):
        np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('mode,N,H', [('lstm', 32, 64), ('lstm', 13, 16), ('gru', 9, 64), ('rnn_relu', 6, 64)])
def test_the_batch_split_across_threads_equals_one_thread(mode, N, H, monkeypatch):
    """runtime/rnn.py runs slices of the batch on the kernel threads (rows are independent): forward outputs
    and every gradient equal the one-thread run bit for bit where the packed GEMM runs (each row's arithmetic
    is the same), for batches that do not divide into register tiles too."""
    from graphc.ops.rnn import param_size
    from graphc.registry import OPS
    from graphc.runtime import cpu, rnn as native_rnn
    T, C = 5, 7
    a = {'state_size': H, 'num_layers': 2, 'mode': mode, 'bidirectional': True, 'state_outputs': True}
    ns = 2 if mode == 'lstm' else 1
    arrays = [rand(T, N, C, seed=1), rand(param_size(OPS['RNN'].canon(a), C), seed=2) * 0.4 * min(1, (8 / H) ** 0.5)] + \
        [rand(4, N, H, seed=3 + k) for k in range(ns)]
    heads = [rand(T, N, 2 * H, seed=10)] + [rand(4, N, H, seed=11 + k) for k in range(ns)]
    got, slices = {}, []
    real = native_rnn.chunks
    monkeypatch.setattr(native_rnn, 'chunks', lambda n, work: slices.append(real(n, work)) or slices[-1])
    for threads, split in ((1, native_rnn.SPLIT), (3, 0)):
        monkeypatch.setattr(cpu, '_threads', lambda threads=threads: threads)
        monkeypatch.setattr(native_rnn, 'SPLIT', split)
        xs = [nd.array(v) for v in arrays]
        for v in xs:
            v.attach_grad()
        with autograd.record():
            out = nd.RNN(*xs, **a)
        autograd.backward(out, [nd.array(h) for h in heads])
        got[threads] = [o.asnumpy() for o in out] + [v.grad.asnumpy() for v in xs]
    if native_rnn._blas() is not None:
        n = len(slices) // 2   # a forward and a backward per layer-direction, one thread then three
        assert {len(s) for s in slices[:n]} == {1} and min(len(s) for s in slices[n:]) > 1, slices
    for p, q in zip(got[1], got[3]):
        if H % 64 == 0:
            np.testing.assert_array_equal(q, p)
        else:   # the backward's recurrence is BLAS's, whose rounding may depend on the rows it is given
            np.testing.assert_allclose(q, p, rtol=1e-5, atol=1e-6)


def test_stepping_one_at_a_time_equals_the_whole_sequence():
    """Sampling use: the hybridized layer called with one step and the carried state reproduces the run
    over the whole sequence."""
    layer = rnn.LSTM(5, num_layers=2, layout='NTC', input_size=3)
    init_nonzero(layer)
    layer.hybridize()
    x = rand(2, 6, 3, seed=12)
    states = layer.begin_state(2)
    whole, final = layer(nd.array(x), states)
    outs = []
    for t in range(6):
        o, states = layer(nd.array(x[:, t:t + 1]), states)
        outs.append(o.asnumpy())
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole.asnumpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(states, final):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)
    assert layer.trace_count == 2   # one graph per sequence length


def test_dropout_between_layers_in_training():
    """Training-mode dropout on the inner layer's outputs: hybridized equals eager for the same seed, the
    masks scale kept values by 1/(1-p), and predict mode has no dropout."""
    layer = rnn.GRU(6, num_layers=2, dropout=0.5, input_size=4)
    init_nonzero(layer)
    x = nd.array(rand(5, 3, 4, seed=13))
    runs = []
    for hybrid in (False, True):
        layer.hybridize(hybrid)
        gc.random.seed(21)
        x.attach_grad()
        with autograd.record():
            y = layer(x)
        y.backward()
        runs.append((y.asnumpy(), x.grad.asnumpy()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(runs[0][1], runs[1][1], rtol=1e-5, atol=1e-6)
    with autograd.predict_mode():
        pred = layer(x).asnumpy()
    nodrop = rnn.GRU(6, num_layers=2, input_size=4, params=layer.collect_params())
    np.testing.assert_allclose(pred, nodrop(x).asnumpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(runs[0][0] - pred).max() > 1e-3   # training did drop


def test_rnn_op_errors_name_the_problem():
    from graphc.base import GraphcError
    x, h = nd.array(rand(3, 2, 4)), nd.array(rand(1, 2, 5))
    with pytest.raises(GraphcError, match=r"parameters shape \(7,\) should be \(220,\)"):
        nd.RNN(x, nd.array(rand(7)), h, h, state_size=5, num_layers=1, mode='lstm')
    with pytest.raises(GraphcError, match=r"state shape \(1, 2, 5\) should be \(2, 2, 5\)"):
        nd.RNN(x, nd.array(rand(115)), h, state_size=5, num_layers=2, mode="rnn_tanh")
    with pytest.raises(GraphcError, match="projection_size applies to mode 'lstm' only"):
        nd.RNN(x, nd.array(rand(165)), h, state_size=5, num_layers=1, mode='gru', projection_size=3)
    with pytest.raises(GraphcError, match=r"should be \(195,\).*projection \(3, 5\)"):
        nd.RNN(x, nd.array(rand(220)), h, h, state_size=5, num_layers=1, mode='lstm', projection_size=3)
    with pytest.raises(GraphcError, match="takes 4 inputs"):
        nd.RNN(x, nd.array(rand(220)), h, state_size=5, num_layers=1, mode='lstm')
    with pytest.raises(GraphcError, match="data must be 3-d"):
        nd.RNN(nd.array(rand(3, 4)), nd.array(rand(220)), h, h, state_size=5, num_layers=1, mode='lstm')


def test_char_lstm_resume_equals_uninterrupted_training(tmp_path):
    """examples/char_lstm.py: 3 steps, a checkpoint, 3 more steps after --resume give bit-identical
    parameters to 6 steps in one run (the checkpoint holds weights, Adam state, carried LSTM state, RNG)."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples'))
    import char_lstm
    common = ['--hidden', '16', '--seq-len', '8', '--batch-size', '4', '--chars', '20000', '--sample-every', '3',
              '--checkpoint-every', '3']
    one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
    char_lstm.main(['--max-steps', '6', '--checkpoint-dir', one] + common)
    char_lstm.main(['--max-steps', '3', '--checkpoint-dir', two] + common)
    char_lstm.main(['--max-steps', '6', '--checkpoint-dir', two, '--resume'] + common)
    for name in ('char_lstm.params', 'char_lstm.carry'):
        a, b = nd.load(os.path.join(one, name)), nd.load(os.path.join(two, name))
        assert sorted(a) == sorted(b) and len(a) > 1
        for k in a:
            np.testing.assert_array_equal(a[k].asnumpy(), b[k].asnumpy(), err_msg=f"{name}: {k}")
    first = nd.load(os.path.join(one, 'char_lstm.params'))
    assert any(np.abs(first[k].asnumpy()).sum() > 0 for k in first)


def test_packing_a_transposed_weight_reads_it_in_place():
    """pack(W.T) (the forward's recurrence and input weights) reads W's rows directly: the same panels as
    packing a contiguous copy of W.T, 64-byte aligned, for panel counts of 1 and more."""
    from graphc.runtime import rnn as native_rnn
    for n, k in ((1024, 256), (64, 7), (256, 64)):
        w = np.random.default_rng(n).normal(size=(n, k)).astype(np.float32)
        got, want = native_rnn.pack(w.T), native_rnn.pack(np.ascontiguousarray(w.T))
        assert got.ctypes.data % 64 == 0 and np.array_equal(got, want)
        assert np.array_equal(got[1 % got.shape[0], 3, 5], w[(1 % got.shape[0]) * native_rnn.PANEL + 5, 3])


def test_packed_weights_are_kept_and_follow_every_weight_change():
    """runtime/rnn.py keeps the packed recurrent and input weights between inference calls (packing once);
    set_data, an in-place write, a Trainer step and new weights of another layer never reuse a stale pack:
    each result equals the NumPy reference of the weights at that call."""
    from graphc.runtime import rnn as native_rnn
    from graphc.runtime.backend import use
    H, I, T, N = 64, 8, 3, 4
    layer = rnn.LSTM(H, input_size=I, prefix='pk_')
    init_nonzero(layer)
    layer.hybridize()
    x = nd.array(rand(T, N, I, seed=5))
    packs, real = [], native_rnn.pack
    native_rnn.pack = lambda b: packs.append(1) or real(b)
    params = layer.collect_params()
    wname = 'pk_l0_h2h_weight'

    def check():
        want = numpy_lstm_layer(x.asnumpy(), {k: v.data().asnumpy() for k, v in params.items()}, 'pk_', 1)[0]
        np.testing.assert_allclose(layer(x).asnumpy(), want, rtol=1e-4, atol=1e-5)
    try:
        check()
        n = len(packs)
        check()
        if native_rnn._blas() is not None:
            assert n == 2 and len(packs) == n   # Wh^T and Wi^T packed once, then kept
        params[wname].set_data(nd.array(rand(4 * H, H, seed=7) * 0.2))
        check()
        params[wname].data()[:] = nd.array(rand(4 * H, H, seed=8) * 0.2)   # in place
        check()
        params['pk_l0_i2h_weight'].data()[:] *= 0.5
        check()
        with autograd.record():
            loss = layer(x).sum()
        loss.backward()
        Trainer(params, 'sgd', {'learning_rate': 0.5}).step(1)
        check()
        # the op called on one flat parameter array written in place: the same address, new values
        a = {'state_size': H, 'num_layers': 1, 'mode': 'lstm'}
        w = nd.array(rand(4 * H * (I + H + 2), seed=9) * 0.2)
        s0 = [nd.array(rand(1, N, H, seed=k)) for k in (10, 11)]
        for step in range(2):
            if step:
                w[:] = w * -0.5
            with use('interp'):
                want = nd.RNN(x, w, *s0, **a).asnumpy()
            np.testing.assert_allclose(nd.RNN(x, w, *s0, **a).asnumpy(), want, rtol=1e-4, atol=1e-5)
        eager = rnn.LSTM(H, input_size=I)   # a new flat vector each call: the packs of those gone are dropped
        eager.initialize()
        for _ in range(3 * native_rnn.PACKS):
            eager(x)
        assert sum(v[0]() is None for v in native_rnn._packs.values()) <= 2   # (the last call's at most)
    finally:
        native_rnn.pack = real


def _fused_rnns(net):
    return [n for n in net.cached_graph().optimized.nodes if not n.is_var and n.op.name == 'RNN']


@pytest.mark.parametrize('kind,L,D,p', [('lstm', 1, 1, 0.0), ('lstm', 2, 2, 0.3), ('gru', 2, 1, 0.0),
                                        ('rnn_tanh', 1, 2, 0.0), ('cells', 1, 1, 0.0)])
def test_inference_writes_no_reserve(kind, L, D, p, monkeypatch):
    """rnn_no_reserve: a hybridized layer's (or fused LSTMCell.unroll's) inference graph runs the RNN op without
    its reserve (the compiled loop keeps only h: xg None); with a gradient recorded the reserve is written.
    Outputs equal bit for bit with the pass off, and the NumPy loops (interp backend) on the same graph."""
    from graphc.runtime import rnn as native_rnn
    from graphc.runtime.backend import use
    H, I, T, N = 64, 6, 4, 5
    make = {'lstm': lambda: rnn.LSTM(H, L, dropout=p, bidirectional=D == 2, input_size=I),
            'gru': lambda: rnn.GRU(H, L, bidirectional=D == 2, input_size=I),
            'rnn_tanh': lambda: rnn.RNN(H, L, activation='tanh', bidirectional=D == 2, input_size=I),
            'cells': lambda: Unroller(rnn.LSTMCell(H, input_size=I), T, 'TNC', True)}[kind]
    x = nd.array(rand(T, N, I, seed=3))
    leans, real = [], native_rnn.forward
    monkeypatch.setattr(native_rnn, 'forward', lambda a, xg, *r: leans.append(xg is None) or real(a, xg, *r))
    nets = {}
    for off in ('', 'rnn_no_reserve'):
        monkeypatch.setenv('GRAPHC_DISABLE_PASSES', off)
        nets[off] = net = make()
        init_nonzero(net) if not off else net.initialize()
        if off:
            for q, r in zip(net.collect_params().values(), nets[''].collect_params().values()):
                q.set_data(r.data())
        net.hybridize()
        out = [o.asnumpy() for o in (lambda y: y if isinstance(y, (list, tuple)) else [y])(net(x))]
        marked = [n.attrs.get('_no_reserve') and n.shapes[-1] == (0,) or None for n in _fused_rnns(net)]
        assert marked == [None if off else True], marked
        if not off:
            want = out
            with use('interp'):   # the op's NumPy loops on the same optimized graph
                got = [o.asnumpy() for o in (lambda y: y if isinstance(y, (list, tuple)) else [y])(net(x))]
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # (as the compiled loops vs NumPy above)
        else:
            for a, b in zip(out, want):
                np.testing.assert_array_equal(a, b)
    if native_rnn._blas() is not None:
        assert leans == [True] * L * D + [False] * L * D, leans
    leans.clear()
    with autograd.record():   # a gradient needs the reserve: the training pipeline has no rnn_no_reserve
        y = nets[''](x)
    (y[0] if isinstance(y, (list, tuple)) else y).backward()
    if native_rnn._blas() is not None:
        assert leans == [False] * L * D, leans


@pytest.mark.parametrize('mode,D,clip,N,H', [('lstm', 2, None, 7, 64), ('lstm', 1, (-0.5, 0.5), 5, 16),
                                             ('lstm', 2, None, 3, 8), ('gru', 2, None, 5, 64), ('rnn_relu', 1, None, 4, 64)])
@pytest.mark.parametrize('cell', [True, False])
@pytest.mark.parametrize('tiles', [(16, 4), (8, 3)], ids=['avx512-tiles', 'avx2-tiles'])
def test_the_op_without_reserve_equals_the_numpy_reference(mode, D, clip, N, H, cell, tiles, monkeypatch):
    """The RNN op with `_no_reserve` (what rnn_no_reserve sets) runs the compiled loops without the reserve, its
    outputs and final states those of the NumPy loops with it, with the LSTM cell update on the GEMM's register tiles
    (runtime/rnn.py's CELL) and without it, for two layers, clipping and batches beyond whole tiles, with both register
    tile shapes (the host's, runtime/rnn.py's VEC and TILE, and the other kind's: LLVM compiles either anywhere); the
    batch split across threads gives the same bits."""
    from graphc.runtime import rnn as native_rnn
    from graphc.runtime.backend import use
    monkeypatch.setattr(native_rnn, 'CELL', cell)
    vec, tile = tiles
    for name, v in (('VEC', vec), ('PANEL', 4 * vec), ('TILE', tile), ('_fns', {}), ('_packs', {})):
        monkeypatch.setattr(native_rnn, name, v)
    T, C, L = 6, 5, 2
    a, ns, arrays = _rnn_case(mode, T, N, C, H, L, D, clip)
    with use('interp'):
        want = [o.asnumpy() for o in nd.RNN(*[nd.array(v) for v in arrays], **a)]
    leans, real = [], native_rnn.forward
    monkeypatch.setattr(native_rnn, 'forward', lambda a, xg, *r: leans.append(xg is None) or real(a, xg, *r))
    got = [o.asnumpy() for o in nd.RNN(*[nd.array(v) for v in arrays], _no_reserve=True, **a)]
    assert leans == ([True] * L * D if native_rnn._blas() is not None else [])
    for p, q in zip(want, got):
        np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-5)
    from graphc.runtime import cpu   # the batch split across 3 threads: each row's arithmetic is the same
    monkeypatch.setattr(cpu, '_threads', lambda: 3)
    monkeypatch.setattr(native_rnn, 'SPLIT', 0)
    for p, q in zip(got, nd.RNN(*[nd.array(v) for v in arrays], _no_reserve=True, **a)):
        np.testing.assert_array_equal(q.asnumpy(), p)


def test_eager_layer_inference_writes_no_reserve(monkeypatch):
    """An eager layer call outside autograd.record runs the op without its reserve too (no backward can read it);
    recorded, it keeps it, and its gradients stay those of the unrolled cells (test above)."""
    from graphc.runtime import rnn as native_rnn
    layer = rnn.LSTM(64, 2, input_size=6, prefix='ev_')
    init_nonzero(layer)
    x = nd.array(rand(4, 5, 6, seed=4))
    leans, real = [], native_rnn.forward
    monkeypatch.setattr(native_rnn, 'forward', lambda a, xg, *r: leans.append(xg is None) or real(a, xg, *r))
    want = numpy_lstm_layer(x.asnumpy(), {k: v.data().asnumpy() for k, v in layer.collect_params().items()}, 'ev_', 2)[0]
    np.testing.assert_allclose(layer(x).asnumpy(), want, rtol=1e-4, atol=1e-5)
    x.attach_grad()
    with autograd.record():
        y = layer(x)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), want, rtol=1e-4, atol=1e-5)
    if native_rnn._blas() is not None:
        assert leans == [True, True, False, False], leans
