"""Eager overhead: one training step of an MLP 784-256-256-10 at batch 64 (SGD, momentum 0.9),
graphc's Gluon API against the same step written by hand in NumPy.

Both run in this process, interleaved, on the same data; the result is the median of many
repetitions after warm-up, and the ratio graphc / NumPy. Also checks that both compute the
same loss, so the comparison is of equal work.

    python benchmarks/eager_overhead.py [--reps 300] [--batch 64]
"""
import argparse
import statistics
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon
from graphc.gluon import nn


def numpy_step(params, vel, x, y, lr, mom):
    """Forward, softmax cross-entropy, backward and momentum SGD, by hand (the baseline)."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = x @ w1.T + b1
    a1 = np.maximum(h1, 0)
    h2 = a1 @ w2.T + b2
    a2 = np.maximum(h2, 0)
    z = a2 @ w3.T + b3
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = x.shape[0]
    loss = -logp[np.arange(n), y].mean()
    dz = np.exp(logp)
    dz[np.arange(n), y] -= 1
    dz /= n
    g3w, g3b = dz.T @ a2, dz.sum(0)
    d2 = (dz @ w3) * (h2 > 0)
    g2w, g2b = d2.T @ a1, d2.sum(0)
    d1 = (d2 @ w2) * (h1 > 0)
    g1w, g1b = d1.T @ x, d1.sum(0)
    for p, v, g in zip(params, vel, (g1w, g1b, g2w, g2b, g3w, g3b)):
        v *= mom
        v -= lr * g
        p += v
    return loss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=300)
    ap.add_argument('--warmup', type=int, default=30)
    ap.add_argument('--batch', type=int, default=64)
    args = ap.parse_args(argv)
    gc.random.seed(0)
    rs = np.random.default_rng(0)
    x_np = rs.random((args.batch, 784), dtype=np.float32)
    y_np = rs.integers(0, 10, args.batch)
    lr, mom = 0.05, 0.9

    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(256, activation='relu'), nn.Dense(256, activation='relu'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    net(gc.nd.array(x_np))
    params = [p.data().asnumpy() for p in net.collect_params().values()]
    vel = [np.zeros_like(p) for p in params]
    # SGD as MXNet: the loss is summed over the batch and rescale_grad = 1/batch gives the mean
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': lr, 'momentum': mom})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    x, y = gc.nd.array(x_np), gc.nd.array(y_np, dtype='int32')

    def graphc_step():
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(args.batch)
        return loss

    # same work: first-step losses agree
    l_np = numpy_step([p.copy() for p in params], [v.copy() for v in vel], x_np, y_np, lr, mom)
    l_gc = float(graphc_step().mean().asscalar())
    assert abs(l_np - l_gc) < 1e-4, (l_np, l_gc)

    t_gc, t_np = [], []
    for i in range(args.warmup + args.reps):
        t0 = time.perf_counter()
        graphc_step()
        t1 = time.perf_counter()
        numpy_step(params, vel, x_np, y_np, lr, mom)
        t2 = time.perf_counter()
        if i >= args.warmup:
            t_gc.append(t1 - t0)
            t_np.append(t2 - t1)
    m_gc, m_np = statistics.median(t_gc), statistics.median(t_np)
    print(f"MLP 784-256-256-10, batch {args.batch}, SGD momentum; median of {args.reps} steps after "
          f"{args.warmup} warm-up")
    print(f"  graphc eager (gluon)  {m_gc * 1e3:8.3f} ms/step")
    print(f"  hand-written NumPy    {m_np * 1e3:8.3f} ms/step")
    print(f"  ratio graphc / NumPy  {m_gc / m_np:8.2f}x")
    return m_gc / m_np


if __name__ == '__main__':
    main()
