"""Loss heads and gradient control (MXNet's *Output ops, MakeLoss, BlockGrad): their backward is defined by
the op, not by the derivative of their forward, so a graph ending in them trains without a separate loss."""
import numpy as np

from ..registry import Attr, bad, register
from .elemwise import same_infer


@register('BlockGrad', kind='elemwise', infer=same_infer, grad=lambda F, a, x, y, dy: [None], lower=lambda P, a, x: x,
          doc="Identity forward; no gradient flows back through it (MXNet's BlockGrad / stop_gradient).")
def _block_grad(attrs, x):
    return x.copy()


_NORM = Attr('str', 'null', choices=('null', 'batch', 'valid'))


def _loss_grad(F, a, x, y, dy):
    """grad_scale * ones, divided by the batch size ('batch') or the count above valid_thresh ('valid')."""
    x0 = x[0]
    g = F.ones_like(x0) * a.get('grad_scale', 1.0)
    if a.get('normalization') == 'batch':
        g = g / float(max(x0.shape[0], 1) if x0.shape else 1)
    elif a.get('normalization') == 'valid':
        n = F.maximum(F.sum(x0 > a['valid_thresh']), F.ones_like(F.sum(x0)))
        g = F.broadcast_div(g, n if x0.shape else F._np_reshape(n, newshape=()))  # (a 0-d loss: sum gives (1,))
    return [g]


@register('MakeLoss', kind='elemwise', infer=same_infer, grad=_loss_grad, lower=lambda P, a, x: x,
          attrs={'grad_scale': Attr('float', 1.0), 'valid_thresh': Attr('float', 0.0), 'normalization': _NORM},
          doc="Marks x as a loss: identity forward, backward grad_scale * ones (normalized by 'batch' or 'valid').")
def _make_loss(attrs, x):
    return x.copy()


@register('make_loss', kind='elemwise', infer=same_infer, grad=_loss_grad, lower=lambda P, a, x: x,
          doc="Marks x as a loss: identity forward, backward ones (MXNet's make_loss).")
def _make_loss_plain(attrs, x):
    return x.copy()


def _label_like(F, label, x):
    return F._np_reshape(label, newshape=x.shape) if tuple(label.shape) != tuple(x.shape) else label


def _regression(name, fwd, grad_of, lower):
    def infer(a, s, d):
        if int(np.prod(s[1])) != int(np.prod(s[0])):
            bad(f"{name}: label shape {s[1]} does not match data shape {s[0]}")
        return [s[0]], [d[0]]

    def grad(F, a, x, y, dy):
        m = int(np.prod(x[1].shape)) // max(x[1].shape[0], 1) if x[1].shape and x[1].shape[0] else 1
        return [grad_of(F, y[0], _label_like(F, x[1], y[0])) * (a['grad_scale'] / max(m, 1)), None]

    register(name, kind='elemwise', inputs=('data', 'label'), nograd_inputs=(1,), infer=infer, grad=grad,
             attrs={'grad_scale': Attr('float', 1.0)}, lower=lambda P, a, x, label: lower(P, x),
             doc=f"MXNet's {name}: the forward is the prediction; the backward is the loss gradient scaled by "
                 "grad_scale / (outputs per sample).")(lambda a, x, label: fwd(x))


_regression('LinearRegressionOutput', lambda x: x.copy(), lambda F, y, t: y - t, lambda P, x: x)
_regression('MAERegressionOutput', lambda x: x.copy(), lambda F, y, t: F.sign(y - t), lambda P, x: x)
_regression('LogisticRegressionOutput', lambda x: (1 / (1 + np.exp(-x))).astype(x.dtype), lambda F, y, t: y - t,
            lambda P, x: P.sigmoid(x))


SMO_ATTRS = {'grad_scale': Attr('float', 1.0), 'ignore_label': Attr('float', -1.0), 'multi_output': Attr('bool', False),
             'use_ignore': Attr('bool', False), 'preserve_shape': Attr('bool', False), 'normalization': _NORM,
             'out_grad': Attr('bool', False), 'smooth_alpha': Attr('float', 0.0)}


def _smo_axis(a, ndim):
    return ndim - 1 if a['preserve_shape'] else 1 if ndim > 1 else 0


def _smo_flat(a, shape):
    """MXNet: without multi_output or preserve_shape, data of more than 2 dims is (batch, everything else)."""
    return len(shape) > 2 and not a['multi_output'] and not a['preserve_shape']


def _smo_infer(a, s, d):
    x, lab = s
    ax = _smo_axis(a, len(x))
    want = (x[0],) if _smo_flat(a, x) else x[:ax] + x[ax + 1:]
    if int(np.prod(lab)) != int(np.prod(want)) and tuple(lab) != tuple(x):
        bad(f"SoftmaxOutput: label shape {lab} must be data shape {x} without axis {ax} ({want})")
    return [x], [d[0]]


@register('SoftmaxOutput', kind='opaque', inputs=('data', 'label'), nograd_inputs=(1,), attrs=SMO_ATTRS,
          infer=_smo_infer, grad=lambda F, a, x, y, dy: [F._backward_SoftmaxOutput(y[0], x[1], **a), None],
          doc="Softmax over the class axis (1, or the last with preserve_shape); its backward is the cross-entropy "
              "gradient softmax - one_hot(label), with ignore_label, smoothing and normalization as MXNet's.")
def _softmax_output(attrs, x, label):
    if _smo_flat(attrs, x.shape):
        return _softmax_output(attrs, x.reshape(x.shape[0], -1), label).reshape(x.shape)
    ax = _smo_axis(attrs, x.ndim)
    e = np.exp(x - x.max(axis=ax, keepdims=True))
    return (e / e.sum(axis=ax, keepdims=True)).astype(x.dtype)


@register('_backward_SoftmaxOutput', kind='opaque', inputs=('out', 'label'), nograd_inputs=(1,), attrs=SMO_ATTRS,
          infer=lambda a, s, d: ([s[0]], [d[0]]), differentiable=False,
          doc="SoftmaxOutput's gradient from its output and the labels.")
def _backward_smo(attrs, y, label):
    if _smo_flat(attrs, y.shape):
        lab = label.reshape(y.shape[0], -1) if label.shape == y.shape else label
        return _backward_smo(attrs, y.reshape(y.shape[0], -1), lab).reshape(y.shape)
    ax = _smo_axis(attrs, y.ndim)
    k = y.shape[ax]
    ym = np.moveaxis(y, ax, -1)
    if label.shape == y.shape:  # probabilities as labels
        target = np.moveaxis(label, ax, -1).astype(y.dtype)
        keep = np.ones(ym.shape[:-1], bool)
    else:
        lab = label.reshape(ym.shape[:-1])
        idx = np.clip(lab.astype(np.int64), 0, k - 1)
        target = np.eye(k, dtype=y.dtype)[idx]
        a = attrs['smooth_alpha']
        if a:
            target = target * (1 - a) + (1 - target) * (a / (k - 1))
        keep = ~((lab == attrs['ignore_label']) & attrs['use_ignore'])
    g = (ym - target) * keep[..., None]
    scale = attrs['grad_scale']
    if attrs['normalization'] == 'batch':
        scale /= y.shape[0]
    elif attrs['normalization'] == 'valid':
        scale /= max(int(keep.sum()), 1)
    if attrs['multi_output'] and attrs['normalization'] != 'valid':  # MXNet: also per spatial position
        scale /= max(y.size // max(y.shape[0] * y.shape[1], 1), 1)
    return np.moveaxis(g * scale, -1, ax).astype(y.dtype)


def _smooth_l1_grad(F, a, x, y, dy):
    s2 = a['scalar'] ** 2
    return [dy[0] * F.where(F.abs(x[0]) < 1.0 / s2, x[0] * s2, F.sign(x[0]))]


def _smooth_l1_lower(P, a, x):  # the reference's operations in its order
    s2, ax = a['scalar'] ** 2, P.abs(x)
    return P.where(P.cmp('<', ax, P.c(1.0 / s2)), P.mul(P.mul(P.c(0.5 * s2), x), x), P.sub(ax, P.c(0.5 / s2)))


@register('smooth_l1', kind='elemwise', infer=same_infer, attrs={'scalar': Attr('float', 1.0)}, grad=_smooth_l1_grad,
          lower=_smooth_l1_lower,
          doc="0.5 (sigma x)^2 where |x| < 1/sigma^2, else |x| - 0.5/sigma^2 (sigma: scalar).")
def _smooth_l1(attrs, x):
    s2 = attrs['scalar'] ** 2
    return np.where(np.abs(x) < 1.0 / s2, 0.5 * s2 * x * x, np.abs(x) - 0.5 / s2).astype(x.dtype)


def _svm_infer(a, s, d):
    if len(s[0]) != 2 or tuple(s[1]) != s[0][:1]:
        bad(f"SVMOutput: data must be (batch, classes) and label (batch,), got {s[0]} and {s[1]}")
    return [s[0]], [d[0]]


def _svm_grad(F, a, x, y, dy):
    """The hinge loss's gradient for class scores x: with s = +1 for the label's class, -1 elsewhere,
    L1 (use_linear): -s * [margin > s x]; L2: -2 s max(margin - s x, 0); times regularization_coefficient."""
    s = F._minus_scalar(F._mul_scalar(F.one_hot(x[1], depth=x[0].shape[1], dtype=str(x[0].dtype)), scalar=2.0), scalar=1.0)
    sx = s * x[0]
    if a['use_linear']:
        g = F._lesser_scalar(sx, scalar=a['margin'])
    else:
        g = F._mul_scalar(F.relu(F._rminus_scalar(sx, scalar=a['margin'])), scalar=2.0)
    return [F._mul_scalar(-(s * g), scalar=a['regularization_coefficient']), None]


register('SVMOutput', kind='opaque', inputs=('data', 'label'), nograd_inputs=(1,), infer=_svm_infer, grad=_svm_grad,
         attrs={'margin': Attr('float', 1.0), 'regularization_coefficient': Attr('float', 1.0),
                'use_linear': Attr('bool', False)},
         doc="MXNet's SVMOutput: the forward is the scores; the backward the L2 (use_linear: L1) SVM hinge loss's "
             "gradient for the labels, as a loss head.")(lambda a, x, label: x.copy())
