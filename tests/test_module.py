"""mx.mod.Module against NumPy: training reaches a real accuracy, one SGD step equals the hand computation,
checkpoints round-trip, predict/score handle padding."""
import numpy as np
import pytest

import graphc as mx
from graphc.base import GraphcError


def _data(n=240, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 5).astype(np.float32)
    w = rng.randn(5, 3)
    return X, (np.tanh(X) @ w).argmax(1).astype(np.float32)


def _mlp():
    h = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=16, name='fc1'), act_type='relu')
    return mx.sym.SoftmaxOutput(mx.sym.FullyConnected(h, num_hidden=3, name='fc2'), name='softmax')


def test_fit_learns_beyond_the_majority_class():
    X, y = _data()
    majority = np.bincount(y.astype(int)).max() / len(y)
    assert majority < 0.6  # so accuracy over 0.9 means it learned
    it = mx.io.NDArrayIter(X, y, batch_size=24, shuffle=True)
    mod = mx.mod.Module(_mlp())
    seen = []
    mod.fit(it, num_epoch=15, optimizer_params={'learning_rate': 0.5}, initializer=mx.init.Xavier(),
            epoch_end_callback=lambda e, s, a, x: seen.append(e),
            batch_end_callback=mx.callback.Speedometer(24, frequent=5))
    assert seen == list(range(15))
    (name, acc), = mod.score(mx.io.NDArrayIter(X, y, batch_size=24), 'acc')
    assert name == 'accuracy' and acc > 0.9
    probs = mod.predict(mx.io.NDArrayIter(X, y, batch_size=24)).asnumpy()
    assert np.isclose((probs.argmax(1) == y).mean(), acc)
    # a cross-entropy the numpy way from the predicted probabilities, well under chance's log(3)
    assert -np.log(probs[np.arange(len(y)), y.astype(int)]).mean() < 0.5 * np.log(3)


def test_one_sgd_step_equals_numpy():
    rng = np.random.RandomState(1)
    B, X = 4, rng.randn(4, 5).astype(np.float32)
    y = np.array([0, 2, 1, 2], np.float32)
    W, b = rng.randn(3, 5).astype(np.float32), rng.randn(3).astype(np.float32)
    sym = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=3, name='fc'), name='softmax')
    mod = mx.mod.Module(sym)
    mod.bind(data_shapes=[('data', (B, 5))], label_shapes=[('softmax_label', (B,))], inputs_need_grad=True)
    mod.init_params(arg_params={'fc_weight': mx.nd.array(W), 'fc_bias': mx.nd.array(b)})
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.1})
    batch = mx.io.DataBatch([mx.nd.array(X)], [mx.nd.array(y)])
    mod.forward(batch, is_train=True)
    z = X @ W.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(mod.get_outputs()[0].asnumpy(), p, rtol=1e-5, atol=1e-6)
    mod.backward()
    dz = p - np.eye(3)[y.astype(int)]  # SoftmaxOutput's gradient, summed over the batch
    np.testing.assert_allclose(mod.get_input_grads()[0].asnumpy(), dz @ W, rtol=1e-4, atol=1e-5)
    mod.update()  # rescale_grad defaults to 1/batch_size
    args, _ = mod.get_params()
    np.testing.assert_allclose(args['fc_weight'].asnumpy(), W - 0.1 * (dz.T @ X) / B, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(args['fc_bias'].asnumpy(), b - 0.1 * dz.sum(0) / B, rtol=1e-5, atol=1e-6)
    assert mod.output_shapes == [('softmax_output', (B, 3))]
    assert [tuple(d) for d in mod.data_shapes] == [('data', (B, 5))]


def test_checkpoint_round_trip(tmp_path):
    X, y = _data(60)
    it = mx.io.NDArrayIter(X, y, batch_size=20)
    mod = mx.mod.Module(_mlp())
    mod.fit(it, num_epoch=2, optimizer_params={'learning_rate': 0.1, 'momentum': 0.9}, initializer=mx.init.Xavier())
    prefix = str(tmp_path / 'net')
    mod.save_checkpoint(prefix, 2, save_optimizer_states=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['net-0002.params', 'net-0002.states', 'net-symbol.json']
    sym, args, auxs = mx.model.load_checkpoint(prefix, 2)
    want, _ = mod.get_params()
    assert sym.list_outputs() == mod.symbol.list_outputs() and sorted(args) == sorted(want) and auxs == {}
    for k in want:
        np.testing.assert_array_equal(args[k].asnumpy(), want[k].asnumpy())
    assert sorted(mx.nd.load(prefix + '-0002.params')) == sorted('arg:' + k for k in want)
    back = mx.mod.Module.load(prefix, 2, load_optimizer_states=True)
    back.bind(data_shapes=it.provide_data, label_shapes=it.provide_label)
    np.testing.assert_allclose(back.predict(it).asnumpy(), mod.predict(it).asnumpy(), rtol=1e-6)
    back.init_optimizer(optimizer_params={'learning_rate': 0.1, 'momentum': 0.9})
    assert back._updater.states.keys() == mod._updater.states.keys()
    mx.callback.do_checkpoint(prefix, period=1)(4, sym, args, auxs)  # epoch 4 is saved as 5
    assert (tmp_path / 'net-0005.params').exists()


def test_predict_drops_padding_and_score_num_batch():
    X, y = _data(50)
    mod = mx.mod.Module(_mlp())
    mod.bind(data_shapes=[('data', (20, 5))], label_shapes=[('softmax_label', (20,))], for_training=False)
    mod.init_params(initializer=mx.init.Xavier())
    it = mx.io.NDArrayIter(X, y, batch_size=20, last_batch_handle='pad')
    out = mod.predict(it)
    assert out.shape == (50, 3)
    args, _ = mod.get_params()
    h = np.maximum(X @ args['fc1_weight'].asnumpy().T + args['fc1_bias'].asnumpy(), 0)
    z = h @ args['fc2_weight'].asnumpy().T + args['fc2_bias'].asnumpy()
    p = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(out.asnumpy(), p / p.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
    (_, acc), = mod.score(it, mx.metric.Accuracy(), num_batch=1)
    assert np.isclose(acc, (out.asnumpy()[:20].argmax(1) == y[:20]).mean())
    assert len(mod.predict(it, merge_batches=False)) == 3


def test_errors():
    mod = mx.mod.Module(_mlp())
    with pytest.raises(TypeError, match='tuple of ints'):
        mod.bind(data_shapes=[('data', mx.nd.array([4, 5]))])
    assert not mod.binded
    with pytest.raises(GraphcError, match='bind'):
        mod.init_params()
    mod.bind(data_shapes=[('data', (4, 5))], label_shapes=[('softmax_label', (4,))])
    with pytest.raises(GraphcError, match='fc1_weight'):
        mod.init_params(arg_params={'fc1_bias': mx.nd.zeros((16,))})
    with pytest.raises(GraphcError, match='init_params'):
        mod.forward(mx.io.DataBatch([mx.nd.zeros((4, 5))]))


def test_init_params_reads_variable_init_and_prelu_default():
    w = mx.sym.var('w', init=mx.init.Constant(0.5))
    s = mx.sym.LeakyReLU(mx.sym.FullyConnected(mx.sym.var('data'), weight=w, num_hidden=3, no_bias=True),
                         act_type='prelu', name='act')
    mod = mx.mod.Module(s, label_names=None)
    mod.bind(data_shapes=[('data', (2, 4))], for_training=False)
    mod.init_params()
    args, _ = mod.get_params()
    assert (args['w'].asnumpy() == 0.5).all() and (args['act_gamma'].asnumpy() == 0.25).all()


def test_fit_trains_the_lenet_example_to_gluons_accuracy():
    """Issue 14: Module.fit on the LeNet example's network (as a Symbol) and Gluon's training loop, from the same
    initial weights over the same batches in the same order (Adam), reach the same test accuracy."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'examples'))
    from lenet_mnist import lenet
    from graphc import autograd, gluon
    from graphc.gluon.data.vision import MNIST
    n, batch, n_test = 800, 50, 500
    as_nchw = lambda x: (x.asnumpy().astype(np.float32) / 255).transpose(0, 3, 1, 2).copy()  # noqa: E731
    x, y = MNIST(train=True)[:n]
    xt, yt = MNIST(train=False)[:n_test]
    x, y, xt, yt = as_nchw(x), y.astype(np.float32), as_nchw(xt), yt
    mx.random.seed(0)
    net = lenet()
    net.initialize(mx.init.Xavier())
    net.hybridize()
    net(mx.nd.array(x[:1]))  # the deferred shapes
    start = {p.name: p.data().copy() for p in net.collect_params().values()}
    sym = mx.sym.SoftmaxOutput(net(mx.sym.var('data')), name='softmax')

    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.002})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    for i in range(0, n, batch):
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x[i:i + batch])), mx.nd.array(y[i:i + batch]))
        loss.backward()
        trainer.step(batch)
    gluon_acc = float((net(mx.nd.array(xt)).asnumpy().argmax(1) == yt).mean())

    mod = mx.mod.Module(sym)
    mod.fit(mx.io.NDArrayIter(x, y, batch_size=batch), num_epoch=1, arg_params=start, optimizer='adam',
            optimizer_params={'learning_rate': 0.002})
    (_, module_acc), = mod.score(mx.io.NDArrayIter(xt, yt, batch_size=batch), 'acc')
    assert module_acc > 0.5, module_acc  # it learned: chance is 0.1 (16 steps reach about 0.7)
    assert abs(module_acc - gluon_acc) <= 0.01, (module_acc, gluon_acc)  # at most 5 of the 500 test images
    args, _ = mod.get_params()
    for p in net.collect_params().values():  # the same float32 training: weights agree closely after Adam
        np.testing.assert_allclose(args[p.name].asnumpy(), p.data().asnumpy(), rtol=1e-3, atol=1e-3, err_msg=p.name)


@pytest.mark.parametrize('update_on_kvstore', [True, False])
def test_data_parallel_module_matches_one_context(update_on_kvstore, monkeypatch):
    """The batch split over 3 contexts (work loads 1:2:1) trains to the same weights as one context: the store
    sums the slices' gradients; outputs and input gradients merge back in batch order."""
    monkeypatch.setenv('MXNET_UPDATE_ON_KVSTORE', '1' if update_on_kvstore else '0')
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(8, 5)).astype('float32'), rng.integers(0, 3, 8).astype('float32')
    mods = []
    for ctx, wl in (([mx.cpu(0)], None), ([mx.cpu(0), mx.cpu(1), mx.cpu(2)], [1, 2, 1])):
        mod = mx.mod.Module(_mlp(), context=ctx, work_load_list=wl)
        mod.bind(data_shapes=[('data', (8, 5))], label_shapes=[('softmax_label', (8,))], inputs_need_grad=True)
        mx.random.seed(1)
        mod.init_params(mx.init.Xavier())
        mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': 0.5, 'momentum': 0.9})
        for _ in range(3):
            mod.forward_backward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)]))
            mod.update()
        mods.append(mod)
    one, many = mods
    assert [s.stop - s.start for s in many._exec_group.slices] == [2, 4, 2]
    assert (many._kvstore is not None) and many._update_on_kvstore == update_on_kvstore
    for k, v in one.get_params()[0].items():
        np.testing.assert_allclose(many.get_params()[0][k].asnumpy(), v.asnumpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(many.get_outputs()[0].asnumpy(), one.get_outputs()[0].asnumpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(many.get_input_grads()[0].asnumpy(), one.get_input_grads()[0].asnumpy(),
                               rtol=1e-4, atol=1e-6)
    assert [o.shape for o in many.get_outputs(merge_multi_context=False)[0]] == [(2, 3), (4, 3), (2, 3)]


def test_bucketing_module_shares_parameters_gradients_and_optimizer():
    def sym_gen(key):  # key: how many times the shared FC is applied
        h = mx.sym.var('data')
        w, b = mx.sym.var('fc_weight'), mx.sym.var('fc_bias')
        for i in range(key):
            h = mx.sym.FullyConnected(h, weight=w, bias=b, num_hidden=4, name=f'fc{i}')
        return mx.sym.make_loss(mx.sym.sum(h)), ('data',), None
    mod = mx.mod.BucketingModule(sym_gen, default_bucket_key=2)
    mod.bind(data_shapes=[('data', (3, 4))], grad_req='add')
    mod.init_params(mx.init.Constant(0.1))
    mod.init_optimizer(optimizer_params={'learning_rate': 0.0})
    x = mx.nd.ones((3, 4))
    desc = [mx.io.DataDesc('data', (3, 4))]
    mod.forward_backward(mx.io.DataBatch([x], provide_data=desc, bucket_key=2))
    g2 = mod._curr_module._exec_group.execs[0].grad_dict['fc_bias'].asnumpy().copy()
    mod.forward_backward(mx.io.DataBatch([x], provide_data=desc, bucket_key=1))
    assert sorted(mod._buckets) == [1, 2] and mod._curr_module.symbol.list_arguments() == ['data', 'fc_weight', 'fc_bias']
    g = mod._curr_module._exec_group.execs[0].grad_dict['fc_bias'].asnumpy()
    np.testing.assert_allclose(g, g2 + 3.0)  # bucket 1's d(sum)/db = 3 rows, added to bucket 2's ('add')
    e1, e2 = (mod._buckets[k]._exec_group.execs[0] for k in (1, 2))
    assert e1.arg_dict['fc_weight'] is e2.arg_dict['fc_weight'] and mod._buckets[1]._updater is mod._buckets[2]._updater


def test_group2ctxs_places_a_groups_arguments_and_gradients():
    with mx.AttrScope(ctx_group='dev1'):
        a = mx.sym.Variable('a') * 2
    with mx.AttrScope(ctx_group='dev2'):
        c = a + mx.sym.Variable('b')
    for ctxs, g2c, want in (([mx.cpu(0)], {'dev1': mx.cpu(1), 'dev2': mx.cpu(2)}, [mx.cpu(1), mx.cpu(2)]),
                            ([mx.cpu(0), mx.cpu(1)], [{'dev1': mx.cpu(2), 'dev2': mx.cpu(3)},
                                                      {'dev1': mx.cpu(4), 'dev2': mx.cpu(5)}], None)):
        mod = mx.mod.Module(c, data_names=['a', 'b'], label_names=None, context=ctxs, group2ctxs=g2c)
        mod.bind(data_shapes=[('a', (2, 3)), ('b', (2, 3))], inputs_need_grad=True)
        mod.init_params()
        mod.forward(mx.io.DataBatch([mx.nd.ones((2, 3)), mx.nd.ones((2, 3))]), is_train=True)
        mod.backward([mx.nd.ones((2, 3))])
        ga, gb = mod.get_input_grads()
        assert ga.asnumpy().tolist() == [[2] * 3] * 2 and gb.asnumpy().tolist() == [[1] * 3] * 2
        if want:
            assert [ga.context, gb.context] == want
        else:
            e1 = mod._exec_group.execs[1]
            assert e1.grad_dict['a'].context == mx.cpu(4) and e1.arg_dict['b'].context == mx.cpu(5)
    with pytest.raises(GraphcError, match='host'):
        mx.mod.Module(c, data_names=['a', 'b'], label_names=None, group2ctxs={'dev1': mx.gpu(0)}).bind(
            data_shapes=[('a', (2, 3)), ('b', (2, 3))])
