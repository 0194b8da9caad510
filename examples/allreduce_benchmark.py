"""How long one allreduce of a model's gradients takes over the ranks, and what share of a training step it is.

    python -m graphc.launch -n 2 examples/allreduce_benchmark.py          # LeNet and ResNet-18
    python -m graphc.launch -n 4 examples/allreduce_benchmark.py --bucket-mb 25

For each model: the median time of Trainer-style pushpull of all gradients through kvstore 'dist_sync'
(bucketed allreduce, float32; with --fp16, float16 on the wire), the median of one local training step
(forward, backward) at --batch per rank, and the ratio. Rank 0 prints the figures (and --json writes them).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import graphc as gc  # noqa: E402
from graphc import autograd, gluon, nd  # noqa: E402
from graphc.gluon.model_zoo import vision  # noqa: E402


def models():
    from lenet_mnist import lenet
    return [('LeNet', lenet, (1, 28, 28)),
            ('ResNet-18', lambda: vision.resnet18_v1(classes=10, thumbnail=True), (3, 32, 32))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=10)
    p.add_argument('--batch', type=int, default=32, help='local batch of the training step timed')
    p.add_argument('--bucket-mb', type=float, default=25)
    p.add_argument('--fp16', action='store_true')
    p.add_argument('--no-step', action='store_true', help='time the allreduce only (a step takes long on a busy machine)')
    p.add_argument('--overlap', action='store_true',
                   help='time whole training steps (eager forward, backward, Trainer.step) with the allreduce '
                        'overlapping the backward and without (GRAPHC_OVERLAP=0)')
    p.add_argument('--json')
    a = p.parse_args(argv)
    if a.overlap:
        return overlap(a)
    out = []
    for name, make, shape in models():
        gc.random.seed(0)
        net = make()
        net.initialize(gc.init.Xavier())
        net.hybridize()
        x = nd.array(np.random.RandomState(0).rand(a.batch, *shape).astype(np.float32))
        y = nd.array(np.zeros(a.batch, np.float32))
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        net(x[:1])
        kv = gc.kv.create('dist_sync')
        kv._bucket_bytes = int(a.bucket_mb * 2 ** 20)
        if a.fp16:
            kv.set_gradient_compression({'type': 'fp16'})
        params = [q for q in net.collect_params().values() if q.grad_req != 'null']
        keys = list(range(len(params)))
        kv.init(keys, [q.data() for q in params])
        grads = [[q.grad()] for q in params]
        nbytes = sum(q.data().size * 4 for q in params)
        comm, step = [], []
        for r in range(a.reps + 1):
            t = time.perf_counter()
            if not a.no_step or r == 0:
                with autograd.record():
                    loss(net(x), y).backward()
            step.append(time.perf_counter() - t)
            kv.barrier()
            t = time.perf_counter()
            kv.pushpull(keys, grads)
            comm.append(time.perf_counter() - t)
        comm, step = float(np.median(comm[1:])), float(np.median(step[1:]))  # (the first: warm-up)
        row = {'model': name, 'ranks': kv.num_workers, 'params': nbytes // 4, 'mbytes': nbytes / 2 ** 20,
               'buckets': kv.last_buckets, 'allreduce_ms': comm * 1e3, 'fp16': a.fp16}
        if not a.no_step:
            row.update(step_ms=step * 1e3, allreduce_share=comm / (comm + step))
        out.append(row)
        if kv.rank == 0:
            print(f"{name}: {row['params']:,} parameters ({row['mbytes']:.1f} MB) in {row['buckets']} bucket(s), "
                  f"{kv.num_workers} ranks: allreduce {row['allreduce_ms']:.1f} ms" +
                  ('' if a.no_step else f", forward+backward of batch {a.batch} {row['step_ms']:.0f} ms; allreduce is "
                   f"{100 * row['allreduce_share']:.0f}% of the step"), flush=True)
    if a.json and gc.kv.create('dist_sync').rank == 0:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=2)


def overlap(a):
    """Median step time with and without overlap, per model (eager: a hybridized block's gradients all appear
    when its one backward node finishes, so there the allreduce can only start after it)."""
    out = []
    for name, make, shape in models():
        x = nd.array(np.random.RandomState(0).rand(a.batch, *shape).astype(np.float32))
        y = nd.array(np.zeros(a.batch, np.float32))
        loss = gluon.loss.SoftmaxCrossEntropyLoss()
        row = {'model': name, 'bucket_mb': a.bucket_mb, 'batch': a.batch}
        for mode in ('off', 'on', 'off', 'on'):  # interleaved: the machine's load drifts
            os.environ['GRAPHC_OVERLAP'] = '1' if mode == 'on' else '0'
            gc.random.seed(0)
            net = make()
            net.initialize(gc.init.Xavier())
            net(x[:1])
            kv = gc.kv.create('dist_sync')
            kv._bucket_bytes = int(a.bucket_mb * 2 ** 20)
            tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01}, kvstore=kv)
            steps, waits = [], []
            for r in range(a.reps + 2):
                kv.barrier()
                t = time.perf_counter()
                with autograd.record():
                    loss(net(x), y).backward()
                tr.step(a.batch * kv.num_workers)
                steps.append(time.perf_counter() - t)
                waits.append(kv.timings[-1] if kv.timings else 0.0)
            ov = tr._overlap
            row.setdefault(mode, []).append({
                'step_ms': float(np.median(steps[2:])) * 1e3, 'wait_ms': float(np.median(waits[2:])) * 1e3,
                'buckets': kv.last_buckets,
                'started_in_backward': ov.stats['started_in_backward'] / max(ov.stats['steps'], 1) if ov else 0})
        out.append(row)
        if kv.rank == 0:
            for mode in ('off', 'on'):
                rs = row[mode]
                each = lambda key, fmt: ' / '.join(format(r[key], fmt) for r in rs)  # noqa: E731
                print(f"{name} overlap {mode}: step {each('step_ms', '.0f')} ms, waiting at step "
                      f"{each('wait_ms', '.1f')} ms, {rs[0]['buckets']} buckets, "
                      f"{rs[-1]['started_in_backward']:.1f} started during backward", flush=True)
    if a.json and kv.rank == 0:
        with open(a.json, 'w') as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == '__main__':
    main()
