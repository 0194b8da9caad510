"""Where LeNet's time goes (batch 600): every step of the hybridized inference and training plans timed, Python
steps by their kernel, native segments as one entry each, and what is left of the call outside the plans (the
loss, the Trainer, binding). Median ms over the reps, per step, in plan order: wall time, the CPU time of the
whole process (all its threads) and of the calling thread. At 2 threads a step that scales has process CPU near
its 1-thread figure and calling-thread CPU near half of it; the CPU columns tolerate a loaded machine better than
the wall time.

    GRAPHC_NUM_THREADS=1 python benchmarks/lenet_profile.py [--reps 10] [--batch 600] [--only infer,train]

Run on a quiet machine (`uptime`); under load the figures are upper bounds.
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import graphc as gc  # noqa: E402
from graphc import autograd, config, gluon, nd  # noqa: E402
from graphc.bench import lenet  # noqa: E402
from graphc.runtime import plan as plan_mod  # noqa: E402

_plans = []
_init = plan_mod.Plan.__init__


def _record(self, *a, **k):
    _init(self, *a, **k)
    _plans.append(self)


def _clocks():
    return time.perf_counter(), time.process_time(), time.thread_time()


def _since(t0):
    return tuple(b - a for a, b in zip(t0, _clocks()))


def _instrument(p, times):
    """Wrap the plan's Python steps and its native segments with timers that append to times[label]."""
    def timed(label, f):
        def run(*a):
            t0 = _clocks()
            r = f(*a)
            times.setdefault(label, []).append(_since(t0))
            return r
        return run

    def wrap(st):
        ref, attrs, ins, outs, free, node = st
        return (timed(f"{node.name} [{node.op.name}]", ref), attrs, ins, outs, free, node)
    p.steps = [wrap(st) for st in p.steps]
    prog = p.program
    if prog is None:
        return
    names = {}
    for i, it in enumerate(prog.items):
        if type(it) is tuple:
            prog.items[i] = wrap(it)
        else:
            names[it.addr] = f"native segment {len(names)} ({it.n} steps)"
    raw = prog.run_native

    def run_native(addr, n, ptrs):
        t0 = _clocks()
        raw(addr, n, ptrs)
        times.setdefault(names[addr], []).append(_since(t0))
    prog.run_native = run_native


def profile(kind, bs, reps):
    gc.random.seed(0)
    x, y = nd.random.uniform(shape=(bs, 1, 28, 28)), nd.array(list(range(10)) * (bs // 10), dtype='int32')
    net = lenet()
    net(x)
    net.hybridize()
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    tr = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 1e-3})

    def step():
        if kind == 'infer':
            return net(x).wait_to_read()
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        tr.step(bs)
        loss.wait_to_read()
    del _plans[:]
    plan_mod.Plan.__init__ = _record
    try:
        for _ in range(2):
            step()
    finally:
        plan_mod.Plan.__init__ = _init
    times, total = {}, []
    for p in _plans:
        _instrument(p, times)
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        total.append(time.perf_counter() - t0)
    med = {k: [statistics.median(t[j] for t in v) * 1e3 for j in range(3)] for k, v in times.items()}
    tot = statistics.median(total) * 1e3
    print(f"== LeNet {kind}, batch {bs}, {config.num_threads()} thread(s): {tot:.1f} ms a call (median of {reps})")
    print("   wall ms  proc CPU  this thread")
    for k, v in med.items():
        print(f"  {v[0]:8.2f}  {v[1]:8.2f}  {v[2]:8.2f}  {len(times[k]) // reps}x  {k}")
    print(f"  {tot - sum(v[0] * len(times[k]) // reps for k, v in med.items()):8.2f} ms      outside the plans "
          "(loss, Trainer, binding)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=10)
    ap.add_argument('--batch', type=int, default=600)
    ap.add_argument('--only', default='infer,train')
    a = ap.parse_args()
    print(f"uptime: {os.getloadavg()}")
    for kind in a.only.split(','):
        profile(kind, a.batch, a.reps)


if __name__ == '__main__':
    main()
