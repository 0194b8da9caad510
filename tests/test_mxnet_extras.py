"""Smaller MXNet 1.9 names: gluon.contrib.nn.PixelShuffle1D/2D/3D, transforms.CropResize/RandomApply,
gluon.tensor_types, mx.cpu_pinned, mx.visualization."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd
from graphc.gluon.contrib.nn import PixelShuffle1D, PixelShuffle2D, PixelShuffle3D
from graphc.gluon.data.vision import transforms as T


def _shuffle_ref(x, f):
    """NumPy: (N, C*prod(f), X1..Xd) -> (N, C, X1*f1, ..., Xd*fd), out[n, c, x*f + i] = in[n, c*f + i, x]."""
    n, d = x.shape[0], len(f)
    sp = x.shape[2:]
    y = x.reshape((n, -1) + tuple(f) + sp)
    y = y.transpose((0, 1) + tuple(a for k in range(d) for a in (2 + d + k, 2 + k)))
    return y.reshape((n, y.shape[1]) + tuple(s * fk for s, fk in zip(sp, f)))


@pytest.mark.parametrize('cls,factor,shape', [(PixelShuffle1D, 3, (2, 6, 5)), (PixelShuffle2D, (2, 3), (2, 12, 3, 4)),
                                              (PixelShuffle3D, 2, (1, 16, 2, 3, 2))])
@pytest.mark.parametrize('hybrid', [False, True])
def test_pixel_shuffle_forward_and_gradient(cls, factor, shape, hybrid):
    f = (factor,) * cls.dims if isinstance(factor, int) else factor
    x = np.random.default_rng(0).normal(size=shape).astype('float32')
    ps = cls(factor)
    if hybrid:
        ps.hybridize()
    xa = mx.nd.array(x)
    xa.attach_grad()
    with autograd.record():
        y = ps(xa)
    want = _shuffle_ref(x, f)
    np.testing.assert_array_equal(y.asnumpy(), want)
    w = np.random.default_rng(1).normal(size=want.shape).astype('float32')
    y.backward(mx.nd.array(w))
    # the gradient of a permutation is the inverse permutation: shuffle(grad) must give back w
    np.testing.assert_array_equal(_shuffle_ref(xa.grad.asnumpy(), f), w)
    with pytest.raises(ValueError, match='factor'):
        cls((2,) * (cls.dims + 1))


def test_crop_resize_and_random_apply():
    img = mx.nd.array(np.arange(6 * 8 * 3).reshape(6, 8, 3), dtype='uint8')
    c = T.CropResize(1, 2, 4, 3)(img)
    np.testing.assert_array_equal(c.asnumpy(), img.asnumpy()[2:5, 1:5])
    assert T.CropResize(1, 2, 4, 3, size=(8, 6))(img).shape == (6, 8, 3)
    assert T.CropResize(0, 0, 2, 2)(np.zeros((3, 6, 8, 3), 'uint8')).shape == (3, 2, 2, 3)  # a batch
    with pytest.raises(mx.base.MXNetError, match='leaves the 8x6 image'):
        T.CropResize(6, 0, 4, 3)(img)
    flip = T.RandomApply(T.RandomFlipLeftRight(), p=0.0)
    np.testing.assert_array_equal(flip(img).asnumpy(), img.asnumpy())
    mx.random.seed(3)
    count = sum(T.RandomApply(T.Cast('float16'), p=0.3)(img).dtype == np.float16 for _ in range(400))
    assert 80 < count < 160


def test_small_names():
    assert mx.gluon.tensor_types == (mx.sym.Symbol, mx.nd.NDArray)
    assert mx.gluon.DeferredInitializationError is mx.base.DeferredInitializationError
    assert mx.cpu_pinned(0).device_type == 'cpu_pinned' and mx.visualization is mx.viz
    assert mx.mon is mx.monitor and mx.executor.Executor is not None
