"""Losses as MXNet Gluon 1.x: each returns one value per sample, shape (batch,), the mean over the
non-batch axes, scaled by the global `weight` and an optional broadcastable `sample_weight`. (MXNet's
exceptions are kept: PoissonNLLLoss returns the overall mean, CosineEmbeddingLoss (batch, 1).)

A loss called on Symbols outside a trace builds a graph (as MXNet's `Loss(output, sym.var('label'))` does),
so shapes may be unknown: labels are then fitted to predictions by reshape_like inside the graph.
"""
import numbers

import numpy as np

from .. import autograd, nd, sym
from ..base import GraphcError, GraphcShapeError, fmt_shape
from ..ndarray.ndarray import NDArray
from ..ops.shape import _indices
from ..symbol.symbol import Symbol, current_trace
from .block import HybridBlock, _ndm

__all__ = ['Loss', 'L2Loss', 'L1Loss', 'SigmoidBinaryCrossEntropyLoss', 'SigmoidBCELoss', 'SoftmaxCrossEntropyLoss',
           'SoftmaxCELoss', 'KLDivLoss', 'CTCLoss', 'HuberLoss', 'HingeLoss', 'SquaredHingeLoss', 'LogisticLoss',
           'TripletLoss', 'PoissonNLLLoss', 'CosineEmbeddingLoss', 'SDMLLoss']


def _apply_weighting(F, loss, weight=None, sample_weight=None):
    if sample_weight is not None:
        loss = F.broadcast_mul(loss, sample_weight)
    if weight is not None:
        if not isinstance(weight, numbers.Number):
            raise GraphcError(f"loss weight must be a number, got {weight!r}")
        loss = loss * weight
    return loss


def _any_symbol(args, kwargs):
    return any(isinstance(a, Symbol) for a in tuple(args) + tuple(kwargs.values()))


def _known(*xs):
    return all(x.shape is not None and None not in x.shape for x in xs)


def _reshape_like(label, pred, hint=''):
    """label with pred's shape and dtype (integer labels are fine); a size mismatch is an error naming both."""
    if not _known(label, pred):
        return sym.reshape_like(label, pred)
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

    def _dispatch(self, *args, **kwargs):
        if current_trace() is None and _any_symbol(args, kwargs):  # composing a graph: no cached plan
            return self.forward(*args, **kwargs)
        return super()._dispatch(*args, **kwargs)

    def forward(self, x, *args, **kwargs):
        """F is graphc.sym when any input is a Symbol (traced or composed), else graphc.nd."""
        symbolic = current_trace() is not None or _any_symbol((x,) + args, kwargs)
        return self.hybrid_forward(sym if symbolic else nd, x, *args, **kwargs)


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
        if not _known(label, pred):
            return label
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
            if F is nd and sample_weight is None and self._weight is None and not self._from_logits:
                out = _SparseCE.run(self, pred, label)
                if out is not None:
                    return out
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


class _SparseCE:
    """The eager SoftmaxCrossEntropyLoss of (batch, classes) CPU logits and class labels as one tape op: log_softmax,
    pick and mean in NumPy, and backward in one step, (softmax - one_hot) * dy, instead of four ops each way
    (162 -> about 30 us for 64 x 10 here). Equal to the graph of hybrid_forward, which get_symbol and
    create_graph use (the rule in recorded ops there)."""
    kind, differentiable, mode_dependent, aux_inputs, nograd_inputs = 'opaque', True, False, (), frozenset({1})
    name = 'SoftmaxCrossEntropyLoss'

    def __init__(self, block):
        self.block = block

    @classmethod
    def run(cls, block, pred, label):
        """The per-sample losses, or None where this case is not covered (the op-by-op path runs)."""
        x = pred._data if type(pred) is NDArray and type(label) is NDArray else None
        if x is None or type(x) is not np.ndarray or x.ndim != 2 or block._axis not in (-1, 1) or \
                block._batch_axis != 0 or x.dtype not in (np.float32, np.float64) or not x.shape[1] or \
                _ndm._GPU_LIVE or _ndm._HOST_IDS:
            return None
        i = _indices(label._data, x.shape[1], 'clip', 'pick')
        rows = np.arange(len(x))
        z = x - x.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        out = NDArray(np.log(s[:, 0]) - z[rows, i])
        if autograd.is_recording() and (pred._ag is not None or label._ag is not None):
            e /= s
            autograd.record_op(cls(block), {'p': e, 'i': i}, [pred, label], (x, label._data), [out], (out._data,))
        return out

    def grad(self, F, attrs, xs, ys, dys):
        dy = dys[0]
        if autograd.is_recording():  # create_graph: the rule as recorded ops, differentiable again
            oh = F.one_hot(F.array(attrs['i']), depth=xs[0].shape[1], dtype=str(xs[0].dtype))
            return [F.broadcast_mul(F.softmax(xs[0], axis=-1) - oh, F.expand_dims(dy, axis=1)), None]
        d = dy._data.astype(xs[0].dtype, copy=False)
        g = attrs['p'] * d[:, None]
        g[np.arange(len(g)), attrs['i']] -= d
        return [NDArray(g), None]

    def symbol(self, ins):
        """get_symbol: the entries of hybrid_forward's graph on the inputs' entries."""
        pred, label = (Symbol([e]) for e in ins)
        return [self.block.hybrid_forward(sym, pred, label)._one()]


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


class CTCLoss(Loss):
    """Connectionist Temporal Classification loss (the CTCLoss op, blank = the last class; labels padded with
    -1). pred: activations in `layout` 'NTC' or 'TNC'; label in `label_layout` 'NT' or 'TN'; optional
    pred_lengths and label_lengths (batch,). Returns (batch,)."""

    def __init__(self, layout='NTC', label_layout='NT', weight=None, **kwargs):
        if layout not in ('NTC', 'TNC'):
            raise GraphcError(f"CTCLoss: layout must be 'NTC' or 'TNC', got {layout!r}")
        if label_layout not in ('NT', 'TN'):
            raise GraphcError(f"CTCLoss: label_layout must be 'NT' or 'TN', got {label_layout!r}")
        self._layout, self._label_layout = layout, label_layout
        super().__init__(weight, label_layout.find('N'), **kwargs)

    def hybrid_forward(self, F, pred, label, pred_lengths=None, label_lengths=None, sample_weight=None):
        if self._layout == 'NTC':
            pred = F.swapaxes(pred, dim1=0, dim2=1)
        if self._batch_axis == 1:
            label = F.swapaxes(label, dim1=0, dim2=1)
        ins = [pred, label] + [v for v in (pred_lengths, label_lengths) if v is not None]
        loss = F.CTCLoss(*ins, use_data_lengths=pred_lengths is not None,
                         use_label_lengths=label_lengths is not None, blank_label='last')
        return _apply_weighting(F, loss, self._weight, sample_weight)


class TripletLoss(Loss):
    """max(0, sum over non-batch axes of (pred - positive)^2 - (pred - negative)^2 + margin)."""

    def __init__(self, margin=1, weight=None, batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = margin

    def hybrid_forward(self, F, pred, positive, negative, sample_weight=None):
        positive, negative = _reshape_like(positive, pred), _reshape_like(negative, pred)
        loss = F.sum(F.square(positive - pred) - F.square(negative - pred), axis=self._batch_axis, exclude=True)
        loss = F.relu(loss + self._margin)
        return _apply_weighting(F, loss, self._weight, sample_weight)


class PoissonNLLLoss(Loss):
    """Negative log-likelihood of target under Poisson(pred): exp(pred) - target * pred when from_logits
    (pred is the log rate), else pred - target * log(pred + 1e-8); compute_full adds Stirling's term
    target * log(target) - target + 0.5 * log(2 pi target) where target > 1. Returns the mean over all
    elements, as MXNet's."""

    def __init__(self, weight=None, from_logits=True, batch_axis=0, compute_full=False, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._from_logits, self._compute_full = from_logits, compute_full

    def hybrid_forward(self, F, pred, target, sample_weight=None, epsilon=1e-08):
        target = _reshape_like(target, pred)
        if self._from_logits:
            loss = F.exp(pred) - target * pred
        else:
            loss = pred - target * F.log(pred + epsilon)
        if self._compute_full:
            big = target > 1
            safe = F.where(big, target, F.ones_like(target))  # log(target) only where it is used
            stirling = safe * F.log(safe) - safe + 0.5 * F.log(2 * np.pi * safe)
            loss = loss + stirling * big
        loss = _apply_weighting(F, loss, self._weight, sample_weight)
        return F.mean(loss)


class CosineEmbeddingLoss(Loss):
    """1 - cos(input1, input2) where label is 1, max(0, cos(input1, input2) - margin) where label is -1;
    cosines along the last axis. Returns (batch, 1), as MXNet's."""

    def __init__(self, weight=None, batch_axis=0, margin=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self._margin = margin

    def hybrid_forward(self, F, input1, input2, label, sample_weight=None):
        input1 = _reshape_like(input1, input2)
        label = F.reshape(label, shape=(-1, 1))
        if label.dtype != input1.dtype:
            label = label.astype(input1.dtype)
        dot = F.reshape(F.sum(input1 * input2, axis=-1), shape=(-1, 1))
        norms = F.sqrt(F.sum(F.square(input1), axis=-1) * F.sum(F.square(input2), axis=-1))
        cos = dot / F._maximum_scalar(F.reshape(norms, shape=(-1, 1)), scalar=1e-12)
        loss = (1 - cos) * (label == 1) + F.relu((label == -1) * (cos - self._margin))
        return _apply_weighting(F, loss, self._weight, sample_weight)


class SDMLLoss(Loss):
    """Smoothed Deep Metric Learning loss for aligned batches x1, x2 (batch, dim): KL divergence between
    softmax(-squared distances of every x1[i] to every x2[j]) and the identity smoothed by
    smoothing_parameter (1 - s on the diagonal, s / (batch - 1) elsewhere), averaged per row."""

    def __init__(self, smoothing_parameter=0.3, weight=1., batch_axis=0, **kwargs):
        super().__init__(weight, batch_axis, **kwargs)
        self.kl_loss = KLDivLoss(from_logits=True)
        self.smoothing_parameter = smoothing_parameter

    def hybrid_forward(self, F, x1, x2):
        if not _known(x1, x2) or x1.shape != x2.shape or len(x1.shape) != 2:
            raise GraphcShapeError(f"SDMLLoss: x1 and x2 must both be (batch, dim) with known shapes, got "
                                   f"{x1.shape} and {x2.shape}")
        n = x1.shape[0]
        s = self.smoothing_parameter
        eye = np.eye(n)
        labels = nd.array(eye * (1 - s) + (1 - eye) * (s / (n - 1) if n > 1 else 0), dtype=x1.dtype)
        dist = F.sum(F.square(F.broadcast_sub(F.expand_dims(x1, axis=1), F.expand_dims(x2, axis=0))), axis=2)
        return self.kl_loss(F.log_softmax(-dist, axis=1), labels)
