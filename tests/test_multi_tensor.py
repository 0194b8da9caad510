"""The fused multi-tensor update (graphc/optimizer/multi.py, runtime/multi_tensor.py) against the per-parameter
path (GRAPHC_MULTI_TENSOR=0) it replaces. The kernels run the per-parameter NumPy ops' sequence of rounded
operations element by element, so weights and states must be EQUAL (bit for bit, float32 and float64): the
tolerance is 0. Also: that one kernel call per step is made, and each case where the per-parameter path runs."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, lr_scheduler, nd
from graphc.base import GraphcError
from graphc.optimizer import Adam
from graphc.runtime import multi_tensor as mt

SHAPES = [(1,), (7, 5), (33,), (300, 111)]  # size 1, odd sizes, one over a row chunk (CHUNK)
STEPS = 4


def _params(dtype, ctx=None, shapes=SHAPES, grad_req='write', **kw):
    rng = np.random.default_rng(1)
    ps = []
    for k, shape in enumerate(shapes):
        p = gluon.Parameter(f'p{k}', shape=shape, dtype=dtype, grad_req=grad_req, **kw)
        p.initialize(ctx=ctx)
        p.set_data(nd.array(rng.standard_normal(shape), dtype=dtype))
        ps.append(p)
    ps[1].lr_mult, ps[2].wd_mult = 0.5, 3.0
    if dtype == 'float64':  # one tensor without wd: the kernel's both wd cases (float32 runs: every tensor with wd)
        ps[3].wd_mult = 0.0
    return ps


def _backward(ps, step, use=None):
    """Gradients 2*a*w + b with a, b drawn per step and parameter (each context its own)."""
    rng = np.random.default_rng(100 + step)
    for p in ps:
        coef = [rng.standard_normal(p.shape) for _ in range(2)]
        if use is not None and p not in use:
            continue
        for w in p.list_data():
            a, b = (nd.array(c, dtype=p.dtype, ctx=w.context) for c in coef)
            with autograd.record():
                loss = (w * w * a + w * b).sum()
            loss.backward()


def _train(fused, monkeypatch, opt, params, dtype='float32', ctx=None, steps=STEPS, trainer_kw=None, body=None):
    """Weights and optimizer states after `steps` steps, and the kernel calls made."""
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1' if fused else '0')
    ps = _params(dtype, ctx)
    tr = gluon.Trainer(ps, opt, dict(params), **(trainer_kw or {}))
    c0 = mt.stats['calls']
    for s in range(steps):
        if body is None:
            _backward(ps, s)
            tr.step(3)
        else:
            body(ps, tr, s, monkeypatch)
    states = [[a.asnumpy() for a in _flat(st)] for upd in tr._updaters for _, st in sorted(upd.states.items())]
    return [w.asnumpy() for p in ps for w in p.list_data()], states, mt.stats['calls'] - c0, tr


def _flat(st):
    if st is None:
        return []
    return [st] if hasattr(st, 'asnumpy') else [a for s in st for a in _flat(s)]


def _equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        if isinstance(x, list):
            _equal(x, y)
        else:
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_array_equal(x, y)  # tolerance 0: the same rounded operations


def _sched():
    return lr_scheduler.FactorScheduler(step=2, factor=0.5, base_lr=0.1)


CASES = [
    ('sgd', {}),
    ('sgd', {'wd': 0.01, 'rescale_grad': 0.5}),
    ('sgd', {'clip_gradient': 0.05}),
    ('sgd', {'momentum': 0.9}),
    ('sgd', {'momentum': 0.9, 'wd': 0.01, 'rescale_grad': 2.0, 'lr_scheduler': _sched}),
    ('sgd', {'momentum': 0.9, 'wd': 0.01, 'clip_gradient': 0.05}),
    ('nag', {'momentum': 0.9, 'wd': 0.01}),
    ('nag', {'momentum': 0.0, 'wd': 0.01, 'clip_gradient': 0.05}),
    ('nag', {'momentum': 0.9, 'clip_gradient': 0.05, 'lr_scheduler': _sched}),
    ('adam', {}),
    ('adam', {'wd': 0.01, 'clip_gradient': 0.05, 'rescale_grad': 0.5}),
    ('adam', {'beta1': 0.8, 'epsilon': 1e-3, 'lr_scheduler': _sched}),
    ('adamw', {'wd': 0.1}),
    ('adamw', {'wd': 0.1, 'correct_bias': False, 'clip_gradient': 0.05}),
    ('rmsprop', {'wd': 0.01}),
    ('rmsprop', {'centered': True, 'clip_weights': 1.5, 'clip_gradient': 0.05, 'wd': 0.01}),
    ('adagrad', {'wd': 0.01}),
    ('adagrad', {'clip_gradient': 0.05, 'lr_scheduler': _sched}),
]


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
@pytest.mark.parametrize('opt,params', CASES, ids=[f'{o}-{i}' for i, (o, _) in enumerate(CASES)])
def test_fused_equals_per_parameter(monkeypatch, opt, params, dtype):
    def fresh():
        return {k: v() if callable(v) else v for k, v in params.items()}
    w1, s1, calls, _ = _train(True, monkeypatch, opt, fresh(), dtype)
    w0, s0, calls0, _ = _train(False, monkeypatch, opt, fresh(), dtype)
    assert calls == STEPS and calls0 == 0  # one kernel call per step updates every parameter
    _equal(w1, w0)
    _equal(s1, s0)
    assert not all(np.array_equal(w, p) for w, p in zip(w1, [np.asarray(x) for x in _params(dtype)]))


def _set_lr_body(ps, tr, s, mp):
    _backward(ps, s)
    if s == 2:
        tr.set_learning_rate(0.03)  # takes effect at the next step
    tr.step(2)


def _stale_body(ps, tr, s, mp):
    """p0 sits out step 1 (ignore_stale_grad): its count then lags, so num_update rises in the middle of a
    step and the scheduler's rate differs between the parameters, as it does per parameter."""
    _backward(ps, s, use=None if s != 1 else ps[1:])
    tr.step(2, ignore_stale_grad=True)


def _switch_body(ps, tr, s, mp):
    """Two fused steps, then two per-parameter ones on the same states and counts."""
    if s == 2:
        mp.setenv('GRAPHC_MULTI_TENSOR', '0')
    _backward(ps, s)
    tr.step(2)


def _split_body(ps, tr, s, mp):
    _backward(ps, s)
    tr.allreduce_grads()
    tr.update(2)


@pytest.mark.parametrize('body,opt,params,expect', [
    (_set_lr_body, 'sgd', {'learning_rate': 0.1, 'momentum': 0.9}, STEPS),
    (_stale_body, 'adam', {'lr_scheduler': lambda: lr_scheduler.FactorScheduler(step=1, factor=0.5, base_lr=0.1)},
     STEPS),
    (_switch_body, 'adam', {'wd': 0.01}, 2),
    (_split_body, 'rmsprop', {}, STEPS),
])
def test_trainer_semantics_kept(monkeypatch, body, opt, params, expect):
    def fresh():
        return {k: v() if callable(v) else v for k, v in params.items()}
    w1, s1, calls, t1 = _train(True, monkeypatch, opt, fresh(), body=body)
    w0, s0, calls0, t0 = _train(False, monkeypatch, opt, fresh(), body=body)
    assert calls == expect and calls0 == 0
    _equal(w1, w0)
    _equal(s1, s0)
    assert t1.optimizer._index_update_count == t0.optimizer._index_update_count
    assert t1.optimizer.num_update == t0.optimizer.num_update


def test_two_contexts(monkeypatch):
    """cpu(0) and cpu(1), gradients summed by the kvstore, each copy updated by its own context's kernel call."""
    ctx = [gc.cpu(0), gc.cpu(1)]
    kw = {'kvstore': 'device', 'update_on_kvstore': False}
    w1, s1, calls, _ = _train(True, monkeypatch, 'adam', {'wd': 0.01}, ctx=ctx, trainer_kw=kw)
    w0, s0, _, _ = _train(False, monkeypatch, 'adam', {'wd': 0.01}, ctx=ctx, trainer_kw=kw)
    assert calls == 2 * STEPS
    _equal(w1, w0)
    _equal(s1, s0)
    _, _, calls, _ = _train(True, monkeypatch, 'adam', {}, ctx=ctx, trainer_kw={'kvstore': 'device'})
    assert calls == 0  # update_on_kvstore: the kvstore's updater updates


def test_grad_req_add(monkeypatch):
    def run(fused):
        monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1' if fused else '0')
        ps = _params('float32', grad_req='add')
        tr = gluon.Trainer(ps, 'sgd', {'momentum': 0.9, 'wd': 0.01})
        c0 = mt.stats['calls']
        for s in range(3):
            _backward(ps, s)
            _backward(ps, s + 10)  # accumulated into the same gradient
            tr.step(2)
            for p in ps:
                p.zero_grad()
        return [p.data().asnumpy() for p in ps], mt.stats['calls'] - c0
    (a, ca), (b, cb) = run(True), run(False)
    assert (ca, cb) == (3, 0)
    _equal(a, b)


def test_stale_gradient_still_raises(monkeypatch):
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1')
    ps = _params('float32')
    tr = gluon.Trainer(ps, 'adam', {})
    _backward(ps, 0)
    tr.step(1)
    _backward(ps, 1, use=ps[:2])
    before = [p.data().asnumpy() for p in ps]
    with pytest.raises(GraphcError, match="'p2'.*has not been computed"):
        tr.step(1)
    _equal([p.data().asnumpy() for p in ps], before)  # nothing updated


class MyAdam(Adam):
    pass


@pytest.mark.parametrize('opt,params,dtype,switch', [
    ('lars', {'momentum': 0.9}, 'float32', '1'),            # an optimizer without a kernel
    (MyAdam, {}, 'float32', '1'),                           # a subclass (it may change _step)
    ('sgd', {'multi_precision': True}, 'float16', '1'),     # float16 weights (float32 master copies)
    ('adam', {}, 'float32', '0'),                           # the switch off
], ids=['lars', 'subclass', 'float16', 'switch-off'])
def test_fallbacks(monkeypatch, opt, params, dtype, switch):
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', switch)
    ps = _params(dtype)
    before = [p.data().asnumpy() for p in ps]
    tr = gluon.Trainer(ps, opt() if isinstance(opt, type) else opt, params)
    c0 = mt.stats['calls']
    for s in range(2):
        _backward(ps, s)
        tr.step(2)
    assert mt.stats['calls'] == c0
    assert all(not np.array_equal(p.data().asnumpy(), b) for p, b in zip(ps, before))  # updated per parameter


def test_sparse_gradient_falls_back(monkeypatch):
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1')
    emb = gluon.nn.Embedding(20, 4, sparse_grad=True)
    emb.initialize()
    tr = gluon.Trainer(emb.collect_params(), 'sgd', {'learning_rate': 0.1})
    c0 = mt.stats['calls']
    before = emb.weight.data().asnumpy()
    with autograd.record():
        loss = emb(nd.array([1, 3])).sum()
    loss.backward()
    tr.step(1)
    assert mt.stats['calls'] == c0
    after = emb.weight.data().asnumpy()
    assert not np.array_equal(after[[1, 3]], before[[1, 3]]) and np.array_equal(after[0], before[0])


def test_two_threads_equal_one(monkeypatch):
    """The kernel with its rows split over two threads updates the same as on one."""
    rng = np.random.default_rng(0)
    base = [tuple(rng.standard_normal(n).astype(np.float32) for _ in range(4)) for n in (1, 70001, 33333)]
    scal = rng.uniform(0.1, 0.9, (3, len(mt.SCALARS['adam']))).astype(np.float32)
    outs = []
    for split in (False, True):
        arrs = [tuple(a.copy() for a in t) for t in base]
        monkeypatch.setattr(mt, 'SPLIT', 1 if split else 1 << 40)
        tab = mt.Table(arrs, 2)
        assert bool(tab.cut) == split
        tab.flags(np.array([True, False, True]))
        mt.kernel('adam', np.float32, (False,), 2)(tab, scal)
        outs.append([a for t in arrs for a in t])
    _equal(outs[0], outs[1])
    assert not np.array_equal(outs[0][0], base[0][0])


@pytest.mark.parametrize('opt,params', [
    ('sgd', {'clip_gradient': 1.0, 'momentum': 0.9, 'wd': 0.1}), ('sgd', {'clip_gradient': 0.0}),
    ('adam', {'clip_gradient': 1.0, 'wd': 0.1}), ('rmsprop', {'clip_gradient': 1.0, 'centered': True, 'clip_weights': 1.0}),
    ('adagrad', {'clip_gradient': 0.5}), ('nag', {'momentum': 0.9}), ('adamw', {'wd': 0.1, 'clip_gradient': 1.0})])
def test_nonfinite_and_signed_zeros_bit_equal(monkeypatch, opt, params):
    """NaN, infinities, signed zeros, subnormals and float32 overflow: the same bits as per parameter (np.clip keeps
    a NaN, no flush to zero)."""
    def run(fused):
        monkeypatch.setenv('GRAPHC_MULTI_TENSOR', fused)
        ps = [gluon.Parameter(f'p{k}', shape=(8,)) for k in range(2)]
        tr = gluon.Trainer(ps, opt, dict(params))
        for p in ps:
            p.initialize()
            p.set_data(nd.array([0.0, -0.0, 1.0, -2.0, 3e38, -3e38, 1e-40, 5.0]))
        for _ in range(2):
            for p in ps:
                w = p.data()
                w._grad._data[...] = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, 1e-45, -3.0], np.float32)
                w._fresh_grad = True
            tr.step(1)
        return [p.data().asnumpy().view(np.uint32) for p in ps]
    c0 = mt.stats['calls']
    a = run('1')
    assert mt.stats['calls'] == c0 + 2
    _equal(a, run('0'))


def test_save_and_load_states(monkeypatch, tmp_path):
    """States saved after fused steps, loaded into a new Trainer: the fused steps after go on as the first would."""
    monkeypatch.setenv('GRAPHC_MULTI_TENSOR', '1')
    ps = _params('float32')
    tr = gluon.Trainer(ps, 'adam', {'wd': 0.01})
    for s in range(2):
        _backward(ps, s)
        tr.step(2)
    tr.save_states(str(tmp_path / 'st'))
    saved = [p.data().asnumpy() for p in ps]
    for s in range(2, 4):
        _backward(ps, s)
        tr.step(2)
    want = [p.data().asnumpy() for p in ps]
    ps2 = _params('float32')
    for p, w in zip(ps2, saved):
        p.set_data(nd.array(w))
    tr2 = gluon.Trainer(ps2, 'adam', {'wd': 0.01})
    tr2.load_states(str(tmp_path / 'st'))
    c0 = mt.stats['calls']
    for s in range(2, 4):
        _backward(ps2, s)
        tr2.step(2)
    assert mt.stats['calls'] == c0 + 2
    _equal([p.data().asnumpy() for p in ps2], want)
