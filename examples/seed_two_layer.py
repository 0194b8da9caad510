"""The classic tiny sigmoid network, trained with graphc's autograd.

X has 4 samples of 3 bits; y copies the first bit. A one-layer net (3->1) and a
two-layer net (3->4->1) with sigmoid units learn it by full-batch gradient descent
on the squared error, and print their predictions.
"""
import argparse

import numpy as np

import graphc as gc
from graphc import autograd, nd

X = nd.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
Y = nd.array([[0], [0], [1], [1]])


def train(layers, steps, lr=1.0):
    """layers: weight shapes; returns the trained weights and the final predictions."""
    ws = [nd.random.uniform(-1, 1, shape=s) for s in layers]
    for w in ws:
        w.attach_grad()
    for _ in range(steps):
        with autograd.record():
            h = X
            for w in ws:
                h = nd.sigmoid(nd.dot(h, w))
            loss = ((h - Y) ** 2).sum() * 0.5
        loss.backward()
        for w in ws:
            w -= lr * w.grad
    return ws, h


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--steps', type=int, default=10000)
    p.add_argument('--seed', type=int, default=1)
    args = p.parse_args(argv)
    gc.random.seed(args.seed)
    out = {}
    for name, layers in [('one-layer 3->1', [(3, 1)]), ('two-layer 3->4->1', [(3, 4), (4, 1)])]:
        _, pred = train(layers, args.steps)
        out[name] = pred.asnumpy().ravel()
        print(f"{name:<18} predictions {np.round(out[name], 4)}  (targets {Y.asnumpy().ravel()})")
    return out


if __name__ == '__main__':
    main()
