"""mx.nd.contrib: the contrib ops graphc has (registered as _contrib_<name>) under their short names, and
MXNet's control flow (foreach, while_loop, cond) for NDArrays."""
import math
import sys

from ..base import GraphcError
from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import ndarray as nd
    for name in OPS:
        if name.startswith('_contrib_'):
            setattr(_mod, name[len('_contrib_'):], getattr(nd, name))
    for name in ('ctc_loss', 'CTCLoss'):  # MXNet's contrib names of the CTC loss
        setattr(_mod, name, getattr(nd, name))


_bind()


def _traced(*xs):
    """Whether a value is a Symbol (a traced forward): control flow then becomes a graph op (sym.contrib)."""
    from ..symbol.symbol import Symbol
    return any(isinstance(v, Symbol) for x in xs for v in (x if isinstance(x, (list, tuple)) else [x]))


def foreach(body, data, init_states, name='foreach'):
    """MXNet's contrib.foreach on NDArrays: for each slice of data along axis 0 (or of each array of a list),
    (out, states) = body(slice, states); returns (outputs stacked along axis 0, final states). Traced: a
    _foreach node (sym.contrib.foreach)."""
    if _traced(data, init_states):
        from ..symbol import contrib
        return contrib.foreach(body, data, init_states, name)
    from . import stack
    single = not isinstance(data, (list, tuple))
    seqs = [data] if single else list(data)
    states = init_states
    outs = []
    for t in range(seqs[0].shape[0]):
        out, states = body(seqs[0][t] if single else [s[t] for s in seqs], states)
        outs.append(out)
    if not outs:
        return [], states
    if isinstance(outs[0], (list, tuple)):
        return [stack(*[o[k] for o in outs], axis=0) for k in range(len(outs[0]))], states
    return stack(*outs, axis=0), states


def while_loop(cond, func, loop_vars, max_iterations=None, name='while_loop'):
    """MXNet's contrib.while_loop on NDArrays: while cond(*loop_vars): (step_out, loop_vars) = func(*loop_vars),
    at most max_iterations times. Returns (step outputs stacked along axis 0, final loop_vars); as in MXNet the
    stacked outputs are padded with zeros to max_iterations."""
    from . import stack, zeros_like
    if _traced(loop_vars):
        from ..symbol import contrib
        return contrib.while_loop(cond, func, loop_vars, max_iterations, name)
    if max_iterations is None:
        raise GraphcError("while_loop: max_iterations is required (MXNet needs it to size the outputs)")
    single = not isinstance(loop_vars, (list, tuple))
    lv = [loop_vars] if single else list(loop_vars)
    outs, one = [], False
    while len(outs) < max_iterations and bool(cond(*lv)):
        out, lv = func(*lv)
        lv = [lv] if not isinstance(lv, (list, tuple)) else list(lv)
        one = not isinstance(out, (list, tuple))  # a single step output comes back as one array, as MXNet's
        outs.append([out] if one else list(out))
    if outs:
        n = max_iterations - len(outs)
        stacked = [stack(*([o[k] for o in outs] + [zeros_like(outs[0][k])] * n), axis=0) for k in range(len(outs[0]))]
    else:
        stacked = []
    return (stacked[0] if one else stacked), (lv[0] if single else lv)


def cond(pred, then_func, else_func, name='cond'):
    """MXNet's contrib.cond on NDArrays: then_func() if pred (a size-1 array) is nonzero, else else_func().
    Traced: a _cond node (sym.contrib.cond)."""
    if _traced(pred):
        from ..symbol import contrib
        return contrib.cond(pred, then_func, else_func, name)
    return then_func() if bool(pred) else else_func()


# ---------------------------------------------------------------- MXNet's small contrib helpers
def SyncBatchNorm(data, gamma, beta, moving_mean, moving_var, eps=1e-3, momentum=0.9, fix_gamma=True,
                  use_global_stats=False, output_mean_var=False, ndev=1, key=None, name=None):
    """MXNet's contrib.SyncBatchNorm in one process: BatchNorm on axis 1 with this batch's statistics (ndev
    devices of one process are gluon.contrib.nn.SyncBatchNorm's job). Its outputs are (out, mean, var)."""
    from . import _OPS, invoke, update_moving_stats
    if int(ndev) != 1:
        raise GraphcError(f"SyncBatchNorm: ndev={ndev}: the imperative op syncs no devices in graphc; "
                          "use gluon.contrib.nn.SyncBatchNorm(num_devices=...)")
    op = _OPS['BatchNorm']
    a = op.canon(dict(eps=eps, momentum=momentum, fix_gamma=fix_gamma, use_global_stats=use_global_stats,
                      output_mean_var=output_mean_var, axis=1))
    out, mean, var = invoke(op, (data, gamma, beta, moving_mean, moving_var), a, name)
    update_moving_stats(a, moving_mean, moving_var, out, mean, var)
    return [out, mean, var] if output_mean_var else out


def arange_like(data, start=0.0, step=1.0, repeat=1, axis=None, ctx=None):
    """start, start + step, ... shaped like data (axis=None), or as long as data's axis (each value repeat times)."""
    from . import arange
    n = data.size if axis is None else data.shape[axis]
    out = arange(start, start + step * ((n + repeat - 1) // repeat), step, repeat=repeat, ctx=ctx or data.context,
                 dtype=data.dtype)
    out = out[:n] if out.shape[0] != n else out
    return out.reshape(data.shape) if axis is None else out


def allclose(a, b, rtol=1e-5, atol=1e-8, equal_nan=True):
    """1 (a 0-d uint8 array) when |a - b| <= atol + rtol |b| everywhere, else 0 (MXNet's contrib.allclose)."""
    import numpy as np
    from . import array
    return array(np.uint8(np.allclose(a.asnumpy(), b.asnumpy(), rtol, atol, equal_nan)), ctx=a.context, dtype="uint8")


def boolean_mask(data, index, axis=0):
    """The slices of data along axis where index is nonzero (a data-dependent shape: eager only)."""
    import numpy as np
    from . import array, take
    if index.ndim != 1 or index.shape[0] != data.shape[axis]:
        raise GraphcError(f"boolean_mask: index must be 1-d of length {data.shape[axis]} (data's axis {axis}), "
                          f"got shape {index.shape}")
    keep = np.nonzero(index.asnumpy())[0]
    return take(data, array(keep, ctx=data.context, dtype='int64'), axis=axis)


def box_iou(lhs, rhs, format='corner'):
    """Intersection over union of every box of lhs with every box of rhs: shape lhs.shape[:-1] + rhs.shape[:-1]
    ('corner': x1, y1, x2, y2; 'center': x, y, w, h). Not differentiable (as MXNet)."""
    import numpy as np
    from . import array
    if format not in ('corner', 'center'):
        raise GraphcError(f"box_iou: format must be 'corner' or 'center', got {format!r}")

    def corners(b):
        b = b.asnumpy().astype(np.float64)
        if b.shape[-1] != 4:
            raise GraphcError(f"box_iou: boxes need 4 coordinates in the last axis, got shape {b.shape}")
        if format == 'center':
            b = np.concatenate([b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2], -1)
        return b.reshape(-1, 4)
    a, b = corners(lhs), corners(rhs)
    wh = np.clip(np.minimum(a[:, None, 2:], b[None, :, 2:]) - np.maximum(a[:, None, :2], b[None, :, :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area = lambda c: (c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = np.where(union > 0, inter / union, 0.0)
    return array(iou.reshape(lhs.shape[:-1] + rhs.shape[:-1]), ctx=lhs.context, dtype=lhs.dtype)


def adamw_update(*args, **kwargs):
    """MXNet's contrib.adamw_update (see graphc.ndarray.update.adamw_update)."""
    from .update import adamw_update as f
    return f(*args, **kwargs)


def rand_zipfian(true_classes, num_sampled, range_max, ctx=None, F=None):
    """MXNet's contrib.rand_zipfian: num_sampled classes (with repeats) from the log-uniform distribution over
    [0, range_max), P(k) = log((k+2)/(k+1)) / log(range_max+1), and the expected counts of true_classes and of
    the sampled classes (P(k) * num_sampled). Returns (sampled int64, expected_true float64, expected_sampled)."""
    if F is None:
        from .. import ndarray as F
    if range_max < 1 or num_sampled < 0:
        raise GraphcError(f"rand_zipfian: range_max ({range_max}) must be >= 1 and num_sampled ({num_sampled}) >= 0")
    log_range = math.log(range_max + 1)
    kw = {} if ctx is None else {'ctx': ctx}
    u = F._random_uniform(low=0, high=log_range, shape=(num_sampled,), dtype='float64', **kw)
    sampled = F.Cast(F.exp(u) - 1, dtype='int64') % range_max

    def expected(c):
        c = F.Cast(c, dtype='float64')
        return F.log((c + 2.0) / (c + 1.0)) / log_range * num_sampled
    return sampled, expected(true_classes), expected(sampled)
