"""graphc.gluon.solver: policies, snapshot/resume, hooks; the examples built on it run end to end."""
import io
import json
import math
import os
import sys

import numpy as np
import pytest

import graphc as gc
from graphc import gluon
from graphc.base import GraphcError
from graphc.gluon import nn, solver
from graphc.gluon.solver import LRPolicy, MomPolicy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'examples'))


# ---------------------------------------------------------------------------------------------- policies
@pytest.mark.parametrize('it', [0, 1, 7, 10, 99, 100, 101, 1000, 5000])
def test_lr_policies_match_formulas(it):
    assert LRPolicy.Fixed(0.1)(it) == 0.1
    assert LRPolicy.Step(0.1, 0.5, 100)(it) == pytest.approx(0.1 * 0.5 ** (it // 100))
    assert LRPolicy.Exp(0.1, 0.999)(it) == pytest.approx(0.1 * 0.999 ** it)
    assert LRPolicy.Inv(0.01, 1e-4, 0.75)(it) == pytest.approx(0.01 * (1 + 1e-4 * it) ** -0.75)
    steps = [10, 100, 1000]
    assert LRPolicy.MultiStep(0.1, 0.1, steps)(it) == pytest.approx(0.1 * 0.1 ** sum(s <= it for s in steps))
    want = 0.1 * (1 - it / 1000) ** 2 if it < 1000 else 0.0
    assert LRPolicy.Poly(0.1, 2, 1000)(it) == pytest.approx(want)
    assert MomPolicy.Fixed(0.9)(it) == 0.9
    assert MomPolicy.Step(0.5, 1.1, 100, max_mom=0.9)(it) == pytest.approx(min(0.5 * 1.1 ** (it // 100), 0.9))
    assert MomPolicy.Linear(0.5, 0.1, 100, max_mom=0.9)(it) == pytest.approx(min(0.5 + 0.1 * (it // 100), 0.9))


def test_policy_spot_values():
    assert LRPolicy.Step(1.0, 0.1, 10)(9) == 1.0 and LRPolicy.Step(1.0, 0.1, 10)(10) == pytest.approx(0.1)
    assert LRPolicy.MultiStep(1.0, 0.5, [3, 5])(2) == 1.0
    assert LRPolicy.MultiStep(1.0, 0.5, [3, 5])(3) == 0.5 and LRPolicy.MultiStep(1.0, 0.5, [3, 5])(5) == 0.25
    assert LRPolicy.Inv(0.01, 1e-4, 0.75)(10000) == pytest.approx(0.01 * 2 ** -0.75)
    assert LRPolicy.Poly(1.0, 1, 4)(1) == 0.75
    with pytest.raises(ValueError):
        LRPolicy.MultiStep(0.1, 0.1, [5, 3])


# ---------------------------------------------------------------------------------------------- helpers
def _dataset(n=200, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, 8).astype('float32')
    y = (x[:, 0] + x[:, 1] > 0).astype('float32')
    return gluon.data.ArrayDataset(x, y)


def _mlp():
    net = nn.HybridSequential()
    net.add(nn.Dense(16, activation='relu'), nn.Dropout(0.3), nn.Dense(2))
    return net


def _train(max_iter, snapshot_dir=None, hybridize=False, **kw):
    gc.random.seed(3)
    net = _mlp()
    net.initialize(gc.init.Xavier())
    if hybridize:
        net.hybridize()
    loader = gluon.data.DataLoader(_dataset(), batch_size=32, shuffle=True)  # 7 batches, the last short
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), loader, max_iter=max_iter, optimizer='sgd',
                      optimizer_params={'momentum': 0.9, 'wd': 1e-3},
                      lr_policy=LRPolicy.Inv(0.1, 1e-2, 0.75), momentum_policy=MomPolicy.Step(0.8, 1.05, 10, 0.95),
                      val_data=gluon.data.DataLoader(_dataset(100, 1), batch_size=50), val_every=10,
                      summary_every=5, snapshot_every=10 if snapshot_dir else 0, snapshot_dir=snapshot_dir,
                      log=None, **kw)
    return [p.data().asnumpy().copy() for p in net.collect_params().values()], hist


# ---------------------------------------------------------------------------------------------- snapshots
@pytest.mark.parametrize('hybridize', [False, True])
def test_resume_gives_bit_identical_parameters(tmp_path, hybridize):
    ref, ref_hist = _train(33, hybridize=hybridize)
    d = str(tmp_path / 'snaps')
    _, first = _train(17, d, hybridize=hybridize)  # stops mid-epoch (17 = 2*7 + 3), with Dropout's draws
    assert first['resumed_from'] is None
    names = sorted(os.listdir(d))
    assert 'snapshot-00000010.json' in names and 'snapshot-00000017.json' in names
    assert {'snapshot-00000017.params', 'snapshot-00000017.states'} <= set(names)
    meta = json.load(open(os.path.join(d, 'snapshot-00000017.json')))
    assert meta['iter'] == 17 and meta['epoch'] == 2 and meta['batch_in_epoch'] == 3
    got, hist = _train(33, d, hybridize=hybridize)
    assert hist['resumed_from'] == 17 and hist['iter'] == 33
    assert len(got) == len(ref) == 4
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)
    # the history goes on across the restart: the same summaries at the same iterations
    assert [r['iter'] for r in hist['train']] == [r['iter'] for r in ref_hist['train']] == [5, 10, 15, 20, 25, 30]
    assert [r['iter'] for r in hist['val']] == [10, 17, 20, 30, 33]
    assert hist['val'][-1]['accuracy'] == ref_hist['val'][-1]['accuracy']


def test_resume_from_an_earlier_snapshot_and_at_max_iter(tmp_path):
    ref, _ = _train(20)
    d = str(tmp_path / 's')
    _train(14, d)  # snapshots at 10 and 14
    os.remove(os.path.join(d, 'snapshot-00000014.json'))  # an incomplete snapshot is ignored
    assert solver.latest_snapshot(d).endswith('snapshot-00000010.json')
    got, hist = _train(20, d)
    assert hist['resumed_from'] == 10
    assert all(np.array_equal(a, b) for a, b in zip(ref, got))
    again, hist = _train(20, d)  # the snapshot at 20 is the end: nothing left to do
    assert hist['resumed_from'] == 20
    assert all(np.array_equal(a, b) for a, b in zip(ref, again))
    fresh, hist = _train(20, d, resume=False)
    assert hist['resumed_from'] is None and all(np.array_equal(a, b) for a, b in zip(ref, fresh))


# ---------------------------------------------------------------------------------------------- hooks
class _Recorder(solver.Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, state):
        self.events.append(('begin', state.iter))

    def on_iter_end(self, state):
        self.events.append(('iter', state.iter, state.lr, state.momentum))

    def on_val_end(self, state):
        self.events.append(('val', state.iter, state.val['accuracy']))

    def on_train_end(self, state):
        self.events.append(('end', state.iter))


def test_hooks_and_summaries_fire_at_the_right_iterations():
    gc.random.seed(0)
    net = _mlp()
    net.initialize(gc.init.Xavier())
    rec, log = _Recorder(), io.StringIO()
    lr = LRPolicy.Step(0.1, 0.5, 4)
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), gluon.data.DataLoader(_dataset(), batch_size=64),
                      max_iter=11, optimizer='sgd', optimizer_params={'momentum': 0.5}, lr_policy=lr,
                      momentum_policy=MomPolicy.Linear(0.5, 0.1, 5), val_data=[(gc.nd.array(np.zeros((4, 8), 'float32')),
                                                                               gc.nd.array(np.zeros(4, 'float32')))],
                      val_every=4, summary_every=3, callbacks=[rec], log=log)
    assert rec.events[0] == ('begin', 0) and rec.events[-1] == ('end', 11)
    iters = [e for e in rec.events if e[0] == 'iter']
    assert [e[1] for e in iters] == list(range(1, 12))
    assert [e[2] for e in iters] == [lr(i) for i in range(11)]  # the step to iter i+1 uses policy(i)
    assert [e[3] for e in iters] == pytest.approx([0.5 + 0.1 * (i // 5) for i in range(11)])
    assert [e[1] for e in rec.events if e[0] == 'val'] == [4, 8, 11]  # every 4, and after the last step
    assert [r['iter'] for r in hist['train']] == [3, 6, 9]
    assert [r['iter'] for r in hist['val']] == [4, 8, 11]
    lines = log.getvalue().splitlines()
    assert sum('samples/s' in ln for ln in lines) == 3 and sum('validation' in ln for ln in lines) == 3
    r = hist['train'][0]
    assert r['lr'] == lr(2) and r['samples_per_sec'] > 0 and math.isfinite(r['loss'])
    assert set(hist['val'][0]) == {'iter', 'loss', 'accuracy'}
    assert hist['iter'] == 11


def test_stop_from_a_callback_and_errors():
    class Stop:
        def on_iter_end(self, state):
            state.stop = state.iter == 5

    gc.random.seed(0)
    net = _mlp()
    net.initialize(gc.init.Xavier())
    loader = gluon.data.DataLoader(_dataset(), batch_size=64)
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), loader, max_iter=100, lr_policy=0.1,
                      callbacks=[Stop()], summary_every=0, log=None)
    assert hist['iter'] == 5
    sched_trainer = gluon.Trainer(net.collect_params(), 'sgd',
                                  {'lr_scheduler': gc.lr_scheduler.FactorScheduler(2, 0.5, base_lr=0.1)})
    with pytest.raises(GraphcError, match='lr_scheduler'):
        solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), loader, max_iter=2, trainer=sched_trainer,
                   lr_policy=LRPolicy.Fixed(0.1), log=None)
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), loader, max_iter=2, trainer=sched_trainer, log=None)
    assert hist['iter'] == 2
    with pytest.raises(GraphcError, match='snapshot_dir'):
        solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), loader, max_iter=2, snapshot_every=1, log=None)
    with pytest.raises(GraphcError, match='no batches'):
        solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), [], max_iter=2, log=None)


# ---------------------------------------------------------------------------------------------- examples
def test_mocha_lenet_runs_end_to_end(tmp_path, capsys):
    import mocha_lenet
    out = tmp_path / 'mocha.json'
    acc, hist = mocha_lenet.main(['--max-iter', '12', '--hybridize', '--test-limit', '100', '--summary-every', '4',
                                  '--snapshot-dir', str(tmp_path / 'snaps'), '--snapshot-every', '8',
                                  '--json', str(out)])
    assert 0.0 <= acc <= 1.0 and hist['iter'] == 12
    saved = json.load(open(out))
    assert saved['test_acc'] == acc and [r['iter'] for r in saved['history']['train']] == [4, 8, 12]
    assert sorted(f for f in os.listdir(tmp_path / 'snaps') if f.endswith('.json')) == [
        'snapshot-00000008.json', 'snapshot-00000012.json']
    assert 'final test accuracy' in capsys.readouterr().out


def test_lenet_benchmark_runs_end_to_end(tmp_path, capsys):
    import lenet_benchmark
    out = tmp_path / 'bench.json'
    # the protocol's batch is 600; a smaller one keeps this quick on two cores
    res = lenet_benchmark.main(['--epochs', '1', '--limit', '100', '--batch-size', '50', '--test-limit', '100',
                                '--json', str(out)])
    saved = json.load(open(out))
    assert set(saved['results']) == {'eager', 'hybrid'}
    for mode in ('eager', 'hybrid'):
        (e,) = saved['results'][mode]
        assert e['epoch'] == 1 and e['epoch_seconds'] > 0 and 0 <= e['test_acc'] <= 1 and e['lr'] == 1e-3
    # the same seed: both modes train the same model (up to float rounding of the traced graph)
    assert abs(saved['results']['eager'][0]['train_loss'] - saved['results']['hybrid'][0]['train_loss']) < 1e-3
    assert 'hybrid_speedup' in saved['summary']
    text = capsys.readouterr().out
    if res['plots'] is None:
        assert 'pip install matplotlib' in text
    else:
        assert all(os.path.exists(p) for p in res['plots'])
