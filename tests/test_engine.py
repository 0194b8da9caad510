"""The lazy eager engine: fusion without hybridize, realization points, errors, and equivalence."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, engine, nd


@pytest.fixture(autouse=True)
def lazy():
    with engine.engine_mode('lazy'):
        yield


def test_eager_chain_runs_as_one_kernel():
    a = np.random.default_rng(0).normal(size=(128, 64)).astype(np.float32)
    x = nd.array(a)
    y = nd.tanh(x * 2 + 1) * nd.sigmoid(x) - nd.relu(x) / 3
    assert y._buf is None and y.shape == (128, 64)  # pending, shape known
    before = engine.stats['realizations']
    got = y.asnumpy()
    assert engine.stats['realizations'] == before + 1
    assert engine.stats['last_ops'] == 8 and engine.stats['last_kernels'] == 1
    want = np.tanh(a * 2 + 1) * (1 / (1 + np.exp(-a))) - np.maximum(a, 0) / 3
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_realization_points():
    x = nd.ones((3,))
    for realize in (lambda y: y.asnumpy(), lambda y: y.sum().asscalar(), lambda y: repr(y), lambda y: y.wait_to_read(),
                    lambda y: gc.waitall(), lambda y: float(y[0])):
        y = x * 2
        assert y._buf is None
        realize(y)
        assert y._buf is not None


def test_inplace_write_sees_values_before_the_write():
    x = nd.array([1.0, 2.0])
    y = x * 10      # pending, reads x's buffer
    x += 1          # realizes y first
    x[0] = -5
    assert y.asnumpy().tolist() == [10.0, 20.0] and x.asnumpy().tolist() == [-5.0, 3.0]


def test_shape_errors_at_the_call_and_value_errors_at_realization_name_the_line():
    with pytest.raises(gc.GraphcShapeError, match=r"broadcast_add.*\(2, 3\) and \(4,\)"):
        nd.ones((2, 3)) + nd.ones((4,))
    y = nd.pick(nd.ones((2, 3)), nd.array([0, 7]), mode='raise')  # an index only the data can reveal
    with pytest.raises(gc.GraphcError) as e:
        y.asnumpy()
    assert 'test_engine.py:' in str(e.value) and 'pick' in str(e.value) and 'out of range' in str(e.value)


def test_recording_and_stateful_ops_run_eagerly():
    x = nd.array([1.0, -2.0])
    x.attach_grad()
    with autograd.record():
        y = nd.relu(x) * 3
    assert y._buf is not None  # recorded ops are not deferred
    y.backward()
    assert x.grad.asnumpy().tolist() == [3.0, 0.0]


def test_lazy_and_naive_agree_on_a_small_program():
    rs = np.random.default_rng(1)
    a, b = rs.normal(size=(5, 4)).astype(np.float32), rs.normal(size=(4, 3)).astype(np.float32)

    def prog():
        x, w = nd.array(a), nd.array(b)
        h = nd.dot(x, w).relu()
        return (nd.softmax(h * 0.5) + h.mean(axis=0, keepdims=True)).asnumpy()
    lazy = prog()
    with engine.engine_mode('naive'):
        naive = prog()
    np.testing.assert_allclose(lazy, naive, rtol=1e-6, atol=1e-7)


def test_bad_engine_name():
    with pytest.raises(gc.GraphcError, match="'lazy' or 'naive'"):
        engine.set_engine('async')


def test_same_program_shape_reuses_its_plan():
    reports = []
    for i in range(3):
        x = nd.array(np.full((8, 8), float(i), np.float32))
        y = (nd.relu(x * 2 - 1) + 3).asnumpy()
        np.testing.assert_allclose(y, np.maximum(np.full((8, 8), 2.0 * i - 1), 0) + 3)
        reports.append(engine.stats['last_report'])
    assert reports[0] is reports[1] is reports[2]  # passes ran once for the three realizations
