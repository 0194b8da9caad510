"""Block/HybridBlock/Parameter machinery: names, collection, init, gradients, save/load, errors."""
import json
import re

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn


def mlp(prefix=None, in_units=0):
    net = nn.HybridSequential(prefix=prefix)
    with net.name_scope():
        net.add(nn.Dense(4, activation='tanh', in_units=in_units), nn.BatchNorm(in_channels=4 if in_units else 0),
                nn.Dense(3, in_units=4 if in_units else 0))
    return net


class Model(gluon.Block):
    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.features = mlp()
            self.out = nn.Dense(2)

    def forward(self, x):
        return self.out(self.features(x))


# ---------------------------------------------------------------- names and collection
def test_prefixes_follow_mxnet_naming():
    a, b = nn.Dense(2), nn.Dense(2)
    na, nb = (int(re.fullmatch(r'dense(\d+)_', d.prefix).group(1)) for d in (a, b))
    assert nb == na + 1 and a.name == a.prefix[:-1] and a.weight.name == a.prefix + 'weight'
    net = mlp(prefix='net_')
    assert [c.prefix for c in net._children.values()] == ['net_dense0_', 'net_batchnorm0_', 'net_dense1_']
    assert list(net.collect_params().keys()) == [
        'net_dense0_weight', 'net_dense0_bias', 'net_batchnorm0_gamma', 'net_batchnorm0_beta',
        'net_batchnorm0_running_mean', 'net_batchnorm0_running_var', 'net_dense1_weight', 'net_dense1_bias']
    assert net[0].act.prefix == 'net_dense0_tanh_'
    assert len(net.params) == 0  # own parameters only; children's are in collect_params()
    m = Model(prefix='m_')
    assert m.features.prefix == 'm_hybridsequential0_' and m.out.weight.name == 'm_dense0_weight'
    assert list(m._children) == ['features', 'out']  # registered by attribute, in order


def test_collect_params_regex_select():
    net = mlp(prefix='net_')
    assert list(net.collect_params('.*weight')) == ['net_dense0_weight', 'net_dense1_weight']
    assert list(net.collect_params('.*dense1_.*|.*gamma')) == ['net_batchnorm0_gamma', 'net_dense1_weight',
                                                               'net_dense1_bias']
    assert len(net.collect_params('nothing')) == 0


def test_custom_hybrid_block_gets_params_by_short_name():
    class Scale(gluon.HybridBlock):
        def __init__(self, **kw):
            super().__init__(**kw)
            with self.name_scope():
                self.scale = self.params.get('scale', shape=(1, 3), init=gc.init.Constant(2.0))
                self.shift = self.params.get_constant('shift', [[1.0, 2.0, 3.0]])

        def hybrid_forward(self, F, x, scale, shift):
            return F.broadcast_add(F.broadcast_mul(x, scale), shift)

    blk = Scale(prefix='s_')
    assert set(blk.collect_params()) == {'s_scale', 's_shift'}
    blk.initialize()
    assert blk.shift.grad_req == 'null' and isinstance(blk.shift, gluon.Constant)
    out = blk(nd.ones((2, 3))).asnumpy()
    np.testing.assert_array_equal(out, [[3, 4, 5], [3, 4, 5]])


def test_deferred_parameter_that_cannot_be_inferred_names_itself_and_shape():
    class Bad(gluon.HybridBlock):  # no infer_shape: the unknown dimension stays unknown
        def __init__(self):
            super().__init__(prefix='bad_')
            self.w = self.params.get('w', shape=(0, 4), allow_deferred_init=True)

        def hybrid_forward(self, F, x, w):  # (a dot would infer w's rows from x, as MXNet's infer_shape does)
            return F.broadcast_mul(x, F.sum(w))

    blk = Bad()
    blk.initialize()
    with pytest.raises(gc.DeferredInitializationError, match=r"^bad \(Bad\): Parameter 'bad_w' has unknown "
                                                             r"dimensions in its shape \(0, 4\)"):
        blk(nd.ones((2, 3)))


def test_parameter_sharing_and_attribute_rules():
    a = nn.Dense(3, in_units=2)
    b = nn.Dense(3, in_units=2, params=a.collect_params())
    assert b.weight is a.weight and b.bias is a.bias
    with pytest.raises(gc.GraphcError, match='children of a HybridBlock'):
        nn.HybridSequential().add(nn.Lambda('relu'))
    m = Model()
    with pytest.raises(gc.GraphcError, match="changing attribute 'out'"):
        m.out = 3


def test_repr_like_gluon():
    m = Model(prefix='m_')
    assert repr(m) == ('Model(\n  (features): HybridSequential(\n    (0): Dense(None -> 4, Activation(tanh))\n'
                       '    (1): BatchNorm(axis=1, eps=1e-05, momentum=0.9, fix_gamma=False, use_global_stats=False, '
                       'in_channels=None)\n    (2): Dense(None -> 3, linear)\n  )\n'
                       '  (out): Dense(None -> 2, linear)\n)')
    p = gluon.ParameterDict('pre_')
    p.get('w', shape=(2, 3))
    assert repr(p) == 'pre_ (\n  Parameter pre_w (shape=(2, 3), dtype=float32)\n)'


# ---------------------------------------------------------------- parameters
def test_parameter_lifecycle():
    p = gluon.Parameter('w', shape=(2, 3))
    with pytest.raises(gc.GraphcError, match=r"Parameter 'w' has not been initialized.*initialize\(\)"):
        p.data()
    p.initialize(init=gc.init.One())
    np.testing.assert_array_equal(p.data().asnumpy(), np.ones((2, 3)))
    assert p.list_data()[0] is p.data() and p.list_ctx() == [gc.cpu()]
    p.set_data(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert p.data().asnumpy()[1, 2] == 5
    with pytest.raises(gc.GraphcShapeError, match="Parameter 'w'"):
        p.set_data(np.zeros((3, 2), np.float32))
    x = p.data()
    with autograd.record():
        y = (x * x).sum()
    y.backward()
    np.testing.assert_array_equal(p.grad().asnumpy(), 2 * np.arange(6).reshape(2, 3))
    p.zero_grad()
    assert np.all(p.list_grad()[0].asnumpy() == 0)
    p.grad_req = 'add'
    for _ in range(2):
        with autograd.record():
            y = (p.data() * 3).sum()
        y.backward()
    np.testing.assert_array_equal(p.grad().asnumpy(), np.full((2, 3), 6))
    p.grad_req = 'null'
    with pytest.raises(gc.GraphcError, match="grad_req is 'null'"):
        p.grad()
    p.cast('float64')
    assert p.dtype == np.float64 and p.data().dtype == np.float64
    with pytest.warns(UserWarning, match='already initialized'):
        p.initialize()
    with pytest.raises(gc.GraphcError, match='not fully known'):
        gluon.Parameter('v', shape=(0, 2)).initialize()


def test_parameterdict_get_merges_shapes_and_checks_attributes():
    pd = gluon.ParameterDict('b_')
    w = pd.get('w', shape=(0, 3), allow_deferred_init=True)
    assert pd.get('w', shape=(4, 0)) is w and w.shape == (4, 3)
    with pytest.raises(gc.GraphcError, match="'b_w'.*shape"):
        pd.get('w', shape=(5, 3))
    with pytest.raises(gc.GraphcError, match='dtype'):
        pd.get('w', dtype='float64')
    pd.get('v', shape=(2,), lr_mult=0.5)
    pd.initialize()
    pd.setattr('grad_req', 'null')
    assert all(p.grad_req == 'null' for p in pd.values()) and pd['b_v'].lr_mult == 0.5
    other = gluon.ParameterDict('b_')
    other.get('w', shape=(4, 3))
    with pytest.raises(gc.GraphcError, match="different Parameter named 'b_w'"):
        pd.update(other)


def test_initialize_defaults_and_force_reinit():
    net = mlp(prefix='net_', in_units=5)
    net.initialize(gc.init.Xavier())
    w = net[0].weight.data().asnumpy()
    assert np.abs(w).max() <= np.sqrt(3 / 4.5) and np.abs(w).max() > 0.3  # xavier bound sqrt(3 / avg fan)
    assert np.all(net[0].bias.data().asnumpy() == 0)
    assert np.all(net[1].gamma.data().asnumpy() == 1) and np.all(net[1].running_var.data().asnumpy() == 1)
    assert np.all(net[1].running_mean.data().asnumpy() == 0) and np.all(net[1].beta.data().asnumpy() == 0)
    with pytest.warns(UserWarning):
        net.initialize()
    np.testing.assert_array_equal(net[0].weight.data().asnumpy(), w)
    net.initialize(gc.init.Constant(0.5), force_reinit=True)
    assert np.all(net[0].weight.data().asnumpy() == 0.5)
    assert np.all(net[0].bias.data().asnumpy() == 0)  # own bias_initializer='zeros' still wins


def test_initializers():
    assert gc.init.Uniform().dumps() == '["uniform", {"scale": 0.07}]'
    assert gc.init.Xavier().dumps() == '["xavier", {"rnd_type": "uniform", "factor_type": "avg", "magnitude": 3}]'
    assert json.loads(gc.init.MSRAPrelu().dumps()) == ['msraprelu', {'factor_type': 'avg', 'slope': 0.25}]
    x = gc.init.create(gc.init.Xavier('gaussian', 'in', 2).dumps())
    assert isinstance(x, gc.init.Xavier) and x.rnd_type == 'gaussian' and x.factor_type == 'in'
    assert isinstance(gc.init.create('zeros'), gc.init.Zero)
    with pytest.raises(gc.GraphcError, match='unknown initializer'):
        gc.init.create('nope')
    arr = nd.zeros((3,))
    for name, want in [('fc_bias', 0), ('bn_gamma', 1), ('bn_beta', 0), ('bn_running_mean', 0),
                       ('bn_moving_var', 1), ('bn_running_var', 1)]:
        arr._data[...] = 7
        gc.init.Uniform()(name, arr)
        assert np.all(arr.asnumpy() == want), name
    a = nd.zeros((200, 300))
    gc.random.seed(3)
    gc.init.Normal(0.5)('w_weight', a)
    first = a.asnumpy()
    assert abs(first.std() - 0.5) < 0.01 and abs(first.mean()) < 0.01
    gc.random.seed(3)
    gc.init.Normal(0.5)('w_weight', a)
    np.testing.assert_array_equal(a.asnumpy(), first)
    gc.init.MSRAPrelu(factor_type='in')('w_weight', a)  # std = sqrt(2 / (1 + 0.25^2) / fan_in)
    assert abs(a.asnumpy().std() / np.sqrt(2 / 1.0625 / 300) - 1) < 0.02
    gc.init.Xavier(factor_type='out', magnitude=6)('w_weight', a)
    assert abs(np.abs(a.asnumpy()).max() - np.sqrt(6 / 200)) < 1e-3
    with pytest.raises(gc.GraphcError, match='at least 2 dimensions'):
        gc.init.Xavier()._init_weight('v', nd.zeros((4,)))


# ---------------------------------------------------------------- gradients
def test_network_gradients_match_central_differences():
    gc.random.seed(0)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(2, 3, padding=1), nn.BatchNorm(), nn.Activation('tanh'), nn.MaxPool2D(),
                nn.Flatten(), nn.Dense(3, activation='sigmoid'), nn.Dense(2))
    net.initialize(gc.init.Normal(0.5))
    net.cast('float64')
    rng = np.random.default_rng(1)
    x = nd.array(rng.normal(size=(2, 1, 4, 4)), dtype='float64')
    head = nd.array(rng.normal(size=(2, 2)), dtype='float64')

    def loss():
        with autograd.train_mode():  # BatchNorm on batch statistics, as in the recorded pass
            return float((net(x) * head).sum().asscalar())

    with autograd.record():
        y = (net(x) * head).sum()
    y.backward()
    params = [p for p in net.collect_params().values() if p.grad_req != 'null']
    assert len(params) == 8
    for p in params:
        data, g = p.data()._data, p.grad().asnumpy()
        num = np.zeros_like(data)
        for i in np.ndindex(data.shape):
            old = data[i]
            data[i] = old + 1e-6
            up = loss()
            data[i] = old - 1e-6
            num[i] = (up - loss()) / 2e-6
            data[i] = old
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7, err_msg=p.name)


# ---------------------------------------------------------------- save / load
def test_save_load_round_trip_with_attribute_paths(tmp_path):
    from graphc.serialization import load_ndarrays
    f = str(tmp_path / 'net.params')
    src = mlp(in_units=5)
    src.initialize()
    x = nd.array(np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32))
    with autograd.record():  # moves the running statistics away from their initial values
        src(x)
    src.save_parameters(f)
    assert sorted(load_ndarrays(f)) == sorted(['0.weight', '0.bias', '1.gamma', '1.beta', '1.running_mean',
                                               '1.running_var', '2.weight', '2.bias'])
    dst = mlp()  # different prefix, deferred shapes: filled in from the file
    dst.load_parameters(f)
    assert dst[0].weight.shape == (4, 5)
    np.testing.assert_array_equal(dst(x).asnumpy(), src(x).asnumpy())
    np.testing.assert_array_equal(dst[1].running_mean.data().asnumpy(), src[1].running_mean.data().asnumpy())


def test_load_errors_name_missing_extra_and_mismatched(tmp_path):
    f = str(tmp_path / 'net.params')
    src = mlp(in_units=5)
    src.initialize()
    src.save_parameters(f)

    bigger = mlp(in_units=5)
    with bigger.name_scope():
        bigger.add(nn.Dense(7, in_units=3))
    bigger.initialize()
    with pytest.raises(gc.GraphcError, match=r"missing in the file: '3\.weight', '3\.bias'.*allow_missing"):
        bigger.load_parameters(f)
    kept = bigger[3].weight.data().asnumpy()
    bigger.load_parameters(f, allow_missing=True)
    np.testing.assert_array_equal(bigger[3].weight.data().asnumpy(), kept)
    np.testing.assert_array_equal(bigger[0].weight.data().asnumpy(), src[0].weight.data().asnumpy())

    smaller = nn.HybridSequential()
    with smaller.name_scope():
        smaller.add(nn.Dense(4, activation='tanh', in_units=5))
    with pytest.raises(gc.GraphcError, match=r"the file has parameters the model does not: '1\.gamma'.*ignore_extra"):
        smaller.load_parameters(f)
    smaller.load_parameters(f, ignore_extra=True)
    np.testing.assert_array_equal(smaller[0].bias.data().asnumpy(), src[0].bias.data().asnumpy())

    wrong = mlp(in_units=6)
    wrong.initialize()
    before = wrong[2].weight.data().asnumpy()
    with pytest.raises(gc.GraphcShapeError, match=r"'0\.weight': model \(4, 6\), file \(4, 5\)"):
        wrong.load_parameters(f)
    np.testing.assert_array_equal(wrong[2].weight.data().asnumpy(), before)  # nothing loaded on failure

    wide = mlp(in_units=5)
    wide.cast('float64')
    with pytest.raises(gc.GraphcError, match='cast_dtype=True'):
        wide.load_parameters(f)
    wide.load_parameters(f, cast_dtype=True)
    assert wide[0].weight.data().dtype == np.float64


def test_parameterdict_save_load_with_prefixes(tmp_path):
    f = str(tmp_path / 'pd.params')
    src = mlp(prefix='a_', in_units=3)
    src.initialize()
    src.collect_params().save(f, strip_prefix='a_')
    with pytest.raises(gc.GraphcError, match="does not start with it"):
        src.collect_params().save(f, strip_prefix='zz_')
    dst = mlp(prefix='b_', in_units=3)
    dst.collect_params().load(f, restore_prefix='b_')
    np.testing.assert_array_equal(dst[2].weight.data().asnumpy(), src[2].weight.data().asnumpy())
    dst2 = mlp(prefix='c_', in_units=3)
    dst2.load_parameters(f)  # names without '.': loaded by name under this block's prefix, as MXNet
    np.testing.assert_array_equal(dst2[0].weight.data().asnumpy(), src[0].weight.data().asnumpy())


# ---------------------------------------------------------------- errors name the layer
def test_shape_error_names_layer_and_shapes():
    d = nn.Dense(3, in_units=5)
    d.initialize()
    with pytest.raises(gc.GraphcShapeError) as e:
        d(nd.ones((2, 7)))
    msg = str(e.value)
    assert msg.startswith(f"{d.name} (Dense): FullyConnected") and '(2, 7)' in msg and '(3, 5)' in msg


def test_error_path_is_prefixed_once_up_the_hierarchy():
    m = Model(prefix='model_')
    with m.features.name_scope():
        m.features.add(nn.Dense(6, in_units=9))  # the 4th layer gets 3 inputs, wants 9
    m.initialize()
    with pytest.raises(gc.GraphcShapeError) as e:
        m(nd.ones((2, 5)))
    msg = str(e.value)
    assert msg.startswith('model > hybridsequential0 > dense2 (Dense): FullyConnected'), msg
    assert msg.count('(Dense)') == 1 and '(2, 3)' in msg and '(6, 9)' in msg
    net = mlp()
    with pytest.raises(gc.GraphcError, match=rf"^{net.name} > dense0 \(Dense\): Parameter '{net.prefix}dense0_weight' "
                                             r"has not been initialized"):
        net(nd.ones((2, 5)))


# ---------------------------------------------------------------- misc block API
def test_hybridize_apply_cast_zero_grad_summary(capsys):
    net = mlp(prefix='net_', in_units=5)
    net.hybridize(static_alloc=True)
    assert all(b._active and b._flags['static_alloc'] for b in [net, net[0], net[0].act, net[2]])
    seen = []
    assert net.apply(lambda b: seen.append(b.name)) is net
    assert seen == ['net_dense0_tanh', 'net_dense0', 'net_batchnorm0', 'net_dense1', 'net']
    net.initialize()
    x = nd.array(np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32))
    with autograd.record():
        y = (net(x) * nd.array([[1.0, 2.0, 3.0]])).sum()
    y.backward()
    assert np.abs(net[0].weight.grad().asnumpy()).sum() > 0
    net.zero_grad()
    assert all(np.all(p.grad().asnumpy() == 0) for p in net.collect_params().values() if p.grad_req != 'null')
    with pytest.raises(AssertionError, match='"net" must not be hybridized'):  # as MXNet
        net.summary(x)
    net.hybridize(False)
    net.summary(x)
    out = capsys.readouterr().out
    assert re.search(r'dense0 \(Dense\)\s+\(2, 4\)\s+24\n', out) and re.search(r'dense1 \(Dense\)\s+\(2, 3\)\s+15', out)
    assert 'Total params: 55' in out and 'Trainable params: 47' in out and 'Non-trainable params: 8' in out
    net.cast('float64')
    assert net(nd.ones((2, 5), dtype='float64')).dtype == np.float64


def test_utils_split_and_clip():
    from graphc.gluon import utils
    x = nd.array(np.arange(10, dtype=np.float32).reshape(5, 2))
    parts = utils.split_data(x, 2, even_split=False)
    assert [p.shape for p in parts] == [(3, 2), (2, 2)]  # MXNet 1.9's rule: np.array_split's
    with pytest.raises(gc.GraphcError, match='evenly split'):
        utils.split_data(x, 2)
    (only,) = utils.split_and_load(x, [gc.cpu()])
    np.testing.assert_array_equal(only.asnumpy(), x.asnumpy())
    a, b = nd.array([3.0, 0.0]), nd.array([[4.0]])
    assert utils.clip_global_norm([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(a.asnumpy(), [0.6, 0], rtol=1e-6)
    np.testing.assert_allclose(b.asnumpy(), [[0.8]], rtol=1e-6)


# ---------------------------------------------------------------- MXNet 1.x block API: op hooks, legacy save, warnings
def test_op_hook_reports_every_op_with_mxnet_names():
    net = nn.HybridSequential(prefix='m_')
    with net.name_scope():
        net.add(nn.Dense(2), nn.Activation('relu'))
    net.initialize()
    net.hybridize()
    seen = []
    net.register_op_hook(lambda name, op, arr: seen.append((name, op, arr.shape)), monitor_all=True)
    x = nd.array(np.arange(6.0).reshape(2, 3), dtype='float32')
    y = net(x)
    assert [s[:2] for s in seen] == [
        ('m_dense0_fwd_data', 'FullyConnected'), ('m_dense0_fwd_weight', 'FullyConnected'),
        ('m_dense0_fwd_bias', 'FullyConnected'), ('m_dense0_fwd_output', 'FullyConnected'),
        ('m_relu0_fwd_input0', 'Activation'), ('m_relu0_fwd_output', 'Activation')]
    assert seen[1][2] == (2, 3) and seen[-1][2] == (2, 2)
    seen.clear()
    net.register_op_hook(lambda name, op, arr: seen.append((name, arr.asnumpy())))
    np.testing.assert_array_equal(net(x).asnumpy(), y.asnumpy())
    assert [s[0] for s in seen] == ['m_dense0_fwd_output', 'm_relu0_fwd_output']
    np.testing.assert_array_equal(seen[-1][1], y.asnumpy())


def test_legacy_save_params_load_params(tmp_path):
    net = mlp(prefix='old_', in_units=5)
    net.initialize()
    f = str(tmp_path / 'net.params')
    with pytest.warns(DeprecationWarning, match='save_parameters'):
        net.save_params(f)
    assert sorted(gc.nd.load(f)) == sorted(k[len('old_'):] for k in net.collect_params())
    other = mlp(prefix='new_', in_units=5)
    other.initialize()
    with pytest.warns(DeprecationWarning, match='load_parameters'):
        other.load_params(f)
    for a, b in zip(net.collect_params().values(), other.collect_params().values()):
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy())


def test_load_parameters_dtype_source_saved(tmp_path):
    net = nn.Dense(3, in_units=2)
    net.initialize()
    net.cast('float16')
    f = str(tmp_path / 'd.params')
    net.save_parameters(f)
    net.cast('float32')
    net.load_parameters(f, cast_dtype=True, dtype_source='current')
    assert net.weight.dtype == np.float32
    net.load_parameters(f, cast_dtype=True, dtype_source='saved')
    assert net.weight.dtype == np.float16 and net.weight.data().dtype == np.float16
    with pytest.raises(gc.GraphcError, match='dtype_source'):
        net.load_parameters(f, dtype_source='file')


def test_block_attribute_type_change_is_a_type_error_and_containers_warn():
    b = gluon.Block()
    b.child = gluon.Block()
    with pytest.raises(TypeError, match="changing attribute 'child'"):
        b.child = (2,)

    class Listed(gluon.Block):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Dense(2)]
            self.config = {'a': 1}
    with pytest.warns(UserWarning, match='unregistered container with Blocks'):
        Listed().collect_params()
    seq = nn.Sequential()
    seq.add(nn.Dense(2))
    with pytest.warns(UserWarning, match='Consider using HybridSequential'):
        seq.hybridize()


def test_hybridized_call_checks_arguments_as_mxnet():
    class Add(gluon.HybridBlock):
        def hybrid_forward(self, F, a, b=None):
            return a if b is None else a + b
    f = Add()
    with pytest.raises(ValueError, match='one NDArray or one Symbol'):
        f(None, None)
    f.hybridize()
    x = nd.ones((3,))
    np.testing.assert_array_equal(f(x).asnumpy(), f(x, None).asnumpy())  # a trailing None is the default
    with pytest.raises(ValueError, match=r'argument structure \[0, 0\] does not match the cached one \[0\]'):
        f(x, x)
    g = Add()
    g.hybridize()
    with pytest.raises(ValueError, match='got 1 of type int'):
        g(x, 1)


def test_adding_a_child_drops_the_cached_graph():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4, flatten=False))
    net.hybridize()
    net.initialize()
    assert net(nd.ones((2, 3, 5))).shape == (2, 3, 4)
    net.add(nn.Flatten())
    assert net(nd.ones((2, 3, 5))).shape == (2, 12)


def test_export_files_share_permissions_and_explain_prints_once(tmp_path, capsys):
    import os
    net = mlp(in_units=5)
    net.initialize()
    net.hybridize()
    net(nd.ones((2, 5)))
    sym_file, param_file = net.export(str(tmp_path / 'm'))
    assert os.stat(sym_file).st_mode == os.stat(param_file).st_mode
    text = gc.explain(net, nd.ones((2, 5)), print_graph=False)
    assert capsys.readouterr().out == text + '\n'
    assert '\n' not in repr(text) and 'print()' in repr(text)  # a REPL shows one line, not the report again


def test_share_parameters_by_attribute_path():
    a, b = mlp(in_units=5), mlp(in_units=5)
    a.initialize()
    b.initialize()
    shared = {k: v for k, v in a._collect_params_with_prefix().items() if k.startswith('0.')}
    b.hybridize()
    x = nd.ones((2, 5))
    b(x)
    with pytest.warns(UserWarning, match="'9.weight' is not in the current model"):
        assert b.share_parameters(dict(shared, **{'9.weight': a[0].weight})) is b
    assert b[0].weight is a[0].weight and b[0].bias is a[0].bias and b[2].weight is not a[2].weight
    names = list(b.collect_params())
    assert len(names) == len(set(id(p) for p in b.collect_params().values()))  # each Parameter once
    assert a[0].weight.name in names and b[2].weight.name in names
    a[0].weight.set_data(nd.zeros((4, 5)))
    a[0].bias.set_data(nd.zeros((4,)))
    h = b[0](x).asnumpy()  # the hybridized graph reads the shared values
    np.testing.assert_array_equal(h, np.zeros((2, 4)))


def test_symbol_block_from_symbols_with_parameters():
    data = gc.sym.var('data')
    w, b = gc.sym.var('fc_weight', shape=(3, 4)), gc.sym.var('fc_bias')
    blk = gluon.SymbolBlock(gc.sym.Activation(gc.sym.FullyConnected(data, w, b, num_hidden=3), act_type='relu'), data)
    assert list(blk.collect_params()) == ['fc_weight', 'fc_bias']
    blk.initialize()
    blk(nd.ones((2, 4)))  # fc_bias's shape follows from num_hidden (MXNet's backward shape inference)
    assert blk.collect_params()['fc_bias'].shape == (3,)
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    y = blk(nd.array(x)).asnumpy()
    W, B = blk.collect_params()['fc_weight'].data().asnumpy(), blk.collect_params()['fc_bias'].data().asnumpy()
    np.testing.assert_allclose(y, np.maximum(x @ W.T + B, 0), rtol=1e-5, atol=1e-6)
