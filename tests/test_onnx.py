"""ONNX export checked by onnxruntime (float32: |ort - graphc| <= 1e-4 * (|graphc| + max |graphc|)), onnx's checker
with full shape inference on every file, and the round trip graphc -> ONNX -> graphc."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')

import graphc as gc  # noqa: E402
from graphc import nd, sym  # noqa: E402
from graphc.base import GraphcError  # noqa: E402
from graphc.gluon import nn, rnn  # noqa: E402
from graphc.onnx.export import DEFAULT_OPSET, MIN_OPSET  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = next((p for p in (os.path.join(ROOT, '..', 'shared', 'mxnet_models'),            # beside the checkout
                           os.path.join(ROOT, '..', '..', 'shared', 'mxnet_models'))      # beside a worktree
               if os.path.isdir(p)), 'no-mxnet-models')
sys.path.insert(0, os.path.join(ROOT, 'examples'))
RTOL = 1e-4


def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=['CPUExecutionProvider'])


def checked(path):
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)   # includes strict shape inference
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True, data_prop=True)
    return m


def close(got, want, rtol=RTOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max(initial=0))))


def outs(y):
    return [o.asnumpy() for o in (y if isinstance(y, (list, tuple)) else [y])]


def check_block(net, xs, tmp_path, dynamic=False, other_batch=None, roundtrip=True, opset=None, batch_axes=None):
    """Export the hybridized net, run it in onnxruntime and back in graphc; returns the ONNX file.
    batch_axes: per input, its dynamic (batch) axis (default 0)."""
    net.hybridize()
    want = outs(net(*[nd.array(x) for x in xs]))
    path = tmp_path / 'model.onnx'
    axes = batch_axes or [0] * len(xs)
    dyn = [tuple(None if i == ax else d for i, d in enumerate(x.shape)) for x, ax in zip(xs, axes)]
    net.export_onnx(str(path), dynamic=dynamic, dynamic_input_shapes=dyn if dynamic else None, opset_version=opset)
    checked(path)
    s = session(path)
    feed = {i.name: x for i, x in zip(s.get_inputs(), xs)}
    for g, w in zip(s.run(None, feed), want):
        close(g, w)
    if roundtrip:
        blk = gc.onnx.import_to_gluon(str(path))
        for g, w in zip(outs(blk(*[nd.array(x) for x in xs])), want):
            close(g, w, 1e-5)
    if other_batch is not None:   # a dynamic batch: another size runs, in onnxruntime and imported back
        xs2 = [np.concatenate([x] * other_batch, axis=ax) for x, ax in zip(xs, axes)]
        want2 = outs(net(*[nd.array(x) for x in xs2]))
        for g, w in zip(s.run(None, {i.name: x for i, x in zip(s.get_inputs(), xs2)}), want2):
            close(g, w)
        if roundtrip:
            for g, w in zip(outs(blk(*[nd.array(x) for x in xs2])), want2):
                close(g, w, 1e-5)
    return path


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------- the models of the issue
ZOO = [f'resnet{n}_v{v}' for v in (1, 2) for n in (18, 34, 50, 101, 152)]


def small_resnet(name):
    """The zoo's ResNet `name` (its blocks, depth and names) at 1/16 of the width, so the test stays fast."""
    from graphc.gluon.model_zoo.vision.resnet import BLOCKS, SPEC, ResNetV1, ResNetV2
    n, v = int(name[6:].split('_')[0]), int(name[-1])
    kind, layers, channels = SPEC[n]
    return (ResNetV1 if v == 1 else ResNetV2)(BLOCKS[v][kind], layers, [c // 16 for c in channels], classes=10)


@pytest.mark.parametrize('name', ZOO)
def test_zoo_resnets_match_onnxruntime_with_a_dynamic_batch(name, tmp_path):
    net = small_resnet(name)
    net.initialize(gc.init.Xavier())
    net(nd.array(rand(1, 3, 16, 16)))   # parameter shapes known
    # predict mode with non-trivial moving statistics, so BatchNorm's conversion is exercised
    for p in net.collect_params().values():
        if p.name.endswith(('running_mean', 'running_var')):
            v = np.random.default_rng(1).uniform(0.5, 1.5, p.shape).astype('f')
            p.set_data(nd.array(v if 'var' in p.name else v - 1.0))
    check_block(net, [rand(1, 3, 16, 16)], tmp_path, dynamic=True, other_batch=2, roundtrip=name in (ZOO[0], ZOO[5]))


def test_lenets_and_mlp(tmp_path):
    from lenet_mnist import lenet
    from mocha_lenet import mocha_lenet
    for make in (lenet, mocha_lenet):
        net = make()
        net.initialize(gc.init.Xavier())
        check_block(net, [rand(4, 1, 28, 28)], tmp_path, dynamic=True, other_batch=3)
    mlp = nn.HybridSequential()
    mlp.add(nn.Dense(64, activation='relu'), nn.Dropout(0.5), nn.Dense(32, activation='tanh'), nn.Dense(10))
    mlp.initialize()
    check_block(mlp, [rand(8, 784)], tmp_path, dynamic=True, other_batch=2)


@pytest.mark.parametrize('layers', [1, 2])
def test_char_lstm(layers, tmp_path):
    from char_lstm import CharLM
    net = CharLM(vocab=20, embed=8, hidden=16, layers=layers)
    net.initialize(gc.init.Xavier())
    x = np.random.default_rng(0).integers(0, 20, (3, 5)).astype('f')   # (batch, time) as the example feeds it
    h, c = rand(layers, 3, 16, seed=1), rand(layers, 3, 16, seed=2)
    check_block(net, [x, h, c], tmp_path, dynamic=True, other_batch=2, batch_axes=[0, 1, 1])


@pytest.mark.parametrize('mode,bidir', [('gru', True), ('rnn_tanh', False), ('rnn_relu', True), ('lstm', True)])
def test_rnn_layers_gate_order(mode, bidir, tmp_path):
    layer = {'gru': rnn.GRU, 'lstm': rnn.LSTM}.get(mode, rnn.RNN)
    kw = {'activation': mode[4:]} if mode.startswith('rnn') else {}

    class Net(gc.gluon.HybridBlock):
        def __init__(self):
            super().__init__()
            with self.name_scope():
                self.r = layer(6, num_layers=2, bidirectional=bidir, input_size=4, **kw)

        def hybrid_forward(self, F, x):
            return self.r(x)
    net = Net()
    net.initialize(gc.init.Uniform(0.5))
    check_block(net, [rand(5, 3, 4)], tmp_path)


@pytest.mark.parametrize('name', ['mlp', 'lenet_bn'])
def test_mxnet_reference_models_through_the_cli(name, tmp_path):
    """Files written by real MXNet 1.9.1 convert with `graphc export-onnx` and match MXNet's outputs."""
    d = os.path.join(MODELS, name)
    if not os.path.isdir(d):
        pytest.skip(f"no reference models at {MODELS}")
    man = json.load(open(os.path.join(d, 'manifest.json')))
    x, want = np.load(os.path.join(d, 'input.npy')), np.load(os.path.join(d, 'output.npy'))
    out = tmp_path / f'{name}.onnx'
    from graphc.cli import main
    rc = main(['export-onnx', os.path.join(d, man['symbol_json']), '--params', os.path.join(d, man['params_file']),
               '--shape', ','.join(map(str, x.shape)), '--out', str(out), '--dynamic'])
    assert rc == 0
    checked(out)
    s = session(out)
    close(s.run(None, {s.get_inputs()[0].name: x.astype('f')})[0], want.astype('f'))
    close(s.run(None, {s.get_inputs()[0].name: x[:3].astype('f')})[0], want[:3].astype('f'))   # another batch
    got = gc.onnx.import_to_gluon(str(out))(nd.array(x)).asnumpy()
    close(got, want.astype('f'))


def test_cli_errors(tmp_path, capsys):
    from graphc.cli import main
    d = os.path.join(MODELS, 'mlp')
    if not os.path.isdir(d):
        pytest.skip("no reference models")
    assert main(['export-onnx', os.path.join(d, 'mlp-symbol.json'), '--params', os.path.join(d, 'mlp-0000.params'),
                 '--shape', 'nope=1,784', '--out', str(tmp_path / 'x.onnx')]) == 2
    assert "data inputs are ['data']; unknown ['nope']; missing ['data']" in capsys.readouterr().err


# ---------------------------------------------------------------- API, opsets, conventions
def graph_check(out, feeds, tmp_path, params=None, opset=None, dynamic=False, roundtrip=True):
    """Export a Symbol with gc.onnx.export_model; onnxruntime against graphc's interpreter."""
    params = params or {}
    names = [n for n in out.list_inputs() if n not in params]
    want = [o.asnumpy() for o in out.eval(**{**feeds, **params})]
    path = gc.onnx.export_model(out, params, [feeds[n].shape for n in names], [feeds[n].dtype for n in names],
                                onnx_file_path=str(tmp_path / 'g.onnx'), opset_version=opset, dynamic=dynamic)
    checked(path)
    s = session(path)
    for g, w in zip(s.run(None, {n: feeds[n] for n in names}), want):
        close(g, w, 1e-5)
    if roundtrip:
        symb, args, aux = gc.onnx.import_model(path)
        got = symb.eval(**{**{k: v.asnumpy() for k, v in {**args, **aux}.items()}, **feeds})
        for g, w in zip(got, want):
            close(g.asnumpy(), w, 1e-5)
    return path


def test_mxnet_conventions(tmp_path):
    x = sym.var('x')
    v = rand(2, 3, 7, 7)
    for kw in (dict(pool_type='max', pooling_convention='full'), dict(pool_type='avg', pooling_convention='full'),
               dict(pool_type='avg', pad=(1, 1), count_include_pad=False),
               dict(pool_type='avg', pad=(1, 1), count_include_pad=True, pooling_convention='full'),
               dict(pool_type='sum'), dict(pool_type='max', pad=(1, 1)), dict(pool_type='avg', global_pool=True)):
        graph_check(sym.Pooling(x, kernel=(3, 3), stride=(2, 2), **kw), {'x': v}, tmp_path,
                    roundtrip=kw['pool_type'] != 'sum' and 'full' not in kw.values() or kw['pool_type'] == 'max')
    y = sym.Reshape(x, shape=(0, -4, 1, -1, -3))   # (2, 3, 7, 7) -> (2, 1, 3, 49)
    graph_check(sym.Reshape(y, shape=(-2,), reverse=True), {'x': v}, tmp_path, dynamic=True)
    graph_check(sym.softmax(x, axis=1, temperature=2.5), {'x': v}, tmp_path)
    parts = sym.SliceChannel(x, num_outputs=3, axis=1, squeeze_axis=True)
    graph_check(sym.Group(list(parts)), {'x': v}, tmp_path)
    g, b, m, var = (sym.var(n) for n in ('g', 'b', 'm', 'v'))
    params = {'g': rand(3, seed=1), 'b': rand(3, seed=2), 'm': rand(3, seed=3),
              'v': np.abs(rand(3, seed=4)) + 0.5}
    for fix in (True, False):
        bn = sym.BatchNorm(x, g, b, m, var, fix_gamma=fix, use_global_stats=True, eps=1e-3)
        graph_check(bn, {'x': v}, tmp_path, params)
    graph_check(sym.LeakyReLU(x, act_type='gelu'), {'x': v}, tmp_path)
    graph_check(sym.LeakyReLU(x, act_type='selu'), {'x': v}, tmp_path)
    graph_check(sym.LeakyReLU(x, g, act_type='prelu'), {'x': v}, tmp_path, params)
    graph_check(sym.Flatten(x), {'x': v}, tmp_path, dynamic=True)


@pytest.mark.parametrize('opset', sorted({MIN_OPSET, 17, DEFAULT_OPSET}))
def test_opsets(opset, tmp_path):
    from lenet_mnist import lenet
    net = lenet()
    net.initialize()
    p = check_block(net, [rand(2, 1, 28, 28)], tmp_path, opset=opset)
    assert onnx.load(str(p)).opset_import[0].version == opset


def test_newest_opset_passes_the_checker(tmp_path):
    net = nn.HybridSequential()
    net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.MaxPool2D(), nn.Flatten(), nn.Dense(5), nn.LayerNorm())
    net.initialize()
    net.hybridize()
    net(nd.array(rand(2, 3, 8, 8)))
    newest = onnx.defs.onnx_opset_version()
    checked(net.export_onnx(str(tmp_path / 'n.onnx'), opset_version=newest))
    with pytest.raises(GraphcError, match=r"opset_version 12 is outside 13\.\."):
        net.export_onnx(str(tmp_path / 'n.onnx'), opset_version=12)


def test_export_errors_name_the_node(tmp_path):
    x = sym.var('x')
    y = sym.Deconvolution(x, sym.var('w'), kernel=(2, 2), num_filter=2, target_shape=(4, 4), name='up')
    with pytest.raises(GraphcError, match=r"node 'up' \(Deconvolution\) cannot be exported to ONNX: .*target_shape"):
        gc.onnx.export_model(y, {'w': rand(1, 2, 2, 2)}, [(1, 1, 3, 3)], onnx_file_path=str(tmp_path / 'x.onnx'))
    with pytest.raises(GraphcError, match=r"in_shapes is required \(data inputs: \['x'\]\)"):
        gc.onnx.export_model(sym.relu(x), {}, None, onnx_file_path=str(tmp_path / 'x.onnx'))
    net = nn.Dense(3)
    net.initialize()
    with pytest.raises(GraphcError, match="export_onnx needs a traced graph"):
        net.export_onnx(str(tmp_path / 'x.onnx'))


def test_mxnet_signature_with_files(tmp_path):
    """export_model(sym_file, params_file, in_shapes, in_types, onnx_file_path), as MXNet 1.9's."""
    from lenet_mnist import lenet
    net = lenet()
    net.initialize()
    net.hybridize()
    x = rand(2, 1, 28, 28)
    want = net(nd.array(x)).asnumpy()
    sf, pf = net.export(str(tmp_path / 'lenet'))
    path = gc.onnx.export_model(sf, pf, [(2, 1, 28, 28)], np.float32, str(tmp_path / 'l.onnx'))
    s = session(path)
    close(s.run(None, {'data': x})[0], want)


def test_import_graphc_does_not_import_onnx():
    code = "import sys, graphc; assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules"
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT)


def test_fuzzed_graphs_sample():
    """A fixed sample of the property test (python tools/onnx_check.py --count 1000 runs the long one)."""
    import onnx_check as check
    passed, skipped, failures, _ = check.run(seed=0, count=40, log=lambda *a: None, roundtrip=True)
    assert not failures, failures[:3]
    assert passed >= 30, (passed, skipped)


def test_coverage_table_in_docs_is_generated():
    from onnx_table import coverage_table
    doc = open(os.path.join(ROOT, 'docs', 'ONNX.md')).read()
    assert coverage_table() in doc, "docs/ONNX.md is stale: regenerate it with `python tools/onnx_table.py`"
    assert '| `Convolution` | Conv |' in coverage_table()
