"""Passes: before/expected on small graphs, and preservation: every model gives the same outputs with
all passes on, each pass off alone, and all off. Tolerance: float32, rtol 1e-5, atol 1e-5 x scale
(BatchNorm folding and fusion reorder float32 arithmetic)."""
import os
import re
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.graph import Graph
from graphc.passes import PASSES, PIPELINES, run_pipeline
from graphc.interpreter import interpret
from graphc.symbol.symbol import input_var

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'examples'))


def run(g, *arrays):
    return interpret(g, {v: a for v, a in zip(g.inputs, arrays)})


def only(pass_names, g, pipeline='inference'):
    return run_pipeline(g, pipeline, disabled=set(PASSES) - set(pass_names), verify=True)


def ops_of(g):
    return [n.op.name for n in g.nodes if not n.is_var]


X = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)


def test_dce_removes_unreachable_nodes():
    x = input_var('x', (4, 6), 'float32')
    y = nd.relu(x)
    g = Graph([y._one()])
    g.nodes.insert(1, nd.exp(x)._one()[0])  # dead
    g2, rep = only(['dce'], g)
    assert ops_of(g2) == ['relu'] and rep.rows[0][4]['removed'] == 1


def test_cse_merges_identical_nodes():
    x = input_var('x', (4, 6), 'float32')
    g = Graph([(nd.relu(x) + nd.relu(x))._one()])
    g2, rep = only(['dce', 'cse'], g)
    assert ops_of(g2) == ['relu', 'elemwise_add']
    np.testing.assert_array_equal(run(g2, X)[0], 2 * np.maximum(X, 0))


def test_fold_constants():
    x = input_var('x', (4, 6), 'float32')
    c = nd.array(np.full((4, 6), 2.0, np.float32))
    g = Graph([(x * nd.exp(c * 3))._one()])
    g2, rep = only(['dce', 'fold_constants'], g)
    assert ops_of(g2) == ['elemwise_mul']
    np.testing.assert_allclose(run(g2, X)[0], X * np.exp(6.0), rtol=1e-6)


def test_algebra_identities():
    x = input_var('x', (4, 6), 'float32')
    y = ((x * 1.0 + 0.0).copy().reshape((24,)).reshape((6, 4)).T.T)
    y = nd.Dropout(nd.relu(y), p=0.5)
    g = Graph([y._one()])
    g2, rep = only(['dce', 'algebra'], g)
    assert ops_of(g2) == ['_np_reshape', 'relu'], ops_of(g2)
    np.testing.assert_array_equal(run(g2, X)[0], np.maximum(X.reshape(6, 4), 0))


def test_fold_batchnorm_into_conv_and_dense():
    rs = np.random.default_rng(1)
    for make, shape in [(lambda: nn.Conv2D(5, 3), (2, 3, 6, 6)), (lambda: nn.Dense(5), (2, 7))]:
        net = nn.HybridSequential()
        with net.name_scope():
            net.add(make(), nn.BatchNorm())
        net.initialize(gc.init.Xavier())
        x = nd.array(rs.normal(size=shape), dtype='float32')
        net(x)
        bn = net[1]
        for p in (bn.gamma, bn.beta, bn.running_mean):
            p.set_data(nd.array(rs.normal(size=p.shape), dtype='float32'))
        bn.running_var.set_data(nd.array(rs.uniform(0.5, 2, size=bn.running_var.shape), dtype='float32'))
        want = net(x).asnumpy()
        net.hybridize()
        got = net(x).asnumpy()
        entry = net.cached_graph()
        assert 'BatchNorm' not in ops_of(entry.optimized), entry.optimized.text()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _chain(x):
    return nd.tanh(x * 2 + 1) * nd.sigmoid(x) - nd.relu(x) / 3


def test_fusion_chain_is_one_kernel():
    x = input_var('x', (64, 64), 'float32')
    g = Graph([_chain(x)._one()])
    g2, rep = only(['dce', 'fuse'], g)
    (k,) = [n for n in g2.nodes if not n.is_var]
    assert k.op.ops() == ['_mul_scalar', '_plus_scalar', 'tanh', 'sigmoid', 'elemwise_mul', 'relu', '_div_scalar',
                          'elemwise_sub']
    a = np.random.default_rng(2).normal(size=(64, 64)).astype(np.float32)
    np.testing.assert_allclose(run(g2, a)[0], run(g, a)[0], rtol=1e-5, atol=1e-6)  # compiled: float32 ULPs
    assert 'fused0' in g2.text() and '| %3 = tanh(%2)' in g2.text()


@pytest.mark.parametrize('make,alone', [(lambda x: nd.sigmoid(x), True), (lambda x: nd.tanh(x), True),
                                        (lambda x: nd.Activation(x, act_type='softrelu'), True),
                                        (lambda x: nd.LeakyReLU(x, act_type='elu'), True),
                                        (lambda x: nd.log(x), True), (lambda x: nd.relu(x), False),
                                        (lambda x: nd.sqrt(x), False),
                                        (lambda x: nd.Activation(x, act_type='relu'), False),
                                        (lambda x: nd.LeakyReLU(x, act_type='leaky'), False)])
def test_a_lone_transcendental_op_is_a_kernel_of_its_own(make, alone):
    """fusion.ALONE: a sigmoid between two transposes (which do not fuse) is compiled (its NumPy reference is 18x
    slower); a lone relu or sqrt stays NumPy's (one ufunc, as fast)."""
    x = input_var('x', (8, 16), 'float32')
    g = Graph([nd.transpose(make(nd.transpose(x)))._one()])
    g2, rep = only(['dce', 'fuse'], g)
    assert len([n for n in g2.nodes if hasattr(n.op, 'subgraph')]) == int(alone)
    xa = np.abs(np.random.default_rng(4).normal(size=(8, 16))).astype(np.float32)   # (log of positive values)
    np.testing.assert_allclose(run(g2, xa)[0], run(g, xa)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('fn', ['softmax', 'log_softmax'])
def test_softmax_family_is_one_kernel_with_its_prologue(fn):
    x = input_var('x', (8, 10), 'float32')
    g = Graph([getattr(nd, fn)(x * 0.5 + 1)._one()])
    g2, _ = only(['dce', 'fuse'], g)
    assert len([n for n in g2.nodes if not n.is_var]) == 1


def test_at_most_one_reduction_per_kernel_and_no_cycles():
    x = input_var('x', (8, 10), 'float32')
    w = input_var('w', (10, 10), 'float32')
    a = nd.relu(x)
    b = nd.dot(a, w)           # opaque: a GEMM between two elementwise ops
    y = nd.softmax(a + b) + nd.sum(a, axis=1, keepdims=True)
    g = Graph([y._one()])
    g2, _ = only(['dce', 'fuse'], g, 'inference')
    g2.verify()
    for n in g2.nodes:
        if hasattr(n.op, 'subgraph'):
            assert sum(m.op.kind == 'reduce' for m in n.op.subgraph.nodes if not m.is_var) <= 1
    wa = np.eye(10, dtype=np.float32)
    xa = np.random.default_rng(3).normal(size=(8, 10)).astype(np.float32)
    np.testing.assert_allclose(run(g2, xa, wa)[0], run(g, xa, wa)[0], rtol=1e-5, atol=1e-6)


def test_gemm_epilogue_is_fused():
    net = nn.Dense(16, activation='relu', in_units=8)
    net.initialize()
    net.hybridize()
    net(nd.ones((2, 8)))
    (k,) = [n for n in net.cached_graph().optimized.nodes if not n.is_var]
    assert k.op.ops() == ['FullyConnected', 'Activation']


def test_memory_plan_shares_dead_buffers_and_keeps_viewed_ones_alive():
    from graphc.passes.memory import plan
    kb = {k: 1024 for k in 'abcdefv'}
    # a -> b -> c -> d (an output): c reuses a's buffer (a is read last at b's step), never b's
    p = plan([('native', ['x'], ['a']), ('native', ['a'], ['b']), ('native', ['b'], ['c']), ('native', ['c'], ['d'])],
             kb, {'d'})
    assert p.offset['c'] == p.offset['a'] != p.offset['b'] and 'd' not in p.offset
    assert p.arena_bytes == 2048 and p.naive_bytes == 3072 and p.shared() == [['a', 'c']]
    # v views a (a reshape) and is read at the end: a's buffer stays taken; a Python step's result may view its
    # input too, and is itself a fresh array
    p = plan([('native', ['x'], ['a']), ('view', ['a'], ['v']), ('native', ['a'], ['b']), ('python', ['b'], ['e']),
              ('native', ['x'], ['c']), ('native', ['c', 'v', 'e'], ['d'])], kb, {'d'})
    assert len({p.offset[k] for k in 'abc'}) == 3 and set(p.offset) == set('abc') and p.arena_bytes == 3072
    p = plan([('native', ['x'], ['a']), ('native', ['a'], ['b']), ('native', ['b'], ['c'])], kb, {'c'}, share=False)
    assert p.arena_bytes == p.naive_bytes == 2048
    assert plan([('native', [], ['a'])], {'a': 1}, set()).arena_bytes == 64  # cache-line aligned


def test_plan_memory_reports_liveness():
    x = input_var('x', (256, 256), 'float32')
    g = Graph([nd.exp(nd.tanh(nd.relu(x) * 2))._one()])
    _, rep = only(['dce', 'plan_memory'], g)
    stats = rep.rows[-1][4]
    assert stats == dict(values=4, naive_kb=4 * 256, live_peak_kb=2 * 256), stats


class ResBlock(gluon.HybridBlock):
    def __init__(self, c, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.c1, self.b1 = nn.Conv2D(c, 3, padding=1), nn.BatchNorm()
            self.c2, self.b2 = nn.Conv2D(c, 3, padding=1), nn.BatchNorm()

    def hybrid_forward(self, F, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + x)


def resnet():
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(16, 3, padding=1), nn.BatchNorm(), nn.Activation('relu'))
        for _ in range(4):
            net.add(ResBlock(16))
        net.add(nn.GlobalAvgPool2D(), nn.Dense(10))
    net.initialize(gc.init.Xavier())
    return net


def test_resnet_inference_live_peak_under_60_percent_of_naive(monkeypatch):
    """Its steps run from Python (convolutions), freeing each value after its last read: the liveness bounds it.
    (Without blocked_convs: with it the body is one op whose activations live in oneDNN's arena, not the plan.)"""
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'blocked_convs')
    gc.random.seed(0)
    net = resnet()
    net.hybridize()
    x = nd.random.normal(shape=(4, 3, 16, 16))
    y = net(x)
    stats = next(r[4] for r in net.cached_graph().report.rows if r[0] == 'plan_memory')
    assert stats['live_peak_kb'] <= 0.6 * stats['naive_kb'], stats
    net.hybridize(False)
    np.testing.assert_allclose(net(x).asnumpy(), y.asnumpy(), rtol=1e-4, atol=1e-5)


def _lenet():
    import lenet_mnist
    gc.random.seed(3)
    net = lenet_mnist.lenet()
    net.initialize(gc.init.Xavier())
    return net


def _mlp():
    gc.random.seed(4)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(64, activation='relu'), nn.Dropout(0.5), nn.Dense(32, activation='tanh'), nn.Dense(10))
    net.initialize()
    return net


def _mxnet(model):
    def make():
        d = os.path.join(HERE, 'data', 'mxnet_models', model)
        return gluon.SymbolBlock.imports(os.path.join(d, f'{model}-symbol.json'), ['data'],
                                         os.path.join(d, f'{model}-0000.params'))
    return make


def _chain_block():
    return gluon.nn.HybridLambda(lambda F, x: F.softmax(F.tanh(x * 2 + 1) * F.sigmoid(x) - F.relu(x) / 3))


MODELS = {'lenet': (_lenet, (5, 1, 28, 28)), 'mlp': (_mlp, (5, 20)), 'resnet': (resnet, (2, 3, 8, 8)),
          'mxnet_mlp': (_mxnet('mlp'), (3, 784)), 'mxnet_lenet_bn': (_mxnet('lenet_bn'), (3, 1, 28, 28)),
          'chain': (_chain_block, (6, 7))}
SETTINGS = ['all-on', 'all-off'] + [f"no-{p}" for p in PIPELINES['inference']]


@pytest.mark.parametrize('setting', SETTINGS)
@pytest.mark.parametrize('model', sorted(MODELS))
def test_passes_preserve_outputs(model, setting, monkeypatch):
    make, shape = MODELS[model]
    net = make()
    x = nd.array(np.random.default_rng(7).normal(size=shape), dtype='float32')
    if isinstance(net, gluon.SymbolBlock):
        net.hybridize(False)
    want = net(x).asnumpy()
    off = '' if setting == 'all-on' else 'all' if setting == 'all-off' else setting[3:]
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', off)
    monkeypatch.setenv('GRAPHC_VERIFY_IR', '1')
    net.hybridize()
    got = net(x).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_kernel_counts_lenet_inference_and_mlp_training():
    net = _lenet()
    text = gc.explain(net, nd.ones((8, 1, 28, 28)), print_graph=False)
    # conv+relu+pool x2 (pass conv_pool: the second chain linked to the first, one op), conv+relu and dense+relu fused
    assert '-- kernels: 5 (2 fused, from 12 ops)' in text and 'chains=2' in text and 'linked=1' in text, text
    m = re.search(r"-- codegen: (\d+) of 2 fused groups compiled; \d+ kernels built now \(\d+ from the disk cache\), "
                  r"IR [\d.]+ ms, LLVM [\d.]+ ms", text)
    assert m and int(m[1]) == 2, text  # every epilogue compiles
    assert re.search(r"native: \d+ segment", text), text
    mlp = nn.HybridSequential()
    with mlp.name_scope():
        mlp.add(nn.Dense(256, activation='relu'), nn.Dense(256, activation='relu'), nn.Dense(10))
    mlp.initialize()
    text = gc.explain(mlp, nd.ones((64, 784)), training=True, print_graph=False)
    # the step as compiled: GEMM epilogues carry relu forward, and its mask and db backward
    assert '-- forward: kernels: 3 (2 fused, from 5 ops)' in text and '-- backward: kernels: 8 (2 fused, from 12 ops)' \
        in text, text
    assert 'live_peak_kb' in text and '-- forward: memory plan: arena' in text and '-- backward: memory plan' in text


def test_disable_unknown_pass_and_dump_ir(tmp_path, monkeypatch):
    x = input_var('x', (4, 6), 'float32')
    g = Graph([nd.relu(x * 1.0)._one()])
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'fusee')
    with pytest.raises(gc.GraphcError, match="unknown passes \\['fusee'\\]"):
        run_pipeline(g)
    monkeypatch.setenv('GRAPHC_DISABLE_PASSES', 'fuse')
    monkeypatch.setenv('GRAPHC_DUMP_IR', str(tmp_path))
    g2, rep = run_pipeline(g, tag='t')
    files = sorted(os.listdir(tmp_path))
    assert 't.01.cse.before.txt' in files and 't.03.algebra.after.txt' in files
    assert 'fuse' not in ' '.join(files)
    assert 'fuse' in rep.table() and 'disabled' in rep.table()


def test_parameter_only_subgraphs_are_hoisted_and_refreshed_after_writes():
    gc.random.seed(2)
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3), nn.BatchNorm(), nn.Dense(3))
    net.initialize(gc.init.Xavier())
    x = nd.random.normal(shape=(2, 3, 6, 6))
    net(x)
    net.hybridize()
    y1 = net(x).asnumpy()
    entry = net.cached_graph()
    prelude, hvars, main = entry._hoist
    assert ops_of(main) == ['Convolution', 'FullyConnected']  # BN folded into the conv's weights and bias,
    assert any('rsqrt' in n.op.ops() for n in prelude.nodes if hasattr(n.op, 'subgraph'))  # computed once
    key = entry._hoisted_key
    net(x)
    assert entry._hoisted_key == key  # not recomputed
    net[1].gamma.set_data(nd.ones((4,)) * 2)  # a write: the prelude runs again
    y2 = net(x).asnumpy()
    assert entry._hoisted_key != key
    net.hybridize(False)
    np.testing.assert_allclose(y2, net(x).asnumpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(y2 - y1).max() > 1e-3


def test_training_keeps_exactly_the_activations_the_backward_reads():
    net = _mlp()
    net.hybridize()
    x = nd.ones((4, 20))
    with autograd.record():
        net(x)
    entry = net.cached_graph()
    need = tuple([False] + [True] * len(entry.param_vars))
    keep = entry.op.built(need)[3]
    fwd_ops = [n for n in entry.graph.nodes if not n.is_var]
    assert 0 < len(keep) < len(fwd_ops)
    assert not any(n.op.name == 'FullyConnected' and n is entry.visible[0][0] for n in keep)


def _random_graph(seed):
    """A random DAG of elementwise, broadcast, reduction and GEMM ops over two inputs (valid by construction)."""
    rs = np.random.default_rng(seed)
    a, b = input_var('a', (6, 8), 'float32'), input_var('b', (1, 8), 'float32')
    vals = [a, b, nd.tanh(a)]
    unary = [nd.tanh, nd.sigmoid, nd.relu, lambda v: v * 0.5 + 1, nd.square, lambda v: nd.abs(v) + 0.1]
    for _ in range(int(rs.integers(6, 14))):
        kind = rs.integers(0, 5)
        x = vals[rs.integers(len(vals))]
        if kind < 2:
            vals.append(unary[rs.integers(len(unary))](x))
        elif kind == 2:
            y = vals[rs.integers(len(vals))]
            vals.append([nd.broadcast_add, nd.broadcast_mul, nd.broadcast_sub, nd.broadcast_maximum][rs.integers(4)](x, y))
        elif kind == 3 and x.shape[0] == 6:
            vals.append(nd.softmax(x) if rs.integers(2) else nd.mean(x, axis=1, keepdims=True))
        elif x.shape == (6, 8):
            vals.append(nd.dot(x, a, transpose_b=True).relu()[:, :1] * x)
    outs = [vals[-1], vals[len(vals) // 2]]
    return Graph([o._one() for o in outs])


@pytest.mark.parametrize('seed', range(12))
def test_generated_graphs_preserved_under_every_pass_setting(seed):
    g = _random_graph(seed)
    rs = np.random.default_rng(100 + seed)
    by_name = {'a': rs.normal(size=(6, 8)).astype(np.float32), 'b': rs.normal(size=(1, 8)).astype(np.float32)}
    feed = {v: by_name[v.name] for v in g.inputs}
    want = interpret(g, feed)
    for off in [set(), set(PASSES)] + [{p} for p in PIPELINES['inference']]:
        g2, _ = run_pipeline(g, 'inference', disabled=off, verify=True)
        got = interpret(g2, feed)
        for x, y in zip(got, want):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5, err_msg=f"disabled: {off or 'none'}")


def test_where_with_a_row_condition_is_not_fused_as_broadcasting():
    c, x = input_var('c', (3,), 'float32'), input_var('x', (3, 4), 'float32')
    g = Graph([nd.where(c, nd.relu(x) * 2, x * 3)._one()], [c._one()[0], x._one()[0]])
    g2, _ = run_pipeline(g, 'inference', verify=True)
    ca, xa = np.array([1, 0, 1], np.float32), np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(run(g2, ca, xa)[0], np.where(ca[:, None] != 0, np.maximum(xa, 0) * 2, xa * 3), rtol=1e-6)


def test_plan_accepts_one_element_tuples_from_single_output_ops():
    from graphc.runtime.plan import Plan
    x = input_var('x', (4, 6), 'float32')
    g = Graph([nd.relu(nd.split(x, num_outputs=1, axis=1))._one()])
    np.testing.assert_array_equal(Plan(g)({g.inputs[0]: X})[0], np.maximum(X, 0))
