"""The per-batch work of an Estimator: subclass BatchProcessor and override fit_batch / evaluate_batch to change
what one training or validation step does."""
from .... import autograd
from ...utils import split_and_load


class BatchProcessor:
    def _get_data_and_label(self, batch, ctx, batch_axis=0):
        return (split_and_load(batch[0], ctx_list=ctx, batch_axis=batch_axis),
                split_and_load(batch[1], ctx_list=ctx, batch_axis=batch_axis))

    def evaluate_batch(self, estimator, val_batch, batch_axis=0):
        """One validation batch: (data, label, pred, loss), each a list over the estimator's devices."""
        data, label = self._get_data_and_label(val_batch, estimator.context, batch_axis)
        pred = [estimator.val_net(x) for x in data]
        loss = [estimator.val_loss(y_hat, y) for y_hat, y in zip(pred, label)]
        return data, label, pred, loss

    def fit_batch(self, estimator, train_batch, batch_axis=0):
        """One training batch's forward and backward (the update is GradientUpdateHandler's)."""
        data, label = self._get_data_and_label(train_batch, estimator.context, batch_axis)
        with autograd.record():
            pred = [estimator.net(x) for x in data]
            loss = [estimator.loss(y_hat, y) for y_hat, y in zip(pred, label)]
        for lo in loss:
            lo.backward()
        return data, label, pred, loss
