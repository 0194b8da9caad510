"""gluon.loss against NumPy formulas: per-sample values, weights, extreme logits, label shape errors."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import loss as gloss


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def np_log_softmax(x, axis=-1):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def call(loss, *arrays, dtype='float64'):
    return loss(*[nd.array(np.asarray(a), dtype=dtype) for a in arrays]).asnumpy()


def test_softmax_cross_entropy_sparse_and_dense():
    pred, label = rand(4, 10), np.array([3, 0, 9, 5])
    ref = -np_log_softmax(pred)[np.arange(4), label]
    L = gloss.SoftmaxCrossEntropyLoss()
    out = call(L, pred, label)
    assert out.shape == (4,)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    np.testing.assert_allclose(call(L, pred, label[:, None]), ref, rtol=1e-12)  # (B, 1) labels too
    onehot = np.eye(10)[label]
    np.testing.assert_allclose(call(gloss.SoftmaxCrossEntropyLoss(sparse_label=False), pred, onehot), ref, rtol=1e-12)
    soft = np.abs(rand(4, 10, seed=1))
    soft /= soft.sum(1, keepdims=True)
    np.testing.assert_allclose(call(gloss.SoftmaxCELoss(sparse_label=False), pred, soft),
                               -(soft * np_log_softmax(pred)).sum(1), rtol=1e-12)
    logp = np_log_softmax(pred)
    np.testing.assert_allclose(call(gloss.SoftmaxCrossEntropyLoss(from_logits=True), logp, label), ref, rtol=1e-12)
    sw = np.array([[1.0], [0.0], [2.0], [0.5]])
    np.testing.assert_allclose(call(gloss.SoftmaxCrossEntropyLoss(weight=3.0), pred, label, sw),
                               3 * ref * sw[:, 0], rtol=1e-12)


def test_softmax_cross_entropy_axis_and_float32():
    pred, label = rand(2, 5, 3), np.array([[0, 4, 2], [1, 1, 3]])
    ref = -np.take_along_axis(np_log_softmax(pred, axis=1), label[:, None, :], axis=1)[:, 0, :].mean(1)
    out = call(gloss.SoftmaxCrossEntropyLoss(axis=1), pred, label, dtype='float32')
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_softmax_cross_entropy_extreme_logits_stay_finite():
    pred = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 5e3], [80.0, 0.0, -80.0]])
    label = np.array([1, 2, 0])
    for dt in ('float32', 'float64'):
        out = call(gloss.SoftmaxCrossEntropyLoss(), pred, label, dtype=dt)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, [2e4, np.log(2), np.log1p(np.exp(-80) + np.exp(-160))], rtol=1e-6, atol=1e-30)


def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot():
    pred, label = rand(3, 4), np.array([1, 0, 3])
    x = nd.array(pred, dtype='float64')
    x.attach_grad()
    with autograd.record():
        loss = gloss.SoftmaxCrossEntropyLoss()(x, nd.array(label, dtype='float64'))
    loss.backward()
    p = np.exp(np_log_softmax(pred))
    np.testing.assert_allclose(x.grad.asnumpy(), p - np.eye(4)[label], rtol=1e-10, atol=1e-12)


def test_label_shape_errors_name_loss_and_shapes():
    L = gloss.SoftmaxCrossEntropyLoss()
    with pytest.raises(gc.GraphcShapeError) as e:
        call(L, rand(4, 10), np.zeros((4, 3)))
    msg = str(e.value)
    assert msg.startswith(f"{L.name} (SoftmaxCrossEntropyLoss): label shape (4, 3) does not match prediction "
                          "shape (4, 10)") and 'sparse_label=False' in msg
    with pytest.raises(gc.GraphcShapeError, match=r"\(L2Loss\): label shape \(4, 2\) does not match prediction "
                                                  r"shape \(4, 3\)"):
        call(gloss.L2Loss(), rand(4, 3), rand(4, 2))
    with pytest.raises(gc.GraphcShapeError, match=r"label shape \(4, 3\) .* \(4, 10\)"):
        call(gloss.SoftmaxCrossEntropyLoss(sparse_label=False), rand(4, 10), rand(4, 3))


def test_regression_losses():
    pred, label = rand(4, 3, 2), rand(4, 3, 2, seed=1)
    d = pred - label
    np.testing.assert_allclose(call(gloss.L2Loss(), pred, label), (0.5 * d ** 2).mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(call(gloss.L1Loss(), pred, label), np.abs(d).mean(axis=(1, 2)), rtol=1e-12)
    for rho in (1.0, 0.5):
        ad = np.abs(d)
        ref = np.where(ad > rho, ad - 0.5 * rho, 0.5 / rho * ad ** 2).mean(axis=(1, 2))
        np.testing.assert_allclose(call(gloss.HuberLoss(rho=rho), pred, label), ref, rtol=1e-12)
    sw = np.array([1.0, 2.0, 0.0, 0.5])[:, None, None]
    np.testing.assert_allclose(call(gloss.L2Loss(weight=4.0), pred, label, sw),
                               (2 * d ** 2 * sw).mean(axis=(1, 2)), rtol=1e-12)
    # a flat label of the right size is reshaped; integer labels are cast
    np.testing.assert_allclose(call(gloss.L1Loss(), pred[..., 0], label[..., 0].reshape(12)),
                               np.abs(d[..., 0]).mean(1), rtol=1e-12)
    ipred = nd.array(np.array([[1.5, 2.0]], np.float32))
    np.testing.assert_allclose(gloss.L1Loss()(ipred, nd.array(np.array([[1, 4]], np.int32))).asnumpy(), [1.25])
    # batch_axis=1: one value per column
    np.testing.assert_allclose(call(gloss.L1Loss(batch_axis=1), pred[..., 0], label[..., 0]),
                               np.abs(d[..., 0]).mean(0), rtol=1e-12)


def np_bce_logits(x, z):
    return np.maximum(x, 0) - x * z + np.log1p(np.exp(-np.abs(x)))


def test_sigmoid_bce_stable_for_extreme_logits():
    x = np.array([[1000.0, -1000.0, 0.0, 30.0], [-88.0, 89.0, 1e-3, -30.0]])
    z = np.array([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.5]])
    for dt in ('float32', 'float64'):
        out = call(gloss.SigmoidBinaryCrossEntropyLoss(), x, z, dtype=dt)
        assert np.all(np.isfinite(out))
        np.testing.assert_allclose(out, np_bce_logits(x, z).mean(1), rtol=1e-6)
    np.testing.assert_allclose(call(gloss.SigmoidBCELoss(), x, z)[0],
                               (1000 + 1000 + np.log(2) + np.log1p(np.exp(-30))) / 4, rtol=1e-12)
    p, pz = 1 / (1 + np.exp(-rand(3, 5))), (rand(3, 5, seed=2) > 0).astype(float)
    ref = -(np.log(p + 1e-12) * pz + np.log(1 - p + 1e-12) * (1 - pz)).mean(1)
    np.testing.assert_allclose(call(gloss.SigmoidBinaryCrossEntropyLoss(from_sigmoid=True), p, pz), ref, rtol=1e-10)
    x, pw = rand(3, 5), np.array([2.0, 1.0, 0.5, 3.0, 1.0])
    ref = (-(pw * pz * np.log(1 / (1 + np.exp(-x))) + (1 - pz) * np.log(1 - 1 / (1 + np.exp(-x))))).mean(1)
    L = gloss.SigmoidBinaryCrossEntropyLoss()
    np.testing.assert_allclose(L(*(nd.array(v, dtype='float64') for v in (x, pz)), None, nd.array(pw, dtype='float64')).asnumpy(), ref, rtol=1e-10)


def test_other_losses():
    pred, lab = rand(4, 6), np.sign(rand(4, 6, seed=1))
    np.testing.assert_allclose(call(gloss.HingeLoss(), pred, lab), np.maximum(0, 1 - pred * lab).mean(1), rtol=1e-12)
    np.testing.assert_allclose(call(gloss.SquaredHingeLoss(margin=2), pred, lab),
                               (np.maximum(0, 2 - pred * lab) ** 2).mean(1), rtol=1e-12)
    big = np.array([[500.0, -500.0]])
    np.testing.assert_allclose(call(gloss.LogisticLoss(), big, np.array([[-1.0, 1.0]])), [500 + np.log1p(np.exp(-500))])
    np.testing.assert_allclose(call(gloss.LogisticLoss(label_format='binary'), pred, (lab + 1) / 2),
                               np.log1p(np.exp(-pred * lab)).mean(1), rtol=1e-12)
    q = np.exp(np_log_softmax(rand(4, 6, seed=3)))
    np.testing.assert_allclose(call(gloss.KLDivLoss(), np_log_softmax(pred), q),
                               (q * (np.log(q + 1e-12) - np_log_softmax(pred))).mean(1), rtol=1e-10)
    np.testing.assert_allclose(call(gloss.KLDivLoss(from_logits=False), pred, q),
                               (q * (np.log(q + 1e-12) - np_log_softmax(pred))).mean(1), rtol=1e-10)
    assert repr(gloss.L2Loss()) == 'L2Loss(batch_axis=0, w=1.0)'
    assert isinstance(gloss.L2Loss(), gluon.HybridBlock)
