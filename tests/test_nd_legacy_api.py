"""MXNet 1.x's nd functions beyond the registry ops: legacy names and aliases, out= on creation functions,
bool(), setitem rules, nd._internal, CachedOp, load_frombuffer and DLPack (each against NumPy or MXNet's
documented result). The ops themselves (moments, fill_element_0index, ...) are checked in test_ops.py."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd


def test_aliases_compute_what_their_targets_do():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x = nd.array(a)
    np.testing.assert_array_equal(nd.ElementWiseSum(x, x * 2, x * 4).asnumpy(), a * 7)
    np.testing.assert_array_equal(nd.broadcast_plus(x, nd.ones((1, 3))).asnumpy(), a + 1)
    np.testing.assert_array_equal(nd.broadcast_minus(x, nd.ones((2, 1))).asnumpy(), a - 1)
    np.testing.assert_array_equal(nd.sum_axis(x, axis=1).asnumpy(), a.sum(1))
    np.testing.assert_array_equal(nd.max_axis(x, axis=0).asnumpy(), a.max(0))
    np.testing.assert_array_equal(nd.min_axis(x, axis=0).asnumpy(), a.min(0))
    np.testing.assert_array_equal(nd.crop(x, begin=(0, 1), end=(2, 3)).asnumpy(), a[:, 1:3])
    np.testing.assert_array_equal(nd.choose_element_0index(x, nd.array([2, 0])).asnumpy(), [2, 3])
    np.testing.assert_allclose(nd.true_divide(x, 2).asnumpy(), a / 2)


def test_logical_functions_take_arrays_and_numbers():
    x, y = nd.array([0, 1, 2, -1]), nd.array([1, 1, 0, 0])
    np.testing.assert_array_equal(nd.logical_and(x, y).asnumpy(), [0, 1, 0, 0])
    np.testing.assert_array_equal(nd.logical_or(x, y).asnumpy(), [1, 1, 1, 1])
    np.testing.assert_array_equal(nd.logical_xor(x, y).asnumpy(), [1, 0, 1, 1])
    np.testing.assert_array_equal(nd.logical_and(x, 0).asnumpy(), [0, 0, 0, 0])
    np.testing.assert_array_equal(nd.logical_or(0, x).asnumpy(), [0, 1, 1, 1])
    assert nd.logical_xor(1, 0) == 1.0
    np.testing.assert_array_equal(nd.broadcast_logical_xor(nd.array([[1, 1, 0]]), nd.array([[1], [0]])).asnumpy(),
                                  [[0, 0, 1], [1, 1, 0]])  # MXNet's documented example


def test_onehot_encode_writes_out():
    out = nd.zeros((3, 4))
    r = nd.onehot_encode(nd.array([1, 3, 0]), out=out)
    assert r is out
    np.testing.assert_array_equal(out.asnumpy(), np.eye(4)[[1, 3, 0]])
    with pytest.raises(mx.base.MXNetError, match='onehot_encode'):
        nd.onehot_encode(nd.array([1, 2]), out=nd.zeros((3, 4)))


def test_creation_functions_write_out():
    out = nd.zeros((2, 2))
    assert nd.ones((2, 2), out=out) is out
    np.testing.assert_array_equal(out.asnumpy(), np.ones((2, 2)))
    nd.full((2, 2), 3, out=out)
    np.testing.assert_array_equal(out.asnumpy(), np.full((2, 2), 3))
    nd.zeros((2, 2), out=out)
    np.testing.assert_array_equal(out.asnumpy(), np.zeros((2, 2)))
    with pytest.raises(mx.base.MXNetError, match='out= must be an NDArray of shape'):
        nd.ones((3,), out=out)
    with pytest.raises(mx.base.MXNetError, match='unexpected argument'):
        nd.zeros((2,), bogus=1)


def test_bool_follows_mxnet():
    assert not bool(nd.array([]))
    assert not bool(nd.zeros((1,)))
    assert bool(nd.ones((1, 1)))
    with pytest.raises(ValueError, match='ambiguous'):
        bool(nd.ones((2, 3)))


def test_setitem_of_a_single_value_and_while_recording():
    b = nd.zeros(2)
    b[0] = np.array([47.844944], dtype=np.float32)
    b[1] = [3.0]
    np.testing.assert_array_equal(b.asnumpy(), np.array([47.844944, 3.0], dtype=np.float32))
    x, y = nd.zeros((2, 3)), nd.ones((3,))
    y.attach_grad()
    with autograd.record():
        with pytest.raises(mx.base.MXNetError, match=r'Inplace operations \(\+=, -=, x\[:\]=, etc\) are not supported'):
            x[0] = y
        x[1] = 5.0  # nothing autograd tracks: allowed, as in MXNet
    np.testing.assert_array_equal(x.asnumpy()[1], [5, 5, 5])


def test_order_ops_accept_axis_none_and_dtype_classes():
    a = np.array([[3.0, 1, 2], [0, 5, 4]], dtype=np.float32)
    x = nd.array(a)
    np.testing.assert_array_equal(nd.sort(x, axis=None).asnumpy(), np.sort(a, axis=None))
    np.testing.assert_array_equal(nd.argsort(x, axis=None, is_ascend=False).asnumpy(), [4, 5, 0, 2, 1, 3])
    r = nd.topk(x, axis=None, k=2, dtype=np.int32)
    assert r.dtype == np.int32
    np.testing.assert_array_equal(r.asnumpy(), [4, 5])
    assert nd.topk(x, k=1, dtype=np.float64).dtype == np.float64
    with pytest.raises(mx.base.MXNetError, match="topk: bad value for attribute 'dtype'"):
        nd.topk(x, dtype=np.complex64)
    assert nd.broadcast_to(nd.ones((1, 3)), shape=np.array([2, 3])).shape == (2, 3)


def test_broadcast_like_axes_must_be_nonempty():
    lhs, rhs = nd.ones((1, 2, 1, 3)), nd.ones((5, 6, 7, 8))
    assert nd.broadcast_like(lhs, rhs, lhs_axes=(0, 2), rhs_axes=(1, 3)).shape == (6, 2, 8, 3)
    with pytest.raises(mx.base.MXNetError, match='non-empty'):
        nd.broadcast_like(lhs, rhs, lhs_axes=(), rhs_axes=())
    with pytest.raises(mx.base.MXNetError, match='same length'):
        nd.broadcast_like(lhs, rhs, lhs_axes=(0,), rhs_axes=(1, 3))


def test_internal_namespace_and_crop_assign():
    from graphc.nd import _internal
    x = nd.ones((2, 3, 4))
    _internal._crop_assign(x, nd.zeros((2, 1, 3)), begin=(0, 0, 0), end=(2, 1, 3), out=x)
    ref = np.ones((2, 3, 4), np.float32)
    ref[:, :1, :3] = 0
    np.testing.assert_array_equal(x.asnumpy(), ref)
    _internal._crop_assign_scalar(x, scalar=5, begin=(0, 0, 0), end=(2, 1, 3), out=x)
    ref[:, :1, :3] = 5
    np.testing.assert_array_equal(x.asnumpy(), ref)
    np.testing.assert_array_equal(_internal._plus_scalar(nd.ones(2), scalar=2).asnumpy(), [3, 3])


def test_cached_op_runs_a_symbol_and_records():
    sym = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=2, name='fc') * 2
    op = nd.CachedOp(sym)
    assert op._names == ['data', 'fc_weight', 'fc_bias']
    x, w, b = nd.array([[1.0, 2.0]]), nd.array([[1.0, 0.0], [0.0, 1.0]]), nd.array([0.5, -0.5])
    np.testing.assert_allclose(op(x, w, b).asnumpy(), [[3.0, 3.0]])
    out = nd.zeros((1, 2))
    assert op(x, w, b, out=out) is out
    np.testing.assert_allclose(out.asnumpy(), [[3.0, 3.0]])
    w.attach_grad()
    with autograd.record():
        y = op(x, w, b)
    y.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), 2 * np.ones((2, 1)) @ np.array([[1.0, 2.0]]))
    with pytest.raises(mx.base.MXNetError, match='CachedOp: takes its 3 inputs'):
        op(x, w)


def test_recording_on_an_array_from_a_freed_graph_treats_it_as_a_constant():
    b = nd.ones((3,))
    b.attach_grad()
    with autograd.record():
        c = b * 2
        c.sum().backward()
    with autograd.record():
        d = (c + 1) * b  # c's graph is freed: c is a constant now (MXNet detaches it)
    d.backward()
    np.testing.assert_array_equal(b.grad.asnumpy(), [3, 3, 3])


def test_load_frombuffer(tmp_path):
    f = str(tmp_path / 'a.params')
    nd.save(f, {'w': nd.array([1.0, 2.0])})
    buf = open(f, 'rb').read()
    np.testing.assert_array_equal(nd.load_frombuffer(buf)['w'].asnumpy(), [1, 2])
    with pytest.raises(mx.base.MXNetError):
        nd.load_frombuffer(buf[:-3])


def test_dlpack_round_trip_shares_memory():
    a = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    for b in (nd.from_dlpack(a.to_dlpack_for_read()), nd.from_dlpack(nd.to_dlpack_for_write(a))):
        np.testing.assert_array_equal(b.asnumpy(), a.asnumpy())
    c = nd.from_dlpack(np.arange(3.0))  # any object with __dlpack__
    np.testing.assert_array_equal(c.asnumpy(), [0, 1, 2])


def _st(seed, n=3):
    r = np.random.default_rng(seed)
    return [r.uniform(-1, 1, (2, 3)).astype(np.float32) for _ in range(n)]


def test_sgd_family_updates_follow_mxnet_formulas():
    w, g, m = _st(0)
    lr, mo, wd, rg, cg = 0.1, 0.9, 0.01, 0.5, 0.2
    gc = np.clip(rg * g, -cg, cg)
    W = nd.array(w)
    assert nd.sgd_update(W, nd.array(g), lr=lr, wd=wd, rescale_grad=rg, clip_gradient=cg, out=W) is W
    np.testing.assert_allclose(W.asnumpy(), w - lr * (gc + wd * w), rtol=1e-6)
    M = nd.array(m)
    r = nd.sgd_mom_update(nd.array(w), nd.array(g), M, lr=lr, momentum=mo, wd=wd)
    mom = mo * m - lr * (g + wd * w)
    np.testing.assert_allclose(M.asnumpy(), mom, rtol=1e-5)
    np.testing.assert_allclose(r.asnumpy(), w + mom, rtol=1e-5)
    M = nd.array(m)
    r = nd.nag_mom_update(nd.array(w), nd.array(g), M, lr=lr, momentum=mo, wd=wd)
    mom = mo * m - lr * (g + wd * w)
    np.testing.assert_allclose(r.asnumpy(), w + mo * mom - lr * (g + wd * w), rtol=1e-5)
    np.testing.assert_allclose(nd.signsgd_update(nd.array(w), nd.array(g), lr=lr, wd=wd).asnumpy(),
                               (1 - lr * wd) * w - lr * np.sign(g), rtol=1e-6)
    M = nd.array(m)
    r = nd.signum_update(nd.array(w), nd.array(g), M, lr=lr, momentum=mo, wd=wd)
    mom = mo * m - (1 - mo) * (g + wd * w)
    np.testing.assert_allclose(M.asnumpy(), mom, rtol=1e-5)
    np.testing.assert_allclose(r.asnumpy(), w + lr * np.sign(mom), rtol=1e-5)


def test_adaptive_updates_follow_mxnet_formulas():
    w, g, m = _st(1)
    v = np.abs(_st(2, 1)[0])
    lr, wd = 0.01, 0.02
    M, V = nd.array(m), nd.array(v)
    r = nd.adam_update(nd.array(w), nd.array(g), M, V, lr=lr, beta1=0.8, beta2=0.9, epsilon=1e-6, wd=wd,
                       clip_gradient=0.5)
    gg = np.clip(g + wd * w, -0.5, 0.5)  # MXNet's Adam adds wd before clipping
    m1, v1 = 0.8 * m + 0.2 * gg, 0.9 * v + 0.1 * gg * gg
    np.testing.assert_allclose(M.asnumpy(), m1, rtol=1e-5)
    np.testing.assert_allclose(V.asnumpy(), v1, rtol=1e-5)
    np.testing.assert_allclose(r.asnumpy(), w - lr * m1 / (np.sqrt(v1) + 1e-6), rtol=1e-5)
    N = nd.array(v)
    r = nd.rmsprop_update(nd.array(w), nd.array(g), N, lr=lr, gamma1=0.9, epsilon=1e-8, clip_weights=0.5)
    n1 = 0.9 * v + 0.1 * g * g
    np.testing.assert_allclose(r.asnumpy(), np.clip(w - lr * g / np.sqrt(n1 + 1e-8), -0.5, 0.5), rtol=1e-5)
    N, G, D = nd.array(v), nd.array(m * 0.1), nd.array(m)
    r = nd.rmspropalex_update(nd.array(w), nd.array(g), N, G, D, lr=lr, gamma1=0.9, gamma2=0.8)
    n1, g1 = 0.9 * v + 0.1 * g * g, 0.9 * m * 0.1 + 0.1 * g
    d1 = 0.8 * m - lr * g / np.sqrt(n1 - g1 * g1 + 1e-8)
    np.testing.assert_allclose(D.asnumpy(), d1, rtol=1e-4)
    np.testing.assert_allclose(r.asnumpy(), w + d1, rtol=1e-4)
    Z, N = nd.array(m), nd.array(v)
    r = nd.ftrl_update(nd.array(w), nd.array(g), Z, N, lr=0.1, lamda1=0.01, beta=1.0, wd=wd)
    z1 = m + g - (np.sqrt(v + g * g) - np.sqrt(v)) * w / 0.1
    n1 = v + g * g
    np.testing.assert_allclose(r.asnumpy(), (np.sign(z1) * 0.01 - z1) / ((1 + np.sqrt(n1)) / 0.1 + wd)
                               * (np.abs(z1) > 0.01), rtol=1e-4, atol=1e-6)


def test_multi_precision_updates_keep_a_float32_master():
    w, g, m = _st(3)
    W16, W32 = nd.array(w, dtype='float16'), nd.array(w)
    r = nd.mp_sgd_update(W16, nd.array(g, dtype='float16'), W32, lr=0.1, out=W16)
    ref = w - 0.1 * g.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(W32.asnumpy(), ref, rtol=1e-6)
    assert r is W16 and r.dtype == np.float16
    np.testing.assert_allclose(r.asnumpy(), ref.astype(np.float16))
    M, W32 = nd.array(m), nd.array(w)
    r = nd.mp_sgd_mom_update(nd.array(w, dtype='float16'), nd.array(g, dtype='float16'), M, W32, lr=0.1,
                             momentum=0.9)
    np.testing.assert_allclose(W32.asnumpy(), w + 0.9 * m - 0.1 * g.astype(np.float16).astype(np.float32), rtol=1e-5)
    with pytest.raises(mx.base.MXNetError, match='sgd_update: weight, grad and states must share a shape'):
        nd.sgd_update(nd.ones((2,)), nd.ones((3,)), lr=0.1)


def test_softmax_dtype_and_length():
    a = np.random.default_rng(5).normal(size=(2, 4)).astype(np.float32)
    x = nd.array(a)
    x.attach_grad()
    with autograd.record():
        y = nd.softmax(x, dtype='float64')
    y.backward()
    assert y.dtype == np.float64 and x.grad.dtype == np.float32
    e = np.exp(a.astype(np.float64))
    np.testing.assert_allclose(y.asnumpy(), e / e.sum(1, keepdims=True), rtol=1e-12)
    assert nd.log_softmax(x, dtype='float64').dtype == np.float64
    with pytest.raises(mx.base.MXNetError, match='log_softmax: use_length is not supported'):
        nd.log_softmax(x, use_length=True)
    with pytest.raises(mx.base.MXNetError, match='length shape'):
        nd.softmax(x, nd.array([1, 2, 3]), use_length=True)


def test_softmax_activation_and_alias():
    a = np.random.default_rng(6).normal(size=(2, 3, 2)).astype(np.float32)
    x = nd.array(a)
    flat = np.exp(a.reshape(2, -1)) / np.exp(a.reshape(2, -1)).sum(1, keepdims=True)
    np.testing.assert_allclose(nd.SoftmaxActivation(x).asnumpy(), flat.reshape(a.shape), rtol=1e-5)
    np.testing.assert_allclose(nd.SoftmaxActivation(x, mode='channel').asnumpy(),
                               np.exp(a) / np.exp(a).sum(1, keepdims=True), rtol=1e-5)
    with pytest.raises(mx.base.MXNetError, match="mode must be 'instance' or 'channel'"):
        nd.SoftmaxActivation(x, mode='spatial')
    assert nd.Softmax is nd.SoftmaxOutput


def test_amp_casts_and_finite_checks():
    x16, x32, i = nd.ones((2,), dtype='float16'), nd.ones((2,)), nd.ones((2,), dtype='int32')
    assert nd.amp_cast(x32, dtype='float16').dtype == np.float16 and nd.amp_cast(i, dtype='float16').dtype == np.int32
    assert [o.dtype for o in nd.amp_multicast(x16, x32, i, num_outputs=3)] == [np.float32, np.float32, np.int32]
    assert [o.dtype for o in nd.amp_multicast(x16, x32, num_outputs=2, cast_narrow=True)] == [np.float16, np.float16]
    assert nd.all_finite(nd.array([1.0, 2.0])).asnumpy().tolist() == [1.0]
    assert nd.all_finite(nd.array([1.0, np.inf])).asnumpy().tolist() == [0.0]
    assert nd.multi_all_finite(nd.ones(2), nd.array([np.nan]), num_arrays=2).asnumpy().tolist() == [0.0]
    np.testing.assert_allclose(nd.multi_sum_sq(nd.array([1.0, 2.0]), nd.array([3.0]), num_arrays=2).asnumpy(), [5, 9])


def test_contrib_helpers():
    from graphc.nd import contrib
    x = nd.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.testing.assert_allclose(contrib.div_sqrt_dim(x).asnumpy(), x.asnumpy() / 2)
    np.testing.assert_array_equal(contrib.arange_like(x, start=1, axis=1).asnumpy(), [1, 2, 3, 4])
    np.testing.assert_array_equal(contrib.arange_like(x, repeat=2).asnumpy(), np.repeat(np.arange(6), 2).reshape(3, 4))
    assert contrib.allclose(x, x + 1e-9).asscalar() == 1.0 and contrib.allclose(x, x + 1).asscalar() == 0.0
    np.testing.assert_array_equal(contrib.boolean_mask(x, nd.array([1, 0, 1])).asnumpy(), x.asnumpy()[[0, 2]])
    with pytest.raises(mx.base.MXNetError, match='boolean_mask: index must be 1-d of length 3'):
        contrib.boolean_mask(x, nd.array([1, 0]))
    ia = contrib.index_array(nd.zeros((2, 3)), axes=(1,))
    assert ia.dtype == np.int64 and ia.asnumpy().tolist() == [[[0], [1], [2]], [[0], [1], [2]]]
    iou = contrib.box_iou(nd.array([[0, 0, 2, 2], [1, 1, 3, 3]]), nd.array([[0, 0, 1, 1], [0, 0, 2, 2]]))
    np.testing.assert_allclose(iou.asnumpy(), [[0.25, 1.0], [0.0, 1 / 7]], rtol=1e-6)
    np.testing.assert_allclose(contrib.box_iou(nd.array([[1, 1, 2, 2]]), nd.array([[1, 1, 2, 2]]),
                                               format='center').asnumpy(), [[1.0]])
    np.testing.assert_allclose(contrib.quadratic(x, a=1, b=2, c=3).asnumpy(), (x.asnumpy() + 1) ** 2 + 2)


def test_gradientmultiplier_scales_the_gradient():
    from graphc.nd import contrib
    x = nd.array([1.0, -2.0])
    x.attach_grad()
    with autograd.record():
        y = (contrib.gradientmultiplier(x, scalar=-0.5) * nd.array([3.0, 4.0])).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.asnumpy(), [-1.5, -2.0])


def test_split_v2_and_internal_binary_names():
    a = np.arange(12, dtype=np.float32).reshape(6, 2)
    parts = nd.split_v2(nd.array(a), (1, 4), axis=0)
    assert [p.asnumpy().tolist() for p in parts] == [q.tolist() for q in np.split(a, (1, 4))]
    parts = nd.split_v2(nd.array(a), 3)
    assert [p.shape for p in parts] == [(2, 2)] * 3
    assert nd.split_v2(nd.array(a), 2, axis=1, squeeze_axis=True)[1].asnumpy().tolist() == a[:, 1].tolist()
    with pytest.raises(mx.base.MXNetError, match='4 sections do not divide'):
        nd.split_v2(nd.array(a), 4)
    from graphc.nd import _internal
    np.testing.assert_array_equal(_internal._hypot(nd.array([3.0]), nd.array([4.0])).asnumpy(), [5])
    np.testing.assert_array_equal(_internal._maximum(nd.array([3.0]), nd.array([4.0])).asnumpy(), [4])


def test_makeloss_valid_normalization_of_a_0d_loss_keeps_its_shape():
    x = nd.array(np.float32(2.0))
    x.attach_grad()
    with autograd.record():
        y = nd.MakeLoss(x, grad_scale=2.0, normalization='valid', valid_thresh=0.5)
    y.backward()
    assert x.grad.shape == () and x.grad.asscalar() == 2.0  # grad_scale / (1 value above valid_thresh)


def test_ftml_and_adamw_updates():
    w, g, z = _st(7)
    d, v = np.abs(_st(8, 2)[0]) + 0.5, np.abs(_st(9, 1)[0]) + 0.5
    D, V, Z = nd.array(d), nd.array(v), nd.array(z)
    r = nd.ftml_update(nd.array(w), nd.array(g), D, V, Z, lr=0.1, t=2)
    v1 = 0.999 * v + 0.001 * g * g
    d1 = (1 - 0.6 ** 2) / 0.1 * (np.sqrt(v1 / (1 - 0.999 ** 2)) + 1e-8)
    z1 = 0.6 * z + 0.4 * g - (d1 - 0.6 * d) * w
    np.testing.assert_allclose(V.asnumpy(), v1, rtol=1e-5)
    np.testing.assert_allclose(Z.asnumpy(), z1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r.asnumpy(), -z1 / d1, rtol=1e-4, atol=1e-6)
    from graphc.nd import contrib
    M, V = nd.array(z), nd.array(v)
    r = contrib.adamw_update(nd.array(w), nd.array(g), M, V, nd.array([0.5]), lr=0.01, eta=2.0, wd=0.1)
    gg = 0.5 * g
    m1, v1 = 0.9 * z + 0.1 * gg, 0.999 * v + 0.001 * gg * gg
    np.testing.assert_allclose(r.asnumpy(), w - 2.0 * (0.01 * m1 / (np.sqrt(v1) + 1e-8) + 0.1 * w), rtol=1e-5)
    M2 = nd.array(z)
    r = contrib.adamw_update(nd.array(w), nd.array(g), M2, nd.array(v), nd.array([np.inf]), lr=0.01, eta=1.0)
    np.testing.assert_array_equal(r.asnumpy(), w)  # a non-finite rescale_grad skips the step
    np.testing.assert_array_equal(M2.asnumpy(), z)
