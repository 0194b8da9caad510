"""Sorting: sort, argsort and topk along an axis (MXNet's semantics: indices in a float dtype by default)."""
import numpy as np

from ..registry import Attr, bad, norm_axis, register

_IDX_DTYPES = ('float16', 'float32', 'float64', 'int32', 'int64', 'uint8')


def _order(x, axis, ascend):
    """Stable sort indices along axis (descending: equal elements keep their order too)."""
    if ascend:
        return np.argsort(x, axis=axis, kind='stable')
    return np.argsort(-x.astype(np.float64) if x.dtype.kind in 'ui' else -x, axis=axis, kind='stable')


def _axis(a, s):
    return None if a['axis'] is None else norm_axis(a['axis'], len(s))


def _scatter_back(x, idx, g, axis):
    """Zeros like x with g written at the positions idx along axis (the gradient of a gather by idx)."""
    out = np.zeros_like(x)
    if axis is None:
        out.reshape(-1)[idx.reshape(-1)] = g.reshape(-1)
        return out
    np.put_along_axis(out, idx, g, axis=axis)
    return out


SORT_ATTRS = {'axis': Attr('int', -1, none_ok=True), 'is_ascend': Attr('bool', True)}


@register('sort', kind='opaque', attrs=SORT_ATTRS, infer=lambda a, s, d: ([s[0] if a['axis'] is not None else
                                                                            (int(np.prod(s[0])),)], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_sort(dy[0], x[0], **a)],
          doc="x sorted along axis (axis=None: flattened), ascending unless is_ascend=False.")
def _sort(attrs, x):
    ax = attrs['axis']
    xs = x.reshape(-1) if ax is None else x
    idx = _order(xs, 0 if ax is None else ax, attrs['is_ascend'])
    return np.take_along_axis(xs, idx, axis=0 if ax is None else ax)


@register('_backward_sort', kind='opaque', inputs=('ograd', 'data'), attrs=SORT_ATTRS, nograd_inputs=(1,),
          infer=lambda a, s, d: ([s[1]], [d[1]]), differentiable=False,
          doc="Gradient of sort: each output gradient goes back to the position its element came from.")
def _backward_sort(attrs, g, x):
    ax = attrs['axis']
    xs = x.reshape(-1) if ax is None else x
    idx = _order(xs, 0 if ax is None else ax, attrs['is_ascend'])
    return _scatter_back(xs, idx, g.reshape(idx.shape), 0 if ax is None else ax).reshape(x.shape)


@register('argsort', kind='opaque', attrs={**SORT_ATTRS, 'dtype': Attr('str', 'float32', choices=_IDX_DTYPES)},
          infer=lambda a, s, d: ([s[0] if a['axis'] is not None else (int(np.prod(s[0])),)], [np.dtype(a['dtype'])]),
          grad=lambda F, a, x, y, dy: [None], doc="The indices that sort x along axis (in dtype, float32 by default).")
def _argsort(attrs, x):
    ax = attrs['axis']
    return _order(x.reshape(-1) if ax is None else x, 0 if ax is None else ax, attrs['is_ascend']).astype(attrs['dtype'])


TOPK_ATTRS = {'axis': Attr('int', -1, none_ok=True), 'k': Attr('int', 1),
              'ret_typ': Attr('str', 'indices', choices=('value', 'indices', 'mask', 'both')),
              'is_ascend': Attr('bool', False), 'dtype': Attr('str', 'float32', choices=_IDX_DTYPES)}


def _topk_shape(a, s):
    ax = _axis(a, s)
    if ax is None:
        s, ax = (int(np.prod(s)),), 0
    k = a['k'] if a['k'] > 0 else s[ax]
    if k > s[ax]:
        bad(f"topk: k={k} is larger than the axis size {s[ax]}")
    return s[:ax] + (k,) + s[ax + 1:], k


def _topk_infer(a, s, d):
    if a['ret_typ'] == 'mask':
        _topk_shape(a, s[0])
        return [s[0]], [d[0]]
    shape, _ = _topk_shape(a, s[0])
    idt = np.dtype(a['dtype'])
    return {'value': ([shape], [d[0]]), 'indices': ([shape], [idt]), 'both': ([shape, shape], [d[0], idt])}[a['ret_typ']]


def _topk_idx(a, x):
    ax = a['axis']
    xs, ax = (x.reshape(-1), 0) if ax is None else (x, ax % x.ndim)
    _, k = _topk_shape(a, x.shape)
    idx = np.take(_order(xs, ax, a['is_ascend']), np.arange(k), axis=ax)
    return xs, ax, idx


def _topk_grad(F, a, x, y, dy):
    if a['ret_typ'] in ('value', 'both'):
        return [F._backward_topk(dy[0], x[0], **a)]
    return [None]


@register('topk', kind='opaque', attrs=TOPK_ATTRS, infer=_topk_infer, grad=_topk_grad,
          num_outputs=lambda a: 2 if a['ret_typ'] == 'both' else 1,
          doc="The k largest (is_ascend: smallest) elements along axis: their values, indices, both, or a 0/1 mask.")
def _topk(attrs, x):
    xs, ax, idx = _topk_idx(attrs, x)
    r = attrs['ret_typ']
    if r == 'mask':
        return _scatter_back(xs, idx, np.ones(idx.shape, x.dtype), ax).reshape(x.shape)
    vals = np.take_along_axis(xs, idx, axis=ax)
    if r == 'value':
        return vals
    if r == 'indices':
        return idx.astype(attrs['dtype'])
    return vals, idx.astype(attrs['dtype'])


@register('_backward_topk', kind='opaque', inputs=('ograd', 'data'), attrs=TOPK_ATTRS, nograd_inputs=(1,),
          infer=lambda a, s, d: ([s[1]], [d[1]]), differentiable=False,
          doc="Gradient of topk's values: each goes back to the position it was taken from.")
def _backward_topk(attrs, g, x):
    xs, ax, idx = _topk_idx(attrs, x)
    return _scatter_back(xs, idx, g.reshape(idx.shape), ax).reshape(x.shape)


def _hist_inputs(a):
    return ('data',) if a['bin_cnt'] is not None else ('data', 'bins')


def _hist_infer(a, s, d):
    if a['bin_cnt'] is not None:
        if a['bin_cnt'] < 1 or a['range'] is None or len(a['range']) != 2 or not a['range'][0] < a['range'][1]:
            bad(f"histogram: bin_cnt must be >= 1 with a range (low, high), low < high; got bin_cnt={a['bin_cnt']}, "
                f"range={a['range']}")
        n = a['bin_cnt']
    else:
        if len(s) != 2 or len(s[1]) != 1 or s[1][0] < 2:
            bad(f"histogram: bins must be a 1-d array of at least 2 edges, got shape {s[1] if len(s) > 1 else None}")
        n = s[1][0] - 1
    return [(n,), (n + 1,)], [np.dtype('int64'), d[1] if len(d) > 1 else d[0]]


@register('_histogram', kind='opaque', inputs=_hist_inputs, differentiable=False, num_outputs=2, infer=_hist_infer,
          attrs={'bin_cnt': Attr('int', None), 'range': Attr('floats', None)},
          doc="NumPy's histogram of the flattened data: (counts (int64), bin edges); bin_cnt equal bins over "
              "range, or the edges given as a second input (the last bin includes its right edge).")
def _histogram(a, x, bins=None):
    edges = np.linspace(*a['range'], a['bin_cnt'] + 1) if bins is None else bins.astype(np.float64)
    counts, _ = np.histogram(x.astype(np.float64).ravel(), edges)
    return counts.astype(np.int64), edges.astype(x.dtype if bins is None else bins.dtype)
