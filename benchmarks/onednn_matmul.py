"""What batch-64 MLP inference would gain from oneDNN's matmul primitive with its weights reordered once into the
layout it picks (bias and ReLU as post-ops), against what graphc runs now (dnnl_sgemm, which packs the weights on
every call, after a bias fill, with a ReLU pass after), and graphc hybridized itself. onnxruntime (whose MLAS
GEMM packs constant weights once at session start) was 0.86x of graphc at this shape; this says whether prepacked
weights explain it. Interleaved call by call, one thread; prints medians in us with p10-p90.

    python benchmarks/onednn_matmul.py [--batch 64] [--reps 3000]

The primitive is driven from Python here (four ctypes calls a layer, about 1 us each), so its figure is an upper
bound of the primitive run as a row of the native step interpreter. Run on a quiet machine (check `uptime`).
graphc now runs the packed matmul itself (pass pack_weights); GRAPHC_DISABLE_PASSES=pack_weights gives the
dnnl_sgemm path this compared against (benchmarks/packed_fc.py compares the two by batch).
"""
import argparse
import ctypes
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
os.environ.setdefault('GRAPHC_NUM_THREADS', '1')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--reps', type=int, default=3000)
    args = ap.parse_args()
    from graphc import nd
    from graphc.bench import mlp, set_threads, twins, weights
    from graphc.runtime import onednn as O
    from graphc.runtime.native import dnnl_sgemm
    set_threads(1)
    if O.library() is None or dnnl_sgemm() is None:
        sys.exit('needs the onednn extra (pip install graphc[onednn]) and one thread')
    lib, eng, stream = O.library(), O._state['engine'], O._state['stream']
    O._threads()
    m = args.batch
    x = nd.random.normal(shape=(m, 784))
    eager, hyb = twins(mlp, x)
    w = weights(eager)
    xn = x.asnumpy()
    layers = [(w[i], w[i + 1], i < 4) for i in (0, 2, 4)]   # (weight (N, K), bias, ReLU after)

    def matmul(wt, b, relu):
        """A run(x, out) of one prepacked matmul layer."""
        n, k = wt.shape
        src, dst, bias, any_w = O._md((m, k)), O._md((m, n)), O._md((1, n)), O._md((k, n), True)
        pd = ctypes.c_void_p()
        O._check(lib.dnnl_matmul_primitive_desc_create(ctypes.byref(pd), eng, src, any_w, bias, dst,
                                                        O._relu_attr() if relu else None), 'a matmul')
        chosen = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(pd, O.Q_WEIGHTS, 0))
        plain = ctypes.c_void_p()   # (K, N) over the (N, K) row-major weight: strides (1, K)
        O._check(lib.dnnl_memory_desc_create_with_strides(ctypes.byref(plain), 2, O.Dims(k, n), O.F32, O.Dims(1, k)),
                 'the weight desc')
        packed = np.empty(lib.dnnl_memory_desc_get_size(chosen) // 4 + 16, np.float32)
        wm, pm = O._memory(plain), O._memory(chosen)
        lib.dnnl_memory_set_data_handle(wm, wt.ctypes.data)
        lib.dnnl_memory_set_data_handle(pm, packed.ctypes.data)
        rpd = ctypes.c_void_p()
        O._check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), plain, eng, chosen, eng, None), 'a reorder')
        nr, ra = O._args([(O.SRC, wm), (O.DST, pm)])
        O._check(lib.dnnl_primitive_execute(O._primitive(rpd), stream, nr, ra), 'the reorder')
        lib.dnnl_stream_wait(stream)
        sm, dm, bm = O._memory(src), O._memory(dst), O._memory(bias)
        b2 = b.reshape(1, n).copy()
        lib.dnnl_memory_set_data_handle(bm, b2.ctypes.data)
        prim = O._primitive(pd)
        na, pa = O._args([(O.SRC, sm), (O.WEIGHTS, pm), (O.BIAS, bm), (O.DST, dm)])

        def run(h, out, keep=(packed, b2)):
            lib.dnnl_memory_set_data_handle(sm, h.ctypes.data)
            lib.dnnl_memory_set_data_handle(dm, out.ctypes.data)
            lib.dnnl_primitive_execute(prim, stream, na, pa)
            lib.dnnl_stream_wait(stream)
        return run
    runs = [matmul(*ly) for ly in layers]
    outs = [np.empty((m, wt.shape[0]), np.float32) for wt, _, _ in layers]

    def prepacked():
        h = xn
        for run, o in zip(runs, outs):
            run(h, o)
            h = o
        return h
    want = hyb(x).asnumpy()
    np.testing.assert_allclose(prepacked(), want, rtol=1e-4, atol=1e-4)
    fns = {'graphc hybridized': lambda: hyb(x), 'oneDNN matmul, prepacked': prepacked}
    ts = {k: [] for k in fns}
    for _ in range(args.reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t0)
    print(f"batch {m}, 1 thread, load average {os.getloadavg()[0]:.2f}")
    for k, v in ts.items():
        p10, p90 = np.percentile(v, (10, 90)) * 1e6
        print(f"  {k:<34} {statistics.median(v) * 1e6:8.1f} us ({p10:.1f}-{p90:.1f})")


if __name__ == '__main__':
    main()
