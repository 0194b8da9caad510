"""gluon.contrib.rnn: convolutional cells against a NumPy convolution, deferred input channels, the state shape
rules, dynamic_unroll against the step-by-step unroll; contrib.data.IntervalSampler."""
import numpy as np
import pytest

import graphc as mx
from graphc.gluon import contrib


def _conv1d(x, w, b, pad, dilate=1):
    """x (N, C, W), w (O, C, K): stride-1 cross-correlation."""
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad)))
    k = w.shape[2]
    wo = x.shape[2] - dilate * (k - 1)
    cols = np.stack([x[:, :, i * dilate:i * dilate + wo] for i in range(k)], axis=-1)  # N, C, wo, K
    return np.einsum('ncwk,ock->now', cols, w) + b[None, :, None]


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


@pytest.mark.parametrize('kind', ['RNN', 'LSTM', 'GRU'])
def test_conv1d_cells_match_numpy(kind):
    cell = getattr(contrib.rnn, f'Conv1D{kind}Cell')((3, 9), 4, i2h_kernel=3, h2h_kernel=5, i2h_pad=1, h2h_dilate=2)
    cell.initialize(mx.init.Uniform(0.5))
    x = np.random.uniform(-1, 1, (2, 3, 9)).astype('float32')
    states = [np.random.uniform(-1, 1, (2, 4, 9)).astype('float32') for _ in cell.state_info()]
    assert [tuple(s['shape']) for s in cell.state_info(2)] == [(2, 4, 9)] * len(states)
    out, new = cell(mx.nd.array(x), [mx.nd.array(s) for s in states])
    p = {k[len(cell.prefix):]: v.data().asnumpy() for k, v in cell.collect_params().items()}
    i2h = _conv1d(x, p['i2h_weight'], p['i2h_bias'], 1)
    h2h = _conv1d(states[0], p['h2h_weight'], p['h2h_bias'], 4, dilate=2)  # pad keeps the size: 2*(5-1)//2
    if kind == 'RNN':
        ref, ref_states = np.tanh(i2h + h2h), None
    elif kind == 'LSTM':
        i, f, g, o = np.split(i2h + h2h, 4, axis=1)
        c = _sigmoid(f) * states[1] + _sigmoid(i) * np.tanh(g)
        ref, ref_states = _sigmoid(o) * np.tanh(c), c
    else:
        (ir, iz, inn), (hr, hz, hn) = np.split(i2h, 3, axis=1), np.split(h2h, 3, axis=1)
        r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
        ref, ref_states = (1 - z) * np.tanh(inn + r * hn) + z * states[0], None
    np.testing.assert_allclose(out.asnumpy(), ref, rtol=1e-4, atol=1e-5)
    if ref_states is not None:
        np.testing.assert_allclose(new[1].asnumpy(), ref_states, rtol=1e-4, atol=1e-5)


def test_conv_cell_infers_input_channels_and_checks_its_arguments():
    cell = contrib.rnn.Conv2DLSTMCell((0, 6, 5), 3, (3, 3), (3, 3))
    assert cell.state_info(1)[0]['shape'] == (1, 3, 4, 3)
    cell.initialize()
    h, c = cell.begin_state(2)
    out, _ = cell(mx.nd.ones((2, 7, 6, 5)), [h, c])
    assert cell.i2h_weight.shape == (12, 7, 3, 3) and out.shape == (2, 3, 4, 3)
    with pytest.raises(mx.base.GraphcError, match='h2h_kernel must be odd'):
        contrib.rnn.Conv1DRNNCell((2, 5), 3, 3, 2)
    with pytest.raises(mx.base.GraphcError, match='input_shape'):
        contrib.rnn.Conv2DGRUCell((2, 5), 3, 3, 3)
    with pytest.raises(mx.base.GraphcError, match='i2h_kernel'):
        contrib.rnn.Conv2DRNNCell((2, 5, 5), 3, (3, 3, 3), 3)


@pytest.mark.parametrize('layout', ['TNC', 'NTC'])
def test_dynamic_unroll_equals_unroll_with_valid_length(layout):
    cell = mx.gluon.rnn.LSTMCell(5, input_size=3)
    cell.initialize()
    T, N = 4, 3
    shape = (T, N, 3) if layout == 'TNC' else (N, T, 3)
    x = mx.nd.random.uniform(shape=shape)
    vl = mx.nd.array([1, 4, 2])
    begin = [mx.nd.random.uniform(shape=(N, 5)) for _ in range(2)]
    ref, ref_states = cell.unroll(T, x, begin, layout=layout, merge_outputs=True, valid_length=vl)
    out, states = contrib.rnn.rnn_cell.dynamic_unroll(cell, x, begin, layout=layout, valid_length=vl)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(states, ref_states):
        np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)
    # without valid_length: all steps run
    out, states = contrib.rnn.dynamic_unroll(cell, x, begin, layout=layout)
    ref, ref_states = cell.unroll(T, x, begin, layout=layout, merge_outputs=True)
    np.testing.assert_allclose(out.asnumpy(), ref.asnumpy(), rtol=1e-5, atol=1e-6)


def test_interval_sampler():
    assert list(contrib.data.IntervalSampler(7, 3)) == [0, 3, 6, 1, 4, 2, 5]
    assert list(contrib.data.IntervalSampler(7, 3, rollover=False)) == [0, 3, 6]
    assert list(contrib.data.IntervalSampler(3, 3)) == [0, 1, 2]  # interval == length is allowed
    with pytest.raises(mx.base.GraphcError, match='interval'):
        contrib.data.IntervalSampler(3, 4)
