"""MXNet 1.9's optimizers against NumPy transcriptions of their published update rules; multi-precision,
the registry, Updater and MXNet's error classes."""
import math

import numpy as np
import pytest

import graphc
from graphc import optimizer as opt
from graphc.ndarray.ndarray import NDArray

RS, CLIP, WD, LR = 0.7, 0.5, 0.05, 0.1
STEPS = 4


def _data(dtype=np.float64, shape=(3, 4)):
    rng = np.random.default_rng(1)
    return rng.uniform(-1, 1, shape).astype(dtype), [rng.uniform(-1, 1, shape).astype(dtype) for _ in range(STEPS)]


def _run(o, w0, grads, mp=False):
    w = NDArray(w0.copy())
    st = o.create_state_multi_precision(0, w) if mp else o.create_state(0, w)
    for g in grads:
        gn = NDArray(g.copy())
        (o.update_multi_precision if mp else o.update)(0, w, gn, st)
        np.testing.assert_array_equal(gn._data, g)  # never modified
    return w._data, st


def clip(g, c=CLIP):
    return np.clip(g, -c, c)


def ref_signum(w, gs, momentum, wd_lh):
    m = np.zeros_like(w)
    for g in gs:
        if momentum:
            m = momentum * m - (1 - momentum) * (WD * w + clip(RS * g))
            w = (1 - LR * wd_lh) * w + LR * np.sign(m)
        else:
            w = (1 - LR * (WD + wd_lh)) * w - LR * np.sign(g)
    return w


def ref_ftml(w, gs, b1=0.6, b2=0.999, eps=1e-8):
    d, v, z = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        g = clip(RS * g + WD * w)
        v = b2 * v + (1 - b2) * g * g
        d_t = (1 - b1 ** t) / LR * (np.sqrt(v / (1 - b2 ** t)) + eps)
        z = b1 * z + (1 - b1) * g - (d_t - b1 * d) * w
        w, d = -z / d_t, d_t
    return w


def ref_lamb(w, gs, b1=0.9, b2=0.999, eps=1e-6, lb=None, ub=None, bc=True):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        g = clip(RS * g)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bc else (m, v)
        u = mh / (np.sqrt(vh) + eps) + WD * w
        r1 = np.linalg.norm(w)
        r1 = max(r1, lb) if lb else r1
        r1 = min(r1, ub) if ub else r1
        r2 = np.linalg.norm(u)
        w = w - LR * (r1 / r2 if r1 and r2 else 1.0) * u
    return w


def ref_lars(w, gs, momentum, eta=0.001, eps=0.0):
    m = np.zeros_like(w)
    for g in gs:
        wn, gn = np.linalg.norm(w), np.linalg.norm(RS * g)
        lr = LR * eta * wn / (gn + WD * wn + eps)
        m = momentum * m - lr * WD * w - lr * clip(RS * g)
        w = w + m
    return w


def ref_dcasgd(w, gs, momentum, lamda=0.04):
    m, prev = np.zeros_like(w), w.copy()
    for g in gs:
        g = clip(RS * g)
        step = -LR * (g + WD * w + lamda * g * g * (w - prev))
        m = momentum * m + step if momentum else step
        prev, w = w, w + m
    return w


def ref_adamax(w, gs, b1=0.9, b2=0.999):
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        g = clip(RS * g + WD * w)
        m, u = b1 * m + (1 - b1) * g, np.maximum(b2 * u, np.abs(g))
        w = w - LR / (1 - b1 ** t) * m / u
    return w


def ref_nadam(w, gs, b1=0.9, b2=0.999, eps=1e-8, sd=0.004):
    m, v, msched = np.zeros_like(w), np.zeros_like(w), 1.0
    for t, g in enumerate(gs, 1):
        g = clip(RS * g + WD * w)
        mu, mu1 = b1 * (1 - 0.5 * 0.96 ** (t * sd)), b1 * (1 - 0.5 * 0.96 ** ((t + 1) * sd))
        msched *= mu
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        mbar = (1 - mu) * g / (1 - msched) + mu1 * m / (1 - msched * mu1)
        w = w - LR * mbar / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return w


def ref_adadelta(w, gs, rho=0.9, eps=1e-5):
    ag, ad = np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        g = clip(RS * g)
        ag = rho * ag + (1 - rho) * g * g
        d = np.sqrt(ad + eps) / np.sqrt(ag + eps) * g
        ad = rho * ad + (1 - rho) * d * d
        w = w - (d + WD * w)
    return w


def ref_ftrl(w, gs, lamda1=0.01, beta=1.0):
    z, n = np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        g = clip(RS * g)
        z = z + g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / LR
        n = n + g * g
        w = (np.sign(z) * lamda1 - z) / ((beta + np.sqrt(n)) / LR + WD) * (np.abs(z) > lamda1)
    return w


def ref_adamw(w, gs, b1=0.9, b2=0.999, eps=1e-6):
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        g = clip(RS * g)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        w = w - LR * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps) - LR * WD * w
    return w


def ref_nag(w, gs, momentum):
    m = np.zeros_like(w)
    for g in gs:
        g = clip(RS * g) + WD * w
        m = momentum * m - LR * g
        w = w + momentum * m - LR * g
    return w, m


CASES = [
    ('signum', {}, lambda w, gs: ref_signum(w, gs, 0.9, 0.0)),
    ('signum', dict(momentum=0.0, wd_lh=0.02), lambda w, gs: ref_signum(w, gs, 0.0, 0.02)),
    ('signum', dict(wd_lh=0.02), lambda w, gs: ref_signum(w, gs, 0.9, 0.02)),
    ('ftml', {}, ref_ftml),
    ('ftml', dict(beta1=0.7, beta2=0.9), lambda w, gs: ref_ftml(w, gs, 0.7, 0.9)),
    ('lamb', {}, ref_lamb),
    ('lamb', dict(bias_correction=False, lower_bound=1e-3, upper_bound=0.5),
     lambda w, gs: ref_lamb(w, gs, lb=1e-3, ub=0.5, bc=False)),
    ('lars', dict(momentum=0.9), lambda w, gs: ref_lars(w, gs, 0.9)),
    ('dcasgd', {}, lambda w, gs: ref_dcasgd(w, gs, 0.0)),
    ('dcasgd', dict(momentum=0.9), lambda w, gs: ref_dcasgd(w, gs, 0.9)),
    ('adamax', {}, ref_adamax),
    ('nadam', {}, ref_nadam),
    ('adadelta', {}, ref_adadelta),
    ('ftrl', {}, ref_ftrl),
    ('ftrl', dict(lamda1=0.3, beta=0.5), lambda w, gs: ref_ftrl(w, gs, 0.3, 0.5)),
    ('adamw', {}, ref_adamw),
]


@pytest.mark.parametrize('name,kw,ref', CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_update_matches_published_formula(name, kw, ref):
    kw = dict(dict(learning_rate=LR, rescale_grad=RS, clip_gradient=CLIP, wd=WD), **kw)
    w0, gs = _data()
    got, _ = _run(opt.create(name, **kw), w0, gs)
    rtol = 1e-6 if name == 'lars' else 1e-10  # LARS takes its norms in float32, as MXNet
    np.testing.assert_allclose(got, ref(w0, gs), rtol=rtol, atol=1e-12)
    w32, g32 = _data(np.float32)
    got32, _ = _run(opt.create(name, **kw), w32, g32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, ref(w32.astype(np.float64), [g.astype(np.float64) for g in g32]),
                               rtol=2e-4, atol=2e-5)


def test_nag_state_is_mxnet_19s():
    w0, gs = _data()
    got, mom = _run(opt.NAG(learning_rate=LR, momentum=0.9, rescale_grad=RS, clip_gradient=CLIP, wd=WD), w0, gs)
    want_w, want_m = ref_nag(w0, gs, 0.9)
    np.testing.assert_allclose(got, want_w, rtol=1e-12)
    np.testing.assert_allclose(mom._data, want_m, rtol=1e-12)


def test_lars_leaves_bias_rate_alone():
    w0, gs = _data()
    o = opt.LARS(learning_rate=LR, rescale_grad=RS, clip_gradient=CLIP, wd=WD, param_idx2name={0: 'fc_bias'})
    got, _ = _run(o, w0, gs)
    want = w0.copy()
    for g in gs:  # plain SGD, and wd_mult 0 for a bias name
        want = want - LR * clip(RS * g)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sgld_noise_follows_graphc_seed():
    w0, gs = _data(shape=(50, 40))
    graphc.random.seed(7)
    a, _ = _run(opt.SGLD(learning_rate=LR, rescale_grad=RS), w0, gs[:1])
    graphc.random.seed(7)
    noise = graphc.random.normal(0, math.sqrt(LR), shape=w0.shape, dtype=w0.dtype).asnumpy()
    np.testing.assert_allclose(a, w0 - LR / 2 * clip(RS * gs[0], 1e9) + noise, rtol=1e-12)
    assert abs(noise.std() - math.sqrt(LR)) < 0.03


def test_group_adagrad():
    w0, gs = _data()
    got, st = _run(opt.create('groupadagrad', learning_rate=LR, rescale_grad=RS, clip_gradient=CLIP), w0, gs)
    w, h = w0.copy(), np.zeros((3, 1))
    for g in gs:
        g = clip(RS * g)
        h += (g * g).mean(axis=1, keepdims=True)
        w -= LR * g / np.sqrt(h + 1e-5)
    np.testing.assert_allclose(got, w, rtol=1e-12)
    assert st.shape == (3, 1)
    with pytest.raises(graphc.base.GraphcError, match='weight decay'):
        _run(opt.create('groupadagrad', wd=0.1), w0, gs)


@pytest.mark.parametrize('name', ['sgd', 'nag', 'adam', 'lamb', 'rmsprop', 'adadelta'])
def test_multi_precision_updates_a_float32_master(name):
    kw = dict(learning_rate=LR, rescale_grad=RS, wd=WD, multi_precision=True)
    if name in ('sgd', 'nag'):
        kw['momentum'] = 0.9
    w16, g16 = _data(np.float16)
    got, st = _run(opt.create(name, **kw), w16, g16, mp=True)
    assert got.dtype == np.float16
    want, _ = _run(opt.create(name, **dict(kw, multi_precision=False)), w16.astype(np.float32),
                   [g.astype(np.float32) for g in g16])
    master = st[1] if name in ('sgd', 'nag') else st[0]   # MXNet's layouts: SGD/NAG (mom, w32), others (w32, state)
    assert master.dtype == np.float32
    np.testing.assert_allclose(master.asnumpy(), want, rtol=1e-6)
    np.testing.assert_array_equal(got, want.astype(np.float16))


def test_float16_without_multi_precision_warns():
    with pytest.warns(UserWarning, match='multi_precision'):
        opt.SGD().create_state_multi_precision(0, NDArray(np.zeros(2, np.float16)))


def test_registry_create_and_errors():
    assert set(opt.Optimizer.opt_registry) >= {'sgd', 'nag', 'signum', 'ftml', 'lars', 'lamb', 'dcasgd', 'sgld',
                                               'adam', 'adamw', 'adamax', 'nadam', 'adagrad', 'adadelta', 'rmsprop',
                                               'ftrl', 'test'}
    assert isinstance(opt.Optimizer.create_optimizer('Adamax'), opt.Adamax)
    assert opt.create('adamax').learning_rate == 0.002 and opt.create('ftrl').learning_rate == 0.1
    with pytest.raises(ValueError, match='unknown optimizer'):
        opt.create('nope')
    with pytest.raises(TypeError):
        opt.SGD(no_such_argument=1)

    @opt.register
    class MyOpt(opt.Optimizer):
        pass
    assert isinstance(opt.create('myopt'), MyOpt)
    del opt.Optimizer.opt_registry['myopt']

    o = opt.Optimizer(lr_scheduler=graphc.lr_scheduler.FactorScheduler(step=1, base_lr=0.3), learning_rate=0.3)
    with pytest.raises(UserWarning):  # MXNet raises UserWarning here
        o.set_learning_rate(0.5)


def test_updater_creates_states_and_counts_per_device():
    o = opt.SGD(learning_rate=1.0, momentum=0.5)
    upd = opt.get_updater(o)
    w, g = NDArray(np.zeros(2)), NDArray(np.ones(2))
    upd(0, g, w)
    upd([0, 1], [g, g], [w, NDArray(np.zeros(2))])
    assert set(upd.states) == {0, 1} and o._index_update_count == {0: 2, 1: 1}
    np.testing.assert_allclose(w.asnumpy(), [-2.5, -2.5])  # mom -1 then -1.5
    o._set_current_context(1)
    assert o._index_update_count == {}
    o._set_current_context(0)
    assert o._index_update_count == {0: 2, 1: 1}


def test_sym_lr_wd_mult():
    class Sym:
        def attr_dict(self):
            return {'fc_weight': {'__lr_mult__': '0.5'}, 'fc_bias': {'__wd_mult__': '2'}}

        def list_arguments(self):
            return ['data', 'fc_weight', 'fc_bias']
    o = opt.SGD(sym=Sym(), param_idx2name={0: 'fc_weight', 1: 'fc_bias'}, wd=0.1, learning_rate=1.0)
    assert o.lr_mult == {'fc_weight': 0.5} and o.wd_mult == {'fc_bias': 2.0}
    assert o._get_lr(0) == 0.5 and o._get_wd(1) == pytest.approx(0.2)


def test_updater_states_round_trip():
    o = opt.Adam(learning_rate=0.1, multi_precision=True, wd=0.01)
    upd = opt.get_updater(o)
    ws = [NDArray(np.ones((2, 2), np.float16)), NDArray(np.ones(3))]
    for _ in range(2):
        upd([0, 'b'], [NDArray(np.full((2, 2), 0.5, np.float16)), NDArray(np.ones(3))], ws)
    blob = upd.get_states(dump_optimizer=True)
    assert isinstance(blob, bytes) and b'pickle' not in blob
    fresh = opt.get_updater(opt.SGD())
    fresh.set_states(blob)
    assert isinstance(fresh.optimizer, opt.Adam) and fresh.optimizer.wd == 0.01 and fresh.optimizer.multi_precision
    assert fresh.optimizer._index_update_count == {0: 2, 'b': 2}
    w32, (m, v) = fresh.states[0]   # MXNet's multi-precision layout survives
    np.testing.assert_array_equal(w32.asnumpy(), upd.states[0][0].asnumpy())
    np.testing.assert_array_equal(v.asnumpy(), upd.states[0][1][1].asnumpy())
    nxt = [NDArray(w.asnumpy().copy()) for w in ws]
    g = [NDArray(np.full((2, 2), 0.5, np.float16)), NDArray(np.ones(3))]
    upd([0, 'b'], g, ws)
    fresh([0, 'b'], g, nxt)
    for a, b in zip(ws, nxt):
        np.testing.assert_array_equal(a.asnumpy(), b.asnumpy())
    with pytest.raises(graphc.GraphcLoadError):
        fresh.set_states(b'garbage')
