"""The Estimator's event handlers (MXNet 1.9's): each subclasses the events it takes (TrainBegin, EpochBegin,
BatchBegin, BatchEnd, EpochEnd, TrainEnd); a batch_end / epoch_end returning True stops training. Handlers run
in ascending `priority` (gradient update -2000, metrics and validation -1000, others 0, logging last)."""
import math
import os
import time
import warnings

from .... import metric as _metric


class EventHandler:
    pass


class TrainBegin(EventHandler):
    def train_begin(self, estimator, *args, **kwargs):
        pass


class TrainEnd(EventHandler):
    def train_end(self, estimator, *args, **kwargs):
        pass


class EpochBegin(EventHandler):
    def epoch_begin(self, estimator, *args, **kwargs):
        pass


class EpochEnd(EventHandler):
    def epoch_end(self, estimator, *args, **kwargs):
        pass


class BatchBegin(EventHandler):
    def batch_begin(self, estimator, *args, **kwargs):
        pass


class BatchEnd(EventHandler):
    def batch_end(self, estimator, *args, **kwargs):
        pass


class StoppingHandler(TrainBegin, BatchEnd, EpochEnd):
    """Stops after max_epoch epochs or max_batch batches (the Estimator's fit arguments)."""

    def __init__(self, max_epoch=None, max_batch=None):
        self.max_epoch, self.max_batch = max_epoch, max_batch
        self.current_epoch = self.current_batch = 0
        self.stop_training = False

    def train_begin(self, estimator, *args, **kwargs):
        self.max_epoch, self.max_batch = estimator.max_epoch, estimator.max_batch
        self.current_epoch = self.current_batch = 0
        self.stop_training = False

    def batch_end(self, estimator, *args, **kwargs):
        self.current_batch += 1
        self.stop_training = self.stop_training or self.current_batch == self.max_batch
        return self.stop_training

    def epoch_end(self, estimator, *args, **kwargs):
        self.current_epoch += 1
        self.stop_training = self.stop_training or self.current_epoch == self.max_epoch
        return self.stop_training


class GradientUpdateHandler(BatchEnd):
    """trainer.step(batch size) after each batch: the update, as a handler so it can be replaced."""

    def __init__(self, priority=-2000):
        self.priority = priority

    def batch_end(self, estimator, *args, **kwargs):
        loss = kwargs['loss']
        estimator.trainer.step(sum(lo.shape[0] if lo.shape else 1 for lo in loss))


class MetricHandler(EpochBegin, BatchEnd):
    """Resets the metrics at each epoch and updates them after each batch (Loss metrics with the loss)."""

    def __init__(self, metrics, priority=-1000):
        self.metrics, self.priority = metrics or [], priority

    def epoch_begin(self, estimator, *args, **kwargs):
        for m in self.metrics:
            m.reset()

    def batch_end(self, estimator, *args, **kwargs):
        for m in self.metrics:
            if isinstance(m, _metric.Loss):
                m.update(0, kwargs['loss'])
            else:
                m.update(kwargs['label'], kwargs['pred'])


class ValidationHandler(TrainBegin, BatchEnd, EpochEnd):
    """eval_fn(val_data=..., event_handlers=...) every epoch_period epochs and/or batch_period batches."""

    def __init__(self, val_data, eval_fn, epoch_period=1, batch_period=None, priority=-1000, event_handlers=None):
        self.val_data, self.eval_fn = val_data, eval_fn
        self.epoch_period, self.batch_period, self.priority = epoch_period, batch_period, priority
        self.event_handlers = event_handlers
        self.current_epoch = self.current_batch = 0

    def train_begin(self, estimator, *args, **kwargs):
        self.current_epoch = self.current_batch = 0

    def batch_end(self, estimator, *args, **kwargs):
        self.current_batch += 1
        if self.batch_period and self.current_batch % self.batch_period == 0:
            self.eval_fn(val_data=self.val_data, event_handlers=self.event_handlers)

    def epoch_end(self, estimator, *args, **kwargs):
        self.current_epoch += 1
        if self.epoch_period and self.current_epoch % self.epoch_period == 0:
            self.eval_fn(val_data=self.val_data, event_handlers=self.event_handlers)


def _metric_line(metrics):
    return ', '.join('%s: %.4f' % (n, v) for m in metrics for n, v in _name_values(m))


def _name_values(m):
    names, values = m.get()
    return zip(names, values) if isinstance(names, list) else [(names, values)]


class LoggingHandler(TrainBegin, TrainEnd, EpochBegin, EpochEnd, BatchBegin, BatchEnd):
    """Logs to estimator.logger: the optimizer at the start, each epoch's time and metrics, and with
    log_interval=N every N batches' samples, time and metrics ('epoch': once per epoch)."""

    def __init__(self, log_interval='epoch', metrics=None, priority=math.inf):
        if log_interval != 'epoch' and not (isinstance(log_interval, int) and log_interval > 0):
            raise ValueError(f"LoggingHandler: log_interval must be 'epoch' or a positive int, got {log_interval!r}")
        self.log_interval, self.metrics, self.priority = log_interval, metrics or [], priority
        self.current_epoch = self.batch_index = self.processed_samples = 0

    def train_begin(self, estimator, *args, **kwargs):
        self.train_start = time.time()
        tr = estimator.trainer
        estimator.logger.info("Training begin: using optimizer %s with current learning rate %.4f ",
                              type(tr.optimizer).__name__, tr.learning_rate)
        if estimator.max_epoch:
            estimator.logger.info("Train for %d epochs.", estimator.max_epoch)
        else:
            estimator.logger.info("Train for %d batches.", estimator.max_batch)
        self.current_epoch = 0

    def train_end(self, estimator, *args, **kwargs):
        msg = 'Train finished using total %ds with %d epochs. ' % (time.time() - self.train_start, self.current_epoch)
        estimator.logger.info(msg + _metric_line(self.metrics))

    def epoch_begin(self, estimator, *args, **kwargs):
        self.epoch_start = self.interval_start = time.time()
        self.batch_index = self.processed_samples = 0
        if any('training' in m.name for m in self.metrics):  # (the estimator's name prefixes tell them apart)
            estimator.logger.info("[Epoch %d] Begin, current learning rate: %.4f", self.current_epoch,
                                  estimator.trainer.learning_rate)
        else:
            estimator.logger.info("Validation Begin")

    def batch_begin(self, estimator, *args, **kwargs):
        pass

    def batch_end(self, estimator, *args, **kwargs):
        if isinstance(self.log_interval, int):
            batch = kwargs['batch']
            self.processed_samples += batch[0].shape[0]
            if self.batch_index % self.log_interval == 0:
                now = time.time()
                msg = '[Epoch %d][Batch %d][Samples %d] time/interval: %.3fs ' % (
                    self.current_epoch, self.batch_index, self.processed_samples, now - self.interval_start)
                self.interval_start = now
                estimator.logger.info(msg + _metric_line(self.metrics))
        self.batch_index += 1

    def epoch_end(self, estimator, *args, **kwargs):
        msg = '[Epoch %d] Finished in %.3fs, ' % (self.current_epoch, time.time() - self.epoch_start)
        estimator.logger.info(msg + _metric_line(self.metrics))
        self.current_epoch += 1
        self.batch_index = 0


def _monitor_mode(monitor, mode):
    """'max' or 'min': for mode='auto', accuracy/f1-like metrics are maximized, others (losses) minimized."""
    if mode not in ('auto', 'min', 'max'):
        warnings.warn(f"mode {mode!r} is unknown, fallback to auto mode")
        mode = 'auto'
    if mode != 'auto':
        return mode
    name = monitor.get()[0] if monitor is not None else ''
    name = name if isinstance(name, str) else ' '.join(name)
    return 'max' if any(k in name.lower() for k in ('acc', 'f1', 'mcc', 'auc', 'top')) else 'min'


def _monitor_value(monitor):
    names, values = monitor.get()
    return values[0] if isinstance(values, list) else values


class CheckpointHandler(TrainBegin, BatchEnd, EpochEnd):
    """Saves net.save_parameters and trainer.save_states as model_dir/PREFIX-epochEbatchB.{params,states} every
    epoch_period epochs / batch_period batches (keeping the last max_checkpoints), and with save_best the
    best one by `monitor` as PREFIX-best.*. resume_from_checkpoint loads the newest and trains the rest."""

    def __init__(self, model_dir, model_prefix='model', monitor=None, verbose=0, save_best=False, mode='auto',
                 epoch_period=1, batch_period=None, max_checkpoints=5, resume_from_checkpoint=False):
        if save_best and monitor is None:
            raise ValueError("CheckpointHandler: save_best needs a monitor metric")
        self.model_dir, self.model_prefix, self.monitor, self.verbose = model_dir, model_prefix, monitor, verbose
        self.save_best, self.epoch_period, self.batch_period = save_best, epoch_period, batch_period
        self.max_checkpoints, self.resume_from_checkpoint = max_checkpoints, resume_from_checkpoint
        self.mode = _monitor_mode(monitor, mode) if save_best else 'min'
        self.best = math.inf if self.mode == 'min' else -math.inf
        self.saved_checkpoints, self.trained_epoch, self.trained_batch = [], -1, 0
        self.current_epoch = self.current_batch = 0
        os.makedirs(model_dir, exist_ok=True)

    def train_begin(self, estimator, *args, **kwargs):
        self.current_epoch = self.current_batch = 0
        if self.resume_from_checkpoint:
            self._resume(estimator)

    def batch_end(self, estimator, *args, **kwargs):
        if self.current_batch == 0:
            self._save_symbol(estimator)
        if self.batch_period and (self.current_batch + 1) % self.batch_period == 0:
            self._save(estimator)
        self.current_batch += 1

    def _save_symbol(self, estimator):
        """PREFIX-symbol.json, once, after the first batch: the graph of a hybridized net's last call."""
        path = os.path.join(self.model_dir, self.model_prefix + '-symbol.json')
        entry = estimator.net.cached_graph() if hasattr(estimator.net, 'cached_graph') else None
        if entry is None:
            estimator.logger.info("Model architecture (symbol file) is not saved: build the model from "
                                  "HybridBlocks and call net.hybridize() to have it saved as %s", path)
            return
        from ....graph import Graph
        from ....mxjson import atomic_write, graph_to_json
        atomic_write(path, graph_to_json(Graph(entry.visible), [v.name for v in entry.data_vars]).encode())

    def epoch_end(self, estimator, *args, **kwargs):
        if self.epoch_period and (self.current_epoch + 1) % self.epoch_period == 0:
            self._save(estimator)
        self.current_epoch += 1

    def _save(self, estimator):
        # MXNet's names: the epoch under way and current_batch (at a batch end: the index of the batch just
        # done; at an epoch end: the batches done); a resumed run counts on from the checkpoint's numbers
        e, b = self.current_epoch, self.current_batch
        if self.trained_epoch >= 0:
            e, b = e + self.trained_epoch + 1, b + self.trained_batch + (0 if estimator.max_epoch else 1)
        prefix = '%s-epoch%dbatch%d' % (self.model_prefix, e, b)
        self._write(estimator, prefix)
        self.saved_checkpoints.append(prefix)
        while self.max_checkpoints and len(self.saved_checkpoints) > self.max_checkpoints:
            old = self.saved_checkpoints.pop(0)
            for ext in ('.params', '.states'):
                path = os.path.join(self.model_dir, old + ext)
                if os.path.exists(path):
                    os.remove(path)
        if self.save_best:
            value = _monitor_value(self.monitor)
            better = value < self.best if self.mode == 'min' else value > self.best
            if better:
                if self.verbose:
                    estimator.logger.info('[Epoch %d] CheckpointHandler: %s improved from %0.5f to %0.5f, '
                                          'updating best model', self.current_epoch, self.monitor.get()[0],
                                          self.best, value)
                self.best = value
                self._write(estimator, self.model_prefix + '-best')

    def _write(self, estimator, prefix):
        estimator.net.save_parameters(os.path.join(self.model_dir, prefix + '.params'))
        estimator.trainer.save_states(os.path.join(self.model_dir, prefix + '.states'))
        if self.verbose > 1:
            estimator.logger.info('CheckpointHandler: saved %s', os.path.join(self.model_dir, prefix))

    def _resume(self, estimator):
        found = []
        for f in os.listdir(self.model_dir):
            stem, ext = os.path.splitext(f)
            head = self.model_prefix + '-epoch'
            if ext == '.params' and stem.startswith(head) and 'batch' in stem:
                e, _, b = stem[len(head):].partition('batch')
                if e.isdigit() and b.isdigit() and os.path.exists(os.path.join(self.model_dir, stem + '.states')):
                    found.append((int(e), int(b), stem))
        if not found:
            estimator.logger.info("CheckpointHandler: No checkpoint found, training from scratch")
            return
        e, b, stem = max(found)
        estimator.net.load_parameters(os.path.join(self.model_dir, stem + '.params'), ctx=estimator.context)
        estimator.trainer.load_states(os.path.join(self.model_dir, stem + '.states'))
        self.trained_epoch, self.trained_batch = e, b  # (epoch e finished: e + 1 epochs are trained)
        if estimator.max_epoch:
            if e + 1 >= estimator.max_epoch:
                raise ValueError(f"CheckpointHandler: the checkpoint {stem} already reached max_epoch "
                                 f"{estimator.max_epoch}")
            estimator.max_epoch -= e + 1
        if estimator.max_batch:  # (b: the index of the checkpoint's last batch)
            if b + 1 >= estimator.max_batch:
                raise ValueError(f"CheckpointHandler: the checkpoint {stem} already reached max_batch "
                                 f"{estimator.max_batch}")
            estimator.max_batch -= b + 1
        estimator.logger.info("CheckpointHandler: Checkpoint resumed from epoch %d batch %d", e, b)


class EarlyStoppingHandler(TrainBegin, EpochEnd, TrainEnd):
    """Stops when `monitor` has not improved by min_delta for `patience` epochs (or is worse than baseline)."""

    def __init__(self, monitor, min_delta=0, patience=0, mode='auto', baseline=None):
        self.monitor, self.patience, self.baseline = monitor, patience, baseline
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(min_delta) if self.mode == 'max' else -abs(min_delta)
        self.wait = self.stopped_epoch = self.current_epoch = 0
        self.stop_training = False

    def _better(self, a, b):
        return a - self.min_delta > b if self.mode == 'max' else a - self.min_delta < b

    def train_begin(self, estimator, *args, **kwargs):
        self.wait = self.stopped_epoch = self.current_epoch = 0
        self.stop_training = False
        self.best = self.baseline if self.baseline is not None else (-math.inf if self.mode == 'max' else math.inf)

    def epoch_end(self, estimator, *args, **kwargs):
        value = _monitor_value(self.monitor)
        if isinstance(value, float) and math.isnan(value):
            warnings.warn(f"EarlyStoppingHandler: {self.monitor.get()[0]} is NaN; skipping this epoch")
        elif self._better(value, self.best):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch, self.stop_training = self.current_epoch, True
        self.current_epoch += 1
        return self.stop_training

    def train_end(self, estimator, *args, **kwargs):
        if self.stopped_epoch > 0:
            estimator.logger.info('[Epoch %d] EarlyStoppingHandler: early stopping due to %s not improving',
                                  self.stopped_epoch, self.monitor.get()[0])
