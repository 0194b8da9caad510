"""Native plan segments: a run of compiled steps (fused kernels, GEMMs through the BLAS NumPy links,
bias fills, reshapes as pointer aliases) executes in one ctypes call into a small step interpreter
compiled once with llvmlite, so a small model pays the Python cost of one call instead of one per op.

A segment's steps are rows of 16 int64 words; buffers are addressed through a table of pointers
(`bufs`) that the plan fills before each call (inputs, parameters, fresh outputs) while the
intermediates live in one arena the plan owns.
"""
import ctypes
import glob
import os

import numpy as np

from .. import config

KERNEL, SGEMM, DGEMM, ALIAS, ROWFILL, SGEMV, DGEMV, DNNL_SGEMM = range(8)
WORDS = 16
ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112

_blas = []      # [(sgemm address, dgemm address, int bits) or None], found once
_blas_lib = []  # [the ctypes library those addresses are in]
_exec = []      # [the step interpreter as a ctypes function]
_dnnl = []      # [oneDNN's dnnl_sgemm address or None], found once
_gemv_nt = []   # [graphc_gemv_nt's address]


def _blas_libraries():
    """Shared libraries that may hold NumPy's BLAS: its bundled OpenBLAS first, then the system's
    (a generator: the slow system search runs only when the bundled one is not there)."""
    import ctypes.util
    npdir = os.path.dirname(np.__file__)
    yield from sorted(glob.glob(os.path.join(npdir, '..', 'numpy.libs', '*openblas*')))
    yield from sorted(glob.glob(os.path.join(npdir, '.libs', '*openblas*')))
    try:
        import scipy_openblas64
        yield from sorted(glob.glob(os.path.join(os.path.dirname(scipy_openblas64.__file__), 'lib', '*.so*')))
    except ImportError:
        pass
    for name in ('openblas', 'cblas', 'blas'):
        p = ctypes.util.find_library(name)
        if p:
            yield p


# (sgemm, dgemm, width of the integer arguments): ILP64 builds carry a 64_ suffix
SYMBOLS = [('scipy_cblas_sgemm64_', 'scipy_cblas_dgemm64_', 64), ('cblas_sgemm64_', 'cblas_dgemm64_', 64),
           ('scipy_cblas_sgemm', 'scipy_cblas_dgemm', 32), ('cblas_sgemm', 'cblas_dgemm', 32)]


def blas():
    """(sgemm address, dgemm address, int bits) of a CBLAS that passes a small self-check, or None."""
    if not _blas:
        found = None
        if config.native_blas():
            for path in _blas_libraries():
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                for s, d, bits in SYMBOLS:
                    try:
                        sa, da = (ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in (s, d))
                    except AttributeError:
                        continue
                    if _self_check(sa, da, bits):
                        found = (sa, da, bits)
                        _blas_lib[:] = [lib, s, d]
                        _idle_threads_sleep(lib)
                        break
                if found:
                    break
        _blas.append(found)
    return _blas[0]


def _idle_threads_sleep(lib):
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT (graphc/__init__.py's 2**18 cycles) when it loads: where NumPy loaded
    it before graphc was imported, its idle threads spin its default 2**28 cycles (~0.1 s) after every GEMM (70 ms
    of a core per LeNet training step at 2 threads, taken from oneDNN's and graphc's threads). Then it re-reads the
    environment and its (idle) thread server stops, to restart with graphc's timeout at the next parallel GEMM."""
    want = os.environ.get('OPENBLAS_THREAD_TIMEOUT', '')
    read, now, stop = (getattr(lib, n, None) for n in ('openblas_read_env', 'openblas_thread_timeout',
                                                       'blas_thread_shutdown_'))
    if want.isdigit() and None not in (read, now, stop) and now() != int(want):
        read()
        stop()


def blas_library():
    """The loaded library blas() found (for its other entry points, as OpenBLAS's thread count), or None."""
    return _blas_lib[0] if blas() is not None and _blas_lib else None


def gemv():
    """(sgemv address, dgemv address) of blas()'s library, or None. A one-row GEMM goes there: OpenBLAS's sgemm
    packs the whole weight matrix first (45 us for a 1x784 by 784x256 product here, sgemv 8 us)."""
    if blas() is None or len(_blas_lib) < 3:
        return None
    if len(_blas_lib) == 3:
        lib, s, d = _blas_lib
        try:
            found = tuple(ctypes.cast(getattr(lib, n.replace('gemm', 'gemv')), ctypes.c_void_p).value for n in (s, d))
        except AttributeError:
            found = None
        _blas_lib.append(found if found and _gemv_check(*found, blas()[2]) else None)
    return _blas_lib[3]


def dnnl_sgemm():
    """The address of oneDNN's row-major `dnnl_sgemm` where its wheel loads on this thread (runtime/onednn.py),
    after a small self-check, or None. Its AVX-512 kernels beat the Haswell ones OpenBLAS picks on this machine's
    Zen 5 at the MLP's shapes (64x784 by 784x256: 123 us vs 150 us, 256x64 by 64x256: 41 vs 80 us, one thread).
    Taken at one thread only: at two, waking OpenMP's sleeping thread per call lost to OpenBLAS here (measured
    loaded: benchmarks/gemm_shapes.py decides it on a quiet machine). A plan built at one thread keeps its rows
    when the count changes later (oneDNN then runs at the new count: NativeProgram.run sets it per call)."""
    from . import onednn
    if not onednn.available() or onednn._threads() != 1:   # (the main thread of the process that loaded it)
        return None
    if not _dnnl:
        found = None
        lib = onednn.library()
        if hasattr(lib, 'dnnl_sgemm'):
            addr = ctypes.cast(lib.dnnl_sgemm, ctypes.c_void_p).value
            fn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, *[ctypes.c_int64] * 3, ctypes.c_float,
                                  ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_float,
                                  ctypes.c_void_p, ctypes.c_int64)(addr)
            a = np.arange(6.0, dtype=np.float32).reshape(2, 3)
            c = np.zeros((2, 2), np.float32)
            onednn._threads()
            if not fn(b'N', b'T', 2, 2, 3, 1.0, a.ctypes.data, 3, a.ctypes.data, 3, 0.0, c.ctypes.data, 2) and \
                    np.array_equal(c, a @ a.T):
                found = addr
        _dnnl.append(found)
    return _dnnl[0]


def _gemv_check(sa, da, bits):
    """A 2x3 matrix times a 3-vector, plain and transposed, in both precisions, must equal NumPy's."""
    it = ctypes.c_int64 if bits == 64 else ctypes.c_int32
    a = np.arange(6.0).reshape(2, 3)
    for addr, dt, ct in ((sa, np.float32, ctypes.c_float), (da, np.float64, ctypes.c_double)):
        fn = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32, it, it, ct, ctypes.c_void_p, it, ctypes.c_void_p,
                              it, ct, ctypes.c_void_p, it)(addr)
        m = np.ascontiguousarray(a, dt)
        for trans, x, want in ((NO_TRANS, np.arange(3.0, dtype=dt), a @ np.arange(3.0)),
                               (TRANS, np.arange(2.0, dtype=dt), a.T @ np.arange(2.0))):
            y = np.zeros(len(want), dt)
            fn(ROW_MAJOR, trans, 2, 3, 1.0, m.ctypes.data, 3, x.ctypes.data, 1, 0.0, y.ctypes.data, 1)
            if not np.array_equal(y, want):
                return False
    return True


def _self_check(sa, da, bits):
    """A 2x3 by 3x2 product in both precisions must equal NumPy's."""
    it = ctypes.c_int64 if bits == 64 else ctypes.c_int32
    a = np.arange(6.0).reshape(2, 3)
    want = a @ a.T
    for addr, dt, ct in ((sa, np.float32, ctypes.c_float), (da, np.float64, ctypes.c_double)):
        fn = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, it, it, it, ct, ctypes.c_void_p,
                              it, ctypes.c_void_p, it, ct, ctypes.c_void_p, it)(addr)
        x = np.ascontiguousarray(a, dt)
        c = np.zeros((2, 2), dt)
        fn(ROW_MAJOR, NO_TRANS, TRANS, 2, 2, 3, 1.0, x.ctypes.data, 3, x.ctypes.data, 3, 0.0, c.ctypes.data, 2)
        if not np.array_equal(c, want):
            return False
    return True


def executor():
    """The step interpreter `void graphc_steps(i64* steps, i64 n, i8** bufs)`, compiled once per process
    (its object code comes from the kernel disk cache)."""
    if not _exec:
        from . import cpu
        bits = (blas() or (0, 0, 64))[2]
        name = f'graphc_steps_i{bits}'   # (its IR is this code's: a forked compile worker's copy needs no IR here)
        addr = cpu._loaded.get(name) or (cpu.fetch(name) if cpu.fetch else 0) or cpu.compile_ir(_executor_ir(bits), name)
        _exec.append(ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p)(addr))
    return _exec[0]


def _executor_ir(bits):
    import llvmlite.ir as ir
    from .cpu import _for
    i8p, i64, i32 = ir.IntType(8).as_pointer(), ir.IntType(64), ir.IntType(32)
    it = ir.IntType(bits)
    mod = ir.Module(name='graphc_steps')
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64.as_pointer(), i64, i8p.as_pointer()]),
                     name=f'graphc_steps_i{bits}')
    steps, nsteps, bufs = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    memcpy = mod.declare_intrinsic('llvm.memcpy', [i8p, i8p, i64])
    kty = ir.FunctionType(ir.VoidType(), [i8p.as_pointer(), i64, i64])

    def gemm_ty(t):
        tp = t.as_pointer()
        return ir.FunctionType(ir.VoidType(), [i32, i32, i32, it, it, it, t, tp, it, tp, it, t, tp, it])

    def gemv_ty(t):
        tp = t.as_pointer()
        return ir.FunctionType(ir.VoidType(), [i32, i32, it, it, t, tp, it, tp, it, t, tp, it])

    def loop(lo, hi, body, tag):  # (cpu._for without loop-carried values)
        _for(b, fn, ir, lo, hi, [], lambda i, _: (body(i), [])[1], tag)

    def step(s):
        row = b.gep(steps, [b.mul(s, C(WORDS))])
        w = lambda k: b.load(b.gep(row, [C(k)]))  # noqa: E731
        buf = lambda k: b.load(b.gep(bufs, [w(k)]))  # noqa: E731
        blocks = {k: fn.append_basic_block(f'kind{k}') for k in range(8)}
        end = fn.append_basic_block('next')
        sw = b.switch(w(0), end)
        for k, blk in blocks.items():
            sw.add_case(C(k), blk)
        b.position_at_end(blocks[KERNEL])
        idx = b.inttoptr(w(3), i64.as_pointer())
        scratch = b.inttoptr(w(4), i8p.as_pointer())
        loop(C(0), w(2), lambda k: b.store(b.load(b.gep(bufs, [b.load(b.gep(idx, [k]))])), b.gep(scratch, [k])), 'a')
        b.call(b.inttoptr(w(1), kty.as_pointer()), [scratch, w(5), w(6)])
        b.branch(end)
        for kind, t in ((SGEMM, ir.FloatType()), (DGEMM, ir.DoubleType())):
            b.position_at_end(blocks[kind])
            cast = (lambda v: v) if bits == 64 else (lambda v: b.trunc(v, it))
            tp = t.as_pointer()
            args = [ir.Constant(i32, ROW_MAJOR), b.trunc(w(2), i32), b.trunc(w(3), i32), cast(w(4)), cast(w(5)),
                    cast(w(6)), ir.Constant(t, 1.0), b.bitcast(buf(7), tp), cast(w(8)), b.bitcast(buf(9), tp),
                    cast(w(10)), b.sitofp(w(13), t), b.bitcast(buf(11), tp), cast(w(12))]
            b.call(b.inttoptr(w(1), gemm_ty(t).as_pointer()), args)
            b.branch(end)
        b.position_at_end(blocks[DNNL_SGEMM])   # dnnl_sgemm(transa, transb, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
        f32, fp, i8 = ir.FloatType(), ir.FloatType().as_pointer(), ir.IntType(8)
        dty = ir.FunctionType(i32, [i8, i8, i64, i64, i64, f32, fp, i64, fp, i64, f32, fp, i64])
        b.call(b.inttoptr(w(1), dty.as_pointer()), [b.trunc(w(2), i8), b.trunc(w(3), i8), w(4), w(5), w(6),
                                                    ir.Constant(f32, 1.0), b.bitcast(buf(7), fp), w(8),
                                                    b.bitcast(buf(9), fp), w(10), b.sitofp(w(13), f32),
                                                    b.bitcast(buf(11), fp), w(12)])
        b.branch(end)
        for kind, t in ((SGEMV, ir.FloatType()), (DGEMV, ir.DoubleType())):   # y = op(A) x (a one-row GEMM)
            b.position_at_end(blocks[kind])
            cast = (lambda v: v) if bits == 64 else (lambda v: b.trunc(v, it))
            tp = t.as_pointer()
            args = [ir.Constant(i32, ROW_MAJOR), b.trunc(w(2), i32), cast(w(3)), cast(w(4)), ir.Constant(t, 1.0),
                    b.bitcast(buf(5), tp), cast(w(6)), b.bitcast(buf(7), tp), cast(w(8)), b.sitofp(w(11), t),
                    b.bitcast(buf(9), tp), cast(w(10))]
            b.call(b.inttoptr(w(1), gemv_ty(t).as_pointer()), args)
            b.branch(end)
        b.position_at_end(blocks[ALIAS])
        b.store(b.gep(buf(1), [w(3)]), b.gep(bufs, [w(2)]))
        b.branch(end)
        b.position_at_end(blocks[ROWFILL])
        dst, src, nbytes = buf(1), buf(2), w(4)
        loop(C(0), w(3), lambda r: b.call(memcpy, [b.gep(dst, [b.mul(r, nbytes)]), src, nbytes,
                                                   ir.Constant(ir.IntType(1), 0)]), 'r')
        b.branch(end)
        b.position_at_end(end)
    loop(C(0), nsteps, step, 's')
    b.ret_void()
    return str(mod)


GEMV_ROWS = 4    # weight rows per block (4 ran a 256x784 product 20% faster than 8 or 16 here)
GEMV_VEC = 16    # floats per AVX-512 register


def _gemv_ir():
    """`void graphc_gemv_nt(i8** {w, x, y}, i64 n, i64 kb)`: y[i] = w[i, :] . x (+ y[i] where kb's low bit is
    set; k = kb >> 1) for a row-major (n, k) float32 w: GEMV_ROWS rows at a time, GEMV_VEC lanes of k per step."""
    import llvmlite.ir as ir
    from .cpu import _for
    f32, i64, i8p = ir.FloatType(), ir.IntType(64), ir.IntType(8).as_pointer()
    vt, fp = ir.VectorType(f32, GEMV_VEC), f32.as_pointer()
    mod = ir.Module(name='graphc_gemv')
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i8p.as_pointer(), i64, i64]), name='graphc_gemv_nt')
    args, n, kb = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    fma = ir.Function(mod, ir.FunctionType(vt, [vt] * 3), name=f'llvm.fma.v{GEMV_VEC}f32')
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    w, x, y = (b.bitcast(b.load(b.gep(args, [C(j)])), fp) for j in range(3))
    k, beta = b.ashr(kb, C(1)), b.trunc(b.and_(kb, C(1)), ir.IntType(1))
    kv = b.sdiv(k, C(GEMV_VEC))
    zero = ir.Constant(vt, None)

    def hsum(v):   # a tree of shuffles: 16 -> 8 -> 4 -> 2 -> 1 lanes
        m = GEMV_VEC
        while m > 1:
            m //= 2
            hi = b.shuffle_vector(v, v, ir.Constant(ir.VectorType(ir.IntType(32), GEMV_VEC),
                                                    [m + j if j < m else j for j in range(GEMV_VEC)]))
            v = b.fadd(v, hi)
        return b.extract_element(v, ir.Constant(ir.IntType(32), 0))

    def rows(r0, nr):   # y[r0 .. r0 + nr)
        base = [b.mul(b.add(r0, C(j)), k) for j in range(nr)]

        def step(i, accs):
            at = b.mul(i, C(GEMV_VEC))
            xv = b.load(b.bitcast(b.gep(x, [at]), vt.as_pointer()), align=4)
            return [b.call(fma, [b.load(b.bitcast(b.gep(w, [b.add(base[j], at)]), vt.as_pointer()), align=4), xv, a])
                    for j, a in enumerate(accs)]
        accs = _for(b, fn, ir, C(0), kv, [zero] * nr, step, f'v{nr}_')
        sums = [hsum(a) for a in accs]

        def tail(i, ss):   # k not a multiple of GEMV_VEC
            xs = b.load(b.gep(x, [i]))
            return [b.fadd(s, b.fmul(b.load(b.gep(w, [b.add(base[j], i)])), xs)) for j, s in enumerate(ss)]
        sums = _for(b, fn, ir, b.mul(kv, C(GEMV_VEC)), k, sums, tail, f't{nr}_')
        for j, s in enumerate(sums):
            p = b.gep(y, [b.add(r0, C(j))])
            b.store(b.select(beta, b.fadd(s, b.load(p)), s), p)
    nb = b.sdiv(n, C(GEMV_ROWS))
    _for(b, fn, ir, C(0), nb, [], lambda i, _: (rows(b.mul(i, C(GEMV_ROWS)), GEMV_ROWS), [])[1], 'blk')
    _for(b, fn, ir, b.mul(nb, C(GEMV_ROWS)), n, [], lambda i, _: (rows(i, 1), [])[1], 'one')
    b.ret_void()
    return str(mod)


def gemv_nt():
    """The address of graphc_gemv_nt (compiled once per process, then from the kernel disk cache): a batch-1
    Dense. Warm in L2 it ran 256x784 in 5.7 us, OpenBLAS's sgemv (the Haswell kernel this Zen 5 gets) 8 us;
    10x256 in 0.1 us vs 0.5 us; cold (weights in L3, as in `graphc bench`) both run at NumPy's speed."""
    if not _gemv_nt:
        from .cpu import compile_ir
        _gemv_nt.append(compile_ir(_gemv_ir(), 'graphc_gemv_nt'))
    return _gemv_nt[0]


VIEWS = ('Reshape', '_np_reshape', 'expand_dims', 'squeeze', 'Flatten')
SMALL = 1 << 18   # kernels at least this big split across threads, so they run from Python


class Segment:
    """Steps that run in one native call. `rows` are the step words with buffer indices into the plan's
    pointer table; `keep` holds the index and scratch arrays alive."""

    def __init__(self):
        self.rows, self.keep, self.reads, self.writes = [], [], [], []
        self.dnnl = False   # calls oneDNN: runs only on the thread runtime/onednn.py allows

    def finish(self):
        self.table = np.array(self.rows, dtype=np.int64).reshape(-1, WORDS)
        self.n = len(self.rows)
        self.addr = self.table.ctypes.data

    def row(self, *words):
        r = list(words) + [0] * (WORDS - len(words))
        self.rows.append(r)

    def kernel(self, k, slots):
        idx = np.array(slots, dtype=np.int64)
        scratch = (ctypes.c_void_p * len(slots))()
        self.keep += [idx, scratch]
        self.row(KERNEL, k.addr, len(slots), idx.ctypes.data,
                 ctypes.addressof(scratch), 0, k.dims[0])

    def gemm(self, dtype, ta, tb, m, n, k, a, lda, b, ldb, c, ldc, beta):
        """c (m x n, ldc) = op(a) op(b) + beta c; one row (m == 1) as a GEMV: c = op(b)^T a."""
        if m == 1 and dtype == np.float32 and tb and ldb == k and (not ta or lda == 1):   # a Dense's weights
            idx, scratch = np.array([b, a, c], dtype=np.int64), (ctypes.c_void_p * 3)()
            self.keep += [idx, scratch]
            self.row(KERNEL, gemv_nt(), 3, idx.ctypes.data, ctypes.addressof(scratch), n, 2 * k + bool(beta))
            return
        v = gemv() if m == 1 else None
        if v is not None:   # b is (n x k) when tb, else (k x n); a's k values are lda apart when ta, else adjacent
            kind, fn = (SGEMV, v[0]) if dtype == np.float32 else (DGEMV, v[1])
            rows, cols = (n, k) if tb else (k, n)
            self.row(kind, fn, NO_TRANS if tb else TRANS, rows, cols, b, ldb, a, lda if ta else 1, c, 1, beta)
            return
        d = dnnl_sgemm() if dtype == np.float32 else None
        if d is not None:
            self.dnnl = True
            self.row(DNNL_SGEMM, d, ord('T' if ta else 'N'), ord('T' if tb else 'N'), m, n, k, a, lda, b, ldb, c, ldc,
                     beta)
            return
        sa, da, _ = blas()
        kind, fn = (SGEMM, sa) if dtype == np.float32 else (DGEMM, da)
        self.row(kind, fn, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, a, lda, b, ldb, c, ldc, beta)


_gemm_fns = {}   # (address, dtype) -> its ctypes function, for gemm_now


def gemm_now(ta, tb, a, b, c, beta):
    """c = op(a) op(b) + beta c (2-d, C-contiguous, c's rows m >= 2) now, from Python, by the very GEMM a plan's
    native GEMM row calls for it (Segment.gemm: oneDNN's at one thread, else blas()'s), so a training step's first
    tier computes it bit for bit as the compiled plan does (runtime/tiered.py); False where no such GEMM is found."""
    m, n = c.shape
    kk = a.shape[0] if ta else a.shape[1]
    dt = c.dtype
    if m < 2 or dt not in (np.float32, np.float64) or blas() is None or min(m, n, kk) < 1:
        return False
    d = dnnl_sgemm() if dt == np.float32 else None
    addr = d if d is not None else blas()[0 if dt == np.float32 else 1]
    fn = _gemm_fns.get((addr, dt))
    if fn is None:
        ct, it = (ctypes.c_float if dt == np.float32 else ctypes.c_double), ctypes.c_int64
        if d is None and blas()[2] != 64:
            it = ctypes.c_int32
        fn = _gemm_fns[(addr, dt)] = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char, ctypes.c_char, it, it, it, ct, *[
            ctypes.c_void_p, it] * 2, ct, ctypes.c_void_p, it)(addr) if d is not None else ctypes.CFUNCTYPE(
            None, ctypes.c_int32, ctypes.c_int32, ctypes.c_int32, it, it, it, ct, *[ctypes.c_void_p, it] * 2, ct,
            ctypes.c_void_p, it)(addr)
    args = (m, n, kk, 1.0, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1], float(beta), c.ctypes.data, n)
    if d is not None:
        from .onednn import _threads
        _threads()   # (NativeProgram.run sets oneDNN's thread count per call)
        fn(b'T' if ta else b'N', b'T' if tb else b'N', *args)
    else:
        fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, *args)
    return True


def compile_step(seg, node, ins, outs, new_slot):
    """Append node's native steps to seg and return True, or return False (it runs from Python).
    ins/outs: its slot indices; new_slot(shape, dtype) makes a plan-owned intermediate slot."""
    from .cpu import epilogue_of, kernel_for
    op = node.op
    dtypes = {np.dtype(d) for d in node.dtypes or []}
    for s, j in node.inputs:
        dtypes.add(np.dtype(s.dtypes[j]))
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.float32, np.float64):
        return False
    dtype = next(iter(dtypes))
    if op.name in VIEWS and len(ins) == 1:
        seg.row(ALIAS, ins[0], outs[0], 0)
        return True
    if op.name in ('FullyConnected', 'dot'):
        shapes = [s.shapes[j] for s, j in node.inputs]
        return _packed_fc(seg, node, shapes, ins, outs[0], dtype) or \
            _gemm_step(seg, op.name, node.attrs, shapes, ins, outs[0], dtype)
    sub = getattr(op, 'subgraph', None)
    if sub is None:
        return False
    ep = epilogue_of(op)
    if ep is not None:
        anchor, a_in, epi, e_in, out_map = ep
        if anchor.op.name not in ('FullyConnected', 'dot'):
            return False
        if len(outs) == 1 and out_map == [0] and not e_in and _is_relu(epi) and _packed_fc(
                seg, node, [sub.inputs[i].shapes[0] for i in a_in], [ins[i] for i in a_in], outs[0], dtype, True):
            return True   # (ReLU as the matmul's post-op)
        k = kernel_for(epi)
        if k is None or k.total >= SMALL:
            return False
        tmp = new_slot(anchor.shapes[0], dtype)
        shapes = [sub.inputs[i].shapes[0] for i in a_in]
        probe = Segment()
        if not _packed_fc(probe, node, shapes, [ins[i] for i in a_in], tmp, dtype) and \
                not _gemm_step(probe, anchor.op.name, anchor.attrs, shapes, [ins[i] for i in a_in], tmp, dtype):
            return False
        seg.rows += probe.rows
        seg.keep += probe.keep
        seg.dnnl |= probe.dnnl
        kouts = [outs[q] for q, m in enumerate(out_map) if m is not None]
        seg.kernel(k, [tmp] + [ins[i] for i in e_in] + kouts)
        for q, m in enumerate(out_map):  # the group also returns the GEMM result itself
            if m is None:
                seg.row(ROWFILL, outs[q], tmp, 1, int(np.prod(anchor.shapes[0])) * dtype.itemsize)
        return True
    k = kernel_for(op)
    if k is None or k.total >= SMALL:
        return False
    seg.kernel(k, list(ins) + list(outs))
    return True


def _gemm_step(seg, name, attrs, shapes, ins, out, dtype):
    """FullyConnected (x @ w.T + b) or a 2-d dot as BLAS calls into slot `out`."""
    if blas() is None:
        return False
    if name == 'FullyConnected':
        d, w = shapes[0], shapes[1]
        n, kk = w
        m = int(np.prod(d)) // max(kk, 1)
        if min(m, n, kk) < 1:
            return False
        has_bias = len(ins) > 2
        if has_bias:
            seg.row(ROWFILL, out, ins[2], m, n * dtype.itemsize)
        seg.gemm(dtype, False, True, m, n, kk, ins[0], kk, ins[1], kk, out, n, 1 if has_bias else 0)
        return True
    a, b = shapes
    if len(a) != 2 or len(b) != 2:
        return False
    ta, tb = attrs['transpose_a'], attrs['transpose_b']
    m, kk = (a[1], a[0]) if ta else a
    n = b[0] if tb else b[1]
    if min(m, n, kk) < 1:
        return False
    seg.gemm(dtype, ta, tb, m, n, kk, ins[0], a[1], ins[1], b[1], out, n, 0)
    return True


PACK_MIN = 3   # batch rows from which a marked FullyConnected runs packed (benchmarks/packed_fc.py: 2 ties, 3 wins 8%)


def _is_relu(fop):
    ops = [n for n in fop.subgraph.nodes if not n.is_var]
    return len(ops) == 1 and (ops[0].op.name == 'relu' or ops[0].op.name == 'Activation' and
                              ops[0].attrs.get('act_type') == 'relu')


def _packed_fc(seg, node, shapes, ins, out, dtype, relu=False):
    """A FullyConnected that passes/pack.py marked, as one row of oneDNN's matmul over its weight packed once
    (runtime/onednn.py: repacked when the weight changes), and True; False where it is not one."""
    if not node.extra.get('pack') or dtype != np.float32 or len(shapes[1]) != 2:
        return False
    n, kk = shapes[1]
    m = int(np.prod(shapes[0])) // max(kk, 1)
    if m < PACK_MIN or min(n, kk) < 1:
        return False
    from .onednn import matmul_row
    r = matmul_row(m, n, kk, len(ins) > 2, relu)
    if r is None:
        return False
    addr, row = r
    slots = list(ins[:3]) + [out]
    idx, scratch = np.array(slots, dtype=np.int64), (ctypes.c_void_p * len(slots))()
    seg.keep += [idx, scratch, row]
    seg.dnnl = True
    seg.row(KERNEL, addr, len(slots), idx.ctypes.data, ctypes.addressof(scratch), row.ctx.ctypes.data, len(slots))
    return True
