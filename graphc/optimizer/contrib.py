"""Optimizers MXNet keeps apart from the core set: AdamW (decoupled weight decay) and GroupAdaGrad."""
import math

import numpy as np

from ..base import GraphcError
from ..ndarray.ndarray import NDArray
from .optimizer import Optimizer, _zeros, register


@register
class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019; MXNet's adamw_update with eta=lr):
    g = clip(rescale*grad); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr * (m_hat/(sqrt(v_hat) + epsilon) + wd*w), m_hat, v_hat bias-corrected when correct_bias."""
    default_lr = 0.001

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-6, correct_bias=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon, self.correct_bias = beta1, beta2, epsilon, correct_bias

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # mean, var

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        g = self._grad(w, g)
        m, v = self._moments(g, state)
        step = lr
        if self.correct_bias:
            step *= math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        w -= step * m / (np.sqrt(v) + self.epsilon) + lr * wd * w


    def _multi(self, lr, wd, counts, nstate):
        step = lr
        if self.correct_bias:
            bias = {t: math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t) for t in set(counts)}
            step = lr * np.array([bias[t] for t in counts])
        return 'adamw', (self.clip_gradient is not None,), dict(
            self._clip_cols(), b1=self.beta1, one_b1=1.0 - self.beta1, b2=self.beta2, one_b2=1.0 - self.beta2,
            eps=self.epsilon, step=step, lr_wd=lr * wd)


@register
class GroupAdaGrad(Optimizer):
    """AdaGrad with one rate per row of a 2-D weight (MXNet contrib): g = clip(rescale*grad);
    h += mean(g^2, axis=1); w -= lr * g/sqrt(h + eps). Weight decay is not supported."""

    def __init__(self, eps=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        if len(weight.shape) != 2:
            raise GraphcError(f"GroupAdaGrad: weights must be 2-D, got shape {weight.shape}")
        return NDArray(np.zeros((weight.shape[0], 1), weight.dtype))

    def _step(self, index, w, g, state, lr, wd):
        if wd:
            raise GraphcError("GroupAdaGrad: weight decay is not supported (wd must be 0)")
        g = self._grad(w, g)
        h = state._data
        h += np.mean(g * g, axis=1, keepdims=True)
        w -= lr * g / np.sqrt(h + self.float_stable_eps)
