"""graphc.image (mx.image) against NumPy oracles and MXNet's published formulas; ImageIter over .rec and .lst."""
import io
import json

import numpy as np
import pytest

import graphc
from graphc import image, recordio
from graphc.ndarray.ndarray import NDArray

pytest.importorskip('PIL')


def _img(h=12, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png(img):
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(img).save(b, format='PNG')
    return b.getvalue()


def test_imdecode_imread(tmp_path):
    a = _img()
    x = image.imdecode(_png(a))
    assert isinstance(x, NDArray) and x.dtype == np.uint8
    np.testing.assert_array_equal(x.asnumpy(), a)
    np.testing.assert_array_equal(image.imdecode(_png(a), to_rgb=False).asnumpy(), a[:, :, ::-1])
    g = image.imdecode(np.frombuffer(_png(a), np.uint8), flag=0).asnumpy()   # bytes as a uint8 array too
    want = (a.astype(np.int64) @ [299, 587, 114] + 500) // 1000           # ITU-R 601 luma
    assert g.shape == (12, 16, 1) and np.abs(g[:, :, 0].astype(int) - want).max() <= 1
    (tmp_path / 'a.png').write_bytes(_png(a))
    np.testing.assert_array_equal(image.imread(str(tmp_path / 'a.png')).asnumpy(), a)
    with pytest.raises(graphc.GraphcLoadError, match='cannot decode'):
        image.imdecode(b'not an image')
    with pytest.raises(graphc.GraphcLoadError, match='no such image'):
        image.imread(str(tmp_path / 'missing.png'))


def test_sizes_and_crops():
    x = NDArray(_img())
    assert image.scale_down((640, 480), (720, 120)) == (640, 106)
    assert image.scale_down((360, 1000), (480, 500)) == (360, 375)
    assert image.resize_short(x, 6).shape == (6, 8, 3)
    assert image.imresize(x, 5, 7).shape == (7, 5, 3)
    const = NDArray(np.full((9, 7, 3), 77, np.uint8))
    for interp in (0, 1, 2, 3, 4, 9):
        assert (image.imresize(const, 4, 5, interp=interp).asnumpy() == 77).all()
    np.testing.assert_array_equal(image.imresize(x, 32, 24, interp=0).asnumpy()[::2, ::2], x.asnumpy())  # 2x nearest
    f = image.imresize(x.astype('float32'), 8, 6)
    assert f.dtype == np.float32 and f.shape == (6, 8, 3)
    np.testing.assert_array_equal(image.fixed_crop(x, 2, 3, 5, 4).asnumpy(), x.asnumpy()[3:7, 2:7])
    assert image.fixed_crop(x, 2, 3, 5, 4, size=(10, 8)).shape == (8, 10, 3)
    c, rect = image.center_crop(x, (6, 4))
    assert rect == (5, 4, 6, 4)
    np.testing.assert_array_equal(c.asnumpy(), x.asnumpy()[4:8, 5:11])
    graphc.random.seed(3)
    r, (x0, y0, w, h) = image.random_crop(x, (5, 5))
    np.testing.assert_array_equal(r.asnumpy(), x.asnumpy()[y0:y0 + 5, x0:x0 + 5])
    s, (x0, y0, w, h) = image.random_size_crop(x, (4, 4), 0.3, (0.75, 1.33))
    assert s.shape == (4, 4, 3) and 0 <= x0 <= 16 - w and 0 <= y0 <= 12 - h
    n = image.color_normalize(x.astype('float32'), NDArray(np.array([1.0, 2, 3], np.float32)),
                              NDArray(np.array([2.0, 4, 8], np.float32)))
    np.testing.assert_allclose(n.asnumpy(), (x.asnumpy() - [1, 2, 3]) / [2, 4, 8], rtol=1e-6)
    with pytest.raises(graphc.GraphcError, match='Unknown interp'):
        image.imresize(x, 4, 4, interp=7)


def _seeded(aug, x, draw):
    graphc.random.seed(21)
    out = aug(NDArray(x)).asnumpy()
    graphc.random.seed(21)
    return out, draw(graphc.random.generator())


def test_augmenter_formulas():
    x = _img().astype(np.float32)
    coef = np.array([0.299, 0.587, 0.114], np.float32)
    out, a = _seeded(image.BrightnessJitterAug(0.3), x, lambda g: 1 + g.uniform(-0.3, 0.3))
    np.testing.assert_allclose(out, x * a, rtol=1e-6)
    out, a = _seeded(image.ContrastJitterAug(0.3), x, lambda g: 1 + g.uniform(-0.3, 0.3))
    np.testing.assert_allclose(out, x * a + 3 * (1 - a) / x.size * (x * coef).sum(), rtol=1e-5)
    out, a = _seeded(image.SaturationJitterAug(0.3), x, lambda g: 1 + g.uniform(-0.3, 0.3))
    np.testing.assert_allclose(out, x * a + (1 - a) * (x * coef).sum(axis=2, keepdims=True), rtol=1e-5)
    out, a = _seeded(image.LightingAug(0.1, np.array([1.0, 2, 3]), np.eye(3)), x, lambda g: g.normal(0, 0.1, 3))
    np.testing.assert_allclose(out, x + a * [1, 2, 3], rtol=1e-5)
    out, _ = _seeded(image.HueJitterAug(0.0), x, lambda g: None)
    np.testing.assert_allclose(out, x, atol=1.0)   # alpha 0: YIQ there and back (MXNet's 3-digit matrices)
    gray = image.RandomGrayAug(1.0)(NDArray(x)).asnumpy()
    np.testing.assert_allclose(gray, np.repeat((x * [0.21, 0.72, 0.07]).sum(axis=2, keepdims=True), 3, 2), rtol=1e-5)
    np.testing.assert_array_equal(image.HorizontalFlipAug(1.0)(NDArray(x)).asnumpy(), x[:, ::-1])
    assert image.CastAug('float16')(NDArray(x)).dtype == np.float16
    np.testing.assert_allclose(image.ColorNormalizeAug(np.array([1.0, 1, 1]), None)(NDArray(x)).asnumpy(), x - 1)
    assert image.ForceResizeAug((5, 3))(NDArray(x)).shape == (3, 5, 3)
    assert json.loads(image.ResizeAug(8).dumps()) == ['resizeaug', {'size': 8, 'interp': 2}]


def test_create_augmenter():
    augs = image.CreateAugmenter((3, 8, 8), resize=10, rand_crop=True, rand_resize=True, rand_mirror=True, mean=True,
                                 std=True, brightness=0.1, contrast=0.1, saturation=0.1, hue=0.1, pca_noise=0.1,
                                 rand_gray=0.2)
    kinds = [type(a).__name__ for a in augs]
    assert kinds == ['ResizeAug', 'RandomSizedCropAug', 'HorizontalFlipAug', 'CastAug', 'ColorJitterAug',
                     'HueJitterAug', 'LightingAug', 'RandomGrayAug', 'ColorNormalizeAug']
    y = NDArray(_img())
    for a in augs:
        y = a(y)
    assert y.shape == (8, 8, 3) and y.dtype == np.float32
    assert [type(a).__name__ for a in image.CreateAugmenter((3, 4, 4))] == ['CenterCropAug', 'CastAug']


def test_image_iter_rec_and_lst(tmp_path):
    imgs = [_img(10, 10, seed=k) for k in range(5)]
    rec, idx = str(tmp_path / 'd.rec'), str(tmp_path / 'd.idx')
    w = recordio.MXIndexedRecordIO(idx, rec, 'w')
    for k, im in enumerate(imgs):
        w.write_idx(k, recordio.pack((0, float(k), k, 0), _png(im)))
    w.close()
    it = image.ImageIter(2, (3, 10, 10), path_imgrec=rec)
    batches = list(it)
    assert len(batches) == 3 and batches[2].pad == 1
    np.testing.assert_array_equal(batches[1].data[0].asnumpy()[0], imgs[2].transpose(2, 0, 1).astype(np.float32))
    assert batches[2].label[0].asnumpy().tolist() == [4.0, 4.0]   # padded with the batch's first image
    it.reset()
    assert len(list(it)) == 3
    disc = image.ImageIter(2, (3, 10, 10), path_imgrec=rec, path_imgidx=idx, shuffle=True, last_batch_handle='discard')
    labels = sorted(v for b in disc for v in b.label[0].asnumpy().tolist())
    assert len(labels) == 4 and set(labels) <= {0.0, 1, 2, 3, 4}

    for k, im in enumerate(imgs):
        (tmp_path / f'{k}.png').write_bytes(_png(im))
    lst = tmp_path / 'd.lst'
    lst.write_text(''.join(f'{k}\t{k * 10}\t{k}.png\n' for k in range(5)))
    it = image.ImageIter(5, (3, 4, 4), path_imglist=str(lst), path_root=str(tmp_path))
    b = next(it)
    assert b.data[0].shape == (5, 3, 4, 4) and b.label[0].asnumpy().tolist() == [0, 10, 20, 30, 40]
    np.testing.assert_array_equal(b.data[0].asnumpy()[3], imgs[3][3:7, 3:7].transpose(2, 0, 1))  # center crop
    with pytest.raises(graphc.GraphcError, match='give path_imgrec'):
        image.ImageIter(1, (3, 4, 4))
