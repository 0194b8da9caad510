"""Concurrency: one hybridized block called from 8 threads at once (first trace included, inference and
training) gives each thread its own correct results; processes sharing one disk kernel cache never read a
half-written entry and reuse each other's kernels. (The acceptance runs this file 20 times in a row.)"""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, nd
from graphc.gluon import nn

THREADS = 8


def _net():
    net = nn.HybridSequential()
    net.add(nn.Dense(32, activation='tanh'), nn.Dense(16), nn.BatchNorm(), nn.Activation('sigmoid'), nn.Dense(5))
    net.initialize(gc.init.Xavier())
    return net


class Model(gc.gluon.HybridBlock):
    """A fused elementwise chain, the network (GEMMs, BatchNorm) and a softmax and a reduction after it."""

    def __init__(self):
        super().__init__()
        with self.name_scope():
            self.body = _net()

    def hybrid_forward(self, F, x):
        h = self.body(F.tanh(x * 2 + 1) * F.sigmoid(x) - F.relu(x) / 3)
        return F.softmax(h, axis=-1), F.sum(h * h, axis=1)


def _inputs(n):
    r = np.random.default_rng(1)
    return [r.normal(size=(4 + (i % 2), 12)).astype(np.float32) for i in range(n)]  # two shapes: two traces


def _in_threads(work, n=THREADS):
    """Run work(i) in n threads released together; re-raise the first error."""
    barrier, errors = threading.Barrier(n), []

    def run(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts), "a thread hung"
    if errors:
        raise errors[0]


@pytest.mark.parametrize('warm', [False, True], ids=['first-call-in-threads', 'warm'])
def test_one_hybridized_block_from_8_threads(warm):
    net = Model()
    xs = _inputs(THREADS)
    want = [[o.asnumpy() for o in net(nd.array(x))] for x in xs]  # eager
    net.hybridize()
    if warm:
        net(nd.array(xs[0]))
        net(nd.array(xs[1]))

    def work(i):
        for _ in range(15):
            got = net(nd.array(xs[i]))
            for g, w in zip(got, want[i]):
                np.testing.assert_allclose(g.asnumpy(), w, rtol=1e-5, atol=1e-6)
    _in_threads(work)
    assert net.trace_count == 2  # one trace per input shape, however many threads raced for it


def test_training_calls_from_8_threads_get_their_own_gradients():
    net = Model()
    xs = _inputs(THREADS)
    want = []
    for x in xs:  # eager input gradients, one sample set at a time
        a = nd.array(x)
        a.attach_grad()
        with autograd.record():
            p, s = net(a)
        want.append(autograd.grad([p, s], [a], [nd.ones(p.shape), nd.ones(s.shape)])[0].asnumpy())
    net.hybridize()

    def work(i):
        for _ in range(5):
            a = nd.array(xs[i])
            a.attach_grad()
            with autograd.record():
                p, s = net(a)
            g = autograd.grad([p, s], [a], [nd.ones(p.shape), nd.ones(s.shape)])[0]
            np.testing.assert_allclose(g.asnumpy(), want[i], rtol=1e-4, atol=1e-5)
    _in_threads(work)


# ---------------------------------------------------------------- processes sharing the disk kernel cache
_STRESS = r"""
import hashlib, json, os, sys, time
from graphc.runtime import cpu
role, key, seconds, size = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3]), int(sys.argv[4])
path = os.path.join(cpu.cache_dir(), 'kernels', *cpu._entry_file(key))
head = len(cpu.CACHE_MAGIC) + 32
end, n, torn = time.time() + seconds, 0, 0
while time.time() < end:
    if role == 'writer':  # a fresh valid entry each time, as a recompile would write
        cpu._disk_store(key, os.urandom(size))
    else:  # the file itself, read as another process would: always a whole entry
        try:
            with open(path, 'rb') as f:
                blob = f.read()
        except FileNotFoundError:
            continue
        ok = len(blob) == head + 4 + len(key) + size and blob.startswith(cpu.CACHE_MAGIC) and \
            hashlib.sha256(blob[head:]).digest() == blob[len(cpu.CACHE_MAGIC):head]
        torn += not ok
        obj = cpu._disk_load(key)
        torn += obj is not None and len(obj) != size
    n += 1
print(json.dumps({'n': n, 'torn': torn}))
"""


def _env(cache):
    return dict(os.environ, GRAPHC_CACHE_DIR=str(cache), GRAPHC_BACKEND='cpu')


def test_concurrent_writers_never_leave_a_half_written_cache_entry(tmp_path):
    key = 'ab' + '0' * 62
    args = [key, '1.5', str(1 << 20)]
    procs = [subprocess.Popen([sys.executable, '-c', _STRESS, role] + args, env=_env(tmp_path), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for role in ('writer', 'writer', 'reader', 'reader')]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    res = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert all(r['n'] > 3 for r in res), res          # everyone got work done while the others did
    assert sum(r['torn'] for r in res[2:]) == 0, res  # no reader ever saw a partial or corrupt entry
    assert not list(tmp_path.glob('kernels/*/.tmp-*'))  # and no temporary file was left behind


_COMPILE = r"""
import json, sys
import numpy as np
from graphc import nd
from graphc.graph import Graph
from graphc.passes import run_pipeline
from graphc.runtime import cpu
from graphc.runtime.plan import Plan
from graphc.symbol.symbol import input_var
x = np.linspace(-3, 3, 7 * 33, dtype=np.float32).reshape(7, 33)
sums = []
for k in range(6):  # six distinct kernels
    v = input_var('x', x.shape, x.dtype)
    y = nd.tanh(v * (k + 1.5) + 1) * nd.sigmoid(v) - nd.relu(v) / (k + 2)
    g = Graph([nd.sum(y, axis=1)._one()] if k % 2 else [y._one()])
    out = Plan(run_pipeline(g, 'inference')[0])({g.inputs[0]: x})[0]
    ref = np.tanh(x * (k + 1.5) + 1) / (1 + np.exp(-x)) - np.maximum(x, 0) / (k + 2)
    ref = ref.sum(1) if k % 2 else ref
    assert np.allclose(out, ref, rtol=1e-5, atol=1e-5), k
    sums.append(float(out.sum()))
print(json.dumps({'sums': sums, 'hits': cpu.stats['disk_hits'], 'misses': cpu.stats['disk_misses']}))
"""


def test_two_processes_compile_into_one_cache_and_a_third_reuses_it(tmp_path):
    procs = [subprocess.Popen([sys.executable, '-c', _COMPILE], env=_env(tmp_path), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-800:] for o in outs]
    first = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert first[0]['sums'] == first[1]['sums']
    n = first[0]['hits'] + first[0]['misses']
    assert n >= 6
    r = subprocess.run([sys.executable, '-c', _COMPILE], env=_env(tmp_path), text=True, capture_output=True,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-800:]
    third = json.loads(r.stdout.strip().splitlines()[-1])
    assert third['sums'] == first[0]['sums'] and third['misses'] == 0 and third['hits'] == n, third
    assert not list(tmp_path.glob('kernels/*/.tmp-*'))
