"""The thin hybridized call path (cached.fast_call): a call that may take the short path gives what the full
path gives, outputs the caller keeps are never overwritten by later calls, and everything that needs the
full path (recording, hooks, new shapes, parameter changes) still takes it."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn
from graphc.ndarray import ndarray as _ndm


@pytest.fixture(autouse=True)
def _cpu_only_process(monkeypatch):
    # the thin path is off once an array has lived on a GPU or a cpu(i) label (an earlier test in the process)
    monkeypatch.setattr(_ndm, '_GPU_LIVE', False)
    monkeypatch.setattr(_ndm, '_HOST_IDS', False)


def _mlp(seed=0):
    gc.random.seed(seed)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(16, activation='relu'), nn.Dense(8, activation='relu'), nn.Dense(4))
    net.initialize(gc.init.Xavier())
    return net


def _twins(x):
    eager = _mlp()
    eager(x)   # (deferred initialization draws the weights here)
    hyb = _mlp()
    hyb(x)
    hyb.hybridize()
    return eager, hyb


def _close(a, b):
    np.testing.assert_allclose(a.asnumpy(), b.asnumpy(), rtol=1e-5, atol=1e-6)


def test_fast_path_is_taken_and_matches_eager():
    x = nd.random.normal(shape=(5, 12))
    eager, hyb = _twins(x)
    for _ in range(3):
        _close(hyb(x), eager(x))
    assert hyb._fast_call is not None  # (else this file tests only the full path)
    calls = []
    fast = hyb._fast_call
    hyb._fast_call = lambda args: calls.append(1) or fast(args)
    _close(hyb(x), eager(x))
    assert calls == [1]


def test_kept_outputs_are_never_overwritten():
    x1, x2, x3 = (nd.random.normal(shape=(5, 12)) for _ in range(3))
    eager, hyb = _twins(x1)
    hyb(x1)
    a = hyb(x1)
    view = hyb(x2)[1:3]             # only a view of the second output is kept
    keep = hyb(x3)
    want = [eager(x).asnumpy() for x in (x1, x2, x3)]
    for _ in range(4):              # more calls than buffers per slot
        hyb(x2)
        np.testing.assert_allclose(a.asnumpy(), want[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(view.asnumpy(), want[1][1:3], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(keep.asnumpy(), want[2], rtol=1e-5, atol=1e-6)


def test_output_fed_back_as_input():
    f = nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * 0.5 + F.relu(v) * 0.25)
    g = nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * 0.5 + F.relu(v) * 0.25)
    g.hybridize()
    x = nd.random.normal(shape=(7, 9))
    ye, yh = x, x
    for _ in range(5):
        ye, yh = f(ye), g(yh)
        _close(yh, ye)


def test_shape_change_retraces_and_old_shape_still_runs():
    x, x2 = nd.random.normal(shape=(5, 12)), nd.random.normal(shape=(3, 12))
    eager, hyb = _twins(x)
    hyb(x)
    n = hyb.trace_count
    _close(hyb(x2), eager(x2))
    assert hyb.trace_count == n + 1
    _close(hyb(x), eager(x))
    _close(hyb(x2), eager(x2))
    assert hyb.trace_count == n + 1
    with pytest.raises(gc.base.GraphcError):
        hyb(nd.random.normal(shape=(5, 11)))   # a wrong input width still says so


def test_fast_path_sees_parameter_changes_and_modes():
    x = nd.random.normal(shape=(5, 12))
    eager, hyb = _twins(x)
    hyb(x)
    hyb(x)
    for pe, ph in zip(eager.collect_params().values(), hyb.collect_params().values()):
        v = nd.random.normal(shape=pe.shape)
        pe.set_data(v)
        ph.set_data(v)
    _close(hyb(x), eager(x))
    w = list(hyb.collect_params().values())[0]
    w.data()[:] = 0          # written in place
    list(eager.collect_params().values())[0].data()[:] = 0
    _close(hyb(x), eager(x))
    with autograd.train_mode():
        _close(hyb(x), eager(x))
    x64 = x.astype('float64')
    with pytest.raises(Exception):
        eager(x64)   # (float32 parameters: the eager layer refuses float64 data, so must the fast path)
    with pytest.raises(Exception):
        hyb(x64)


def test_recording_and_hooks_take_the_full_path():
    x = nd.random.normal(shape=(5, 12))
    eager, hyb = _twins(x)
    hyb(x)
    hyb(x)
    for net in (eager, hyb):
        with autograd.record():
            loss = net(x).sum()
        loss.backward()
    for pe, ph in zip(eager.collect_params().values(), hyb.collect_params().values()):
        np.testing.assert_allclose(ph.grad().asnumpy(), pe.grad().asnumpy(), rtol=1e-5, atol=1e-6)
    seen = []
    hyb.register_op_hook(lambda name, op, arr: seen.append(name))
    hyb(x)
    assert seen
    hyb.hybridize(False)
    n = hyb.trace_count
    _close(hyb(x), eager(x))
    assert hyb.trace_count == n and hyb._fast_call is None
