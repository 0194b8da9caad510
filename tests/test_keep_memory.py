"""runtime/plan.keep_memory: the first plan has glibc's malloc keep freed memory (GRAPHC_KEEP_MEMORY), so a
hybridized step's large buffers are reused, not page-faulted anew each call."""
import os
import resource
import subprocess
import sys

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
