"""The backend protocol (runtime/backend.py): the interp backend runs op refs only, the CPU backend's lowerings
equal those refs, the fuser consults can_fuse, eager ops run the backend's kernels, executors notify recorders."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn
from graphc.graph import Graph
from graphc.interpreter import interpret
from graphc.passes import run_pipeline
from graphc.passes.fusion import FusedOp
from graphc.registry import OPS
from graphc.runtime import backend, batchnorm, conv, rnn as native_rnn
from graphc.symbol.symbol import input_var


def rand(*shape, seed=0, dtype='float32'):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _conv_net():
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.MaxPool2D(2), nn.Dense(3))
    net.initialize(gc.init.Xavier())
    return net


def _train_step(net, x):
    with autograd.record():
        y = net(x)
    y.backward()
    return [y.asnumpy()] + [p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != 'null']


def test_the_interp_backend_runs_refs_only_and_the_cpu_backend_its_lowerings(monkeypatch):
    """A hybridized conv/BN/pool training step and the same eager ops: under use('interp') no compiled helper
    runs (each is patched to raise); under the CPU backend they all do, and the results agree."""
    calls = []
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')   # (the im2col path: oneDNN's lowering is tests/test_onednn.py's)

    def spy(mod, name):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, **k: calls.append(name) or real(*a, **k))
    for name in ('im2col', 'col2im', 'maxpool', 'maxpool_grad', 'maxpool_grad_relu'):
        spy(conv, name)
    for name in ('forward', 'backward'):
        spy(batchnorm, name)
    x = nd.array(rand(2, 3, 8, 8))
    net = _conv_net()
    net.hybridize()
    with autograd.train_mode():
        got = _train_step(net, x)
    assert {'im2col', 'maxpool', 'forward', 'backward'} <= set(calls) and {'maxpool_grad', 'maxpool_grad_relu'} & set(calls)
    calls.clear()
    with backend.use('interp'):
        assert backend.current() is backend.interp
        with autograd.train_mode():   # (the same block: its reference route)
            want = _train_step(net, x)
        eager = nd.Convolution(x, nd.array(rand(2, 3, 3, 3)), kernel=(3, 3), num_filter=2, no_bias=True)
    assert calls == [] and eager.shape == (2, 2, 6, 6)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_eager_convolution_uses_the_fast_kernel(monkeypatch):
    calls = []
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')   # (the im2col path; with oneDNN eager conv is its, tests/test_onednn.py)
    real = conv.im2col
    monkeypatch.setattr(conv, 'im2col', lambda *a: calls.append(1) or real(*a))
    x, w = nd.array(rand(2, 3, 9, 9)), nd.array(rand(4, 3, 3, 3, seed=1))
    y = nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True)
    assert calls, "eager Convolution did not run the CPU backend's compiled im2col"
    np.testing.assert_allclose(y.asnumpy(), OPS['Convolution'].ref(OPS['Convolution'].canon(
        {'kernel': (3, 3), 'num_filter': 4, 'no_bias': True}), x.asnumpy(), w.asnumpy()), rtol=1e-5, atol=1e-5)


CONV = {'kernel': (3, 3), 'num_filter': 4, 'stride': (2, 1), 'pad': (1, 1), 'no_bias': True}


@pytest.mark.parametrize('name,attrs,arrays', [
    ('Convolution', CONV, lambda: [rand(3, 2, 9, 8), rand(4, 2, 3, 3, seed=1)]),
    ('_backward_Convolution', CONV, lambda: [rand(3, 4, 5, 8, seed=2), rand(3, 2, 9, 8), rand(4, 2, 3, 3, seed=1)]),
    ('Deconvolution', dict(CONV, num_filter=2), lambda: [rand(3, 4, 5, 8), rand(4, 2, 3, 3, seed=1)]),
    ('_backward_Deconvolution', dict(CONV, num_filter=2), lambda: [rand(3, 2, 9, 8, seed=2), rand(3, 4, 5, 8), rand(4, 2, 3, 3, seed=1)]),
    ('Pooling', {'kernel': (2, 2), 'stride': (2, 2)}, lambda: [rand(2, 3, 6, 6)]),
    ('BatchNorm', {'_train': True, 'fix_gamma': False}, lambda: [rand(4, 3, 5, 5) + 3, rand(3, seed=1), rand(3, seed=2),
                                                                 np.zeros(3, 'f4'), np.ones(3, 'f4')]),
    ('_backward_BatchNorm', {'_train': True, 'fix_gamma': False},
     lambda: [rand(4, 3, 5, 5, seed=3), rand(4, 3, 5, 5) + 3, rand(3, seed=1), rand(3, seed=4), np.abs(rand(3, seed=5)) + 1]),
], ids=lambda v: v if isinstance(v, str) else '')
def test_cpu_lowerings_equal_the_refs(name, attrs, arrays):
    op = OPS[name]
    a, xs = op.canon(attrs), arrays()
    assert backend.cpu.kernel(op) is not op.ref and backend.interp.kernel(op) is op.ref
    got, want = backend.cpu.kernel(op)(a, *xs), op.ref(a, *xs)
    for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_cpu_rnn_lowering_equals_the_ref_forward_and_backward(monkeypatch):
    from graphc.ops.rnn import param_size
    calls = []
    real = native_rnn._call
    monkeypatch.setattr(native_rnn, '_call', lambda fn, words: calls.append(1) or real(fn, words))
    a = OPS['RNN'].canon({'state_size': 8, 'num_layers': 1, 'mode': 'lstm', 'state_outputs': True})
    T, N, C = 5, 4, 3
    xs = [rand(T, N, C), rand(param_size(a, C), seed=1) * 0.3, rand(1, N, 8, seed=2), rand(1, N, 8, seed=3)]
    fwd, bwd = OPS['RNN'], OPS['_backward_RNN']
    got, want = backend.cpu.kernel(fwd)(a, *xs), fwd.ref(a, *xs)
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    heads = [rand(T, N, 8, seed=4), rand(1, N, 8, seed=5), rand(1, N, 8, seed=6)]
    dgot = backend.cpu.kernel(bwd)(a, *heads, *xs, got[-1])
    dwant = bwd.ref(a, *heads, *xs, want[-1])
    for g, w in zip(dgot, dwant):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    if native_rnn._blas() is not None:
        assert len(calls) == 2   # the compiled loops ran (forward and backward), not the NumPy ones


def _graph(fn, *shapes):
    vs = [input_var(f"x{i}", s, 'float32') for i, s in enumerate(shapes)]
    out = fn(*vs)
    return Graph([out._one()], [v._one()[0] for v in vs])


def test_a_fused_group_compiles_on_the_cpu_and_equals_its_ref():
    g = _graph(lambda x, y: nd.tanh(x * y + 1) - nd.exp(x), (4, 6), (4, 6))
    opt, _ = run_pipeline(g, 'inference')
    fused = [n for n in opt.nodes if not n.is_var and isinstance(n.op, FusedOp)]
    assert len(fused) == 1
    fop, x, y = fused[0].op, rand(4, 6), rand(4, 6, seed=1)
    assert backend.cpu.compile(fop) is not None and backend.interp.compile(fop) is None
    np.testing.assert_allclose(backend.cpu.kernel(fop)({}, x, y), fop.ref({}, x, y), rtol=1e-6, atol=1e-6)
    feed = {v: a for v, a in zip(g.inputs, (x, y))}
    np.testing.assert_allclose(backend.cpu.executor(opt)(feed)[0], interpret(g, feed)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(backend.interp.executor(opt)(feed)[0], fop.ref({}, x, y))


def test_the_fuser_consults_can_fuse(monkeypatch):
    """An op whose scalar lowering the CPU backend lacks is kept out of fused groups, and the pass says so;
    under the interp backend (which runs refs anyway) it fuses."""
    g = _graph(lambda x: nd.sin(nd.exp(x) * 2) + 1, (5, 7))
    _, rep = run_pipeline(g, 'inference')
    assert 'not_fusable' not in dict((r[0], r[4]) for r in rep.rows)['fuse']
    monkeypatch.setattr(OPS['sin'], 'lower', None)
    opt, rep = run_pipeline(g, 'inference')
    stats = dict((r[0], r[4]) for r in rep.rows)['fuse']
    assert stats['not_fusable'] == 'sin'
    sins = [n for n in opt.nodes if not n.is_var and n.op.name == 'sin']
    assert len(sins) == 1   # outside every group: its neighbours fuse without it
    assert all('sin' not in n.op.ops() for n in opt.nodes if isinstance(n.op, FusedOp))
    assert not backend.cpu.can_fuse(g.nodes[-2] if g.nodes[-2].op.name == 'sin' else
                                    next(n for n in g.nodes if not n.is_var and n.op.name == 'sin'))
    with backend.use('interp'):
        opt2, rep2 = run_pipeline(g, 'inference')
    assert 'not_fusable' not in dict((r[0], r[4]) for r in rep2.rows)['fuse']
    x = rand(5, 7)
    feed = {g.inputs[0]: x}
    np.testing.assert_allclose(backend.cpu.executor(opt)(feed)[0], interpret(g, feed)[0], rtol=1e-6)


def test_can_fuse_follows_the_scalar_lowering_and_dtype():
    f32 = _graph(lambda x: nd.exp(x), (3,))
    f64 = [n for n in _graph(lambda x: nd.sqrt(x), (3,)).nodes if not n.is_var][0]
    exp = [n for n in f32.nodes if not n.is_var][0]
    assert backend.cpu.can_fuse(exp) and backend.cpu.can_fuse(f64) and backend.interp.can_fuse(exp)
    vs = input_var('i', (3,), 'int32')
    iadd = [n for n in Graph([(vs + 1)._one()]).nodes if not n.is_var][0]
    assert not backend.cpu.can_fuse(iadd)   # the CPU's fused kernels are float32/float64


def test_executors_notify_recorders():
    from graphc.gpuplan import captured_plans
    net = nn.Dense(3)
    net.initialize()
    net.hybridize()
    x = nd.array(rand(2, 4))
    with captured_plans() as runs:
        net(x)
        net(x)
    assert len(runs) >= 1 and all(isinstance(gr, Graph) and isinstance(f, dict) for gr, f in runs)
    assert backend.recorders == []
    net(x)
    assert len(runs) <= 2


def test_use_is_per_thread_and_nests():
    import threading
    seen = []
    with backend.use('interp'):
        t = threading.Thread(target=lambda: seen.append(backend.current()))
        t.start()
        t.join()
        with backend.use('cpu'):
            assert backend.current() is backend.cpu
        assert backend.current() is backend.interp
    assert seen == [backend.cpu] and backend.current() is backend.cpu
