"""MXNet's contrib.box_nms: greedy non-maximum suppression over boxes [.., id, score, x1, y1, x2, y2, ..] in
the last axis, every axis before the last two a batch. Kept boxes come first, by descending score (ties in
input order); the other rows are -1. A second, hidden output records the (flat) input row of each output row,
for the backward, which moves each kept row's gradient back to where the box came from."""
import numpy as np

from ..registry import Attr, bad, register

NMS_ATTRS = {'overlap_thresh': Attr('float', 0.5), 'valid_thresh': Attr('float', 0.0), 'topk': Attr('int', -1),
             'coord_start': Attr('int', 2), 'score_index': Attr('int', 1), 'id_index': Attr('int', -1),
             'background_id': Attr('int', -1), 'force_suppress': Attr('bool', False),
             'in_format': Attr('str', 'corner', choices=('corner', 'center')),
             'out_format': Attr('str', 'corner', choices=('corner', 'center'))}


def _nms_infer(a, s, d):
    x = s[0]
    if len(x) < 2:
        bad(f"box_nms: the input needs at least 2 dims (boxes, box width), got {x}")
    k, cs, si, ii = x[-1], a['coord_start'], a['score_index'], a['id_index']
    if k < 5 + (ii > 0):
        bad(f"box_nms: a box needs at least {5 + (ii > 0)} elements (score, 4 coordinates, id), got {k}")
    if not (0 <= cs and cs + 3 < k) or not 0 <= si < k or cs <= si <= cs + 3:
        bad(f"box_nms: score_index {si} and coordinates {cs}..{cs + 3} must be distinct positions below {k}")
    if ii >= 0 and (ii >= k or cs <= ii <= cs + 3 or ii == si):
        bad(f"box_nms: id_index {ii} must be below {k} and differ from the score and coordinates")
    return [tuple(x), tuple(x[:-1]) + (1,)], [d[0], d[0]]


def _corners(b, fmt):
    """(x1, y1, x2, y2) columns of boxes b (rows x 4)."""
    if fmt == 'corner':
        return b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2


def _keep(d, a, topk):
    """Row indices of batch d (N x K) that survive, in output order."""
    si, ii, cs = a['score_index'], a['id_index'], a['coord_start']
    valid = d[:, si] > a['valid_thresh']
    if ii >= 0:  # MXNet: background boxes are dropped, id -1 too under the default background_id -1
        valid &= d[:, ii] != a['background_id']
    order = [i for i in np.argsort(-d[:, si], kind='stable') if valid[i]][:topk]
    if not order:
        return []
    x1, y1, x2, y2 = _corners(d[order, cs:cs + 4], a['in_format'])
    w, h = x2 - x1, y2 - y1
    area = np.where((w < 0) | (h < 0), 0, w * h)
    alive = np.ones(len(order), bool)
    for r in range(len(order)):
        if not alive[r]:
            continue
        p = np.arange(r + 1, len(order))
        iw = np.maximum(np.minimum(x2[r], x2[p]) - np.maximum(x1[r], x1[p]), 0)
        ih = np.maximum(np.minimum(y2[r], y2[p]) - np.maximum(y1[r], y1[p]), 0)
        inter = iw * ih
        with np.errstate(invalid='ignore', divide='ignore'):
            over = inter / (area[r] + area[p] - inter) > a['overlap_thresh']
        if ii >= 0 and not a['force_suppress']:
            over &= d[order[r], ii].astype(np.int64) == d[[order[q] for q in p], ii].astype(np.int64)
        alive[p[over]] = False
    return [order[i] for i in range(len(order)) if alive[i]]


@register('_contrib_box_nms', kind='opaque', attrs=NMS_ATTRS, infer=_nms_infer, num_outputs=2, num_visible=1,
          grad=lambda F, a, x, y, dy: [F._backward_contrib_box_nms(dy[0], y[1])],
          doc="Non-maximum suppression of boxes (MXNet's contrib.box_nms): kept boxes first by descending score, "
              "the rest -1; boxes of other classes (id_index) never suppress each other unless force_suppress.")
def _box_nms(a, x):
    N, K = x.shape[-2:]
    data = x.reshape(-1, N, K)
    B = data.shape[0]
    topk = N if a['topk'] < 0 else min(N, a['topk'])
    if topk < 1:  # MXNet: nothing to suppress, the input as it is
        return x.copy(), np.arange(B * N, dtype=x.dtype).reshape(x.shape[:-1] + (1,))
    out, rec = np.full_like(data, -1), np.full((B, N, 1), -1, x.dtype)
    cs = a['coord_start']
    for b in range(B):
        kept = _keep(data[b], a, topk)
        out[b, :len(kept)] = data[b, kept]
        rec[b, :len(kept), 0] = [b * N + i for i in kept]
    if a['in_format'] != a['out_format']:
        box = out[..., cs:cs + 4]
        conv = box[..., 0] >= 0  # MXNet's marker for a written row: a first coordinate not below 0
        c = box[conv]
        if a['out_format'] == 'center':
            c = np.stack([(c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2, c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]], 1)
        else:
            c = np.stack([c[:, 0] - c[:, 2] / 2, c[:, 1] - c[:, 3] / 2, c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2], 1)
        box[conv] = c.astype(x.dtype)
    return out.reshape(x.shape), rec.reshape(x.shape[:-1] + (1,))


@register('_backward_contrib_box_nms', kind='opaque', inputs=('ograd', 'record'), nograd_inputs=(1,),
          differentiable=False, infer=lambda a, s, d: ([s[0]], [d[0]]),
          doc="Gradient of box_nms: each output row's gradient at the input row it came from, zeros elsewhere.")
def _backward_box_nms(a, g, rec):
    K = g.shape[-1]
    gf, rf = g.reshape(-1, K), rec.reshape(-1).astype(np.int64)
    out = np.zeros_like(gf)
    ok = rf >= 0
    out[rf[ok]] = gf[ok]
    return out.reshape(g.shape)
