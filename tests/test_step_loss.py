"""The eager SoftmaxCrossEntropyLoss as one tape op (gluon.loss._SparseCE): its losses and gradients equal the
op-by-op graph of hybrid_forward (the loss hybridized), and the paths around it (create_graph, get_symbol,
retain_graph, labels out of range, cases it does not cover) still work."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon.loss import _SparseCE
from graphc.ndarray import ndarray as _ndm


@pytest.fixture(autouse=True)
def _cpu_only_process(monkeypatch):
    # the one-op loss is off once any array has lived on a GPU (an earlier test in the process); these test it
    monkeypatch.setattr(_ndm, '_GPU_LIVE', False)
    monkeypatch.setattr(_ndm, '_HOST_IDS', False)


def _both(pred, label, **kw):
    """(eager loss, eager grad, hybridized loss, hybridized grad) of SoftmaxCrossEntropyLoss(**kw)."""
    out = []
    for hyb in (False, True):
        L = gluon.loss.SoftmaxCrossEntropyLoss(**kw)
        if hyb:
            L.hybridize()
        x = pred.copy()
        x.attach_grad()
        with autograd.record():
            loss = L(x, label)
        loss.backward()
        out += [loss.asnumpy(), x.grad.asnumpy()]
    return out


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('label_dtype', ['int32', 'float32'])
def test_equals_the_graph(dtype, label_dtype):
    rng = np.random.default_rng(0)
    pred = nd.array(rng.normal(size=(16, 7)) * 5, dtype=dtype)
    label = nd.array(rng.integers(0, 7, 16), dtype=label_dtype)
    le, ge, lh, gh = _both(pred, label)
    tol = 1e-6 if dtype == 'float32' else 1e-12
    assert le.dtype == lh.dtype and le.shape == lh.shape == (16,)
    np.testing.assert_allclose(le, lh, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(ge, gh, rtol=tol * 10, atol=tol)
    # and the reference: -log softmax at the label, its gradient softmax - one_hot
    p = pred.asnumpy().astype(np.float64)
    p = np.exp(p - p.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    i = label.asnumpy().astype(int)
    np.testing.assert_allclose(le, -np.log(p[np.arange(16), i]), rtol=1e-5, atol=1e-6)
    p[np.arange(16), i] -= 1
    np.testing.assert_allclose(ge, p, rtol=1e-5, atol=1e-6)


def test_taken_and_labels_clipped_as_pick():
    pred = nd.random.normal(shape=(5, 4))
    label = nd.array([-3, 0, 3, 9, 2], dtype='int32')   # pick's default mode clips
    calls = []
    run = _SparseCE.run
    _SparseCE.run = classmethod(lambda cls, *a: calls.append(1) or run(*a))
    try:
        le, ge, lh, gh = _both(pred, label)
    finally:
        _SparseCE.run = run
    assert calls == [1]   # the eager loss (not the hybridized one) went through the fused op
    np.testing.assert_allclose(le, lh, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ge, gh, rtol=1e-6, atol=1e-6)


def test_head_gradient_and_retain_graph():
    pred = nd.random.normal(shape=(6, 3))
    pred.attach_grad()
    label = nd.array([0, 1, 2, 0, 1, 2])
    L = gluon.loss.SoftmaxCrossEntropyLoss()
    head = nd.array([1, 2, 0, -1, 0.5, 3])
    with autograd.record():
        loss = L(pred, label)
    loss.backward(head, retain_graph=True)
    g1 = pred.grad.asnumpy().copy()
    loss.backward(head)                    # the saved softmax is not changed by the first backward
    np.testing.assert_allclose(pred.grad.asnumpy(), g1)
    x = pred.copy()
    x.attach_grad()
    with autograd.record():
        ref = -nd.pick(nd.log_softmax(x), label)
    ref.backward(head)
    np.testing.assert_allclose(g1, x.grad.asnumpy(), rtol=1e-5, atol=1e-6)


def test_create_graph_and_get_symbol():
    pred = nd.random.normal(shape=(4, 3))
    pred.attach_grad()
    label = nd.array([2, 0, 1, 1])
    L = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record():
        loss = L(pred, label)
        g = autograd.grad(loss.sum(), pred, create_graph=True)[0]
        gg = (g * g).sum()
    gg.backward()                       # the gradient of the gradient, through the recorded rule
    x = pred.copy()
    x.attach_grad()
    with autograd.record():
        oh = nd.one_hot(label, depth=3)   # (pick's backward is not differentiable again)
        gr = autograd.grad((-(nd.log_softmax(x) * oh)).sum(), x, create_graph=True)[0]
        (gr * gr).sum().backward()
    np.testing.assert_allclose(g.asnumpy(), gr.asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.grad.asnumpy(), x.grad.asnumpy(), rtol=1e-4, atol=1e-6)
    with autograd.record():
        loss = L(pred, label)
    s = autograd.get_symbol(loss)
    out = s.eval(var0=pred)[0]
    np.testing.assert_allclose(out.asnumpy(), loss.asnumpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('kw,shape', [({'weight': 0.5}, (4, 3)), ({'axis': 0}, (3, 4)), ({}, (2, 3, 4)),
                                      ({'from_logits': True}, (4, 3))])
def test_other_cases_take_the_op_path(kw, shape):
    pred = nd.random.normal(shape=shape)
    ax = kw.get('axis', -1) % len(shape)
    label = nd.array(np.random.default_rng(1).integers(0, shape[ax], shape[:ax] + shape[ax + 1:]))
    le, ge, lh, gh = _both(pred, label, **kw)
    np.testing.assert_allclose(le, lh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ge, gh, rtol=1e-5, atol=1e-6)
    sw = nd.random.uniform(shape=(shape[0], 1))
    L = gluon.loss.SoftmaxCrossEntropyLoss()
    if len(shape) == 2 and not kw:
        np.testing.assert_allclose(L(pred, label, sw).asnumpy(), L(pred, label).asnumpy() * sw.asnumpy()[:, 0],
                                   rtol=1e-5, atol=1e-6)


def test_training_matches_with_the_op_path():
    """A few SGD steps of a small model with the fused loss equal the same steps with the op-by-op loss."""
    x = nd.random.normal(shape=(8, 5))
    y = nd.array(np.random.default_rng(2).integers(0, 3, 8))
    nets = []
    for fused in (True, False):
        gc.random.seed(3)
        net = gluon.nn.Dense(3)
        net.initialize()
        net(x)
        tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
        L = gluon.loss.SoftmaxCrossEntropyLoss()
        for _ in range(4):
            with autograd.record():
                loss = L(net(x), y) if fused else -nd.pick(nd.log_softmax(net(x)), y)
            loss.backward()
            tr.step(8)
        nets.append(net.weight.data().asnumpy())
    np.testing.assert_allclose(nets[0], nets[1], rtol=1e-5, atol=1e-6)
