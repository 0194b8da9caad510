"""How a big elementwise kernel uses the second core: the hybridized chain tanh(x*2+1)*sigmoid(x)-relu(x)/3 at
1024x1024 on 1 thread, on 2 threads as runtime/cpu.py's split() runs it (pieces claimed by the caller and the
worker, the worker kept off the caller's core), with split() but the worker free to run anywhere, and with the
old fixed halves (the caller's half beside one submitted to the pool). Variants alternate call by call in one
process (cpu._threads and the splitter patched), so machine noise hits all alike; medians and p10 in ms.

    python benchmarks/kernel_split.py [--n 1024] [--reps 300]

On this 2-core VM (load 4.6) the fixed halves ran no faster than one thread: the woken worker was put on the
caller's core and preempted it (caller's half 0.59 ms, worker's 0.29 ms); split() took 0.36 ms against 0.60.
"""
import argparse
import statistics
import time

import numpy as np

from graphc import gluon, nd
from graphc.runtime import cpu


def halves(fn, ptrs, n, k):   # the splitter before split(): a fixed part per thread, the caller's first
    step = -(-n // k)
    rest = [cpu._pool().submit(fn, ptrs, s, min(s + step, n)) for s in range(step, n, step)]
    fn(ptrs, 0, min(step, n))
    for f in rest:
        f.result()


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--n', type=int, default=1024)
    p.add_argument('--reps', type=int, default=300)
    a = p.parse_args()
    x = nd.array(np.random.default_rng(0).normal(size=(a.n, a.n)).astype(np.float32))
    g = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g.hybridize()
    g(x).wait_to_read()
    threads, split, off = cpu._threads, cpu.split, cpu._off_this_core
    variants = {'1 thread': (1, split, off), '2 threads, split()': (2, split, off),
                '2 threads, split(), worker free': (2, split, lambda: False), '2 threads, fixed halves': (2, halves, off)}
    ts = {k: [] for k in variants}
    try:
        for _ in range(a.reps):
            for name, (k, splitter, away) in variants.items():
                cpu._threads, cpu.split, cpu._off_this_core = (lambda k=k: k), splitter, away
                t = time.perf_counter()
                g(x).wait_to_read()
                ts[name].append(time.perf_counter() - t)
    finally:
        cpu._threads, cpu.split, cpu._off_this_core = threads, split, off
    for name, v in ts.items():
        print(f"{name:34s} median {statistics.median(v) * 1e3:7.3f} ms   p10 {np.percentile(v, 10) * 1e3:7.3f} ms")


if __name__ == '__main__':
    main()
