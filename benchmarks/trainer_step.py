"""The Trainer's update per parameter (GRAPHC_MULTI_TENSOR=0: NumPy ops per parameter) vs fused (one
multi-tensor kernel call, graphc/optimizer/multi.py), on hybridized models with equal weights, interleaved.
Each workload reports the whole training step (record + forward + loss + backward + trainer.step) and
trainer.step alone, median ms with p10-p90; --split times the bare Adam kernel on 1 and 2 threads.

    python benchmarks/trainer_step.py [--reps 50] [--only mlp-sgd,mlp-adam,lenet-adam] [--split]
"""
import argparse
import os
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.bench import lenet, mlp
from graphc.runtime import multi_tensor as mt

WORKLOADS = {  # name: (model, input shape, optimizer, its parameters)
    'mlp-sgd': (mlp, (64, 784), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9}),
    'mlp-adam': (mlp, (64, 784), 'adam', {'learning_rate': 1e-3}),
    'lenet-adam': (lenet, (600, 1, 28, 28), 'adam', {'learning_rate': 1e-3}),
}


def _stats(ts):
    ms = np.array(ts) * 1e3
    return f"{np.median(ms):8.3f} ({np.percentile(ms, 10):.3f}-{np.percentile(ms, 90):.3f})"


def workload(name, reps):
    make, shape, opt, params = WORKLOADS[name]
    x = nd.random.uniform(shape=shape)
    y = nd.array(np.random.default_rng(0).integers(0, 10, shape[0]), dtype='int32')
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    runs = {}
    for variant in ('per-parameter', 'fused'):
        gc.random.seed(0)
        net = make()
        net(x)
        net.hybridize()
        net(x)
        runs[variant] = (net, gluon.Trainer(net.collect_params(), opt, dict(params)))
    times = {v: ([], []) for v in runs}
    calls = {v: 0 for v in runs}
    for r in range(3 + reps):  # 3 warm-up rounds, then timed; the variants alternate
        for v, (net, tr) in runs.items():
            os.environ['GRAPHC_MULTI_TENSOR'] = '1' if v == 'fused' else '0'
            c0 = mt.stats['calls']
            t0 = time.perf_counter()
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            t1 = time.perf_counter()
            tr.step(shape[0])
            t2 = time.perf_counter()
            calls[v] += mt.stats['calls'] - c0
            if r >= 3:
                times[v][0].append(t2 - t0)
                times[v][1].append(t2 - t1)
    os.environ.pop('GRAPHC_MULTI_TENSOR')
    a, b = (runs[v][0].collect_params().values() for v in runs)
    same = all(np.array_equal(p.data().asnumpy(), q.data().asnumpy()) for p, q in zip(a, b))
    print(f"{name}: {len(runs['fused'][1]._params)} parameters, "
          f"{sum(int(np.prod(p.shape)) for p in runs['fused'][1]._params)} values; weights equal after the run: "
          f"{same}; kernel calls (per-parameter, fused): {calls['per-parameter']}, {calls['fused']}")
    for v in runs:
        print(f"  {v:14s} step {_stats(times[v][0])} ms   trainer.step {_stats(times[v][1])} ms")


def split(reps):
    """The Adam kernel alone on 1 thread and on 2 (rows cut in half), for a few sizes."""
    k = mt.kernel('adam', np.float32, (False,), 2)
    for total in (1 << 18, 1 << 20, 1 << 22, 1 << 24):
        arrs = [tuple(np.random.rand(n).astype(np.float32) for _ in range(4)) for n in (total // 2, total // 2)]
        scal = np.full((2, len(mt.SCALARS['adam'])), 0.5, np.float32)
        old, mt.SPLIT = mt.SPLIT, 1
        tabs = {'1 thread': mt.Table(arrs, 1), '2 threads': mt.Table(arrs, 2)}
        mt.SPLIT = old
        ts = {n: [] for n in tabs}
        for _ in range(3 + reps):
            for n, tb in tabs.items():
                t0 = time.perf_counter()
                k(tb, scal)
                ts[n].append(time.perf_counter() - t0)
        print(f"adam kernel, {total} values: " + "   ".join(f"{n} {_stats(t[3:])} ms" for n, t in ts.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=50)
    ap.add_argument('--only', default=','.join(WORKLOADS))
    ap.add_argument('--split', action='store_true')
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (above ~0.3: timings are upper bounds)")
    for name in a.only.split(','):
        workload(name, a.reps)
    if a.split:
        split(a.reps)


if __name__ == '__main__':
    main()
