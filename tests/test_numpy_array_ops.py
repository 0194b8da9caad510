"""mx.np's einsum, pad, insert, delete, percentile, quantile and median (ops of their own: ops/np_array.py) against
NumPy, eagerly and hybridized, and differentiated (central differences through a composition)."""
import numpy as onp
import pytest

import graphc as mx
from graphc import autograd, np, npx
from graphc.base import GraphcError, GraphcNotSupportedError
from np_check import Call, check_gradient

R = onp.random.default_rng(5)
X = R.standard_normal((3, 4))
Y = R.standard_normal((4, 2))


@pytest.fixture(autouse=True)
def _np_mode():
    npx.set_np()
    yield
    npx.reset_np()


CALLS = {  # name: (call on a module m and an array, input)
    'einsum-matmul': (lambda m, a: m.einsum('ij,jk', a, a.T), X),
    'einsum-diag-trace': (lambda m, a: m.einsum('ii->i', a[:, :3]) + m.einsum('ii', a[:, :3]), X),
    'einsum-ellipsis': (lambda m, a: m.einsum('...j,kj->...k', a.reshape(3, 2, 2), a[:, :2]), X),
    'pad-constant': (lambda m, a: m.pad(a, ((1, 0), (2, 1)), constant_values=3), X),
    'pad-reflect-int': (lambda m, a: m.pad(a, 2, mode='reflect'), X),
    'pad-symmetric-odd': (lambda m, a: m.pad(a, (1, 2), mode='symmetric', reflect_type='odd'), X),
    'pad-edge': (lambda m, a: m.pad(a, ((0, 0), (3, 1)), mode='edge'), X),
    'pad-minimum': (lambda m, a: m.pad(a, 1, mode='minimum'), X),
    'insert-int': (lambda m, a: m.insert(a, 2, a[0], axis=0), X),
    'insert-list-flat': (lambda m, a: m.insert(a, [1, 5, 5], a[0, :3]), X),
    'insert-slice': (lambda m, a: m.insert(a, slice(1, 3), 7.0, axis=1), X),
    'delete-list': (lambda m, a: m.delete(a, [0, 2], axis=1), X),
    'delete-slice-flat': (lambda m, a: m.delete(a, slice(None, None, 2)), X),
    'percentile': (lambda m, a: m.percentile(a, 35, axis=1, method='midpoint'), X),
    'quantile-keepdims': (lambda m, a: m.quantile(a, 0.4, axis=(0, 1), keepdims=True), X),
    'median': (lambda m, a: m.median(a, axis=0), X),
    'roll-pairs': (lambda m, a: m.roll(a, (1, -5), axis=(0, 1)), X),
    'roll-flat': (lambda m, a: m.roll(a, 7), X),
}



@pytest.mark.parametrize('name', sorted(CALLS))
def test_matches_numpy_eager_and_hybridized(name):
    f, a = CALLS[name]
    want = f(onp, a)
    x = np.array(a, dtype='float64')
    onp.testing.assert_allclose(f(np, x).asnumpy(), want, rtol=1e-10, atol=1e-12)
    net = Call(f)
    net.hybridize()
    got = net(x)
    assert got.shape == onp.shape(want)
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-10, atol=1e-12)


def test_quantile_with_an_array_of_q_and_every_interpolation():
    q = onp.array([0.1, 0.5, 0.93])
    for method in ('linear', 'lower', 'higher', 'midpoint', 'nearest'):
        got = np.quantile(np.array(X), np.array(q), axis=1, interpolation=method)
        onp.testing.assert_allclose(got.asnumpy(), onp.quantile(X, q, axis=1, method=method), rtol=1e-6)


@pytest.mark.parametrize('name', ['einsum-matmul', 'einsum-diag-trace', 'einsum-ellipsis', 'pad-constant',
                                  'pad-reflect-int', 'pad-edge', 'insert-list-flat', 'delete-list', 'percentile',
                                  'quantile-keepdims', 'median', 'roll-pairs', 'roll-flat'])
def test_gradient_matches_central_differences(name):
    f, a = CALLS[name]
    check_gradient(f, a, ref=lambda v: f(onp, v))


def test_errors_name_the_function():
    x = np.array(X, dtype='float32')
    with pytest.raises(GraphcNotSupportedError, match='sublist'):
        np.einsum(x, [0, 1])
    with pytest.raises(GraphcError, match="einsum: the term 'j' of 'ij,j' does not fit an operand of shape"):
        np.einsum('ij,j', x, np.ones((3, 3)))
    with pytest.raises(GraphcNotSupportedError, match='constant_values must be one number'):
        np.pad(x, 1, constant_values=(1, 2))
    with pytest.raises(GraphcError, match='pad_width'):
        np.pad(x, ((1, 1),) * 3)
    with pytest.raises(GraphcError, match='q must be in'):
        np.percentile(x, 120)
    with pytest.raises(GraphcNotSupportedError, match='obj must be known'):
        np.delete(x, mx.sym.var('i'))
    x.attach_grad()
    for kw, what in (({'mode': 'maximum'}, "mode='maximum'"), ({'mode': 'reflect', 'reflect_type': 'odd'}, "reflect_type='odd'")):
        with autograd.record():
            y = np.pad(x, 1, **kw).sum()
        with pytest.raises(GraphcError, match=f"gradient of {what}"):
            y.backward()


def test_roll_on_a_symbol_without_shape_and_diagonal_axes():
    y = mx.sym.np.roll(mx.sym.Variable('x').as_np_ndarray(), shift=2, axis=1)  # (an op: no shape needed)
    ex = y.as_nd_ndarray().bind(mx.cpu(), {'x': mx.nd.array(X)})
    onp.testing.assert_allclose(ex.forward()[0].asnumpy(), onp.roll(X, 2, 1), rtol=1e-6)
    assert np.trace(np.zeros((0, 0, 0)), offset=3).shape == (0,)
    with pytest.raises(GraphcError, match='out of range'):
        np.trace(np.zeros((3, 2, 2)), axis1=0, axis2=-4)
