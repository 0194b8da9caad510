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
