"""Several devices in one process, MXNet's way: one copy of each parameter per context, gradients summed by
the Trainer's kvstore, every copy updated; training on [cpu(0), cpu(1)] with the batch split equals one
device with the whole batch."""
import hashlib
import urllib.error

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.base import GraphcError
from graphc.gluon import nn
from graphc.gluon.utils import check_sha1, clip_global_norm, download, parallel, split_and_load

C2 = [gc.cpu(0), gc.cpu(1)]


def test_contexts_are_names_as_in_mxnet():
    assert gc.cpu(7) == gc.Context('cpu', 7) and str(gc.cpu(7)) == 'cpu(7)' and gc.cpu(7) != gc.cpu(0)
    g = gc.gpu(3)  # a GPU context exists without a GPU; allocating there says what is missing
    assert g.device_type == 'gpu' and g.device_id == 3 and g.device_typeid == 2
    if gc.num_gpus() <= 3:
        with pytest.raises(GraphcError, match=r"gc.gpu\(3\)"):
            nd.zeros((1,), ctx=g)
    assert gc.Context.default_ctx == gc.cpu(0) == gc.current_context()
    with gc.cpu(2):
        assert gc.current_context() == gc.cpu(2) and nd.zeros((2,)).context == gc.cpu(2)
    assert gc.current_context() == gc.cpu(0)


def test_host_contexts_label_arrays_and_ops_keep_the_first_inputs():
    a = nd.array([1.0, 2.0], ctx=gc.cpu(1))
    b = nd.ones((2,), ctx=gc.cpu(2))
    assert a.context == gc.cpu(1) and (a + b).context == gc.cpu(1) and (b * a).context == gc.cpu(2)  # MXNet's rule
    c = a.as_in_context(gc.cpu(3))
    assert c.context == gc.cpu(3) and c is not a and c.asnumpy().tolist() == [1, 2]
    assert a.as_in_context(gc.cpu(1)) is a and a.copyto(gc.cpu(0)).context == gc.cpu(0)


def test_parameter_keeps_one_copy_per_context():
    p = gluon.Parameter('w', shape=(2, 3))
    p.initialize(init='xavier', ctx=C2)
    d0, d1 = p.list_data()
    assert p.list_ctx() == C2 and d1.context == gc.cpu(1) and d0 is not d1
    np.testing.assert_array_equal(d0.asnumpy(), d1.asnumpy())  # the same initial values
    assert p.data(gc.cpu(1)) is d1 and p.grad(gc.cpu(1)) is d1.grad and len(p.list_grad()) == 2
    assert p.grad(gc.cpu(1)).context == gc.cpu(1)
    with gc.cpu(1):
        assert p.data() is d1  # no context given: the current one's
    with pytest.raises(GraphcError, match=r"not initialized on context cpu\(5\); it was only initialized on "
                                          r"\[cpu\(0\), cpu\(1\)\]"):
        p.data(gc.cpu(5))
    p.set_data(np.ones((2, 3), np.float32))  # every copy
    assert all((a.asnumpy() == 1).all() for a in p.list_data())
    d1[:] = 3  # the copies differ: reset_ctx keeps their mean
    p.reset_ctx([gc.cpu(2), gc.cpu(3)])
    assert p.list_ctx() == [gc.cpu(2), gc.cpu(3)]
    assert all((a.asnumpy() == 2).all() for a in p.list_data())
    assert p.var().name == 'w'


def test_deferred_init_makes_every_copy_and_block_uses_the_inputs_context():
    net = nn.Dense(3)
    net.initialize(ctx=C2)
    xs = split_and_load(nd.array(np.arange(8, dtype=np.float32).reshape(4, 2)), C2)
    assert [x.context for x in xs] == C2
    with autograd.record():
        ys = [net(x) for x in xs]
    assert [y.context for y in ys] == C2
    for y in ys:
        y.backward()
    g0, g1 = (net.weight.grad(c).asnumpy() for c in C2)
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    np.testing.assert_allclose(g0, np.ones((3, 2)) * x[:2].sum(0), rtol=1e-6)  # each copy saw its own shard
    np.testing.assert_allclose(g1, np.ones((3, 2)) * x[2:].sum(0), rtol=1e-6)


def _net(kind, devices=1):
    net = nn.HybridSequential()
    if kind == 'bn':
        net.add(nn.BatchNorm(in_channels=2))
    if kind == 'sync':  # after a layer that learns: its statistics' gradient reaches the convolution (whose
        # bias would get no gradient but rounding noise, which Adam amplifies)
        net.add(nn.Conv2D(3, 3, in_channels=2, use_bias=False), nn.SyncBatchNorm(in_channels=3, num_devices=devices))
    else:
        net.add(nn.Conv2D(3, 3, in_channels=2))
    net.add(nn.Activation('relu'), nn.MaxPool2D(2), nn.Flatten(), nn.Dense(4, in_units=12))
    return net


def _train(ctxs, opt, params, hybrid, kind='plain', steps=5, per_shard_ref=False):
    """Train from the same initial values; per_shard_ref: one device, each shard run on its own and the
    gradients added (what several devices compute when the model's batch statistics are per device)."""
    rng = np.random.RandomState(0)
    xs = [rng.randn(4, 2, 6, 6).astype(np.float32) for _ in range(steps)]
    ys = [rng.randint(0, 4, 4).astype(np.float32) for _ in range(steps)]
    gc.random.seed(1)
    net = _net(kind, len(ctxs))
    net.initialize(gc.init.Xavier(), ctx=ctxs)
    if hybrid:
        net.hybridize()
    if per_shard_ref:
        for p in net.collect_params().values():
            if p.grad_req != 'null':
                p.grad_req = 'add'
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    tr = gluon.Trainer(net.collect_params(), opt, params)
    for x, y in zip(xs, ys):
        if per_shard_ref:
            net.collect_params().zero_grad()
            for xb, yb in zip(np.split(x, 2), np.split(y, 2)):
                with autograd.record():
                    loss(net(nd.array(xb)), nd.array(yb)).backward()
        else:
            xb, yb = split_and_load(nd.array(x), ctxs), split_and_load(nd.array(y), ctxs)
            with autograd.record():
                if kind == 'sync':  # the devices' forwards meet at the layer: they run concurrently
                    ls = parallel(lambda a, b: loss(net(a), b), xb, yb)
                else:
                    ls = [loss(net(a), b) for a, b in zip(xb, yb)]
            if kind == 'sync':
                autograd.backward(ls)
            else:
                for lo in ls:
                    lo.backward()
        tr.step(4)
    return net, tr


@pytest.mark.parametrize('opt, params', [('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3}),
                                         ('adam', {'learning_rate': 0.01})])
@pytest.mark.parametrize('hybrid', [False, True])
def test_two_devices_with_the_batch_split_equal_one_device_with_all_of_it(opt, params, hybrid):
    one, _ = _train([gc.cpu()], opt, params, hybrid)
    two, tr = _train(C2, opt, params, hybrid)
    assert tr._kvstore.type == 'device' and tr._update_on_kvstore  # MXNet's defaults for several devices
    init, _ = _train([gc.cpu()], opt, params, hybrid, steps=0)
    for p, q, p0 in zip(one.collect_params().values(), two.collect_params().values(),
                        init.collect_params().values()):
        a0, a1 = (q.data(c).asnumpy() for c in C2)
        np.testing.assert_array_equal(a0, a1)  # every copy got the same update
        np.testing.assert_allclose(a0, p.data().asnumpy(), rtol=1e-4, atol=1e-5)
        assert np.abs(a0 - p0.data().asnumpy()).max() > 1e-3  # (and training moved it)


@pytest.mark.parametrize('opt, params', [('sgd', {'learning_rate': 0.1, 'momentum': 0.9, 'wd': 1e-3}),
                                         ('adam', {'learning_rate': 0.01})])
def test_sync_batchnorm_spans_the_devices(opt, params):
    """SyncBatchNorm on [cpu(0), cpu(1)] normalizes with the whole batch's statistics: training equals one device
    with the whole batch (parameters and running statistics), every copy the same."""
    one, _ = _train([gc.cpu()], opt, params, False, 'sync')
    two, _ = _train(C2, opt, params, False, 'sync')
    split, _ = _train(C2, opt, params, False, 'sync', steps=1)
    init, _ = _train([gc.cpu()], opt, params, False, 'sync', steps=0)
    for p, q, p0 in zip(one.collect_params().values(), two.collect_params().values(),
                        init.collect_params().values()):
        a0, a1 = (q.data(c).asnumpy() for c in C2)
        np.testing.assert_array_equal(a0, a1)
        np.testing.assert_allclose(a0, p.data().asnumpy(), rtol=1e-4, atol=1e-5, err_msg=p.name)
        assert np.abs(a0 - p0.data().asnumpy()).max() > 1e-4, p.name  # (and training moved it)
    # after one step the running mean is the whole first batch's (after the convolution) on both copies
    rng = np.random.RandomState(0)
    x = nd.array(rng.randn(4, 2, 6, 6).astype(np.float32))
    conv = init[0]
    want = 0.1 * conv(x).asnumpy().mean(axis=(0, 2, 3))
    for c in C2:
        np.testing.assert_allclose(split[1].running_mean.data(c).asnumpy(), want, rtol=1e-4, atol=1e-6)


def test_sync_batchnorm_says_how_to_run_the_devices():
    net = _net('sync', 2)
    net.initialize(ctx=C2)
    xs = split_and_load(nd.ones((4, 2, 6, 6)), C2)
    with autograd.record():
        with pytest.raises(GraphcError, match=r"num_devices=2.*outside gluon.utils.parallel.*parallel\(net, shards\)"):
            net(xs[0])
    net.hybridize()
    with autograd.record():
        with pytest.raises(GraphcError, match="cannot be traced; call hybridize\\(False\\)"):
            parallel(net, xs)
    with pytest.raises(ZeroDivisionError):  # a device that fails releases the others
        with autograd.record():
            parallel(lambda k, x: net(x) if k else 1 / 0, [0, 1], xs)
    net.hybridize(False)
    assert [y.shape for y in parallel(net, xs)] == [(2, 4)] * 2  # predicting: the running statistics


def test_update_on_the_devices_equals_update_on_the_kvstore():
    params = {'learning_rate': 0.01}
    a, _ = _train(C2, 'adam', params, False, steps=3)
    gc.random.seed(1)
    import os
    os.environ['MXNET_UPDATE_ON_KVSTORE'] = '0'
    try:
        b, tr = _train(C2, 'adam', params, False, steps=3)
    finally:
        del os.environ['MXNET_UPDATE_ON_KVSTORE']
    assert tr._update_on_kvstore is False and len(tr._updaters) == 2
    assert tr._optimizer._index_update_count == {i: 3 for i in range(4)}  # one count per step, per context
    for p, q in zip(a.collect_params().values(), b.collect_params().values()):
        for c in C2:
            np.testing.assert_allclose(p.data(c).asnumpy(), q.data(c).asnumpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('hybrid', [False, True])
def test_batchnorm_keeps_per_device_statistics(hybrid):
    """Plain BatchNorm normalizes each device's shard with its own statistics (MXNet's): the parameters equal a
    reference that runs each shard on its own and adds the gradients, and each copy's running mean is its shard's."""
    ref, _ = _train([gc.cpu()], 'sgd', {'learning_rate': 0.1, 'momentum': 0.9}, hybrid, 'bn', per_shard_ref=True)
    two, _ = _train(C2, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9}, hybrid, 'bn')
    for p, q in zip(ref.collect_params().values(), two.collect_params().values()):
        if p.grad_req != 'null':
            np.testing.assert_allclose(q.data(gc.cpu(1)).asnumpy(), p.data().asnumpy(), rtol=1e-4, atol=1e-5)
    one, _ = _train(C2, 'sgd', {'learning_rate': 0.1}, hybrid, 'bn', steps=2)
    rng = np.random.RandomState(0)
    x1, x2 = rng.randn(4, 2, 6, 6).astype(np.float32), rng.randn(4, 2, 6, 6).astype(np.float32)
    bn = one[0]
    # the first step's broadcast gives every copy the first copy's values (MXNet's), the second step's forward
    # moves each copy by its own shard's mean (momentum 0.9)
    for k, c in enumerate(C2):
        want = 0.9 * 0.1 * x1[:2].mean(axis=(0, 2, 3)) + 0.1 * x2[2 * k:2 * k + 2].mean(axis=(0, 2, 3))
        np.testing.assert_allclose(bn.running_mean.data(c).asnumpy(), want, rtol=1e-5, atol=1e-6)


def test_allreduce_grads_then_update():
    x = gluon.Parameter('x', shape=(3,))
    x.initialize(ctx=C2, init='zeros')
    tr = gluon.Trainer([x], 'sgd', {'learning_rate': 1.0}, update_on_kvstore=False)
    with autograd.record():
        for i, w in enumerate(x.list_data()):
            (w * (i + 1)).backward()
    tr.allreduce_grads()
    assert [g.asnumpy().tolist() for g in x.list_grad()] == [[3, 3, 3]] * 2
    tr.update(1)
    assert [d.asnumpy().tolist() for d in x.list_data()] == [[-3, -3, -3]] * 2
    on_kv = gluon.Trainer([x], 'sgd', update_on_kvstore=True)
    with autograd.record():
        for w in x.list_data():
            (w * 1).backward()
    with pytest.raises(AssertionError, match='update_on_kvstore=False'):
        on_kv.allreduce_grads()


def test_one_device_makes_no_kvstore_and_lr_mult_counts():
    x = gluon.Parameter('x', shape=(2,), lr_mult=0.5, wd_mult=0.0)
    x.initialize(init='ones')
    tr = gluon.Trainer([x], 'sgd', {'learning_rate': 1.0, 'wd': 0.5})
    with autograd.record():
        (x.data() * 2).backward()
    tr.step(1)
    assert tr._kvstore is None and tr._update_on_kvstore is None
    assert x.data().asnumpy().tolist() == [0, 0]  # 1 - 0.5 * 2, no weight decay (wd_mult 0)
    tr.set_learning_rate(0.1)
    assert tr.learning_rate == 0.1


def test_save_and_load_states_on_several_devices(tmp_path):
    def run(tr, x, n):
        for _ in range(n):
            with autograd.record():
                for w in x.list_data():
                    (w * w).backward()
            tr.step(2)

    for update_on_kv in (True, False):
        x = gluon.Parameter('x', shape=(3,))
        x.initialize(ctx=C2, init='ones')
        tr = gluon.Trainer([x], 'adam', {'learning_rate': 0.1}, update_on_kvstore=update_on_kv)
        run(tr, x, 2)
        tr.save_states(tmp_path / 's')
        snap = x.data().asnumpy()
        run(tr, x, 2)
        want = x.data().asnumpy()
        y = gluon.Parameter('x', shape=(3,))
        y.initialize(ctx=C2, init='ones')
        y.set_data(snap)
        tr2 = gluon.Trainer([y], 'adam', {'learning_rate': 0.1}, update_on_kvstore=update_on_kv)
        tr2.load_states(tmp_path / 's')
        run(tr2, y, 2)
        for d in y.list_data():
            np.testing.assert_array_equal(d.asnumpy(), want)


def test_loading_parameters_resets_a_kvstore_that_holds_weights(tmp_path):
    params = gluon.ParameterDict()
    x = params.get('x', shape=(4,))
    params.initialize(ctx=C2, init='zeros')
    tr = gluon.Trainer(params, 'sgd', {'learning_rate': 0.1}, kvstore='local')
    params.save(str(tmp_path / 'p.params'))
    for _ in range(2):
        with autograd.record():
            for w in x.list_data():
                (w + 1).backward()
        tr.step(1)
        params.load(str(tmp_path / 'p.params'))
        assert tr._kvstore is None  # reset: the next step re-initializes it from the loaded values
    with autograd.record():
        for w in x.list_data():
            (w + 1).backward()
    tr.step(1)
    assert all(np.allclose(d.asnumpy(), -0.2) for d in x.list_data())


def test_parameters_on_different_contexts_are_refused():
    a, b = gluon.Parameter('a', shape=(1,)), gluon.Parameter('b', shape=(1,))
    a.initialize(ctx=C2)
    b.initialize(ctx=gc.cpu(0))
    with pytest.raises(GraphcError, match="same contexts.*'b'"):
        gluon.Trainer([a, b], 'sgd')


def test_hybridized_block_refuses_inputs_on_two_contexts():
    net = nn.Dense(2, in_units=2)
    net.initialize(ctx=[gc.cpu(1), gc.cpu(2)])
    net.hybridize()
    with pytest.raises(ValueError, match='several contexts'):
        net(nd.ones((1, 2), ctx=gc.cpu(1)), nd.ones((1, 2), ctx=gc.cpu(2)))


def test_clip_global_norm_scales_in_place():
    a, b = nd.array([3.0, 0.0]), nd.array([[4.0]])
    norm = clip_global_norm([a, b], 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.asnumpy(), b.asnumpy().ravel()]), [0.6, 0, 0.8], rtol=1e-6)
    assert clip_global_norm([a], 10.0) == pytest.approx(0.6, rel=1e-6) and a.asnumpy()[0] == pytest.approx(0.6)


def test_check_sha1_and_download_without_a_network(tmp_path, monkeypatch):
    f = tmp_path / 'data.bin'
    f.write_bytes(b'graphc')
    digest = hashlib.sha1(b'graphc').hexdigest()
    assert check_sha1(str(f), digest) and not check_sha1(str(f), '0' * 40)
    assert download('http://example.com/data.bin', path=str(tmp_path), sha1_hash=digest) == str(f)  # kept

    def offline(*a, **k):
        raise urllib.error.URLError('no network')
    monkeypatch.setattr('urllib.request.urlopen', offline)
    with pytest.raises(GraphcError, match=r"cannot fetch http://example.com/other.bin .*copy the file to"):
        download('http://example.com/other.bin', path=str(tmp_path), retries=2)
    assert not (tmp_path / 'other.bin').exists()
