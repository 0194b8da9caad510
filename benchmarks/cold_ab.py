"""Interleaved A/B of `graphc bench`'s lenet-cold row: the first LeNet training step (batch 600, Adam) of a fresh
process with an empty kernel cache, as bench_peers' graphc worker runs it (mxnet_peer's twin on graphc's API,
hybridized; import and build untimed; the process pinned to its first THREADS cores), per thread count.

    python benchmarks/cold_ab.py A B [--rounds 5] [--threads 1,2]

A and B are Pythons (e.g. /work/base/.venv/bin/python .venv/bin/python), each optionally followed by
:VAR=VALUE settings, so the same Python twice compares switches (.venv/bin/python:GRAPHC_COMPILE_AHEAD=0
.venv/bin/python:GRAPHC_COMPILE_AHEAD=1). Prints per thread count the median wall and CPU time (all threads) of
the first step, with the per-round figures and the load average before and after: figures taken with a load
above the core count are upper bounds. Each Python's graphc is compiled to bytecode first (as installed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def child(npz, threads):
    import numpy as np
    import graphc
    sys.path.insert(0, os.path.join(os.path.dirname(graphc.__file__), 'bench_peers'))   # (that graphc's harness)
    import mxnet_peer
    mxnet_peer.use(graphc)
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    step = mxnet_peer.build({'model': 'lenet', 'train': True, 'opt': 'adam', 'lr': 1e-3}, arrays)
    t0, c0 = time.perf_counter(), time.process_time()
    mxnet_peer.sync(step())
    t1, c1 = time.perf_counter(), time.process_time()
    mxnet_peer.sync(step())
    print(json.dumps({'first_ms': (t1 - t0) * 1e3, 'first_cpu_ms': (c1 - c0) * 1e3,
                      'second_ms': (time.perf_counter() - t1) * 1e3}))


def make(npz):
    import numpy as np
    import graphc
    from graphc import bench
    from graphc.runtime import backend
    graphc.random.seed(0)
    with backend.use('interp'):   # (this process's kernels are not the children's business)
        x = graphc.nd.random.uniform(shape=(600, 1, 28, 28))
        net = bench.lenet()
        net(x)
        arrays = {f'w{i}': a for i, a in enumerate(bench.weights(net))}
    arrays.update(x=x.asnumpy(), y=np.random.default_rng(0).integers(0, 10, 600).astype(np.int64))
    np.savez(npz, **arrays)


def bytecode():
    """graphc's modules compiled to bytecode, as an installed package has them (bench_peers.graphc_worker does
    the same): under PYTHONDONTWRITEBYTECODE=1 an edited checkout would compile them from source in each child."""
    import compileall
    import graphc
    from graphc import passes, runtime
    for pkg in (os.path.dirname(graphc.__file__), passes.__path__[0], runtime.__path__[0]):
        compileall.compile_dir(pkg, quiet=2)


def _spec(s):
    py, *kv = s.split(':')
    return py, dict(x.split('=', 1) for x in kv)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('a')
    p.add_argument('b')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--threads', default='1,2')
    a = p.parse_args()
    specs = {'A': _spec(a.a), 'B': _spec(a.b)}
    threads = [int(t) for t in a.threads.split(',')]
    here = os.path.abspath(__file__)
    tmp = tempfile.mkdtemp(prefix='graphc-cold-ab-')
    npz = os.path.join(tmp, 'arrays.npz')
    subprocess.run([specs['B'][0], here, '--make', npz], check=True)
    for py, _ in specs.values():
        subprocess.run([py, here, '--bytecode'], check=True)
    res = {(t, k): [] for t in threads for k in specs}
    load0 = os.getloadavg()
    for r in range(a.rounds):
        for t in threads:
            for k in ('A', 'B') if r % 2 == 0 else ('B', 'A'):
                py, extra = specs[k]
                env = dict(os.environ, GRAPHC_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                           MKL_NUM_THREADS=str(t), OMP_WAIT_POLICY='PASSIVE',
                           GRAPHC_CACHE_DIR=tempfile.mkdtemp(dir=tmp), **extra)
                out = subprocess.run(['taskset', '-c', ','.join(map(str, range(t))), py, here, '--child', npz, str(t)],
                                     env=env, check=True, capture_output=True, text=True).stdout
                res[(t, k)].append(json.loads(out.strip().splitlines()[-1]))
    print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    for t in threads:
        for k in specs:
            rs = res[(t, k)]
            first = [x['first_ms'] for x in rs]
            cpu = [x['first_cpu_ms'] for x in rs]
            print(f"{t} thread(s) {k} {a.a if k == 'A' else a.b}: first call median {statistics.median(first):.0f} ms "
                  f"(cpu {statistics.median(cpu):.0f} ms, second call {statistics.median(x['second_ms'] for x in rs):.0f}"
                  f" ms) rounds {[round(v) for v in first]}")
        b, n = (statistics.median(x['first_ms'] for x in res[(t, k)]) for k in ('A', 'B'))
        print(f"{t} thread(s): B/A {n / b:.2f}")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--child']:
        child(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1:2] == ['--bytecode']:
        bytecode()
    elif sys.argv[1:2] == ['--make']:
        make(sys.argv[2])
    else:
        main()
