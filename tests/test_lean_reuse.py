"""Plan.lean's output buffers: a call writes the previous call's output array again only when the caller has let
go of it (no reference, no weak one); an output held in any way -- the NDArray, a NumPy view, a weak reference,
an argument of the call -- is never written. And the thin call path tries its fast call once per call."""
import weakref

import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.gluon import nn
from graphc.ndarray import ndarray as _ndm
from graphc.runtime.plan import address


@pytest.fixture(autouse=True)
def _cpu_only_process(monkeypatch):
    monkeypatch.setattr(_ndm, '_GPU_LIVE', False)   # (an earlier test's GPU or cpu(i) arrays turn the thin path off)
    monkeypatch.setattr(_ndm, '_HOST_IDS', False)


def _net(rows, width=30):
    gc.random.seed(0)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(64, activation='relu'), nn.Dense(width))
    net.initialize(gc.init.Xavier())
    x = nd.random.normal(shape=(rows, width))
    net(x)
    ws = [p.data().asnumpy() for p in net.collect_params().values()]
    net.hybridize()
    net(x)
    entry = net.cached_graph()
    if entry._main_plan.lean(entry.data_vars + [v for _, v in entry.param_vars]) is None:
        pytest.skip('no one-segment native plan here (GRAPHC_NATIVE=0, no BLAS)')

    def ref(v):
        return np.maximum(v @ ws[0].T + ws[1], 0) @ ws[2].T + ws[3]
    return net, x, ref


def _ptr(y):
    return address(y._data)


@pytest.mark.parametrize('rows', [1, 64])
def test_a_released_output_is_written_again_a_held_one_never(rows):
    net, x, ref = _net(rows)
    xs = [nd.random.normal(shape=x.shape) for _ in range(4)]
    at = _ptr(net(xs[0]))            # released at once
    y = net(xs[1])
    assert _ptr(y) == at             # the same buffer again: no allocation, no fresh pages
    np.testing.assert_allclose(y.asnumpy(), ref(xs[1].asnumpy()), rtol=1e-5, atol=1e-5)
    z = net(xs[2])                   # y is held: a new buffer
    assert _ptr(z) != _ptr(y)
    np.testing.assert_allclose(y.asnumpy(), ref(xs[1].asnumpy()), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(z.asnumpy(), ref(xs[2].asnumpy()), rtol=1e-5, atol=1e-5)
    view = net(xs[3])._data[:1]      # only a NumPy view of it is kept
    for v in xs[:3]:
        net(v)
    np.testing.assert_allclose(view, ref(xs[3].asnumpy())[:1], rtol=1e-5, atol=1e-5)
    y = net(xs[0])
    weak, at = weakref.ref(y._data), _ptr(y)   # a weak reference alone keeps it from being written
    del y
    assert weak() is not None
    assert _ptr(net(xs[1])) != at
    w = weak()   # (let go of by the plan once it had a new buffer)
    assert w is None or np.allclose(w, ref(xs[0].asnumpy()), rtol=1e-5, atol=1e-5)


def test_an_output_fed_back_as_the_next_input_is_not_written_while_read():
    net, x, ref = _net(3)
    want, y = x.asnumpy(), x
    for _ in range(4):
        y = net(y)                   # the previous output is this call's argument
        want = ref(want)
        np.testing.assert_allclose(y.asnumpy(), want, rtol=1e-4, atol=1e-4)


def test_a_declined_fast_call_is_tried_once():
    net, x, _ = _net(2)
    fast, calls = net._fast_call, []
    assert fast is not None
    net._fast_call = lambda args: calls.append(1) or fast(args)
    net(x)
    assert calls == [1]
    with gc.autograd.record():       # declined (recording): the full path, not a second try
        net(x)
    assert calls == [1, 1]
    net.register_forward_hook(lambda *a: None)
    net(x)                           # with a hook: tried inside Block.__call__, once
    assert calls == [1, 1, 1]
