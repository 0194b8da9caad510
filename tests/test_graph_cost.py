"""Cost limits for untrusted graphs (graphc/budget.py): a 2 KB model file cannot ask for more memory than
GRAPHC_MAX_GRAPH_BYTES, checked from inferred shapes before anything is allocated or compiled."""
import json
import resource
import subprocess
import sys

import numpy as np
import pytest

import graphc as mx
from graphc import budget, nd
from graphc.base import GraphcLoadError
from graphc.gluon import SymbolBlock, nn
from graphc.mxjson import check_graph_cost, json_to_graph


def _file(nodes, heads=None):
    return json.dumps({'nodes': nodes, 'arg_nodes': [i for i, n in enumerate(nodes) if n['op'] == 'null'],
                       'heads': heads or [[len(nodes) - 1, 0, 0]], 'attrs': {'mxnet_version': ['int', 10901]}})


def _data(shape=None):
    d = {'op': 'null', 'name': 'data', 'inputs': []}
    if shape:
        d['attrs'] = {'__shape__': str(tuple(shape))}
    return d


ONE_HOT = _file([_data(), {'op': 'one_hot', 'name': 'oh', 'attrs': {'depth': '100000000'}, 'inputs': [[0, 0, 0]]}])
REPEAT = _file([_data(), {'op': 'repeat', 'name': 'rep', 'attrs': {'repeats': '100000000'}, 'inputs': [[0, 0, 0]]}])
ZEROS = _file([_data(), {'op': '_zeros', 'name': 'z', 'attrs': {'shape': '(65536, 65536)'}, 'inputs': []},
               {'op': 'broadcast_add', 'name': 'add', 'inputs': [[0, 0, 0], [1, 0, 0]]}])
TILE = _file([_data((4, 4)), {'op': 'tile', 'name': 't', 'attrs': {'reps': '(20000, 20000)'}, 'inputs': [[0, 0, 0]]}])


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.setenv('GRAPHC_MAX_GRAPH_BYTES', str(1 << 30))  # 1 GiB, whatever this machine's memory
    return 1 << 30


def test_the_default_limit_is_a_fraction_of_physical_memory(monkeypatch):
    monkeypatch.delenv('GRAPHC_MAX_GRAPH_BYTES', raising=False)
    assert budget.max_graph_bytes() == budget.physical_memory() // 4
    monkeypatch.setenv('GRAPHC_MAX_GRAPH_BYTES', '12345')
    assert budget.max_graph_bytes() == 12345


@pytest.mark.parametrize('text, node', [(ZEROS, "node 1 (z, _zeros)"), (TILE, "node 1 (t, tile)")])
def test_creation_shapes_are_refused_at_load(limit, text, node):
    assert len(text) < 2048
    with pytest.raises(GraphcLoadError, match=r"f\.json: " + node.replace('(', r'\(').replace(')', r'\)') +
                       r".*over the limit of 1\.00 GiB \(GRAPHC_MAX_GRAPH_BYTES\)"):
        json_to_graph(text, 'f.json')


@pytest.mark.parametrize('text, shape', [(ONE_HOT, r"\(20, 100000000\) float32 \(7\.45 GiB\)"),
                                         (REPEAT, r"\(2000000000,\) float32 \(7\.45 GiB\)")])
def test_size_attributes_are_refused_once_the_input_shape_is_known(limit, tmp_path, text, shape):
    f = tmp_path / 'm-symbol.json'
    f.write_text(text)
    assert len(text) < 2048
    if 'one_hot' in text:   # at load, a batch of one already needs 400 MB: within 1 GiB
        net = SymbolBlock.imports(str(f), ['data'])
        x = nd.zeros((20,))
    else:
        net = SymbolBlock.imports(str(f), ['data'])
        x = nd.zeros((4, 5))
    for hybridize in (False, True):
        net.hybridize(hybridize)
        with pytest.raises(GraphcLoadError, match=shape):
            net(x)


def test_a_batch_of_one_is_already_refused_at_load(monkeypatch):
    monkeypatch.setenv('GRAPHC_MAX_GRAPH_BYTES', str(100 << 20))
    with pytest.raises(GraphcLoadError, match=r"node 1 \(oh, one_hot\): output \(1, 100000000\)"):
        json_to_graph(ONE_HOT.replace('"name": "data", "inputs": []', '"name": "data", "inputs": [], '
                                      '"attrs": {"__shape__": "(0,)"}'), 'f.json')


_CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import graphc as mx
from graphc.base import GraphcLoadError
from graphc.gluon import SymbolBlock
net = SymbolBlock.imports(sys.argv[1], ['data'])
try:
    net(mx.nd.zeros(tuple(int(v) for v in sys.argv[2].split(','))))
except GraphcLoadError as e:
    print('refused:', str(e)[:300])
"""


@pytest.mark.parametrize('text, shape', [(ONE_HOT, '20'), (REPEAT, '4,5'), (ZEROS, '2,2')])
def test_default_limit_refuses_before_allocating(tmp_path, text, shape, monkeypatch):
    """Under a 3 GiB address-space limit the process reports GraphcLoadError instead of a MemoryError."""
    monkeypatch.setenv('GRAPHC_MAX_GRAPH_BYTES', str(2 << 30))
    f = tmp_path / 'm-symbol.json'
    f.write_text(text)
    r = subprocess.run([sys.executable, '-c', _CHILD, str(f), shape], capture_output=True, text=True, timeout=120)
    assert 'GraphcLoadError' in r.stderr or 'refused:' in r.stdout, r.stderr[-1500:]
    assert 'MemoryError' not in r.stderr


def test_node_count_cap(monkeypatch):
    monkeypatch.setenv('GRAPHC_MAX_GRAPH_NODES', '10')
    x = mx.sym.var('x', shape=(2,))
    for _ in range(12):
        x = x + 1
    with pytest.raises(GraphcLoadError, match=r"13 nodes is over the limit of 10"):
        check_graph_cost(x._graph())


def test_a_real_model_is_within_budget_and_the_count_is_exact():
    net = nn.HybridSequential()
    net.add(nn.Dense(8, in_units=4), nn.Activation('relu'))
    net.initialize()
    net.hybridize()
    net(nd.ones((3, 4)))
    g = net.cached_graph().graph
    want = sum(int(np.prod(s)) * np.dtype(d).itemsize for n in g.nodes for s, d in zip(n.shapes, n.dtypes))
    assert check_graph_cost(g) == want
    with pytest.raises(GraphcLoadError, match='over the limit of'):
        check_graph_cost(g, limit=want - 1)
    assert resource  # (used by the child processes)


def _chain_file(n, d):
    nodes = [{'op': 'null', 'name': 'data', 'inputs': []}]
    for k in range(n):
        op = ('relu', 'sigmoid', '_plus_scalar', '_mul_scalar')[k % 4]
        node = {'op': op, 'name': f'c{k}', 'inputs': [[k, 0, 0]]}
        if op.endswith('_scalar'):
            node['attrs'] = {'scalar': '0.5'}
        nodes.append(node)
    f = d / f'chain{n}-symbol.json'
    f.write_text(json.dumps({'nodes': nodes, 'arg_nodes': [0], 'heads': [[n, 0, 0]],
                             'attrs': {'mxnet_version': ['int', 10901]}}))
    return str(f)


def test_compile_time_per_node_does_not_grow_with_the_graph(tmp_path):
    """The first forward (load, trace, passes, codegen, LLVM) of an elementwise chain costs the same per node at
    2,000 and at 20,000 nodes (it was quadratic in fusion and superlinear in LLVM: 385 s for 10,000 nodes)."""
    import time
    x = nd.ones((4, 8))
    want = x.asnumpy()
    for k in range(20000):
        want = (np.maximum(want, 0), 1 / (1 + np.exp(-want)), want + 0.5, want * 0.5)[k % 4]
    cost = {}
    for n in (50, 2000, 20000):  # (50: the one-time start-up costs)
        f = _chain_file(n, tmp_path)
        t = time.perf_counter()
        net = SymbolBlock.imports(f, ['data'])
        net.hybridize()
        y = net(x).asnumpy()
        cost[n] = (time.perf_counter() - t) / n
    np.testing.assert_allclose(y, want, rtol=1e-5)
    assert cost[20000] < 2.5 * cost[2000], {n: f"{c * 1e3:.3f} ms/node" for n, c in cost.items()}


def test_tile_with_a_zero_repeat_allocates_nothing():
    x = nd.ones((2, 3))  # numpy's tile would first repeat axis 0 2**31-1 times (a MemoryError of 48 GiB)
    for hybridize in (False, True):   # (a zero repeat is a size only in NumPy shape mode, as in MXNet 1.x)
        net = nn.HybridLambda(lambda F, v: F.tile(v, reps=(2147483647, 0)))
        net.hybridize(hybridize)
        with mx.np_shape(True):
            assert net(x).shape == (4294967294, 0)
