"""mx.np's array functions that are ops of their own (MXNet's _npi_einsum, _npi_pad, _npi_insert, _npi_delete,
_npi_percentile): NumPy's kernels, so they trace and record like any op.

pad, insert and delete move elements without arithmetic: their gradient scatters the output gradient back to the
elements each output came from, found by running the same function on arrays of element numbers."""
import string
from collections import Counter

import numpy as np

from ..registry import Attr, bad, register


def _like(shape):
    return np.broadcast_to(np.int8(0), shape)  # (a zero-stride stand-in: shapes through NumPy's own rules)


def _sources(fn, shapes):
    """fn applied to the element numbers of inputs of these shapes (numbered one after the other; -1: a constant)."""
    starts = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    return fn(*[np.arange(b, b + int(np.prod(s)), dtype=np.int64).reshape(s) for b, s in zip(starts, shapes)])


def _scatter(fn, g, xs):
    """The gradients of fn's inputs xs for the output gradient g (fn only moves elements)."""
    src = _sources(fn, [x.shape for x in xs]).ravel()
    keep = src >= 0
    total = sum(x.size for x in xs)
    acc = np.bincount(src[keep], weights=g.astype(np.float64).ravel()[keep], minlength=total)
    outs, at = [], 0
    for x in xs:
        outs.append(acc[at:at + x.size].reshape(x.shape).astype(x.dtype))
        at += x.size
    return tuple(outs) if len(outs) > 1 else outs[0]


def _moving_op(name, fn_of_attrs, inputs, attrs, doc):
    """Register name (the forward: fn_of_attrs(a)(*arrays)) and its backward (_backward_name: the scatter, with
    fn_of_attrs(a, numbers=True): the function on element numbers, constants -1)."""
    n = len(inputs)

    def infer(a, s, d):
        try:
            out = fn_of_attrs(a)(*[_like(x) for x in s])
        except (ValueError, IndexError, TypeError) as e:
            bad(f"np.{name[5:]}: {e} (shapes {', '.join(map(str, s))})")
        return [out.shape], [d[0]]

    register(f'_backward{name}', kind='opaque', inputs=('ograd',) + inputs, attrs=attrs, num_outputs=n,
             differentiable=False, mixed_dtypes=True, infer=lambda a, s, d: (list(s[1:]), list(d[1:])),
             doc=f"Gradient of {name}.")(lambda a, g, *xs: _scatter(fn_of_attrs(a, numbers=True), g, xs))

    def grad(F, a, x, y, dy):
        r = getattr(F, f'_backward{name}')(dy[0], *x, **a)
        return list(r) if n > 1 else [r]

    def kernel(a, *xs):
        infer(a, [x.shape for x in xs], [x.dtype for x in xs])  # the clear error, eagerly too
        return fn_of_attrs(a)(*xs).astype(xs[0].dtype)
    register(name, kind='opaque', inputs=inputs, attrs=attrs, infer=infer, grad=grad, mixed_dtypes=n > 1,
             doc=doc)(kernel)


# ---------------------------------------------------------------- pad
PAD_MODES = ('constant', 'edge', 'reflect', 'symmetric', 'maximum', 'minimum')


def _pad_fn(a, numbers=False):
    pw = np.asarray(a['pad_width'], dtype=np.int64).reshape(-1, 2)
    mode = a['mode']

    def f(x):
        if pw.shape[0] != x.ndim:
            raise ValueError(f"pad_width has {pw.shape[0]} (before, after) pairs for a {x.ndim}-d array")
        if mode == 'constant':
            return np.pad(x, pw, mode, constant_values=-1 if numbers else a['constant_values'])
        if numbers and mode in ('maximum', 'minimum'):  # (a statistic, not a move of elements)
            raise ValueError(f"np.pad: the gradient of mode={mode!r} is not supported (MXNet's: 'constant' only)")
        if numbers and a['reflect_type'] == 'odd' and mode in ('reflect', 'symmetric'):  # (2 * edge - mirror)
            raise ValueError("np.pad: the gradient of reflect_type='odd' is not supported")
        return np.pad(x, pw, mode, **({'reflect_type': a['reflect_type']} if mode in ('reflect', 'symmetric') else {}))
    return f


_moving_op('_npi_pad', _pad_fn, ('data',),
           {'pad_width': Attr('shape'), 'mode': Attr('str', 'constant', choices=PAD_MODES),
            'constant_values': Attr('float', 0.0), 'reflect_type': Attr('str', 'even', choices=('even', 'odd'))},
           "NumPy's pad: pad_width holds a (before, after) pair per axis, flattened.")


# ---------------------------------------------------------------- insert / delete
OBJ_ATTRS = {'axis': Attr('int', None), 'int_ind': Attr('int', None), 'indices': Attr('shape', None),
             'slice_ind': Attr('shape', None)}


def _obj(a):
    if a['int_ind'] is not None:
        return a['int_ind']
    if a['indices'] is not None:
        return np.asarray(a['indices'], dtype=np.int64)
    if a['slice_ind'] is not None:
        return slice(*a['slice_ind'])
    raise ValueError("needs obj: an int, indices or a slice")


def _insert_fn(a, numbers=False):
    return lambda x, v: np.insert(x, _obj(a), v, axis=a['axis'])


def _delete_fn(a, numbers=False):
    def f(x):
        obj = _obj(a)
        if isinstance(obj, np.ndarray):  # MXNet: indices outside [0, n) are ignored
            n = x.size if a['axis'] is None else x.shape[a['axis']]
            obj = obj[(obj >= 0) & (obj < n)]
        return np.delete(x, obj, axis=a['axis'])
    return f


_moving_op('_npi_insert', _insert_fn, ('arr', 'values'), OBJ_ATTRS,
           "NumPy's insert: values (cast to arr's dtype) before the index obj (int_ind, indices or slice_ind) along "
           "axis (None: arr flattened).")
_moving_op('_npi_delete', _delete_fn, ('arr',), OBJ_ATTRS,
           "NumPy's delete: arr without the entries obj (int_ind, indices: those outside the axis are ignored, as "
           "in MXNet, or slice_ind) along axis (None: arr flattened).")


# ---------------------------------------------------------------- einsum
def einsum_labels(subscripts, shapes):
    """(one label string per operand, the output's labels, each label's size): '...' becomes letters the
    subscripts do not use, aligned on the right; sizes of 1 broadcast."""
    s = subscripts.replace(' ', '')
    lhs, arrow, rhs = s.partition('->')
    terms = lhs.split(',')
    if len(terms) != len(shapes):
        bad(f"np.einsum: {subscripts!r} names {len(terms)} operands, got {len(shapes)}")
    free = [c for c in string.ascii_letters if c not in s]
    n_ell = max([len(sh) - len(t) + 3 for t, sh in zip(terms, shapes) if '...' in t] + [0])
    ell = ''.join(free[:n_ell])
    labels, sizes = [], {}
    for t, sh in zip(terms, shapes):
        if '...' in t:
            t = t.replace('...', ell[n_ell - (len(sh) - len(t) + 3):])
        if len(t) != len(sh) or not all(c.isalpha() for c in t):
            bad(f"np.einsum: the term {t!r} of {subscripts!r} does not fit an operand of shape {sh}")
        for c, n in zip(t, sh):
            if sizes.get(c, 1) not in (1, n) and n != 1:
                bad(f"np.einsum: label {c!r} of {subscripts!r} has sizes {sizes[c]} and {n}")
            sizes[c] = max(sizes.get(c, 1), n) if n != 0 else 0
        labels.append(t)
    if arrow:
        out = rhs.replace('...', ell)
    else:
        count = Counter(''.join(labels))
        out = ell + ''.join(sorted(c for c in count if count[c] == 1 and c not in ell))
    if any(c not in sizes for c in out) or len(set(out)) != len(out):
        bad(f"np.einsum: bad output subscripts in {subscripts!r}")
    return labels, out, sizes


def _einsum_infer(a, s, d):
    if a['num_args'] != len(s):
        bad(f"np.einsum: num_args is {a['num_args']}, got {len(s)} operands")
    if any(x != d[0] for x in d):
        bad(f"np.einsum: operands must share a dtype, got {', '.join(map(str, d))}")
    _, out, sizes = einsum_labels(a['subscripts'], s)
    return [tuple(sizes[c] for c in out)], [d[0]]


EINSUM_ATTRS = {'subscripts': Attr('str'), 'num_args': Attr('int'), 'optimize': Attr('int', 0)}


@register('_npi_einsum', kind='opaque', inputs='*', attrs=EINSUM_ATTRS, infer=_einsum_infer,
          grad=lambda F, a, x, y, dy: list(F._backward_npi_einsum(dy[0], *x, **a)) if len(x) > 1 else
          [F._backward_npi_einsum(dy[0], *x, **a)],
          doc="NumPy's einsum over num_args operands (implicit and explicit output, '...', repeated labels).")
def _npi_einsum(a, *xs):
    _einsum_infer(a, [x.shape for x in xs], [x.dtype for x in xs])
    return np.asarray(np.einsum(a['subscripts'], *xs, optimize=bool(a['optimize']))).astype(xs[0].dtype)


def _einsum_operand_grad(g, xs, labels, out, sizes, k):
    """d(sum g * einsum) / d xs[k]: the other operands contracted with g onto xs[k]'s labels, placed on its
    diagonals (repeated labels), constant along labels only it has, summed over the axes it broadcast."""
    lab = labels[k]
    uniq = ''.join(dict.fromkeys(lab))
    others = [j for j in range(len(xs)) if j != k]
    have = set(out).union(*[labels[j] for j in others])
    target = ''.join(c for c in uniq if c in have)
    full = [np.broadcast_to(xs[j].astype(np.float64), tuple(sizes[c] for c in labels[j])) for j in others]
    r = np.einsum(','.join([out] + [labels[j] for j in others]) + '->' + target, g.astype(np.float64), *full)
    r = np.broadcast_to(r.reshape([sizes[c] if c in target else 1 for c in uniq]), [sizes[c] for c in uniq])
    grad = np.zeros([sizes[c] for c in lab])
    grad[tuple(np.arange(sizes[c]).reshape([-1 if i == uniq.index(c) else 1 for i in range(len(uniq))])
               for c in lab)] = r
    summed = tuple(i for i, (c, n) in enumerate(zip(lab, xs[k].shape)) if n == 1 and sizes[c] != 1)
    return grad.sum(axis=summed, keepdims=True).astype(xs[k].dtype) if summed else grad.astype(xs[k].dtype)


@register('_backward_npi_einsum', kind='opaque', inputs='*', attrs=EINSUM_ATTRS, differentiable=False,
          num_outputs=lambda a: a['num_args'], infer=lambda a, s, d: (list(s[1:]), list(d[1:])),
          doc="Gradient of np.einsum (inputs: the output gradient, then the operands).")
def _npi_einsum_bw(a, g, *xs):
    labels, out, sizes = einsum_labels(a['subscripts'], [x.shape for x in xs])
    grads = tuple(_einsum_operand_grad(g, xs, labels, out, sizes, k) for k in range(len(xs)))
    return grads if len(grads) > 1 else grads[0]


# ---------------------------------------------------------------- percentile
INTERPOLATIONS = ('linear', 'lower', 'higher', 'midpoint', 'nearest')


def _pct_inputs(a):
    return ('a',) if a['q_scalar'] is not None else ('a', 'q')


def _pct_infer(a, s, d):
    A = s[0]
    qs = () if a['q_scalar'] is not None else tuple(s[1])
    axes = range(len(A)) if a['axis'] is None else [x % len(A) for x in (
        (a['axis'],) if isinstance(a['axis'], int) else a['axis'])]
    rest = tuple(1 if i in axes else n for i, n in enumerate(A)) if a['keepdims'] else \
        tuple(n for i, n in enumerate(A) if i not in axes)
    return [qs + rest], [d[0] if d[0].kind == 'f' else np.dtype(np.float32)]


def _pct_grad(F, a, x, y, dy):
    return [getattr(F, '_backward_npi_percentile')(dy[0], *x, **a)] + [None] * (len(x) - 1)


_PCT_ATTRS = {'axis': Attr('axis', None), 'interpolation': Attr('str', 'linear', choices=INTERPOLATIONS),
              'keepdims': Attr('bool', False), 'q_scalar': Attr('float', None)}


@register('_npi_percentile', kind='opaque', inputs=_pct_inputs, infer=_pct_infer, mixed_dtypes=True,
          grad=_pct_grad, nograd_inputs=(1,), attrs=_PCT_ATTRS,
          doc="NumPy's percentile of a along axis at q (in [0, 100]: the input q, or the number q_scalar); "
              "quantile and median are this op. Its gradient goes to the one or two order statistics each result "
              "interpolates (MXNet's is zero).")
def _npi_percentile(a, x, q=None):
    dt = _pct_infer(a, [x.shape] + ([] if q is None else [q.shape]), [x.dtype])[1][0]
    q = a['q_scalar'] if q is None else q
    if np.any((np.asarray(q) < 0) | (np.asarray(q) > 100)):
        bad("np.percentile: q must be in [0, 100] (np.quantile: in [0, 1])")
    x = x if x.dtype.kind == 'f' else x.astype(np.float64)  # (floats: in their own precision, as NumPy computes)
    out = np.percentile(x, q, axis=a['axis'], method=a['interpolation'], keepdims=a['keepdims'])
    return np.asarray(out).astype(dt)


def _order_weights(q, n, method):
    """For each q (in [0, 100]): the two sorted positions a percentile reads and their weights (NumPy's methods)."""
    pos = np.asarray(q, np.float64).ravel() / 100 * (n - 1)
    lo, hi = np.floor(pos).astype(np.int64), np.ceil(pos).astype(np.int64)
    t = pos - lo
    w_hi = {'linear': t, 'lower': 0 * t, 'higher': (hi > lo) * 1.0, 'midpoint': (hi > lo) * 0.5,
            'nearest': (np.around(pos) > lo) * 1.0}[method]
    return lo, hi, 1 - w_hi, w_hi


@register('_backward_npi_percentile', kind='opaque', inputs=lambda a: ('ograd',) + _pct_inputs(a),
          attrs=_PCT_ATTRS, differentiable=False, mixed_dtypes=True, infer=lambda a, s, d: ([s[1]], [d[1]]),
          doc="Gradient of np.percentile: the output gradient, weighted, at the elements each result read.")
def _npi_percentile_bw(a, g, x, q=None):
    axes = tuple(range(x.ndim)) if a['axis'] is None else tuple(
        ax % x.ndim for ax in ((a['axis'],) if isinstance(a['axis'], int) else a['axis']))
    kept = tuple(i for i in range(x.ndim) if i not in axes)
    xt = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    batch, n = xt.shape[:len(kept)], int(np.prod([x.shape[i] for i in axes]))
    flat = xt.reshape(batch + (n,))
    order = np.argsort(flat, axis=-1, kind='stable')
    lo, hi, w_lo, w_hi = _order_weights(a['q_scalar'] if q is None else q, n, a['interpolation'])
    gq = g.astype(np.float64).reshape((len(lo),) + batch)
    sorted_grad = np.zeros(batch + (n,))
    for j in range(len(lo)):
        sorted_grad[..., lo[j]] += w_lo[j] * gq[j]
        sorted_grad[..., hi[j]] += w_hi[j] * gq[j]
    grad = np.empty_like(sorted_grad)
    np.put_along_axis(grad, order, sorted_grad, axis=-1)
    return np.moveaxis(grad.reshape(xt.shape), tuple(range(x.ndim - len(axes), x.ndim)), axes).astype(x.dtype)


# ---------------------------------------------------------------- roll
ROLL_ATTRS = {'shift': Attr('shape', None), 'axis': Attr('shape', None)}


def _roll_shifts(a, ndim):
    shift, axis = a['shift'] or (0,), a['axis']
    if axis is not None:
        try:
            pairs = np.broadcast(np.asarray(shift), np.asarray(axis))
        except ValueError:
            bad(f"np.roll: shift {shift} and axis {axis} do not pair up")
        if any(not -ndim <= int(ax) < ndim for _, ax in pairs):
            bad(f"np.roll: axis {axis} is out of range for a {ndim}-d array")
        return shift, axis
    if len(shift) != 1:
        bad(f"np.roll: without axis, shift must be one number, got {shift}")
    return shift[0], None


def _roll_infer(a, s, d):
    _roll_shifts(a, len(s[0]))
    return [s[0]], [d[0]]


@register('_np_roll', kind='opaque', attrs=ROLL_ATTRS, infer=_roll_infer,
          grad=lambda F, a, x, y, dy: [F._np_roll(dy[0], shift=tuple(-v for v in (a['shift'] or (0,))),
                                                   axis=a['axis'])],
          doc="NumPy's roll: elements shifted along axis (tuples: pairs of shifts and axes; None: the flattened "
              "array, the same shape back).")
def _np_roll(a, x):
    shift, axis = _roll_shifts(a, x.ndim)
    return np.roll(x, shift, axis)
