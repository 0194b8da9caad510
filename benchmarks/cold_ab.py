"""Interleaved A/B of `graphc bench`'s lenet-cold row: the first LeNet training step (batch 600, Adam) of a fresh
process with an empty kernel cache, as bench_peers' graphc worker runs it (mxnet_peer's twin on graphc's API,
hybridized; import and build untimed; the process pinned to its first THREADS cores), per thread count.

    python benchmarks/cold_ab.py A B [--rounds 5] [--threads 1,2] [--steps 10] [--phases]

A and B are Pythons (e.g. /work/base/.venv/bin/python .venv/bin/python; a Python without graphc runs the same step
on MXNet 1.9, the peer GRAPHC_BENCH_MXNET_PYTHON names, through this checkout's bench_peers/mxnet_peer.py), each
optionally followed by
:VAR=VALUE settings, so the same Python twice compares switches (.venv/bin/python:GRAPHC_COMPILE_AHEAD=0
.venv/bin/python:GRAPHC_COMPILE_AHEAD=1). Prints per thread count the median wall and CPU time (all threads) of
the first step (its CPU time: this process's; a forked compile worker's apart: the CPU of the children reaped by the
last step), the second step, and with --steps N the first N steps' total and the steady step, with the per-round
figures and the load average before and after: figures taken with a load above the core count are upper bounds. Each Python's graphc is compiled to bytecode first (as installed).
--phases instead runs B's first step once per thread count and prints its wall time by phase (trace, passes,
plan building, IR built in Python, LLVM, oneDNN, kernels and plans running, the Trainer, the forked worker).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def child(npz, threads, steps=2):
    import numpy as np
    try:
        import graphc
    except ImportError:   # a Python with MXNet 1.9 (a peer): this checkout's harness runs it on mxnet
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'graphc', 'bench_peers'))
        import mxnet_peer
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(graphc.__file__), 'bench_peers'))   # (that graphc's harness)
        import mxnet_peer
        mxnet_peer.use(graphc)
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    step = mxnet_peer.build({'model': 'lenet', 'train': True, 'opt': 'adam', 'lr': 1e-3}, arrays)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    ts, c0 = [time.perf_counter()], time.process_time()
    for i in range(max(2, steps)):
        mxnet_peer.sync(step())
        ts.append(time.perf_counter())
        if i == 0:
            c1 = time.process_time()
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)   # (a forked compile worker, reaped by then)
    dt = [(b - a) * 1e3 for a, b in zip(ts, ts[1:])]
    print(json.dumps({'first_ms': dt[0], 'first_cpu_ms': (c1 - c0) * 1e3, 'second_ms': dt[1],
                      'steps_ms': sum(dt[:steps]), 'steady_ms': statistics.median(dt[-3:]) if steps >= 5 else None,
                      'children_cpu_ms': (kids1.ru_utime + kids1.ru_stime - kids.ru_utime - kids.ru_stime) * 1e3}))


# (module, function, phase): what --phases times, each phase exclusive of the others nested in it
PHASES = [('gluon.cached', 'CachedGraph.__init__', 'trace'), ('passes.autodiff', 'split_training_step', 'autodiff split'),
          ('passes', 'run_pipeline', 'passes'), ('passes.memory', 'plan', 'memory plan'),
          ('runtime.plan', 'Plan.__init__', 'plan building'), ('runtime.plan', '_native_program', 'plan building'),
          ('runtime.cpu', '_compile_ir', 'LLVM (optimize, codegen, load)'),
          ('runtime.cpu', '_kernel_for', 'kernel IR built in Python'), ('runtime.conv', '_kernel', 'kernel IR built in Python'),
          ('runtime.native', 'executor', 'kernel IR built in Python'),
          ('runtime.multi_tensor', 'kernel', 'kernel IR built in Python'),
          ('runtime.onednn', '_create', 'oneDNN primitive descriptors'), ('runtime.onednn', '_Step.__call__', 'oneDNN runs'),
          ('runtime.cpu', 'Kernel.__call__', 'compiled kernels run'), ('runtime.plan', 'Plan.__call__', 'plan runs (Python)'),
          ('runtime.plan', 'NativeProgram.run', 'plan runs (Python)'), ('gluon.trainer', 'Trainer.step', 'Trainer'),
          ('runtime.forked', 'Child.__init__', 'fork'), ('runtime.forked', 'Child.join', 'waiting for the forked worker')]


def phases(npz, threads, clock=time.perf_counter):
    """One cold first step with the PHASES wrapped: its wall ms per phase (exclusive; clock time.thread_time:
    this thread's CPU time, which a loaded machine inflates less); the second call's total."""
    import functools
    import importlib
    import graphc
    spent, stack = {}, []

    def wrap(owner, attr, phase):
        f = getattr(owner, attr)

        @functools.wraps(f)
        def timed(*a, **k):
            stack.append(0.0)
            t0 = clock()
            try:
                return f(*a, **k)
            finally:
                el = clock() - t0
                spent[phase] = spent.get(phase, 0.0) + el - stack.pop()
                if stack:
                    stack[-1] += el
        setattr(owner, attr, timed)
    for mod, qual, phase in PHASES:
        *path, attr = qual.split('.')
        try:
            owner = importlib.import_module('graphc.' + mod)
            for p in path:
                owner = getattr(owner, p)
            getattr(owner, attr)
        except (ImportError, AttributeError):   # (an older checkout without it)
            continue
        wrap(owner, attr, phase)
    from graphc.runtime import cpu
    sys.path.insert(0, os.path.join(os.path.dirname(graphc.__file__), 'bench_peers'))
    import mxnet_peer
    mxnet_peer.use(graphc)
    with np_load(npz) as arrays:
        step = mxnet_peer.build({'model': 'lenet', 'train': True, 'opt': 'adam', 'lr': 1e-3}, arrays)
    stack.append(0.0)
    t0 = clock()
    mxnet_peer.sync(step())
    first = clock() - t0
    spent['the rest (loss, imports, glue)'] = first - stack.pop()
    once = dict(spent)   # (the first call's)
    t1 = time.perf_counter()
    mxnet_peer.sync(step())
    print(f"{threads} thread(s): first call {first * 1e3:.0f} ms{' (main thread CPU)' if clock is time.thread_time else ''}, second {(time.perf_counter() - t1) * 1e3:.0f} ms; "
          f"{cpu.stats['disk_misses']} LLVM modules compiled here; load average {os.getloadavg()[0]:.2f}")
    for k in sorted(once, key=lambda k: -once[k]):
        print(f"  {k:34s} {once[k] * 1e3:7.1f} ms")


def np_load(npz):
    import contextlib
    import numpy as np

    @contextlib.contextmanager
    def load():
        with np.load(npz) as z:
            yield {k: z[k] for k in z.files}
    return load()


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
    try:
        import graphc
    except ImportError:   # (MXNet's Python)
        return
    from graphc import passes, runtime
    for pkg in (os.path.dirname(graphc.__file__), passes.__path__[0], runtime.__path__[0]):
        compileall.compile_dir(pkg, quiet=2)


def _spec(s):
    py, *kv = s.split(':')
    return py, dict(x.split('=', 1) for x in kv)


def _env(t, tmp, extra):
    return dict(os.environ, GRAPHC_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), OPENBLAS_NUM_THREADS=str(t),
                MKL_NUM_THREADS=str(t), OMP_WAIT_POLICY='PASSIVE', GRAPHC_CACHE_DIR=tempfile.mkdtemp(dir=tmp), **extra)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('a')
    p.add_argument('b')
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--threads', default='1,2')
    p.add_argument('--steps', type=int, default=2, help="steps per process: also reports their total and (5 or more) "
                   "the median of the last three, the steady step")
    p.add_argument('--phases', action='store_true', help="B's first step once per thread count, its time by phase")
    p.add_argument('--cpu', action='store_true', help="--phases in the main thread's CPU time, not wall time")
    a = p.parse_args()
    specs = {'A': _spec(a.a), 'B': _spec(a.b)}
    threads = [int(t) for t in a.threads.split(',')]
    here = os.path.abspath(__file__)
    tmp = tempfile.mkdtemp(prefix='graphc-cold-ab-')
    npz = os.path.join(tmp, 'arrays.npz')
    subprocess.run([specs['B'][0], here, '--make', npz], check=True)
    for py, _ in specs.values():
        subprocess.run([py, here, '--bytecode'], check=True)   # (a no-op for an MXNet peer's Python)
    if a.phases:
        for t in threads:
            py, extra = specs['B']
            subprocess.run(['taskset', '-c', ','.join(map(str, range(t))), py, here, '--phases-child', npz, str(t)] + ['--cpu'] * a.cpu,
                           env=_env(t, tmp, extra), check=True)
        return
    res = {(t, k): [] for t in threads for k in specs}
    load0 = os.getloadavg()
    for r in range(a.rounds):
        for t in threads:
            for k in ('A', 'B') if r % 2 == 0 else ('B', 'A'):
                py, extra = specs[k]
                out = subprocess.run(['taskset', '-c', ','.join(map(str, range(t))), py, here, '--child', npz, str(t),
                                      str(a.steps)],
                                     env=_env(t, tmp, extra), check=True, capture_output=True, text=True).stdout
                res[(t, k)].append(json.loads(out.strip().splitlines()[-1]))
    print(f"load average before {load0[0]:.2f}, after {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    for t in threads:
        for k in specs:
            rs = res[(t, k)]
            first = [x['first_ms'] for x in rs]
            cpu = [x['first_cpu_ms'] for x in rs]
            med = lambda key: statistics.median(x[key] for x in rs)  # noqa: E731
            print(f"{t} thread(s) {k} {a.a if k == 'A' else a.b}: first call median {statistics.median(first):.0f} ms "
                  f"(cpu {statistics.median(cpu):.0f} ms, second call {med('second_ms'):.0f} ms, "
                  f"forked workers' cpu {med('children_cpu_ms'):.0f} ms) rounds {[round(v) for v in first]}")
            if a.steps > 2:
                print(f"    first {a.steps} steps in all: median {med('steps_ms'):.0f} ms, rounds "
                      f"{[round(x['steps_ms']) for x in rs]}" + (f"; steady step {med('steady_ms'):.0f} ms" if a.steps >= 5 else ''))
        b, n = (statistics.median(x['first_ms'] for x in res[(t, k)]) for k in ('A', 'B'))
        print(f"{t} thread(s): B/A {n / b:.2f}")


if __name__ == '__main__':
    if sys.argv[1:2] == ['--child']:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 2)
    elif sys.argv[1:2] == ['--phases-child']:
        phases(sys.argv[2], int(sys.argv[3]), time.thread_time if '--cpu' in sys.argv else time.perf_counter)
    elif sys.argv[1:2] == ['--bytecode']:
        bytecode()
    elif sys.argv[1:2] == ['--make']:
        make(sys.argv[2])
    else:
        main()
