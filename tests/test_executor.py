"""Symbol.bind / simple_bind executors: NumPy oracles, grad_req, aux states, reshape, and the same compiled
plans as hybridize (compared with the hybridized block and with eager)."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, nd, sym
from graphc.base import GraphcError
from graphc.runtime.plan import Plan


def mlp_sym():
    x = sym.var('x')
    h = sym.Activation(sym.FullyConnected(x, num_hidden=5, name='fc1'), act_type='tanh')
    return sym.FullyConnected(h, num_hidden=3, name='fc2')


def oracle(x, w1, b1, w2, b2, dy):
    h = np.tanh(x @ w1.T + b1)
    y = h @ w2.T + b2
    dh = (dy @ w2) * (1 - h * h)
    return y, {'x': dh @ w1, 'fc1_weight': dh.T @ x, 'fc1_bias': dh.sum(0), 'fc2_weight': dy.T @ h,
               'fc2_bias': dy.sum(0)}


def rand(*shape):
    return np.random.randn(*shape).astype('float32')


def test_bind_forward_backward_numpy_oracle():
    s = mlp_sym()
    vals = {'x': rand(4, 6), 'fc1_weight': rand(5, 6), 'fc1_bias': rand(5), 'fc2_weight': rand(3, 5),
            'fc2_bias': rand(3)}
    args = {k: nd.array(v) for k, v in vals.items()}
    grads = {k: nd.zeros(v.shape) for k, v in vals.items()}
    exe = s.bind(mx.cpu(), args, args_grad=grads)
    out_before = exe.outputs[0]
    dy = rand(4, 3)
    y, want = oracle(*(vals[k] for k in s.list_arguments()), dy)
    exe.forward(is_train=True)
    assert exe.outputs[0] is out_before  # written in place, as MXNet's
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), y, rtol=1e-5, atol=1e-5)
    exe.backward(nd.array(dy))
    for k, g in want.items():
        assert exe.grad_dict[k] is grads[k]
        np.testing.assert_allclose(grads[k].asnumpy(), g, rtol=1e-4, atol=1e-4)
    # prediction forward after arguments change through arg_dict
    exe.arg_dict['x'][:] = 0
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), oracle(np.zeros((4, 6), 'float32'),
                               *(vals[k] for k in s.list_arguments()[1:]), dy)[0], rtol=1e-5, atol=1e-5)


def test_grad_req_write_add_null():
    x = sym.var('x')
    w = sym.var('w')
    s = sym.sum(x * w)
    xv, wv = rand(3), rand(3)
    gx, gw = nd.array(np.ones(3, 'float32')), nd.array(np.ones(3, 'float32'))
    exe = s.bind(mx.cpu(), {'x': nd.array(xv), 'w': nd.array(wv)}, args_grad={'x': gx, 'w': gw},
                 grad_req={'x': 'add', 'w': 'null'})
    for _ in range(2):
        exe.forward(is_train=True)
        exe.backward()
    np.testing.assert_allclose(gx.asnumpy(), 1 + 2 * wv, rtol=1e-6)
    np.testing.assert_allclose(gw.asnumpy(), np.ones(3), rtol=0)  # null: untouched
    exe2 = s.simple_bind(mx.cpu(), grad_req='write', x=(3,), w=(3,))
    exe2.copy_params_from({'x': nd.array(xv), 'w': nd.array(wv)})
    exe2.forward(is_train=True)
    exe2.backward()
    np.testing.assert_allclose(exe2.grad_dict['w'].asnumpy(), xv, rtol=1e-6)
    exe3 = s.simple_bind(mx.cpu(), grad_req='null', x=(3,), w=(3,))
    assert exe3.grad_arrays == [None, None] and exe3.grad_dict == {}
    with pytest.raises(GraphcError, match='grad_req'):
        s.simple_bind(mx.cpu(), grad_req='sometimes', x=(3,), w=(3,))


def test_simple_bind_types_and_errors():
    s = sym.FullyConnected(sym.var('x'), num_hidden=2, name='fc')
    exe = s.simple_bind(mx.cpu(), x=(3, 4), type_dict={'x': 'float64'})
    assert exe.arg_dict['fc_weight'].shape == (2, 4) and exe.arg_dict['fc_weight'].dtype == np.float64
    assert exe.outputs[0].shape == (3, 2) and exe.outputs[0].dtype == np.float64
    with pytest.raises(GraphcError, match='cannot infer'):
        sym.elemwise_add(sym.var('a'), sym.var('b')).simple_bind(mx.cpu())
    with pytest.raises(GraphcError):
        s.bind(mx.cpu(), {'x': nd.zeros((3, 4))})  # the weights are missing
    with pytest.raises(GraphcError, match='copy_params_from'):
        exe.copy_params_from({'nope': nd.zeros((1,))})
    exe.copy_params_from({'nope': nd.zeros((1,))}, allow_extra_params=True)


def test_batchnorm_aux_states_update_in_training_forward():
    s = sym.BatchNorm(sym.var('x'), name='bn', fix_gamma=False, momentum=0.9)
    exe = s.simple_bind(mx.cpu(), x=(8, 3))
    xv = rand(8, 3)
    exe.arg_dict['x'][:] = xv
    exe.arg_dict['bn_gamma'][:] = 1
    exe.aux_dict['bn_moving_var'][:] = 1
    exe.forward(is_train=True)
    mean, var = xv.mean(0), xv.var(0)
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), (xv - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(exe.aux_dict['bn_moving_mean'].asnumpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(exe.aux_dict['bn_moving_var'].asnumpy(), 0.9 + 0.1 * var, rtol=1e-5)
    mm = exe.aux_dict['bn_moving_mean'].asnumpy().copy()
    exe.forward(is_train=False)  # prediction: the moving statistics are used and not changed
    np.testing.assert_allclose(exe.aux_dict['bn_moving_mean'].asnumpy(), mm)
    mv = exe.aux_dict['bn_moving_var'].asnumpy()
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), (xv - mm) / np.sqrt(mv + 1e-3), rtol=1e-4, atol=1e-4)


def test_dropout_follows_is_train():
    s = sym.Dropout(sym.var('x'), p=0.5)
    exe = s.simple_bind(mx.cpu(), x=(200,), grad_req='null')
    exe.arg_dict['x'][:] = 1
    assert (exe.forward(is_train=False)[0].asnumpy() == 1).all()
    y = exe.forward(is_train=True)[0].asnumpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and (y == 0).any()


def test_reshape_shares_unchanged_arrays():
    s = mlp_sym()
    exe = s.simple_bind(mx.cpu(), x=(4, 6))
    exe2 = exe.reshape(x=(2, 6))
    assert exe2.arg_dict['fc1_weight'] is exe.arg_dict['fc1_weight']
    assert exe2.outputs[0].shape == (2, 3)
    with pytest.raises(GraphcError, match='allow_up_sizing'):
        exe.reshape(x=(8, 6))
    assert exe.reshape(allow_up_sizing=True, x=(8, 6)).outputs[0].shape == (8, 3)


def test_executor_matches_hybridize_and_eager_with_the_same_plans():
    from graphc.gluon import nn
    net = nn.HybridSequential(prefix='n_')
    with net.name_scope():
        net.add(nn.Dense(6, activation='relu', in_units=4), nn.Dense(2, in_units=6))
    net.initialize()
    x = nd.array(rand(5, 4))
    params = list(net.collect_params().values())

    def step():
        with autograd.record():
            y = net(x)
        y.backward(nd.ones_like(y))
        return y.asnumpy(), [p.grad().asnumpy().copy() for p in params]
    y_eager, g_eager = step()
    net.hybridize()
    y_hyb, g_hyb = step()
    s = net(sym.var('data'))
    args = {p.name: p.data() for p in params}
    args['data'] = x
    grads = {p.name: nd.zeros(p.shape) for p in params}
    exe = s.bind(mx.cpu(), args, args_grad=grads, grad_req={k: 'write' for k in grads})
    exe.forward(is_train=True)
    exe.backward(nd.ones((5, 2)))
    for want in (y_eager, y_hyb):
        np.testing.assert_allclose(exe.outputs[0].asnumpy(), want, rtol=1e-5, atol=1e-6)
    for p, ge, gh in zip(params, g_eager, g_hyb):
        np.testing.assert_allclose(grads[p.name].asnumpy(), ge, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grads[p.name].asnumpy(), gh, rtol=1e-5, atol=1e-6)
    # the executor's training step is hybridize's: CachedOp's compiled forward/backward Plans
    from graphc.gluon.cached import CachedOp
    op = exe._cached_op(True)
    assert isinstance(op, CachedOp)
    fplan, bplan = op.compiled(exe._need())[:2]
    assert isinstance(fplan, Plan) and isinstance(bplan, Plan)
    # and its prediction plan comes from the inference pipeline: the dense layers fuse into kernels
    exe.forward()
    fused = [st for st in exe._plan(False).steps if hasattr(st[5].op, 'subgraph')]
    assert fused, "the inference plan should run fused kernels"
    text = mx.explain(exe, print_graph=False, file=open('/dev/null', 'w'))
    assert 'executor of' in text and 'pipeline inference' in text and 'fused' in text
    text = mx.explain(exe, training=True, print_graph=False, file=open('/dev/null', 'w'))
    assert 'pipeline training' in text and 'gradient graph' in text


def test_cse_switch_and_debug_str(monkeypatch):
    a, b = sym.var('a'), sym.var('b')
    s = (a + b) + (a + b)
    monkeypatch.setenv('MXNET_ELIMINATE_COMMON_EXPR', '0')
    off = s.simple_bind(mx.cpu(), a=(2,), b=(2,))
    monkeypatch.setenv('MXNET_ELIMINATE_COMMON_EXPR', '1')
    on = s.simple_bind(mx.cpu(), a=(2,), b=(2,))
    assert len(off.get_optimized_symbol().get_internals()) == len(on.get_optimized_symbol().get_internals()) + 1
    for e in (off, on):
        e.arg_dict['a'][:] = 1
        e.arg_dict['b'][:] = 2
        np.testing.assert_allclose(e.forward()[0].asnumpy(), [6, 6])
    assert 'MB allocated' in on.debug_str()


def test_backward_before_any_forward_and_head_shapes():
    # MXNet 1.x runs a backward with no forward: the gradient at the bound arguments
    exe = sym.sum(sym.var('x') * 2).simple_bind(mx.cpu(), x=(2,))
    exe.backward()
    np.testing.assert_allclose(exe.grad_dict['x'].asnumpy(), [2.0, 2.0])
    exe.forward(is_train=True)
    with pytest.raises(GraphcError, match='shape'):
        exe.backward(nd.ones((3,)))


def test_batchnorm_backward_matches_eager():
    s = sym.sum(sym.BatchNorm(sym.var('x'), name='bn', fix_gamma=False) * sym.var('w'))
    xv, gv, bv, wv = rand(6, 4), rand(4), rand(4), rand(6, 4)
    exe = s.simple_bind(mx.cpu(), x=(6, 4), w=(6, 4))
    exe.copy_params_from({'x': nd.array(xv), 'bn_gamma': nd.array(gv), 'bn_beta': nd.array(bv), 'w': nd.array(wv)},
                         {'bn_moving_var': nd.ones((4,))})
    exe.forward(is_train=True)
    exe.backward()
    x, g, b = nd.array(xv), nd.array(gv), nd.array(bv)
    for a in (x, g, b):
        a.attach_grad()
    with autograd.record():
        y = (nd.BatchNorm(x, g, b, nd.zeros((4,)), nd.ones((4,)), fix_gamma=False) * nd.array(wv)).sum()
    y.backward()
    np.testing.assert_allclose(exe.outputs[0].asnumpy(), y.asnumpy(), rtol=1e-5)
    for name, a in (('x', x), ('bn_gamma', g), ('bn_beta', b)):
        np.testing.assert_allclose(exe.grad_dict[name].asnumpy(), a.grad.asnumpy(), rtol=1e-4, atol=1e-5)
