"""Region-of-interest pooling (MXNet's ROIPooling and contrib.ROIAlign): each roi row is (batch index, x1, y1,
x2, y2) in input-image coordinates, scaled by spatial_scale onto the feature map; the output is (rois, C, ph,
pw). The rois take no gradient (as MXNet: zeros)."""
import math

import numpy as np

from ..registry import Attr, bad, register


def _roi_infer(name, channels_out=None):
    def infer(a, s, d):
        x, r = s
        ph, pw = a['pooled_size']
        if len(x) != 4 or len(r) != 2 or r[1] != 5 or ph < 1 or pw < 1:
            bad(f"{name}: takes data (batch, c, h, w), rois (n, 5) and pooled_size (h, w) >= 1, got {x}, {r} and "
                f"{a['pooled_size']}")
        c = x[1] if channels_out is None else channels_out(a, x[1])
        return [(r[0], c, ph, pw)], [d[0]]
    return infer


def _round(v):
    return math.floor(v + 0.5) if v >= 0 else -math.floor(-v + 0.5)  # C's round: halves away from zero


def _pool_bins(a, roi, h, w):
    """ROIPooling's bins of one roi: [(ph, pw, hs, he, ws, we)] in feature-map cells (Caffe's rounding)."""
    s = a['spatial_scale']
    x1, y1, x2, y2 = (_round(float(v) * s) for v in roi[1:5])
    rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
    PH, PW = a['pooled_size']
    bh, bw = rh / PH, rw / PW
    for i in range(PH):
        hs = min(max(math.floor(i * bh) + y1, 0), h)
        he = min(max(math.ceil((i + 1) * bh) + y1, 0), h)
        for j in range(PW):
            ws = min(max(math.floor(j * bw) + x1, 0), w)
            we = min(max(math.ceil((j + 1) * bw) + x1, 0), w)
            yield i, j, hs, he, ws, we


POOL_ATTRS = {'pooled_size': Attr('shape'), 'spatial_scale': Attr('float')}


@register('ROIPooling', kind='opaque', inputs=('data', 'rois'), nograd_inputs=(1,), attrs=POOL_ATTRS,
          infer=_roi_infer('ROIPooling'), grad=lambda F, a, x, y, dy: [F._backward_ROIPooling(dy[0], x[0], x[1], **a), None],
          doc="Max pooling of each roi over a pooled_size grid of bins (an empty bin gives 0).")
def _roi_pooling(a, x, rois):
    out = np.zeros((rois.shape[0], x.shape[1]) + tuple(a['pooled_size']), x.dtype)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        for i, j, hs, he, ws, we in _pool_bins(a, roi, *x.shape[2:]):
            if he > hs and we > ws:
                out[r, :, i, j] = x[b, :, hs:he, ws:we].max(axis=(1, 2))
    return out


@register('_backward_ROIPooling', kind='opaque', inputs=('ograd', 'data', 'rois'), nograd_inputs=(1, 2),
          attrs=POOL_ATTRS, differentiable=False, infer=lambda a, s, d: ([s[1]], [d[1]]),
          doc="Gradient of ROIPooling: each bin's gradient to its maximum (the first, in row-major order).")
def _backward_roi_pooling(a, g, x, rois):
    dx = np.zeros_like(x)
    for r, roi in enumerate(rois):
        b = int(roi[0])
        for i, j, hs, he, ws, we in _pool_bins(a, roi, *x.shape[2:]):
            if he > hs and we > ws:
                win = x[b, :, hs:he, ws:we].reshape(x.shape[1], -1)
                k = win.argmax(axis=1)
                dx[b, np.arange(x.shape[1]), hs + k // (we - ws), ws + k % (we - ws)] += g[r, :, i, j]
    return dx


# ---------------------------------------------------------------- ROIAlign
ALIGN_ATTRS = {'pooled_size': Attr('shape'), 'spatial_scale': Attr('float'), 'sample_ratio': Attr('int', -1),
               'position_sensitive': Attr('bool', False), 'aligned': Attr('bool', False)}


def _interp_matrix(start, bin_, n_bins, grid, size):
    """(n_bins, size): the bilinear weights of the grid sample points of each bin on one axis, summed (the
    points past the border by more than one cell weigh 0; the rest are clamped into the map)."""
    M = np.zeros((n_bins, size))
    for p in range(n_bins):
        for i in range(grid):
            v = start + p * bin_ + (i + 0.5) * bin_ / grid
            if v < -1.0 or v > size:
                continue
            v = max(v, 0.0)
            lo = int(v)
            if lo >= size - 1:
                M[p, size - 1] += 1.0
                continue
            M[p, lo] += 1.0 - (v - lo)
            M[p, lo + 1] += v - lo
    return M


def _align_mats(a, roi, h, w):
    """(Wy (ph, h), Wx (pw, w), 1 / samples per bin) of one roi: a bin's value is Wy @ map @ Wx.T / count."""
    PH, PW = a['pooled_size']
    off = 0.5 if a['aligned'] else 0.0
    sw, sh, ew, eh = (float(v) * a['spatial_scale'] - off for v in roi[1:5])
    rw, rh = ew - sw, eh - sh
    if not a['aligned']:
        rw, rh = max(rw, 1.0), max(rh, 1.0)
    gh = a['sample_ratio'] if a['sample_ratio'] > 0 else int(math.ceil(rh / PH))
    gw = a['sample_ratio'] if a['sample_ratio'] > 0 else int(math.ceil(rw / PW))
    return _interp_matrix(sh, rh / PH, PH, gh, h), _interp_matrix(sw, rw / PW, PW, gw, w), 1.0 / max(gh * gw, 1)


def _ps_index(a, c_out):
    """Position-sensitive: output channel c at bin (i, j) reads input channel c * ph * pw + i * pw + j."""
    PH, PW = a['pooled_size']
    return (np.arange(c_out)[:, None, None] * PH * PW + np.arange(PH)[:, None] * PW + np.arange(PW)), \
        np.arange(PH)[:, None], np.arange(PW)


@register('_contrib_ROIAlign', kind='opaque', inputs=('data', 'rois'), nograd_inputs=(1,), attrs=ALIGN_ATTRS,
          infer=_roi_infer('ROIAlign', lambda a, c: c // (a['pooled_size'][0] * a['pooled_size'][1])
                           if a['position_sensitive'] else c),
          grad=lambda F, a, x, y, dy: [F._backward_ROIAlign(dy[0], x[0], x[1], **a), None],
          doc="Average of bilinear samples (sample_ratio per bin side, or ceil(bin size)) in each bin of each roi; "
              "position_sensitive: bin (i, j) of output channel c reads channel (c * ph + i) * pw + j.")
def _roi_align(a, x, rois):
    C = x.shape[1]
    c_out = C // (a['pooled_size'][0] * a['pooled_size'][1]) if a['position_sensitive'] else C
    out = np.zeros((rois.shape[0], c_out) + tuple(a['pooled_size']), x.dtype)
    for r, roi in enumerate(rois):
        Wy, Wx, inv = _align_mats(a, roi, *x.shape[2:])
        full = np.einsum('ph,chw,qw->cpq', Wy, x[int(roi[0])].astype(np.float64), Wx) * inv
        out[r] = full[_ps_index(a, c_out)] if a['position_sensitive'] else full
    return out


@register('_backward_ROIAlign', kind='opaque', inputs=('ograd', 'data', 'rois'), nograd_inputs=(1, 2),
          attrs=ALIGN_ATTRS, differentiable=False, infer=lambda a, s, d: ([s[1]], [d[1]]),
          doc="Gradient of ROIAlign: each bin's gradient spread back with its sample points' bilinear weights.")
def _backward_roi_align(a, g, x, rois):
    dx = np.zeros(x.shape, np.float64)
    for r, roi in enumerate(rois):
        Wy, Wx, inv = _align_mats(a, roi, *x.shape[2:])
        gf = g[r].astype(np.float64)
        if a['position_sensitive']:
            full = np.zeros((x.shape[1],) + gf.shape[1:])
            full[_ps_index(a, gf.shape[0])] = gf
            gf = full
        dx[int(roi[0])] += np.einsum('ph,cpq,qw->chw', Wy, gf, Wx) * inv
    return dx.astype(x.dtype)
