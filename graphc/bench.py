"""Benchmark workloads: eager vs hybridized (compiled) vs plain NumPy, run side by side.

Used by `graphc bench` and benchmarks/compiled.py. Variants of a workload run interleaved so machine
noise hits all alike; each result is the median of many repetitions after warm-up.
"""
import statistics
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn


def timeit(fns, reps, warmup=3, progress=None):
    """{name: median seconds}, running the variants interleaved so machine noise hits all alike."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    ts = {k: [] for k in fns}
    for _ in (progress(range(reps)) if progress else range(reps)):
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
    return timeit(train_steps(eager, hyb, x, y, 'sgd', {'learning_rate': 0.01, 'momentum': 0.9}), reps * 3)


def train_steps(eager, hyb, x, y, optimizer, opt_params):
    """{'eager': step, 'hybridized': step}: one softmax cross-entropy training step of each twin."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for name, net in (('eager', eager), ('hybridized', hyb)):
        tr = gluon.Trainer(net.collect_params(), optimizer, dict(opt_params))

        def step(net=net, tr=tr):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            tr.step(x.shape[0])
        steps[name] = step
    return steps


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




def symbol_file(sym_file, params, shapes, reps, progress=None):
    """An exported model (MXNet or graphc), op by op vs hybridized, on random inputs of the given shapes."""
    blk = gluon.SymbolBlock.imports(sym_file, list(shapes), params)
    xs = [nd.random.normal(shape=s) for s in shapes.values()]
    blk.hybridize(False)
    eager = blk(*xs).asnumpy()

    def run_eager():
        blk.hybridize(False)
        return blk(*xs)
    hyb = gluon.SymbolBlock.imports(sym_file, list(shapes), params)
    np.testing.assert_allclose(hyb(*xs).asnumpy(), eager, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(eager).max())))
    return timeit({'eager': run_eager, 'hybridized': lambda: hyb(*xs)}, reps, progress=progress)


def row(name, r):
    """One table row: times, and the ratios that matter."""
    cells = '  '.join(f"{k} {v * 1e3:.3f} ms" if not k.startswith('GB/s') else f"{k} {v:.1f}" for k, v in r.items())
    ratio = ''
    if 'eager' in r and 'hybridized' in r:
        ratio += f"  | eager/hybridized {r['eager'] / r['hybridized']:.2f}x"
    if 'numpy' in r and 'hybridized' in r:
        ratio += f"  | hybridized/numpy {r['hybridized'] / r['numpy']:.2f}x"
    if 'GB/s copyto' in r:
        ratio += f"  | {100 * r['GB/s hybridized'] / r['GB/s copyto']:.0f}% of copyto bandwidth"
    return f"{name}\n    {cells}{ratio}"


def standard(reps, quick=False):
    """(name, thunk) for the standard workloads."""
    work = [('MLP inference, batch 1', lambda: mlp_inference(1, reps)),
            ('MLP inference, batch 64', lambda: mlp_inference(64, reps)),
            ('MLP training step, batch 64 (SGD momentum)', lambda: mlp_train(reps)),
            ('chain tanh(x*2+1)*sigmoid(x)-relu(x)/3, 1024x1024', lambda: chain(1024, reps))]
    if not quick:
        work += [('chain tanh(x*2+1)*sigmoid(x)-relu(x)/3, 4096x4096', lambda: chain(4096, max(5, reps // 3))),
                 ('memory-bound (x*2+1)*y - x/3, 4096x4096', lambda: memory_bound(4096, max(5, reps // 3)))]
    return work
