"""What pass blocked_convs (a ResNet's body as one chain of oneDNN convolutions over blocked activations,
passes/blocked_convs.py) saves in inference: each hybridized model-zoo model built twice in one process, once with
GRAPHC_DISABLE_PASSES=blocked_convs, timed call by call interleaved (the order alternating each round), at each
thread count; medians in ms (p10-p90) and on/off. The two outputs are checked to agree first.

    python benchmarks/blocked_convs.py [--models resnet18_v1:32x32,resnet18_v1:1x224,...] [--threads 1,2] [--reps 21]

(--models: zoo name:batch x image size; ResNet-18 V1 below 64 pixels has the CIFAR-style thumbnail stem, as in
`graphc bench`.) Run on a quiet machine (check `uptime`).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import graphc as gc  # noqa: E402
from graphc import nd  # noqa: E402
from graphc.bench import _resnet, set_threads, twins  # noqa: E402


def _zoo(name):
    from graphc.gluon.model_zoo import vision

    def make():
        net = vision.get_model(name, classes=1000)
        net.initialize(gc.init.Xavier())
        return net
    return make


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--models', default='resnet18_v1:32x32,resnet18_v1:1x224,resnet50_v1:1x224,mobilenet1.0:1x224')
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--reps', type=int, default=21)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'model:batch x size':>24} {'threads':>7} {'region':>22} {'off':>22} {'on/off':>7}")
    for spec in args.models.split(','):
        name, shape = spec.split(':')
        b, size = (int(v) for v in shape.split('x'))
        make = _resnet(size) if name == 'resnet18_v1' else _zoo(name)
        x = nd.array(np.random.default_rng(0).random((b, 3, size, size), np.float32))
        for n in (int(t) for t in args.threads.split(',')):
            undo, nets = set_threads(n), {}
            for tag, off in (('region', ''), ('off', 'blocked_convs')):
                os.environ['GRAPHC_DISABLE_PASSES'] = off
                nets[tag] = twins(make, x)[1]
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
            print(f"{spec:>24} {n:>7} {cell('region'):>22} {cell('off'):>22} {med['region'] / med['off']:7.2f}")


if __name__ == '__main__':
    main()
