"""A training loop by iterations, in the style of Mocha.jl's Solver and Gluon's Estimator.

    from graphc.gluon import solver
    hist = solver.fit(net, gluon.loss.SoftmaxCrossEntropyLoss(), train_loader,
                      optimizer='sgd', optimizer_params={'momentum': 0.9, 'wd': 5e-4},
                      max_iter=10000, lr_policy=solver.LRPolicy.Inv(0.01, 1e-4, 0.75),
                      val_data=test_loader, val_every=1000, snapshot_every=5000, snapshot_dir='snapshots')

fit() iterates over train_data again and again (epochs) until `max_iter` optimizer steps.

Iterations. `iter` counts the optimizer steps done so far. A policy is called with the number
of steps done before the one it sets (Caffe's and Mocha's convention): the first step uses
policy(0), the step that brings the count to N uses policy(N - 1). Summaries, validations,
snapshots and callbacks run after the step that makes `iter` a multiple of their period.

Policies (Mocha's names; any callable iter -> value works too):
    LRPolicy.Fixed(base_lr)                   base_lr
    LRPolicy.Step(base_lr, gamma, stepsize)   base_lr * gamma ** (iter // stepsize)
    LRPolicy.Exp(base_lr, gamma)              base_lr * gamma ** iter
    LRPolicy.Inv(base_lr, gamma, power)       base_lr * (1 + gamma * iter) ** -power
    LRPolicy.MultiStep(base_lr, gamma, steps) base_lr * gamma ** (number of steps s <= iter)
    LRPolicy.Poly(base_lr, power, max_iter)   base_lr * (1 - iter / max_iter) ** power (0 after max_iter)
    MomPolicy.Fixed(momentum)                 momentum
    MomPolicy.Step(base, gamma, stepsize, max_mom=1.0)  min(base * gamma ** (iter // stepsize), max_mom)
    MomPolicy.Linear(base, step, stepsize, max_mom=1.0) min(base + step * (iter // stepsize), max_mom)
The learning rate is applied with trainer.set_learning_rate before every step (so the optimizer
must not have an lr_scheduler of its own; with lr_policy=None the optimizer's rate or scheduler
is left alone) and the momentum by setting trainer.optimizer.momentum. SGD creates its momentum
buffers at the first step: a momentum policy whose first value is 0 leaves SGD without momentum.

Snapshots (snapshot_every=N, snapshot_dir=D) go to D/snapshot-<iter>.params (Block.save_parameters),
D/snapshot-<iter>.states (Trainer.save_states) and D/snapshot-<iter>.json (iteration, epoch,
position in the epoch, graphc.random states, history: plain JSON, no Python object serialization), the JSON written
last (so a snapshot without its JSON is ignored); also one after the last step. With resume=True
fit() loads the newest complete snapshot in D and goes on from it.

Resuming gives the same numbers as not stopping. The data order comes from graphc.random (the
DataLoader's RandomSampler draws an epoch's permutation when its iterator starts), so fit()
records the random state at the start of each epoch. To resume in the middle of an epoch it sets
that state, starts the loader's iterator again and draws (and drops) the batches already used,
then sets the random state saved with the snapshot, which also restores the stream that Dropout
and initializers draw from. This needs a train_data whose iteration depends only on graphc.random
(DataLoader with shuffle=True, a RandomSampler/SequentialSampler, a list of batches); a loader that
keeps state across epochs (BatchSampler(..., 'rollover')) or draws from another generator would
resume with a different order. Validation saves and restores the random state around itself, so
it never changes training.

Callbacks: objects with any of on_train_begin(state), on_iter_end(state), on_val_end(state),
on_train_end(state); `state` is a SolverState (iter, epoch, loss, lr, momentum, val, history, net,
trainer); setting state.stop = True ends training after the current step.

fit() returns the history dict: {'train': [{'iter', 'epoch', 'loss', 'lr', 'samples_per_sec'}]
(one per summary), 'val': [{'iter', 'loss', 'accuracy'}], 'resumed_from': iter or None,
'iter': the final iteration, 'seconds': training time of this call}.
"""
import bisect
import glob
import json
import math
import os
import re
import sys
import time

from .. import autograd
from .. import random as _random
from ..base import GraphcError
from .trainer import Trainer

__all__ = ['fit', 'LRPolicy', 'MomPolicy', 'SolverState', 'Callback', 'evaluate', 'latest_snapshot']

SNAPSHOT_VERSION = 1


# ---------------------------------------------------------------------------------------------- policies
class _Policy:
    def __call__(self, it):
        raise NotImplementedError

    def __repr__(self):
        args = ', '.join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__qualname__}({args})"


class _FixedLR(_Policy):
    def __init__(self, base_lr):
        self.base_lr = float(base_lr)

    def __call__(self, it):
        return self.base_lr


class _StepLR(_Policy):
    def __init__(self, base_lr, gamma, stepsize):
        if stepsize < 1:
            raise ValueError("stepsize must be >= 1")
        self.base_lr, self.gamma, self.stepsize = float(base_lr), float(gamma), int(stepsize)

    def __call__(self, it):
        return self.base_lr * self.gamma ** (it // self.stepsize)


class _ExpLR(_Policy):
    def __init__(self, base_lr, gamma):
        self.base_lr, self.gamma = float(base_lr), float(gamma)

    def __call__(self, it):
        return self.base_lr * self.gamma ** it


class _InvLR(_Policy):
    def __init__(self, base_lr, gamma, power):
        if gamma < 0:
            raise ValueError("gamma must be >= 0")
        self.base_lr, self.gamma, self.power = float(base_lr), float(gamma), float(power)

    def __call__(self, it):
        return self.base_lr * (1.0 + self.gamma * it) ** -self.power


class _MultiStepLR(_Policy):
    def __init__(self, base_lr, gamma, steps):
        steps = [int(s) for s in steps]
        if any(b <= a for a, b in zip(steps, steps[1:])) or any(s < 1 for s in steps):
            raise ValueError(f"steps must be an increasing list of ints >= 1, got {steps}")
        self.base_lr, self.gamma, self.steps = float(base_lr), float(gamma), steps

    def __call__(self, it):
        return self.base_lr * self.gamma ** bisect.bisect_right(self.steps, it)


class _PolyLR(_Policy):
    def __init__(self, base_lr, power, max_iter):
        if max_iter < 1:
            raise ValueError("max_iter must be >= 1")
        self.base_lr, self.power, self.max_iter = float(base_lr), float(power), int(max_iter)

    def __call__(self, it):
        if it >= self.max_iter:
            return 0.0
        return self.base_lr * (1.0 - it / self.max_iter) ** self.power


class LRPolicy:
    """Learning-rate policies, as Mocha.jl's LRPolicy: LRPolicy.Inv(0.01, 1e-4, 0.75)(iter) -> lr."""
    Fixed, Step, Exp, Inv, MultiStep, Poly = _FixedLR, _StepLR, _ExpLR, _InvLR, _MultiStepLR, _PolyLR


class _FixedMom(_Policy):
    def __init__(self, momentum):
        self.momentum = float(momentum)

    def __call__(self, it):
        return self.momentum


class _StepMom(_Policy):
    def __init__(self, base, gamma, stepsize, max_mom=1.0):
        if stepsize < 1:
            raise ValueError("stepsize must be >= 1")
        self.base, self.gamma, self.stepsize, self.max_mom = float(base), float(gamma), int(stepsize), float(max_mom)

    def __call__(self, it):
        return min(self.base * self.gamma ** (it // self.stepsize), self.max_mom)


class _LinearMom(_Policy):
    def __init__(self, base, step, stepsize, max_mom=1.0):
        if stepsize < 1:
            raise ValueError("stepsize must be >= 1")
        self.base, self.step, self.stepsize, self.max_mom = float(base), float(step), int(stepsize), float(max_mom)

    def __call__(self, it):
        return min(self.base + self.step * (it // self.stepsize), self.max_mom)


class MomPolicy:
    """Momentum policies, as Mocha.jl's MomPolicy: MomPolicy.Fixed(0.9)(iter) -> momentum."""
    Fixed, Step, Linear = _FixedMom, _StepMom, _LinearMom


def _as_policy(p, what):
    if p is None or callable(p):
        return p
    if isinstance(p, (int, float)):
        return _FixedLR(p) if what == 'lr_policy' else _FixedMom(p)
    raise GraphcError(f"fit: {what} must be a policy (callable iter -> value), a number or None, got {p!r}")


# ---------------------------------------------------------------------------------------------- state
class SolverState:
    """What callbacks see: iter, epoch, loss (mean of the last batch), lr, momentum, val (the last
    validation's dict or None), history, net, trainer; set stop = True to end training."""

    def __init__(self, net, trainer, max_iter):
        self.net, self.trainer, self.max_iter = net, trainer, max_iter
        self.iter = self.epoch = 0
        self.loss = self.lr = self.momentum = self.val = None
        self.history = {'train': [], 'val': [], 'resumed_from': None, 'iter': 0, 'seconds': 0.0}
        self.stop = False


class Callback:
    """Base class for callbacks (any object with some of these methods works as well)."""

    def on_train_begin(self, state):
        pass

    def on_iter_end(self, state):
        pass

    def on_val_end(self, state):
        pass

    def on_train_end(self, state):
        pass


def _call(callbacks, hook, state):
    for cb in callbacks:
        f = getattr(cb, hook, None)
        if f is not None:
            f(state)


# ---------------------------------------------------------------------------------------------- evaluation
def _split(batch):
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise GraphcError(f"fit: a batch must be (data, label), got {type(batch).__name__}")


def _accuracy(out, label):
    return float((out.asnumpy().argmax(axis=1) == label.asnumpy().reshape(-1)).sum())


def evaluate(net, loss_fn, data, metric='accuracy'):
    """Mean loss and metric over `data` (batches of (data, label)): {'loss': ..., 'accuracy': ...}.

    metric: 'accuracy' (argmax of the outputs against the labels), None (loss only) or a
    callable metric(out, label) -> sum of the per-sample scores of the batch (reported under
    its __name__). The random state is restored afterwards."""
    rng = _random.get_state()
    try:
        total, loss_sum, score = 0, 0.0, 0.0
        for batch in data:
            x, y = _split(batch)
            out = net(x)
            loss_sum += float(loss_fn(out, y).sum().asscalar())
            if metric is not None:
                score += (_accuracy if metric == 'accuracy' else metric)(out, y)
            total += x.shape[0]
    finally:
        _random.set_state(rng)
    if total == 0:
        raise GraphcError("evaluate: val_data yielded no samples")
    res = {'loss': loss_sum / total}
    if metric is not None:
        res['accuracy' if metric == 'accuracy' else getattr(metric, '__name__', 'metric')] = score / total
    return res


# ---------------------------------------------------------------------------------------------- snapshots
_SNAP_RE = re.compile(r'snapshot-(\d+)\.json$')


def _snap_paths(snapshot_dir, it):
    base = os.path.join(snapshot_dir, f'snapshot-{it:08d}')
    return base + '.params', base + '.states', base + '.json'


def latest_snapshot(snapshot_dir):
    """The path of the newest complete snapshot's JSON in snapshot_dir, or None."""
    best = None
    for path in glob.glob(os.path.join(glob.escape(snapshot_dir), 'snapshot-*.json')):
        m = _SNAP_RE.search(os.path.basename(path))
        if not m:
            continue
        it = int(m.group(1))
        params, states, _ = _snap_paths(snapshot_dir, it)
        if os.path.exists(params) and os.path.exists(states) and (best is None or it > best[0]):
            best = (it, path)
    return best and best[1]


def _save_snapshot(snapshot_dir, state, pos):
    os.makedirs(snapshot_dir, exist_ok=True)
    params, states, meta = _snap_paths(snapshot_dir, state.iter)
    state.net.save_parameters(params)
    state.trainer.save_states(states)
    doc = {'version': SNAPSHOT_VERSION, 'iter': state.iter, 'epoch': state.epoch,
           'batch_in_epoch': pos['batch_in_epoch'], 'epoch_rng_state': pos['epoch_rng_state'],
           'rng_state': _random.get_state(), 'history': state.history}
    tmp = meta + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(doc, f)
    os.replace(tmp, meta)  # the JSON appears last and whole: it marks the snapshot complete
    return meta


def _load_snapshot(meta, state):
    with open(meta) as f:
        doc = json.load(f)
    if doc.get('version') != SNAPSHOT_VERSION:
        raise GraphcError(f"{meta}: snapshot version {doc.get('version')!r}, this solver reads {SNAPSHOT_VERSION}")
    params, states, _ = _snap_paths(os.path.dirname(meta), int(doc['iter']))
    state.net.load_parameters(params)
    state.trainer.load_states(states)
    state.iter, state.epoch = int(doc['iter']), int(doc['epoch'])
    state.history = doc['history']
    return doc


# ---------------------------------------------------------------------------------------------- fit
def fit(net, loss_fn, train_data, *, max_iter, trainer=None, optimizer='sgd', optimizer_params=None,
        lr_policy=None, momentum_policy=None, val_data=None, val_every=0, summary_every=100,
        snapshot_every=0, snapshot_dir=None, resume=True, callbacks=(), metric='accuracy', log='stdout'):
    """Train `net` for max_iter optimizer steps over repeated passes of train_data; see the module doc.

    trainer: a gluon.Trainer over net's parameters, or None to make one from optimizer (a name or an
    Optimizer) and optimizer_params. lr_policy / momentum_policy: policies (LRPolicy.*, MomPolicy.*,
    a callable iter -> value, or a number) or None (leave the optimizer's). val_every, summary_every,
    snapshot_every: periods in iterations (0: never; validation also runs after the last step when
    val_data is given). log: a file for the summary lines ('stdout': sys.stdout at call time), or None.
    """
    if max_iter < 0:
        raise GraphcError(f"fit: max_iter must be >= 0, got {max_iter}")
    if snapshot_every and not snapshot_dir:
        raise GraphcError("fit: snapshot_every needs a snapshot_dir")
    lr_policy = _as_policy(lr_policy, 'lr_policy')
    momentum_policy = _as_policy(momentum_policy, 'momentum_policy')
    if trainer is None:
        trainer = Trainer(_structural_params(net), optimizer, optimizer_params)
    elif optimizer_params:
        raise GraphcError("fit: optimizer_params must not be given together with trainer")
    opt = trainer.optimizer
    if lr_policy is not None and opt.lr_scheduler is not None:
        raise GraphcError("fit: the optimizer has an lr_scheduler; give lr_policy=None or an optimizer without one")
    if momentum_policy is not None and not hasattr(opt, 'momentum'):
        raise GraphcError(f"fit: momentum_policy needs an optimizer with momentum, {type(opt).__name__} has none")
    callbacks = list(callbacks or ())
    if log == 'stdout':
        log = sys.stdout

    def say(msg):
        if log is not None:
            print(msg, file=log, flush=True)

    state = SolverState(net, trainer, max_iter)
    resume_doc = None
    if resume and snapshot_dir and os.path.isdir(snapshot_dir):
        meta = latest_snapshot(snapshot_dir)
        if meta is not None:
            resume_doc = _load_snapshot(meta, state)
            state.history['resumed_from'] = state.iter
            say(f"resumed from {meta} (iteration {state.iter})")
    hist = state.history

    # the data iterator, at the position the snapshot (if any) left it
    if resume_doc is not None:
        _random.set_state(resume_doc['epoch_rng_state'])
        pos = {'epoch_rng_state': resume_doc['epoch_rng_state'], 'batch_in_epoch': 0}
        data_iter = iter(train_data)
        for _ in range(int(resume_doc['batch_in_epoch'])):
            try:
                next(data_iter)
            except StopIteration:
                raise GraphcError("fit: train_data has fewer batches per epoch than when the snapshot was taken; "
                                  "resume needs the same data") from None
            pos['batch_in_epoch'] += 1
        _random.set_state(resume_doc['rng_state'])
    else:
        pos = {'epoch_rng_state': _random.get_state(), 'batch_in_epoch': 0}
        data_iter = iter(train_data)

    _call(callbacks, 'on_train_begin', state)
    t_start = time.perf_counter()
    win_loss, win_samples, win_time = 0.0, 0, 0.0
    while state.iter < max_iter and not state.stop:
        t0 = time.perf_counter()  # samples/s counts data loading and the step, not validation or snapshots
        try:
            batch = next(data_iter)
        except StopIteration:
            if pos['batch_in_epoch'] == 0:
                raise GraphcError("fit: train_data yielded no batches") from None
            state.epoch += 1
            pos = {'epoch_rng_state': _random.get_state(), 'batch_in_epoch': 0}
            data_iter = iter(train_data)
            win_time += time.perf_counter() - t0
            continue
        pos['batch_in_epoch'] += 1
        x, y = _split(batch)
        if lr_policy is not None:
            trainer.set_learning_rate(lr_policy(state.iter))
        if momentum_policy is not None:
            opt.momentum = momentum_policy(state.iter)
        state.momentum = getattr(opt, 'momentum', None)
        with autograd.record():
            out = net(x)
            loss = loss_fn(out, y)
        loss.backward()
        n = x.shape[0]
        trainer.step(n)
        state.lr = trainer.learning_rate  # with a scheduler: the rate of this step (num_update has moved on)
        batch_loss = float(loss.sum().asscalar())
        state.iter += 1
        win_time += time.perf_counter() - t0
        state.loss = batch_loss / n
        if not math.isfinite(state.loss):
            say(f"iter {state.iter}: loss is {state.loss}")
        win_loss += batch_loss
        win_samples += n

        if summary_every and state.iter % summary_every == 0:
            rec = {'iter': state.iter, 'epoch': state.epoch, 'loss': win_loss / win_samples, 'lr': state.lr,
                   'samples_per_sec': win_samples / win_time if win_time > 0 else float('inf')}
            hist['train'].append(rec)
            say(f"iter {rec['iter']:6d} | epoch {rec['epoch']:3d} | loss {rec['loss']:.4f} | lr {rec['lr']:.6g} | "
                f"{rec['samples_per_sec']:.0f} samples/s")
            win_loss, win_samples, win_time = 0.0, 0, 0.0
        _call(callbacks, 'on_iter_end', state)
        last = state.iter >= max_iter or state.stop
        if val_data is not None and ((val_every and state.iter % val_every == 0) or last):
            _validate(state, net, loss_fn, val_data, metric, callbacks, say)
        if snapshot_dir and snapshot_every and (state.iter % snapshot_every == 0 or last):
            hist['iter'] = state.iter
            _save_snapshot(snapshot_dir, state, pos)
    if val_data is not None and state.iter > 0 and (not hist['val'] or hist['val'][-1]['iter'] != state.iter):
        _validate(state, net, loss_fn, val_data, metric, callbacks, say)  # e.g. resumed at max_iter
    hist['iter'] = state.iter
    hist['seconds'] = time.perf_counter() - t_start
    _call(callbacks, 'on_train_end', state)
    return hist


def _structural_params(net):
    """net's Parameters under their attribute-path names ('0.weight'), as save_parameters names them: the
    optimizer-state file then does not depend on the global layer counter (dense0_ vs dense3_)."""
    get = getattr(net, '_collect_params_with_prefix', None)
    if get is None:
        return net.collect_params()
    out, seen = {}, set()
    for k, p in get().items():
        if id(p) not in seen:
            seen.add(id(p))
            out[k] = p
    return out


def _validate(state, net, loss_fn, val_data, metric, callbacks, say):
    res = evaluate(net, loss_fn, val_data, metric)
    rec = {'iter': state.iter, **res}
    state.history['val'].append(rec)
    state.val = rec
    say(f"iter {state.iter:6d} | validation " + ' | '.join(f"{k} {v:.4f}" for k, v in res.items()))
    _call(callbacks, 'on_val_end', state)
