"""MXNet 1.9's other gluon.nn layers (1-d/3-d conv and pooling, channels-last, norms, padding, containers)
against NumPy, eager and hybridized (values and input gradients equal)."""
import os
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn

rng = np.random.default_rng(0)


def run_both(layer, x, init=True):
    """(eager out, eager dx, random w) of sum(layer(x) * w), checked equal to the hybridized run's."""
    if init:
        layer.initialize()
    res, w = [], None
    for hyb in (False, True):
        if hyb:
            layer.hybridize()
        a = nd.array(x, dtype='float32')
        a.attach_grad()
        with autograd.record():
            y = layer(a)
            w = rng.normal(size=y.shape) if w is None else w
            loss = (y * nd.array(w, dtype='float32')).sum()
        loss.backward()
        res += [y.asnumpy(), a.grad.asnumpy()]
    np.testing.assert_allclose(res[0], res[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res[1], res[3], rtol=1e-5, atol=1e-6)
    return res[0], res[1], w


def num_grad(f, x, w, eps=1e-3):
    """d sum(f(x) * w) / dx by central differences (float64)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = ((f(xp) - f(xm)) * w).sum() / (2 * eps)
    return g


def np_conv(x, w, stride, pad, dil=None, groups=1):
    """Direct N-d grouped cross-correlation, channels first: a loop over output positions."""
    n, c = x.shape[:2]
    f, cg = w.shape[:2]
    k = w.shape[2:]
    d = len(k)
    dil = dil or (1,) * d
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad))
    out = tuple((xp.shape[2 + i] - dil[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(d))
    y = np.zeros((n, f) + out)
    fg = f // groups
    for o in np.ndindex(out):
        win = xp[(slice(None), slice(None)) + tuple(slice(o[i] * stride[i], o[i] * stride[i] + dil[i] * (k[i] - 1) + 1,
                                                          dil[i]) for i in range(d))]
        for gi in range(groups):
            y[(slice(None), slice(gi * fg, (gi + 1) * fg)) + o] = np.tensordot(
                win[:, gi * cg:(gi + 1) * cg], w[gi * fg:(gi + 1) * fg], axes=(range(1, d + 2), range(1, d + 2)))
    return y


def np_pool(x, k, stride, pad, kind, include_pad=True):
    d = len(k)
    lo = -np.inf if kind == 'max' else 0.0
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pad), constant_values=lo)
    ones = np.pad(np.ones(x.shape[2:]), tuple((p, p) for p in pad), constant_values=float(include_pad))
    out = tuple((xp.shape[2 + i] - k[i]) // stride[i] + 1 for i in range(d))
    y = np.zeros(x.shape[:2] + out)
    for o in np.ndindex(out):
        sl = tuple(slice(o[i] * stride[i], o[i] * stride[i] + k[i]) for i in range(d))
        win = xp[(slice(None), slice(None)) + sl].reshape(x.shape[:2] + (-1,))
        y[(slice(None), slice(None)) + o] = win.max(-1) if kind == 'max' else win.sum(-1) / ones[sl].sum()
    return y


# ---------------------------------------------------------------- convolution
@pytest.mark.parametrize('cls,shape,kw', [
    (nn.Conv1D, (2, 4, 9), dict(kernel_size=3, strides=2, padding=1, groups=2)),
    (nn.Conv1D, (1, 4, 8), dict(kernel_size=2, dilation=2)),
    (nn.Conv3D, (1, 2, 3, 3, 4), dict(kernel_size=(2, 3, 2), strides=(2, 1, 1), padding=(1, 0, 1), groups=2)),
    (nn.Conv3D, (1, 2, 3, 4, 3), dict(kernel_size=2, dilation=(1, 2, 1)))])
def test_conv_nd_matches_numpy(cls, shape, kw):
    conv = cls(6, in_channels=shape[1], **kw)
    x = rng.normal(size=shape)
    y, dx, w = run_both(conv, x)
    W, b = conv.weight.data().asnumpy(), conv.bias.data().asnumpy()
    d = len(shape) - 2
    tup = lambda v, dflt: (v,) * d if isinstance(v, int) else (v or (dflt,) * d)  # noqa: E731
    st, pd, dl = tup(kw.get('strides', 1), 1), tup(kw.get('padding', 0), 0), tup(kw.get('dilation', 1), 1)
    f = lambda a: np_conv(a, W, st, pd, dl, kw.get('groups', 1)) + b.reshape((1, -1) + (1,) * d)  # noqa: E731
    np.testing.assert_allclose(y, f(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, num_grad(f, x, w), rtol=1e-3, atol=1e-4)


def test_conv2d_nhwc_equals_nchw():
    x = rng.normal(size=(2, 4, 5, 6))
    c1, c2 = nn.Conv2D(3, (3, 2), padding=1, in_channels=4), nn.Conv2D(3, (3, 2), padding=1, layout='NHWC', in_channels=4)
    c1.initialize()
    c2.initialize()
    assert c2.weight.shape == (3, 3, 2, 4)  # OHWI, as MXNet
    c2.weight.set_data(c1.weight.data().transpose((0, 2, 3, 1)))
    y1 = c1(nd.array(x, dtype='float32')).asnumpy()
    y2, _, _ = run_both(c2, x.transpose(0, 2, 3, 1), init=False)
    np.testing.assert_allclose(y2, y1.transpose(0, 2, 3, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('cls,shape,kw', [
    (nn.Conv1DTranspose, (2, 4, 5), dict(kernel_size=3, strides=2, padding=1, output_padding=1, groups=2)),
    (nn.Conv3DTranspose, (1, 2, 3, 2, 3), dict(kernel_size=(2, 3, 2), strides=(2, 1, 2)))])
def test_conv_transpose_nd_is_the_adjoint(cls, shape, kw):
    """<deconv(x), y> == <x, conv(y)> with the same weight: the definition of the transposed convolution."""
    layer = cls(4, in_channels=shape[1], use_bias=False, **kw)
    x = rng.normal(size=shape)
    y, _, _ = run_both(layer, x)
    d = len(shape) - 2
    tup = lambda v: (v,) * d if isinstance(v, int) else v  # noqa: E731
    W = layer.weight.data().asnumpy()
    assert W.shape == (shape[1], 4 // kw.get('groups', 1)) + tup(kw['kernel_size'])
    r = rng.normal(size=y.shape)
    st, pd = tup(kw.get('strides', 1)), tup(kw.get('padding', 0))
    conv_r = np_conv(r, W, st, pd, None, kw.get('groups', 1))
    np.testing.assert_allclose((y * r).sum(), (x * conv_r).sum(), rtol=1e-4)


def test_conv_repr_as_mxnet():
    assert repr(nn.Conv1D(16, 3, groups=2, in_channels=4)) == 'Conv1D(2 -> 16, kernel_size=(3,), stride=(1,), groups=2)'
    assert repr(nn.Conv3D(8, 2, padding=1, dilation=2, use_bias=False, activation='relu')) == \
        ('Conv3D(None -> 8, kernel_size=(2, 2, 2), stride=(1, 1, 1), padding=(1, 1, 1), dilation=(2, 2, 2), '
         'bias=False, Activation(relu))')
    with pytest.raises(gc.GraphcError, match='Conv3D.*layout'):
        nn.Conv3D(3, 3, layout='NCHW')


# ---------------------------------------------------------------- pooling
@pytest.mark.parametrize('layer,shape,ref', [
    (nn.MaxPool1D(3, 2, 1), (2, 3, 9), lambda x: np_pool(x, (3,), (2,), (1,), 'max')),
    (nn.AvgPool1D(3, 2, 1, count_include_pad=False), (2, 3, 9),
     lambda x: np_pool(x, (3,), (2,), (1,), 'avg', include_pad=False)),
    (nn.MaxPool3D(), (1, 2, 4, 4, 6), lambda x: np_pool(x, (2, 2, 2), (2, 2, 2), (0, 0, 0), 'max')),
    (nn.AvgPool3D((2, 3, 2), 1, 1), (1, 1, 3, 4, 3), lambda x: np_pool(x, (2, 3, 2), (1, 1, 1), (1, 1, 1), 'avg')),
    (nn.GlobalMaxPool1D(), (2, 3, 5), lambda x: x.max(2, keepdims=True)),
    (nn.GlobalAvgPool3D(), (2, 3, 2, 3, 2), lambda x: x.mean((2, 3, 4), keepdims=True))])
def test_pooling_nd_matches_numpy(layer, shape, ref):
    x = rng.normal(size=shape)
    y, dx, w = run_both(layer, x)
    np.testing.assert_allclose(y, ref(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dx, num_grad(ref, x, w), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('first,last', [(nn.MaxPool1D(3, 2), nn.MaxPool1D(3, 2, layout='NWC')),
                                        (nn.AvgPool2D(3, 2, 1), nn.AvgPool2D(3, 2, 1, layout='NHWC')),
                                        (nn.GlobalAvgPool3D(), nn.GlobalAvgPool3D(layout='NDHWC'))])
def test_pooling_channels_last_equals_first(first, last):
    x = rng.normal(size=(2, 3) + (6,) * (len(last._kwargs['layout']) - 2))
    t = (0,) + tuple(range(2, x.ndim)) + (1,)
    y1, _, _ = run_both(first, x)
    y2, _, _ = run_both(last, x.transpose(t))
    np.testing.assert_allclose(y2, y1.transpose(t), rtol=1e-6)


def test_pooling_repr_and_ceil_mode():
    assert repr(nn.AvgPool1D()) == ('AvgPool1D(size=(2,), stride=(2,), padding=(0,), ceil_mode=False, '
                                    'global_pool=False, pool_type=avg, layout=NCW)')
    assert repr(nn.GlobalMaxPool3D()) == ('GlobalMaxPool3D(size=(1, 1, 1), stride=(1, 1, 1), padding=(0, 0, 0), '
                                          'ceil_mode=True, global_pool=True, pool_type=max, layout=NCDHW)')
    assert nn.MaxPool3D(3, ceil_mode=True, layout='NDHWC')(nd.zeros((1, 10, 10, 10, 2))).shape == (1, 4, 4, 4, 2)


# ---------------------------------------------------------------- normalization and padding
def group_norm_ref(x, groups, eps, g, b):
    xg = x.reshape(x.shape[0], groups, -1)
    xh = ((xg - xg.mean(-1, keepdims=True)) / np.sqrt(xg.var(-1, keepdims=True) + eps)).reshape(x.shape)
    cb = (1, -1) + (1,) * (x.ndim - 2)
    g, b = (np.repeat(v, x.shape[1] // v.size) for v in (g, b))  # per-group parameters cover their channels
    return xh * g.reshape(cb) + b.reshape(cb)


@pytest.mark.parametrize('make,groups', [(lambda: nn.InstanceNorm(in_channels=4), 4),
                                         (lambda: nn.GroupNorm(num_groups=2), 2),
                                         (lambda: nn.GroupNorm(), 1)])
def test_instance_and_group_norm(make, groups):
    layer = make()
    x = rng.normal(size=(2, 4, 3, 2)) * 3 + 1
    y, dx, w = run_both(layer, x)
    g, b = layer.gamma.data().asnumpy(), layer.beta.data().asnumpy()
    f = lambda a: group_norm_ref(a, groups, 1e-5, g, b)  # noqa: E731
    np.testing.assert_allclose(y, f(x), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, num_grad(f, x, w), rtol=1e-3, atol=1e-3)


def test_norm_params_and_repr():
    inorm = nn.InstanceNorm()
    assert inorm.gamma.grad_req == 'null' and inorm.beta.grad_req == 'write'  # MXNet: scale=False by default
    assert repr(inorm) == 'InstanceNorm(eps=1e-05, axis=1, center=True, scale=False, in_channels=0)'
    assert repr(nn.GroupNorm(num_groups=2)) == 'GroupNorm(eps=1e-05, num_groups=2, center=True, scale=True)'
    assert nn.GroupNorm(num_groups=2).gamma.shape == (2,)  # MXNet 1.9: one gamma/beta per group
    assert repr(nn.LayerNorm()) == 'LayerNorm(eps=1e-05, axis=-1, center=True, scale=True, in_channels=0)'
    gn = nn.GroupNorm(num_groups=3)
    gn.initialize()
    with pytest.raises(gc.GraphcError, match='num_groups=3'):
        gn(nd.ones((2, 4, 3)))


def test_instance_norm_other_axis():
    layer = nn.InstanceNorm(axis=2, scale=True)
    x = rng.normal(size=(2, 3, 4))
    y, _, _ = run_both(layer, x)
    ref = group_norm_ref(x.swapaxes(1, 2), 4, 1e-5, np.ones(4), np.zeros(4)).swapaxes(1, 2)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


def test_reflection_pad2d():
    x = rng.normal(size=(2, 3, 5, 4))
    layer = nn.ReflectionPad2D(2)
    y, dx, w = run_both(layer, x)
    f = lambda a: np.pad(a, ((0, 0), (0, 0), (2, 2), (2, 2)), mode='reflect')  # noqa: E731
    np.testing.assert_allclose(y, f(x))
    np.testing.assert_allclose(dx, num_grad(f, x, w), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------- containers and contrib
def test_concatenate_identity_and_contrib_names():
    for cls in (nn.HybridConcatenate, gc.gluon.contrib.nn.HybridConcurrent, nn.Concatenate,
                gc.gluon.contrib.nn.Concurrent):
        net = cls(axis=1)
        net.add(nn.Dense(3), nn.Identity(), nn.Dense(2))
        x = rng.normal(size=(4, 5))
        if isinstance(net, gc.gluon.HybridBlock):
            y, _, _ = run_both(net, x)
        else:
            net.initialize()
            y = net(nd.array(x, dtype='float32')).asnumpy()
        w0, b0 = net[0].weight.data().asnumpy(), net[0].bias.data().asnumpy()
        w2, b2 = net[2].weight.data().asnumpy(), net[2].bias.data().asnumpy()
        np.testing.assert_allclose(y, np.concatenate([x @ w0.T + b0, x, x @ w2.T + b2], 1), rtol=1e-5, atol=1e-6)


def test_sync_batchnorm_on_one_device_is_batchnorm():
    x = rng.normal(size=(6, 3, 4))
    bn, sbn = nn.BatchNorm(in_channels=3), gc.gluon.contrib.nn.SyncBatchNorm(in_channels=3, num_devices=1)
    assert gc.gluon.contrib.nn.SyncBatchNorm is nn.SyncBatchNorm
    outs = []
    for layer in (bn, sbn):
        y, dx, _ = run_both(layer, x)
        outs.append((y, layer.running_mean.data().asnumpy()))
    ref = (x - x.mean((0, 2), keepdims=True)) / np.sqrt(x.var((0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(outs[1][0], ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outs[0][1], outs[1][1], rtol=1e-6)


# ---------------------------------------------------------------- the ops' 1-d, 3-d and channels-last cases
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from op_cases import HOST_VARIANT_CASES  # noqa: E402

VARIANTS = [pytest.param(name, i, id=f"{name}-{c.id}") for name, cases in HOST_VARIANT_CASES.items()
            for i, c in enumerate(cases)]


@pytest.mark.parametrize('name,i', VARIANTS)
def test_op_variant_matches_oracle_inference_and_central_differences(name, i):
    from graphc.registry import OPS
    case, op = HOST_VARIANT_CASES[name][i], OPS[name]
    arrays = [a.astype(np.float64) for a in case.inputs]
    f64 = lambda a: nd.array(a, dtype='float64')  # noqa: E731
    xs = [f64(a) for a in arrays]
    for x in xs:
        x.attach_grad()
    with autograd.record():
        out = getattr(nd, name)(*xs, **case.attrs)
    want = case.oracle(*arrays)
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-10, atol=1e-10)
    attrs = op.canon(case.attrs)
    shapes, _ = op.infer(attrs, [a.shape for a in arrays], [np.float64] * len(arrays))
    assert tuple(shapes[0]) == want.shape and op.canon(op.format_attrs(attrs, all=True)) == attrs
    w = np.random.default_rng(1).normal(size=want.shape)
    out.backward(f64(w))
    for j, a in enumerate(arrays):
        f = lambda v: getattr(nd, name)(*[f64(v) if k == j else f64(b) for k, b in enumerate(arrays)],  # noqa: E731
                                        **case.attrs).asnumpy()
        np.testing.assert_allclose(xs[j].grad.asnumpy(), num_grad(f, a, w, eps=1e-6), rtol=1e-4, atol=1e-6,
                                   err_msg=f"{name}: gradient of input {j}")


def test_group_norm_scales_each_group_by_its_own_gamma():
    layer = nn.GroupNorm(num_groups=2)
    layer.initialize()
    layer.gamma.set_data(nd.array([2.0, 3.0]))
    layer.beta.set_data(nd.array([0.5, -1.0]))
    x = rng.normal(size=(2, 4, 3))
    y = layer(nd.array(x)).asnumpy()
    np.testing.assert_allclose(y, group_norm_ref(x, 2, 1e-5, np.array([2.0, 3.0]), np.array([0.5, -1.0])),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(gc.GraphcError, match='num_groups=2'):
        layer(nd.ones((1, 3, 2)))  # 3 channels do not split into 2 groups
