"""Gathers and reorderings MXNet has beyond take/pick: reverse (flip), batch_take."""
import numpy as np

from ..registry import Attr, bad, norm_axis, register


def _rev_axes(a, ndim):
    ax = a['axis']
    return tuple(norm_axis(i, ndim) for i in ((ax,) if isinstance(ax, int) else ax))


def _rev_infer(a, s, d):
    _rev_axes(a, len(s[0]))  # checks the axes
    return [s[0]], [d[0]]


@register('reverse', kind='injective', attrs={'axis': Attr('axis')}, infer=_rev_infer,
          grad=lambda F, a, x, y, dy: [F.reverse(dy[0], axis=a['axis'])],
          doc="x with the order of its elements reversed along the axes (MXNet's reverse, also called flip).")
def _reverse(attrs, x):
    return np.flip(x, _rev_axes(attrs, x.ndim)).copy()


def _bt_infer(a, s, d):
    x, i = s
    if len(x) != 2 or tuple(i) != (x[0],):
        bad(f"batch_take: needs a 2-d array and one index per row, got {x} and {i}")
    return [(x[0],)], [d[0]]


@register('batch_take', kind='injective', inputs=('a', 'indices'), nograd_inputs=(1,), infer=_bt_infer,
          grad=lambda F, a, x, y, dy: [F._backward_pick(x[0], x[1], dy[0], axis=1, mode='clip'), None],
          doc="a[i, indices[i]] for every row i (indices clipped to the row length).")
def _batch_take(attrs, a, idx):
    i = np.clip(idx.astype(np.int64), 0, a.shape[1] - 1)
    return a[np.arange(a.shape[0]), i]


def _strides(shape, op):
    if not shape or any(d is None or d <= 0 for d in shape[1:]) or (shape[0] is None or shape[0] == 0 or shape[0] < -1):
        bad(f"{op}: shape must be positive sizes (the leading one may be -1), got {shape}")
    st = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        st[k] = st[k + 1] * shape[k + 1]
    return np.array(st, dtype=np.int64)


def _ravel_infer(a, s, d):
    if not s[0] or s[0][0] != len(a['shape']):
        bad(f"ravel_multi_index: data needs {len(a['shape'])} rows (one per dim of shape {a['shape']}), got {s[0]}")
    return [s[0][1:]], [d[0]]


@register('ravel_multi_index', kind='opaque', attrs={'shape': Attr('shape')}, infer=_ravel_infer,
          doc="Flat indices of the multi-indices in data's columns (data[k] indexes dim k of shape).")
def _ravel_multi_index(attrs, x):
    st = _strides(attrs['shape'], 'ravel_multi_index')
    return np.tensordot(st, x.astype(np.int64), axes=1).astype(x.dtype)


@register('unravel_index', kind='opaque', attrs={'shape': Attr('shape')},
          infer=lambda a, s, d: ([(len(a['shape']),) + tuple(s[0])], [d[0]]),
          doc="Multi-indices (one row per dim of shape) of the flat indices in data; inverse of ravel_multi_index.")
def _unravel_index(attrs, x):
    st, i = _strides(attrs['shape'], 'unravel_index'), x.astype(np.int64)
    out = [i // st[0]] + [(i // st[k]) % attrs['shape'][k] for k in range(1, len(st))]
    return np.stack(out).astype(x.dtype)
