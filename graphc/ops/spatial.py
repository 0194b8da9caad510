"""MXNet's normalization and resampling ops on NCHW images: L2Normalization, LRN, UpSampling (nearest, and
bilinear: a learned grouped Deconvolution), contrib.BilinearResize2D, Crop."""
import numpy as np

from ..registry import Attr, bad, get, register
from .nn import _deconvolution


def _l2_axes(a, ndim):
    m = a['mode']
    if m == 'instance':
        return tuple(range(1, ndim))
    if m == 'channel':
        return (1,)
    return tuple(range(2, ndim))


def _l2_grad(F, a, x, y, dy):
    axes = _l2_axes(a, len(x[0].shape))
    r = F.rsqrt(F.sum(F.square(x[0]), axis=axes, keepdims=True) + a['eps'])
    s = F.sum(dy[0] * x[0], axis=axes, keepdims=True)
    return [F.broadcast_mul(dy[0], r) - F.broadcast_mul(x[0], F.broadcast_mul(s, r * r * r))]


def _l2_infer(a, s, d):
    if len(s[0]) < (2 if a['mode'] != 'spatial' else 3):
        bad(f"L2Normalization: mode {a['mode']!r} needs more dims than {s[0]}")
    return [s[0]], [d[0]]


@register('L2Normalization', kind='opaque', infer=_l2_infer, grad=_l2_grad,
          attrs={'eps': Attr('float', 1e-10), 'mode': Attr('str', 'instance', choices=('instance', 'channel', 'spatial'))},
          doc="x / sqrt(sum(x^2) + eps) over each instance (all but axis 0), each channel position (axis 1), or "
              "each channel's spatial map (axes 2...).")
def _l2norm(a, x):
    n = np.sqrt(np.sum(np.square(x), axis=_l2_axes(a, x.ndim), keepdims=True) + a['eps'])
    return (x / n).astype(x.dtype)


LRN_ATTRS = {'alpha': Attr('float', 1e-4), 'beta': Attr('float', 0.75), 'knorm': Attr('float', 2.0),
             'nsize': Attr('int')}


def _lrn_scale(a, x):
    """knorm + alpha/nsize * (sum of x^2 over the nsize channels around each channel)."""
    sq = np.square(x.astype(np.float64))
    h = a['nsize'] // 2
    pad = np.pad(sq, [(0, 0), (h, h)] + [(0, 0)] * (x.ndim - 2))
    c = np.cumsum(pad, axis=1)
    c = np.concatenate([np.zeros_like(c[:, :1]), c], axis=1)
    win = c[:, a['nsize']:] - c[:, :-a['nsize']]
    return a['knorm'] + a['alpha'] / a['nsize'] * win[:, :x.shape[1]]


def _lrn_infer(a, s, d):
    if len(s[0]) < 3 or a['nsize'] < 1 or a['nsize'] % 2 == 0:
        bad(f"LRN: needs an (N, C, ...) input and an odd nsize, got shape {s[0]} and nsize {a['nsize']}")
    return [s[0]], [d[0]]


@register('LRN', kind='opaque', attrs=LRN_ATTRS, infer=_lrn_infer,
          grad=lambda F, a, x, y, dy: [F._backward_LRN(dy[0], x[0], **a)],
          doc="Local response normalization across channels: x / (knorm + alpha/nsize * sum x^2)^beta.")
def _lrn(a, x):
    return (x / _lrn_scale(a, x) ** a['beta']).astype(x.dtype)


@register('_backward_LRN', kind='opaque', inputs=('ograd', 'data'), nograd_inputs=(1,), attrs=LRN_ATTRS,
          differentiable=False, infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of LRN.")
def _backward_lrn(a, g, x):
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    S = _lrn_scale(a, x)
    direct = g64 * S ** -a['beta']
    t = g64 * x64 * S ** (-a['beta'] - 1)  # d y_c / d S_c times g, summed over the windows that contain x_j
    h = a['nsize'] // 2
    pad = np.pad(t, [(0, 0), (h, h)] + [(0, 0)] * (x.ndim - 2))
    c = np.concatenate([np.zeros_like(pad[:, :1]), np.cumsum(pad, axis=1)], axis=1)
    win = (c[:, a['nsize']:] - c[:, :-a['nsize']])[:, :x.shape[1]]
    return (direct - 2 * a['beta'] * a['alpha'] / a['nsize'] * x64 * win).astype(x.dtype)


def _bilinear_deconv(a):
    """MXNet's bilinear UpSampling is this Deconvolution: one (1, k, k) filter per channel, k = 2s - s % 2."""
    sc = a['scale']
    k = 2 * sc - sc % 2
    return dict(kernel=(k, k), stride=(sc, sc), pad=(sc // 2,) * 2, num_filter=a['num_filter'],
                num_group=a['num_filter'], no_bias=True)


def _up_infer(a, s, d):
    h, w = s[0][2] * a['scale'], s[0][3] * a['scale']
    if a['sample_type'] == 'bilinear':
        k = _bilinear_deconv(a)['kernel']
        if len(s) != 2 or len(s[0]) != 4 or s[0][1] != a['num_filter'] or s[1] != (a['num_filter'], 1) + k:
            bad(f"UpSampling: bilinear takes NCHW data with num_filter={a['num_filter']} channels and a weight "
                f"of shape {(a['num_filter'], 1) + k}, got {', '.join(map(str, s))}")
        return [(s[0][0], s[0][1], h, w)], [d[0]]
    for x in s:
        if len(x) != 4 or h % x[2] or w % x[3]:
            bad(f"UpSampling: inputs must be NCHW with sizes that divide {h}x{w}, got {x}")
    c = sum(x[1] for x in s) if a['multi_input_mode'] == 'concat' else s[0][1]
    return [(s[0][0], c, h, w)], [d[0]]


UP_ATTRS = {'scale': Attr('int'), 'sample_type': Attr('str', 'nearest', choices=('nearest', 'bilinear')),
            'num_filter': Attr('int', 0), 'multi_input_mode': Attr('str', 'concat', choices=('concat', 'sum')),
            'num_args': Attr('int', 1), 'workspace': Attr('int', 512)}


def _up_grad(F, a, x, y, dy):
    if a['sample_type'] == 'bilinear':
        return list(F._backward_Deconvolution(dy[0], x[0], x[1], **_bilinear_deconv(a)))[:2]
    return _as_list(F._backward_UpSampling(dy[0], *x, **a))


@register('UpSampling', kind='opaque', inputs='*', attrs=UP_ATTRS, infer=_up_infer, grad=_up_grad,
          doc="Upsampling by `scale`: nearest-neighbour (several inputs: each to the first's output size, then "
              "concatenated along channels or summed), or bilinear (inputs data and weight: MXNet's grouped "
              "Deconvolution with a (num_filter, 1, k, k) weight, k = 2*scale - scale % 2).")
def _upsampling(a, *xs):
    if a['sample_type'] == 'bilinear':
        _up_infer(a, [x.shape for x in xs], [x.dtype for x in xs])
        return _deconvolution(dict(get('Deconvolution').defaults, **_bilinear_deconv(a)), xs[0], xs[1])
    h, w = xs[0].shape[2] * a['scale'], xs[0].shape[3] * a['scale']
    ups = [x.repeat(h // x.shape[2], axis=2).repeat(w // x.shape[3], axis=3) for x in xs]
    return np.concatenate(ups, axis=1) if a['multi_input_mode'] == 'concat' else sum(ups).astype(xs[0].dtype)


def _as_list(r):
    return list(r) if isinstance(r, (list, tuple)) else [r]


@register('_backward_UpSampling', kind='opaque', inputs='*', attrs=UP_ATTRS, differentiable=False,
          num_outputs=lambda a: a['num_args'], infer=lambda a, s, d: (list(s[1:]), list(d[1:])),
          doc="Gradient of UpSampling: each output gradient summed over the block it was copied to.")
def _backward_upsampling(a, g, *xs):
    outs, c0 = [], 0
    for x in xs:
        n, c, h, w = x.shape
        sh, sw = g.shape[2] // h, g.shape[3] // w
        gi = g[:, c0:c0 + c] if a['multi_input_mode'] == 'concat' else g
        c0 += c
        outs.append(gi.reshape(n, c, h, sh, w, sw).sum(axis=(3, 5)).astype(x.dtype))
    return tuple(outs) if len(outs) > 1 else outs[0]


def _interp(n_in, n_out, align):
    """(n_out, n_in) matrix of 1-d linear interpolation weights (align_corners as MXNet)."""
    M = np.zeros((n_out, n_in))
    for i in range(n_out):
        if align:
            src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((i + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(int(np.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        t = src - i0
        M[i, i0] += 1 - t
        M[i, i1] += t
    return M


BR_ATTRS = {'height': Attr('int', 1), 'width': Attr('int', 1), 'scale_height': Attr('float', None),
            'scale_width': Attr('float', None), 'mode': Attr('str', 'size', choices=('size', 'odd_scale')),
            'align_corners': Attr('bool', True)}


def _br_size(a, s):
    if a['mode'] != 'size':
        bad(f"BilinearResize2D: mode {a['mode']!r} is not supported by graphc (only 'size')")
    h = int(s[2] * a['scale_height']) if a['scale_height'] else a['height']
    w = int(s[3] * a['scale_width']) if a['scale_width'] else a['width']
    if len(s) != 4 or h < 1 or w < 1:
        bad(f"BilinearResize2D: needs an NCHW input and a positive size, got {s} -> {h}x{w}")
    return h, w


@register('_contrib_BilinearResize2D', kind='opaque', attrs=BR_ATTRS,
          infer=lambda a, s, d: ([s[0][:2] + _br_size(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_BilinearResize2D(dy[0], x[0], **a)],
          doc="Bilinear resize of NCHW images to (height, width) or by scale_height/scale_width (contrib).")
def _bilinear(a, x):
    h, w = _br_size(a, x.shape)
    Mh, Mw = _interp(x.shape[2], h, a['align_corners']), _interp(x.shape[3], w, a['align_corners'])
    return np.einsum('ih,nchw,jw->ncij', Mh, x.astype(np.float64), Mw).astype(x.dtype)


@register('_backward_BilinearResize2D', kind='opaque', inputs=('ograd', 'data'), nograd_inputs=(1,), attrs=BR_ATTRS,
          differentiable=False, infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of BilinearResize2D.")
def _backward_bilinear(a, g, x):
    h, w = g.shape[2:]
    Mh, Mw = _interp(x.shape[2], h, a['align_corners']), _interp(x.shape[3], w, a['align_corners'])
    return np.einsum('ih,ncij,jw->nchw', Mh, g.astype(np.float64), Mw).astype(x.dtype)


CROP_ATTRS = {'num_args': Attr('int', 1), 'offset': Attr('shape', (0, 0)), 'h_w': Attr('shape', (0, 0)),
              'center_crop': Attr('bool', False)}


def _crop_box(a, s):
    x = s[0]
    h, w = (s[1][2], s[1][3]) if len(s) > 1 else a['h_w']
    if len(x) != 4 or not (0 < h <= x[2] and 0 < w <= x[3]):
        bad(f"Crop: cannot crop {x} to {h}x{w}")
    if a['center_crop']:
        oy, ox = (x[2] - h) // 2, (x[3] - w) // 2
    else:
        oy, ox = a['offset']
    if oy + h > x[2] or ox + w > x[3]:
        bad(f"Crop: offset {(oy, ox)} + size {(h, w)} exceeds {x[2:]}")
    return oy, ox, h, w


@register('Crop', kind='injective', inputs='*', attrs=CROP_ATTRS, nograd_inputs=(1,),
          infer=lambda a, s, d: ([s[0][:2] + _crop_box(a, s)[2:]], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_Crop(dy[0], *x, **a)] + [None] * (len(x) - 1),
          doc="The (h, w) window of an NCHW input at offset (or centred); the size from h_w or a second input.")
def _crop(a, *xs):
    oy, ox, h, w = _crop_box(a, [x.shape for x in xs])
    return xs[0][:, :, oy:oy + h, ox:ox + w].copy()


@register('_backward_Crop', kind='opaque', inputs='*', attrs=CROP_ATTRS, differentiable=False,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of Crop: ograd in its window of zeros.")
def _backward_crop(a, g, *xs):
    oy, ox, h, w = _crop_box(a, [x.shape for x in xs])
    out = np.zeros_like(xs[0])
    out[:, :, oy:oy + h, ox:ox + w] = g
    return out


# ---------------------------------------------------------------- contrib.AdaptiveAvgPooling2D
def _adaptive_size(a, s):
    if len(s) != 4:
        bad(f"AdaptiveAvgPooling2D: data must be NCHW, got shape {s}")
    o = a['output_size'] or (1,)
    if len(o) not in (1, 2) or min(o) < 1:
        bad(f"AdaptiveAvgPooling2D: output_size must be one or two positive ints, got {a['output_size']}")
    return (o[0], o[0]) if len(o) == 1 else tuple(o)


def _bins(n_in, n_out):
    """MXNet's adaptive bins: [floor(i n_in / n_out), ceil((i + 1) n_in / n_out)) for output i."""
    return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


AAP_ATTRS = {'output_size': Attr('shape', ())}


@register('_contrib_AdaptiveAvgPooling2D', kind='opaque', attrs=AAP_ATTRS,
          infer=lambda a, s, d: ([s[0][:2] + _adaptive_size(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_contrib_AdaptiveAvgPooling2D(dy[0], x[0], **a)],
          doc="Average pooling to a given output (height, width): output (i, j) averages the input bin "
              "[floor(i H / oh), ceil((i + 1) H / oh)) x the same over W.")
def _adaptive_avg_pool(a, x):
    oh, ow = _adaptive_size(a, x.shape)
    out = np.empty(x.shape[:2] + (oh, ow), x.dtype)
    for i, (h0, h1) in enumerate(_bins(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(_bins(x.shape[3], ow)):
            out[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return out


@register('_backward_contrib_AdaptiveAvgPooling2D', kind='opaque', inputs=('ograd', 'data'), nograd_inputs=(1,),
          attrs=AAP_ATTRS, infer=lambda a, s, d: ([s[1]], [d[1]]), differentiable=False,
          doc="Gradient of AdaptiveAvgPooling2D: each output gradient spread evenly over its bin.")
def _backward_adaptive_avg_pool(a, g, x):
    oh, ow = _adaptive_size(a, x.shape)
    dx = np.zeros_like(x)
    for i, (h0, h1) in enumerate(_bins(x.shape[2], oh)):
        for j, (w0, w1) in enumerate(_bins(x.shape[3], ow)):
            dx[:, :, h0:h1, w0:w1] += (g[:, :, i, j] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    return dx


# ---------------------------------------------------------------- im2col / col2im (1-d to 3-d)
I2C_ATTRS = {'kernel': Attr('shape'), 'stride': Attr('shape', ()), 'dilate': Attr('shape', ()),
             'pad': Attr('shape', ())}


def _i2c_geometry(a, spatial, name):
    k = a['kernel']
    d = len(k)
    if not 1 <= d <= 3 or len(spatial) != d:
        bad(f"{name}: kernel {k} needs data of {d} spatial dims (1 to 3), got spatial shape {tuple(spatial)}")
    st, dl, pd = (a[n] or (dflt,) * d for n, dflt in (('stride', 1), ('dilate', 1), ('pad', 0)))
    if not len(st) == len(dl) == len(pd) == d:
        bad(f"{name}: stride {st}, dilate {dl} and pad {pd} must have {d} values (kernel {k})")
    out = tuple((n + 2 * p - q * (kk - 1) - 1) // s + 1 for n, kk, s, q, p in zip(spatial, k, st, dl, pd))
    if min(out) < 1:
        bad(f"{name}: kernel {k} (dilate {dl}) does not fit spatial shape {tuple(spatial)} padded by {pd}")
    return k, st, dl, pd, out


def _windows(k, st, dl, out):
    """For each kernel offset, the strided slices of the padded input that it reads at every output position."""
    for off in np.ndindex(*k):
        yield tuple(slice(o * q, o * q + s * (n - 1) + 1, s) for o, q, s, n in zip(off, dl, st, out))


def _im2col_infer(a, s, d):
    k, _, _, _, out = _i2c_geometry(a, s[0][2:], 'im2col')
    return [(s[0][0], s[0][1] * int(np.prod(k)), int(np.prod(out)))], [d[0]]


@register('im2col', kind='opaque', attrs=I2C_ATTRS, infer=_im2col_infer,
          grad=lambda F, a, x, y, dy: [F.col2im(dy[0], output_size=x[0].shape[2:], **a)],
          doc="Sliding windows of (N, C, *spatial) data as columns: (N, C * prod(kernel), windows), channel-major.")
def _im2col(a, x):
    k, st, dl, pd, out = _i2c_geometry(a, x.shape[2:], 'im2col')
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((p, p) for p in pd))
    cols = np.stack([xp[(slice(None), slice(None)) + w] for w in _windows(k, st, dl, out)], axis=2)
    return cols.reshape(x.shape[0], -1, int(np.prod(out)))


def _col2im_infer(a, s, d):
    size = a['output_size']
    k, _, _, _, out = _i2c_geometry(a, size, 'col2im')
    n, ck, L = s[0] if len(s[0]) == 3 else bad(f"col2im: data must be (N, C * prod(kernel), windows), got {s[0]}")
    if ck % int(np.prod(k)) or L != int(np.prod(out)):
        bad(f"col2im: data {s[0]} does not hold C * {int(np.prod(k))} rows of {int(np.prod(out))} windows")
    return [(n, ck // int(np.prod(k))) + tuple(size)], [d[0]]


@register('col2im', kind='opaque', attrs=dict(I2C_ATTRS, output_size=Attr('shape')), infer=_col2im_infer,
          grad=lambda F, a, x, y, dy: [F.im2col(dy[0], **{k: v for k, v in a.items() if k != 'output_size'})],
          doc="The adjoint of im2col: columns summed back into (N, C, *output_size) (overlaps add up).")
def _col2im(a, cols):
    k, st, dl, pd, out = _i2c_geometry(a, a['output_size'], 'col2im')
    n, kk = cols.shape[0], int(np.prod(k))
    c = cols.shape[1] // kk
    xp = np.zeros((n, c) + tuple(s + 2 * p for s, p in zip(a['output_size'], pd)), cols.dtype)
    col = cols.reshape((n, c, kk) + out)
    for i, w in enumerate(_windows(k, st, dl, out)):
        xp[(slice(None), slice(None)) + w] += col[:, :, i]
    return xp[(slice(None), slice(None)) + tuple(slice(p, p + s) for p, s in zip(pd, a['output_size']))]


# ---------------------------------------------------------------- spatial transformer networks (MXNet's GridGenerator,
# BilinearSampler, SpatialTransformer). A grid holds, per output pixel, the (x, y) of the source point in [-1, 1]
# (channel 0 along the width); the sampler reads the source at x_src = (x + 1) (W - 1) / 2 bilinearly, points
# outside the source reading 0.
def _base_grid(h, w, dtype=np.float64):
    """(3, h*w): x_t, y_t in [-1, 1] and 1 for each target pixel, row-major."""
    xs = np.linspace(-1.0, 1.0, w) if w > 1 else np.full(1, -1.0)
    ys = np.linspace(-1.0, 1.0, h) if h > 1 else np.full(1, -1.0)
    return np.stack([np.tile(xs, h), np.repeat(ys, w), np.ones(h * w)]).astype(dtype)


GG_ATTRS = {'transform_type': Attr('str', 'affine', choices=('affine', 'warp')), 'target_shape': Attr('shape', (0, 0))}


def _gg_infer(a, s, d):
    x = s[0]
    if a['transform_type'] == 'affine':
        h, w = a['target_shape']
        if len(x) != 2 or x[1] != 6 or h < 1 or w < 1:
            bad(f"GridGenerator: affine takes data (batch, 6) and a target_shape (h, w) >= 1, got {x} and "
                f"{a['target_shape']}")
        return [(x[0], 2, h, w)], [d[0]]
    if len(x) != 4 or x[1] != 2:
        bad(f"GridGenerator: warp takes a flow of shape (batch, 2, h, w), got {x}")
    return [x], [d[0]]


def _warp_scale(h, w):
    return np.array([(w - 1) / 2.0, (h - 1) / 2.0]).reshape(1, 2, 1, 1)


@register('GridGenerator', kind='opaque', attrs=GG_ATTRS, infer=_gg_infer,
          grad=lambda F, a, x, y, dy: [F._backward_GridGenerator(dy[0], **a)],
          doc="A sampling grid (batch, 2, h, w) in [-1, 1]: affine: each (2, 3) matrix of data times the target "
              "pixels' (x, y, 1); warp: the pixel positions plus the flow, normalized.")
def _grid_generator(a, x):
    if a['transform_type'] == 'affine':
        h, w = a['target_shape']
        return (x.reshape(-1, 2, 3) @ _base_grid(h, w)).reshape(-1, 2, h, w).astype(x.dtype)
    n, _, h, w = x.shape
    pix = np.stack(np.meshgrid(np.arange(w), np.arange(h)))[None]  # (1, 2, h, w): x then y
    return ((x + pix) / _warp_scale(h, w) - 1.0).astype(x.dtype)


@register('_backward_GridGenerator', kind='opaque', inputs=('ograd',), attrs=GG_ATTRS, differentiable=False,
          infer=lambda a, s, d: ([(s[0][0], 6) if a['transform_type'] == 'affine' else s[0]], [d[0]]),
          doc="Gradient of GridGenerator.")
def _backward_grid_generator(a, g):
    n, _, h, w = g.shape
    if a['transform_type'] == 'affine':
        return (g.reshape(n, 2, h * w) @ _base_grid(h, w).T).reshape(n, 6).astype(g.dtype)
    return (g / _warp_scale(h, w)).astype(g.dtype)


def _bs_infer(a, s, d):
    x, g = s
    if len(x) != 4 or len(g) != 4 or g[0] != x[0] or g[1] != 2:
        bad(f"BilinearSampler: takes data (batch, c, h, w) and a grid (batch, 2, h_out, w_out), got {x} and {g}")
    return [(x[0], x[1], g[2], g[3])], [d[0]]


def _corners(x, grid):
    """The four neighbours of each sampling point: [(weight, y index, x index, inside)], and (real y, real x)."""
    h, w = x.shape[2:]
    rx = (grid[:, 0].astype(np.float64) + 1) * (w - 1) / 2
    ry = (grid[:, 1].astype(np.float64) + 1) * (h - 1) / 2
    x0, y0 = np.floor(rx), np.floor(ry)
    wx, wy = 1.0 - (rx - x0), 1.0 - (ry - y0)
    out = []
    for dy_, dx_, wgt in ((0, 0, wy * wx), (0, 1, wy * (1 - wx)), (1, 0, (1 - wy) * wx), (1, 1, (1 - wy) * (1 - wx))):
        yi, xi = (y0 + dy_).astype(np.int64), (x0 + dx_).astype(np.int64)
        inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
        out.append((wgt, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1), inside))
    return out, (wy, wx)


def _gather(x, yi, xi):
    """x (n, c, h, w) at per-batch points (n, ho, wo): (n, c, ho, wo)."""
    n = np.arange(x.shape[0])[:, None, None]
    return np.moveaxis(x[n, :, yi, xi], -1, 1)


@register('BilinearSampler', kind='opaque', inputs=('data', 'grid'), attrs={'cudnn_off': Attr('bool', False)},
          infer=_bs_infer, grad=lambda F, a, x, y, dy: list(F._backward_BilinearSampler(dy[0], x[0], x[1])),
          doc="Samples data bilinearly at a grid's (x, y) in [-1, 1] (points outside data read 0).")
def _bilinear_sampler(a, x, grid):
    _bs_infer(a, [x.shape, grid.shape], [x.dtype, grid.dtype])
    cs, _ = _corners(x, grid)
    out = sum(_gather(x, yi, xi) * (wgt * inside)[:, None] for wgt, yi, xi, inside in cs)
    return out.astype(x.dtype)


@register('_backward_BilinearSampler', kind='opaque', inputs=('ograd', 'data', 'grid'), num_outputs=2,
          differentiable=False, infer=lambda a, s, d: ([s[1], s[2]], [d[1], d[2]]),
          doc="Gradients of BilinearSampler: (d data, d grid).")
def _backward_bilinear_sampler(a, g, x, grid):
    n, c, h, w = x.shape
    cs, (wy, wx) = _corners(x, grid)
    dx = np.zeros(x.shape, np.float64)
    bi = np.broadcast_to(np.arange(n)[:, None, None], grid.shape[:1] + grid.shape[2:])
    vals = []
    for wgt, yi, xi, inside in cs:
        contrib = g * (wgt * inside)[:, None]  # (n, c, ho, wo)
        for ch in range(c):
            np.add.at(dx, (bi, ch, yi, xi), contrib[:, ch])
        vals.append(_gather(x, yi, xi) * inside[:, None])
    tl, tr, bl, br = vals
    mix = tl - tr - bl + br
    gy = -(g * (tr - br + mix * wx[:, None])).sum(1)  # d out / d real_y, summed over channels
    gx = -(g * (bl - br + mix * wy[:, None])).sum(1)
    dgrid = np.stack([gx * (w - 1) / 2, gy * (h - 1) / 2], 1)
    return dx.astype(x.dtype), dgrid.astype(grid.dtype)


ST_ATTRS = {'target_shape': Attr('shape', (0, 0)), 'transform_type': Attr('str', 'affine', choices=('affine',)),
            'sampler_type': Attr('str', 'bilinear', choices=('bilinear',)), 'cudnn_off': Attr('bool', False)}


def _st_infer(a, s, d):
    x, loc = s
    h, w = a['target_shape']
    if len(x) != 4 or len(loc) != 2 or loc != (x[0], 6) or h < 1 or w < 1:
        bad(f"SpatialTransformer: takes data (batch, c, h, w), loc (batch, 6) and a target_shape (h, w) >= 1, got "
            f"{x}, {loc} and {a['target_shape']}")
    return [(x[0], x[1], h, w)], [d[0]]


def _st_grad(F, a, x, y, dy):
    grid = F.GridGenerator(x[1], transform_type='affine', target_shape=a['target_shape'])
    dd, dg = F._backward_BilinearSampler(dy[0], x[0], grid)
    return [dd, F._backward_GridGenerator(dg, transform_type='affine', target_shape=a['target_shape'])]


@register('SpatialTransformer', kind='opaque', inputs=('data', 'loc'), attrs=ST_ATTRS, infer=_st_infer, grad=_st_grad,
          doc="BilinearSampler(data, GridGenerator(loc, 'affine', target_shape)): each (2, 3) affine loc warps "
              "data onto a target_shape grid.")
def _spatial_transformer(a, x, loc):
    _st_infer(a, [x.shape, loc.shape], [x.dtype, loc.dtype])
    grid = _grid_generator({'transform_type': 'affine', 'target_shape': a['target_shape']}, loc)
    return _bilinear_sampler({}, x, grid)


# ---------------------------------------------------------------- Correlation (FlowNet's): every displacement of
# data2 against data1 within max_displacement, compared over a kernel_size window
CORR_ATTRS = {'kernel_size': Attr('int', 1), 'max_displacement': Attr('int', 1), 'stride1': Attr('int', 1),
              'stride2': Attr('int', 1), 'pad_size': Attr('int', 0), 'is_multiply': Attr('bool', True)}


def _corr_geom(a, shape):
    """(top height, top width, grid radius) for (N, C, H, W) inputs; MXNet's checks."""
    k, md, s1, s2, p = a['kernel_size'], a['max_displacement'], a['stride1'], a['stride2'], a['pad_size']
    if len(shape) != 4 or k < 1 or min(s1, s2) < 1 or md < 0 or p < 0:
        bad(f"Correlation: needs (N, C, H, W) inputs, kernel_size >= 1, strides >= 1, max_displacement and "
            f"pad_size >= 0; got shape {shape} and {dict(a)}")
    border = md + (k - 1) // 2
    th = -(-(shape[2] + 2 * p - 2 * border) // s1)
    tw = -(-(shape[3] + 2 * p - 2 * border) // s1)
    if th < 1 or tw < 1:
        bad(f"Correlation: kernel_size {k} and max_displacement {md} do not fit in inputs of shape {shape} with "
            f"pad_size {p}")
    return th, tw, md // s2


def _corr_infer(a, s, d):
    if s[0] != s[1]:
        bad(f"Correlation: data1 and data2 must have one shape, got {s[0]} and {s[1]}")
    th, tw, r = _corr_geom(a, s[0])
    return [(s[0][0], (2 * r + 1) ** 2, th, tw)], [d[0]]


def _corr_taps(a, shape):
    """For every output channel and kernel tap: (channel, row index (th, 1), col index (1, tw), dy, dx) into the
    padded inputs, data1's window at the rows/cols, data2's shifted by (dy, dx)."""
    th, tw, r = _corr_geom(a, shape)
    k, md, s1, s2 = a['kernel_size'], a['max_displacement'], a['stride1'], a['stride2']
    ys, xs = md + s1 * np.arange(th)[:, None], md + s1 * np.arange(tw)[None, :]
    gw = 2 * r + 1
    for tc in range(gw * gw):
        dy, dx = (tc // gw - r) * s2, (tc % gw - r) * s2
        for h in range(k):
            for w in range(k):
                yield tc, ys + h, xs + w, dy, dx


def _corr_pad(a, x, th, tw):
    """x padded by pad_size, and with zeros past the last window (the ceil of MXNet's output size)."""
    p, k, md, s1 = a['pad_size'], a['kernel_size'], a['max_displacement'], a['stride1']
    need_h = md + s1 * (th - 1) + k + md
    need_w = md + s1 * (tw - 1) + k + md
    eh, ew = max(0, need_h - (x.shape[2] + 2 * p)), max(0, need_w - (x.shape[3] + 2 * p))
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p + eh), (p, p + ew)))


@register('Correlation', kind='opaque', inputs=('data1', 'data2'), attrs=CORR_ATTRS, infer=_corr_infer,
          grad=lambda F, a, x, y, dy: list(F._backward_Correlation(dy[0], x[0], x[1], **a)),
          doc="FlowNet's correlation: for each displacement (dy, dx) of data2 within max_displacement (step "
              "stride2), the mean over channels and a kernel_size window of data1 * data2 (is_multiply) or "
              "|data1 - data2|; windows every stride1 pixels after pad_size zero padding.")
def _correlation(a, x1, x2):
    n, c = x1.shape[:2]
    (_, tcn, th, tw), = _corr_infer(a, [x1.shape, x2.shape], [x1.dtype, x2.dtype])[0]
    p1, p2 = _corr_pad(a, x1, th, tw), _corr_pad(a, x2, th, tw)
    out = np.zeros((n, tcn, th, tw))
    for tc, yi, xi, dy, dx in _corr_taps(a, x1.shape):
        u, v = p1[:, :, yi, xi], p2[:, :, yi + dy, xi + dx]
        out[:, tc] += (u * v if a['is_multiply'] else np.abs(u - v)).sum(1)
    return (out / (a['kernel_size'] ** 2 * c)).astype(x1.dtype)


@register('_backward_Correlation', kind='opaque', inputs=('ograd', 'data1', 'data2'), attrs=CORR_ATTRS,
          num_outputs=2, differentiable=False, infer=lambda a, s, d: ([s[1], s[2]], [d[1], d[2]]),
          doc="Gradients of Correlation: (d data1, d data2).")
def _backward_correlation(a, g, x1, x2):
    n, c, h, w = x1.shape
    th, tw = g.shape[2:]
    p1, p2 = _corr_pad(a, x1, th, tw), _corr_pad(a, x2, th, tw)
    d1, d2 = np.zeros_like(p1), np.zeros_like(p2)
    g = g.astype(np.float64) / (a['kernel_size'] ** 2 * c)
    bi, ci = np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None]
    for tc, yi, xi, dy, dx in _corr_taps(a, x1.shape):
        u, v = p1[:, :, yi, xi], p2[:, :, yi + dy, xi + dx]
        gt = g[:, tc][:, None]
        du, dv = (gt * v, gt * u) if a['is_multiply'] else (gt * np.sign(u - v), -gt * np.sign(u - v))
        np.add.at(d1, (bi, ci, yi[None, None], xi[None, None]), du)
        np.add.at(d2, (bi, ci, (yi + dy)[None, None], (xi + dx)[None, None]), dv)
    p = a['pad_size']
    return d1[:, :, p:p + h, p:p + w].astype(x1.dtype), d2[:, :, p:p + h, p:p + w].astype(x2.dtype)
