"""Eager vs hybridized (compiled) vs plain NumPy, side by side in one run.

Each workload's variants run interleaved, median of --reps repetitions after warm-up; ratios are
of medians. Writes a table, and JSON with --json.

    python benchmarks/compiled.py [--reps 30] [--quick] [--json out.json]
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn


def timeit(fns, reps, warmup=3):
    """{name: median seconds}, running the variants interleaved so machine noise hits all alike."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    ts = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            ts[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in ts.items()}


def mlp():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(256, activation='relu'), nn.Dense(256, activation='relu'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    return net


def twins(make, x):
    """The same model twice with equal weights: one stays eager, one is hybridized."""
    gc.random.seed(0)
    a = make()
    a(x)  # deferred initialization draws the weights here
    gc.random.seed(0)
    b = make()
    b(x)
    b.hybridize()
    b(x)
    return a, b


def mlp_inference(bs, reps):
    x = nd.random.normal(shape=(bs, 784))
    eager, hyb = twins(mlp, x)
    w = [p.data().asnumpy() for p in eager.collect_params().values()]
    xn = x.asnumpy()

    def numpy_fwd():
        h = np.maximum(xn @ w[0].T + w[1], 0)
        h = np.maximum(h @ w[2].T + w[3], 0)
        return h @ w[4].T + w[5]
    np.testing.assert_allclose(hyb(x).asnumpy(), numpy_fwd(), rtol=1e-4, atol=1e-4)
    return timeit({'numpy': numpy_fwd, 'eager': lambda: eager(x), 'hybridized': lambda: hyb(x)}, reps * 10)


def mlp_train(reps):
    x, y = nd.random.normal(shape=(64, 784)), nd.array(np.random.default_rng(0).integers(0, 10, 64), dtype='int32')
    eager, hyb = twins(mlp, x)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for name, net in (('eager', eager), ('hybridized', hyb)):
        tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9})

        def step(net=net, tr=tr):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            tr.step(64)
        steps[name] = step
    return timeit(steps, reps * 3)


def lenet_train(reps):
    sys.path.insert(0, 'examples')
    from lenet_mnist import lenet as bare

    def lenet():
        net = bare()
        net.initialize(gc.init.Xavier())
        return net
    x = nd.random.uniform(shape=(600, 1, 28, 28))
    y = nd.array(np.random.default_rng(0).integers(0, 10, 600), dtype='int32')
    eager, hyb = twins(lenet, x)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for name, net in (('eager', eager), ('hybridized', hyb)):
        tr = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})

        def step(net=net, tr=tr):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            tr.step(600)
        steps[name] = step
    return timeit(steps, max(3, reps // 5))


def chain(n, reps):
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    x = nd.array(a)
    f = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g.hybridize()
    np.testing.assert_allclose(g(x).asnumpy(), f(x).asnumpy(), rtol=1e-5, atol=1e-5)
    return timeit({'numpy': lambda: np.tanh(a * 2 + 1) * (1 / (1 + np.exp(-a))) - np.maximum(a, 0) / 3,
                   'eager': lambda: f(x), 'hybridized': lambda: g(x)}, reps)


def memory_bound(n, reps):
    a, b = (np.random.default_rng(i).normal(size=(n, n)).astype(np.float32) for i in (0, 1))
    x, y = nd.array(a), nd.array(b)
    g = gluon.nn.HybridLambda(lambda F, u, v: (u * 2 + 1) * v - u / 3)
    g.hybridize()
    out = np.empty_like(a)
    t = timeit({'numpy': lambda: (a * 2 + 1) * b - a / 3, 'hybridized': lambda: g(x, y),
                'np.copyto': lambda: np.copyto(out, a)}, reps)
    t['GB/s hybridized'] = 3 * a.nbytes / t['hybridized'] / 1e9   # reads x and y, writes the result
    t['GB/s copyto'] = 2 * a.nbytes / t['np.copyto'] / 1e9
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=30)
    ap.add_argument('--quick', action='store_true', help='small sizes only')
    ap.add_argument('--json')
    args = ap.parse_args(argv)
    work = [('MLP inference, batch 1', lambda: mlp_inference(1, args.reps)),
            ('MLP inference, batch 64', lambda: mlp_inference(64, args.reps)),
            ('MLP training step, batch 64 (SGD momentum)', lambda: mlp_train(args.reps)),
            ('chain tanh(x*2+1)*sigmoid(x)-relu(x)/3, 1024x1024', lambda: chain(1024, args.reps))]
    if not args.quick:
        work += [('chain tanh(x*2+1)*sigmoid(x)-relu(x)/3, 4096x4096', lambda: chain(4096, max(5, args.reps // 3))),
                 ('memory-bound (x*2+1)*y - x/3, 4096x4096', lambda: memory_bound(4096, max(5, args.reps // 3))),
                 ('LeNet training step, batch 600 (Adam)', lambda: lenet_train(args.reps))]
    results = {}
    for name, fn in work:
        r = fn()
        results[name] = r
        cells = '  '.join(f"{k} {v * 1e3:.3f} ms" if not k.startswith('GB/s') else f"{k} {v:.1f}" for k, v in r.items())
        ratio = ''
        if 'eager' in r and 'hybridized' in r:
            ratio += f"  | eager/hybridized {r['eager'] / r['hybridized']:.2f}x"
        if 'numpy' in r and 'hybridized' in r:
            ratio += f"  | hybridized/numpy {r['hybridized'] / r['numpy']:.2f}x"
        if 'GB/s copyto' in r:
            ratio += f"  | {100 * r['GB/s hybridized'] / r['GB/s copyto']:.0f}% of copyto bandwidth"
        print(f"{name}\n    {cells}{ratio}", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
