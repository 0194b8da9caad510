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
