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


def test_gradients_under_set_np_use_the_rules_legacy_conventions():
    # relu's rule multiplies by (y > 0): under set_np that comparison is bool, so rules run in legacy mode
    x = np.array([[-1.0, 2.0], [3.0, -4.0]])
    want = onp.array([[0.0, 1.0], [1.0, 0.0]])

    class Relu(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.npx.relu(x)
    for hybridize in (False, True):
        net = Relu()
        if hybridize:
            net.hybridize()
        x.attach_grad()
        with autograd.record():
            y = net(x).sum()
        y.backward()
        onp.testing.assert_array_equal(x.grad.asnumpy(), want)
    assert (np.array([1.0, -1.0]) > 0).dtype == onp.bool_   # the switch itself is untouched


class _TwoLayer(gluon.HybridBlock):
    """Parameters with unknown dims and no infer_shape of its own: MXNet infers them from the graph."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.w1 = self.params.get('w1', shape=(0, 5), allow_deferred_init=True)
            self.w2 = self.params.get('w2', shape=(3, 5), allow_deferred_init=True)

    def hybrid_forward(self, F, x, w1, w2):
        return F.npx.relu(x.dot(w1)).dot(w2.T)


@pytest.mark.parametrize('hybridize', [False, True])
def test_deferred_parameter_dims_are_inferred_through_dot(hybridize):
    x = np.array(onp.random.default_rng(1).standard_normal((4, 7)).astype('float32'))
    net = _TwoLayer()
    net.initialize(mx.init.Uniform())
    if hybridize:
        net.hybridize()
    x.attach_grad()
    with autograd.record():
        y = net(x)
    y.backward()
    assert net.w1.shape == (7, 5) and y.shape == (4, 3)
    w1, w2 = net.w1.data().asnumpy(), net.w2.data().asnumpy()
    h = x.asnumpy() @ w1
    onp.testing.assert_allclose(y.asnumpy(), onp.maximum(h, 0) @ w2.T, rtol=1e-5, atol=1e-6)
    onp.testing.assert_allclose(x.grad.asnumpy(), ((onp.ones((4, 3)) @ w2) * (h > 0)) @ w1.T, rtol=1e-5, atol=1e-5)


def test_dot_infers_a_weights_unknown_dims_from_its_data():
    x, w = mx.sym.var('x'), mx.sym.var('w')
    assert mx.sym.dot(x, w).infer_shape(x=(64, 10), w=(0, 3))[0] == [(64, 10), (10, 3)]
    assert mx.sym.dot(x, w, transpose_b=True).infer_shape(x=(64, 10), w=(3, 0))[0] == [(64, 10), (3, 10)]
    assert mx.sym.dot(x, w).infer_shape(x=(2, 5, 10), w=(0, 3))[1] == [(2, 5, 3)]


def test_contiguous_basic_indexing_is_a_view_in_np_mode_too():
    # MXNet 1.9's mx.np (as its NDArray): a[0][k] = v writes into a; a strided slice is a copy
    a = np.zeros((3, 5))
    a[1][2] = 7
    a[0][1:3] = 3
    row = a[2:3]
    row[0, 4] = 5
    a[:, 1][0] = 9  # (a column is not contiguous: a copy)
    want = onp.zeros((3, 5))
    want[1, 2], want[0, 1:3], want[2, 4] = 7, 3, 5
    onp.testing.assert_array_equal(a.asnumpy(), want)


def test_shares_memory_follows_the_views_and_mixed_dtypes_promote_as_mxnet():
    x = np.zeros((4, 5, 6))
    assert np.shares_memory(x[1], x) and not np.shares_memory(x[0], x[1])
    assert np.may_share_memory(x[0, 0, 1:4], x[0, 0, 2:3]) and not np.shares_memory(x, np.ones((5, 0)))
    assert not np.shares_memory(x[:, 0, 0], x)  # (strided: a copy)
    i, b, f = np.array([3, 4], dtype='int32'), np.array([True, True]), np.array([1.5, 2.0], dtype='float16')
    assert (i / i).dtype == (b / b).dtype == (i / 2).dtype == (3 / i).dtype == np.divide(i, i).dtype == onp.float32
    assert (i + f).dtype == (f * i).dtype == np.subtract(i, f).dtype == onp.float16
    assert (i + np.array([1, 2], dtype='int64')).dtype == onp.int64
    onp.testing.assert_allclose((i / 2).asnumpy(), [1.5, 2.0])
