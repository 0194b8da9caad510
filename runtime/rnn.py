"""Compiled time loops for the fused RNN op (graphc/ops/rnn.py): one native call runs a layer-direction's
whole sequence, each step a BLAS GEMM for the recurrence followed by a fused gate loop, with no Python
and no allocation per step. float32 only (the gate math uses runtime/cpu.py's float32 tanh/sigmoid); the
op's NumPy loops stay the reference and run whenever forward/backward here return False.

Where the gate columns divide into panels, the recurrence (and the forward's input projection) is a
register-tiled GEMM (sized to the host's AVX-512 or AVX2 registers) over weights packed once and kept between calls (`packed`). Without a reserve
(the op's `_no_reserve`: inference) the forward stores only h per step, and an LSTM's cell update runs on the
GEMM's register tiles: the gates never reach memory. Batches split across the kernel threads by rows.

Each function is `void f(i64* args)`: the CBLAS sgemm address, buffer addresses and the step count, so
the IR (and the disk-cached object code) depends only on (mode, batch, hidden size, clipping).
"""
import ctypes
import threading
import weakref

import numpy as np

from .cpu import Emit, _for, compile_kernel, enabled, vector_floats

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_lock = threading.Lock()
_fns = {}   # (direction, mode, N, H, clip, BLAS int bits) -> ctypes function


def _blas():
    from .native import blas
    return blas()


_threads = []   # [OpenBLAS's openblas_set_num_threads_local of the library blas() uses, or None]


def _set_threads(n):
    """Set OpenBLAS's thread count, returning the previous one (None where that library has no such call)."""
    if not _threads:
        from .native import blas_library
        fn = getattr(blas_library(), 'openblas_set_num_threads_local', None)
        if fn is not None:
            fn.restype, fn.argtypes = ctypes.c_int, [ctypes.c_int]
        _threads.append(fn)
    return _threads[0](n) if _threads[0] is not None else None


def _usable(*arrays):
    return enabled() and all(x is None or x.dtype == np.float32 and x.size for x in arrays) and \
        _blas() is not None


# ---------------------------------------------------------------- IR
class _Fn:
    """An empty `void kernel(i64* args)` with helpers to read its arguments, address float buffers, call
    BLAS and emit row functions (their pointers are noalias, so the gate loops vectorize)."""

    def __init__(self, bits):
        import llvmlite.ir as ir
        self.ir = ir
        self.t, self.i64, self.i32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
        self.it = ir.IntType(bits)
        self.mod = ir.Module(name='graphc_rnn')
        self.fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [self.i64.as_pointer()]), name='kernel')
        self.b = ir.IRBuilder(self.fn.append_basic_block('entry'))
        self.args = self.fn.args[0]
        self.mm = {}

    def C(self, v):
        return self.ir.Constant(self.i64, v)

    def arg(self, k):
        return self.b.load(self.b.gep(self.args, [self.C(k)]))

    def ptr(self, k):
        return self.b.inttoptr(self.arg(k), self.t.as_pointer())

    def at(self, p, off):
        return self.b.gep(p, [off if not isinstance(off, int) else self.C(off)])

    def gemm(self, addr, tb, m, n, k, a, lda, bm, ldb, beta, c, ldc):
        """C = A @ op(B) + beta * C (row-major, A not transposed; m an i64 value)."""
        ir, b, it = self.ir, self.b, self.it
        tp = self.t.as_pointer()
        ty = ir.FunctionType(ir.VoidType(), [self.i32, self.i32, self.i32, it, it, it, self.t, tp, it, tp, it,
                                             self.t, tp, it])
        I = lambda v: ir.Constant(it, v)  # noqa: E731
        m = b.trunc(m, it) if it.width < 64 else m
        b.call(b.inttoptr(addr, ty.as_pointer()),
               [ir.Constant(self.i32, ROW_MAJOR), ir.Constant(self.i32, NO_TRANS),
                ir.Constant(self.i32, TRANS if tb else NO_TRANS), m, I(n), I(k), ir.Constant(self.t, 1.0), a,
                I(lda), bm, I(ldb), ir.Constant(self.t, beta), c, I(ldc)])

    def packed_gemm(self, beta, m, n, k, a, lda, bp, c, ldc, init=None, ldi=None, then=None, cell=None):
        """C = A @ B + beta * C (row-major, m x n, inner k; beta 0 or 1; m an i64 value) with B packed by `pack`
        into panels of PANEL columns: a register tile of TILE rows x PANEL columns accumulates over k in vector
        registers. At the recurrence's shapes (32 x 256 @ 256 x 1024) it runs at 1.5x OpenBLAS's sgemm, which
        packs B anew on every call; n must divide by PANEL (`packs`). With init, beta * C reads init's rows,
        ldi apart, instead (ldi 0: a bias row added to every row). then (a2, lda2, bp2, k2): + A2 @ B2 in the same
        register tiles (the input projection and the recurrence of a step in one pass over C). cell (c_prev, c, h,
        H, clip): B's columns are `gate_order`'s and the LSTM cell update runs on the tiles in registers
        (C is not written)."""
        key = f'mm{beta}{"x2" if then else ""}{"cell" if cell else ""}'
        fn = self.mm.get(key)
        if fn is None:
            fn = self.mm[key] = _mm_function(self, beta, key, then is not None, cell[4] if cell else False)
        C = self.C
        self.b.call(fn, [c, a, bp, m, C(k), C(n // PANEL), C(lda), C(ldc), c if init is None else init,
                         C(ldc if init is None else ldi)]
                    + ([then[0], then[2], C(then[3]), C(then[1])] if then else [])
                    + ([cell[0], cell[1], cell[2], C(cell[3])] if cell else []))

    def steps(self, T, body):
        """for s in [0, T): body(s)."""
        _for(self.b, self.fn, self.ir, self.C(0), T, [], lambda s, _: body(s) or [], 's')

    def row_fn(self, names, H, body):
        """`void row(float* noalias ...)`: for j in [0, H): body(e, ld, st, j) with ld(name) and st(name, v)."""
        ir = self.ir
        fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [self.t.as_pointer()] * len(names)),
                         name=f'row{len(self.mod.functions)}')
        fn.linkage = 'internal'
        for a in fn.args:
            a.add_attribute('noalias')
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        e = Emit(ir, b, self.t, self.mod)
        P = dict(zip(names, fn.args))

        def inner(j, _):
            body(e, lambda k: b.load(b.gep(P[k], [j])), lambda k, v: b.store(v, b.gep(P[k], [j])), j)
            return []
        _for(b, fn, ir, ir.Constant(self.i64, 0), ir.Constant(self.i64, H), [], inner, 'j')
        b.ret_void()
        return fn

    def rows(self, fn, N, ptrs):
        """for n in [0, N) (an i64 value): fn(*[p + n * stride]) for (p, stride) in ptrs (stride 0: the same row)."""
        b = self.b

        def body(n, _):
            b.call(fn, [p if not st else b.gep(p, [b.mul(n, self.C(st))]) for p, st in ptrs])
            return []
        _for(b, self.fn, self.ir, self.C(0), N, [], body, 'n')

    def pick(self, cond, x, y):
        return self.b.select(cond, x, y)

    def text(self):
        self.b.ret_void()
        return str(self.mod)


# the i64 words a loop function reads, by name (0 where unused): the CBLAS sgemm address, buffer addresses,
# the step count T, whether the direction runs reversed, and M, the batch rows it runs (a slice of the N rows
# its IR strides over: the rows of a batch are independent, so slices run on separate threads). With `x` the
# forward projects the input too: each step's gates start as xb + x[t] @ wi^T (wi^T packed).
FWD_WORDS = ('gemm', 'xg', 'wh', 'h0', 'c0', 'hs', 'cs', 'hn', 'T', 'rev', 'bh', 'hh', 'packed', 'M', 'x', 'wi', 'xb')
BWD_WORDS = ('gemm', 'gates', 'hs', 'h0', 'dhs', 'dh', 'wh', 'dxg', 'T', 'rev', 'cs', 'c0', 'dc', 'hn', 'dhh', 'packed',
             'M')
# floats per vector register, columns per packed panel (an LSTM cell's 4 gates of VEC units), rows per register
# tile: TILE x 4 accumulators, TILE broadcasts of A and one B vector in the host's 32 AVX-512 or 16 AVX2 registers
# (on AVX2, Zen 3, the layer forward at T50 B32 H256, 1 thread: 4 x 32 tiles 59 ms, 3 x 32 14.4, 2 x 32 14.7, 1 x 32
# 24.4; AVX-512's 4 x 64 with all of B's vectors loaded first 35 ms; PyTorch 17)
VEC = vector_floats()
PANEL, TILE = 4 * VEC, 4 if VEC == 16 else 3
CELL = True      # without a reserve, the LSTM cell update on the recurrence GEMM's register tiles (tests switch it)
SPLIT = 1 << 22   # multiply-adds of a loop (T N H G H) from which its batch splits across the threads


def packs(n):
    """Whether packed_gemm takes a product with n columns (else BLAS runs it)."""
    return n % PANEL == 0


def pack(b):
    """B (k, n) as packed_gemm reads it: (n / PANEL, k, PANEL), each panel's rows contiguous, 64-byte aligned."""
    k, n = b.shape
    raw = np.empty(k * n + 16, np.float32)   # (room to align to 64 bytes: up to 15 floats)
    off = (-raw.ctypes.data % 64) // 4
    out = raw[off:off + k * n].reshape(n // PANEL, k, PANEL)
    if b.T.flags.c_contiguous:  # B = W^T (the forward's weights): read W's rows in place (b.reshape would copy)
        out[...] = b.T.reshape(n // PANEL, PANEL, k).transpose(0, 2, 1)
    else:
        out[...] = b.reshape(k, n // PANEL, PANEL).transpose(1, 0, 2)
    return out


_packs = {}   # (address, shape, transposed, ordered) -> (weakref to the array owning it, WRITES then, the pack)
PACKS = 16    # entries kept at most


def _owner(x):
    while isinstance(x.base, np.ndarray):
        x = x.base
    return x


def packed(w, t, order=None):
    """pack(w.T if t else w) kept between calls: an inference plan passes the same weights (views of the hoisted
    flat parameter vector) every call. An entry serves while the array owning w's memory lives (so no other
    array has its address) and WRITES (bumped by every in-place write through the API: a Trainer step,
    set_data, x[:] = ...) has not moved since it was made, as runtime/onednn.py's packed FullyConnected. Eager
    calls pass a new array each time: entries of arrays gone are dropped. order: gate_order (the fused LSTM
    cell's columns)."""
    from ..ndarray.ndarray import WRITES
    key, own = (_p(w), w.shape, t, order is not None), _owner(w)
    e = _packs.get(key)
    if e is None or e[0]() is not own or e[1] != WRITES[0]:
        u = w if order is None else w[order]   # (order: w's rows, the columns of w.T, in that order)
        e = (weakref.ref(own), WRITES[0], pack(u.T if t else u))
        with _lock:   # (plans run on several threads)
            dead = [k for k, v in _packs.items() if v[0]() is None]
            for k in dead or list(_packs)[:len(_packs) + 1 - PACKS]:
                del _packs[k]
            _packs[key] = e
    return e[2]


def gate_order(H):
    """The gate columns (of G*H = 4*H) in the order the fused LSTM cell packs them: per PANEL, the i, f, g and o
    gates of VEC hidden units, so a register tile holds whole cells."""
    return np.arange(4 * H).reshape(4, H // VEC, VEC).transpose(1, 0, 2).ravel()


class _VecEmit(Emit):
    """Emit's scalar math on <VEC x float> values (the gate math on register tiles)."""

    def __init__(self, ir, b, module):
        super().__init__(ir, b, ir.VectorType(ir.FloatType(), VEC), module)
        self.it = ir.VectorType(ir.IntType(32), VEC)

    def intrinsic(self, name, *args):
        full = f'{name}.v{VEC}f32'
        fn = self.module.globals.get(full) or self.ir.Function(
            self.module, self.ir.FunctionType(self.t, [self.t] * len(args)), name=full)
        return self.b.call(fn, list(args))


def _mm_function(F, beta, name, two=False, cell=False):
    """`void mm(float* C, float* A, float* Bp, i64 m, i64 k, i64 panels, i64 lda, i64 ldc, float* I, i64 ldi)`,
    internal to F's module: for each panel, for each TILE rows (then each row left), TILE x PANEL accumulators
    over k (FMA with A broadcast), starting from zero (beta 0) or from I's rows, ldi apart (beta 1: I = C
    accumulates; ldi 0: a bias row). two: then over (float* A2, float* Bp2, i64 k2, i64 lda2) too, the
    accumulators kept in registers between the two products. cell (False, None or a clip): then over (float* Cp,
    float* Cn, float* Hn, i64 ldh) too: per row, a tile's V vectors are the LSTM gates of VEC hidden units
    (gate_order), c = f * Cp + i * g and h = o * tanh(c) go to Cn and Hn instead of C."""
    ir, f, i64 = F.ir, F.t, F.i64
    vec, fp = ir.VectorType(f, VEC), f.as_pointer()
    cell_on = cell is not False
    fn = ir.Function(F.mod, ir.FunctionType(ir.VoidType(), [fp, fp, fp] + [i64] * 5 + [fp, i64]
                                            + ([fp, fp, i64, i64] if two else []) + ([fp] * 3 + [i64] if cell_on else [])),
                     name=name)
    fn.linkage = 'internal'
    for x in fn.args[1:3] + (fn.args[10:12] if two else ()):   # (not C: I may be C)
        x.add_attribute('noalias')
    C, A, Bp, M, K, P, lda, ldc, Init, ldi = fn.args[:10]
    products = [(A, Bp, K, lda)] + ([tuple(fn.args[10:14])] if two else [])
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    fma = F.mod.globals.get(f'llvm.fma.v{VEC}f32') or ir.Function(F.mod, ir.FunctionType(vec, [vec] * 3),
                                                                    name=f'llvm.fma.v{VEC}f32')
    c = F.C
    V = PANEL // VEC
    undef, splat = ir.Constant(vec, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), VEC), [0] * VEC)
    vp = lambda p: b.bitcast(p, vec.as_pointer())  # noqa: E731

    def panel(p, _):
        off = b.mul(p, c(PANEL))
        cp, ip = b.gep(C, [off]), b.gep(Init, [off])

        def tile(r, R):   # rows r .. r + R - 1
            crow = [b.gep(cp, [b.mul(b.add(r, c(i)), ldc)]) for i in range(R)]
            irow = [b.gep(ip, [b.mul(b.add(r, c(i)), ldi)]) for i in range(R)]
            acc = [b.load(vp(b.gep(irow[i], [c(v * VEC)])), align=4) if beta else
                   ir.Constant(vec, [0.0] * VEC) for i in range(R) for v in range(V)]
            for q, (Aq, Bq, Kq, ldq) in enumerate(products):
                arow = [b.gep(Aq, [b.mul(b.add(r, c(i)), ldq)]) for i in range(R)]
                bp = b.gep(Bq, [b.mul(p, b.mul(Kq, c(PANEL)))])

                def inner(k, acc, arow=arow, bp=bp):   # (the R broadcasts live, one B vector at a time)
                    bk = b.gep(bp, [b.mul(k, c(PANEL))])
                    a = [b.shuffle_vector(b.insert_element(undef, b.load(b.gep(arow[i], [k])),
                                                           ir.Constant(ir.IntType(32), 0)), undef, splat) for i in range(R)]
                    out = list(acc)
                    for v in range(V):
                        bv = b.load(vp(b.gep(bk, [c(v * VEC)])), align=64)
                        for i in range(R):
                            out[i * V + v] = b.call(fma, [a[i], bv, acc[i * V + v]])
                    return out
                acc = _for(b, fn, ir, c(0), Kq, acc, inner, f'k{R}_{q}')
            if cell_on:
                cprev, cn, hn, ldh = fn.args[-4:]
                e = _VecEmit(ir, b, F.mod)
                for i in range(R):
                    at = b.add(b.mul(b.add(r, c(i)), ldh), b.mul(p, c(VEC)))
                    ig, fg, og = (_sigmoid(e, acc[i * V + k]) for k in (0, 1, 3))
                    ct = e.fma(fg, b.load(vp(b.gep(cprev, [at])), align=4), b.fmul(ig, e.tanh(acc[i * V + 2])))
                    ct = _clipped(e, ct, cell) if cell is not None else ct
                    b.store(ct, vp(b.gep(cn, [at])), align=4)
                    b.store(b.fmul(og, e.tanh(ct)), vp(b.gep(hn, [at])), align=4)
                return []
            for i in range(R):
                for v in range(V):
                    b.store(acc[i * V + v], vp(b.gep(crow[i], [c(v * VEC)])), align=4)
            return []
        full = b.sdiv(M, c(TILE))
        _for(b, fn, ir, c(0), full, [], lambda rb, _: tile(b.mul(rb, c(TILE)), TILE), 'r')
        _for(b, fn, ir, b.mul(full, c(TILE)), M, [], lambda r, _: tile(r, 1), 'q')
        return []
    _for(b, fn, ir, c(0), P, [], panel, 'p')
    b.ret_void()
    return fn


def _time(F, s, T, rev, backward):
    """(t, previous step's t, is this the forward's first step) for loop counter s. The forward walks
    t = s (or T-1-s reversed); the backward walks the forward's steps last first."""
    b, C = F.b, F.C
    last = b.sub(T, C(1))
    fwd_t = b.sub(last, s) if backward else s          # the forward's step counter
    t = F.pick(rev, b.sub(last, fwd_t), fwd_t)
    tp = F.pick(rev, b.add(t, C(1)), b.sub(t, C(1)))
    return t, tp, b.icmp_signed('==', fwd_t, C(0))


def _sigmoid(e, x):
    """1 / (1 + exp(-x)) with one division where Emit's sigmoid (exact in both halves) has two, and exp on its
    normal range only (below it sigmoid is under 1e-38 anyway): within 3 ulp, NaN kept. The gate rows run five
    of these and tanh per hidden unit: their cost is the divisions."""
    ex = e.exp_bounded(e.neg(e.abs(x)), -87.0, 0.0)
    r = e.div(e.c(1.0), e.add(e.c(1.0), ex))
    return e.where(e.isnan(x), x, e.where(e.cmp('>=', x, e.c(0.0)), r, e.mul(ex, r)))


def _clipped(e, c, clip):
    lo, hi, nan = clip
    f, b = e.c, e.b
    if nan:   # NaN becomes the lower bound (maxnum ignores NaN), as np.fmin(np.fmax(c, lo), hi)
        return e.intrinsic('llvm.minnum', e.intrinsic('llvm.maxnum', c, f(lo)), f(hi))
    c = b.select(b.fcmp_ordered('<', c, f(lo)), f(lo), c)
    return b.select(b.fcmp_ordered('>', c, f(hi)), f(hi), c)


def _forward_ir(mode, N, H, clip, bits, I, lean=False, cell=False):
    """The forward loop over M of N batch rows; I > 0: with the input projection (I inputs per row). lean (no
    reserve): the gate activations are not stored, c alternates between two buffers (cs[t & 1]), GRU's hn and,
    with I, the gates use one step's buffer: only h is kept for every step. cell (LSTM, lean, I): the cell update
    runs on the GEMM's register tiles, whose gate columns are gate_order's."""
    F = _Fn(bits)
    b, C = F.b, F.C
    G = {'lstm': 4, 'gru': 3}.get(mode, 1)
    W = FWD_WORDS.index
    gemm, xg, wh, h0, hs, T = F.arg(W('gemm')), F.ptr(W('xg')), F.ptr(W('wh')), F.ptr(W('h0')), F.ptr(W('hs')), \
        F.arg(W('T'))
    M = F.arg(W('M'))
    rev = b.icmp_signed('!=', F.arg(W('rev')), C(0))
    NH, GH = N * H, G * H
    if mode == 'lstm':
        c0, cs = F.ptr(W('c0')), F.ptr(W('cs'))

        def body(e, ld, st, j):
            i, fg, o = (_sigmoid(e, ld(k)) for k in ('i', 'f', 'o'))
            gg = e.tanh(ld('g'))
            for k, v in zip('ifgo', (i, fg, gg, o)) if not lean else ():
                st(k, v)
            c = e.fma(fg, ld('cp'), e.b.fmul(i, gg))
            c = _clipped(e, c, clip) if clip is not None else c
            st('c', c)
            st('h', e.b.fmul(o, e.tanh(c)))
        row = F.row_fn(['i', 'f', 'g', 'o', 'cp', 'c', 'h'], H, body)
    elif mode == 'gru':
        hn_all, bh, hh = F.ptr(W('hn')), F.ptr(W('bh')), F.ptr(W('hh'))

        def body(e, ld, st, j):
            fb = e.b
            r, z = (_sigmoid(e, fb.fadd(ld('x' + k), fb.fadd(ld('h' + k), ld('b' + k)))) for k in 'rz')
            hn = fb.fadd(ld('hn'), ld('bn'))
            n = e.tanh(fb.fadd(ld('xn'), fb.fmul(r, hn)))
            for k, v in (('xr', r), ('xz', z), ('xn', n)) if not lean else ():
                st(k, v)
            st('hno', hn)
            st('h', e.fma(z, fb.fsub(ld('hp'), n), n))
        row = F.row_fn(['xr', 'xz', 'xn', 'hr', 'hz', 'hn', 'br', 'bz', 'bn', 'hp', 'hno', 'h'], H, body)
    else:
        row = F.row_fn(['x', 'h'], H, lambda e, ld, st, j: st('h', e.tanh(ld('x')) if mode == 'rnn_tanh'
                                                               else e.relu(ld('x'))))

    wp = F.ptr(W('packed')) if packs(GH) else None   # Wh^T packed (forward(): `packed`)

    def recur(beta, a, c):   # c = a @ Wh^T + beta * c, a: (M, H), c: (M, GH)
        if wp is not None:
            return F.packed_gemm(beta, M, GH, H, a, H, wp, c, GH)
        F.gemm(gemm, True, M, GH, H, a, H, wh, H, float(beta), c, GH)

    def step(s):
        t, tp, first = _time(F, s, T, rev, False)
        tc = (lambda u: b.and_(u, C(1))) if lean else (lambda u: u)   # c's buffer of step u
        hp = F.pick(first, h0, F.at(hs, b.mul(tp, C(NH))))
        g = xg if lean and I else F.at(xg, b.mul(t, C(N * GH)))
        ht = F.at(hs, b.mul(t, C(NH)))
        gates = [(F.at(g, k * H), GH) for k in range(G)]
        fused = I and mode != 'gru'   # g = xb + x[t] @ wi^T (+ hp @ Wh^T in the same pass: the fused forms)
        on_tiles = None
        if cell:
            cp = F.pick(first, c0, F.at(cs, b.mul(tc(tp), C(NH))))
            on_tiles = (cp, F.at(cs, b.mul(tc(t), C(NH))), ht, H, clip)
        if I:
            F.packed_gemm(1, M, GH, I, F.at(F.ptr(W('x')), b.mul(t, C(N * I))), I, F.ptr(W('wi')), g, GH,
                          F.ptr(W('xb')), 0, then=(hp, H, wp, H) if fused else None, cell=on_tiles)
        if mode == 'lstm':
            if not fused:
                recur(1, hp, g)
            if not cell:
                cp = F.pick(first, c0, F.at(cs, b.mul(tc(tp), C(NH))))
                F.rows(row, M, gates + [(cp, H), (F.at(cs, b.mul(tc(t), C(NH))), H), (ht, H)])
        elif mode == 'gru':
            recur(0, hp, hh)
            F.rows(row, M, gates + [(F.at(hh, k * H), GH) for k in range(3)] + [(F.at(bh, k * H), 0) for k in range(3)]
                   + [(hp, H), (hn_all if lean else F.at(hn_all, b.mul(t, C(NH))), H), (ht, H)])
        else:
            if not fused:
                recur(1, hp, g)
            F.rows(row, M, gates + [(ht, H)])
    F.steps(T, step)
    return F.text()


def _backward_ir(mode, N, H, clip, bits):
    F = _Fn(bits)
    b, C = F.b, F.C
    G = {'lstm': 4, 'gru': 3}.get(mode, 1)
    W = BWD_WORDS.index
    gemm, T, rev, M = F.arg(W('gemm')), F.arg(W('T')), b.icmp_signed('!=', F.arg(W('rev')), C(0)), F.arg(W('M'))
    gates, hs, h0, dhs, dh, wh, dxg = (F.ptr(W(k)) for k in ('gates', 'hs', 'h0', 'dhs', 'dh', 'wh', 'dxg'))
    NH, GH = N * H, G * H

    def dsig(e, y):
        return e.b.fmul(y, e.b.fsub(e.c(1.0), y))
    if mode == 'lstm':
        cs, c0, dc = F.ptr(W('cs')), F.ptr(W('c0')), F.ptr(W('dc'))

        def body(e, ld, st, j):
            fb, one = e.b, e.c(1.0)
            dht = fb.fadd(ld('dy'), ld('dh'))
            i, fg, gg, o, c = (ld(k) for k in ('i', 'f', 'g', 'o', 'c'))
            tc = e.tanh(c)
            dct = fb.fadd(ld('dc'), fb.fmul(fb.fmul(dht, o), fb.fsub(one, fb.fmul(tc, tc))))
            if clip is not None:  # clipped cells pass no gradient
                inside = fb.and_(fb.fcmp_ordered('>', c, e.c(clip[0])), fb.fcmp_ordered('<', c, e.c(clip[1])))
                dct = fb.select(inside, dct, e.c(0.0))
            st('di', fb.fmul(fb.fmul(dct, gg), dsig(e, i)))
            st('df', fb.fmul(fb.fmul(dct, ld('cp')), dsig(e, fg)))
            st('dg', fb.fmul(fb.fmul(dct, i), fb.fsub(one, fb.fmul(gg, gg))))
            st('do', fb.fmul(fb.fmul(dht, tc), dsig(e, o)))
            st('dc', fb.fmul(dct, fg))
        row = F.row_fn(['i', 'f', 'g', 'o', 'c', 'cp', 'dy', 'dh', 'dc', 'di', 'df', 'dg', 'do'], H, body)
    elif mode == 'gru':
        hn_all, dhh = F.ptr(W('hn')), F.ptr(W('dhh'))

        def body(e, ld, st, j):
            fb, one = e.b, e.c(1.0)
            dht = fb.fadd(ld('dy'), ld('dh'))
            r, z, n = ld('r'), ld('z'), ld('n')
            dn = fb.fmul(fb.fmul(dht, fb.fsub(one, z)), fb.fsub(one, fb.fmul(n, n)))
            dz = fb.fmul(fb.fmul(dht, fb.fsub(ld('hp'), n)), dsig(e, z))
            dr = fb.fmul(fb.fmul(dn, ld('hn')), dsig(e, r))
            for k, v in (('dr', dr), ('dz', dz), ('dn', dn), ('er', dr), ('ez', dz), ('en', fb.fmul(dn, r))):
                st(k, v)
            st('dh', fb.fmul(dht, z))   # the direct path h' = ... + z * h; the GEMM adds the rest
        row = F.row_fn(['r', 'z', 'n', 'hn', 'hp', 'dy', 'dh', 'dr', 'dz', 'dn', 'er', 'ez', 'en'], H, body)
    else:
        def body(e, ld, st, j):
            fb, h, dht = e.b, ld('h'), e.b.fadd(ld('dy'), ld('dh'))
            st('d', fb.fmul(dht, fb.fsub(e.c(1.0), fb.fmul(h, h))) if mode == 'rnn_tanh' else
               fb.select(fb.fcmp_ordered('>', h, e.c(0.0)), dht, e.c(0.0)))
        row = F.row_fn(['h', 'dy', 'dh', 'd'], H, body)

    wp = F.ptr(W('packed')) if packs(H) else None   # Wh packed (backward(): `packed`)

    def recur(beta, d):   # dh = d @ Wh + beta * dh, d: (M, GH)
        if wp is not None:
            return F.packed_gemm(beta, M, H, GH, d, GH, wp, dh, H)
        F.gemm(gemm, False, M, H, GH, d, GH, wh, H, float(beta), dh, H)

    def step(s):
        t, tp, first = _time(F, s, T, rev, True)
        g = F.at(gates, b.mul(t, C(N * GH)))
        d = F.at(dxg, b.mul(t, C(N * GH)))
        dy = F.at(dhs, b.mul(t, C(NH)))
        parts = lambda p, w: [(F.at(p, k * H), w) for k in range(G)]  # noqa: E731
        if mode == 'lstm':
            cp = F.pick(first, c0, F.at(cs, b.mul(tp, C(NH))))
            F.rows(row, M, parts(g, GH) + [(F.at(cs, b.mul(t, C(NH))), H), (cp, H), (dy, H), (dh, H), (dc, H)]
                   + parts(d, GH))
            recur(0, d)
        elif mode == 'gru':
            hp = F.pick(first, h0, F.at(hs, b.mul(tp, C(NH))))
            d2 = F.at(dhh, b.mul(t, C(N * GH)))
            F.rows(row, M, parts(g, GH) + [(F.at(hn_all, b.mul(t, C(NH))), H), (hp, H), (dy, H), (dh, H)]
                   + parts(d, GH) + parts(d2, GH))
            recur(1, d2)
        else:
            F.rows(row, M, [(F.at(hs, b.mul(t, C(NH))), H), (dy, H), (dh, H), (d, GH)])
            recur(0, d)
    F.steps(T, step)
    return F.text()


def _function(kind, mode, N, H, clip, I=0, lean=False, cell=False):
    bits = _blas()[2]
    key = (kind, mode, N, H, clip, bits, I, lean, cell)
    with _lock:
        if key not in _fns:
            text = _forward_ir(mode, N, H, clip, bits, I, lean, cell) if kind == 'fwd' else \
                _backward_ir(mode, N, H, clip, bits)
            _fns[key] = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(compile_kernel(text, 'rnn'))
        return _fns[key]


def _call(fn, words):
    """Run a loop with single-threaded BLAS: its GEMMs are small (batch rows) and OpenBLAS's thread hand-off
    per call costs more than it gains once the cores are shared (3x slower steps measured at load 3 on 2 cores)."""
    arr = (ctypes.c_int64 * len(words))(*[int(w) for w in words])
    prev = _set_threads(1)
    try:
        fn(ctypes.addressof(arr))
    finally:
        if prev is not None and prev != 1:
            _set_threads(prev)


def chunks(N, work):
    """(first row, rows) slices of a batch of N for the threads (config.num_threads()): one slice below SPLIT
    multiply-adds, else one per thread, whole register tiles where N allows."""
    from .cpu import _threads
    k = min(_threads(), -(-N // TILE)) if work >= SPLIT else 1
    size = -(-N // max(k, 1))
    size = -(-size // TILE) * TILE if size > TILE else size
    return [(s, min(size, N - s)) for s in range(0, N, size)]


def _run(fn, names, w, widths, N, work):
    """fn over the batch's slices, the last on this thread: each slice's words have its rows' addresses
    (widths: floats per batch row of each sliced buffer; the others are shared) and M, its row count."""
    from .cpu import _pool
    parts = [_words(names, **{**w, **{k: w[k] + 4 * n0 * r for k, r in widths.items() if w.get(k)}, 'M': m})
             for n0, m in chunks(N, work)]
    rest = [_pool().submit(_call, fn, p) for p in parts[:-1]]
    _call(fn, parts[-1])
    for f in rest:
        f.result()


def _p(x):
    assert x.flags.c_contiguous and x.dtype == np.float32
    return x.__array_interface__['data'][0]


def _clip(a):
    lo = a['lstm_state_clip_min']
    return None if lo is None else (float(lo), float(a['lstm_state_clip_max']), bool(a['lstm_state_clip_nan']))


# ---------------------------------------------------------------- entry points (see ops/rnn.py)
def _words(names, **w):
    return [w.get(k, 0) for k in names]


def forward(a, xg, wh, bh, h0, c0, v, reverse, proj=None):
    """Run one layer-direction forward natively, returning (h_T, c_T or None), or return False. proj (x (T*N, I),
    wi (G*H, I), xb (G*H,)): xg is to be x @ wi^T + xb first; the loop computes it step by step where its GEMM
    packs, else NumPy does before it. xg None: no reserve (v has only 'h'; the op's `_no_reserve`)."""
    if not _usable(xg, wh, h0, c0):
        return False
    mode, lean = a['mode'], xg is None
    T, N, H = v['h'].shape
    GH = wh.shape[0]
    wh, h0 = np.ascontiguousarray(wh), np.ascontiguousarray(h0)
    I, keep = 0, []
    fuse = proj is not None and packs(GH)
    cell = CELL and lean and fuse and mode == 'lstm'   # the cell update on the GEMM's register tiles
    order = gate_order(H) if cell else None
    if lean:   # one step's gates where the loop projects the input, else all; two steps' c; one step's hn
        xg = np.empty((1 if fuse else T, N, GH), np.float32)
        v = dict(v, c=np.empty((2, N, H), np.float32), hn=np.empty((1, N, H), np.float32))
    w = dict(gemm=_blas()[0], xg=_p(xg), wh=_p(wh), h0=_p(h0), hs=_p(v['h']), T=T, rev=int(reverse))
    if proj is not None:
        x, wi, xb = (np.ascontiguousarray(q, np.float32) for q in proj)
        if fuse:
            I = x.shape[1]
            xb = xb if order is None else np.ascontiguousarray(xb[order])
            keep = [x, xb, packed(wi, True, order)]
            w.update(x=_p(x), xb=_p(xb), wi=_p(keep[2]))
        else:
            np.matmul(x, wi.T, out=xg.reshape(T * N, GH))
            xg += xb
    if mode == 'lstm':
        c0 = np.ascontiguousarray(c0)
        w.update(c0=_p(c0), cs=_p(v['c']))
    elif mode == 'gru':
        bh = np.ascontiguousarray(bh)
        hh = np.empty((N, GH), np.float32)
        w.update(hn=_p(v['hn']), bh=_p(bh), hh=_p(hh))
    if packs(GH):
        keep.append(packed(wh, True, order))
        w['packed'] = _p(keep[-1])
    widths = dict(xg=GH, h0=H, c0=H, hs=H, cs=H, hn=H, hh=GH, x=I)
    _run(_function('fwd', mode, N, H, _clip(a), I, lean, cell), FWD_WORDS, w, widths, N, T * N * H * GH)
    last = 0 if reverse else T - 1
    return v['h'][last], (v['c'][last & 1 if lean else last] if mode == 'lstm' else None)


def backward(a, dhs, dh, dc, wh, h0, c0, v, reverse, dxg, dhh):
    """Run one layer-direction backward natively (True), or return False."""
    if not _usable(dhs, dh, dc, wh, h0, c0, dxg):
        return False
    mode = a['mode']
    T, N, H = dhs.shape
    GH = dxg.shape[2]
    if not dh.flags.c_contiguous or dc is not None and not dc.flags.c_contiguous:
        return False
    wh, h0 = np.ascontiguousarray(wh), np.ascontiguousarray(h0)
    gates = v.get('gates', dxg)   # plain RNN: the kernel reads only h
    w = dict(gemm=_blas()[0], gates=_p(gates), hs=_p(v['h']), h0=_p(h0), dhs=_p(dhs), dh=_p(dh), wh=_p(wh),
             dxg=_p(dxg), T=T, rev=int(reverse))
    if mode == 'lstm':
        c0 = np.ascontiguousarray(c0)
        w.update(cs=_p(v['c']), c0=_p(c0), dc=_p(dc))
    elif mode == 'gru':
        w.update(hn=_p(v['hn']), dhh=_p(dhh))
    keep = packed(wh, False) if packs(H) else None
    if keep is not None:
        w['packed'] = _p(keep)
    widths = dict(gates=GH, hs=H, h0=H, dhs=H, dh=H, dxg=GH, cs=H, c0=H, dc=H, hn=H, dhh=GH)
    _run(_function('bwd', mode, N, H, _clip(a)), BWD_WORDS, w, widths, N, T * N * H * GH)
    return True
