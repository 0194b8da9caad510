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


def _prior_infer(a, s, d):
    if len(s[0]) != 4:
        bad(f"MultiBoxPrior: data must be (batch, channels, height, width), got {s[0]}")
    if not a['sizes'] or not a['ratios'] or min(a['sizes']) <= 0 or min(a['ratios']) <= 0:
        bad(f"MultiBoxPrior: sizes {a['sizes']} and ratios {a['ratios']} must be non-empty and positive")
    n = len(a['sizes']) + len(a['ratios']) - 1
    return [(1, s[0][2] * s[0][3] * n, 4)], [d[0]]


@register('_contrib_MultiBoxPrior', kind='opaque', infer=_prior_infer,
          grad=lambda F, a, x, y, dy: [F.zeros_like(x[0])],
          attrs={'sizes': Attr('floats', (1.0,)), 'ratios': Attr('floats', (1.0,)), 'clip': Attr('bool', False),
                 'steps': Attr('floats', (-1.0, -1.0)), 'offsets': Attr('floats', (0.5, 0.5))},
          doc="SSD anchor boxes (x1, y1, x2, y2) for each pixel of data's (H, W) grid (MXNet's contrib.MultiBoxPrior): "
              "every size with the first ratio, then the first size with every other ratio; (1, H*W*anchors, 4).")
def _multibox_prior(a, x):
    H, W = x.shape[2:]
    sy = a['steps'][0] if a['steps'][0] > 0 else 1.0 / H
    sx = a['steps'][1] if a['steps'][1] > 0 else 1.0 / W
    cy, cx = np.meshgrid((np.arange(H) + a['offsets'][0]) * sy, (np.arange(W) + a['offsets'][1]) * sx, indexing='ij')
    shapes = [(s, a['ratios'][0]) for s in a['sizes']] + [(a['sizes'][0], r) for r in a['ratios'][1:]]
    half = np.array([(s * H / W * np.sqrt(r) / 2, s / np.sqrt(r) / 2) for s, r in shapes])  # (anchors, [w/2, h/2])
    c = np.stack([cx, cy], -1)[:, :, None, :]  # (H, W, 1, 2)
    out = np.concatenate([c - half, c + half], -1).reshape(1, -1, 4)
    if a['clip']:
        out = np.clip(out, 0, 1)
    return out.astype(x.dtype)


def _matching_infer(a, s, d):
    if len(s[0]) < 2:
        bad(f"bipartite_matching: data must be (..., rows, cols) scores, got {s[0]}")
    return [tuple(s[0][:-1]), tuple(s[0][:-2]) + (s[0][-1],)], [d[0], d[0]]


@register('_contrib_bipartite_matching', kind='opaque', infer=_matching_infer, num_outputs=2, differentiable=False,
          attrs={'is_ascend': Attr('bool', False), 'threshold': Attr('float'), 'topk': Attr('int', -1)},
          doc="Greedy bipartite matching of a (rows, cols) score matrix (MXNet's contrib.bipartite_matching): pairs "
              "taken best score first (lowest if is_ascend) while the score beats threshold, at most topk; returns "
              "each row's column and each column's row, -1 where unmatched.")
def _bipartite_matching(a, x):
    N, M = x.shape[-2:]
    flat = x.reshape(-1, N, M)
    rows, cols = np.full(flat.shape[:2], -1, x.dtype), np.full((flat.shape[0], M), -1, x.dtype)
    for b, sc in enumerate(flat):
        order = np.argsort(sc.reshape(-1) if a['is_ascend'] else -sc.reshape(-1), kind='stable')
        count = 0
        for k in order:
            r, c = divmod(int(k), M)
            v = sc[r, c]
            if (v >= a['threshold']) if a['is_ascend'] else (v <= a['threshold']):
                break
            if rows[b, r] < 0 and cols[b, c] < 0:
                rows[b, r], cols[b, c] = c, r
                count += 1
                if 0 < a['topk'] <= count:
                    break
    return rows.reshape(x.shape[:-1]), cols.reshape(x.shape[:-2] + (M,))


def _iou(a, b):
    """IoU of corner boxes a (A x 4) against b (G x 4): A x G."""
    iw = np.maximum(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0)
    ih = np.maximum(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0)
    inter = iw * ih
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _target_infer(a, s, d):
    an, lab, cp = s
    if len(an) != 3 or an[-1] != 4 or len(lab) != 3 or lab[-1] < 5 or len(cp) != 3 or cp[2] != an[1] \
            or cp[0] != lab[0]:
        bad(f"MultiBoxTarget: anchor (1, A, 4), label (B, L, 5+) and cls_pred (B, classes, A) do not fit: "
            f"{an}, {lab}, {cp}")
    B, A = lab[0], an[1]
    return [(B, A * 4), (B, A * 4), (B, A)], [d[0]] * 3


@register('_contrib_MultiBoxTarget', kind='opaque', inputs=('anchor', 'label', 'cls_pred'), infer=_target_infer,
          num_outputs=3, differentiable=False,
          attrs={'overlap_threshold': Attr('float', 0.5), 'ignore_label': Attr('float', -1.0),
                 'negative_mining_ratio': Attr('float', -1.0), 'negative_mining_thresh': Attr('float', 0.5),
                 'minimum_negative_samples': Attr('int', 0), 'variances': Attr('floats', (0.1, 0.1, 0.2, 0.2))},
          doc="SSD training targets (MXNet's contrib.MultiBoxTarget): each ground truth (label rows [class, x1, y1, "
              "x2, y2] up to the first class -1) takes its best anchor, then anchors above overlap_threshold take "
              "their best ground truth; returns the encoded box offsets, their mask and class+1 per anchor (0 "
              "background; with negative mining, only the hardest negatives are 0, the rest ignore_label).")
def _multibox_target(a, anchor, label, cls_pred):
    anc = anchor[0].astype(np.float64)
    B, A = label.shape[0], anc.shape[0]
    v = a['variances']
    loc, mask = np.zeros((B, A, 4)), np.zeros((B, A, 4))
    cls = np.zeros((B, A))
    for b in range(B):
        lab = label[b].astype(np.float64)
        n = int(np.argmax(lab[:, 0] == -1)) if (lab[:, 0] == -1).any() else lab.shape[0]
        gt = lab[:n]
        match = np.full(A, -1)
        if n:
            iou = _iou(anc, gt[:, 1:5])
            free = iou.copy()
            for _ in range(n):  # each ground truth claims its best free anchor, best pair first
                i, j = np.unravel_index(np.argmax(free), free.shape)
                if free[i, j] <= 1e-6:
                    break
                match[i] = j
                free[i, :], free[:, j] = -1, -1
            best = iou.argmax(1)
            rest = (match < 0) & (iou.max(1) > a['overlap_threshold'])
            match[rest] = best[rest]
            max_iou = iou.max(1)
        else:
            max_iou = np.zeros(A)
        pos = match >= 0
        cls[b] = np.where(pos, gt[np.maximum(match, 0), 0] + 1 if n else 0, 0)
        if a['negative_mining_ratio'] > 0:
            cand = np.where(~pos & (max_iou < a['negative_mining_thresh']))[0]
            k = int(min(max(pos.sum() * a['negative_mining_ratio'], a['minimum_negative_samples']), A - pos.sum()))
            p = cls_pred[b].astype(np.float64)[:, cand]
            e = np.exp(p - p.max(0))
            bg = e[0] / e.sum(0)  # background probability: the least sure negatives are the hard ones
            neg = cand[np.argsort(bg, kind='stable')[:k]]
            cls[b][~pos] = a['ignore_label']
            cls[b][neg] = 0
        if pos.any():
            g = gt[match[pos], 1:5]
            an = anc[pos]
            aw, ah = an[:, 2] - an[:, 0], an[:, 3] - an[:, 1]
            ax, ay = (an[:, 0] + an[:, 2]) / 2, (an[:, 1] + an[:, 3]) / 2
            gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
            gx, gy = (g[:, 0] + g[:, 2]) / 2, (g[:, 1] + g[:, 3]) / 2
            loc[b][pos] = np.stack([(gx - ax) / aw / v[0], (gy - ay) / ah / v[1], np.log(gw / aw) / v[2],
                                    np.log(gh / ah) / v[3]], 1)
            mask[b][pos] = 1
    dt = anchor.dtype
    return loc.reshape(B, -1).astype(dt), mask.reshape(B, -1).astype(dt), cls.astype(dt)
