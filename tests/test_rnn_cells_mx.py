"""gluon.rnn cells MXNet 1.9 has (BidirectionalCell, ZoneoutCell, VariationalDropoutCell, LSTMPCell, the
containers and modifiers), unroll's layouts and valid_length, the LSTM layer's projection and state clipping:
against NumPy oracles, hybridized == eager, and composed on Symbols with MXNet's names."""
import numpy as np
import pytest

from graphc import autograd, gluon, nd, sym
from graphc.gluon import rnn


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def sig(x):
    return 1 / (1 + np.exp(-x))


def np_rnn(x, wi, wh, bi, bh, h):
    """tanh RNN over x (T, N, C): the outputs (T, N, H)."""
    out = []
    for t in range(x.shape[0]):
        h = np.tanh(x[t] @ wi.T + bi + h @ wh.T + bh)
        out.append(h)
    return np.stack(out)


def np_lstmp(x, wi, wh, wr, bi, bh, r, c):
    out = []
    for t in range(x.shape[0]):
        i, f, g, o = np.split(x[t] @ wi.T + bi + r @ wh.T + bh, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        r = (sig(o) * np.tanh(c)) @ wr.T
        out.append(r)
    return np.stack(out), r, c


def init_random(block, seed=0):
    block.initialize()
    for i, p in enumerate(block.collect_params().values()):
        if p.shape and 0 not in p.shape:
            p.set_data(nd.array(rand(*p.shape, seed=seed + i) * 0.5))


def weights(cell):
    return [cell.params[cell.prefix + k].data().asnumpy() for k in ('i2h_weight', 'h2h_weight', 'i2h_bias', 'h2h_bias')]


def test_bidirectional_matches_two_numpy_passes_in_both_layouts():
    T, N, C, H = 4, 3, 5, 6
    cell = rnn.BidirectionalCell(rnn.RNNCell(H, input_size=C, prefix='l_'), rnn.RNNCell(H, input_size=C, prefix='r_'))
    init_random(cell)
    x = rand(T, N, C, seed=9)
    wl, wr = weights(cell._children['l_cell']), weights(cell._children['r_cell'])
    h0 = np.zeros((N, H), np.float32)
    fwd = np_rnn(x, *wl, h0)
    bwd = np_rnn(x[::-1], *wr, h0)[::-1]
    want = np.concatenate([fwd, bwd], axis=2)
    out, states = cell.unroll(T, nd.array(x), layout='TNC')
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states[0].asnumpy(), fwd[-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(states[1].asnumpy(), bwd[0], rtol=1e-5, atol=1e-6)
    out_ntc, _ = cell.unroll(T, nd.array(x.transpose(1, 0, 2)), layout='NTC')
    np.testing.assert_allclose(out_ntc.asnumpy(), want.transpose(1, 0, 2), rtol=1e-5, atol=1e-6)
    steps, _ = cell.unroll(T, [nd.array(x[t]) for t in range(T)], merge_outputs=None)
    assert isinstance(steps, list) and len(steps) == T
    with pytest.raises(Exception, match="cannot be stepped"):
        cell(nd.array(x[0]), cell.begin_state(N))


CELLS = {
    'rnn': lambda: rnn.RNNCell(5, input_size=4),
    'lstm': lambda: rnn.LSTMCell(5, input_size=4),
    'gru': lambda: rnn.GRUCell(5, input_size=4),
    'lstmp': lambda: rnn.LSTMPCell(5, 3, input_size=4),
    'bidirectional': lambda: rnn.BidirectionalCell(rnn.LSTMCell(5, input_size=4), rnn.GRUCell(5, input_size=4)),
    'residual': lambda: rnn.ResidualCell(rnn.GRUCell(4, input_size=4)),
    'residual-bidirectional': lambda: rnn.ResidualCell(rnn.BidirectionalCell(rnn.RNNCell(2, input_size=4),
                                                                             rnn.RNNCell(2, input_size=4))),
    'zoneout-predict': lambda: rnn.ZoneoutCell(rnn.LSTMCell(5, input_size=4), 0.5, 0.5),
    'vardrop-predict': lambda: gluon.contrib.rnn.VariationalDropoutCell(rnn.GRUCell(5, input_size=4), 0.3, 0.3, 0.3),
    'dropout-predict': lambda: rnn.DropoutCell(0.5),
    'sequential': lambda: _seq(),
}


def _seq():
    s = rnn.HybridSequentialRNNCell()
    s.add(rnn.LSTMCell(5, input_size=4))
    s.add(rnn.DropoutCell(0.2))
    s.add(rnn.BidirectionalCell(rnn.RNNCell(3, input_size=5), rnn.RNNCell(3, input_size=5)))
    s.add(rnn.ResidualCell(rnn.GRUCell(6, input_size=6)))
    return s


class _Unroll(gluon.HybridBlock):
    """A parent block that unrolls a cell in its forward (so hybridizing it traces the whole unroll)."""

    def __init__(self, cell, **kw):
        super().__init__(**kw)
        self.cell = cell

    def hybrid_forward(self, F, x, vl):
        out, states = self.cell.unroll(4, x, layout='NTC', merge_outputs=True, valid_length=vl)
        return [out] + list(states)


@pytest.fixture
def interp():
    """The reference interpreter runs the traced graphs (the trace is what these tests check; compiling each
    one's kernels would take most of the time)."""
    from graphc.runtime import backend
    with backend.use('interp'):
        yield


@pytest.mark.parametrize('name', ['gru', 'lstmp', 'bidirectional', 'residual-bidirectional', 'zoneout-predict',
                                  'vardrop-predict', 'sequential'])
def test_unroll_hybridized_equals_eager_with_valid_length(name, interp):
    x, vl = rand(3, 4, 4, seed=1), nd.array([4, 2, 3])
    net = _Unroll(CELLS[name]())
    init_random(net)

    def run():
        xa = nd.array(x)
        xa.attach_grad()
        with autograd.record(train_mode=False):
            outs = net(xa, vl)
            nd.add_n(*[o.sum() for o in outs]).backward()
        return [o.asnumpy() for o in outs], xa.grad.asnumpy()

    eager, g = run()
    net.hybridize()
    hyb, g2 = run()
    for a, b in zip(eager, hyb):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g2, g, rtol=1e-4, atol=1e-5)
    assert np.all(eager[0][1, 2:] == 0)    # past sequence 1's length: zeros
    for i, n in enumerate([4, 2, 3]):      # each sequence alone, unrolled to its own length
        cell = net.cell
        cell.hybridize(False)
        own, st = cell.unroll(n, nd.array(x[i:i + 1, :n]), layout='NTC', merge_outputs=True)
        np.testing.assert_allclose(eager[0][i:i + 1, :n], own.asnumpy(), rtol=1e-4, atol=1e-5)
        for s, full in zip(st, eager[1:]):
            np.testing.assert_allclose(full[i:i + 1], s.asnumpy(), rtol=1e-4, atol=1e-5)


def test_cell_hybridized_at_top_level_equals_eager():
    x = nd.array(rand(2, 3, 4))
    for name in ('lstm', 'bidirectional', 'sequential', 'zoneout-predict', 'vardrop-predict'):
        cell = CELLS[name]()
        init_random(cell)
        a, sa = cell.unroll(3, x, layout='NTC')
        cell.hybridize()
        b, sb = cell.unroll(3, x, layout='NTC')
        np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=1e-5, atol=1e-6)
        for u, v in zip(sa, sb):
            np.testing.assert_allclose(v.asnumpy(), u.asnumpy(), rtol=1e-5, atol=1e-6)


def test_lstmp_cell_and_layer_match_numpy():
    T, N, C, H, P = 3, 2, 4, 5, 3
    x = rand(T, N, C, seed=2)
    layer = rnn.LSTM(H, projection_size=P, input_size=C, prefix='lstm0_')
    init_random(layer)
    p = {k[len('lstm0_'):]: v.data().asnumpy() for k, v in layer.collect_params().items()}
    r0, c0 = rand(1, N, P, seed=3), rand(1, N, H, seed=4)
    want, rT, cT = np_lstmp(x, p['l0_i2h_weight'], p['l0_h2h_weight'], p['l0_h2r_weight'], p['l0_i2h_bias'],
                            p['l0_h2h_bias'], r0[0], c0[0])
    for hybrid in (False, True):
        if hybrid:
            layer.hybridize()
        out, (r, c) = layer(nd.array(x), [nd.array(r0), nd.array(c0)])
        np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(r.asnumpy()[0], rT, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.asnumpy()[0], cT, rtol=1e-5, atol=1e-6)
    cell = rnn.LSTMPCell(H, P, input_size=C, prefix='l0_')
    cell.initialize()
    for k, v in cell.collect_params().items():
        v.set_data(nd.array(p[k]))
    out, (r, c) = cell.unroll(T, nd.array(x), begin_state=[nd.array(r0[0]), nd.array(c0[0])], layout='TNC')
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.asnumpy(), cT, rtol=1e-5, atol=1e-6)


def test_lstmp_layer_gradients_match_unrolled_cells():
    T, N, C, H, P = 3, 2, 4, 5, 3
    layer = rnn.LSTM(H, num_layers=2, bidirectional=True, projection_size=P, input_size=C, prefix='lstm0_')
    init_random(layer)
    stack = rnn.HybridSequentialRNNCell(prefix='lstm0_')
    with stack.name_scope():
        for i in range(2):
            ni = C if i == 0 else 2 * P
            stack.add(rnn.BidirectionalCell(rnn.LSTMPCell(H, P, input_size=ni, prefix=f'l{i}_'),
                                            rnn.LSTMPCell(H, P, input_size=ni, prefix=f'r{i}_')))
    stack.initialize()
    lp, sp = layer.collect_params(), stack.collect_params()
    for k in lp:
        sp[k].set_data(lp[k].data())
    x = rand(T, N, C, seed=5)

    def grads(f, params):
        xa = nd.array(x)
        xa.attach_grad()
        with autograd.record():
            out = f(xa)
            (out * out).sum().backward()
        return out.asnumpy(), xa.grad.asnumpy(), {k: v.grad().asnumpy() for k, v in params.items()}

    a = grads(lambda v: layer(v), lp)
    b = grads(lambda v: stack.unroll(T, v, layout='TNC', merge_outputs=True)[0], sp)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-5)
    for k in a[2]:
        np.testing.assert_allclose(a[2][k], b[2][k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_lstm_layer_state_clip():
    T, N, C, H = 4, 2, 3, 2
    x = rand(T, N, C, seed=6) * 3
    layer = rnn.LSTM(H, input_size=C, state_clip_min=-0.2, state_clip_max=0.3, prefix='lstm_')
    init_random(layer)
    p = {k[len('lstm_'):]: v.data().asnumpy() for k, v in layer.collect_params().items()}
    h, c = np.zeros((N, H), np.float32), np.zeros((N, H), np.float32)
    outs = []
    for t in range(T):
        i, f, g, o = np.split(x[t] @ p['l0_i2h_weight'].T + p['l0_i2h_bias'] + h @ p['l0_h2h_weight'].T
                              + p['l0_h2h_bias'], 4, axis=1)
        c = np.clip(sig(f) * c + sig(i) * np.tanh(g), -0.2, 0.3)
        h = sig(o) * np.tanh(c)
        outs.append(h)
    out, (hT, cT) = layer(nd.array(x), layer.begin_state(N))
    np.testing.assert_allclose(out.asnumpy(), np.stack(outs), rtol=1e-5, atol=1e-6)
    assert cT.asnumpy().max() <= 0.3 + 1e-6 and cT.asnumpy().min() >= -0.2 - 1e-6


def test_unfuse_shares_parameters_and_output():
    layer = rnn.GRU(4, num_layers=2, bidirectional=True, input_size=3)
    cells = layer._unfuse()
    init_random(layer)
    x = nd.array(rand(5, 2, 3, seed=7))
    np.testing.assert_allclose(cells.unroll(5, x, layout='TNC', merge_outputs=True)[0].asnumpy(),
                               layer(x).asnumpy(), rtol=1e-5, atol=1e-6)
    assert set(cells.collect_params().keys()) == set(layer.collect_params().keys())


def test_composed_on_symbols_names_and_values():
    cell = rnn.SequentialRNNCell()
    cell.add(rnn.LSTMCell(6, input_size=4, prefix='rnn_stack0_'))
    cell.add(rnn.ResidualCell(rnn.GRUCell(6, input_size=6, prefix='rnn_stack1_')))
    cell.add(rnn.RNNCell(6, input_size=6, prefix='rnn_stack2_'))
    outputs, states = cell.unroll(3, [sym.var(f'rnn_t{i}_data') for i in range(3)])
    g = sym.Group(outputs)
    assert g.list_outputs() == ['rnn_stack2_t0_out_output', 'rnn_stack2_t1_out_output', 'rnn_stack2_t2_out_output']
    args = g.list_arguments()
    assert len(args) == len(set(args)) == 3 + 12   # one variable per parameter, shared by the steps
    _, outs, _ = g.infer_shape(rnn_t0_data=(2, 4), rnn_t1_data=(2, 4), rnn_t2_data=(2, 4))
    assert outs == [(2, 6)] * 3
    init_random(cell)
    xs = [rand(2, 4, seed=i) for i in range(3)]
    feed = {f'rnn_t{i}_data': nd.array(v) for i, v in enumerate(xs)}
    feed.update({k: v.data() for k, v in cell.collect_params().items()})
    got = g.eval(**feed)
    want, _ = cell.unroll(3, [nd.array(v) for v in xs])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)
    bi = rnn.BidirectionalCell(rnn.LSTMCell(3, input_size=4, prefix='l_'), rnn.LSTMCell(3, input_size=4, prefix='r_'),
                               output_prefix='rnn_bi_')
    outs, _ = bi.unroll(2, [sym.var('a'), sym.var('b')])
    assert sym.Group(outs).list_outputs() == ['rnn_bi_t0_output', 'rnn_bi_t1_output']
    states = rnn.LSTMCell(3, prefix='cell_').begin_state(func=sym.var)
    assert [s.name for s in states] == ['cell_begin_state_0', 'cell_begin_state_1']


def test_zoneout_and_variational_dropout_in_training():
    x = nd.array(rand(2, 5, 4, seed=8))
    base = rnn.RNNCell(6, input_size=4)
    zone = rnn.ZoneoutCell(base, zoneout_outputs=0.5)
    init_random(zone)
    with autograd.train_mode():
        out, _ = zone.unroll(5, x, layout='NTC')
    o = out.asnumpy()
    kept = o[:, 1:] == o[:, :-1]   # zoned-out units repeat the previous step's output
    assert 0.2 < kept.mean() < 0.8
    var = gluon.contrib.rnn.VariationalDropoutCell(rnn.RNNCell(6, input_size=4), drop_outputs=0.5)
    init_random(var)
    with autograd.train_mode():
        out, _ = var.unroll(5, x, layout='NTC')
    zero = out.asnumpy() == 0
    assert 0.2 < zero.mean() < 0.8 and (zero == zero[:, :1]).all()   # one mask for the whole sequence


def test_modifier_errors():
    base = rnn.LSTMCell(3)
    rnn.ResidualCell(base)
    with pytest.raises(Exception, match="already modified"):
        rnn.ZoneoutCell(base)
    with pytest.raises(Exception, match="modifier"):
        base.begin_state(2)
    with pytest.raises(Exception, match="zoneout"):
        rnn.ZoneoutCell(rnn.BidirectionalCell(rnn.LSTMCell(2), rnn.LSTMCell(2)))


def test_legacy_mx_rnn_names_its_replacement():
    import graphc as mx
    with pytest.raises(AttributeError, match=r"mx.rnn.LSTMCell.*gluon.rnn.LSTMCell"):
        mx.rnn.LSTMCell(10)
    with pytest.raises(mx.GraphcError, match="FusedRNNCell.*fused layers"):
        mx.rnn.FusedRNNCell
    assert not hasattr(mx.rnn, 'BucketSentenceIter')
    coded, vocab = mx.rnn.encode_sentences([['a', 'b'], ['b', 'c', 'a']], start_label=-1)
    assert coded == [[0, 1], [1, 2, 0]] and vocab == {'\n': -1, 'a': 0, 'b': 1, 'c': 2}
    coded, _ = mx.rnn.encode_sentences([['a', 'z']], vocab=dict(vocab), unknown_token='<unk>')
    assert coded == [[0, 3]]
    with pytest.raises(mx.GraphcError, match="'z' is not in the vocabulary"):
        mx.rnn.encode_sentences([['z']], vocab=dict(vocab))


@pytest.mark.parametrize('mode', ['lstm', 'gru'])
def test_layer_use_sequence_length_equals_each_sequence_alone(mode):
    T, N, C, H = 4, 3, 2, 3
    make = {'lstm': rnn.LSTM, 'gru': rnn.GRU}[mode]
    layer = make(H, num_layers=2, bidirectional=True, input_size=C, use_sequence_length=True, layout='NTC')
    plain = make(H, num_layers=2, bidirectional=True, input_size=C, layout='NTC')
    init_random(layer)
    plain.initialize()
    for p, q in zip(layer.collect_params().values(), plain.collect_params().values()):
        q.set_data(p.data())
    x, lens = rand(N, T, C, seed=11), [4, 1, 3]
    states = layer.begin_state(N)
    for hybrid in (False, True):
        if hybrid:
            layer.hybridize()
        xa = nd.array(x)
        xa.attach_grad()
        with autograd.record():
            out, st = layer(xa, states, nd.array(lens, dtype='int32'))
            out.sum().backward()
        for i, n in enumerate(lens):
            o, s = plain(nd.array(x[i:i + 1, :n]), plain.begin_state(1))
            np.testing.assert_allclose(out.asnumpy()[i:i + 1, :n], o.asnumpy(), rtol=1e-5, atol=1e-6)
            assert np.all(out.asnumpy()[i, n:] == 0) and np.all(xa.grad.asnumpy()[i, n:] == 0)
            for a, b in zip(st, s):
                np.testing.assert_allclose(a.asnumpy()[:, i:i + 1], b.asnumpy(), rtol=1e-5, atol=1e-6)
