"""A training step's first tier (runtime/tiered.py, GRAPHC_TIERED=1): the first call runs the optimized graphs without
waiting for LLVM (NumPy and oneDNN forms, the per-parameter update) while a forked worker compiles; the second
call swaps in the compiled plans. Both tiers compute the same step: outputs, gradients and updated weights agree
with a run that compiles first; a worker that fails or cannot be forked leaves the compile to this process."""
import os

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import conv, cpu, forked, multi_tensor, tiered
from graphc.runtime.plan import Plan


def _net(seed, c=4):
    gc.random.seed(seed)
    net = nn.HybridSequential()
    net.add(nn.Conv2D(c, 3, activation='relu'), nn.MaxPool2D(2, 2), nn.Conv2D(6, 3, activation='relu'),
            nn.MaxPool2D(2, 2), nn.Flatten(), nn.Dense(10, activation='tanh'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    net.hybridize()
    return net


def _steps(seed, n, monkeypatch, tiered_on, threads='1', c=4):
    """n Adam steps of a fresh net (c channels first): per step (loss, grads, weights after the update), and the
    net."""
    monkeypatch.setenv('GRAPHC_TIERED', '1' if tiered_on else '0')
    monkeypatch.setenv('GRAPHC_NUM_THREADS', threads)
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '0')
    net = _net(seed, c)
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.01})
    rng = np.random.default_rng(seed)
    x, y = nd.array(rng.uniform(size=(8, 1, 14, 14))), nd.array(rng.integers(0, 10, 8))
    loss_fn, out = gluon.loss.SoftmaxCrossEntropyLoss(), []
    for _ in range(n):
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        grads = [p.grad().asnumpy().copy() for p in net.collect_params().values()]
        trainer.step(8)
        out.append((loss.asnumpy(), grads, [p.data().asnumpy().copy() for p in net.collect_params().values()]))
    return out, net


def _agree(a, b):
    for (la, ga, wa), (lb, gb, wb) in zip(a, b):
        np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)
        for u, v in zip(ga + wa, gb + wb):
            np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def _plans(net):
    (hit,) = next(iter(net._cache.values())).op._compiled.values()
    return hit[:2]


def test_both_tiers_compute_the_step_a_compiled_run_does_and_the_second_call_swaps(monkeypatch):
    want, _ = _steps(3, 3, monkeypatch, tiered_on=False)
    first, net = _steps(3, 1, monkeypatch, tiered_on=True)
    op = next(iter(net._cache.values())).op
    (tiers,) = op._tiers.values()
    assert all(type(p) is tiered.First and p.program is None for p in _plans(net))   # the first call: no native plan
    assert tiered.pending(next(iter(tiers.trainers)))   # (the Trainer's update waits too)
    spare = hasattr(os, 'fork') and forked._cores() > 1
    assert (tiers.child is not None) == spare   # (one thread: a worker where a second core is there)
    pid = tiers.child.pid if spare else None
    tiers.close()             # (a block dropped after its first step: its worker is stopped and reaped)
    if pid is not None:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
    got, net2 = _steps(3, 3, monkeypatch, tiered_on=True)
    _agree(got, want)
    _agree(first, want[:1])
    fplan, bplan = _plans(net2)
    assert type(fplan) is Plan and type(bplan) is Plan and fplan.program is not None   # swapped: compiled plans
    assert next(iter(net2._cache.values())).op._tiers == {}
    assert forked._live == [] and cpu.fetch is None            # the worker was waited for and reaped


def test_the_first_call_builds_only_the_kernels_cheaper_than_their_numpy_form(monkeypatch):
    """In this process the first call compiles at most the max-pooling gradients (conv.NOW); the rest, the worker
    (or the second call)."""
    names, compile_ir = [], cpu._compile_ir

    def seen(text, name):
        names.append(name)
        return compile_ir(text, name)
    monkeypatch.setattr(cpu, '_compile_ir', seen)
    monkeypatch.setenv('GRAPHC_CACHE_DIR', os.path.join(os.environ.get('TMPDIR', '/tmp'), f'graphc-tiered-{os.getpid()}'))
    built = set(multi_tensor._kernels)
    _, net = _steps(17, 1, monkeypatch, tiered_on=True, threads='1', c=5)   # (5 channels: no other test's kernels)
    for t in next(iter(net._cache.values())).op._tiers.values():
        t.close()   # (its worker: this test counts what this process compiles)
    assert all(n.startswith('graphc_maxpool_grad') for n in names), names   # (no step interpreter, no update)
    assert set(multi_tensor._kernels) == built   # the update: its kernel where built before, else parameter by parameter
    calls = multi_tensor.stats['calls']
    _, net = _steps(17, 2, monkeypatch, tiered_on=True, threads='1', c=5)
    assert _plans(net)[0].program is not None   # (the rest compiled by the worker or here, at the second call)
    assert multi_tensor.stats['calls'] > calls   # and from the second step in one multi-tensor kernel


def test_switched_off_the_first_call_runs_the_compiled_plans(monkeypatch):
    _, net = _steps(5, 1, monkeypatch, tiered_on=False)
    assert all(type(p) is not tiered.First for p in _plans(net))
    assert next(iter(net._cache.values())).op._tiers == {}


def test_no_worker_where_no_core_is_spare(monkeypatch):
    """Two threads on two cores: the first tier's oneDNN calls take both; the second call compiles here."""
    monkeypatch.setattr(forked, '_cores', lambda: 2)
    want, _ = _steps(9, 2, monkeypatch, tiered_on=False, threads='2')
    _, net = _steps(9, 1, monkeypatch, tiered_on=True, threads='2')
    (tiers,) = next(iter(net._cache.values())).op._tiers.values()
    assert tiers.child is None
    got, net = _steps(9, 2, monkeypatch, tiered_on=True, threads='2')
    _agree(got, want)
    assert _plans(net)[0].program is not None


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='no os.fork here')
@pytest.mark.parametrize('how', ['failing worker', 'no fork'])
def test_without_a_worker_the_second_call_compiles_here(monkeypatch, how):
    want, _ = _steps(7, 3, monkeypatch, tiered_on=False)
    monkeypatch.setattr(forked, '_cores', lambda: 2)   # (one thread, a second core: a worker would start)
    if how == 'failing worker':
        def broken(*args):
            raise RuntimeError('a compile failure in the worker')
        monkeypatch.setattr(forked, '_build', broken)
    else:
        def no_fork():
            raise OSError('fork refused')
        monkeypatch.setattr(os, 'fork', no_fork)
    started, start = [], forked.start
    monkeypatch.setattr(forked, 'start', lambda *a, **k: started.append(start(*a, **k)) or started[-1])
    got, net = _steps(7, 3, monkeypatch, tiered_on=True)
    _agree(got, want)
    fplan, bplan = _plans(net)
    assert type(fplan) is Plan and fplan.program is not None
    assert forked._live == [] and cpu.fetch is None
    assert len(started) == 1 and (started[0] is None) == (how == 'no fork')
    if how == 'failing worker':
        assert started[0].pid is None and started[0].delivered == []   # it ended, delivering nothing; reaped


def test_a_deferred_kernel_is_neither_built_nor_remembered(monkeypatch):
    monkeypatch.setattr(conv, '_kernels', {})   # (an earlier test of the suite may have built this very kernel)
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    with cpu.deferring():
        assert cpu.deferred()
        np.testing.assert_array_equal(conv.maxpool(x, (2, 2), (2, 2), (0, 0), (4, 4)),   # (its NumPy form)
                                      x.reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))
        assert conv._kernels == {}
        with pytest.raises(cpu.Deferred):
            multi_tensor.kernel('adam', np.float32, (), 2, (False,))
        big = np.random.default_rng(1).normal(size=(9, 8, 130, 130)).astype(np.float32)   # (split over 2 threads)
        monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
        np.testing.assert_array_equal(conv.maxpool(big, (2, 2), (2, 2), (0, 0), (65, 65)),
                                      big.reshape(9, 8, 65, 2, 65, 2).max(axis=(3, 5)))
        assert conv._kernels == {}
    assert not cpu.deferred()
    y = conv.maxpool(x, (2, 2), (2, 2), (0, 0), (4, 4))   # outside: built as ever
    np.testing.assert_array_equal(y, x.reshape(2, 3, 4, 2, 4, 2).max(axis=(3, 5)))
    with cpu.deferring():   # built before: used
        np.testing.assert_array_equal(conv.maxpool(x, (2, 2), (2, 2), (0, 0), (4, 4)), y)


def test_a_first_tier_runs_a_convolution_and_its_relu_as_one_onednn_call(monkeypatch):
    from graphc.runtime import onednn
    if onednn.library() is None:
        pytest.skip('no oneDNN wheel')
    calls, chain = [], onednn.conv_act_pool
    monkeypatch.setattr(onednn, 'conv_act_pool', lambda *a: calls.append(a[0]) or chain(*a))
    want, _ = _steps(21, 1, monkeypatch, tiered_on=False, threads='2')
    assert calls == []
    got, _ = _steps(21, 1, monkeypatch, tiered_on=True, threads='2')
    assert len(calls) == 2 and all(c['act'] == 'relu' and c['pool'] is None for c in calls)   # both layers
    _agree(got, want)


def test_a_kernel_that_fails_to_compile_is_raised_at_the_second_call_and_each_after(monkeypatch):
    from graphc.base import GraphcError

    def broken(sub, dtype, **kw):
        raise GraphcError('no kernel for this group')
    monkeypatch.setattr(cpu, 'build_ir', broken)
    monkeypatch.setattr(forked, '_cores', lambda: 1)   # (no worker: the second call compiles here)
    monkeypatch.setenv('GRAPHC_TIERED', '1')
    net = _net(23, 3)   # (3 channels: kernels no other test built)
    x = nd.array(np.random.default_rng(0).uniform(size=(8, 1, 14, 14)))
    with autograd.record():
        loss = net(x).sum()   # the first tier builds no fused kernel
    loss.backward()
    for _ in range(2):
        with pytest.raises(GraphcError, match='no kernel for this group'):
            with autograd.record():
                net(x)


class _Res(nn.HybridBlock):
    """Padded and strided convolutions, a residual add, an overlapping padded max pooling, one Dense: a forward
    whose compiled plan has no native rows (its FullyConnected is NumPy's there, so in the first tier too)."""

    def __init__(self):
        super().__init__()
        self.c0 = nn.Conv2D(16, 3, padding=1, strides=2, activation='relu')
        self.c1 = nn.Conv2D(16, 3, padding=1)
        self.pool, self.out = nn.MaxPool2D(3, 2, padding=1), nn.Dense(10)

    def hybrid_forward(self, F, x):
        y = self.c0(x)
        return self.out(self.pool(F.relu(y + self.c1(y))))


def _exact_run(model, mode, threads, opt, monkeypatch, n=3, batch=16):
    """n steps of bench_peers' LeNet or MLP (batch rows) with GRAPHC_TIERED=mode: the weights after each step,
    and whether the first call ran a first tier."""
    import sys
    monkeypatch.setenv('GRAPHC_TIERED', mode)
    monkeypatch.setenv('GRAPHC_NUM_THREADS', threads)
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '0')
    sys.path.insert(0, os.path.join(os.path.dirname(gc.__file__), 'bench_peers'))
    import mxnet_peer
    mxnet_peer.use(gc)
    gc.random.seed(11)
    net = _Res() if model == 'res' else getattr(mxnet_peer, model)()
    net.initialize(gc.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    kw = {'learning_rate': 1e-3} if opt == 'adam' else {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-4}
    trainer = gluon.Trainer(net.collect_params(), opt, kw)
    rng = np.random.default_rng(5)
    x = nd.array(rng.uniform(size={'lenet': (batch, 1, 28, 28), 'res': (batch, 3, 32, 32)}.get(model, (batch, 784)))
                 .astype(np.float32))
    y = nd.array(rng.integers(0, 10, batch).astype(np.float32))
    loss_fn, out, first = gluon.loss.SoftmaxCrossEntropyLoss(), [], None
    for _ in range(n):
        with autograd.record():
            loss = loss_fn(net(x), y)
        if first is None:
            first = bool(next(iter(net._cache.values())).op._tiers)
        loss.backward()
        trainer.step(batch)
        out.append([p.data().asnumpy().copy() for p in net.collect_params().values()])
    return out, first


@pytest.mark.parametrize('threads', ['1', '2'])
@pytest.mark.parametrize('model,opt', [('lenet', 'adam'), ('mlp', 'adam'), ('mlp', 'sgd'), ('res', 'adam')])
def test_auto_runs_a_first_tier_that_computes_the_compiled_bits(monkeypatch, model, opt, threads):
    """GRAPHC_TIERED=auto (the default): LeNet's, the MLP's and _Res's ops are all in tiered.EXACT, so the first call
    runs a first tier, and every step's weights equal a run that compiles first, bit for bit."""
    monkeypatch.delenv('GRAPHC_TIERED', raising=False)
    assert gc.config.tiered() == 'auto'
    want, first = _exact_run(model, '0', threads, opt, monkeypatch)
    assert not first
    got, first = _exact_run(model, 'auto', threads, opt, monkeypatch)
    assert first
    for a, b in zip(want, got):
        assert all(np.array_equal(u, v) for u, v in zip(a, b))


def test_auto_compiles_first_where_an_op_is_not_exact(monkeypatch):
    """A tanh (NumPy's and LLVM's differ in the last bit) keeps the graph off the first tier under auto."""
    monkeypatch.setenv('GRAPHC_TIERED', 'auto')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '0')
    net = _net(5)   # (its Dense has a tanh)
    x = nd.array(np.random.default_rng(0).uniform(size=(8, 1, 14, 14)))
    with autograd.record():
        loss = net(x).sum()
    loss.backward()
    op = next(iter(net._cache.values())).op
    assert op._tiers == {} and all(type(p) is not tiered.First for p in _plans(net))
    monkeypatch.setenv('GRAPHC_TIERED', 'yes')
    with pytest.raises(gc.base.GraphcError, match='GRAPHC_TIERED'):
        gc.config.tiered()
