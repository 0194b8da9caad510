"""Benchmark workloads: graphc eager vs hybridized (compiled) vs hand-written NumPy (and PyTorch's eager mode
where torch is importable), side by side in one run.

Used by `graphc bench` and benchmarks/compiled.py: the one place for the workloads. Variants of a workload
start from equal weights, are checked to compute the same result, then run interleaved so machine noise
hits all alike; each time is the median of many repetitions after warm-up.
"""
import datetime
import gc as pygc   # (gc is graphc here)
import importlib.util
import math
import os
import platform
import random
import statistics
import sys
import threading
import time

import numpy as np

try:
    import resource   # (POSIX: the bench's page-fault and context-switch diagnostics)
except ImportError:
    resource = None

import graphc as gc
from graphc import autograd, config, gluon, nd
from graphc.base import GraphcError
from graphc.bench_peers.torch_peer import (torch_infer as _torch_infer, torch_lenet, torch_load,  # noqa: F401
                                           torch_lstm, torch_mlp, torch_resnet18, torch_step as _torch_step)
from graphc.gluon import nn

ORDER = ('numpy', 'torch', 'torch.compile', 'jax', 'mxnet', 'eager', 'hybridized', 'onnxruntime',
         'np.copyto')   # table columns, in this order
PEERS = ('numpy', 'torch', 'torch.compile', 'jax', 'mxnet', 'onnxruntime')   # what graphc hybridized is compared to
WARMUP = 3   # untimed rounds before the timed ones
SEED = [0]   # the variants' order is drawn anew each round from this seed (`graphc bench --seed`): in one fixed
# order the batch-1 MLP's hybridized call measured 1.17x NumPy, shuffled 0.82x (the variant before it sets its caches)
RATIOS = (('eager', 'hybridized'), ('hybridized', 'numpy'), ('hybridized', 'torch'),
          ('eager', 'numpy'), ('eager', 'torch'), ('hybridized', 'onnxruntime'))


class Times(dict):
    """{variant: median seconds}, and .spread: {variant: (10th, 90th percentile)}."""
    spread = {}


def timeit(fns, reps, warmup=WARMUP, progress=None, seed=None):
    """{name: median seconds} (a Times), running the variants interleaved so machine noise hits all alike, each
    round in an order drawn from random.Random(seed; default SEED[0]), kept as .seed.
    A variant with a rep() method (a peer in another process) is timed by it: rep() runs it once and returns the
    seconds it measured there. progress: a wrapper for the iterable of warm-up plus timed rounds, or None.
    .diag: diagnostics() of the timed rounds as a whole ('(all variants)'), and per variant where every variant's
    warm-up sample took LONG or more: then from counters read just before and after each timed sample (outside its
    timing). Under LONG none are read between samples: those syscalls slowed the next variant's short call by
    10-25% here (a cold branch predictor and caches), which would bias the comparison."""
    ts, rows = {k: [] for k in fns}, {k: [] for k in fns}
    rounds = range(warmup + reps)
    pids = [p for f in fns.values() if hasattr(f, 'worker') for p in f.worker.pids()]   # (peers: our own CPU)
    seed = SEED[0] if seed is None else seed
    pygc.callbacks.append(_count_gc)
    try:
        first, whole = _rounds(fns, progress(rounds) if progress else rounds, warmup, pids, ts, rows,
                               random.Random(seed))
    finally:
        pygc.callbacks.remove(_count_gc)
    t = Times({k: statistics.median(v) for k, v in ts.items()})
    t.spread = {k: tuple(float(q) for q in np.percentile(v, (10, 90))) for k, v in ts.items()}
    t.others = others(first and first[1], cpu_sample(pids))
    t.seed = seed
    t.diag = {k: diagnostics(v) for k, v in rows.items() if v and v[0] is not None}
    if whole is not None:
        t.diag['(all variants)'] = diagnostics([whole])
        t.diag['(all variants)']['all']['n'] = sum(map(len, ts.values()))
    return t


def _rounds(fns, rounds, warmup, pids, ts, rows, rng):
    """timeit's rounds, each in an order rng draws: each variant's timed seconds into ts, and where every warm-up
    sample was LONG, each timed sample's row into rows. Returns (the probe at the first timed round, the row of all
    timed rounds) or Nones."""
    first, warm, each = None, {}, False
    items = list(fns.items())
    for i in rounds:
        if i == warmup:
            first, t0 = probe(pids), time.perf_counter()
            each = bool(warm) and min(warm.values()) >= LONG
        for k, f in rng.sample(items, len(items)):
            timed = i >= warmup
            a = probe(pids) if timed and each else None
            if hasattr(f, 'rep'):
                dt = f.rep()
            else:
                t1 = time.perf_counter()
                f()
                dt = time.perf_counter() - t1
            if timed:
                ts[k].append(dt)
                if each:
                    rows[k].append(sample_row(dt, a, probe(pids)))
            else:
                warm[k] = dt
    if first is None:
        return None, None
    return first, sample_row(time.perf_counter() - t0, first, probe(pids))


# ------------------------------------------------------------------------------------- was the machine quiet?
LOADED = 0.2   # cores that other processes used, on average, above which a workload's timings are flagged


def cpu_sample(pids=()):
    """(wall s, the machine's busy CPU s, the CPU s of this process and of pids: the peers' workers, the machine's
    steal s: time its virtual CPUs were ready but the hypervisor ran something else, counted in busy) from
    /proc/stat and /proc/PID/stat, or None where there is none (not Linux)."""
    try:
        hz = os.sysconf('SC_CLK_TCK')
        with open('/proc/stat') as f:
            v = [int(t) for t in f.readline().split()[1:9]]
        ours = sum(os.times()[:2]) + sum(_proc_cpu(pid)[1] for pid in pids) / hz
        return time.perf_counter(), (sum(v) - v[3] - v[4]) / hz, ours, v[7] / hz   # all but idle and iowait
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _proc_cpu(pid):
    """(name, CPU ticks: utime + stime) of process pid from /proc/PID/stat."""
    with open(f'/proc/{pid}/stat') as f:
        head, rest = f.read().rsplit(')', 1)
    fields = rest.split()
    return head.split('(', 1)[1], int(fields[11]) + int(fields[12])


def others(a, b):
    """The cores other processes used on average between cpu_samples a and b; None when unknown or too short to
    tell (the counters tick at 100 Hz)."""
    if a is None or b is None or b[0] - a[0] < 0.1:
        return None
    return max(0.0, (b[1] - a[1] - (b[2] - a[2])) / (b[0] - a[0]))


def idle_probe(seconds=0.2, pids=()):
    """The cores other processes (not this one, not pids: the peers' workers) use while this one sleeps for
    `seconds` (None off Linux)."""
    a = cpu_sample(pids)
    time.sleep(seconds)
    return others(a, cpu_sample(pids))


# diagnostics: what else ran, or took this process's pages and cores, during each variant's timed samples
SLOW = 1.5     # a sample this many times its variant's 10th percentile is slow: its diagnostics are shown apart
LONG = 5e-3    # seconds: where every variant's warm-up sample is this long, each timed sample gets diagnostics
DIAG = ('t', 'window', 'steal', 'others', 'minflt', 'majflt', 'nivcsw', 'wait', 'gc', 'wait_all') + \
    tuple(f'run_{c}' for c in ('main', 'pool', 'omp', 'other'))   # a sample's row (run_*: CPU s by thread_class)
CLASSES = ('main', 'pool', 'omp', 'other')
_schedstat = []   # [an open /proc/thread-self/schedstat of the main thread, or None]
_collections = [0]   # Python garbage collections so far (counted while timeit runs: _count_gc)


def _count_gc(phase, info):
    if phase == 'start':
        _collections[0] += 1


def probe(pids=()):
    """The counters a sample's row is the difference of: (wall s, cpu_sample(pids), (this process's minor and major
    page faults, involuntary context switches: getrusage, all its threads; the seconds its main thread and all
    its threads waited on a run queue, runnable but not running: schedstat; Python's garbage collections, counted
    while timeit runs)), or None where getrusage or schedstat is missing (not Linux). About 100 us."""
    if not _schedstat:
        try:
            _schedstat.append(os.open('/proc/thread-self/schedstat', os.O_RDONLY))
        except (OSError, AttributeError):
            _schedstat.append(None)
    try:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        wait = int(os.pread(_schedstat[0], 100, 0).split()[1]) * 1e-9   # (re-read from offset 0: current)
    except (AttributeError, OSError, TypeError, ValueError, IndexError):   # (no resource module: None)
        return None
    return (time.perf_counter(), cpu_sample(pids),
            (ru.ru_minflt, ru.ru_majflt, ru.ru_nivcsw, wait, _collections[0], threads_wait(), threads_run()))


def _per_thread(name, value):
    """{thread id: value(text of /proc/self/task/TID/name)} of this process's threads that read."""
    out = {}
    for t in os.listdir('/proc/self/task'):
        try:
            with open(f'/proc/self/task/{t}/{name}') as f:
                out[t] = value(f.read())
        except (OSError, ValueError, IndexError):   # (a thread that just ended)
            pass
    return out


def threads_wait():
    """{thread id: the seconds it has waited on a run queue so far} of this process's threads."""
    return _per_thread('schedstat', lambda s: int(s.split()[1]) * 1e-9)


def threads_run():
    """{thread id: the seconds it has run on a CPU so far} of this process's threads (schedstat: ns, not 100 Hz ticks)."""
    return _per_thread('schedstat', lambda s: int(s.split()[0]) * 1e-9)


_omp = {}   # {thread count: the thread ids of the OpenMP team oneDNN runs on at that count (the main thread's too)}


def thread_class(tid):
    """Which of graphc's thread pools thread id tid belongs to: 'main' (the thread that runs the plans), 'pool' (the
    kernel workers that runtime/cpu.split hands pieces to), 'omp' (oneDNN's OpenMP team, the main thread apart),
    or 'other' (OpenBLAS's threads, the compile thread, ...). One policy gives each step one pool: per sample,
    the classes' CPU shows whether a step's pool got both cores, or ran beside another."""
    from .runtime import cpu
    tid = int(tid)
    if tid == threading.main_thread().native_id:
        return 'main'
    if tid in cpu._tids.get(os.getpid(), ()):
        return 'pool'
    n = config.num_threads()
    if n not in _omp:
        team = _omp_team()
        if team:   # (none before oneDNN has run: asked again)
            _omp[n] = team
    return 'omp' if tid in _omp.get(n, ()) else 'other'


def _omp_team():
    """The OpenMP team's thread ids where oneDNN runs on GNU OpenMP and has been loaded, from the main thread: one
    parallel region that names its threads (the team persists between regions); else an empty set."""
    import ctypes
    from .runtime import onednn
    if not onednn._state.get('lib') or onednn._state.get('omp') is None or \
            threading.current_thread() is not threading.main_thread():
        return set()
    try:
        gomp = ctypes.CDLL('libgomp.so.1', mode=getattr(os, 'RTLD_NOLOAD', 0) | ctypes.RTLD_GLOBAL)
    except OSError:
        return set()
    got = set()
    fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda _: got.add(threading.get_native_id()))
    onednn._threads()   # (the team oneDNN's regions use: GRAPHC_NUM_THREADS)
    gomp.GOMP_parallel(fn, None, ctypes.c_uint(0), ctypes.c_uint(0))
    return got


def _by_class(a, b):
    """The run seconds a -> b (threads_run()s) summed per thread_class, in CLASSES order."""
    out = dict.fromkeys(CLASSES, 0.0)
    for t, v in b.items():
        if t in a:
            out[thread_class(t)] += v - a[t]
    return tuple(out.values())


def _grown(a, b):
    """How much the per-thread counters a -> b grew, over the threads in both (one that started or ended between
    them would count its whole life)."""
    return sum(v - a[t] for t, v in b.items() if t in a)


def migrations():
    """{thread id: how often it moved between CPUs so far}, or None (no /proc/PID/task/TID/sched)."""
    n = _per_thread('sched', lambda s: int(s.split('se.nr_migrations')[1].split(':')[1].split()[0]))
    return n or None


def sample_row(dt, a, b):
    """A sample's row of DIAG between probes a and b (its window: the call, and reading the counters): its
    seconds, the window's, the machine's steal s and other processes' CPU s in it (busy less steal, this process
    and the peers' workers), this process's page faults and involuntary switches, the main thread's run-queue
    wait, garbage collections and all threads' wait; None off Linux."""
    if a is None or b is None:
        return None
    (wa, ca, fa), (wb, cb, fb) = a, b
    steal = other = None
    if ca is not None and cb is not None:
        steal = cb[3] - ca[3]
        other = (cb[1] - ca[1]) - (cb[2] - ca[2]) - steal
    return (dt, wb - wa, steal, other) + tuple(y - x for x, y in zip(fa[:-2], fb[:-2])) + \
        (_grown(fa[-2], fb[-2]),) + _by_class(fa[-1], fb[-1])


def diagnostics(rows):
    """A variant's diagnostics from its samples' rows: 'all', and apart its 'slow' samples (over SLOW times its
    10th percentile) and the 'fast' rest: how many; steal, other processes' CPU and all threads' run-queue wait
    as cores over their windows (the CPU counters tick at 100 Hz: a sum over many samples says something, one
    short sample little); the main thread's wait as a share of the windows; page faults,
    involuntary switches and garbage collections per sample; and 'samples': the rows, by DIAG column."""
    cols = dict(zip(DIAG, map(list, zip(*rows))))
    cut = SLOW * float(np.percentile(cols['t'], 10))

    def part(idx):
        if not idx:
            return None
        w = sum(cols['window'][i] for i in idx) or 1e-9
        cores = lambda c: None if cols[c][idx[0]] is None else max(0.0, sum(cols[c][i] for i in idx) / w)  # noqa: E731
        return {'n': len(idx), 'steal_cores': cores('steal'), 'others_cores': cores('others'),
                'wait_share': sum(cols['wait'][i] for i in idx) / w, 'threads_waiting': cores('wait_all'),
                'running': {c: sum(cols[f'run_{c}'][i] for i in idx) / w for c in CLASSES},
                **{c: sum(cols[c][i] for i in idx) / len(idx) for c in ('minflt', 'majflt', 'nivcsw', 'gc')}}
    slow = [i for i, t in enumerate(cols['t']) if t > cut]
    fast = [i for i, t in enumerate(cols['t']) if t <= cut]
    rnd = {'t': 7, 'window': 7, 'steal': 2, 'others': 2, 'wait': 7, 'wait_all': 7, **{f'run_{c}': 7 for c in CLASSES}}
    return {'all': part(fast + slow), 'slow': part(slow), 'fast': part(fast),
            'samples': {c: [round(v, rnd[c]) if c in rnd and v is not None else v for v in cols[c]] for c in DIAG}}


def proc_cpu():
    """{pid: (name, CPU s)} of every process in /proc (empty off Linux): which others ran during a workload."""
    out = {}
    try:
        hz, pids = os.sysconf('SC_CLK_TCK'), [int(d) for d in os.listdir('/proc') if d.isdigit()]
    except (OSError, ValueError, AttributeError):
        return out
    for pid in pids:
        try:
            name, ticks = _proc_cpu(pid)
            out[pid] = (name, ticks / hz)
        except (OSError, ValueError, IndexError):   # (a process that just ended)
            pass
    return out


def top_others(a, b, n=5, own=()):
    """[[name, pid, CPU s]] of the n other processes (not this one, not those of own: the peers' workers) that
    used the most CPU between proc_cpu()s a and b: kernel threads (kdamond, kswapd), ..."""
    mine = {os.getpid(), *own}
    used = [(t - a.get(pid, (None, 0.0))[1], name, pid) for pid, (name, t) in b.items() if pid not in mine]
    return [[name, pid, round(t, 2)] for t, name, pid in sorted(used, reverse=True)[:n] if t > 0]


VMSTAT = ('pgmajfault', 'pgfault', 'pgscan', 'pgsteal', 'workingset_refault', 'pswpin', 'pswpout')


def vmstat():
    """The machine's paging counters of /proc/vmstat (VMSTAT prefixes, summed over their kinds: a reclaim such as
    DAMON's pageout scheme shows in pgscan/pgsteal, its cost in refaults and major faults), or {} off Linux."""
    out = dict.fromkeys(VMSTAT, 0)
    try:
        with open('/proc/vmstat') as f:
            for line in f:
                name, v = line.split()
                key = next((p for p in VMSTAT if name.startswith(p)), None)
                if key is not None:
                    out[key] += int(v)
    except (OSError, ValueError):
        return {}
    return out


def load_check(fn, own=lambda: ()):
    """fn()'s result with 'load': other processes' CPU use (in cores) while idle just before and after it and
    during its timed rounds, the 1-minute load average before and after, and 'loaded' when any is above
    LOADED (without /proc/stat: when the load average was above this run's own threads plus LOADED); and over the
    whole workload, the other processes that used the most CPU, the machine's paging counters and the migrations
    of this process's threads alive throughout. own() -> the pids whose CPU is this run's own (the peers' process
    groups)."""
    la0, before = os.getloadavg()[0], idle_probe(pids=own())
    procs, vm, mig = proc_cpu(), vmstat(), migrations()
    r = fn()
    procs, vm1, mig1 = top_others(procs, proc_cpu(), own=own()), vmstat(), migrations()
    after, la1 = idle_probe(pids=own()), os.getloadavg()[0]
    seen = [v for v in (before, getattr(r['times'], 'others', None), after) if v is not None]
    loaded = max(seen) > LOADED if seen else max(la0, la1) > config.num_threads() + LOADED
    return dict(r, load={'others_idle_before': before, 'others_timed': getattr(r['times'], 'others', None),
                         'others_idle_after': after, 'loadavg': [la0, la1], 'loaded': loaded, 'top_others': procs,
                         'vmstat': {k: vm1[k] - vm[k] for k in vm1 if k in vm},
                         'migrations': None if mig is None or mig1 is None else _grown(mig, mig1)})


def _synced(f):
    """f, waiting for its NDArray result (under GRAPHC_ENGINE=lazy an op only queues work); f itself under the
    naive engine, where every result on the CPU is computed when the call returns (the wait cost a batch-1 MLP
    call 0.6-0.9 us of 13 that NumPy's twin does not pay)."""
    from graphc import engine
    if not engine.is_lazy():
        return f

    def run():
        out = f()
        for o in out if isinstance(out, (list, tuple)) else [out]:
            if hasattr(o, 'wait_to_read'):
                o.wait_to_read()
        return out
    return run


def _value(loss):
    """A loss as a Python float: graphc's per-sample NDArray (mean), a torch scalar, NumPy (a peer's: mean)."""
    if hasattr(loss, 'asnumpy'):
        return float(loss.asnumpy().mean())
    return float(loss.item()) if hasattr(loss, 'detach') else float(np.mean(loss))


def _same_loss(steps, n=2, tol=1e-4):
    """Run each training step n times (as warm-up) and check that all report the same losses: they start from
    equal weights, so equal losses after the first step mean equal gradients and updates too."""
    for i in range(n):
        losses = {k: _value(f()) for k, f in steps.items()}
        ref = next(iter(losses.values()))
        if any(not math.isclose(v, ref, rel_tol=tol, abs_tol=tol / 10) for v in losses.values()):
            raise GraphcError(f"bench: the variants disagree on the loss of training step {i + 1}: {losses}")


def _local_torch(peers):
    """torch in this process for the 'torch' column, unless peers run (peers is a list, maybe empty): then torch
    is a peer process of its own (bench_peers.torch_peer), as its threads slowed graphc here."""
    return _torch() if peers is None else None


def _torch():
    """torch, or None where it is not installed. Its idle OpenMP threads are told to sleep, not spin: with the
    variants interleaved, spinning threads would take the cores from the next variant (and from torch
    itself on a busy machine: a 1024x1024 chain ran 5x slower here)."""
    if 'torch' not in sys.modules:
        if importlib.util.find_spec('torch') is None:
            return None
        os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    import torch
    return torch


# ------------------------------------------------------------------------------------------------ models
def mlp():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(256, activation='relu'), nn.Dense(256, activation='relu'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    return net


def lenet():
    """examples/lenet_mnist.py's LeNet (32/64/128 channels), initialized (tests check the two stay alike)."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(32, kernel_size=5, activation='relu'), nn.MaxPool2D(2, 2),
                nn.Conv2D(64, 5, activation='relu'), nn.MaxPool2D(2, 2),
                nn.Conv2D(128, 4, activation='relu'), nn.Flatten(),
                nn.Dense(84, activation='relu'), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    return net


def twins(make, x):
    """The same model twice with equal weights: one stays eager, one is hybridized."""
    gc.random.seed(0)
    a = make()
    a(x)  # deferred initialization draws the weights here
    gc.random.seed(0)
    b = make()
    b(x)
    b.hybridize()
    b(x)
    return a, b


def weights(net):
    """The parameters as float32 NumPy copies, in collect_params order (weight, bias per layer)."""
    return [p.data().asnumpy().copy() for p in net.collect_params().values()]


# ------------------------------------------------------------------------- hand-written NumPy baselines
def softmax_ce(z, y):
    """Mean softmax cross-entropy of logits z (N, K) at labels y, and its gradient w.r.t. z."""
    n = len(y)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(s[:, 0]) - z[np.arange(n), y]))
    dz = e / s
    dz[np.arange(n), y] -= 1
    dz /= n
    return loss, dz


def dense_forward(ws, h):
    """Dense layers ws = [w0, b0, w1, b1, ...] (MXNet's (out, in) weights), relu between them, none after the
    last. Returns every layer's input and the output: [h, a1, ..., logits]."""
    acts = [h]
    for i in range(0, len(ws), 2):
        h = h @ ws[i].T + ws[i + 1]
        acts.append(np.maximum(h, 0) if i + 2 < len(ws) else h)
        h = acts[-1]
    return acts


def dense_backward(ws, acts, dz, need_dx=False):
    """Gradients of dense_forward's weights given d(output), and d(input) when need_dx."""
    grads = [None] * len(ws)
    for i in reversed(range(0, len(ws), 2)):
        a = acts[i // 2]
        grads[i], grads[i + 1] = dz.T @ a, dz.sum(axis=0)
        if i or need_dx:
            dz = dz @ ws[i]
            if i:
                dz *= a > 0
    return grads, (dz if need_dx else None)


def sgd_momentum(params, grads, vel, lr, mom):
    """MXNet's sgd_mom_update: v = mom*v - lr*g; w += v."""
    for p, g, v in zip(params, grads, vel):
        v *= mom
        v -= lr * g
        p += v


def adam(params, grads, state, t, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """MXNet's adam_update at step t: m, v moments; w -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)."""
    lr_t = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    for p, g, m, v in zip(params, grads, *state):
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        p -= lr_t * m / (np.sqrt(v) + eps)


def im2col(x, k):
    """NHWC x -> rows (N*OH*OW, k*k*C) of a stride-1 k x k convolution, columns in (kh, kw, C) order so the
    copy runs over contiguous channels."""
    v = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))   # (N, OH, OW, C, k, k), a view
    n, oh, ow = v.shape[:3]
    return v.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, -1), (n, oh, ow)


class LeNetNumpy:
    """lenet() by hand in NumPy: NHWC activations, each convolution one im2col GEMM, 2x2 max pooling by
    reshape, softmax cross-entropy, the backward pass by hand and Adam as MXNet's: the honest baseline of
    the LeNet workloads. params: lenet()'s weights (weights(net)), copied."""
    layers = ((5, True), (5, True), (4, False))   # (kernel, 2x2 max pool after the relu) per conv

    def __init__(self, params, lr=1e-3):
        self.params = [np.array(p, dtype=np.float32) for p in params]
        self.state = ([np.zeros_like(p) for p in self.params], [np.zeros_like(p) for p in self.params])
        self.lr, self.t = lr, 0

    def forward(self, x, cache=None):
        """Logits of NCHW x; appends what backward needs to cache when given a list."""
        h = x.transpose(0, 2, 3, 1)
        for i, (k, pool) in enumerate(self.layers):
            w, b = self.params[2 * i:2 * i + 2]
            cols, (n, oh, ow) = im2col(h, k)
            wm = w.transpose(0, 2, 3, 1).reshape(len(w), -1)   # OIHW -> O x (kh, kw, C), the columns' order
            a = np.maximum(cols @ wm.T + b, 0).reshape(n, oh, ow, -1)
            p = a.reshape(n, oh // 2, 2, ow // 2, 2, -1).max(axis=(2, 4)) if pool else None
            if cache is not None:
                cache.append((h.shape, cols, wm, a, p))
            h = a if p is None else p
        acts = dense_forward(self.params[6:], h.transpose(0, 3, 1, 2).reshape(len(h), -1))  # Flatten as NCHW
        if cache is not None:
            cache.append(acts)
        return acts[-1]

    def loss_and_grads(self, x, y):
        """Mean loss over the batch and its gradients, in params order (conv weights OIHW)."""
        cache = []
        loss, dz = softmax_ce(self.forward(x, cache), y)
        grads, df = dense_backward(self.params[6:], cache.pop(), dz, need_dx=True)
        shape = cache[-1][3].shape
        dh = df.reshape(shape[0], shape[3], shape[1], shape[2]).transpose(0, 2, 3, 1)
        grads = [None] * 6 + grads
        for i in reversed(range(3)):
            (n, hh, ww, c), cols, wm, a, p = cache[i]
            k = self.layers[i][0]
            if p is None:
                dh = dh * (a > 0)
            else:  # to each window's maximum; a tie is of zeros, whose relu gradient is 0 anyway
                a6, p6 = a.reshape(n, len(p[0]), 2, len(p[0][0]), 2, -1), p[:, :, None, :, None, :]
                dh = np.where((a6 == p6) & (p6 > 0), dh[:, :, None, :, None, :], 0).reshape(a.shape)
            dr = dh.reshape(-1, a.shape[3])
            grads[2 * i] = (dr.T @ cols).reshape(len(wm), k, k, c).transpose(0, 3, 1, 2)
            grads[2 * i + 1] = dr.sum(axis=0)
            if i:  # col2im: scatter-add the columns' gradient back onto the input
                _, oh, ow, _ = a.shape
                dcols = (dr @ wm).reshape(n, oh, ow, k, k, c)
                dh = np.zeros((n, hh, ww, c), np.float32)
                for di in range(k):
                    for dj in range(k):
                        dh[:, di:di + oh, dj:dj + ow] += dcols[:, :, :, di, dj]
        return loss, grads

    def step(self, x, y):
        loss, grads = self.loss_and_grads(x, y)
        self.t += 1
        adam(self.params, grads, self.state, self.t, self.lr)
        return loss


def lstm_numpy(x, wi, wh, bi, bh):
    """A one-layer LSTM over TNC x, MXNet's gate order (i, f, c, o), zero initial states: the outputs (T, N, H).
    The input projection of all steps is one GEMM; each step adds h @ wh.T."""
    t_len, n, _ = x.shape
    hid = wh.shape[1]
    xi = (x.reshape(t_len * n, -1) @ wi.T + (bi + bh)).reshape(t_len, n, 4 * hid)
    h, c = np.zeros((n, hid), np.float32), np.zeros((n, hid), np.float32)
    out = np.empty((t_len, n, hid), np.float32)
    for t in range(t_len):
        g = xi[t] + h @ wh.T
        s = 1 / (1 + np.exp(-g[:, :2 * hid]))
        o = 1 / (1 + np.exp(-g[:, 3 * hid:]))
        c = s[:, hid:] * c + s[:, :hid] * np.tanh(g[:, 2 * hid:3 * hid])
        h = out[t] = o * np.tanh(c)
    return out


# ---------------------------------------------------------------------------------------------- workloads
def train_steps(eager, hyb, x, y, optimizer, opt_params):
    """{'eager': step, 'hybridized': step}: one softmax cross-entropy training step of each twin; a step
    returns its per-sample losses."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    steps = {}
    for name, net in (('eager', eager), ('hybridized', hyb)):
        tr = gluon.Trainer(net.collect_params(), optimizer, dict(opt_params))

        def step(net=net, tr=tr):
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            tr.step(x.shape[0])
            return loss
        steps[name] = _synced(step)
    return steps


def _agree(fns, tol):
    """Check that every variant's output equals the NumPy one (so the timings are of equal work)."""
    ref = fns['numpy']()
    for k, f in fns.items():
        out = f()
        out = out.asnumpy() if hasattr(out, 'asnumpy') else np.asarray(out)
        np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * max(1.0, float(np.abs(ref).max())),
                                   err_msg=f"bench: {k} disagrees with numpy")


def _peer_twins(peers, spec, w, xn, yn=None):
    """{peer name: its twin of the workload spec} from weights w and inputs (bench_peers says what a spec is)."""
    arrays = {f'w{i}': a for i, a in enumerate(w)}
    arrays.update(x=xn, **({} if yn is None else {'y': yn}))
    twins = {p.name: p.twin(dict(spec), arrays) for p in peers}
    return {k: t for k, t in twins.items() if t is not None}   # None: that peer has no twin of this model


def _inference(make, x, numpy_model, torch_model, reps, progress, tol=1e-4, peers=None, spec=None):
    """Forward on x of graphc eager vs hybridized vs numpy_model(params) (a function of the NumPy input)
    vs torch_model(torch, params), and the peers' twins of spec, from equal weights; outputs checked."""
    eager, hyb = twins(make, x)
    w = weights(eager)
    xn = x.asnumpy()
    fwd = numpy_model(w)
    fns = {'numpy': lambda: fwd(xn)}
    torch = _local_torch(peers)
    if torch is not None:
        fns['torch'] = _torch_infer(torch, torch_model(torch, w), torch.from_numpy(xn))
    fns.update(_peer_twins(peers, spec, w, xn) if peers else {})
    fns.update(eager=_synced(lambda: eager(x)), hybridized=_synced(lambda: hyb(x)))
    ort = _onnxruntime(hyb, x)
    if ort is not None:
        fns['onnxruntime'] = ort
    _agree(fns, tol)
    return {'times': timeit(fns, reps, progress=progress)}


def _onnxruntime(hyb, x):
    """The hybridized block exported to ONNX and run by onnxruntime's CPU provider (a callable -> NumPy), or None
    where onnx or onnxruntime is not installed. Its threads are told not to spin between runs: with the variants
    interleaved, spinning threads would take the cores from the next variant."""
    if importlib.util.find_spec('onnxruntime') is None or importlib.util.find_spec('onnx') is None:
        return None
    import tempfile
    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as d:
        path = hyb.export_onnx(os.path.join(d, 'model.onnx'))
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry('session.intra_op.allow_spinning', '0')
        so.intra_op_num_threads = config.num_threads()   # graphc's thread count (bench --threads sets both)
        sess = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])
    name, xn = sess.get_inputs()[0].name, x.asnumpy()
    return lambda: sess.run(None, {name: xn})[0]


def _resnet(size):
    """ResNet-18 V1 for size x size images (thumbnail, 10 classes, below 64: the peers' twins), initialized."""
    from .gluon.model_zoo import vision

    def make():
        net = vision.resnet18_v1(classes=10 if size < 64 else 1000, thumbnail=size < 64)
        net.initialize(gc.init.Xavier())
        return net
    return make


def _resnet_spec(net):
    """All of net's parameters (collect_params order) and the spec naming the BatchNorm running statistics."""
    ps = list(net.collect_params().values())
    return [p.data().asnumpy() for p in ps], {'model': 'resnet', 'aux': [i for i, p in enumerate(ps)
                                                                         if p.grad_req == 'null']}


def resnet_inference(bs, reps, progress=None, size=224, peers=None):
    """ResNet-18 V1 inference: graphc eager vs hybridized vs onnxruntime on the exported graph, and at thumbnail
    sizes (below 64) torch and the peers from the same weights and running statistics (drawn, not the initial
    0 and 1, so that inference checks them); outputs checked against the hybridized one."""
    x = nd.random.normal(shape=(bs, 3, size, size))
    eager, hyb = twins(_resnet(size), x)
    rng = np.random.default_rng(1)
    for pa, pb in zip(eager.collect_params().values(), hyb.collect_params().values()):
        if pa.name.endswith(('running_mean', 'running_var')):
            v = (rng.normal(0, 0.1, pa.shape) if pa.name.endswith('mean') else rng.uniform(0.5, 1.5, pa.shape))
            pa.set_data(nd.array(v.astype(np.float32)))
            pb.set_data(nd.array(v.astype(np.float32)))
    fns = {'eager': _synced(lambda: eager(x)), 'hybridized': _synced(lambda: hyb(x))}
    if size < 64:
        w, spec = _resnet_spec(eager)
        torch = _local_torch(peers)
        if torch is not None:
            aux = set(spec['aux'])
            m = torch_resnet18(torch, [a for i, a in enumerate(w) if i not in aux], [w[i] for i in sorted(aux)])
            fns['torch'] = _torch_infer(torch, m.eval(), torch.from_numpy(x.asnumpy()))
        fns.update(_peer_twins(peers, spec, w, x.asnumpy()) if peers else {})
    ort = _onnxruntime(hyb, x)
    if ort is not None:
        fns['onnxruntime'] = ort
    fns = {'numpy': fns['hybridized'], **fns}   # (_agree's reference; not timed)
    _agree(fns, 1e-4)
    del fns['numpy']
    return {'times': timeit(fns, reps, progress=progress)}


def extra_workloads(reps, quick=False):
    """Workloads run only when asked for by name (--only): graphc vs onnxruntime inference."""
    r = max(3, reps // 3)
    return [('lenet-infer1', 'LeNet inference, batch 1', lambda p: lenet_inference(1, reps * 3, p)),
            ('lenet-infer64', 'LeNet inference, batch 64', lambda p: lenet_inference(64, r, p)),
            ('resnet-infer1', 'ResNet-18 V1 inference, batch 1 of 224x224', lambda p: resnet_inference(1, r, p)),
            ('resnet-infer64', 'ResNet-18 V1 inference, batch 64 of 224x224',
             lambda p: resnet_inference(64, 3, p))]


def mlp_inference(bs, reps, progress=None, peers=None):
    x = nd.random.normal(shape=(bs, 784))
    return _inference(mlp, x, lambda w: lambda xn: dense_forward(w, xn)[-1], torch_mlp, reps, progress,
                      peers=peers, spec={'model': 'mlp'})


def lenet_inference(bs, reps, progress=None, peers=None):
    x = nd.random.uniform(shape=(bs, 1, 28, 28))
    return _inference(lenet, x, lambda w: LeNetNumpy(w).forward, torch_lenet, reps, progress, peers=peers,
                      spec={'model': 'lenet'})


def _train(make, x, y, numpy_step, torch_model, torch_opt, optimizer, opt_params, reps, progress, peers=None,
           spec=None):
    """Training steps of equal models: NumPy (numpy_step(params, x, y)), torch, the peers' twins of spec
    (a model trained with optimizer and opt_params), graphc eager and hybridized."""
    eager, hyb = twins(make, x)
    w = weights(eager)
    xn, yn = x.asnumpy(), y.asnumpy().astype(np.int64)
    steps = {'numpy': numpy_step([a.copy() for a in w], xn, yn)}
    torch = _local_torch(peers)
    if torch is not None:
        m = torch_model(torch, w)
        steps['torch'] = _torch_step(torch, m, torch_opt(torch, m), torch.from_numpy(xn), torch.from_numpy(yn))
    if peers:
        spec = dict(spec, train=True, opt=optimizer, lr=opt_params['learning_rate'],
                    momentum=opt_params.get('momentum', 0.0))
        steps.update(_peer_twins(peers, spec, w, xn, yn))
    steps.update(train_steps(eager, hyb, x, y, optimizer, opt_params))
    _same_loss(steps)
    return {'times': timeit(steps, reps, progress=progress)}


def _labels(n):
    return nd.array(np.random.default_rng(0).integers(0, 10, n), dtype='int32')


def mlp_train(reps, progress=None, bs=64, peers=None):
    lr, mom = 0.01, 0.9

    def numpy_step(w, xn, yn):
        vel = [np.zeros_like(p) for p in w]

        def step():
            acts = dense_forward(w, xn)
            loss, dz = softmax_ce(acts[-1], yn)
            sgd_momentum(w, dense_backward(w, acts, dz)[0], vel, lr, mom)
            return loss
        return step
    return _train(mlp, nd.random.normal(shape=(bs, 784)), _labels(bs), numpy_step, torch_mlp,
                  lambda torch, m: torch.optim.SGD(m.parameters(), lr=lr, momentum=mom),
                  'sgd', {'learning_rate': lr, 'momentum': mom}, reps, progress, peers, {'model': 'mlp'})


def lenet_train(bs, reps, progress=None, peers=None):
    lr = 1e-3

    def numpy_step(w, xn, yn):
        net = LeNetNumpy(w, lr)
        return lambda: net.step(xn, yn)
    return _train(lenet, nd.random.uniform(shape=(bs, 1, 28, 28)), _labels(bs), numpy_step, torch_lenet,
                  lambda torch, m: torch.optim.Adam(m.parameters(), lr=lr), 'adam', {'learning_rate': lr},
                  reps, progress, peers, {'model': 'lenet'})


def resnet_train(bs, reps, progress=None, size=32, peers=None):
    """A ResNet-18 V1 (thumbnail: 3x3 stem, for 32x32 images) training step with SGD momentum, graphc eager vs
    hybridized vs PyTorch and the peers with the same weights (no hand-written NumPy twin for a model this size)."""
    lr, mom = 0.01, 0.9
    x, y = nd.random.normal(shape=(bs, 3, size, size)), _labels(bs)
    eager, hyb = twins(_resnet(size), x)
    steps = train_steps(eager, hyb, x, y, 'sgd', {'learning_rate': lr, 'momentum': mom})
    torch = _local_torch(peers)
    if torch is not None:
        w = [p.data().asnumpy() for p in eager.collect_params().values() if p.grad_req != 'null']
        m = torch_resnet18(torch, w)
        steps['torch'] = _torch_step(torch, m, torch.optim.SGD(m.parameters(), lr=lr, momentum=mom),
                                     torch.from_numpy(x.asnumpy()), torch.from_numpy(y.asnumpy().astype(np.int64)))
    if peers:
        w, spec = _resnet_spec(eager)
        spec.update(train=True, opt='sgd', lr=lr, momentum=mom)
        steps.update(_peer_twins(peers, spec, w, x.asnumpy(), y.asnumpy().astype(np.int64)))
    # 18 layers of batch statistics: the frameworks' float32 gradients agree to 1e-4 (checked layer by layer),
    # the second step's loss to about 1e-3; at --quick's 4 images (statistics of 4) to 1.5e-3 with one thread
    _same_loss(steps, tol=1e-3 if bs >= 8 else 2e-3)
    return {'times': timeit(steps, reps, progress=progress)}


def lenet_cold(samples, progress=None, bs=600, peers=None):
    """The first LeNet training step (Adam) of a fresh process, per sample and framework: the trace or compile
    and the step itself, after the import and the model's construction (untimed). graphc ('hybridized') runs
    in a worker of its own with an empty kernel cache (bench_peers.graphc_worker); each peer's worker is started
    afresh (spawn; torch.compile's inductor cache empty too). The samples interleave the frameworks; their
    second steps' losses are checked to agree."""
    from . import bench_peers
    gc.random.seed(0)
    x = nd.random.uniform(shape=(bs, 1, 28, 28))
    net = lenet()
    net(x)
    arrays = {f'w{i}': a for i, a in enumerate(weights(net))}
    arrays.update(x=x.asnumpy(), y=_labels(bs).asnumpy().astype(np.int64))
    spec = {'model': 'lenet', 'train': True, 'opt': 'adam', 'lr': 1e-3}
    makers = {'hybridized': lambda: bench_peers.graphc_worker(config.num_threads())}
    makers.update((p.name, p.spawn) for p in peers or () if hasattr(p, 'spawn'))
    ts, losses, rng = {k: [] for k in makers}, {}, random.Random(SEED[0])
    for _ in (progress(range(samples)) if progress else range(samples)):
        for k, make in rng.sample(list(makers.items()), len(makers)):   # (timeit's shuffled order)
            w = make()
            try:
                twin = w.twin(spec, arrays)
                if twin is not None:
                    ts[k].append(twin.rep())
                    losses[k] = _value(twin())
            finally:
                w.close()
    ref = losses['hybridized']
    if any(not math.isclose(v, ref, rel_tol=1e-4, abs_tol=1e-5) for v in losses.values()):
        raise GraphcError(f"bench: the variants disagree on the loss of the second LeNet training step: {losses}")
    t = Times({k: statistics.median(v) for k, v in ts.items() if v})
    t.spread = {k: tuple(float(q) for q in np.percentile(v, (10, 90))) for k, v in ts.items() if v}
    t.seed = SEED[0]
    return {'times': t, 'samples': {k: v for k, v in ts.items() if v}}


def chain(n, reps, progress=None, peers=None):
    a = np.random.default_rng(0).normal(size=(n, n)).astype(np.float32)
    x = nd.array(a)
    f = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g = gluon.nn.HybridLambda(lambda F, v: F.tanh(v * 2 + 1) * F.sigmoid(v) - F.relu(v) / 3)
    g.hybridize()
    fns = {'numpy': lambda: np.tanh(a * 2 + 1) * (1 / (1 + np.exp(-a))) - np.maximum(a, 0) / 3}
    torch = _local_torch(peers)
    if torch is not None:
        t = torch.from_numpy(a)
        fns['torch'] = lambda: torch.tanh(t * 2 + 1) * torch.sigmoid(t) - torch.relu(t) / 3
    fns.update(_peer_twins(peers, {'model': 'chain'}, [], a) if peers else {})
    fns.update(eager=_synced(lambda: f(x)), hybridized=_synced(lambda: g(x)))
    _agree(fns, 1e-5)
    return {'times': timeit(fns, reps, progress=progress)}


def memory_bound(n, reps, progress=None):
    """(x*2+1)*y - x/3 beside the bandwidth floor, np.copyto of one array: bytes read plus written per second."""
    a, b = (np.random.default_rng(i).normal(size=(n, n)).astype(np.float32) for i in (0, 1))
    x, y = nd.array(a), nd.array(b)
    f = gluon.nn.HybridLambda(lambda F, u, v: (u * 2 + 1) * v - u / 3)
    g = gluon.nn.HybridLambda(lambda F, u, v: (u * 2 + 1) * v - u / 3)
    g.hybridize()
    np.testing.assert_allclose(g(x, y).asnumpy(), (a * 2 + 1) * b - a / 3, rtol=1e-5, atol=1e-5)
    out = np.empty_like(a)
    t = timeit({'numpy': lambda: (a * 2 + 1) * b - a / 3, 'eager': _synced(lambda: f(x, y)),
                'hybridized': _synced(lambda: g(x, y)), 'np.copyto': lambda: np.copyto(out, a)}, reps,
               progress=progress)
    return {'times': t, 'GB/s': {'hybridized': 3 * a.nbytes / t['hybridized'] / 1e9,   # reads x and y, writes
                                 'np.copyto': 2 * a.nbytes / t['np.copyto'] / 1e9}}


def lstm(reps, progress=None, steps=50, peers=None):
    """The LSTM layer forward workload: benchmarks/lstm.py's lstm_forward in a source checkout (graphc eager vs
    hybridized, each also on the fused RNN op's NumPy loops), else, or with peers, lstm_forward here (vs a NumPy
    loop, vs torch, vs the peers)."""
    if peers:
        return lstm_forward(reps, progress, steps=steps, peers=peers)
    mod = _benchmarks_module('lstm')
    return getattr(mod, 'lstm_forward', lstm_forward)(reps, progress, steps=steps)


def _benchmarks_module(name):
    """benchmarks/NAME.py of the source checkout this graphc runs from, or None (an installed graphc has none)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'benchmarks', name + '.py')
    if not os.path.isfile(path):
        return None
    mod_name = f'graphc_benchmarks_{name}'
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(mod_name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)   # the project's own source file, imported as a module
        sys.modules[mod_name] = mod
    return sys.modules[mod_name]


def lstm_forward(reps, progress=None, steps=50, batch=32, inp=64, hidden=256, peers=None):
    """gluon.rnn.LSTM(hidden) forward on (steps, batch, inp) TNC input, eager vs hybridized vs a NumPy loop."""
    make = lambda: _init(gluon.rnn.LSTM(hidden, input_size=inp))  # noqa: E731
    x = nd.random.normal(shape=(steps, batch, inp))
    return _inference(make, x, lambda w: lambda xn: lstm_numpy(xn, *w), torch_lstm, reps, progress, peers=peers,
                      spec={'model': 'lstm'})


def _init(block):
    block.initialize(gc.init.Xavier())
    return block


def symbol_file(sym_file, params, shapes, reps, progress=None):
    """An exported model (MXNet or graphc), op by op vs hybridized, on random inputs of the given shapes."""
    blk = gluon.SymbolBlock.imports(sym_file, list(shapes), params)
    xs = [nd.random.normal(shape=s) for s in shapes.values()]
    blk.hybridize(False)
    eager = blk(*xs).asnumpy()

    def run_eager():
        blk.hybridize(False)
        return blk(*xs)
    hyb = gluon.SymbolBlock.imports(sym_file, list(shapes), params)
    np.testing.assert_allclose(hyb(*xs).asnumpy(), eager, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(eager).max())))
    return {'times': timeit({'eager': _synced(run_eager), 'hybridized': _synced(lambda: hyb(*xs))}, reps,
                            progress=progress)}


# ------------------------------------------------------------------------------------------------ the suite
def workloads(reps, quick=False, peers=None):
    """[(key, name, fn(progress) -> result)]: the standard workloads; quick: small sizes only. peers (from
    bench_peers.start; a list, maybe empty: then torch runs only as a peer) join the workloads that have their
    twins, and add the cold first LeNet training step (lenet-cold)."""
    lb, mb, ls, rb = (64, 1024, 10, 4) if quick else (600, 4096, 50, 32)
    pp = {'peers': peers}
    work = [('mlp1', 'MLP 784-256-256-10 inference, batch 1', lambda p: mlp_inference(1, reps * 10, p, **pp)),
            ('mlp64', 'MLP 784-256-256-10 inference, batch 64', lambda p: mlp_inference(64, reps * 10, p, **pp)),
            ('mlp-train', 'MLP training step, batch 64 (SGD momentum 0.9)', lambda p: mlp_train(reps * 3, p, **pp)),
            ('lenet-train', f'LeNet training step, batch {lb} (Adam)',
             lambda p: lenet_train(lb, max(3, reps // 5), p, **pp)),
            ('lenet-infer', f'LeNet inference, batch {lb}', lambda p: lenet_inference(lb, max(5, reps // 2), p, **pp)),
            ('resnet-train', f'ResNet-18 V1 training step, batch {rb} of 32x32 (SGD momentum)',
             lambda p: resnet_train(rb, max(3, reps // 5), p, **pp)),
            ('resnet-infer', f'ResNet-18 V1 inference, batch {rb} of 32x32',
             lambda p: resnet_inference(rb, max(3, reps // 5), p, size=32, **pp)),
            ('chain1k', 'tanh(x*2+1)*sigmoid(x)-relu(x)/3, 1024x1024', lambda p: chain(1024, reps, p, **pp))]
    if not quick:
        work.append(('chain4k', 'tanh(x*2+1)*sigmoid(x)-relu(x)/3, 4096x4096',
                     lambda p: chain(4096, max(5, reps // 3), p, **pp)))
    work += [('membound', f'memory-bound (x*2+1)*y - x/3, {mb}x{mb}', lambda p: memory_bound(mb, max(5, reps // 3), p)),
             ('lstm', f'LSTM layer forward, input 64, hidden 256, batch 32, {ls} steps',
              lambda p: lstm(max(3, reps // 5), p, steps=ls, **pp))]
    if peers is not None:
        work.append(_cold_workload(quick, peers))
    mod = _benchmarks_module('lstm')   # the char-LSTM steps need examples/char_lstm.py: a source checkout
    if mod is not None and hasattr(mod, 'char_lstm_train'):
        cb, cs, ch = (8, 8, 64) if quick else (32, 32, 256)
        name = f'char-LSTM training step, batch {cb} x {cs} steps, hidden {ch} (Adam)'
        work += [('char-lstm', name + ', the rnn.LSTM layer',
                  lambda p: mod.char_lstm_train(max(3, reps // 5), p, batch=cb, seq=cs, hidden=ch)),
                 ('char-lstm-cells', name + ', LSTMCell.unroll (fused when hybridized)',
                  lambda p: mod.char_lstm_train(max(3, reps // 5), p, batch=cb, seq=cs, hidden=ch, cells=True))]
    return work


def _cold_workload(quick, peers):
    bs, samples = (64, 2) if quick else (600, 3)
    return ('lenet-cold', f'first call, LeNet training step, batch {bs} (Adam): a fresh process each, cold caches',
            lambda p: lenet_cold(samples, p, bs, peers))


def standard(reps, quick=False, only=None, peers=None):
    """The standard workloads, or those whose keys are in `only` (a list; unknown keys are an error)."""
    work = workloads(reps, quick, peers)
    if only:
        work += extra_workloads(reps, quick) + ([_cold_workload(quick, None)] if peers is None else [])
        keys = [k for k, _, _ in work]
        bad = [k for k in only if k not in keys]
        if bad:
            raise GraphcError(f"bench: unknown workload(s) {bad}; choose from {keys}"
                              + ('' if quick else ' (chain4k is not in --quick)'))
        work = [w for w in work if w[0] in only]
    return work


def ratios(times):
    """{'a/b': time a / time b} for the pairs of RATIOS both measured (eager/hybridized > 1: compiling helps;
    hybridized/numpy < 1: compiled beats NumPy)."""
    r = {f'{a}/{b}': times[a] / times[b] for a, b in RATIOS if a in times and b in times}
    if 'hybridized' in times:   # variants of a workload's own, e.g. benchmarks/lstm.py's '+numpy-loops'
        r.update({f'{v}/hybridized': times[v] / times['hybridized'] for v in times if v not in ORDER})
    return r


def run(work, progress=None, check_load=False, own=lambda: ()):
    """{key: {'name', 'times', 'spread', 'ratios', ...}} for [(key, name, fn)]; progress(desc) -> iterable
    wrapper; check_load: each result also says whether the machine was loaded (load_check; own: its own pids)."""
    results = {}
    for i, (key, name, fn) in enumerate(work, 1):
        f = lambda fn=fn, i=i, key=key: fn(progress(f"[{i}/{len(work)}] {key}") if progress else None)  # noqa: E731
        r = load_check(f, own) if check_load else f()
        results[key] = dict(name=name, **r, spread=getattr(r['times'], 'spread', {}), ratios=ratios(r['times']),
                            diag=getattr(r['times'], 'diag', {}), seed=getattr(r['times'], 'seed', None))
    return results


# ------------------------------------------------------------------------------------------- --peers
def set_threads(n):
    """Run graphc's kernels (GRAPHC_NUM_THREADS), the OpenBLAS that NumPy and graphc's GEMMs share, and torch
    on n threads; returns a function that puts the previous settings back. (The peers' workers get theirs
    at start: bench_peers.start.)"""
    from .runtime.native import blas, blas_library
    name, undo = config.num_threads.name, []
    old = os.environ.get(name)
    os.environ[name] = str(n)
    undo.append(lambda: os.environ.pop(name) if old is None else os.environ.update({name: old}))
    lib = blas_library() if blas() is not None else None
    for sfx in ('', '64_'):   # OpenBLAS's, or scipy-openblas's (NumPy 2's wheels)
        get, put = (getattr(lib, f'{"scipy_" if sfx else ""}openblas_{f}_num_threads{sfx}', None) for f in ('get', 'set'))
        if get is not None and put is not None:
            was = get()
            put(n)
            undo.append(lambda put=put, was=was: put(was))
            break
    torch = sys.modules.get('torch')   # (with --peers torch is a peer process; this one never imports it)
    if torch is not None:
        was = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(was))
    return lambda: [u() for u in reversed(undo)]


def run_peers(reps, quick=False, only=None, threads=(1,), names=None, progress=None, start=None):
    """({threads: run's results}, {missing peer: how to install it}): the standard workloads (or `only`) with the
    peers of bench_peers beside graphc's variants, once per thread count, each result checked for load.
    start: bench_peers.start (a test's stand-in: start(threads) -> (peers, missing))."""
    from . import bench_peers
    start = start or (lambda n: bench_peers.start(n, names or bench_peers.NAMES))
    out, missing = {}, {}
    for n in sorted(set(threads), reverse=True):   # the most threads first: graphc's pool is sized once
        undo = set_threads(n)
        peers = []
        try:
            peers, gone = start(n)
            missing.update(gone)
            own = lambda: [pid for p in peers if hasattr(p, 'pids') for pid in p.pids()]  # noqa: E731
            out[n] = run(standard(reps, quick, only, peers=peers), progress, check_load=True, own=own)
        finally:
            for p in peers:
                p.close()
            undo()
    return {n: out[n] for n in sorted(out)}, missing


def _best(times, among):
    got = [(times[k], k) for k in among if k in times]
    return min(got) if got else (None, None)


def _ms(t):
    return '-' if t is None else f'{t * 1e3:.3g}' if t < 0.1 else f'{t * 1e3:,.0f}'


def peer_table(results, missing):
    """Per thread count, each variant's median ms with its spread (p10-p90); then the issue-17 summary in
    Markdown: the best peer, graphc hybridized and their ratio at each thread count; then the footnotes (missing
    peers, agreement tolerance, loaded workloads)."""
    lines = []
    for n, res in results.items():
        cols = [v for v in ORDER if v in missing or any(v in r['times'] for r in res.values())]
        kw = max([len(k) for k in res] + [8])
        head = f"{'workload':<{kw}}" + ''.join(f" {c + (' *' if c in missing else ''):>21}" for c in cols) + \
            f"{'hybridized / best peer':>26}"
        lines += [f'{n} thread{"s" if n > 1 else ""}: median ms (p10-p90)', head, '-' * len(head)]
        for key, r in res.items():
            t, sp = r['times'], r.get('spread', {})
            cells = [f"{_ms(t[c])} ({_ms(sp[c][0])}-{_ms(sp[c][1])})" if c in sp else _ms(t.get(c)) for c in cols]
            best, _ = _best(t, PEERS)
            ratio = f"{t['hybridized'] / best:.2f}x" if best and 'hybridized' in t else '-'
            lines.append(f"{key:<{kw}}" + ''.join(f' {c:>21}' for c in cells) + f'{ratio:>26}' +
                         ('  (loaded)' if r.get('load', {}).get('loaded') else ''))
        lines.append('')
    ns = list(results)
    thr = ' / '.join(f'{n} thr' for n in ns)
    lines += [f'| workload | best peer ({thr}) | graphc hybridized | graphc / best |', '|---|---|---|---|']
    for key, r0 in results[ns[0]].items():
        per = [results[n].get(key) for n in ns]
        if any(r is None or 'hybridized' not in r['times'] for r in per):
            continue
        best = [_best(r['times'], PEERS) for r in per]
        cell = ' / '.join(f'{k} {_ms(t)}' if k else '-' for t, k in best)
        fw = sorted({k for r in per for k in r['times'] if k in PEERS and k != 'numpy'},
                    key=lambda k: per[0]['times'].get(k, math.inf))
        if fw and any(k == 'numpy' for _, k in best):
            cell += ' (frameworks: ' + ', '.join(f"{k} {' / '.join(_ms(r['times'].get(k)) for r in per)}"
                                                 for k in fw) + ')'
        hyb = ' / '.join(_ms(r['times']['hybridized']) for r in per)
        rat = ' / '.join(f"{r['times']['hybridized'] / t:.2f}x" if t else '-' for r, (t, _) in zip(per, best))
        lines.append(f"| {r0['name']} | {cell} | {hyb} | {rat} |")
    lines.append('')
    lines += [f'* {k}: not here; to include it: {hint}' for k, hint in missing.items()]
    note = _order_note(r for res in results.values() for r in res.values())
    lines += [note] if note else []
    lines.append("'-': that variant has no twin of the workload. Every peer started from graphc's weights and inputs "
                 "and agreed with hand NumPy (ResNet-18: with graphc hybridized): outputs within 1e-4 (relative, and "
                 "absolute of the largest |output|), losses of two training steps within 1e-4 (ResNet-18's: 1e-3; "
                 "lenet-cold: the second step's).")
    loaded = [f"{k} ({n} thr: {max([v for v in r['load'].values() if isinstance(v, float)] or [0]):.2f} cores)"
              for n, res in results.items() for k, r in res.items() if r.get('load', {}).get('loaded')]
    if loaded:
        lines.append(f"WARNING: the machine was loaded during {', '.join(loaded)}: other processes used more than "
                     f"{LOADED} cores on average (/proc/stat busy time less this run's own, idle probes before/after "
                     "each workload and over its timed rounds); those timings are upper bounds.")
    diag = [ln for n, res in results.items() for ln in diag_lines(res, f'{n} thr')]
    if diag:
        lines += ["Diagnostics (per variant over its timed samples; JSON: workloads.THREADS.KEY.diag and .load):"] + diag
    return '\n'.join(lines)


def _order_note(results):
    seeds = sorted({r.get('seed') for r in results} - {None})
    return (f"Each round ran the variants in a shuffled order (seed {', '.join(map(str, seeds))}: `graphc bench "
            f"--seed N` draws another).") if seeds else ''


def _diag_text(p, per='a sample'):
    cpu = '' if p['steal_cores'] is None else (f"steal {p['steal_cores']:.2f} cores, others {p['others_cores']:.2f}, "
                                               f"threads waiting {p['threads_waiting']:.2f}, ")
    run = p.get('running')
    cpu += '' if not run or not sum(run.values()) else \
        f"threads running (cores) {', '.join(f'{c} {v:.2f}' for c, v in run.items())}, "
    return (f"{cpu}run-queue wait {100 * p['wait_share']:.0f}%, {p['minflt']:.0f} minor / {p['majflt']:.1f} major "
            f"faults, {p['nivcsw']:.1f} involuntary switches and {p['gc']:.2f} garbage collections {per}")


def diag_lines(res, label=''):
    """Lines for the diagnostics worth a look in one run's results: a variant with slow samples (a fifth or more
    over SLOW times its 10th percentile: bimodal) shown apart from its fast ones, or with steal above 0.05 cores, a
    run-queue wait over 5% of its time, or major page faults; then, for such a workload or a loaded one, the other
    processes that used the most CPU."""
    lines = []
    for key, r in res.items():
        mine, who = [], f"{key} {label}".strip()
        for v, d in r.get('diag', {}).items():
            a, slow, fast = d['all'], d['slow'], d['fast']
            bimodal = slow is not None and fast is not None and slow['n'] >= 0.2 * a['n']
            if bimodal:
                mine.append(f"  {who} {v}: {slow['n']} of {a['n']} samples slow (> {SLOW}x its p10): "
                            f"{_diag_text(slow)}; the fast ones: {_diag_text(fast)}")
            elif (a['steal_cores'] or 0) > 0.05 or a['majflt'] > 0 or a['wait_share'] > 0.05:
                mine.append(f"  {who} {v}: {_diag_text(a, 'in all' if v == '(all variants)' else 'a sample')}")
        load = r.get('load', {})
        if (mine or load.get('loaded')) and load.get('top_others'):
            mine.append(f"  {who}: most CPU elsewhere during it: " +
                        ', '.join(f"{name} ({pid}) {t:.2f} s" for name, pid, t in load['top_others']) +
                        (f"; {load['migrations']} thread migrations" if load.get('migrations') is not None else '') +
                        (f"; paging {', '.join(f'{k} {v}' for k, v in load['vmstat'].items() if v)}"
                         if any(load.get('vmstat', {}).values()) else ''))
        lines += mine
    return lines


def table(results):
    """The results as a text table: milliseconds per variant, then the ratios that matter."""
    cols = [v for v in ORDER if any(v in r['times'] for r in results.values())]
    rats = [f'{a}/{b}' for a, b in RATIOS[:3] if any(f'{a}/{b}' in r['ratios'] for r in results.values())]
    kw = max([len(k) for k in results] + [8])
    head = f"{'workload':<{kw}}" + ''.join(f"{c + ' ms':>15}" for c in cols) + ''.join(f"{r:>20}" for r in rats)
    lines = [head, '-' * len(head)]
    for key, r in results.items():
        lines.append(f"{key:<{kw}}" + ''.join(f"{r['times'][c] * 1e3:>15.3f}" if c in r['times'] else f"{'-':>15}"
                                              for c in cols)
                     + ''.join(f"{r['ratios'][q]:>19.2f}x" if q in r['ratios'] else f"{'-':>20}" for q in rats))
    lines.append('')
    lines += [f"{key:<{kw}}  {r['name']}" for key, r in results.items()]
    for key, r in results.items():
        extra = [v for v in r['times'] if v not in ORDER]
        if extra:
            lines.append(f"{key}: " + ', '.join(f"{v} {r['times'][v] * 1e3:.3f} ms" for v in extra))
        if 'GB/s' in r:
            bw = r['GB/s']
            lines.append(f"{key}: hybridized {bw['hybridized']:.1f} GB/s, np.copyto {bw['np.copyto']:.1f} GB/s "
                         f"({100 * bw['hybridized'] / bw['np.copyto']:.0f}% of the copy bandwidth)")
    note = _order_note(results.values())
    lines += [note] if note else []
    diag = diag_lines(results)
    return '\n'.join(lines + (["Diagnostics (per variant over its timed samples; JSON: workloads.KEY.diag):"] + diag
                               if diag else []))


def package_version(mod):
    try:
        return __import__(mod).__version__
    except ImportError:
        return 'not installed'
    except Exception as e:  # a broken install should not break `graphc info`
        return f'error: {e}'


def cpu_features():
    """The host CPU name and the SIMD features LLVM sees (what generated code may use)."""
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    feats = llvm.get_host_cpu_features()
    on = sorted(k for k, v in feats.items() if v)
    simd = [f for f in ('sse4.2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'neon', 'sve') if f in on]
    return llvm.get_host_cpu_name(), simd


def machine():
    """Machine and versions for the JSON results."""
    try:
        cpu, simd = cpu_features()
    except Exception as e:  # an odd LLVM should not lose the timings
        cpu, simd = f'unknown ({e})', []
    torch = sys.modules.get('torch')
    return {'machine': {'platform': platform.platform(), 'processor': platform.processor(), 'cpu': cpu,
                        'simd': simd, 'cores': os.cpu_count(),
                        'torch_threads': torch.get_num_threads() if torch else None,
                        'OMP_WAIT_POLICY': os.environ.get('OMP_WAIT_POLICY')},
            'versions': {'python': platform.python_version(), 'graphc': gc.__version__,
                         **{m: package_version(m) for m in ('numpy', 'llvmlite', 'torch')}}}


def report(results, **settings):
    """The JSON document: when, machine, versions, settings, and per workload its medians and ratios."""
    return {'date': datetime.datetime.now().isoformat(timespec='seconds'), **machine(),
            'settings': dict(settings, warmup=WARMUP), 'workloads': results}


def need_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise GraphcError("--png needs matplotlib, which is not installed (pip install matplotlib)") from None


def chart(results, path):
    """A bar chart: per workload, each variant's time relative to graphc hybridized, on a log scale from 1
    (a bar to the right: that variant is slower than hybridized)."""
    need_matplotlib()
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    cols = [v for v in ORDER[:3] if any(v in r['times'] for r in results.values())]   # numpy, torch, eager
    keys = [k for k, r in results.items() if 'hybridized' in r['times']]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.25 * len(keys) * len(cols)))
    h = 0.8 / max(1, len(cols))
    vals_all = [1.0]
    for j, c in enumerate(cols):
        ys = [i + (j - (len(cols) - 1) / 2) * h for i in range(len(keys))]
        vals = [results[k]['times'].get(c, np.nan) / results[k]['times']['hybridized'] for k in keys]
        ax.barh(ys, [v - 1 for v in vals], left=1, height=h, label=c)
        for y, v in zip(ys, vals):
            if v == v:  # not NaN
                ax.annotate(f'{v:.2g}x', (v, y), xytext=(3 if v >= 1 else -3, 0), textcoords='offset points',
                            ha='left' if v >= 1 else 'right', va='center', fontsize=7)
                vals_all.append(v)
    ax.axvline(1.0, color='k', lw=0.8)
    ax.set_xscale('log')
    ax.set_xlim(min(vals_all) / 2, max(vals_all) * 2)
    ax.xaxis.set_major_locator(LogLocator(base=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f'{v:g}x'))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yticks(range(len(keys)), keys)
    ax.invert_yaxis()
    ax.set_xlabel('time / graphc hybridized time (right of 1: hybridized is faster)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
