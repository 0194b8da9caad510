"""The forked compile worker (runtime/forked.py, GRAPHC_COMPILE_FORK): with 2+ threads a training step's backward
kernels compile in a child process and come back as object code. The kernels are the same IR either way, so the
results are identical; a failing, hanging or missing fork leaves the kernels to this process."""
import ctypes
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn
from graphc.runtime import cpu, forked
from test_compile_ahead import TRAIN_STEPS

pytestmark = pytest.mark.skipif(not hasattr(os, 'fork'), reason='no os.fork here')

_STEP = r"""
import json
import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import cpu, forked
got = []
load = forked._load


def record(name, obj):
    ok = load(name, obj)
    if ok:
        got.append(name)
    return ok
forked._load = record
""" + TRAIN_STEPS + r"""print(json.dumps({'losses': losses, 'w': [p.data().asnumpy().ravel()[:50].tolist() for p in net.collect_params().values()],
                  'delivered': got, 'compiled_here': cpu.stats['disk_misses'], 'from_disk': cpu.stats['disk_hits']}))
"""


def _run(tmp_path, fork, threads='2'):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / f'cache{fork}{threads}'), GRAPHC_COMPILE_FORK=fork,
               GRAPHC_NUM_THREADS=threads, GRAPHC_COMPILE_AHEAD='0', GRAPHC_TIERED='0')   # (no first tier: tests/test_tiered.py)
    r = subprocess.run([sys.executable, '-c', _STEP], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_training_step_with_the_worker_equals_one_compiled_here(tmp_path):
    on, off, one = _run(tmp_path, '1'), _run(tmp_path, '0'), _run(tmp_path, '1', threads='1')
    assert len(on['delivered']) >= 3    # pooling and backward kernels came from the child
    assert off['delivered'] == [] and one['delivered'] == []   # (switched off; one thread: no worker)
    # each kernel came from the child, was compiled here, or was read from the disk cache the child had just
    # written (before its delivery reached this process: a race, seen once in CI)
    assert on['compiled_here'] + on['from_disk'] == off['compiled_here'] - len(on['delivered'])
    assert off['from_disk'] == 0
    assert on['losses'] == off['losses']          # the same kernels: the same bits
    assert on['w'] == off['w']
    np.testing.assert_allclose(one['losses'], on['losses'], rtol=1e-5)


def _ir(value):
    name = f"graphc_test_fork_{os.getpid()}_{value}_{time.monotonic_ns()}"
    return f'define i64 @"{name}"() {{\n  ret i64 {value}\n}}\n', name


def test_a_child_delivers_its_modules_under_their_names():
    text, name = _ir(42)
    child = forked.Child(cpu.compile_ir, text, name)
    pid = child.pid
    assert name not in cpu._loaded            # (compiled over there)
    assert child.join() == [name]
    assert ctypes.CFUNCTYPE(ctypes.c_int64)(cpu._loaded[name])() == 42
    assert cpu.compile_ir(text, name) == cpu._loaded[name]   # this process's own lookup finds it
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)           # reaped


def test_another_fork_leaves_the_worker_to_its_parent():
    """A process forked while a worker runs (a DataLoader's worker, say) neither reads its pipe nor kills it."""
    text, name = _ir(9)

    def slow():
        time.sleep(0.3)
        cpu.compile_ir(text, name)
    child = forked.Child(slow)
    pid = os.fork()
    if pid == 0:
        ok = forked._live == [] and cpu.fetch is None
        del child   # (its __del__ here must not reap the parent's worker)
        os._exit(0 if ok else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert child.join() == [name]   # (the worker was left alone: it delivered here)


def test_a_failing_or_hanging_child_delivers_nothing(monkeypatch):
    def boom():
        raise RuntimeError('compile failure in the child')
    assert forked.Child(boom).join() == []
    monkeypatch.setattr(forked, 'TIMEOUT_S', 0.3)
    t0 = time.monotonic()
    assert forked.Child(time.sleep, 30).join() == []     # killed at the timeout, not waited for
    assert time.monotonic() - t0 < 10
    whole = forked._frame(b'S', 'abc') + forked._frame(b'D', 'abc', b'xy')
    buf = bytearray(whole + forked._frame(b'E', '')[:-2])   # a frame cut short stays in the buffer
    assert forked._frames(buf) == [(b'S', 'abc', b''), (b'D', 'abc', b'xy')]
    assert bytes(buf) == forked._frame(b'E', '')[:-2]


def test_a_module_the_child_has_started_is_waited_for_not_compiled_twice():
    text, name = _ir(5)

    def slow():
        cpu.observer(name, None)   # (announced, then a compile that takes a while)
        time.sleep(0.5)
        cpu.compile_ir(text, name)
    child = forked.Child(slow)
    time.sleep(0.2)
    misses = cpu.stats['disk_misses']
    addr = cpu.compile_ir(text, name)   # fetch(): started over there, so waited for
    assert cpu.stats['disk_misses'] == misses and child.delivered == [name]
    assert ctypes.CFUNCTYPE(ctypes.c_int64)(addr)() == 5
    assert child.join() == [name] and cpu.fetch is None and forked._live == []


def _net():
    net = nn.HybridSequential()
    net.add(nn.Dense(9, activation='tanh', in_units=7), nn.Dense(3, in_units=9))
    net.initialize(gc.init.Xavier())
    return net


def _grads(net):
    x = nd.array(np.random.default_rng(1).normal(size=(5, 7)))
    with autograd.record():
        loss = (net(x) ** 2).sum()
    loss.backward()
    return [p.grad().asnumpy() for p in net.collect_params().values()]


def test_no_fork_here_or_switched_off_compiles_in_this_process(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    monkeypatch.setenv('GRAPHC_COMPILE_AHEAD', '0')
    monkeypatch.setenv('GRAPHC_TIERED', '0')
    gc.random.seed(3)
    net = _net()
    want = _grads(net)    # eager

    def no_fork():
        raise OSError('fork refused')
    monkeypatch.setattr(os, 'fork', no_fork)
    net.hybridize()
    got = _grads(net)
    (fplan, bplan, *_), = next(iter(net._cache.values())).op._compiled.values()
    assert not hasattr(getattr(bplan, 'ahead', None), 'join')   # no worker: built here
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    monkeypatch.undo()   # (a fork again: on by default with two threads; the switches and one thread keep it off)
    bplan = getattr(bplan, '_plan', bplan)
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    child = forked.start(fplan.graph, bplan.graph)   # (the fused tanh gradient: something to compile)
    assert child is not None and child.close() is not None and forked._live == []
    for var, value in (('GRAPHC_COMPILE_FORK', '0'), ('GRAPHC_COMPILE_AHEAD', '1'), ('GRAPHC_NUM_THREADS', '1')):
        with monkeypatch.context() as m:
            m.setenv(var, value)
            assert forked.start(fplan.graph, bplan.graph) is None, var
    monkeypatch.setattr(forked, '_cores', lambda: 1)   # (pinned to one core: no second compiler)
    assert forked.start(fplan.graph, bplan.graph) is None


@pytest.mark.parametrize('opt, params', [('adam', {'learning_rate': 0.1}),
                                         ('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3})])
def test_the_guessed_update_kernel_is_the_one_the_first_step_uses(opt, params):
    from graphc import gluon
    from graphc.runtime import multi_tensor
    gc.random.seed(5)
    net = _net()
    trainer = gluon.Trainer(net.collect_params(), opt, params)
    forked._update_kernel(trainer)   # (here, not in a child: what the child would compile)
    built, calls = set(multi_tensor._kernels), multi_tensor.stats['calls']
    _grads(net)
    trainer.step(5)
    assert multi_tensor.stats['calls'] > calls   # (the step took the multi-tensor path)
    assert set(multi_tensor._kernels) == built   # and found its kernel built
