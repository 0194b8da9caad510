"""runtime/onednn.py: oneDNN's convolution, data gradient and weight/bias gradient equal a plain float64 NumPy
convolution and graphc's im2col path, over strides, pads, dilations, groups, kernel sizes, ranks and batch
sizes, in both layouts (oneDNN's blocked choice with reorders, and plain NCHW); the fallback without it."""
import itertools
import subprocess
import sys

import numpy as np
import pytest

from graphc import autograd
from graphc.ops import nn
from graphc.runtime import cpu, onednn

needs_wheel = pytest.mark.skipif(onednn.library() is None,
                                 reason="the oneDNN wheel is not installed (pip install 'graphc[onednn]')")


def attrs_of(ws, st, pd, dl, g, bias=True, need_dx=True):
    return dict(kernel=tuple(ws[2:]), stride=tuple(st), dilate=tuple(dl), pad=tuple(pd), num_filter=ws[0], num_group=g,
                no_bias=not bias, layout={3: 'NCW', 4: 'NCHW', 5: 'NCDHW'}[len(ws)], workspace=1024,
                cudnn_tune='None', cudnn_off=False, _need=(need_dx, True, True))


def reference(x, w, dy, st, pd, dl, g):
    """(y, dx, dw) in float64 by a loop over kernel taps: y sums w[:, :, tap] times the input window each tap
    reads; dx scatters dy back through the same windows; dw correlates dy with them."""
    x, w, dy = (a.astype(np.float64) for a in (x, w, dy))
    n, c = x.shape[:2]
    f, cg = w.shape[:2]
    fg, out = f // g, dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pd))
    y, dxp, dw = np.zeros(dy.shape), np.zeros(xp.shape), np.zeros(w.shape)
    for tap in itertools.product(*(range(k) for k in w.shape[2:])):
        win = (slice(None), slice(None)) + tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                                                  for t, s, d, o in zip(tap, st, dl, out))
        for i in range(g):
            fs, cs = slice(i * fg, (i + 1) * fg), slice(i * cg, (i + 1) * cg)
            xw, wt = xp[win][:, cs], w[(fs, slice(None)) + tap]
            y[:, fs] += np.einsum('fc,nc...->nf...', wt, xw)
            red = [0] + list(range(2, dy.ndim))   # (the batch and every output position)
            dw[(fs, slice(None)) + tap] += np.tensordot(dy[:, fs], xw, axes=(red, red))
            dxp[win][:, cs] += np.einsum('fc,nf...->nc...', wt, dy[:, fs])
    inner = (slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pd, x.shape[2:]))
    return y, dxp[inner], dw


# (data shape, weight shape, stride, pad, dilate, groups)
CASES = [((1, 3, 9, 9), (8, 3, 3, 3), (1, 1), (1, 1), (1, 1), 1),             # batch 1, 3 channels (a stem)
         ((4, 8, 12, 10), (16, 8, 3, 3), (2, 2), (1, 1), (1, 1), 1),          # stride 2, not square
         ((5, 16, 11, 11), (32, 16, 5, 5), (1, 1), (2, 2), (1, 1), 1),        # 5x5
         ((3, 16, 8, 8), (32, 16, 1, 1), (1, 1), (0, 0), (1, 1), 1),          # 1x1
         ((2, 32, 9, 9), (64, 32, 1, 1), (2, 2), (0, 0), (1, 1), 1),          # 1x1 stride 2
         ((3, 16, 13, 13), (16, 16, 3, 3), (1, 1), (2, 2), (2, 2), 1),        # dilation 2
         ((2, 16, 10, 10), (32, 4, 3, 3), (1, 1), (1, 1), (1, 1), 4),         # 4 groups
         ((2, 32, 8, 8), (32, 1, 3, 3), (1, 1), (1, 1), (1, 1), 32),          # depthwise
         ((64, 8, 6, 6), (16, 8, 3, 3), (1, 1), (0, 0), (1, 1), 1),           # many images
         ((2, 4, 10, 10), (8, 4, 3, 3), (3, 3), (0, 0), (1, 1), 1),           # stride 3: a row no tap reads
         ((2, 6, 9, 7), (10, 6, 3, 2), (2, 1), (0, 1), (1, 2), 1),            # every parameter differs by axis
         ((2, 4, 5, 5), (6, 4, 1, 1), (1, 1), (3, 3), (1, 1), 1),             # a pad wider than the kernel
         ((2, 3, 6, 6), (3, 1, 3, 3), (4, 4), (4, 4), (1, 1), 3),             # stride > kernel, depthwise
         ((3, 8, 20), (12, 8, 3), (2,), (1,), (1,), 1),                       # 1-d
         ((2, 6, 7), (9, 2, 3), (1,), (1,), (1,), 3),                         # 1-d, 3 groups
         ((2, 4, 6, 5, 6), (8, 4, 3, 3, 3), (1, 1, 2), (1, 0, 1), (1, 1, 1), 1)]  # 3-d
IDS = [f"{x}x{w}s{s}p{p}d{d}g{g}" for x, w, s, p, d, g in CASES]


def arrays(xs, ws, st, pd, dl, seed=0):
    rng = np.random.default_rng(seed)
    out = tuple((xs[2 + i] + 2 * pd[i] - dl[i] * (ws[2 + i] - 1) - 1) // st[i] + 1 for i in range(len(ws) - 2))
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    b, dy = rng.standard_normal(ws[0], dtype=np.float32), rng.standard_normal((xs[0], ws[0]) + out, dtype=np.float32)
    return x, w, b, dy


def close(a, ref):
    assert a.shape == ref.shape and a.dtype == np.float32
    np.testing.assert_allclose(a, ref, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(ref).max()))


@needs_wheel
@pytest.mark.parametrize('layout', ['blocked', 'nchw', 'plain'])
@pytest.mark.parametrize('xs,ws,st,pd,dl,g', CASES, ids=IDS)
def test_each_layout_equals_float64_numpy(xs, ws, st, pd, dl, g, layout):
    x, w, b, dy = arrays(xs, ws, st, pd, dl)
    y_ref, dx_ref, dw_ref = reference(x, w, dy, st, pd, dl, g)
    geo = (ws[2:], st, dl, pd, g)
    y, dx, dw, db = np.empty(dy.shape, np.float32), np.empty(xs, np.float32), np.empty(ws, np.float32), \
        np.empty(ws[0], np.float32)
    onednn._plan('fwd', xs, ws, geo, True, layout)(x, w, b, y)
    onednn._plan('bwd_data', xs, ws, geo, False, layout)(dy, w, dx)
    onednn._plan('bwd_weights', xs, ws, geo, True, layout)(x, dy, dw, db)
    close(y, y_ref + b.reshape((1, -1) + (1,) * (len(xs) - 2)))
    close(dx, dx_ref)
    close(dw, dw_ref)
    close(db, dy.astype(np.float64).sum(axis=(0,) + tuple(range(2, dy.ndim))))


@pytest.mark.parametrize('lanes', [16, 8])
def test_layout_rule_for_one_input_channel(monkeypatch, lanes):
    """LeNet's first convolution (one input channel) runs its forward blocked (oneDNN's direct kernel beats NCHW's
    GEMM one even with its large output reordered back), its weight gradient blocked on AVX-512 and im2col on AVX2
    (oneDNN's jit:avx2 kernel 3x slower there); the second layer stays blocked both ways (measured: runtime/onednn)."""
    monkeypatch.setattr(cpu, '_lanes', [lanes])
    geo = ((5, 5), (1, 1), (1, 1), (0, 0), 1)
    assert onednn.layout_for('fwd', (600, 1, 28, 28), (32, 1, 5, 5), geo) == 'blocked'
    assert onednn.layout_for('bwd_weights', (600, 1, 28, 28), (32, 1, 5, 5), geo) == ('blocked' if lanes == 16 else None)
    assert onednn.layout_for('bwd_weights', (600, 32, 12, 12), (64, 32, 5, 5), geo) == 'blocked'
    assert onednn.layout_for('fwd', (600, 32, 12, 12), (64, 32, 5, 5), geo) == 'blocked'
    assert onednn.layout_for('fwd', (600, 3, 32, 32), (64, 3, 3, 3), ((3, 3),) + geo[1:]) == 'blocked'


@needs_wheel
@pytest.mark.parametrize('xs,ws,st,pd,dl,g', CASES, ids=IDS)
def test_the_op_equals_the_im2col_path(monkeypatch, xs, ws, st, pd, dl, g):
    """The Convolution kernels with oneDNN on (the hook) and off (GRAPHC_ONEDNN=0: im2col + GEMM) agree."""
    x, w, b, dy = arrays(xs, ws, st, pd, dl, seed=1)
    a = attrs_of(ws, st, pd, dl, g)
    assert onednn.convolution(a, x, w, b) is not None and onednn.convolution_backward(a, dy, x, w) is not None
    on = (nn._convolution(a, x, w, b),) + tuple(nn._backward_convolution(a, dy, x, w))
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')
    assert onednn.convolution(a, x, w, b) is None and onednn.convolution_backward(a, dy, x, w) is None
    off = (nn._convolution(a, x, w, b),) + tuple(nn._backward_convolution(a, dy, x, w))
    for p, q in zip(on, off):
        close(p, q.astype(np.float64))


@needs_wheel
def test_non_contiguous_inputs_and_no_data_gradient():
    xs, ws, st, pd, dl, g = CASES[1]
    x, w, b, dy = arrays(xs, ws, st, pd, dl)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)   # the same values, strides swapped
    big = np.zeros(dy.shape[:1] + (dy.shape[1] * 2,) + dy.shape[2:], np.float32)
    big[:, ::2] = dy
    dyv = big[:, ::2]
    assert not xt.flags.c_contiguous and not dyv.flags.c_contiguous
    y_ref, dx_ref, dw_ref = reference(x, w, dy, st, pd, dl, g)
    a = attrs_of(ws, st, pd, dl, g)
    close(onednn.convolution(a, xt, w, b), y_ref + b.reshape(1, -1, 1, 1))
    dx, dw, db = onednn.convolution_backward(a, dyv, xt, w)
    close(dx, dx_ref)
    close(dw, dw_ref)
    dx, dw2, _ = onednn.convolution_backward(attrs_of(ws, st, pd, dl, g, need_dx=False), dy, x, w)
    assert not dx.any() and dx.shape == xs
    close(dw2, dw_ref)


@needs_wheel
def test_what_stays_on_the_numpy_path(monkeypatch):
    xs, ws, st, pd, dl, g = CASES[0]
    x, w, b, dy = arrays(xs, ws, st, pd, dl)
    a = attrs_of(ws, st, pd, dl, g)
    assert onednn.convolution(a, x.astype(np.float64), w.astype(np.float64)) is None   # float64: no oneDNN kernel
    assert onednn.convolution(dict(a, layout='NHWC'), x.transpose(0, 2, 3, 1), w) is None
    assert onednn.convolution_backward(a, dy[:, :, 1:], x, w) is None   # shapes that disagree: NumPy names them
    assert onednn.convolution(a, x, w[:, :2]) is None
    x1, w1 = np.ones((6, 8, 4, 4), np.float32), np.ones((5, 8, 4, 4), np.float32)   # one output position: a GEMM
    a1 = attrs_of(w1.shape, (1, 1), (0, 0), (1, 1), 1)
    assert onednn.convolution(a1, x1, w1) is not None   # the forward in oneDNN, the gradients in OpenBLAS
    assert onednn.convolution_backward(a1, np.ones((6, 5, 1, 1), np.float32), x1, w1) is None
    from graphc.runtime import backend
    with backend.use('interp'):   # the reference interpreter keeps the NumPy reference
        assert onednn.convolution(a, x, w, b) is None


@needs_wheel
def test_threads_follow_graphc_num_threads(monkeypatch):
    """oneDNN's OpenMP threads are GRAPHC_NUM_THREADS (the compiled kernels' count), set on the calling thread."""
    import ctypes
    get = ctypes.CDLL('libgomp.so.1').omp_get_max_threads
    xs, ws, st, pd, dl, g = CASES[1]
    x, w, b, dy = arrays(xs, ws, st, pd, dl)
    for n in (1, 2):
        monkeypatch.setenv('GRAPHC_NUM_THREADS', str(n))
        assert onednn.convolution(attrs_of(ws, st, pd, dl, g), x, w, b) is not None
        assert get() == n
    assert {key[-1] for key in onednn._plans if key[1] == xs} >= {1, 2}   # a primitive per thread count


def test_a_forked_child_stays_on_numpy(monkeypatch):
    if onednn.library() is not None:
        monkeypatch.setitem(onednn._state, 'pid', -1)
    assert not onednn.available()


def test_fallback_without_the_wheel(monkeypatch):
    """No wheel found: library() is None, the entry points return None and the op runs its im2col path."""
    monkeypatch.setattr(onednn, '_state', {})
    monkeypatch.setattr(onednn, '_find', lambda: iter(()))
    xs, ws, st, pd, dl, g = CASES[1]
    x, w, b, dy = arrays(xs, ws, st, pd, dl)
    a = attrs_of(ws, st, pd, dl, g)
    assert onednn.library() is None and not onednn.available()
    assert onednn.convolution(a, x, w, b) is None and onednn.convolution_backward(a, dy, x, w) is None
    y_ref, dx_ref, dw_ref = reference(x, w, dy, st, pd, dl, g)
    close(nn._convolution(a, x, w, b), y_ref + b.reshape(1, -1, 1, 1))
    dx, dw, _ = nn._backward_convolution(a, dy, x, w)
    close(dx, dx_ref)
    close(dw, dw_ref)


def test_import_graphc_does_not_load_onednn():
    code = ("import graphc, graphc.ops.nn, graphc.runtime.onednn\n"
            "maps = open('/proc/self/maps').read()\n"
            "assert 'libdnnl' not in maps, 'libdnnl loaded on import'\n")
    subprocess.run([sys.executable, '-c', code], check=True)


@needs_wheel
def test_a_hybridized_model_trains_the_same_with_and_without_onednn(monkeypatch):
    """The hook under the compiled plan and autograd: loss and every gradient of a small hybridized conv net
    (no max pooling or ReLU, whose ties a last-bit difference can flip) agree with GRAPHC_ONEDNN on and off."""
    import graphc as gc
    from graphc import autograd, gluon, nd
    from graphc.gluon import nn as gnn
    gc.random.seed(0)
    net = gnn.HybridSequential()
    net.add(gnn.Conv2D(16, 3, padding=1, activation='tanh'), gnn.Conv2D(16, 3, strides=2, groups=4),
            gnn.Conv2D(8, 1, activation='tanh'), gnn.Flatten(), gnn.Dense(10))
    net.initialize(gc.init.Xavier())
    net.hybridize()
    x, y = nd.random.uniform(shape=(8, 3, 12, 12)), nd.array(np.arange(8) % 10)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    out = {}
    for flag in ('1', '0'):
        monkeypatch.setenv('GRAPHC_ONEDNN', flag)
        with autograd.record():
            lv = loss(net(x), y)
        lv.backward()
        out[flag] = [lv.asnumpy()] + [p.grad().asnumpy().copy() for p in net.collect_params().values()]
    assert any(key[0] == 'bwd_weights' and key[1] == (8, 3, 12, 12) for key in onednn._plans)   # oneDNN ran
    for a, b in zip(*out.values()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(b).max()))


THREADS = """
import threading, numpy as np
from graphc import nd
from graphc.runtime import onednn
x = nd.array(np.random.default_rng(0).random((2, 2, 6, 6), np.float32))
w = nd.array(np.random.default_rng(1).random((4, 2, 3, 3), np.float32))
want = nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True).asnumpy()   # the main thread: oneDNN
got = []
def shard():
    got.append(onednn.convolution.__name__ and onednn.available())
    for _ in range(3):
        got.append(float(abs(nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True).asnumpy() - want).max()))
for _ in range(10):   # threads that start and end, two at a time (as gluon.utils.parallel's)
    ts = [threading.Thread(target=shard) for _ in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]
print(onednn.available(), max(g for g in got if g is not False), any(g is True for g in got))
"""


@needs_wheel
def test_other_threads_stay_on_numpy_and_do_not_crash():
    """A primitive run from a second thread crashed oneDNN (libgomp's) here: only the main thread uses it; other
    threads take the im2col path and get the same numbers."""
    r = subprocess.run([sys.executable, '-c', THREADS], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    main_uses, err, thread_used = r.stdout.split()
    assert main_uses == 'True' and thread_used == 'False' and float(err) < 1e-5, r.stdout


# Deconvolution: (data shape, weight shape (C_in, F/g, *k), stride, pad, dilate, adj, groups)
DECONV = [((2, 8, 5, 5), (8, 4, 3, 3), (2, 2), (1, 1), (1, 1), (1, 1), 1),        # stride 2, adj 1
          ((3, 16, 6, 6), (16, 8, 4, 4), (2, 2), (1, 1), (1, 1), (0, 0), 1),       # a DCGAN generator's
          ((2, 8, 7, 7), (8, 2, 3, 3), (1, 1), (1, 1), (2, 2), (0, 0), 4),         # groups, dilation
          ((1, 32, 4, 4), (32, 16, 5, 5), (1, 1), (2, 2), (1, 1), (0, 0), 1),      # batch 1
          ((2, 4, 9), (4, 6, 3), (3,), (0,), (1,), (2,), 1)]                       # 1-d, stride 3, adj 2


def deconv_attrs(ws, st, pd, dl, adj, g):
    return dict(kernel=tuple(ws[2:]), stride=st, dilate=dl, pad=pd, adj=adj, target_shape=(), num_filter=ws[1] * g,
                num_group=g, no_bias=False, layout={3: 'NCW', 4: 'NCHW', 5: 'NCDHW'}[len(ws)], workspace=1024,
                cudnn_tune='None', cudnn_off=False)


@needs_wheel
@pytest.mark.parametrize('xs,ws,st,pd,dl,adj,g', DECONV, ids=[str(c[:2]) for c in DECONV])
def test_deconvolution_equals_the_numpy_path(monkeypatch, xs, ws, st, pd, dl, adj, g):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal(xs, dtype=np.float32), rng.standard_normal(ws, dtype=np.float32)
    b = rng.standard_normal(ws[1] * g, dtype=np.float32)
    a = deconv_attrs(ws, st, pd, dl, adj, g)
    y = nn._deconvolution(a, x, w, b)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    assert onednn.deconvolution(a, x, w, b) is not None and onednn.deconvolution_backward(a, dy, x, w) is not None
    on = (y,) + tuple(nn._backward_deconvolution(a, dy, x, w))
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')
    off = (nn._deconvolution(a, x, w, b),) + tuple(nn._backward_deconvolution(a, dy, x, w))
    for p, q in zip(on, off):
        close(p, q.astype(np.float64))


@needs_wheel
def test_a_deconvolution_adj_past_the_stride_stays_on_numpy():
    """adj >= stride: the output has rows the equivalent Convolution does not produce; NumPy computes it."""
    xs, ws = (2, 4, 5, 5), (4, 3, 3, 3)
    x, w = np.ones(xs, np.float32), np.ones(ws, np.float32)
    a = deconv_attrs(ws, (1, 1), (0, 0), (1, 1), (1, 1), 1)
    assert onednn.deconvolution(a, x, w) is None
    assert nn._deconvolution(a, x, w).shape == (2, 3, 8, 8)


@needs_wheel
def test_the_cpu_backend_lowers_convolution_to_onednn_and_the_interpreter_does_not(monkeypatch):
    from graphc import nd
    from graphc.runtime import backend
    calls = []
    for name in ('convolution', 'convolution_backward'):
        real = getattr(onednn, name)
        monkeypatch.setattr(onednn, name, lambda *a, _f=real, _n=name: calls.append(_n) or _f(*a))
    x, w = nd.array(np.ones((2, 3, 9, 9), np.float32)), nd.array(np.ones((4, 3, 3, 3), np.float32))
    with backend.use('interp'):
        ref = nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True).asnumpy()
    assert calls == []
    x.attach_grad()
    with autograd.record():
        y = nd.Convolution(x, w, kernel=(3, 3), num_filter=4, no_bias=True)
    y.backward()
    assert calls == ['convolution', 'convolution_backward']
    np.testing.assert_allclose(y.asnumpy(), ref, rtol=1e-5)


# ---------------------------------------------------------------- Convolution (-> ReLU) -> max Pooling as one chain
CHAIN_CASES = [c for c in CASES if len(c[0]) == 4 and c[5] == 1][:6] + [CASES[6]]   # 2-d, with one grouped
POOLS = [dict(kernel=(2, 2), stride=(2, 2)),                                         # LeNet's
         dict(kernel=(3, 3), stride=(2, 2), pad=(1, 1)),                             # ResNet's stem
         dict(kernel=(2, 3), stride=(1, 2), pooling_convention='full')]              # an overhang past the edge


def chain_attrs(ws, st, pd, dl, g, bias, act, pool):
    from graphc.registry import get
    return {'conv': get('Convolution').canon(attrs_of(ws, st, pd, dl, g, bias)), 'act': act,
            'pool': get('Pooling').canon(dict(pool, pool_type='max', layout='NCHW'))}


def chain_reference(attrs, x, w, b):
    """float64: the tap-loop convolution, + bias, ReLU, and the Pooling op's NumPy reference."""
    ca = attrs['conv']
    y = reference(x, w, np.zeros((x.shape[0], w.shape[0]) + nn._conv_infer(ca, [x.shape, w.shape], [x.dtype] * 2)[0][0][2:],
                                 np.float32), ca['stride'], ca['pad'], ca['dilate'], ca['num_group'])[0]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    if attrs['act']:
        y = np.maximum(y, 0)
    return nn._pooling(attrs['pool'], y)


@needs_wheel
@pytest.mark.parametrize('pool', POOLS, ids=['k2s2', 'k3s2p1', 'k2x3full'])
@pytest.mark.parametrize('act,bias', [('relu', True), (None, True), ('relu', False)])
@pytest.mark.parametrize('xs,ws,st,pd,dl,g', CHAIN_CASES, ids=[IDS[CASES.index(c)] for c in CHAIN_CASES])
def test_conv_act_pool_chain_equals_float64_numpy(xs, ws, st, pd, dl, g, act, bias, pool):
    """oneDNN's chain, and the op's NumPy spec (passes/conv_pool.py: its parts one by one), equal float64 NumPy."""
    from graphc.passes.conv_pool import CONV_ACT_POOL
    x, w, b, _ = arrays(xs, ws, st, pd, dl, seed=2)
    a = chain_attrs(ws, st, pd, dl, g, bias, act, pool)
    ins = (x, w, b) if bias else (x, w)
    ref = chain_reference(a, *ins[:2], b if bias else None)
    y = onednn.conv_act_pool(a, *ins)
    assert y is not None, "oneDNN refused the chain"
    close(y, ref)
    close(CONV_ACT_POOL.ref(a, *ins), ref)
    assert CONV_ACT_POOL.infer(a, [v.shape for v in ins], [v.dtype for v in ins])[0] == [ref.shape]


@needs_wheel
@pytest.mark.parametrize('bias2', [True, False])
def test_a_linked_chain_equals_its_two_chains(bias2):
    """A chain reading a chain ('then': LeNet's conv1-pool1 -> conv2-pool2) runs as one oneDNN _Step whose first
    pooled output never leaves the blocked layout: it equals float64 NumPy of the two chains, and so does the op's
    spec; its inputs are the first chain's then the second's weight (and bias)."""
    from graphc.passes.conv_pool import CONV_ACT_POOL
    xs, ws = (3, 2, 14, 14), (8, 2, 3, 3)
    x, w, b, _ = arrays(xs, ws, (1, 1), (1, 1), (1, 1), seed=4)
    a1 = chain_attrs(ws, (1, 1), (1, 1), (1, 1), 1, True, 'relu', POOLS[0])
    ws2 = (16, 8, 3, 3)
    rng = np.random.default_rng(5)
    w2, b2 = rng.standard_normal(ws2, dtype=np.float32) * 0.2, rng.standard_normal(16, dtype=np.float32)
    a2 = chain_attrs(ws2, (1, 1), (0, 0), (1, 1), 1, bias2, None, POOLS[1])
    a = dict(a1, then=a2)
    ins = (x, w, b, w2) + ((b2,) if bias2 else ())
    ref = chain_reference(a2, chain_reference(a1, x, w, b).astype(np.float32), w2, b2 if bias2 else None)
    y = onednn.conv_act_pool(a, *ins)
    assert y is not None, "oneDNN refused the linked chain"
    close(y, ref)
    close(CONV_ACT_POOL.ref(a, *ins), ref)
    assert CONV_ACT_POOL.infer(a, [v.shape for v in ins], [v.dtype for v in ins])[0] == [ref.shape]
    assert CONV_ACT_POOL.input_names(a) == ('data', 'weight', 'bias', 'weight2') + (('bias2',) if bias2 else ())


@needs_wheel
def test_conv_act_pool_leaves_what_it_cannot_run_to_the_parts(monkeypatch):
    xs, ws, st, pd, dl, g = CASES[1]
    x, w, b, _ = arrays(xs, ws, st, pd, dl)
    a = chain_attrs(ws, st, pd, dl, g, True, 'relu', POOLS[0])
    assert onednn.conv_act_pool(dict(a, pool=dict(a['pool'], pool_type='avg')), x, w, b) is None
    assert onednn.conv_act_pool(a, x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)) is None
    monkeypatch.setenv('GRAPHC_ONEDNN', '0')
    assert onednn.conv_act_pool(a, x, w, b) is None


def _lenet_like():
    from graphc.gluon import nn as gnn
    net = gnn.HybridSequential()
    net.add(gnn.Conv2D(8, 3, activation='relu'), gnn.MaxPool2D(2, 2), gnn.Conv2D(16, 3), gnn.MaxPool2D(3, 2, 1),
            gnn.Conv2D(8, 3, padding=1, activation='relu'), gnn.Flatten(), gnn.Dense(10))
    net.initialize()
    return net


@pytest.mark.parametrize('wheel', [True, False], ids=['onednn', 'no-wheel'])
def test_the_conv_pool_pass_in_a_hybridized_model(monkeypatch, wheel):
    """Inference: both conv -> pool chains become one op each (with ReLU and without), the second linked to the first
    (one op: the first's pooled output stays in oneDNN's layout), and the compiled model equals the
    eager one, with oneDNN and without it (the op's parts then run one by one); GRAPHC_DISABLE_PASSES=conv_pool
    keeps the ops. A training step's forward saves the intermediates, so there it changes nothing."""
    import graphc as gc
    from graphc import nd
    if wheel and onednn.library() is None:
        pytest.skip("the oneDNN wheel is not installed")
    if not wheel:
        monkeypatch.setattr(onednn, '_state', {})
        monkeypatch.setattr(onednn, '_find', lambda: iter(()))
    x = nd.array(np.random.default_rng(3).standard_normal((4, 3, 20, 20), dtype=np.float32))
    net = _lenet_like()
    want = net(x).asnumpy()
    net.hybridize()
    close(net(x).asnumpy(), want.astype(np.float64))
    text = gc.explain(net, x)   # (the second chain reads the first: linked, one op)
    assert 'chains=2' in text and 'linked=1' in text and text.count('_conv_act_pool  ->') == 1
    assert 'chains=0' in gc.explain(net, x, training=True)
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'conv_pool')
    assert '_conv_act_pool  ->' not in gc.explain(net, x)


@pytest.mark.parametrize('also', ['conv', 'relu'])
def test_the_conv_pool_pass_keeps_a_chain_whose_intermediate_is_read_elsewhere(also):
    import graphc as gc
    from graphc import nd
    from graphc.gluon import HybridBlock

    class Two(HybridBlock):
        def hybrid_forward(self, F, x):
            c = F.Convolution(x, F.ones((4, 3, 3, 3)), kernel=(3, 3), num_filter=4, no_bias=True)
            r = F.Activation(c, act_type='relu')
            return F.Pooling(r, kernel=(2, 2), stride=(2, 2), pool_type='max'), (c if also == 'conv' else r)
    net = Two()
    net.hybridize()
    x = nd.ones((2, 3, 10, 10))
    net(x)
    assert 'chains=0' in gc.explain(net, x)


# ---------------------------------------------------------------- max pooling's gradient times ReLU's mask, one kernel
@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('shape,pool', [((3, 4, 8, 8), dict(kernel=(2, 2), stride=(2, 2))),           # LeNet's
                                        ((2, 3, 9, 7), dict(kernel=(2, 2), stride=(2, 2))),           # an edge no window reads
                                        ((2, 3, 9, 9), dict(kernel=(3, 3), stride=(3, 3), pad=(1, 1))),
                                        ((2, 2, 7, 8), dict(kernel=(2, 3), stride=(3, 3))),           # gaps between windows
                                        ((2, 3, 7, 7), dict(kernel=(2, 2), stride=(2, 2), pooling_convention='full'))],
                         ids=['k2s2', 'edge', 'k3s3p1', 'gaps', 'full'])
def test_backward_pool_relu_equals_the_two_ops(shape, pool, dtype):
    """The compiled kernel and the op's spec equal _backward_Pooling's NumPy reference times (c > 0), ties and
    zeros included (c: a ReLU's input; x = relu(c) has whole windows of zeros)."""
    from graphc.passes.conv_pool import BACKWARD_POOL_RELU
    from graphc.registry import get
    from graphc.runtime import conv
    rng = np.random.default_rng(4)
    c = rng.standard_normal(shape).astype(dtype)
    c[0, 0, :2] = 0.5   # a tie inside a window: the first maximum takes the gradient
    x = np.maximum(c, 0)
    a = get('Pooling').canon(dict(pool, pool_type='max'))
    y = nn._pooling(a, x)
    g = rng.standard_normal(y.shape).astype(dtype)
    want = nn._backward_pooling(a, g, x, y) * (c > 0).astype(dtype)
    got = BACKWARD_POOL_RELU.ref(a, g, x, y, c, native=conv)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(BACKWARD_POOL_RELU.ref(a, g, x, y, c), want)
    k, st, pd, _, out = nn.pool_geom(a, shape)
    assert conv.maxpool_grad_relu(g, x, y, c, k, st, pd, out) is not None
    assert conv.maxpool_grad_relu(g, x, y, c, (3, 3), (2, 2), pd, out) is None   # overlapping windows: the two ops


def _eager_and_hybrid_grads(seed):
    """(the hybridized net, its input, [eager grads, hybridized grads]) of a LeNet-like training step."""
    import graphc as gc
    from graphc import gluon, nd
    x = nd.array(np.random.default_rng(seed).standard_normal((4, 3, 20, 20), dtype=np.float32))
    y = nd.array(np.arange(4), dtype='int32')
    grads = []
    for hybrid in (False, True):
        gc.random.seed(0)
        net = _lenet_like()
        net(x)
        if hybrid:
            net.hybridize()
        with autograd.record():
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), y)
        loss.backward()
        grads.append([p.grad().asnumpy() for p in net.collect_params().values()])
    return net, x, grads


def test_a_training_step_fuses_the_pool_and_relu_gradients():
    """LeNet-like training: each max pooling's gradient and the ReLU mask before it are one op in the backward
    (not where windows overlap, the second pooling), and the gradients equal the eager model's."""
    import graphc as gc
    net, x, grads = _eager_and_hybrid_grads(5)
    assert 'pool_relu_grads=1' in gc.explain(net, x, training=True)
    for p, q in zip(*grads):
        close(q, p.astype(np.float64))


def test_a_relu_backward_reads_its_output_not_its_input():
    """ReLU's gradient is dy * (y > 0), y its output (exactly where x > 0): a training step keeps each conv ->
    ReLU's output for the backward and not the convolution's output too (LeNet's first: 44 MB at batch 600),
    and the forward writes one array per conv + ReLU; the gradients equal the eager model's."""
    import graphc as gc
    from graphc import nd
    net, x, grads = _eager_and_hybrid_grads(6)
    for p, q in zip(*grads):
        close(q, p.astype(np.float64))
    text = gc.explain(net, x, training=True)
    saved = [line.split()[0] for line in text.split('-- training step')[1].split('\n--')[0].split('\n')[1:]]
    relus = [s for s in saved if s.endswith('_relu_fwd_saved0')]
    assert len(relus) == 2 and not [s for s in relus if s.replace('_relu', '') in saved], saved   # inputs: not kept
    x0 = nd.array([[-1.0, 0.0, -0.0, 2.0, np.nan]])
    x0.attach_grad()
    with autograd.record():
        r = nd.relu(x0)
    r.backward(nd.ones_like(r))
    np.testing.assert_array_equal(x0.grad.asnumpy(), [[0, 0, 0, 1, 0]])



@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_compiled_2x2_max_pooling_and_gradient_equal_the_reference(dtype):
    """The vectorized 2x2 stride-2 max pooling and its gradient times a ReLU mask (8 and 4 windows at a time,
    then one by one) equal the NumPy references on row lengths from 1 to 21 (odd inputs too: the last column no
    window reads), with NaN, -inf, ties (the first maximum takes the gradient) and zeros in the windows."""
    from graphc.registry import get
    from graphc.runtime import conv
    rng = np.random.default_rng(7)
    a = get('Pooling').canon(dict(kernel=(2, 2), stride=(2, 2), pool_type='max'))
    for w in range(2, 44, 3):
        x = rng.standard_normal((2, 3, 6, w)).astype(dtype)
        x[0, 0, :2, :2] = -np.inf
        x[0, 1, 0, 0] = np.nan
        x[1, 2] = np.round(x[1, 2])   # ties and zeros
        want = nn._pooling(a, x)
        k, st, pd, _, out = nn.pool_geom(a, x.shape)
        got = conv.maxpool(x, k, st, pd, out)
        np.testing.assert_array_equal(got, want)
        assert np.isneginf(got[0, 0, 0, 0]) and np.isnan(got[0, 1, 0, 0])
        c = np.round(rng.standard_normal(x.shape) * 2).astype(dtype) / 2   # ties in windows, zeros
        r = np.maximum(c, 0)
        y = nn._pooling(a, r)
        g = rng.standard_normal(y.shape).astype(dtype)
        for mask in (r, c):   # (the mask from the ReLU's output, as the backward passes it, or its input)
            dx = conv.maxpool_grad_relu(g, r, y, mask, k, st, pd, out)
            np.testing.assert_array_equal(dx, nn._backward_pooling(a, g, r, y) * (mask > 0).astype(dtype))
