"""runtime/plan.keep_memory: the first plan has glibc's malloc keep freed memory (GRAPHC_KEEP_MEMORY), so a
hybridized step's large buffers are reused, not page-faulted anew each call."""
import os
import resource
import subprocess
import sys
import tracemalloc

import pytest

GLIBC = hasattr(os, 'confstr') and 'glibc' in (os.confstr('CS_GNU_LIBC_VERSION') or '')

SCRIPT = r"""
import resource, sys
import numpy as np
import graphc as gc
from graphc import nd
from graphc.gluon import nn
net = nn.HybridSequential()
net.add(nn.Dense(16))
net.initialize()
net.hybridize()
net(nd.ones((2, 3)))   # (a plan: keep_memory has run, or not)
def churn():
    for _ in range(3):   # a step's four 12 MB buffers, freed at its end (48 MB at the heap's top)
        bufs = [np.empty(12 << 20, np.uint8) for _ in range(4)]
        for a in bufs:
            a[::4096] = 1
        del bufs, a
churn()
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
"""


def _faults(**env):
    e = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    e.update(env)
    out = subprocess.run([sys.executable, '-c', SCRIPT], env=e, capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC or not hasattr(resource, 'getrusage'), reason='glibc malloc only')
def test_freed_buffers_are_reused_not_faulted_again():
    kept = _faults()
    assert kept < 100 < _faults(GRAPHC_KEEP_MEMORY='0')   # (12 MB a time from the kernel: 3,000 pages each)
    assert _faults(MALLOC_TOP_PAD_='0') > 100   # (the user's malloc tuning wins: not set)


def test_a_large_fused_output_is_reused_once_the_caller_drops_it(monkeypatch):
    """A fused group's large output (glibc may map such a block anew each call, every page faulted) is the same
    buffer next call when nothing holds it any more; held (or a view of it held), the next call gets a fresh one, so
    no value the caller kept is overwritten."""
    import numpy as np
    from graphc import gluon, nd
    from graphc.runtime import cpu
    monkeypatch.setattr(cpu, 'RECYCLE_BYTES', 1 << 20)
    a = np.random.default_rng(0).normal(size=(1024, 512)).astype(np.float32)   # 2 MB out, above the patched bound
    x = nd.array(a)
    g = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g.hybridize()
    want = np.tanh(a * 2 + 1) * (1 / (1 + np.exp(-a))) - np.maximum(a, 0) / 3
    first = g(x).asnumpy()
    at = first.__array_interface__['data'][0]
    del first
    tracemalloc.start()   # (NumPy reports its data allocations to it)
    try:
        y = g(x)
        new = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    held = y.asnumpy()
    assert held.__array_interface__['data'][0] == at and new < a.nbytes // 2   # (dropped: reused, nothing allocated)
    z = g(x).asnumpy()   # (y still holds its buffer: a fresh one)
    assert z.__array_interface__['data'][0] != at
    np.testing.assert_allclose(held, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-6)
    view = z[:10]
    del z, y, held
    w = g(x).asnumpy()   # (a view of the last output is alive: not reused)
    assert not np.shares_memory(w, view)
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-6)
