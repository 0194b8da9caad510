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


def test_imrotate_quarter_turns_and_identity():
    a = np.random.uniform(size=(2, 3, 5, 5)).astype('float32')
    # a square image turned 180 degrees about its center is the array reversed on both spatial axes
    np.testing.assert_allclose(mx.image.imrotate(mx.nd.array(a), 180.).asnumpy(), a[:, :, ::-1, ::-1], atol=1e-5)
    np.testing.assert_allclose(mx.image.imrotate(mx.nd.array(a), 0.).asnumpy(), a, atol=1e-6)
    # 90 degrees: output pixel (y, x) reads the source at row x, column W-1-y
    r90 = mx.image.imrotate(mx.nd.array(a), 90.).asnumpy()
    np.testing.assert_allclose(r90, np.transpose(a, (0, 1, 3, 2))[:, :, ::-1, :], atol=1e-5)
    per_image = mx.image.imrotate(mx.nd.array(a), mx.nd.array([0., 180.])).asnumpy()
    np.testing.assert_allclose(per_image[0], a[0], atol=1e-6)
    np.testing.assert_allclose(per_image[1], a[1, :, ::-1, ::-1], atol=1e-5)
    single = mx.image.imrotate(mx.nd.array(a[0]), 180.)
    assert single.shape == (3, 5, 5)


def test_imrotate_bilinear_and_zoom_against_a_direct_formula():
    h, w, deg = 4, 6, 30.0
    a = np.random.uniform(size=(1, 1, h, w)).astype('float32')
    out = mx.image.imrotate(mx.nd.array(a), deg).asnumpy()[0, 0]
    t = np.deg2rad(deg)
    ref = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            xc, yc = x - (w - 1) / 2, y - (h - 1) / 2
            sx = xc * np.cos(t) - yc * np.sin(t) + (w - 1) / 2  # source position, in pixels
            sy = xc * np.sin(t) + yc * np.cos(t) + (h - 1) / 2
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            for yy in (y0, y0 + 1):
                for xx in (x0, x0 + 1):
                    if 0 <= yy < h and 0 <= xx < w:
                        ref[y, x] += a[0, 0, yy, xx] * (1 - abs(sx - xx)) * (1 - abs(sy - yy))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    zin = mx.image.imrotate(mx.nd.array(np.ones((1, 1, 9, 9), 'float32')), 45., zoom_in=True).asnumpy()
    assert zin.min() > 0.99  # zoomed in: no padding shows
    zout = mx.image.imrotate(mx.nd.array(np.ones((1, 1, 9, 9), 'float32')), 45., zoom_out=True).asnumpy()
    assert zout[0, 0, 0, 0] == 0 and zout[0, 0, 4, 4] == 1  # zoomed out: corners are padding
    with pytest.raises(TypeError, match='float32'):
        mx.image.imrotate(mx.nd.array(a, dtype='uint8'), 10.)
    with pytest.raises(ValueError, match='both'):
        mx.image.imrotate(mx.nd.array(a), 10., zoom_in=True, zoom_out=True)
    with pytest.raises(ValueError, match='2 rotation angles'):
        mx.image.imrotate(mx.nd.array(a), mx.nd.array([1., 2.]))


def test_rotation_transforms():
    img = np.random.uniform(size=(3, 5, 5)).astype('float32')
    np.testing.assert_allclose(transforms.Rotate(180.)(mx.nd.array(img)).asnumpy(), img[:, ::-1, ::-1], atol=1e-5)
    assert transforms.RandomRotation((-10, 10), rotate_with_proba=0.0)(mx.nd.array(img)) is not None
    np.testing.assert_array_equal(transforms.RandomRotation((-10, 10), rotate_with_proba=0.0)(
        mx.nd.array(img)).asnumpy(), img)
    out = transforms.RandomRotation((179.999, 180.0))(mx.nd.array(img)).asnumpy()
    np.testing.assert_allclose(out, img[:, ::-1, ::-1], atol=1e-3)
    with pytest.raises(ValueError):
        transforms.RandomRotation((10, -10))
    with pytest.raises(TypeError, match='ToTensor'):
        transforms.Rotate(10.)(mx.nd.array(img.astype('uint8'), dtype='uint8'))


def test_imresize_follows_opencv_sampling():
    rng = np.random.default_rng(5)
    a = rng.uniform(0, 255, (6, 8, 2)).astype('float32')
    # nearest: dst x reads floor(x * src / dst) (OpenCV's, no half-pixel shift)
    near = mx.image.imresize(mx.nd.array(a), 5, 4, interp=0).asnumpy()
    np.testing.assert_array_equal(near, a[np.floor(np.arange(4) * 6 / 4).astype(int)][:, np.floor(
        np.arange(5) * 8 / 5).astype(int)])
    # bilinear: half-pixel centers, edge pixels repeated
    lin = mx.image.imresize(mx.nd.array(a), 16, 12, interp=1).asnumpy()
    fy, fx = (3 + 0.5) * 0.5 - 0.5, (5 + 0.5) * 0.5 - 0.5  # output (3, 5) in source coordinates: (1.25, 2.25)
    y0, x0 = int(fy), int(fx)
    wy, wx = fy - y0, fx - x0
    ref = (a[y0, x0] * (1 - wy) * (1 - wx) + a[y0, x0 + 1] * (1 - wy) * wx + a[y0 + 1, x0] * wy * (1 - wx)
           + a[y0 + 1, x0 + 1] * wy * wx)
    np.testing.assert_allclose(lin[3, 5], ref, rtol=1e-5)
    np.testing.assert_allclose(lin[0, 0], a[0, 0], rtol=1e-6)  # before the first center: the edge pixel
    # area, shrinking by 2: the mean of each 2x2 block
    area = mx.image.imresize(mx.nd.array(a), 4, 3, interp=3).asnumpy()
    np.testing.assert_allclose(area, a.reshape(3, 2, 4, 2, 2).mean(axis=(1, 3)), rtol=1e-5)
    for interp in range(5):  # a constant image stays constant; the same size is the identity (but nearest/area)
        c = mx.image.imresize(mx.nd.full((5, 7, 3), 42.0), 9, 4, interp=interp).asnumpy()
        np.testing.assert_allclose(c, 42.0, rtol=1e-6)
        np.testing.assert_allclose(mx.image.imresize(mx.nd.array(a), 8, 6, interp=interp).asnumpy(), a, rtol=1e-5)
    u8 = mx.image.imresize(mx.nd.array(np.full((3, 3, 3), 250), dtype='uint8'), 6, 6, interp=2)
    assert u8.dtype == np.uint8 and u8.asnumpy().max() == 250  # rounded and saturated to uint8
    with pytest.raises(mx.base.GraphcError, match='positive'):
        mx.image.imresize(mx.nd.array(a), 0, 3)


def test_copy_make_border_types_and_image_resize_op():
    a = np.arange(12, dtype='float32').reshape(3, 4, 1)
    x = mx.nd.array(a)
    pads = ((1, 2), (2, 1), (0, 0))
    out = mx.image.copyMakeBorder(x, 1, 2, 2, 1, type=0, value=9).asnumpy()
    ref = np.full((6, 7, 1), 9.0)
    ref[1:4, 2:6] = a
    np.testing.assert_array_equal(out, ref)
    # OpenCV's names for numpy's modes: replicate=edge, reflect=symmetric, wrap, reflect_101=reflect
    for t, mode in ((1, 'edge'), (2, 'symmetric'), (3, 'wrap'), (4, 'reflect')):
        np.testing.assert_array_equal(mx.image.copyMakeBorder(x, 1, 2, 2, 1, type=t).asnumpy(), np.pad(a, pads, mode))
    rgb = mx.image.copyMakeBorder(mx.nd.zeros((2, 2, 3)), 1, 0, 0, 0, values=(1, 2, 3)).asnumpy()
    assert rgb[0, 0].tolist() == [1, 2, 3] and rgb[1:].sum() == 0
    with pytest.raises(mx.base.GraphcError, match='type'):
        mx.image.copyMakeBorder(x, 1, 1, 1, 1, type=7)
    img = mx.nd.array(np.random.uniform(0, 255, (5, 7, 3)).astype('float32'))
    assert mx.nd.image.resize(img, size=(4, 6)).shape == (6, 4, 3)
    assert mx.nd.image.resize(img, size=3, keep_ratio=True).shape == (3, 4, 3)  # short side 3, 7*3//5 = 4
    np.testing.assert_allclose(mx.nd.image.resize(img, size=(4, 6)).asnumpy(),
                               mx.image.imresize(img, 4, 6).asnumpy())
    assert mx.nd.image.resize(mx.nd.ones((2, 5, 7, 3)), size=(4, 6)).shape == (2, 6, 4, 3)
