"""mx.callback: what Module.fit calls after each batch (Speedometer, log_train_metric, ProgressBar) or epoch
(do_checkpoint)."""
import logging
import sys
import time


def do_checkpoint(prefix, period=1):
    """An epoch-end callback that saves a checkpoint (prefix-symbol.json, prefix-EPOCH.params) every period epochs."""
    period = int(max(1, period))

    def _callback(iter_no, sym, arg, aux):
        if (iter_no + 1) % period == 0:
            from .model import save_checkpoint
            save_checkpoint(prefix, iter_no + 1, sym, arg, aux)
    return _callback


def log_train_metric(period, auto_reset=False):
    """A batch-end callback that logs the training metric every period batches."""
    def _callback(param):
        if param.nbatch % period == 0 and param.eval_metric is not None:
            for name, value in param.eval_metric.get_name_value():
                logging.info('Iter[%d] Batch[%d] Train-%s=%f', param.epoch, param.nbatch, name, value)
            if auto_reset:
                param.eval_metric.reset_local()
    return _callback


class Speedometer:
    """Logs samples per second (and the metric) every `frequent` batches; auto_reset restarts the metric's
    local statistics after each log."""

    def __init__(self, batch_size, frequent=50, auto_reset=True):
        self.batch_size, self.frequent, self.auto_reset = batch_size, frequent, auto_reset
        self.init, self.tic, self.last_count = False, 0, 0

    def __call__(self, param):
        count = param.nbatch
        if self.last_count > count:  # a new epoch
            self.init = False
        self.last_count = count
        if not self.init:
            self.init, self.tic = True, time.time()
            return
        if count % self.frequent == 0:
            speed = self.frequent * self.batch_size / max(time.time() - self.tic, 1e-12)
            if param.eval_metric is not None:
                pairs = param.eval_metric.get_name_value()
                if self.auto_reset:
                    param.eval_metric.reset_local()
                msg = '\t'.join(f'{n}={v:f}' for n, v in pairs)
                logging.info('Epoch[%d] Batch [%d-%d]\tSpeed: %.2f samples/sec\t%s', param.epoch,
                             count - self.frequent, count, speed, msg)
            else:
                logging.info('Iter[%d] Batch [%d]\tSpeed: %.2f samples/sec', param.epoch, count, speed)
            self.tic = time.time()


class ProgressBar:
    """Draws a text progress bar of `total` batches, `length` characters wide."""

    def __init__(self, total, length=80):
        self.bar_len, self.total = length, total

    def __call__(self, param):
        count = param.nbatch
        filled = int(round(self.bar_len * count / float(self.total)))
        percents = -(-100.0 * count // float(self.total))
        bar = '=' * filled + '-' * (self.bar_len - filled)
        logging.info('[%s] %s%s\r', bar, percents, '%')
        sys.stdout.flush()
