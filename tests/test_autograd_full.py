"""autograd beyond backward(): mark_variables, higher-order grad, custom Functions, get_symbol, the state
switches, retain_graph, and the graph cut at detach() (truncated BPTT)."""
import numpy as np
import pytest

from graphc import autograd, nd
from graphc.base import GraphcError


def test_mark_variables_write_and_add():
    x = nd.array([1.0, 2.0, 3.0])
    dx = nd.zeros((3,))
    autograd.mark_variables([x], [dx], grad_reqs='add')
    for _ in range(2):
        with autograd.record():
            y = (x * x).sum()
        y.backward()
    np.testing.assert_allclose(dx.asnumpy(), 2 * 2 * np.array([1, 2, 3]))
    assert x.grad is dx
    with pytest.raises(GraphcError, match='mark_variables'):
        autograd.mark_variables([x], [nd.zeros((2,))])


def test_head_grads_with_none():
    x = nd.ones((3, 5))
    dx = nd.zeros_like(x)
    autograd.mark_variables([x], [dx])
    with autograd.record():
        a, b, c = nd.split(x, axis=0, num_outputs=3, squeeze_axis=True)
        autograd.backward([a, b, c], [None, nd.array([1, 2, 3, 4, 5]), nd.array([5, 4, 3, 2, 1])])
    np.testing.assert_allclose(dx.asnumpy(), [[1] * 5, [1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])


def test_higher_order_gradients():
    v = np.array([0.3, -1.2, 2.0])
    x = nd.array(v, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = x * x * x + nd.sin(x)
    dx = autograd.grad(y, [x], create_graph=True)[0]
    np.testing.assert_allclose(dx.asnumpy(), 3 * v ** 2 + np.cos(v), rtol=1e-12)
    dx.backward()  # d/dx of (3x^2 + cos x)
    np.testing.assert_allclose(x.grad.asnumpy(), 6 * v - np.sin(v), rtol=1e-12)
    # third order, through grad twice
    x2 = nd.array(v, dtype='float64')
    x2.attach_grad()
    with autograd.record():
        z = nd.exp(x2) * x2
        g1 = autograd.grad(z, [x2], create_graph=True)[0]      # e^x (1 + x)
        g2 = autograd.grad(g1, [x2], create_graph=True)[0]     # e^x (2 + x)
    g3 = autograd.grad(g2, [x2])[0]                             # e^x (3 + x)
    np.testing.assert_allclose(g1.asnumpy(), np.exp(v) * (1 + v), rtol=1e-12)
    np.testing.assert_allclose(g2.asnumpy(), np.exp(v) * (2 + v), rtol=1e-12)
    np.testing.assert_allclose(g3.asnumpy(), np.exp(v) * (3 + v), rtol=1e-12)


def test_gradient_penalty_with_create_graph():
    """d/dw of ||d(w.x)/dx||^2 = 2w: a gradient used inside a loss (WGAN-GP style)."""
    w = nd.array([0.5, -2.0], dtype='float64')
    x = nd.array([1.0, 3.0], dtype='float64')
    w.attach_grad()
    x.attach_grad()
    with autograd.record():
        y = (w * x).sum()
        gx = autograd.grad(y, [x], create_graph=True)[0]
        penalty = (gx * gx).sum()
    penalty.backward()
    np.testing.assert_allclose(w.grad.asnumpy(), 2 * w.asnumpy(), rtol=1e-12)


def test_custom_function():
    class Sigmoid(autograd.Function):
        def forward(self, x):
            y = 1 / (1 + nd.exp(-x))
            self.save_for_backward(y)
            return y

        def backward(self, dy):
            y, = self.saved_tensors
            return dy * y * (1 - y)

    v = np.array([-1.0, 0.0, 2.0])
    x = nd.array(v, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = Sigmoid()(x) * 3
    y.backward()
    s = 1 / (1 + np.exp(-v))
    np.testing.assert_allclose(y.asnumpy(), 3 * s, rtol=1e-12)
    np.testing.assert_allclose(x.grad.asnumpy(), 3 * s * (1 - s), rtol=1e-12)

    class Pair(autograd.Function):  # two inputs, two outputs
        def forward(self, a, b):
            self.save_for_backward(a, b)
            return a * b, a + b

        def backward(self, dm, dn):
            a, b = self.saved_tensors
            return dm * b + dn, dm * a + dn

    a, b = nd.array([2.0]), nd.array([5.0])
    a.attach_grad()
    b.attach_grad()
    with autograd.record():
        m, n = Pair()(a, b)
        autograd.backward([m, n])
    assert a.grad.asscalar() == 6.0 and b.grad.asscalar() == 3.0
    # not recording (or no variables): just the forward
    assert Pair()(nd.array([1.0]), nd.array([2.0]))[0].asscalar() == 2.0


def test_get_symbol():
    x, z = nd.ones((1,)), nd.ones((1,))
    x.attach_grad()
    z.attach_grad()
    with autograd.record():
        y = x * x + 2 * z - 1
    s = autograd.get_symbol(y)
    assert len(s.list_arguments()) == 2
    out = s.eval(var0=nd.array([3.0]), var1=nd.array([4.0]))
    assert out[0].asscalar() == 3 * 3 + 2 * 4 - 1


def test_state_switches():
    assert autograd.set_recording(True) is False
    assert autograd.is_recording()
    assert autograd.set_training(True) is False
    assert autograd.is_training()
    assert autograd.set_recording(False) is True
    assert autograd.set_training(False) is True
    assert not autograd.is_recording() and not autograd.is_training()


def test_retain_graph():
    x = nd.ones((2,))
    dx = nd.zeros((2,))
    autograd.mark_variables([x], [dx], grad_reqs='add')
    with autograd.record():
        y = x + 1
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(dx.asnumpy(), [2, 2])
    with pytest.raises(GraphcError, match='retain_graph'):
        y.backward()


def test_detach_cuts_the_graph_truncated_bptt():
    """h <- tanh(w h + x_t), with h.detach() every k steps: the gradient of the last segment's loss sees only
    that segment (checked against the same recurrence differentiated by hand over that segment)."""
    rng = np.random.RandomState(0)
    xs = rng.randn(6).astype('float64')
    wv, k = 0.7, 3
    w = nd.array([wv], dtype='float64')
    w.attach_grad()
    h = nd.zeros((1,), dtype='float64')
    for start in range(0, len(xs), k):
        h = h.detach()
        h0 = h.asnumpy()[0]
        with autograd.record():
            for t in range(start, start + k):
                h = nd.tanh(w * h + float(xs[t]))
            loss = h.sum()
        loss.backward()
        # oracle: forward-mode dh/dw over this segment only, from the detached h0
        hv, dh = h0, 0.0
        for t in range(start, start + k):
            pre = wv * hv + xs[t]
            nh = np.tanh(pre)
            dh = (1 - nh ** 2) * (hv + wv * dh)
            hv = nh
        np.testing.assert_allclose(h.asnumpy()[0], hv, rtol=1e-12)
        np.testing.assert_allclose(w.grad.asnumpy()[0], dh, rtol=1e-10)


def test_detached_value_gets_no_gradient():
    x = nd.ones((2, 2))
    y = nd.ones((2, 2))
    x.attach_grad()
    y.attach_grad()
    with autograd.record():
        z = (x + 2).detach() + y
    z.backward()
    assert (x.grad.asnumpy() == 0).all() and (y.grad.asnumpy() == 1).all()
    assert x._fresh_grad is False and y._fresh_grad is True


def test_create_graph_through_hybridized_block_is_refused():
    from graphc.gluon import nn
    net = nn.Dense(2, in_units=3)
    net.initialize()
    net.hybridize()
    x = nd.ones((1, 3))
    x.attach_grad()
    with autograd.record():
        y = net(x).sum()
    with pytest.raises(GraphcError, match='hybridize'):
        autograd.grad(y, [x], create_graph=True)


def test_get_symbol_inlines_hybridized_blocks():
    from graphc.gluon import nn
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(4, in_units=3, activation='tanh'), nn.Dense(2, in_units=4))
    net.initialize()
    net.hybridize()
    x = nd.array(np.random.rand(2, 3).astype('float32'))
    x.attach_grad()
    with autograd.record():
        y = net(x) * 2 + 1
    s = autograd.get_symbol(y)
    assert len(s.list_arguments()) == 5  # x and the two layers' weights and biases
    vals = dict(zip(s.list_arguments(), [x] + [p.data() for p in net.collect_params().values()]))
    np.testing.assert_allclose(s.eval(**vals)[0].asnumpy(), y.asnumpy(), rtol=1e-6)


def _dense3(**flags):
    from graphc.gluon import nn
    net = nn.HybridSequential()
    with net.name_scope():
        for _ in range(3):
            net.add(nn.Dense(3, in_units=3))
    net.initialize()
    net.hybridize(**flags)
    return net


@pytest.mark.parametrize('flags, inlined', [({'inline_limit': 3}, True), ({'inline_limit': 0}, False), ({}, False),
                                            ({'inline_limit': 3, 'static_alloc': True}, False)])
def test_get_symbol_shows_a_hybridized_call_as_one_cached_op_past_inline_limit(flags, inlined):
    """MXNet's rule: a recorded call shows the block's ops when they are at most inline_limit (default 2) and
    static_alloc is off; else one _CachedOp node, whose body is the block's graph. Either way it computes y."""
    import json
    from graphc import sym
    net = _dense3(**flags)
    x = nd.array(np.random.rand(2, 3).astype('float32'))
    with autograd.record():
        y = net(x)
    s = autograd.get_symbol(y)
    ops = [n['op'] for n in json.loads(s.tojson())['nodes'] if n['op'] != 'null']
    assert ops == (['FullyConnected'] * 3 if inlined else ['_CachedOp'])
    args = dict(zip([a for a in s.list_arguments() if a.startswith('var')],  # the parameters, in call order
                    [p.data() for p in net.collect_params().values()]))
    np.testing.assert_allclose(s.eval(**args)[0].asnumpy(), y.asnumpy(), rtol=1e-6)
    back = sym.load_json(s.tojson())  # the _CachedOp's body travels as MXNet's `subgraphs`; x, a constant of
    args.update({a: x for a in back.list_arguments() if a.startswith('_const')})  # the recording, by name
    np.testing.assert_allclose(back.eval(**args)[0].asnumpy(), y.asnumpy(), rtol=1e-6)


def test_a_cached_op_node_differentiates_through_its_body():
    net = _dense3(inline_limit=0)
    x = nd.array(np.random.rand(2, 3).astype('float32'))
    x.attach_grad()
    with autograd.record():
        y = net(x)
    s = autograd.get_symbol(y)
    names = [a for a in s.list_arguments() if a.startswith('var')]  # x, then the parameters
    vals = [x] + [p.data() for p in net.collect_params().values()]
    with autograd.record():
        (net(x) * nd.array([[1.0, 2.0, 3.0]])).sum().backward()
    want = x.grad.asnumpy()
    ex = s.bind(None, args={k: v for k, v in zip(names, vals)},
                args_grad={names[0]: nd.zeros((2, 3))})
    ex.forward(is_train=True)
    ex.backward(nd.array(np.tile([[1.0, 2.0, 3.0]], (2, 1)).astype('float32')))
    np.testing.assert_allclose(ex.grad_dict[names[0]].asnumpy(), want, rtol=1e-5)
