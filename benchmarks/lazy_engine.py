"""Naive vs lazy eager engine on the same NDArray code, side by side (median after warm-up).

A realized lazy graph is fused and runs compiled kernels, and a program shape seen before reuses its
plan; each realization still costs some Python. This measures both sides, which decides the default
engine (see README).

    python benchmarks/lazy_engine.py [--reps 50]
"""
import argparse
import statistics
import time

import numpy as np

from graphc import engine, nd


def chain(x):
    return (nd.tanh(x * 2 + 1) * nd.sigmoid(x) - nd.relu(x) / 3).asnumpy()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--reps', type=int, default=50)
    args = ap.parse_args(argv)
    print(f"{'workload':<34}{'naive ms':>10}{'lazy ms':>10}{'lazy/naive':>12}")
    for n in (64, 1024):
        x = nd.array(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32))
        times = {'naive': [], 'lazy': []}
        for i in range(args.reps + 5):
            for mode in ('naive', 'lazy'):
                with engine.engine_mode(mode):
                    t0 = time.perf_counter()
                    chain(x)
                    if i >= 5:
                        times[mode].append(time.perf_counter() - t0)
        a, b = statistics.median(times['naive']), statistics.median(times['lazy'])
        print(f"{f'tanh(x*2+1)*sigmoid(x)-relu(x)/3 {n}x{n}':<34}{a * 1e3:10.3f}{b * 1e3:10.3f}{b / a:11.2f}x")


if __name__ == '__main__':
    main()
