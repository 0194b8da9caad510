"""Cold start of the LeNet training step (20c5-pool-50c5-pool-500-10, hybridized, Adam, batch 600): the
import of graphc, the first step with an empty kernel cache (cold), the first step in a new process with the
cache the cold run filled (warm) and the steady-state step, each measured in its own Python process.

    python benchmarks/cold_start.py [--runs 5] [--steps 10] [--profile cold|warm] [--vs OTHER_PYTHON] [--json out.json]

Each run makes a fresh GRAPHC_CACHE_DIR (mktemp -d) for its cold process and reuses it for its warm one;
the table gives medians (and min-max) over the runs. --profile prints cProfile's top functions of one
first step. MXNet 1.9's cold first step on the same workload took 365 ms on the project's machine.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def child(steps, profile):
    t0 = time.perf_counter()
    import graphc as gc
    from graphc import autograd, gluon, nd
    from graphc.gluon import nn
    t_import = time.perf_counter() - t0
    net = nn.HybridSequential()
    net.add(nn.Conv2D(20, 5, activation='relu'), nn.MaxPool2D(2, 2), nn.Conv2D(50, 5, activation='relu'),
            nn.MaxPool2D(2, 2), nn.Flatten(), nn.Dense(500, activation='relu'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    x = nd.random.uniform(shape=(600, 1, 28, 28))
    y = nd.array(list(range(10)) * 60)

    def step():
        with autograd.record():
            lv = loss(net(x), y)
        lv.backward()
        trainer.step(600)
        return lv.asnumpy()

    pr = None
    if profile:
        import cProfile
        pr = cProfile.Profile()
        pr.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    t_first, c_first = time.perf_counter() - t0, time.process_time() - c0
    if pr is not None:
        pr.disable()
        import pstats
        pstats.Stats(pr, stream=sys.stderr).sort_stats('cumulative').print_stats(40)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    from graphc.runtime import cpu
    st = cpu.stats
    print(json.dumps({'import_ms': t_import * 1e3, 'first_ms': t_first * 1e3, 'first_cpu_ms': c_first * 1e3,
                      'second_ms': times[0] * 1e3 if times else None,
                      'steady_ms': statistics.median(times[1:] or times) * 1e3 if times else None,
                      'llvm_ms': st['llvm_ms'], 'compiled': st['disk_misses'], 'disk_hits': st['disk_hits']
}))


def run_child(python, cache, steps, profile):
    env = dict(os.environ, GRAPHC_CACHE_DIR=cache)
    cmd = [python, os.path.abspath(__file__), '--child', '--steps', str(steps)] + (['--profile', 'cold'] if profile else [])
    out = subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return '-'
    return f"{statistics.median(vals):7.0f} ({min(vals):.0f}-{max(vals):.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--runs', type=int, default=5)
    ap.add_argument('--steps', type=int, default=10, help='steps after the first (the steady state: their median)')
    ap.add_argument('--profile', choices=['cold', 'warm'])
    ap.add_argument('--vs', metavar='PYTHON', help="another checkout's interpreter (its venv's python), run by run "
                    "alternating with this one (an A/B): a column each")
    ap.add_argument('--json')
    ap.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.steps, a.profile)
    pythons = [sys.executable] + ([a.vs] if a.vs else [])
    res = {py: {'cold': [], 'warm': []} for py in pythons}
    for py in pythons:   # a dropped first run writes __pycache__ as pip install does
        scratch = tempfile.mkdtemp(prefix='graphc-cold-')
        subprocess.run([py, os.path.abspath(__file__), '--child', '--steps', '0'], check=True, stdout=subprocess.DEVNULL,
                       env={k: v for k, v in dict(os.environ, GRAPHC_CACHE_DIR=scratch).items()
                            if k != 'PYTHONDONTWRITEBYTECODE'})
        shutil.rmtree(scratch, ignore_errors=True)
    for r in range(a.runs):
        for py in pythons if r % 2 == 0 else pythons[::-1]:
            cache = tempfile.mkdtemp(prefix='graphc-cold-')
            try:
                for kind in ('cold', 'warm'):
                    res[py][kind].append(run_child(py, cache, a.steps if kind == 'warm' else 1,
                                                   a.profile == kind and r == 0 and py == sys.executable))
            finally:
                shutil.rmtree(cache, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"LeNet training step, batch 600, Adam: medians (min-max) of {a.runs} process runs, ms "
          f"(load average {load:.1f} on {os.cpu_count()} cores{': loaded, upper bounds' if load > 0.5 else ''})")
    if a.vs:
        print(f"  {'':30} {'this checkout':>20} {a.vs}")
    rows = [('import graphc', 'cold', 'import_ms'), ('first step, cold cache', 'cold', 'first_ms'),
            ('  CPU time, all threads', 'cold', 'first_cpu_ms'), ('  of which LLVM (compile)', 'cold', 'llvm_ms'),
            ('first step, warm cache', 'warm', 'first_ms'), ('  of which LLVM (cache loads)', 'warm', 'llvm_ms'),
            ('second step', 'warm', 'second_ms'), ('steady-state step', 'warm', 'steady_ms')]
    for label, kind, key in rows:
        print(f"  {label:30} " + ' '.join(f"{fmt([r.get(key) for r in res[py][kind]]):>20}" for py in pythons))
    print("  LLVM modules compiled cold: " + ', '.join(str(res[py]['cold'][0]['compiled']) for py in pythons) +
          "; warm cache hits: " + ', '.join(str(res[py]['warm'][0]['disk_hits']) for py in pythons))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
