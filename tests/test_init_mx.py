"""MXNet 1.9's initializers against their published formulas (the same seeded draws, so values are exact)."""
import json

import numpy as np
import pytest

import graphc
from graphc import initializer as init
from graphc.ndarray.ndarray import NDArray


def _arr(*shape):
    return NDArray(np.full(shape, np.nan, np.float32))


def _rng(seed=3):
    graphc.random.seed(seed)
    return np.random.default_rng(seed)  # graphc.random.seed(n) is default_rng(n)


@pytest.mark.parametrize('rnd_type', ['uniform', 'gaussian'])
@pytest.mark.parametrize('factor_type', ['avg', 'in', 'out'])
def test_xavier_every_mode(rnd_type, factor_type):
    a = _arr(6, 4, 3, 3)
    rng = _rng()
    init.Xavier(rnd_type, factor_type, magnitude=2.5)('conv_weight', a)
    fan_in, fan_out = 4 * 9, 6 * 9
    factor = {'avg': (fan_in + fan_out) / 2, 'in': fan_in, 'out': fan_out}[factor_type]
    s = np.sqrt(2.5 / factor)
    want = rng.uniform(-s, s, a.shape) if rnd_type == 'uniform' else rng.normal(0, s, a.shape)
    np.testing.assert_allclose(a.asnumpy(), want.astype(np.float32))
    with pytest.raises(ValueError, match='at least 2 dimensions'):
        init.Xavier()('b_weight', _arr(3))


def test_msraprelu_uniform_normal():
    a = _arr(5, 8)
    rng = _rng()
    init.MSRAPrelu(slope=0.5)('w_weight', a)
    np.testing.assert_allclose(a.asnumpy(), rng.normal(0, np.sqrt(2 / 1.25 / 6.5), (5, 8)).astype(np.float32))
    rng = _rng()
    init.Uniform(0.3)('w_weight', a)
    np.testing.assert_allclose(a.asnumpy(), rng.uniform(-0.3, 0.3, (5, 8)).astype(np.float32))
    rng = _rng()
    init.Normal(0.2)('w_weight', a)
    np.testing.assert_allclose(a.asnumpy(), rng.normal(0, 0.2, (5, 8)).astype(np.float32))


@pytest.mark.parametrize('shape', [(4, 10), (10, 2, 2)])
@pytest.mark.parametrize('rand_type', ['uniform', 'normal'])
def test_orthogonal(shape, rand_type):
    a = NDArray(np.zeros(shape))
    init.Orthogonal(scale=2.0, rand_type=rand_type)('w_weight', a)
    m = a.asnumpy().reshape(shape[0], -1) / 2.0
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m   # orthonormal rows, or columns
    np.testing.assert_allclose(gram, np.eye(min(m.shape)), atol=1e-10)


def test_bilinear_is_mxnets_loop():
    a = _arr(2, 1, 5, 6)
    init.Bilinear()._init_weight('up', a)
    shape = a.shape
    want = np.zeros(int(np.prod(shape)), np.float32)
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(want.size):
        x, y = i % shape[3], (i // shape[3]) % shape[2]
        want[i] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    np.testing.assert_array_equal(a.asnumpy(), want.reshape(shape))
    b = _arr(1, 1, 4, 4)
    init.Uniform()('upsampling0_weight', b)   # MXNet's rule for upsampling layers' names
    np.testing.assert_allclose(b.asnumpy()[0, 0, 0], [0.0625, 0.1875, 0.1875, 0.0625])


def test_lstmbias_and_constants():
    a = _arr(12)
    init.LSTMBias(forget_bias=2.0)._init_weight('lstm_i2h_bias', a)
    np.testing.assert_array_equal(a.asnumpy(), [0] * 3 + [2] * 3 + [0] * 6)
    for ini, v in ((init.Zero(), 0), (init.One(), 1), (init.Constant(3.5), 3.5), (init.create('zeros'), 0),
                   (init.create('ones'), 1)):
        b = _arr(2, 2)
        ini('x_weight', b)
        assert (b.asnumpy() == v).all()
    c = init.Constant(NDArray(np.arange(4.0).reshape(2, 2)))
    assert c.dumps() == '["constant", {"value": [[0.0, 1.0], [2.0, 3.0]]}]'
    with pytest.raises(ValueError, match='does not fit'):
        init.Constant(np.ones(3))('w', _arr(2, 2))


def test_fused_rnn_layout():
    h, layers, ni = 3, 2, 5
    # MXNet's size of a bidirectional 2-layer LSTM's parameters
    size = 2 * 4 * h * (ni + h) + 2 * 4 * h * (2 * h + h) + layers * 2 * 2 * 4 * h
    a = _arr(size)
    init.FusedRNN(init.One(), h, layers, 'lstm', bidirectional=True, forget_bias=7.0)('rnn_parameters', a)
    views = init.fused_rnn_slices(a.asnumpy(), h, layers, 'lstm', bidirectional=True)
    assert views['l0_i2h_i_weight'].shape == (h, ni) and views['r1_i2h_o_weight'].shape == (h, 2 * h)
    for name, v in views.items():
        want = 1.0 if name.endswith('weight') else 7.0 if name.endswith('_f_bias') else 0.0
        assert (v == want).all(), name
    with pytest.raises(ValueError, match='fused lstm RNN'):
        init.FusedRNN(None, h, layers, 'lstm')('p', _arr(size + 1))
    g = _arr(3 * 4 * (2 + 4) + 2 * 3 * 4)   # GRU, 1 layer, input 2, hidden 4: the global init fills the weights
    init.Xavier()(init.InitDesc('rnn_parameters', {'__init__': init.FusedRNN(None, 4, 1, 'gru').dumps()}), g)
    v = init.fused_rnn_slices(g.asnumpy(), 4, 1, 'gru')
    assert np.abs(v['l0_h2h_z_weight']).max() > 0 and (v['l0_i2h_r_bias'] == 0).all()


def test_initdesc_rules():
    a = _arr(3, 3)
    init.Uniform()(init.InitDesc('x_weight', {'__init__': '["Constant", {"value": 0.25}]'}), a)
    assert (a.asnumpy() == 0.25).all()
    for name, v in (('fc_bias', 0), ('bn_gamma', 1), ('bn_beta', 0), ('bn_moving_var', 1), ('q_min', 0),
                    ('q_max', 1)):
        init.Uniform()(init.InitDesc(name), a)
        assert (a.asnumpy() == v).all(), name
    with pytest.raises(ValueError, match='Unknown initialization pattern for foo'):
        init.Uniform()(init.InitDesc('foo'), a)
    d = init.InitDesc('w_weight')
    init.Zero()(d, a)
    assert isinstance(d.global_init, init.Zero)


def test_mixed_load_create_register(tmp_path):
    m = init.Mixed(['fc1_', '.*'], [init.Constant(2.0), 'ones'])  # re.match: from the start
    a, b = _arr(2), _arr(2)
    m('fc1_weight', a)
    m('fc_weight', b)
    assert (a.asnumpy() == 2).all() and (b.asnumpy() == 1).all()
    with pytest.raises(ValueError, match='did not match'):
        init.Mixed(['x'], [init.One()])('y', a)

    from graphc.serialization import save_ndarrays
    save_ndarrays(str(tmp_path / 'p.params'), {'arg:fc_weight': NDArray(np.full((2,), 5.0, np.float32))})
    ld = init.Load(str(tmp_path / 'p.params'), default_init=init.Zero())
    ld('fc_weight', b)
    ld('fc_bias', a)
    assert (b.asnumpy() == 5).all() and (a.asnumpy() == 0).all()
    with pytest.raises(ValueError, match='Shape mismatch'):
        ld('fc_weight', _arr(3))
    with pytest.raises(ValueError, match='no default'):
        init.Load({})('z', a)

    assert isinstance(init.create('xavier', magnitude=2), init.Xavier) and init.create('xavier', magnitude=2).magnitude == 2
    x = init.create('["xavier", {"rnd_type": "gaussian"}]')
    assert x.rnd_type == 'gaussian' and json.loads(x.dumps())[0] == 'xavier'
    with pytest.raises(ValueError, match='unknown initializer'):
        init.create('nope')

    @init.register
    class Halves(init.Initializer):
        def _init_weight(self, name, arr):
            arr[:] = 0.5
    c = _arr(2)
    init.create('halves')('w_weight', c)
    assert (c.asnumpy() == 0.5).all()
    del init._REGISTRY['halves']
