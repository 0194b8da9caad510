"""gluon.data as MXNet 1.9: Dataset methods, samplers, DataLoader workers, RecordIO, the vision datasets
read from local files (synthetic files in the original formats), transforms against NumPy formulas."""
import gzip
import io
import os
import struct
import tarfile

import numpy as np
import pytest

import graphc
from graphc import recordio
from graphc.gluon import data as gdata
from graphc.gluon.data.vision import transforms as T
from graphc.ndarray.ndarray import NDArray


# ---------------------------------------------------------------- Dataset methods and samplers
def test_filter_shard_take_sample():
    a = gdata.SimpleDataset(list(range(10)))
    assert list(a.filter(lambda x: x % 3 == 0)) == [0, 3, 6, 9]
    assert list(a.transform(lambda x: x * 2).filter(lambda x: x % 4 == 0)) == [0, 4, 8, 12, 16]
    shards = [list(a.shard(4, i)) for i in range(4)]
    assert shards == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert list(a.take(3)) == [0, 1, 2] and len(a.take(None)) == 10 and len(a.take(99)) == 10
    assert list(a.sample(gdata.IntervalSampler(10, 4))) == [0, 4, 8, 1, 5, 9, 2, 6, 3, 7]
    with pytest.raises(TypeError):
        a.sample([1, 2])
    with pytest.raises(graphc.GraphcError, match='out of bound'):
        a.shard(2, 2)
    arr = gdata.ArrayDataset(np.arange(12.0).reshape(6, 2), np.arange(6))
    b = arr.shard(2, 1)
    assert b[0][0].tolist() == [6.0, 7.0] and b[2][1] == 5
    batches = list(gdata.DataLoader(b, batch_size=2))   # the sampled dataset keeps the array fast path
    assert batches[0][0].asnumpy().tolist() == [[6, 7], [8, 9]] and b._batch(np.array([1])) is not None


def test_samplers():
    assert list(gdata.IntervalSampler(13, 3, rollover=False)) == [0, 3, 6, 9, 12]
    assert len(gdata.IntervalSampler(13, 3, rollover=False)) == 5 and len(gdata.IntervalSampler(13, 3)) == 13
    assert sorted(gdata.IntervalSampler(13, 3)) == list(range(13))
    ds = gdata.SimpleDataset([5, 1, 8, 2])
    assert list(gdata.FilterSampler(lambda x: x > 2, ds)) == [0, 2]
    bs = gdata.BatchSampler(gdata.SequentialSampler(7), 3, 'rollover')
    assert list(bs) == [[0, 1, 2], [3, 4, 5]] and list(bs)[0] == [6, 0, 1]


# ---------------------------------------------------------------- DataLoader workers
class _Squares(gdata.Dataset):
    """No _batch: every sample goes through __getitem__, so workers do the work."""

    def __len__(self):
        return 23

    def __getitem__(self, i):
        return graphc.nd.full((3,), float(i * i)), np.int32(i)


def _noisy(x):
    return x + graphc.random.generator().uniform()


@pytest.mark.parametrize('thread_pool', [False, True])
def test_workers_give_the_same_batches_in_order(thread_pool):
    ds = _Squares()
    want = [(x.asnumpy(), y.asnumpy()) for x, y in gdata.DataLoader(ds, batch_size=4, last_batch='keep')]
    got = list(gdata.DataLoader(ds, batch_size=4, num_workers=3, thread_pool=thread_pool, prefetch=2))
    assert len(got) == len(want) == 6
    for (x, y), (wx, wy) in zip(got, want):
        np.testing.assert_array_equal(x.asnumpy(), wx)
        np.testing.assert_array_equal(y.asnumpy(), wy)
    loader = gdata.DataLoader(ds, batch_size=5, num_workers=2, thread_pool=thread_pool,
                              batchify_fn=lambda s: [x for x, _ in s])  # lambdas are fine: nothing is pickled
    first = next(iter(loader))
    assert isinstance(first, list) and len(first) == 5 and first[2].asnumpy().tolist() == [4.0] * 3


def test_worker_processes_are_real_and_reproducible():
    ds = gdata.SimpleDataset([os.getpid()] * 8).transform(lambda p: np.array([p, os.getpid()]))
    pids = np.concatenate([b.asnumpy() for b in gdata.DataLoader(ds, batch_size=2, num_workers=2)])
    assert (pids[:, 0] == os.getpid()).all() and not (pids[:, 1] == os.getpid()).any()
    noisy = gdata.SimpleDataset([0.0] * 6).transform(_noisy)

    def run():
        graphc.random.seed(5)
        return np.concatenate([b.asnumpy() for b in gdata.DataLoader(noisy, batch_size=2, num_workers=3)])
    a, b = run(), run()
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 6   # each batch its own seed: workers do not repeat each other's draws


def test_worker_errors_and_timeout():
    def boom(x):
        if x == 3:
            raise KeyError('sample 3 is bad')
        return x
    ds = gdata.SimpleDataset(list(range(6))).transform(boom)
    with pytest.raises(KeyError, match='sample 3 is bad'):
        list(gdata.DataLoader(ds, batch_size=2, num_workers=2))

    def slow(x):
        import time
        time.sleep(2)
        return x
    with pytest.raises(graphc.GraphcError, match='timed out after 0.2 seconds'):
        list(gdata.DataLoader(gdata.SimpleDataset([1, 2]).transform(slow), batch_size=1, num_workers=1,
                              timeout=0.2))


# ---------------------------------------------------------------- RecordIO
def test_recordio_format_and_roundtrip(tmp_path):
    magic = struct.pack('<I', 0xced7230a)
    records = [b'hello', b'', b'abcd' + magic + b'xyz' + b'1' + magic, bytes(range(256)) * 3]
    path, idx = str(tmp_path / 'a.rec'), str(tmp_path / 'a.idx')
    w = recordio.MXIndexedRecordIO(idx, path, 'w')
    for i, r in enumerate(records):
        w.write_idx(i, r)
    w.close()
    raw = open(path, 'rb').read()
    # record 0: magic, length 5, payload, 3 bytes of padding
    assert raw[:16] == magic + struct.pack('<I', 5) + b'hello\0\0\0'
    # record 2 holds the magic at aligned offsets 4 and 12: parts (cflag 1, 4 bytes) (2, 4 bytes) (3, 0 bytes)
    off = [int(line.split('\t')[1]) for line in open(idx)]
    r2 = raw[off[2]:off[3]]
    assert r2 == (magic + struct.pack('<I', 1 << 29 | 4) + b'abcd' + magic + struct.pack('<I', 2 << 29 | 4) + b'xyz1'
                  + magic + struct.pack('<I', 3 << 29 | 0))
    r = recordio.MXIndexedRecordIO(idx, path, 'r')
    assert r.keys == [0, 1, 2, 3] and [r.read_idx(k) for k in (3, 0, 2, 1)] == [records[3], records[0], records[2], b'']
    seq = recordio.MXRecordIO(path, 'r')
    assert [seq.read() for _ in range(5)] == records + [None]
    open(str(tmp_path / 'bad.rec'), 'wb').write(b'\0' * 8)
    with pytest.raises(graphc.GraphcLoadError, match='byte offset 0: bad RecordIO magic'):
        recordio.MXRecordIO(str(tmp_path / 'bad.rec'), 'r').read()
    ds = gdata.RecordFileDataset(path)
    assert len(ds) == 4 and ds[0] == b'hello'


def test_pack_unpack_header():
    s = recordio.pack(recordio.IRHeader(0, 3.0, 7, 0), b'payload')
    assert len(s) == 24 + 7 and s[:24] == struct.pack('<IfQQ', 0, 3.0, 7, 0)
    h, p = recordio.unpack(s)
    assert h.label == 3.0 and h.id == 7 and p == b'payload'
    h, p = recordio.unpack(recordio.pack((0, [1.0, 2.5], 1, 2), b'x'))
    assert h.flag == 2 and h.label.tolist() == [1.0, 2.5] and p == b'x'


def _png_bytes(img):
    from PIL import Image
    b = io.BytesIO()
    Image.fromarray(img).save(b, format='PNG')
    return b.getvalue()


def _images(n, h=6, w=5):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_image_record_dataset_and_pack_img(tmp_path):
    pytest.importorskip('PIL')
    imgs = _images(4)
    path, idx = str(tmp_path / 'i.rec'), str(tmp_path / 'i.idx')
    w = recordio.MXIndexedRecordIO(idx, path, 'w')
    for i, im in enumerate(imgs):
        w.write_idx(i, recordio.pack_img((0, float(i), i, 0), im[:, :, ::-1], img_fmt='.png'))  # BGR, as cv2
    w.close()
    ds = gdata.vision.ImageRecordDataset(path)
    x, y = ds[2]
    assert x.shape == (6, 5, 3) and y == 2.0
    np.testing.assert_array_equal(x.asnumpy(), imgs[2])      # decoded as RGB
    h, bgr = recordio.unpack_img(recordio.MXIndexedRecordIO(idx, path, 'r').read_idx(1))
    np.testing.assert_array_equal(bgr, imgs[1][:, :, ::-1])  # unpack_img gives OpenCV's BGR
    gray = gdata.vision.ImageRecordDataset(path, flag=0)[0][0]
    assert gray.shape == (6, 5, 1)
    batches = list(gdata.DataLoader(ds.transform_first(lambda im: im.astype('float32')), batch_size=2,
                                    num_workers=2))
    np.testing.assert_array_equal(batches[1][0].asnumpy()[1], imgs[3])
    assert batches[1][1].asnumpy().tolist() == [2.0, 3.0]


def test_image_folder_dataset(tmp_path):
    pytest.importorskip('PIL')
    imgs = _images(3)
    for cls, k in (('cat', 0), ('cat', 1), ('dog', 2)):
        os.makedirs(tmp_path / cls, exist_ok=True)
        (tmp_path / cls / f'{k}.png').write_bytes(_png_bytes(imgs[k]))
    (tmp_path / 'dog' / 'notes.txt').write_text('x')
    (tmp_path / 'stray.txt').write_text('x')
    with pytest.warns(UserWarning, match='Ignoring'):
        ds = gdata.vision.ImageFolderDataset(str(tmp_path))
    assert ds.synsets == ['cat', 'dog'] and len(ds) == 3 and [y for _, y in ds.items] == [0, 0, 1]
    np.testing.assert_array_equal(ds[2][0].asnumpy(), imgs[2])


# ---------------------------------------------------------------- vision datasets from their original files
def test_fashion_mnist_reads_idx_gz(tmp_path):
    imgs = np.arange(10000 * 784, dtype=np.int64).astype(np.uint8).reshape(10000, 28, 28)
    labels = (np.arange(10000) % 10).astype(np.uint8)
    (tmp_path / 't10k-images-idx3-ubyte.gz').write_bytes(
        gzip.compress(struct.pack('>IIII', 0x803, 10000, 28, 28) + imgs.tobytes()))
    (tmp_path / 't10k-labels-idx1-ubyte.gz').write_bytes(gzip.compress(struct.pack('>II', 0x801, 10000) +
                                                                       labels.tobytes()))
    ds = gdata.vision.FashionMNIST(root=str(tmp_path), train=False)
    x, y = ds[123]
    assert len(ds) == 10000 and x.shape == (28, 28, 1) and y == 3 and y.dtype == np.int32
    np.testing.assert_array_equal(x.asnumpy()[:, :, 0], imgs[123])
    with pytest.raises(graphc.GraphcError, match='not found.*does not download.*put it in'):
        gdata.vision.FashionMNIST(root=str(tmp_path), train=True)


def _cifar_records(n, labels_per):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, (n, labels_per), dtype=np.uint8)
    return imgs, labels, np.concatenate([labels, imgs.reshape(n, -1)], axis=1).tobytes()


def test_cifar10_from_folder_and_cifar100_from_tar(tmp_path):
    folder = tmp_path / 'c10' / 'cifar-10-batches-bin'
    folder.mkdir(parents=True)
    imgs, labels, raw = _cifar_records(4, 1)
    (folder / 'test_batch.bin').write_bytes(raw)
    ds = gdata.vision.CIFAR10(root=str(tmp_path / 'c10'), train=False)
    x, y = ds[2]
    assert len(ds) == 4 and x.shape == (32, 32, 3) and y == labels[2, 0]
    np.testing.assert_array_equal(x.asnumpy(), imgs[2].transpose(1, 2, 0))   # CHW records -> HWC samples
    with pytest.raises(graphc.GraphcError, match='data_batch_1.bin not found'):
        gdata.vision.CIFAR10(root=str(tmp_path / 'c10'))

    imgs, labels, raw = _cifar_records(3, 2)
    tar_path = tmp_path / 'c100' / 'cifar-100-binary.tar.gz'
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, 'w:gz') as tar:
        info = tarfile.TarInfo('cifar-100-binary/train.bin')
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    coarse = gdata.vision.CIFAR100(root=str(tmp_path / 'c100'))
    fine = gdata.vision.CIFAR100(root=str(tmp_path / 'c100'), fine_label=True)
    assert [coarse[i][1] for i in range(3)] == labels[:, 0].tolist()
    assert [fine[i][1] for i in range(3)] == labels[:, 1].tolist()
    assert not os.path.exists(tmp_path / 'c100' / 'cifar-100-binary')   # read from the archive, not extracted


# ---------------------------------------------------------------- transforms
def _img(h=8, w=10):
    return NDArray(np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _with_draw(t, x, draw):
    """t(x) and the value `draw(generator)` the transform drew, replayed from the same seed."""
    graphc.random.seed(11)
    out = t(x).asnumpy()
    graphc.random.seed(11)
    return out, draw(graphc.random.generator())


def test_color_transforms_formulas():
    x = _img()
    f = x.asnumpy().astype(np.float32)
    sat = lambda v: np.clip(np.rint(v), 0, 255).astype(np.uint8)  # noqa: E731
    out, a = _with_draw(T.RandomBrightness(0.4), x, lambda g: g.uniform(0.6, 1.4))
    np.testing.assert_array_equal(out, sat(f * np.float32(a)))
    out, a = _with_draw(T.RandomContrast(0.4), x, lambda g: g.uniform(0.6, 1.4))
    gray = (f * [0.299, 0.587, 0.114]).sum(axis=2).mean()
    np.testing.assert_allclose(out, sat(f * a + (1 - a) * gray), atol=1)
    out, a = _with_draw(T.RandomSaturation(0.4), x, lambda g: g.uniform(0.6, 1.4))
    gray = (f * [0.299, 0.587, 0.114]).sum(axis=2, keepdims=True)
    np.testing.assert_allclose(out, sat(f * a + (1 - a) * gray), atol=1)
    out, a = _with_draw(T.RandomLighting(0.1), x, lambda g: g.normal(0, 0.1, size=3))
    rgb = (T.RandomLighting._eigvec * a) @ T.RandomLighting._eigval
    np.testing.assert_allclose(out, sat(f + rgb), atol=1)
    out, a = _with_draw(T.RandomHue(0.0), x, lambda g: g.uniform(0, 0))
    np.testing.assert_allclose(out, x.asnumpy(), atol=1)   # no rotation: the YIQ round trip is the identity


def test_flips_and_geometry():
    x = _img()
    graphc.random.seed(0)
    flips = [T.RandomFlipLeftRight()(x).asnumpy() for _ in range(20)]
    assert any((f == x.asnumpy()[:, ::-1]).all() for f in flips) and any((f == x.asnumpy()).all() for f in flips)
    graphc.random.seed(0)
    tb = [T.RandomFlipTopBottom()(x).asnumpy() for _ in range(20)]
    assert any((f == x.asnumpy()[::-1]).all() for f in tb)
    pytest.importorskip('PIL')
    assert T.Resize(4)(x).shape == (4, 4, 3) and T.Resize((6, 3))(x).shape == (3, 6, 3)
    assert T.Resize(4, keep_ratio=True)(x).shape == (4, 5, 3)
    np.testing.assert_array_equal(T.CenterCrop((4, 2))(x).asnumpy(), x.asnumpy()[3:5, 3:7])
    assert T.RandomResizedCrop(5)(x).shape == (5, 5, 3)
    c = T.Compose([T.CenterCrop(4), T.ToTensor(), T.Normalize(0.5, 0.25)])
    np.testing.assert_allclose(c(x).asnumpy(), (x.asnumpy()[2:6, 3:7].transpose(2, 0, 1) / 255 - 0.5) / 0.25,
                               rtol=1e-6)
    assert T.Cast('float16')(x).dtype == np.float16


# ---------------------------------------------------------------- contrib.text
def test_text_vocabulary_and_embeddings(tmp_path):
    from graphc.contrib import text
    c = text.utils.count_tokens_from_str('b a c\nA b  a\n', to_lower=True)
    assert c == {'a': 3, 'b': 2, 'c': 1}
    assert text.utils.count_tokens_from_str('x|y', token_delim=r'\|', counter_to_update=c)['x'] == 1
    v = text.vocab.Vocabulary(c, min_freq=2, reserved_tokens=['<pad>'])
    assert v.idx_to_token == ['<unk>', '<pad>', 'a', 'b'] and len(v) == 4   # by count, then alphabetically
    assert v.to_indices(['b', 'zzz']) == [3, 0] and v.to_tokens(2) == 'a'
    assert text.vocab.Vocabulary(c, most_freq_count=1).idx_to_token == ['<unk>', 'a']
    with pytest.raises(ValueError, match='invalid'):
        v.to_tokens(9)
    with pytest.raises(ValueError):
        text.vocab.Vocabulary(c, reserved_tokens=['<unk>'])

    f = tmp_path / 'vecs.txt'
    f.write_text('3 2\na 1 2\nb 3 4\na 9 9\n<unk> 5 5\n')
    with pytest.warns(UserWarning):
        e = text.embedding.CustomEmbedding(str(f))
    assert e.idx_to_token == ['<unk>', 'a', 'b'] and e.vec_len == 2
    np.testing.assert_array_equal(e.idx_to_vec.asnumpy(), [[5, 5], [1, 2], [3, 4]])
    np.testing.assert_array_equal(e.get_vecs_by_tokens(['B', 'x'], lower_case_backup=True).asnumpy(), [[3, 4], [5, 5]])
    e.update_token_vectors('a', NDArray(np.array([0.0, 1.0])))
    assert e.get_vecs_by_tokens('a').asnumpy().tolist() == [0, 1]
    with pytest.raises(ValueError, match='unknown'):
        e.update_token_vectors('nope', NDArray(np.zeros(2)))
    with pytest.warns(UserWarning):
        ev = text.embedding.CustomEmbedding(str(f), vocabulary=v)   # the vocabulary's indexing, the file's vectors
    np.testing.assert_array_equal(ev.idx_to_vec.asnumpy(), [[5, 5], [5, 5], [1, 2], [3, 4]])
    comp = text.embedding.CompositeEmbedding(v, [ev, ev])
    assert comp.idx_to_vec.shape == (4, 4) and comp.get_vecs_by_tokens('b').asnumpy().tolist() == [3, 4, 3, 4]
    (tmp_path / 'glove').mkdir()
    (tmp_path / 'glove' / 'glove.6B.50d.txt').write_text('a 1 2 3\n')
    g = text.embedding.create('glove', pretrained_file_name='glove.6B.50d.txt', embedding_root=str(tmp_path))
    assert g.vec_len == 3 and 'glove.6B.50d.txt' in text.embedding.get_pretrained_file_names('glove')
    with pytest.raises(graphc.GraphcError, match='does not download.*put it in'):
        text.embedding.FastText(embedding_root=str(tmp_path))


def test_an_epoch_stopped_early_leaves_nothing_behind():
    loader = gdata.DataLoader(_Squares(), batch_size=2, num_workers=2, prefetch=4)
    for _ in range(3):
        it = iter(loader)
        next(it)
        del it
    assert [b[1].asnumpy().tolist() for b in loader][:2] == [[0, 1], [2, 3]]
    assert loader._pool._done == {} and not loader._pool._abandoned


def test_text_errors_are_the_exception_types_mxnet_raises(tmp_path):
    """MXNet asserts on bad vocabulary arguments, bad vector updates and malformed embedding files and raises
    ValueError on unknown tokens: graphc's errors are caught by both names (and name the problem)."""
    import collections
    from graphc.contrib import text
    counter = collections.Counter(['a', 'b', 'b'])
    for kw in ({'min_freq': 0}, {'reserved_tokens': ['x', 'x']}, {'reserved_tokens': ['<unk>']}):
        with pytest.raises(AssertionError):
            text.vocab.Vocabulary(counter, **kw)
    f = tmp_path / 'e.txt'
    f.write_text('a 1 2\nb 3 4 5\n')
    with pytest.raises(AssertionError, match='dimensions'):
        text.embedding.CustomEmbedding(str(f), ' ')
    f.write_text('a 1 2\nc\n')
    with pytest.raises(AssertionError, match='line 2'):
        text.embedding.CustomEmbedding(str(f), ' ')
    f.write_text('a 1 2\nb 3 4\n')
    e = text.embedding.CustomEmbedding(str(f), ' ')
    with pytest.raises(AssertionError, match='shape'):
        e.update_token_vectors('a', graphc.nd.zeros((2, 2)))
    with pytest.raises(ValueError, match='unknown'):
        e.update_token_vectors('zzz', graphc.nd.zeros((2,)))
