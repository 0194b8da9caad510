"""A training loop whose input shape changes all the time: 200 distinct input shapes cycled for --seconds, through
a hybridized MLP with BatchNorm (or --model conv: a conv net over batch size x image size) with a Trainer. Reports RSS (VmRSS) and the kernel cache's size on
disk over time, and checks them against the bounds: disk <= GRAPHC_CACHE_MAX_MB, and RSS after the first pass
over all shapes grows by at most --rss-growth-mb (traces past GRAPHC_MAX_TRACES are dropped, kernels are shared).

    python tools/shape_churn.py --seconds 300 --cache-mb 8
"""
import argparse
import json
import os
import sys
import tempfile
import time


def rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024
    return 0.0


def disk_mb(d):
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total / (1 << 20)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=300)
    ap.add_argument('--shapes', type=int, default=200)
    ap.add_argument('--cache-mb', type=float, default=8)
    ap.add_argument('--rss-growth-mb', type=float, default=150)
    ap.add_argument('--model', choices=('mlp', 'conv'), default='mlp')
    a = ap.parse_args(argv)
    cache = tempfile.mkdtemp(prefix='graphc-churn-cache-')
    os.environ['GRAPHC_CACHE_DIR'] = cache
    os.environ['GRAPHC_CACHE_MAX_MB'] = str(a.cache_mb)
    import warnings
    warnings.simplefilter('ignore', RuntimeWarning)  # the one GRAPHC_MAX_TRACES warning is expected here
    import numpy as np
    import graphc as mx
    from graphc import autograd, gluon, nd
    from graphc.gluon import nn
    net = nn.HybridSequential()
    if a.model == 'conv':
        net.add(nn.Conv2D(8, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'), nn.GlobalAvgPool2D(),
                nn.Dense(16, activation='relu'), nn.Dense(10))
        shapes = [(b, 3, s, s) for b in range(1, 41) for s in (8, 9, 10, 11, 12)][:a.shapes]
    else:  # an MLP over a batch of b vectors: 200 batch sizes
        net.add(nn.Dense(64, activation='relu'), nn.BatchNorm(), nn.Dense(10))
        shapes = [(b, 20) for b in range(1, a.shapes + 1)]
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    r = np.random.default_rng(0)
    t0, step, samples, first_pass_rss = time.time(), 0, [], None
    peak_rss, peak_disk = 0.0, 0.0
    while time.time() - t0 < a.seconds:
        shape = shapes[step % len(shapes)]
        b = shape[0]
        x = nd.array(r.normal(size=shape).astype(np.float32))
        y = nd.array(r.integers(0, 10, size=b).astype(np.float32))
        with autograd.record():
            loss = loss_fn(net(x), y)
        loss.backward()
        trainer.step(b)
        step += 1
        if step == len(shapes):
            first_pass_rss = rss_mb()
        if step % 50 == 0:
            m, dk = rss_mb(), disk_mb(cache)
            peak_rss, peak_disk = max(peak_rss, m), max(peak_disk, dk)
            samples.append((round(time.time() - t0, 1), step, round(m, 1), round(dk, 2)))
    m, dk = rss_mb(), disk_mb(cache)
    peak_rss, peak_disk = max(peak_rss, m), max(peak_disk, dk)
    from graphc.runtime import cpu
    out = {'model': a.model, 'seconds': round(time.time() - t0, 1), 'steps': step, 'shapes': len(shapes),
           'passes_over_shapes': round(step / len(shapes), 2), 'traces_kept': len(net._cache),
           'trace_count': net.trace_count, 'kernels_compiled': cpu.stats['compiled'],
           'rss_mb_after_first_pass': first_pass_rss and round(first_pass_rss, 1), 'rss_mb_final': round(m, 1),
           'rss_mb_peak': round(peak_rss, 1), 'disk_mb_peak': round(peak_disk, 2), 'disk_mb_final': round(dk, 2),
           'cache_max_mb': a.cache_mb, 'samples': samples[-12:]}
    ok = peak_disk <= a.cache_mb * 1.05 and (first_pass_rss is None or peak_rss - first_pass_rss <= a.rss_growth_mb)
    out['within_bounds'] = ok
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
