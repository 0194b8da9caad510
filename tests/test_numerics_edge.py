"""Numerical edge cases, eager and hybridized (compiled kernels) against independent NumPy oracles: NaN and +-inf
propagate as in NumPy; extreme finite inputs give NumPy's stable results with no spurious overflow; zero-size
tensors; float64 and integer dtypes. Tolerances: float32 rtol 1e-6 (compiled exp/tanh/sigmoid are within 2 ULP,
docs/NUMERICS.md), float64 rtol 1e-13; values below the smallest normal number compare with that as atol."""
import math

import numpy as np
import pytest

from graphc import autograd, gluon, nd
from graphc.base import GraphcError, GraphcShapeError

SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 1.0, -1.0, 0.5, 20.0, -20.0, 88.0, -88.0, 89.0, -89.0, 100.0,
           -100.0, 1e30, -1e30, 710.0, -745.0, 1000.0, -1000.0]
RAISE = dict(over='raise', invalid='raise', divide='raise')  # underflow to 0 is the right answer, not an error


class Fn(gluon.HybridBlock):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def hybrid_forward(self, F, *xs):
        return self.fn(F, *xs)


def both(fn, *arrays):
    """fn(F, *xs) run eagerly and hybridized (traced, optimized, compiled kernels): two lists of NumPy arrays."""
    xs = [nd.array(a, dtype=a.dtype) for a in arrays]
    eager = fn(nd, *xs)
    blk = Fn(fn)
    blk.hybridize()
    hyb = blk(*xs)
    wrap = lambda o: [a.asnumpy() for a in (o if isinstance(o, (list, tuple)) else [o])]  # noqa: E731
    return wrap(eager), wrap(hyb)


def assert_numpy_like(got, want, what=''):
    """Same shape and dtype, NaN and +-inf at the same places, finite values close."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (what, got.shape, got.dtype, want.shape, want.dtype)
    for f in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(f(got), f(want), err_msg=f"{what}: {f.__name__} differs\n{got}\n{want}")
    fin = np.isfinite(want)
    if want.dtype.kind == 'f':
        tiny = np.finfo(want.dtype).tiny
        rtol = 1e-6 if want.dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got[fin], want[fin], rtol=rtol, atol=tiny, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


UNARY = {  # op: NumPy oracle, evaluated in float64 and rounded to the input's dtype
    'exp': np.exp, 'log': np.log, 'log1p': np.log1p, 'expm1': np.expm1, 'sqrt': np.sqrt,
    'rsqrt': lambda x: 1 / np.sqrt(x), 'reciprocal': lambda x: 1 / x, 'square': np.square, 'abs': np.abs,
    'negative': np.negative, 'sign': np.sign, 'tanh': np.tanh, 'sin': np.sin, 'cos': np.cos, 'sigmoid': _sigmoid,
    'relu': lambda x: np.where(np.isnan(x), x, np.maximum(x, 0)), 'softrelu': lambda x: np.logaddexp(0, x),
    'softsign': lambda x: x / (1 + np.abs(x)), 'erf': _erf, 'floor': np.floor, 'ceil': np.ceil, 'round': np.round,
}


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', sorted(UNARY))
def test_unary_nan_inf_and_extremes_as_numpy(name, dtype):
    x = np.array(SPECIAL, dtype)
    with np.errstate(all='ignore'):
        want = UNARY[name](x.astype(np.float64)).astype(dtype)
        if name == 'square' and dtype == 'float32':
            want = np.square(x)  # (1e30)**2 overflows in float32: NumPy's float32 answer is inf
        eager, hyb = both(lambda F, v: F.negative(F.negative(getattr(F, name)(v))), x)  # a 3-op fused kernel
    assert_numpy_like(eager[0], want, f"eager {name}")
    assert_numpy_like(hyb[0], want, f"hybridized {name}")


BINARY = {'add': np.add, 'sub': np.subtract, 'mul': np.multiply, 'div': np.divide, 'maximum': np.maximum,
          'minimum': np.minimum, 'power': np.power, 'greater': np.greater, 'lesser_equal': np.less_equal,
          'equal': np.equal, 'not_equal': np.not_equal}


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', sorted(BINARY))
def test_binary_nan_inf_as_numpy(name, dtype):
    vals = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 2.0, -3.0, 1e30], dtype)
    x, y = vals[:, None], vals[None, :]  # broadcasting: every pair
    with np.errstate(all='ignore'):
        want = BINARY[name](x, y).astype(dtype)
        eager, hyb = both(lambda F, a, b: F.negative(F.negative(getattr(F, 'broadcast_' + name)(a, b))), x, y)
    assert_numpy_like(eager[0], want, f"eager {name}")
    assert_numpy_like(hyb[0], want, f"hybridized {name}")


ROWS = np.array([[1.0, np.nan, 3.0, 0.5], [2.0, 1.0, -np.inf, np.inf], [np.nan] * 4, [-np.inf] * 4, [np.inf] * 4,
                 [-2.0, 0.0, 1.0, 5.0], [1e30, -1e30, 3.0, 1e30]])


def _softmax(x, axis):
    m = x.max(axis, keepdims=True)
    e = np.exp(x - m)
    return e / e.sum(axis, keepdims=True)


def _log_softmax(x, axis):
    m = x.max(axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis, keepdims=True))


REDUCE = {'sum': np.sum, 'mean': np.mean, 'max': np.max, 'min': np.min, 'softmax': _softmax,
          'log_softmax': _log_softmax}


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('axis', [1, 0])
@pytest.mark.parametrize('name', sorted(REDUCE))
def test_reductions_propagate_nan_and_inf_as_numpy(name, axis, dtype):
    x = ROWS.astype(dtype)
    with np.errstate(all='ignore'):
        want = REDUCE[name](x, axis=axis).astype(dtype)
        eager, hyb = both(lambda F, v: getattr(F, name)(F.negative(F.negative(v)), axis=axis), x)  # a fused kernel
    assert_numpy_like(eager[0], want, f"eager {name}")
    assert_numpy_like(hyb[0], want, f"hybridized {name}")


# ---------------------------------------------------------------- extreme finite inputs: stable, no overflow
EXTREME = np.array([-1e30, -1000.0, -100.0, -30.0, -1.0, 0.0, 1.0, 30.0, 100.0, 1000.0, 1e30])
STABLE = {'sigmoid': _sigmoid, 'tanh': np.tanh, 'softrelu': lambda x: np.logaddexp(0, x),
          'softsign': lambda x: x / (1 + np.abs(x)), 'erf': _erf, 'relu': lambda x: np.maximum(x, 0)}


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', sorted(STABLE))
def test_saturating_functions_never_overflow(name, dtype):
    x = EXTREME.astype(dtype)
    with np.errstate(**RAISE):  # a spurious overflow (exp of a large argument) in the eager kernel would raise here
        eager, hyb = both(lambda F, v: F.negative(F.negative(getattr(F, name)(v))), x)
    with np.errstate(all='ignore'):
        want = STABLE[name](x.astype(np.float64)).astype(dtype)
    for got in (eager[0], hyb[0]):
        assert np.isfinite(got).all()
        assert_numpy_like(got, want, name)


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('name', ['softmax', 'log_softmax'])
def test_softmax_family_with_extreme_logits(name, dtype):
    x = np.array([[1000.0, 0.0, -1000.0], [-1e30, 0.0, 1e30], [-1e30, -1e30, -1e30]], dtype)
    with np.errstate(**RAISE):
        eager, hyb = both(lambda F, v: getattr(F, name)(F.negative(F.negative(v)), axis=-1), x)
    want = {'softmax': [[1, 0, 0], [0, 0, 1], [1 / 3] * 3],
            'log_softmax': [[0, -1000, -2000], [-2e30, -1e30, 0], [-np.log(3)] * 3]}[name]
    assert_numpy_like(eager[0], np.array(want, dtype), f"eager {name}")
    assert_numpy_like(hyb[0], np.array(want, dtype), f"hybridized {name}")
    big = np.array([[np.finfo(dtype).max, 0.0, -np.finfo(dtype).max]], dtype)  # max - (-max) overflows in NumPy too
    with np.errstate(all='ignore'):
        want = getattr(nd, name)(nd.array(big, dtype=dtype)).asnumpy()
        eager, hyb = both(lambda F, v: getattr(F, name)(F.negative(F.negative(v)), axis=-1), big)
    assert_numpy_like(want, np.array([[1, 0, 0]] if name == 'softmax' else [[0, -np.finfo(dtype).max, -np.inf]],
                                     dtype))
    assert_numpy_like(hyb[0], want, f"hybridized {name}")


def _logistic(z):  # log(1 + exp(-z)), stable
    return np.logaddexp(0, -z)


LOSSES = [  # (loss block, prediction, label, float64 oracle per sample)
    (lambda: gluon.loss.SoftmaxCrossEntropyLoss(), np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [1e30, 0.0]]),
     np.array([1.0, 1.0, 1.0]), lambda p, l: -_log_softmax(p, 1)[np.arange(3), l.astype(int)]),
    (lambda: gluon.loss.SigmoidBinaryCrossEntropyLoss(), np.array([[1000.0], [-1000.0], [1e30], [-1e30]]),
     np.array([[0.0], [1.0], [1.0], [1.0]]), lambda p, l: (np.logaddexp(0, p) - p * l)[:, 0]),
    (lambda: gluon.loss.LogisticLoss(), np.array([[1000.0], [-1000.0], [1e30], [-30.0]]),
     np.array([[1.0], [1.0], [-1.0], [-1.0]]), lambda p, l: _logistic(p * l)[:, 0]),
    (lambda: gluon.loss.KLDivLoss(from_logits=False), np.array([[1000.0, -1000.0], [0.0, 1e30]]),
     np.array([[0.5, 0.5], [1.0, 0.0]]),
     lambda p, l: (l * (np.log(l + 1e-12) - _log_softmax(p, 1))).mean(1)),
]


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('i', range(len(LOSSES)), ids=['softmax_ce', 'sigmoid_bce', 'logistic', 'kl_div'])
def test_losses_are_stable_for_extreme_logits(i, dtype):
    make, p, l, oracle = LOSSES[i]
    p32, l32 = p.astype(dtype), l.astype(dtype)
    with np.errstate(over='ignore'):
        want = oracle(p32.astype(np.float64), l32.astype(np.float64)).astype(dtype)
    loss = make()
    with np.errstate(**RAISE):
        eager = loss(nd.array(p32, dtype=dtype), nd.array(l32, dtype=dtype)).asnumpy()
        loss.hybridize()
        hyb = loss(nd.array(p32, dtype=dtype), nd.array(l32, dtype=dtype)).asnumpy()
    for got in (eager, hyb):
        assert np.isfinite(got).all(), got
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == 'float32' else 1e-13)


def test_softmax_cross_entropy_op_and_its_gradient_at_extreme_logits():
    x = np.array([[1000.0, -1000.0, 0.0], [-1e30, 1e30, 0.0]], np.float32)
    lab = np.array([1.0, 0.0], np.float32)
    xs = nd.array(x)
    xs.attach_grad()
    with np.errstate(**RAISE), autograd.record():
        y = nd.softmax_cross_entropy(xs, nd.array(lab))
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), [2000.0 + 2e30], rtol=1e-6)
    want = _softmax(x.astype(np.float64), 1) - np.eye(3)[lab.astype(int)]
    np.testing.assert_allclose(xs.grad.asnumpy(), want, atol=1e-6)


# ---------------------------------------------------------------- zero-size tensors
def test_zero_size_elementwise_and_shape_ops():
    x, y = np.zeros((0, 3), np.float32), np.ones((1, 3), np.float32)

    def fn(F, a, b):
        c = F.broadcast_add(F.exp(a) * 2, b)
        return [F.tanh(c), F.transpose(c), F._np_reshape(c, newshape=(3, 0)), F.Concat(c, b, dim=0), F.sum(c, axis=0),
                F.mean(c, axis=1)]
    with np.errstate(invalid='ignore'):
        eager, hyb = both(fn, x, y)
    wants = [np.zeros((0, 3)), np.zeros((3, 0)), np.zeros((3, 0)), y, np.zeros(3), np.zeros(0)]
    for outs in (eager, hyb):
        for got, want in zip(outs, wants):
            assert_numpy_like(got, want.astype(np.float32))


@pytest.mark.parametrize('name,want', [('sum', 0.0), ('prod', 1.0), ('mean', np.nan), ('norm', 0.0)])
def test_reductions_over_an_empty_axis(name, want):
    x = np.zeros((2, 0), np.float32)
    with np.errstate(invalid='ignore', divide='ignore'):
        eager, hyb = both(lambda F, v: getattr(F, name)(F.negative(v), axis=1), x)
    for got in (eager[0], hyb[0]):
        assert_numpy_like(got, np.full(2, want, np.float32), name)
    xs = nd.array(x)
    xs.attach_grad()
    with autograd.record():
        y = getattr(nd, name)(xs, axis=1)
    y.backward()
    assert xs.grad.shape == (2, 0)


@pytest.mark.parametrize('name', ['max', 'min', 'argmax'])
def test_max_over_an_empty_axis_is_a_clear_error(name):
    with pytest.raises(GraphcShapeError, match=rf"{name}: .*empty"):
        getattr(nd, name)(nd.zeros((2, 0)), axis=1)


def test_zero_batch_through_dense_conv_and_pool():
    from graphc.gluon import nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, in_channels=2), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(5, in_units=16))
    net.initialize()
    x = nd.zeros((0, 2, 6, 6))
    eager = net(x)
    net.hybridize()
    hyb = net(x)
    assert eager.shape == hyb.shape == (0, 5)


def test_prelu_on_a_0d_input_is_a_clear_error():
    with pytest.raises(GraphcShapeError, match=r"prelu.*at least one dimension"):
        nd.LeakyReLU(nd.array(np.float32(2.0)), nd.ones((1,)), act_type='prelu')
    with pytest.raises(GraphcError, match=r"prelu.*at least one dimension"):
        both(lambda F, v, g: F.LeakyReLU(v, g, act_type='prelu'), np.array(2.0, np.float32),
             np.ones(1, np.float32))


def test_0d_values_stay_0d():
    x = np.array(1.5, np.float32)
    eager, hyb = both(lambda F, v: [F.transpose(v), F.broadcast_to(v, shape=()), F.slice(v, begin=(), end=()),
                                    F.SliceChannel(F.reshape(v, shape=(1,)), num_outputs=1, axis=0,
                                                   squeeze_axis=True) * 2], x)
    for outs in (eager, hyb):
        assert [o.shape for o in outs] == [()] * 4 and outs[3] == 3.0


# ---------------------------------------------------------------- float64 and integers
@pytest.mark.parametrize('dtype', ['int32', 'int64', 'uint8', 'int8'])
def test_integer_arrays_keep_their_dtype_and_exact_values(dtype):
    r = np.random.default_rng(0)
    x = r.integers(0, 10, (3, 4)).astype(dtype)
    y = r.integers(0, 10, (1, 4)).astype(dtype)

    def fn(F, a, b):
        s = F.broadcast_add(a, b)
        return [s, F.broadcast_mul(a, b), F.broadcast_maximum(a, b), F.relu(s), F.abs(a), F.sum(s, axis=1),
                F.max(s, axis=0), F.broadcast_greater(a, b), F.transpose(s)]
    eager, hyb = both(fn, x, y)
    wants = [x + y, x * y, np.maximum(x, y), np.maximum(x + y, 0), np.abs(x), (x + y).sum(1).astype(dtype),
             (x + y).max(0), (x > y).astype(dtype), (x + y).T]
    for outs in (eager, hyb):
        for got, want in zip(outs, wants):
            assert_numpy_like(got, want.astype(dtype))


def test_float64_kernels_stay_float64_and_accurate():
    x = np.linspace(-700, 700, 4001)
    eager, hyb = both(lambda F, v: [F.exp(v * 0.5) * 2, F.tanh(v / 100) + 1, F.sigmoid(v / 7) - 0.5], x)
    wants = [np.exp(x * 0.5) * 2, np.tanh(x / 100) + 1, _sigmoid(x / 7) - 0.5]
    for outs in (eager, hyb):
        for got, want in zip(outs, wants):
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)  # (sigmoid - 0.5 cancels near 0)


@pytest.mark.parametrize('op,shapes', [('LeakyReLU', [(3, 2), (2,)]), ('BatchNorm', [(3, 2)] + [(2,)] * 4),
                                       ('LayerNorm', [(3, 2), (2,), (2,)])])
def test_mixed_float_dtypes_are_refused_alike_eager_and_traced(op, shapes):
    """float64 data with a float32 parameter: eager refused it, tracing accepted it (found by the fuzzer)."""
    from graphc.registry import OPS
    from graphc.symbol.symbol import input_var
    attrs = OPS[op].canon({'act_type': 'prelu'} if op == 'LeakyReLU' else {})
    dts = ['float64'] + ['float32'] * (len(shapes) - 1)
    with pytest.raises(GraphcShapeError, match=rf"{op}: inputs must share a dtype, got float64, float32"):
        nd.invoke(OPS[op], [nd.ones(s, dtype=d) for s, d in zip(shapes, dts)], attrs)
    with pytest.raises(GraphcShapeError, match=rf"{op}: inputs must share a dtype, got float64, float32"):
        nd.invoke(OPS[op], [input_var(f"v{i}", s, d) for i, (s, d) in enumerate(zip(shapes, dts))], attrs)
