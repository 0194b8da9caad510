"""MXNet's sequence ops over a time axis (0: (T, N, ...), or 1: (N, T, ...)) with optional per-sample lengths."""
import numpy as np

from ..registry import Attr, bad, register

SEQ_ATTRS = {'use_sequence_length': Attr('bool', False), 'axis': Attr('int', 0)}


def _seq_inputs(a):
    return ('data', 'sequence_length') if a['use_sequence_length'] else ('data',)


def _check(name, a, s):
    x = s[0]
    if a['axis'] not in (0, 1) or len(x) < 2:
        bad(f"{name}: axis must be 0 or 1 of an input with at least 2 dims, got axis {a['axis']} and shape {x}")
    if a['use_sequence_length'] and tuple(s[1]) != (x[1 - a['axis']],):
        bad(f"{name}: sequence_length must have shape ({x[1 - a['axis']]},), got {s[1]}")


def _lengths(a, x, lens):
    """Per-sample lengths (batch,), clipped to the time size."""
    T, N = x.shape[a['axis']], x.shape[1 - a['axis']]
    if not a['use_sequence_length']:
        return np.full(N, T, np.int64)
    return np.clip(lens.astype(np.int64), 0, T)


def _tn(a, x):
    """x as (T, N, ...)."""
    return x if a['axis'] == 0 else np.swapaxes(x, 0, 1)


def _mask_infer(a, s, d):
    _check('SequenceMask', a, s)
    return [s[0]], [d[0]]


def _mask_grad(F, a, x, y, dy):
    ins = [dy[0]] + ([x[1]] if a['use_sequence_length'] else [])
    return [F.SequenceMask(*ins, use_sequence_length=a['use_sequence_length'], value=0.0, axis=a['axis'])] + \
        ([None] if a['use_sequence_length'] else [])


@register('SequenceMask', kind='opaque', inputs=_seq_inputs, nograd_inputs=(1,), infer=_mask_infer, grad=_mask_grad,
          attrs={**SEQ_ATTRS, 'value': Attr('float', 0.0)},
          doc="Steps at or past each sample's length set to value (lengths from sequence_length).")
def _sequence_mask(a, x, lens=None):
    L = _lengths(a, x, lens)
    out = _tn(a, x).copy()
    t = np.arange(out.shape[0])[:, None]
    out[t >= L[None, :]] = a['value']
    return out if a['axis'] == 0 else np.swapaxes(out, 0, 1)


def _last_infer(a, s, d):
    _check('SequenceLast', a, s)
    x = s[0]
    return [(x[1 - a['axis']],) + tuple(x[2:])], [d[0]]


@register('SequenceLast', kind='opaque', inputs=_seq_inputs, nograd_inputs=(1,), infer=_last_infer,
          attrs=SEQ_ATTRS, grad=lambda F, a, x, y, dy: [F._backward_SequenceLast(dy[0], *x, **a)] +
          ([None] if a['use_sequence_length'] else []),
          doc="The last valid step of each sample: (N, ...) from (T, N, ...) (axis 1: (N, T, ...)).")
def _sequence_last(a, x, lens=None):
    L = _lengths(a, x, lens)
    tn = _tn(a, x)
    return tn[np.maximum(L - 1, 0), np.arange(tn.shape[1])].copy()


def _bw_last_inputs(a):
    return ('ograd', 'data', 'sequence_length') if a['use_sequence_length'] else ('ograd', 'data')


@register('_backward_SequenceLast', kind='opaque', inputs=_bw_last_inputs, attrs=SEQ_ATTRS, differentiable=False,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of SequenceLast: ograd at each sample's last step.")
def _backward_sequence_last(a, g, x, lens=None):
    L = _lengths(a, x, lens)
    out = np.zeros_like(_tn(a, x))
    out[np.maximum(L - 1, 0), np.arange(out.shape[1])] = g
    return out if a['axis'] == 0 else np.swapaxes(out, 0, 1)


def _rev_infer(a, s, d):
    _check('SequenceReverse', a, s)
    if a['axis'] != 0:
        bad("SequenceReverse: only axis 0 (time-major input) is supported, as in MXNet")
    return [s[0]], [d[0]]


def _rev_grad(F, a, x, y, dy):
    ins = [dy[0]] + ([x[1]] if a['use_sequence_length'] else [])
    return [F.SequenceReverse(*ins, **a)] + ([None] if a['use_sequence_length'] else [])


@register('SequenceReverse', kind='opaque', inputs=_seq_inputs, nograd_inputs=(1,), infer=_rev_infer, grad=_rev_grad,
          attrs=SEQ_ATTRS, doc="Each sample's first `length` steps in reverse order; later steps stay in place.")
def _sequence_reverse(a, x, lens=None):
    L = _lengths(a, x, lens)
    out = x.copy()
    for n, ln in enumerate(L):
        out[:ln, n] = x[:ln, n][::-1]
    return out
