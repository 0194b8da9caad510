"""GPU benchmark: op by op (every op its own kernel launch and buffer, as eager execution runs them) vs
hybridized (fused kernels) on the GPU, and each fused kernel's bandwidth against a device-to-device copy of
the same bytes.

    python benchmarks/gpu.py [--reps 50] [--quick] [--json out.json]
    python benchmarks/gpu.py --emulate --quick     # no GPU: the host emulation, to check the script runs

Workloads: LeNet (examples/lenet_mnist.py) inference and a training step (forward and backward plans), the
MLP of graphc/bench.py, an elementwise chain (4096x4096 on a device); and whole steps on gc.gpu with Trainer
(the MLP, LeNet and ResNet-18 training steps at batch 64 and 256, the char-LSTM's step, the chain's
inference; the MLP and ResNet-18 at batch 256 cast to float16 and to bfloat16 with float32 masters): eager vs hybridized (graphc/gpuplan.py's device plans) vs CUDA graphs (hybridize(static_alloc=True,
static_shape=True)), wall clock around synchronized steps, with PyTorch's CUDA step beside them (the same
model and weights, SGD momentum, eager) where torch sees a GPU. Both variants are the same graphs through the same passes,
the op-by-op one with fusion switched off (GRAPHC_DISABLE_PASSES=fuse); outputs are checked to agree before
timing. GPU times come from CUDA events around each run (median of --reps after warm-up). Under --emulate the
times are of the CPU emulation and mean nothing about a GPU.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import graphc as gc
from graphc import autograd, gluon, nd
from graphc import bench as B
from graphc.gpuplan import captured_plans, device
from graphc.runtime import cuda


def capture(make, x, y=None, fused=True):
    """[(graph, feed)] of a fresh network's inference (y None) or training step, with fusion on or off."""
    old = os.environ.get('GRAPHC_DISABLE_PASSES')
    # recorded on the CPU: conv_pool, a CPU-only pass (the CUDA pipeline skips it), stays off, as in tests/test_cuda
    os.environ['GRAPHC_DISABLE_PASSES'] = ','.join(filter(None, [old, 'conv_pool'] + ([] if fused else ['fuse'])))
    try:
        gc.random.seed(0)
        net = make()
        net.hybridize()
        with captured_plans() as runs:
            if y is None:
                net(nd.array(x))
            else:
                loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
                with autograd.record():
                    loss = loss_fn(net(nd.array(x)), nd.array(y))
                loss.backward()
        return runs
    finally:
        if old is None:
            os.environ.pop('GRAPHC_DISABLE_PASSES', None)
        else:
            os.environ['GRAPHC_DISABLE_PASSES'] = old


def resnet18():
    from graphc.gluon.model_zoo import vision
    return vision.resnet18_v1(classes=10, thumbnail=True)  # (CIFAR's stem: small images keep their pixels)


def chain_net():
    return gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)


class CharLM(gluon.HybridBlock):
    """examples/char_lstm.py's shape: Embedding -> LSTM (NTC) -> Dense over the vocabulary, logits (N * T, vocab)."""

    def __init__(self, vocab, embed, hidden, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.embed = gluon.nn.Embedding(vocab, embed)
            self.rnn = gluon.rnn.LSTM(hidden, layout='NTC', input_size=embed)
            self.out = gluon.nn.Dense(vocab, flatten=False, in_units=hidden)
        self.vocab = vocab

    def hybrid_forward(self, F, x):
        return F.reshape(self.out(self.rnn(self.embed(x))), (-1, self.vocab))


def torch_twin(torch, kind, params):
    """The workload's model in torch on the GPU with graphc's trainable weights (graphc/bench_peers/torch_peer.py)."""
    from graphc.bench_peers import torch_peer as tp
    L = torch.nn
    if kind == 'charlm':
        class Twin(L.Module):
            def __init__(self, v, e, h):
                super().__init__()
                self.embed, self.rnn, self.out = L.Embedding(v, e), L.LSTM(e, h, batch_first=True), L.Linear(h, v)

            def forward(self, x):
                return self.out(self.rnn(self.embed(x.long()))[0]).reshape(-1, self.out.out_features)
        (v, e), h = params[0].shape, params[2].shape[1]
        m = tp.torch_load(torch, Twin(v, e, h), params)
    elif kind == 'chain':
        return lambda x: tp.chain(torch, x)
    else:
        m = {'mlp': tp.torch_mlp, 'lenet': tp.torch_lenet, 'resnet18': tp.torch_resnet18}[kind](torch, params)
    return m.cuda()


def torch_seconds(kind, net, x, y, reps):
    """Median wall seconds of PyTorch's CUDA step (inference for y None) of the same model, or a reason string."""
    try:
        import torch
    except ImportError:
        return 'torch not installed'
    if not torch.cuda.is_available():
        return 'torch sees no GPU'
    params = [p.data().asnumpy() for p in net.collect_params().values() if p.grad_req != 'null']
    m = torch_twin(torch, kind, params)
    xt = torch.from_numpy(x).cuda()
    if y is None:
        fn = lambda: m(xt)  # noqa: E731
    else:
        from graphc.bench_peers.torch_peer import torch_step
        fn = torch_step(torch, m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9), xt,
                        torch.from_numpy(np.asarray(y)).long().cuda())
    t = []
    for i in range(reps + 2):
        t0 = time.perf_counter()
        with torch.no_grad() if y is None else torch.enable_grad():
            fn()
        torch.cuda.synchronize()
        t.append(time.perf_counter() - t0)
    return statistics.median(t[2:])


def timer(dev):
    """elapsed(fn) -> seconds of one run: CUDA events on a GPU, wall clock on the emulator."""
    xp = dev.xp
    if xp is np:
        def wall(fn):
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0
        return wall

    def events(fn):
        start, end = xp.cuda.Event(), xp.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return xp.cuda.get_elapsed_time(start, end) / 1e3
    return events


def median_time(elapsed, fn, reps, warmup=3):
    for _ in range(min(warmup, reps)):  # (--emulate: one)
        fn()
    return statistics.median(elapsed(fn) for _ in range(reps))


def compare(dev, name, make, x, y, reps):
    """Op by op vs fused on the device, over every plan of the workload (a training step has two)."""
    elapsed = timer(dev)
    out = {}
    for label, fused in (('op-by-op', False), ('hybridized', True)):
        runs = capture(make, x, y, fused)
        plans = [(cuda.GpuPlan(g, dev), {k: dev.to_device(v) for k, v in f.items()}) for g, f in runs]
        results = [p(f) for p, f in plans]
        launches = sum(p.launches for p, _ in plans)  # of one call of each plan
        out[label] = {'seconds': median_time(elapsed, lambda: [p(f) for p, f in plans], reps),
                      'launches': launches,
                      'host_ops': sorted({o for p, _ in plans for o in p.host_ops}),
                      'outputs': [dev.to_host(r[0]) for r in results]}
    a, b = out['op-by-op']['outputs'][0], out['hybridized']['outputs'][0]
    if not np.allclose(a, b, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(b).max()))):
        raise SystemExit(f"{name}: op-by-op and hybridized outputs differ (max {np.abs(a - b).max():.3g})")
    for v in out.values():
        v.pop('outputs')
    return out


VARIANTS = (('eager', {}), ('hybridized', {'static': False}), ('cuda graphs', {'static': True}))


def on_gc_gpu(make, x, y, reps, emulate, device_id=0, kind=None, cast=None):
    """A whole step on gc.gpu: a training step (forward, backward, Trainer.step with SGD momentum) or, with y None,
    inference; cast: the net and data in 'float16' or 'bfloat16' (multi_precision=True: float32 masters);
    eager (op by op) vs hybridized (graphc/gpuplan.py's device plans) vs CUDA graphs
    (hybridize(static_alloc=True, static_shape=True): the plans captured once and replayed); wall clock around
    synchronized steps. Under --emulate, cupy is the stand-in of tests/fake_cupy.py with the emulated kernels, and
    the step's host<->device copies are counted (they must be 0), and so are the graph replays."""
    from graphc import device as gdev
    fake = None
    if emulate:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tests'))
        import fake_cupy as fake
        sys.modules['cupy'] = fake
        gdev.make_device = fake.emu_device
    ctx = gc.gpu(device_id)
    out = {}
    for label, kw in VARIANTS:
        gc.random.seed(0)
        net = make()
        net.initialize(gc.init.Xavier(), ctx=ctx, force_reinit=True)
        if cast:
            net(nd.array(x[:1], ctx=ctx))  # (deferred shapes first)
            net.cast(cast)
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        if kw:
            net.hybridize(static_alloc=kw['static'], static_shape=kw['static'])
            loss_fn.hybridize(static_alloc=kw['static'], static_shape=kw['static'])
        trainer = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.01, 'momentum': 0.9,
                                                               'multi_precision': bool(cast)})
        xd = nd.array(x, ctx=ctx, dtype=cast)
        yd = None if y is None else nd.array(y, ctx=ctx)

        def step():
            if yd is None:
                net(xd)
            else:
                with autograd.record():
                    loss = loss_fn(net(xd), yd)
                loss.backward()
                trainer.step(x.shape[0])
            gdev.synchronize(device_id)
        step()
        step()  # (the second call captures the graphs)
        copies = dict(fake.COPIES) if fake else None
        graphs = dict(fake.GRAPHS) if fake else None
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            t.append(time.perf_counter() - t0)
        out[label] = {'seconds': statistics.median(t)}
        if fake and kw and fake.COPIES != copies:
            raise SystemExit(f"{label} step: host<->device copies per step ({copies} -> {fake.COPIES})")
        if fake and kw.get('static') and fake.GRAPHS['launches'] - graphs['launches'] < reps:
            raise SystemExit(f"{label} step: the CUDA graphs were not replayed ({graphs} -> {fake.GRAPHS})")
    if not emulate and kind and not cast:
        try:
            out['torch'] = {'seconds': torch_seconds(kind, net, x, y, reps)}
        except Exception as e:  # noqa: BLE001  (a twin that does not build or run: said, not fatal)
            out['torch'] = {'seconds': f"{type(e).__name__}: {e}"}
    return out


def bandwidth(dev, runs, reps):
    """Each generated kernel of the fused plans: bytes read and written per second, beside a device-to-device
    copy of as many bytes (the bandwidth floor a memory-bound kernel can reach)."""
    elapsed, xp = timer(dev), dev.xp
    rows, seen = [], set()
    rng = np.random.default_rng(0)
    for g, _ in runs:
        for k in cuda.kernels_of(g):
            if k.name in seen or k.identity:
                continue
            seen.add(k.name)
            fn = dev.function(k)
            args = [dev.to_device(rng.normal(size=s).astype(d)) for s, d in zip(k.in_shapes, k.in_dtypes)]
            args += [xp.empty(s, d) for s, d in zip(k.out_shapes, k.out_dtypes)]
            nbytes = sum(int(a.nbytes) for a in args)
            src, dst = xp.empty(nbytes // 2, np.uint8), xp.empty(nbytes // 2, np.uint8)
            t_k = median_time(elapsed, lambda: fn(args), reps)
            t_c = median_time(elapsed, lambda: xp.copyto(dst, src), reps)
            rows.append({'kernel': k.name, 'kind': k.kind, 'ops': k.describe().split()[2], 'bytes': nbytes,
                         'GB/s': nbytes / t_k / 1e9, 'copy GB/s': nbytes / t_c / 1e9,
                         'of copy': t_c / t_k})
    return rows


STEP_COLUMNS = tuple(v for v, _ in VARIANTS) + ('torch',)


def _ms(sec):
    return f"{sec * 1e3:.3f}" if isinstance(sec, float) else str(sec)[:40]


def markdown(device_name, results):
    """The two tables of a run, as markdown."""
    lines = [f"device: {device_name}", "", "| workload | op-by-op ms | hybridized ms | speedup | launches | host ops |",
             "|---|---|---|---|---|---|"]
    for w, r in results['workloads'].items():
        a, b = r['op-by-op'], r['hybridized']
        lines.append(f"| {w} | {a['seconds'] * 1e3:.3f} | {b['seconds'] * 1e3:.3f} | {a['seconds'] / b['seconds']:.2f} | "
                     f"{a['launches']} -> {b['launches']} | {', '.join(b['host_ops']) or '-'} |")
    lines += ["", "| on gc.gpu (wall ms) | " + " | ".join(v for v in STEP_COLUMNS) + " |", "|---|---|---|---|---|"]
    for w, r in results.get('steps', {}).items():
        lines.append(f"| {w} | " + " | ".join(_ms(r.get(v, {}).get('seconds', '-')) for v in STEP_COLUMNS) + " |")
    lines += ["", "| kernel | kind | MB | GB/s | copy GB/s | of copy | ops |", "|---|---|---|---|---|---|---|"]
    for r in results['kernels']:
        lines.append(f"| {r['kernel']} | {r['kind']} | {r['bytes'] / 1e6:.2f} | {r['GB/s']:.1f} | {r['copy GB/s']:.1f} | "
                     f"{r['of copy']:.2f} | {r['ops']} |")
    return '\n'.join(lines) + '\n'


def save(args, dev_name, results, final=False):
    """Write what there is so far (a run stopped by its time limit still leaves its tables)."""
    if args.md:
        with open(args.md, 'w') as f:
            f.write(markdown(dev_name, results))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=2)
    if final:
        print(f"wrote {args.md or '-'} and {args.json or '-'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--reps', type=int, default=50)
    p.add_argument('--quick', action='store_true', help='small batches only')
    p.add_argument('--emulate', action='store_true', help='no GPU: run on the host emulation (times meaningless)')
    p.add_argument('--device', type=int, default=0)
    p.add_argument('--json', help='write the results here')
    p.add_argument('--md', help='write the tables as markdown here (for docs/GPU.md)')
    args = p.parse_args(argv)
    try:
        dev = device(args.emulate, args.device)
    except gc.GraphcError as e:
        print(f"benchmarks/gpu.py: {e}\n(use --emulate to check the script on the host)", file=sys.stderr)
        return 2
    reps = 1 if args.emulate else args.reps
    bs = 8 if args.quick or args.emulate else 256
    rng = np.random.default_rng(0)
    work = {
        f'lenet-infer bs={bs}': (B.lenet, rng.random((bs, 1, 28, 28), np.float32), None),
        f'lenet-train bs={bs}': (B.lenet, rng.random((bs, 1, 28, 28), np.float32), np.arange(bs) % 10),
        f'mlp-train bs={bs}': (B.mlp, rng.normal(size=(bs, 784)).astype(np.float32), np.arange(bs) % 10),
        'chain': (chain_net, rng.normal(size=(128, 1024) if args.emulate else (4096, 4096)).astype(np.float32), None),
    }
    dev_name = 'host emulation (times are of the CPU, not a GPU)' if args.emulate else \
        dev.xp.cuda.runtime.getDeviceProperties(args.device)['name'].decode()
    print(f"device: {dev_name}")
    results = {'workloads': {}, 'kernels': []}
    print(f"{'workload':<22}{'op-by-op ms':>13}{'hybridized ms':>15}{'speedup':>9}{'launches':>14}  host ops")
    for name, (make, x, y) in work.items():
        r = compare(dev, name, make, x, y, reps)
        results['workloads'][name] = r
        a, b = r['op-by-op'], r['hybridized']
        print(f"{name:<22}{a['seconds'] * 1e3:13.3f}{b['seconds'] * 1e3:15.3f}{a['seconds'] / b['seconds']:9.2f}"
              f"{a['launches']:>7} ->{b['launches']:>4}  {', '.join(b['host_ops']) or '-'}", flush=True)
    save(args, dev_name, results)
    # each fused kernel's bandwidth beside a device-to-device copy (the chain's: the 80% goal)
    runs = capture(B.lenet, rng.random((bs, 1, 28, 28), np.float32), np.arange(bs) % 10) + \
        capture(chain_net, work['chain'][1])
    results['kernels'] = bandwidth(dev, runs, reps)
    print(f"\n{'kernel':<34}{'kind':<9}{'MB':>8}{'GB/s':>9}{'copy GB/s':>11}{'of copy':>9}  ops")
    for r in results['kernels']:
        print(f"{r['kernel']:<34}{r['kind']:<9}{r['bytes'] / 1e6:8.2f}{r['GB/s']:9.1f}{r['copy GB/s']:11.1f}"
              f"{r['of copy']:9.2f}  {r['ops']}", flush=True)
    save(args, dev_name, results)
    # whole steps on gc.gpu (Trainer included): eager vs hybridized vs CUDA graphs, wall clock
    img = 16 if args.emulate else 32
    steps = {}
    for b in ((2,) if args.emulate else (8,) if args.quick else (64, 256)):
        n = max(b, 8) if args.emulate else b
        steps[f'mlp-step bs={n}'] = ('mlp', B.mlp, rng.normal(size=(n, 784)).astype(np.float32), np.arange(n) % 10)
        steps[f'lenet-step bs={n}'] = ('lenet', B.lenet, rng.random((n, 1, 28, 28), np.float32), np.arange(n) % 10)
        steps[f'resnet18-step bs={b} {img}x{img}'] = ('resnet18', resnet18, rng.random((b, 3, img, img), np.float32),
                                                      np.arange(b) % 10)
    voc, e, h, cb, ct = (12, 8, 16, 2, 5) if args.emulate else (65, 64, 256, 64, 35)
    steps[f'char-lstm-step bs={cb} T={ct} H={h}'] = ('charlm', lambda: CharLM(voc, e, h),
                                                    rng.integers(0, voc, (cb, ct)).astype(np.float32),
                                                    rng.integers(0, voc, (cb * ct,)))
    steps[f"chain-infer {'x'.join(map(str, work['chain'][1].shape))}"] = ('chain', chain_net, work['chain'][1], None)
    big = (2,) if args.emulate else (8,) if args.quick else (256,)
    for dt in ('float16', 'bfloat16'):  # mixed precision: 16-bit storage, float32 accumulation and masters
        for b in big:
            n = max(b, 8) if args.emulate else b
            steps[f'mlp-step bs={n} {dt}'] = ('mlp', B.mlp, rng.normal(size=(n, 784)).astype(np.float32),
                                              np.arange(n) % 10, dt)
            if not args.emulate:
                steps[f'resnet18-step bs={b} {img}x{img} {dt}'] = ('resnet18', resnet18, rng.random(
                    (b, 3, img, img), np.float32), np.arange(b) % 10, dt)
    results['steps'] = {}
    sreps = reps if args.emulate else min(reps, 20)  # (the whole script fits a short lease)
    print(f"\n{'on gc.gpu (wall ms)':<34}" + ''.join(f"{v:>14}" for v in STEP_COLUMNS))
    for name, (kind, make, x, y, *cast) in steps.items():
        r = results['steps'][name] = on_gc_gpu(make, x, y, sreps, args.emulate, args.device, kind, *cast)
        print(f"{name:<34}" + ''.join(f"{_ms(r.get(v, {}).get('seconds', '-')):>14}" for v in STEP_COLUMNS),
              flush=True)
        save(args, dev_name, results)
    save(args, dev_name, results, final=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
