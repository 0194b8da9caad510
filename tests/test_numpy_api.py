"""mx.np / mx.npx: every native function against NumPy, gradients through them, tracing (F.np) and the
NumPy-on-the-host fallback's refusals."""
import numpy as onp
import pytest

import graphc as mx
from graphc import autograd, np, npx
from graphc.base import GraphcNotSupportedError


@pytest.fixture(autouse=True)
def _np_mode():
    npx.set_np()
    yield
    npx.reset_np()


R = onp.random.default_rng(0)
A = R.standard_normal((3, 4)).astype('float32')
B = R.standard_normal((3, 4)).astype('float32')
P = onp.abs(A) + 0.5

UNARY = ['exp', 'expm1', 'log', 'log2', 'log10', 'log1p', 'sqrt', 'cbrt', 'square', 'sin', 'cos', 'tan', 'arctan',
         'sinh', 'cosh', 'tanh', 'arcsinh', 'degrees', 'radians', 'floor', 'ceil', 'trunc', 'rint', 'sign',
         'reciprocal', 'negative', 'abs', 'absolute', 'fabs', 'positive', 'isnan', 'isinf', 'isfinite', 'logical_not']
BINARY = ['add', 'subtract', 'multiply', 'divide', 'true_divide', 'power', 'mod', 'maximum', 'minimum', 'equal',
          'not_equal', 'greater', 'less', 'greater_equal', 'less_equal', 'floor_divide', 'hypot', 'logical_and',
          'logical_or', 'logical_xor', 'arctan2', 'copysign']


@pytest.mark.parametrize('name', UNARY)
def test_unary_matches_numpy(name):
    x = P if name in ('log', 'log2', 'log10', 'log1p', 'sqrt', 'reciprocal') else A
    got, want = getattr(np, name)(np.array(x)), getattr(onp, name)(x)
    assert got.dtype == want.dtype, name
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', BINARY)
def test_binary_matches_numpy_with_broadcasting(name):
    x, y = (P, P[:1]) if name in ('power', 'mod', 'floor_divide') else (A, B[:1])
    got, want = getattr(np, name)(np.array(x), np.array(y)), getattr(onp, name)(x, y)
    assert got.shape == want.shape and got.dtype == want.dtype, name
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)
    onp.testing.assert_allclose(getattr(np, name)(np.array(x), 2.0).asnumpy(), getattr(onp, name)(x, onp.float32(2)),
                                rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', ['sum', 'mean', 'prod', 'max', 'min', 'amax', 'amin', 'argmax', 'argmin', 'std',
                                  'var', 'all', 'any', 'count_nonzero', 'cumsum'])
@pytest.mark.parametrize('axis', [None, 0, 1])
def test_reductions(name, axis):
    x = (A > 0).astype('float32') if name in ('all', 'any') else A
    got, want = getattr(np, name)(np.array(x), axis=axis), getattr(onp, name)(x, axis=axis)
    assert got.shape == onp.shape(want), (name, axis)
    if name in ('argmax', 'argmin', 'count_nonzero'):
        assert got.dtype == onp.int64
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-5, atol=1e-6)
    if name not in ('cumsum', 'count_nonzero', 'argmax', 'argmin') and axis is not None:
        assert getattr(np, name)(np.array(x), axis=axis, keepdims=True).shape == \
            getattr(onp, name)(x, axis=axis, keepdims=True).shape


def test_var_ddof_and_average():
    onp.testing.assert_allclose(np.var(np.array(A), axis=1, ddof=1).asnumpy(), onp.var(A, axis=1, ddof=1), rtol=1e-5)
    w = onp.arange(1, 5, dtype='float32')
    onp.testing.assert_allclose(np.average(np.array(A), axis=1, weights=np.array(w)).asnumpy(),
                                onp.average(A, axis=1, weights=w), rtol=1e-5)


SHAPE_CASES = [
    ('reshape', lambda m, a: m.reshape(a, (2, 6)), A),
    ('reshape0', lambda m, a: m.reshape(a, (0, 4)), onp.zeros((0, 2, 2), 'float32')),
    ('ravel', lambda m, a: m.ravel(a), A),
    ('transpose', lambda m, a: m.transpose(a), A),
    ('transpose_axes', lambda m, a: m.transpose(a, (1, 0)), A),
    ('swapaxes', lambda m, a: m.swapaxes(a, 0, 1), A),
    ('moveaxis', lambda m, a: m.moveaxis(a, 0, -1), R.standard_normal((2, 3, 4)).astype('float32')),
    ('rollaxis', lambda m, a: m.rollaxis(a, 2), R.standard_normal((2, 3, 4)).astype('float32')),
    ('expand_dims', lambda m, a: m.expand_dims(a, 1), A),
    ('squeeze', lambda m, a: m.squeeze(a), A[:1]),
    ('broadcast_to', lambda m, a: m.broadcast_to(a, (2, 3, 4)), A),
    ('concatenate', lambda m, a: m.concatenate([a, a], axis=1), A),
    ('concatenate_none', lambda m, a: m.concatenate([a, a], axis=None), A),
    ('stack', lambda m, a: m.stack([a, a], axis=2), A),
    ('vstack', lambda m, a: m.vstack([a, a]), A),
    ('hstack', lambda m, a: m.hstack([a, a]), A),
    ('dstack', lambda m, a: m.dstack([a, a]), A),
    ('column_stack', lambda m, a: m.column_stack([a[0], a[1]]), A),
    ('append', lambda m, a: m.append(a, a, axis=0), A),
    ('tile', lambda m, a: m.tile(a, (2, 1)), A),
    ('repeat', lambda m, a: m.repeat(a, 2, axis=1), A),
    ('repeat_flat', lambda m, a: m.repeat(a, 2), A),
    ('flip', lambda m, a: m.flip(a), A),
    ('flip1', lambda m, a: m.flip(a, 1), A),
    ('fliplr', lambda m, a: m.fliplr(a), A),
    ('roll', lambda m, a: m.roll(a, 1, axis=1), A),
    ('roll_flat', lambda m, a: m.roll(a, -3), A),
    ('sort', lambda m, a: m.sort(a, axis=0), A),
    ('argsort', lambda m, a: m.argsort(a), A),
    ('take', lambda m, a: m.take(a, [2, 0, -1]), A),
    ('take_axis', lambda m, a: m.take(a, [2, 0], axis=1), A),
    ('diag', lambda m, a: m.diag(a, 1), A),
    ('tril', lambda m, a: m.tril(a), A),
    ('triu', lambda m, a: m.triu(a, 1), A),
    ('clip', lambda m, a: m.clip(a, -0.5, None), A),
    ('around', lambda m, a: m.around(a, 1), A),
    ('where', lambda m, a: m.where(a > 0, a, 0.0), A),
    ('where_bcast', lambda m, a: m.where(a[:1] > 0, a, a[:, :1]), A),
    ('dot', lambda m, a: m.dot(a, a.T), A),
    ('dot_nd', lambda m, a: m.dot(m.reshape(a, (3, 2, 2)), m.reshape(a, (2, 2, 3))), A),
    ('matmul', lambda m, a: m.matmul(m.reshape(a, (3, 2, 2)), m.reshape(a, (1, 2, 6))), A),
    ('matmul_1d', lambda m, a: m.matmul(a, a[0]), A),
    ('tensordot', lambda m, a: m.tensordot(a, a, ([1], [1])), A),
    ('inner', lambda m, a: m.inner(a, a), A),
    ('outer', lambda m, a: m.outer(a[0], a[1]), A),
    ('vdot', lambda m, a: m.vdot(a, a), A),
    ('norm', lambda m, a: m.linalg.norm(a), A),
    ('norm_axis', lambda m, a: m.linalg.norm(a, axis=1), A),
    ('norm_1', lambda m, a: m.linalg.norm(a, 1, axis=0), A),
    ('norm_inf', lambda m, a: m.linalg.norm(a[0], onp.inf), A),
    ('norm_nuc', lambda m, a: m.linalg.norm(a, 'nuc'), A),
    ('det', lambda m, a: m.linalg.det(a[:, :3]), A),
    ('inv', lambda m, a: m.linalg.inv(m.dot(a, a.T) + m.eye(3)), A),
    ('slogdet', lambda m, a: m.linalg.slogdet(a[:, :3])[1], A),
    ('cholesky', lambda m, a: m.linalg.cholesky(m.dot(a, a.T) + m.eye(3)), A),
]


@pytest.mark.parametrize('name,f,x', SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES])
def test_shape_and_product_functions_match_numpy(name, f, x):
    got, want = f(np, np.array(x)), f(onp, x)
    assert got.shape == onp.shape(want), name
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-4, atol=1e-5)


def test_split_family():
    x = onp.arange(24, dtype='float32').reshape(4, 6)
    for got, want in [(np.split(np.array(x), 3, axis=1), onp.split(x, 3, axis=1)),
                      (np.split(np.array(x), [1, 3], axis=0), onp.split(x, [1, 3], axis=0)),
                      (np.array_split(np.array(x), 4, axis=1), onp.array_split(x, 4, axis=1)),
                      (np.hsplit(np.array(x), 2), onp.hsplit(x, 2)), (np.vsplit(np.array(x), 2), onp.vsplit(x, 2))]:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            onp.testing.assert_array_equal(g.asnumpy(), w)
    with pytest.raises(ValueError, match='equal division'):
        np.split(np.array(x), 4, axis=1)


def test_creation_defaults_follow_mxnet():
    assert np.array([1, 2, 3]).dtype == onp.float32  # MXNet's np: float32 unless told
    assert np.array(onp.arange(3)).dtype == onp.int64  # a NumPy array keeps its dtype
    assert np.arange(3).dtype == onp.float32 and np.zeros(2).dtype == onp.float32
    assert np.full((2,), 3).dtype == onp.float32 and np.ones((2, 2), dtype='int32').dtype == onp.int32
    onp.testing.assert_allclose(np.linspace(0, 1, 5).asnumpy(), onp.linspace(0, 1, 5))
    onp.testing.assert_array_equal(np.eye(3, k=1).asnumpy(), onp.eye(3, k=1))
    assert np.zeros_like(np.array(A)).shape == A.shape and np.full_like(np.array(A), 2).asnumpy()[0, 0] == 2
    assert isinstance(np.array([1.0]), np.ndarray) and isinstance(mx.nd.ones(2), np.ndarray)


def test_np_mode_array_conventions():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert repr(x) == 'array([[1., 2.],\n       [3., 4.]])'
    assert repr(np.argmax(x, axis=1)) == 'array([1, 1], dtype=int64)'
    assert (x == x).dtype == onp.bool_ and (x > 2).asnumpy().tolist() == [[False, False], [True, True]]
    assert x.sum().shape == () and x[0, 1].shape == ()
    assert x.reshape(-1).shape == (4,) and np.zeros((0, 3)).reshape(0, 3).shape == (0, 3)
    onp.testing.assert_allclose((x @ x).asnumpy(), onp.array([[7, 10], [15, 22]]))
    npx.reset_np()
    assert (x == x).dtype == onp.float32 and repr(x).endswith('<NDArray 2x2 @cpu(0)>')  # MXNet's NDArray again
    assert mx.is_np_array() is False
    with mx.np_array():
        assert mx.is_np_array()
    with pytest.raises(GraphcNotSupportedError, match='float64'):
        npx.set_np(dtype=True)


def test_gradients_through_np_functions_match_finite_differences():
    def f(m, x):
        return m.sum(m.tanh(m.dot(x, x.T)) * m.exp(-m.square(x[:, :3]).mean(axis=1, keepdims=True)) +
                     m.var(x, axis=0).max() + m.linalg.norm(x))
    x = np.array(A.astype('float64'), dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = f(np, x)
    y.backward()
    g, eps = onp.zeros_like(A, dtype='float64'), 1e-6
    for i in onp.ndindex(A.shape):
        d = onp.zeros_like(g)
        d[i] = eps
        hi, lo = A.astype('float64') + d, A.astype('float64') - d
        g[i] = (float(f(np, np.array(hi, dtype='float64'))) - float(f(np, np.array(lo, dtype='float64')))) / (2 * eps)
    onp.testing.assert_allclose(x.grad.asnumpy(), g, rtol=1e-4, atol=1e-6)


def test_hybridized_block_with_F_np_equals_eager():
    class Net(mx.gluon.nn.HybridBlock):
        def __init__(self):
            super().__init__()
            self.d1, self.d2 = mx.gluon.nn.Dense(8), mx.gluon.nn.Dense(3)

        def hybrid_forward(self, F, x):
            h = F.np.tanh(self.d1(x)) + F.np.maximum(x.sum(axis=1, keepdims=True), 0)
            return F.npx.log_softmax(self.d2(F.npx.relu(h)))

    net = Net()
    net.initialize()
    x = np.random.uniform(size=(4, 5))
    eager = net(x)
    net.hybridize()
    onp.testing.assert_allclose(net(x).asnumpy(), eager.asnumpy(), rtol=1e-5, atol=1e-6)


def test_host_fallback_runs_numpy_and_refuses_gradients_and_tracing():
    u = np.unique(np.array([3.0, 1.0, 3.0]))
    assert u.asnumpy().tolist() == [1.0, 3.0] and isinstance(u, np.ndarray)
    onp.testing.assert_allclose(np.einsum('ij,kj->ik', np.array(A), np.array(A)).asnumpy(), A @ A.T, rtol=1e-5)
    x = np.array(A)
    x.attach_grad()
    with autograd.record(), pytest.raises(GraphcNotSupportedError, match='np.unique.*cannot be differentiated'):
        np.unique(x)
    x = mx.sym.var('x')
    with pytest.raises(GraphcNotSupportedError, match='np.histogram.*hybridized graph'):
        np.histogram(x)
    with pytest.raises(AttributeError, match="no attribute 'not_a_numpy_name'"):
        np.not_a_numpy_name


def test_random_follows_numpy_signatures_and_seed():
    assert np.random.uniform().shape == () and np.random.normal(0, 1, (2, 3)).shape == (2, 3)
    assert np.random.uniform(size=5).shape == (5,) and np.random.randn(2, 2).shape == (2, 2)
    r = np.random.randint(0, 4, size=(100,))
    assert r.dtype == onp.int64 and 0 <= int(r.min()) and int(r.max()) < 4
    mx.random.seed(7)
    a = np.random.normal(size=(4,)).asnumpy()
    mx.random.seed(7)
    onp.testing.assert_array_equal(np.random.normal(size=(4,)).asnumpy(), a)
    lo = np.array([0.0, 10.0])
    s = np.random.uniform(lo, lo + 1)
    assert s.shape == (2,) and 10 <= float(s[1]) < 11
    c = np.random.choice(5, size=3, replace=False).asnumpy()
    assert len(set(c.tolist())) == 3
    x = np.arange(10)
    np.random.shuffle(x)
    assert sorted(x.asnumpy().tolist()) == list(range(10))


def test_npx_operators():
    x = np.array(A)
    onp.testing.assert_allclose(npx.relu(x).asnumpy(), onp.maximum(A, 0))
    sm = npx.softmax(x)
    onp.testing.assert_allclose(sm.asnumpy(), onp.exp(A) / onp.exp(A).sum(-1, keepdims=True), rtol=1e-5)
    onp.testing.assert_allclose(npx.pick(x, np.array([0, 1, 3]), axis=1).asnumpy(), A[[0, 1, 2], [0, 1, 3]])
    assert npx.one_hot(np.array([0, 2]), 3).asnumpy().tolist() == [[1, 0, 0], [0, 0, 1]]
    assert npx.reshape(np.zeros((2, 3, 4)), (-2, -1)).shape == (2, 12)
    assert npx.reshape(np.zeros((2, 3, 4)), (-5, -4)).shape == (6, 4)
    assert npx.reshape(np.zeros((2, 3, 4)), (-4,)).shape == (2, 3, 4)
    m = npx.sequence_mask(np.ones((3, 2)), np.array([1, 3]), use_sequence_length=True)
    assert m.asnumpy().tolist() == [[1, 1], [0, 1], [0, 1]]
    assert npx.nonzero(np.array([[0, 1], [2, 0]])).asnumpy().tolist() == [[0, 1], [1, 0]]
    assert npx.batch_dot(np.ones((2, 3, 4)), np.ones((2, 4, 5))).shape == (2, 3, 5)


def test_linear_regression_from_scratch_as_in_the_textbook():
    true_w, true_b = np.array([2, -3.4]), 4.2
    mx.random.seed(1)
    X = np.random.normal(0, 1, (1000, 2))
    y = (np.dot(X, true_w) + true_b).reshape((-1, 1))
    w, b = np.random.normal(0, 0.01, (2, 1)), np.zeros(1)
    w.attach_grad()
    b.attach_grad()
    for _ in range(3):
        for i in range(0, 1000, 10):
            Xb, yb = X[i:i + 10], y[i:i + 10]
            with autograd.record():
                loss = ((np.dot(Xb, w) + b - yb) ** 2 / 2).sum()
            loss.backward()
            for p in (w, b):
                p[:] = p - 0.03 * p.grad / 10
    onp.testing.assert_allclose(w.reshape(-1).asnumpy(), [2, -3.4], atol=2e-2)
    assert abs(float(b) - 4.2) < 2e-2


def test_np_array_methods():
    x = np.array([[1.0, 5.0], [3.0, 4.0]])
    a = x.asnumpy()
    assert x.flatten().shape == (4,) and x.argmax(axis=1).dtype == onp.int64
    onp.testing.assert_allclose(x.std().asnumpy(), a.std(), rtol=1e-6)
    onp.testing.assert_allclose(x.var(axis=0).asnumpy(), a.var(axis=0), rtol=1e-6)
    assert bool(x.any()) and bool(x.all()) and float(x.trace()) == 5.0
    onp.testing.assert_allclose(x.dot(x).asnumpy(), a @ a)
    assert [v.asnumpy().tolist() for v in x.nonzero()] == [list(v) for v in a.nonzero()]
    npx.reset_np()
    assert x.flatten().shape == (2, 2) and x.argmax(axis=1).dtype == onp.float32  # MXNet's NDArray methods


def test_hybridized_block_with_a_data_dependent_shape_runs_op_by_op():
    class Net(mx.gluon.nn.HybridBlock):
        def hybrid_forward(self, F, x):
            u, counts = F.np.unique(x, return_counts=True)
            return u * 2, counts, F.npx.nonzero(x > 1), F.np.bincount(x.astype('int32'))

    x = np.array([3.0, 1.0, 3.0, 2.0])
    net = Net()
    eager = [o.asnumpy() for o in net(x)]
    net.hybridize()
    with pytest.warns(UserWarning, match=r"runs op by op, not compiled: np.unique: its output shape depends"):
        got = [o.asnumpy() for o in net(x)]
    assert net._dynamic and net.trace_count == 0  # (no graph: the forward ran op by op)
    for g, e, want in zip(got, eager, [[2.0, 4.0, 6.0], [1, 1, 2], [[0], [2], [3]], [0, 1, 1, 2]]):
        onp.testing.assert_array_equal(g, e)
        onp.testing.assert_array_equal(g, want)
    net.hybridize()  # a new hybridize() traces again (and falls back again)
    assert not net._dynamic
    with pytest.warns(UserWarning, match="runs op by op"):
        net(x)
    assert net._dynamic

    assert npx.nonzero(np.array(0.0)).shape == (0, 1) and npx.nonzero(np.array(2.0)).shape == (1, 1)  # (0-d: as 1-d)

    class Hist(mx.gluon.nn.HybridBlock):
        def hybrid_forward(self, F, x):
            return F.np.histogram(x)[0]
    h = Hist()
    h.hybridize()
    with pytest.raises(GraphcNotSupportedError, match='np.histogram.*hybridized graph'):
        h(x)


def test_integer_binaries_and_ldexp_trace_and_differentiate():
    i, j = onp.arange(-6, 6, dtype='int32').reshape(3, 4), onp.array([3, -2, 5, 7], dtype='int32')
    for name in ('lcm', 'bitwise_and', 'bitwise_or', 'bitwise_xor'):
        want = getattr(onp, name)(i, j)
        got = getattr(np, name)(np.array(i), np.array(j))
        assert got.dtype == want.dtype and (got.asnumpy() == want).all(), name
    onp.testing.assert_allclose(np.ldexp(np.array(A), np.array(j)).asnumpy(), onp.ldexp(A, j), rtol=1e-6)

    class Net(mx.gluon.nn.HybridBlock):
        def hybrid_forward(self, F, a, b):
            return F.np.arctan2(a, b) * F.np.copysign(a, b) + F.np.ldexp(a, b)
    x, y = np.array(A.astype('float64')), np.array(B[:1].astype('float64'))
    x.attach_grad(), y.attach_grad()
    net = Net()
    eager = net(x, y)
    net.hybridize()
    with autograd.record():
        out = net(x, y)
    out.backward()
    onp.testing.assert_allclose(out.asnumpy(), eager.asnumpy(), rtol=1e-12)
    f = lambda a, b: onp.arctan2(a, b) * onp.copysign(a, b) + a * 2.0 ** b  # noqa: E731
    eps, a, b = 1e-6, A.astype('float64'), B[:1].astype('float64')
    ga = (f(a + eps, b) - f(a - eps, b)) / (2 * eps)
    gb = ((f(a, b + eps) - f(a, b - eps)) / (2 * eps)).sum(0, keepdims=True)
    onp.testing.assert_allclose(x.grad.asnumpy(), ga, rtol=1e-5, atol=1e-7)
    onp.testing.assert_allclose(y.grad.asnumpy(), gb, rtol=1e-5, atol=1e-7)
