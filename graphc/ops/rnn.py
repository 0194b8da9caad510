"""Recurrent ops with MXNet's names: the fused multi-layer `RNN` (modes rnn_relu, rnn_tanh, lstm, gru;
bidirectional; dropout between layers; LSTM state clipping), `_rnn_param_concat` that builds its flat
parameter vector, and `_zeros` (the begin states Gluon's layers make).

The flat vector is MXNet's: every layer's and direction's i2h_weight (G*H, I) and h2h_weight (G*H, H),
then every i2h_bias and h2h_bias (G*H,), with G = 1, 4 (gates i, f, c, o) or 3 (r, z, n). A GRU's new
gate is n = tanh(i2h_n + r * (W_hn h + b_hn)), as MXNet's (and cuDNN's) GRU.

RNN has one output more than MXNet's: a reserve (the gate activations, cell states, hidden sequences and
dropout masks of the forward pass), the role MXNet's op state plays, so that `_backward_RNN` needs no
recomputation; with `_no_reserve` (the rnn_no_reserve pass sets it in inference graphs, where nothing reads
it) the reserve is empty and the forward keeps only each step's h. Each direction runs one GEMM over all time
steps for its inputs, then per step one GEMM
for the recurrence and the gate math. These refs are plain NumPy; the CPU backend's lowering passes
`native` (runtime/rnn.py), with which float32 steps run as one compiled loop that calls BLAS and fused gate
kernels with no Python per step.
"""
import numpy as np

from ..base import GraphcShapeError
from ..registry import Attr, bad, register, same_dtype, zeros_of
from .shape import _concat, _concat_grad, _concat_infer

GATES = {'lstm': 4, 'gru': 3, 'rnn_relu': 1, 'rnn_tanh': 1}
RNN_ATTRS = {'state_size': Attr('int'), 'num_layers': Attr('int'), 'bidirectional': Attr('bool', False),
             'mode': Attr('str', choices=tuple(GATES)), 'p': Attr('float', 0.0),
             'state_outputs': Attr('bool', False), 'projection_size': Attr('int', None),
             'lstm_state_clip_min': Attr('float', None), 'lstm_state_clip_max': Attr('float', None),
             'lstm_state_clip_nan': Attr('bool', False), 'use_sequence_length': Attr('bool', False)}


def _n_states(a):
    return 2 if a['mode'] == 'lstm' else 1


def _rnn_inputs(a):
    return ('data', 'parameters', 'state', 'state_cell')[:2 + _n_states(a)] + \
        (('sequence_length',) if a['use_sequence_length'] else ())


def _n_visible(a):
    return 1 + _n_states(a) * a['state_outputs']


def _dims(a, C):
    """(L, D, H, G, input size of each layer)."""
    L, D, H = a['num_layers'], 2 if a['bidirectional'] else 1, a['state_size']
    return L, D, H, GATES[a['mode']], [C] + [D * _out_size(a)] * (L - 1)


def _out_size(a):
    """R: the width of a layer-direction's output and recurrent state h (projection_size for LSTMP)."""
    return a['projection_size'] or a['state_size']


def param_size(a, C):
    L, D, H, G, ins = _dims(a, C)
    R = _out_size(a)
    proj = R * H if a['projection_size'] else 0
    return sum(D * (G * H * (i + R + 2) + proj) for i in ins)


def _param_views(a, w, C):
    """[(layer, dir, i2h_weight, h2h_weight, i2h_bias, h2h_bias, h2r_weight or None)] as views of the flat
    vector w: per layer and direction i2h (G*H, in), h2h (G*H, R) [and h2r (R, H)], then all the biases."""
    L, D, H, G, ins = _dims(a, C)
    R = _out_size(a)
    out, proj, k = [], [], 0
    for l in range(L):
        for d in range(D):
            wi = w[k:k + G * H * ins[l]].reshape(G * H, ins[l])
            k += wi.size
            wh = w[k:k + G * H * R].reshape(G * H, R)
            k += wh.size
            out.append([l, d, wi, wh])
            proj.append(w[k:k + R * H].reshape(R, H) if a['projection_size'] else None)
            k += R * H if a['projection_size'] else 0
    for v, wr in zip(out, proj):
        v += [w[k:k + G * H], w[k + G * H:k + 2 * G * H], wr]
        k += 2 * G * H
    return out


def _widths(a):
    """The reserve's blocks per layer-direction: (name, width) of what the forward keeps for the backward."""
    mode, H, G = a['mode'], a['state_size'], GATES[a['mode']]
    w = [] if mode.startswith('rnn') else [('gates', G * H)]
    w += [('c', H)] if mode == 'lstm' else [('hn', H)] if mode == 'gru' else []
    w += [('hp', H)] if a['projection_size'] else []   # o * tanh(c) before its projection
    return w + [('h', _out_size(a))]


def reserve_size(a, T, N):
    if a.get('_no_reserve'):
        return 0
    L, D, H, G, _ = _dims(a, 0)
    masks = (L - 1) * D * _out_size(a) if a['p'] > 0 else 0
    return T * N * (L * D * sum(w for _, w in _widths(a)) + masks)


def _reserve_views(a, r, T, N):
    """Per (layer, dir): dict of views 'gates', 'c', 'hn', 'hp', 'h' (each (T, N, .)); and per layer > 0 its
    dropout mask (T, N, D*R) or None."""
    L, D, H, G, _ = _dims(a, 0)
    R, k, per = _out_size(a), 0, []
    for _ in range(L * D):
        v = {}
        for name, width in _widths(a):
            v[name] = r[k:k + T * N * width].reshape(T, N, width)
            k += T * N * width
        per.append(v)
    masks = [None]
    for _ in range(1, L):
        masks.append(r[k:k + T * N * D * R].reshape(T, N, D * R) if a['p'] > 0 else None)
        k += T * N * D * R if a['p'] > 0 else 0
    return per, masks


# ---------------------------------------------------------------- shape inference
def _check(a, shapes):
    """(T, N, C) after checking every input's shape against the attributes; errors say what was expected."""
    if a['projection_size'] is not None and (a['mode'] != 'lstm' or not 0 < a['projection_size']):
        bad(f"RNN: projection_size applies to mode 'lstm' only and must be >= 1, got {a['projection_size']} "
            f"with mode {a['mode']!r}")
    if a['state_size'] < 1 or a['num_layers'] < 1:
        bad(f"RNN: state_size and num_layers must be >= 1, got {a['state_size']} and {a['num_layers']}")
    lo, hi = a['lstm_state_clip_min'], a['lstm_state_clip_max']
    if (lo is not None or hi is not None) and a['mode'] != 'lstm':
        bad(f"RNN: lstm_state_clip_min/max apply to mode 'lstm' only, got mode {a['mode']!r}")
    if (lo is None) != (hi is None) or lo is not None and lo > hi:
        bad(f"RNN: lstm_state_clip_min and _max must be given together with min <= max, got {lo} and {hi}")
    if not 0 <= a['p'] < 1:
        bad(f"RNN: p must be in [0, 1), got {a['p']}")
    if len(shapes) != len(_rnn_inputs(a)):
        bad(f"RNN: mode {a['mode']!r} takes {len(_rnn_inputs(a))} inputs ({', '.join(_rnn_inputs(a))}), "
            f"got {len(shapes)}")
    d = shapes[0]
    if len(d) != 3 or d[0] < 1:
        bad(f"RNN: data must be 3-d (sequence length >= 1, batch, input size) in layout TNC, got {d}")
    T, N, C = d
    L, D, H, G, _ = _dims(a, C)
    want = param_size(a, C)
    if shapes[1] != (want,):
        R = _out_size(a)
        proj = f", a projection ({R}, {H})" if a['projection_size'] else ''
        bad(f"RNN: parameters shape {shapes[1]} should be ({want},): {L} layer(s) x {D} direction(s) of "
            f"{a['mode']} weights ({G}*{H}, input) and ({G}*{H}, {R}){proj} and two ({G}*{H},) biases, input {C}")
    if a['use_sequence_length'] and shapes[-1] != (N,):
        bad(f"RNN: sequence_length shape {shapes[-1]} should be ({N},), one length per sequence")
    for name, s, w in zip(('state', 'state_cell'), shapes[2:2 + _n_states(a)], (_out_size(a), H)):
        if s not in ((L * D, N, w), (L * D, 0, w)):  # batch 0: MXNet's _zeros((L, 0, H)), batch from the data
            bad(f"RNN: {name} shape {s} should be {(L * D, N, w)} (layers * directions, batch, "
                f"{'projection_size' if w != H else 'state_size'})")
    return T, N, C


def _rnn_infer(a, shapes, dtypes):
    T, N, C = _check(a, shapes)
    L, D, H, _, _ = _dims(a, C)
    dt = same_dtype('RNN', dtypes)
    R = _out_size(a)
    outs = [(T, N, D * R)] + [(L * D, N, R), (L * D, N, H)][:_n_states(a) * a['state_outputs']] + \
        [(reserve_size(a, T, N),)]
    return outs, [dt] * len(outs)


# ---------------------------------------------------------------- forward
def _sigmoid(x, out):
    np.multiply(x, 0.5, out=out)  # 0.5 * (1 + tanh(x / 2)): no overflow for large |x|
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def _dir_forward(a, xg, proj, wh, bh, h0, c0, v, reverse, wr=None, lens=None, native=None):
    """One layer-direction over time. xg (T, N, G*H) gets x @ Wi.T + bi (+ bh except for GRU) from proj (x,
    Wi, that bias), here or in the native loop, and, for LSTM/GRU, is the reserve's gate block, overwritten by
    the gate activations. With wr (LSTMP) the output and recurrent state is (o * tanh(c)) @ wr.T. With lens
    (N,), a sequence's steps t >= lens keep its state (so the reverse direction starts at each one's last valid
    step). xg None: no reserve (v has only 'h'). Returns (h_T, c_T)."""
    mode = a['mode']
    if native is not None and wr is None and lens is None:
        done = native.forward(a, xg, wh, bh, h0, c0, v, reverse, proj)
        if done:
            return done
    if xg is None:   # no reserve: these loops keep every step's values all the same
        xg = np.empty(v['h'].shape[:2] + (wh.shape[0],), wh.dtype)
        v = {k: v.get(k, np.empty(v['h'].shape[:2] + (w,), wh.dtype)) for k, w in _widths(a)}
    T, N, GH = xg.shape
    H = GH // GATES[mode]
    hs = v['h']
    np.matmul(proj[0], proj[1].T, out=xg.reshape(T * N, GH))
    xg += proj[2]
    lo, hi = a['lstm_state_clip_min'], a['lstm_state_clip_max']
    order = range(T - 1, -1, -1) if reverse else range(T)
    h, c = h0, c0
    c_prev = c0
    whT = wh.T
    for t in order:
        g = xg[t]
        if mode == 'gru':
            hh = h @ whT
            hh += bh
            rz = g[:, :2 * H]
            rz += hh[:, :2 * H]
            _sigmoid(rz, rz)
            r, z = g[:, :H], g[:, H:2 * H]
            hn = v['hn'][t]
            hn[...] = hh[:, 2 * H:]
            n = g[:, 2 * H:]
            n += r * hn
            np.tanh(n, out=n)
            hs[t] = n + z * (h - n)   # (1 - z) * n + z * h
        else:
            g += h @ whT
            if mode == 'lstm':
                _sigmoid(g[:, :2 * H], g[:, :2 * H])
                np.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])
                _sigmoid(g[:, 3 * H:], g[:, 3 * H:])
                cs = v['c'][t]
                np.multiply(g[:, H:2 * H], c, out=cs)
                cs += g[:, :H] * g[:, 2 * H:3 * H]
                if lo is not None:
                    if a['lstm_state_clip_nan']:   # NaN becomes the lower bound, as cuDNN's non-propagating clip
                        np.fmin(np.fmax(cs, lo, out=cs), hi, out=cs)
                    else:
                        np.clip(cs, lo, hi, out=cs)
                c = cs
                if wr is None:
                    np.multiply(g[:, 3 * H:], np.tanh(cs), out=hs[t])
                else:
                    hp = v['hp'][t]
                    np.multiply(g[:, 3 * H:], np.tanh(cs), out=hp)
                    np.matmul(hp, wr.T, out=hs[t])
            elif mode == 'rnn_tanh':
                np.tanh(g, out=hs[t])
            else:
                np.maximum(g, 0, out=hs[t])
        if lens is not None:   # past a sequence's end its state is carried
            keep = (t >= lens)[:, None]
            np.copyto(hs[t], h, where=keep)
            if mode == 'lstm':
                np.copyto(v['c'][t], c_prev, where=keep)
        h = hs[t]
        c_prev = c
    return h, c


def _layer_input(a, x, per, masks, l, D):
    if l == 0:
        return x
    prev = [per[(l - 1) * D + d]['h'] for d in range(D)]
    xin = prev[0] if D == 1 else np.concatenate(prev, axis=2)
    return xin * masks[l] if masks[l] is not None else xin


def _zero_states(s, N):
    """A begin state of batch 0 (MXNet's _zeros((L, 0, H)), batch left to inference) means zeros."""
    return np.zeros((s.shape[0], N, s.shape[2]), s.dtype) if s.shape[1] == 0 and N else s


def _split_inputs(a, arrays):
    """(x, w, hx, cx or None, lengths or None) from the op's inputs."""
    x, w, hx = arrays[:3]
    cx = arrays[3] if _n_states(a) == 2 else None
    lens = np.rint(arrays[2 + _n_states(a)]).astype(np.int64) if a['use_sequence_length'] else None
    return x, w, hx, cx, lens


@register('RNN', kind='opaque', inputs=_rnn_inputs, attrs=RNN_ATTRS, infer=_rnn_infer, mode_dependent=True,
          num_outputs=lambda a: _n_visible(a) + 1, num_visible=_n_visible, hidden_outputs=1,
          grad=lambda F, a, x, y, dy: list(F._backward_RNN(*dy[:_n_visible(a)], *x, y[-1], **a))
          + [None] * a['use_sequence_length'],
          doc="Fused multi-layer RNN, LSTM or GRU over a TNC sequence (MXNet's RNN). Outputs (out, [h, [c]] when "
              "state_outputs, reserve); the reserve holds what the backward needs.")
def _rnn(a, *arrays, native=None):
    T, N, C = _check(a, [v.shape for v in arrays])  # eager calls skip infer()
    if not N:  # an empty batch: empty outputs and states
        return zeros_of(_rnn_infer, a, list(arrays))
    x, w, hx, cx, lens = _split_inputs(a, arrays)
    if lens is not None and ((lens < 1) | (lens > T)).any():
        raise GraphcShapeError(f"RNN: sequence_length values must be in [1, {T}], got {lens.tolist()}")
    L, D, H, G, ins = _dims(a, C)
    mode, dt = a['mode'], x.dtype
    hx = _zero_states(hx, N)
    cx = _zero_states(cx, N) if cx is not None else None
    lean, R = a.get('_no_reserve'), _out_size(a)
    reserve = np.empty(reserve_size(a, T, N), dt)
    per, masks = _reserve_views(a, reserve, T, N) if not lean else \
        ([{'h': np.empty((T, N, R), dt)} for _ in range(L * D)],
         [None] + [np.empty((T, N, D * R), dt) if a['p'] > 0 else None for _ in range(1, L)])
    hy, cy = np.empty((L * D, N, _out_size(a)), dt), np.empty((L * D, N, H), dt) if cx is not None else None
    views = _param_views(a, w, C)
    drop = a['p'] > 0 and a.get('_train')
    if a['p'] > 0:
        from ..random import generator
        for m in masks[1:]:
            m[...] = ((generator().random(m.shape) >= a['p']) / (1 - a['p'])) if drop else 1
    for l, d, wi, wh, bi, bh, wr in views:
        v = per[l * D + d]
        if d == 0:
            xin = _layer_input(a, x, per, masks, l, D).reshape(T * N, -1)
        xg = v['gates'] if 'gates' in v else None if lean else np.empty((T, N, G * H), dt)
        k = l * D + d
        h, c = _dir_forward(a, xg, (xin, wi, bi if mode == 'gru' else bi + bh), wh, bh, hx[k],
                            cx[k] if cx is not None else None, v, d == 1, wr, lens, native)
        hy[k] = h
        if cy is not None:
            cy[k] = c
    top = [per[(L - 1) * D + d]['h'] for d in range(D)]
    out = (top[0] if lean else top[0].copy()) if D == 1 else np.concatenate(top, axis=2)
    if lens is not None:   # outputs past a sequence's end are zero
        out *= _valid(lens, T)
    outs = (out,) + ((hy,) + ((cy,) if cy is not None else ()) if a['state_outputs'] else ()) + (reserve,)
    return outs


# ---------------------------------------------------------------- backward
def _valid(lens, T):
    """(T, N, 1): 1 at a sequence's valid steps, else 0."""
    return (np.arange(T)[:, None] < lens[None, :])[:, :, None]


def _dir_backward(a, dhs, dh, dc, wh, h0, c0, v, reverse, dxg, dhh, wr=None, dwr=None, lens=None, native=None):
    """Backward of one layer-direction over time. dhs (T, N, R): gradient reaching its h sequence; dh, dc
    (N, R), (N, H): of its final states, updated in place to those of its begin states. Fills dxg (gradient
    of x @ Wi.T + bi per step) and, for GRU, dhh (of h @ Wh.T + bh per step; for the others it is dxg); with
    a projection wr (LSTMP), dwr."""
    if native is not None and wr is None and lens is None and \
            native.backward(a, dhs, dh, dc, wh, h0, c0, v, reverse, dxg, dhh):
        return
    mode = a['mode']
    T, N = dhs.shape[:2]
    H = dxg.shape[2] // GATES[mode]
    if wr is not None:
        dwr[...] = 0
    hs = v['h']
    order = range(T) if reverse else range(T - 1, -1, -1)   # the forward's steps, last first
    lo, hi = a['lstm_state_clip_min'], a['lstm_state_clip_max']
    for t in order:
        first = t == (T - 1 if reverse else 0)
        hp = h0 if first else hs[t + 1 if reverse else t - 1]
        g, dg = v.get('gates', [None] * T)[t], dxg[t]
        dht = dhs[t] + dh
        if lens is not None:   # a carried step passes its gradients on unchanged
            act = (t < lens)[:, None]
            carry_h, dht = dht * ~act, dht * act
            if mode == 'lstm':
                carry_c = dc * ~act
                dc *= act
        if wr is not None:  # through the projection r = hp @ wr.T
            dwr += dht.T @ v['hp'][t]
            dht = dht @ wr
        if mode == 'lstm':
            i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
            c = v['c'][t]
            cp = c0 if first else v['c'][t + 1 if reverse else t - 1]
            tc = np.tanh(c)
            dct = dc + dht * o * (1 - tc * tc)
            if lo is not None:  # clipped cells pass no gradient
                dct *= (c > lo) & (c < hi)
            np.multiply(dct * gg, i * (1 - i), out=dg[:, :H])
            np.multiply(dct * cp, f * (1 - f), out=dg[:, H:2 * H])
            np.multiply(dct * i, 1 - gg * gg, out=dg[:, 2 * H:3 * H])
            np.multiply(dht * tc, o * (1 - o), out=dg[:, 3 * H:])
            np.multiply(dct, f, out=dc)
            np.matmul(dg, wh, out=dh)
        elif mode == 'gru':
            r, z, n, hn = g[:, :H], g[:, H:2 * H], g[:, 2 * H:], v['hn'][t]
            dn = dht * (1 - z) * (1 - n * n)
            np.multiply(dht * (hp - n), z * (1 - z), out=dg[:, H:2 * H])
            np.multiply(dn * hn, r * (1 - r), out=dg[:, :H])
            dg[:, 2 * H:] = dn
            d2 = dhh[t]
            d2[:, :2 * H] = dg[:, :2 * H]
            np.multiply(dn, r, out=d2[:, 2 * H:])
            np.matmul(d2, wh, out=dh)
            dh += dht * z
        else:
            h = hs[t]
            np.multiply(dht, (1 - h * h) if mode == 'rnn_tanh' else (h > 0), out=dg)
            np.matmul(dg, wh, out=dh)
        if lens is not None:
            dh += carry_h
            if mode == 'lstm':
                dc += carry_c


def _backward_inputs(a):
    return ('ograd', 'ograd_state', 'ograd_state_cell')[:_n_visible(a)] + _rnn_inputs(a) + ('reserve',)


def _backward_infer(a, shapes, dtypes):
    nv = _n_visible(a)
    ins = shapes[nv:nv + 2 + _n_states(a)]
    return list(ins), [dtypes[nv]] * len(ins)


@register('_backward_RNN', kind='opaque', inputs=_backward_inputs, attrs=RNN_ATTRS, infer=_backward_infer,
          num_outputs=lambda a: 2 + _n_states(a),
          doc="Gradients of RNN: (d data, d parameters, d state, [d state_cell]), from the forward's reserve.")
def _backward_rnn(a, *args, native=None):
    nv, ns = _n_visible(a), _n_states(a)
    dout = args[0]
    dstates = list(args[1:nv]) if a['state_outputs'] else []
    x, w, hx, cx, lens = _split_inputs(a, args[nv:-1])
    reserve = args[-1]
    T, N, C = x.shape
    if not N:  # an empty batch: the parameter gradient is a sum over no samples
        return zeros_of(_backward_infer, a, list(args))
    L, D, H, G, ins = _dims(a, C)
    mode, dt = a['mode'], x.dtype
    per, masks = _reserve_views(a, reserve, T, N)
    hx0, cx0 = _zero_states(hx, N), _zero_states(cx, N) if cx is not None else None
    dhx = np.array(dstates[0], dtype=dt) if dstates else np.zeros((L * D, N, _out_size(a)), dt)
    dcx = (np.array(dstates[1], dtype=dt) if dstates else np.zeros((L * D, N, H), dt)) if ns == 2 else None
    dw = np.empty_like(w)
    dviews = _param_views(a, dw, C)
    need_x = a.get('_need', (True,))[0]
    wviews = _param_views(a, w, C)
    dcur = dout * _valid(lens, T) if lens is not None else dout
    for l in range(L - 1, -1, -1):
        xin = _layer_input(a, x, per, masks, l, D)
        dxin = None
        for d in range(D):
            k = l * D + d
            _, _, wi, wh, _, _, wr = wviews[k]
            _, _, dwi, dwh, dbi, dbh, dwr = dviews[k]
            v = per[k]
            R = _out_size(a)
            dhs = np.ascontiguousarray(dcur[:, :, d * R:(d + 1) * R])
            dxg = np.empty((T, N, G * H), dt)
            dhh = np.empty((T, N, G * H), dt) if mode == 'gru' else dxg
            _dir_backward(a, dhs, dhx[k], dcx[k] if dcx is not None else None, wh, hx0[k],
                          cx0[k] if cx0 is not None else None, v, d == 1, dxg, dhh, wr, dwr, lens, native)
            hs = v['h']
            hprev = np.empty_like(hs)  # the h each step read: h0, then the sequence shifted by one step
            if d == 0:
                hprev[0], hprev[1:] = hx0[k], hs[:-1]
            else:
                hprev[-1], hprev[:-1] = hx0[k], hs[1:]
            g2, h2 = dxg.reshape(T * N, G * H), dhh.reshape(T * N, G * H)
            np.matmul(g2.T, xin.reshape(T * N, -1), out=dwi)
            np.matmul(h2.T, hprev.reshape(T * N, -1), out=dwh)
            np.sum(g2, axis=0, out=dbi)
            np.sum(h2, axis=0, out=dbh)
            if l > 0 or need_x:
                part = (g2 @ wi).reshape(xin.shape)
                dxin = part if dxin is None else dxin + part
        if l > 0:
            dcur = dxin * masks[l] if masks[l] is not None else dxin
    dx = dxin if dxin is not None else np.zeros_like(x)
    out = [dx, dw, dhx if hx.shape[1] == N else np.zeros_like(hx)]
    if ns == 2:
        out.append(dcx if cx.shape[1] == N else np.zeros_like(cx))
    return tuple(out)


# ---------------------------------------------------------------- _rnn_param_concat and _zeros
@register('_rnn_param_concat', kind='injective', inputs='*', infer=_concat_infer, grad=_concat_grad,
          attrs={'dim': Attr('int', 1), 'num_args': Attr('int', 0)},
          doc="Concat for the RNN op's flat parameter vector (MXNet's name for it in exported graphs).")
def _rnn_param_concat(attrs, *xs):
    return _concat(attrs, *xs)


def _zeros_infer(a, shapes, dtypes):
    s = a['shape']
    if any(d is None or d < 0 for d in s):
        bad(f"_zeros: shape {s} must have sizes >= 0")
    return [tuple(s)], [np.dtype(a['dtype'])]


@register('_zeros', kind='opaque', inputs=(), infer=_zeros_infer,
          attrs={'shape': Attr('shape', ()), 'ctx': Attr('str', ''), 'dtype': Attr('dtype', 'float32')},
          doc="An array of zeros (MXNet's _zeros; a 0 in the shape of an RNN begin state means 'the batch size').")
def _zeros_op(attrs, *_):
    return np.zeros(attrs['shape'], attrs['dtype'])
