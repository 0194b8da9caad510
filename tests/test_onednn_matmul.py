"""Inference plans' FullyConnected as oneDNN's matmul primitive over weights packed once (pass pack_weights,
runtime/onednn.py's graphc_dnnl_mm rows): equal to eager within test_native's float32 tolerance (rtol/atol 1e-5),
packed again after every kind of weight update, off with GRAPHC_ONEDNN=0 or the pass disabled, batch 1 on the
GEMV, training plans on the GEMM rows."""
import numpy as np
import pytest

import graphc as gc
from graphc import autograd, gluon, nd
from graphc.gluon import nn
from graphc.runtime import native, onednn
from graphc.runtime.plan import Seg

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '1')
    if native.blas() is None or native.dnnl_sgemm() is None:
        pytest.skip("no oneDNN wheel (or no CBLAS)")


def packed(net):
    """How many graphc_dnnl_mm rows the block's inference plan runs."""
    prog = net.cached_graph()._main_plan.program
    return sum(1 for it in prog.items if type(it) is Seg for r in it.seg.rows
               if r[0] == native.KERNEL and onednn._mm_fn and r[1] == onednn._mm_fn[0])


def model(act='relu', flatten=True, bias=True):
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Dense(40, activation=act, flatten=flatten, use_bias=bias), nn.Dense(24, activation='tanh'),
                nn.Dense(7, use_bias=bias))
    net.initialize(gc.init.Xavier())
    return net


def twins(x, **kw):
    gc.random.seed(1)
    a = model(**kw)
    a(x)
    gc.random.seed(1)
    b = model(**kw)
    b(x)
    b.hybridize()
    return a, b


@pytest.mark.parametrize('shape,kw', [((64, 30), {}), ((3, 30), {}), ((17, 2, 3, 5), {}),
                                      ((5, 30), {'act': 'sigmoid', 'bias': False}), ((4, 6, 30), {'flatten': False})])
def test_packed_dense_equals_eager(shape, kw):
    """ReLU as the post-op, another activation as the epilogue kernel after the packed matmul, no bias, 4-d data
    flattened, 3-d data unflattened: every Dense packed, the result eager's."""
    x = nd.random.normal(shape=shape)
    eager, hyb = twins(x, **kw)
    np.testing.assert_allclose(hyb(x).asnumpy(), eager(x).asnumpy(), **TOL)
    assert packed(hyb) == 3


def test_a_plan_built_at_one_thread_runs_at_two(monkeypatch):
    x = nd.random.normal(shape=(32, 30))
    eager, hyb = twins(x)
    hyb(x)
    monkeypatch.setenv('GRAPHC_NUM_THREADS', '2')
    np.testing.assert_allclose(hyb(x).asnumpy(), eager(x).asnumpy(), **TOL)
    assert packed(hyb) == 3


@pytest.mark.parametrize('batch', [1, 2])
def test_small_batches_stay_on_the_gemv_and_gemm(batch):
    x = nd.random.normal(shape=(batch, 30))
    eager, hyb = twins(x)
    np.testing.assert_allclose(hyb(x).asnumpy(), eager(x).asnumpy(), **TOL)
    assert packed(hyb) == 0


def test_packed_weights_follow_every_update():
    """set_data, an in-place write through the API, a Trainer step and a new array: the next call repacks."""
    x = nd.random.normal(shape=(8, 30))
    eager, hyb = twins(x)
    hyb(x)
    assert packed(hyb) == 3
    pe, ph = eager.collect_params(), hyb.collect_params()

    def same():
        np.testing.assert_allclose(hyb(x).asnumpy(), eager(x).asnumpy(), **TOL)
    w = list(pe.values())[0].data().asnumpy() * 0.5
    for p in (pe, ph):
        list(p.values())[0].set_data(nd.array(w))
    same()
    for p in (pe, ph):
        list(p.values())[2].data()[:] = 0.25
    same()
    for p in (pe, ph):
        list(p.values())[4].data()[:] *= -2
    same()
    y = nd.array(np.arange(8) % 7)
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for net in (eager, hyb):
        tr = gluon.Trainer(net.collect_params(), 'sgd', {'learning_rate': 0.5})
        for _ in range(2):
            with autograd.record():
                out = loss(net(x), y)
            out.backward()
            tr.step(8)
    same()


def test_switches_turn_it_off(monkeypatch):
    x = nd.random.normal(shape=(16, 30))
    for env in (('GRAPHC_ONEDNN', '0'), ('GRAPHC_DISABLE_PASSES', 'pack_weights')):
        with monkeypatch.context() as m:
            m.setenv(*env)
            eager, hyb = twins(x)
            np.testing.assert_allclose(hyb(x).asnumpy(), eager(x).asnumpy(), **TOL)
            assert packed(hyb) == 0, env


def test_training_plans_are_not_packed_and_export_works(tmp_path):
    """The pass is in the inference pipeline only; the traced graph stays unmarked, so export writes it as before."""
    from graphc.passes import PIPELINES
    assert 'pack_weights' in PIPELINES['inference'] and 'pack_weights' not in PIPELINES['training']
    x = nd.random.normal(shape=(8, 30))
    eager, hyb = twins(x)
    hyb(x)
    assert packed(hyb) == 3
    assert not any(n.extra.get('pack') for n in hyb.cached_graph().graph.nodes)
    hyb.export(str(tmp_path / 'm'))
    back = gluon.SymbolBlock.imports(str(tmp_path / 'm-symbol.json'), ['data'], str(tmp_path / 'm-0000.params'))
    np.testing.assert_allclose(back(x).asnumpy(), eager(x).asnumpy(), **TOL)


def test_a_plan_fed_new_weight_arrays_repacks_and_other_threads_take_numpy():
    """A Plan over graph inputs: a new weight array (another address) repacks; another thread runs the per-step
    path (oneDNN stays on the thread that loaded it) with the same result."""
    import threading
    from graphc.runtime.plan import Plan
    from test_native import build
    rng = np.random.default_rng(0)
    x, b = rng.normal(size=(6, 20)).astype(np.float32), rng.normal(size=(8,)).astype(np.float32)
    ws = [rng.normal(size=(8, 20)).astype(np.float32) for _ in range(3)]
    v = rng.normal(size=(8, 5)).astype(np.float32)
    _, opt, feed, _ = build(lambda x, w, b, v: nd.dot(nd.relu(nd.FullyConnected(x, w, b, num_hidden=8)), v),
                            x, ws[0], b, v)
    plan = Plan(opt)
    assert any(r[0] == native.KERNEL and r[1] == onednn._mm_fn[0] for it in plan.program.items
               if type(it) is Seg for r in it.seg.rows)
    wvar = opt.inputs[1]
    for w in ws + ws[:1]:
        np.testing.assert_allclose(plan({**feed, wvar: w})[0], np.maximum(x @ w.T + b, 0) @ v, **TOL)
    got = []
    t = threading.Thread(target=lambda: got.append(plan({**feed, wvar: ws[2]})[0]))
    t.start()
    t.join()
    np.testing.assert_allclose(got[0], np.maximum(x @ ws[2].T + b, 0) @ v, **TOL)
