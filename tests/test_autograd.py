"""autograd: recording scopes, grad_req, head gradients, retain_graph, autograd.grad, in-place rules."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd


def test_scopes():
    assert not autograd.is_recording() and not autograd.is_training()
    with autograd.record():
        assert autograd.is_recording() and autograd.is_training()
        with autograd.pause():
            assert not autograd.is_recording() and not autograd.is_training()
        with autograd.predict_mode():
            assert autograd.is_recording() and not autograd.is_training()
    with autograd.record(train_mode=False):
        assert not autograd.is_training()
    with autograd.train_mode():
        assert autograd.is_training() and not autograd.is_recording()


def test_chain_and_shared_inputs():
    a = np.array([[0.5, -1.0], [2.0, 0.3]])
    x = nd.array(a, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = x * x + nd.exp(x) * x  # x used three times
        z = y.sum()
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * a + np.exp(a) * (1 + a), rtol=1e-12)


def test_grad_req_add_and_null():
    x = nd.array([1.0, 2.0])
    x.attach_grad(grad_req='add')
    for _ in range(3):
        with autograd.record():
            y = (x * 3).sum()
        y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [9, 9])
    w = nd.array([1.0])
    w.attach_grad(grad_req='null')
    assert w.grad is None


def test_head_grads_and_multiple_heads():
    x = nd.array([1.0, 2.0, 3.0])
    x.attach_grad()
    with autograd.record():
        y1 = x * 2
        y2 = x * x
    autograd.backward([y1, y2], [nd.array([1, 0, 1]), nd.array([1, 1, 1])])
    np.testing.assert_allclose(x.grad.asnumpy(), [2 + 2, 4, 2 + 6])


def test_retain_graph():
    x = nd.array([2.0])
    x.attach_grad()
    with autograd.record():
        y = nd.exp(x)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), np.exp([2.0]), rtol=1e-6)
    with pytest.raises(gc.GraphcError, match="retain_graph=True"):
        y.backward()


def test_autograd_grad_returns_without_writing():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = (x ** 3).sum()
    (g,) = autograd.grad(y, [x])
    np.testing.assert_allclose(g.asnumpy(), [3, 12])
    np.testing.assert_allclose(x.grad.asnumpy(), [0, 0])


def test_unrelated_variable_gets_zero_and_pause_stops_recording():
    x, w = nd.array([1.0]), nd.array([5.0])
    x.attach_grad()
    w.attach_grad()
    with autograd.record():
        y = x * 2
        with autograd.pause():
            c = w * 10  # not recorded: a constant for backward
        z = y * c
    z.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [100])
    np.testing.assert_allclose(w.grad.asnumpy(), [0])


def test_inplace_under_record_is_functional():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 1
        y += x * x  # keeps y's identity, records a new node
        s = y.sum()
    s.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), [1 + 2, 1 + 4])


def test_setitem_on_recorded_array_is_refused():
    x = nd.array([1.0, 2.0])
    x.attach_grad()
    with autograd.record():
        y = x * 2
        with pytest.raises(gc.GraphcError, match="cannot be differentiated"):
            y[0] = 5


def test_backward_without_record_says_why():
    x = nd.array([1.0])
    with pytest.raises(gc.GraphcError, match="autograd.record"):
        (x * 2).backward()


def test_indexing_is_differentiable():
    a = np.arange(12.0).reshape(3, 4)
    x = nd.array(a, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = x[1:, ::2].sum() + (x[[0, 0]] * 2).sum() + x[nd.array(a > 9, dtype=bool)].sum()
    y.backward()
    want = np.zeros_like(a)
    want[1:, ::2] += 1
    want[0] += 4
    want[a > 9] += 1
    np.testing.assert_allclose(x.grad.asnumpy(), want)


def test_dropout_and_batchnorm_follow_train_mode():
    x = nd.ones((100, 10))
    with autograd.record(train_mode=True):
        y = nd.Dropout(x, p=0.5)
    assert 0.3 < (y.asnumpy() == 0).mean() < 0.7
    with autograd.record(train_mode=False):
        y = nd.Dropout(x, p=0.5)
    np.testing.assert_array_equal(y.asnumpy(), x.asnumpy())
    # BatchNorm: batch statistics and a moving-average update in training, moving stats otherwise
    data = nd.array(np.random.default_rng(0).normal(3, 2, size=(64, 2)), dtype='float32')
    g, b = nd.ones((2,)), nd.zeros((2,))
    mm, mv = nd.zeros((2,)), nd.ones((2,))
    with autograd.record():
        out = nd.BatchNorm(data, g, b, mm, mv, fix_gamma=False, axis=1, momentum=0.9)
    np.testing.assert_allclose(out.asnumpy().mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(mm.asnumpy(), 0.1 * data.asnumpy().mean(0), rtol=1e-5)
    np.testing.assert_allclose(mv.asnumpy(), 0.9 + 0.1 * data.asnumpy().var(0), rtol=1e-5)
    out2 = nd.BatchNorm(data, g, b, mm, mv, fix_gamma=False)
    np.testing.assert_allclose(out2.asnumpy(), (data.asnumpy() - mm.asnumpy()) / np.sqrt(mv.asnumpy() + 1e-3),
                               rtol=1e-4, atol=1e-5)


def test_gradients_of_0d_inputs_are_0d_arrays():
    """(0-d + 0-d in NumPy gives a scalar, not an array: gradients summed over two uses stay arrays)"""
    x = nd.array(2.0)
    x.attach_grad()
    with autograd.record():
        y = x * x
    g = autograd.grad(y, [x])[0]
    assert type(g._data) is np.ndarray and g.shape == () and float(g.asnumpy()) == 4.0
