"""MXNet 1.9 semantics found missing by MXNet's own tests: op kwargs, exp's rounding, alias names, infer_type of
labels, backward after an inference forward, Gluon utilities."""
import numpy as np
import pytest

import graphc as mx


def test_op_without_attributes_ignores_keyword_attributes():
    # MXNet: an op without a parameter struct never parses its kwargs (test_loss.test_cosine_loss passes axis=1)
    a, b = mx.nd.array([0]), mx.nd.array([[1, -2]])
    np.testing.assert_array_equal(mx.nd.broadcast_maximum(a, b, axis=1).asnumpy(), [[1, 0]])
    assert mx.sym.broadcast_maximum(mx.sym.var('a'), mx.sym.var('b'), axis=1).infer_shape(a=(1,), b=(1, 2))[1] == [(1, 2)]
    with pytest.raises(mx.base.MXNetError, match="broadcast_maximum: unknown attribute 'foo'"):
        mx.nd.broadcast_maximum(a, b, foo=a)  # an array under a name the op does not take is a lost input
    with pytest.raises(mx.base.MXNetError, match="Activation: unknown attribute 'act'"):
        mx.nd.Activation(a, act='relu')       # an op with attributes still refuses unknown ones


def test_exp_float32_correctly_rounded():
    x = np.linspace(-20, 20, 20001).astype('f4')
    y = mx.nd.exp(mx.nd.array(x)).asnumpy()
    ref = np.exp(x.astype('f8'))
    assert y.dtype == np.float32
    assert (np.abs(y - ref) / np.spacing(ref.astype('f4'))).max() <= 0.5 + 1e-6
    assert float(mx.nd.exp(mx.nd.ones((1,))).asscalar()) == float(np.float32(np.e))
    x = mx.nd.ones((1,))
    x.attach_grad()
    with mx.autograd.record():
        z = mx.nd.elemwise_add(mx.nd.exp(x), x)
    dx, = mx.autograd.grad(z, [x], create_graph=True)
    dx.backward()
    assert float(dx.asscalar()) == float(np.float32(np.e) + np.float32(1))
    assert float(x.grad.asscalar()) == float(np.float32(np.e))


def test_alias_names_its_node_after_itself():
    with mx.name.NameManager():
        x = mx.sym.var('x')
        assert x.flip(axis=1).list_outputs() == ['flip0_output']
        assert mx.sym.reverse(x, axis=1).list_outputs() == ['reverse0_output']
        assert x.split(num_outputs=2, axis=1).list_outputs() == ['split0_output0', 'split0_output1']
        assert mx.sym.pad(mx.sym.var('y'), mode='constant', pad_width=(0, 0, 0, 0, 1, 1, 1, 1)).list_outputs() == \
            ['pad0_output']
    assert '"op": "reverse"' in x.flip(axis=1).tojson()  # the op stays MXNet's reverse


def test_infer_type_label_typed_as_data():
    data = mx.sym.var('data')
    fc = mx.sym.FullyConnected(mx.sym.Cast(data, dtype='float32'), name='fc1', num_hidden=8)
    out = mx.sym.SoftmaxOutput(fc, name='softmax')
    arg, outs, aux = out.infer_type(data=np.float16)
    assert arg == [np.float16, np.float32, np.float32, np.float32] and outs == [np.float32]
    assert out.infer_type_partial()[0] == [None, np.float32, np.float32, np.float32]
    assert mx.sym.LinearRegressionOutput(mx.sym.var('d')).infer_type(d=np.float64)[0] == [np.float64, np.float64]


def test_backward_after_inference_forward():
    # MXNet differentiates the forward that ran: after forward(is_train=False) (Dropout off) the gradients are
    # those of the graph without Dropout
    d = mx.sym.var('data')
    fc = lambda x, n, name: mx.sym.FullyConnected(x, num_hidden=n, name=name)  # noqa: E731
    exe = fc(mx.sym.Dropout(fc(d, 5, 'a'), p=0.5), 3, 'b').simple_bind(mx.cpu(), data=(4, 6))
    ref = fc(fc(d, 5, 'a'), 3, 'b').simple_bind(mx.cpu(), data=(4, 6))
    rng = np.random.default_rng(0)
    for k, v in exe.arg_dict.items():
        v[:] = rng.standard_normal(v.shape)
        ref.arg_dict[k][:] = v
    exe.forward(is_train=False)
    exe.backward(mx.nd.ones((4, 3)))
    ref.forward(is_train=True)
    ref.backward(mx.nd.ones((4, 3)))
    for k in ('data', 'a_weight', 'b_weight', 'b_bias'):
        np.testing.assert_allclose(exe.grad_dict[k].asnumpy(), ref.grad_dict[k].asnumpy(), rtol=1e-6, atol=1e-6)
    # MXNet 1.x runs a backward with no forward before it (test_operator's repeat/tile gradients do): the
    # gradient at the bound arguments, as after an inference forward
    fresh = mx.sym.FullyConnected(d, num_hidden=2, name='fc').simple_bind(mx.cpu(), data=(1, 2))
    fresh.arg_dict['data'][:] = np.array([[2.0, 3.0]])
    fresh.backward(mx.nd.array([[1.0, 10.0]]))
    np.testing.assert_allclose(fresh.grad_dict['fc_weight'].asnumpy(), [[2, 3], [20, 30]])
    np.testing.assert_allclose(fresh.grad_dict['fc_bias'].asnumpy(), [1, 10])


def test_nd_array_dtype_rule():
    # MXNet 1.x: "the default dtype is source_array.dtype if source_array is an NDArray, float32 otherwise"
    assert mx.nd.array(np.arange(3)).dtype == np.float32
    assert mx.nd.array(np.ones(2, np.float64)).dtype == np.float32
    assert mx.nd.array([True, False]).dtype == np.float32
    assert mx.nd.array(np.arange(3), dtype='int64').dtype == np.int64
    assert mx.nd.array(mx.nd.array([1, 2], dtype='int32')).dtype == np.int32
    assert mx.nd.array(mx.nd.array([1, 2], dtype='int32'), dtype='float16').dtype == np.float16


def test_ndarrayiter_first_data_array_sets_the_count():
    d = np.arange(10, dtype='f4').reshape(10, 1)
    it = mx.io.NDArrayIter(d, {'label': np.arange(20), 'w': np.ones(20)}, batch_size=5)
    batches = [(b.data[0].asnumpy()[:, 0].tolist(), b.label[0].asnumpy().tolist()) for b in it]
    assert batches == [([0, 1, 2, 3, 4], [0, 1, 2, 3, 4]), ([5, 6, 7, 8, 9], [5, 6, 7, 8, 9])]
    with pytest.raises(mx.base.MXNetError, match="'softmax_label' has 3 samples"):
        mx.io.NDArrayIter(d, np.arange(3), batch_size=5)


def test_split_data_as_mxnet_1_9():
    x = mx.nd.array(np.arange(7 * 3 * 2).reshape(7, 3, 2))
    for num, axis in ((3, 0), (2, 1), (4, 0), (7, 0), (8, 0)):
        got = mx.gluon.utils.split_data(x, num, axis, even_split=False)
        want = np.array_split(x.asnumpy(), num, axis=axis)
        assert len(got) == num and all(g.shape == w.shape and (g.asnumpy() == w).all() for g, w in zip(got, want))
    with pytest.raises(ValueError, match='evenly split'):
        mx.gluon.utils.split_data(x, 2)


def test_clip_global_norm_returns_as_mxnet():
    import warnings
    a, b = mx.nd.ones((3, 3)), mx.nd.ones((4, 4))
    norm = mx.gluon.utils.clip_global_norm([a, b], 1.0)
    assert isinstance(norm, np.float32) and norm == 5.0
    np.testing.assert_allclose(a.asnumpy(), np.full((3, 3), 0.2), rtol=1e-6)
    a, b = mx.nd.ones((3, 3)), mx.nd.ones((4, 4))
    norm = mx.gluon.utils.clip_global_norm([a, b], 1.0, check_isfinite=False)
    assert isinstance(norm, mx.nd.NDArray) and norm.shape == (1,) and norm.asscalar() == 5.0
    for check in (True, False):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            c = mx.nd.array([1.0, 2.0, float('nan')])
            mx.gluon.utils.clip_global_norm([mx.nd.ones((2,)), c], 2.0, check_isfinite=check)
        assert len(w) == int(check)
        assert np.isnan(c.asnumpy()).all()  # a nan norm: the results are undefined (nan), as MXNet's


def test_parameter_grad_attribute_follows_grad_req():
    net = mx.gluon.nn.Dense(2, in_units=3)
    net.initialize()
    p = net.weight
    assert isinstance(p._grad, list) and p._grad[0].shape == (2, 3)
    net.collect_params().setattr('grad_req', 'null')
    assert p._grad is None
    net.collect_params().setattr('grad_req', 'write')
    assert p._grad is not None


def test_initializer_equality():
    I = mx.init
    assert I.Constant(-10.0) == I.Constant(-10.0) and I.Constant(1) != I.Constant(2)
    assert I.Xavier() == I.Xavier() and I.Xavier() != I.Xavier(magnitude=2)
    assert I.Zero() != I.One() and I.Normal(0.1) != I.Uniform(0.1)
    assert I.Constant(np.ones(2)) == I.Constant(mx.nd.ones(2)) and I.Constant(np.ones(2)) != I.Constant(np.ones(3))
    assert len({I.Zero(), I.Zero()}) == 1


def test_constant_parameter_from_numpy_ints():
    class Test(mx.gluon.HybridBlock):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.value = np.asarray([[1, 2], [3, 4]])
            self.const = self.params.get_constant('const', self.value)

        def hybrid_forward(self, F, x, const):
            return x + const
    for hybridize in (False, True):
        t = Test()
        t.initialize()
        if hybridize:
            t.hybridize()
        assert t.const.dtype == np.float32  # nd.array's rule: float32 unless the value is an NDArray
        np.testing.assert_array_equal(t(mx.nd.ones((2, 2))).asnumpy(), [[2, 3], [4, 5]])


def test_symbol_block_shares_params_and_saves_without_their_prefix(tmp_path):
    class Net(mx.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                inner = mx.gluon.nn.HybridSequential()
                with inner.name_scope():
                    inner.add(mx.gluon.nn.Dense(4, activation='relu'), mx.gluon.nn.Dense(3))
                data = mx.sym.var('data')
                self.backbone = mx.gluon.SymbolBlock(inner(data), data, params=inner.collect_params())
                self.inner = inner
                self.body = mx.gluon.nn.Dense(5)

        def hybrid_forward(self, F, x):
            return self.backbone(self.body(x))
    net = Net()
    assert set(net.backbone.collect_params().values()) == set(net.inner.collect_params().values())  # shared
    saved = net.backbone._collect_params_with_prefix('backbone')
    # MXNet cuts the characters all names share ('..._dense'), not whole name parts
    assert sorted(saved) == ['backbone.0_bias', 'backbone.0_weight', 'backbone.1_bias', 'backbone.1_weight']
    net.initialize()
    net.hybridize()
    x = mx.nd.ones((2, 6))
    y = net(x).asnumpy()
    f = str(tmp_path / 'n.params')
    net.save_parameters(f)
    net2 = Net()  # other prefixes (hybridsequential1_...): the file's names still match
    net2.load_parameters(f, ctx=mx.cpu())
    np.testing.assert_allclose(net2(x).asnumpy(), y, rtol=1e-6)
