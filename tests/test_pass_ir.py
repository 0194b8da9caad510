"""Passes as IR text, before and expected (TVM's style), and the pipeline's rules: pipelines are lists, a pass
switched off is exactly that pass."""
import logging

import numpy as np
import pytest

import graphc as gc
from graphc import nd
from graphc.graph import Graph
from graphc.passes import PASSES, PIPELINES, manager, run_pipeline
from graphc.symbol.symbol import input_var


def ir(g):
    """The IR text without the source locations (which move when this file is edited)."""
    return '\n'.join(line.split('   # ')[0] for line in g.text().splitlines())


def check(passes, g, before, expected):
    assert ir(g) == before.strip()
    g2, _ = run_pipeline(g, passes, verify=True)
    assert ir(g2) == expected.strip()
    return g2


def x46():
    return input_var('x', (4, 6), 'float32')


def test_dce():
    x = x46()
    g = Graph([nd.relu(x)._one()])
    g.nodes.insert(1, nd.exp(x)._one()[0])
    check(['dce'], g, """
%0 = var x  f32[4,6]
%1 = exp(%0)  f32[4,6]
%2 = relu(%0)  f32[4,6]
return %2""", """
%0 = var x  f32[4,6]
%1 = relu(%0)  f32[4,6]
return %1""")


def test_cse():
    x = x46()
    check(['cse'], Graph([(nd.relu(x) + nd.relu(x))._one()]), """
%0 = var x  f32[4,6]
%1 = relu(%0)  f32[4,6]
%2 = relu(%0)  f32[4,6]
%3 = elemwise_add(%1, %2)  f32[4,6]
return %3""", """
%0 = var x  f32[4,6]
%1 = relu(%0)  f32[4,6]
%2 = elemwise_add(%1, %1)  f32[4,6]
return %2""")


def test_cse_keeps_random_ops_apart():
    x = x46()
    g = Graph([(nd.Dropout(x, p=0.5, mode='always') + nd.Dropout(x, p=0.5, mode='always'))._one()])
    assert ir(run_pipeline(g, ['cse'])[0]) == ir(g)


def test_fold_constants():
    x = x46()
    c = input_var('c', (4, 6), 'float32')
    c._one()[0].extra['value'] = np.full((4, 6), 2.0, np.float32)  # a value captured in the graph
    e = nd.exp(c * 3)
    e._one()[0].name = 'e'  # (automatic names count up in the process)
    g2 = check(['fold_constants'], Graph([(x * e)._one()]), """
%0 = var x  f32[4,6]
%1 = var c  f32[4,6]
%2 = _mul_scalar[scalar=3.0](%1)  f32[4,6]
%3 = exp(%2)  f32[4,6]
%4 = elemwise_mul(%0, %3)  f32[4,6]
return %4""", """
%0 = var x  f32[4,6]
%1 = var e_const0  f32[4,6]
%2 = elemwise_mul(%0, %1)  f32[4,6]
return %2""")
    np.testing.assert_allclose(g2.nodes[1].extra['value'], np.exp(6.0), rtol=1e-6)


def test_algebra_identities_reshape_chain_and_transpose_pair():
    x = x46()
    g = Graph([nd.relu((x * 1.0 + 0.0).reshape((24,)).reshape((6, 4)).T.T)._one()])
    check(['algebra'], g, """
%0 = var x  f32[4,6]
%1 = _mul_scalar[scalar=1.0](%0)  f32[4,6]
%2 = _plus_scalar[scalar=0.0](%1)  f32[4,6]
%3 = Reshape[shape=(24,)](%2)  f32[24]
%4 = Reshape[shape=(6, 4)](%3)  f32[6,4]
%5 = transpose(%4)  f32[4,6]
%6 = transpose(%5)  f32[6,4]
%7 = relu(%6)  f32[6,4]
return %7""", """
%0 = var x  f32[4,6]
%1 = _np_reshape[newshape=(6, 4)](%0)  f32[6,4]
%2 = relu(%1)  f32[6,4]
return %2""")


def test_fuse():
    x = x46()
    check(['fuse'], Graph([(nd.tanh(x * 2 + 1) * nd.sigmoid(x))._one()]), """
%0 = var x  f32[4,6]
%1 = _mul_scalar[scalar=2.0](%0)  f32[4,6]
%2 = _plus_scalar[scalar=1.0](%1)  f32[4,6]
%3 = tanh(%2)  f32[4,6]
%4 = sigmoid(%0)  f32[4,6]
%5 = elemwise_mul(%3, %4)  f32[4,6]
return %5""", """
%0 = var x  f32[4,6]
%1 = fused0(%0)  f32[4,6]
    | %0 = var in0  f32[4,6]
    | %1 = _mul_scalar[scalar=2.0](%0)  f32[4,6]
    | %2 = _plus_scalar[scalar=1.0](%1)  f32[4,6]
    | %3 = tanh(%2)  f32[4,6]
    | %4 = sigmoid(%0)  f32[4,6]
    | %5 = elemwise_mul(%3, %4)  f32[4,6]
    | return %5
return %1""")


def test_pipelines_are_lists_of_registered_passes():
    assert set(PIPELINES) == {'trace', 'inference', 'training'}
    assert {p for names in PIPELINES.values() for p in names} == set(PASSES)
    assert PIPELINES['inference'][0] == 'dce' and PIPELINES['inference'][-1] == 'plan_memory'
    with pytest.raises(gc.GraphcError, match="no pass 'fusee'"):
        run_pipeline(Graph([nd.relu(x46())._one()]), ['fusee'])


def test_switching_one_pass_off_runs_every_other():
    x = x46()
    g = Graph([(nd.relu(x) + nd.relu(x) * 1.0)._one()])
    _, rep = run_pipeline(g, 'inference', disabled={'dce'})
    off = [r[0] for r in rep.rows if r[5]]
    assert off == ['dce'], rep.table()


@pytest.fixture
def needs_dce():
    manager.register_pass('_needs_dce', requires=('dce',))(lambda g, stats: g)
    yield
    del PASSES['_needs_dce']


def test_a_pass_whose_requirement_is_off_runs_and_says_so(needs_dce, caplog):
    g = Graph([nd.relu(x46())._one()])
    with caplog.at_level(logging.WARNING, logger='graphc.passes'):
        _, rep = run_pipeline(g, ['dce', '_needs_dce'], disabled={'dce'})
    assert rep.rows[1][5] is None and rep.rows[1][4] == {'without': 'dce'}
    assert 'pass _needs_dce runs without dce (disabled)' in caplog.text
    with pytest.raises(gc.GraphcError, match=r"pass '_needs_dce' needs \('dce',\) before it"):
        run_pipeline(g, ['_needs_dce'])


def test_fold_batchnorm():
    """Inference BatchNorm after FullyConnected: its weights scaled and a new bias, computed in the graph from the
    parameters (the values: test_passes.test_passes_preserve_outputs)."""
    x, w, b = input_var('x', (2, 4), 'float32'), input_var('w', (3, 4), 'float32'), input_var('b', (3,), 'float32')
    stats = [input_var(n, (3,), 'float32') for n in ('gamma', 'beta', 'mean', 'var')]
    g = Graph([nd.BatchNorm(nd.FullyConnected(x, w, b, num_hidden=3), *stats, eps=1e-3, fix_gamma=False)._one()])
    check(['fold_batchnorm'], g, """
%0 = var x  f32[2,4]
%1 = var w  f32[3,4]
%2 = var b  f32[3]
%3 = FullyConnected[num_hidden=3](%0, %1, %2)  f32[2,3]
%4 = var gamma  f32[3]
%5 = var beta  f32[3]
%6 = var mean  f32[3]
%7 = var var  f32[3]
%8 = BatchNorm[fix_gamma=False](%3, %4, %5, %6, %7)  f32[2,3], f32[3], f32[3]
return %8""", """
%0 = var x  f32[2,4]
%1 = var w  f32[3,4]
%2 = var gamma  f32[3]
%3 = var var  f32[3]
%4 = _plus_scalar[scalar=0.001](%3)  f32[3]
%5 = rsqrt(%4)  f32[3]
%6 = elemwise_mul(%2, %5)  f32[3]
%7 = _np_reshape[newshape=(3, 1)](%6)  f32[3,1]
%8 = broadcast_mul(%1, %7)  f32[3,4]
%9 = var b  f32[3]
%10 = var mean  f32[3]
%11 = elemwise_sub(%9, %10)  f32[3]
%12 = elemwise_mul(%11, %6)  f32[3]
%13 = var beta  f32[3]
%14 = elemwise_add(%12, %13)  f32[3]
%15 = FullyConnected[num_hidden=3](%0, %8, %14)  f32[2,3]
return %15""")
