"""Optimizers with MXNet 1.9 semantics (mx.optimizer): the base class, the registry, Updater and every
optimizer MXNet 1.9 has (SGD, NAG, Signum, FTML, LARS, LAMB, DCASGD, SGLD, Adam, Adamax, Nadam,
AdaGrad, AdaDelta, RMSProp, Ftrl, Test; AdamW and GroupAdaGrad are in .contrib).

`update(index, weight, grad, state)` rewrites weight._data in place with NumPy, following the
formulas of MXNet's update kernels (sgd_update, adam_update, ...) so trained numbers match
MXNet. The hot ones (SGD, NAG, Adam, RMSProp, AdaGrad) work in reused scratch buffers: no
temporaries after the first step. `grad` is never modified.

Multi-precision, as MXNet: with multi_precision=True a float16 (or bfloat16) weight gets a float32 master
copy in its state; update_multi_precision updates the copy from a float32 gradient and casts
it back. The state is (master, inner state), except SGD, NAG and LARS: (inner state, master).
"""
import math
import os
import warnings

import numpy as np

from .. import random as _random
from ..base import GraphcError, GraphcLoadError
from ..device import device_id, on
from ..ndarray.ndarray import NDArray, WRITES
from ..util import is_np_array as _is_np_array

_REGISTRY = {}


class UnknownOptimizerError(GraphcError, ValueError):
    """create() got a name no optimizer is registered under (MXNet raises ValueError)."""


class LRSchedulerError(GraphcError, UserWarning):
    """set_learning_rate on an optimizer whose lr_scheduler sets the rate (MXNet raises UserWarning)."""


def register(klass):
    """Class decorator: make `klass` available to create() under its lower-case name."""
    if not isinstance(klass, type):
        raise GraphcError(f"optimizer.register: expects a class, got {klass!r}")
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
        raise UnknownOptimizerError(f"unknown optimizer {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return klass(**kwargs)


class Optimizer:
    """Base class: learning rate (or scheduler), weight decay, gradient rescale/clip, update counts.

    Per-parameter multipliers come, as in MXNet, from `param_dict[index].lr_mult/.wd_mult` (what
    Trainer sets), else from set_lr_mult/set_wd_mult keyed by index or by name (via
    param_idx2name; with names given, params not ending in _weight/_gamma get wd_mult 0), else
    from the `__lr_mult__`/`__wd_mult__` attributes of `sym`'s arguments.
    learning_rate=None means: the scheduler's base_lr if there is a scheduler, else the class default.
    """
    default_lr = 0.01
    opt_registry = _REGISTRY
    register = staticmethod(register)
    create_optimizer = staticmethod(create)

    def __init__(self, rescale_grad=1.0, param_idx2name=None, wd=0.0, clip_gradient=None, learning_rate=None,
                 lr_scheduler=None, sym=None, begin_num_update=0, multi_precision=False, param_dict=None):
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
        self.multi_precision = multi_precision
        self.allow_np_array = _is_np_array()  # MXNet's flag: updates take mx.np arrays (one class in graphc)
        self.aggregate_num = 0
        self.begin_num_update = self.num_update = begin_num_update
        self._all_index_update_counts = {0: {}}  # per device: one Updater per device counts its own
        self._index_update_count, self._count_device = self._all_index_update_counts[0], 0
        if param_idx2name is not None and not isinstance(param_idx2name, dict):
            raise GraphcError("param_idx2name should be a dict of param indexes to names")
        self.idx2name = dict(param_idx2name or {})
        self.sym_info = (sym.attr_dict(), sym.list_arguments()) if sym is not None else ()
        self.param_dict = param_dict or {}
        self._tmp = {}  # (shape, dtype, slot, device) -> scratch array, shared by same-shaped params
        self.set_lr_mult({})
        self.set_wd_mult({})

    # ------------------------------------------------------------ learning rate and multipliers
    @property
    def learning_rate(self):
        return self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr

    def set_learning_rate(self, lr):
        if self.lr_scheduler is not None:
            raise LRSchedulerError("set_learning_rate: this optimizer has an lr_scheduler, which sets the learning "
                                   "rate; change the scheduler (or create the optimizer without one)")
        self.lr = lr

    def _sym_mult(self, key):
        out = {}
        if self.sym_info:
            attr, arg_names = self.sym_info
            for name in arg_names:
                if key in attr.get(name, {}):
                    out[name] = float(attr[name][key])
        return out

    def set_lr_mult(self, args_lr_mult):
        self.lr_mult = self._sym_mult('__lr_mult__')
        self.lr_mult.update(args_lr_mult)

    def set_wd_mult(self, args_wd_mult):
        self.wd_mult = {n: 0.0 for n in self.idx2name.values() if not n.endswith(('_weight', '_gamma'))}
        self.wd_mult.update(self._sym_mult('__wd_mult__'))
        self.wd_mult.update(args_wd_mult)

    def _set_current_context(self, device_id):
        # keep the current table even if it was replaced wholesale (Trainer.load_states assigns one)
        self._all_index_update_counts[self._count_device] = self._index_update_count
        self._index_update_count = self._all_index_update_counts.setdefault(device_id, {})
        self._count_device = device_id

    def _update_count(self, index):
        for i in (index if isinstance(index, (list, tuple)) else [index]):
            c = self._index_update_count.get(i, self.begin_num_update) + 1
            self._index_update_count[i] = c
            if c > self.num_update:
                self.num_update = c

    def _mult(self, index, which, table):
        p = self.param_dict.get(index)
        if p is not None:
            return getattr(p, which)
        if index in table:
            return table[index]
        if index in self.idx2name:
            return table.get(self.idx2name[index], 1.0)
        return 1.0

    def _get_lrs(self, indices):
        lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        return [float(lr * self._mult(i, 'lr_mult', self.lr_mult)) for i in indices]

    def _get_wds(self, indices):
        return [float(self.wd * self._mult(i, 'wd_mult', self.wd_mult)) for i in indices]

    def _get_lr(self, index):
        return self._get_lrs([index])[0]

    def _get_wd(self, index):
        return self._get_wds([index])[0]

    # ------------------------------------------------------------ state and update
    def create_state(self, index, weight):
        """The auxiliary state of one weight: None, an NDArray or a tuple of them."""
        return None

    def _use_mp(self, weight):
        return self.multi_precision and self._is_half(weight)

    @staticmethod
    def _is_half(weight):  # float16 or bfloat16 (ml_dtypes' dtype, named so)
        return str(getattr(weight, 'dtype', '')) in ('float16', 'bfloat16')

    def create_state_multi_precision(self, index, weight):
        """create_state, plus a float32 master copy of a float16 weight when multi_precision is on."""
        if self._use_mp(weight):
            master = weight.astype(np.float32)
            return self._mp_pack(master, self.create_state(index, master))
        if self._is_half(weight):
            warnings.warn("Accumulating with float16 in optimizer can lead to poor accuracy or slow convergence. "
                          "Consider using multi_precision=True option of the optimizer")
        return self.create_state(index, weight)

    def _mp_pack(self, master, state):
        return (master, state)

    def _mp_unpack(self, state):
        return state[0], state[1]

    def update(self, index, weight, grad, state):
        """Update weight (NDArray) in place from grad; index may be a list (with lists of the rest)."""
        if isinstance(index, (list, tuple)):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update(i, w, g, s)
            return
        self._update_count(index)
        WRITES[0] += 1  # weights change in place: values cached from them (hoisted subgraphs) are stale
        if getattr(weight, 'stype', 'default') != 'default' or getattr(grad, 'stype', 'default') != 'default':
            return self._sparse_step(index, weight, grad, state, self._get_lr(index), self._get_wd(index))
        with on(weight._data):  # a weight on a GPU: its update runs there (cupy through NumPy's dispatch)
            self._step(index, weight._data, grad._data, state, self._get_lr(index), self._get_wd(index))

    def _lazy(self, weight, grad, state, wd):
        """Whether a row_sparse gradient updates only its own rows (MXNet's lazy update) rather than all."""
        return False

    def _sparse_step(self, index, weight, grad, state, lr, wd):
        """A step with a compressed weight, gradient or state. Lazy (MXNet's lazy_update for a row_sparse grad):
        the optimizer's step runs on just the rows the gradient holds, of the weight and of every state, and
        the other rows stay as they are. Otherwise (the standard update) it runs on the dense forms. The
        results are written back in each array's storage type (a compressed one keeps the rows it stored)."""
        rows = grad._aux[0] if grad.stype == 'row_sparse' and self._lazy(weight, grad, state, wd) else None
        arrays = [weight] + _state_arrays(state)
        if rows is None:
            views, g = [a if a.stype == 'default' else NDArray(a._data) for a in arrays], grad._data
        else:
            views = [NDArray(a._get_rows(rows) if a.stype == 'row_sparse' else a._data[rows]) for a in arrays]
            g = grad._vals
        with on(views[0]._data):
            self._step(index, views[0]._data, g, _rebuild_state(state, iter(views[1:])), lr, wd)
        for a, v in zip(arrays, views):
            if v is a:
                continue
            if rows is None:
                _store(a, v._data)
            elif a.stype == 'row_sparse':
                a._set_rows(rows, v._data)
            elif a.stype == 'default':
                a._data[rows] = v._data
            else:
                d = a._data
                d[rows] = v._data
                _store(a, d)
        if rows is not None:  # scratch buffers shaped as the rows: one set per row count would pile up
            self._tmp = {k: t for k, t in self._tmp.items() if k[0][:1] != (len(rows),) or len(rows) == weight.shape[0]}

    def update_multi_precision(self, index, weight, grad, state):
        """update(), through the float32 master copy where create_state_multi_precision made one."""
        if isinstance(index, (list, tuple)):
            for i, w, g, s in zip(index, weight, grad, state):
                self.update_multi_precision(i, w, g, s)
            return
        if not self._use_mp(weight):
            return self.update(index, weight, grad, state)
        master, inner = self._mp_unpack(state)
        self.update(index, master, grad.astype(np.float32), inner)
        WRITES[0] += 1
        with on(weight._data):
            _store(weight, master._data)

    def _step(self, index, w, g, state, lr, wd):
        raise NotImplementedError(f"{type(self).__name__} must implement update (or _step)")

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

    def _moments(self, g, state):
        """Adam's running moments, updated in place: m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g*g."""
        m, v = state[0]._data, state[1]._data
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        return m, v

    def _grad(self, w, g, wd=0.0):
        """A new array clip(rescale*g + wd*w), for the kernels that do not keep scratch buffers."""
        t = g * float(self.rescale_grad)
        if wd:
            t = t + wd * w
        if self.clip_gradient is not None:
            c = float(self.clip_gradient)
            np.clip(t, -c, c, out=t)
        return t

    def _clip_cols(self):
        """The clip bounds of a multi-tensor kernel's table (0 when there is no clip: unused)."""
        c = 0.0 if self.clip_gradient is None else float(self.clip_gradient)
        return {'rescale': float(self.rescale_grad), 'clip_lo': -c, 'clip_hi': c}

    def __getstate__(self):
        d = self.__dict__.copy()
        d['param_dict'], d['_tmp'] = {}, {}  # Trainer sets param_dict again; scratch is rebuilt
        return d

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self.learning_rate}, wd={self.wd})"


def _zeros(weight, dtype=None, stype=None):
    """Zeros shaped as weight, on its device, in its storage type (MXNet's states follow the weight's)."""
    stype = stype or weight.stype
    if stype != 'default':
        from ..ndarray.sparse import zeros
        return zeros(stype, weight.shape, weight.context, dtype or weight.dtype)
    if weight.stype != 'default':
        return NDArray(np.zeros(weight.shape, dtype or weight.dtype))
    with on(weight._data):
        return NDArray(np.zeros_like(weight._data, dtype=dtype))


def _store(a, values):
    """Write values into NDArray a in place; a compressed one keeps its storage type and the rows it stored."""
    if a.stype == 'default':
        a._data[...] = values
    elif a.stype == 'row_sparse':
        a._from_dense(values, keep=True)
    else:
        a._from_dense(values)


def _state_arrays(state):
    """The NDArrays of an optimizer state (None, an NDArray or nested tuples of them), in order."""
    if state is None:
        return []
    return [state] if isinstance(state, NDArray) else [a for s in state for a in _state_arrays(s)]


def _rebuild_state(state, arrays):
    """state's structure with its NDArrays replaced, in order, by the next of `arrays`."""
    if state is None:
        return None
    return next(arrays) if isinstance(state, NDArray) else type(state)(_rebuild_state(s, arrays) for s in state)


def _copy(weight):
    with on(weight._data):
        return NDArray(weight._data.copy())


# ------------------------------------------------------------------ SGD family
@register
class SGD(Optimizer):
    """SGD with momentum (MXNet sgd_mom_update): g = clip(rescale*grad); mom = momentum*mom - lr*(g + wd*w);
    w += mom. Without momentum: w = (1 - lr*wd)*w - lr*g. With a row_sparse gradient and lazy_update, only the
    rows the gradient holds are updated (weight and momentum; wd too applies to those rows only)."""

    def __init__(self, momentum=0.0, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.lazy_update = momentum, lazy_update

    def create_state(self, index, weight):
        return _zeros(weight, stype=None if self.lazy_update else 'default') if self.momentum != 0.0 else None

    def _lazy(self, weight, grad, state, wd):
        return self.lazy_update

    def _mp_pack(self, master, state):
        return (state, master)

    def _mp_unpack(self, state):
        return state[1], state[0]

    def _step(self, index, w, g, state, lr, wd, momentum=None):
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
        mom *= self.momentum if momentum is None else momentum
        mom -= t
        if wd:
            np.multiply(w, lr * wd, out=t)
            mom -= t
        w += mom


    def _multi(self, lr, wd, counts, nstate):
        """(kind, options, scalar columns) of the multi-tensor kernel equal to _step (runtime/multi_tensor.py);
        lr, wd: float64 arrays of _get_lr/_get_wd per tensor, counts: update counts. None: not supported."""
        r = float(self.rescale_grad)
        return 'sgd', (self.clip_gradient is not None, nstate == 1), dict(
            self._clip_cols(), lr_rescale=lr * r, lr=lr, decay=1.0 - lr * wd, lr_wd=lr * wd, momentum=self.momentum)


@register
class ccSGD(SGD):  # noqa: N801 (MXNet's name)
    """Deprecated in MXNet: the same as SGD."""

    def __init__(self, *args, **kwargs):
        warnings.warn("ccSGD is deprecated. Use SGD instead.", DeprecationWarning)
        super().__init__(*args, **kwargs)


@register
class NAG(SGD):
    """Nesterov momentum (MXNet 1.9 nag_mom_update): g = clip(rescale*grad) + wd*w; mom = momentum*mom - lr*g;
    w += momentum*mom - lr*g. Without momentum: w -= lr*g. MXNet has no lazy update for it: a row_sparse
    gradient updates every row."""

    def _lazy(self, weight, grad, state, wd):
        return False

    def _step(self, index, w, g, state, lr, wd):
        t = self._rescaled(w, g)
        if wd:
            t2 = self._scratch(w, 1)
            np.multiply(w, wd, out=t2)
            t += t2
        t *= lr
        w -= t
        if state is not None:
            mom = state._data
            mom *= self.momentum
            mom -= t
            t2 = self._scratch(w, 1)
            np.multiply(mom, self.momentum, out=t2)
            w += t2


    def _multi(self, lr, wd, counts, nstate):
        return 'nag', (self.clip_gradient is not None, nstate == 1), dict(
            self._clip_cols(), wd=wd, lr=lr, momentum=self.momentum)


@register
class LARS(SGD):
    """Layer-wise adaptive rate scaling (You et al. 2017) on SGD with momentum: lr is scaled per weight by
    eta*|w| / (|rescale*grad| + wd*|w| + eps) (by 1 where a norm is 0; never for names ending in gamma,
    beta or bias). momentum_correction multiplies momentum by lr_now/lr_before when the rate changes.
    Norms are of whole arrays, so a row_sparse gradient gets the standard (every-row) update."""

    def _lazy(self, weight, grad, state, wd):
        return False

    def __init__(self, momentum=0.0, lazy_update=True, eta=0.001, eps=0, momentum_correction=True, **kwargs):
        super().__init__(momentum=momentum, lazy_update=lazy_update, **kwargs)
        self.eta, self.eps, self.momentum_correction = eta, eps, momentum_correction
        self.last_lr = self.cur_lr = None

    def _get_lrs(self, indices):
        self.last_lr = self.cur_lr
        self.cur_lr = self.lr_scheduler(self.num_update) if self.lr_scheduler is not None else self.lr
        return super()._get_lrs(indices)

    def _lars(self, index, w, g, lr, wd):
        name = self.idx2name.get(index, str(index))
        if name.endswith(('gamma', 'beta', 'bias')):
            return lr
        w_norm = float(np.linalg.norm(w.astype(np.float32).ravel()))
        g_norm = float(np.linalg.norm(g.astype(np.float32).ravel())) * abs(float(self.rescale_grad))
        if w_norm > 0.0 and g_norm > 0.0:
            return lr * self.eta * w_norm / (g_norm + wd * w_norm + self.eps)
        return lr

    def _step(self, index, w, g, state, lr, wd):
        momentum = self.momentum
        if self.momentum_correction and self.last_lr:
            momentum *= self.cur_lr / self.last_lr
        super()._step(index, w, g, state, self._lars(index, w, g, lr, wd), wd, momentum)


@register
class Signum(Optimizer):
    """signSGD / Signum (MXNet signsgd_update, signum_update). With momentum:
    mom = momentum*mom - (1-momentum)*(clip(rescale*grad) + wd*w); w = (1 - lr*wd_lh)*w + lr*sign(mom).
    Without: w = (1 - lr*(wd + wd_lh))*w - lr*sign(grad)."""

    def __init__(self, learning_rate=0.01, momentum=0.9, wd_lh=0.0, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.momentum, self.wd_lh = momentum, wd_lh

    def create_state(self, index, weight):
        return _zeros(weight) if self.momentum != 0.0 else None

    def _step(self, index, w, g, state, lr, wd):
        if state is None:
            w *= 1.0 - lr * (wd + self.wd_lh)
            w -= lr * np.sign(g)
            return
        mom = state._data
        mom *= self.momentum
        mom -= (1.0 - self.momentum) * self._grad(w, g) + (1.0 - self.momentum) * wd * w
        if self.wd_lh:
            w *= 1.0 - lr * self.wd_lh
        w += lr * np.sign(mom)


@register
class DCASGD(Optimizer):
    """Delay-compensated async SGD (Zheng et al. 2016): g = clip(rescale*grad);
    step = -lr*(g + wd*w + lamda*g*g*(w - w_prev)); mom = momentum*mom + step (or step alone); w_prev = w; w += mom."""

    def __init__(self, momentum=0.0, lamda=0.04, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.lamda = momentum, lamda
        self.weight_previous = {}

    def create_state(self, index, weight):
        return (_zeros(weight) if self.momentum != 0.0 else None, _copy(weight))

    def _step(self, index, w, g, state, lr, wd):
        mom, prev = state
        g = self._grad(w, g)
        step = -lr * (g + wd * w + self.lamda * g * g * (w - prev._data))
        if mom is not None:
            m = mom._data
            m *= self.momentum
            m += step
            step = m
        prev._data[...] = w
        w += step


@register
class SGLD(Optimizer):
    """Stochastic gradient Langevin dynamics: w += -lr/2 * (clip(rescale*grad) + wd*w) + N(0, sqrt(lr)),
    the noise drawn by graphc.random.normal (so graphc.random.seed fixes it)."""

    def _step(self, index, w, g, state, lr, wd):
        g = self._grad(w, g)
        w -= lr / 2 * (g + wd * w)
        w += _random.normal(0, math.sqrt(lr), shape=w.shape, dtype=w.dtype)._data


# ------------------------------------------------------------------ adaptive
@register
class Adam(Optimizer):
    """Adam (MXNet adam_update): g = clip(rescale*grad + wd*w); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr_t * m / (sqrt(v) + epsilon), lr_t = lr*sqrt(1-b2^t)/(1-b1^t) with t this weight's update count."""
    default_lr = 0.001

    def __init__(self, beta1=0.9, beta2=0.999, epsilon=1e-8, lazy_update=True, **kwargs):
        super().__init__(**kwargs)
        self.beta1, self.beta2, self.epsilon, self.lazy_update = beta1, beta2, epsilon, lazy_update

    def create_state(self, index, weight):
        st = None if self.lazy_update else 'default'
        return (_zeros(weight, stype=st), _zeros(weight, stype=st))  # mean, var

    def _lazy(self, weight, grad, state, wd):  # (MXNet asks w, m and v to share a storage type: create_state's do)
        return self.lazy_update

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


    def _multi(self, lr, wd, counts, nstate):
        bias = {t: math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t) for t in set(counts)}
        return 'adam', (self.clip_gradient is not None,), dict(
            self._clip_cols(), wd=wd, b1=self.beta1, one_b1=1.0 - self.beta1, b2=self.beta2, one_b2=1.0 - self.beta2,
            eps=self.epsilon, lr=lr * np.array([bias[t] for t in counts]))


@register
class Adamax(Optimizer):
    """AdaMax (Kingma & Ba, section 7): g = clip(rescale*grad + wd*w); m = b1*m + (1-b1)*g;
    u = max(b2*u, |g|); w -= lr/(1 - b1^t) * m/u."""
    default_lr = 0.002

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2 = beta1, beta2

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # m, u

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        lr /= 1.0 - self.beta1 ** t
        g = self._grad(w, g, wd)
        m, u = state[0]._data, state[1]._data
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        np.maximum(self.beta2 * u, np.abs(g), out=u)
        w -= lr * m / u


@register
class Nadam(Optimizer):
    """Nesterov Adam (Dozat 2016) with MXNet's warming momentum schedule:
    mu_t = b1*(1 - 0.5*0.96^(t*schedule_decay)); m_schedule *= mu_t (one product for the optimizer, as MXNet);
    g = clip(rescale*grad + wd*w); m, v as Adam;
    w -= lr * ((1-mu_t)*g/(1-m_schedule) + mu_{t+1}*m/(1-m_schedule*mu_{t+1})) / (sqrt(v/(1-b2^t)) + epsilon)."""
    default_lr = 0.001

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-8, schedule_decay=0.004, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon, self.schedule_decay = beta1, beta2, epsilon, schedule_decay
        self.m_schedule = 1.0

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # mean, variance

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        g = self._grad(w, g, wd)
        mu_t = self.beta1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        mu_next = self.beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        self.m_schedule *= mu_t
        m_schedule_next = self.m_schedule * mu_next
        m, v = self._moments(g, state)
        m_bar = (1.0 - mu_t) * g / (1.0 - self.m_schedule) + mu_next * m / (1.0 - m_schedule_next)
        w -= lr * m_bar / (np.sqrt(v / (1.0 - self.beta2 ** t)) + self.epsilon)


@register
class FTML(Optimizer):
    """Follow the moving leader (Zheng & Kwok 2017; MXNet ftml_update): g = clip(rescale*grad + wd*w);
    v = b2*v + (1-b2)*g^2; d_t = (1-b1^t)/lr * (sqrt(v/(1-b2^t)) + epsilon); z = b1*z + (1-b1)*g - (d_t - b1*d)*w;
    w = -z/d_t; d = d_t."""

    def __init__(self, beta1=0.6, beta2=0.999, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight), _zeros(weight))  # d, v, z

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        g = self._grad(w, g, wd)
        d, v, z = (s._data for s in state)
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        d_t = (1.0 - self.beta1 ** t) / lr * (np.sqrt(v / (1.0 - self.beta2 ** t)) + self.epsilon)
        z *= self.beta1
        z += (1.0 - self.beta1) * g - (d_t - self.beta1 * d) * w
        w[...] = -z / d_t
        d[...] = d_t


@register
class LAMB(Optimizer):
    """LAMB (You et al. 2019; MXNet lamb_update_phase1/2): g = clip(rescale*grad); m, v as Adam;
    u = m_hat/(sqrt(v_hat) + epsilon) + wd*w (m_hat, v_hat bias-corrected when bias_correction);
    r1 = |w| clipped to [lower_bound, upper_bound] where given, r2 = |u|; w -= lr * (r1/r2 or 1 if either is 0) * u."""
    default_lr = 0.001

    def __init__(self, learning_rate=None, beta1=0.9, beta2=0.999, epsilon=1e-6, lower_bound=None, upper_bound=None,
                 bias_correction=True, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.lower_bound, self.upper_bound, self.bias_correction = lower_bound, upper_bound, bias_correction

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # mean, var

    def _step(self, index, w, g, state, lr, wd):
        t = self._index_update_count[index]
        g = self._grad(w, g)
        m, v = self._moments(g, state)
        m_hat, v_hat = m, v
        if self.bias_correction:
            m_hat, v_hat = m / (1.0 - self.beta1 ** t), v / (1.0 - self.beta2 ** t)
        u = m_hat / (np.sqrt(v_hat) + self.epsilon) + wd * w
        r1 = float(np.linalg.norm(w.ravel()))
        if self.lower_bound:
            r1 = max(r1, self.lower_bound)
        if self.upper_bound:
            r1 = min(r1, self.upper_bound)
        r2 = float(np.linalg.norm(u.ravel()))
        w -= lr * (1.0 if r1 == 0.0 or r2 == 0.0 else r1 / r2) * u


@register
class RMSProp(Optimizer):
    """RMSProp (MXNet rmsprop_update / rmspropalex_update). g = clip(rescale*grad + wd*w);
    n = (1-gamma1)*g^2 + gamma1*n; plain: w -= lr*g/sqrt(n + epsilon).
    centered=True (Graves): also mu = (1-gamma1)*g + gamma1*mu;
    delta = gamma2*delta - lr*g/sqrt(n - mu^2 + epsilon); w += delta.
    clip_weights clips w to [-clip_weights, clip_weights] after the step."""
    default_lr = 0.001

    def __init__(self, learning_rate=None, gamma1=0.9, gamma2=0.9, epsilon=1e-8, centered=False, clip_weights=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.gamma1, self.gamma2, self.epsilon = gamma1, gamma2, epsilon
        self.centered, self.clip_weights = centered, clip_weights

    def create_state(self, index, weight):
        if self.centered:  # n, mu (g in MXNet), delta
            return (_zeros(weight), _zeros(weight), _zeros(weight))
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


    def _multi(self, lr, wd, counts, nstate):
        if nstate != (3 if self.centered else 1):
            return None
        cw = float(self.clip_weights) if self.clip_weights else 0.0
        return 'rmsprop', (self.clip_gradient is not None, bool(self.centered), bool(self.clip_weights)), dict(
            self._clip_cols(), wd=wd, g1=self.gamma1, one_g1=1.0 - self.gamma1, eps=self.epsilon, lr=lr,
            g2=self.gamma2, cw_lo=-cw, cw_hi=cw)


@register
class AdaGrad(Optimizer):
    """AdaGrad (MXNet 1.x): g = clip(rescale*grad); h += g^2; w -= lr*(g/sqrt(h + eps) + wd*w)."""

    def __init__(self, eps=1e-7, **kwargs):
        super().__init__(**kwargs)
        self.float_stable_eps = eps

    def create_state(self, index, weight):
        return _zeros(weight)  # history

    def _lazy(self, weight, grad, state, wd):  # MXNet's sparse adagrad_update: the gradient's rows only, no wd
        if wd:
            raise GraphcError("AdaGrad: the sparse update (a row_sparse gradient) does not support wd; "
                              "MXNet's adagrad_update refuses it too")
        return True

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


    def _multi(self, lr, wd, counts, nstate):
        return 'adagrad', (self.clip_gradient is not None,), dict(
            self._clip_cols(), eps=self.float_stable_eps, wd=wd, lr=lr)


@register
class AdaDelta(Optimizer):
    """AdaDelta (Zeiler 2012): g = clip(rescale*grad); acc_g = rho*acc_g + (1-rho)*g^2;
    delta = sqrt(acc_delta + epsilon)/sqrt(acc_g + epsilon) * g; acc_delta = rho*acc_delta + (1-rho)*delta^2;
    w -= delta + wd*w. No learning rate (as MXNet's)."""

    def __init__(self, rho=0.90, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.rho, self.epsilon = rho, epsilon

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # acc_g, acc_delta

    def _step(self, index, w, g, state, lr, wd):
        g = self._grad(w, g)
        acc_g, acc_delta = state[0]._data, state[1]._data
        acc_g *= self.rho
        acc_g += (1.0 - self.rho) * g * g
        delta = np.sqrt(acc_delta + self.epsilon) / np.sqrt(acc_g + self.epsilon) * g
        acc_delta *= self.rho
        acc_delta += (1.0 - self.rho) * delta * delta
        w -= delta + wd * w


@register
class Ftrl(Optimizer):
    """FTRL-proximal (McMahan et al. 2013; MXNet ftrl_update): g = clip(rescale*grad);
    z += g - (sqrt(n + g^2) - sqrt(n)) * w/lr; n += g^2;
    w = (sign(z)*lamda1 - z) / ((beta + sqrt(n))/lr + wd) where |z| > lamda1, else 0."""
    default_lr = 0.1

    def __init__(self, lamda1=0.01, learning_rate=None, beta=1, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lamda1, self.beta = lamda1, beta

    def create_state(self, index, weight):
        return (_zeros(weight), _zeros(weight))  # z (dn), n

    def _lazy(self, weight, grad, state, wd):  # MXNet: the sparse update when weight, states and grad are row_sparse
        return all(a.stype == 'row_sparse' for a in [weight] + _state_arrays(state))

    def _step(self, index, w, g, state, lr, wd):
        g = self._grad(w, g)
        z, n = state[0]._data, state[1]._data
        z += g - (np.sqrt(n + g * g) - np.sqrt(n)) * w / lr
        n += g * g
        w[...] = (np.sign(z) * self.lamda1 - z) / ((self.beta + np.sqrt(n)) / lr + wd) * (np.abs(z) > self.lamda1)


@register
class Test(Optimizer):
    """MXNet's optimizer for tests: w += rescale*grad; state = w."""

    def create_state(self, index, weight):
        return _zeros(weight)

    def _step(self, index, w, g, state, lr, wd):
        w += g * float(self.rescale_grad)
        state._data[...] = w


# ------------------------------------------------------------------ Updater
class Updater:
    """Holds one state per index and applies the optimizer: updater(index, grad, weight) (MXNet order).
    index, grad and weight may be lists."""

    def __init__(self, optimizer):
        self.optimizer, self.states, self.states_synced = optimizer, {}, {}

    def __call__(self, index, grad, weight):
        if not isinstance(index, (list, tuple)):
            index, grad, weight = [index], [grad], [weight]
        ctx = getattr(weight[0], 'context', None) if weight else None
        if ctx is not None:
            self.optimizer._set_current_context(ctx.device_id)
        for i, g, w in zip(index, grad, weight):
            if isinstance(i, bytes):
                i = i.decode()
            self.optimizer.update_multi_precision(i, w, g, self.state(i, w))

    def state(self, i, w):
        """The state of index i (weight w): made at its first update, moved onto w's device after a load."""
        if i not in self.states:
            self.states[i] = self.optimizer.create_state_multi_precision(i, w)
            self.states_synced[i] = True
        elif not self.states_synced.get(i, True):
            self.states[i] = self.sync_state_context(self.states[i], w.context)
            self.states_synced[i] = True
        return self.states[i]

    def get_states(self, dump_optimizer=False):
        """The states as bytes, in graphc's .params format (arrays plus a JSON layout; no pickle). With
        dump_optimizer, also the optimizer's class and its plain (number, string, bool) settings."""
        import json
        import tempfile
        from ..serialization import save_ndarrays
        arrays, layout = {}, {'indices': [], 'states': []}
        for n, (i, st) in enumerate(self.states.items()):
            flat = []
            layout['indices'].append(i)
            layout['states'].append(_state_layout(st, flat))
            arrays.update({f'state:{n}:{k}': a for k, a in enumerate(flat)})
        if dump_optimizer:
            o = self.optimizer
            layout['optimizer'] = [type(o).__name__.lower(), {
                k: v for k, v in vars(o).items() if not k.startswith('_') and k != 'param_dict'
                and isinstance(v, (int, float, str, bool, type(None)))}]
            layout['counts'] = [[k, list(c.items())] for k, c in o._all_index_update_counts.items()]
        arrays['layout'] = np.frombuffer(json.dumps(layout).encode(), np.uint8)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'states')
            save_ndarrays(path, arrays)
            with open(path, 'rb') as f:
                return f.read()

    def set_states(self, states):
        """Restore what get_states wrote (the optimizer too, when it was dumped)."""
        import json
        from ..serialization import load_frombuffer
        arrays = load_frombuffer(states, '<optimizer states>')
        try:
            layout = json.loads(bytes(arrays.pop('layout').asnumpy()).decode())
            restored = {}
            for n, (i, st) in enumerate(zip(layout['indices'], layout['states'])):
                restored[i] = _state_from_layout(st, lambda k, n=n: arrays[f'state:{n}:{k}'])
        except (KeyError, ValueError, TypeError, AttributeError) as e:
            raise GraphcLoadError(f"optimizer states: not what Updater.get_states writes ({e!r})") from None
        if 'optimizer' in layout:
            name, attrs = layout['optimizer']
            o = create(name)
            vars(o).update(attrs)
            o._all_index_update_counts = {k: dict(c) for k, c in layout.get('counts', [[0, []]])}
            o._index_update_count, o._count_device = o._all_index_update_counts.setdefault(0, {}), 0
            self.optimizer = o
        self.states = restored
        self.states_synced = dict.fromkeys(restored, False)

    def sync_state_context(self, state, context):
        """The state moved onto `context` (after loading states saved on another device)."""
        if isinstance(state, NDArray):
            return state.as_in_context(context)
        if isinstance(state, (tuple, list)):
            return type(state)(self.sync_state_context(s, context) for s in state)
        return state


def _state_layout(st, flat):
    """JSON of a state's structure (None, arrays by position in flat, nested tuples/lists); fills flat."""
    if st is None:
        return None
    if isinstance(st, NDArray):
        flat.append(st)
        return len(flat) - 1
    if isinstance(st, (tuple, list)):
        return {'tuple' if isinstance(st, tuple) else 'list': [_state_layout(s, flat) for s in st]}
    raise GraphcError(f"Updater.get_states: cannot save a state of type {type(st).__name__}")


def _state_from_layout(lay, array):
    if lay is None:
        return None
    if isinstance(lay, int):
        return array(lay)
    (kind, items), = lay.items()
    seq = [_state_from_layout(x, array) for x in items]
    return tuple(seq) if kind == 'tuple' else seq


def get_updater(optimizer):
    """An Updater (a callable index, grad, weight) for the optimizer."""
    return Updater(optimizer)
