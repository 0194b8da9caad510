"""mx.np.linalg against NumPy: every function eagerly, hybridized (equal to eager) and differentiated (central
differences through the compositions: matrix norms, tensorinv, tensorsolve). The ops' own checks are in op_cases."""
import numpy as onp
import pytest

import graphc as mx
from graphc import autograd, np, npx
from graphc.base import GraphcError
from np_check import Call, check_gradient

R = onp.random.default_rng(3)
M = R.standard_normal((2, 3, 4))
SQ = R.standard_normal((2, 3, 3)) + 3 * onp.eye(3)
SPD = SQ @ onp.swapaxes(SQ, -1, -2)
A6, B6 = R.standard_normal((6, 6)) + 4 * onp.eye(6), R.standard_normal((3, 2))


@pytest.fixture(autouse=True)
def _np_mode():
    npx.set_np()
    yield
    npx.reset_np()


NORMS = [(None, None), ('fro', (0, 2)), ('nuc', (1, 2)), (2, (2, 1)), (-2, (0, 2)), (1, (2, 1)), (-1, (0, 1)),
         ('inf', (1, 0)), ('-inf', (0, 2)), (4, 1), (-3.2, 2), (0, 0), ('inf', 2)]
FUNCS = {  # name: (graphc call, NumPy call, input)
    'svd': (lambda m, a: m.linalg.svd(a)[1], lambda a: onp.linalg.svd(a, compute_uv=False), M),
    'eigh': (lambda m, a: m.linalg.eigh(a, 'U')[0], lambda a: onp.linalg.eigh(a, 'U')[0], SQ),
    'eigvalsh': (lambda m, a: m.linalg.eigvalsh(a), lambda a: onp.linalg.eigvalsh(a), SQ),
    'eigvals': (lambda m, a: m.sort(m.linalg.eigvals(a), axis=-1), lambda a: onp.sort(onp.linalg.eigvals(a).real), SPD),
    'eig': (lambda m, a: m.sort(m.linalg.eig(a)[0], axis=-1), lambda a: onp.sort(onp.linalg.eig(a)[0].real), SPD),
    'cholesky': (lambda m, a: m.linalg.cholesky(a), onp.linalg.cholesky, SPD),
    'solve': (lambda m, a: m.linalg.solve(a, a[..., :2]), lambda a: onp.linalg.solve(a, a[..., :2]), SQ),
    'pinv': (lambda m, a: m.linalg.pinv(a), onp.linalg.pinv, M),
    'tensorinv': (lambda m, a: m.linalg.tensorinv(a, ind=2), lambda a: onp.linalg.tensorinv(a, ind=2),
                  A6.reshape(2, 3, 6)),
    'tensorsolve': (lambda m, a: m.linalg.tensorsolve(a, m.array(B6, dtype=a.dtype), axes=(0,)),
                    lambda a: onp.linalg.tensorsolve(a, B6, axes=(0,)), A6.reshape(2, 3, 2, 3)),
    'qr-tall': (lambda m, a: m.concatenate(m.linalg.qr(a.reshape(4, 6).T), axis=0), None, M),
    'qr-wide': (lambda m, a: m.concatenate(m.linalg.qr(a), axis=-1), None, M),
    'matrix_rank': (lambda m, a: m.linalg.matrix_rank(a), onp.linalg.matrix_rank, M),
    'cond': (lambda m, a: m.linalg.cond(a), onp.linalg.cond, SQ),
    'cond-fro': (lambda m, a: m.linalg.cond(a, 'fro'), lambda a: onp.linalg.cond(a, 'fro'), SQ),
    'matrix_power': (lambda m, a: m.linalg.matrix_power(a, 3) + m.linalg.matrix_power(a, -2),
                     lambda a: onp.linalg.matrix_power(a, 3) + onp.linalg.matrix_power(a, -2), SQ),
    'multi_dot': (lambda m, a: m.linalg.multi_dot([a[0], a[1].T, a[0]]), None, M),
}
for _k in ('qr-tall', 'qr-wide', 'multi_dot'):  # (NumPy takes its own arrays)
    FUNCS[_k] = (FUNCS[_k][0], lambda a, f=FUNCS[_k][0]: f(onp, a), FUNCS[_k][2])



def _norm_call(o, ax):
    return lambda m, a: m.linalg.norm(a, o, ax), \
        lambda a: onp.linalg.norm(a, {'inf': onp.inf, '-inf': -onp.inf}.get(o, o), ax)


CALLS = {**{f'norm-{o}-{ax}': (*_norm_call(o, ax), M) for o, ax in NORMS}, **FUNCS}


@pytest.mark.parametrize('name', sorted(CALLS))
def test_matches_numpy_eager_and_hybridized(name):
    f, ref, a = CALLS[name]
    want = ref(a)
    x = np.array(a, dtype='float64')
    onp.testing.assert_allclose(f(np, x).asnumpy(), want, rtol=1e-8, atol=1e-10)
    net = Call(f)
    net.hybridize()
    onp.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-8, atol=1e-10)
    onp.testing.assert_allclose(f(np, np.array(a, dtype='float32')).asnumpy(), want, rtol=1e-4, atol=1e-4)


GRADS = ['norm-nuc-(1, 2)', 'norm-2-(2, 1)', 'norm--1-(0, 1)', 'norm-4-1', 'tensorinv', 'tensorsolve', 'solve', 'svd',
         'qr-tall', 'qr-wide', 'cond', 'cond-fro', 'matrix_power', 'multi_dot']


@pytest.mark.parametrize('name', GRADS)
def test_gradient_matches_central_differences(name):
    f, _, a = CALLS[name]
    check_gradient(f, a, rtol=1e-4, atol=1e-6)


def test_norm_keepdims_and_errors():
    for o, ax in NORMS[1:]:
        got = np.linalg.norm(np.array(M), o, ax, keepdims=True)
        assert got.shape == onp.linalg.norm(M, {'inf': onp.inf, '-inf': -onp.inf}.get(o, o), ax, keepdims=True).shape
    with pytest.raises(GraphcError, match='two different axes'):
        np.linalg.norm(np.array(M), 2, (1, 1))
    with pytest.raises(GraphcError, match='matrix norm'):
        np.linalg.norm(np.array(M), 'nuc', 1)
    with pytest.raises(GraphcError, match='not square'):
        np.linalg.tensorinv(np.array(M), ind=1)
    with pytest.raises(GraphcError, match='M <= N'):
        np.linalg.svd(np.array(M).transpose(0, 2, 1))
    with pytest.raises(GraphcError, match='does not fit'):
        np.linalg.solve(np.array(SQ), np.array(M).transpose(0, 2, 1))


def test_cholesky_gradient_is_mxnets_symmetric_one():
    # MXNet: dA = 0.5 L^-T copyltu(L^T dL) L^-1 (the test_numpy_op.py formula), for dL = ones
    x = np.array(SPD[0])
    x.attach_grad()
    with autograd.record():
        L = np.linalg.cholesky(x)
    L.backward()
    Ln = L.asnumpy()
    Li = onp.linalg.inv(Ln)
    P = Ln.T @ onp.ones((3, 3))
    want = 0.5 * Li.T @ (onp.tril(P) + onp.tril(P, -1).T) @ Li
    onp.testing.assert_allclose(x.grad.asnumpy(), want, rtol=1e-4, atol=1e-5)


def test_lstsq_in_a_hybridized_block_runs_op_by_op():
    # (residuals' shape depends on the rank: NumPy on the host; the block falls back to running op by op)
    class Net(mx.gluon.nn.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return F.np.linalg.lstsq(a, b, rcond=None)[0]

    net = Net()
    net.hybridize()
    a, b = M[0].T, M[1].T[:, :2]
    with pytest.warns(UserWarning, match="runs op by op"):
        got = net(np.array(a), np.array(b))
    onp.testing.assert_allclose(got.asnumpy(), onp.linalg.lstsq(a, b, rcond=None)[0])
    assert net._dynamic
