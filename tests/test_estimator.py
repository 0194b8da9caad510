"""gluon.contrib.estimator: MXNet 1.9's Estimator.fit/evaluate and its event handlers."""
import io
import logging
import os

import numpy as np
import pytest

import graphc as mx
from graphc import gluon
from graphc.gluon.contrib.estimator import (BatchEnd, BatchProcessor, CheckpointHandler, EarlyStoppingHandler,
                                            EpochEnd, Estimator, LoggingHandler, ValidationHandler)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(192, 6)).astype('float32')
Y = (X[:, 0] - X[:, 1] > 0).astype('float32')


def _loader(lo, hi, shuffle=False):
    return gluon.data.DataLoader(gluon.data.ArrayDataset(X[lo:hi], Y[lo:hi]), batch_size=32, shuffle=shuffle)


def _estimator(**kw):
    mx.random.seed(0)
    net = gluon.nn.HybridSequential()
    net.add(gluon.nn.Dense(16, activation='relu'), gluon.nn.Dense(2))
    net.initialize(mx.init.Xavier())
    trainer = gluon.Trainer(net.collect_params(), 'adam', {'learning_rate': 0.02})
    est = Estimator(net, gluon.loss.SoftmaxCrossEntropyLoss(), trainer=trainer, context=mx.cpu(), **kw)
    out = io.StringIO()
    est.logger.handlers = [logging.StreamHandler(out)]
    return est, out


def test_fit_learns_and_logs_like_mxnet():
    est, out = _estimator()
    assert [m.name for m in est.train_metrics] == ['training accuracy', 'training softmaxcrossentropyloss']
    assert [m.name for m in est.val_metrics] == ['validation accuracy', 'validation softmaxcrossentropyloss']
    est.fit(_loader(0, 160, shuffle=True), val_data=_loader(160, 192), epochs=6)
    log = out.getvalue()
    assert 'Training begin: using optimizer Adam with current learning rate 0.0200' in log
    assert 'Train for 6 epochs.' in log and '[Epoch 5] Finished in' in log and 'validation accuracy: ' in log
    assert log.rstrip().splitlines()[-1].startswith('Train finished using total')
    est.evaluate(_loader(160, 192))
    assert est.val_metrics[0].get()[1] > 0.85 and est.train_metrics[0].get()[1] > 0.85


def test_batches_stop_the_loop_and_the_batch_log_interval():
    est, out = _estimator()
    seen = []

    class Count(BatchEnd):
        def batch_end(self, estimator, *args, **kwargs):
            seen.append(kwargs['batch'][0].shape[0])

    est.fit(_loader(0, 160), batches=7, event_handlers=[Count(), LoggingHandler(log_interval=3,
                                                                                metrics=est.train_metrics)])
    assert len(seen) == 7  # 5 batches in the first epoch, 2 in the second
    log = out.getvalue()
    assert 'Train for 7 batches.' in log and '[Epoch 1][Batch 0][Samples 32]' in log and '[Epoch 0][Batch 3]' in log


def test_handler_priorities_order_the_events():
    est, _ = _estimator()
    order = []

    class Tag(EpochEnd):
        def __init__(self, name, priority):
            self.name, self.priority = name, priority

        def epoch_end(self, estimator, *args, **kwargs):
            order.append(self.name)

    est.fit(_loader(0, 64), epochs=1, event_handlers=[Tag('late', 5), Tag('early', -5000)])
    assert order == ['early', 'late']


def test_checkpoints_keep_the_last_and_the_best_and_resume(tmp_path):
    est, _ = _estimator()
    acc = est.train_metrics[0]
    ck = CheckpointHandler(str(tmp_path), model_prefix='m', monitor=acc, save_best=True, max_checkpoints=2)
    est.fit(_loader(0, 160), epochs=3, event_handlers=[ck])
    files = sorted(os.listdir(tmp_path))
    assert files == ['m-best.params', 'm-best.states', 'm-epoch1batch10.params', 'm-epoch1batch10.states',
                     'm-epoch2batch15.params', 'm-epoch2batch15.states']
    w = est.net[0].weight.data().asnumpy().copy()
    est2, out2 = _estimator()
    resumed = CheckpointHandler(str(tmp_path), model_prefix='m', resume_from_checkpoint=True)
    epochs = []

    class Count(EpochEnd):
        def epoch_end(self, estimator, *args, **kwargs):
            epochs.append(1)

    est2.fit(_loader(0, 160), epochs=5, event_handlers=[resumed, Count()])
    assert 'Checkpoint resumed from epoch 2 batch 15' in out2.getvalue() and len(epochs) == 2  # 3 done, 2 left
    assert 'm-epoch4batch25.params' in os.listdir(tmp_path)
    est3, _ = _estimator()
    est3.net.load_parameters(str(tmp_path / 'm-epoch2batch15.params'))
    np.testing.assert_array_equal(est3.net[0].weight.data().asnumpy(), w)


def test_early_stopping_and_validation_periods():
    est, out = _estimator()
    es = EarlyStoppingHandler(monitor=est.train_metrics[0], min_delta=1.0, patience=1)
    calls = []
    val = ValidationHandler(_loader(160, 192), eval_fn=lambda **kw: calls.append(kw['val_data']), epoch_period=None,
                            batch_period=2)
    est.fit(_loader(0, 160), epochs=10, event_handlers=[es, val])
    assert es.stopped_epoch == 1 and 'early stopping due to training accuracy not improving' in out.getvalue()
    assert len(calls) == 5  # 10 batches in 2 epochs, every second one


def test_a_custom_batch_processor_and_clear_errors():
    est, _ = _estimator()
    seen = []

    class Scaled(BatchProcessor):
        def fit_batch(self, estimator, train_batch, batch_axis=0):
            seen.append(train_batch[0].shape)
            return super().fit_batch(estimator, (train_batch[0] * 2, train_batch[1]), batch_axis)

    est.batch_processor = Scaled()
    est.fit(_loader(0, 64), epochs=1)
    assert seen == [(32, 6), (32, 6)]
    with pytest.raises(ValueError, match='exactly one of epochs or batches'):
        est.fit(_loader(0, 64), epochs=1, batches=2)
    with pytest.raises(ValueError, match='DataLoader'):
        est.fit([(X, Y)], epochs=1)
    with pytest.raises(ValueError, match='gluon.loss.Loss'):
        Estimator(est.net, loss='l2')
    with pytest.raises(ValueError, match='save_best needs a monitor'):
        CheckpointHandler('/tmp', save_best=True)


def test_default_handlers_are_merged_by_priority_and_must_share_the_metrics():
    from graphc.gluon.contrib.estimator import GradientUpdateHandler, MetricHandler, StoppingHandler
    est, _ = _estimator()
    early = EarlyStoppingHandler(monitor=est.val_metrics[0])
    hs = est._prepare_default_handlers(val_data=None, event_handlers=[early])
    assert [type(h) for h in hs] == [GradientUpdateHandler, MetricHandler, EarlyStoppingHandler, StoppingHandler,
                                     LoggingHandler]
    tb, eb, bb, be, ee, te = est._categorize_handlers(hs)
    assert LoggingHandler in map(type, tb) and MetricHandler in map(type, be) and early in ee and early in te
    foreign = LoggingHandler(metrics=[mx.metric.RMSE('other')])
    with pytest.raises(ValueError, match="'other'"):
        est.fit(_loader(0, 64), epochs=1, event_handlers=[foreign])
    with pytest.raises(AssertionError, match='not available'):
        Estimator(est.net, gluon.loss.L2Loss(), context=[mx.gpu(100)])


def test_checkpoint_names_count_batches_as_mxnet_and_the_symbol_is_saved(tmp_path):
    est, out = _estimator()
    est.net.hybridize()
    ck = CheckpointHandler(str(tmp_path), 'm', epoch_period=None, batch_period=2, max_checkpoints=2)
    log = LoggingHandler(metrics=est.train_metrics)
    est.fit(_loader(0, 128), batches=5, event_handlers=[ck, log])  # 4 batches an epoch
    names = sorted(f for f in os.listdir(tmp_path))
    # saved after batch indexes 1 and 3 (epoch 0) and 5 would be next; the last two are kept
    assert 'm-symbol.json' in names and 'm-epoch0batch3.params' in names and 'm-epoch0batch1.params' in names
    assert log.batch_index == 0 and log.current_epoch == 2  # the stopped epoch ends too: its count resets
    sym = mx.sym.load(str(tmp_path / 'm-symbol.json'))
    assert len(sym.list_outputs()) == 1
