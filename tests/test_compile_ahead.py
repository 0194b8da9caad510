"""Compiling ahead (runtime/cpu.ahead, GRAPHC_COMPILE_AHEAD): hybridize() starts LLVM and the step interpreter on
the compile thread and a training step's backward kernels compile there while its forward runs. The kernels are
the same either way (same IR, same names), so the results are identical; the switch, one thread, failures on
the compile thread and the thread count are checked here (GRAPHC_COMPILE_AHEAD=1; it is off by default)."""
import json
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.base import GraphcError
from graphc.gluon import nn
from graphc.runtime import cpu

TRAIN_STEPS = r"""
gc.random.seed(0)
net = nn.HybridSequential()
net.add(nn.Conv2D(8, 5, activation='relu'), nn.MaxPool2D(2, 2), nn.Conv2D(16, 3, activation='relu'),
        nn.MaxPool2D(2, 2), nn.Flatten(), nn.Dense(32, activation='tanh'), nn.Dense(10))
net.initialize(gc.init.Xavier())
net.hybridize()
trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-2})
x, y = nd.random.uniform(shape=(12, 1, 20, 20)), nd.array(list(range(10)) + [0, 1])
losses = []
for _ in range(3):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    trainer.step(12)
    losses.append(loss.asnumpy().tolist())
"""  # (3 Adam steps of a small conv net; test_compile_fork runs them too)

_STEP = r"""
import json, threading
import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import cpu
""" + TRAIN_STEPS + r"""print(json.dumps({'losses': losses, 'w': [p.data().asnumpy().ravel()[:50].tolist() for p in net.collect_params().values()],
                  'threads': sorted({t.name.split('_')[0] for t in threading.enumerate()})}))
"""


def _run(tmp_path, ahead, threads='2'):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / f'cache{ahead}{threads}'), GRAPHC_COMPILE_AHEAD=ahead,
               GRAPHC_NUM_THREADS=threads, GRAPHC_TIERED='0')   # (the same bits from the first step: no first tier)
    r = subprocess.run([sys.executable, '-c', _STEP], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_training_step_compiled_ahead_equals_one_compiled_when_needed(tmp_path):
    on, off, one = _run(tmp_path, '1'), _run(tmp_path, '0'), _run(tmp_path, '1', threads='1')
    assert 'graphc-compile' in on['threads']   # the step's kernels were compiled there
    assert 'graphc-compile' not in off['threads'] and 'graphc-compile' not in one['threads']
    assert on['losses'] == off['losses']          # the same kernels: the same bits
    assert on['w'] == off['w']
    np.testing.assert_allclose(one['losses'], on['losses'], rtol=1e-5)   # (one thread: other GEMM splits)


def test_off_by_default_the_switch_and_one_thread_compile_on_the_caller(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '0')
    assert cpu.ahead(lambda: 1) is None
    monkeypatch.delenv('GRAPHC_COMPILE_AHEAD')   # (off by default)
    assert cpu.ahead(lambda: 1) is None
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '1')
    assert cpu.ahead(lambda: 1).result() == 1
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '1')
    assert cpu.ahead(lambda: 1) is None


def _net(units):
    net = nn.HybridSequential()
    net.add(nn.Dense(units, activation='tanh', in_units=7), nn.Dense(3, in_units=units))
    net.initialize(gc.init.Xavier())
    return net


def _step(net):
    x = nd.array(np.random.default_rng(1).normal(size=(5, 7)))
    for p in net.collect_params().values():
        p.grad_req = 'write'
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    return [p.grad().asnumpy() for p in net.collect_params().values()]


def test_a_failure_on_the_compile_thread_is_logged_and_the_kernel_built_when_needed(monkeypatch, caplog):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '1')
    build = cpu.build_ir

    def flaky(sub, dtype, **kw):
        if threading.current_thread().name.startswith('graphc-compile'):
            raise GraphcError('a compile-thread failure')
        return build(sub, dtype, **kw)
    monkeypatch.setattr(cpu, 'build_ir', flaky)
    gc.random.seed(3)
    net = _net(11)
    want = _step(net)        # eager
    net.hybridize()
    x = nd.array(np.random.default_rng(1).normal(size=(5, 7)))
    with caplog.at_level(logging.INFO, logger='graphc'):
        with autograd.record():
            loss = (net(x) ** 2).sum()
        (_, bplan, *_), = next(iter(net._cache.values())).op._compiled.values()
        with pytest.raises(GraphcError, match='a compile-thread failure'):
            bplan.ahead.result()            # the backward's kernels failed there, before the backward needs them
        cpu.ahead(lambda: None).result()    # (the callbacks of what ran before it have run)
        loss.backward()                     # and compile on this thread now
    got = [p.grad().asnumpy() for p in net.collect_params().values()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert 'compiling ahead failed' in caplog.text and 'a compile-thread failure' in caplog.text


def test_a_failure_everywhere_is_raised_where_the_plan_needs_the_kernel(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '1')

    def broken(sub, dtype, **kw):
        raise GraphcError('no kernel for this group')
    monkeypatch.setattr(cpu, 'build_ir', broken)
    net = _net(13)
    net.hybridize()
    with pytest.raises(GraphcError, match='no kernel for this group'):
        _step(net)


def test_one_compile_thread_however_many_blocks_hybridize(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '1')
    for units in (17, 19, 23):
        net = _net(units)
        net.hybridize()
        _step(net)
    cpu.ahead(lambda: None).result()
    assert sum(t.name.startswith('graphc-compile') for t in threading.enumerate()) == 1


def test_two_threads_asking_for_one_kernel_compile_it_once():
    text = 'define void @graphc_test_once(i8** %a, i64 %s, i64 %e) {\n  ret void\n}\n'
    before = cpu.stats['disk_misses'] + cpu.stats['disk_hits']
    out = []
    ts = [threading.Thread(target=lambda: out.append(cpu.compile_ir(text, 'graphc_test_once'))) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(out)) == 1 and out[0]
    assert cpu.stats['disk_misses'] + cpu.stats['disk_hits'] == before + 1


def test_the_backward_plan_is_built_at_its_first_use(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '1')
    net = _net(29)
    net.hybridize()
    _step(net)
    entry = next(iter(net._cache.values()))
    (fplan, bplan, *_), = entry.op._compiled.values()
    assert bplan._plan is not None and bplan.graph is bplan._plan.graph and fplan is not bplan._plan


@pytest.mark.parametrize('attrs', [{'kernel': (2, 2), 'stride': (2, 2)}, {'kernel': (3, 3), 'stride': (2, 2), 'pad': (1, 1)},
                                   {'kernel': (3, 3), 'stride': (3, 3)}], ids=str)
def test_the_pooling_kernels_compiled_ahead_are_the_ones_the_ops_use(attrs):
    from graphc.passes.conv_pool import BACKWARD_POOL_RELU
    from graphc.registry import OPS
    from graphc.runtime import backend, conv
    op, back = OPS['Pooling'], OPS['_backward_Pooling']
    a = op.canon(attrs)
    x = np.random.default_rng(0).normal(size=(2, 3, 10, 9)).astype(np.float32)
    ys = op.infer(a, [x.shape], [x.dtype])[0][0]
    before = len(conv._kernels)
    for name, shapes in (('Pooling', [x.shape]), ('_backward_Pooling', [ys, x.shape, ys]),
                         ('_backward_pool_relu', [ys, x.shape, ys, x.shape])):
        conv.warm(name, a, shapes, x.dtype)
    assert len(conv._kernels) > before
    n = len(conv._kernels)
    y = backend.cpu.kernel(op)(a, x)
    g = np.ones_like(y)
    backend.cpu.kernel(back)(a, g, x, y)
    backend.cpu.kernel(BACKWARD_POOL_RELU)(a, g, x, y, x)
    assert len(conv._kernels) == n   # every kernel the ops asked for was there
