"""BaseModule: the training loop (fit), evaluation (score) and prediction (predict, iter_predict) that every
module shares; subclasses supply bind, init_params, init_optimizer, forward, backward, update and the views."""
import logging
import time

import numpy as np

from ..base import GraphcError


def _as_list(x):
    return [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]


def _metric(m):
    from .. import metric
    return m if isinstance(m, metric.EvalMetric) else metric.create(m)


class BaseModule:
    def __init__(self, logger=logging):
        self.logger = logger
        self.binded = self.for_training = self.inputs_need_grad = False
        self.params_initialized = self.optimizer_initialized = False
        self._symbol = None

    # ------------------------------------------------------------ high level
    def forward_backward(self, data_batch):
        self.forward(data_batch, is_train=True)
        self.backward()

    def score(self, eval_data, eval_metric, num_batch=None, batch_end_callback=None, score_end_callback=None,
              reset=True, epoch=0, sparse_row_id_fn=None):
        """Run eval_data (num_batch batches at most) through the module and return the metric's
        [(name, value)]."""
        from ..model import BatchEndParam
        self._need('score', params=True)
        if reset:
            eval_data.reset()
        eval_metric = _metric(eval_metric)
        eval_metric.reset()
        nbatch = 0
        for nbatch, batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.forward(batch, is_train=False)
            self.update_metric(eval_metric, batch.label)
            for cb in _as_list(batch_end_callback):
                cb(BatchEndParam(epoch, nbatch, eval_metric, locals()))
        for cb in _as_list(score_end_callback):
            cb(BatchEndParam(epoch, nbatch, eval_metric, locals()))
        return eval_metric.get_global_name_value()

    def iter_predict(self, eval_data, num_batch=None, reset=True, sparse_row_id_fn=None):
        """Yield (outputs without the batch's padding, batch index, batch) for each batch."""
        self._need('iter_predict', params=True)
        if reset:
            eval_data.reset()
        for nbatch, batch in enumerate(eval_data):
            if num_batch is not None and nbatch == num_batch:
                break
            self.forward(batch, is_train=False)
            pad = batch.pad or 0
            yield [o[0:o.shape[0] - pad] for o in self.get_outputs()], nbatch, batch

    def predict(self, eval_data, num_batch=None, merge_batches=True, reset=True, always_output_list=False,
                sparse_row_id_fn=None):
        """The outputs over eval_data (an iterator, or an array batched by the bound batch size): per output,
        the batches concatenated (merge_batches), else a list per batch."""
        from ..ndarray.ndarray import NDArray
        from ..io import NDArrayIter
        if isinstance(eval_data, (NDArray, np.ndarray)):
            self._need('predict')
            eval_data = NDArrayIter(eval_data, batch_size=self.data_shapes[0].shape[0], shuffle=False)
        outs = [[o.copy() for o in outputs] for outputs, _, _ in
                self.iter_predict(eval_data, num_batch=num_batch, reset=reset)]
        if not outs:
            return outs
        if not merge_batches:
            return outs
        if len({len(o) for o in outs}) != 1:
            raise GraphcError("predict: batches gave different numbers of outputs; pass merge_batches=False")
        merged = [NDArray(np.concatenate([b[i].asnumpy() for b in outs], axis=0)) for i in range(len(outs[0]))]
        return merged[0] if len(merged) == 1 and not always_output_list else merged

    def fit(self, train_data, eval_data=None, eval_metric='acc', epoch_end_callback=None, batch_end_callback=None,
            kvstore='local', optimizer='sgd', optimizer_params=(('learning_rate', 0.01),),
            eval_end_callback=None, eval_batch_end_callback=None, initializer=None, arg_params=None,
            aux_params=None, allow_missing=False, force_rebind=False, force_init=False, begin_epoch=0,
            num_epoch=None, validation_metric=None, monitor=None, sparse_row_id_fn=None):
        """Train on train_data from begin_epoch to num_epoch: bind, init_params, init_optimizer, then per
        batch forward_backward, update and update_metric; per epoch the callbacks and, with eval_data, score."""
        from .. import initializer as init
        from ..model import BatchEndParam
        if num_epoch is None:
            raise GraphcError("fit: num_epoch is required")
        self.bind(data_shapes=train_data.provide_data, label_shapes=train_data.provide_label, for_training=True,
                  force_rebind=force_rebind)
        self.init_params(initializer=initializer if initializer is not None else init.Uniform(0.01),
                         arg_params=arg_params, aux_params=aux_params, allow_missing=allow_missing,
                         force_init=force_init)
        self.init_optimizer(kvstore=kvstore, optimizer=optimizer, optimizer_params=optimizer_params)
        validation_metric = eval_metric if validation_metric is None else validation_metric
        eval_metric = _metric(eval_metric)
        if monitor is not None:
            self.install_monitor(monitor)
        for epoch in range(begin_epoch, num_epoch):
            tic = time.time()
            eval_metric.reset()
            nbatch = 0
            for nbatch, batch in enumerate(train_data):
                if monitor is not None:
                    monitor.tic()
                self.forward_backward(batch)
                self.update()
                if monitor is not None:
                    monitor.toc_print()
                self.update_metric(eval_metric, batch.label)
                for cb in _as_list(batch_end_callback):
                    cb(BatchEndParam(epoch, nbatch, eval_metric, locals()))
            for name, val in eval_metric.get_global_name_value():
                self.logger.info('Epoch[%d] Train-%s=%f', epoch, name, val)
            self.logger.info('Epoch[%d] Time cost=%.3f', epoch, time.time() - tic)
            arg_params_, aux_params_ = self.get_params()
            for cb in _as_list(epoch_end_callback):
                cb(epoch, self.symbol, arg_params_, aux_params_)
            if eval_data is not None:
                res = self.score(eval_data, validation_metric, score_end_callback=eval_end_callback,
                                 batch_end_callback=eval_batch_end_callback, epoch=epoch)
                for name, val in res:
                    self.logger.info('Epoch[%d] Validation-%s=%f', epoch, name, val)
            train_data.reset()

    # ------------------------------------------------------------ helpers
    def _need(self, what, params=False, optimizer=False):
        if not self.binded:
            raise GraphcError(f"{type(self).__name__}.{what}: call bind() first")
        if params and not self.params_initialized:
            raise GraphcError(f"{type(self).__name__}.{what}: call init_params() first")
        if optimizer and not self.optimizer_initialized:
            raise GraphcError(f"{type(self).__name__}.{what}: call init_optimizer() first")

    @property
    def symbol(self):
        return self._symbol

    def set_params(self, arg_params, aux_params, allow_missing=False, force_init=True, allow_extra=False):
        """Set the parameters (copies) from the dicts; missing names are errors unless allow_missing."""
        self.init_params(initializer=None, arg_params=arg_params, aux_params=aux_params, allow_missing=allow_missing,
                         force_init=force_init, allow_extra=allow_extra)

    def save_params(self, fname):
        from .. import ndarray as nd
        arg_params, aux_params = self.get_params()
        d = {f'arg:{k}': v for k, v in arg_params.items()}
        d.update({f'aux:{k}': v for k, v in aux_params.items()})
        nd.save(fname, d)

    def load_params(self, fname):
        from .. import ndarray as nd
        arg, aux = {}, {}
        for k, v in nd.load(fname).items():
            kind, _, name = k.partition(':')
            if kind not in ('arg', 'aux'):
                raise GraphcError(f"load_params: {fname}: key {k!r} is neither 'arg:NAME' nor 'aux:NAME'")
            (arg if kind == 'arg' else aux)[name] = v
        self.set_params(arg, aux)
