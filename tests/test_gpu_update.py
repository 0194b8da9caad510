"""The Trainer's update on gc.gpu(0) as one multi-tensor kernel launch (runtime/cuda_update.py), checked without a
GPU: cupy is tests/fake_cupy.py, whose RawModule builds the kernel's CUDA source for the host with g++ and
runtime/cuda_emu.h. Against the per-parameter update on the CPU (GRAPHC_MULTI_TENSOR=0), for the optimizers and
options of tests/test_multi_tensor.py (wd, rescale_grad, clip_gradient, lr_mult/wd_mult, schedules).

Tolerance: rtol 1e-6 (float32), 1e-14 (float64) after the steps. The element code is the CPU kernel's sequence of
rounded operations, compiled without FMA contraction (--fmad=false), so on the emulation it is bit-exact; the
tolerance allows for a device's sqrt/division, which are IEEE too, and is what a real run is checked against.
"""

import contextlib

import numpy as np
import pytest

import fake_cupy
from graphc import autograd, gluon, nd
from graphc.runtime import cuda, cuda_update as cu, emulate, multi_tensor as mt
from test_multi_tensor import CASES, SHAPES, STEPS, _backward, _flat, _params

import graphc as gc

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")


def _run(monkeypatch, opt, params, dtype, ctx, fused):
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1' if fused else '0')
    ps = _params(dtype, ctx)
    tr = gluon.Trainer(ps, opt, {k: v() if callable(v) else v for k, v in params.items()})
    calls, copies = [], []
    for s in range(STEPS):
        _backward(ps, s)
        c0, k0 = mt.stats['calls'], dict(fake_cupy.COPIES)
        tr.step(3)
        calls.append(mt.stats['calls'] - c0)
        copies.append(fake_cupy.COPIES != k0)
    states = [a.asnumpy() for upd in tr._updaters for _, st in sorted(upd.states.items()) for a in _flat(st)]
    return [w.asnumpy() for p in ps for w in p.list_data()] + states, calls, copies


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('opt,params', CASES, ids=[f'{o}-{i}' for i, (o, _) in enumerate(CASES)])
def test_device_update_equals_per_parameter_cpu(cp, monkeypatch, opt, params, dtype):
    got, calls, copies = _run(monkeypatch, opt, params, dtype, gc.gpu(0), True)
    want, _, _ = _run(monkeypatch, opt, params, dtype, gc.cpu(), False)
    assert calls == [1] * STEPS  # one launch per step updates every parameter
    assert not any(copies[1:])   # the row table went over once; the scalars are launch arguments
    tol = 1e-6 if dtype == "float32" else 1e-14
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
    init = [np.asarray(p.data().asnumpy()) for p in _params(dtype)]
    assert not all(np.array_equal(w, p) for w, p in zip(got, init))


def test_more_scalar_classes_than_a_launch_takes_fall_back(cp, monkeypatch):
    """Five tensors with five learning rates: more classes than CLASSES, so the per-parameter path runs (on the
    device, eager ops), with the same result."""
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1')
    out = []
    for ctx in (gc.gpu(0), gc.cpu()):
        ps = _params('float32', ctx, shapes=[(3,)] * (cu.CLASSES + 1))
        for k, p in enumerate(ps):
            p.lr_mult = 1.0 + k
        tr = gluon.Trainer(ps, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9})
        c0 = mt.stats['calls']
        _backward(ps, 0)
        tr.step(1)
        assert mt.stats['calls'] == c0 + (ctx.device_type == 'cpu')
        out.append([p.data().asnumpy() for p in ps])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.skipif(cuda.nvcc_path() is None, reason="nvcc not on PATH")
@pytest.mark.parametrize('kind,opts,nstate', [('sgd', (False, False), 0), ('sgd', (True, True), 1),
                                              ('nag', (True, True), 1), ('adam', (True,), 2), ('adamw', (False,), 2),
                                              ('rmsprop', (True, True, True), 3), ('adagrad', (True,), 1)])
@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_update_kernels_compile_with_nvcc(kind, opts, nstate, dtype):
    src, _ = cu.source('graphc_update_test', kind, dtype, opts, nstate, (False, True))
    cuda.nvcc(src)  # sm_80 and sm_90, every warning an error


# ---------------------------------------------------------------- 16-bit weights with float32 masters
F16, BF16 = np.dtype(np.float16), cuda.BF16
FORMATS = [pytest.param(F16, id='float16'),
           pytest.param(BF16, id='bfloat16', marks=pytest.mark.skipif(BF16 is None, reason="bfloat16 needs ml_dtypes"))]
EPS = {F16: 2.0 ** -10, BF16: 2.0 ** -7}
MIXED = [c for c in CASES if not c[1].get('centered')]  # (centered RMSProp's three states and the master: 6 pointers)


def _mixed_params(dtypes, ctx):
    rng = np.random.default_rng(1)
    ps = []
    for k, (shape, dt) in enumerate(zip(SHAPES, dtypes)):
        p = gluon.Parameter(f'p{k}', shape=shape, dtype=dt)
        p.initialize(ctx=ctx)
        p.set_data(nd.array(rng.standard_normal(shape), dtype=dt))
        ps.append(p)
    ps[1].lr_mult, ps[2].wd_mult, ps[3].wd_mult = 0.5, 3.0, 0.0  # (p3 without wd: both wd cases in a kernel)
    return ps


def _exact_grads(ps, step):
    """Gradient a (drawn per step, in the weight's dtype) through backward of (w * a).sum(): the same bits on the
    CPU and on the device, so the runs differ only by their updates."""
    rng = np.random.default_rng(100 + step)
    for p in ps:
        a = nd.array(rng.standard_normal(p.shape), dtype=p.dtype, ctx=p.list_ctx()[0])
        w = p.data()
        with autograd.record():
            loss = (w * a).sum()
        loss.backward()


def _mixed_run(monkeypatch, opt, params, dtypes, ctx, fused):
    """16-bit weights, float32 masters and states after STEPS steps (multi_precision=True), and the launches per
    step."""
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1' if fused else '0')
    ps = _mixed_params(dtypes, ctx)
    kw = {k: v() if callable(v) else v for k, v in params.items()}
    tr = gluon.Trainer(ps, opt, dict(kw, multi_precision=True))
    calls = []
    for s in range(STEPS):
        _exact_grads(ps, s)
        c0 = mt.stats['calls']
        tr.step(3)
        calls.append(mt.stats['calls'] - c0)
    upd, o = tr._updaters[0], tr._optimizer
    for i, p in enumerate(ps):  # each 16-bit weight is its master rounded to nearest even
        if o._use_mp(p.data()):
            master = o._mp_unpack(upd.states[i])[0]
            assert master.dtype == np.float32
            np.testing.assert_array_equal(p.data().asnumpy(), master.asnumpy().astype(p.dtype), err_msg=p.name)
    states = [a.asnumpy() for _, st in sorted(upd.states.items()) for a in _flat(st)]
    return [p.data().asnumpy() for p in ps], states, calls


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('opt,params', MIXED, ids=[f'{o}-{i}' for i, (o, _) in enumerate(MIXED)])
def test_16bit_weights_with_float32_masters_update_in_one_launch(cp, monkeypatch, opt, params, fmt):
    """Float16 or bfloat16 weights with multi_precision=True on gc.gpu(0): one launch of the mixed kernel per step
    (it reads the 16-bit gradient, updates the float32 master and states, stores the weight rounded), equal to
    the per-parameter path on the CPU after STEPS steps: masters and states within rtol 1e-6 (float32; bit-exact
    in the emulation), the 16-bit weights within one ulp of their format (a master within 1e-6 can round the
    other way)."""
    dts = [fmt] * len(SHAPES)
    got, got_s, calls = _mixed_run(monkeypatch, opt, params, dts, gc.gpu(0), True)
    want, want_s, want_calls = _mixed_run(monkeypatch, opt, params, dts, gc.cpu(), False)
    assert calls == [1] * STEPS and want_calls == [0] * STEPS
    for g, w in zip(got_s, want_s):
        assert g.dtype == w.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype == fmt
        np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=EPS[fmt], atol=EPS[fmt])
    init = [p.data().asnumpy() for p in _mixed_params(dts, None)]
    assert not all(np.array_equal(g, p) for g, p in zip(got, init))  # (a bfloat16 step can be below half an ulp)


@pytest.mark.parametrize('fmt', FORMATS)
def test_one_launch_per_dtype_group_equals_the_per_parameter_device_path(cp, monkeypatch, fmt):
    """A Trainer holding float32 and 16-bit weights (a net cast to float16 keeps BatchNorm's in float32): one
    launch per dtype group, two per step, with every array equal to the per-parameter path's on the device."""
    dts = [fmt, np.float32, fmt, np.float32]
    for opt, params in [('sgd', {'momentum': 0.9, 'wd': 0.01, 'clip_gradient': 0.05}),
                        ('adam', {'wd': 0.01, 'rescale_grad': 0.5})]:
        got, got_s, calls = _mixed_run(monkeypatch, opt, params, dts, gc.gpu(0), True)
        want, want_s, _ = _mixed_run(monkeypatch, opt, params, dts, gc.gpu(0), False)
        assert calls == [2] * STEPS
        for g, w in zip(got + got_s, want + want_s):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)  # the same rounded operations (emulation)


def test_16bit_weights_the_mixed_kernel_cannot_take_fall_back(cp, monkeypatch):
    """Centered RMSProp (master and three states: more pointers than a row has) and float16 weights without
    multi_precision (float16 arithmetic, which the kernel does not do) take the per-parameter path."""
    for opt, params, mp in [('rmsprop', {'centered': True, 'wd': 0.01}, True), ('sgd', {'momentum': 0.9}, False)]:
        monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1')
        ps = _mixed_params([F16] * len(SHAPES), gc.gpu(0))
        before = [p.data().asnumpy() for p in ps]
        tr = gluon.Trainer(ps, opt, dict(params, multi_precision=mp))
        c0 = mt.stats['calls']
        with contextlib.nullcontext() if mp else pytest.warns(UserWarning, match='multi_precision'):
            _exact_grads(ps, 0)
            tr.step(1)
        assert mt.stats['calls'] == c0
        assert all(not np.array_equal(p.data().asnumpy(), b) for p, b in zip(ps, before))


@pytest.mark.skipif(cuda.nvcc_path() is None, reason="nvcc not on PATH")
@pytest.mark.parametrize('kind,opts,nstate', [('sgd', (False, False), 0), ('sgd', (True, True), 1),
                                              ('nag', (True, True), 1), ('adam', (True,), 2), ('adamw', (False,), 2),
                                              ('rmsprop', (True, False, True), 1), ('adagrad', (True,), 1)])
@pytest.mark.parametrize('fmt', FORMATS)
def test_mixed_update_kernels_compile_with_nvcc(kind, opts, nstate, fmt):
    src, _ = cu.source('graphc_update_test', kind, 'float32', opts, nstate, (False, True), fmt)
    assert src.startswith('#include <cuda_')
    cuda.nvcc(src)  # sm_80 and sm_90, every warning an error


def _real_gpu():
    from graphc.context import gpu_support
    return gpu_support()


REAL_OK, REAL_WHY = _real_gpu()


@pytest.mark.skipif(not REAL_OK, reason=f"no usable GPU: {REAL_WHY}")
@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('opt,params', [MIXED[5], MIXED[10], MIXED[12]], ids=['sgd', 'adam', 'adamw'])
def test_on_a_real_gpu_the_mixed_update_equals_the_cpu(monkeypatch, opt, params, fmt):
    """The mixed kernel through real cupy (NVRTC with cuda_fp16.h / cuda_bf16.h), one launch per step, against
    the CPU's per-parameter path: the tolerances of test_16bit_weights_with_float32_masters_update_in_one_launch."""
    dts = [fmt] * len(SHAPES)
    got, got_s, calls = _mixed_run(monkeypatch, opt, params, dts, gc.gpu(0), True)
    want, want_s, _ = _mixed_run(monkeypatch, opt, params, dts, gc.cpu(), False)
    assert calls == [1] * STEPS
    for g, w in zip(got_s, want_s):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.astype(np.float32), w.astype(np.float32), rtol=EPS[fmt], atol=EPS[fmt])
