"""Eager vs hybridized (compiled) vs plain NumPy, side by side in one run: the standard workloads of
graphc.bench (also `graphc bench`) plus the LeNet training step of examples/lenet_mnist.py.

    python benchmarks/compiled.py [--reps 30] [--quick] [--json out.json]
"""
import argparse
import json
import os
import sys

import numpy as np

import graphc as gc
from graphc import nd
from graphc.bench import row, standard, timeit, train_steps, twins


def lenet_train(reps):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'examples'))
    from lenet_mnist import lenet as bare

    def lenet():
        net = bare()
        net.initialize(gc.init.Xavier())
        return net
    x = nd.random.uniform(shape=(600, 1, 28, 28))
    y = nd.array(np.random.default_rng(0).integers(0, 10, 600), dtype='int32')
    eager, hyb = twins(lenet, x)
    return timeit(train_steps(eager, hyb, x, y, 'adam', {'learning_rate': 1e-3}), max(3, reps // 5))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=30)
    ap.add_argument('--quick', action='store_true', help='small sizes only')
    ap.add_argument('--json')
    args = ap.parse_args(argv)
    work = standard(args.reps, args.quick)
    if not args.quick:
        work.append(('LeNet training step, batch 600 (Adam)', lambda: lenet_train(args.reps)))
    results = {}
    for name, fn in work:
        results[name] = fn()
        print(row(name, results[name]), flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == '__main__':
    main()
