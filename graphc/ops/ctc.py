"""Connectionist Temporal Classification loss (MXNet's CTCLoss, also named ctc_loss).

data (T, N, C) holds unnormalized activations (a softmax over C is applied inside), label (N, L) class
indices. blank_label 'first': the blank is class 0 and labels are padded with 0; 'last': the blank is C-1
and labels are padded with -1. A label sequence ends at its first padding value, or at label_lengths[n]
when use_label_lengths; a sequence's frames end at data_lengths[n] when use_data_lengths.

The loss is -log p(label | data) by the forward-backward recursions over the label with blanks between
and around its symbols, in log space; the second output (hidden, as MXNet's) is d loss / d data, which the
gradient scales by the incoming gradient.
"""
import numpy as np

from ..registry import Attr, bad, register

CTC_ATTRS = {'use_data_lengths': Attr('bool', False), 'use_label_lengths': Attr('bool', False),
             'blank_label': Attr('str', 'first', choices=('first', 'last'))}


def _ctc_inputs(a):
    return ('data', 'label') + (('data_lengths',) if a['use_data_lengths'] else ()) + \
        (('label_lengths',) if a['use_label_lengths'] else ())


def _ctc_infer(a, shapes, dtypes):
    d, l = shapes[0], shapes[1]
    if len(d) != 3:
        bad(f"CTCLoss: data must be 3-d (sequence length, batch, alphabet size incl. blank), got {d}")
    if len(l) != 2 or l[0] != d[1]:
        bad(f"CTCLoss: label must be (batch, max label length) with batch {d[1]}, got {l}")
    for name, s in zip(_ctc_inputs(a)[2:], shapes[2:]):
        if s != (d[1],):
            bad(f"CTCLoss: {name} must be ({d[1]},), one length per sequence, got {s}")
    return [(d[1],), d], [dtypes[0], dtypes[0]]


def _logsumexp(*xs):
    m = np.maximum.reduce(xs)
    safe = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide='ignore'):
        return safe + np.log(sum(np.exp(x - safe) for x in xs))


def _lengths(a, label, data_lengths, label_lengths, T, C):
    N, L = label.shape
    lab = np.rint(label).astype(np.int64)
    if label_lengths is not None:
        ll = np.rint(label_lengths).astype(np.int64)
    else:  # up to the first padding value
        pad = lab == (0 if a['blank_label'] == 'first' else -1)
        ll = np.where(pad.any(axis=1), pad.argmax(axis=1), L)
    tl = np.rint(data_lengths).astype(np.int64) if data_lengths is not None else np.full(N, T, np.int64)
    if (ll < 0).any() or (ll > L).any():
        bad(f"CTCLoss: label lengths must be in [0, {L}], got {ll.tolist()}")
    if (tl < 1).any() or (tl > T).any():
        bad(f"CTCLoss: data lengths must be in [1, {T}], got {tl.tolist()}")
    for n in range(N):
        used = lab[n, :ll[n]]
        if ((used < 0) | (used >= C)).any():
            bad(f"CTCLoss: sequence {n} has labels {used.tolist()} outside [0, {C}) (alphabet size {C})")
    return lab, ll, tl


@register('CTCLoss', kind='opaque', inputs=_ctc_inputs, attrs=CTC_ATTRS, infer=_ctc_infer, num_outputs=2,
          num_visible=1, nograd_inputs=(1, 2, 3),
          grad=lambda F, a, x, y, dy: [F.broadcast_mul(y[1], F.expand_dims(F.expand_dims(dy[0], axis=0), axis=2))]
          + [None] * (len(x) - 1),
          doc="CTC loss per sequence, (N,), from activations (T, N, C) and padded labels (N, L); a hidden second "
              "output holds d loss / d data.")
def _ctc_loss(a, x, label, *lengths):
    T, N, C = x.shape
    it = iter(lengths)
    data_lengths = next(it) if a['use_data_lengths'] else None
    label_lengths = next(it) if a['use_label_lengths'] else None
    lab, ll, tl = _lengths(a, label, data_lengths, label_lengths, T, C)
    blank = 0 if a['blank_label'] == 'first' else C - 1
    xs = x.astype(np.float64)
    logp = xs - xs.max(axis=2, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=2, keepdims=True))
    S = 2 * lab.shape[1] + 1
    ext = np.full((N, S), blank, np.int64)   # blank, l1, blank, l2, ..., blank (padded with blanks)
    for n in range(N):
        ext[n, 1:2 * ll[n]:2] = lab[n, :ll[n]]
    sl = 2 * ll + 1
    valid = np.arange(S)[None, :] < sl[:, None]
    skip = np.zeros((N, S), bool)            # s may be reached from s - 2
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    skip &= valid
    rows = np.arange(N)[:, None]
    emit = np.where(valid[None], logp[:, rows, ext], -np.inf)  # (T, N, S)
    ninf = np.full((N, 2), -np.inf)
    alpha = np.full((T, N, S), -np.inf)
    alpha[0, :, 0] = emit[0, :, 0]
    alpha[0, :, 1] = np.where(ll > 0, emit[0, :, 1], -np.inf)
    for t in range(1, T):
        p = alpha[t - 1]
        s1 = np.concatenate([ninf[:, :1], p[:, :-1]], axis=1)
        s2 = np.where(skip, np.concatenate([ninf, p[:, :-2]], axis=1), -np.inf)
        step = _logsumexp(p, s1, s2) + emit[t]
        alpha[t] = np.where((t < tl)[:, None], step, p)   # past a sequence's end: carry its last column
    last = alpha[tl - 1, np.arange(N)]
    end1 = last[np.arange(N), sl - 1]
    end2 = np.where(ll > 0, last[np.arange(N), np.maximum(sl - 2, 0)], -np.inf)
    logz = _logsumexp(end1, end2)
    beta = np.full((T, N, S), -np.inf)
    nxt = np.full((N, S), -np.inf)
    for t in range(T - 1, -1, -1):
        init = np.full((N, S), -np.inf)
        init[np.arange(N), sl - 1] = 0
        init[np.arange(N), np.maximum(sl - 2, 0)] = np.where(ll > 0, 0, init[np.arange(N), np.maximum(sl - 2, 0)])
        s1 = np.concatenate([nxt[:, 1:], ninf[:, :1]], axis=1)
        s2 = np.concatenate([np.where(skip[:, 2:], nxt[:, 2:], -np.inf), ninf], axis=1)
        rec = _logsumexp(nxt, s1, s2)
        cur = np.where((t == tl - 1)[:, None], init, np.where((t < tl - 1)[:, None], rec, -np.inf)) + emit[t]
        beta[t] = cur
        nxt = cur
    with np.errstate(invalid='ignore'):
        occ = np.exp(alpha + beta - emit - logz[None, :, None])  # posterior of being at s at time t
    occ = np.where(np.isfinite(occ), occ, 0)
    post = np.zeros((T, N, C))
    for n in range(N):
        np.add.at(post[:, n], (slice(None), ext[n]), occ[:, n])
    grad = np.exp(logp) - post
    grad[np.arange(T)[:, None] >= tl[None, :]] = 0      # frames past a sequence's end get no gradient
    grad[:, ~np.isfinite(logz)] = 0                      # no alignment exists: no gradient either
    return (-logz).astype(x.dtype), grad.astype(x.dtype)


@register('ctc_loss', kind='opaque', inputs=_ctc_inputs, attrs=CTC_ATTRS, infer=_ctc_infer, num_outputs=2,
          num_visible=1, nograd_inputs=(1, 2, 3),
          grad=lambda F, a, x, y, dy: [F.broadcast_mul(y[1], F.expand_dims(F.expand_dims(dy[0], axis=0), axis=2))]
          + [None] * (len(x) - 1),
          doc="MXNet's other name for CTCLoss.")
def _ctc_loss_alias(a, x, label, *lengths):
    return _ctc_loss(a, x, label, *lengths)
