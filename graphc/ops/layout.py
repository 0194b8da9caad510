"""MXNet's remaining shape and layout ops: broadcast_like (reshape_like: ops/reshape_like.py), broadcast_axes, shape/size arrays, argmax_channel, diag,
cumsum, depth_to_space / space_to_depth, gather_nd / scatter_nd, khatri_rao."""
import numpy as np

from ..registry import Attr, bad, norm_axis, register
from .elemwise import unbroadcast


def _bl_shape(a, s, t):
    if a['lhs_axes'] is None:
        return tuple(np.broadcast_shapes(s, t)) if len(t) == len(s) else bad(
            f"broadcast_like: {s} and {t} differ in rank")
    if a['rhs_axes'] is None or not a['lhs_axes'] or len(a['lhs_axes']) != len(a['rhs_axes']):
        bad(f"broadcast_like: lhs_axes and rhs_axes must be non-empty and of the same length, got "
            f"{a['lhs_axes']} and {a['rhs_axes']}")
    out = list(s)
    for la, ra in zip(a['lhs_axes'], a['rhs_axes']):
        la, ra = norm_axis(la, len(s)), norm_axis(ra, len(t))
        if s[la] != 1:
            bad(f"broadcast_like: axis {la} of {s} has size {s[la]}, not 1")
        out[la] = t[ra]
    return tuple(out)


@register('broadcast_like', kind='broadcast', inputs=('lhs', 'rhs'), nograd_inputs=(1,),
          attrs={'lhs_axes': Attr('shape', None), 'rhs_axes': Attr('shape', None)},
          infer=lambda a, s, d: ([_bl_shape(a, s[0], s[1])], [d[0]]),
          grad=lambda F, a, x, y, dy: [unbroadcast(F, dy[0], x[0].shape), None],
          doc="lhs broadcast to rhs's shape (or only lhs_axes to the sizes of rhs_axes).")
def _broadcast_like(a, x, like):
    return np.broadcast_to(x, _bl_shape(a, x.shape, like.shape)).copy()


def _ba_shape(a, s):
    out = list(s)
    axes = (a['axis'],) if isinstance(a['axis'], int) else a['axis']
    sizes = a['size']
    if len(axes) != len(sizes):
        bad(f"broadcast_axes: {len(axes)} axes but {len(sizes)} sizes")
    for ax, n in zip(axes, sizes):
        ax = norm_axis(ax, len(s))
        if s[ax] != 1:
            bad(f"broadcast_axes: axis {ax} of {s} has size {s[ax]}, not 1")
        out[ax] = n
    return tuple(out)


@register('broadcast_axes', kind='broadcast', attrs={'axis': Attr('axis', ()), 'size': Attr('shape', ())},
          infer=lambda a, s, d: ([_ba_shape(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [unbroadcast(F, dy[0], x[0].shape)],
          doc="Size-1 axes broadcast to the given sizes (MXNet's broadcast_axes / broadcast_axis).")
def _broadcast_axes(a, x):
    return np.broadcast_to(x, _ba_shape(a, x.shape)).copy()


@register('shape_array', kind='opaque', infer=lambda a, s, d: ([(len(s[0]),)], [np.dtype('int64')]),
          differentiable=False, doc="The shape of data as a 1-d int64 array.")
def _shape_array(a, x):
    return np.array(x.shape, np.int64)


@register('size_array', kind='opaque', infer=lambda a, s, d: ([(1,)], [np.dtype('int64')]),
          differentiable=False, doc="The number of elements of data as a (1,) int64 array.")
def _size_array(a, x):
    return np.array([x.size], np.int64)


@register('argmax_channel', kind='reduce', infer=lambda a, s, d: ([s[0][:-1] or (1,)], [d[0]]),
          differentiable=False, doc="argmax over the last axis (the channels), in the input's dtype.")
def _argmax_channel(a, x):
    if x.size == 0:
        bad(f"argmax_channel: empty input of shape {x.shape}")
    return np.asarray(np.argmax(x, axis=-1), x.dtype).reshape(x.shape[:-1] or (1,))


def _slice_like_shape(a, s, t):
    axes = a['axes'] or tuple(range(len(t)))
    out = list(s)
    for ax in axes:
        ax = norm_axis(ax, len(s))
        if ax >= len(t) or t[ax] > s[ax]:
            bad(f"slice_like: cannot slice axis {ax} of {s} to the shape {t}")
        out[ax] = t[ax]
    return tuple(out)


@register('slice_like', kind='injective', inputs=('data', 'shape_like'), nograd_inputs=(1,),
          attrs={'axes': Attr('shape', ())}, infer=lambda a, s, d: ([_slice_like_shape(a, s[0], s[1])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_slice_like(dy[0], x[0]), None],
          doc="data sliced from the start to the shape of shape_like (along `axes`, default all).")
def _slice_like(a, x, like):
    shape = _slice_like_shape(a, x.shape, like.shape)
    return x[tuple(slice(0, n) for n in shape)].copy()


@register('_backward_slice_like', kind='opaque', inputs=('ograd', 'data'), nograd_inputs=(1,), differentiable=False,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of slice_like: ograd in the leading corner of zeros.")
def _backward_slice_like(a, g, x):
    out = np.zeros_like(x)
    out[tuple(slice(0, n) for n in g.shape)] = g
    return out


def _diag_infer(a, s, d):
    x, k = s[0], a['k']
    if len(x) == 1:
        return [(x[0] + abs(k),) * 2], [d[0]]
    if len(x) < 2:
        bad(f"diag: needs a 1-d or an n-d (n >= 2) input, got shape {x}")
    ax1, ax2 = norm_axis(a['axis1'], len(x)), norm_axis(a['axis2'], len(x))
    n = min(x[ax1], x[ax2] - k) if k >= 0 else min(x[ax1] + k, x[ax2])
    if n < 0:
        bad(f"diag: diagonal k={k} does not exist for axes ({ax1}, {ax2}) of shape {x}")
    rest = tuple(v for i, v in enumerate(x) if i not in (ax1, ax2))
    return [rest + (n,)], [d[0]]


@register('diag', kind='opaque', attrs={'k': Attr('int', 0), 'axis1': Attr('int', 0), 'axis2': Attr('int', 1)},
          infer=_diag_infer, grad=lambda F, a, x, y, dy: [F._backward_diag(dy[0], x[0], **a)],
          doc="1-d input: the square matrix with it on diagonal k; n-d: diagonal k of axes (axis1, axis2).")
def _diag(a, x):
    _diag_infer(a, [x.shape], [x.dtype])  # (the eager call's checks)
    if x.ndim == 1:
        return np.diag(x, a['k'])
    return np.diagonal(x, a['k'], a['axis1'], a['axis2']).copy()


@register('_backward_diag', kind='opaque', inputs=('ograd', 'data'), nograd_inputs=(1,), differentiable=False,
          attrs={'k': Attr('int', 0), 'axis1': Attr('int', 0), 'axis2': Attr('int', 1)},
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of diag.")
def _backward_diag(a, g, x):
    if x.ndim == 1:
        return np.diagonal(g, a['k']).copy()
    out = np.zeros_like(x)
    view = np.diagonal(out, a['k'], a['axis1'], a['axis2'])
    view.setflags(write=True)
    view[...] = g
    return out


def _cumsum_infer(a, s, d):
    return [s[0] if a['axis'] is not None else (int(np.prod(s[0])),)], [np.dtype(a['dtype']) if a['dtype'] else d[0]]


def _cumsum_grad(F, a, x, y, dy):
    ax = a['axis']
    g = F.reverse(F.cumsum(F.reverse(dy[0], axis=ax or 0), axis=ax or 0), axis=ax or 0)
    if ax is None:
        g = F._np_reshape(g, newshape=x[0].shape)
    return [F.Cast(g, dtype=x[0].dtype) if a['dtype'] and np.dtype(a['dtype']) != x[0].dtype else g]  # dtype=: back


@register('cumsum', kind='opaque', inputs=('a',), attrs={'axis': Attr('int', None), 'dtype': Attr('dtype', None)},
          infer=_cumsum_infer, grad=_cumsum_grad, doc="Cumulative sum along axis (None: of the flattened array).")
def _cumsum(a, x):
    return np.cumsum(x, axis=a['axis']).astype(a['dtype'] or x.dtype)


def _d2s_infer(name, a, s, d):
    b = a['block_size']
    if b < 1:
        bad(f"{name}: block_size must be a positive integer, got {b}")
    if len(s[0]) != 4:
        bad(f"{name}: needs a 4-d NCHW input, got {s[0]}")
    from ..util import is_np_shape
    if 0 in s[0] and not is_np_shape():  # MXNet 1.x: a 0 dim is an unknown size outside NumPy shape mode
        bad(f"{name}: input shape {s[0]} has a zero dim (zero-size inputs need mx.np_shape())")
    n, c, h, w = s[0]
    if name == 'depth_to_space':
        if c % (b * b):
            bad(f"depth_to_space: channels {c} not divisible by block_size^2 = {b * b}")
        return [(n, c // (b * b), h * b, w * b)], [d[0]]
    if h % b or w % b:
        bad(f"space_to_depth: height {h} and width {w} must be multiples of block_size {b}")
    return [(n, c * b * b, h // b, w // b)], [d[0]]


@register('depth_to_space', kind='injective', attrs={'block_size': Attr('int')},
          infer=lambda a, s, d: _d2s_infer('depth_to_space', a, s, d),
          grad=lambda F, a, x, y, dy: [F.space_to_depth(dy[0], block_size=a['block_size'])],
          doc="Channels rearranged into blocks of space (N, C, H, W) -> (N, C/b^2, H*b, W*b), as MXNet's.")
def _depth_to_space(a, x):
    _d2s_infer('depth_to_space', a, [x.shape], [x.dtype])
    b = a['block_size']
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


@register('space_to_depth', kind='injective', attrs={'block_size': Attr('int')},
          infer=lambda a, s, d: _d2s_infer('space_to_depth', a, s, d),
          grad=lambda F, a, x, y, dy: [F.depth_to_space(dy[0], block_size=a['block_size'])],
          doc="Blocks of space moved into channels: the inverse of depth_to_space.")
def _space_to_depth(a, x):
    _d2s_infer('space_to_depth', a, [x.shape], [x.dtype])
    b = a['block_size']
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


def _gnd_infer(a, s, d):
    x, i = s
    if not i or i[0] > len(x):
        bad(f"gather_nd: indices {i} must have a first axis of at most {len(x)} (the data's rank)")
    return [tuple(i[1:]) + tuple(x[i[0]:])], [d[0]]


def _nd_index(idx, shape):
    return tuple(np.clip(idx.astype(np.int64)[k], -shape[k], shape[k] - 1) for k in range(idx.shape[0]))


@register('gather_nd', kind='opaque', inputs=('data', 'indices'), nograd_inputs=(1,), infer=_gnd_infer,
          grad=lambda F, a, x, y, dy: [F._backward_gather_nd(dy[0], x[1], shape=x[0].shape), None],
          doc="out[i...] = data[indices[0, i...], ..., indices[M-1, i...]] (M = indices.shape[0]).")
def _gather_nd(a, x, idx):
    return x[_nd_index(idx, x.shape)].copy()


def _snd_infer(name):
    def infer(a, s, d):
        data, i = s[0], s[1]
        shape = tuple(a['shape'])
        if not i or i[0] > len(shape) or tuple(data) != tuple(i[1:]) + shape[i[0]:]:
            bad(f"{name}: data {data} and indices {i} do not fit an output of shape {shape}")
        return [shape], [d[0]]
    return infer


@register('scatter_nd', kind='opaque', inputs=('data', 'indices'), nograd_inputs=(1,), attrs={'shape': Attr('shape')},
          infer=_snd_infer('scatter_nd'), grad=lambda F, a, x, y, dy: [F.gather_nd(dy[0], x[1]), None],
          doc="zeros(shape) with data written at the indices (the inverse of gather_nd; a repeated index keeps one).")
def _scatter_nd(a, x, idx):
    out = np.zeros(a['shape'], x.dtype)
    out[_nd_index(idx, out.shape)] = x
    return out


@register('_backward_gather_nd', kind='opaque', inputs=('data', 'indices'), nograd_inputs=(1,),
          attrs={'shape': Attr('shape')}, infer=_snd_infer('_backward_gather_nd'),
          grad=lambda F, a, x, y, dy: [F.gather_nd(dy[0], x[1]), None],
          doc="Gradient of gather_nd: like scatter_nd, but values at a repeated index are summed.")
def _backward_gather_nd(a, x, idx):
    out = np.zeros(a['shape'], x.dtype)
    np.add.at(out, _nd_index(idx, out.shape), x)
    return out


def _kr_infer(a, s, d):
    if any(len(m) != 2 for m in s) or len({m[1] for m in s}) != 1:
        bad(f"khatri_rao: needs matrices with the same number of columns, got {s}")
    return [(int(np.prod([m[0] for m in s])), s[0][1])], [d[0]]


def _kr(ms):
    out = ms[0]
    for m in ms[1:]:
        out = (out[:, None, :] * m[None, :, :]).reshape(-1, m.shape[1])
    return out


@register('khatri_rao', kind='opaque', inputs='*', attrs={'num_args': Attr('int', 1)}, infer=_kr_infer,
          grad=lambda F, a, x, y, dy: F._backward_khatri_rao(dy[0], *x, num_args=len(x)) if len(x) > 1 else [dy[0]],
          doc="The column-wise Kronecker product of matrices (I x K), (J x K), ... -> (I*J*... x K).")
def _khatri_rao(a, *ms):
    return _kr(ms)


@register('_backward_khatri_rao', kind='opaque', inputs='*', attrs={'num_args': Attr('int', 1)}, differentiable=False,
          num_outputs=lambda a: a['num_args'], infer=lambda a, s, d: (list(s[1:]), list(d[1:])),
          doc="Gradient of khatri_rao for each of its matrices.")
def _backward_khatri_rao(a, g, *ms):
    rows = [m.shape[0] for m in ms]
    g = g.reshape(rows + [ms[0].shape[1]])
    outs = []
    for i in range(len(ms)):
        others = [m for j, m in enumerate(ms) if j != i]
        prod = _kr(others).reshape([r for j, r in enumerate(rows) if j != i] + [ms[0].shape[1]]) if others else 1
        gi = np.moveaxis(g, i, 0)
        outs.append((gi * prod[None]).reshape(rows[i], -1, ms[0].shape[1]).sum(1).astype(ms[i].dtype))
    return tuple(outs)


def _index_axes(a, ndim):
    axes = tuple(range(ndim)) if a['axes'] is None else tuple(norm_axis(x, ndim, 'axes') for x in a['axes'])
    return axes


@register('_contrib_index_array', kind='opaque', attrs={'axes': Attr('shape', None)},
          infer=lambda a, s, d: ([s[0] + (len(_index_axes(a, len(s[0]))),)], [np.dtype('int64')]), differentiable=False,
          doc="Each element's index along axes (default: all): shape data.shape + (len(axes),), int64.")
def _index_array(a, x):
    axes = _index_axes(a, x.ndim)
    if not axes:  # a 0-d input: shape (0,)
        return np.zeros(x.shape + (0,), np.int64)
    grid = np.indices(x.shape, dtype=np.int64)
    return np.stack([grid[i] for i in axes], axis=-1)


@register('_contrib_div_sqrt_dim', kind='opaque', infer=lambda a, s, d: ([s[0]], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._contrib_div_sqrt_dim(dy[0])],
          doc="data / sqrt(data.shape[-1]) (attention's scaling).")
def _div_sqrt_dim(a, x):
    return (x / np.sqrt(x.shape[-1])).astype(x.dtype)
