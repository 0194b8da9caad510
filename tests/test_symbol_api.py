"""MXNet's Symbol API: variables made for omitted inputs, names, attributes, composition, inference, JSON."""
import copy
import pickle

import numpy as np
import pytest

import graphc as mx
from graphc import sym
from graphc.base import GraphcError


def mlp():
    data = sym.var('data')
    fc1 = sym.FullyConnected(data, num_hidden=8, name='fc1')
    act = sym.Activation(fc1, act_type='relu', name='relu1')
    return sym.FullyConnected(act, num_hidden=3, name='fc2')


def test_omitted_inputs_become_variables():
    net = mlp()
    assert net.list_arguments() == ['data', 'fc1_weight', 'fc1_bias', 'fc2_weight', 'fc2_bias']
    assert net.list_outputs() == ['fc2_output']
    nb = sym.FullyConnected(sym.var('x'), num_hidden=2, no_bias=True, name='nb')
    assert nb.list_arguments() == ['x', 'nb_weight']
    bn = sym.BatchNorm(sym.var('x'), name='bn')
    assert bn.list_arguments() == ['x', 'bn_gamma', 'bn_beta']
    assert bn.list_auxiliary_states() == ['bn_moving_mean', 'bn_moving_var']
    assert bn.list_inputs() == ['x', 'bn_gamma', 'bn_beta', 'bn_moving_mean', 'bn_moving_var']
    assert bn.list_outputs() == ['bn_output']
    # no input at all: the data is a variable too (MXNet's fc3_data)
    assert sym.FullyConnected(num_hidden=4, name='fc3').list_arguments() == ['fc3_data', 'fc3_weight', 'fc3_bias']
    # inputs by keyword, and an explicit weight
    w = sym.var('w')
    assert sym.FullyConnected(data=sym.var('x'), weight=w, num_hidden=2, name='k').list_arguments() == \
        ['x', 'w', 'k_bias']


def test_name_manager_and_prefix():
    with mx.name.NameManager():
        a = sym.FullyConnected(sym.var('x'), num_hidden=2)
        b = sym.FullyConnected(a, num_hidden=2)
        c = sym.var('x').abs()
    assert (a.name, b.name, c.name) == ('fullyconnected0', 'fullyconnected1', 'abs0')
    with mx.name.Prefix('mlp_'):
        d = sym.Activation(sym.var('x'), act_type='tanh')
    assert d.name == 'mlp_activation0'
    assert sym.var('x').abs(name='myabs').name == 'myabs'


def test_attributes_and_attr_scope():
    x = sym.var('x', attr={'mood': 'calm'}, lr_mult=2.0, shape=(2, 3))
    assert x.attr('mood') == 'calm' and x.attr('__lr_mult__') == '2.0'
    assert x.list_attr()['__shape__'] == '(2, 3)'
    with mx.attribute.AttrScope(ctx_group='dev1'):
        fc = sym.FullyConnected(x, num_hidden=4, name='fc')
        v = sym.var('v')
    assert fc.attr('ctx_group') == 'dev1' and v.attr('ctx_group') == 'dev1'
    assert fc.attr('num_hidden') == '4'
    d = fc.attr_dict()
    assert d['fc']['ctx_group'] == 'dev1' and d['x']['mood'] == 'calm'
    fc._set_attr(stage='2')
    assert fc.list_attr()['stage'] == '2'
    with pytest.raises(ValueError):
        mx.attribute.AttrScope(ctx_group=1)


def test_internals_children_getitem():
    net = mlp()
    internals = net.get_internals()
    assert internals.list_outputs() == ['data', 'fc1_weight', 'fc1_bias', 'fc1_output', 'relu1_output',
                                        'fc2_weight', 'fc2_bias', 'fc2_output']
    fc1 = internals['fc1_output']
    assert fc1.list_arguments() == ['data', 'fc1_weight', 'fc1_bias']
    assert net.get_children().list_outputs() == ['relu1_output', 'fc2_weight', 'fc2_bias']
    assert net.get_children()['fc2_weight'].get_children() is None
    s = sym.SliceChannel(sym.var('d'), num_outputs=3, name='slice')
    assert s.list_outputs() == ['slice_output0', 'slice_output1', 'slice_output2'] and len(s) == 3
    assert s[1].list_outputs() == ['slice_output1'] and s['slice_output2'].list_outputs() == ['slice_output2']
    assert sym.Concat(*list(s), dim=1).get_children().list_outputs() == s.list_outputs()
    with pytest.raises(GraphcError, match='no output named'):
        net['nope']


def test_compose_and_group():
    net1 = mlp()
    head = sym.FullyConnected(name='head', num_hidden=2)
    composed = head(head_data=net1, name='composed')
    assert composed.list_arguments() == net1.list_arguments() + ['head_weight', 'head_bias']
    assert head.list_arguments() == ['head_data', 'head_weight', 'head_bias']  # __call__ copies
    positional = head(net1)
    assert positional.list_arguments() == composed.list_arguments()
    g = sym.Group([composed, net1])
    assert len(g) == 2 and g.list_outputs() == ['composed_output', 'fc2_output']
    with pytest.raises(GraphcError, match='no arguments named'):
        head(nope=net1)


def test_infer_shape_forward_backward_partial():
    data, prev = sym.var('data'), sym.var('prev')
    x2h = sym.FullyConnected(data, num_hidden=16, name='x2h')
    h2h = sym.FullyConnected(prev, num_hidden=16, name='h2h')
    out = sym.Activation(sym.elemwise_add(x2h, h2h), act_type='relu')
    assert out.infer_shape(data=(4, 6)) == (None, None, None)
    args, outs, _ = out.infer_shape_partial(data=(4, 6))
    shapes = dict(zip(out.list_arguments(), args))
    assert shapes['x2h_weight'] == (16, 6) and shapes['h2h_weight'] == () and outs == [(4, 16)]
    args, outs, _ = out.infer_shape(data=(4, 6), prev=(4, 16))
    assert dict(zip(out.list_arguments(), args))['h2h_weight'] == (16, 16)
    # positional, in list_arguments order; and shapes from the variables' own __shape__
    a, b = sym.var('a', shape=(2, 3)), sym.var('b')
    c = sym.elemwise_add(a, b)
    assert c.infer_shape() == ([(2, 3), (2, 3)], [(2, 3)], [])
    assert c.infer_shape((5, 6)) == ([(5, 6), (5, 6)], [(5, 6)], [])
    # unknown dims (0) stay 0; a convolution's weight takes what is known
    d = sym.var('d', shape=(1, 0, 0, 0))
    conv = sym.Convolution(d, sym.var('w'), kernel=(7, 7), num_filter=64, no_bias=True)
    args, _, _ = conv.infer_shape_partial()
    assert args == [(1, 0, 0, 0), (64, 0, 7, 7)]
    bn = sym.BatchNorm(sym.var('x'), name='bn')
    assert bn.infer_shape(x=(2, 5, 3)) == ([(2, 5, 3), (5,), (5,)], [(2, 5, 3)], [(5,), (5,)])
    with pytest.raises(GraphcError):
        c.infer_shape(a=(2, 3), b=(3, 2))
    with pytest.raises(GraphcError, match='unknown inputs'):
        c.infer_shape(zz=(1,))


def test_infer_type_partial():
    data = sym.var('data')
    fc = sym.FullyConnected(sym.Cast(data, dtype='float32'), num_hidden=4, name='fc')
    args, outs, aux = fc.infer_type(data=np.float16)
    assert args == [np.float16, np.float32, np.float32] and outs == [np.float32] and aux == []
    args, outs, _ = fc.infer_type_partial()
    assert args == [None, np.float32, np.float32] and outs == [np.float32]
    assert sym.FullyConnected(data, num_hidden=2).infer_type() == (None, None, None)
    assert sym.FullyConnected(data, num_hidden=2).infer_type(data='float64')[0] == [np.float64] * 3


def test_json_pickle_copy_roundtrip(tmp_path):
    net = sym.BatchNorm(mlp(), name='bn')
    js = net.tojson()
    assert sym.fromjson(js).tojson() == js and sym.load_json(js).tojson() == js
    f = tmp_path / 'net-symbol.json'
    net.save(str(f))
    assert sym.load(str(f)).tojson() == js
    assert pickle.loads(pickle.dumps(net)).tojson() == js
    assert copy.deepcopy(net).tojson() == js and copy.copy(net).tojson() == js
    loaded = sym.load(str(f))
    assert loaded.list_arguments() == net.list_arguments()
    assert loaded.list_auxiliary_states() == net.list_auxiliary_states()


def test_eval_matches_numpy():
    a, b = sym.var('a'), sym.var('b')
    c = sym.broadcast_mul(sym.exp(a), b) + 1
    av, bv = np.random.rand(2, 3).astype('float32'), np.random.rand(1, 3).astype('float32')
    out = c.eval(ctx=mx.cpu(), a=mx.nd.array(av), b=mx.nd.array(bv))
    np.testing.assert_allclose(out[0].asnumpy(), np.exp(av) * bv + 1, rtol=1e-6)


def test_bool_of_symbol_fails_clearly():
    with pytest.raises(Exception, match='Symbol|symbol'):
        bool(sym.var('x'))


def test_gen_atomic_symbol():
    s = sym.FullyConnected(sym.var('x') * 2, num_hidden=3, name='fc')
    atomic = s._gen_atomic_symbol()
    assert atomic.list_arguments() == ['data', 'weight', 'bias'] and atomic.name == 'fc'


def test_block_called_on_symbol():
    from graphc.gluon import nn
    net = nn.HybridSequential(prefix='net_')
    with net.name_scope():
        net.add(nn.Dense(8, activation='relu'), nn.BatchNorm(), nn.Dense(3))
    s = net(sym.var('data'))
    assert isinstance(s, sym.Symbol)
    assert s.list_arguments() == ['data', 'net_dense0_weight', 'net_dense0_bias', 'net_batchnorm0_gamma',
                                  'net_batchnorm0_beta', 'net_dense1_weight', 'net_dense1_bias']
    assert s.list_auxiliary_states() == ['net_batchnorm0_running_mean', 'net_batchnorm0_running_var']
    assert all(p._data is None for p in net.collect_params().values())  # the call only builds the graph
    # initialized and hybridized: the same symbol, and binding it reproduces the block's output
    net.initialize()
    x = mx.nd.array(np.random.randn(4, 5).astype('float32'))
    want = net(x).asnumpy()
    net.hybridize()
    assert net(sym.var('data')).list_arguments() == s.list_arguments()
    np.testing.assert_allclose(net(x).asnumpy(), want, rtol=1e-5, atol=1e-6)
    args = {p.name: p.data() for p in net.collect_params().values()}
    aux = {k: args.pop(k) for k in s.list_auxiliary_states()}
    args['data'] = x
    exe = s.bind(mx.cpu(), args, aux_states=aux)
    np.testing.assert_allclose(exe.forward()[0].asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_cell_unrolled_on_symbols():
    from graphc import gluon
    cell = gluon.rnn.ResidualCell(gluon.rnn.GRUCell(4, prefix='rnn_'))
    inputs = [sym.var(f"rnn_t{i}_data") for i in range(2)]
    outputs, states = cell.unroll(2, inputs)
    out = sym.Group(outputs)
    assert sorted(set(out.list_arguments())) == sorted(out.list_arguments())  # one variable per parameter
    assert out.infer_shape(rnn_t0_data=(3, 4), rnn_t1_data=(3, 4))[1] == [(3, 4), (3, 4)]
    # zero weights: each GRU step keeps h = z*h + (1-z)*n with n = 0, z = 1/2, from h0 = 0; + the input
    x = np.random.rand(3, 4).astype('float32')
    res = out.eval(rnn_t0_data=mx.nd.array(x), rnn_t1_data=mx.nd.array(x),
                   rnn_i2h_weight=mx.nd.zeros((12, 4)), rnn_i2h_bias=mx.nd.zeros((12,)),
                   rnn_h2h_weight=mx.nd.zeros((12, 4)), rnn_h2h_bias=mx.nd.zeros((12,)))
    np.testing.assert_allclose(res[0].asnumpy(), x, rtol=1e-6)
    plain = gluon.rnn.LSTMCell(5, prefix='l_')
    outs, _ = plain.unroll(3, [sym.var(f"x{i}") for i in range(3)])
    assert sym.Group(outs).list_outputs() == ['l_t0_out_output', 'l_t1_out_output', 'l_t2_out_output']


def test_symbol_arithmetic_is_elementwise():
    a, b = sym.var('a'), sym.var('b')
    c = a + b * a - b / a
    assert [n for n in c.tojson().split('"op": "')[1:] if not n.startswith('null')][0].startswith('elemwise')
    assert c.infer_shape(a=(2, 3)) == ([(2, 3), (2, 3)], [(2, 3)], [])
    av, bv = np.random.rand(2, 3) + 1, np.random.rand(2, 3)
    out = c.eval(a=mx.nd.array(av, dtype='float64'), b=mx.nd.array(bv, dtype='float64'))[0].asnumpy()
    np.testing.assert_allclose(out, av + bv * av - bv / av, rtol=1e-12)


def test_lr_wd_mult_on_an_op_reach_its_variables():
    bias = sym.var('fc1_bias', lr_mult=1.0)
    fc1 = sym.FullyConnected(sym.var('data'), bias=bias, name='fc1', num_hidden=10, lr_mult=0)
    fc2 = sym.FullyConnected(fc1, name='fc2', num_hidden=10, wd_mult=0.5)
    d = fc2.attr_dict()
    # (MXNet: the value's string as given, lr_mult=0 -> '0'; and listed under both lr_mult and __lr_mult__)
    assert d['fc1_weight']['__lr_mult__'] == '0' and d['fc1_bias']['__lr_mult__'] == '1.0'
    assert d['fc1_weight']['lr_mult'] == '0' and d['fc1']['lr_mult'] == '0'
    assert d['fc2_weight']['__wd_mult__'] == '0.5' and d['fc2_bias']['__wd_mult__'] == '0.5'
    assert 'data' not in d
