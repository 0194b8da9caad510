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
    fresh = mx.sym.FullyConnected(d, num_hidden=2).simple_bind(mx.cpu(), data=(1, 2))
    with pytest.raises(mx.base.MXNetError, match='run forward first'):
        fresh.backward()
