"""mx.nd.image / mx.sym.image operators against NumPy (values and the crop gradient), and the batch and
argument rules of the Resize / CropResize transforms."""
import numpy as np
import pytest

import graphc as mx
from graphc.gluon.data.vision import transforms


def test_flips_and_crop_match_numpy_on_images_and_batches():
    for shape in ((5, 4, 3), (2, 5, 4, 3)):
        a = np.random.randint(0, 255, shape).astype('uint8')
        x = mx.nd.array(a, dtype='uint8')
        np.testing.assert_array_equal(mx.nd.image.flip_left_right(x).asnumpy(), a[..., :, ::-1, :])
        np.testing.assert_array_equal(mx.nd.image.flip_top_bottom(x).asnumpy(), a[..., ::-1, :, :])
        np.testing.assert_array_equal(mx.nd.image.crop(x, 1, 2, 3, 2).asnumpy(), a[..., 2:4, 1:4, :])
        t = mx.nd.image.to_tensor(x).asnumpy()
        axes = (2, 0, 1) if a.ndim == 3 else (0, 3, 1, 2)
        np.testing.assert_allclose(t, a.transpose(axes).astype('float32') / 255, rtol=1e-6)
    with pytest.raises(mx.base.GraphcError, match='leaves'):
        mx.nd.image.crop(mx.nd.zeros((5, 4, 3)), 2, 0, 3, 1)
    with pytest.raises(mx.base.GraphcError, match='width, height > 0'):
        mx.nd.image.crop(mx.nd.zeros((5, 4, 3)), 0, 0, 0, 1)


def test_crop_gradient_scatters_into_the_box():
    a = np.random.uniform(size=(5, 4, 3)).astype('float32')
    x = mx.nd.array(a)
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.image.crop(x, 1, 1, 2, 3)
    head = np.random.uniform(size=y.shape).astype('float32')
    y.backward(mx.nd.array(head))
    ref = np.zeros_like(a)
    ref[1:4, 1:3, :] = head
    np.testing.assert_allclose(x.grad.asnumpy(), ref)
    s = mx.sym.image.crop(mx.sym.var('data'), 1, 1, 2, 3)
    assert s.infer_shape(data=(5, 4, 3))[1] == [(3, 2, 3)]


def test_normalize_op_per_channel():
    a = np.random.uniform(size=(2, 3, 4, 5)).astype('float32')
    out = mx.nd.image.normalize(mx.nd.array(a), mean=(0.1, 0.2, 0.3), std=(1, 2, 4)).asnumpy()
    ref = (a - np.array([0.1, 0.2, 0.3]).reshape(1, 3, 1, 1)) / np.array([1, 2, 4.]).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)
    with pytest.raises(mx.base.GraphcError, match='channels'):
        mx.nd.image.normalize(mx.nd.array(a), mean=(0, 0), std=1)


def test_resize_and_crop_resize_take_batches_and_check_sizes():
    batch = np.random.randint(0, 255, (3, 12, 10, 3)).astype('uint8')
    out = transforms.Resize((5, 6))(mx.nd.array(batch, dtype='uint8'))
    assert out.shape == (3, 6, 5, 3)
    for i in range(3):
        np.testing.assert_array_equal(out[i].asnumpy(), mx.image.imresize(mx.nd.array(batch[i], dtype='uint8'),
                                                                          5, 6).asnumpy())
    cr = transforms.CropResize(1, 2, 4, 5, size=(2, 3))(mx.nd.array(batch, dtype='uint8'))
    assert cr.shape == (3, 3, 2, 3)
    for bad in (transforms.Resize(-3, keep_ratio=True), transforms.Resize((4, 4, 4)),
                transforms.CropResize(0, 0, -1, 2), transforms.CropResize(0, 0, 2, 2, size=(-1, 2)),
                transforms.CropResize(8, 0, 4, 4)):
        with pytest.raises(mx.base.GraphcError):
            bad(mx.nd.array(batch[0], dtype='uint8'))
