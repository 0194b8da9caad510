"""NDArray semantics: creation, dtypes, operators, indexing, in-place updates, devices, errors."""
import numpy as np
import pytest

import graphc as gc
from graphc import nd


def test_creation_and_dtypes():
    assert nd.array([1, 2]).dtype == np.float32  # lists default to float32, as MXNet
    assert nd.array(np.arange(3)).dtype == np.float32  # MXNet 1.x: float32 unless the source is an NDArray
    assert nd.array(np.arange(3), dtype='int64').dtype == np.int64
    for dt in ('float32', 'float64', 'float16', 'int32', 'int64', 'uint8', 'bool'):
        assert nd.zeros((2, 3), dtype=dt).dtype == np.dtype(dt)
    np.testing.assert_array_equal(nd.full((2, 2), 7).asnumpy(), np.full((2, 2), 7, np.float32))
    np.testing.assert_array_equal(nd.arange(0, 6, 2).asnumpy(), [0, 2, 4])
    x = nd.ones((2, 3))
    assert (x.shape, x.ndim, x.size, x.context) == ((2, 3), 2, 6, gc.cpu())
    assert nd.zeros_like(x).asnumpy().sum() == 0 and nd.ones_like(x).asnumpy().sum() == 6
    with pytest.raises(gc.GraphcError, match="not supported"):
        nd.zeros((2,), dtype='complex64')


def test_random_is_seeded():
    gc.random.seed(7)
    a = nd.random.uniform(-1, 1, shape=(3, 4)).asnumpy()
    gc.random.seed(7)
    b = nd.random.uniform(-1, 1, shape=(3, 4)).asnumpy()
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= -1 and a.max() <= 1
    n = nd.random.normal(0, 2, shape=(20000,)).asnumpy()
    assert abs(n.std() - 2) < 0.1
    r = nd.random.randint(0, 5, shape=(100,)).asnumpy()
    assert r.min() >= 0 and r.max() < 5


def test_operators_broadcast_and_scalars():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2, 3], np.float32)
    x, y = nd.array(a), nd.array(b)
    np.testing.assert_allclose((x + y).asnumpy(), a + b)
    np.testing.assert_allclose((x * 2 - 1).asnumpy(), a * 2 - 1)
    np.testing.assert_allclose((1 - x).asnumpy(), 1 - a)
    np.testing.assert_allclose((2 / (x + 1)).asnumpy(), 2 / (a + 1), rtol=1e-6)
    np.testing.assert_allclose((x ** 2).asnumpy(), a ** 2)
    np.testing.assert_allclose((2 ** y).asnumpy(), 2 ** b)
    np.testing.assert_allclose((-x).asnumpy(), -a)
    np.testing.assert_array_equal((x > 2).asnumpy(), (a > 2).astype(np.float32))  # MXNet: same dtype 0/1
    np.testing.assert_array_equal((x == y).asnumpy(), (a == b).astype(np.float32))
    assert (x * 2.5).dtype == np.float32  # a Python float never upcasts
    i = nd.array([1, 2, 3], dtype='int32')
    assert (i + 1).dtype == np.int32


def test_methods_match_numpy():
    a = np.random.default_rng(0).normal(size=(2, 3, 4)).astype(np.float32)
    x = nd.array(a)
    np.testing.assert_allclose(x.reshape((0, -1)).asnumpy(), a.reshape(2, 12))
    np.testing.assert_allclose(x.transpose((2, 0, 1)).asnumpy(), a.transpose(2, 0, 1))
    np.testing.assert_allclose(x.swapaxes(0, 2).asnumpy(), a.swapaxes(0, 2))
    np.testing.assert_allclose(x.sum(axis=1, keepdims=True).asnumpy(), a.sum(1, keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(x.mean(axis=(0, 2)).asnumpy(), a.mean((0, 2)), rtol=1e-6)
    np.testing.assert_allclose(x.max(axis=2).asnumpy(), a.max(2))
    np.testing.assert_array_equal(x.argmax(axis=1).asnumpy(), a.argmax(1))
    np.testing.assert_allclose(x.norm().asnumpy(), np.linalg.norm(a), rtol=1e-6)
    np.testing.assert_allclose(nd.concat(x, x, dim=2).asnumpy(), np.concatenate([a, a], 2))
    np.testing.assert_allclose(nd.stack(x, x, axis=0).asnumpy(), np.stack([a, a]))
    parts = nd.split(x, num_outputs=3, axis=1)
    np.testing.assert_allclose(parts[2].asnumpy(), a[:, 2:3])
    np.testing.assert_allclose(x.tile((1, 2, 1)).asnumpy(), np.tile(a, (1, 2, 1)))
    np.testing.assert_allclose(x.clip(-0.5, 0.5).asnumpy(), np.clip(a, -0.5, 0.5))
    np.testing.assert_allclose(nd.where(x > 0, x, -x).asnumpy(), np.abs(a))
    np.testing.assert_allclose(x.expand_dims(1).squeeze(1).asnumpy(), a)
    np.testing.assert_allclose(x.flatten().asnumpy(), a.reshape(2, 12))
    assert x.astype('float64').dtype == np.float64
    assert float(x[0, 0, 0]) == pytest.approx(float(a[0, 0, 0]))
    assert x[1, 2, 3].asscalar() == pytest.approx(float(a[1, 2, 3]))


def test_indexing_get_forms():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x = nd.array(a)
    for key in [0, -1, (1, 2), (slice(None), 1), (Ellipsis, 2), (slice(None, None, -1),), (None, 0),
                (0, slice(1, None), slice(None, None, 2))]:
        np.testing.assert_array_equal(x[key].asnumpy(), a[key], err_msg=str(key))
    np.testing.assert_array_equal(x[[1, 0]].asnumpy(), a[[1, 0]])
    np.testing.assert_array_equal(x[:, [2, 0]].asnumpy(), a[:, [2, 0]])
    mask = a > 10
    np.testing.assert_array_equal(x[nd.array(mask, dtype=bool)].asnumpy(), a[mask])
    np.testing.assert_array_equal(x[nd.array([1, 0])].asnumpy(), a[[1, 0]])  # float indices are indices


def test_indexing_errors_name_axis_and_shape():
    x = nd.zeros((2, 3))
    with pytest.raises(gc.GraphcError, match=r"index 5 is out of range for axis 1 of size 3 \(array shape \(2, 3\)\)"):
        x[0, 5]
    with pytest.raises(gc.GraphcError, match="out of range"):
        x[[0, 7]]
    with pytest.raises(gc.GraphcError, match=r"shape \(4,\).*shape \(2, 3\)"):
        x[:] = np.ones(4)


def test_setitem_and_inplace_keep_identity():
    x = nd.zeros((2, 3))
    alias = x
    x[:] = x + 1
    x += 2
    x *= 2
    x[0, 1] = -1
    x[1] = nd.array([7, 8, 9])
    assert alias is x
    np.testing.assert_array_equal(x.asnumpy(), [[6, -1, 6], [7, 8, 9]])
    x[x.asnumpy() > 7] = 0
    np.testing.assert_array_equal(x.asnumpy(), [[6, -1, 6], [7, 0, 0]])


def test_conversions_and_repr():
    x = nd.array([[1.5, 2]])
    assert np.asarray(x).dtype == np.float32
    assert x.tolist() == [[1.5, 2.0]]
    assert '<NDArray 1x2 @cpu(0)>' in repr(x)
    with pytest.raises(gc.GraphcError, match="ambiguous"):
        bool(x)
    with pytest.raises(gc.GraphcError, match=r"size 1.*\(1, 2\)"):
        x.asscalar()
    y = x.copy()
    y[:] = 0
    assert x.asnumpy()[0, 0] == 1.5  # copy() does not alias


def test_devices():
    x = nd.ones((2,))
    assert x.as_in_context(gc.cpu()) is x
    y = x.copyto(gc.cpu())
    assert y is not x and y.asnumpy().tolist() == [1, 1]
    z = nd.zeros((2,))
    x.copyto(z)
    assert z.asnumpy().tolist() == [1, 1]
    if gc.num_gpus() == 0:  # gc.gpu(0) is a name, as in MXNet: allocating there says what is missing
        with pytest.raises(gc.GraphcError, match=r"gc.gpu\(0\).*(cupy|CUDA|device)"):
            nd.zeros((1,), ctx=gc.gpu(0))


def test_op_errors_name_op_and_shapes():
    with pytest.raises(gc.GraphcShapeError, match=r"broadcast_add.*\(2, 3\) and \(4,\)"):
        nd.ones((2, 3)) + nd.ones((4,))
    with pytest.raises(gc.GraphcShapeError, match=r"FullyConnected: weight shape \(4, 5\).*\(4, 7\)"):
        nd.FullyConnected(nd.ones((2, 7)), nd.ones((4, 5)), nd.ones((4,)), num_hidden=4)
    with pytest.raises(gc.GraphcShapeError, match=r"dot: last dim of lhs \(3\) must equal first dim of rhs \(4\)"):
        nd.dot(nd.ones((2, 3)), nd.ones((4, 5)))
    with pytest.raises(gc.GraphcShapeError, match="elemwise_add.*float32, int32"):
        nd.elemwise_add(nd.ones((2,)), nd.ones((2,), dtype='int32'))
    with pytest.raises(gc.GraphcShapeError, match=r"Convolution: weight shape \(8, 2, 3, 3\) should be \(8, 3, 3, 3\)"):
        nd.Convolution(nd.ones((1, 3, 5, 5)), nd.ones((8, 2, 3, 3)), nd.ones((8,)), kernel=(3, 3), num_filter=8)
    with pytest.raises(gc.GraphcError, match="Pooling: bad value for attribute 'pool_type'"):
        nd.Pooling(nd.ones((1, 1, 4, 4)), kernel=(2, 2), pool_type='median')
    with pytest.raises(gc.GraphcError, match="Activation: unknown attribute 'act'"):
        nd.Activation(nd.ones((2,)), act='relu')
    with pytest.raises(gc.GraphcError, match=r"pick: index out of range for a dimension of size 3"):
        nd.pick(nd.ones((2, 3)), nd.array([0, 5]), mode='raise').wait_to_read()  # lazy: found when realized
    with pytest.raises(gc.GraphcShapeError, match=r"softmax_cross_entropy.*\(4, 10\) and \(4, 3\)"):
        nd.softmax_cross_entropy(nd.ones((4, 10)), nd.ones((4, 3)))


def test_attr_strings_are_parsed_strictly():
    from graphc.registry import get
    conv = get('Convolution')
    a = conv.canon({'kernel': '(5, 5)', 'num_filter': '32', 'no_bias': 'True', 'stride': '[2,2]'})
    assert a['kernel'] == (5, 5) and a['num_filter'] == 32 and a['no_bias'] is True and a['stride'] == (2, 2)
    for bad in [{'kernel': '(5, 5)', 'num_filter': '32.0'}, {'kernel': '__import__("os")', 'num_filter': '1'},
                {'kernel': '(5, 5)', 'num_filter': '1', 'no_bias': 'no'}]:
        with pytest.raises(gc.GraphcError, match="Convolution: bad value"):
            conv.canon(bad)
    assert conv.format_attrs(a) == {'kernel': '(5, 5)', 'no_bias': 'True', 'num_filter': '32', 'stride': '(2, 2)'}
