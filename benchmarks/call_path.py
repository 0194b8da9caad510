"""Where a hybridized batch-1 MLP call's time goes, layer by layer of the thin call path, beside the hand NumPy twin:
the native segment alone (one ctypes call: the three GEMVs, bias, ReLU), Plan.lean around it (inputs' addresses,
the output array), the entry's fast path (the argument and mode checks, the parameters bound, the NDArray) and the
whole block call. Interleaved call by
call, in three regimes: warm (back to back) and cold (a sleep before each call, as a variant meets the machine in
`graphc bench --peers` after the peers' turns: caches and branch predictors taken by others, the core idle), and
evicted (64 MiB written before each call: the weights, the Python objects and the code out of every cache, as after
a peer's LeNet step).

    python benchmarks/call_path.py [--batch 1] [--reps 2000] [--seed 0]

Run on a quiet machine (check `uptime`); one thread.
"""
import argparse
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))


EVICT = 64 << 20   # bytes the 'evicted' regime writes before each call: more than the L3 (32 MiB here)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--reps', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=0, help="the variants' shuffled order each call")
    args = ap.parse_args()
    random.seed(args.seed)
    from graphc import nd
    from graphc.bench import dense_forward, mlp, set_threads, twins, weights
    set_threads(1)
    x = nd.random.normal(shape=(args.batch, 784))
    eager, hyb = twins(mlp, x)
    w, xn = weights(eager), x.asnumpy()
    entry = hyb.cached_graph()
    plan = entry._main_plan
    prog = plan.program
    keys = entry.data_vars + [v for _, v in entry.param_vars]
    lean = plan.lean(keys)
    if lean is None or hyb._fast_call is None:
        sys.exit('this plan has no lean path here (GRAPHC_NATIVE=0, no BLAS, or more than one segment)')
    seg, ptrs = prog.items[0], prog.ptrs
    arrays = [x._data] + [p.data()._data for p in hyb.collect_params().values()]
    held = [np.empty(prog.shapes[k], prog.dtypes[k]) for k in plan.outputs]   # what the native-only call writes

    def native(before):
        lean(list(arrays))   # (binds every input's address; then the outputs point at held arrays)
        for k, a in zip(plan.outputs, held):
            ptrs[k] = a.ctypes.data
        before()   # (the regime's eviction again: lean's own call brought the weights back)
        t0 = time.perf_counter()
        prog.run_native(seg.addr, seg.n, ptrs)
        return time.perf_counter() - t0
    fast = entry._fast
    fns = {'numpy (3 matmuls)': lambda: dense_forward(w, xn)[-1], 'native segment only': None,
           'Plan.lean': lambda: lean(list(arrays)), 'entry fast path': lambda: fast((x,)),
           'block call': lambda: hyb(x)}
    junk = np.ones(EVICT // 8)

    def evict():
        junk.__iadd__(1.0)
    for regime in ('warm', 'cold', 'evicted'):
        ts = {k: [] for k in fns}
        for _ in range(args.reps if regime == 'warm' else args.reps // 4):
            for k, f in random.sample(list(fns.items()), len(fns)):
                if regime == 'cold':
                    time.sleep(0.001)
                elif regime == 'evicted':
                    evict()
                if f is None:
                    ts[k].append(native(evict if regime == 'evicted' else lambda: None))
                    continue
                t0 = time.perf_counter()
                f()
                ts[k].append(time.perf_counter() - t0)
        print(f"{regime}: batch {args.batch}, 1 thread, seed {args.seed}, load average {os.getloadavg()[0]:.2f}; "
              "median us (p10-p90)")
        for k, v in ts.items():
            p10, p90 = np.percentile(v, (10, 90)) * 1e6
            print(f"  {k:<22} {statistics.median(v) * 1e6:7.2f} ({p10:.2f}-{p90:.2f})")


if __name__ == '__main__':
    main()
