"""Estimator: MXNet 1.9's fit/evaluate loop over a Gluon DataLoader, driven by event handlers."""
import copy
import logging
import sys
import warnings

from .... import metric as _metric
from ....base import GraphcError
from ....context import Context, cpu, num_gpus, gpu
from ...data import DataLoader
from ...loss import Loss as _Loss, SoftmaxCrossEntropyLoss
from ...trainer import Trainer
from .batch_processor import BatchProcessor
from .event_handler import (BatchBegin, BatchEnd, EpochBegin, EpochEnd, EventHandler, GradientUpdateHandler,
                            LoggingHandler,
                            MetricHandler, StoppingHandler, TrainBegin, TrainEnd, ValidationHandler)


def _as_metrics(metrics):
    metrics = [] if metrics is None else metrics if isinstance(metrics, list) else [metrics]
    bad = [m for m in metrics if not isinstance(m, _metric.EvalMetric)]
    if bad:
        raise ValueError(f"metrics must be EvalMetric instances (mx.metric), got {bad[0]!r}")
    return metrics


class Estimator:
    """Estimator(net, loss, train_metrics=None, val_metrics=None, initializer=None, trainer=None, context=None,
    val_net=None, val_loss=None, batch_processor=None).

    Without train_metrics, a loss-suited metric (Accuracy for SoftmaxCrossEntropyLoss) and the running loss are
    tracked; every train metric is renamed 'training <name>' and copied as 'validation <name>'. Without a
    trainer: SGD at learning rate 0.001 (with a warning, as MXNet)."""

    def __init__(self, net, loss, train_metrics=None, val_metrics=None, initializer=None, trainer=None,
                 context=None, val_net=None, val_loss=None, batch_processor=None):
        self.net, self.loss = net, self._check_loss(loss)
        self._train_metrics, self._val_metrics = _as_metrics(train_metrics), _as_metrics(val_metrics)
        if not self._train_metrics:
            if isinstance(self.loss, SoftmaxCrossEntropyLoss):
                self._train_metrics.append(_metric.Accuracy())
            self._train_metrics.append(_metric.Loss(self.loss.name.rstrip('0123456789')))
        for m in self._train_metrics:
            m.name = 'training ' + m.name
        if not self._val_metrics:
            self._val_metrics = [copy.deepcopy(m) for m in self._train_metrics]
        for m in self._val_metrics:
            m.name = m.name.replace('training', 'validation') if 'training' in m.name else 'validation ' + m.name
        self.val_loss = self._check_loss(val_loss) if val_loss is not None else self.loss
        self.val_net = val_net if val_net is not None else net
        self.logger = logging.Logger(name='Estimator', level=logging.INFO)
        self.logger.addHandler(logging.StreamHandler(sys.stdout))
        self.context = self._check_context(context)
        self._initialize(initializer)
        self.trainer = self._check_trainer(trainer)
        if batch_processor is not None and not isinstance(batch_processor, BatchProcessor):
            raise ValueError(f"batch_processor must be a BatchProcessor, got {batch_processor!r}")
        self.batch_processor = batch_processor or BatchProcessor()
        self.max_epoch = self.max_batch = None

    @staticmethod
    def _check_loss(loss):
        if not isinstance(loss, _Loss):
            raise ValueError(f"loss must be a gluon.loss.Loss, got {loss!r}")
        return loss

    @staticmethod
    def _check_context(context):
        """[context]; default: gpu(0) when there is a GPU (a warning when there are more), else cpu()."""
        gpus = [gpu(i) for i in range(num_gpus())]
        if not context:
            if len(gpus) > 1:
                warnings.warn("You have multiple GPUs, gpu(0) is used by default; give context=[mx.gpu(0), "
                              "mx.gpu(1), ...] to use more")
            return gpus[:1] or [cpu()]
        ctxs = context if isinstance(context, list) else [context]
        if not all(isinstance(c, Context) for c in ctxs):
            raise ValueError(f"context must be a Context or a list of them, got {context!r}")
        for c in ctxs:
            if c.device_type != 'cpu' and c not in gpus:  # AssertionError: MXNet's type for this check
                raise AssertionError(f"{c} is not available; the context must be one of mx.cpu(), "
                                     f"{', '.join(map(str, gpus)) or '(no GPU here)'}")
        return ctxs

    def _initialize(self, initializer):
        params = self.net.collect_params()
        try:
            initialized = all(params[k].list_ctx() for k in params)
        except GraphcError:
            initialized = False
        if not initialized:
            self.net.initialize(init=initializer, ctx=self.context) if initializer else \
                self.net.initialize(ctx=self.context)
        elif initializer:
            warnings.warn("Network already fully initialized, skipping initialization; use "
                          "net.initialize(init=..., force_reinit=True) to re-initialize")

    def _check_trainer(self, trainer):
        if trainer is None:
            warnings.warn("No trainer specified, default SGD optimizer with learning rate 0.001 is used.")
            return Trainer(self.net.collect_params(), 'sgd', {'learning_rate': 0.001})
        if not isinstance(trainer, Trainer):
            raise ValueError(f"trainer must be a gluon.Trainer, got {trainer!r}")
        return trainer

    @property
    def train_metrics(self):
        return self._train_metrics

    @property
    def val_metrics(self):
        return self._val_metrics

    def evaluate(self, val_data, batch_axis=0, event_handlers=None):
        """Run the validation net over val_data, updating val_metrics (reset first)."""
        if not isinstance(val_data, DataLoader):
            raise ValueError("Estimator only supports a gluon.data.DataLoader for val_data")
        for m in self.val_metrics:
            m.reset()
        _, epoch_begin, batch_begin, batch_end, epoch_end, _ = self._categorize_handlers(
            self._prepare_default_validation_handlers(event_handlers))
        ev = {'epoch_begin': epoch_begin, 'batch_begin': batch_begin, 'batch_end': batch_end, 'epoch_end': epoch_end}
        for h in ev['epoch_begin']:
            h.epoch_begin(self)
        for batch in val_data:
            for h in ev['batch_begin']:
                h.batch_begin(self, batch=batch)
            _, label, pred, loss = self.batch_processor.evaluate_batch(self, batch, batch_axis)
            for h in ev['batch_end']:
                h.batch_end(self, batch=batch, pred=pred, label=label, loss=loss)
        for h in ev['epoch_end']:
            h.epoch_end(self)

    def fit(self, train_data, val_data=None, epochs=None, event_handlers=None, batches=None, batch_axis=0):
        """Train for `epochs` passes over train_data or for `batches` batches (exactly one of them)."""
        if not isinstance(train_data, DataLoader):
            raise ValueError("Estimator only supports a gluon.data.DataLoader for train_data; wrap arrays in "
                             "gluon.data.ArrayDataset and a DataLoader")
        if (not epochs) == (not batches):
            raise ValueError("fit: give exactly one of epochs or batches")
        self.max_epoch, self.max_batch = epochs, batches
        ev = dict(zip(('train_begin', 'epoch_begin', 'batch_begin', 'batch_end', 'epoch_end', 'train_end'),
                      self._categorize_handlers(self._prepare_default_handlers(val_data, event_handlers))))
        for h in ev['train_begin']:
            h.train_begin(self)
        while True:
            for h in ev['epoch_begin']:
                h.epoch_begin(self)
            stop = False
            for batch in train_data:
                for h in ev['batch_begin']:
                    h.batch_begin(self, batch=batch)
                _, label, pred, loss = self.batch_processor.fit_batch(self, batch, batch_axis)
                # (every handler sees the batch end, then any of them may stop the loop)
                if any([h.batch_end(self, batch=batch, pred=pred, label=label, loss=loss) for h in ev['batch_end']]):
                    stop = True
                    break
            if any([h.epoch_end(self) for h in ev['epoch_end']]) or stop:
                break
        for h in ev['train_end']:
            h.train_end(self)

    def _prepare_default_handlers(self, val_data, event_handlers):
        """The user's handlers plus the defaults they lack (stopping, gradient update, metrics, validation when
        val_data, logging), by priority. When both kinds are there, every metric a handler refers to must be
        one of the estimator's train / val metrics."""
        handlers = _as_handlers(event_handlers)
        have = lambda cls: any(isinstance(h, cls) for h in handlers)  # noqa: E731
        added = [StoppingHandler(self.max_epoch, self.max_batch)]
        if not have(GradientUpdateHandler):
            added.append(GradientUpdateHandler())
        if not have(MetricHandler):
            added.append(MetricHandler(metrics=self.train_metrics))
        if not have(ValidationHandler) and val_data:
            added.append(ValidationHandler(val_data=val_data, eval_fn=self.evaluate))
        if not have(LoggingHandler):
            added.append(LoggingHandler(metrics=self.train_metrics))
        return _merge(handlers, added, self.train_metrics + self.val_metrics)

    def _prepare_default_validation_handlers(self, event_handlers):
        handlers = _as_handlers(event_handlers)
        added = [] if any(isinstance(h, MetricHandler) for h in handlers) else [MetricHandler(metrics=self.val_metrics)]
        if not any(isinstance(h, LoggingHandler) for h in handlers):
            added.append(LoggingHandler(metrics=self.val_metrics))
        return _merge(handlers, added, self.val_metrics)

    @staticmethod
    def _categorize_handlers(handlers):
        """(train_begin, epoch_begin, batch_begin, batch_end, epoch_end, train_end): the handlers that take each
        event, in the given order."""
        kinds = (TrainBegin, EpochBegin, BatchBegin, BatchEnd, EpochEnd, TrainEnd)
        return tuple([h for h in handlers if isinstance(h, k)] for k in kinds)


def _as_handlers(event_handlers):
    handlers = list(event_handlers) if isinstance(event_handlers, (list, tuple)) else \
        [event_handlers] if event_handlers is not None else []
    bad = [h for h in handlers if not isinstance(h, EventHandler)]
    if bad:
        raise ValueError(f"event_handlers must be EventHandler instances, got {bad[0]!r}")
    return handlers


def _merge(handlers, added, known):
    if handlers and added:  # a user handler and a default one must watch the same metric objects
        known = {id(m) for m in known}
        for h in handlers + added:
            refs = list(getattr(h, 'metrics', None) or [])
            if isinstance(getattr(h, 'monitor', None), _metric.EvalMetric):
                refs.append(h.monitor)
            for m in refs:
                if id(m) not in known:
                    raise ValueError(f"event handler {type(h).__name__} refers to metric {m.name!r}, which is not "
                                     "one of estimator.train_metrics / val_metrics; use those")
    return sorted(handlers + added, key=lambda h: getattr(h, 'priority', 0))
