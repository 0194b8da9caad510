"""Compiled im2col and col2im for the convolution kernels (NumPy's strided copies are slow on the
short rows of small images). Each is specialized to its shapes, split over the batch across cores,
and used by graphc.ops.nn when the CPU backend is on; the NumPy versions stay the reference."""
import functools
import threading

import numpy as np

from .. import config
from .cpu import Deferred, Kernel, _for, _kernel_function, compile_kernel, deferred, enabled, split

_lock = threading.Lock()
_kernels = {}


def _build(kind, shape, k, st, dl, pd, out_hw, dtype):
    import llvmlite.ir as ir
    n, c, h, w = shape
    oh, ow = out_hw
    t, i64, mod, fn, b, start, stop, (src, dst) = _kernel_function(dtype, 2)
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    zero = ir.Constant(t, 0.0)

    def body_n(bn, _):
        def body_c(bc, _):
            def body_i(bi, _):
                def body_j(bj, _):
                    # the outputs ow in [lo, hi) read inside the image row (ix = ow*st + j*dl - pd in [0, w)):
                    # a straight copy there (vectorizable at stride 1), zeros or nothing outside it
                    a = b.sub(C(pd[1]), b.mul(bj, C(dl[1])))
                    lo = _clamp(b, C, _ceil_div(b, C, a, st[1]), ow)
                    hi = _clamp(b, C, _ceil_div(b, C, b.add(a, C(w)), st[1]), ow)
                    hi = b.select(b.icmp_signed('<', hi, lo), lo, hi)

                    def body_oh(boh, _):
                        iy = b.sub(b.add(b.mul(boh, C(st[0])), b.mul(bi, C(dl[0]))), C(pd[0]))
                        row_ok = b.and_(b.icmp_signed('>=', iy, C(0)), b.icmp_signed('<', iy, C(h)))
                        img = b.mul(b.add(b.mul(bn, C(c)), bc), C(h * w))
                        if kind.endswith('_kn'):  # (C*kh*kw, N*OH*OW): the batch inside each row
                            colrow = b.mul(b.add(b.mul(b.add(b.mul(b.add(b.mul(bc, C(k[0])), bi), C(k[1])), bj), C(n)), bn),
                                           C(oh * ow))
                        else:  # (N, C*kh*kw, OH*OW)
                            colrow = b.mul(b.add(b.mul(b.add(b.mul(b.add(b.mul(bn, C(c)), bc), C(k[0])), bi), C(k[1])), bj),
                                           C(oh * ow))
                        colrow = b.add(colrow, b.mul(boh, C(ow)))
                        row = b.add(img, b.sub(b.mul(b.select(row_ok, iy, C(0)), C(w)), a))  # + ow*st: the input
                        rlo, rhi = b.select(row_ok, lo, C(0)), b.select(row_ok, hi, C(0))  # (a row outside: all zero)

                        def inside(bow, _):
                            xp, cp = b.gep(src, [b.add(row, b.mul(bow, C(st[1])))]), b.gep(dst, [b.add(colrow, bow)])
                            if kind.startswith('im2col'):
                                b.store(b.load(xp), cp)
                            else:  # col2im: scatter-add the column value into the image
                                xp = b.gep(dst, [b.add(row, b.mul(bow, C(st[1])))])
                                cp = b.gep(src, [b.add(colrow, bow)])
                                b.store(b.fadd(b.load(xp), b.load(cp)), xp)
                            return []

                        def pad(bow, _):
                            b.store(zero, b.gep(dst, [b.add(colrow, bow)]))
                            return []
                        if kind.startswith('im2col'):
                            _for(b, fn, ir, C(0), rlo, [], pad, 'pl')
                        _for(b, fn, ir, rlo, rhi, [], inside, 'in')
                        if kind.startswith('im2col'):
                            _for(b, fn, ir, rhi, C(ow), [], pad, 'pr')
                        return []
                    _for(b, fn, ir, C(0), C(oh), [], body_oh, 'oh')
                    return []
                _for(b, fn, ir, C(0), C(k[1]), [], body_j, 'j')
                return []
            _for(b, fn, ir, C(0), C(k[0]), [], body_i, 'i')
            return []
        _for(b, fn, ir, C(0), C(c), [], body_c, 'c')
        return []
    _for(b, fn, ir, start, stop, [], body_n, 'n')
    b.ret_void()
    return str(mod)


def _ceil_div(b, C, a, d):
    """ceil(a / d) for an i64 a of any sign and a constant d > 0 (sdiv truncates toward zero)."""
    return b.select(b.icmp_signed('>', a, C(0)), b.sdiv(b.add(a, C(d - 1)), C(d)), b.sdiv(a, C(d)))


def _clamp(b, C, v, hi):
    """v clamped to [0, hi]."""
    v = b.select(b.icmp_signed('<', v, C(0)), C(0), v)
    return b.select(b.icmp_signed('>', v, C(hi)), C(hi), v)


def _window_loops(b, fn, ir, shape, k, st, pd, out_hw, start, stop, init, tap, done):
    """The loop nest of a pooling kernel over images [start, stop): for each output offset o, the taps of its
    window fold acc = tap(acc, ok, off) from init(o) (ok: the tap is inside the image; off: its input offset,
    clamped to a valid address), then done(o, acc)."""
    n, c, h, w = shape
    oh, ow = out_hw
    C = lambda v: ir.Constant(ir.IntType(64), v)  # noqa: E731

    def body_n(bn, _):
        def body_c(bc, _):
            img = b.mul(b.add(b.mul(bn, C(c)), bc), C(h * w))
            plane = b.mul(b.add(b.mul(bn, C(c)), bc), C(oh * ow))

            def body_oh(boh, _):
                def body_ow(bow, _):
                    o = b.add(plane, b.add(b.mul(boh, C(ow)), bow))

                    def body_i(bi, acc):
                        iy = b.sub(b.add(b.mul(boh, C(st[0])), bi), C(pd[0]))
                        row_ok = b.and_(b.icmp_signed('>=', iy, C(0)), b.icmp_signed('<', iy, C(h)))

                        def body_j(bj, acc):
                            ix = b.sub(b.add(b.mul(bow, C(st[1])), bj), C(pd[1]))
                            ok = b.and_(row_ok, b.and_(b.icmp_signed('>=', ix, C(0)), b.icmp_signed('<', ix, C(w))))
                            off = b.add(img, b.add(b.mul(b.select(row_ok, iy, C(0)), C(w)), b.select(ok, ix, C(0))))
                            return tap(acc, ok, off)
                        return _for(b, fn, ir, C(0), C(k[1]), acc, body_j, 'j')
                    done(o, _for(b, fn, ir, C(0), C(k[0]), init(o), body_i, 'i'))
                    return []
                _for(b, fn, ir, C(0), C(ow), [], body_ow, 'ow')
                return []
            _for(b, fn, ir, C(0), C(oh), [], body_oh, 'oh')
            return []
        _for(b, fn, ir, C(0), C(c), [], body_c, 'c')
        return []
    _for(b, fn, ir, start, stop, [], body_n, 'n')
    b.ret_void()


def _inside_2x2(shape, k, st, pd, out_hw):
    return tuple(k) == tuple(st) == (2, 2) and not any(pd) and 2 * out_hw[0] <= shape[2] and 2 * out_hw[1] <= shape[3]


def _build_maxpool_grad(shape, k, st, pd, out_hw, dtype, masked=False):
    """dx of max pooling: each window's gradient goes to its first maximum (row-major taps), as the reference.
    masked (windows that do not overlap: each input in at most one): dx = that times (c > 0), a ReLU's gradient
    through the mask of its input c, with every tap written (0 + g or 0 + 0, then the product, as the reference's
    two ops round it), so the windows' inputs need no zeros first."""
    import llvmlite.ir as ir
    t, i64, mod, fn, b, start, stop, ptrs = _kernel_function(dtype, 5 if masked else 4)
    if masked and _inside_2x2(shape, k, st, pd, out_hw):   # (LeNet's first at batch 600, one thread: 11.3 -> 6.7 ms)
        _maxpool_grad_relu_2x2(ir, t, mod, fn, b, start, stop, ptrs, shape, out_hw)
        return str(mod)
    gp, xp, yp, dxp = ptrs[:3] + ptrs[-1:]
    lo, zero, one = (ir.Constant(t, v) for v in (float(np.finfo(dtype).min), 0.0, 1.0))
    out = {}

    def init(o):
        out['y'], out['g'] = b.load(b.gep(yp, [o])), b.load(b.gep(gp, [o]))
        return [ir.Constant(ir.IntType(1), 0)]  # found: the window's first maximum is taken

    def tap(found, ok, off):
        v = b.select(ok, b.load(b.gep(xp, [off])), lo)
        hit = b.and_(b.not_(found[0]), b.fcmp_ordered('==', v, out['y']))
        p = b.gep(dxp, [off])
        if masked:   # (a tap outside the image: off is clamped to a valid address, stored back unchanged)
            m = b.select(b.fcmp_ordered('>', b.load(b.gep(ptrs[3], [off])), zero), one, zero)
            val = b.fmul(b.fadd(zero, b.select(hit, out['g'], zero)), m)
            b.store(b.select(ok, val, b.load(p)), p)
        else:
            b.store(b.select(b.and_(hit, ok), b.fadd(b.load(p), out['g']), b.load(p)), p)
        return [b.or_(found[0], hit)]
    _window_loops(b, fn, ir, shape, k, st, pd, out_hw, start, stop, init, tap, lambda o, acc: None)
    return str(mod)


def _build_maxpool(shape, k, st, pd, out_hw, dtype):
    """y of max pooling: each window's maximum, taps outside the input counting as the dtype's lowest value
    (the reference pads with it); NaN propagates as with np.maximum."""
    import llvmlite.ir as ir
    t, i64, mod, fn, b, start, stop, (xp, yp) = _kernel_function(dtype, 2)
    lo = ir.Constant(t, float(np.finfo(dtype).min))
    fmax = mod.declare_intrinsic('llvm.maximum', [t], ir.FunctionType(t, [t, t]))
    if _inside_2x2(shape, k, st, pd, out_hw):
        _maxpool_2x2(ir, t, mod, fn, b, start, stop, xp, yp, shape, out_hw)
        return str(mod)
    _window_loops(b, fn, ir, shape, k, st, pd, out_hw, start, stop, lambda o: [lo],
                  lambda acc, ok, off: [b.call(fmax, [acc[0], b.select(ok, b.load(b.gep(xp, [off])), lo)])],
                  lambda o, acc: b.store(acc[0], b.gep(yp, [o])))
    return str(mod)


def _rows_2x2(ir, b, fn, shape, out_hw, start, stop, emit):
    """The loop nest of a 2x2 stride-2 pooling kernel whose windows are all inside the image (LeNet's, most CNNs'),
    over images [start, stop): per output row, emit(vl, (input row 0, row 1), output row, first output) for vl =
    8 outputs at a time, then 4, then 1 (vectors: LLVM leaves _window_loops' code scalar on rows this short)."""
    n, c, h, w = shape
    oh, ow = out_hw
    C = lambda v: ir.Constant(ir.IntType(64), v)  # noqa: E731

    def body_n(bn, _):
        def body_c(bc, _):
            plane = b.add(b.mul(bn, C(c)), bc)

            def body_oh(boh, _):
                r0 = b.mul(b.add(b.mul(plane, C(h)), b.mul(boh, C(2))), C(w))
                rows, orow = (r0, b.add(r0, C(w))), b.mul(b.add(b.mul(plane, C(oh)), boh), C(ow))
                j0 = ow // 8 * 8   # (a loop that would run at most once is not emitted as one: less to compile)
                if ow // 8 == 1:
                    emit(8, rows, orow, C(0))
                elif ow // 8:
                    _for(b, fn, ir, C(0), C(ow // 8), [], lambda bj, _: emit(8, rows, orow, b.mul(bj, C(8))) or [], 'v')
                if ow - j0 >= 4:
                    emit(4, rows, orow, C(j0))
                    j0 += 4
                if ow - j0 == 1:
                    emit(1, rows, orow, C(j0))
                elif ow > j0:
                    _for(b, fn, ir, C(j0), C(ow), [], lambda bj, _: emit(1, rows, orow, bj) or [], 's')
                return []
            _for(b, fn, ir, C(0), C(oh), [], body_oh, 'oh')
            return []
        _for(b, fn, ir, C(0), C(c), [], body_c, 'c')
        return []
    _for(b, fn, ir, start, stop, [], body_n, 'n')
    b.ret_void()


def _vec(ir, b, t, p, off, vl):
    """A <vl x t> pointer at p + off."""
    return b.bitcast(b.gep(p, [off]), ir.VectorType(t, vl).as_pointer())


def _taps(ir, b, t, p, rows, j, vl):
    """The four taps (row-major) of vl windows from output j on: each row's even and odd lanes."""
    i32, two = ir.IntType(32), ir.Constant(ir.IntType(64), 2)
    out = []
    for r in rows:
        v = b.load(_vec(ir, b, t, p, b.add(r, b.mul(j, two)), 2 * vl), align=4)
        out += [b.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, vl), [2 * q + d for q in range(vl)]))
                for d in (0, 1)]
    return out


def _vmax(ir, mod, t, vl):
    name = f'llvm.maximum.v{vl}{t.intrinsic_name}'
    vt = ir.VectorType(t, vl)
    return mod.globals.get(name) or ir.Function(mod, ir.FunctionType(vt, [vt, vt]), name)


def _maxpool_2x2(ir, t, mod, fn, b, start, stop, xp, yp, shape, out_hw):
    """y of 2x2 stride-2 max pooling, windows inside the image: llvm.maximum from the first tap, as the reference
    (LeNet's first pooling at batch 600, one thread: 8.2 ms in _window_loops' scalar code, 1.7 here)."""
    def emit(vl, rows, orow, j):
        taps = _taps(ir, b, t, xp, rows, j, vl)
        acc = taps[0]
        for v in taps[1:]:
            acc = b.call(_vmax(ir, mod, t, vl), [acc, v])
        b.store(acc, _vec(ir, b, t, yp, b.add(orow, j), vl), align=4)
    _rows_2x2(ir, b, fn, shape, out_hw, start, stop, emit)


def _maxpool_grad_relu_2x2(ir, t, mod, fn, b, start, stop, ptrs, shape, out_hw):
    """_build_maxpool_grad's masked kernel for 2x2 stride-2 windows inside the image, vl windows at a time: the
    same first-maximum choice and the same (0 + g) * mask products per tap, the taps' values interleaved back
    into the two input rows."""
    gp, xp, yp, cp, dxp = ptrs
    i1, i32 = ir.IntType(1), ir.IntType(32)

    def emit(vl, rows, orow, j):
        vt = ir.VectorType(t, vl)
        zero, one = ir.Constant(vt, [0.0] * vl), ir.Constant(vt, [1.0] * vl)
        y, g = (b.load(_vec(ir, b, t, p, b.add(orow, j), vl), align=4) for p in (yp, gp))
        no = ir.Constant(ir.VectorType(i1, vl), [0] * vl)
        found, vals = no, []
        for v, m in zip(_taps(ir, b, t, xp, rows, j, vl), _taps(ir, b, t, cp, rows, j, vl)):
            hit = b.select(found, no, b.fcmp_ordered('==', v, y))   # the window's first maximum only
            found = b.or_(found, hit)
            vals.append(b.fmul(b.fadd(zero, b.select(hit, g, zero)), b.select(b.fcmp_ordered('>', m, zero), one, zero)))
        mix = ir.Constant(ir.VectorType(i32, 2 * vl), [q // 2 + (q % 2) * vl for q in range(2 * vl)])
        two = ir.Constant(ir.IntType(64), 2)
        for r, (ev, od) in zip(rows, (vals[:2], vals[2:])):
            b.store(b.shuffle_vector(ev, od, mix), _vec(ir, b, t, dxp, b.add(r, b.mul(j, two)), 2 * vl), align=4)
    _rows_2x2(ir, b, fn, shape, out_hw, start, stop, emit)


# kinds built even in a training step's first tier (runtime/tiered.py): NumPy's max-pooling gradient of LeNet's first
# layer took 57 ms at batch 600, the kernel compiles in 7-11 ms (-O0, cpu.LIGHT) and runs in 1.3
NOW = ('maxpool_grad', 'maxpool_grad_relu')


def _kernel(kind, shape, k, st, dl, pd, out_hw, dtype):
    key = (kind, shape, k, st, dl, pd, out_hw, str(dtype))
    if key not in _kernels and kind not in NOW and deferred():   # (not waiting for a compile on another thread)
        raise Deferred(kind)
    with _lock:
        kern = _kernels.get(key)
        if kern is None:
            text = _build_maxpool_grad(shape, k, st, pd, out_hw, dtype, kind == 'maxpool_grad_relu') \
                if kind.startswith('maxpool_grad') else \
                _build_maxpool(shape, k, st, pd, out_hw, dtype) if kind == 'maxpool' else \
                _build(kind, shape, k, st, dl, pd, out_hw, dtype)
            n_in = {'maxpool_grad': 3, 'maxpool_grad_relu': 4}.get(kind, 1)
            vec = kind in ('maxpool', 'maxpool_grad_relu') and _inside_2x2(shape, k, st, pd, out_hw)
            kern = _kernels[key] = Kernel(compile_kernel(text, kind + '_v' * vec), [shape[0], 1], n_in, 1, dtype)
            kern.total = int(np.prod(shape)) * k[0] * k[1]  # split over cores by the work, not the batch size
        return kern


def _or_numpy(f):
    """f, returning None (the op's NumPy form runs) where its kernel is Deferred (a first tier)."""
    @functools.wraps(f)
    def run(*args, **kw):
        try:
            return f(*args, **kw)
        except Deferred:
            return None
    return run


def _covers(shape, k, pd, out_hw):
    """Whether the only window is the whole unpadded image (LeNet's last convolution: a FullyConnected)."""
    return tuple(out_hw) == (1, 1) and not any(pd) and tuple(k) == tuple(shape[2:])


@_or_numpy
def im2col(x, k, st, dl, pd, out_hw, layout='nk', out=None):
    """Columns (N, C*kh*kw, OH*OW), or with layout 'kn' (C*kh*kw, N*OH*OW), written into `out` when given (a
    C-contiguous array of that shape and x's dtype); None when the compiled backend is off or the dtype is not
    float."""
    if not enabled() or x.dtype not in (np.float32, np.float64) or not x.flags.c_contiguous:
        return None
    n, c = x.shape[:2]
    kk, p = c * k[0] * k[1], out_hw[0] * out_hw[1]
    shape = (n, kk, p) if layout == 'nk' else (kk, n * p)
    if out is not None:
        assert out.shape == shape and out.dtype == x.dtype and out.flags.c_contiguous, (out.shape, shape)
    col = out if out is not None else np.empty(shape, x.dtype)
    if _covers(x.shape, k, pd, out_hw):   # one window, the whole image: columns are the images (no kernel to compile)
        np.copyto(col, x.reshape(n, kk, 1) if layout == 'nk' else x.reshape(n, kk).T)
        return col
    kind = 'im2col' if layout == 'nk' else 'im2col_kn'
    _kernel(kind, x.shape, tuple(k), tuple(st), tuple(dl), tuple(pd), tuple(out_hw), x.dtype)([x], [col])
    return col


@_or_numpy
def col2im(col, shape, k, st, dl, pd, out_hw, layout='nk', out=None):
    """The (N, C, H, W) image the columns (in im2col's layout) scatter-add into -- `out` when given (zeros, C-
    contiguous, that shape) -- or None (compiled backend off / not float)."""
    if not enabled() or col.dtype not in (np.float32, np.float64):
        return None
    col = np.ascontiguousarray(col)
    if out is not None:
        assert out.shape == tuple(shape) and out.dtype == col.dtype and out.flags.c_contiguous, (out.shape, shape)
    img = out if out is not None else np.zeros(shape, col.dtype)
    if _covers(shape, k, pd, out_hw):
        n, kk = shape[0], int(np.prod(shape[1:]))
        img.reshape(n, kk)[...] += col.reshape(n, kk) if layout == 'nk' else col.T
        return img
    kind = 'col2im' if layout == 'nk' else 'col2im_kn'
    _kernel(kind, tuple(shape), tuple(k), tuple(st), tuple(dl), tuple(pd), tuple(out_hw), col.dtype)([col], [img])
    return img


def maxpool_grad(g, x, y, k, st, pd, out_hw):
    """dx of max pooling (windows wholly inside the padded input), or None (backend off / not float)."""
    if not enabled() or x.dtype not in (np.float32, np.float64):
        return None
    dx = np.zeros(x.shape, x.dtype)
    args = [np.ascontiguousarray(a, dtype=x.dtype) for a in (g, x, y)]
    _kernel('maxpool_grad', x.shape, tuple(k), tuple(st), (1, 1), tuple(pd), tuple(out_hw), x.dtype)(args, [dx])
    return dx


def maxpool_grad_relu(g, x, y, c, k, st, pd, out_hw):
    """dx of max pooling times (c > 0), for windows that do not overlap (stride >= kernel), or None (backend
    off / not float / overlapping windows)."""
    if not enabled() or x.dtype not in (np.float32, np.float64) or any(s < q for s, q in zip(st, k)):
        return None
    covered = all(s == q and o * q - p >= n for s, q, o, p, n in zip(st, k, out_hw, pd, x.shape[2:]))
    dx = (np.empty if covered else np.zeros)(x.shape, x.dtype)   # (inputs no window reads: zeros)
    args = [np.ascontiguousarray(a, dtype=x.dtype) for a in (g, x, y, c)]
    _kernel('maxpool_grad_relu', x.shape, tuple(k), tuple(st), (1, 1), tuple(pd), tuple(out_hw), x.dtype)(args, [dx])
    return dx


def maxpool(x, k, st, pd, out_hw):
    """y of max pooling, or None (backend off / not float)."""
    if not enabled() or x.dtype not in (np.float32, np.float64):
        return None
    y = np.empty(x.shape[:2] + tuple(out_hw), x.dtype)
    try:
        kern = _kernel('maxpool', x.shape, tuple(k), tuple(st), (1, 1), tuple(pd), tuple(out_hw), x.dtype)
    except Deferred:   # (a first tier: NumPy's form, the ref's, with the batch split over the threads)
        return _taps_max(x, y, k, st, out_hw) if not any(pd) else None
    kern([np.ascontiguousarray(x)], [y])
    return y


def _taps_max(x, y, k, st, out_hw):
    """y = the max over each unpadded window of x, a np.maximum a kernel tap (as ops/nn.py's form) over slices of
    the batch that the threads take in turn (cpu.split: NumPy lets go of the GIL); None where a window leaves x."""
    if any((o - 1) * s + q > n for o, s, q, n in zip(out_hw, st, k, x.shape[2:])):
        return None
    taps = [(slice(i, i + st[0] * (out_hw[0] - 1) + 1, st[0]), slice(j, j + st[1] * (out_hw[1] - 1) + 1, st[1]))
            for i in range(k[0]) for j in range(k[1])]

    def part(_, lo, hi):
        xs, ys = x[lo:hi], y[lo:hi]
        np.copyto(ys, xs[(Ellipsis,) + taps[0]])
        for t in taps[1:]:
            np.maximum(ys, xs[(Ellipsis,) + t], out=ys)
    n = min(config.num_threads(), x.shape[0])
    if n > 1 and x.size >= 1 << 20:
        split(part, None, x.shape[0], n)
    else:
        part(None, 0, x.shape[0])
    return y


WARM = {'Pooling': 'maxpool', '_backward_Pooling': 'maxpool_grad', '_backward_pool_relu': 'maxpool_grad_relu'}


def warm(op_name, attrs, shapes, dtype):
    """Compile ahead (runtime/cpu.warm, on the compile thread) the window kernel that a 2-d channel-first max
    Pooling, its gradient or passes/conv_pool's _backward_pool_relu of these input shapes will ask _kernel for.
    A guess that misses only costs a compile: the op's own call compiles its key."""
    from ..ops.nn import pool_geom
    x = tuple(shapes[0 if op_name == 'Pooling' else 1])
    dtype = np.dtype(dtype)
    if op_name not in WARM or dtype not in (np.float32, np.float64) or len(x) != 4 or \
            attrs.get('pool_type') != 'max' or str(attrs.get('layout')) not in ('None', 'NCHW'):
        return
    k, st, pd, _, out = pool_geom(attrs, x)
    if WARM[op_name] != 'maxpool_grad_relu' or all(s >= q for s, q in zip(st, k)):
        _kernel(WARM[op_name], x, tuple(k), tuple(st), (1, 1), tuple(pd), tuple(out), dtype)
