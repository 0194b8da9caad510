"""gluon.nn layers against explicit NumPy computations; deferred shapes; reprs."""
import math

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def run(layer, x, init=True):
    if init:
        layer.initialize()
    return layer(nd.array(x)).asnumpy()


# ---------------------------------------------------------------- NumPy references
def np_conv2d(x, w, b, stride, pad, dil, groups):
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((n, f, oh, ow))
    for o in range(f):
        g = o // (f // groups)
        for i in range(oh):
            for j in range(ow):
                r, s = i * stride[0], j * stride[1]
                rows, cols = slice(r, r + dil[0] * (kh - 1) + 1, dil[0]), slice(s, s + dil[1] * (kw - 1) + 1, dil[1])
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return out + (0 if b is None else b[None, :, None, None])


def np_deconv2d(x, w, b, stride, pad, adj, groups):
    """Scatter every input pixel times its kernel into the output, then crop the padding."""
    n, cin, h, wd = x.shape
    _, fg, kh, kw = w.shape
    cg = cin // groups
    full = np.zeros((n, fg * groups, (h - 1) * stride[0] + kh + adj[0], (wd - 1) * stride[1] + kw + adj[1]))
    for c in range(cin):
        g = c // cg
        for i in range(h):
            for j in range(wd):
                full[:, g * fg:(g + 1) * fg, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw] += \
                    x[:, c, i, j][:, None, None, None] * w[c][None]
    oh = (h - 1) * stride[0] - 2 * pad[0] + kh + adj[0]
    ow = (wd - 1) * stride[1] - 2 * pad[1] + kw + adj[1]
    return full[:, :, pad[0]:pad[0] + oh, pad[1]:pad[1] + ow] + b[None, :, None, None]


def np_pool(x, k, s, p, kind, include_pad=True, ceil=False):
    n, c, h, w = x.shape
    size = lambda L, i: (math.ceil if ceil else math.floor)((L + 2 * p[i] - k[i]) / s[i]) + 1  # noqa: E731
    oh, ow = size(h, 0), size(w, 1)
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * s[0] - p[0], j * s[1] - p[1]
            rs, cs = slice(max(r0, 0), min(r0 + k[0], h)), slice(max(c0, 0), min(c0 + k[1], w))
            win = x[:, :, rs, cs]
            if kind == 'max':
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                cnt = k[0] * k[1] if include_pad else win.shape[2] * win.shape[3]
                out[:, :, i, j] = win.sum(axis=(2, 3)) / cnt
    return out


# ---------------------------------------------------------------- Dense
def test_dense_matches_numpy_with_activation_and_flatten():
    x = rand(4, 2, 3)
    d = nn.Dense(5, activation='relu', in_units=6)
    assert d.weight.shape == (5, 6) and d.bias.shape == (5,)
    out = run(d, x)
    w, b = d.weight.data().asnumpy(), d.bias.data().asnumpy()
    assert np.all(b == 0)  # bias_initializer='zeros'
    np.testing.assert_allclose(out, np.maximum(x.reshape(4, 6) @ w.T + b, 0), rtol=1e-5, atol=1e-6)


def test_dense_no_flatten_and_no_bias():
    x = rand(2, 3, 4)
    d = nn.Dense(7, flatten=False, use_bias=False)
    out = run(d, x)
    assert d.bias is None and d.weight.shape == (7, 4) and out.shape == (2, 3, 7)
    np.testing.assert_allclose(out, x @ d.weight.data().asnumpy().T, rtol=1e-5, atol=1e-6)


def test_deferred_shapes_are_inferred_from_first_input():
    layers = [(nn.Dense(3), (2, 4, 5), {'weight': (3, 20), 'bias': (3,)}),
              (nn.Conv2D(6, 3, groups=2), (1, 4, 5, 5), {'weight': (6, 2, 3, 3), 'bias': (6,)}),
              (nn.Conv2DTranspose(6, 3, groups=2), (1, 4, 5, 5), {'weight': (4, 3, 3, 3), 'bias': (6,)}),
              (nn.BatchNorm(), (2, 5, 3), {'gamma': (5,), 'running_var': (5,)}),
              (nn.LayerNorm(), (2, 5, 3), {'gamma': (3,), 'beta': (3,)})]
    for layer, shape, want in layers:
        layer.initialize()
        deferred = [getattr(layer, n) for n in want if 0 in getattr(layer, n).shape]
        assert deferred
        for p in deferred:
            with pytest.raises(gc.DeferredInitializationError, match=p.name):
                p.data()
        layer(nd.ones(shape))
        for name, s in want.items():
            assert getattr(layer, name).shape == s and getattr(layer, name).data().shape == s


def test_dense_repr():
    assert repr(nn.Dense(256, activation='relu', in_units=784)) == 'Dense(784 -> 256, Activation(relu))'
    assert repr(nn.Dense(10)) == 'Dense(None -> 10, linear)'


# ---------------------------------------------------------------- convolution
@pytest.mark.parametrize('kw', [dict(), dict(strides=2, padding=1), dict(dilation=2, padding=(2, 1)),
                                dict(groups=2, strides=(1, 2))])
def test_conv2d_matches_numpy(kw):
    x = rand(2, 4, 7, 6)
    conv = nn.Conv2D(6, (3, 2), in_channels=4, **kw)
    out = run(conv, x)
    g = kw.get('groups', 1)
    assert conv.weight.shape == (6, 4 // g, 3, 2)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    conv.bias.set_data(rand(6, seed=1))
    out = conv(nd.array(x)).asnumpy()
    ref = np_conv2d(x, conv.weight.data().asnumpy(), conv.bias.data().asnumpy(), pair(kw.get('strides', 1)),
                    pair(kw.get('padding', 0)), pair(kw.get('dilation', 1)), g)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_conv2d_activation_and_repr():
    conv = nn.Conv2D(8, 3, strides=2, padding=1, in_channels=3, activation='relu', use_bias=False)
    assert repr(conv) == ('Conv2D(3 -> 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False, '
                          'Activation(relu))')
    out = run(conv, rand(1, 3, 5, 5))
    assert out.shape == (1, 8, 3, 3) and out.min() >= 0


@pytest.mark.parametrize('kw', [dict(), dict(strides=2, padding=1, output_padding=1), dict(groups=2, strides=2)])
def test_conv2d_transpose_matches_numpy(kw):
    x = rand(2, 4, 3, 4)
    layer = nn.Conv2DTranspose(6, 3, in_channels=4, **kw)
    layer.initialize()
    layer.bias.set_data(rand(6, seed=2))
    out = layer(nd.array(x)).asnumpy()
    g = kw.get('groups', 1)
    assert layer.weight.shape == (4, 6 // g, 3, 3)
    s, p, a = (kw.get('strides', 1),) * 2, (kw.get('padding', 0),) * 2, (kw.get('output_padding', 0),) * 2
    ref = np_deconv2d(x, layer.weight.data().asnumpy(), layer.bias.data().asnumpy(), s, p, a, g)
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_conv_layout_of_another_rank_is_refused():
    with pytest.raises(gc.GraphcError, match="layout 'NCW'"):
        nn.Conv2D(3, 3, layout='NCW')


# ---------------------------------------------------------------- pooling
def test_pooling_layers_match_numpy():
    x = rand(2, 3, 6, 7)
    np.testing.assert_allclose(run(nn.MaxPool2D(), x), np_pool(x, (2, 2), (2, 2), (0, 0), 'max'), rtol=1e-6)
    np.testing.assert_allclose(run(nn.MaxPool2D(3, 2, 1), x), np_pool(x, (3, 3), (2, 2), (1, 1), 'max'), rtol=1e-6)
    np.testing.assert_allclose(run(nn.MaxPool2D(3, 2, ceil_mode=True), x),
                               np_pool(x, (3, 3), (2, 2), (0, 0), 'max', ceil=True), rtol=1e-6)
    np.testing.assert_allclose(run(nn.AvgPool2D(3, 1, 1), x), np_pool(x, (3, 3), (1, 1), (1, 1), 'avg'),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(nn.AvgPool2D(3, 2, 1, count_include_pad=False), x),
                               np_pool(x, (3, 3), (2, 2), (1, 1), 'avg', include_pad=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run(nn.GlobalAvgPool2D(), x), x.mean(axis=(2, 3), keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(run(nn.GlobalMaxPool2D(), x), x.max(axis=(2, 3), keepdims=True), rtol=1e-6)
    assert run(nn.MaxPool2D(3, 2, ceil_mode=True), x).shape == (2, 3, 3, 3)
    assert repr(nn.MaxPool2D()) == ('MaxPool2D(size=(2, 2), stride=(2, 2), padding=(0, 0), ceil_mode=False, '
                                    'global_pool=False, pool_type=max, layout=NCHW)')


# ---------------------------------------------------------------- normalization
def test_batchnorm_train_updates_running_stats_and_predict_uses_them():
    x = rand(4, 3, 2, 2) * 2 + 1
    bn = nn.BatchNorm(momentum=0.8, in_channels=3)
    bn.initialize()
    gamma, beta = rand(3, seed=3), rand(3, seed=4)
    bn.gamma.set_data(gamma)
    bn.beta.set_data(beta)
    assert bn.running_mean.grad_req == 'null' and bn.gamma.grad_req == 'write'
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    with autograd.record():
        out = bn(nd.array(x)).asnumpy()
    b = lambda v: v[None, :, None, None]  # noqa: E731
    np.testing.assert_allclose(out, b(gamma) * (x - b(mean)) / np.sqrt(b(var) + 1e-5) + b(beta), rtol=1e-4, atol=1e-5)
    rm, rv = 0.2 * mean, 0.8 + 0.2 * var
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), rm, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data().asnumpy(), rv, rtol=1e-5)
    out = bn(nd.array(x)).asnumpy()  # predict mode: running statistics, no update
    np.testing.assert_allclose(out, b(gamma) * (x - b(rm)) / np.sqrt(b(rv) + 1e-5) + b(beta), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.data().asnumpy(), rm, rtol=1e-5)


def test_batchnorm_scale_false_fixes_gamma_and_repr():
    bn = nn.BatchNorm(scale=False, axis=-1)
    assert repr(bn) == ('BatchNorm(axis=-1, eps=1e-05, momentum=0.9, fix_gamma=True, use_global_stats=False, '
                        'in_channels=None)')
    bn.initialize()
    x = rand(5, 4)
    bn(nd.array(x))
    bn.gamma.set_data(np.full(4, 3.0, np.float32))  # ignored: fix_gamma
    with autograd.record():
        out = bn(nd.array(x)).asnumpy()
    assert bn.gamma.grad_req == 'null'
    np.testing.assert_allclose(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-4, atol=1e-5)


def test_layernorm_matches_numpy():
    x = rand(2, 3, 5)
    ln = nn.LayerNorm(in_channels=5)
    ln.initialize()
    gamma, beta = rand(5, seed=5), rand(5, seed=6)
    ln.gamma.set_data(gamma)
    ln.beta.set_data(beta)
    out = ln(nd.array(x)).asnumpy()
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * gamma + beta
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    ln1 = nn.LayerNorm(axis=1)
    ln1.initialize()
    out = ln1(nd.array(x)).asnumpy()
    np.testing.assert_allclose(out, (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5),
                               rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- other layers
def test_embedding_flatten_lambda():
    emb = nn.Embedding(10, 4)
    emb.initialize()
    idx = np.array([[1, 3], [9, 0]], np.float32)
    out = emb(nd.array(idx)).asnumpy()
    np.testing.assert_array_equal(out, emb.weight.data().asnumpy()[idx.astype(int)])
    assert repr(emb) == 'Embedding(10 -> 4, float32)'
    x = rand(2, 3, 4)
    np.testing.assert_array_equal(run(nn.Flatten(), x), x.reshape(2, 12))
    np.testing.assert_allclose(run(nn.Lambda('tanh'), x), np.tanh(x), rtol=1e-6)
    np.testing.assert_allclose(run(nn.Lambda(lambda a: a * 2), x), x * 2)
    np.testing.assert_allclose(run(nn.HybridLambda(lambda F, a: F.relu(a) + 1), x), np.maximum(x, 0) + 1)
    np.testing.assert_allclose(run(nn.HybridLambda('sigmoid'), x), 1 / (1 + np.exp(-x)), rtol=1e-6)
    assert repr(nn.Lambda('tanh')) == 'Lambda(tanh)'
    with pytest.raises(gc.GraphcError, match='no_such_fn'):
        nn.Lambda('no_such_fn')


def test_activation_layers_match_numpy():
    x = rand(3, 4, 2)
    erf = np.vectorize(math.erf)
    cases = [(nn.Activation('relu'), np.maximum(x, 0)), (nn.Activation('tanh'), np.tanh(x)),
             (nn.Activation('softrelu'), np.log1p(np.exp(x))),
             (nn.LeakyReLU(0.1), np.where(x > 0, x, 0.1 * x)),
             (nn.ELU(0.5), np.where(x > 0, x, 0.5 * (np.exp(x) - 1))),
             (nn.SELU(), 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1))),
             (nn.GELU(), x * 0.5 * (1 + erf(x / np.sqrt(2)))),
             (nn.Swish(), x / (1 + np.exp(-x))),
             (nn.PReLU(), np.where(x > 0, x, 0.25 * x))]
    for layer, ref in cases:
        np.testing.assert_allclose(run(layer, x), ref, rtol=1e-5, atol=1e-6, err_msg=repr(layer))
    p = nn.PReLU(in_channels=4)
    p.initialize()
    p.alpha.set_data(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    np.testing.assert_allclose(p(nd.array(x)).asnumpy(), np.where(x > 0, x, x * np.array([.1, .2, .3, .4])[:, None]),
                               rtol=1e-6)
    assert repr(nn.Activation('relu')) == 'Activation(relu)' and repr(nn.LeakyReLU(0.1)) == 'LeakyReLU(0.1)'


def test_dropout_only_in_training_and_reproducible():
    x = np.ones((200, 50), np.float32)
    drop = nn.Dropout(0.3)
    assert repr(drop) == 'Dropout(p = 0.3, axes=())'
    np.testing.assert_array_equal(run(drop, x), x)  # predict mode: identity
    gc.random.seed(7)
    with autograd.record():
        a = drop(nd.array(x)).asnumpy()
    gc.random.seed(7)
    with autograd.record():
        b = drop(nd.array(x)).asnumpy()
    np.testing.assert_array_equal(a, b)
    kept = a != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(a[kept], 1 / 0.7, rtol=1e-6)
    with autograd.record():
        c = nn.Dropout(0.5, axes=(1,))(nd.array(x)).asnumpy()
    assert np.all((c == 0).all(axis=1) | (c != 0).all(axis=1))  # axes=(1,): one mask value per row


def test_sequential_indexing_slicing_and_block_sequential():
    net = nn.HybridSequential(prefix='seq_')
    with net.name_scope():
        net.add(nn.Dense(4, in_units=3), nn.Activation('tanh'), nn.Dense(2, in_units=4))
    assert len(net) == 3 and isinstance(net[1], nn.Activation)
    head = net[:2]
    assert isinstance(head, nn.HybridSequential) and len(head) == 2 and head[0] is net[0]
    net.initialize()
    x = rand(5, 3)
    w0, b0 = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
    np.testing.assert_allclose(head(nd.array(x)).asnumpy(), np.tanh(x @ w0.T + b0), rtol=1e-5, atol=1e-6)
    seq = nn.Sequential()
    seq.add(nn.Dense(2, in_units=3), nn.Lambda(lambda a: a * 0))
    seq.initialize()
    assert np.all(seq(nd.array(x)).asnumpy() == 0)
