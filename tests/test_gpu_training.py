"""Hybridized training on gc.gpu(0), checked without a GPU: cupy is tests/fake_cupy.py and the kernels are the
generated CUDA built for the host by g++ (fake_cupy.emu_device, runtime/emulate.py). LeNet, ResNet-18 V1 and the
char-LSTM (examples/char_lstm.py: the fused LSTM layer and the unrolled cells) train 5 steps hybridized, with a
hybridized loss and SGD with momentum, and their parameters equal the CPU run's. Small shapes: the emulation runs
every GPU thread on the CPU.

Tolerance: parameters within rtol 1e-4, atol 1e-5 of the CPU run after 5 steps (float32; sums in another order).
"""
import sys

import numpy as np
import pytest

import graphc as gc
import fake_cupy
from graphc import autograd, device, gluon, nd
from graphc.gluon import nn
from graphc.graph import Graph
from graphc.runtime import cuda, emulate
from graphc.symbol.symbol import input_var
from graphc import sym

sys.path.insert(0, __file__.rsplit('/tests/', 1)[0] + '/examples')

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")
RTOL, ATOL = 1e-4, 1e-5


def lenet():
    from lenet_mnist import lenet
    return lenet()


def resnet18():
    from graphc.gluon.model_zoo import vision
    return vision.resnet18_v1(classes=10, thumbnail=True)  # (CIFAR's stem: 3x3 convolution, no max pooling)


def char_lm(unroll):
    from char_lstm import CellLM, CharLM
    return (CellLM if unroll else CharLM)(12, embed=8, hidden=16)


def train(make, ctx, xs, y, steps=5, check_copies=False, lr=0.05):
    """Parameters (NumPy, by name order) after `steps` hybridized SGD steps on ctx; with check_copies, the host<->
    device copies of the steps after the first (which builds the plans and copies the data over once)."""
    gc.random.seed(0)
    net = make()
    net.initialize(gc.init.Xavier(), ctx=ctx)
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    loss_fn.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr, 'momentum': 0.9})
    xs = [nd.array(a, ctx=ctx) for a in xs]
    y = nd.array(y, ctx=ctx).reshape((-1,))
    copies = None
    if not steps:
        net(*xs)  # (the deferred shapes)
    for step in range(steps):
        if step == 1:
            copies = dict(fake_cupy.COPIES)
        with autograd.record():
            out = net(*xs)
            out = out[0] if isinstance(out, (list, tuple)) else out
            loss = loss_fn(out.reshape((-1, out.shape[-1])), y)
        loss.backward()
        trainer.step(y.shape[0])
    if check_copies:
        assert fake_cupy.COPIES == copies, (copies, fake_cupy.COPIES, device.HOST_OPS)
    return net, [(p.name, p.data().asnumpy()) for p in net.collect_params().values()]  # (names differ by prefix)


def compare(make, xs, y, cp, steps=5, lr=0.05):
    _, want = train(make, gc.cpu(), xs, y, steps, lr=lr)
    net, got = train(make, gc.gpu(0), xs, y, steps, check_copies=True, lr=lr)
    _, init = train(make, gc.cpu(), xs, y, 0)
    moved = 0
    for (k, g), (_, w), (_, w0) in zip(got, want, init):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=k)
        moved += not np.allclose(w0, w)
    assert moved >= len(want) // 2  # trained, not just equal
    steps = list(net.cached_graph()._gpu_steps.values())
    plans = [p for st in steps for p in (st.forward, st.backward)]
    assert steps and all(p.launches > 0 for p in plans)
    return net, [o for p in plans for o in p.host_ops], {name for p in plans for name in _op_names(p.graph)}


def _op_names(graph):
    """The ops of a graph, those inside fused groups too."""
    out = set()
    for n in graph.nodes:
        if not n.is_var:
            sub = getattr(n.op, 'subgraph', None)
            out |= _op_names(sub) if sub is not None else {n.op.name}
    return out


def test_lenet_trains_hybridized_on_the_gpu_as_on_the_cpu(cp):
    rng = np.random.default_rng(0)
    _, host, _ = compare(lenet, [rng.random((4, 1, 28, 28), np.float32)], np.arange(4) % 10, cp)
    assert host == [] and not device.HOST_OPS


def test_resnet18_trains_hybridized_on_the_gpu_with_batchnorm_statistics_there(cp):
    rng = np.random.default_rng(1)
    # 16x16 inputs: the last stage's BatchNorm sees 2x2 pixels of 2 images (with the ImageNet stem it sees one
    # pixel of each, and 1/sqrt(var) of two values amplifies rounding past any float32 tolerance)
    net, host, ops = compare(resnet18, [rng.random((2, 3, 16, 16), np.float32)], np.arange(2), cp, lr=0.01)
    assert host == [] and not device.HOST_OPS and {'BatchNorm', '_backward_BatchNorm'} <= ops
    mm = [p for k, p in net.collect_params().items() if k.endswith('running_mean')]
    assert len(mm) == 19  # (thumbnail: no BatchNorm after the stem)
    assert mm and all(type(p.data()._data) is fake_cupy.ndarray for p in mm)


@pytest.mark.parametrize('unroll', [True, False])
def test_char_lstm_trains_hybridized_on_the_gpu_as_on_the_cpu(cp, unroll):
    rng = np.random.default_rng(2)
    h = np.zeros((1, 2, 16), np.float32)
    xs = [rng.integers(0, 12, (2, 5)).astype(np.float32), h, h]
    _, host, ops = compare(lambda: char_lm(unroll), xs, rng.integers(0, 12, (2, 5)), cp)
    assert host == [] and not device.HOST_OPS
    # the LSTM layer, and the cells fuse_rnn turns into one, run as the device loop
    assert {'RNN', '_backward_RNN', 'Embedding', '_backward_take'} <= ops


def test_unrolled_cells_the_device_loop_does_not_cover_train_as_cells(cp, monkeypatch):
    """GRU cells: fuse_rnn makes them one RNN op (mode gru). Where the device loop does not take an RNN op (made
    so here: every op fuse_rnn makes has a loop now, tests/test_gpu_rnn.py), the device step is built from the
    traced cells: GEMMs and kernels, no host op."""
    from graphc.gluon import HybridBlock, rnn
    loop = cuda.rnn_op
    monkeypatch.setattr(cuda, 'rnn_op', lambda node: None if node.attrs['mode'] == 'gru' else loop(node))

    class GruLM(HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            with self.name_scope():
                self.cell = rnn.GRUCell(6, input_size=4)
                self.out = nn.Dense(5, flatten=False, in_units=6)

        def hybrid_forward(self, F, x):
            return self.out(self.cell.unroll(3, x, layout='NTC', merge_outputs=True)[0])
    x = np.random.default_rng(5).normal(size=(2, 3, 4)).astype(np.float32)
    net, host, ops = compare(GruLM, [x], np.arange(6) % 5, cp)
    assert host == [] and 'RNN' not in ops and 'FullyConnected' in ops
    # its backward has a fused group with a GEMM inside (no single form): node by node, each against the interpreter
    (st,) = net.cached_graph()._gpu_steps.values()
    g = st.backward.graph
    assert 'group' in [how for _, how, _ in cuda.graph_kernels(g)]
    rng = np.random.default_rng(6)
    rows = emulate.check_graph(g, {v: rng.normal(size=v.shapes[0]).astype(np.float32) for v in g.inputs})
    assert all(err <= 1e-5 for _, _, err in rows), rows


# ---------------------------------------------------------------- the new kernels against the interpreter
def _graphs():
    """One-op graphs of every kernel form this file's training steps added: pick and its gradient, take/Embedding
    and _backward_take, BatchNorm (batch and moving statistics) and _backward_BatchNorm."""
    S = sym
    rng = np.random.default_rng(3)

    def g(fn, *specs):
        vs = [input_var(f"x{i}", s, 'float32') for i, (s, _) in enumerate(specs)]
        out = fn(*vs)
        graph = Graph([o._one() for o in (out if isinstance(out, (list, tuple)) else [out])],
                      [v._one()[0] for v in vs])
        return graph, {v: make(s).astype(np.float32) for v, (s, make) in zip(graph.inputs, specs)}
    normal = lambda s: rng.normal(size=s)  # noqa: E731
    idx = lambda hi: lambda s: rng.integers(-2, hi + 2, s)  # noqa: E731  (out of range too: clip / wrap)
    bn = dict(eps=1e-5, fix_gamma=False)
    return [
        g(lambda d, i: S.pick(d, i, axis=-1), ((6, 10), normal), ((6,), idx(10))),
        g(lambda d, i: S.pick(d, i, axis=1, mode='wrap', keepdims=True), ((3, 5, 4), normal), ((3, 1, 4), idx(5))),
        g(lambda d, i, o: S._backward_pick(d, i, o, axis=-1), ((6, 10), normal), ((6,), idx(10)), ((6,), normal)),
        g(lambda i, w: S.Embedding(i, w, input_dim=7, output_dim=5), ((3, 4), idx(7)), ((7, 5), normal)),
        g(lambda a, i: S.take(a, i, axis=1, mode='wrap'), ((2, 6, 3), normal), ((4,), idx(6))),
        g(lambda i, o: S._backward_take(i, o, axis=0, mode='clip', dim=7), ((3, 4), idx(7)), ((3, 4, 5), normal)),
        g(lambda x, ga, b, m, v: S.BatchNorm(x, ga, b, m, v, _train=True, **bn)[0], ((4, 3, 5, 5), normal),
          ((3,), normal), ((3,), normal), ((3,), normal), ((3,), lambda s: rng.random(s) + 0.5)),
        g(lambda x, ga, b, m, v: list(S.BatchNorm(x, ga, b, m, v, use_global_stats=True, output_mean_var=True,
                                                  **bn)),
          ((2, 3, 7), normal), ((3,), normal), ((3,), normal), ((3,), normal), ((3,), lambda s: rng.random(s) + 0.5)),
        g(lambda o, x, ga, m, v: list(S._backward_BatchNorm(o, x, ga, m, v, _train=True, **bn)),
          ((4, 3, 5, 5), normal), ((4, 3, 5, 5), normal), ((3,), normal), ((3,), normal),
          ((3,), lambda s: rng.random(s) + 0.5)),
        g(lambda o, x, ga, m, v: list(S._backward_BatchNorm(o, x, ga, m, v, _train=True, eps=1e-3, fix_gamma=True)),
          ((2, 3, 300), normal), ((2, 3, 300), normal), ((3,), normal), ((3,), normal),
          ((3,), lambda s: rng.random(s) + 0.5)),
    ]


def _rnn_graph():
    """A 2-layer LSTM (RNN op) with its state outputs, and its gradient graph (_backward_RNN reads the reserve)."""
    from graphc.passes.autodiff import grad_graph
    vs = [input_var(n, s, 'float32') for n, s in [('x', (4, 3, 6)), ('w', (4 * 5 * (6 + 5 + 2) + 4 * 5 * (5 + 5 + 2),)),
                                                  ('h', (2, 3, 5)), ('c', (2, 3, 5))]]
    out = sym.RNN(*vs, state_size=5, num_layers=2, mode='lstm', state_outputs=True)
    fwd = Graph([out[k]._one() for k in range(3)], [v._one()[0] for v in vs])
    joint, heads, _ = grad_graph(fwd, list(fwd.inputs))
    rng = np.random.default_rng(4)
    feed = {v: (rng.normal(size=v.shapes[0]) * 0.5).astype(np.float32) for v in list(fwd.inputs) + heads}
    return [(fwd, feed), (joint, feed)]


@pytest.fixture(scope='module')
def graphs():
    return _graphs() + _rnn_graph()


def test_new_kernels_match_the_interpreter_in_emulation(graphs):
    kinds = set()
    for graph, feed in graphs:
        rows = cuda.graph_kernels(graph)
        assert all(how in ('kernel', 'device') for _, how, _ in rows), [(n.op.name, how) for n, how, _ in rows]
        kinds |= {k.kind for k in cuda.kernels_of(graph)}
        for name, _, err in emulate.check_graph(graph, feed):
            assert err <= 1e-5, (name, err)
    assert kinds >= {'index', 'bn', 'bngrad', 'lstm', 'lstmgrad'}


@pytest.mark.skipif(cuda.nvcc_path() is None, reason="nvcc not on PATH: the CUDA toolkit compiles the kernels")
def test_new_kernels_compile_with_nvcc_for_sm80_and_sm90(graphs):
    ks = [k for graph, _ in graphs for k in cuda.kernels_of(graph)]
    fatbin = cuda.nvcc(cuda.module_source(ks))  # warnings are errors
    assert b'-arch sm_80' in fatbin and b'-arch sm_90' in fatbin


def test_gpu_training_of_a_block_without_gradients_is_inference(cp):
    net = nn.Dense(3, in_units=4)
    net.initialize(ctx=gc.gpu(0))
    net.collect_params().setattr('grad_req', 'null')
    net.hybridize()
    x = nd.ones((2, 4), ctx=gc.gpu(0))
    with autograd.record():
        y = net(x)
    np.testing.assert_allclose(y.asnumpy(), net(x).asnumpy(), rtol=1e-6)


# ---------------------------------------------------------------- the same runs on a real device (gpu_check.sh)
def _real_gpu():
    from graphc.context import gpu_support
    return gpu_support()


REAL_OK, REAL_WHY = _real_gpu()


@pytest.mark.skipif(not REAL_OK, reason=f"no usable GPU: {REAL_WHY}")
@pytest.mark.parametrize('case', ['lenet', 'resnet18', 'char_lstm', 'char_lstm_cells'])
def test_on_a_real_gpu_training_equals_the_cpu(case):
    """The acceptance runs above through real cupy (NVRTC kernels, cuBLAS, cuDNN where cupy has it): parameters
    after 5 hybridized steps within rtol 1e-3, atol 1e-4 of the CPU run (the device's GEMMs and convolutions sum
    in other orders than the emulation's NumPy), and no op of either plan on the host."""
    rng = np.random.default_rng(5)
    h = np.zeros((1, 2, 16), np.float32)
    make, xs, y, lr = {
        'lenet': (lenet, [rng.random((4, 1, 28, 28), np.float32)], np.arange(4) % 10, 0.05),
        'resnet18': (resnet18, [rng.random((2, 3, 16, 16), np.float32)], np.arange(2), 0.01),
        'char_lstm': (lambda: char_lm(False), [rng.integers(0, 12, (2, 5)).astype(np.float32), h, h],
                      rng.integers(0, 12, (2, 5)), 0.05),
        'char_lstm_cells': (lambda: char_lm(True), [rng.integers(0, 12, (2, 5)).astype(np.float32), h, h],
                            rng.integers(0, 12, (2, 5)), 0.05)}[case]
    _, want = train(make, gc.cpu(), xs, y, lr=lr)
    net, got = train(make, gc.gpu(0), xs, y, lr=lr)
    for (k, g), (_, w) in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4, err_msg=k)
    plans = [p for st in net.cached_graph()._gpu_steps.values() for p in (st.forward, st.backward)]
    assert plans and all(p.host_ops == [] and p.launches > 0 for p in plans)
