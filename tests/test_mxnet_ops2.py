"""MXNet 1.x operator semantics graphc follows (found running MXNet 1.9.1's test_operator.py): each test
checks the documented behaviour with numbers worked out here, not MXNet's test code."""
import numpy as np
import pytest

import graphc as mx
from graphc.base import MXNetError


def _bind(sym, args, grads=None, req='write'):
    return sym.bind(mx.cpu(), args={k: mx.nd.array(v) for k, v in args.items()},
                    args_grad=grads, grad_req=req)


def test_batchnorm_output_mean_var_is_inverse_std():
    x = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)
    g, b, m, v = mx.nd.ones(3), mx.nd.zeros(3), mx.nd.zeros(3), mx.nd.ones(3)
    with mx.autograd.record():
        out, mean, invstd = mx.nd.BatchNorm(mx.nd.array(x), g, b, m, v, output_mean_var=True, fix_gamma=False, eps=1e-3)
    np.testing.assert_allclose(mean.asnumpy(), x.mean((0, 2)), rtol=1e-5)
    np.testing.assert_allclose(invstd.asnumpy(), 1 / np.sqrt(x.var((0, 2)) + 1e-3), rtol=1e-5)
    # contrib.SyncBatchNorm (one process) gives the variance itself
    with mx.autograd.record():
        _, _, var = mx.nd.contrib.SyncBatchNorm(mx.nd.array(x), g, b, mx.nd.zeros(3), mx.nd.ones(3),
                                                output_mean_var=True, fix_gamma=False, key='k')
    np.testing.assert_allclose(var.asnumpy(), x.var((0, 2)), rtol=1e-5)
    with pytest.raises(MXNetError, match='ndev'):
        mx.nd.contrib.SyncBatchNorm(mx.nd.array(x), g, b, m, v, ndev=2)


def test_deconvolution_target_shape_overrides_pad_and_adj():
    d = mx.sym.Deconvolution(mx.sym.var('data'), kernel=(3, 3), stride=(2, 2), pad=(99, 99), adj=(101, 101),
                             target_shape=(8, 8), num_filter=5)
    assert d.infer_shape(data=(2, 3, 4, 4))[1] == [(2, 5, 8, 8)]
    # odd total padding (2*(4-1)+3-9 = 0 -> pad 0; 2*3+3-8 = 1 -> pad 1, adj 1): output exactly the target
    x = mx.nd.array(np.random.rand(1, 1, 4, 4))
    w = mx.nd.array(np.random.rand(1, 1, 3, 3))
    y = mx.nd.Deconvolution(x, w, kernel=(3, 3), stride=(2, 2), target_shape=(8, 8), num_filter=1)
    ref = mx.nd.Deconvolution(x, w, kernel=(3, 3), stride=(2, 2), pad=(1, 1), adj=(1, 1), num_filter=1)
    assert y.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(y.asnumpy(), ref.asnumpy())
    with pytest.raises(MXNetError, match='too big'):
        mx.nd.Deconvolution(x, w, kernel=(3, 3), stride=(2, 2), target_shape=(20, 20), num_filter=1)


def test_bilinear_upsampling_is_a_grouped_deconvolution():
    up = mx.sym.UpSampling(mx.sym.var('data'), mx.sym.var('weight'), sample_type='bilinear', scale=3,
                           num_filter=2, num_args=2)
    args, outs, _ = up.infer_shape(data=(1, 2, 4, 4))
    assert args[1] == (2, 1, 5, 5) and outs == [(1, 2, 12, 12)]
    x, w = np.random.rand(1, 2, 4, 4), np.random.rand(2, 1, 5, 5)
    y = mx.nd.UpSampling(mx.nd.array(x), mx.nd.array(w), sample_type='bilinear', scale=3, num_filter=2, num_args=2)
    ref = mx.nd.Deconvolution(mx.nd.array(x), mx.nd.array(w), kernel=(5, 5), stride=(3, 3), pad=(1, 1),
                              num_filter=2, num_group=2)
    np.testing.assert_allclose(y.asnumpy(), ref.asnumpy(), rtol=1e-6)


def test_backward_shape_inference_reshape_rnn_where():
    net = mx.sym.elemwise_add(mx.sym.var('data').reshape((0, -1)), mx.sym.ones(shape=(2, 75)))
    assert net.infer_shape(data=(2, 0, 5, 5))[0] == [(2, 3, 5, 5)]
    rnn = mx.sym.RNN(mx.sym.var('x'), mx.sym.var('p'), mx.sym.var('h'), mx.sym.var('c'), state_size=8, num_layers=2,
                     mode='lstm', bidirectional=True)
    args = rnn.infer_shape(x=(5, 3, 4))[0]
    # per layer and direction: 4 gates x 8 x (input + 8 + 2 biases); layer 1's input is 2 x 8
    assert args[1] == (2 * 32 * (4 + 8 + 2) + 2 * 32 * (16 + 8 + 2),) and args[2] == args[3] == (4, 3, 8)
    w = mx.sym.where(mx.sym.var('c'), mx.sym.var('x'), mx.sym.var('y'))
    assert w.infer_shape(c=(5,), x=(5, 9), y=(5, 9))[1] == [(5, 9)]


def test_legacy_reshape_target_shape():
    s = mx.sym.Reshape(mx.sym.var('data'), target_shape=(2, 0))
    assert s.infer_shape(data=(2, 3, 5, 5))[1] == [(2, 75)]
    y = mx.nd.Reshape(mx.nd.zeros((2, 3, 4)), target_shape=(9, 4, 0), keep_highest=True)
    assert y.shape == (2, 4, 3)


def test_simple_bind_ignores_non_shape_arguments_and_none_inputs():
    x = mx.sym.var('x')
    exe = mx.sym.take(x, mx.sym.var('i')).simple_bind(mx.cpu(), x=(4, 3), i=(2,), axis=0, mode='clip')
    assert exe.outputs[0].shape == (2, 3)
    rev = mx.sym.SequenceReverse(data=x, sequence_length=None, use_sequence_length=False)
    assert rev.list_arguments() == ['x']


def test_backward_without_forward_and_ignored_head_gradients():
    exe = _bind(mx.sym.repeat(mx.sym.var('d'), repeats=2, axis=0), {'d': np.ones((2, 3))},
                grads=[mx.nd.zeros((2, 3))])
    exe.backward(mx.nd.array(np.arange(12.0).reshape(4, 3)))  # no forward before it
    np.testing.assert_allclose(exe.grad_arrays[0].asnumpy(), [[3, 5, 7], [15, 17, 19]])
    # shape_array takes no gradient: the head gradient's shape is not checked, the input's gradient is 0
    exe = _bind(mx.sym.shape_array(mx.sym.var('x')), {'x': np.ones((2, 3))}, grads=[mx.nd.ones((2, 3))])
    exe.forward(is_train=True)
    exe.backward(mx.nd.ones((2, 3)))
    assert not exe.grad_arrays[0].asnumpy().any()


def test_svm_output_hinge_gradients():
    x = np.array([[0.2, 1.5, -0.3], [0.9, -2.0, 0.1]], np.float32)
    label = np.array([1.0, 0.0])
    s = np.where(np.arange(3) == label[:, None], 1.0, -1.0)   # +1 on the label's class
    for lin, want in ((True, -s * (0.5 > s * x)), (False, -2 * s * np.maximum(0.5 - s * x, 0))):
        g = mx.nd.zeros((2, 3))
        exe = _bind(mx.sym.SVMOutput(mx.sym.var('x'), mx.sym.var('l'), margin=0.5, regularization_coefficient=3.0,
                                     use_linear=lin), {'x': x, 'l': label}, grads={'x': g})
        out = exe.forward(is_train=True)[0]
        exe.backward()
        np.testing.assert_allclose(out.asnumpy(), x)
        np.testing.assert_allclose(g.asnumpy(), 3.0 * want, rtol=1e-6)


def test_nd_dot_transposes_view_inputs_as_matrices():
    a, b = np.random.rand(4, 3, 2), np.random.rand(4, 5, 6)
    y = mx.nd.dot(mx.nd.array(a), mx.nd.array(b), transpose_a=True)
    assert y.shape == (3, 2, 5, 6)  # not a reversed (2, 3, ...): lhs is (4, 6) read transposed
    np.testing.assert_allclose(y.asnumpy(), np.einsum('kij,klm->ijlm', a, b), rtol=1e-5)
    lhs, c = np.random.rand(3, 2), np.random.rand(6, 5, 2)   # rhs (30, 2) read transposed: its last dim contracts
    y = mx.nd.dot(mx.nd.array(lhs), mx.nd.array(c), transpose_b=True)
    np.testing.assert_allclose(y.asnumpy(), np.einsum('ik,lmk->ilm', lhs, c), rtol=1e-5)


def test_softmax_output_multi_output_normalization():
    x = mx.nd.array(np.random.rand(2, 3, 2, 2))
    label = mx.nd.array(np.random.randint(0, 3, (2, 2, 2)))
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.SoftmaxOutput(x, label, multi_output=True, grad_scale=4.0)
    y.backward()
    onehot = np.stack([(label.asnumpy() == c) for c in range(3)], 1)
    np.testing.assert_allclose(x.grad.asnumpy(), (y.asnumpy() - onehot) * 4.0 / 4, rtol=1e-5)  # / (H * W)


def test_custom_op_python_error_is_mxnet_error():
    class Bad(mx.operator.CustomOp):
        def forward(self, is_train, req, in_data, out_data, aux):
            raise KeyError('boom')

    @mx.operator.register('mxops2_bad')
    class BadProp(mx.operator.CustomOpProp):
        def list_arguments(self):
            return ['a']

        def infer_shape(self, in_shape):
            return in_shape, [in_shape[0]], []

        def create_operator(self, ctx, shapes, dtypes):
            return Bad()

    with pytest.raises(MXNetError, match="Custom 'mxops2_bad': forward failed: KeyError") as e:
        mx.nd.Custom(mx.nd.ones(2), op_type='mxops2_bad').wait_to_read()
    assert isinstance(e.value.__cause__, KeyError)


def test_pooling_same_convention_and_longer_pad():
    x = mx.nd.array(np.arange(11.0).reshape(1, 1, 11))
    y = mx.nd.Pooling(x, kernel=3, stride=2, pad=(0, 0, 0), pool_type='max', pooling_convention='same')
    np.testing.assert_allclose(y.asnumpy().ravel(), [2, 4, 6, 8, 10, 10])  # ceil(11 / 2) windows, padded at the end
    with pytest.raises(MXNetError, match='same'):
        mx.nd.Pooling(x, kernel=2, stride=2, pad=2, pool_type='max', pooling_convention='same')


def test_small_ops_and_names():
    x = mx.sym.var('x')
    np.testing.assert_allclose(mx.sym.hypot(x, 4).eval(x=mx.nd.array([3.0]))[0].asnumpy(), [5.0])
    np.testing.assert_allclose(mx.nd.hypot(mx.nd.array([5.0]), mx.nd.array([12.0])).asnumpy(), [13.0])
    parts = mx.sym.split_v2(x, indices_or_sections=(1, 3), axis=1)
    assert parts.infer_shape(x=(2, 5))[1] == [(2, 1), (2, 2), (2, 2)]
    counts, edges = mx.nd.histogram(mx.nd.array([0.1, 0.2, 0.9]), bins=2, range=(0, 1))
    assert counts.asnumpy().tolist() == [2, 1] and edges.asnumpy().tolist() == [0.0, 0.5, 1.0]
    h, _ = mx.sym.histogram(x, bins=mx.sym.var('b')).eval(x=mx.nd.array([1.0, 3.0]), b=mx.nd.array([0.0, 2.0, 4.0]))
    assert h.asnumpy().tolist() == [1, 1]
    assert mx.nd.norm(mx.nd.ones((2, 2), dtype='float16'), out_dtype='float32').dtype == np.float32
    assert mx.nd.softmin(mx.nd.ones(3), dtype='float64').dtype == np.float64
    assert mx.nd.one_hot(mx.nd.ones((2, 3)), depth=0).shape == (2, 3, 0)
    assert mx.nd.all_finite(mx.nd.array([1.0, np.inf])).asnumpy().tolist() == [0.0]
    a, b = mx.nd.amp_multicast(mx.nd.ones(2, dtype='float16'), mx.nd.ones(2), num_outputs=2)
    assert a.dtype == b.dtype == np.float32
    assert mx.sym.ElementWiseSum(x, x).infer_shape(x=(2,))[1] == [(2,)]
    assert mx.sym.pow(2, x).eval(x=mx.nd.array([3.0]))[0].asnumpy().tolist() == [8.0]
    with pytest.raises(MXNetError, match='does not exist'):
        mx.nd.diag(mx.nd.ones((3, 4)), k=5)
    with pytest.raises(MXNetError, match='block_size'):
        mx.nd.space_to_depth(mx.nd.ones((1, 1, 2, 2)), 0)
    with pytest.raises(MXNetError, match='reps'):
        mx.nd.tile(mx.nd.ones((2, 2)), (1, -2))


def test_partial_shape_inference_of_partly_known_inputs():
    x, y = mx.sym.var('x'), mx.sym.var('y')
    assert mx.sym.dot(x, y).infer_shape_partial(x=(0, 3, 4), y=(4, 5))[1] == [(0, 3, 5)]
    assert mx.sym.batch_dot(x, y).infer_shape_partial(x=(0, 3, 4), y=(0, 0, 5))[1] == [()]  # inner dim unknown
    d = mx.sym.var('d', shape=(10, 0))
    # a dim computed from an unknown one stays unknown, even when clamped by an end (slice_axis end=5)
    assert mx.sym.slice_axis(d, axis=1, begin=0, end=5).infer_shape_partial()[1] == [(10, 0)]
    assert mx.sym.slice_axis(d, axis=0, begin=0, end=5).infer_shape_partial()[1] == [(5, 0)]
    with mx.np_shape():  # NumPy shape mode spells unknown dims -1 and an unknown shape None
        assert mx.sym.dot(x, y).infer_shape_partial(x=(-1, 3, 4), y=(4, 5))[1] == [(-1, 3, 5)]
        assert mx.sym.sin(x).infer_shape_partial()[1] == [None]


def test_backward_shape_rules_fc_conv_concat_slicechannel():
    a = mx.sym.Variable('a', shape=(0, 10))
    d = mx.sym.FullyConnected(a, num_hidden=21) + mx.sym.Variable('c', shape=(5, 0))
    assert dict(zip(d.list_arguments(), d.infer_shape()[0]))['a'] == (5, 10)  # the batch from the output
    a = mx.sym.Variable('a', shape=(0, 10, 0, 0))
    d = mx.sym.Convolution(a, num_filter=21, kernel=(3, 3), pad=(1, 1)) + mx.sym.Variable('c', shape=(5, 21, 32, 32))
    assert d.infer_shape()[0][0] == (5, 10, 32, 32)   # stride 1: the input size from the output's
    c = mx.sym.Concat(mx.sym.Variable('a', shape=(0, 10)), mx.sym.Variable('b', shape=(0, 0)), dim=1)
    d = c + mx.sym.Variable('d', shape=(2, 15))
    assert d.infer_shape()[0][:2] == [(2, 10), (2, 5)]  # the one unknown part takes what is left
    parts = mx.sym.SliceChannel(mx.sym.Variable('a', shape=(0, 15, 0)), num_outputs=3)
    d = parts[1] + mx.sym.Variable('c', shape=(3, 5, 2))
    assert d.infer_shape()[0][0] == (3, 15, 2)
    w = mx.sym._internal._identity_with_attr_like_rhs(mx.sym.var('w') + 1, mx.sym.var('w'))
    net = mx.sym.FullyConnected(mx.sym.var('data'), weight=w, num_hidden=11, no_bias=True)
    assert net.infer_shape(data=(7, 100))[0][1] == (11, 100)


def test_executor_reshape_shares_memory():
    y = mx.sym.FullyConnected(mx.sym.var('x'), num_hidden=4)
    exe = y.simple_bind(mx.cpu(), x=(5, 4), grad_req='null')
    exe.arg_arrays[0][:] = 1
    exe.arg_arrays[1][:] = 1
    exe.arg_arrays[2][:] = 0
    small = exe.reshape(x=(3, 4))
    small.forward()
    assert (exe.outputs[0].asnumpy()[:3] == 4).all()    # the smaller output is a view of the original's
    small.arg_arrays[0][:] = 2
    assert (exe.arg_arrays[0].asnumpy().ravel()[:12] == 2).all() and (exe.arg_arrays[0].asnumpy()[3:] == 1).all()
    big = exe.reshape(allow_up_sizing=True, x=(6, 4))    # what grows is new memory; the weight is shared
    big.arg_arrays[0][:] = 0
    assert (exe.arg_arrays[0].asnumpy()[3:] == 1).all() and big.arg_arrays[1] is exe.arg_arrays[1]


def test_gelqf_factors():
    A = np.random.default_rng(3).normal(size=(2, 3, 5))
    Q, L = mx.nd.linalg.gelqf(mx.nd.array(A, dtype='float64'))
    Q, L = Q.asnumpy(), L.asnumpy()
    np.testing.assert_allclose(L @ Q, A, atol=1e-12)
    np.testing.assert_allclose(Q @ Q.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (2, 3, 3)), atol=1e-12)
    assert np.allclose(np.triu(L, 1), 0)
    with pytest.raises(MXNetError, match='m <= n'):
        mx.nd.linalg.gelqf(mx.nd.ones((3, 2)))


def test_hidden_attribute_keys_listed_under_both_names():
    v = mx.sym.Variable('v', attr={'force_mirroring': 'True'}, lr_mult=1)
    assert v.attr('lr_mult') == v.attr('__lr_mult__') == '1'
    assert v.attr('__force_mirroring__') == 'True'
    op = mx.sym.Convolution(mx.sym.var('d'), name='c', kernel=(1, 1), num_filter=1, attr={'__mood__': 'ok', 'wd_mult': 'x'})
    assert op.list_attr()['__wd_mult__'] == 'x'
    assert op.attr_dict()['c_weight']['__mood__'] == 'ok'  # an op's __attributes__ reach the variables it makes


def test_sym_random_samplers_and_like_ops():
    """mx.sym.random: numbers make a _random_ node, Symbols a _sample_ node (shape draws per element); the _like
    samplers take data's shape and dtype; the same seed gives the same draws."""
    v = mx.sym.var('v')
    y = mx.sym.random.poisson(v, shape=(4000,))
    out = y.eval(v=mx.nd.array([[1.0, 20.0]]))[0].asnumpy()
    assert out.shape == (1, 2, 4000)
    assert abs(out[0, 0].mean() - 1.0) < 0.15 and abs(out[0, 1].mean() - 20.0) < 0.5
    u = mx.sym.random.uniform(low=2, high=3, shape=(5, 6), dtype='float64')
    assert u.infer_shape()[1] == [(5, 6)]
    assert u.infer_type()[1] == [np.float64]  # a source op's dtype, from the registry's rule
    mx.random.seed(3)
    a = u.eval()[0].asnumpy()
    mx.random.seed(3)
    assert (a == u.eval()[0].asnumpy()).all() and a.dtype == np.float64 and a.min() >= 2 and a.max() < 3
    x = mx.nd.ones((300, 300), dtype='float16')
    e = mx.nd.random.exponential_like(x, lam=4.0)  # lam is the rate, as MXNet's exponential_like
    assert e.shape == x.shape and e.dtype == np.float16 and abs(float(e.asnumpy().astype(np.float64).mean()) - 0.25) < 0.01
    s = mx.sym.random.normal_like(data=mx.sym.ones((2, 3)), loc=5.0, scale=0.0)
    assert (s.eval()[0].asnumpy() == 5.0).all()
    with pytest.raises(TypeError):
        mx.sym.random.normal(v, 1.0)


def test_float16_uniform_stays_below_high():
    # rounding to float16 would turn draws just below high into high itself
    mx.random.seed(0)
    u = mx.nd.random.uniform(-1, 1, shape=(200000,), dtype='float16').asnumpy()
    assert u.max() < 1.0 and u.min() >= -1.0
    s = mx.nd.random.uniform(mx.nd.array([0.0]), mx.nd.array([1.0]), shape=(200000,), dtype='float16').asnumpy()
    assert s.max() < 1.0


def test_seed_accepts_negative_and_ctx():
    mx.random.seed(-12345, ctx=mx.cpu())
    a = mx.nd.random.uniform(shape=(10,)).asnumpy()
    mx.random.seed(-12345)
    assert (a == mx.nd.random.uniform(shape=(10,)).asnumpy()).all()
    with pytest.raises(ValueError, match='seed_state'):
        mx.random.seed(1.5)


def test_zipfian_samplers():
    mx.random.seed(1)
    true = mx.nd.array([0, 3, 19]).astype('int32')
    sampled, exp_true, exp_sampled = mx.nd.contrib.rand_zipfian(true, 2000, 20)
    p = np.log((np.arange(20) + 2.0) / (np.arange(20) + 1.0)) / np.log(21.0)
    s = sampled.asnumpy()
    assert sampled.dtype == np.int64 and s.min() >= 0 and s.max() < 20
    np.testing.assert_allclose(exp_true.asnumpy(), p[[0, 3, 19]] * 2000)
    np.testing.assert_allclose(exp_sampled.asnumpy(), p[s] * 2000)
    np.testing.assert_allclose(np.bincount(s, minlength=20) / 2000.0, p, atol=0.04)
    outs = mx.sym.contrib.rand_zipfian(mx.sym.var('t'), 50, 20)
    ex = mx.sym.Group(outs).bind(mx.cpu(), {'t': true})
    ex.forward()
    assert [o.shape for o in ex.outputs] == [(50,), (3,), (50,)]
    classes, trials = mx.nd._internal._sample_unique_zipfian(1000, shape=(3, 200))
    assert classes.shape == (3, 200) and trials.shape == (3,)
    for row, t in zip(classes.asnumpy(), trials.asnumpy()):
        assert np.unique(row).size == 200 and row.max() < 1000 and t >= 200
    with pytest.raises(MXNetError, match='num_sampled'):
        mx.nd._internal._sample_unique_zipfian(10, shape=(1, 20))


def test_contrib_autograd_mark_variables():
    x = mx.nd.array([1.0, 2.0])
    dx = mx.nd.zeros(2)
    mx.contrib.autograd.mark_variables([x], [dx])
    with mx.autograd.record():
        y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(dx.asnumpy(), [2.0, 4.0])


def test_autograd_grad_returns_a_list_and_constant_gradients_stay_on_tape():
    x = mx.nd.array([0.5, 1.0, 2.0])
    x.attach_grad()
    with mx.autograd.record():
        y = mx.nd.sin(x)
        g = mx.autograd.grad(y, x, head_grads=mx.nd.ones((3,)), create_graph=True)
        assert isinstance(g, list) and len(g) == 1  # MXNet 1.x: a list even for one NDArray variable
        gg = mx.autograd.grad(g[0], x, head_grads=mx.nd.ones((3,)), create_graph=True)[0]
        r = mx.nd.radians(x)
        gr = mx.autograd.grad(r, x, head_grads=mx.nd.ones((3,)), create_graph=True)[0]  # pi/180, constant in x
        grr = mx.autograd.grad(gr, x, head_grads=mx.nd.ones((3,)), create_graph=True)[0]
    np.testing.assert_allclose(gg.asnumpy(), -np.sin([0.5, 1.0, 2.0]), rtol=1e-5)
    np.testing.assert_allclose(gr.asnumpy(), np.full(3, np.pi / 180), rtol=1e-5)
    np.testing.assert_allclose(grr.asnumpy(), np.zeros(3))
    with mx.autograd.record():
        y = x * 2
    assert isinstance(mx.autograd.grad(y, x), list)


def test_box_nms_drops_background_ids_and_contrib_nd_alias():
    boxes = mx.nd.array([[0, 0.5, 0.1, 0.1, 0.2, 0.2], [-1, 0.6, 0.5, 0.5, 0.7, 0.8]])
    out = mx.contrib.nd.box_nms(boxes, id_index=0, force_suppress=True).asnumpy()  # background_id -1: row 1 dropped
    np.testing.assert_allclose(out, [[0, 0.5, 0.1, 0.1, 0.2, 0.2], [-1] * 6], rtol=1e-6)
    out = mx.contrib.nd.box_nms(boxes, id_index=0, background_id=0).asnumpy()
    np.testing.assert_allclose(out, [[-1, 0.6, 0.5, 0.5, 0.7, 0.8], [-1] * 6], rtol=1e-6)
    assert mx.contrib.sym.box_nms is mx.sym.contrib.box_nms


def test_multibox_prior_bipartite_matching_multibox_target():
    x = mx.nd.zeros((1, 3, 4, 8))
    y = mx.contrib.nd.MultiBoxPrior(x, sizes=[0.5, 0.25], ratios=[1, 4])
    assert y.shape == (1, 4 * 8 * 3, 4)
    b = y.asnumpy().reshape(4, 8, 3, 4)[1, 2]  # pixel (1, 2): center (2.5/8, 1.5/4)
    np.testing.assert_allclose(b[0], [2.5 / 8 - 0.125, 1.5 / 4 - 0.25, 2.5 / 8 + 0.125, 1.5 / 4 + 0.25],  # w/2: .5*H/W/2
                               rtol=1e-6)
    np.testing.assert_allclose(b[2, 2] - b[2, 0], 0.5 * 4 / 8 * 2, rtol=1e-6)  # ratio 4: twice as wide
    with pytest.raises(MXNetError, match='MultiBoxPrior'):
        mx.contrib.nd.MultiBoxPrior(mx.nd.zeros((3, 4)))
    rows, cols = mx.nd.contrib.bipartite_matching(mx.nd.array([[0.9, 0.8], [0.85, 0.1]]), threshold=0.2)
    np.testing.assert_array_equal(rows.asnumpy(), [0, -1])  # greedy: 0.9 takes row 0 / col 0; 0.1 is below 0.2
    np.testing.assert_array_equal(cols.asnumpy(), [0, -1])
    anchors = mx.nd.array([[[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]])
    label = mx.nd.array([[[3, 0.5, 0.5, 1, 1]]])
    loc, mask, cls = mx.nd.contrib.MultiBoxTarget(anchors, label, mx.nd.zeros((1, 5, 2)))
    np.testing.assert_array_equal(cls.asnumpy(), [[0, 4]])
    np.testing.assert_array_equal(mask.asnumpy(), [[0, 0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_allclose(loc.asnumpy(), np.zeros((1, 8)), atol=1e-6)


def test_depth_space_zero_dims_need_np_shape():
    for f in (mx.nd.depth_to_space, mx.nd.space_to_depth):
        with pytest.raises(MXNetError, match='zero dim'):
            f(mx.nd.zeros((1, 4, 0, 4)), 2)
    with mx.util.np_shape(True):
        assert mx.nd.depth_to_space(mx.nd.zeros((1, 4, 0, 3)), 2).shape == (1, 1, 0, 6)


def test_integer_arange_steps_in_its_dtype():
    # MXNet (and NumPy): start and step cast to the integer dtype, the length from the float range
    a = mx.nd.arange(1.3, 10.0, 1.3, dtype='int32').asnumpy()
    np.testing.assert_array_equal(a, np.arange(1, 8))
    np.testing.assert_array_equal(mx.nd.arange(6, dtype='int64').asnumpy(), np.arange(6))
    np.testing.assert_array_equal(mx.nd.arange(50, -50, -20, repeat=2, dtype='int32').asnumpy(),
                                  np.repeat(np.arange(50, -50, -20), 2))
    np.testing.assert_array_equal(mx.nd.arange(50, -50, -2, dtype='uint8').asnumpy(),  # wraps, as a C cast
                                  (np.arange(50, -50, -2) % 256).astype(np.uint8))
