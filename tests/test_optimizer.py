"""Optimizers against hand-written NumPy formulas (MXNet 1.x update rules), schedulers, Trainer."""
import math
import types
import warnings

import numpy as np
import pytest

from graphc import autograd, lr_scheduler, optimizer as opt
from graphc.base import GraphcError, GraphcLoadError
from graphc.ndarray.ndarray import NDArray

RS, CLIP, WD = 0.5, 0.6, 0.1   # rescale, clip and wd all active, so every term of each rule is exercised


def _data(dtype=np.float64, steps=5, shape=(4, 3)):
    rng = np.random.default_rng(0)
    return rng.normal(size=shape).astype(dtype), [rng.normal(size=shape).astype(dtype) for _ in range(steps)]


def _run(o, w0, grads):
    w = NDArray(w0.copy())
    st = o.create_state(0, w)
    for g in grads:
        gn = NDArray(g.copy())
        o.update(0, w, gn, st)
        np.testing.assert_array_equal(gn._data, g)  # the gradient is never modified
    return w._data


def _g(g, w=None, wd=0.0, clip=CLIP, wd_before_clip=False):
    g = RS * g + (wd * w if wd_before_clip else 0)
    return np.clip(g, -clip, clip) if clip else g


def ref_sgd(w, grads, lr, momentum, wd, clip):
    m = np.zeros_like(w)
    for g in grads:
        g = _g(g, clip=clip)
        if momentum:
            m = momentum * m - lr * (g + wd * w)
            w = w + m
        else:
            w = w - lr * (g + wd * w)
    return w


def ref_nag(w, grads, lr, momentum, wd):
    m = np.zeros_like(w)
    for g in grads:
        g = _g(g) + wd * w
        m = momentum * m + g
        w = w - lr * (g + momentum * m)
    return w


def ref_adam(w, grads, lr, b1, b2, eps, wd):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        g = _g(g, w, wd, wd_before_clip=True)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return w


def ref_rmsprop(w, grads, lr, g1, g2, eps, wd, centered, clip_weights):
    n, mu, delta = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        g = _g(g, w, wd, wd_before_clip=True)
        n = (1 - g1) * g * g + g1 * n
        if centered:
            mu = (1 - g1) * g + g1 * mu
            delta = g2 * delta - lr * g / np.sqrt(n - mu * mu + eps)
            w = w + delta
        else:
            w = w - lr * g / np.sqrt(n + eps)
        if clip_weights:
            w = np.clip(w, -clip_weights, clip_weights)
    return w


def ref_adagrad(w, grads, lr, eps, wd):
    h = np.zeros_like(w)
    for g in grads:
        g = _g(g)
        h = h + g * g
        w = w - lr * (g / np.sqrt(h + eps) + wd * w)
    return w


CASES = [
    ('sgd', dict(learning_rate=0.1, wd=WD), lambda w, gs: ref_sgd(w, gs, 0.1, 0, WD, CLIP)),
    ('sgd', dict(learning_rate=0.1, momentum=0.9, wd=WD), lambda w, gs: ref_sgd(w, gs, 0.1, 0.9, WD, CLIP)),
    ('sgd', dict(learning_rate=0.1, momentum=0.9, wd=WD, clip_gradient=None),
     lambda w, gs: ref_sgd(w, gs, 0.1, 0.9, WD, None)),
    ('nag', dict(learning_rate=0.1, momentum=0.9, wd=WD), lambda w, gs: ref_nag(w, gs, 0.1, 0.9, WD)),
    ('nag', dict(learning_rate=0.1, wd=WD), lambda w, gs: ref_nag(w, gs, 0.1, 0.0, WD)),
    ('adam', dict(learning_rate=0.01, wd=WD), lambda w, gs: ref_adam(w, gs, 0.01, 0.9, 0.999, 1e-8, WD)),
    ('adam', dict(beta1=0.8, beta2=0.99, epsilon=1e-3, wd=WD),
     lambda w, gs: ref_adam(w, gs, 0.001, 0.8, 0.99, 1e-3, WD)),
    ('rmsprop', dict(learning_rate=0.01, wd=WD),
     lambda w, gs: ref_rmsprop(w, gs, 0.01, 0.9, 0.9, 1e-8, WD, False, None)),
    ('rmsprop', dict(learning_rate=0.01, wd=WD, centered=True, gamma1=0.95, gamma2=0.8, clip_weights=0.5),
     lambda w, gs: ref_rmsprop(w, gs, 0.01, 0.95, 0.8, 1e-8, WD, True, 0.5)),
    ('adagrad', dict(learning_rate=0.1, wd=WD), lambda w, gs: ref_adagrad(w, gs, 0.1, 1e-7, WD)),
]


@pytest.mark.parametrize('name,kw,ref', CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_update_matches_numpy_formula(name, kw, ref):
    kw = dict(dict(rescale_grad=RS, clip_gradient=CLIP), **kw)
    w0, grads = _data(np.float64)
    np.testing.assert_allclose(_run(opt.create(name, **kw), w0, grads), ref(w0, grads), rtol=1e-12, atol=1e-14)
    w32, g32 = _data(np.float32)   # float32 stays float32, within float32 rounding
    got = _run(opt.create(name, **kw), w32, g32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref(w32.astype(np.float64), [g.astype(np.float64) for g in g32]),
                               rtol=2e-5, atol=2e-6)


def test_defaults_and_registry():
    assert type(opt.create('SGD')) is opt.SGD and opt.create('sgd').learning_rate == 0.01
    assert opt.create('adam').learning_rate == 0.001 and opt.create('rmsprop').learning_rate == 0.001
    a = opt.create('adam')
    assert (a.beta1, a.beta2, a.epsilon) == (0.9, 0.999, 1e-8)
    r = opt.create('rmsprop')
    assert (r.gamma1, r.epsilon, r.centered) == (0.9, 1e-8, False)
    assert opt.create('adagrad').float_stable_eps == 1e-7
    assert opt.create('sgd').create_state(0, NDArray(np.zeros(3))) is None
    with pytest.raises(GraphcError, match="unknown optimizer 'nope'.*adagrad, adam, .*nag, rmsprop, sgd"):
        opt.create('nope')


def test_no_allocation_after_first_step():
    o = opt.create('adam', rescale_grad=RS, wd=WD, clip_gradient=CLIP)
    w, g = NDArray(np.ones((5, 5), np.float32)), NDArray(np.ones((5, 5), np.float32))
    st = o.create_state(0, w)
    o.update(0, w, g, st)
    bufs = {k: id(v) for k, v in o._tmp.items()}
    w_buf = w._data
    o.update(0, w, g, st)
    assert {k: id(v) for k, v in o._tmp.items()} == bufs and w._data is w_buf


def test_update_counts_and_multipliers():
    o = opt.SGD(learning_rate=1.0, wd=0.5, param_idx2name={0: 'fc_weight', 1: 'fc_bias'})
    assert o.wd_mult == {'fc_bias': 0.0}          # MXNet: no decay on non-weight/gamma names
    assert o._get_wd(0) == 0.5 and o._get_wd(1) == 0.0
    o.set_lr_mult({'fc_weight': 0.1, 2: 3.0})
    assert o._get_lr(0) == pytest.approx(0.1) and o._get_lr(2) == 3.0 and o._get_lr(1) == 1.0
    o.param_dict = {0: types.SimpleNamespace(lr_mult=2.0, wd_mult=0.0)}   # Trainer's Parameters win
    assert o._get_lr(0) == 2.0 and o._get_wd(0) == 0.0
    w, g = NDArray(np.zeros(2)), NDArray(np.ones(2))
    for i in (0, 0, 1, 0):
        o.update(i, w, g, None)
    assert o._index_update_count == {0: 3, 1: 1} and o.num_update == 3


def test_scheduler_drives_learning_rate():
    s = lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=1.0)
    o = opt.SGD(lr_scheduler=s)
    w, g = NDArray(np.zeros(1)), NDArray(np.ones(1))
    seen = []
    for _ in range(5):
        o.update(0, w, g, None)
        seen.append(o.learning_rate)
    assert seen == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert w._data[0] == -(1 + 1 + 0.5 + 0.5 + 0.25)
    with pytest.raises(GraphcError, match='lr_scheduler'):
        o.set_learning_rate(0.1)
    with pytest.warns(UserWarning, match='overwritten'):
        o2 = opt.SGD(learning_rate=0.3, lr_scheduler=lr_scheduler.FactorScheduler(2, base_lr=1.0))
    assert o2.learning_rate == 0.3


# ---------------------------------------------------------------- schedulers
def test_factor_scheduler():
    s = lr_scheduler.FactorScheduler(step=10, factor=0.5, base_lr=1.0)
    assert [s(n) for n in (0, 1, 10, 11, 20, 21, 31)] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    assert s(5) == 1.0 and s(21) == 0.25       # stateless: order of calls does not matter
    s = lr_scheduler.FactorScheduler(step=10, factor=0.5, stop_factor_lr=0.3, base_lr=1.0)
    assert s(21) == 0.3 and s(1000) == 0.3
    with pytest.raises(ValueError):
        lr_scheduler.FactorScheduler(step=0)


def test_multifactor_poly_cosine_inv():
    s = lr_scheduler.MultiFactorScheduler(step=[5, 8], factor=0.1, base_lr=1.0)
    assert [s(n) for n in (1, 5, 6, 8, 9, 100)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    s = lr_scheduler.PolyScheduler(max_update=10, base_lr=1.0, pwr=2)
    assert [s(n) for n in (0, 5, 10, 11)] == pytest.approx([1.0, 0.25, 0.0, 0.0])
    s = lr_scheduler.PolyScheduler(max_update=10, base_lr=1.0, pwr=1, final_lr=0.2)
    assert s(5) == pytest.approx(0.6) and s(50) == 0.2
    s = lr_scheduler.CosineScheduler(max_update=10, base_lr=1.0, final_lr=0.1)
    assert [s(n) for n in (0, 5, 10, 11)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    s = lr_scheduler.InvScheduler(gamma=1e-4, power=0.75, base_lr=0.01)
    assert s(0) == 0.01 and s(10000) == pytest.approx(0.01 * 2 ** -0.75) and s(10000) == pytest.approx(0.005946035575)


def test_warmup():
    s = lr_scheduler.CosineScheduler(max_update=20, base_lr=1.0, warmup_steps=10)
    assert [s(n) for n in (0, 5, 10, 15, 20)] == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0])
    s = lr_scheduler.FactorScheduler(step=100, base_lr=1.0, warmup_steps=4, warmup_begin_lr=0.2,
                                     warmup_mode='constant')
    assert [s(n) for n in (0, 3, 4)] == [0.2, 0.2, 1.0]
    with pytest.raises(ValueError):
        lr_scheduler.CosineScheduler(max_update=10, warmup_steps=10)


# ---------------------------------------------------------------- Trainer
def _params(*shapes, grad_req='write'):
    from graphc.gluon.parameter import Parameter
    ps = []
    for i, s in enumerate(shapes):
        p = Parameter(f'p{i}_weight', shape=s, grad_req=grad_req)
        p.initialize(init='zeros')
        p.set_data(np.arange(np.prod(s), dtype=np.float32).reshape(s) / 10)
        ps.append(p)
    return ps


def _backward(params, xs):
    """loss = sum_i sum(w_i * x_i): the gradient of w_i is x_i, computed by real autograd."""
    with autograd.record():
        loss = None
        for p, x in zip(params, xs):
            t = (p.data() * NDArray(x)).sum()
            loss = t if loss is None else loss + t
    loss.backward()


def test_trainer_step_sgd_and_learning_rate():
    from graphc.gluon.trainer import Trainer
    p0, p1 = _params((2, 3), (3,))
    frozen, = _params((2,), grad_req='null')
    tr = Trainer([p0, p1, frozen], 'sgd', {'learning_rate': 0.5, 'momentum': 0.0})
    w0, w1, wf = p0.data().asnumpy(), p1.data().asnumpy(), frozen.data().asnumpy()
    x0, x1 = np.full((2, 3), 2.0, np.float32), np.array([1.0, -1.0, 4.0], np.float32)
    _backward([p0, p1], [x0, x1])
    tr.step(batch_size=4)
    np.testing.assert_allclose(p0.data().asnumpy(), w0 - 0.5 * x0 / 4, rtol=1e-6)
    np.testing.assert_allclose(p1.data().asnumpy(), w1 - 0.5 * x1 / 4, rtol=1e-6)
    np.testing.assert_array_equal(frozen.data().asnumpy(), wf)
    assert tr.learning_rate == 0.5 and tr.optimizer.rescale_grad == 0.25
    tr.set_learning_rate(0.1)
    assert tr.learning_rate == 0.1


def test_trainer_stale_gradient():
    from graphc.gluon.trainer import Trainer
    used, unused = _params((3,), (3,))
    unused.data()._grad, unused.data()._ag = None, None   # backward cannot reach it under either rule
    tr = Trainer({'used': used, 'unused': unused}, 'sgd', {'learning_rate': 1.0})
    _backward([used], [np.ones(3, np.float32)])
    before = unused.data().asnumpy()
    with pytest.raises(GraphcError, match="Parameter 'unused' has not been computed by backward"):
        tr.step(1)
    np.testing.assert_array_equal(used.data().asnumpy(), np.arange(3, dtype=np.float32) / 10)  # nothing moved
    tr.step(1, ignore_stale_grad=True)               # skips the stale one, updates the other
    np.testing.assert_array_equal(unused.data().asnumpy(), before)
    np.testing.assert_allclose(used.data().asnumpy(), np.arange(3) / 10 - 1, rtol=1e-6)


def test_trainer_save_load_states_resumes_exactly(tmp_path):
    from graphc.gluon.trainer import Trainer
    xs = [np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), np.array([0.5, -2, 3], np.float32)]
    ps = _params((2, 3), (3,))
    tr = Trainer(ps, 'adam', {'learning_rate': 0.1, 'wd': 0.01})
    for _ in range(3):
        _backward(ps, xs)
        tr.step(2)
    snapshot = [p.data().asnumpy() for p in ps]
    tr.save_states(tmp_path / 'adam.states')
    for _ in range(2):
        _backward(ps, xs)
        tr.step(2)
    want = [p.data().asnumpy() for p in ps]

    ps2 = _params((2, 3), (3,))
    for p, s in zip(ps2, snapshot):
        p.set_data(s)
    tr2 = Trainer(ps2, 'adam', {'learning_rate': 0.1, 'wd': 0.01})
    tr2.load_states(tmp_path / 'adam.states')
    assert tr2.optimizer._index_update_count == {0: 3, 1: 3} and tr2.optimizer.num_update == 3
    for _ in range(2):
        _backward(ps2, xs)
        tr2.step(2)
    for a, b in zip(want, (p.data().asnumpy() for p in ps2)):
        np.testing.assert_array_equal(a, b)

    sgd = Trainer(_params((2, 3), (3,)), 'sgd', {'momentum': 0.9})   # Adam's 2 state arrays != SGD's 1
    with pytest.raises(GraphcLoadError, match='state arrays'):
        sgd.load_states(tmp_path / 'adam.states')
    other = Trainer(_params((2, 3)), 'adam')
    with pytest.raises(GraphcLoadError, match="does not belong"):
        other.load_states(tmp_path / 'adam.states')


def test_trainer_rejects_bad_arguments():
    from graphc.gluon.trainer import Trainer
    p, = _params((2,))
    with pytest.raises(GraphcError, match='more than once'):
        Trainer([p, p], 'sgd')
    with pytest.raises(GraphcError, match='optimizer_params must be empty'):
        Trainer([p], opt.SGD(), {'learning_rate': 1.0})
    with pytest.raises(GraphcError, match='not a Parameter'):
        Trainer([np.zeros(2)], 'sgd')
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        Trainer([p], 'sgd', kvstore='device')


def test_trainer_follows_fresh_grad_flag():
    """With a `_fresh_grad` flag on the array (MXNet's rule), a step consumes it; the next step without a
    new backward is stale. Duck-typed stand-ins, so this holds whether or not NDArray has the flag yet."""
    from graphc.gluon.trainer import Trainer

    class Arr:
        def __init__(self):
            self._data, self._grad, self._ag, self._fresh_grad = np.zeros(2), NDArray(np.ones(2)), object(), True

    class P:
        name, grad_req, lr_mult, wd_mult = 'w', 'write', 1.0, 1.0

        def __init__(self):
            self.arr = Arr()

        def data(self):
            return self.arr

    p = P()
    tr = Trainer([p], 'sgd', {'learning_rate': 1.0})
    tr.step(1)
    assert p.arr._data.tolist() == [-1, -1] and p.arr._fresh_grad is False
    with pytest.raises(GraphcError, match="'w' has not been computed by backward"):
        tr.step(1)
    tr.step(1, ignore_stale_grad=True)
    assert p.arr._data.tolist() == [-1, -1]
    p.arr._fresh_grad = True                     # what autograd.backward would set
    tr.step(1)
    assert p.arr._data.tolist() == [-2, -2]
