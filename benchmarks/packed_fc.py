"""Where the packed FullyConnected (pass pack_weights: oneDNN's matmul over weights packed once, runtime/onednn.py)
beats the GEMM row it replaces (dnnl_sgemm, which packs the weights every call), by batch: the hybridized
784-256-256-10 MLP built twice in one process, once with GRAPHC_DISABLE_PASSES=pack_weights, timed call by call
interleaved at one thread; medians in us (p10-p90) and packed/unpacked. native.PACK_MIN is set from this.

    python benchmarks/packed_fc.py [--batches 1,2,4,8,16,32,64,128,256] [--reps 1000]

Run on a quiet machine (check `uptime`)."""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
os.environ.setdefault('GRAPHC_NUM_THREADS', '1')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batches', default='1,2,4,8,16,32,64,128,256')
    ap.add_argument('--reps', type=int, default=1000)
    args = ap.parse_args()
    from graphc import nd
    from graphc.bench import mlp, set_threads, twins
    from graphc.runtime import native
    set_threads(1)
    native.PACK_MIN = 1   # (batch 1 too, to see the GEMV's margin)
    print(f"1 thread, load average {os.getloadavg()[0]:.2f}")
    print(f"{'batch':>6} {'packed us':>22} {'dnnl_sgemm us':>22} {'ratio':>7}")
    for m in map(int, args.batches.split(',')):
        x = nd.random.normal(shape=(m, 784))
        nets = {}
        for name, off in (('packed', ''), ('unpacked', 'pack_weights')):
            os.environ['GRAPHC_DISABLE_PASSES'] = off
            nets[name] = twins(mlp, x)[1]
        os.environ.pop('GRAPHC_DISABLE_PASSES')
        np.testing.assert_allclose(nets['packed'](x).asnumpy(), nets['unpacked'](x).asnumpy(), rtol=1e-4, atol=1e-5)
        ts = {k: [] for k in nets}
        for _ in range(args.reps):
            for k, f in nets.items():
                t0 = time.perf_counter()
                f(x)
                ts[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e6 for k, v in ts.items()}
        cell = lambda k: f"{med[k]:8.1f} ({np.percentile(ts[k], 10) * 1e6:.0f}-{np.percentile(ts[k], 90) * 1e6:.0f})"  # noqa: E731
        print(f"{m:>6} {cell('packed'):>22} {cell('unpacked'):>22} {med['packed'] / med['unpacked']:7.2f}")


if __name__ == '__main__':
    main()
