"""graphc.bench's interference diagnostics: per variant, over its timed samples, the machine's steal and other
processes' CPU, this process's page faults and involuntary switches, slow samples apart from fast ones; per
workload the other processes that ran, paging counters, thread migrations; and their lines under the tables."""
import hashlib
import mmap
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from graphc import bench as B

LINUX = B.cpu_sample() is not None and B.probe() is not None


def test_diagnostics_splits_slow_samples_from_fast():
    # (t, window, steal, others, minflt, majflt, nivcsw, wait, gc, wait_all, run by thread class: main, pool, omp,
    # other): four fast samples with both cores busy, one 3x slower where the OpenMP team ran on one
    rows = [(1.0, 1.0, 0.0, 0.1, 10, 0, 0, 0.0, 0, 0.0, 0.9, 0.1, 0.8, 0.0)] * 4 + \
        [(3.0, 3.0, 1.5, 0.0, 40, 2, 5, 0.6, 1, 1.5, 1.5, 0.0, 1.5, 0.3)]
    d = B.diagnostics(rows)
    assert d['all']['n'] == 5 and d['slow']['n'] == 1 and d['fast']['n'] == 4
    assert d['slow']['steal_cores'] == pytest.approx(0.5) and d['fast']['steal_cores'] == 0
    assert d['fast']['others_cores'] == pytest.approx(0.1) and d['all']['steal_cores'] == pytest.approx(1.5 / 7)
    assert d['slow']['majflt'] == 2 and d['fast']['minflt'] == 10 and d['all']['nivcsw'] == 1
    assert d['slow']['wait_share'] == pytest.approx(0.2) and d['fast']['wait_share'] == 0 and d['slow']['gc'] == 1
    assert d['slow']['threads_waiting'] == pytest.approx(0.5)
    assert d['fast']['running'] == pytest.approx({'main': 0.9, 'pool': 0.1, 'omp': 0.8, 'other': 0.0})
    assert d['slow']['running'] == pytest.approx({'main': 0.5, 'pool': 0.0, 'omp': 0.5, 'other': 0.1})
    assert d['samples']['t'] == [1.0] * 4 + [3.0] and d['samples']['majflt'] == [0] * 4 + [2]
    assert B.diagnostics([(1.0, 1.0, 0.0, 0.0, 0, 0, 0, 0.0, 0, 0.0) + (0.0,) * 4] * 3)['slow'] is None
    short = B.diagnostics([(1e-5, 2e-5, None, None, 0, 0, 0, 0.0, 0, None) + (0.0,) * 4] * 3)['all']   # /proc/stat not read: None
    assert short['steal_cores'] is None and short['others_cores'] is None and short['threads_waiting'] is None
    assert short['n'] == 3


def test_sample_row_is_the_difference_of_two_probes():
    main = str(threading.main_thread().native_id)   # (ids 1-3: 'other' threads)
    a = (10.0, (10.0, 5.0, 1.0, 0.5), (100, 1, 7, 2.0, 4, {'1': 3.0, '2': 1.0}, {main: 1.0, '1': 2.0, '2': 1.0}))
    b = (10.5, (10.5, 5.9, 1.3, 0.6), (130, 1, 9, 2.1, 5, {'1': 3.25, '3': 9.0},   # thread 2 ended, 3 started
                                       {main: 1.25, '1': 2.125, '3': 4.0}))
    # 0.9 busy: 0.3 ours, 0.1 steal, so 0.5 of other processes; the threads' wait and run: thread 1's and main's
    assert B.sample_row(0.4, a, b) == pytest.approx((0.4, 0.5, 0.1, 0.5, 30, 0, 2, 0.1, 1, 0.25, 0.25, 0, 0, 0.125))
    short = B.sample_row(0.4, (10.0, None, a[2]), (10.5, None, b[2]))   # (no /proc/stat)
    assert short[2] is None and short[3] is None and short[4:10] == pytest.approx((30, 0, 2, 0.1, 1, 0.25))
    assert B.sample_row(0.4, None, b) is None


def _long(f):
    def run():   # (every variant at least LONG: per-sample diagnostics)
        f()
        time.sleep(B.LONG)
    return run


@pytest.mark.skipif(not LINUX, reason='no /proc/stat or getrusage')
def test_timeit_records_page_faults_per_variant():
    """A variant that touches fresh memory each call faults; one that reuses its buffer does not; the counters
    are read just before and after each timed sample (not in the warm-up, nor per call inside a variant)."""
    buf = np.ones(1 << 18, np.float32)
    calls = []
    real = B.probe

    def counted(pids=()):
        calls.append(1)
        return real(pids)

    def fresh():   # 2 MB mapped anew: 512 pages that fault when first written (not one transparent huge page)
        m = mmap.mmap(-1, 1 << 21)
        if hasattr(mmap, 'MADV_NOHUGEPAGE'):
            m.madvise(mmap.MADV_NOHUGEPAGE)
        a = np.frombuffer(m, np.uint8)
        a[::4096] = 1
        del a
        m.close()

    B.probe = counted
    try:
        t = B.timeit({'fresh': _long(fresh), 'reuse': _long(lambda: buf.fill(1))}, reps=6, warmup=2)
    finally:
        B.probe = real
    assert len(calls) == 1 + 2 * 2 * 6 + 1   # the rounds' start, around each timed sample, the rounds' end
    d = t.diag
    assert set(d) == {'fresh', 'reuse', '(all variants)'} and d['fresh']['all']['n'] == 6
    assert d['fresh']['all']['minflt'] > 100 > d['reuse']['all']['minflt']
    assert d['fresh']['all']['steal_cores'] is not None and d['fresh']['all']['threads_waiting'] >= 0
    assert len(d['reuse']['samples']['window']) == 6 and min(d['reuse']['samples']['window']) >= B.LONG
    whole = d['(all variants)']['all']
    assert whole['n'] == 12 and whole['minflt'] > 6 * 500   # (one row: the totals of the timed rounds)


@pytest.mark.skipif(not LINUX, reason='no /proc/stat or getrusage')
def test_short_variants_get_no_reading_between_samples():
    """Where a variant's warm-up sample is under LONG nothing is read between samples (it slowed the next short
    call): the timed rounds' totals only."""
    calls = []
    real = B.probe

    def counted(pids=()):
        calls.append(1)
        return real(pids)
    B.probe = counted
    try:
        t = B.timeit({'long': lambda: time.sleep(B.LONG * 1.5), 'short': lambda: None}, reps=3, warmup=1)
    finally:
        B.probe = real
    assert len(calls) == 2 and set(t.diag) == {'(all variants)'}
    assert t.diag['(all variants)']['all']['n'] == 6 and 0 <= t.diag['(all variants)']['all']['wait_share'] <= 1
    assert B.threads_wait() and all(v >= 0 for v in B.threads_wait().values())


@pytest.mark.skipif(not LINUX, reason='no /proc')
def test_thread_classes_name_the_pools_that_ran():
    """A kernel split over the pool shows its CPU under 'pool', the caller's under 'main'; a oneDNN convolution
    at 2 threads, its OpenMP team's under 'omp' (where oneDNN is installed)."""
    from graphc.runtime import cpu, onednn
    old = os.environ.get('GRAPHC_NUM_THREADS')
    os.environ['GRAPHC_NUM_THREADS'] = '2'
    try:
        data = bytes(1 << 22)
        busy = lambda p, i, j: [hashlib.sha256(data).digest() for _ in range(j - i)]  # noqa: E731  (without the GIL)
        cpu.split(busy, None, 2, 2)   # (the pool's worker started)
        a = B.threads_run()
        cpu.split(busy, None, 64, 2)
        run = dict(zip(B.CLASSES, B._by_class(a, B.threads_run())))
        assert run['main'] > 0 and run['pool'] > 0, run
        if onednn.library() is not None and onednn._state.get('omp') is not None:
            from graphc import nd
            x, w = nd.ones((64, 8, 32, 32)), nd.ones((16, 8, 5, 5))
            nd.Convolution(x, w, kernel=(5, 5), num_filter=16, no_bias=True).wait_to_read()
            a = B.threads_run()
            for _ in range(20):
                nd.Convolution(x, w, kernel=(5, 5), num_filter=16, no_bias=True).wait_to_read()
            run = dict(zip(B.CLASSES, B._by_class(a, B.threads_run())))
            assert run['omp'] > 0 and B.thread_class(threading.main_thread().native_id) == 'main', run
    finally:
        os.environ.pop('GRAPHC_NUM_THREADS') if old is None else os.environ.update(GRAPHC_NUM_THREADS=old)


@pytest.mark.skipif(not LINUX, reason='no /proc/stat or getrusage')
def test_garbage_collections_are_counted_per_sample():
    import gc
    t = B.timeit({'collects': _long(gc.collect), 'not': _long(lambda: None)}, reps=4, warmup=1)
    assert t.diag['collects']['all']['gc'] >= 1 > t.diag['not']['all']['gc']   # (a rare young collection there)
    assert B._count_gc not in gc.callbacks   # (removed after timing)


@pytest.mark.skipif(not LINUX, reason='no /proc')
def test_top_others_names_a_busy_process():
    a = B.proc_cpu()
    spin = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    try:
        time.sleep(1.0)
        top = B.top_others(a, B.proc_cpu(), n=50)
    finally:
        spin.kill()
        spin.wait()
    assert any(pid == spin.pid and t > 0.05 for _, pid, t in top), top   # (a loaded machine: a share of a core)
    assert all(pid != __import__('os').getpid() for _, pid, _ in top)
    vm = B.vmstat()
    assert set(vm) == set(B.VMSTAT) and vm['pgfault'] > 0
    m = B.migrations()
    assert m is None or all(v >= 0 for v in m.values())


def _diag(steal=0.0, majflt=0.0, slow=0):
    part = lambda n, s: {'n': n, 'steal_cores': s, 'others_cores': 0.01, 'minflt': 3, 'majflt': majflt,  # noqa: E731
                         'nivcsw': 0.5, 'wait_share': 0.01, 'gc': 0.0, 'threads_waiting': 0.02}
    return {'all': part(10, steal), 'slow': part(slow, steal) if slow else None,
            'fast': part(10 - slow, 0.0) if slow < 10 else None}


def test_diag_lines_under_the_tables():
    load = {'loaded': False, 'top_others': [['kdamond.0', 77, 0.4], ['cc1plus', 9, 0.1]], 'migrations': 12,
            'vmstat': {'pgmajfault': 3, 'pgscan': 0}}
    res = {'lenet-train': {'name': 'LeNet', 'times': {'numpy': 0.1, 'hybridized': 0.2}, 'ratios': {}, 'load': load,
                           'diag': {'numpy': _diag(), 'hybridized': _diag(steal=0.4, slow=5)}},
           'mlp1': {'name': 'MLP', 'times': {'numpy': 1e-5, 'hybridized': 1e-5}, 'ratios': {},
                    'load': dict(load, top_others=[]), 'diag': {'numpy': _diag(majflt=0.5), 'hybridized': _diag()}}}
    lines = B.diag_lines(res, '2 thr')
    assert lines[0].startswith('  lenet-train 2 thr hybridized: 5 of 10 samples slow (> 1.5x its p10): steal 0.40')
    assert 'the fast ones: steal 0.00 cores' in lines[0]
    assert lines[1] == ('  lenet-train 2 thr: most CPU elsewhere during it: kdamond.0 (77) 0.40 s, cc1plus (9) 0.10 s; '
                        '12 thread migrations; paging pgmajfault 3')
    assert lines[2].startswith('  mlp1 2 thr numpy: steal 0.00 cores') and '0.5 major faults' in lines[2]
    assert len(lines) == 3   # quiet variants and workloads say nothing
    text = B.peer_table({2: res}, {})
    assert 'Diagnostics (per variant over its timed samples; JSON: workloads.THREADS.KEY.diag and .load):' in text
    assert lines[0] in text.splitlines()
    assert 'Diagnostics' not in B.peer_table({2: {k: dict(r, diag={}, load={}) for k, r in res.items()}}, {})
