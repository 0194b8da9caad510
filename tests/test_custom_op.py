"""mx.operator custom ops: eager, autograd, hybridized, bound symbols and MXNet JSON."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd
from graphc.base import GraphcError


class _Softmax(mx.operator.CustomOp):
    """MXNet's canonical example: a softmax loss layer whose backward ignores the top gradient."""
    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()
        y = np.exp(x - x.max(axis=1, keepdims=True))
        self.assign(out_data[0], req[0], nd.array(y / y.sum(axis=1, keepdims=True)))
        self.seen_train = is_train

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        label = in_data[1].asnumpy().astype(int)
        y = out_data[0].asnumpy().copy()
        y[np.arange(label.shape[0]), label] -= 1.0
        self.assign(in_grad[0], req[0], nd.array(y))
        self.assign(in_grad[1], req[1], nd.zeros_like(in_data[1]))


@mx.operator.register('test_softmax')
class _SoftmaxProp(mx.operator.CustomOpProp):
    created = []

    def __init__(self, tag='none'):
        super().__init__(need_top_grad=False)
        self.tag = tag

    def list_arguments(self):
        return ['data', 'label']

    def infer_shape(self, in_shape):
        return [in_shape[0], (in_shape[0][0],)], [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        op = _Softmax()
        _SoftmaxProp.created.append((self.tag, shapes))
        return op


X = np.random.default_rng(0).normal(size=(4, 5)).astype('float32')
LABEL = np.array([0, 2, 4, 1], dtype='float32')


def _softmax(x):
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_eager_forward_backward_and_params_as_strings():
    x, label = nd.array(X), nd.array(LABEL)
    x.attach_grad()
    with autograd.record():
        y = nd.Custom(x, label, op_type='test_softmax', tag=7)
    y.backward()
    np.testing.assert_allclose(y.asnumpy(), _softmax(X), rtol=1e-6)
    want = _softmax(X)
    want[np.arange(4), LABEL.astype(int)] -= 1
    np.testing.assert_allclose(x.grad.asnumpy(), want, rtol=1e-6, atol=1e-7)
    assert ('7', [[4, 5], [4]]) in _SoftmaxProp.created  # MXNet hands every parameter over as a string


def test_inputs_by_name_and_the_training_flag():
    y = nd.Custom(data=nd.array(X), label=nd.array(LABEL), op_type='test_softmax', tag='byname')
    np.testing.assert_allclose(y.asnumpy(), _softmax(X), rtol=1e-6)
    from graphc.operator import _INSTANCES
    op = next(v[1] for k, v in _INSTANCES.items() if k[0] == 'test_softmax' and ('tag', 'byname') in k[1])
    assert op.seen_train is False
    with autograd.record(train_mode=True):
        nd.Custom(nd.array(X), nd.array(LABEL), op_type='test_softmax', tag='byname')
    assert op.seen_train is True


class _Net(mx.gluon.HybridBlock):
    def __init__(self):
        super().__init__()
        self.dense = mx.gluon.nn.Dense(5)

    def hybrid_forward(self, F, x, label):
        return F.Custom(self.dense(x), label, op_type='test_softmax')


def test_hybridized_equals_eager_forward_and_gradients():
    net = _Net()
    net.initialize()
    x, label = nd.array(X), nd.array(LABEL)
    grads = []
    for hybrid in (False, True):
        if hybrid:
            net.hybridize()
        with autograd.record():
            y = net(x, label)
        y.backward()
        grads.append((y.asnumpy(), net.dense.weight.grad().asnumpy().copy()))
    np.testing.assert_allclose(grads[1][0], grads[0][0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grads[1][1], grads[0][1], rtol=1e-5, atol=1e-6)


def test_bound_symbol_and_json_round_trip(tmp_path):
    s = mx.sym.Custom(mx.sym.var('data'), mx.sym.var('label'), op_type='test_softmax', name='sm')
    s2 = mx.sym.load_json(s.tojson())
    assert s2.list_arguments() == ['data', 'label'] and s2.infer_shape(data=(4, 5), label=(4,))[1] == [(4, 5)]
    ex = s2.bind(mx.cpu(), {'data': nd.array(X), 'label': nd.array(LABEL)},
                 args_grad={'data': nd.zeros((4, 5)), 'label': nd.zeros((4,))})
    out = ex.forward(is_train=True)[0]
    ex.backward()
    np.testing.assert_allclose(out.asnumpy(), _softmax(X), rtol=1e-6)
    want = _softmax(X)
    want[np.arange(4), LABEL.astype(int)] -= 1
    np.testing.assert_allclose(ex.grad_dict['data'].asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_a_file_naming_an_unregistered_op_type_is_a_clear_error():
    js = mx.sym.Custom(mx.sym.var('data'), mx.sym.var('label'), op_type='test_softmax').tojson()
    js = js.replace('test_softmax', 'never_registered')
    with pytest.raises(GraphcError, match="op_type 'never_registered' is not registered in this process"):
        mx.sym.load_json(js).infer_shape(data=(4, 5), label=(4,))


def test_wrong_shapes_and_bad_registrations_are_clear_errors():
    with pytest.raises(GraphcError, match="wants input 'label' of shape"):
        nd.Custom(nd.array(X), nd.ones((3,)), op_type='test_softmax')
    with pytest.raises(GraphcError, match="takes 2 inputs"):
        nd.Custom(nd.array(X), op_type='test_softmax')
    with pytest.raises(GraphcError, match='CustomOpProp subclass'):
        mx.operator.register('bad')(object)
    with pytest.raises(GraphcError, match="missing required attribute 'op_type'"):
        nd.Custom(nd.array(X))


def test_assign_follows_req():
    op, dst = mx.operator.CustomOp(), nd.ones((2,))
    op.assign(dst, 'add', nd.ones((2,)))
    op.assign(dst, 'null', nd.zeros((2,)))
    assert dst.asnumpy().tolist() == [2.0, 2.0]
    op.assign(dst, 'write', nd.zeros((2,)))
    assert dst.asnumpy().tolist() == [0.0, 0.0]
    assert 'test_softmax' in mx.operator.get_all_registered_operators()
