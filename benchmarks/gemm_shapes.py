"""The MLP's GEMM shapes (784-256-256-10 at batch 64: forward, weight and data gradients; batch 1: the GEMVs)
by each path runtime/native.py can take -- OpenBLAS's sgemm/sgemv, oneDNN's dnnl_sgemm, graphc_gemv_nt -- each
as one row run by the native step interpreter (so no path pays ctypes' per-argument cost), interleaved call by
call, at 1 and 2 threads. Prints median us with p10-p90, the winner, and what Segment.gemm picks.

    python benchmarks/gemm_shapes.py [--reps 300] [--threads 1,2]

Threads: GRAPHC_NUM_THREADS (oneDNN's OpenMP) and OpenBLAS's own count, set together. Run on a quiet machine
(check `uptime`); a load average above 0.5 is printed as a warning.
"""
import argparse
import ctypes
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from graphc import bench  # noqa: E402
from graphc.runtime import native  # noqa: E402

# (name, m, n, k, transpose a, transpose b): c (m x n) = op(a) op(b)
SHAPES = [('fwd 64x784 . 256x784^T', 64, 256, 784, False, True), ('fwd 64x256 . 256x256^T', 64, 256, 256, False, True),
          ('fwd 64x256 . 10x256^T', 64, 10, 256, False, True), ('dW 256x64^T . 64x784', 256, 784, 64, True, False),
          ('dW 256x64^T . 64x256', 256, 256, 64, True, False), ('dW 10x64^T . 64x256', 10, 256, 64, True, False),
          ('dx 64x256 . 256x256', 64, 256, 256, False, False), ('dx 64x10 . 10x256', 64, 256, 10, False, False),
          ('gemv 1x784 . 256x784^T', 1, 256, 784, False, True), ('gemv 1x256 . 256x256^T', 1, 256, 256, False, True),
          ('gemv 1x256 . 10x256^T', 1, 10, 256, False, True)]


def paths(m, n, k, ta, tb):
    """{path: (rows, arrays)}: one native row per path that can run the shape."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(k, m) if ta else (m, k)).astype(np.float32)
    b = rng.normal(size=(n, k) if tb else (k, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    lda, ldb, out = a.shape[1], b.shape[1], {}
    arrays = [a, b, c]
    sa, _, _ = native.blas()
    out['openblas'] = [native.SGEMM, sa, native.TRANS if ta else native.NO_TRANS, native.TRANS if tb else native.NO_TRANS,
                       m, n, k, 0, lda, 1, ldb, 2, n, 0]
    d = _dnnl_any_threads()
    if d is not None:
        out['onednn'] = [native.DNNL_SGEMM, d, ord('T' if ta else 'N'), ord('T' if tb else 'N'), m, n, k, 0, lda, 1, ldb,
                         2, n, 0]
    if m == 1 and native.gemv() is not None:
        rows, cols = (n, k) if tb else (k, n)
        out['openblas gemv'] = [native.SGEMV, native.gemv()[0], native.NO_TRANS if tb else native.TRANS, rows, cols, 1,
                                ldb, 0, lda if ta else 1, 2, 1, 0]
        if tb:
            seg = native.Segment()
            seg.gemm(np.float32, ta, tb, m, n, k, 0, lda, 1, ldb, 2, n, 0)
            out['graphc gemv'] = (seg.rows[0], seg.keep)
    picked = native.Segment()
    picked.gemm(np.float32, ta, tb, m, n, k, 0, lda, 1, ldb, 2, n, 0)
    return out, arrays, (a, b, c), picked.rows[0]


def _dnnl_any_threads():
    """dnnl_sgemm's address whatever the thread count (Segment.gemm takes it at one thread only)."""
    from graphc.runtime import onednn
    return ctypes.cast(onednn.library().dnnl_sgemm, ctypes.c_void_p).value if onednn.available() else None


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=300)
    p.add_argument('--threads', default='1,2')
    a = p.parse_args()
    if native.blas() is None:
        sys.exit("no CBLAS beside NumPy")
    run = native.executor()
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}" + ("  (WARNING: loaded machine, figures are upper bounds)" if load > 0.5 else ""))
    for t in [int(x) for x in a.threads.split(',')]:
        undo = bench.set_threads(t)
        print(f"\n{t} thread(s)      " + ''.join(f"{k:>22}" for k in ('openblas', 'openblas gemv', 'onednn', 'graphc gemv')))
        for name, m, n, k, ta, tb in SHAPES:
            ps, _, arrays, picked = paths(m, n, k, ta, tb)
            ptrs = (ctypes.c_void_p * 3)(*[x.ctypes.data for x in arrays])
            tables = {}
            for key, row in ps.items():
                row = row[0] if isinstance(row, tuple) else row
                tables[key] = np.array(list(row) + [0] * (native.WORDS - len(row)), np.int64)
            ts = {key: [] for key in tables}
            for i in range(a.reps + 10):
                for key, tab in tables.items():
                    t0 = time.perf_counter()
                    run(tab.ctypes.data, 1, ptrs)
                    if i >= 10:
                        ts[key].append(time.perf_counter() - t0)
            med = {key: np.median(v) * 1e6 for key, v in ts.items()}
            best = min(med, key=med.get)
            pick = next((key for key, tab in tables.items() if tab[0] == picked[0] and tab[1] == picked[1]), '?')
            cells = ''.join(f"{'' if key not in med else f'{med[key]:.1f} ({np.percentile(ts[key], 10) * 1e6:.0f}-{np.percentile(ts[key], 90) * 1e6:.0f})':>22}"
                            for key in ('openblas', 'openblas gemv', 'onednn', 'graphc gemv'))
            print(f"{name:<24}{cells}   best {best}, picked {pick}")
        undo()


if __name__ == '__main__':
    main()
