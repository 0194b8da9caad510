"""The Trainer's update on gc.gpu(0) as one multi-tensor kernel launch (runtime/cuda_update.py), checked without a
GPU: cupy is tests/fake_cupy.py, whose RawModule builds the kernel's CUDA source for the host with g++ and
runtime/cuda_emu.h. Against the per-parameter update on the CPU (GRAPHC_MULTI_TENSOR=0), for the optimizers and
options of tests/test_multi_tensor.py (wd, rescale_grad, clip_gradient, lr_mult/wd_mult, schedules).

Tolerance: rtol 1e-6 (float32), 1e-14 (float64) after the steps. The element code is the CPU kernel's sequence of
rounded operations, compiled without FMA contraction (--fmad=false), so on the emulation it is bit-exact; the
tolerance allows for a device's sqrt/division, which are IEEE too, and is what a real run is checked against.
"""

import numpy as np
import pytest

import fake_cupy
from graphc import gluon
from graphc.runtime import cuda, cuda_update as cu, emulate, multi_tensor as mt
from test_multi_tensor import CASES, STEPS, _backward, _flat, _params

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
