"""CUDA graphs for hybridize(static_alloc=True, static_shape=True) on gc.gpu(0) (graphc/gpuplan.Captured),
checked without a GPU: cupy is tests/fake_cupy.py, whose streams record a capture (kernel launches and array
operations deferred, every new array poisoned with NaN) and whose Graph.launch replays the records, so a result
equal to the CPU's was computed by the replay, not by a fresh run of the plan. Kernels are the generated CUDA on
the host emulation (fake_cupy.emu_device).

Tolerance: outputs within rtol 1e-5, atol 1e-6 of the CPU run (float32: sums in another order); after 5 training
steps parameters within rtol 1e-4, atol 1e-5 (as tests/test_gpu_training.py)."""
import sys

import numpy as np
import pytest

import graphc as gc
import fake_cupy
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import emulate

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")


@pytest.fixture
def cp(cp, monkeypatch):  # conftest's emulated device, with the capture counters reset
    monkeypatch.setattr(fake_cupy, 'GRAPHS', {'captures': 0, 'launches': 0, 'replayed': 0})
    return fake_cupy


def mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(16, activation='relu'), nn.Dense(8, activation='tanh'), nn.Dense(4))
    return net


def _net(make, ctx, static=True):
    gc.random.seed(0)
    net = make()
    net.initialize(gc.init.Xavier(), ctx=ctx)
    net.hybridize(static_alloc=static, static_shape=static)
    return net


def _captured(net):
    return next(iter(net.cached_graph()._gpu_plans.values()))


def test_inference_replays_the_captured_graph(cp):
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 10)).astype(np.float32) for _ in range(4)]
    cpu = _net(mlp, gc.cpu())  # (one after the other: deferred initialization draws at the first call)
    want = [cpu(nd.array(x)).asnumpy() for x in xs]
    gpu = _net(mlp, gc.gpu(0))
    outs = [gpu(nd.array(x, ctx=gc.gpu(0))) for x in xs]
    cap = _captured(gpu)
    # call 1 ran the plan (warm-up), call 2 captured and launched, calls 3 and 4 only launched
    assert not cap.failed, cap.failed
    assert (cap.captures, cap.replays) == (1, 3) and cp.GRAPHS['captures'] == 1 and cp.GRAPHS['launches'] == 3
    assert cp.GRAPHS['replayed'] > 3
    for o, w in zip(outs, want):  # the held outputs of earlier calls were not overwritten by later replays
        np.testing.assert_allclose(o.asnumpy(), w, rtol=1e-5, atol=1e-6)
    launches = cap.plan.launches
    copies = dict(cp.COPIES)
    gpu(nd.array(xs[0], ctx=gc.gpu(0))).wait_to_read()
    assert cap.plan.launches == launches  # the plan's Python did not run: the graph did
    assert cp.COPIES['to_host'] == copies['to_host'] and cp.COPIES['to_device'] == copies['to_device'] + 1  # the input


def test_a_new_parameter_array_recaptures_and_says_why(cp):
    gpu = _net(mlp, gc.gpu(0))
    x = nd.array(np.ones((2, 10), np.float32), ctx=gc.gpu(0))
    for _ in range(3):
        gpu(x)
    p = gpu[0].weight
    p.set_data(nd.array(np.full(p.shape, 0.01, np.float32), ctx=gc.gpu(0)))
    cap = _captured(gpu)
    got = gpu(x).asnumpy()
    if cap.captures == 1:  # set_data wrote into the same buffer: the graph reads it in place
        assert not cap.reasons
    else:
        assert cap.captures == 2 and 'another array than the captured one' in cap.reasons[0]
    cpu = _net(mlp, gc.cpu())
    cpu(nd.array(np.ones((2, 10), np.float32)))
    cpu[0].weight.set_data(nd.array(np.full(p.shape, 0.01, np.float32)))
    np.testing.assert_allclose(got, cpu(nd.array(np.ones((2, 10), np.float32))).asnumpy(), rtol=1e-5, atol=1e-6)


def test_a_shape_change_traces_and_captures_anew(cp):
    gpu = _net(mlp, gc.gpu(0))
    for b in (2, 2, 3, 3, 3):
        gpu(nd.array(np.ones((b, 10), np.float32), ctx=gc.gpu(0)))
    assert gpu.trace_count == 2 and cp.GRAPHS['captures'] == 2 and cp.GRAPHS['launches'] == 3


def test_without_static_flags_no_graph(cp):
    gpu = _net(mlp, gc.gpu(0), static=False)
    for _ in range(3):
        gpu(nd.array(np.ones((2, 10), np.float32), ctx=gc.gpu(0)))
    assert cp.GRAPHS['captures'] == 0


def lenet():
    sys.path.insert(0, __file__.rsplit('/tests/', 1)[0] + '/examples')
    from lenet_mnist import lenet as make
    return make()


def bn_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.Dense(5))
    return net


def train(make, ctx, x, y, static, steps=5, twice=False):
    """Parameters after `steps` SGD-momentum steps (twice: two forward calls per step, one backward), the net,
    and whether host<->device copies happened after step 1."""
    net = _net(make, ctx, static)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize(static_alloc=static, static_shape=static)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.05, 'momentum': 0.9})
    xd, yd = nd.array(x, ctx=ctx), nd.array(y, ctx=ctx)
    copies = None
    for step in range(steps):
        if step == 1:
            copies = dict(fake_cupy.COPIES)
        with autograd.record():
            loss = loss_fn(net(xd), yd)
            if twice:
                loss = loss + loss_fn(net(xd * 0.5), yd)
        loss.backward()
        trainer.step(x.shape[0])
    copied = fake_cupy.COPIES != copies
    return [p.data().asnumpy() for p in net.collect_params().values()], net, copied


@pytest.mark.parametrize('make,shape', [(mlp, (4, 10)), (lenet, (2, 1, 28, 28)), (bn_net, (2, 3, 6, 6))],
                         ids=['mlp', 'lenet', 'batchnorm'])
def test_training_steps_replay_their_graphs_as_the_cpu_trains(cp, make, shape):
    rng = np.random.default_rng(1)
    x, y = rng.random(shape, np.float32), np.arange(shape[0]) % 4
    want, _, _ = train(make, gc.cpu(), x, y, True)
    got, net, copied = train(make, gc.gpu(0), x, y, True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    assert not copied  # no host<->device copy after the first step
    (st,) = net.cached_graph()._gpu_steps.values()
    g = st.graphs
    # step 1 ran the plans, step 2 captured them, steps 2 to 5 launched them (the loss block's two graphs too)
    assert (g.fwd.captures, g.fwd.replays, g.bwd.captures, g.bwd.replays) == (1, 4, 1, 4)
    assert cp.GRAPHS['captures'] == 4 and cp.GRAPHS['launches'] == 16
    assert not g.fwd.reasons and not g.bwd.reasons


def test_two_forwards_before_one_backward_keep_their_saved_values(cp):
    """The second forward replays the graph whose buffers hold the first one's saved values: they are copied
    out first, and copied back for the first one's backward."""
    rng = np.random.default_rng(2)
    x, y = rng.random((3, 10), np.float32), np.arange(3) % 4
    want, _, _ = train(mlp, gc.cpu(), x, y, True, steps=3, twice=True)
    got, net, _ = train(mlp, gc.gpu(0), x, y, True, steps=3, twice=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    (st,) = [s for s in net.cached_graph()._gpu_steps.values()]
    assert st.graphs.fwd.replays >= 4 and st.graphs.bwd.replays >= 4


# ---------------------------------------------------------------- gradients across devices
def test_as_in_context_and_copyto_carry_gradients_across_devices(cp):
    """cpu -> gpu(0) -> cpu under autograd: each copy is a tape op whose gradient is copied back, so the CPU
    array gets the gradient of a loss computed partly on the GPU (as in MXNet)."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    x = nd.array(a)
    x.attach_grad()
    w = nd.array(b, ctx=gc.gpu(0))
    w.attach_grad()
    with autograd.record():
        xg = x.as_in_context(gc.gpu(0))
        h = nd.tanh(xg * w)
        back = h.copyto(gc.cpu())
        loss = (back * back).sum() + x.sum()
    loss.backward()
    t = np.tanh(a * b)
    np.testing.assert_allclose(x.grad.asnumpy(), 2 * t * (1 - t * t) * b + 1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w.grad.asnumpy(), 2 * t * (1 - t * t) * a, rtol=1e-5, atol=1e-6)
    assert w.grad.context == gc.gpu(0) and x.grad.context == gc.cpu()
    # copyto into an existing array on the other device is recorded too
    x2 = nd.array(a)
    x2.attach_grad()
    dst = nd.zeros((3, 4), ctx=gc.gpu(0))
    with autograd.record():
        y = (x2.copyto(dst) * 3).sum()
    y.backward()
    np.testing.assert_allclose(x2.grad.asnumpy(), np.full((3, 4), 3, np.float32))
    # not recording: a plain copy, nothing on the tape
    assert x.as_in_context(gc.gpu(0))._ag is None
