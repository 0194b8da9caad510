"""NDArrays on gc.gpu(i), checked without a GPU: cupy is replaced by tests/fake_cupy.py (NumPy underneath, its
own array type, no implicit host conversion, mixing refused), and graphc.device's kernels run by their NumPy
reference (the generated CUDA itself is checked in test_cuda.py; one test here runs it by the g++ emulation).
Every result is compared with the same computation on the cpu; float32 tolerances rtol=atol=1e-5."""
import sys
import warnings

import numpy as np
import pytest

import graphc as gc
import fake_cupy
from graphc import autograd, device, gluon, nd
from graphc.ndarray import ndarray as ndmod
from graphc.base import GraphcError
from graphc.gluon import nn
from graphc.registry import OPS
from graphc.runtime import emulate
from op_cases import CASES


@pytest.fixture
def cp(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy)
    monkeypatch.setattr(device, 'make_device', fake_cupy.ref_device)
    for name, v in [('_devices', {}), ('_plans', {}), ('HOST_OPS', set()), ('SYNCED', set())]:
        monkeypatch.setattr(device, name, v)
    monkeypatch.setattr(ndmod, '_GPU_LIVE', False)  # restored after the test: other tests keep the plain path
    fake_cupy.SYNCS.clear()
    return fake_cupy


def on_gpu(x, i=0):
    """x is an NDArray whose buffer is a device array on gpu(i) (never a host array)."""
    assert type(x._data) is fake_cupy.ndarray and x._data.device.id == i, type(x._data)
    assert x.context == gc.gpu(i)
    return x.asnumpy()


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- errors without cupy or a device
def test_gpu_arrays_without_cupy_or_a_device_say_what_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', None)
    with pytest.raises(GraphcError, match=r"pip install graphc\[gpu\]"):
        nd.zeros((2,), ctx=gc.Context('gpu', 0))
    monkeypatch.setitem(sys.modules, 'cupy', fake_cupy)
    monkeypatch.setattr(fake_cupy, 'N_DEVICES', 0)
    with pytest.raises(GraphcError, match="no CUDA device is visible"):
        nd.array([1.0], ctx=gc.Context('gpu', 0))
    monkeypatch.setattr(fake_cupy, 'N_DEVICES', 2)
    assert gc.gpu(2) == gc.Context('gpu', 2)  # a context is a name (MXNet's): allocating there fails
    with pytest.raises(GraphcError, match=r"gc.gpu\(2\) does not exist: 2 CUDA device"):
        nd.zeros((1,), ctx=gc.gpu(2))


def test_the_stand_in_refuses_implicit_host_conversion_and_mixing(cp):
    a = cp.asarray(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="NumPy array mixed"):
        a + np.ones(3, np.float32)
    with cp.cuda.Device(1):
        with pytest.raises(ValueError, match="device 0 used while device 1"):
            a * 2


# ---------------------------------------------------------------- creation and copies
def test_creation_on_a_gpu(cp):
    x = nd.array([[1, 2], [3, 4]], ctx=gc.gpu(0))
    assert x.dtype == np.float32 and on_gpu(x).tolist() == [[1, 2], [3, 4]]
    assert on_gpu(nd.zeros((2, 3), ctx=gc.gpu(1)), 1).sum() == 0
    assert (on_gpu(nd.ones((2,), ctx=gc.gpu(0), dtype='float64')) == 1).all()
    assert (on_gpu(nd.full((3,), 7, ctx=gc.gpu(0))) == 7).all()
    assert on_gpu(nd.arange(0, 3, ctx=gc.gpu(0))).tolist() == [0, 1, 2]
    assert on_gpu(nd.empty((2, 2), ctx=gc.gpu(0))).shape == (2, 2)
    gc.random.seed(4)
    u = on_gpu(nd.random.uniform(0, 1, (3,), ctx=gc.gpu(1)), 1)
    gc.random.seed(4)
    close(u, nd.random.uniform(0, 1, (3,)).asnumpy())
    with gc.gpu(1):  # the default context
        y = nd.array(np.arange(4, dtype=np.int32), dtype='int32')
    assert on_gpu(y, 1).dtype == np.int32
    assert on_gpu(nd.zeros_like(x)).sum() == 0 and on_gpu(x.ones_like()).sum() == 4
    assert 'gpu(0)' in repr(x) and np.asarray(x).tolist() == [[1, 2], [3, 4]] and x[1, 1].asscalar() == 4


def test_as_in_context_and_copyto_both_ways(cp):
    h = nd.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    g = h.as_in_context(gc.gpu(0))
    close(on_gpu(g), h.asnumpy())
    assert g.as_in_context(gc.gpu(0)) is g
    g1 = g.as_in_context(gc.gpu(1))
    close(on_gpu(g1, 1), h.asnumpy())
    back = g1.as_in_context(gc.cpu())
    assert type(back._data) is np.ndarray and back.context == gc.cpu()
    close(back.asnumpy(), h.asnumpy())
    close(on_gpu(h.copyto(gc.gpu(1)), 1), h.asnumpy())
    dst = nd.zeros((2, 3))  # into an existing array: across devices, both ways
    (g * 2).copyto(dst)
    close(dst.asnumpy(), 2 * h.asnumpy())
    gdst = nd.zeros((2, 3), ctx=gc.gpu(1))
    h.copyto(gdst)
    g.copyto(gdst)
    close(on_gpu(gdst, 1), h.asnumpy())


def test_mixing_devices_in_one_op_names_both(cp):
    g, h = nd.ones((2, 2), ctx=gc.gpu(0)), nd.ones((2, 2))
    with pytest.raises(GraphcError, match=r"elemwise_add: .*input 0 on gpu\(0\), input 1 on cpu\(0\)"):
        g + h
    with pytest.raises(GraphcError, match=r"dot: .*gpu\(1\).*gpu\(0\)"):
        nd.dot(nd.ones((2, 2), ctx=gc.gpu(1)), g)


# ---------------------------------------------------------------- every op: on the device, equal to the cpu
def _run(name, case, ctx):
    op = OPS[name]
    xs = [nd.array(a.astype(np.float32), ctx=ctx) for a in case.inputs]
    if case.seed is not None:
        gc.random.seed(case.seed)
    with autograd.train_mode() if case.train else autograd.predict_mode():
        out = getattr(nd, name)(*xs, **case.attrs) if name != 'BatchNorm' else nd.invoke(op, xs, op.canon(case.attrs))[0]
    return out if isinstance(out, list) else [out]


def test_every_op_runs_on_the_gpu_and_matches_the_cpu(cp):
    """Each op case with inputs (op_cases.py): device outputs equal to the cpu's, the same structure."""
    n = 0
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # ops without a CUDA form warn (tested below)
        for name, cases in sorted(CASES.items()):
            for case in cases:
                if not case.inputs:
                    continue
                try:
                    want = _run(name, case, gc.cpu())
                except GraphcError:
                    continue  # an error case: the cpu refuses it too
                got = _run(name, case, gc.gpu(0))
                assert len(got) == len(want), name
                for g, w in zip(got, want):
                    close(on_gpu(g), w.asnumpy())
                n += 1
    assert n > 300
    # the core ops run as device kernels (generated CUDA, cuBLAS), not as host copies
    core = {'elemwise_add', 'broadcast_mul', '_plus_scalar', 'exp', 'relu', 'sum', 'mean', 'max', 'softmax',
            'log_softmax', 'Convolution', 'FullyConnected', 'Pooling', 'Activation', 'transpose', 'Reshape', 'slice'}
    assert not core & device.HOST_OPS, core & device.HOST_OPS


def test_an_op_without_a_cuda_form_says_so_and_stays_on_the_device(cp):
    x = nd.array([[1, 5, 2], [7, 0, 3]], ctx=gc.gpu(0))
    with pytest.warns(UserWarning, match=r"argmax has no CUDA kernel; on gpu\(0\) it runs on the host"):
        y = nd.argmax(x, axis=1)
    assert on_gpu(y).tolist() == [1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once per op
        nd.argmax(x, axis=0)


# ---------------------------------------------------------------- autograd and training
def _grads(ctx):
    rng = np.random.default_rng(3)
    x = nd.array(rng.normal(size=(2, 3, 6, 6)).astype(np.float32), ctx=ctx)
    w = nd.array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), ctx=ctx)
    b = nd.array(rng.normal(size=(4,)).astype(np.float32), ctx=ctx)
    for a in (x, w, b):
        a.attach_grad()
    with autograd.record():
        y = nd.Convolution(x, w, b, kernel=(3, 3), num_filter=4, pad=(1, 1))
        p = nd.softmax(nd.relu(y).reshape((2, -1)), axis=-1)
        loss = (p * p).sum() + nd.dot(y.reshape((2, -1)), y.reshape((2, -1)).T).mean() * 1e-3
    loss.backward()
    return loss, [x.grad, w.grad, b.grad]


@pytest.mark.parametrize('dev', [0, 1])
def test_backward_on_gpu_arrays_matches_the_cpu(cp, dev):
    (lc, gcpu), (lg, ggpu) = _grads(gc.cpu()), _grads(gc.gpu(dev))
    close(on_gpu(lg, dev), lc.asnumpy())
    for a, b in zip(ggpu, gcpu):
        close(on_gpu(a, dev), b.asnumpy())
        assert np.abs(b.asnumpy()).max() > 0


def _train(ctx, steps=3):
    gc.random.seed(0)
    net = nn.Sequential()
    net.add(nn.Dense(8, activation='relu', in_units=5), nn.Dense(3, in_units=8))
    net.initialize(ctx=ctx)
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3})
    rng = np.random.default_rng(1)
    x = nd.array(rng.normal(size=(4, 5)).astype(np.float32), ctx=ctx)
    y = nd.array([0, 1, 2, 1], ctx=ctx)
    loss_fn = gluon.loss.L2Loss()
    for _ in range(steps):
        with autograd.record():
            loss = loss_fn(net(x), y.reshape((4, 1)).broadcast_to((4, 3)))
        loss.backward()
        trainer.step(4)
    return net, trainer


@pytest.mark.parametrize('dev', [0, 1])
def test_dense_net_trains_on_the_gpu_as_on_the_cpu(cp, dev):
    (cnet, _), (gnet, gtr), (init, _) = _train(gc.cpu()), _train(gc.gpu(dev)), _train(gc.cpu(), 0)
    for p, q, p0 in zip(cnet.collect_params().values(), gnet.collect_params().values(),
                        init.collect_params().values()):
        assert q.list_ctx() == [gc.gpu(dev)]
        close(on_gpu(q.data(), dev), p.data().asnumpy())
        on_gpu(q.grad(), dev)
        assert np.abs(q.data().asnumpy() - p0.data().asnumpy()).max() > 1e-4  # updated
    for st in gtr._updater.states.values():  # momentum lives on the device too
        on_gpu(st, dev)


def test_parameter_set_data_and_reset_ctx_cross_devices(cp):
    net = nn.Dense(2, in_units=3)
    net.initialize(ctx=gc.gpu(0))
    w = net.weight
    w.set_data(np.arange(6, dtype=np.float32).reshape(2, 3))  # host values into a device parameter
    assert on_gpu(w.data()).tolist() == [[0, 1, 2], [3, 4, 5]]
    w.reset_ctx(gc.gpu(1))
    assert on_gpu(w.data(), 1).tolist() == [[0, 1, 2], [3, 4, 5]] and on_gpu(w.grad(), 1).sum() == 0
    w.reset_ctx(gc.cpu())
    assert type(w.data()._data) is np.ndarray and w.list_ctx() == [gc.cpu()]
    with pytest.raises(GraphcError, match=r"not initialized on context gpu\(0\); it was only initialized on \[cpu\(0\)\]"):
        w.data(gc.gpu(0))
    two = nn.Dense(2, in_units=3)
    two.initialize(ctx=[gc.gpu(0), gc.gpu(1)])  # one copy per device, the same values
    assert on_gpu(two.weight.data(gc.gpu(1)), 1).tolist() == on_gpu(two.weight.data(gc.gpu(0)), 0).tolist()


def test_hybridized_inference_runs_as_one_gpu_plan(cp):
    """A hybridized block on gpu(0) runs its optimized graph as one GpuPlan: the output stays on the device and
    equals the cpu result; mixed devices are refused with what to do."""
    def make(ctx):
        gc.random.seed(3)
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Conv2D(4, 3, activation='relu'), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(3, activation='tanh'))
        net.initialize(gc.init.Xavier(), ctx=ctx)
        net.hybridize()
        return net
    x = np.random.default_rng(0).normal(size=(2, 1, 8, 8)).astype(np.float32)
    want = make(gc.cpu())(nd.array(x)).asnumpy()
    net = make(gc.gpu(0))
    xg = nd.array(x, ctx=gc.gpu(0))
    for _ in range(2):  # the second call reuses the plan
        close(on_gpu(net(xg)), want)
    assert len(net.cached_graph()._gpu_plans) == 1
    with autograd.record():  # training there: the device step (tests/test_gpu_training.py)
        close(on_gpu(net(xg)), want)
    with pytest.raises(GraphcError, match=r"different devices \(cpu\(0\), gpu\(0\)\)"):
        net(nd.array(x))


def test_hybridized_unrolled_cells_stay_cells_on_the_gpu(cp):
    """fuse_rnn makes the CPU graph one RNN op, which has no CUDA form: on gpu(0) the plan is built from the
    graph as traced, so every step runs on the device (no host op) and equals the cpu result."""
    from graphc.gluon import HybridBlock, rnn

    class Unrolled(HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.cell = rnn.LSTMCell(4, input_size=3)

        def hybrid_forward(self, F, x):
            return self.cell.unroll(3, x, merge_outputs=True)[0]

    def make(ctx):
        gc.random.seed(4)
        net = Unrolled()
        net.initialize(gc.init.Xavier(), ctx=ctx)
        net.hybridize()
        return net
    x = np.random.default_rng(1).normal(size=(2, 3, 3)).astype(np.float32)
    cpu_net = make(gc.cpu())
    want = cpu_net(nd.array(x)).asnumpy()
    assert 'RNN' in [n.op.name for n in cpu_net.cached_graph().graph.nodes if not n.is_var]
    net = make(gc.gpu(0))
    close(on_gpu(net(nd.array(x, ctx=gc.gpu(0)))), want)
    plan = net.cached_graph()._gpu_plans[0]
    assert plan.host_ops == [] and plan.launches > 0


def test_waitall_and_wait_to_read_synchronize_the_devices_used(cp):
    x = nd.ones((2, 2), ctx=gc.gpu(0))
    y = (x * 3).as_in_context(gc.gpu(1))
    gc.waitall()
    assert cp.SYNCS == {0: 1, 1: 1}
    gc.waitall()  # nothing ran since
    assert cp.SYNCS == {0: 1, 1: 1}
    y.wait_to_read()
    assert cp.SYNCS == {0: 1, 1: 2}


@pytest.mark.skipif(emulate.gxx_path() is None, reason="g++ not on PATH: the host emulation needs a C++ compiler")
def test_generated_cuda_runs_eager_gpu_ops_in_emulation(cp, monkeypatch):
    """The same dispatch with the kernels cuda.py generates (built by g++ with cuda_emu.h) instead of the reference."""
    monkeypatch.setattr(device, 'make_device', fake_cupy.emu_device)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(1, 5)).astype(np.float32)
    ga, gb = nd.array(a, ctx=gc.gpu(0)), nd.array(b, ctx=gc.gpu(0))
    close(on_gpu(ga * gb), a * b)
    e = np.exp(a - a.max(1, keepdims=True))
    close(on_gpu(nd.softmax(ga, axis=-1)), e / e.sum(1, keepdims=True))
    close(on_gpu(ga.T), a.T)
