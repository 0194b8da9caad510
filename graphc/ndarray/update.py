"""MXNet's optimizer update operators (nd.sgd_update, nd.adam_update, ...) for custom training loops.

Each follows the formula MXNet 1.9 documents (src/operator/optimizer_op.cc): the gradient is rescaled by
rescale_grad and clipped to [-clip_gradient, clip_gradient] when clip_gradient >= 0; the states (mom, mean,
var, n, ...) are updated in place; the new weight is returned, or written into out= (usually the weight).
They are not differentiable and not recorded by autograd, as in MXNet.
"""
import numpy as np

from ..base import GraphcError
from .ndarray import NDArray


def _arrays(name, *xs):
    if not all(isinstance(x, NDArray) for x in xs):
        raise GraphcError(f"{name}: weight, grad and the states must be NDArrays")
    if any(x.shape != xs[0].shape for x in xs):
        raise GraphcError(f"{name}: weight, grad and states must share a shape, got "
                          f"{', '.join(str(x.shape) for x in xs)}")
    from .. import engine
    engine.flush()
    return [x._data for x in xs]


def _g(g, rescale_grad, clip_gradient, w=None, wd=0.0):
    """rescale_grad * grad (+ wd * weight when w is given), clipped when clip_gradient >= 0."""
    g = g * rescale_grad if w is None else g * rescale_grad + wd * w
    return np.clip(g, -clip_gradient, clip_gradient) if clip_gradient >= 0 else g


def _set(state, value):
    state[...] = value.astype(state.dtype, copy=False)


def _result(name, w, new, out):
    new = new.astype(w.dtype, copy=False)
    if out is None:
        return NDArray(new)
    if not isinstance(out, NDArray) or out.shape != w.shape:
        raise GraphcError(f"{name}: out= must be an NDArray of the weight's shape {w.shape}")
    out._data[...] = new
    return out


def sgd_update(weight, grad, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, lazy_update=True, out=None):
    """weight - lr * (grad + wd * weight)."""
    w, g = _arrays('sgd_update', weight, grad)
    return _result('sgd_update', w, (1 - lr * wd) * w - lr * _g(g, rescale_grad, clip_gradient), out)


def sgd_mom_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                   lazy_update=True, out=None):
    """mom = momentum * mom - lr * (grad + wd * weight); weight + mom."""
    w, g, m = _arrays('sgd_mom_update', weight, grad, mom)
    _set(m, momentum * m - lr * wd * w - lr * _g(g, rescale_grad, clip_gradient))
    return _result('sgd_mom_update', w, w + m, out)


def nag_mom_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, out=None):
    """g = grad + wd * weight; mom = momentum * mom - lr * g; weight + momentum * mom - lr * g (MXNet's kernel)."""
    w, g, m = _arrays('nag_mom_update', weight, grad, mom)
    g = _g(g, rescale_grad, clip_gradient) + wd * w
    _set(m, momentum * m - lr * g)
    return _result('nag_mom_update', w, w + momentum * m - lr * g, out)


def adam_update(weight, grad, mean, var, lr, beta1=0.9, beta2=0.999, epsilon=1e-8, wd=0.0, rescale_grad=1.0,
                clip_gradient=-1.0, lazy_update=True, out=None):
    """g = clip(grad + wd * weight); mean, var: moving moments of g and g^2; weight - lr * mean / (sqrt(var) + eps)."""
    w, g, m, v = _arrays('adam_update', weight, grad, mean, var)
    g = _g(g, rescale_grad, clip_gradient, w, wd)
    _set(m, beta1 * m + (1 - beta1) * g)
    _set(v, beta2 * v + (1 - beta2) * g * g)
    return _result('adam_update', w, w - lr * m / (np.sqrt(v) + epsilon), out)


def _clip_w(w, clip_weights):
    return np.clip(w, -clip_weights, clip_weights) if clip_weights >= 0 else w


def rmsprop_update(weight, grad, n, lr, gamma1=0.95, epsilon=1e-8, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                   clip_weights=-1.0, out=None):
    """g = clip(grad + wd * weight); n = gamma1 * n + (1 - gamma1) g^2; weight - lr * g / sqrt(n + eps)."""
    w, g, s = _arrays('rmsprop_update', weight, grad, n)
    g = _g(g, rescale_grad, clip_gradient, w, wd)
    _set(s, (1 - gamma1) * g * g + gamma1 * s)
    return _result('rmsprop_update', w, _clip_w(w - lr * g / np.sqrt(s + epsilon), clip_weights), out)


def rmspropalex_update(weight, grad, n, g, delta, lr, gamma1=0.95, gamma2=0.9, epsilon=1e-8, wd=0.0,
                       rescale_grad=1.0, clip_gradient=-1.0, clip_weights=-1.0, out=None):
    """Graves' centered RMSProp: n, g moving moments; delta = gamma2 delta - lr gr / sqrt(n - g^2 + eps)."""
    w, gr, s, gm, d = _arrays('rmspropalex_update', weight, grad, n, g, delta)
    gr = _g(gr, rescale_grad, clip_gradient, w, wd)
    _set(s, (1 - gamma1) * gr * gr + gamma1 * s)
    _set(gm, (1 - gamma1) * gr + gamma1 * gm)
    with np.errstate(invalid='ignore'):  # (n - g^2 < 0 from inconsistent states: NaN, as MXNet's kernel gives)
        _set(d, gamma2 * d - lr * gr / np.sqrt(s - gm * gm + epsilon))
    return _result('rmspropalex_update', w, _clip_w(w + d, clip_weights), out)


def signsgd_update(weight, grad, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, out=None):
    """(1 - lr * wd) * weight - lr * sign(grad)."""
    w, g = _arrays('signsgd_update', weight, grad)
    return _result('signsgd_update', w, (1 - lr * wd) * w - lr * np.sign(_g(g, rescale_grad, clip_gradient)), out)


def signum_update(weight, grad, mom, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, wd_lh=0.0,
                  out=None):
    """mom = momentum * mom - (1 - momentum) (grad + wd * weight); (1 - lr * wd_lh) weight + lr * sign(mom)."""
    w, g, m = _arrays('signum_update', weight, grad, mom)
    _set(m, momentum * m - (1 - momentum) * wd * w - (1 - momentum) * _g(g, rescale_grad, clip_gradient))
    return _result('signum_update', w, (1 - lr * wd_lh) * w + lr * np.sign(m), out)


def ftrl_update(weight, grad, z, n, lr, lamda1=0.01, beta=1.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                out=None):
    """FTRL-proximal (McMahan et al.), as MXNet documents it."""
    w, g, zz, nn = _arrays('ftrl_update', weight, grad, z, n)
    g = _g(g, rescale_grad, clip_gradient)
    _set(zz, zz + g - (np.sqrt(nn + g * g) - np.sqrt(nn)) * w / lr)
    _set(nn, nn + g * g)
    new = (np.sign(zz) * lamda1 - zz) / ((beta + np.sqrt(nn)) / lr + wd) * (np.abs(zz) > lamda1)
    return _result('ftrl_update', w, new, out)


def mp_sgd_update(weight, grad, weight32, lr, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0, lazy_update=True,
                  out=None):
    """sgd_update on the float32 master copy weight32 (updated in place); returns it cast to weight's dtype."""
    w, g, w32 = _arrays('mp_sgd_update', weight, grad, weight32)
    _set(w32, (1 - lr * wd) * w32 - lr * _g(g.astype(np.float32), rescale_grad, clip_gradient))
    return _result('mp_sgd_update', w, w32, out)


def mp_sgd_mom_update(weight, grad, mom, weight32, lr, momentum=0.0, wd=0.0, rescale_grad=1.0, clip_gradient=-1.0,
                      lazy_update=True, out=None):
    """sgd_mom_update on the float32 master copy weight32 and float32 mom; returns weight32 in weight's dtype."""
    w, g, m, w32 = _arrays('mp_sgd_mom_update', weight, grad, mom, weight32)
    _set(m, momentum * m - lr * wd * w32 - lr * _g(g.astype(np.float32), rescale_grad, clip_gradient))
    _set(w32, w32 + m)
    return _result('mp_sgd_mom_update', w, w32, out)


def ftml_update(weight, grad, d, v, z, lr, t, beta1=0.6, beta2=0.999, epsilon=1e-8, wd=0.0, rescale_grad=1.0,
                clip_grad=-1.0, out=None):
    """FTML (Zheng & Kwok 2017) as MXNet's kernel computes it (z gains (1 - beta1) g; its docstring says
    (1 - beta1^t)): v, d, z updated in place; the weight is -z / d."""
    w, g, dd, vv, zz = _arrays('ftml_update', weight, grad, d, v, z)
    g = _g(g, rescale_grad, clip_grad, w, wd)
    _set(vv, beta2 * vv + (1 - beta2) * g * g)
    d_t = (1 - beta1 ** t) / lr * (np.sqrt(vv / (1 - beta2 ** t)) + epsilon)
    _set(zz, beta1 * zz + (1 - beta1) * g - (d_t - beta1 * dd) * w)
    _set(dd, d_t)
    return _result('ftml_update', w, -zz / d_t, out)


def adamw_update(weight, grad, mean, var, rescale_grad, lr, eta, beta1=0.9, beta2=0.999, epsilon=1e-8, wd=0.0,
                 clip_gradient=-1.0, out=None):
    """contrib.adamw_update: Adam with decoupled weight decay, w -= eta (lr m / (sqrt(v) + eps) + wd w);
    rescale_grad (an NDArray or a number) that is NaN, inf or 0 skips the update, as MXNet."""
    w, g, m, v = _arrays('adamw_update', weight, grad, mean, var)
    r = float(rescale_grad.asscalar() if isinstance(rescale_grad, NDArray) else rescale_grad)
    if not np.isfinite(r) or r == 0:
        return _result('adamw_update', w, w.copy(), out)
    g = _g(g, r, clip_gradient)
    _set(m, beta1 * m + (1 - beta1) * g)
    _set(v, beta2 * v + (1 - beta2) * g * g)
    return _result('adamw_update', w, w - eta * (lr * m / (np.sqrt(v) + epsilon) + wd * w), out)


NAMES = ('sgd_update', 'sgd_mom_update', 'nag_mom_update', 'adam_update', 'rmsprop_update', 'rmspropalex_update',
         'signsgd_update', 'signum_update', 'ftrl_update', 'mp_sgd_update', 'mp_sgd_mom_update', 'ftml_update')
