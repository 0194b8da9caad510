"""gluon.data: datasets, DataLoader modes and fast path, MNIST (bundled files), transforms, progress bar."""
import gzip
import io
import os
import shutil
import struct

import numpy as np
import pytest

from graphc import random as gc_random
from graphc.base import GraphcError, GraphcLoadError
from graphc.gluon.data import ArrayDataset, BatchSampler, DataLoader, SimpleDataset, vision
from graphc.gluon.data.vision import transforms
from graphc.ndarray.ndarray import NDArray
from graphc.progress import Progress

BUNDLED = os.path.join(os.path.dirname(__file__), '..', 'data', 'mnist')


@pytest.fixture(scope='module')
def mnist_test():
    return vision.MNIST(train=False)


# ---------------------------------------------------------------- datasets
def test_array_dataset_and_transforms():
    x, y = np.arange(20, dtype=np.float32).reshape(10, 2), NDArray(np.arange(10, dtype=np.int32))
    ds = ArrayDataset(x, y)
    assert len(ds) == 10
    a, b = ds[3]
    assert a.tolist() == [6.0, 7.0] and b == 3 and isinstance(b, np.int32)   # 1-D NDArray kept as NumPy
    t = ds.transform(lambda a, b: (a * 2, b + 1))
    assert t[3][0].tolist() == [12.0, 14.0] and t[3][1] == 4
    tf = ds.transform_first(lambda a: a.sum())
    assert tf[4] == (17.0, 4)
    eager = ds.transform_first(lambda a: a.sum(), lazy=False)
    assert isinstance(eager, SimpleDataset) and eager[4] == (17.0, 4)
    assert SimpleDataset([5, 6, 7])[2] == 7 and len(SimpleDataset(np.zeros(4))) == 4
    with pytest.raises(GraphcError, match='same length'):
        ArrayDataset(np.zeros(3), np.zeros(4))


# ---------------------------------------------------------------- DataLoader
def _sizes(loader):
    return [b[0].shape[0] for b in loader]


def test_dataloader_last_batch_modes():
    ds = ArrayDataset(np.arange(10, dtype=np.float32), np.arange(10, dtype=np.int64))
    assert _sizes(DataLoader(ds, 4)) == [4, 4, 2] and len(DataLoader(ds, 4)) == 3
    drop = DataLoader(ds, 4, last_batch='discard')
    assert _sizes(drop) == [4, 4] and len(drop) == 2
    roll = DataLoader(ds, 4, last_batch='rollover')
    e1 = [b[0]._data.tolist() for b in roll]
    assert e1 == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(roll) == 3     # 8, 9 roll over: (2 + 10) // 4
    e2 = [b[0]._data.tolist() for b in roll]
    assert e2[0] == [8, 9, 0, 1] and len(e2) == 3
    with pytest.raises(GraphcError, match='last_batch'):
        DataLoader(ds, 4, last_batch='drop')
    with pytest.raises(GraphcError, match='batch_size'):
        DataLoader(ds)


def test_dataloader_batches_are_ndarrays_with_dtypes():
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    y = np.arange(7, dtype=np.int32)
    data, label = next(iter(DataLoader(ArrayDataset(x, y), 5)))
    assert isinstance(data, NDArray) and isinstance(label, NDArray)
    assert data.dtype == np.float32 and label.dtype == np.int32 and data.shape == (5, 3)
    np.testing.assert_array_equal(data._data, x[:5])
    single = next(iter(DataLoader(SimpleDataset([1.5, 2.5, 3.5]), 2)))   # plain Python floats
    assert isinstance(single, NDArray) and single._data.tolist() == [1.5, 2.5]


def test_dataloader_shuffle_reproducible_and_fast_path_equals_slow():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = NDArray(np.arange(25, dtype=np.int32) % 3)
    ds = ArrayDataset(NDArray(x), y)
    gc_random.seed(7)
    fast = [(d._data.copy(), l._data.copy()) for d, l in DataLoader(ds, 6, shuffle=True)]
    gc_random.seed(7)
    slow = [(d._data, l._data) for d, l in DataLoader(ds, 6, shuffle=True, batchify_fn=lambda s: (
        NDArray(np.stack([a._data for a, _ in s])), NDArray(np.array([b for _, b in s]))))]
    assert len(fast) == 5 and [a.shape[0] for a, _ in fast] == [6, 6, 6, 6, 1]
    for (a, b), (c, d) in zip(fast, slow):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
        assert b.dtype == d.dtype == np.int32
    order = np.concatenate([a[:, 0] for a, _ in fast]) / 2
    assert sorted(order.tolist()) == list(range(25)) and order.tolist() != list(range(25))
    gc_random.seed(8)
    other = np.concatenate([d._data[:, 0] for d, _ in DataLoader(ds, 6, shuffle=True)]) / 2
    assert other.tolist() != order.tolist()


def test_batch_sampler_direct():
    assert list(BatchSampler(range(7), 3, 'keep')) == [[0, 1, 2], [3, 4, 5], [6]]


# ---------------------------------------------------------------- MNIST
def test_mnist_test_split(mnist_test):
    assert len(mnist_test) == 10000
    img, label = mnist_test[0]
    assert isinstance(img, NDArray) and img.shape == (28, 28, 1) and img.dtype == np.uint8
    assert isinstance(label, np.int32) and label == 7
    assert np.bincount(mnist_test._label).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert mnist_test._data._data.mean() == pytest.approx(33.7912, abs=1e-4)
    assert os.path.samefile(mnist_test._root, BUNDLED)


def test_mnist_loader_with_to_tensor(mnist_test):
    ds = mnist_test.transform_first(transforms.ToTensor())
    batches = list(DataLoader(ds, 1000, last_batch='discard'))
    assert len(batches) == 10
    data, label = batches[3]
    assert data.shape == (1000, 1, 28, 28) and data.dtype == np.float32 and label.dtype == np.int32
    raw = mnist_test._data._data[3000:4000]
    np.testing.assert_array_equal(data._data, raw.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255))
    assert label._data.tolist() == mnist_test._label[3000:4000].tolist()
    one, lbl = ds[3000]                                             # per-sample path: the same values
    np.testing.assert_array_equal(one._data, data._data[0])
    assert lbl == label._data[0]


def _copy_split(tmp_path, split='t10k'):
    for kind in ('images-idx3', 'labels-idx1'):
        name = f'{split}-{kind}-ubyte.gz'
        shutil.copy(os.path.join(BUNDLED, name), tmp_path / name)
    return tmp_path


def test_mnist_checks_sha256_and_accepts_regzipped(tmp_path):
    root = _copy_split(tmp_path)
    lbl = root / 't10k-labels-idx1-ubyte.gz'
    raw = gzip.decompress(lbl.read_bytes())
    lbl.write_bytes(gzip.compress(raw, mtime=0))                   # same content, other gzip header: accepted
    assert len(vision.MNIST(root=str(root), train=False)) == 10000
    bad = bytearray(raw)
    bad[100] = (bad[100] + 1) % 10                                  # one label changed
    lbl.write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(GraphcLoadError, match=r't10k-labels-idx1-ubyte.gz: sha256 mismatch'):
        vision.MNIST(root=str(root), train=False)
    lbl.write_bytes(b'not gzip at all')
    with pytest.raises(GraphcLoadError, match='not a valid gzip file'):
        vision.MNIST(root=str(root), train=False)


def test_mnist_missing_files_needs_download_flag(tmp_path):
    with pytest.raises(GraphcError, match='not found in .*download=True'):
        vision.MNIST(root=str(tmp_path), train=True)


def test_idx_header_checks():
    good = struct.pack('>IIII', 0x803, 2, 28, 28) + bytes(2 * 784)
    assert vision.parse_idx(good, 'f', 0x803, (2, 28, 28)).shape == (2, 28, 28)
    with pytest.raises(GraphcLoadError, match='f: byte offset 0: IDX magic 0x00000801, expected 0x00000803'):
        vision.parse_idx(struct.pack('>II', 0x801, 2) + good[8:], 'f', 0x803, (2, 28, 28))
    with pytest.raises(GraphcLoadError, match='byte offset 8: IDX dimension 1 is 27, expected 28'):
        vision.parse_idx(struct.pack('>IIII', 0x803, 2, 27, 28) + bytes(2 * 784), 'f', 0x803, (2, 28, 28))
    with pytest.raises(GraphcLoadError, match='IDX length 1583 bytes, expected 1584'):
        vision.parse_idx(good[:-1], 'f', 0x803, (2, 28, 28))
    with pytest.raises(GraphcLoadError, match='byte offset 4: IDX dimension 0 is 2, expected 3'):
        vision.parse_idx(good, 'f', 0x803, (3, 28, 28))               # images/labels count disagree
    with pytest.raises(GraphcLoadError, match='header truncated'):
        vision.parse_idx(good[:10], 'f', 0x803, (2, 28, 28))


# ---------------------------------------------------------------- transforms
def test_transforms_values_and_batching():
    img = NDArray(np.array([[0, 255], [51, 102]], np.uint8)[:, :, None])       # HWC (2, 2, 1)
    t = transforms.ToTensor()(img)
    assert isinstance(t, NDArray) and t.shape == (1, 2, 2) and t.dtype == np.float32
    assert t._data.ravel().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])
    hwc = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)                        # a batch NHWC
    tb = transforms.ToTensor()(hwc)
    assert isinstance(tb, np.ndarray) and tb.shape == (2, 3, 3, 4)
    np.testing.assert_array_equal(tb[1], transforms.ToTensor()(hwc[1]))
    norm = transforms.Normalize(mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 2.0))
    n = norm(tb)
    np.testing.assert_allclose(n[:, 1], (tb[:, 1] - 0.25) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(n[0, 2], tb[0, 2] / 2.0, rtol=1e-6)
    with pytest.raises(GraphcError, match='mean has 3 values for 1 channels'):
        norm(t)
    c = transforms.Compose([transforms.ToTensor(), transforms.Normalize(0.5, 0.5), transforms.Cast('float16')])
    assert c.batchable and c(hwc).dtype == np.float16 and c(hwc).shape == (2, 3, 3, 4)
    assert not transforms.Compose([transforms.ToTensor(), lambda x: x]).batchable
    import graphc.gluon.data.vision.transforms as tmod                # importable like Gluon's module
    assert tmod.ToTensor is transforms.ToTensor


# ---------------------------------------------------------------- progress
def test_progress_bar_non_tty():
    out = io.StringIO()
    bar = Progress(range(5), desc='epoch 1', unit='samples', unit_scale=32, file=out)
    for i in bar:
        bar.set_postfix(loss=np.float32(0.25), acc=0.5)
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith('epoch 1: 100%|') and '160/160 [' in line and 'samples/s' in line
    assert line.endswith('loss=0.25, acc=0.5]') and '\r' not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 1          # interval 10 s: only the final line in a log
    out = io.StringIO()
    with Progress(total=None, file=out) as p:
        p.update(3)
    assert '3 it [' in out.getvalue()
