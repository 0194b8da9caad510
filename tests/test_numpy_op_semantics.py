"""mx.np semantics that MXNet's test_numpy_op.py relies on: NumPy's axis=() and empty-axis reductions, MXNet's
float16 accumulation and dtype= casts, NumPy-form array methods (eager and traced), broadcast_to's 0 and -2,
and mx.np.random / npx.random's reparameterized samplers (moments, gradients, parameter checks)."""
import numpy as onp
import pytest

import graphc as mx
from graphc import autograd, gluon, np, npx


@pytest.fixture(autouse=True)
def _np_mode():
    npx.set_np()
    yield
    npx.reset_np()


R = onp.random.default_rng(1)
X = R.standard_normal((2, 3, 4)).astype('float32')


@pytest.mark.parametrize('name', ['sum', 'mean', 'prod', 'max', 'min', 'any', 'all'])
def test_axis_empty_tuple_reduces_nothing(name):
    got = getattr(np, name)(np.array(X), axis=(), keepdims=False)
    want = getattr(onp, name)(X, axis=())
    assert got.shape == want.shape
    onp.testing.assert_allclose(got.asnumpy(), want, rtol=1e-6)


def test_any_all_over_an_empty_axis():
    z = onp.zeros((6, 0, 5), dtype='float32')
    for name in ('any', 'all'):
        got = getattr(np, name)(np.array(z), axis=1)
        onp.testing.assert_array_equal(got.asnumpy(), getattr(onp, name)(z, axis=1))


def test_float16_sums_accumulate_in_float32_and_dtype_casts_the_result():
    x = R.uniform(-1, 1, (3, 400)).astype('float16')
    got = np.sum(np.array(x), axis=1)
    assert got.dtype == onp.float16
    onp.testing.assert_allclose(got.asnumpy(), x.astype('float64').sum(1).astype('float16'), rtol=1e-3)
    y = np.mean(np.array(X), axis=1, dtype='int32')
    assert y.dtype == onp.int32
    onp.testing.assert_array_equal(y.asnumpy(), X.mean(1).astype('int32'))


def test_mean_gradient_is_one_over_n_whatever_the_output_dtype():
    for dt in (None, 'float16', 'int32'):
        x = np.array(X.astype('float64'))
        x.attach_grad()
        with autograd.record():
            y = x.mean(axis=2, dtype=dt)
        y.backward()
        onp.testing.assert_array_equal(x.grad.asnumpy(), onp.full(X.shape, 1 / 4))


def test_var_argmax_cumsum_edge_cases():
    assert onp.isnan(np.var(np.array([1.0, 2.0]), axis=(), ddof=1).asnumpy()).all()
    assert int(np.argmax(np.array(3.0), axis=-1)) == 0
    assert np.cumsum(np.array([True, False, True])).dtype == onp.float32  # (MXNet's dtype)
    assert np.cumsum(np.array([1, 2], dtype='int8')).dtype == onp.int8


class _Methods(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return [x.max(axis=(0, 2), keepdims=True), x.flatten(), x.clip(min=-0.5, max=0.5), x.transpose(2, 0, 1),
                x.sum(axis=()), x.repeat(2, 1), x.mean(axis=1, dtype='float16')]


def test_numpy_array_methods_eager_and_traced_agree_with_numpy():
    want = [X.max(axis=(0, 2), keepdims=True), X.flatten(), X.clip(-0.5, 0.5), X.transpose(2, 0, 1), X,
            X.repeat(2, 1), X.mean(1).astype('float16')]
    for hybridize in (False, True):
        b = _Methods()
        if hybridize:
            b.hybridize()
        for g, w in zip(b(np.array(X)), want):
            assert g.shape == w.shape and g.dtype == w.dtype
            onp.testing.assert_allclose(g.asnumpy(), w, rtol=1e-3)


def test_broadcast_to_zero_sizes_and_npx_keep_code():
    x = np.ones((1, 1))
    x.attach_grad()
    with autograd.record():
        y = np.broadcast_to(x, (2, 4, 0))
    y.backward()
    assert y.shape == (2, 4, 0) and x.grad.asnumpy().tolist() == [[0.0]]
    assert np.broadcast_to(np.ones((5,)), (3, 4, -2)).shape == (3, 4, 5)
    with pytest.raises(mx.MXNetError):
        np.broadcast_to(np.ones((3,)), (2, 4))


# ---------------------------------------------------------------- random
SAMPLERS = {  # name: (params, NumPy's sampler for the same parameters, gradient d sample / d params[0])
    'normal': ((1.5, 2.0), lambda g, n: g.normal(1.5, 2.0, n), lambda s, p: onp.ones_like(s)),
    'uniform': ((-1.0, 3.0), lambda g, n: g.uniform(-1.0, 3.0, n), lambda s, p: (3.0 - s) / 4.0),
    'lognormal': ((0.1, 0.5), lambda g, n: g.lognormal(0.1, 0.5, n), lambda s, p: s),
    'logistic': ((1.0, 2.0), lambda g, n: g.logistic(1.0, 2.0, n), lambda s, p: onp.ones_like(s)),
    'gumbel': ((1.0, 2.0), lambda g, n: g.gumbel(1.0, 2.0, n), lambda s, p: onp.ones_like(s)),
    'exponential': ((2.0,), lambda g, n: g.exponential(2.0, n), lambda s, p: s / 2.0),
    'rayleigh': ((2.0,), lambda g, n: g.rayleigh(2.0, n), lambda s, p: s / 2.0),
    'weibull': ((1.5,), lambda g, n: g.weibull(1.5, n), lambda s, p: -s * onp.log(s) / 1.5),
    'pareto': ((3.0,), lambda g, n: g.pareto(3.0, n), lambda s, p: -(s + 1) * onp.log(s + 1) / 3.0),
    'power': ((2.0,), lambda g, n: g.power(2.0, n), lambda s, p: -s * onp.log(s) / 2.0),
}


@pytest.mark.parametrize('name', sorted(SAMPLERS))
def test_sampler_moments_match_numpy(name):
    params, ref, _ = SAMPLERS[name]
    mx.random.seed(7)
    got = getattr(np.random, name)(*params, size=(20000,)).asnumpy()
    want = ref(onp.random.default_rng(7), 20000)
    assert got.shape == (20000,) and got.dtype == onp.float32
    for q in (0.25, 0.5, 0.75):  # quartiles within a few standard errors
        assert abs(onp.quantile(got, q) - onp.quantile(want, q)) < 0.05 * (onp.quantile(want, 0.9) -
                                                                          onp.quantile(want, 0.1))


@pytest.mark.parametrize('name', sorted(SAMPLERS))
def test_sampler_gradient_wrt_first_parameter(name):
    """The reparameterized sample s(p, noise): ds/dp matches the closed form at the drawn sample."""
    params, _, grad = SAMPLERS[name]
    p = np.full((500,), params[0])
    p.attach_grad()
    with autograd.record():
        s = getattr(np.random, name)(p, *params[1:])
    s.backward()
    onp.testing.assert_allclose(p.grad.asnumpy(), grad(s.asnumpy().astype('float64'), params), rtol=2e-3,
                                atol=2e-4)


def test_normal_gradient_wrt_scale_and_broadcast_shapes():
    loc, scale = np.zeros((3, 1)), np.ones((4,))
    loc.attach_grad()
    scale.attach_grad()
    with autograd.record():
        s = np.random.normal(loc, scale, size=(2, 3, 4))
    s.backward()
    assert s.shape == (2, 3, 4)
    onp.testing.assert_allclose(loc.grad.asnumpy(), onp.full((3, 1), 8.0))
    onp.testing.assert_allclose(scale.grad.asnumpy(), s.asnumpy().sum((0, 1)), rtol=1e-5, atol=1e-5)


class _Sample(gluon.HybridBlock):
    def hybrid_forward(self, F, a, b):
        return [F.np.random.normal(a, b, size=(5, 3)), F.np.random.beta(a + 1, b, size=(5, 3)),
                F.np.random.weibull(b, size=(3,)), F.npx.random.normal_n(a, b, batch_shape=(2,))]


def test_samplers_trace_in_hybridized_blocks():
    b = _Sample()
    b.hybridize()
    outs = b(np.zeros((3,)), np.ones((3,)))
    assert [o.shape for o in outs] == [(5, 3), (5, 3), (3,), (2, 3)]
    beta = outs[1].asnumpy()
    assert ((beta > 0) & (beta < 1)).all()


@pytest.mark.parametrize('call', [lambda: np.random.exponential(-1.0), lambda: np.random.rayleigh(scale=-1),
                                  lambda: np.random.lognormal(sigma=-1), lambda: np.random.gamma(1, 0),
                                  lambda: np.random.gamma(np.array(0.0)), lambda: np.random.weibull(0),
                                  lambda: np.random.pareto(-1), lambda: npx.random.bernoulli(prob=1.5),
                                  lambda: npx.random.bernoulli(prob=0.5, logit=0.0)])
def test_bad_parameters_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_gamma_beta_chisquare_multivariate_normal_shapes_and_ranges():
    assert np.random.gamma(2.0, size=(3, 2), dtype='float64').dtype == onp.float64
    b = np.random.beta(np.array([2.0]), np.array([3.0]), size=(4000,), dtype='float64').asnumpy()
    assert ((b > 0) & (b < 1)).all() and abs(b.mean() - 0.4) < 0.02
    c = np.random.chisquare(np.array([3.0]), size=(4000,)).asnumpy()
    assert abs(c.mean() - 3.0) < 0.2
    cov = onp.array([[1.0, 0.5], [0.5, 2.0]])
    m = np.random.multivariate_normal(np.array([1.0, -1.0]), np.array(cov), size=20000).asnumpy()
    assert m.shape == (20000, 2)
    onp.testing.assert_allclose(onp.cov(m.T), cov, atol=0.08)
    assert np.random.multivariate_normal(np.zeros((3, 2)), np.array(onp.eye(2)), (4,)).shape == (4, 3, 2)


def test_npx_random():
    npx.random.seed(seed=3)
    a = np.random.uniform(size=(2, 3))
    npx.random.seed(3)
    onp.testing.assert_array_equal(a.asnumpy(), np.random.uniform(size=(2, 3)).asnumpy())
    s = npx.random.bernoulli(prob=np.full((20000,), 0.3), dtype='int32')
    assert s.dtype == onp.int32 and abs(s.asnumpy().mean() - 0.3) < 0.02
    s = npx.random.bernoulli(logit=0.0, size=(3, 4), dtype='bool')
    assert s.shape == (3, 4) and s.dtype == onp.bool_
    assert npx.random.uniform_n(np.zeros((2,)), 1.0, batch_shape=(4, 5)).shape == (4, 5, 2)


@pytest.mark.parametrize('name', ['hanning', 'hamming', 'blackman'])
def test_windows_match_numpy(name):
    for m in (-3, 0, 1, 6):
        got = getattr(np, name)(m, dtype='float64')
        assert got.dtype == onp.float64
        onp.testing.assert_allclose(got.asnumpy(), getattr(onp, name)(m))
    assert getattr(np, name)(4).dtype == onp.float32


def test_eye_rejects_negative_sizes():
    with pytest.raises(mx.MXNetError, match='negative'):
        np.eye(-1)
    with pytest.raises(mx.MXNetError):
        np.eye(2, -1)


@pytest.mark.parametrize('kw, err', [({'where': False}, NotImplementedError), ({'subok': False}, NotImplementedError),
                                     ({'dtype': onp.int8}, NotImplementedError), ({'dtype': 'abcdefg'}, TypeError),
                                     ({'casting': 'safe'}, NotImplementedError), ({'casting': 'mxnet'}, TypeError),
                                     ({'order': 'C'}, NotImplementedError), ({'bogus': 1}, TypeError)])
def test_ufunc_keywords_follow_mxnet(kw, err):
    x = np.array(X)
    for f in (lambda: np.exp(x, **kw), lambda: np.add(x, x, **kw), lambda: np.isnan(x, **kw)):
        with pytest.raises(err):
            f()
    ok = {'where': True, 'casting': 'same_kind', 'order': 'K', 'dtype': None, 'subok': True}
    onp.testing.assert_allclose(np.exp(x, **ok).asnumpy(), onp.exp(X), rtol=1e-6)


def test_bool_functions_on_integers_and_out():
    i = np.array([1, -2, 3], dtype='int32')
    assert not np.isinf(i).asnumpy().any() and np.isfinite(i).asnumpy().all() and not np.isnan(i).asnumpy().any()
    out = np.empty((3,), dtype='bool')
    np.isposinf(np.array([onp.inf, 0.0, -onp.inf]), out)
    assert out.asnumpy().tolist() == [True, False, False]
    with pytest.raises(TypeError):
        np.isnan(np.array([1.0]), out=np.empty((1,)))


def test_shape_function_edge_cases_match_numpy():
    x0, v = onp.float32(2.5), R.standard_normal(4).astype('float32')
    assert np.squeeze(np.array(x0), -1).shape == ()
    onp.testing.assert_array_equal(np.column_stack([np.array(x0), np.array(x0)]).asnumpy(),
                                   onp.column_stack([x0, x0]))
    onp.testing.assert_array_equal(np.roll(np.array(X), (1, -2), (0, 2)).asnumpy(), onp.roll(X, (1, -2), (0, 2)))
    onp.testing.assert_array_equal(np.roll(np.array(X), 3, (0, 1)).asnumpy(), onp.roll(X, 3, (0, 1)))
    for k in (-2, 0, 1):
        onp.testing.assert_array_equal(np.tril(np.array(v), k).asnumpy(), onp.tril(v, k))
        onp.testing.assert_array_equal(np.triu(np.array(v), k).asnumpy(), onp.triu(v, k))
    m = R.standard_normal((1, 5)).astype('float32')
    for k in (-6, -1, 4, 5, 6):
        onp.testing.assert_array_equal(np.diag(np.array(m), k).asnumpy(), onp.diag(m, k))
    ints = onp.array([1234, -5678, 15], dtype='int64')
    for d in (-3, -1, 0, 2):
        got = np.around(np.array(ints), d)
        assert got.dtype == onp.int64
        onp.testing.assert_array_equal(got.asnumpy(), onp.around(ints, d))
    e = onp.zeros((5, 0, 3), dtype='float32')
    for axis in (0, -1):
        got = np.argmax(np.array(e), axis=axis)
        assert got.shape == onp.argmax(e, axis=axis).shape and got.dtype == onp.int64


class _Full(gluon.HybridBlock):
    def hybrid_forward(self, F, a):
        return F.np.full((2, 3), a, dtype='float16')


def test_full_with_an_array_value_broadcasts_eagerly_and_traced():
    a = np.array([1.0, 2.0, 3.0])
    want = onp.full((2, 3), onp.array([1.0, 2.0, 3.0]), dtype='float16')
    for hybridize in (False, True):
        b = _Full()
        if hybridize:
            b.hybridize()
        got = b(a)
        assert got.dtype == onp.float16
        onp.testing.assert_array_equal(got.asnumpy(), want)
    assert np.full((2,), np.array(True)).dtype == onp.bool_


def test_matmul_shape_errors_are_mxnet_errors_and_outer_of_symbols():
    for sa, sb in [((1,), (2,)), ((2, 1), (2,)), ((1, 2), (3, 1)), ((1,), ()), ((2, 2, 1), (3, 1, 2))]:
        with pytest.raises(mx.MXNetError):
            np.matmul(np.ones(sa), np.ones(sb))
    a, b = R.standard_normal((2, 3)).astype('float32'), R.standard_normal(4).astype('float32')
    s = mx.sym.np.outer(mx.sym.Variable('a').as_np_ndarray(), mx.sym.Variable('b').as_np_ndarray())
    got = s.as_nd_ndarray().eval(a=mx.nd.array(a), b=mx.nd.array(b))[0]
    onp.testing.assert_allclose(got.asnumpy(), onp.outer(a, b), rtol=1e-6)


Y = R.standard_normal((3, 4, 5)).astype('float32')
COMPOSED = [  # (mx.np call, NumPy reference): graph compositions that used to run in NumPy on the host
    (lambda m, x: m.diagflat(x[0, :2], 1), None), (lambda m, x: m.diagonal(x, 1, 0, 2), None),
    (lambda m, x: m.diagonal(x, -2, 2, 1), None), (lambda m, x: m.diagonal(x, 7, 1, 2), None),
    (lambda m, x: m.trace(x, -1, 1, 2), None), (lambda m, x: m.rot90(x, 1, (0, 2)), None),
    (lambda m, x: m.rot90(x, 2), None), (lambda m, x: m.rot90(x, -1, (2, 1)), None),
    (lambda m, x: m.diff(x, 2, 1), None),
    (lambda m, x: m.diff(x, 1, 0, prepend=0.5, append=x[:1]), lambda x: onp.diff(x, 1, 0, prepend=0.5, append=x[:1])),
    (lambda m, x: m.ediff1d(x[0], to_begin=-1.0, to_end=x[1, 0]),
     lambda x: onp.ediff1d(x[0], to_begin=-1.0, to_end=x[1, 0])),
]  # (None: the same call on NumPy)


@pytest.mark.parametrize('i', range(len(COMPOSED)))
def test_composed_functions_match_numpy_and_gradients_match_finite_differences(i):
    f, ref = COMPOSED[i]
    onp_f = ref or (lambda x: f(onp, x))
    want = onp_f(Y)
    x = np.array(Y)
    x.attach_grad()
    with autograd.record():
        y = f(np, x)
    assert y.shape == want.shape
    onp.testing.assert_allclose(y.asnumpy(), want, rtol=1e-5, atol=1e-6)
    w = R.standard_normal(want.shape)
    y.backward(np.array(w.astype('float32')))
    eps, num = 1e-3, onp.zeros(Y.shape)
    for idx in [(0, 0, 0), (1, 2, 3), (2, 3, 4), (0, 1, 4)]:
        d = onp.zeros(Y.shape)
        d[idx] = eps
        yd = Y.astype('float64')
        num[idx] = ((onp_f(yd + d) - onp_f(yd - d)) * w).sum() / (2 * eps)
        assert abs(x.grad.asnumpy()[idx] - num[idx]) < 1e-2, idx


def test_nan_to_num_values_gradient_and_in_place():
    v = onp.array([onp.nan, onp.inf, -onp.inf, 1.5, -2.0], dtype='float32')
    onp.testing.assert_array_equal(np.nan_to_num(np.array(v)).asnumpy(), onp.nan_to_num(v))
    onp.testing.assert_array_equal(np.nan_to_num(np.array(v), nan=1, posinf=9, neginf=-9).asnumpy(),
                                   onp.nan_to_num(v, nan=1, posinf=9, neginf=-9))
    x = np.array(v)
    x.attach_grad()
    with autograd.record():
        y = np.nan_to_num(x)
    y.backward()
    assert x.grad.asnumpy().tolist() == [0, 0, 0, 1, 1]
    z = np.array(v)
    assert np.nan_to_num(z, copy=False) is z and onp.isfinite(z.asnumpy()).all()
    with pytest.raises(mx.MXNetError):
        np.trace(np.ones((3, 2, 2)), 0, 1, 1)


def test_integer_and_index_functions_match_numpy():
    for dt in ('int8', 'int32', 'int64', 'uint8', 'bool'):
        v = onp.array([0, 1, 5, 100], dtype=dt)
        assert np.bitwise_not(np.array(v)).dtype == onp.dtype(dt)
        onp.testing.assert_array_equal(np.invert(np.array(v)).asnumpy(), onp.invert(v))
    idx = onp.array([[0, 5], [11, 7]], dtype='int32')
    for got, want in zip(np.unravel_index(np.array(idx), (3, 4)), onp.unravel_index(idx, (3, 4))):
        onp.testing.assert_array_equal(got.asnumpy(), want)
    for got, want in zip(np.diag_indices_from(np.ones((4, 4, 4))), onp.diag_indices_from(onp.ones((4, 4, 4)))):
        assert got.dtype == onp.int64
        onp.testing.assert_array_equal(got.asnumpy(), want)
    for src, shp in [((3,), (2, 4)), ((2, 3), 5), ((2, 0), (2, 2)), ((4,), ())]:
        a = R.standard_normal(src).astype('float32')
        onp.testing.assert_array_equal(np.resize(np.array(a), shp).asnumpy(), onp.resize(a, shp))


def test_polyval_values_and_gradients():
    p, x = onp.array([2.0, -1.0, 3.0, 0.5]), onp.array([[0.5, -2.0], [1.5, 0.0]])
    mp, mx_ = np.array(p), np.array(x)
    mp.attach_grad()
    mx_.attach_grad()
    with autograd.record():
        y = np.polyval(mp, mx_)
    y.backward()
    onp.testing.assert_allclose(y.asnumpy(), onp.polyval(p, x), rtol=1e-6)
    onp.testing.assert_allclose(mp.grad.asnumpy(), [(x ** k).sum() for k in (3, 2, 1, 0)], rtol=1e-5)
    onp.testing.assert_allclose(mx_.grad.asnumpy(), onp.polyval(onp.polyder(p), x), rtol=1e-5)
    assert np.polyval(np.array([3, 1], dtype='int64'), np.array([2], dtype='int64')).asnumpy().tolist() == [7]
