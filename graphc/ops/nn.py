"""Neural-network ops: dense, convolution, pooling, normalization, dropout, activations, softmax."""
import itertools
from functools import partial
import math

import numpy as np

from ..registry import Attr, bad, norm_axis, register, same_dtype, zeros_of

# ---------------------------------------------------------------- FullyConnected
FC_ATTRS = {'num_hidden': Attr('int'), 'no_bias': Attr('bool', False), 'flatten': Attr('bool', True)}


def _fc_inputs(a):
    return ('data', 'weight') if a['no_bias'] else ('data', 'weight', 'bias')


def _fc_infer(attrs, shapes, dtypes):
    d, w = shapes[0], shapes[1]
    k = int(np.prod(d[1:])) if attrs['flatten'] else d[-1]
    if w != (attrs['num_hidden'], k):
        bad(f"weight shape {w} does not match (num_hidden, input units) = ({attrs['num_hidden']}, {k}) "
            f"for data of shape {d}")
    if len(shapes) > 2 and shapes[2] != (attrs['num_hidden'],):
        bad(f"bias shape {shapes[2]} should be ({attrs['num_hidden']},)")
    out = (d[0], attrs['num_hidden']) if attrs['flatten'] else d[:-1] + (attrs['num_hidden'],)
    return [out], [same_dtype('FullyConnected', dtypes)]


def _fc_grad(F, a, x, y, dy):
    d, w, g = x[0], x[1], dy[0]
    need_d = a.get('_need', (True,))[0]
    if d.ndim != 2:  # as 2-D (batch, units)
        g = F._np_reshape(g, newshape=(-1, a['num_hidden']))
        d2 = F._np_reshape(d, newshape=(-1, w.shape[1]))
        dd = F._np_reshape(F.dot(g, w), newshape=d.shape) if need_d else None
    else:
        d2, dd = d, F.dot(g, w) if need_d else None
    dw = F.dot(g, d2, transpose_a=True)
    return [dd, dw] if a['no_bias'] else [dd, dw, F.sum(g, axis=0)]


@register('FullyConnected', kind='opaque', inputs=_fc_inputs, attrs=FC_ATTRS, infer=_fc_infer, grad=_fc_grad)
def _fully_connected(attrs, d, w, b=None):
    x = d.reshape(d.shape[0], math.prod(d.shape[1:])) if attrs['flatten'] else d  # (-1 fails for batch 0)
    y = x @ w.T
    if b is not None:
        y += b
    return y


# ---------------------------------------------------------------- convolution
# 1-, 2- and 3-d, channels first or last (MXNet's layouts; 'None' is channels first)
LAYOUTS = ('None', 'NCW', 'NCHW', 'NCDHW', 'NWC', 'NHWC', 'NDHWC')


def _layout(attrs, shape, name):
    """True when the data is channels-last; checks that the layout names as many axes as the data has."""
    lay = attrs.get('layout') or 'None'
    if lay == 'None':
        return False
    if len(lay) != len(shape):
        bad(f"{name}: layout {lay} is for {len(lay)}-d data, got shape {shape}")
    return lay[1] != 'C'


def _cfirst(x):
    return np.moveaxis(x, -1, 1)


def _clast(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def _cf_shape(s):
    return (s[0], s[-1]) + tuple(s[1:-1])


def _cl_shape(s):
    return (s[0],) + tuple(s[2:]) + (s[1],)


CONV_ATTRS = {'kernel': Attr('shape'), 'stride': Attr('shape', ()), 'dilate': Attr('shape', ()), 'pad': Attr('shape', ()),
              'num_filter': Attr('int'), 'num_group': Attr('int', 1), 'no_bias': Attr('bool', False),
              'layout': Attr('str', 'None', choices=LAYOUTS), 'workspace': Attr('int', 1024),
              'cudnn_tune': Attr('str', 'None'), 'cudnn_off': Attr('bool', False)}


def _spatial(name, attrs, keys, n=2):
    """Each of attrs[keys] is () (the default) or n ints, none of them None: MXNet's tuple parameters have one
    entry per spatial dimension of the kernel."""
    for key in keys:
        v = attrs.get(key) or ()
        if v and (len(v) != n or any(x is None for x in v)):
            bad(f"{name}: {key}={v} must have {n} integer entries, one per spatial dimension of the kernel")


def conv_params(attrs, name):
    k = attrs['kernel']
    nd = len(k)
    if nd not in (1, 2, 3):
        bad(f"{name}: kernels are 1-, 2- or 3-d, got kernel={k}")
    _spatial(name, attrs, ('kernel', 'stride', 'dilate', 'pad', 'adj', 'target_shape'), nd)
    st, dl, pd = attrs['stride'] or (1,) * nd, attrs['dilate'] or (1,) * nd, attrs['pad'] or (0,) * nd
    if not len(st) == len(dl) == len(pd) == nd:
        bad(f"{name}: stride, dilate and pad need {nd} values for kernel={k} (stride={st}, dilate={dl}, pad={pd})")
    if min(k) < 1 or min(st) < 1 or min(dl) < 1 or min(pd) < 0:
        bad(f"{name}: kernel, stride and dilate must be >= 1 and pad >= 0 (kernel={k}, stride={st}, dilate={dl}, pad={pd})")
    return k, st, dl, pd


def conv_out(h, k, s, d, p):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def _conv_infer(attrs, shapes, dtypes):
    k, st, dl, pd = conv_params(attrs, 'Convolution')
    d, w = shapes[0], shapes[1]
    g, f = attrs['num_group'], attrs['num_filter']
    if len(d) != len(k) + 2:
        bad(f"Convolution: a {len(k)}-d kernel needs {len(k) + 2}-d data, got shape {d}")
    last = _layout(attrs, d, 'Convolution')
    if last:
        d, w = _cf_shape(d), _cf_shape(w) if len(w) == len(d) else w
    if d[1] % g or f % g:
        bad(f"Convolution: channels {d[1]} and num_filter {f} must divide by num_group {g}")
    if w != (f, d[1] // g) + k:
        bad(f"Convolution: weight shape {w} should be {(f, d[1] // g) + k} for data {d}")
    if len(shapes) > 2 and shapes[2] != (f,):
        bad(f"Convolution: bias shape {shapes[2]} should be ({f},)")
    out = tuple(conv_out(d[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(len(k)))
    if min(out) < 1:
        bad(f"Convolution: kernel {k} (dilate {dl}) is larger than the padded input {d[2:]}")
    y = (d[0], f) + out
    return [_cl_shape(y) if last else y], [same_dtype('Convolution', dtypes)]


def _windows(x, k, st, dl, pd, pad_value=0.0, extra=(0, 0)):
    """(N, C, OH, OW, kh, kw) view of the windows of x (padded)."""
    if any(pd) or any(extra):
        x = np.pad(x, ((0, 0), (0, 0), (pd[0], pd[0] + extra[0]), (pd[1], pd[1] + extra[1])), constant_values=pad_value)
    ek = tuple(dl[i] * (k[i] - 1) + 1 for i in range(2))
    v = np.lib.stride_tricks.sliding_window_view(x, ek, axis=(2, 3))
    return v[:, :, ::st[0], ::st[1], ::dl[0], ::dl[1]]


def _pad(x, pd, extra=(0, 0), value=0.0):
    if not any(pd) and not any(extra):
        return x
    return np.pad(x, ((0, 0), (0, 0), (pd[0], pd[0] + extra[0]), (pd[1], pd[1] + extra[1])), constant_values=value)


def _offsets(k, st, dl, out_hw):
    """For each kernel tap (i, j): the strided slices of the padded input that it reads."""
    oh, ow = out_hw
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, (slice(i * dl[0], i * dl[0] + st[0] * (oh - 1) + 1, st[0]),
                         slice(j * dl[1], j * dl[1] + st[1] * (ow - 1) + 1, st[1]))


# `native` below: None in the refs (plain NumPy, the spec), or the CPU backend's compiled im2col, col2im and
# max pooling (runtime/conv.py), which its lowerings of these ops pass (runtime/backend.py)
def im2col(x, k, st, dl, pd, layout='nk', out=None, native=None):
    """Columns (N, C*kh*kw, OH*OW), or with layout 'kn' (C*kh*kw, N*OH*OW), written one kernel tap at a
    time (contiguous inner rows); into `out` (of that shape) when the compiled kernel runs."""
    n, c, h, w = x.shape
    oh, ow = (conv_out(x.shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(2))
    fast = native and native.im2col(x, k, st, dl, pd, (oh, ow), layout, out)
    if fast is not None:
        return fast, (oh, ow)
    xp = _pad(x, pd)
    if layout == 'kn':
        col = np.empty((c, k[0], k[1], n, oh, ow), x.dtype)
        for i, j, (sh, sw) in _offsets(k, st, dl, (oh, ow)):
            col[:, i, j] = xp[:, :, sh, sw].transpose(1, 0, 2, 3)
        return col.reshape(c * k[0] * k[1], n * oh * ow), (oh, ow)
    col = np.empty((n, c, k[0], k[1], oh, ow), x.dtype)
    for i, j, (sh, sw) in _offsets(k, st, dl, (oh, ow)):
        col[:, :, i, j] = xp[:, :, sh, sw]
    return col.reshape(n, c * k[0] * k[1], oh * ow), (oh, ow)


def col2im(col, shape, k, st, dl, pd, out_hw, layout='nk', out=None, native=None):
    """The adjoint of im2col: columns (in its layout) scatter-added into an (N, C, H, W) image; the compiled
    kernel adds into `out` (zeros of that shape) when given."""
    n, c, h, w = shape
    fast = native and native.col2im(col, shape, k, st, dl, pd, out_hw, layout, out)
    if fast is not None:
        return fast
    if layout == 'kn':
        col = col.reshape(c, k[0], k[1], n, out_hw[0], out_hw[1]).transpose(3, 0, 1, 2, 4, 5)
    else:
        col = col.reshape(n, c, k[0], k[1], out_hw[0], out_hw[1])
    xp = np.zeros((n, c, h + 2 * pd[0], w + 2 * pd[1]), col.dtype)
    for i, j, (sh, sw) in _offsets(k, st, dl, out_hw):
        xp[:, :, sh, sw] += col[:, :, i, j]
    return xp[:, :, pd[0]:pd[0] + h, pd[1]:pd[1] + w]


# Below this many output positions per image, the per-image GEMMs of a batched matmul are too small to
# run well: the batch goes inside the columns ('kn' layout) and each convolution is one large GEMM.
BIG_GEMM_BELOW = 256
# The data gradient goes the one-GEMM way only below this many positions: at 64 (LeNet's second layer, a
# ResNet's 8x8 stage) both ways measured the same; at 16 (a ResNet's 4x4 stage) one GEMM was 2.2x faster.
ONE_GEMM_DX_BELOW = 64
# The weight gradient's inner dimension (images x positions) up to which dy @ col^T beats col @ dy^T
# (equal at 1024; at LeNet's 38400 the latter is 1.3x faster).
SHORT_K = 512


def _by_filter(dy):
    """dy (N, F, OH, OW) as (F, N*OH*OW), the layout of the one-GEMM convolution."""
    n, f = dy.shape[:2]
    return np.ascontiguousarray(dy.reshape(n, f, -1).transpose(1, 0, 2)).reshape(f, -1)


_saved_cols = {}  # id(x) -> (weakref to x, geometry, columns): the forward's im2col, kept for the weight gradient
SAVED_COLS = 4


def _save_cols(x, geom, col):
    """Under autograd (eager or a hybridized training step) the weight gradient reads the same columns
    again: keep them (one use, at most SAVED_COLS at a time) instead of recomputing."""
    from ..autograd import is_recording
    if not is_recording() or SAVED_COLS < 1:
        return
    import weakref
    while len(_saved_cols) >= SAVED_COLS:  # the oldest goes (another thread may be at it too)
        try:
            _saved_cols.pop(next(iter(_saved_cols)))
        except (StopIteration, RuntimeError, KeyError):
            break
    try:
        _saved_cols[id(x)] = (weakref.ref(x), geom, col)
    except TypeError:  # an array type without weak references: recompute later
        pass


def _take_cols(x, geom):
    hit = _saved_cols.pop(id(x), None)
    if hit is not None and hit[0]() is x and hit[1] == geom:
        return hit[2]
    return None


COLUMN_CHUNK_BYTES = 2 << 20   # im2col columns per chunk of images: they stay in L2/L3 for the GEMMs after


def _chunks(n, per_image):
    """[start, stop) ranges over n images, each holding about COLUMN_CHUNK_BYTES of columns (at least one image).
    A ResNet's 64-channel 32x32 layer (2.4 MB of columns an image) ran 1.6x faster image by image than with
    the whole batch's columns written first."""
    step = max(1, COLUMN_CHUNK_BYTES // max(1, per_image))
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _chunk_columns(x, k, st, dl, pd, oh, ow, native):
    """(start, stop, columns of images start:stop) over _chunks, the columns written into one buffer reused
    chunk to chunk (a fresh multi-MB array each time costs its page faults again)."""
    n, c = x.shape[:2]
    kk = c * k[0] * k[1]
    spans = _chunks(n, kk * oh * ow * x.itemsize)
    buf = np.empty((spans[0][1] - spans[0][0], kk, oh * ow), x.dtype) if spans else None
    for s, e in spans:
        xs = x[s:e]
        col = im2col(xs, k, st, dl, pd, out=buf[:e - s] if xs.flags.c_contiguous else None, native=native)[0]
        yield s, e, col


def conv2d(x, w, k, st, dl, pd, g, native=None):
    """Grouped 2-D cross-correlation: im2col, then one batched GEMM per group (output lands in NCHW)."""
    n, c = x.shape[:2]
    f = w.shape[0]
    oh, ow = (conv_out(x.shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(2))
    if g == 1 and 1 < oh * ow < BIG_GEMM_BELOW:  # (one position per image: the batched matvecs measured faster)
        col, _ = im2col(x, k, st, dl, pd, 'kn', native=native)
        _save_cols(x, (tuple(k), tuple(st), tuple(dl), tuple(pd), x.shape, x.dtype), col)
        y = w.reshape(f, -1) @ col
        return np.ascontiguousarray(y.reshape(f, n, oh, ow).transpose(1, 0, 2, 3))
    cg, fg = c // g, f // g
    kk = k[0] * k[1]
    if g == 1:   # a few images at a time, so their columns are still in cache when the GEMMs read them
        out, wm = np.empty((n, f, oh * ow), x.dtype), w.reshape(f, -1)
        for s, e, col in _chunk_columns(x, k, st, dl, pd, oh, ow, native):
            np.matmul(wm, col, out=out[s:e])
        return out.reshape(n, f, oh, ow)
    col, _ = im2col(x, k, st, dl, pd, native=native)
    out = np.empty((n, f, oh * ow), x.dtype)
    for i in range(g):
        out[:, i * fg:(i + 1) * fg] = np.matmul(w[i * fg:(i + 1) * fg].reshape(fg, -1), col[:, i * cg * kk:(i + 1) * cg * kk])
    return out.reshape(n, f, oh, ow)


def conv2d_transpose(dy, w, k, st, dl, pd, g, out_hw, native=None):
    """The adjoint of conv2d in its input: dy (N, F, OH, OW), w (F, C/g, kh, kw) -> (N, C, H, W)."""
    n, f, oh, ow = dy.shape
    cg, fg = w.shape[1], f // g
    kk = k[0] * k[1]
    layout = 'nk'
    # output rows/cols past what the taps reach (stride remainder, Deconvolution's adj) stay zero
    hr, wr = ((oh - 1) * st[0] + dl[0] * (k[0] - 1) + 1 - 2 * pd[0], (ow - 1) * st[1] + dl[1] * (k[1] - 1) + 1 - 2 * pd[1])
    h, wd = max(out_hw[0], hr), max(out_hw[1], wr)
    if g == 1 and oh * ow < ONE_GEMM_DX_BELOW:  # a few positions per image: one large GEMM
        col, layout = w.reshape(f, -1).T @ _by_filter(dy), 'kn'
    elif g == 1:  # columns a few images at a time, scattered while in cache (as conv2d's)
        # (the one-GEMM layout measured slower here: 71 ms vs 59 ms for LeNet's second layer)
        wt, d2 = w.reshape(f, -1).T, dy.reshape(n, f, oh * ow)
        dx = np.zeros((n, cg, h, wd), dy.dtype)
        spans = _chunks(n, cg * kk * oh * ow * dy.itemsize)
        buf = np.empty((spans[0][1], cg * kk, oh * ow), dy.dtype)   # reused: no page faults chunk to chunk
        for s, e in spans:
            part = dx[s:e]
            r = col2im(np.matmul(wt, d2[s:e], out=buf[:e - s]), part.shape, k, st, dl, pd, (oh, ow), out=part,
                       native=native)
            if r is not part:   # (the NumPy reference made its own array)
                part[...] = r
        return dx if (h, wd) == tuple(out_hw) else np.ascontiguousarray(dx[:, :, :out_hw[0], :out_hw[1]])
    else:
        d2 = dy.reshape(n, f, oh * ow)
        col = np.empty((n, cg * g * kk, oh * ow), dy.dtype)
        for i in range(g):
            col[:, i * cg * kk:(i + 1) * cg * kk] = np.matmul(w[i * fg:(i + 1) * fg].reshape(fg, -1).T,
                                                              d2[:, i * fg:(i + 1) * fg])
    dx = col2im(col, (n, cg * g, h, wd), k, st, dl, pd, (oh, ow), layout, native=native)
    return np.ascontiguousarray(dx[:, :, :out_hw[0], :out_hw[1]])


def conv2d_weight_grad(x, dy, k, st, dl, pd, g, native=None):
    n, c = x.shape[:2]
    f, oh, ow = dy.shape[1:]
    if g == 1 and (oh * ow < BIG_GEMM_BELOW or oh * ow < c * k[0] * k[1]):
        # (with more taps than positions the batched GEMMs below need tensordot's copies: one GEMM was 1.6x
        # faster for a ResNet's 16x16 stage, 128 channels)
        col = _take_cols(x, (tuple(k), tuple(st), tuple(dl), tuple(pd), x.shape, x.dtype))
        if col is None:
            col, _ = im2col(x, k, st, dl, pd, 'kn', native=native)
        d = _by_filter(dy)
        if d.shape[1] <= SHORT_K:   # few positions in all: dy @ col^T measured 2.5x faster at K = 256
            return (d @ col.T).reshape((f, c) + tuple(k))
        # dW^T = col @ dy^T: OpenBLAS runs this long-K product several times faster than dy @ col^T
        return np.ascontiguousarray((col @ d.T).T).reshape((f, c) + tuple(k))
    cg, fg = c // g, f // g
    kk = k[0] * k[1]
    d2 = dy.reshape(n, f, oh * ow)
    if g == 1:   # many positions: per chunk of images (columns in cache), a GEMM each, summed
        acc = np.zeros((f, c * kk), x.dtype)
        for s, e, col in _chunk_columns(x, k, st, dl, pd, oh, ow, native):
            acc += np.matmul(d2[s:e], col.transpose(0, 2, 1)).sum(0)
        return acc.reshape((f, c) + tuple(k))
    col, _ = im2col(x, k, st, dl, pd, native=native)
    dw = np.empty((f, cg * kk), x.dtype)
    for i in range(g):
        dg, cgc = d2[:, i * fg:(i + 1) * fg], col[:, i * cg * kk:(i + 1) * cg * kk]
        if oh * ow >= cg * kk:  # many positions, a small kernel: batched GEMMs summed in chunks beat tensordot's copies
            acc = np.zeros((fg, cg * kk), x.dtype)
            for s in range(0, n, 64):
                acc += np.matmul(dg[s:s + 64], cgc[s:s + 64].transpose(0, 2, 1)).sum(0)
            dw[i * fg:(i + 1) * fg] = acc
        else:
            dw[i * fg:(i + 1) * fg] = np.tensordot(dg, cgc, axes=([0, 2], [0, 2]))
    return dw.reshape((f, cg) + tuple(k))


def _taps(k, st, dl, out):
    """For each kernel tap (a tuple of offsets): the strided slices of the padded input that it reads (any rank)."""
    for tap in itertools.product(*(range(n) for n in k)):
        yield tap, tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, s, d, o in zip(tap, st, dl, out))


def _pad_nd(x, lo, hi=None, value=0.0):
    hi = lo if hi is None else hi
    if not any(lo) and not any(hi):
        return x
    return np.pad(x, ((0, 0), (0, 0)) + tuple(zip(lo, hi)), constant_values=value)


_ALL2 = (slice(None), slice(None))


def _cols_nd(xp, k, st, dl, out):
    """Columns (N, C*prod(k), prod(out)) of a padded input of any rank, written one kernel tap at a time."""
    n, c = xp.shape[:2]
    col = np.empty((n, c, math.prod(k)) + tuple(out), xp.dtype)
    for t, (_, sl) in enumerate(_taps(k, st, dl, out)):
        col[:, :, t] = xp[_ALL2 + sl]
    return col.reshape(n, c * math.prod(k), math.prod(out))


def conv_nd(x, w, k, st, dl, pd, g):
    """Grouped cross-correlation of any rank (1-d and 3-d kernels): im2col, then a GEMM per group."""
    n, c = x.shape[:2]
    f = w.shape[0]
    cg, fg, kk = c // g, f // g, math.prod(k)
    out = tuple(conv_out(x.shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(len(k)))
    col = _cols_nd(_pad_nd(x, pd), k, st, dl, out)
    y = np.empty((n, f, math.prod(out)), x.dtype)
    for i in range(g):
        np.matmul(w[i * fg:(i + 1) * fg].reshape(fg, -1), col[:, i * cg * kk:(i + 1) * cg * kk], out=y[:, i * fg:(i + 1) * fg])
    return y.reshape((n, f) + out)


def conv_nd_transpose(dy, w, k, st, dl, pd, g, out_sp):
    """The adjoint of conv_nd in its input: dy (N, F, *O), w (F, C/g, *k) -> (N, C, *out_sp)."""
    n, f = dy.shape[:2]
    o, cg, fg, kk = dy.shape[2:], w.shape[1], f // g, math.prod(k)
    full = tuple(max(out_sp[i] + 2 * pd[i], (o[i] - 1) * st[i] + dl[i] * (k[i] - 1) + 1) for i in range(len(k)))
    d2 = dy.reshape(n, f, -1)
    col = np.empty((n, cg * g * kk, d2.shape[2]), dy.dtype)
    for i in range(g):
        np.matmul(w[i * fg:(i + 1) * fg].reshape(fg, -1).T, d2[:, i * fg:(i + 1) * fg], out=col[:, i * cg * kk:(i + 1) * cg * kk])
    col = col.reshape((n, cg * g, kk) + tuple(o))
    dxp = np.zeros((n, cg * g) + full, dy.dtype)
    for t, (_, sl) in enumerate(_taps(k, st, dl, o)):
        dxp[_ALL2 + sl] += col[:, :, t]
    return np.ascontiguousarray(dxp[_ALL2 + tuple(slice(p, p + s) for p, s in zip(pd, out_sp))])


def conv_nd_weight_grad(x, dy, k, st, dl, pd, g):
    c, f = x.shape[1], dy.shape[1]
    cg, fg, kk = c // g, f // g, math.prod(k)
    col = _cols_nd(_pad_nd(x, pd), k, st, dl, dy.shape[2:])
    d2 = dy.reshape(dy.shape[0], f, -1)
    dw = np.empty((f, cg * kk), x.dtype)
    for i in range(g):
        dw[i * fg:(i + 1) * fg] = np.tensordot(d2[:, i * fg:(i + 1) * fg], col[:, i * cg * kk:(i + 1) * cg * kk],
                                               axes=([0, 2], [0, 2]))
    return dw.reshape((f, cg) + tuple(k))


def _spatial_sum(g):
    return g.sum(axis=(0,) + tuple(range(2, g.ndim)))


def _conv_inputs(a):
    return ('data', 'weight') if a['no_bias'] else ('data', 'weight', 'bias')


def _conv_grad(F, a, x, y, dy):
    outs = F._backward_Convolution(dy[0], x[0], x[1], **a)
    return outs[:2] if a['no_bias'] else outs


@register('Convolution', kind='opaque', inputs=_conv_inputs, attrs=CONV_ATTRS, infer=_conv_infer, grad=_conv_grad)
def _convolution(attrs, x, w, b=None, native=None):
    arrays = (x, w) if b is None else (x, w, b)  # eager calls get the errors of shape inference (an input smaller
    _conv_infer(attrs, [a.shape for a in arrays], [a.dtype for a in arrays])  # than the kernel, ...) too
    if not x.shape[0]:
        return zeros_of(_conv_infer, attrs, arrays)
    k, st, dl, pd = conv_params(attrs, 'Convolution')
    last = _layout(attrs, x.shape, 'Convolution')
    if last:
        x, w = np.ascontiguousarray(_cfirst(x)), _cfirst(w)
    y = conv2d(x, w, k, st, dl, pd, attrs['num_group'], native) if len(k) == 2 else \
        conv_nd(x, w, k, st, dl, pd, attrs['num_group'])
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(k))
    return _clast(y) if last else y


@register('_backward_Convolution', kind='opaque', inputs=('ograd', 'data', 'weight'), attrs=CONV_ATTRS, num_outputs=3,
          infer=lambda a, s, d: ([s[1], s[2], (a['num_filter'],)], [d[1]] * 3),
          doc="Gradients of Convolution: (d data, d weight, d bias).")
def _backward_convolution(attrs, g, x, w, native=None):
    if not x.shape[0]:  # an empty batch
        return np.zeros_like(x), np.zeros_like(w), np.zeros(attrs['num_filter'], g.dtype)
    k, st, dl, pd = conv_params(attrs, 'Convolution')
    grp = attrs['num_group']
    last = _layout(attrs, x.shape, 'Convolution')
    if last:
        g, x, w = (np.ascontiguousarray(_cfirst(a)) for a in (g, x, w))
    tr, wg = (partial(conv2d_transpose, native=native), partial(conv2d_weight_grad, native=native)) if len(k) == 2 \
        else (conv_nd_transpose, conv_nd_weight_grad)
    dx = tr(g, w, k, st, dl, pd, grp, x.shape[2:]) if attrs.get('_need', (True,))[0] else \
        np.zeros_like(x)  # the data needs no gradient (a first layer): skip the costly part
    dw, db = wg(x, g, k, st, dl, pd, grp), _spatial_sum(g)
    return (_clast(dx), _clast(dw), db) if last else (dx, dw, db)


DECONV_ATTRS = dict(CONV_ATTRS, adj=Attr('shape', ()), target_shape=Attr('shape', ()), no_bias=Attr('bool', True))


def deconv_pad(attrs, d):
    """(pad, adj) for channels-first data shape d: a non-zero target_shape sets them (MXNet's InferPad: the
    total padding split in two, an odd remainder going to adj) and overrides the pad and adj attributes."""
    k, st, dl, pd = conv_params(attrs, 'Deconvolution')
    ts = attrs['target_shape']
    if not any(ts):
        return pd, attrs['adj'] or (0,) * len(k)
    if len(ts) != len(k):
        bad(f"Deconvolution: target_shape {ts} needs {len(k)} dimensions, as the kernel {tuple(k)}")
    tot = [st[i] * (d[2 + i] - 1) + dl[i] * (k[i] - 1) + 1 - ts[i] for i in range(len(k))]
    if min(tot) < 0:
        bad(f"Deconvolution: target_shape {ts} is too big for data {d}, kernel {tuple(k)} and stride {tuple(st)}")
    return tuple((t + 1) // 2 for t in tot), tuple(t % 2 for t in tot)


def _deconv_out(attrs, d):
    """Output spatial size for channels-first data shape d."""
    k, st, dl, _ = conv_params(attrs, 'Deconvolution')
    pd, adj = deconv_pad(attrs, d)
    return tuple((d[2 + i] - 1) * st[i] - 2 * pd[i] + dl[i] * (k[i] - 1) + 1 + adj[i] for i in range(len(k)))


def _deconv_infer(attrs, shapes, dtypes):
    conv_params(attrs, 'Deconvolution')
    d, w = shapes[0], shapes[1]
    g, f = attrs['num_group'], attrs['num_filter']
    k = conv_params(attrs, 'Deconvolution')[0]
    if len(d) != len(k) + 2:
        bad(f"Deconvolution: a {len(k)}-d kernel needs {len(k) + 2}-d data, got shape {d}")
    last = _layout(attrs, d, 'Deconvolution')
    if last:
        d, w = _cf_shape(d), _cf_shape(w) if len(w) == len(d) else w
    if w != (d[1], f // g) + tuple(attrs['kernel']):
        bad(f"Deconvolution: weight shape {w} should be {(d[1], f // g) + tuple(attrs['kernel'])} for data {d}")
    if len(shapes) > 2 and shapes[2] != (f,):
        bad(f"Deconvolution: bias shape {shapes[2]} should be ({f},)")
    out = _deconv_out(attrs, d)
    if min(out) < 1:
        bad(f"Deconvolution: output size {out} is empty")
    y = (d[0], f) + out
    return [_cl_shape(y) if last else y], [same_dtype('Deconvolution', dtypes)]


def _deconv_grad(F, a, x, y, dy):
    outs = F._backward_Deconvolution(dy[0], x[0], x[1], **a)
    return outs[:2] if a['no_bias'] else outs


@register('Deconvolution', kind='opaque', inputs=_conv_inputs, attrs=DECONV_ATTRS, infer=_deconv_infer,
          grad=_deconv_grad)
def _deconvolution(attrs, x, w, b=None, native=None):
    """Transposed convolution: the input-adjoint of Convolution with weight (C_in, F/g, kh, kw)."""
    arrays = (x, w) if b is None else (x, w, b)
    _deconv_infer(attrs, [a.shape for a in arrays], [a.dtype for a in arrays])
    if not x.shape[0]:
        return zeros_of(_deconv_infer, attrs, arrays)
    k, st, dl, _ = conv_params(attrs, 'Deconvolution')
    last = _layout(attrs, x.shape, 'Deconvolution')
    if last:
        x, w = np.ascontiguousarray(_cfirst(x)), _cfirst(w)
    pd = deconv_pad(attrs, x.shape)[0]
    tr = partial(conv2d_transpose, native=native) if len(k) == 2 else conv_nd_transpose
    y = tr(x, w, k, st, dl, pd, attrs['num_group'], _deconv_out(attrs, x.shape))
    if b is not None:
        y += b.reshape((1, -1) + (1,) * len(k))
    return _clast(y) if last else y


@register('_backward_Deconvolution', kind='opaque', inputs=('ograd', 'data', 'weight'), attrs=DECONV_ATTRS,
          num_outputs=3, infer=lambda a, s, d: ([s[1], s[2], (a['num_filter'],)], [d[1]] * 3),
          doc="Gradients of Deconvolution: (d data, d weight, d bias).")
def _backward_deconvolution(attrs, g, x, w, native=None):
    if not x.shape[0]:  # an empty batch
        return np.zeros_like(x), np.zeros_like(w), np.zeros(attrs['num_filter'], g.dtype)
    k, st, dl, _ = conv_params(attrs, 'Deconvolution')
    grp = attrs['num_group']
    last = _layout(attrs, x.shape, 'Deconvolution')
    if last:
        g, x, w = (np.ascontiguousarray(_cfirst(a)) for a in (g, x, w))
    pd = deconv_pad(attrs, x.shape)[0]
    conv, wg = (partial(conv2d, native=native), partial(conv2d_weight_grad, native=native)) if len(k) == 2 \
        else (conv_nd, conv_nd_weight_grad)
    # y = conv_transpose(x, w)  =>  dx = conv(g, w), dw = weight-grad of conv with roles of x and g swapped
    dx = conv(g, w, k, st, dl, pd, grp)
    dw, db = wg(g, x, k, st, dl, pd, grp), _spatial_sum(g)
    return (_clast(dx), _clast(dw), db) if last else (dx, dw, db)


# ---------------------------------------------------------------- pooling
POOL_ATTRS = {'kernel': Attr('shape', ()), 'pool_type': Attr('str', 'max', choices=('max', 'avg', 'sum')),
              'stride': Attr('shape', ()), 'pad': Attr('shape', ()), 'global_pool': Attr('bool', False),
              'pooling_convention': Attr('str', 'valid', choices=('valid', 'full', 'same')),
              'count_include_pad': Attr('bool', True), 'layout': Attr('str', 'None', choices=LAYOUTS),
              'cudnn_off': Attr('bool', False)}


def pool_geom(attrs, shape):
    """(kernel, stride, pad, extra end pad, out size) for Pooling on a channels-first (N, C, *spatial) shape."""
    nd = len(shape) - 2
    if nd not in (1, 2, 3):
        bad(f"Pooling: data must be 3-, 4- or 5-d (N, C, spatial...), got shape {shape}")
    if attrs['global_pool']:
        return tuple(shape[2:]), (1,) * nd, (0,) * nd, (0,) * nd, (1,) * nd
    k = attrs['kernel']
    if len(k) != nd:
        bad(f"Pooling: needs a {nd}-d kernel for data of shape {shape}, got kernel={k}")
    if len(attrs['pad'] or ()) > nd:  # MXNet reads the first nd entries of a longer pad (pad=(0, 0, 0), 1-d)
        attrs = dict(attrs, pad=tuple(attrs['pad'][:nd]))
    _spatial('Pooling', attrs, ('kernel', 'stride', 'pad'), nd)
    st, pd = attrs['stride'] or (1,) * nd, attrs['pad'] or (0,) * nd
    same = attrs['pooling_convention'] == 'same'
    if same and any(pd):
        bad(f"Pooling: pooling_convention='same' pads by itself; pad must be 0, got pad={pd}")
    if len(st) != nd or len(pd) != nd:
        bad(f"Pooling: stride and pad need {nd} values (kernel={k}, stride={st}, pad={pd})")
    if min(k) < 1 or min(st) < 1 or min(pd) < 0:
        bad(f"Pooling: kernel and stride must be >= 1, pad >= 0 (kernel={k}, stride={st}, pad={pd})")
    out, extra = [], []
    for i in range(nd):
        h = shape[2 + i] + 2 * pd[i]
        if h < k[i]:
            bad(f"Pooling: kernel {k} is larger than the padded input {shape[2:]}")
        o = -(-h // st[i]) if same else (h - k[i]) // st[i] + 1 if attrs['pooling_convention'] == 'valid' \
            else -(-(h - k[i]) // st[i]) + 1
        out.append(o)
        extra.append(max(0, (o - 1) * st[i] + k[i] - h))
    return tuple(k), tuple(st), tuple(pd), tuple(extra), tuple(out)


def _pool_infer(attrs, shapes, dtypes):
    d = shapes[0]
    last = _layout(attrs, d, 'Pooling')
    d = _cf_shape(d) if last else d
    y = d[:2] + pool_geom(attrs, d)[4]
    return [_cl_shape(y) if last else y], [dtypes[0]]


def _lowest(dt):
    return np.finfo(dt).min if dt.kind == 'f' else np.iinfo(dt).min


def _pool_count_nd(attrs, sp, k, st, pd, extra, out):
    """Divisor per output position for avg pooling of any rank (as _avg_count)."""
    if attrs['count_include_pad'] and not any(extra):
        return float(math.prod(k))
    ones = np.ones((1, 1) + tuple(sp))
    nd = len(k)
    if attrs['count_include_pad']:  # padding counts, the 'full' overhang does not (as MXNet)
        ones = _pad_nd(_pad_nd(ones, pd, value=1.0), (0,) * nd, extra)
    else:
        ones = _pad_nd(ones, pd, [p + e for p, e in zip(pd, extra)])
    cnt = np.zeros(out)
    for _, sl in _taps(k, st, (1,) * nd, out):
        cnt += ones[(0, 0) + sl]
    return cnt


def _pool_nd(attrs, x):
    """Pooling of any rank, one vectorized step per kernel tap (1-d and 3-d)."""
    k, st, pd, extra, out = pool_geom(attrs, x.shape)
    pt, nd = attrs['pool_type'], len(k)
    xp = _pad_nd(x, pd, [p + e for p, e in zip(pd, extra)], _lowest(x.dtype) if pt == 'max' else 0.0)
    y = None
    for _, sl in _taps(k, st, (1,) * nd, out):
        v = xp[_ALL2 + sl]
        if y is None:
            y = v.copy()
        elif pt == 'max':
            np.maximum(y, v, out=y)
        else:
            y += v
    return y if pt != 'avg' else (y / _pool_count_nd(attrs, x.shape[2:], k, st, pd, extra, out)).astype(x.dtype)


def _pool_nd_grad(attrs, g, x, y):
    k, st, pd, extra, out = pool_geom(attrs, x.shape)
    pt, nd = attrs['pool_type'], len(k)
    hi = [p + e for p, e in zip(pd, extra)]
    dxp = np.zeros(x.shape[:2] + tuple(s + a + b for s, a, b in zip(x.shape[2:], pd, hi)), x.dtype)
    if pt == 'max':
        xp, taken = _pad_nd(x, pd, hi, _lowest(x.dtype)), np.zeros(g.shape, bool)
    else:
        gs = g if pt == 'sum' else g / _pool_count_nd(attrs, x.shape[2:], k, st, pd, extra, out)
    for _, sl in _taps(k, st, (1,) * nd, out):
        if pt == 'max':  # the first maximum of each window takes the gradient
            hit = (xp[_ALL2 + sl] == y) & ~taken
            taken |= hit
            dxp[_ALL2 + sl] += np.where(hit, g, 0)
        else:
            dxp[_ALL2 + sl] += gs
    return np.ascontiguousarray(dxp[_ALL2 + tuple(slice(p, p + s) for p, s in zip(pd, x.shape[2:]))])


def _avg_count(attrs, shape, k, st, pd, extra):
    """Divisor per output position for avg pooling (count_include_pad=False excludes the padding)."""
    if attrs['count_include_pad'] and not any(extra):
        return float(k[0] * k[1])
    ones = np.ones((1, 1) + tuple(shape[2:]), np.float64)
    pad_v = 1.0 if attrs['count_include_pad'] else 0.0
    if attrs['count_include_pad']:  # padding counts, the 'full' overhang does not (as MXNet)
        ones = np.pad(ones, ((0, 0), (0, 0), (pd[0], pd[0]), (pd[1], pd[1])), constant_values=1.0)
        return _windows(ones, k, st, (1, 1), (0, 0), 0.0, extra).sum(axis=(4, 5))[0, 0]
    return _windows(ones, k, st, (1, 1), pd, pad_v, extra).sum(axis=(4, 5))[0, 0]


@register('Pooling', kind='opaque', attrs=POOL_ATTRS, infer=_pool_infer,
          grad=lambda F, a, x, y, dy: [F._backward_Pooling(dy[0], x[0], y[0], **a)])
def _pooling(attrs, x, native=None):
    if _layout(attrs, x.shape, 'Pooling'):
        return _clast(_pooling(dict(attrs, layout='None'), np.ascontiguousarray(_cfirst(x)), native))
    if x.ndim != 4:
        return _pool_nd(attrs, x)
    k, st, pd, extra, out = pool_geom(attrs, x.shape)
    pt = attrs['pool_type']
    if pt == 'max':
        fast = native and native.maxpool(x, k, st, pd, out)
        if fast is not None:
            return fast
        lo = np.finfo(x.dtype).min if x.dtype.kind == 'f' else np.iinfo(x.dtype).min
        xp = _pad(x, pd, extra, lo)
        taps = _offsets(k, st, (1, 1), out)
        _, _, (sh, sw) = next(taps)
        y = xp[:, :, sh, sw].copy()
        for _, _, (sh, sw) in taps:  # one vectorized maximum per kernel tap: far faster than a window reduce
            np.maximum(y, xp[:, :, sh, sw], out=y)
        return y
    xp = _pad(x, pd, extra, 0.0)
    y = np.zeros(x.shape[:2] + tuple(out), x.dtype)
    for _, _, (sh, sw) in _offsets(k, st, (1, 1), out):
        y += xp[:, :, sh, sw]
    return y if pt == 'sum' else (y / _avg_count(attrs, x.shape, k, st, pd, extra)).astype(x.dtype)


@register('_backward_Pooling', kind='opaque', inputs=('ograd', 'data', 'output'), attrs=POOL_ATTRS,
          infer=lambda a, s, d: ([s[1]], [d[1]]),
          doc="Gradient of Pooling: max routes ograd to the first maximum of each window, avg spreads it.")
def _backward_pooling(attrs, g, x, y, native=None):
    if _layout(attrs, x.shape, 'Pooling'):
        g, x, y = (np.ascontiguousarray(_cfirst(a)) for a in (g, x, y))
        return _clast(_backward_pooling(dict(attrs, layout='None'), g, x, y, native))
    if x.ndim != 4:
        return _pool_nd_grad(attrs, g, x, y)
    k, st, pd, extra, out = pool_geom(attrs, x.shape)
    n, c, h, w = x.shape
    oh, ow = out
    pt = attrs['pool_type']
    if pt == 'max':
        fast = native and native.maxpool_grad(g, x, y, k, st, pd, out)
        if fast is not None:
            return fast
    dxp = np.zeros((n, c, h + 2 * pd[0] + extra[0], w + 2 * pd[1] + extra[1]), x.dtype)
    if pt == 'max':
        lo = np.finfo(x.dtype).min if x.dtype.kind == 'f' else np.iinfo(x.dtype).min
        xp = _pad(x, pd, extra, lo)
        taken = np.zeros(g.shape, bool)
    else:
        gs = g if pt == 'sum' else g / _avg_count(attrs, x.shape, k, st, pd, extra)
    for i in range(k[0]):  # one vectorized pass per kernel offset
        for j in range(k[1]):
            dst = dxp[:, :, i:i + st[0] * (oh - 1) + 1:st[0], j:j + st[1] * (ow - 1) + 1:st[1]]
            if pt == 'max':
                hit = (xp[:, :, i:i + st[0] * (oh - 1) + 1:st[0], j:j + st[1] * (ow - 1) + 1:st[1]] == y) & ~taken
                taken |= hit
                dst += np.where(hit, g, 0)
            else:
                dst += gs
    return np.ascontiguousarray(dxp[:, :, pd[0]:pd[0] + h, pd[1]:pd[1] + w])


# ---------------------------------------------------------------- normalization
BN_ATTRS = {'eps': Attr('float', 1e-3), 'momentum': Attr('float', 0.9), 'fix_gamma': Attr('bool', True),
            'use_global_stats': Attr('bool', False), 'output_mean_var': Attr('bool', False), 'axis': Attr('int', 1),
            'cudnn_off': Attr('bool', False), 'min_calib_range': Attr('float', None),
            'max_calib_range': Attr('float', None)}


def _bn_infer(attrs, shapes, dtypes):
    d = shapes[0]
    ax = norm_axis(attrs['axis'], len(d))
    c = (d[ax],)
    for name, s in zip(('gamma', 'beta', 'moving_mean', 'moving_var'), shapes[1:]):
        if s != c:
            bad(f"BatchNorm: {name} shape {s} should be {c} (channels on axis {ax} of data {d})")
    return [d, c, c], [same_dtype('BatchNorm', dtypes[:3])] * 3  # (as eager: the moving stats may differ)


def _bn_bshape(x, ax):
    return tuple(x.shape[ax] if i == ax else 1 for i in range(x.ndim))


def batch_stats(attrs):
    """Training-mode BatchNorm normalizes with the batch's statistics."""
    return bool(attrs.get('_train')) and not attrs['use_global_stats']


def _bn_stats(attrs, x, mm, mv):
    ax = attrs['axis'] % x.ndim
    if batch_stats(attrs):
        axes = tuple(i for i in range(x.ndim) if i != ax)
        return ax, x.mean(axis=axes), x.var(axis=axes)
    return ax, mm, mv


@register('BatchNorm', kind='opaque', inputs=('data', 'gamma', 'beta', 'moving_mean', 'moving_var'),
          attrs=BN_ATTRS, infer=_bn_infer, num_outputs=3, mode_dependent=True, aux_inputs=(3, 4), nograd_inputs=(3, 4),
          num_visible=lambda a: 3 if a['output_mean_var'] else 1,
          grad=lambda F, a, x, y, dy: list(F._backward_BatchNorm(dy[0], x[0], x[1], y[1], y[2], **a)) + [None, None],
          doc="Batch normalization. Outputs (out, mean, var): the batch statistics in training, the moving ones "
              "otherwise; nd.BatchNorm updates the moving statistics in training mode.")
def _batch_norm(attrs, x, gamma, beta, mm, mv, native=None):
    if native is not None and batch_stats(attrs):   # the CPU backend's kernel (runtime/batchnorm.py): three
        # passes, not NumPy's seven with temporaries
        fast = native.forward(x, gamma, beta, attrs['axis'] % x.ndim, attrs['eps'], attrs['fix_gamma'])
        if fast is not None:
            return fast
    ax, mean, var = _bn_stats(attrs, x, mm, mv)
    bs = _bn_bshape(x, ax)
    gm = np.ones_like(gamma) if attrs['fix_gamma'] else gamma
    inv = 1.0 / np.sqrt(var + attrs['eps'])
    scale = (gm * inv).astype(x.dtype)
    out = (x - mean.reshape(bs)) * scale.reshape(bs) + beta.reshape(bs)
    return out.astype(x.dtype, copy=False), mean.astype(x.dtype, copy=False), var.astype(x.dtype, copy=False)


@register('_backward_BatchNorm', kind='opaque', inputs=('ograd', 'data', 'gamma', 'mean', 'var'), attrs=BN_ATTRS,
          num_outputs=3, mode_dependent=True, infer=lambda a, s, d: ([s[1], s[2], s[2]], [d[1]] * 3),
          doc="Gradients of BatchNorm: (d data, d gamma, d beta); batch statistics are differentiated in training.")
def _backward_batch_norm(attrs, g, x, gamma, mean, var, native=None):
    ax = attrs['axis'] % x.ndim
    if native is not None and batch_stats(attrs):
        fast = native.backward(np.ascontiguousarray(g), x, gamma, mean, var, ax, attrs['eps'], attrs['fix_gamma'])
        if fast is not None:
            return fast
    bs = _bn_bshape(x, ax)
    axes = tuple(i for i in range(x.ndim) if i != ax)
    inv = 1.0 / np.sqrt(var + attrs['eps'])
    gm = np.ones_like(gamma) if attrs['fix_gamma'] else gamma
    xhat = (x - mean.reshape(bs)) * inv.reshape(bs)
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat).sum(axis=axes)
    if batch_stats(attrs):
        m = x.size // x.shape[ax]
        dx = (gm * inv).reshape(bs) / m * (m * g - dbeta.reshape(bs) - xhat * dgamma.reshape(bs))
    else:
        dx = g * (gm * inv).reshape(bs)
    if attrs['fix_gamma']:
        dgamma = np.zeros_like(dgamma)
    return dx.astype(x.dtype, copy=False), dgamma.astype(x.dtype), dbeta.astype(x.dtype)


LN_ATTRS = {'axis': Attr('int', -1), 'eps': Attr('float', 1e-5), 'output_mean_var': Attr('bool', False)}


def _ln_infer(attrs, shapes, dtypes):
    d = shapes[0]
    ax = norm_axis(attrs['axis'], len(d))
    for name, s in zip(('gamma', 'beta'), shapes[1:]):
        if s != (d[ax],):
            bad(f"LayerNorm: {name} shape {s} should be ({d[ax]},) for data {d} normalized on axis {ax}")
    st = d[:ax] + (1,) + d[ax + 1:]
    return [d, st, st], [same_dtype('LayerNorm', dtypes)] * 3


@register('LayerNorm', kind='opaque', inputs=('data', 'gamma', 'beta'), attrs=LN_ATTRS, infer=_ln_infer, num_outputs=3,
          num_visible=lambda a: 3 if a['output_mean_var'] else 1,
          grad=lambda F, a, x, y, dy: list(F._backward_LayerNorm(dy[0], x[0], x[1], y[1], y[2], **a)),
          doc="Layer normalization over one axis. Outputs (out, mean, std).")
def _layer_norm(attrs, x, gamma, beta):
    ax = attrs['axis'] % x.ndim
    x64 = x.astype(np.float64)  # statistics in float64: a constant row has mean exactly its value, x - mean = 0
    mean = x64.mean(axis=ax, keepdims=True)
    std = np.sqrt(x64.var(axis=ax, keepdims=True) + attrs['eps'])
    bs = _bn_bshape(x, ax)
    out = (x64 - mean) / std * gamma.reshape(bs) + beta.reshape(bs)
    return out.astype(x.dtype, copy=False), mean.astype(x.dtype), std.astype(x.dtype, copy=False)


@register('_backward_LayerNorm', kind='opaque', inputs=('ograd', 'data', 'gamma', 'mean', 'std'), attrs=LN_ATTRS,
          num_outputs=3, infer=lambda a, s, d: ([s[1], s[2], s[2]], [d[1]] * 3),
          doc="Gradients of LayerNorm: (d data, d gamma, d beta).")
def _backward_layer_norm(attrs, g, x, gamma, mean, std):
    ax = attrs['axis'] % x.ndim
    bs = _bn_bshape(x, ax)
    other = tuple(i for i in range(x.ndim) if i != ax)
    xhat = (x - mean) / std
    gx = g * gamma.reshape(bs)
    dx = (gx - gx.mean(axis=ax, keepdims=True) - xhat * (gx * xhat).mean(axis=ax, keepdims=True)) / std
    return dx.astype(x.dtype), (g * xhat).sum(axis=other).astype(x.dtype), g.sum(axis=other).astype(x.dtype)


# ---------------------------------------------------------------- dropout
def _dropout_infer(attrs, shapes, dtypes):
    if not 0 <= attrs['p'] < 1:
        bad(f"Dropout: p must be in [0, 1), got {attrs['p']}")
    return [shapes[0], shapes[0]], [dtypes[0]] * 2


@register('Dropout', kind='elemwise', infer=_dropout_infer, num_outputs=2, num_visible=1, mode_dependent=True,
          attrs={'p': Attr('float', 0.5), 'mode': Attr('str', 'training', choices=('training', 'always')),
                 'axes': Attr('shape', ()), 'cudnn_off': Attr('bool', False)},
          grad=lambda F, a, x, y, dy: [dy[0] * y[1]],
          doc="Dropout: zeroes elements with probability p and scales the rest by 1/(1-p) in training; "
              "outputs (out, mask).")
def _dropout(attrs, x):
    p = attrs['p']
    if not (attrs['_train'] or attrs['mode'] == 'always') or p == 0:
        return x.copy(), np.ones_like(x)
    from ..random import generator
    mshape = tuple(1 if i in attrs['axes'] else d for i, d in enumerate(x.shape))
    mask = ((generator().random(mshape) >= p) / (1 - p)).astype(x.dtype)
    mask = np.broadcast_to(mask, x.shape).copy()
    return x * mask, mask


# ---------------------------------------------------------------- LeakyReLU family
LRELU = ('leaky', 'elu', 'prelu', 'selu', 'gelu', 'rrelu')
SELU_A, SELU_L = 1.6732632423543772, 1.0507009873554805


def _lrelu_inputs(a):
    return ('data', 'gamma') if a['act_type'] == 'prelu' else ('data',)


def _gamma_b(g, x):
    if x.ndim == 0:  # as the inference says (eager runs this, not the inference)
        bad("LeakyReLU(prelu): data must have at least one dimension")
    return g.reshape((1, -1) + (1,) * (x.ndim - 2)) if x.ndim >= 2 else g


def _lrelu_infer(attrs, shapes, dtypes):
    if attrs['act_type'] == 'rrelu':
        bad("LeakyReLU: act_type 'rrelu' is not supported")
    if attrs['act_type'] == 'prelu':
        d, g = shapes
        if not d:
            bad("LeakyReLU(prelu): data must have at least one dimension")
        if len(g) != 1 or (g[0] != 1 and (len(d) < 2 or g[0] != d[1])):
            bad(f"LeakyReLU(prelu): gamma shape {g} should be (channels,) = ({d[1] if len(d) > 1 else 1},)")
    return [shapes[0]], [same_dtype('LeakyReLU', dtypes)]


def _phi(x):
    from .elemwise import _erf
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))


def _lrelu_grad(F, a, x, y, dy):
    t, s, d, g = a['act_type'], a['slope'], x[0], dy[0]
    pos = d > 0.0
    neg = d <= 0.0
    if t == 'leaky':
        return [g * (pos + neg * s)]
    if t == 'elu':
        return [g * (pos + neg * (y[0] + s))]
    if t == 'selu':
        return [g * (pos * SELU_L + neg * (y[0] + SELU_L * SELU_A))]
    if t == 'gelu':
        cdf = (F.erf(d * (1 / math.sqrt(2.0))) + 1.0) * 0.5
        pdf = F.exp(F.square(d) * -0.5) * (1 / math.sqrt(2 * math.pi))
        return [g * (cdf + d * pdf)]
    gam = x[1]
    gb = F._np_reshape(gam, newshape=(1, -1) + (1,) * (d.ndim - 2)) if d.ndim >= 2 else gam
    dx = g * pos + F.broadcast_mul(g * neg, gb)
    dg = F.sum(g * d * neg, axis=1, exclude=True) if d.ndim >= 2 else F.sum(g * d * neg, axis=0, keepdims=True)
    if gam.shape[0] == 1 and d.ndim >= 2:
        dg = F._np_reshape(F.sum(dg), newshape=(1,))
    return [dx, dg]


def _lrelu_lower(P, a, x, gamma=None):
    t, pos = a['act_type'], P.cmp('>', x, P.c(0))
    neg = P.expm1(P.minimum(x, P.c(0))) if t in ('elu', 'selu') else None
    if t == 'leaky':
        return P.where(pos, x, P.mul(x, P.c(a['slope'])))
    if t == 'elu':
        return P.where(pos, x, P.mul(P.c(a['slope']), neg))
    if t == 'selu':
        return P.mul(P.c(SELU_L), P.where(pos, x, P.mul(P.c(SELU_A), neg)))
    if t == 'gelu':
        return P.mul(x, P.mul(P.c(0.5), P.add(P.c(1), P.erf(P.mul(x, P.c(1 / math.sqrt(2.0)))))))
    return None  # prelu's gamma broadcasts over axis 1, not NumPy-style


@register('LeakyReLU', kind='elemwise', inputs=_lrelu_inputs, infer=_lrelu_infer, grad=_lrelu_grad, lower=_lrelu_lower,
          attrs={'act_type': Attr('str', 'leaky', choices=LRELU), 'slope': Attr('float', 0.25),
                 'lower_bound': Attr('float', 0.125), 'upper_bound': Attr('float', 0.334)})
def _leaky_relu(attrs, x, gamma=None):
    t, s = attrs['act_type'], attrs['slope']
    if t == 'rrelu':  # (the graph path refuses it in infer; eager calls reach here)
        bad("LeakyReLU: act_type 'rrelu' is not supported")
    if t == 'leaky':
        return np.where(x > 0, x, x * x.dtype.type(s))
    if t == 'elu':
        return np.where(x > 0, x, s * np.expm1(np.minimum(x, 0))).astype(x.dtype)
    if t == 'selu':
        return (SELU_L * np.where(x > 0, x, SELU_A * np.expm1(np.minimum(x, 0)))).astype(x.dtype)
    if t == 'gelu':
        return (x * _phi(x)).astype(x.dtype)
    return np.where(x > 0, x, x * _gamma_b(gamma, x)).astype(x.dtype)


# ---------------------------------------------------------------- softmax family
SM_ATTRS = {'axis': Attr('int', -1), 'temperature': Attr('float', None), 'dtype': Attr('dtype', None),
            'use_length': Attr('bool', False)}


def _softmax_np(x, axis, t):
    z = x / x.dtype.type(t) if t not in (None, 1.0) else x
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_np(x, axis, t):
    z = x / x.dtype.type(t) if t not in (None, 1.0) else x
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _sm_inputs(a):
    return ('data', 'length') if a['use_length'] else ('data',)


def _sm_infer(attrs, shapes, dtypes):
    ax = norm_axis(attrs['axis'], len(shapes[0]))
    if attrs['use_length'] and tuple(shapes[1]) != shapes[0][:ax] + shapes[0][ax + 1:]:
        bad(f"softmax: length shape {shapes[1]} must be data's {shapes[0]} without axis {ax}")
    return [shapes[0]], [np.dtype(attrs['dtype']) if attrs['dtype'] else dtypes[0]]


def _temp(a):
    return 1.0 if a['temperature'] is None else a['temperature']


def _sm_x(attrs, x):
    """x in the output dtype (MXNet's dtype=: computed and returned in it)."""
    return x.astype(attrs['dtype']) if attrs['dtype'] else x


def _as_input(F, a, g, x):
    return F.Cast(g, dtype=str(x.dtype)) if a['dtype'] and np.dtype(a['dtype']) != x.dtype else g


def _softmax_grad(F, a, x, y, dy):
    ax, t = a['axis'], _temp(a)
    s = F.sum(dy[0] * y[0], axis=ax, keepdims=True)
    g = y[0] * F.broadcast_sub(dy[0], s)  # (masked positions: y = 0 there, so no gradient)
    return [_as_input(F, a, g / t if t != 1.0 else g, x[0])] + ([None] if a['use_length'] else [])


def _log_softmax_grad(F, a, x, y, dy):
    ax, t = a['axis'], _temp(a)
    g = dy[0] - F.broadcast_mul(F.exp(y[0]), F.sum(dy[0], axis=ax, keepdims=True))
    return [_as_input(F, a, g / t if t != 1.0 else g, x[0])]


@register('softmax', kind='reduce', attrs=SM_ATTRS, inputs=_sm_inputs, nograd_inputs=(1,), infer=_sm_infer,
          grad=_softmax_grad, doc="softmax(x / temperature) along axis; use_length: over the first length[...] "
                                  "elements only, 0 past them (MXNet's length input); dtype: the output's.")
def _softmax(attrs, x, length=None):
    x = _sm_x(attrs, x)
    if length is None:
        return _softmax_np(x, attrs['axis'], attrs['temperature'])
    ax = attrs['axis'] % x.ndim
    pos = np.arange(x.shape[ax]).reshape((-1,) + (1,) * (x.ndim - ax - 1))
    keep = pos < np.expand_dims(length.astype(np.int64), ax)
    with np.errstate(invalid="ignore"):  # (an all-masked row: NaN, zeroed below)
        e = np.where(keep, _softmax_np(np.where(keep, x, -np.inf), ax, attrs["temperature"]), 0)
    return np.nan_to_num(e, nan=0.0).astype(x.dtype)  # (a length of 0: an all-zero row, as MXNet)


def _no_length(attrs, shapes, dtypes):
    if attrs['use_length']:
        bad("log_softmax: use_length is not supported by graphc (use softmax with use_length, then log)")
    return _sm_infer(attrs, shapes, dtypes)


@register('log_softmax', kind='reduce', attrs=SM_ATTRS, infer=_no_length, grad=_log_softmax_grad)
def _log_softmax(attrs, x):
    _no_length(attrs, [x.shape], [x.dtype])
    return _log_softmax_np(_sm_x(attrs, x), attrs['axis'], attrs['temperature'])


def _sce_infer(attrs, shapes, dtypes):
    d, l = shapes
    if len(d) != 2 or l != d[:1]:
        bad(f"softmax_cross_entropy: data must be (batch, classes) and label (batch,), got {d} and {l}")
    return [(1,)], [dtypes[0]]


def _sce_grad(F, a, x, y, dy):
    p = F.softmax(x[0], axis=-1)
    oh = F.one_hot(x[1], depth=x[0].shape[1], dtype=str(x[0].dtype))
    return [F.broadcast_mul(p - oh, dy[0]), None]


@register('softmax_cross_entropy', kind='reduce', inputs=('data', 'label'), nograd_inputs=(1,), infer=_sce_infer,
          grad=_sce_grad, doc="Sum over the batch of the cross-entropy of softmax(data) and integer labels; shape (1,).")
def _softmax_cross_entropy(attrs, x, label):
    ls = _log_softmax_np(x, -1, None)
    from .shape import _indices
    i = _indices(label, x.shape[1], 'raise', 'softmax_cross_entropy')
    return np.asarray([-np.take_along_axis(ls, i[:, None], axis=1).sum()], dtype=x.dtype)
