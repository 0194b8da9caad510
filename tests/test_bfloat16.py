"""bfloat16 NDArrays and Block.cast('bfloat16'): ml_dtypes' NumPy dtype (NumPy has none; JAX, ONNX and CuPy 14 use
it), imported on first use.

- Host ops compute in float32 on upcast inputs and round each output back to nearest even (base.bf16_kernel),
  eagerly and in a hybridized block's CPU plan (nothing compiles for bfloat16 there: every step runs its kernel
  so), so hybridized equals eager exactly; against the float32 op on the same inputs, within one bfloat16 eps
  (2^-7) relative to max(1, max |reference|), two for a GEMM plus bias (each rounds once). A GEMM over 2048
  positive terms shows the accumulation is float32 (a bfloat16 running sum is off by far more).
- A net cast to bfloat16 trains (CPU eager, CPU hybridized, and gc.gpu(0) in the host emulation of the CUDA
  kernels, tests/fake_cupy.py) with multi_precision=True: float32 masters, each weight its master's cast, the
  masters within tol of the float32 run's movement (6% for the MLP on the CPU: measured 2.8%, float16's 1.3%).
"""
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, base, nd
from graphc.runtime import emulate

ml_dtypes = pytest.importorskip('ml_dtypes')
BF16 = np.dtype(ml_dtypes.bfloat16)
EPS = 2.0 ** -7


def bf(a):
    return np.asarray(a, np.float32).astype(BF16)


def err(got, want):
    return emulate.max_error(np.asarray(got, np.float32), np.asarray(want, np.float32))[1]


def test_bfloat16_by_name_type_and_mxnets_record_dtype():
    for dt in ('bfloat16', ml_dtypes.bfloat16, BF16, np.dtype([('bfloat16', np.uint16)])):  # (the last: MXNet's)
        a = nd.array([1.0, 2.5, 3.14159], dtype=dt)
        assert a.dtype == BF16 and a.asnumpy().dtype == BF16
    np.testing.assert_array_equal(a.astype('float32').asnumpy(), [1.0, 2.5, 3.140625])  # (nearest even)
    assert nd.zeros((2, 3), dtype='bfloat16').dtype == BF16


def test_without_ml_dtypes_bfloat16_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, 'ml_dtypes', None)  # (import fails)
    monkeypatch.setattr(base, 'BF16', [None])
    with pytest.raises(gc.GraphcError, match=r"bfloat16 needs the ml_dtypes package.*pip install ml_dtypes"):
        nd.array([1.0], dtype='bfloat16')


def _ops(x, y, w, b, img, k):
    """Ops of every kind on bfloat16 NDArrays (or their float32 forms): elementwise, broadcast, reductions,
    softmax, GEMMs, a convolution and pooling."""
    return {'ew': nd.tanh(x) * nd.sigmoid(y) + nd.relu(x - 0.3) / (nd.abs(y) + 1),
            'broadcast': nd.broadcast_mul(x, nd.exp(x[0:1] * 0.1)),
            'sum': nd.sum(x * x, axis=1), 'mean': nd.mean(x, axis=0), 'max': nd.max(y, axis=1),
            'softmax': nd.softmax(x, axis=-1), 'log_softmax': nd.log_softmax(y, axis=1),
            'fc': nd.FullyConnected(x, w, b, num_hidden=w.shape[0]), 'dot': nd.dot(x, y, transpose_b=True),
            'conv': nd.Convolution(img, k, no_bias=True, kernel=(3, 3), pad=(1, 1), num_filter=k.shape[0]),
            'pool': nd.Pooling(img, kernel=(2, 2), stride=(2, 2), pool_type='max')}


def test_eager_ops_in_bfloat16_are_float32_ops_rounded_once():
    rng = np.random.default_rng(0)
    arrays = [bf(rng.normal(size=s)) for s in [(6, 40), (6, 40), (5, 40), (5,), (2, 3, 8, 8), (4, 3, 3, 3)]]
    got = _ops(*[nd.array(a, dtype='bfloat16') for a in arrays])
    want = _ops(*[nd.array(a.astype(np.float32)) for a in arrays])
    for tag, g in got.items():
        assert g.dtype == BF16, tag
        tol = 2 * EPS if tag == 'fc' else EPS
        assert err(g.asnumpy(), bf(want[tag].asnumpy())) <= tol, (tag, err(g.asnumpy(), bf(want[tag].asnumpy())))


def test_eager_bfloat16_ops_on_the_gpu_equal_the_cpus(cp):
    """The same ops on gc.gpu(0) (the stand-in, kernels in emulation: loads to float, one rounding on store; GEMMs
    through runtime/cuda.matmul) within one eps of the CPU's bfloat16 results, none of them on the host."""
    from graphc import device
    if emulate.gxx_path() is None:
        pytest.skip("g++ not on PATH: the host emulation needs a C++ compiler")
    rng = np.random.default_rng(4)
    arrays = [bf(rng.normal(size=s)) for s in [(6, 40), (6, 40), (5, 40), (5,), (2, 3, 8, 8), (4, 3, 3, 3)]]
    want = _ops(*[nd.array(a, dtype='bfloat16') for a in arrays])
    got = _ops(*[nd.array(a, ctx=gc.gpu(0), dtype='bfloat16') for a in arrays])
    assert not device.HOST_OPS
    for tag, g in got.items():
        assert g.dtype == BF16 and g.context == gc.gpu(0), tag
        assert err(g.asnumpy(), want[tag].asnumpy()) <= EPS, (tag, err(g.asnumpy(), want[tag].asnumpy()))


def test_a_bfloat16_op_without_a_cuda_form_runs_on_the_host_and_comes_back(cp):
    """sort has no CUDA kernel: on gc.gpu(0) it runs its host kernel (in float32, rounded back) on copies, with the
    warning, and its result is a bfloat16 array on the device."""
    from graphc import device
    x = bf([3.0, 1.0, 2.5, -7.0])
    with pytest.warns(UserWarning, match="sort has no CUDA kernel"):
        y = nd.sort(nd.array(x, ctx=gc.gpu(0), dtype='bfloat16'))
    assert y.dtype == BF16 and y.context == gc.gpu(0) and 'sort' in device.HOST_OPS
    np.testing.assert_array_equal(y.asnumpy().astype(np.float32), np.sort(x.astype(np.float32)))


def test_a_bfloat16_gemm_accumulates_in_float32():
    """2048 positive products: summed in bfloat16 (each partial sum rounded) the result is off by far more than an
    eps; graphc's, within one."""
    rng = np.random.default_rng(1)
    a, b = bf(rng.random((1, 2048))), bf(rng.random((2048, 1)))
    exact = float((a.astype(np.float64) @ b.astype(np.float64))[0, 0])
    got = float(nd.dot(nd.array(a, dtype=BF16), nd.array(b, dtype=BF16)).astype('float32').asnumpy()[0, 0])
    assert abs(got - exact) <= EPS * exact
    acc = BF16.type(0)
    for p, q in zip(a[0], b[:, 0]):
        acc = BF16.type(float(acc) + float(p) * float(q))
    assert abs(float(acc) - exact) > 4 * EPS * exact


def test_bfloat16_gradients_and_hybridized_equal_eager():
    """Forward and gradients of a small conv net in bfloat16: hybridized (the CPU plan runs each op as eager does)
    equals eager exactly, and both are within a few eps of float32."""
    from graphc.gluon import nn

    def net_of(dtype):
        gc.random.seed(3)
        net = nn.HybridSequential()
        net.add(nn.Conv2D(4, 3, padding=1, in_channels=2, activation='relu'), nn.MaxPool2D(2),
                nn.Dense(8, activation='tanh'), nn.Dense(3))
        net.initialize(gc.init.Xavier())
        net(nd.zeros((1, 2, 6, 6)))
        net.cast(dtype)
        return net
    x = bf(np.random.default_rng(2).normal(size=(3, 2, 6, 6)))
    runs = []
    for dtype, hyb in [('bfloat16', False), ('bfloat16', True), ('float32', False)]:
        net = net_of(dtype)
        net.hybridize(hyb)
        data = nd.array(x, dtype=dtype)
        with autograd.record():
            y = net(data)
            loss = (y * y).sum()
        loss.backward()
        runs.append([y.asnumpy()] + [p.grad().asnumpy() for p in net.collect_params().values()])
        assert all(a.dtype == np.dtype(dtype) for a in runs[-1])
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a.view(np.uint16), b.view(np.uint16))
    for a, c in zip(runs[0], runs[2]):
        assert err(a, c) <= 16 * EPS, err(a, c)


@pytest.mark.parametrize('hybridize', [False, True], ids=['eager', 'hybridized'])
def test_block_cast_bfloat16_trains_on_the_cpu_with_float32_masters(hybridize):
    import test_gpu_amp as amp
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 20)).astype(np.float32), np.arange(8) % 10
    w0, want, _, _ = amp.train(amp.mlp, gc.cpu(), x, y, False)
    _, got, net, _ = amp.train(amp.mlp, gc.cpu(), x, y, 'bfloat16', hybridize=hybridize)
    for a, b, c, p in zip(got, want, w0, net.collect_params().values()):
        moved = np.linalg.norm(b - c)
        assert moved > 0 and np.linalg.norm(a - b) <= 0.06 * moved, (p.name, np.linalg.norm(a - b) / moved)


def _real_gpu():
    from graphc.context import gpu_support
    return gpu_support()


REAL_OK, REAL_WHY = _real_gpu()


@pytest.mark.skipif(not REAL_OK, reason=f"no usable GPU: {REAL_WHY}")
def test_on_a_real_gpu_block_cast_bfloat16_trains_with_float32_masters():
    """The MLP cast to bfloat16, 5 hybridized steps on gc.gpu(0) through real cupy (CuPy 14 holds ml_dtypes'
    bfloat16; NVRTC kernels with cuda_bf16.h): the masters within 6% of the float32 CPU run's movement."""
    import test_gpu_amp as amp
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 20)).astype(np.float32), np.arange(8) % 10
    w0, want, _, _ = amp.train(amp.mlp, gc.cpu(), x, y, False)
    _, got, net, _ = amp.train(amp.mlp, gc.gpu(0), x, y, 'bfloat16')
    for a, b, c, p in zip(got, want, w0, net.collect_params().values()):
        moved = np.linalg.norm(b - c)
        assert moved > 0 and np.linalg.norm(a - b) <= 0.06 * moved, (p.name, np.linalg.norm(a - b) / moved)
