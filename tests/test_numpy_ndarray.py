"""mx.np.ndarray semantics that MXNet 1.9's test_numpy_ndarray.py / test_numpy_gluon.py exercise: operators with a
Python scalar on the left, formatting, copy/empty orders, 0-d indexing, and the optimizer's np flag."""
import numpy as onp
import pytest

import graphc as mx
from graphc import autograd, gluon, np, npx


@pytest.fixture(autouse=True)
def _np_mode():
    npx.set_np()
    yield
    npx.reset_np()


X = onp.abs(onp.random.default_rng(0).standard_normal((3, 4))).astype('float32') + 0.7


@pytest.mark.parametrize('s', [5.3, -2.5])
def test_scalar_mod_array_matches_numpy_with_its_gradient(s):
    x = np.array(X)
    x.attach_grad()
    with autograd.record():
        y = s % x
    y.backward()
    onp.testing.assert_allclose(y.asnumpy(), onp.mod(s, X), rtol=1e-5, atol=1e-6)
    # d(s mod x)/dx = -floor(s / x), and a finite difference agrees away from the jumps
    onp.testing.assert_allclose(x.grad.asnumpy(), -onp.floor(s / X), rtol=1e-6)
    eps = 1e-3
    fd = (onp.mod(s, X.astype('float64') + eps) - onp.mod(s, X.astype('float64') - eps)) / (2 * eps)
    onp.testing.assert_allclose(x.grad.asnumpy(), fd, rtol=1e-3, atol=1e-3)


def test_scalar_mod_in_a_hybridized_block_equals_eager():
    class RMod(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return 4.0 % x

    net = RMod()
    eager = net(np.array(X)).asnumpy()
    net.hybridize()
    onp.testing.assert_allclose(net(np.array(X)).asnumpy(), eager, rtol=1e-6)
    onp.testing.assert_allclose(eager, onp.mod(4.0, X), rtol=1e-5, atol=1e-6)


def test_format_of_0d_arrays_and_refusal_for_larger():
    a = np.array(onp.pi)
    assert '{:0.3g}'.format(a) == '{:0.3g}'.format(onp.array(onp.pi)) == '3.14'
    assert f'{np.array(2, dtype="int32"):03d}' == '002'
    with pytest.raises(TypeError):
        '{:30}'.format(np.array([onp.pi]))
    assert '{}'.format(np.array([1.5, 2.0])) == str(onp.array([1.5, 2.0], dtype='float32'))


def test_0d_index_with_empty_tuple_stays_0d_in_either_mode():
    npx.reset_np()
    a = np.array(onp.pi)
    assert a.shape == () and a[()].shape == ()
    assert '{:.2f}'.format(a[()]) == '3.14'
    assert mx.nd.array([1.0, 2.0])[1].shape == (1,)   # MXNet 1.x's legacy rule is kept for n-d arrays


def test_orders_other_than_C_are_refused():
    with pytest.raises(NotImplementedError):
        np.array([1, 2]).copy(order='F')
    with pytest.raises(NotImplementedError):
        np.empty((2, 3), order='F')
    assert np.empty((2, 3), order='C').shape == (2, 3)
    assert onp.array_equal(np.array([1, 2]).copy(order='C').asnumpy(), [1, 2])


def test_py_slice_is_mxnets_name_for_the_builtin():
    from graphc.ndarray import py_slice
    assert py_slice is slice


def test_optimizer_records_np_mode_and_updater_works_without_the_flag():
    assert mx.optimizer.SGD().allow_np_array is True
    npx.reset_np()
    assert mx.optimizer.SGD().allow_np_array is False
    npx.set_np()
    opt = mx.optimizer.SGD(learning_rate=0.5)
    delattr(opt, 'allow_np_array')
    upd = mx.optimizer.get_updater(opt)
    upd(0, np.ones((0, 0)), np.zeros((0, 0)))   # empty arrays: nothing to do
    w = np.ones((2,))
    upd(1, np.ones((2,)), w)
    onp.testing.assert_allclose(w.asnumpy(), [0.5, 0.5])
