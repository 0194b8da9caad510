"""Inference speed of model-zoo networks at 224x224: graphc (hybridized) beside PyTorch where torch is installed.

    python benchmarks/zoo_speed.py                                   # ResNet-18/50, MobileNet V2, DenseNet-121
    python benchmarks/zoo_speed.py --models resnet18_v1 --batches 1 --reps 5

Both run the same network with the same weights. torch runs graphc's exported graph (MXNet's symbol JSON) node
by node as torch.nn.functional calls (conv2d, batch_norm, max_pool2d, ...) under torch.inference_mode(): what
an nn.Module's forward does, one Python call per layer into torch's kernels. (torchvision's models are not used:
their structure differs from MXNet's in places, e.g. the stride of ResNet-50's bottleneck and MobileNet V2's
first block, and its C++ extension does not load beside torch 2.13.0+cpu here.) The outputs are checked to
agree before timing. The two are interleaved (graphc, torch, graphc, torch, ...) after warm-up calls, so
machine noise hits both alike; each cell is the median, with the 10th-90th percentile spread; the load
average is printed before and after, since other work on the machine slows both.
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import graphc as gc  # noqa: E402
from graphc import nd, registry  # noqa: E402
from graphc.gluon.model_zoo import vision  # noqa: E402
from graphc.serialization import load_named  # noqa: E402

MODELS = {'resnet18_v1': 'ResNet-18 V1', 'resnet50_v1': 'ResNet-50 V1', 'mobilenetv2_1.0': 'MobileNet V2 1.0',
          'densenet121': 'DenseNet-121'}


def torch_runner(torch, sym_file, params_file):
    """A function x -> y that runs the symbol file's graph with torch ops and the .params file's weights."""
    F = torch.nn.functional
    g = json.load(open(sym_file))
    weights = {k.split(':', 1)[1]: torch.from_numpy(np.ascontiguousarray(v.asnumpy()))
               for k, v in load_named(params_file).items()}
    pair = lambda t: tuple(t)[:2] if t else (1, 1)  # noqa: E731

    def conv(a, x, w, b=None):
        return F.conv2d(x, w, b, pair(a['stride']), pair(a['pad']), pair(a['dilate']), a['num_group'])

    def pool(a, x):
        if a['global_pool']:
            return x.amax((2, 3), keepdim=True) if a['pool_type'] == 'max' else x.mean((2, 3), keepdim=True)
        k, s, p, ceil = pair(a['kernel']), pair(a['stride']), pair(a['pad']), a['pooling_convention'] == 'full'
        if a['pool_type'] == 'max':
            return F.max_pool2d(x, k, s, p, ceil_mode=ceil)
        return F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=a['count_include_pad'] is not False)

    def bn(a, x, gamma, beta, mean, var):
        return F.batch_norm(x, mean, var, torch.ones_like(gamma) if a['fix_gamma'] else gamma, beta, False, 0.0,
                            a['eps'])

    def fc(a, x, w, b=None):
        return F.linear(x.flatten(1) if a['flatten'] else x, w, b)

    acts = {'relu': torch.relu, 'sigmoid': torch.sigmoid, 'tanh': torch.tanh}
    ops = {'Convolution': conv, 'Pooling': pool, 'BatchNorm': bn, 'FullyConnected': fc,
           'Activation': lambda a, x: acts[a['act_type']](x),
           'elemwise_add': lambda a, x, y: x + y, 'broadcast_add': lambda a, x, y: x + y,
           'Concat': lambda a, *xs: torch.cat(xs, a['dim']), 'Flatten': lambda a, x: x.flatten(1),
           'clip': lambda a, x: x.clamp(a['a_min'], a['a_max']), 'Dropout': lambda a, x: x}
    steps = []
    for i, n in enumerate(g['nodes']):
        if n['op'] == 'null':
            continue
        if n['op'] not in ops:
            raise SystemExit(f"zoo_speed: no torch rendering of {n['op']} (node {n['name']})")
        steps.append((i, ops[n['op']], registry.get(n['op']).canon(n.get('attrs', {})), [j for j, *_ in n['inputs']]))
    names = {i: n['name'] for i, n in enumerate(g['nodes']) if n['op'] == 'null'}
    head = g['heads'][0][0]

    def run(x):
        with torch.inference_mode():
            v = {i: weights.get(name) for i, name in names.items()}
            v[next(i for i, name in names.items() if name == 'data')] = x
            for i, f, a, ins in steps:
                v[i] = f(a, *[v[j] for j in ins])
            return v[head]
    return run


def percentiles(ts):
    return float(np.median(ts)), float(np.percentile(ts, 10)), float(np.percentile(ts, 90))


def bench(name, batch, reps, warmup, torch, work):
    gc.random.seed(0)
    net = vision.get_model(name)
    net.initialize(gc.init.Xavier())
    net.hybridize()
    xn = np.random.default_rng(0).normal(size=(batch, 3, 224, 224)).astype(np.float32)
    x = nd.array(xn)
    fns = {'graphc': lambda: net(x).asnumpy()}
    want = fns['graphc']()
    if torch is not None:
        sym, params = net.export(os.path.join(work, name))
        tx = torch.from_numpy(xn)
        run = torch_runner(torch, sym, params)
        fns['torch'] = lambda: run(tx).numpy()
        got = fns['torch']()
        err = float(np.abs(got - want).max())
        assert err <= 1e-3 * max(1.0, float(np.abs(want).max())), f'{name}: torch and graphc differ by {err}'
    ts = {k: [] for k in fns}
    for i in range(warmup + reps):   # interleaved
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            if i >= warmup:
                ts[k].append(time.perf_counter() - t0)
    return {k: percentiles(v) for k, v in ts.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', default=','.join(MODELS))
    p.add_argument('--batches', default='1,32')
    p.add_argument('--reps', type=int, default=7, help='timed rounds at batch 1 (larger batches: --reps-large)')
    p.add_argument('--reps-large', type=int, default=3)
    p.add_argument('--warmup', type=int, default=1)
    p.add_argument('--json', help='write the results here')
    a = p.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    load0 = os.getloadavg()
    print(f"load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; {os.cpu_count()} cores; "
          f"torch {torch.__version__ if torch else 'not installed'}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for name in a.models.split(','):
            for batch in (int(b) for b in a.batches.split(',')):
                r = bench(name, batch, a.reps if batch == 1 else a.reps_large, a.warmup, torch, work)
                rows.append({'model': name, 'batch': batch, **r})
                cells = '  '.join(f"{k} {m * 1e3:.1f} ms ({lo * 1e3:.1f}-{hi * 1e3:.1f})" for k, (m, lo, hi) in r.items())
                print(f"{name} batch {batch}: {cells}", flush=True)
    load1 = os.getloadavg()
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print('\n| model | batch | graphc ms (p10-p90) | torch ms (p10-p90) | torch / graphc |\n|---|---|---|---|---|')
    for r in rows:
        g = r['graphc']
        t = r.get('torch')
        cell = lambda m: f"{m[0] * 1e3:.1f} ({m[1] * 1e3:.1f}-{m[2] * 1e3:.1f})"  # noqa: E731
        print(f"| {MODELS.get(r['model'], r['model'])} | {r['batch']} | {cell(g)} | {cell(t) if t else '-'} | "
              f"{t[0] / g[0]:.2f} |" if t else f"| {MODELS.get(r['model'], r['model'])} | {r['batch']} | {cell(g)} | - | - |")
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'load_before': load0, 'load_after': load1, 'rows': rows, 'args': vars(a)}, f, indent=1)
    return rows


if __name__ == '__main__':
    main()
