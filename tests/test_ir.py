"""The graph IR: text form, verifier, inference errors that name the block and line, networkx view."""
import os
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import gluon, nd, sym
from graphc.graph import Graph, Node
from graphc.registry import get


def _small():
    x = sym.var('data', shape=(4, 3))
    w = sym.var('w', shape=(5, 3))
    y = sym.Activation(sym.FullyConnected(x, w, num_hidden=5, no_bias=True, name='fc'), act_type='relu', name='act')
    return Graph([y._one()])


def test_text_form_one_line_per_node():
    lines = _small().text().splitlines()
    assert lines[0] == '%0 = var data  f32[4,3]'
    assert lines[2].startswith('%2 = FullyConnected[no_bias=True, num_hidden=5](%0, %1)  f32[4,5]')
    assert lines[3].startswith('%3 = Activation[act_type=relu](%2)  f32[4,5]')
    assert lines[-1] == 'return %3'


def test_verifier_catches_bad_graphs():
    g = _small()
    assert g.verify()
    fc = g.nodes[2]
    fc.shapes = [(4, 6)]  # a stored shape that does not re-infer
    with pytest.raises(gc.GraphcError, match=r"node %2 \(fc\) stores \[\(4, 6\)\]"):
        g.verify()
    g = _small()
    g.nodes[3].inputs = [(g.nodes[2], 1)]  # an output index that does not exist
    with pytest.raises(gc.GraphcError, match="uses output 1 of fc, which has 1"):
        g.verify()
    g = _small()
    g.nodes[2], g.nodes[3] = g.nodes[3], g.nodes[2]  # out of topological order
    with pytest.raises(gc.GraphcError, match="not before it"):
        g.verify()


def test_networkx_view():
    import networkx as nx
    nxg = _small().to_networkx()
    assert nx.is_directed_acyclic_graph(nxg) and nxg.number_of_nodes() == 4 and nxg.number_of_edges() == 3
    assert [nxg.nodes[i]['op'] for i in nx.topological_sort(nxg)][-1] == 'Activation'


def test_partial_shapes_then_inference():
    x = sym.var('data', shape=(0, 3))  # batch unknown, as MXNet's 0
    y = sym.relu(x)
    assert y.shape == (None, 3)  # partial inference while the symbol is built: the known dims, None for the batch
    _, outs, _ = y.infer_shape(data=(7, 3))
    assert outs == [(7, 3)]


class Bad(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return x + F.ones_like(x).reshape((-1,))[:2]  # (2, 3) + (2,): cannot broadcast


def test_shape_error_while_tracing_names_block_line_and_shapes():
    b = Bad(prefix='bad_')
    b.hybridize()
    with pytest.raises(gc.GraphcShapeError) as e:
        b(nd.ones((2, 3)))
    msg = str(e.value)
    assert 'bad' in msg and 'test_ir.py:' in msg and '(2, 3)' in msg and '(2,)' in msg, msg


def test_node_attrs_parse_from_mxnet_strings():
    op = get('Pooling')
    n = Node(op, 'pool0', op.canon({'kernel': '(2, 2)', 'stride': '(2, 2)', 'pool_type': 'max'}))
    assert n.attrs['kernel'] == (2, 2) and n.num_outputs == 1
    assert np.dtype('float32') == sym.var('v').dtype


def test_interpreter_keeps_0d_values_arrays_as_eager_does():
    """NumPy gives a scalar for 0-d x0 - x1, and 2.0 ** scalar differs from 2.0 ** 0-d array in the last
    bit: the interpreter (the spec) keeps 0-d arrays, as eager does, so the two agree exactly (fuzz seed 193)."""
    from graphc.interpreter import interpret
    from graphc.symbol.symbol import input_var
    a, b = np.array(0.82177013, np.float32), np.array(0.0, np.float32)
    x0, x1 = input_var('x0', (), 'float32'), input_var('x1', (), 'float32')
    g = Graph([nd._rpower_scalar(x0 - x1, scalar=2.0)._one()])
    got = interpret(g, {x0._one()[0]: a, x1._one()[0]: b})[0]
    want = nd._rpower_scalar(nd.array(a) - nd.array(b), scalar=2.0).asnumpy()
    assert type(got) is np.ndarray and got.shape == () and got.tobytes() == want.tobytes()


def test_nodes_key_dicts_by_identity():
    a, b = Node(None, 'x'), Node(None, 'x')  # alike, yet two values
    assert a != b and len({a: 1, b: 2}) == 2 and {(a, 0): 1}[(a, 0)] == 1


def _chain3():
    from graphc.symbol.symbol import input_var
    x = input_var('x', (4, 6), 'float32')
    return Graph([nd.exp(nd.relu(x) * 2.0)._one()])


def test_rewrite_api_keeps_users_current():
    from graphc.graph import new_node
    g = _chain3()
    x, relu, mul, exp = g.nodes
    users = g.users()
    assert users[(relu, 0)] == [mul] and users[(exp, 0)] == [None]
    c = {}
    h = g.copy(c)   # fresh op nodes: editing h leaves g as it was
    tanh = new_node('tanh', [(c[relu], 0)], like=c[relu])
    h.insert(tanh, before=c[mul])
    h.replace_all_uses((c[relu], 0), (tanh, 0))
    assert h.users()[(tanh, 0)] == [c[mul], ] and h.users()[(c[relu], 0)] == [tanh]
    with pytest.raises(gc.GraphcError, match='is still read'):
        h.erase([c[mul]])
    h.replace_all_uses((c[exp], 0), (c[mul], 0))   # the output too
    h.erase([c[exp]])
    assert [n.op.name for n in h.nodes[1:]] == ['relu', 'tanh', '_mul_scalar'] and h.outputs == [(c[mul], 0)]
    h.verify()
    assert [n.op.name for n in g.nodes[1:]] == ['relu', '_mul_scalar', 'exp'] and mul.inputs == [(relu, 0)]


def test_graph_helpers_return_nodes():
    from graphc.graph import is_random
    from graphc.symbol.infer import infer_shapes
    x, g_, b_, m, v = (sym.var(k) for k in ('data', 'gamma', 'beta', 'mean', 'var'))
    y = sym.Dropout(sym.BatchNorm(x, g_, b_, m, v, name='bn'), p=0.5, mode='always')
    g = Graph([y._one()])
    assert g.aux_vars() == {m._one()[0], v._one()[0]}
    assert [n.op.name for n in g.nodes if not n.is_var and is_random(n)] == ['Dropout']
    shapes = infer_shapes(g, {x._one()[0]: (2, 3)})   # keyed by node and entry, not by id()
    assert shapes[(m._one()[0], 0)] == (3,) and shapes[g.outputs[0]] == (2, 3)


@pytest.mark.parametrize('runner', ['interpreter', 'plan'])
def test_kernel_errors_name_the_ir_line_and_keep_their_type(runner, monkeypatch):
    from graphc.interpreter import interpret
    from graphc.runtime.plan import Plan
    from graphc.symbol.symbol import input_var
    x = input_var('x', (4, 6), 'float32')
    g = Graph([nd.sort(nd.relu(x))._one()])   # sort: a NumPy step in a plan

    def bad(attrs, a):
        raise FloatingPointError('overflow in the kernel')
    monkeypatch.setattr(get('sort'), 'ref', bad)
    run = (lambda: interpret(g, {g.inputs[0]: np.ones((4, 6), np.float32)})) if runner == 'interpreter' else \
        (lambda: Plan(g)({g.inputs[0]: np.ones((4, 6), np.float32)}))
    with pytest.raises(FloatingPointError) as e:
        run()
    assert isinstance(e.value, gc.base.MXNetError) and e.value.node is g.nodes[2]
    msg = str(e.value)
    assert 'sort: overflow in the kernel (input shapes (4, 6))' in msg and 'test_ir.py:' in msg
    assert 'nd.sort(nd.relu(x))' in msg   # the user's source line
    line = msg.splitlines()[-1]
    assert line.startswith('  while executing %') and ' = sort(%' in line and 'f32[4,6]   # test_ir.py:' in line, msg


GRADIENT_WHERE = """
import os, sys
from graphc import nd
from graphc.graph import Graph
from graphc.passes.autodiff import gradient
from graphc.symbol.symbol import input_var
x = input_var('x', (3,), 'float32')
y = nd.tanh(x * 2.0)
g = Graph([y._one()])
_, (grad,) = gradient(g, [g.inputs[0]])  # the line gradient nodes are labelled with
print(os.path.basename(grad[0].where[0]), grad[0].where[1])
"""


def test_gradient_nodes_name_the_users_line_in_a_source_checkout_or_editable_install(tmp_path):
    import graphc.passes
    from graphc.base import internal_dirs
    assert any(graphc.passes.__file__.startswith(d) for d in internal_dirs())
    script = tmp_path / 'user_model.py'
    script.write_text(GRADIENT_WHERE)
    out = __import__('subprocess').run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ['user_model.py', '10'], out.stderr


def test_gradient_nodes_name_the_users_line_in_a_wheel_layout(tmp_path):
    """site-packages/graphc/{passes,runtime}, as a wheel installs them (the package-dir mapping of pyproject)."""
    import shutil
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(gc.__file__)))
    site = tmp_path / 'site'
    ignore = shutil.ignore_patterns('__pycache__', '*.so')
    shutil.copytree(os.path.join(root, 'graphc'), site / 'graphc', ignore=ignore)
    for sub in ('passes', 'runtime'):
        shutil.copytree(os.path.join(root, sub), site / 'graphc' / sub, ignore=ignore)
    script = tmp_path / 'user_model.py'
    script.write_text(GRADIENT_WHERE + "import graphc.passes; assert graphc.passes.__file__.startswith(%r)\n"
                      % str(site))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(site)), cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.split() == ['user_model.py', '10'], out.stderr
