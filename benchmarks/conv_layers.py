"""Every convolution layer of LeNet (batch 600, 28x28) and ResNet-18 V1 (batch 32 of 32x32, thumbnail stem;
batch 1 of 224x224): forward, data gradient and weight gradient, by graphc's im2col + GEMM path, oneDNN
(its own blocked layouts with reorders around; NCHW activations with its weight layout; everything plain)
and PyTorch where installed, interleaved call by call, at 1 and 2 threads. Prints median ms with p10-p90
per path, which of graphc's won, and what runtime/onednn.py's layout_for rule picks (and how far it is from
that best).

    python benchmarks/conv_layers.py [--reps 15] [--threads 1,2] [--only lenet,r32,r224] [--json out.json]

Threads: GRAPHC_NUM_THREADS (compiled kernels, oneDNN's OpenMP), OpenBLAS's own count and torch's, set
together. Run on a quiet machine (check `uptime`); a load average above 0.5 is printed as a warning.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from graphc.ops import nn  # noqa: E402
from graphc.runtime import onednn, rnn  # noqa: E402


def layers():
    """(model, name, data shape, weight shape, stride, pad): the distinct convolutions of each model."""
    out = [('lenet', 'conv1 1->32 5x5', (600, 1, 28, 28), (32, 1, 5, 5), 1, 0),
           ('lenet', 'conv2 32->64 5x5', (600, 32, 12, 12), (64, 32, 5, 5), 1, 0),
           ('lenet', 'conv3 64->128 4x4', (600, 64, 4, 4), (128, 64, 4, 4), 1, 0),
           ('r32', 'stem 3->64 3x3', (32, 3, 32, 32), (64, 3, 3, 3), 1, 1),
           ('r224', 'stem 3->64 7x7 s2 @224', (1, 3, 224, 224), (64, 3, 7, 7), 2, 3)]
    for model, n, hw in (('r32', 32, 32), ('r224', 1, 56)):
        c = 64
        for stage in range(4):
            if stage:
                out += [(model, f'{c}->{2 * c} 3x3 s2 @{hw}', (n, c, hw, hw), (2 * c, c, 3, 3), 2, 1),
                        (model, f'{c}->{2 * c} 1x1 s2 @{hw}', (n, c, hw, hw), (2 * c, c, 1, 1), 2, 0)]
                c, hw = 2 * c, hw // 2
            out.append((model, f'{c}->{c} 3x3 @{hw}', (n, c, hw, hw), (c, c, 3, 3), 1, 1))
    return out


def paths(xs, ws, s, p, torch):
    """{path: {op: a function of no arguments}} over fresh random inputs."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32) * 0.1
    b = rng.standard_normal(ws[0], dtype=np.float32)
    k, st, dl, pd, g = (ws[2], ws[3]), (s, s), (1, 1), (p, p), 1
    out = tuple((xs[2 + i] + 2 * p - k[i]) // s + 1 for i in range(2))
    dy = rng.standard_normal((xs[0], ws[0]) + out, dtype=np.float32)
    res = {'im2col': {'fwd': lambda: nn.conv2d(x, w, k, st, dl, pd, g) + b.reshape(1, -1, 1, 1),
                      'bwd_data': lambda: nn.conv2d_transpose(dy, w, k, st, dl, pd, g, xs[2:]),
                      'bwd_weights': lambda: (nn.conv2d_weight_grad(x, dy, k, st, dl, pd, g), dy.sum((0, 2, 3)))}}
    geo = (k, st, dl, pd, g)
    for layout in ('blocked', 'nchw', 'plain') if onednn.available() else ():
        steps = {kind: onednn._plan(kind, xs, ws, geo, kind != 'bwd_data', layout)
                 for kind in ('fwd', 'bwd_data', 'bwd_weights')}
        y, dx, dw, db = np.empty(dy.shape, np.float32), np.empty(xs, np.float32), np.empty(ws, np.float32), \
            np.empty(ws[0], np.float32)
        res[f'onednn-{layout}'] = {'fwd': lambda st=steps: st['fwd'](x, w, b, y),
                                   'bwd_data': lambda st=steps: st['bwd_data'](dy, w, dx),
                                   'bwd_weights': lambda st=steps: st['bwd_weights'](x, dy, dw, db)}
        res[f'onednn-{layout}']['impl'] = {kind: s.impl for kind, s in steps.items()}
    if torch is not None:
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))
        cb = torch.ops.aten.convolution_backward
        res['torch'] = {'fwd': lambda: torch.nn.functional.conv2d(tx, tw, tb, s, p),
                        'bwd_data': lambda: cb(tdy, tx, tw, [ws[0]], [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                               [True, False, False]),
                        'bwd_weights': lambda: cb(tdy, tx, tw, [ws[0]], [s, s], [p, p], [1, 1], False, [0, 0], 1,
                                                  [False, True, True])}
    return res


def measure(fns, reps):
    """{path: [ms, ...]} with the paths interleaved call by call (a short sleep between: OpenMP and OpenBLAS
    threads spin a while after a call and would take the cores from the next path)."""
    times = {name: [] for name in fns}
    for f in fns.values():
        f()   # warm: primitives created, pages touched
    for _ in range(reps):
        for name, f in fns.items():
            time.sleep(0.002)
            t = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - t) * 1e3)
    return times


def _rule(op, xs, ws, s, p):
    """The path graphc takes for this layer and op: runtime/onednn.py's layout_for (im2col without oneDNN; the
    backward runs on one path, so a weight gradient that wants im2col takes the data gradient along)."""
    if not onednn.available():
        return 'im2col'
    geo = ((ws[2], ws[3]), (s, s), (1, 1), (p, p), 1)
    if op != 'fwd' and onednn.layout_for('bwd_weights', xs, ws, geo) is None:
        return 'im2col'
    layout = onednn.layout_for(op, xs, ws, geo)
    return f'onednn-{layout}' if layout else 'im2col'


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--threads', default='1,2')
    ap.add_argument('--only', default='lenet,r32,r224')
    ap.add_argument('--json')
    a = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    load = os.getloadavg()[0]
    print(f"oneDNN {onednn._state.get('version') if onednn.available() else 'not installed'}; torch "
          f"{torch.__version__ if torch else 'not installed'}; load average {load:.2f}"
          + (" (LOADED: the figures are upper bounds)" if load > 0.5 else ""))
    rows = []
    for nthr in (int(t) for t in a.threads.split(',')):
        os.environ['GRAPHC_NUM_THREADS'] = str(nthr)
        rnn._set_threads(nthr)
        if torch is not None:
            torch.set_num_threads(nthr)
        for model, name, xs, ws, s, p in layers():
            if model not in a.only.split(','):
                continue
            fns = paths(xs, ws, s, p, torch)
            impl = {layout: fns.get(f'onednn-{layout}', {}).pop('impl', {}) for layout in ('blocked', 'nchw', 'plain')}
            for op in ('fwd', 'bwd_data', 'bwd_weights'):
                if model == 'lenet' and name.startswith('conv1') and op == 'bwd_data':
                    continue   # (the first layer's data gradient is never computed)
                t = measure({path: f[op] for path, f in fns.items()}, a.reps)
                stats = {path: [float(np.percentile(v, q)) for q in (50, 10, 90)] for path, v in t.items()}
                ours = {k: v for k, v in stats.items() if k != 'torch'}
                best = min(ours, key=lambda k: ours[k][0])
                rule = _rule(op, xs, ws, s, p)
                lost = ours[rule][0] / ours[best][0] if rule in ours else float('nan')
                rows.append(dict(threads=nthr, model=model, layer=name, op=op, x=xs, w=ws, stats=stats, best=best,
                                 rule=rule, rule_over_best=lost, impl={k: v.get(op) for k, v in impl.items()}))
                cells = '  '.join(f"{k} {m:7.2f} ({lo:.2f}-{hi:.2f})" for k, (m, lo, hi) in stats.items())
                print(f"{nthr}t {model:5s} {name:24s} {op:11s} {cells}  -> {best}; rule {rule} {lost:.2f}x "
                      f"[{impl['blocked'].get(op, '')}, {impl['nchw'].get(op, '')}]", flush=True)
    wins = {}
    for r in rows:
        wins.setdefault(r['best'], 0)
        wins[r['best']] += 1
    print("fastest of graphc's paths, count of (layer, op, threads):", wins)
    lost = sorted(r['rule_over_best'] for r in rows if r['rule_over_best'] == r['rule_over_best'])
    if lost:
        print(f"the rule's pick / the best: median {lost[len(lost) // 2]:.2f}x, worst {lost[-1]:.2f}x "
              f"({', '.join(r['layer'] + ' ' + r['op'] for r in rows if r['rule_over_best'] == lost[-1])})")
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(load=load, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
