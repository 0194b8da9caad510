"""Native plan segments (runtime/native.py): steps run by one call into the compiled step interpreter
must give the reference interpreter's results, keep outputs apart from the plan's own buffers, and fall
back to the per-step path when an input no longer fits the plan or another thread holds it.

Tolerances: float32 rtol 1e-5 / atol 1e-5 (BLAS and NumPy may sum in another order), float64 1e-12.
"""
import threading

import numpy as np
import pytest

import graphc as gc
from graphc import gluon, nd
from graphc.gluon import nn
from graphc.graph import Graph
from graphc.passes import run_pipeline
from graphc.runtime import native
from graphc.interpreter import interpret
from graphc.runtime.plan import Plan, Seg
from graphc.symbol.symbol import input_var

needs_blas = pytest.mark.skipif(native.blas() is None, reason="no CBLAS found beside NumPy: GEMMs run from Python")
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def build(fn, *arrays):
    vs = [input_var(f"in{i}", a.shape, a.dtype) for i, a in enumerate(arrays)]
    outs = fn(*vs)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    g = Graph([o._one() for o in outs], [v._one()[0] for v in vs])
    opt, _ = run_pipeline(g, 'inference')
    feed = {v: a for v, a in zip(opt.inputs, arrays)}
    return g, opt, feed, {v._one()[0]: a for v, a in zip(vs, arrays)}


def segments(plan):
    return [it for it in plan.program.items if type(it) is Seg] if plan.program else []


@needs_blas
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_mlp_runs_as_one_segment_and_matches_the_interpreter(dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 20)).astype(dtype)
    w1, b1 = rng.normal(size=(16, 20)).astype(dtype), rng.normal(size=(16,)).astype(dtype)
    w2, b2 = rng.normal(size=(4, 16)).astype(dtype), rng.normal(size=(4,)).astype(dtype)

    def f(x, w1, b1, w2, b2):
        h = nd.relu(nd.FullyConnected(x, w1, b1, num_hidden=16))
        return nd.tanh(nd.FullyConnected(h, w2, b2, num_hidden=4) * 0.5) + 1
    g, opt, feed, raw = build(f, x, w1, b1, w2, b2)
    plan = Plan(opt)
    assert len(segments(plan)) == 1 and len(plan.program.items) == 1
    ref = interpret(g, raw)[0]
    out = plan(feed)[0]
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    h = np.maximum(x @ w1.T + b1, 0)  # and against plain NumPy
    np.testing.assert_allclose(out, np.tanh((h @ w2.T + b2) * 0.5) + 1, **TOL[dtype])


@needs_blas
@pytest.mark.parametrize('ta,tb', [(False, False), (True, False), (False, True), (True, True)])
def test_dot_transposes_and_reshape_aliases(ta, tb):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 6) if ta else (6, 5)).astype(np.float32)
    b = rng.normal(size=(7, 5) if tb else (5, 7)).astype(np.float32)

    def f(a, b):
        d = nd.dot(a, b, transpose_a=ta, transpose_b=tb)  # (6, 7)
        r = nd.Reshape(nd.exp(d * 0.1), shape=(3, 14))
        return [nd.sum(nd.sigmoid(r), axis=1), nd.Flatten(nd.expand_dims(d, axis=0))]
    g, opt, feed, raw = build(f, a, b)
    plan = Plan(opt)
    assert segments(plan), opt.text()
    ref = interpret(g, raw)
    out = plan(feed)
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, **TOL[np.float32])
    dn = (a.T if ta else a) @ (b.T if tb else b)
    np.testing.assert_allclose(out[1], dn.reshape(1, 42), **TOL[np.float32])



@needs_blas
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('ta,tb', [(False, False), (True, False), (False, True), (True, True)])
def test_one_row_products_run_as_gemv(ta, tb, dtype):
    """A one-row GEMM (batch-1 Dense, a 1 x k dot) is a GEMV step: OpenBLAS's sgemm packs the whole matrix first
    (5x slower for a 1x784 by 784x256 product here); float32 times a transposed (Dense) weight is graphc's own
    graphc_gemv_nt, the rest BLAS's GEMV. Every transpose, both dtypes."""
    if native.gemv() is None:
        pytest.skip("the BLAS beside NumPy has no cblas gemv")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 1) if ta else (1, 6)).astype(dtype)
    b = rng.normal(size=(7, 6) if tb else (6, 7)).astype(dtype)
    w, bias = rng.normal(size=(5, 7)).astype(dtype), rng.normal(size=(5,)).astype(dtype)

    def f(a, b, w, bias):
        d = nd.dot(a, b, transpose_a=ta, transpose_b=tb)   # (1, 7)
        return nd.tanh(nd.FullyConnected(nd.relu(d), w, bias, num_hidden=5))
    g, opt, feed, raw = build(f, a, b, w, bias)
    plan = Plan(opt)
    kinds = {int(r[0]) for s in segments(plan) for r in s.seg.rows}
    ours = any(r[0] == native.KERNEL and r[1] == native.gemv_nt() for s in segments(plan) for r in s.seg.rows)
    assert not kinds & {native.SGEMM, native.DGEMM, native.DNNL_SGEMM}, kinds
    # float32 (1 x k) by (n x k)^T: graphc_gemv_nt; the others (and the Dense's in float64): BLAS's GEMV
    assert ours == (dtype == np.float32) and (bool(kinds & {native.SGEMV, native.DGEMV}) or (dtype == np.float32 and tb))
    want = np.tanh(np.maximum((a.T if ta else a) @ (b.T if tb else b), 0) @ w.T + bias)
    np.testing.assert_allclose(plan(feed)[0], want, **TOL[dtype])
    np.testing.assert_allclose(plan(feed)[0], interpret(g, raw)[0], **TOL[dtype])

@needs_blas
def test_outputs_are_fresh_arrays_each_call():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(2, 8)).astype(np.float32), rng.normal(size=(8, 8)).astype(np.float32)
    _, opt, feed, _ = build(lambda x, w: nd.relu(nd.dot(x, w)) * 2, x, w)
    plan = Plan(opt)
    first = plan(feed)[0]
    keep = first.copy()
    feed2 = {k: v * 3 for k, v in feed.items()}
    second = plan(feed2)[0]
    np.testing.assert_array_equal(first, keep)  # the second call wrote elsewhere
    assert not np.may_share_memory(first, second)
    np.testing.assert_allclose(second, 9 * keep, rtol=1e-5)


@needs_blas
def test_an_input_of_another_shape_or_layout_takes_the_checked_path():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    _, opt, feed, _ = build(lambda x, w: nd.dot(nd.sigmoid(nd.dot(x, w)) + 1, w, transpose_b=True), x, w)
    plan = Plan(opt)
    assert segments(plan)
    kx, kw = opt.inputs
    wt = np.asfortranarray(w)  # same values, another layout: copied to C order, same result
    np.testing.assert_allclose(plan({kx: x, kw: wt})[0], (1 / (1 + np.exp(-(x @ w))) + 1) @ w.T, rtol=1e-5)
    with pytest.raises(gc.GraphcError, match=r"plan input 'in1': built for shape \(6, 3\) float32, got \(5, 3\)"):
        plan({kx: x, kw: rng.normal(size=(5, 3)).astype(np.float32)})


@needs_blas
def test_threads_calling_one_hybridized_block_get_their_own_results():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(32, activation='relu'), nn.Dense(5))
    net.initialize(gc.init.Xavier())
    xs = [nd.random.normal(shape=(2, 12)) for _ in range(8)]
    want = [net(x).asnumpy() for x in xs]  # eager
    net.hybridize()
    net(xs[0])
    assert segments(net.cached_graph()._main_plan)
    got, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(50):
                got[i] = net(xs[i]).asnumpy()
                np.testing.assert_allclose(got[i], want[i], rtol=1e-5, atol=1e-6)
        except Exception as e:  # reported below: a thread's exception would otherwise vanish
            errors.append(e)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


@needs_blas
def test_segments_can_be_switched_off(monkeypatch):
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    _, opt, feed, _ = build(lambda x, w: nd.dot(nd.relu(nd.dot(x, w)), w, transpose_b=True), x, w)
    assert segments(Plan(opt))
    monkeypatch.setenv('GRAPHC_NATIVE', '0')
    plan = Plan(opt)
    assert plan.program is None
    np.testing.assert_allclose(plan(feed)[0], np.full((2, 3), 12.0))


def test_blas_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(native, '_blas', [])
    monkeypatch.setenv('GRAPHC_NATIVE_BLAS', '0')
    assert native.blas() is None
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    _, opt, feed, _ = build(lambda x, w: nd.relu(nd.dot(x, w)), x, w)
    np.testing.assert_allclose(Plan(opt)(feed)[0], np.full((2, 4), 3.0))


@needs_blas
def test_hybridized_training_with_native_segments_equals_eager():
    def make():
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(nn.Dense(16, activation='tanh'), nn.Dense(3))
        return net
    x = nd.random.normal(shape=(4, 10))
    y = nd.array([0, 2, 1, 2], dtype='int32')
    nets = []
    for hyb in (False, True):
        gc.random.seed(7)
        net = make()
        net.initialize(gc.init.Xavier())
        if hyb:
            net.hybridize()
        tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
        loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
        for _ in range(3):
            with gc.autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            tr.step(4)
        nets.append(net)
    for (k, p), q in zip(nets[0].collect_params().items(), nets[1].collect_params().values()):
        np.testing.assert_allclose(q.data().asnumpy(), p.data().asnumpy(), rtol=1e-5, atol=1e-6, err_msg=k)


@needs_blas
def test_arena_reuses_buffers_and_keeps_views_of_them_alive():
    """Intermediates share arena space when their lifetimes do not overlap; a value that a Python step
    returns as a view of an arena buffer (slice_axis) keeps that buffer from being reused while read."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 16)).astype(np.float32)
    ws = [rng.normal(size=(16, 16)).astype(np.float32) * 0.3 for _ in range(5)]

    def f(x, *ws):
        h = nd.relu(nd.dot(x, ws[0]))
        head = nd.slice_axis(h, axis=0, begin=0, end=2)  # a view of h's buffer, read at the very end
        for w in ws[1:]:
            h = nd.tanh(nd.dot(h, w))
        return nd.dot(head, ws[1]) + nd.sum(h, axis=0, keepdims=True)
    g, opt, feed, raw = build(f, x, *ws)
    plan = Plan(opt)
    assert segments(plan) and plan.arena_bytes < plan.naive_bytes, (plan.arena_bytes, plan.naive_bytes)
    ref = interpret(g, raw)[0]
    for _ in range(2):
        np.testing.assert_allclose(plan(feed)[0], ref, **TOL[np.float32])


@pytest.fixture
def one_thread(monkeypatch):
    """GRAPHC_NUM_THREADS=1, where float32 GEMMs with more than one row go to oneDNN's dnnl_sgemm (if loaded)."""
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '1')
    if native.blas() is None or native.dnnl_sgemm() is None:
        pytest.skip("no oneDNN wheel (or no CBLAS): GEMMs stay on OpenBLAS")


def kinds(plan):
    return {int(r[0]) for s in segments(plan) for r in s.seg.rows}


@pytest.mark.parametrize('m', [2, 17, 64, 65])
@pytest.mark.parametrize('ta,tb', [(False, False), (True, False), (False, True), (True, True)])
def test_onednn_gemm_steps_equal_numpy(one_thread, m, ta, tb):
    """Dense (bias, then relu in the epilogue) and dot with every transpose, rows not a multiple of oneDNN's
    blocks, through dnnl_sgemm: equal to NumPy and the interpreter (float32, K up to 70: rtol/atol 1e-5)."""
    rng = np.random.default_rng(m)
    a = rng.normal(size=(70, m) if ta else (m, 70)).astype(np.float32)
    b = rng.normal(size=(33, 70) if tb else (70, 33)).astype(np.float32)
    w, bias = rng.normal(size=(9, 33)).astype(np.float32), rng.normal(size=(9,)).astype(np.float32)

    def f(a, b, w, bias):
        d = nd.dot(a, b, transpose_a=ta, transpose_b=tb)   # (m, 33)
        return nd.relu(nd.FullyConnected(d * 0.1, w, bias, num_hidden=9))
    g, opt, feed, raw = build(f, a, b, w, bias)
    plan = Plan(opt)
    assert native.DNNL_SGEMM in kinds(plan) and plan.program.dnnl is not None
    want = np.maximum(((a.T if ta else a) @ (b.T if tb else b) * 0.1) @ w.T + bias, 0)
    np.testing.assert_allclose(plan(feed)[0], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(plan(feed)[0], interpret(g, raw)[0], rtol=1e-5, atol=1e-5)


def test_onednn_gemm_takes_strided_inputs_and_other_threads_take_numpy(one_thread):
    """A non-contiguous input is copied before the call; a thread other than the one that loaded oneDNN runs
    the per-step NumPy path (runtime/onednn.available) with the same result; one row stays a GEMV."""
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(8, 30)).astype(np.float32), rng.normal(size=(12, 30)).astype(np.float32)

    def f(x, w):
        return nd.dot(nd.tanh(nd.FullyConnected(x, w, no_bias=True, num_hidden=12)), w)
    _, opt, feed, _ = build(f, x, w)
    plan = Plan(opt)
    assert native.DNNL_SGEMM in kinds(plan)
    xin = opt.inputs[0]
    wide = rng.normal(size=(8, 60)).astype(np.float32)
    strided = {**feed, xin: wide[:, ::2]}
    np.testing.assert_allclose(plan(strided)[0], np.tanh(wide[:, ::2] @ w.T) @ w, rtol=1e-5, atol=1e-5)
    got = []
    t = threading.Thread(target=lambda: got.append(plan(feed)[0]))
    t.start()
    t.join()
    np.testing.assert_allclose(got[0], np.tanh(x @ w.T) @ w, rtol=1e-5, atol=1e-5)
    _, opt1, _, _ = build(f, x[:1], w)
    assert native.SGEMV in kinds(Plan(opt1)) and native.DNNL_SGEMM not in kinds(Plan(opt1))


def test_hybridized_training_through_onednn_gemms_equals_eager(one_thread):
    """The MLP's training step (its backward GEMMs transpose both ways) through dnnl_sgemm equals eager."""
    test_hybridized_training_with_native_segments_equals_eager()


@needs_blas
@pytest.mark.parametrize('rows', [1, 3, 70])
def test_lean_call_of_a_one_segment_plan(rows):
    """A hybridized MLP that is one native segment runs through Plan.lean: equal to eager, every output a fresh
    array the next call does not write, a strided input
    and new weights (set_data) seen, and forward hooks still called once one is registered."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(64, activation='relu'), nn.Dense(256))
    net.initialize(gc.init.Xavier())
    x = nd.random.normal(shape=(rows, 30))
    want = net(x).asnumpy()
    net.hybridize()
    net(x)
    entry = net.cached_graph()
    keys = entry.data_vars + [v for _, v in entry.param_vars]
    assert entry._main_plan.lean(keys) is not None
    first = net(x)
    np.testing.assert_allclose(first.asnumpy(), want, rtol=1e-5, atol=1e-5)
    ro = x.asnumpy().copy()
    ro.flags.writeable = False   # (its address from NumPy: the buffer protocol wants a writable one)
    np.testing.assert_allclose(net(nd.NDArray(ro)).asnumpy(), want, rtol=1e-5, atol=1e-5)
    keep = first.asnumpy().copy()
    second = net(x * 2)
    assert not np.may_share_memory(first.asnumpy(), second.asnumpy())
    np.testing.assert_array_equal(first.asnumpy(), keep)
    wide = nd.random.normal(shape=(rows, 60))
    strided = nd.NDArray(wide.asnumpy()[:, ::2])
    w0 = net[0].weight
    w0.set_data(w0.data() * 0.5)
    h = np.maximum(strided.asnumpy() @ w0.data().asnumpy().T + net[0].bias.data().asnumpy(), 0)
    ref = h @ net[1].weight.data().asnumpy().T + net[1].bias.data().asnumpy()
    np.testing.assert_allclose(net(strided).asnumpy(), ref, rtol=1e-5, atol=1e-5)
    seen = []
    net.register_forward_hook(lambda blk, args, out: seen.append(out.shape))
    net(x)
    assert seen == [(rows, 256)]


@pytest.mark.parametrize('n,k', [(256, 784), (10, 256), (13, 37), (1, 5), (3, 16), (5, 1)])
@pytest.mark.parametrize('beta', [0, 1])
def test_gemv_kernel_rows_and_lanes_not_multiples_of_its_blocks(n, k, beta):
    """graphc_gemv_nt called directly: y = w @ x (+ y), rows not a multiple of GEMV_ROWS, k not one of
    GEMV_VEC (and below it); float32, rtol/atol 1e-5 (a sum in another order than NumPy's)."""
    import ctypes
    rng = np.random.default_rng(n * k)
    w, x, y = (rng.normal(size=s).astype(np.float32) for s in ((n, k), (k,), (n,)))
    want = w @ x + beta * y
    ptrs = (ctypes.c_void_p * 3)(w.ctypes.data, x.ctypes.data, y.ctypes.data)
    ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(native.gemv_nt())(ptrs, n, 2 * k + beta)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(k))


def test_onednn_switch_keeps_gemms_on_openblas(one_thread, monkeypatch):
    """GRAPHC_ONEDNN=0 (and two threads) build plans without dnnl_sgemm rows, with the same result."""
    rng = np.random.default_rng(4)
    x, w = rng.normal(size=(6, 20)).astype(np.float32), rng.normal(size=(8, 20)).astype(np.float32)
    _, opt, feed, _ = build(lambda x, w: nd.dot(nd.relu(nd.dot(x, w, transpose_b=True)), w), x, w)
    assert native.DNNL_SGEMM in kinds(Plan(opt))
    for env in (('GRAPHC_ONEDNN', '0'), ('GRAPHC_NUM_THREADS', '2')):
        with monkeypatch.context() as m:
            m.setenv(*env)
            plan = Plan(opt)
            assert native.DNNL_SGEMM not in kinds(plan) and native.SGEMM in kinds(plan), env
            np.testing.assert_allclose(plan(feed)[0], np.maximum(x @ w.T, 0) @ w, rtol=1e-5, atol=1e-5)


def test_openblas_idle_threads_sleep_when_numpy_loaded_it_first():
    """NumPy imported before graphc: OpenBLAS read its thread timeout without graphc's OPENBLAS_THREAD_TIMEOUT, and
    its idle threads would spin ~0.1 s after each GEMM; graphc's first BLAS use puts graphc's timeout in force
    (and the GEMMs still compute)."""
    import os
    import subprocess
    import sys
    code = ("import numpy as np, os\n"
            "os.environ.pop('OPENBLAS_THREAD_TIMEOUT', None)\n"
            "a = np.ones((300, 300), np.float32); a @ a\n"
            "import graphc\n"
            "from graphc.runtime import native\n"
            "lib = native.blas_library()\n"
            "if lib is None or not hasattr(lib, 'openblas_thread_timeout'): print('skip'); raise SystemExit\n"
            "assert lib.openblas_thread_timeout() == 18, lib.openblas_thread_timeout()\n"
            "assert float((a @ a)[0, 0]) == 300.0\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != 'OPENBLAS_THREAD_TIMEOUT'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    if out.stdout.strip() == 'skip':
        pytest.skip('no OpenBLAS with a thread server')
    assert out.stdout.strip() == 'ok'
