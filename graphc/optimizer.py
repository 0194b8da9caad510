"""Optimizers with MXNet 1.x semantics (mx.optimizer): SGD, NAG, Adam, RMSProp, AdaGrad.

`update(index, weight, grad, state)` rewrites weight._data in place with NumPy, following the
formulas of MXNet's fused update kernels (sgd_update, adam_update, ...) so trained numbers
match MXNet. Per-step work is a handful of in-place ufunc calls into reused scratch buffers:
no temporaries are allocated after the first step, and `grad` is never modified.
"""
import math
import warnings

import numpy as np

from .base import GraphcError
from .device import device_id, on
from .ndarray.ndarray import NDArray, WRITES

_REGISTRY = {}


def register(klass):
    """Class decorator: make `klass` available to create() under its lower-case name."""
    name = klass.__name__.lower()
    if name in _REGISTRY and _REGISTRY[name] is not klass:
        warnings.warn(f"optimizer {klass.__module__}.{klass.__name__} overrides the registered {name!r}")
    _REGISTRY[name] = klass
    return klass


def create(name, **kwargs):
    """An optimizer by (case-insensitive) name: create('sgd', learning_rate=0.1, momentum=0.9)."""
    if isinstance(name, Optimizer):
        return name
    klass = _REGISTRY.get(str(name).lower())
    if klass is None:
        raise GraphcError(f"unknown optimizer {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return klass(**kwargs)


class Optimizer:
    """Base class: learning rate (or scheduler), weight decay, gradient rescale/clip, update counts.

    Per-parameter multipliers come, as in MXNet, from `param_dict[index].lr_mult/.wd_mult` (what
    Trainer sets), else from set_lr_mult/set_wd_mult keyed by index or by name (via
    param_idx2name; with names given, params not ending in _weight/_gamma get wd_mult 0).
    learning_rate=None means: the scheduler's base_lr if there is a scheduler, else the class default.
    """
    default_lr = 0.01

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None, learning_rate=None,
                 lr_scheduler=None, begin_num_update=0, param_dict=None):
        self.rescale_grad = rescale_grad
        self.lr_scheduler = lr_scheduler
        if learning_rate is None and lr_scheduler is None:
            learning_rate = self.default_lr
        self.lr = learning_rate
        if lr_scheduler is not None and learning_rate is not None and lr_scheduler.base_lr != learning_rate:
            warnings.warn("learning rate from lr_scheduler has been overwritten by learning_rate in optimizer")
            lr_scheduler.base_lr = learning_rate
        self.wd = wd
        self.clip_gradient = clip_gradient
        self.begin_num_update = self.num_update = begin_num_update
        self._index_update_count = {}
        self.idx2name = dict(param_idx2name or {})
        self.param_dict = param_dict or {}
        self._tmp = {}  # (shape, dtype, slot) -> scratch array, shared by same-shaped params
        self.set_lr_mult({})
        self.set_wd_mult({})

    # ------------------------------------------------------------ learning rate and multipliers
    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise GraphcError("set_learning_rate: this optimizer has an lr_scheduler, which sets the learning "
                              "rate; change the scheduler (or create the optimizer without one)")
        self.lr = lr

    def set_lr_mult(self, args_lr_mult):
        self.lr_mult = dict(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith(('_weight', '_gamma'))}
        self.wd_mult.update(args_wd_mult)

    def _update_count(self, index):
        c = self._index_update_count.get(index, self.begin_num_update) + 1
        self._index_update_count[index] = c
        if c > self.num_update:
            self.num_update = c

    def _get_lr(self, index):
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        p = self.param_dict.get(index)
        if p is not None:
            return float(lr * p.lr_mult)
        if index in self.lr_mult:
            return float(lr * self.lr_mult[index])
        if index in self.idx2name:
            return float(lr * self.lr_mult.get(self.idx2name[index], 1.0))
        return float(lr)

    def _get_wd(self, index):
        p = self.param_dict.get(index)
        if p is not None:
            return float(self.wd * p.wd_mult)
        if index in self.wd_mult:
            return float(self.wd * self.wd_mult[index])
        if index in self.idx2name:
            return float(self.wd * self.wd_mult.get(self.idx2name[index], 1.0))
        return float(self.wd)

    # ------------------------------------------------------------ state and update
    def create_state(self, index, weight):
        """The auxiliary state of one weight: None, an NDArray or a tuple of NDArrays."""
        return None

    def update(self, index, weight, grad, state):
        """Update weight (NDArray) in place from grad; index may be a list (with lists of the rest)."""
        if isinstance(index, (list, tuple)):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update(i, w, g, s)
            return
        self._update_count(index)
        WRITES[0] += 1  # weights change in place: values cached from them (hoisted subgraphs) are stale
        with on(weight._data):  # a weight on a GPU: its update runs there (cupy through NumPy's dispatch)
            self._step(index, weight._data, grad._data, state, self._get_lr(index), self._get_wd(index))

    update_multi_precision = update

    def _step(self, index, w, g, state, lr, wd):
        raise NotImplementedError

    def _scratch(self, a, slot=0):
        key = (a.shape, a.dtype, slot, device_id(a))  # one scratch per device too
        t = self._tmp.get(key)
        if t is None:
            t = self._tmp[key] = np.empty_like(a)
        return t

    def _rescaled(self, w, g, wd_first=0.0):
        """Scratch = clip(rescale*g [+ wd_first*w]): the gradient every kernel starts from."""
        t = self._scratch(g)
        np.multiply(g, float(self.rescale_grad), out=t)
        if wd_first:
            t2 = self._scratch(w, 1)
            np.multiply(w, wd_first, out=t2)
            t += t2
        if self.clip_gradient is not None:
            c = float(self.clip_gradient)
            np.clip(t, -c, c, out=t)
        return t

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, wd={self.wd})"


def _zeros(weight):
    with on(weight._data):
        return NDArray(np.zeros_like(weight._data))


@register
class SGD(Optimizer):
    """SGD with momentum (MXNet sgd_mom_update): g = clip(rescale*grad); mom = momentum*mom - lr*(g + wd*w);
    w += mom. Without momentum: w = (1 - lr*wd)*w - lr*g."""

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _step(self, index, w, g, state, lr, wd):
        if self.clip_gradient is None:  # one pass: t = lr*rescale*g
            t = self._scratch(g)
            np.multiply(g, lr * float(self.rescale_grad), out=t)
        else:
            t = self._rescaled(w, g)
            t *= lr
        if state is None:
            if wd:
                w *= 1.0 - lr * wd
            w -= t
            return
        mom = state._data
        mom *= self.momentum
        mom -= t
        if wd:
            np.multiply(w, lr * wd, out=t)
            mom -= t
        w += mom


@register
class NAG(Optimizer):
    """Nesterov momentum (MXNet nag_mom_update): g = clip(rescale*grad) + wd*w; mom = momentum*mom + g;
    w -= lr*(g + momentum*mom)."""

    def __init__(self, momentum=0.0, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _step(self, index, w, g, state, lr, wd):
        t = self._rescaled(w, g)
        if wd:
            t2 = self._scratch(w, 1)
            np.multiply(w, wd, out=t2)
            t += t2
        if state is not None:
            mom = state._data
            mom *= self.momentum
            mom += t
            t2 = self._scratch(w, 1)
            np.multiply(mom, self.momentum, out=t2)
            t += t2
        t *= lr
        w -= t


@register
class Adam(Optimizer):
    """Adam (MXNet adam_update): g = clip(rescale*grad + wd*w); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr_t * m / (sqrt(v) + epsilon), lr_t = lr*sqrt(1-b2^t)/(1-b1^t) with t this weight's update count."""
    default_lr = 0.001

    def __init__(self, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # mean, var

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        lr *= math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)
        g = self._rescaled(w, g, wd_first=wd)
        t2 = self._scratch(w, 1)
        mean, var = state[0]._data, state[1]._data
        mean *= self.beta1
        np.multiply(g, 1.0 - self.beta1, out=t2)
        mean += t2
        var *= self.beta2
        np.square(g, out=t2)
        t2 *= 1.0 - self.beta2
        var += t2
        np.sqrt(var, out=t2)
        t2 += self.epsilon
        np.divide(mean, t2, out=t2)
        t2 *= lr
        w -= t2


@register
class RMSProp(Optimizer):
    """RMSProp (MXNet rmsprop_update / rmspropalex_update). g = clip(rescale*grad + wd*w);
    n = (1-gamma1)*g^2 + gamma1*n; plain: w -= lr*g/sqrt(n + epsilon).
    centered=True (Graves): also mu = (1-gamma1)*g + gamma1*mu;
    delta = gamma2*delta - lr*g/sqrt(n - mu^2 + epsilon); w += delta.
    clip_weights clips w to [-clip_weights, clip_weights] after the step."""
    default_lr = 0.001

    def __init__(self, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False, clip_weights=None, **kwargs):
        super().__init__(**kwargs)
        self.gamma1, self.gamma2, self.epsilon = gamma1, gamma2, epsilon
        self.centered, self.clip_weights = centered, clip_weights

    def create_state(self, index, weight):
        if self.centered:
            return (_zeros(weight), _zeros(weight), _zeros(weight))  # n, mu (g in MXNet), delta
        return (_zeros(weight),)

    def _step(self, index, w, g, state, lr, wd):
        g = self._rescaled(w, g, wd_first=wd)
        t2 = self._scratch(w, 1)
        n, g1 = state[0]._data, self.gamma1
        n *= g1
        np.square(g, out=t2)
        t2 *= 1.0 - g1
        n += t2
        if not self.centered:
            np.add(n, self.epsilon, out=t2)
            np.sqrt(t2, out=t2)
            np.divide(g, t2, out=t2)
            t2 *= lr
            w -= t2
        else:
            mu, delta = state[1]._data, state[2]._data
            mu *= g1
            np.multiply(g, 1.0 - g1, out=t2)
            mu += t2
            np.square(mu, out=t2)
            np.subtract(n, t2, out=t2)
            t2 += self.epsilon
            np.sqrt(t2, out=t2)
            np.divide(g, t2, out=t2)
            t2 *= lr
            delta *= self.gamma2
            delta -= t2
            w += delta
        if self.clip_weights:
            c = float(self.clip_weights)
            np.clip(w, -c, c, out=w)


@register
class AdaGrad(Optimizer):
    """AdaGrad (MXNet 1.x): g = clip(rescale*grad); h += g^2; w -= lr*(g/sqrt(h + eps) + wd*w)."""

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        return _zeros(weight)  # history

    def _step(self, index, w, g, state, lr, wd):
        g = self._rescaled(w, g)
        t2 = self._scratch(w, 1)
        h = state._data
        np.square(g, out=t2)
        h += t2
        np.add(h, self.float_stable_eps, out=t2)
        np.sqrt(t2, out=t2)
        np.divide(g, t2, out=t2)
        if wd:
            np.multiply(w, wd, out=g)  # g is scratch: free to reuse
            t2 += g
        t2 *= lr
        w -= t2


class Updater:
    """Holds one state per index and applies the optimizer: updater(index, grad, weight) (MXNet order)."""

    def __init__(self, optimizer):
        self.optimizer, self.states = optimizer, {}

    def __call__(self, index, grad, weight):
        state = self.states.get(index)
        if index not in self.states:
            state = self.states[index] = self.optimizer.create_state(index, weight)
        self.optimizer.update(index, weight, grad, state)


def get_updater(optimizer):
    return Updater(optimizer)
