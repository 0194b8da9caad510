"""Cold start (issue 17, point 4; benchmarks/cold_start.py times it): a LeNet training step builds a bounded
number of LLVM modules with an empty kernel cache and none in a new process with the cache it filled; the
optimization level is part of a kernel's cache key; the interpreter backend loads no LLVM."""
import json
import os
import subprocess
import sys

from graphc.runtime import cpu

_LENET = r"""
import json
import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import cpu
gc.random.seed(0)
net = nn.HybridSequential()
net.add(nn.Conv2D(20, 5, activation='relu'), nn.MaxPool2D(2, 2), nn.Conv2D(50, 5, activation='relu'),
        nn.MaxPool2D(2, 2), nn.Flatten(), nn.Dense(500, activation='relu'), nn.Dense(10))
net.initialize(gc.init.Xavier())
net.hybridize()
trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
x, y = nd.random.uniform(shape=(20, 1, 28, 28)), nd.array(list(range(10)) * 2)
for _ in range(2):
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
    loss.backward()
    trainer.step(20)
print(json.dumps({'compiled': cpu.stats['disk_misses'], 'hits': cpu.stats['disk_hits'],
                  'loss': float(loss.asnumpy().sum())}))
"""


def _run(code, cache, **env):
    r = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, GRAPHC_CACHE_DIR=str(cache), **env),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_lenet_step_builds_few_modules_cold_and_none_warm(tmp_path):
    cold = _run(_LENET, tmp_path, GRAPHC_COMPILE_FORK='0')   # (all counted here, none in a forked worker)
    # 11 today: 3 elementwise kernels, the native step interpreter, im2col (two layouts), col2im, max pooling
    # and its gradient for each pooling layer; more means kernels compiled that the step did not need before
    assert 0 < cold['compiled'] <= 12, cold
    warm = _run(_LENET, tmp_path, GRAPHC_COMPILE_FORK='0')
    assert warm['compiled'] == 0 and warm['hits'] == cold['compiled'], warm
    assert warm['loss'] == cold['loss']  # the cached machine code computes what the compiled one did, bit for bit


def test_the_optimization_level_is_in_the_cache_key(monkeypatch):
    key = cpu._entry_key('ir', 'graphc_k_x')
    monkeypatch.setattr(cpu, 'OPT_LEVEL', cpu.OPT_LEVEL + 1)
    assert cpu._entry_key('ir', 'graphc_k_x') != key


def test_the_pipeline_options_are_in_the_cache_key(monkeypatch):
    """Elementwise kernels compile without the loop unroller, the step interpreter without the vectorizers
    and the IR optimizer (level 0) and with the fast code generator, the kernels written in vectors without
    the loop passes, the other window kernels with the whole pipeline: a change of that policy is a
    cache miss, never stale code."""
    assert cpu._pipeline('graphc_k_ab12') == {'unroll': False, 'vectorize': True}
    assert cpu._pipeline('graphc_steps_i64') == {'unroll': False, 'vectorize': False, 'level': 0, 'codegen': 0}
    assert cpu._pipeline('graphc_maxpool_ab12') == {'unroll': True, 'vectorize': True}
    assert cpu._pipeline('graphc_kv_ab12') == {'unroll': False, 'vectorize': False, 'level': 0}
    assert cpu._pipeline('graphc_maxpool_v_ab12') == {'unroll': False, 'vectorize': False, 'level': 0}
    assert cpu._pipeline('graphc_maxpool_grad_relu_v_ab') == {'unroll': False, 'vectorize': False, 'level': 0,
                                                              'codegen': 0}
    key = cpu._entry_key('ir', 'graphc_k_x')
    monkeypatch.setitem(cpu.LIGHT, 'graphc_k_', ())
    assert cpu._entry_key('ir', 'graphc_k_x') != key


def test_the_interpreter_backend_loads_no_llvm(tmp_path):
    code = ("import json, sys, threading\nfrom graphc.runtime import cpu\n"
            "print(json.dumps({'llvm': 'llvmlite.binding' in sys.modules, "
            "'threads': [t.name for t in threading.enumerate()]}))")
    assert _run(code, tmp_path, GRAPHC_BACKEND='interp') == {'llvm': False, 'threads': ['MainThread']}
    on = _run(code.replace("print(", "cpu._engine()\nprint("), tmp_path)
    assert on['llvm'], on


def test_the_cold_rows_worker_runs_graphc_from_bytecode():
    """bench's lenet-cold worker finds graphc's modules compiled, as an installed package has them (the peers'
    are), even where PYTHONDONTWRITEBYTECODE=1 kept an editable checkout from writing any."""
    import importlib.util
    from graphc import bench_peers
    from graphc.passes import autodiff
    from graphc.runtime import plan
    try:
        os.unlink(importlib.util.cache_from_source(plan.__file__))
    except OSError:
        pass
    w = bench_peers.graphc_worker(1)
    w.close()
    for mod in (cpu, plan, autodiff, bench_peers):
        pyc = importlib.util.cache_from_source(mod.__file__)
        assert os.path.exists(pyc) and os.path.getmtime(pyc) >= os.path.getmtime(mod.__file__), mod.__name__


def test_onednn_is_found_from_the_wheel_record_without_importlib_metadata():
    import importlib.metadata as md
    import pytest
    from graphc.runtime import onednn
    want = [str(f.locate()) for d in onednn.DISTRIBUTIONS for f in (md.files(d) if _installed(md, d) else [])
            if f.name == 'libdnnl.so.3']
    if not want:
        pytest.skip('no oneDNN wheel')
    code = ("import sys, json\nfrom graphc.runtime import onednn\nlib = onednn.library()\n"
            "print(json.dumps({'path': onednn._state.get('path'), 'md': 'importlib.metadata' in sys.modules}))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert not out['md'] and os.path.realpath(out['path']) in {os.path.realpath(p) for p in want}


def _installed(md, dist):
    try:
        md.distribution(dist)
        return True
    except md.PackageNotFoundError:
        return False


def test_numpy_huge_page_advice_is_off_once_a_plan_is_built_unless_asked_for(monkeypatch):
    import numpy as np
    from graphc.runtime import plan
    core = getattr(np, '_core', None) or np.core
    advise = getattr(core.multiarray, '_set_madvise_hugepage', None)
    if advise is None:
        return   # (a NumPy without the advice)
    was = advise(True)
    try:
        monkeypatch.delenv('NUMPY_MADVISE_HUGEPAGE', raising=False)
        for env, want in (({'GRAPHC_HUGE_PAGES': '1'}, True), ({'NUMPY_MADVISE_HUGEPAGE': '1'}, True), ({}, False)):
            with monkeypatch.context() as m:
                for k, v in env.items():
                    m.setenv(k, v)
                monkeypatch.setattr(plan, '_plain', [])
                plan.no_huge_pages()
                assert advise(True) is want, env   # (the advice in force; put back on for the next case)
    finally:
        advise(was)
