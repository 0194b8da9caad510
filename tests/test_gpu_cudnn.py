"""Convolutions on the device: cuDNN through cupyx.cudnn where cupy has it (runtime/cudnn.py), else im2col + GEMM.

No GPU here: cupy is tests/fake_cupy.py, whose cupyx.cudnn stand-in computes with graphc's Convolution reference
on the NumPy values, reading the arguments as cuDNN reads them (layouts, pad/stride/dilation pairs, groups); the
im2col kernels are the generated CUDA run by the host emulation. Each case: forward and gradients through cuDNN,
and through the fallback, equal the interpreter (rtol 1e-5, atol 1e-5: float32 sums in another order).
"""
import logging
import sys

import numpy as np
import pytest

import fake_cupy
from graphc import sym
from graphc.graph import Graph
from graphc.passes.autodiff import grad_graph
from graphc.runtime import cuda, cudnn, emulate
from graphc.symbol.symbol import input_var

pytestmark = pytest.mark.skipif(emulate.gxx_path() is None,
                                reason="g++ not on PATH: the host emulation needs a C++ compiler")
TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture
def cp(monkeypatch):
    fake_cupy.install_with_cudnn(_Setter(monkeypatch))
    monkeypatch.setattr(cudnn, 'decisions', {})
    fake_cupy.CUDNN_CALLS.clear()
    monkeypatch.setattr(fake_cupy, 'CUDNN_REFUSE', None)
    return fake_cupy


class _Setter:
    """sys.modules through monkeypatch (undone after the test)."""

    def __init__(self, mp):
        self.mp = mp

    def __setitem__(self, k, v):
        self.mp.setitem(sys.modules, k, v)


# (data shape, num_filter, kernel, stride, pad, dilate, groups, layout, bias)
CASES = [
    ((2, 3, 9, 8), 4, (3, 3), (1, 1), (1, 1), (1, 1), 1, 'NCHW', True),
    ((2, 4, 11, 10), 6, (3, 2), (2, 1), (1, 0), (1, 2), 2, 'NCHW', False),
    ((1, 6, 7, 9), 6, (2, 3), (1, 2), (0, 2), (2, 1), 6, 'NCHW', True),     # depthwise
    ((2, 9, 8, 3), 4, (3, 3), (2, 2), (1, 1), (1, 1), 1, 'NHWC', True),     # channels last: (N, H, W, C)
    ((1, 7, 6, 4), 2, (2, 2), (1, 1), (1, 0), (2, 1), 2, 'NHWC', False),
]


def _graphs(case):
    """The forward graph and the joint forward + backward graph of one Convolution, and a feed for both."""
    shape, f, k, st, pd, dl, g, layout, bias = case
    c = shape[3] if layout == 'NHWC' else shape[1]
    wshape = (f,) + k + (c // g,) if layout == 'NHWC' else (f, c // g) + k
    vs = [input_var('x', shape, 'float32'), input_var('w', wshape, 'float32')] + \
        ([input_var('b', (f,), 'float32')] if bias else [])
    y = sym.Convolution(*vs, kernel=k, stride=st, pad=pd, dilate=dl, num_filter=f, num_group=g, layout=layout,
                        no_bias=not bias)
    fwd = Graph([y._one()], [v._one()[0] for v in vs])
    joint, heads, _ = grad_graph(fwd, list(fwd.inputs))
    rng = np.random.default_rng(sum(shape) + f)
    feed = {v: rng.normal(size=v.shapes[0]).astype(np.float32) for v in list(fwd.inputs) + heads}
    return fwd, joint, feed


def _run(graph, feed):
    from graphc.interpreter import interpret
    want = interpret(graph, {v: feed[v] for v in graph.inputs})
    plan = cuda.GpuPlan(graph, fake_cupy.emu_device(0))
    got = plan({v: feed[v] for v in graph.inputs})
    assert plan.host_ops == []
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.get(), b, **TOL)
    return plan


@pytest.mark.parametrize('case', CASES, ids=lambda c: f"{c[7]}-g{c[6]}-s{c[3][0]}{c[3][1]}-d{c[5][0]}{c[5][1]}")
def test_convolution_and_its_gradients_through_cudnn_equal_the_reference(cp, case):
    shape, f, k, st, pd, dl, g, layout, bias = case
    fwd, joint, feed = _graphs(case)
    _run(fwd, feed)
    _run(joint, feed)
    calls = cp.CUDNN_CALLS
    assert [c[0] for c in calls] == ['convolution_forward', 'convolution_backward_data', 'convolution_backward_filter']
    fmt = 1 if layout == 'NHWC' else 0
    for name, ins, out, pad, stride, dilation, groups, kw in calls:
        assert (pad, stride, dilation, groups) == (pd, st, dl, g)
        assert kw['d_layout'] == kw['w_layout'] == fmt and kw['auto_tune']
    assert len(calls[0][1]) == 2 + bias  # the bias goes to cuDNN with the forward
    assert set(cudnn.decisions.values()) == {'cudnn'}


@pytest.mark.parametrize('case', [CASES[1], CASES[3]], ids=['NCHW', 'NHWC'])
def test_without_cudnn_the_im2col_path_runs_and_says_why(cp, monkeypatch, case, caplog):
    monkeypatch.setitem(sys.modules, 'cupyx.cudnn', None)  # (import raises ImportError: CuPy 14 has no cuDNN)
    fwd, joint, feed = _graphs(case)
    with caplog.at_level(logging.DEBUG, logger='graphc.cudnn'):
        plan = _run(joint, feed)
    assert not cp.CUDNN_CALLS and plan.launches == 2  # col2im, im2col
    reasons = set(cudnn.decisions.values())
    assert len(reasons) == 1 and 'cupy has no cuDNN here (ModuleNotFoundError' in reasons.pop()
    assert 'im2col: cupy has no cuDNN' in caplog.text


def test_a_configuration_cudnn_refuses_falls_back_once_with_the_reason(cp, monkeypatch):
    monkeypatch.setattr(cp, 'CUDNN_REFUSE', lambda name, pad, stride, dilation, groups: dilation != (1, 1))
    plain, refused = CASES[0], CASES[1]  # (the second is dilated)
    for case in (plain, refused):
        fwd, joint, feed = _graphs(case)
        _run(joint, feed)
        _run(joint, feed)  # the second run goes straight to im2col: cuDNN is not asked again
    names = [c[0] for c in cp.CUDNN_CALLS]
    assert names.count('convolution_backward_data') == 3  # plain twice, refused once
    assert names.count('convolution_backward_filter') == 2
    why = {k[0]: v for k, v in cudnn.decisions.items() if k[3] == (2, 1)}
    assert why == {'_backward_Convolution': 'cuDNN refused it: CuDNNError: CUDNN_STATUS_NOT_SUPPORTED: 9'}
    assert sum(v == 'cudnn' for v in cudnn.decisions.values()) == 1


def test_float64_goes_to_cudnn_and_cudnn_off_keeps_a_convolution_off_it(cp):
    shape, f, k, st, pd, dl, g, layout, bias = CASES[0]
    rng = np.random.default_rng(0)
    for dt, off in (('float64', False), ('float32', True)):
        vs = [input_var('x', shape, dt), input_var('w', (f, shape[1]) + k, dt)]
        y = sym.Convolution(*vs, kernel=k, pad=pd, num_filter=f, no_bias=True, cudnn_off=off)
        graph = Graph([y._one()], [v._one()[0] for v in vs])
        _run(graph, {v: rng.normal(size=v.shapes[0]).astype(dt) for v in graph.inputs})
    assert [c[0] for c in cp.CUDNN_CALLS] == ['convolution_forward']
    assert sorted(cudnn.decisions.values()) == ['cudnn', 'cudnn_off=True']


def test_the_emulation_check_of_the_kernels_uses_the_im2col_path(cp):
    """emulate.check_graph runs device ops with NumPy arrays: the im2col kernels, never cuDNN."""
    fwd, joint, feed = _graphs(CASES[3])
    for _, _, err in emulate.check_graph(joint, feed):
        assert err <= 1e-5
    assert not cp.CUDNN_CALLS and not cudnn.decisions


def test_lenet_trains_hybridized_through_cudnn_as_on_the_cpu(cp, monkeypatch):
    """tests/test_gpu_training.py's LeNet check (5 SGD steps, parameters within rtol 1e-4 of the CPU run, no host
    op, no host<->device copy after the first step) with every convolution through the cuDNN stand-in."""
    import test_gpu_training as tg
    from graphc import device
    from graphc.ndarray import ndarray as ndmod
    monkeypatch.setattr(device, 'make_device', fake_cupy.emu_device)
    for name, v in [('_devices', {}), ('_plans', {}), ('HOST_OPS', set()), ('SYNCED', set())]:
        monkeypatch.setattr(device, name, v)
    monkeypatch.setattr(ndmod, '_GPU_LIVE', False)
    rng = np.random.default_rng(0)
    _, host, ops = tg.compare(tg.lenet, [rng.random((4, 1, 28, 28), np.float32)], np.arange(4) % 10, cp)
    assert host == [] and not device.HOST_OPS and {'Convolution', '_backward_Convolution'} <= ops
    names = {c[0] for c in cp.CUDNN_CALLS}
    assert names == {'convolution_forward', 'convolution_backward_data', 'convolution_backward_filter'}
    assert set(cudnn.decisions.values()) == {'cudnn'}
