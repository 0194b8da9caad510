"""ULP error of the compiled float32 tanh, sigmoid and exp over every float32 in their non-trivial ranges (or every
STRIDE-th with --stride), against float64 NumPy rounded to float32 (docs/NUMERICS.md's table).

    python tools/ulp_sweep.py [--stride 1] [--only tanh,sigmoid,exp]

tanh: [0, 10] (odd to the bit, and 1 above 9.02: tests/test_codegen.py); sigmoid: [-104, 18] (0 below -103.97,
1 above 17.33); exp: [-104, 88.72]; log: every non-negative finite float32. About 5.5e9 points at stride 1: a few
minutes on two cores.
"""
import argparse
import sys
import time

import numpy as np

from graphc import nd
from graphc.graph import Graph
from graphc.passes.fusion import FusedOp
from graphc.runtime import cpu
from graphc.symbol.symbol import input_var

CHUNK = 1 << 24
RANGES = {'tanh': [(0.0, 10.0)], 'sigmoid': [(-104.0, 0.0), (0.0, 18.0)], 'exp': [(-104.0, 0.0), (0.0, 88.72)],
          'log': [(0.0, 3.4028234663852886e38)]}
REFS = {'tanh': np.tanh, 'sigmoid': lambda x: 1 / (1 + np.exp(-x)), 'exp': np.exp, 'log': np.log}


def kernel(name):
    v = input_var('in0', (CHUNK,), np.float32)
    out = getattr(nd, name)(v * 1.0)  # (*1.0: a one-op group compiles)
    k = cpu.kernel_for(FusedOp('k', Graph([out._one()], [v._one()[0]])))
    assert k is not None, name
    return k


def floats(lo, hi, stride):
    """Every stride-th float32 from 0 out to |hi| or |lo| (one sign), as their bit patterns in chunks."""
    end = int(np.float32(max(abs(lo), abs(hi))).view(np.int32)) + 1
    sign = np.int32(-2 ** 31) if hi <= 0 else np.int32(0)
    for start in range(0, end, CHUNK * stride):
        bits = np.arange(start, min(end, start + CHUNK * stride), stride, dtype=np.int64).astype(np.int32)
        yield (bits | sign).view(np.float32)


def ulps(got, want):
    w32, g = want.astype(np.float32), got.astype(np.float64)
    with np.errstate(invalid='ignore'):   # (equal infinities: log(0) = -inf)
        return np.where(g == want, 0.0, np.abs(g - want) / np.spacing(np.abs(w32)).astype(np.float64))


def sweep(name, stride):
    k, ref, worst, at, n, total = kernel(name), REFS[name], 0.0, None, 0, 0.0
    buf_in, buf_out = np.empty(CHUNK, np.float32), np.empty(CHUNK, np.float32)
    for lo, hi in RANGES[name]:
        for x in floats(lo, hi, stride):
            m = len(x)
            buf_in[:m] = x
            buf_in[m:] = 0
            k([buf_in], [buf_out])
            with np.errstate(over='ignore', divide='ignore'):
                e = ulps(buf_out[:m], ref(x.astype(np.float64)))
            i = int(e.argmax())
            if e[i] > worst:
                worst, at = float(e[i]), float(x[i])
            n, total = n + m, total + float(e.sum())
    return worst, at, total / n, n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--stride', type=int, default=1)
    ap.add_argument('--only', default='tanh,sigmoid,exp,log')
    a = ap.parse_args(argv)
    for name in a.only.split(','):
        t0 = time.perf_counter()
        worst, at, mean, n = sweep(name, a.stride)
        print(f"{name:8s} max {worst:.3f} ULP at x={at!r}, mean {mean:.4f}, {n:,} floats, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == '__main__':
    sys.exit(main())
