"""MXNet 1.x's NDArray-side API on graphc: module names, error classes, calling conventions, result
conventions, samplers, loss heads, io and metric (each against NumPy or MXNet's published formula)."""
import os

import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd


# ---------------------------------------------------------------- base, util, name, attribute, context
def test_mxnet_error_catches_shape_load_and_trace_errors(tmp_path):
    with pytest.raises(mx.base.MXNetError):
        nd.dot(nd.ones((2, 3)), nd.ones((4, 5)))
    bad = tmp_path / 'bad.params'
    bad.write_bytes(b'not a params file')
    with pytest.raises(mx.base.MXNetError):
        nd.load(str(bad))

    class Branchy(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x if x.sum() > 0 else -x
    net = Branchy()
    net.hybridize()
    with pytest.raises(mx.base.MXNetError):
        net(nd.ones((2,)))
    assert issubclass(mx.base.MXNetError, RuntimeError)
    assert issubclass(mx.base.GraphcShapeError, ValueError)
    with pytest.raises(IndexError):
        nd.ones((3,))[5]


def test_base_helpers():
    assert mx.base.py_str(b'abc') == 'abc' and mx.base._as_list(1) == [1] and mx.base._as_list([1]) == [1]
    assert isinstance(np.int64(3), mx.base.integer_types) and isinstance(2.0, mx.base.numeric_types)
    e = mx.base.NotImplementedForSymbol(nd.sort, 'sort')
    assert 'not implemented for Symbol' in str(e) and isinstance(e, mx.base.MXNetError)


def test_np_shape_switch_and_full_reductions():
    x = nd.array([[1, 2], [3, 4]])
    assert x.sum().shape == (1,) and nd.norm(x).shape == (1,) and x.max().shape == (1,)
    assert x.argmax().shape == (1,) and nd.dot(nd.ones(3), nd.ones(3)).shape == (1,)
    assert nd.ones((3,))[1].shape == (1,)
    assert not mx.util.is_np_shape()
    with mx.np_shape(True):
        assert mx.util.is_np_shape() and x.sum().shape == () and nd.ones((3,))[1].shape == ()
    assert not mx.is_np_shape()
    prev = mx.util.set_np_shape(True)
    assert prev is False and x.mean().shape == ()
    mx.util.set_np_shape(False)
    assert not mx.util.is_np_array()
    assert mx.util.use_np(lambda: (mx.is_np_array(), mx.is_np_shape()))() == (True, True)
    assert not mx.util.is_np_array() and not mx.is_np_shape()


def test_asscalar_is_a_numpy_scalar_of_the_dtype():
    v = nd.array([2.5]).asscalar()
    assert isinstance(v, np.float32) and v == 2.5
    assert isinstance(nd.array([3], dtype='int32').asscalar(), np.int32)


def test_name_manager_and_attr_scope():
    with mx.name.NameManager():
        assert mx.name.NameManager.current.get(None, 'fc') == 'fc0'
        assert mx.name.NameManager.current.get(None, 'fc') == 'fc1'
        assert mx.name.NameManager.current.get('mine', 'fc') == 'mine'
    with mx.name.Prefix('net_'):
        assert mx.name.NameManager.current.get(None, 'conv') == 'net_conv0'
    with mx.AttrScope(group='4'):
        with mx.attribute.AttrScope(lr_mult='2'):
            assert mx.attribute.AttrScope.current.get({'x': '1'}) == {'group': '4', 'lr_mult': '2', 'x': '1'}
        assert mx.attribute.AttrScope.current.get(None) == {'group': '4'}
    with pytest.raises(ValueError, match='must be a string'):  # MXNet's AttrScope raises ValueError
        mx.AttrScope(group=4)


def test_context_names():
    assert mx.Context('cpu_shared', 0).device_type == 'cpu_shared' and mx.Context.default_ctx == mx.cpu()
    with mx.Context('cpu', 1):
        assert mx.context.current_context() == mx.cpu(1) and mx.test_utils.default_context() == mx.cpu(1)
    assert mx.current_context() == mx.cpu()


def test_module_layout():
    import importlib
    for m in ('graphc.ndarray.random', 'graphc.ndarray.linalg', 'graphc.ndarray.contrib', 'graphc.ndarray.sparse',
              'graphc.nd.random', 'graphc.ndarray.ndarray'):
        importlib.import_module(m)
    assert mx.nd.random.uniform is mx.random.uniform and mx.gluon.metric is mx.metric
    assert nd.ndarray.NDArray is nd.NDArray and nd._STORAGE_TYPE_STR_TO_ID['csr'] == 2


def test_unregistered_custom_is_a_clear_error():  # (sparse storage: tests/test_sparse.py; Custom: test_custom_op.py)
    x = nd.ones((2, 2))
    assert x.tostype('default').stype == 'default' and x.tostype('csr').stype == 'csr'
    with pytest.raises(mx.base.MXNetError, match="op_type 'mine' is not registered"):
        nd.Custom(x, op_type='mine')


# ---------------------------------------------------------------- calling conventions
def test_inputs_by_keyword_and_positional_attributes():
    x, w, b = nd.ones((2, 3)), nd.ones((4, 3)), nd.zeros(4)
    y = nd.FullyConnected(data=x, weight=w, bias=b, num_hidden=4)
    np.testing.assert_allclose(y.asnumpy(), np.full((2, 4), 3.0))
    a = nd.array([-3.0, 0.5, 3.0])
    np.testing.assert_allclose(nd.clip(a, -2, 2).asnumpy(), [-2, 0.5, 2])
    assert nd.one_hot(nd.array([1, 0]), 3).shape == (2, 3)
    np.testing.assert_allclose(nd.sum(nd.ones((2, 3)), 1).asnumpy(), [3, 3])
    # Convolution(data, weight, bias, kernel, stride, dilate, pad, num_filter): MXNet's positional order
    xc, wc = nd.ones((1, 1, 5, 5)), nd.ones((2, 1, 3, 3))
    yc = nd.Convolution(xc, wc, nd.zeros(2), (3, 3), (2, 2), (1, 1), (1, 1), 2)
    assert yc.shape == (1, 2, 3, 3)
    assert nd.Pooling(xc, (2, 2), 'max').shape == (1, 1, 4, 4)


def test_out_and_numpy_shapes():
    out = nd.zeros((3,))
    r = nd.exp(nd.zeros((3,)), out=out)
    assert r is out and (out.asnumpy() == 1).all()
    assert nd.zeros(np.array([2, 3])).shape == (2, 3)
    o = nd.zeros((2,))
    assert mx.random.uniform(0, 1, out=o) is o


def test_fluent_methods():
    x = nd.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    np.testing.assert_allclose(x.take(nd.array([1])).asnumpy(), [[0, 5, 4]])
    np.testing.assert_allclose(x.clip(1, 3).asnumpy(), np.clip(x.asnumpy(), 1, 3))
    np.testing.assert_allclose(x.flip(axis=1).asnumpy(), x.asnumpy()[:, ::-1])
    np.testing.assert_allclose(x.sort().asnumpy(), np.sort(x.asnumpy()))
    np.testing.assert_allclose(x.topk(k=1).asnumpy(), [[0], [1]])
    np.testing.assert_allclose(x.sum(1).asnumpy(), [6, 9])
    np.testing.assert_allclose(nd.array([0, 2]).one_hot(3).asnumpy(), np.eye(3)[[0, 2]])
    np.testing.assert_allclose(x.tan().asnumpy(), np.tan(x.asnumpy()), rtol=1e-5)
    assert x.squeeze().shape == (2, 3) and nd.ones((2, 1)).squeeze(inplace=True).shape == (2,)


# ---------------------------------------------------------------- samplers
def test_samplers_are_seeded_and_shaped():
    mx.random.seed(3)
    a = nd.random.uniform(-1, 1, shape=(2, 3)).asnumpy()
    mx.random.seed(3)
    b = nd.random_uniform(-1, 1, (2, 3)).asnumpy()
    np.testing.assert_array_equal(a, b)
    assert ((a >= -1) & (a < 1)).all() and mx.random.uniform().shape == (1,)
    assert nd.random.normal(0, 1, shape=5, dtype='float64').dtype == np.float64
    assert nd.random.randn(2, 3).shape == (2, 3) and nd.random.randint(0, 4, shape=(6,)).dtype == np.int32
    p = nd.random.normal(nd.zeros(3), nd.ones(3), shape=4)  # sample_normal: one draw of shape 4 per element
    assert p.shape == (3, 4)
    mx.random.seed(0)
    big = nd.random.poisson(4.0, shape=(20000,)).asnumpy()
    assert abs(big.mean() - 4) < 0.1
    e = nd.random.exponential(2.0, shape=(20000,)).asnumpy()  # scale 2: mean 2
    assert abs(e.mean() - 2) < 0.1
    g = nd.random.gamma(2.0, 3.0, shape=(20000,)).asnumpy()
    assert abs(g.mean() - 6) < 0.2
    s, lp = nd.random.multinomial(nd.array([[0.0, 1.0], [1.0, 0.0]]), shape=3, get_prob=True)
    np.testing.assert_array_equal(s.asnumpy(), [[1, 1, 1], [0, 0, 0]])
    assert (lp.asnumpy() == 0).all()
    sh = nd.random.shuffle(nd.arange(10)).asnumpy()
    assert sorted(sh) == list(range(10))


def test_multinomial_log_prob_gradient_of_an_empty_batch():
    """A batch of no rows draws nothing and its gradient is empty too (the fuzzer's seed 91738: the backward
    reshaped the draws with -1, which NumPy cannot infer from zero rows)."""
    p = nd.array(np.full((0, 3), 1 / 3, np.float32))
    p.attach_grad()
    with autograd.record():
        s, lp = nd.random.multinomial(p, shape=2, get_prob=True)
    lp.backward()
    assert s.shape == (0, 2) and p.grad.shape == (0, 3)
    q = nd.array([[0.25, 0.75]])   # (and one row still gets ograd / p at each draw)
    q.attach_grad()
    with autograd.record():
        s, lp = nd.random.multinomial(q, shape=4, get_prob=True)
    lp.backward()
    want = np.zeros(2)
    np.add.at(want, s.asnumpy()[0].astype(int), 1 / q.asnumpy()[0][s.asnumpy()[0].astype(int)])
    np.testing.assert_allclose(q.grad.asnumpy()[0], want, rtol=1e-6)


def test_sampler_in_hybridized_block_draws_fresh_values():
    class Noisy(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            return x + F.random.uniform(shape=(3,)) if hasattr(F, 'random') else x + F._random_uniform(shape=(3,))
    net = Noisy()
    net.hybridize()
    a, b = net(nd.zeros(3)).asnumpy(), net(nd.zeros(3)).asnumpy()
    assert a.shape == (3,) and not np.array_equal(a, b)


# ---------------------------------------------------------------- loss heads: MXNet's backward formulas
def _grad(fn, *xs):
    for x in xs:
        x.attach_grad()
    with autograd.record():
        y = fn(*xs)
    y.backward()
    return y, [x.grad.asnumpy() for x in xs]


def test_loss_head_gradients():
    x = nd.array(np.random.RandomState(0).normal(size=(4, 5)))
    label = nd.array([0, 3, 4, 1])
    y, (g,) = _grad(lambda x: nd.SoftmaxOutput(x, label), x)
    p = np.exp(x.asnumpy()) / np.exp(x.asnumpy()).sum(1, keepdims=True)
    np.testing.assert_allclose(y.asnumpy(), p, rtol=1e-5)
    np.testing.assert_allclose(g, p - np.eye(5)[[0, 3, 4, 1]], rtol=1e-5, atol=1e-6)
    t = nd.array(np.random.RandomState(1).normal(size=(4, 5)))
    _, (g,) = _grad(lambda x: nd.LinearRegressionOutput(x, t, grad_scale=2.0), x)
    np.testing.assert_allclose(g, (x.asnumpy() - t.asnumpy()) * 2 / 5, rtol=1e-5)
    _, (g,) = _grad(lambda x: nd.LogisticRegressionOutput(x, t), x)
    np.testing.assert_allclose(g, (1 / (1 + np.exp(-x.asnumpy())) - t.asnumpy()) / 5, rtol=1e-5)
    _, (g,) = _grad(lambda x: nd.MakeLoss(x * 3, grad_scale=0.5), x)
    np.testing.assert_allclose(g, np.full((4, 5), 1.5))
    _, (g,) = _grad(lambda x: nd.BlockGrad(x) * x, x)
    np.testing.assert_allclose(g, x.asnumpy(), rtol=1e-6)
    _, (g,) = _grad(lambda x: nd.stop_gradient(x * 2) + x, x)
    np.testing.assert_allclose(g, np.ones((4, 5)))


def test_new_ops_hybridized_equal_eager():
    class Net(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            s = F.sort(x, axis=1) + F.topk(x, k=5, ret_typ='value')
            return F._linalg_gemm2(s, s, transpose_b=True) + F.smooth_l1(F.sum(x, axis=1, keepdims=True), scalar=1.0)
    x = nd.array(np.random.RandomState(2).normal(size=(3, 5)))
    net = Net()
    eager = net(x).asnumpy()
    net.hybridize()
    np.testing.assert_allclose(net(x).asnumpy(), eager, rtol=1e-5)


def test_potrf_gradient_along_symmetric_directions():
    """MXNet's potrf reads a symmetric A: its gradient, taken along symmetric perturbations, is the derivative."""
    rs = np.random.RandomState(4)
    B = rs.normal(size=(3, 3))
    A = B @ B.T + 3 * np.eye(3)
    W = rs.normal(size=(3, 3))
    x = nd.array(A, dtype='float64')
    _, (g,) = _grad(lambda a: (nd.linalg.potrf(a) * nd.array(W, dtype='float64')).sum(), x)
    E = rs.normal(size=(3, 3))
    E = E + E.T
    f = lambda a: (np.linalg.cholesky(a) * W).sum()  # noqa: E731
    num = (f(A + 1e-6 * E) - f(A - 1e-6 * E)) / 2e-6
    np.testing.assert_allclose((g * E).sum(), num, rtol=1e-5)


# ---------------------------------------------------------------- io
def _batches(it):
    return [(b.data[0].asnumpy().ravel().tolist(), b.label[0].asnumpy().ravel().tolist(), b.pad) for b in it]


def test_ndarrayiter_last_batch_handles():
    d, lab = np.arange(10, dtype='f4').reshape(10, 1), np.arange(10, dtype='f4') * 10
    pad = _batches(mx.io.NDArrayIter(d, lab, batch_size=4))
    assert pad[-1] == ([8, 9, 0, 1], [80, 90, 0, 10], 2) and len(pad) == 3
    assert len(_batches(mx.io.NDArrayIter(d, lab, batch_size=4, last_batch_handle='discard'))) == 2
    it = mx.io.NDArrayIter(d, lab, batch_size=4, last_batch_handle='roll_over')
    assert [b[0] for b in _batches(it)] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    it.reset()
    second = _batches(it)
    assert second[0][0] == [8, 9, 0, 1] and [b[0] for b in second[1:]] == [[2, 3, 4, 5], [6, 7, 8, 9]]


def test_ndarrayiter_shuffle_dict_and_descs():
    d = np.arange(20, dtype='f4').reshape(10, 2)
    it = mx.io.NDArrayIter({'b': d, 'a': d[:, :1]}, {'lab': np.arange(10)}, batch_size=5, shuffle=True)
    assert [x.name for x in it.provide_data] == ['a', 'b'] and it.provide_data[1].shape == (5, 2)
    assert it.provide_label[0].name == 'lab'
    seen = []
    for b in it:
        a, bb, lab = b.data[0].asnumpy(), b.data[1].asnumpy(), b.label[0].asnumpy()
        np.testing.assert_array_equal(a[:, 0], bb[:, 0])  # the same permutation for every input
        np.testing.assert_array_equal(bb[:, 0] / 2, lab)
        seen += lab.tolist()
    assert sorted(seen) == list(range(10))
    assert mx.io.NDArrayIter(d, batch_size=2).provide_data[0].name == 'data'
    with pytest.raises(mx.base.MXNetError, match='fewer than the 10'):
        mx.io.NDArrayIter(d, np.arange(3), batch_size=2)
    # MXNet's rule: the first data array sets the count; a longer label is read only up to it
    longer = [b.label[0].asnumpy().tolist() for b in mx.io.NDArrayIter(d, np.arange(30), batch_size=5)]
    assert longer == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_resize_prefetch_and_mnist_iters():
    d = np.arange(8, dtype='f4').reshape(8, 1)
    r = mx.io.ResizeIter(mx.io.NDArrayIter(d, batch_size=4), 5)
    assert len(list(r)) == 5
    p = mx.io.PrefetchingIter([mx.io.NDArrayIter(d, batch_size=4), mx.io.NDArrayIter(d * 2, batch_size=4)])
    got = [(b.data[0].asnumpy().ravel(), b.data[1].asnumpy().ravel()) for b in p]
    assert len(got) == 2 and (got[1][1] == got[1][0] * 2).all()
    p.reset()
    assert len(list(p)) == 2
    m = mx.io.MNISTIter(image='t10k-images-idx3-ubyte', label='t10k-labels-idx1-ubyte', batch_size=50, flat=True)
    b = next(m)
    assert b.data[0].shape == (50, 784) and b.label[0].shape == (50,)
    assert 0 <= b.data[0].asnumpy().min() and b.data[0].asnumpy().max() <= 1
    with pytest.raises(mx.base.MXNetError, match='not found'):
        mx.io.MNISTIter(image=os.path.join('/nonexistent', 'x-images'), label='y')


# ---------------------------------------------------------------- metric
def test_metrics_against_numpy():
    pred = np.array([[0.3, 0.7], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    label = np.array([1, 0, 0, 0])
    m = mx.metric.create(['acc', 'ce', mx.metric.TopKAccuracy(top_k=2), 'f1', 'mcc'])
    m.update([nd.array(label)], [nd.array(pred)])
    names, values = m.get()
    assert names == ['accuracy', 'cross-entropy', 'top_k_accuracy_2', 'f1', 'mcc']
    assert values[0] == 0.75
    np.testing.assert_allclose(values[1], -np.log(pred[np.arange(4), label]).mean(), rtol=1e-6)
    assert values[2] == 1.0
    tp, fp, fn, tn = 1, 1, 0, 2  # predictions 1, 0, 1, 0
    np.testing.assert_allclose(values[3], 2 * tp / (2 * tp + fp + fn))
    np.testing.assert_allclose(values[4], (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    y, t = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    for name, want in [('mae', np.abs(y - t).mean()), ('mse', ((y - t) ** 2).mean()),
                       ('rmse', np.sqrt(((y - t) ** 2).mean()))]:
        mm = mx.metric.create(name)
        mm.update([nd.array(t)], [nd.array(y)])
        np.testing.assert_allclose(mm.get()[1], want, rtol=1e-6)
    pp = mx.metric.Perplexity(ignore_label=None)
    pp.update([nd.array(label)], [nd.array(pred)])
    np.testing.assert_allclose(pp.get()[1], np.exp(-np.log(pred[np.arange(4), label]).mean()), rtol=1e-6)
    pc = mx.metric.PearsonCorrelation()
    pc.update([nd.array(t)], [nd.array(y)])
    np.testing.assert_allclose(pc.get()[1], np.corrcoef(y, t)[0, 1])
    loss = mx.metric.Loss()
    loss.update(None, [nd.array([1.0, 3.0])])
    assert loss.get() == ('loss', 2.0)
    c = mx.metric.np(lambda lab, p: float((p.argmax(1) == lab).mean()), name='myacc')
    c.update([nd.array(label)], [nd.array(pred)])
    assert c.get() == ('myacc', 0.75)
    m.reset()
    assert np.isnan(m.get()[1][0])


# ---------------------------------------------------------------- test_utils
def test_test_utils_helpers():
    tu = mx.test_utils
    tu.assert_almost_equal(nd.ones(3), np.ones(3))
    with pytest.raises(AssertionError):
        tu.assert_almost_equal(np.ones(3), np.zeros(3))
    assert tu.almost_equal(np.ones(2), np.ones(2) + 1e-7) and tu.same(nd.ones(2), np.ones(2))
    assert len(tu.rand_shape_nd(3)) == 3 and tu.rand_ndarray((2, 3)).shape == (2, 3)
    tu.assert_exception(lambda: nd.ones((2,))[9], IndexError)
    with tu.environment('GRAPHC_TEST_VAR', '7'):
        assert os.environ['GRAPHC_TEST_VAR'] == '7'
    assert 'GRAPHC_TEST_VAR' not in os.environ


# ---------------------------------------------------------------- contrib control flow, sequences, spatial
def test_contrib_control_flow():
    data = nd.arange(6).reshape((3, 2))
    outs, states = nd.contrib.foreach(lambda x, s: (x + s[0], [s[0] + x]), data, [nd.zeros(2)])
    want = np.cumsum(data.asnumpy(), 0)
    np.testing.assert_allclose(outs.asnumpy(), np.vstack([np.zeros(2), want[:-1]]) + data.asnumpy())
    np.testing.assert_allclose(states[0].asnumpy(), want[-1])
    outs, (i, s) = nd.contrib.while_loop(lambda i, s: i < 3, lambda i, s: (s, (i + 1, s + i)),
                                         (nd.array([0]), nd.array([1])), max_iterations=5)
    np.testing.assert_allclose(outs.asnumpy().ravel(), [1, 1, 2, 0, 0])  # one step output: one array, as MXNet's
    assert i.asscalar() == 3 and s.asscalar() == 4
    assert nd.contrib.cond(nd.array([0]), lambda: nd.ones(1), lambda: nd.zeros(1)).asscalar() == 0


def test_sequence_ops_time_major():
    x = nd.array(np.arange(12, dtype='f4').reshape(4, 3))  # (T=4, N=3)
    L = nd.array([2, 4, 1])
    m = nd.SequenceMask(x, L, use_sequence_length=True, value=-1).asnumpy()
    assert m[2, 0] == -1 and m[3, 1] == 10 and m[1, 2] == -1
    np.testing.assert_allclose(nd.SequenceLast(x, L, use_sequence_length=True).asnumpy(), [3, 10, 2])
    np.testing.assert_allclose(nd.SequenceReverse(x, L, use_sequence_length=True).asnumpy()[:, 0], [3, 0, 6, 9])


def test_bilinear_resize_keeps_corners_and_crop():
    x = nd.array(np.random.RandomState(0).normal(size=(1, 2, 3, 4)))
    y = nd.contrib.BilinearResize2D(x, height=7, width=9).asnumpy()
    np.testing.assert_allclose(y[..., [0, -1], :][..., [0, -1]], x.asnumpy()[..., [0, -1], :][..., [0, -1]], rtol=1e-6)
    assert nd.Crop(x, h_w=(2, 2), center_crop=True).shape == (1, 2, 2, 2)


def test_new_ops_export_to_mxnet_json_and_back(tmp_path):
    class Net(gluon.HybridBlock):
        def hybrid_forward(self, F, x):
            s = F.sort(x, axis=1) + F.topk(x, k=5, ret_typ='value')
            return F._linalg_gemm2(s, s, transpose_b=True) + F.cumsum(F.L2Normalization(x), axis=1).sum()
    net = Net()
    net.hybridize()
    x = nd.array(np.random.RandomState(5).rand(3, 5).astype('f4'))
    y = net(x)
    net.export(str(tmp_path / 'net'))
    back = gluon.SymbolBlock.imports(str(tmp_path / 'net-symbol.json'), ['data'])
    np.testing.assert_allclose(back(x).asnumpy(), y.asnumpy(), rtol=1e-6)


def test_creation_helpers_and_type_errors():
    np.testing.assert_array_equal(nd.eye(3, k=1).asnumpy(), np.eye(3, k=1))
    np.testing.assert_allclose(nd.linspace(0, 1, 5).asnumpy(), np.linspace(0, 1, 5))
    assert nd.moveaxis(nd.ones((2, 3, 4)), 0, -1).shape == (3, 4, 2)
    assert nd.concatenate([nd.ones((2, 2)), nd.zeros((1, 2))]).shape == (3, 2)
    assert nd.from_numpy(np.arange(3)).dtype == np.int64
    with pytest.raises(TypeError):
        nd.relu([1, 2])
    x = nd.ones(2)
    assert x.as_np_ndarray() is x and isinstance(x, mx.np.ndarray)  # one array class for mx.nd and mx.np
