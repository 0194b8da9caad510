"""Losses as MXNet Gluon 1.x: each returns one value per sample, shape (batch,), the mean over the
non-batch axes, scaled by the global `weight` and an optional broadcastable `sample_weight`."""
import numbers

import numpy as np

from ..base import GraphcError, GraphcShapeError, fmt_shape
from .block import HybridBlock


def _apply_weighting(F, loss, weight=None, sample_weight=None):
    if sample_weight is not None:
        loss = F.broadcast_mul(loss, sample_weight)
    if weight is not None:
        if not isinstance(weight, numbers.Number):
            raise GraphcError(f"loss weight must be a number, got {weight!r}")
        loss = loss * weight
    return loss


def _reshape_like(label, pred, hint=''):
    """label with pred's shape and dtype (integer labels are fine); a size mismatch is an error naming both."""
    if label.shape != pred.shape:
        if label.size != pred.size:
            raise GraphcShapeError(f"label shape {fmt_shape(label.shape)} does not match prediction shape "
                                   f"{fmt_shape(pred.shape)}{hint}")
        label = label.reshape(pred.shape)
    return label if label.dtype == pred.dtype else label.astype(pred.dtype)


class Loss(HybridBlock):
    """Base class: `weight` scales the loss, `batch_axis` is kept, every other axis is averaged."""

    def __init__(self, weight, batch_axis, **kwargs):
        super().__init__(**kwargs)
        self._weight, self._batch_axis = weight, batch_axis

    def __repr__(self):
        return f"{self.__class__.__name__}(batch_axis={self._batch_axis}, w={self._weight})"

    def _mean(self, F, loss):
        return F.mean(loss, axis=self._batch_axis, exclude=True)


class L2Loss(Loss):
    """0.5 * (pred - label)^2."""

    def __init__(self, weight=1., batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.square(_reshape_like(label, pred) - pred)
        return self._mean(F, _apply_weighting(F, loss, self._weight / 2, sample_weight))


class L1Loss(Loss):
    """|pred - label|."""

    def __init__(self, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.abs(_reshape_like(label, pred) - pred)
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


class SigmoidBinaryCrossEntropyLoss(Loss):
    """-(z log p + (1 - z) log(1 - p)) with p = sigmoid(pred); from logits it is computed as
    max(x, 0) - x z + log(1 + exp(-|x|)), which never overflows."""

    def __init__(self, from_sigmoid=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_sigmoid = from_sigmoid

    def hybrid_forward(self, F, pred, label, sample_weight=None, pos_weight=None):
        label = _reshape_like(label, pred)
        if not self._from_sigmoid:
            softplus = F.Activation(-F.abs(pred), act_type='softrelu')  # log(1 + exp(-|x|))
            if pos_weight is None:
                loss = F.relu(pred) - pred * label + softplus
            else:  # log_weight = 1 + (pos_weight - 1) z scales the positive term
                log_weight = 1 + F.broadcast_mul(pos_weight - 1, label)
                loss = pred - pred * label + log_weight * (softplus + F.relu(-pred))
        else:
            eps = 1e-12
            pos = F.log(pred + eps) * label
            if pos_weight is not None:
                pos = F.broadcast_mul(pos, pos_weight)
            loss = -(pos + F.log(1. - pred + eps) * (1. - label))
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


SigmoidBCELoss = SigmoidBinaryCrossEntropyLoss


class SoftmaxCrossEntropyLoss(Loss):
    """-log softmax(pred)[label] (sparse_label=True: label holds class indices), or
    -sum(label * log softmax(pred)) for dense (one-hot or probability) labels."""

    def __init__(self, axis=-1, sparse_label=True, from_logits=False, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._axis, self._sparse_label, self._from_logits = axis, sparse_label, from_logits

    def _sparse(self, label, pred):
        ax = self._axis % pred.ndim
        want = pred.shape[:ax] + pred.shape[ax + 1:]
        if label.shape == want:
            return label
        if label.size == int(np.prod(want)) and label.ndim >= len(want):  # (B, 1) and the like
            return label.reshape(want)
        raise GraphcShapeError(
            f"label shape {fmt_shape(label.shape)} does not match prediction shape {fmt_shape(pred.shape)}: with "
            f"sparse_label=True the label holds one class index per sample, shape {fmt_shape(want)}; for one-hot or "
            f"probability labels of shape {fmt_shape(pred.shape)} pass sparse_label=False")

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        if self._sparse_label:
            label = self._sparse(label, pred)
        else:
            label = _reshape_like(label, pred, " (sparse_label=False wants one value per class)")
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        if self._sparse_label:
            loss = -F.pick(pred, label, axis=self._axis, keepdims=True)
        else:
            loss = -F.sum(pred * label, axis=self._axis, keepdims=True)
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


SoftmaxCELoss = SoftmaxCrossEntropyLoss


class KLDivLoss(Loss):
    """label * (log label - pred), pred being log-probabilities (from_logits=True) or logits."""

    def __init__(self, from_logits=True, axis=-1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._axis = from_logits, axis

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        if not self._from_logits:
            pred = F.log_softmax(pred, axis=self._axis)
        label = _reshape_like(label, pred)
        loss = label * (F.log(label + 1e-12) - pred)
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


class HuberLoss(Loss):
    """0.5/rho * d^2 where |d| <= rho, else |d| - 0.5 rho; d = pred - label."""

    def __init__(self, rho=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._rho = rho

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        d = F.abs(_reshape_like(label, pred) - pred)
        loss = F.where(d > self._rho, d - 0.5 * self._rho, (0.5 / self._rho) * F.square(d))
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


class HingeLoss(Loss):
    """max(0, margin - pred * label), labels in {-1, 1}."""

    def __init__(self, margin=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = margin

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.relu(self._margin - pred * _reshape_like(label, pred))
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


class SquaredHingeLoss(HingeLoss):
    """max(0, margin - pred * label)^2."""

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        loss = F.square(F.relu(self._margin - pred * _reshape_like(label, pred)))
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))


class LogisticLoss(Loss):
    """log(1 + exp(-pred * label)), labels in {-1, 1} ('signed') or {0, 1} ('binary')."""

    def __init__(self, weight=None, batch_axis=0, label_format='signed', **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        if label_format not in ('signed', 'binary'):
            raise GraphcError(f"LogisticLoss: label_format must be 'signed' or 'binary', got {label_format!r}")
        self._label_format = label_format

    def hybrid_forward(self, F, pred, label, sample_weight=None):
        label = _reshape_like(label, pred)
        if self._label_format == 'binary':
            label = 2 * label - 1
        # log(1 + exp(-z)) = relu(-z) + log(1 + exp(-|z|)), stable for large |z|
        z = pred * label
        loss = F.relu(-z) + F.Activation(-F.abs(z), act_type='softrelu')
        return self._mean(F, _apply_weighting(F, loss, self._weight, sample_weight))
