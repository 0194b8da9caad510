"""contrib.foreach as a graph op (graphc/ops/control.py): traced once into a _foreach node with its body, run
through bind and hybridize, differentiated, and written/read as MXNet's JSON (subgraphs, *_locs), against a
NumPy loop and eager autograd."""
import json

import numpy as np
import pytest

import graphc as mx
from graphc import autograd
from graphc.base import GraphcError
from graphc.gluon import HybridBlock

R = np.random.default_rng(3)
X, H, W = R.standard_normal((4, 2, 3)), R.standard_normal((2, 3)), R.standard_normal((3,))


def numpy_loop(x, h, w):
    outs = []
    for t in range(x.shape[0]):
        h = np.tanh(x[t] * w + h)
        outs.append(h * 2)
    return np.stack(outs), h


def step(F, w):
    def body(d, s):
        nh = F.tanh(F.broadcast_mul(d, w) + s[0])
        return nh * 2, [nh]
    return body


def symbol():
    x, h, w = mx.sym.var('x'), mx.sym.var('h'), mx.sym.var('w')
    outs, st = mx.sym.contrib.foreach(step(mx.sym, w), x, [h])
    return mx.sym.Group([outs, st[0]])


def run_bound(sym):
    args = {k: mx.nd.array(v, dtype='float64') for k, v in (('x', X), ('h', H), ('w', W))}
    grads = {k: mx.nd.zeros(v.shape, dtype='float64') for k, v in args.items()}
    ex = sym.bind(None, args, args_grad=grads)
    out = [o.asnumpy() for o in ex.forward(is_train=True)]
    ex.backward([mx.nd.array(np.ones_like(o), dtype='float64') for o in out])
    return out, {k: ex.grad_dict[k].asnumpy() for k in args}


def eager_grads():
    xs = {k: mx.nd.array(v, dtype='float64') for k, v in (('x', X), ('h', H), ('w', W))}
    for v in xs.values():
        v.attach_grad()
    with autograd.record():
        o, s = mx.nd.contrib.foreach(step(mx.nd, xs['w']), xs['x'], [xs['h']])
        (o.sum() + s[0].sum()).backward()
    return {k: v.grad.asnumpy() for k, v in xs.items()}


def test_symbol_foreach_is_one_node_and_matches_numpy_and_eager_gradients():
    sym = symbol()
    g = json.loads(sym.tojson())
    assert [n['op'] for n in g['nodes'] if n['op'] != 'null'] == ['_foreach']  # not unrolled
    (out, st), grads = run_bound(sym)
    want_out, want_st = numpy_loop(X, H, W)
    np.testing.assert_allclose(out, want_out, rtol=1e-12)
    np.testing.assert_allclose(st, want_st, rtol=1e-12)
    want = eager_grads()
    for k in want:
        np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_json_round_trip_keeps_the_body_and_locs_in_mxnets_input_order():
    sym = symbol()
    d = json.loads(sym.tojson())
    node = next(n for n in d['nodes'] if n['op'] == '_foreach')
    sub = node['subgraphs'][0]
    names = [n['name'] for n in sub['nodes'] if n['op'] == 'null']  # MXNet's list_inputs order
    locs = {k: json.loads(node['attrs'][k].replace('(', '[').replace(',)', ']').replace(')', ']'))
            for k in ('in_data_locs', 'in_state_locs', 'remain_locs')}
    assert [names[i] for i in locs['remain_locs']] == ['w']
    assert node['attrs']['num_outputs'] == '2' and node['attrs']['num_out_data'] == '1'
    back = mx.sym.fromjson(sym.tojson())
    (o1, s1), g1 = run_bound(sym)
    (o2, s2), g2 = run_bound(back)
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(s1, s2)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_a_file_as_mxnet_writes_it_loads_and_runs():
    """body(d, s) = (d * w + s, [identity(d * w + s)]); the subgraph lists w before the state, as MXNet would."""
    body = {'nodes': [{'op': 'null', 'name': 'data', 'inputs': []}, {'op': 'null', 'name': 'w', 'inputs': []},
                      {'op': 'elemwise_mul', 'name': 'mul0', 'inputs': [[0, 0, 0], [1, 0, 0]]},
                      {'op': 'null', 'name': 'state', 'inputs': []},
                      {'op': 'elemwise_add', 'name': 'add0', 'inputs': [[2, 0, 0], [3, 0, 0]]},
                      {'op': '_copy', 'name': 'identity0', 'inputs': [[4, 0, 0]]}],
            'arg_nodes': [0, 1, 3], 'node_row_ptr': [0, 1, 2, 3, 4, 5, 6], 'heads': [[4, 0, 0], [5, 0, 0]]}
    top = {'nodes': [{'op': 'null', 'name': 'x', 'inputs': []}, {'op': 'null', 'name': 'h', 'inputs': []},
                     {'op': 'null', 'name': 'w', 'inputs': []},
                     {'op': '_foreach', 'name': 'foreach0', 'inputs': [[0, 0, 0], [1, 0, 0], [2, 0, 0]],
                      'attrs': {'num_outputs': '2', 'num_out_data': '1', 'in_data_locs': '[0]',
                                'in_state_locs': '[2]', 'remain_locs': '[1]'}, 'subgraphs': [body]}],
           'arg_nodes': [0, 1, 2], 'node_row_ptr': [0, 1, 2, 3, 5], 'heads': [[3, 0, 0], [3, 1, 0]],
           'attrs': {'mxnet_version': ['int', 10901]}}
    sym = mx.sym.fromjson(json.dumps(top))
    x, h, w = X[:, 0], H[0], W
    out, st = sym.eval(x=mx.nd.array(x), h=mx.nd.array(h), w=mx.nd.array(w))
    want, s = [], h
    for t in range(len(x)):
        s = x[t] * w + s
        want.append(s)
    np.testing.assert_allclose(out.asnumpy(), np.stack(want), rtol=1e-5)
    np.testing.assert_allclose(st.asnumpy(), s, rtol=1e-5)


class Loop(HybridBlock):
    def __init__(self):
        super().__init__()
        self.w = self.params.get('w', shape=(3,), init=mx.init.Uniform())

    def hybrid_forward(self, F, x, h, w):
        def body(d, s):
            nh = F.tanh(F.broadcast_mul(d, w) + s[0])
            return [nh * 2, F.sum(nh, axis=1)], [nh]
        outs, st = F.contrib.foreach(body, x, [h])
        return outs[0], outs[1], st[0]


def test_hybridized_foreach_equals_eager_and_exports_a_foreach_node(tmp_path):
    net = Loop()
    net.initialize()
    x, h = mx.nd.array(X.astype('float32')), mx.nd.array(H.astype('float32'))
    res = []
    for hyb in (False, True):
        net.hybridize(hyb)
        x.attach_grad()
        with autograd.record():
            a, b, c = net(x, h)
            ((a * a).sum() + b.sum() + c.sum()).backward()
        res.append([a.asnumpy(), b.asnumpy(), c.asnumpy(), x.grad.asnumpy(), net.w.grad().asnumpy()])
    for p, q in zip(*res):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    net.export(str(tmp_path / 'loop'))
    d = json.load(open(tmp_path / 'loop-symbol.json'))
    assert [n['op'] for n in d['nodes'] if n['op'] != 'null'] == ['_foreach']
    blk = mx.gluon.SymbolBlock.imports(str(tmp_path / 'loop-symbol.json'), ['data0', 'data1'],
                                       str(tmp_path / 'loop-0000.params'))
    np.testing.assert_allclose(blk(x, h)[0].asnumpy(), res[0][0], rtol=1e-5, atol=1e-6)


def test_unused_state_and_subgraphs_elsewhere_are_clear_errors():
    x, h = mx.sym.var('x'), mx.sym.var('h')
    with pytest.raises(GraphcError, match='does not use foreach_state0'):
        mx.sym.contrib.foreach(lambda d, s: (d * 2, [d]), x, [h])
    top = {'nodes': [{'op': 'null', 'name': 'x', 'inputs': []},
                     {'op': 'relu', 'name': 'r', 'inputs': [[0, 0, 0]], 'subgraphs': [{'nodes': []}]}],
           'arg_nodes': [0], 'heads': [[1, 0, 0]]}
    with pytest.raises(mx.base.MXNetError, match="'subgraphs' are not supported"):
        mx.sym.fromjson(json.dumps(top))


def bound(sym, arrays):
    args = {k: mx.nd.array(v, dtype='float64') for k, v in arrays.items()}
    grads = {k: mx.nd.zeros(v.shape, dtype='float64') for k, v in args.items()}
    ex = sym.bind(None, args, args_grad=grads)
    out = [o.asnumpy() for o in ex.forward(is_train=True)]
    ex.backward([mx.nd.array(np.ones_like(o), dtype='float64') for o in out])
    return out, {k: g.asnumpy() for k, g in grads.items()}


def eager(fn, arrays):
    xs = {k: mx.nd.array(v, dtype='float64') for k, v in arrays.items()}
    for v in xs.values():
        v.attach_grad()
    with autograd.record():
        outs = fn(mx.nd, xs)
        sum(o.sum() for o in outs).backward()
    return [o.asnumpy() for o in outs], {k: v.grad.asnumpy() for k, v in xs.items()}


def while_fn(F, v):
    outs, (i, s) = F.contrib.while_loop(lambda i, s: F.sum(i) <= 10, lambda i, s: ([i + s * v['w']], [i + 1, s + i * v['w']]),
                                        [v['i'], v['s']], max_iterations=8)
    return [outs[0], i, s]


def cond_fn(F, v):
    a, b = v['a'], v['b']
    return [F.contrib.cond(F.sum(a * b) < 5, lambda: (a + 5) * (b + 5), lambda: (a - 5) * F.exp(b))]


@pytest.mark.parametrize('fn, arrays', [
    (while_fn, {'i': np.array([1.0, 2.0]), 's': np.array([0.5, -1.0]), 'w': np.array([1.5, 0.5])}),
    (while_fn, {'i': np.array([4.5, 4.5]), 's': np.array([0.5, -1.0]), 'w': np.array([1.5, 0.5])}),  # one step
    (cond_fn, {'a': np.array([1.0, 0.5]), 'b': np.array([2.0, 1.0])}),
    (cond_fn, {'a': np.array([3.0, 0.5]), 'b': np.array([2.0, 1.0])})], ids=['while', 'while1', 'then', 'else'])
def test_while_loop_and_cond_are_one_node_equal_eager_and_survive_json(fn, arrays):
    syms = {k: mx.sym.var(k) for k in arrays}
    sym = mx.sym.Group(fn(mx.sym, syms))
    ops = [n['op'] for n in json.loads(sym.tojson())['nodes'] if n['op'] != 'null']
    assert ops.count('_while_loop') + ops.count('_cond') == 1 and 'elemwise_add' not in ops  # the bodies are inside
    want, want_g = eager(fn, arrays)
    for s in (sym, mx.sym.fromjson(sym.tojson())):
        out, grads = bound(s, arrays)
        for o, w in zip(out, want):
            np.testing.assert_allclose(o, w, rtol=1e-12)
        for k in arrays:
            np.testing.assert_allclose(grads[k], want_g[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_while_loop_pads_with_zeros_to_max_iterations_as_numpy():
    i = mx.sym.var('i')
    outs, last = mx.sym.contrib.while_loop(lambda i: i < 3, lambda i: (i * 10, i + 1), i, max_iterations=5)
    got = mx.sym.Group([outs, last]).eval(i=mx.nd.array([0.0]))
    np.testing.assert_array_equal(got[0].asnumpy(), [[0], [10], [20], [0], [0]])
    np.testing.assert_array_equal(got[1].asnumpy(), [3])
    got = mx.sym.Group([outs, last]).eval(i=mx.nd.array([7.0]))  # no step: zeros of the inferred shape, as MXNet's
    np.testing.assert_array_equal(got[0].asnumpy(), np.zeros((5, 1)))


class Branchy(HybridBlock):
    def hybrid_forward(self, F, x):
        y = F.contrib.cond(F.sum(x) > 0, lambda: x * 2, lambda: F.abs(x) + 1)
        outs, z = F.contrib.while_loop(lambda z: F.sum(z) < 10, lambda z: (z, z * 2 + 0.5), y, max_iterations=6)
        return outs, z


@pytest.mark.parametrize('sign', [1.0, -1.0])
def test_hybridized_cond_and_while_loop_equal_eager(sign):
    net = Branchy()
    x = mx.nd.array(sign * np.array([0.5, 0.25], 'float32'))
    res = []
    for hyb in (False, True):
        net.hybridize(hyb)
        x.attach_grad()
        with autograd.record():
            outs, z = net(x)
            (outs.sum() + (z * z).sum()).backward()
        res.append([outs.asnumpy(), z.asnumpy(), x.grad.asnumpy()])
    for p, q in zip(*res):
        np.testing.assert_allclose(p, q, rtol=1e-6)


class PlainForward(HybridBlock):
    """A plain forward(x) calling nd.contrib: traced, the loops become graph ops instead of Python loops."""

    def forward(self, x):
        outs, st = mx.nd.contrib.foreach(lambda d, s: (d + s[0], [s[0] * 2 + d]), x, [mx.nd.ones(x.shape[1:])])
        z = mx.nd.contrib.cond(st[0].sum() > 0, lambda: st[0] * 3, lambda: -st[0])
        steps, last = mx.nd.contrib.while_loop(lambda v: v.sum() < 50, lambda v: (v, v * 2), z, max_iterations=4)
        return outs, last


def test_plain_forward_control_flow_traces_to_graph_ops(tmp_path):
    net = PlainForward()
    x = mx.nd.array(np.arange(6, dtype='float32').reshape(3, 2) - 2)
    a = [o.asnumpy() for o in net(x)]
    net.hybridize()
    b = [o.asnumpy() for o in net(x)]
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, q, rtol=1e-6)
    net.export(str(tmp_path / 'pf'))
    ops = [n['op'] for n in json.load(open(tmp_path / 'pf-symbol.json'))['nodes']]
    assert {'_foreach', '_cond', '_while_loop'} <= set(ops) and 'stack' not in ops, ops
