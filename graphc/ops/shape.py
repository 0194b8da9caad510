"""Injective ops: reshape, transpose, slicing, joining, indexing and gathering."""
import numpy as np

from ..registry import Attr, bad, norm_axis, register, same_dtype
from .elemwise import unbroadcast


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def reshape_shape(src, spec, reverse=False):
    """MXNet's Reshape codes: 0 copy a dim, -1 infer, -2 copy the rest, -3 merge two, -4 split one."""
    if reverse:
        return reshape_shape(src[::-1], _rev_spec(spec))[::-1]
    out, i, spec, infer_at = [], 0, list(spec), None
    k = 0
    while k < len(spec):
        d = spec[k]
        if d == 0:
            if i >= len(src):
                bad(f"Reshape: code 0 at position {k} has no input dim to copy")
            out.append(src[i]); i += 1
        elif d == -1:
            if infer_at is not None:
                bad("Reshape: more than one -1")
            infer_at = len(out); out.append(1); i += 1
        elif d == -2:
            out.extend(src[i:]); i = len(src)
        elif d == -3:
            if i + 1 >= len(src):
                bad("Reshape: -3 needs two input dims")
            out.append(src[i] * src[i + 1]); i += 2
        elif d == -4:
            if k + 2 >= len(spec) or i >= len(src):
                bad("Reshape: -4 needs two following dims and an input dim")
            a, b = spec[k + 1], spec[k + 2]
            if a == -1:
                a = src[i] // b
            if b == -1:
                b = src[i] // a
            if a * b != src[i]:
                bad(f"Reshape: -4 cannot split {src[i]} into {a} x {b}")
            out += [a, b]; i += 1; k += 2
        elif d > 0:
            out.append(d); i += 1
        else:
            bad(f"Reshape: invalid code {d}")
        k += 1
    if infer_at is not None:
        known = _size(out)
        if known == 0 or _size(src) % known:
            bad(f"Reshape: cannot infer -1 to turn {tuple(src)} into {tuple(spec)}")
        out[infer_at] = _size(src) // known
    if _size(out) != _size(src):
        bad(f"Reshape: cannot reshape {tuple(src)} (size {_size(src)}) into {tuple(out)} (size {_size(out)})")
    return tuple(out)


def _rev_spec(spec):
    return list(spec)[::-1]


def exact_shape(src, new):
    """NumPy reshape semantics: dims as given, one -1 inferred (0 is a real zero-size dim)."""
    new = tuple(new)
    if new.count(-1) > 1 or any(d < -1 for d in new):
        bad(f"_np_reshape: invalid shape {new}")
    if -1 in new:
        known = _size(d for d in new if d != -1)
        if known == 0 or _size(src) % known:
            bad(f"_np_reshape: cannot infer -1 to reshape {tuple(src)} into {new}")
        new = tuple(_size(src) // known if d == -1 else d for d in new)
    if _size(new) != _size(src):
        bad(f"_np_reshape: cannot reshape {tuple(src)} (size {_size(src)}) into {new}")
    return new


def _reshape_out(attrs, src):
    if attrs['shape'] or not attrs['target_shape']:
        return reshape_shape(src, attrs['shape'], attrs['reverse'])
    # MXNet's deprecated target_shape: one 0 is inferred; keep_highest keeps the first dim
    out = list(attrs['target_shape'])
    if attrs['keep_highest']:
        out[0] = src[0]
    free = [i for i in range(1 if attrs['keep_highest'] else 0, len(out)) if out[i] == 0]
    if len(free) == 1:
        known = int(np.prod([d for i, d in enumerate(out) if i != free[0]], dtype=np.int64))
        out[free[0]] = int(np.prod(src, dtype=np.int64)) // max(known, 1)
    return exact_shape(src, tuple(out))


def _reshape_infer(attrs, shapes, dtypes):
    return [_reshape_out(attrs, shapes[0])], [dtypes[0]]


@register('Reshape', kind='injective', inplace=True, infer=_reshape_infer,
          attrs={'shape': Attr('shape', ()), 'reverse': Attr('bool', False), 'target_shape': Attr('shape', ()),
                 'keep_highest': Attr('bool', False)},
          grad=lambda F, a, x, y, dy: [F._np_reshape(dy[0], newshape=x[0].shape)])
def _reshape(attrs, x):
    return x.reshape(_reshape_out(attrs, x.shape))


@register('_np_reshape', kind='injective', inplace=True, attrs={'newshape': Attr('shape')},
          infer=lambda a, s, d: ([exact_shape(s[0], a['newshape'])], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._np_reshape(dy[0], newshape=x[0].shape)])
def _np_reshape(attrs, x):
    return x.reshape(exact_shape(x.shape, attrs['newshape']))


def _perm(attrs, ndim):
    axes = attrs['axes'] or tuple(range(ndim))[::-1]
    if sorted(a % max(ndim, 1) for a in axes) != list(range(ndim)):
        bad(f"transpose: axes {axes} are not a permutation of {ndim} dims")
    return tuple(a % ndim for a in axes)


@register('transpose', kind='injective', attrs={'axes': Attr('shape', ())},
          infer=lambda a, s, d: ([tuple(s[0][i] for i in _perm(a, len(s[0])))], [d[0]]),
          grad=lambda F, a, x, y, dy: [F.transpose(dy[0], axes=tuple(np.argsort(_perm(a, x[0].ndim))))])
def _transpose(attrs, x):
    return np.asarray(x.transpose(_perm(attrs, x.ndim)), order='C')  # (ascontiguousarray makes 0-d arrays 1-d)


def _swap_perm(a, ndim):
    p = list(range(ndim))
    i, j = norm_axis(a['dim1'], ndim), norm_axis(a['dim2'], ndim)
    p[i], p[j] = p[j], p[i]
    return p


@register('SwapAxis', kind='injective', attrs={'dim1': Attr('int', 0), 'dim2': Attr('int', 0)},
          infer=lambda a, s, d: ([tuple(s[0][i] for i in _swap_perm(a, len(s[0])))], [d[0]]),
          grad=lambda F, a, x, y, dy: [F.SwapAxis(dy[0], dim1=a['dim1'], dim2=a['dim2'])])
def _swapaxis(attrs, x):
    return np.asarray(x.transpose(_swap_perm(attrs, x.ndim)), order='C')


def _back_reshape(F, a, x, y, dy):
    return [F._np_reshape(dy[0], newshape=x[0].shape)]


def _expand_shape(a, s):
    ax = norm_axis(a['axis'], len(s) + 1)
    return s[:ax] + (1,) + s[ax:]


@register('expand_dims', kind='injective', inplace=True, attrs={'axis': Attr('int')}, grad=_back_reshape,
          infer=lambda a, s, d: ([_expand_shape(a, s[0])], [d[0]]))
def _expand_dims(attrs, x):
    return x.reshape(_expand_shape(attrs, x.shape))


def _squeeze_shape(a, s):
    if a['axis'] is None:
        return tuple(d for d in s if d != 1)
    axes = {norm_axis(i, len(s)) for i in ((a['axis'],) if isinstance(a['axis'], int) else a['axis'])}
    for i in axes:
        if s[i] != 1:
            bad(f"squeeze: axis {i} has size {s[i]}, not 1")
    return tuple(d for i, d in enumerate(s) if i not in axes)


@register('squeeze', kind='injective', inplace=True, attrs={'axis': Attr('axis', None)}, grad=_back_reshape,
          infer=lambda a, s, d: ([_squeeze_shape(a, s[0])], [d[0]]))
def _squeeze(attrs, x):
    return x.reshape(_squeeze_shape(attrs, x.shape))


def _flat_shape(s):
    return (s[0], _size(s[1:])) if s else (1, 1)


@register('Flatten', kind='injective', inplace=True, grad=_back_reshape,
          infer=lambda a, s, d: ([_flat_shape(s[0])], [d[0]]))
def _flatten(attrs, x):
    return x.reshape(_flat_shape(x.shape))


def _concat_infer(attrs, shapes, dtypes):
    s0 = shapes[0]
    ax = norm_axis(attrs['dim'], len(s0), 'dim')
    for s in shapes[1:]:
        if len(s) != len(s0) or any(a != b for i, (a, b) in enumerate(zip(s, s0)) if i != ax):
            bad(f"Concat: shapes {s0} and {s} differ outside dim {ax}")
    return [s0[:ax] + (sum(s[ax] for s in shapes),) + s0[ax + 1:]], [same_dtype('Concat', dtypes)]


def _concat_grad(F, a, x, y, dy):
    ax = a['dim'] % x[0].ndim
    out, start = [], 0
    for xi in x:
        out.append(F.slice_axis(dy[0], axis=ax, begin=start, end=start + xi.shape[ax]))
        start += xi.shape[ax]
    return out


@register('Concat', kind='injective', inputs='*', infer=_concat_infer, grad=_concat_grad,
          attrs={'dim': Attr('int', 1), 'num_args': Attr('int', 0)})
def _concat(attrs, *xs):
    return np.concatenate(xs, axis=attrs['dim'])


def _stack_infer(attrs, shapes, dtypes):
    if any(s != shapes[0] for s in shapes):
        bad("stack: all inputs must have the same shape")
    s = shapes[0]
    ax = norm_axis(attrs['axis'], len(s) + 1)
    return [s[:ax] + (len(shapes),) + s[ax:]], [same_dtype('stack', dtypes)]


def _stack_grad(F, a, x, y, dy):
    ax = a['axis'] % (x[0].ndim + 1)
    parts = F.SliceChannel(dy[0], num_outputs=len(x), axis=ax, squeeze_axis=True)
    return list(parts) if len(x) > 1 else [parts]


@register('stack', kind='injective', inputs='*', infer=_stack_infer, grad=_stack_grad,
          attrs={'axis': Attr('int', 0), 'num_args': Attr('int', 0)})
def _stack(attrs, *xs):
    return np.stack(xs, axis=attrs['axis'])


def _split_infer(attrs, shapes, dtypes):
    s, n = shapes[0], attrs['num_outputs']
    ax = norm_axis(attrs['axis'], len(s))
    if n < 1 or s[ax] % n:
        bad(f"SliceChannel: dim {ax} of size {s[ax]} does not split into {n} equal parts")
    if attrs['squeeze_axis'] and s[ax] != n:
        bad("SliceChannel: squeeze_axis needs parts of size 1")
    part = s[:ax] + (() if attrs['squeeze_axis'] else (s[ax] // n,)) + s[ax + 1:]
    return [part] * n, [dtypes[0]] * n


def _split_grad(F, a, x, y, dy):
    ax = a['axis'] % x[0].ndim
    parts = [F.expand_dims(g, axis=ax) if a['squeeze_axis'] else g for g in dy]
    return [F.Concat(*parts, dim=ax, num_args=len(parts)) if len(parts) > 1 else parts[0]]


@register('SliceChannel', kind='injective', infer=_split_infer, grad=_split_grad,
          num_outputs=lambda a: a['num_outputs'],
          attrs={'num_outputs': Attr('int'), 'axis': Attr('int', 1), 'squeeze_axis': Attr('bool', False)})
def _split(attrs, x):
    ax = attrs['axis'] % x.ndim
    parts = np.split(x, attrs['num_outputs'], axis=ax)
    if attrs['squeeze_axis']:
        parts = [p.squeeze(ax) for p in parts]
    return tuple(np.asarray(p, order='C') for p in parts)


def slice_key(shape, begin, end, step):
    """The slice objects of MXNet's slice(begin, end, step) on `shape`."""
    if len(begin) > len(shape) or len(end) != len(begin) or (step and len(step) != len(begin)):
        bad(f"slice: begin {begin}, end {end}, step {step} do not fit a {len(shape)}-d input")
    step = step or (None,) * len(begin)
    key = []
    for d, b, e, s in zip(shape, begin, end, step):
        if s == 0:
            bad("slice: step cannot be 0")
        key.append(slice(b, e, s))
    return tuple(key)


def _slice_shape(attrs, s):
    key = slice_key(s, attrs['begin'], attrs['end'], attrs['step'])
    return tuple(len(range(*k.indices(d))) for k, d in zip(key, s)) + s[len(key):]


def _slice_grad(F, a, x, y, dy):
    return [F._slice_assign(F.zeros_like(x[0]), dy[0], begin=a['begin'], end=a['end'], step=a['step'])]


SLICE_ATTRS = {'begin': Attr('shape'), 'end': Attr('shape'), 'step': Attr('shape', ())}


@register('slice', kind='injective', attrs=SLICE_ATTRS, grad=_slice_grad,
          infer=lambda a, s, d: ([_slice_shape(a, s[0])], [d[0]]))
def _slice(attrs, x):
    return np.asarray(x[slice_key(x.shape, attrs['begin'], attrs['end'], attrs['step'])], order='C')


def _slice_assign_infer(attrs, shapes, dtypes):
    if _slice_shape(attrs, shapes[0]) != shapes[1]:
        bad(f"_slice_assign: value of shape {shapes[1]} does not fit the slice of {shapes[0]}")
    return [shapes[0]], [same_dtype('_slice_assign', dtypes)]


@register('_slice_assign', kind='injective', inputs=('lhs', 'rhs'), inplace=True, attrs=SLICE_ATTRS,
          infer=_slice_assign_infer,
          grad=lambda F, a, x, y, dy: [F._slice_assign_scalar(dy[0], scalar=0.0, **a), F.slice(dy[0], **a)])
def _slice_assign(attrs, lhs, rhs):
    out = lhs.copy()
    out[slice_key(lhs.shape, attrs['begin'], attrs['end'], attrs['step'])] = rhs
    return out


@register('_slice_assign_scalar', kind='injective', inplace=True, attrs=dict(SLICE_ATTRS, scalar=Attr('float', 0.0)),
          infer=lambda a, s, d: ([s[0]], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._slice_assign_scalar(dy[0], **dict(a, scalar=0.0))])
def _slice_assign_scalar(attrs, x):
    out = x.copy()
    out[slice_key(x.shape, attrs['begin'], attrs['end'], attrs['step'])] = attrs['scalar']
    return out


def _axis_slice(attrs, shape):
    ax = norm_axis(attrs['axis'], len(shape))
    b, e = attrs['begin'], attrs['end']
    b, e, _ = slice(b, e).indices(shape[ax])
    if e < b:
        bad(f"slice_axis: empty range [{attrs['begin']}, {attrs['end']}) on axis {ax} of size {shape[ax]}")
    begin = (None,) * ax + (b,)
    end = (None,) * ax + (e,)
    return begin, end


@register('slice_axis', kind='injective', attrs={'axis': Attr('int'), 'begin': Attr('int'), 'end': Attr('int', None)},
          infer=lambda a, s, d: ([_slice_shape(dict(zip(('begin', 'end'), _axis_slice(a, s[0])), step=()), s[0])],
                                 [d[0]]),
          grad=lambda F, a, x, y, dy: [F._slice_assign(F.zeros_like(x[0]), dy[0],
                                                       **dict(zip(('begin', 'end'), _axis_slice(a, x[0].shape))))])
def _slice_axis(attrs, x):
    b, e = _axis_slice(attrs, x.shape)
    return np.asarray(x[slice_key(x.shape, b, e, ())], order='C')


def _tile_shape(a, s):
    reps = a['reps']
    from ..util import is_np_shape
    if any(r < 0 for r in reps) or (0 in reps and not is_np_shape()):  # MXNet 1.x: a 0 only in NumPy shape mode
        bad(f"tile: reps {reps} must be positive{'' if is_np_shape() else ' (0 needs mx.np_shape())'}")
    n = max(len(s), len(reps))
    s, reps = (1,) * (n - len(s)) + s, (1,) * (n - len(reps)) + reps
    return s, reps


def _tile_grad(F, a, x, y, dy):
    s, reps = _tile_shape(a, x[0].shape)
    g = F._np_reshape(dy[0], newshape=tuple(v for r, d in zip(reps, s) for v in (r, d)))
    g = F.sum(g, axis=tuple(range(0, 2 * len(s), 2)))
    return [F._np_reshape(g, newshape=x[0].shape)]


@register('tile', kind='injective', attrs={'reps': Attr('shape')}, grad=_tile_grad,
          infer=lambda a, s, d: ([tuple(r * k for r, k in zip(*_tile_shape(a, s[0])))], [d[0]]))
def _tile(attrs, x):
    s, reps = _tile_shape(attrs, x.shape)
    if 0 in reps or 0 in s:  # np.tile would build the other axes' repeats first: (2**31, 0) asks for 640 GiB
        return np.zeros(tuple(r * d for r, d in zip(reps, s)), x.dtype)
    return np.tile(x, attrs['reps'])


def _repeat_grad(F, a, x, y, dy):
    r, ax, s = a['repeats'], a['axis'], x[0].shape
    if ax is None:
        return [F._np_reshape(F.sum(F._np_reshape(dy[0], newshape=(-1, r)), axis=1), newshape=s)]
    ax = ax % len(s)
    g = F._np_reshape(dy[0], newshape=s[:ax] + (s[ax], r) + s[ax + 1:])
    return [F.sum(g, axis=ax + 1)]


def _repeat_infer(a, s, d):
    s = s[0]
    if a['axis'] is None:
        return [(_size(s) * a['repeats'],)], [d[0]]
    ax = norm_axis(a['axis'], len(s))
    return [s[:ax] + (s[ax] * a['repeats'],) + s[ax + 1:]], [d[0]]


@register('repeat', kind='injective', attrs={'repeats': Attr('int'), 'axis': Attr('int', None)},
          grad=_repeat_grad, infer=_repeat_infer)
def _repeat(attrs, x):
    return np.repeat(x, attrs['repeats'], axis=attrs['axis'])


def _bcast_to_shape(a, s):
    tgt = a['shape']
    if len(tgt) < len(s):
        bad(f"broadcast_to: target {tgt} has fewer dims than {s}")
    s = (1,) * (len(tgt) - len(s)) + s
    out = tuple(d if t == 0 else t for d, t in zip(s, tgt))
    for d, t in zip(s, out):
        if d != t and d != 1:
            bad(f"broadcast_to: cannot broadcast {s} to {tgt}")
    return out


@register('broadcast_to', kind='broadcast', attrs={'shape': Attr('shape')},
          infer=lambda a, s, d: ([_bcast_to_shape(a, s[0])], [d[0]]),
          grad=lambda F, a, x, y, dy: [unbroadcast(F, dy[0], x[0].shape)], lower=lambda P, a, x: x)
def _broadcast_to(attrs, x):
    return np.asarray(np.broadcast_to(x, _bcast_to_shape(attrs, x.shape)), order='C')


# ---------------------------------------------------------------- gathers
def _indices(idx, n, mode, opname):
    """Integer indices from a float or int index array, with MXNet's clip/wrap/raise modes."""
    i = idx.astype(np.int64) if idx.dtype.kind == 'f' else idx.astype(np.int64, copy=False)
    if mode == 'clip':
        return np.clip(i, 0, n - 1) if n else i
    if mode == 'wrap':
        return np.mod(i, n)
    if i.size and (i.min() < -n or i.max() >= n):
        bad(f"{opname}: index out of range for a dimension of size {n} "
            f"(got indices from {int(i.min())} to {int(i.max())})")
    return i


MODE = Attr('str', 'clip', choices=('clip', 'wrap', 'raise'))


def _take_infer(attrs, shapes, dtypes):
    a, i = shapes
    ax = norm_axis(attrs['axis'], len(a))
    return [a[:ax] + i + a[ax + 1:]], [dtypes[0]]


def _take_grad(F, a, x, y, dy):
    return [F._backward_take(x[1], dy[0], axis=a['axis'], mode=a['mode'], dim=x[0].shape[a['axis'] % x[0].ndim]),
            None]


@register('take', kind='injective', inputs=('a', 'indices'), nograd_inputs=(1,), infer=_take_infer,
          attrs={'axis': Attr('int', 0), 'mode': MODE}, grad=_take_grad)
def _take(attrs, a, idx):
    ax = attrs['axis'] % a.ndim
    return np.take(a, _indices(idx, a.shape[ax], attrs['mode'], 'take'), axis=ax)


def _backward_take_infer(attrs, shapes, dtypes):
    i, g = shapes
    ax = norm_axis(attrs['axis'], len(g) - len(i) + 1)
    return [g[:ax] + (attrs['dim'],) + g[ax + len(i):]], [dtypes[1]]


@register('_backward_take', kind='opaque', inputs=('indices', 'ograd'), nograd_inputs=(0,), infer=_backward_take_infer,
          attrs={'axis': Attr('int', 0), 'mode': MODE, 'dim': Attr('int')},
          doc="Gradient of take/Embedding: ograd scatter-added into rows of a zero array (repeated indices add up).")
def _backward_take(attrs, idx, g):
    ax = attrs['axis'] % (g.ndim - idx.ndim + 1)
    n = attrs['dim']
    i = _indices(idx, n, attrs['mode'], 'take')
    out = np.zeros(g.shape[:ax] + (n,) + g.shape[ax + idx.ndim:], g.dtype)
    gm = np.moveaxis(g.reshape(g.shape[:ax] + (-1,) + g.shape[ax + idx.ndim:]), ax, 0)
    np.add.at(np.moveaxis(out, ax, 0), i.reshape(-1) % n if n else i.reshape(-1), gm)
    return out


def _embedding_infer(attrs, shapes, dtypes):
    d, w = shapes
    if w != (attrs['input_dim'], attrs['output_dim']):
        bad(f"Embedding: weight shape {w} does not match (input_dim, output_dim) = "
            f"({attrs['input_dim']}, {attrs['output_dim']})")
    return [d + (attrs['output_dim'],)], [dtypes[1]]


@register('Embedding', kind='injective', inputs=('data', 'weight'), nograd_inputs=(0,), infer=_embedding_infer,
          attrs={'input_dim': Attr('int'), 'output_dim': Attr('int'), 'dtype': Attr('dtype', 'float32'),
                 'sparse_grad': Attr('bool', False)},
          grad=lambda F, a, x, y, dy: [None, F._backward_take(x[0], dy[0], axis=0, mode='clip', dim=a['input_dim'])])
def _embedding(attrs, idx, w):
    return w[_indices(idx, w.shape[0], 'clip', 'Embedding')]


@register('one_hot', kind='injective', inputs=('indices',), nograd_inputs=(0,),
          attrs={'depth': Attr('int'), 'on_value': Attr('float', 1.0), 'off_value': Attr('float', 0.0),
                 'dtype': Attr('dtype', 'float32')},
          infer=lambda a, s, d: ([s[0] + (a['depth'],)], [np.dtype(a['dtype'])]),
          grad=lambda F, a, x, y, dy: [None])
def _one_hot(attrs, idx):
    i = idx.astype(np.int64)
    out = np.full(idx.shape + (attrs['depth'],), attrs['off_value'], attrs['dtype'])
    if not attrs['depth']:
        return out
    ok = (i >= 0) & (i < attrs['depth'])  # out-of-range indices give an all-off row, as MXNet
    np.put_along_axis(out, np.where(ok, i, 0)[..., None], np.where(ok, attrs['on_value'], attrs['off_value'])[..., None]
                      .astype(out.dtype), axis=-1)
    return out


def _pick_infer(attrs, shapes, dtypes):
    d, i = shapes
    ax = norm_axis(attrs['axis'], len(d))
    want = d[:ax] + d[ax + 1:]
    if i != want and i != d[:ax] + (1,) + d[ax + 1:]:
        bad(f"pick: index shape {i} must be {want} for data {d} picked along axis {ax}")
    return [d[:ax] + (1,) + d[ax + 1:] if attrs['keepdims'] else want], [dtypes[0]]


PICK_ATTRS = {'axis': Attr('int', -1), 'keepdims': Attr('bool', False), 'mode': MODE}


def _pick_index(attrs, d, idx):
    ax = attrs['axis'] % d.ndim
    i = _indices(idx, d.shape[ax], attrs['mode'], 'pick')
    return ax, (i if i.ndim == d.ndim else np.expand_dims(i, ax))


@register('pick', kind='injective', inputs=('data', 'index'), nograd_inputs=(1,), infer=_pick_infer,
          attrs=PICK_ATTRS, grad=lambda F, a, x, y, dy: [F._backward_pick(x[0], x[1], dy[0], **a), None])
def _pick(attrs, d, idx):
    ax, i = _pick_index(attrs, d, idx)
    out = np.take_along_axis(d, i, axis=ax)
    return out if attrs['keepdims'] else out.squeeze(ax)


@register('_backward_pick', kind='opaque', inputs=('data', 'index', 'ograd'), nograd_inputs=(1,), attrs=PICK_ATTRS,
          infer=lambda a, s, d: ([s[0]], [d[0]]),
          doc="Gradient of pick: ograd placed at the picked positions of a zero array shaped like data.")
def _backward_pick(attrs, d, idx, g):
    ax, i = _pick_index(attrs, d, idx)
    out = np.zeros_like(d)
    np.put_along_axis(out, i, g if g.ndim == d.ndim else np.expand_dims(g, ax), axis=ax)
    return out


def _fill0_infer(attrs, shapes, dtypes):
    lhs, mhs, rhs = shapes
    if len(lhs) != 2 or mhs != lhs[:1] or rhs != lhs[:1]:
        bad(f"fill_element_0index: needs a 2-d lhs and one value and index per row, got {lhs}, {mhs}, {rhs}")
    return [lhs], [dtypes[0]]


@register('fill_element_0index', kind='injective', inputs=('lhs', 'mhs', 'rhs'), nograd_inputs=(2,),
          infer=_fill0_infer,
          grad=lambda F, a, x, y, dy: [F.fill_element_0index(dy[0], F.zeros_like(x[1]), x[2]),
                                       F.pick(dy[0], x[2], axis=1), None],
          doc="lhs with lhs[i, rhs[i]] = mhs[i] for every row i (MXNet's legacy op; indices clipped).")
def _fill_element_0index(attrs, lhs, mhs, rhs):
    out = lhs.copy()
    out[np.arange(lhs.shape[0]), _indices(rhs, lhs.shape[1], 'clip', 'fill_element_0index')] = mhs
    return out


def _index_copy_infer(attrs, shapes, dtypes):
    old, idx, new = shapes
    if len(idx) != 1 or tuple(new) != (idx[0],) + tuple(old[1:]):
        bad(f"index_copy: new_tensor must be (len(index),) + old_tensor.shape[1:] = {(idx[0],) + tuple(old[1:])} "
            f"for old_tensor {old} and index {idx}, got {new}")
    return [old], [dtypes[0]]


def _index_copy_grad(F, a, x, y, dy):
    return [F._contrib_index_copy(dy[0], x[1], F.zeros_like(x[2])), None, F.take(dy[0], x[1], axis=0)]


@register('_contrib_index_copy', kind='injective', inputs=('old_tensor', 'index_vector', 'new_tensor'),
          nograd_inputs=(1,), infer=_index_copy_infer, grad=_index_copy_grad,
          doc="old_tensor with its rows index_vector[i] replaced by new_tensor[i] (MXNet's contrib.index_copy).")
def _index_copy(attrs, old, idx, new):
    out = old.copy()
    out[_indices(idx, old.shape[0], 'raise', 'index_copy')] = new
    return out
