"""What pass blocked_convs (a ResNet's body as one chain of oneDNN convolutions over blocked activations,
passes/blocked_convs.py) saves in inference: the hybridized ResNet-18 V1 built twice in one process, once with
GRAPHC_DISABLE_PASSES=blocked_convs, timed call by call interleaved (the order alternating each round), at each
thread count; medians in ms (p10-p90) and on/off. The two outputs are checked to agree first.

    python benchmarks/blocked_convs.py [--shapes 32x32,1x224] [--threads 1,2] [--reps 21]

(--shapes: batch x image size; below 64 the CIFAR-style thumbnail stem.) Run on a quiet machine (check `uptime`).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from graphc import nd  # noqa: E402
from graphc.bench import _resnet, set_threads, twins  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shapes', default='32x32,1x224')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--reps', type=int, default=21)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'batch x size':>13} {'threads':>7} {'region':>22} {'off':>22} {'on/off':>7}")
    for shape in args.shapes.split(','):
        b, size = (int(v) for v in shape.split('x'))
        x = nd.array(np.random.default_rng(0).random((b, 3, size, size), np.float32))
        for n in (int(t) for t in args.threads.split(',')):
            undo, nets = set_threads(n), {}
            for name, off in (('region', ''), ('off', 'blocked_convs')):
                os.environ['GRAPHC_DISABLE_PASSES'] = off
                nets[name] = twins(_resnet(size), x)[1]
            os.environ.pop('GRAPHC_DISABLE_PASSES')
            np.testing.assert_allclose(nets['region'](x).asnumpy(), nets['off'](x).asnumpy(), rtol=1e-3, atol=1e-4)
            ts = {k: [] for k in nets}
            for r in range(args.reps + 2):
                for k in (('region', 'off') if r % 2 else ('off', 'region')):
                    t0 = time.perf_counter()
                    nets[k](x).asnumpy()
                    if r >= 2:   # (two warm-up rounds)
                        ts[k].append(time.perf_counter() - t0)
            undo()
            med = {k: statistics.median(v) * 1e3 for k, v in ts.items()}
            cell = lambda k: f"{med[k]:.1f} ({np.percentile(ts[k], 10) * 1e3:.1f}-{np.percentile(ts[k], 90) * 1e3:.1f})"  # noqa: E731
            print(f"{shape:>13} {n:>7} {cell('region'):>22} {cell('off'):>22} {med['region'] / med['off']:7.2f}")


if __name__ == '__main__':
    main()
