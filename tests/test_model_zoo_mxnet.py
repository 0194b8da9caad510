"""Model-zoo files written by real MXNet 1.9.1 (tests/data/mxnet_zoo, made by tools/make_mxnet_zoo_fixtures.py;
no MXNet needed here): SymbolBlock.imports of MXNet's export gives MXNet's outputs, and the same model built by
graphc's zoo reads MXNet's save_parameters file with exactly its names and shapes and gives MXNet's outputs,
eagerly and hybridized; graphc's own export of it has MXNet's nodes, in MXNet's order.

Tolerance: float32 through up to ~20 convolutions with different summation orders (MKLDNN's in MXNet, BLAS's
here): |graphc - mxnet| <= 1e-4 * max(1, max|mxnet|). GRAPHC_MXNET_ZOO=<folder> runs the same checks on
another folder the script wrote (`--all`: every get_model name at full size)."""
import json
import os

import numpy as np
import pytest

from graphc import gluon, nd, registry
from graphc.gluon.model_zoo import vision
from graphc.serialization import load_named

ZOO = os.environ.get('GRAPHC_MXNET_ZOO') or os.path.join(os.path.dirname(__file__), 'data', 'mxnet_zoo')
KEYS = sorted(k for k in os.listdir(ZOO) if os.path.exists(os.path.join(ZOO, k, 'manifest.json')))


def fixture(key):
    d = os.path.join(ZOO, key)
    m = json.load(open(os.path.join(d, 'manifest.json')))
    files = {k: v and os.path.join(d, v) for k, v in m['files'].items()}
    return m, files, np.load(os.path.join(d, 'input.npy')), np.load(os.path.join(d, 'output.npy'))


def build(m):
    b = m['build']
    args = [getattr(vision, a) if isinstance(a, str) and b['fn'] != 'get_model' else a for a in b['args']]
    return getattr(vision, b['fn'])(*args, **b['kwargs'])


def close(got, want, what):
    err = float(np.abs(got - want).max())
    print(f'{what}: max abs difference {err:.3g} (max |mxnet| {float(np.abs(want).max()):.3g})')   # -s shows it
    assert err <= 1e-4 * max(1.0, float(np.abs(want).max())), f'{what}: max abs difference {err:.3g}'
    return err


def test_the_committed_fixtures_are_mxnets():
    assert KEYS, ZOO
    for key in KEYS:
        m, files, x, y = fixture(key)
        assert m['mxnet_version'] == '1.9.1' and list(x.shape) == m['input_shape'] and list(y.shape) == m['output_shape']


@pytest.mark.parametrize('key', KEYS)
def test_symbolblock_imports_mxnets_export_and_gives_its_outputs(key):
    m, files, x, want = fixture(key)
    net = gluon.SymbolBlock.imports(files['symbol'], ['data'], files['export_params'])
    close(net(nd.array(x)).asnumpy(), want, f'{key} imported')
    net.hybridize()
    close(net(nd.array(x)).asnumpy(), want, f'{key} imported, hybridized')


def mxnet_nodes(path):
    """(op, attrs, inputs) of each operator node, and the argument names, without the model's prefix. Attributes
    are compared as the registry reads them (graphc writes no attribute left at its default: num_group=1)."""
    g = json.load(open(path))
    nodes, prefix = g['nodes'], None
    for n in nodes:
        if n['op'] == 'null' and n['name'] != 'data':
            prefix = prefix or n['name'][:n['name'].index('_') + 1]
    strip = (lambda s: s[len(prefix):] if s.startswith(prefix) else s)
    ops = [(n['op'], registry.get(n['op']).canon(n.get('attrs', {})), [(strip(nodes[i]['name']) if nodes[i]['op'] == 'null' else '', j)
                                          for i, j, *_ in n['inputs']]) for n in nodes if n['op'] != 'null']
    return ops, [strip(n['name']) for n in nodes if n['op'] == 'null']


@pytest.mark.parametrize('key', KEYS)
def test_graphc_zoo_model_reads_mxnets_save_parameters_and_exports_mxnets_graph(key, tmp_path):
    m, files, x, want = fixture(key)
    net = build(m)
    if files['saved_params']:
        saved = load_named(files['saved_params'])
        net.load_parameters(files['saved_params'])   # strict: no name missing, none extra, shapes equal
        paths = net._collect_params_with_prefix()
        assert sorted(paths) == sorted(saved)
        assert {k: tuple(p.shape) for k, p in paths.items()} == {k: tuple(v.shape) for k, v in saved.items()}
    else:   # committed without it (size): the export's arg:/aux: names carry the same tensors
        net.initialize()
        net(nd.array(x))
        exported = {k[4:][len(m['prefix']):]: v for k, v in load_named(files['export_params']).items()}
        params = {k[len(net.prefix):]: p for k, p in net.collect_params().items()}
        assert sorted(params) == sorted(exported)
        for k, p in params.items():
            p.set_data(exported[k])
    close(net(nd.array(x)).asnumpy(), want, f'{key} eager')
    net.hybridize()
    close(net(nd.array(x)).asnumpy(), want, f'{key} hybridized')
    sym_file, _ = net.export(str(tmp_path / key))
    ours, theirs = mxnet_nodes(sym_file), mxnet_nodes(files['symbol'])
    assert ours[1] == theirs[1]   # the same parameters, in the same order
    assert len(ours[0]) == len(theirs[0])
    for i, (a, b) in enumerate(zip(ours[0], theirs[0])):
        assert a == b, f'{key}: operator node {i}: graphc {a} != mxnet {b}'
