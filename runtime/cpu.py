"""CPU code generation: a fused elementwise/broadcast kernel becomes LLVM IR, optimized for the host
CPU (AVX-512 here) and compiled with llvmlite's MCJIT; ctypes calls it (releasing the GIL).

A kernel is specialized to its shapes: the iteration space is the output shape with dimensions
collapsed where every operand is contiguous (or broadcast) along them, and each input is read with
its own strides (0 along broadcast dims), so the innermost loop vectorizes. Transcendental functions
are written here as vectorizable polynomials (no fast-math, no libm calls in the loop); an op without
an emitter for the dtype keeps the whole group on the NumPy reference path.
"""
import contextlib
import ctypes
import functools
import hashlib
import itertools
import math
import os
import sys
import threading

import numpy as np

from .. import config
from ..base import GraphcError
from ..ops.scalar import Scalar, emit as emit_node

_lock = threading.Lock()
_jit = None
_cache = {}         # IR hash -> compiled Kernel (or None: not compilable)
# compile_ms: building kernels in all (codegen_ms: the IR; llvm_ms: LLVM optimization and machine code, or a
# disk-cache load); compiled: kernels built; fallbacks: groups left to NumPy
stats = {'compiled': 0, 'compile_ms': 0.0, 'codegen_ms': 0.0, 'llvm_ms': 0.0, 'fallbacks': 0, 'disk_hits': 0,
         'disk_misses': 0}


def enabled():
    """Whether compiled kernels may run: False where the backend in use is the interpreter (runtime/backend.py;
    the compiled helpers of runtime/conv.py, batchnorm.py and rnn.py check it)."""
    from .backend import current, interp
    return current() is not interp


def _engine():
    global _jit
    if _jit is None:
        import llvmlite.binding as llvm
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(),
                                          opt=3)
        backing = llvm.parse_assembly('')
        _jit = (llvm, tm, llvm.create_mcjit_compiler(backing, tm))
        _tms[3] = tm
    return _jit


_tms = {}   # code generator optimization level -> its target machine


def vector_floats():
    """float32 lanes of the host's vector registers that kernels compile for: 16 with AVX-512, else 8 (AVX2). Hand
    register tiles are sized by it: LLVM splits a 16-lane vector into two on AVX2, doubling the registers a tile
    takes."""
    if not _lanes:
        import llvmlite.binding as llvm
        _lanes.append(16 if llvm.get_host_cpu_features().get('avx512f') else 8)
    return _lanes[0]


_lanes = []


def _prime():
    """The engine, and LLVM's one-time setup that the first module's compile would otherwise pay (its pass
    registries and the host's code generators at both levels: about 5 ms): an empty function optimized and
    compiled, nothing loaded or stored."""
    llvm = _engine()[0]
    if _primed:
        return
    for level in (3, 0):
        mod = llvm.parse_assembly('define void @graphc_prime() {\nentry:\n  ret void\n}\n')
        pb = llvm.create_pass_builder(_target_machine(level), llvm.create_pipeline_tuning_options(speed_level=OPT_LEVEL))
        pb.getModulePassManager().run(mod, pb)
        _target_machine(level).emit_object(mod)
    _primed.append(True)


_primed = []


def _target_machine(level):
    """The host's target machine generating code at `level` (0: LLVM's fast instruction selector and register
    allocator, several times faster on code where their quality does not matter)."""
    if level not in _tms:
        llvm = _engine()[0]
        _tms[level] = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=llvm.get_host_cpu_features().flatten(), opt=level)
    return _tms[level]


# ---------------------------------------------------------------- scalar primitives
class Emit(Scalar):
    """The scalar primitives (graphc/ops/scalar.py) in LLVM IR: builder b, type t (float or double). exp is a
    polynomial in the element type, log one computed in double (float32: rounded once); fmod calls the C
    library, and so do sin and cos for huge arguments only (a branch around the call, which keeps a loop scalar:
    build_ir's elementwise kernels run a vectorized pass without it first, see there)."""

    def __init__(self, ir, b, t, module, fast=False):
        self.ir, self.b, self.t, self.module = ir, b, t, module
        self.f64 = isinstance(t, ir.DoubleType)
        self.it = ir.IntType(64 if self.f64 else 32)
        self.fast, self.huge = fast, []  # fast: libm returns `other`; huge: its conditions (build_ir's second pass)

    def c(self, v):
        return self.ir.Constant(self.t, float(v))

    def intrinsic(self, name, *args):
        fnty = self.ir.FunctionType(self.t, [self.t] * len(args))
        fn = self.module.declare_intrinsic(name, [self.t], fnty)
        return self.b.call(fn, list(args))

    def fma(self, x, y, z):  # llvm.fma: one vfmadd per vector (no fast-math flag would contract a*b+c)
        return self.intrinsic('llvm.fma', x, y, z)

    def neg(self, x):
        return self.b.fneg(x)

    def where(self, cond, x, y):
        return self.b.select(cond, x, y)
    select = where

    def cmp(self, op, x, y):  # ordered, but != is true for NaN (as in C and NumPy)
        return self.b.fcmp_unordered(op, x, y) if op == '!=' else self.b.fcmp_ordered(op, x, y)

    def maximum(self, x, y):
        return self.where(self.isnan(x), x, self.where(self.cmp('>=', x, y), x, y))

    def minimum(self, x, y):
        return self.where(self.isnan(x), x, self.where(self.cmp('<=', x, y), x, y))

    def libm(self, name, x, cond, other):  # cond ? name(x) : other, name called only where cond holds
        self.huge.append(cond)
        if self.fast:
            return other
        b = self.b
        pre, slow, done = b.block, b.append_basic_block('libm'), b.append_basic_block('libm_done')
        b.cbranch(cond, slow, done)
        b.position_at_end(slow)
        v = b.call(self._libm_fn(name), [x])
        b.branch(done)
        b.position_at_end(done)
        phi = b.phi(self.t)
        phi.add_incoming(v, slow)
        phi.add_incoming(other, pre)
        return phi

    def _libm_fn(self, name):
        """A noinline wrapper around llvm.<name>: a call LLVM may not speculate (the intrinsic it would run for every
        lane of the vectorized loop), so it stays behind its branch."""
        ir, fname = self.ir, f"graphc_{name}_{'f64' if self.f64 else 'f32'}"
        if fname in self.module.globals:
            return self.module.globals[fname]
        fn = ir.Function(self.module, ir.FunctionType(self.t, [self.t]), name=fname)
        fn.linkage = 'internal'
        for a in ('noinline', 'nounwind', 'readnone'):
            fn.attributes.add(a)
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        b.ret(b.call(self.module.declare_intrinsic('llvm.' + name, [self.t], ir.FunctionType(self.t, [self.t])), [fn.args[0]]))
        return fn

    def ldexp(self, p, n):
        """p * 2**n for an integer-valued float n, in two steps so results down to the subnormals are right."""
        b, ir = self.b, self.ir
        bias, shift = (1023, 52) if self.f64 else (127, 23)
        ni = b.fptosi(n, self.it)
        half = b.ashr(ni, ir.Constant(self.it, 1))
        rest = b.sub(ni, half)
        p2 = lambda k: b.bitcast(b.shl(b.add(k, ir.Constant(self.it, bias)), ir.Constant(self.it, shift)), self.t)  # noqa: E731
        return b.fmul(b.fmul(p, p2(half)), p2(rest))

    def exp(self, x):
        top, bottom = (709.782712893384, -745.1332191019411) if self.f64 else (88.72283935546875, -103.97207708)
        y = self._exp(x, bottom, top, True)
        y = self.where(self.cmp('>', x, self.c(top)), self.c(math.inf), y)
        y = self.where(self.cmp('<', x, self.c(bottom)), self.c(0.0), y)
        return self.where(self.isnan(x), x, y)  # NaN stays NaN

    def exp_bounded(self, x, lo, hi):  # the range's results are normal: 2**n in one step, no special values
        return self._exp(x, lo, hi, False)

    def _exp(self, x, lo, hi, tiny):
        """exp of x clamped to [lo, hi] (NaN to a bound); tiny: results down to the subnormals (ldexp)."""
        b = self.b
        if self.f64:
            ln2_hi, ln2_lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
            coeffs = [1 / math.factorial(k) for k in range(13, -1, -1)]  # Taylor to r**13: |r| <= ln2/2
        else:
            ln2_hi, ln2_lo = 0.693359375, -2.12194440e-4
        xc = self.intrinsic('llvm.maxnum', self.intrinsic('llvm.minnum', x, self.c(hi)), self.c(lo))
        n = self.rint(b.fmul(xc, self.c(1.4426950408889634)))
        r = self.fma(n, self.c(-ln2_lo), self.fma(n, self.c(-ln2_hi), xc))  # x - n ln2, n ln2_hi exact (Cody-Waite)
        if self.f64:
            p = self.poly(r, coeffs)
        else:  # Cephes expf
            q = self.poly(r, [1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2, 1.6666665459E-1,
                              5.0000001201E-1])
            p = b.fadd(self.fma(q, b.fmul(r, r), r), self.c(1.0))
        if tiny:
            return self.ldexp(p, n)
        return b.fmul(p, self.pow2(n, 0))

    # float32 tanh and sigmoid in fewer instructions and shorter dependency chains than scalar.py's shared forms
    # (float64 and CUDA use those): an AVX2 kernel of them is bound by both (the 1024² chain of issue 17 went from
    # 103 instructions a vector to 72). Error over every float32 (tools/ulp_sweep.py): docs/NUMERICS.md.
    def tanh(self, x):  # h / (h + 1), h = expm1(2|x|) / 2, the sign copied back (odd to the bit)
        if self.f64:
            return super().tanh(x)
        a = self.abs(x)
        a = self.where(self.cmp('>', a, self.c(10.0)), self.c(10.0), a)  # tanh rounds to 1 from 9.02; NaN passes
        n = self.rint(self.mul(a, self.c(2 * 1.4426950408889634)))
        r = self.fma(n, self.c(-0.6931471824645996), self.add(a, a))  # 2|x| - n ln2 (ln2's rounding: damped below)
        s = self.pow2(n, -1)
        h = self.fma(s, self._expm1_small(r), self.sub(s, self.c(0.5)))  # (e^2|x| - 1) / 2 = 2^(n-1) (e^r - 1) + 2^(n-1) - 1/2
        # (h + 1's rounding is most of the 2.5 ulp: a Newton step for it took them to 2.1 and the 1024² chain from
        # 1.49 to 1.71 ms; h - h q for small h, to 1.8 and 1.62 ms)
        return self.copysign(self.div(h, self.add(h, self.c(1))), x)

    def sigmoid(self, x):  # 1 / (1 + e) or e / (1 + e), e = exp(-|x|)
        if self.f64:
            return super().sigmoid(x)
        v = self.neg(self.abs(x))
        v = self.where(self.cmp('<', v, self.c(-104.0)), self.c(-104.0), v)  # exp(-104) rounds to 0; NaN passes
        n = self.rint(self.mul(v, self.c(1.4426950408889634)))
        r = self.fma(n, self.c(2.12194440e-4), self.fma(n, self.c(-0.693359375), v))  # Cody-Waite: n ln2_hi exact
        s = self.pow2(n, 40)
        e40 = self.fma(s, self._expm1_small(r), s)  # e * 2^40: normal down to v = -104, then scaled once
        num = self.where(self.cmp('>=', x, self.c(0)), self.c(1), self.mul(e40, self.c(2.0 ** -40)))
        return self.div(num, self.fma(e40, self.c(2.0 ** -40), self.c(1)))

    def _expm1_small(self, r):
        """e^r - 1 for |r| <= ln2/2 (0.24 ulp): r + r^2/2 + r^3 G(r), G fitted here (minimax in the relative
        error), evaluated in two parallel halves (a shorter chain than Horner's)."""
        r2 = self.mul(r, r)
        g = self.fma(self.fma(self.c(0.0013898229226469994), r, self.c(0.00836604181677103)), r2,
                     self.fma(self.c(0.04166685417294502), r, self.c(0.16666549444198608)))
        return self.fma(r2, self.fma(g, r, self.c(0.5)), r)  # (r rounded once at the end: 0.6 ulp)

    def pow2(self, n, k):
        """2**(n + k) for integer-valued n, n + k a normal exponent: the bits, in one step."""
        b, ir = self.b, self.ir
        bias, shift = (1023, 52) if self.f64 else (127, 23)
        return b.bitcast(b.shl(b.add(b.fptosi(n, self.it), ir.Constant(self.it, bias + k)), ir.Constant(self.it, shift)),
                         self.t)

    def log(self, x):
        """float32: x = m 2^k, m in [sqrt(1/2), sqrt(2)), log(1 + f) = f - f^2/2 + f^3 G(f) with f = m - 1 exact and G
        a degree-7 polynomial fitted here (0.1 ulp), in float32 throughout (its double form, rounded, ran slower than
        NumPy's SIMD log: 3.1 against 2.4 ms for 1M floats); error over every float32: docs/NUMERICS.md."""
        if self.f64:
            return self._log(x)
        m, k = self._log_reduce(x)
        f = self.sub(m, self.c(1))
        g = self.poly(f, [-0.07634436339139938, 0.12761560082435608, -0.1316019743680954, 0.14201761782169342,
                          -0.16623355448246002, 0.20001226663589478, -0.250008225440979, 0.3333333134651184])
        r = self.fma(self.mul(f, f), self.fma(f, g, self.c(-0.5)), f)
        r = self.fma(k, self.c(0.693359375), self.fma(k, self.c(-2.12194440e-4), r))  # k ln2_hi exact
        return self._log_special(x, r)

    def log_rounded(self, x):  # float32: computed in double, rounded once (power amplifies log's error by |y log x|)
        if self.f64:
            return self._log(x)
        d = Emit(self.ir, self.b, self.ir.DoubleType(), self.module)
        return self.b.fptrunc(d._log(self.b.fpext(x, d.t)), self.t)

    def _log_reduce(self, x):
        """(m, k): x = m * 2**k, m in [sqrt(1/2), sqrt(2)), subnormals scaled up first (0 and negatives give
        garbage the callers replace)."""
        b, ir, it = self.b, self.ir, self.it
        shift, bias, up, least = (52, 1023, 54, 2.2250738585072014e-308) if self.f64 else (23, 127, 23, 2.0 ** -126)
        tiny = self.cmp('<', x, self.c(least))
        bits = b.bitcast(self.where(tiny, self.mul(x, self.c(2.0 ** up)), x), it)
        m = b.bitcast(b.or_(b.and_(bits, ir.Constant(it, (1 << shift) - 1)), ir.Constant(it, bias << shift)), self.t)
        big = self.cmp('>', m, self.c(math.sqrt(2)))
        m = self.where(big, self.mul(m, self.c(0.5)), m)
        k = self.add(b.sitofp(b.sub(b.lshr(bits, ir.Constant(it, shift)), ir.Constant(it, bias)), self.t),
                     self.add(self.flag(big), self.where(tiny, self.c(-up), self.c(0))))
        return m, k

    def _log_special(self, x, r):  # log's value r, with inf, 0, negatives and NaN as NumPy's
        r = self.where(self.cmp('==', x, self.c(math.inf)), x, r)
        r = self.where(self.cmp('==', x, self.c(0)), self.c(-math.inf), r)
        return self.where(self.cmp('<', x, self.c(0)), self.c(math.nan), self.where(self.isnan(x), x, r))

    def _log(self, x):  # x = m * 2**k, m in [sqrt(1/2), sqrt(2)): log m = 2 atanh(f), f = (m - 1) / (m + 1)
        m, k = self._log_reduce(x)
        f = self.div(self.sub(m, self.c(1)), self.add(m, self.c(1)))
        z = self.mul(f, f)
        q = self.poly(z, [2 / (2 * j + 1) for j in range(11, 0, -1)])
        r = self.add(self.mul(k, self.c(6.93147180369123816490e-01)),
                     self.add(self.add(f, f), self.add(self.mul(self.mul(f, z), q), self.mul(k, self.c(1.90821492927058770002e-10)))))
        return self._log_special(x, r)



for _n, _f in {'add': 'fadd', 'sub': 'fsub', 'mul': 'fmul', 'div': 'fdiv', 'fmod': 'frem'}.items():
    setattr(Emit, _n, (lambda f: lambda e, x, y: getattr(e.b, f)(x, y))(_f))
for _n in ('abs', 'sqrt', 'floor', 'ceil', 'rint', 'copysign'):
    setattr(Emit, _n, (lambda f: lambda e, *xs: e.intrinsic('llvm.' + f, *xs))('fabs' if _n == 'abs' else _n))



class _NoVec(Exception):
    """A primitive that VEmit does not render (the kernel is built scalar, for LLVM's vectorizer)."""


class VEmit(Emit):
    """Emit over vectors of vl elements: the primitives that are one instruction per lane (arithmetic,
    comparisons, selects, the rounding and sign intrinsics, fma). The rest (exp, log, the C library) raise
    _NoVec: such kernels are left to LLVM's vectorizer, whose code for them the full pipeline optimizes."""

    def __init__(self, ir, b, t, module, vl):
        super().__init__(ir, b, ir.VectorType(t, vl), module)
        self.f64, self.vl = isinstance(t, ir.DoubleType), vl

    def c(self, v):
        return self.ir.Constant(self.t, [self.ir.Constant(self.t.element, float(v))] * self.vl)

    def intrinsic(self, name, *args):   # (llvmlite names no intrinsic over a vector type)
        full = f'{name}.v{self.vl}{self.t.element.intrinsic_name}'
        return self.b.call(self.module.globals.get(full) or self.ir.Function(
            self.module, self.ir.FunctionType(self.t, [self.t] * len(args)), full), list(args))

    def _no(self, *_):
        raise _NoVec
    exp = exp_bounded = log = log_rounded = libm = ldexp = pow2 = fmod = _no


VEC_BYTES = 64   # one AVX-512 register of elements per vector step (LLVM splits it on narrower hosts)
VEC_MAX_OPS = 48   # per element: longer kernels (polynomials) get the full pipeline's scheduling


def _vload(ir, b, p, vl, contiguous):
    """vl elements from pointer p on (contiguous), or p's one element in every lane."""
    vt = ir.VectorType(p.type.pointee, vl)
    if contiguous:
        return b.load(b.bitcast(p, vt.as_pointer()), align=_size(ir, p))
    one = b.insert_element(ir.Constant(vt, ir.Undefined), b.load(p), ir.Constant(ir.IntType(32), 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined), ir.Constant(ir.VectorType(ir.IntType(32), vl), [0] * vl))


def _vstore(ir, b, v, p):
    b.store(v, b.bitcast(p, v.type.as_pointer()), align=_size(ir, p))


def _size(ir, p):   # (a vector access through p promises the element's alignment only)
    return 8 if isinstance(p.type.pointee, ir.DoubleType) else 4


# ---------------------------------------------------------------- kernels
def _strides(shape, full):
    """Element strides of a C-contiguous array of `shape` broadcast to `full` (0 along broadcast dims)."""
    shape = (1,) * (len(full) - len(shape)) + tuple(shape)
    st, acc = [0] * len(full), 1
    for i in range(len(full) - 1, -1, -1):
        st[i] = acc if shape[i] != 1 or full[i] == 1 else 0
        acc *= shape[i]
    return st


def collapse(full, strides):
    """Merge adjacent dims that every operand walks contiguously, so loops are few and long."""
    dims, sts = [full[0]] if full else [1], [[s[0]] if full else [0] for s in strides]
    for i in range(1, len(full)):
        if all((s[i - 1] == s[i] * full[i]) for s in strides):
            dims[-1] *= full[i]
            for k, s in enumerate(strides):
                sts[k][-1] = s[i]
        else:
            dims.append(full[i])
            for k, s in enumerate(strides):
                sts[k].append(s[i])
    return dims, sts


class Kernel:
    """A compiled fused kernel: call(inputs, outputs) with C-contiguous NumPy arrays."""

    def __init__(self, fn_addr, dims, n_in, n_out, dtype):
        self.dims, self.n_args, self.dtype, self.addr = dims, n_in + n_out, dtype, fn_addr
        self.total = int(np.prod(dims))
        self.ptr_t = ctypes.c_void_p * self.n_args
        self.cfn = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int64, ctypes.c_int64)(fn_addr)

    def __call__(self, inputs, outputs):
        ptrs = self.ptr_t(*[a.__array_interface__['data'][0] for a in inputs], *[a.__array_interface__['data'][0]
                                                                                 for a in outputs])
        n0 = self.dims[0]
        k = min(_threads(), n0) if self.total >= (1 << 18) else 1
        if k > 1:  # big: split the outer loop over the cores
            split(self.cfn, ptrs, n0, k)
        else:
            self.cfn(ptrs, 0, n0)


def _threads():
    return config.num_threads()


CHUNKS = 4   # pieces per thread that split() hands out


def split(fn, ptrs, n, k):
    """fn(ptrs, start, stop) over [0, n) in about CHUNKS * k pieces, which the calling thread and k - 1 pool workers
    claim in turn. A fixed half per worker ran no faster than one thread at 1024x1024 (a 0.3 ms half each): the
    woken worker is often put on the caller's own core and preempts it (measured: the caller's half took 0.59 ms,
    the worker's 0.29), or waits behind other processes on a busy one. Claimed pieces keep both cores busy where
    they are free, and the caller never waits for a worker that has not started (it finds nothing left)."""
    step = -(-n // (CHUNKS * k))
    m = -(-n // step)
    claim, finished, done = itertools.count(), itertools.count(), threading.Event()  # next() is atomic (the GIL)

    def run():
        while (i := next(claim)) < m:
            fn(ptrs, i * step, min(i * step + step, n))
            if next(finished) == m - 1:
                done.set()
    pool = _pool()
    away = _off_this_core()
    for _ in range(k - 1):
        pool.submit(run)
    run()
    done.wait()
    if away:
        _set_affinity(None)


_tids = {}      # pid -> native ids of its pool's workers
_getcpu = []    # [libc's sched_getcpu, or None]


def _set_affinity(cpus):
    """Restrict the pool's workers to cpus (None: back to the process's), ignoring threads that are gone."""
    cpus = os.sched_getaffinity(0) if cpus is None else cpus
    for tid in _tids.get(os.getpid(), ()):
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def _off_this_core():
    """Keep the workers off the core this thread runs on, for one split (True when it did): Linux wakes a worker
    on its waker's core when it judges that core about to be free, but the caller goes on computing."""
    if not _getcpu:
        fn = getattr(ctypes.CDLL(None), 'sched_getcpu', None) if hasattr(os, 'sched_setaffinity') else None
        if fn is not None:
            fn.restype, fn.argtypes = ctypes.c_int, []
        _getcpu.append(fn)
    if _getcpu[0] is None or not _tids.get(os.getpid()):
        return False
    rest = os.sched_getaffinity(0) - {_getcpu[0]()}
    if not rest:
        return False
    _set_affinity(rest)
    return True


_workers = {}   # pid -> pool: a forked child (a DataLoader worker) starts its own, the parent's threads are not there
_pool_lock = threading.Lock()


def _pool():
    """The worker threads big kernels split over (started once per process: a thread per call costs more
    than a small kernel's work on a loaded machine)."""
    pool = _workers.get(os.getpid())
    if pool is None:
        with _pool_lock:
            pool = _workers.get(os.getpid())
            if pool is None:
                from concurrent.futures import ThreadPoolExecutor
                pool = _workers[os.getpid()] = ThreadPoolExecutor(
                    max(1, _threads() - 1), thread_name_prefix='graphc-kernel',
                    initializer=lambda: _tids.setdefault(os.getpid(), []).append(threading.get_native_id()))
    return pool


def _kernel_function(dtype, n_ptrs):
    """An empty `void kernel(i8** buffers, i64 start, i64 stop)` with typed buffer pointers loaded."""
    import llvmlite.ir as ir
    t = ir.DoubleType() if dtype == np.float64 else ir.FloatType()
    i64 = ir.IntType(64)
    mod = ir.Module(name='graphc_kernel')
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [ir.PointerType(ir.IntType(8).as_pointer()), i64, i64]),
                     name='kernel')
    args, start, stop = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    ptrs = [b.bitcast(b.load(b.gep(args, [ir.Constant(i64, k)])), t.as_pointer()) for k in range(n_ptrs)]
    return t, i64, mod, fn, b, start, stop, ptrs


def build_ir(sub, dtype, vector=False):
    """LLVM IR text for the fused subgraph, or None when some op has no emitter for this dtype. vector: its
    innermost loop written in vectors of VEC_BYTES (then elements one by one to the end of the row), or None
    where an operand's innermost stride is not 0 or 1, a primitive is not one VEmit renders or the vector
    loop would be longer than VEC_MAX_OPS instructions per element. Compiled without LLVM's IR optimizer
    (graphc_kv_ kernels, see LIGHT), such a kernel runs as fast as the vectorizer's and compiles in 4-8 ms
    instead of 15-25 (the loop vectorizer and its code generation on AVX-512)."""
    import llvmlite.ir as ir
    outs = sub.outputs
    full = tuple(outs[0][0].shapes[outs[0][1]])
    if any(tuple(n.shapes[j]) != full for n, j in outs) or any(d == 0 for d in full):
        return None, None
    for n in sub.nodes:
        for s in (n.shapes or []):
            if s is None or len(s) > len(full):
                return None, None
        if any(np.dtype(d) != dtype for d in (n.dtypes or [])):
            return None, None
    it = full or (1,)  # a 0-d kernel loops once
    in_st = [_strides(v.shapes[0], it) for v in sub.inputs]
    out_st = [_strides(it, it) for _ in outs]
    dims, sts = collapse(list(it), in_st + out_st)
    if vector and any(st[-1] not in (0, 1) for st in sts):
        return None, None
    t, i64, mod, fn, b, start, stop, ptrs = _kernel_function(dtype, len(sub.inputs) + len(outs))
    vl = VEC_BYTES // np.dtype(dtype).itemsize
    # sin/cos call the C library for huge arguments, behind a branch that LLVM will not vectorize: a vectorized
    # pass (fast) without the calls notes such elements in `flag`; only then the pass with the calls runs over the
    # range again. A kernel written over one of its inputs runs that pass alone (its inputs are gone after one).
    e = Emit(ir, b, t, mod, fast=True)
    ve = VEmit(ir, b, t, mod, vl) if vector else None
    i8, entry = ir.IntType(8), b.block
    flag = b.alloca(i8)
    b.store(ir.Constant(i8, 0), flag)
    b.position_at_end(fn.append_basic_block('fast'))
    fast = b.block
    # loop nest: dim 0 over [start, stop), the rest full; offsets per operand accumulate strides
    def loop(level, offsets):
        lo = start if level == 0 else ir.Constant(i64, 0)
        if vector and level == len(dims) - 1:   # (the vectors first, then the rest of the row one by one)
            lo = vloop(offsets)
        hi = stop if level == 0 else ir.Constant(i64, dims[level])
        head = fn.append_basic_block(f'l{level}')
        body = fn.append_basic_block(f'b{level}')
        done = fn.append_basic_block(f'd{level}')
        pre = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(i64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed('<', i, hi), body, done)
        b.position_at_end(body)
        offs = [b.add(o, b.mul(i, ir.Constant(i64, st[level]))) if st[level] else o for o, st in zip(offsets, sts)]
        if level + 1 < len(dims):
            loop(level + 1, offs)
        else:
            if not leaf(offs):
                raise _NoEmit
        nxt = b.add(i, ir.Constant(i64, 1))
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    def vloop(offsets):
        """The innermost level's whole vectors: its range's first (length // vl) * vl elements; the index after."""
        lo = start if len(dims) == 1 else ir.Constant(i64, 0)
        hi = stop if len(dims) == 1 else ir.Constant(i64, dims[-1])
        end = b.add(lo, b.and_(b.sub(hi, lo), ir.Constant(i64, -vl)))

        def body(i, _):
            n0 = len(b.block.instructions)
            if not vleaf([b.add(o, i) if st[-1] else o for o, st in zip(offsets, sts)]) or \
                    len(b.block.instructions) - n0 > VEC_MAX_OPS:
                raise _NoVec
            return []
        _for(b, fn, ir, lo, end, [], body, 'v', step=vl)
        return end

    def vleaf(offs):
        vals = {(v, 0): _vload(ir, b, b.gep(ptrs[k], [offs[k]]), vl, sts[k][-1]) for k, v in enumerate(sub.inputs)}
        for n in sub.nodes:
            if n.is_var:
                continue
            r = emit_node(ve, n, [vals[(s, j)] for s, j in n.inputs])
            if r is None:
                return False
            vals[(n, 0)] = r
        for k, (n, j) in enumerate(outs):
            _vstore(ir, b, vals[(n, j)], b.gep(ptrs[len(sub.inputs) + k], [offs[len(sub.inputs) + k]]))
        return True

    def leaf(offs):
        vals = {}
        for k, v in enumerate(sub.inputs):
            vals[(v, 0)] = b.load(b.gep(ptrs[k], [offs[k]]))
        for n in sub.nodes:
            if n.is_var:
                continue
            r = emit_node(e, n, [vals[(s, j)] for s, j in n.inputs])
            if r is None:
                return False
            vals[(n, 0)] = r
        for k, (n, j) in enumerate(outs):
            b.store(vals[(n, j)], b.gep(ptrs[len(sub.inputs) + k], [offs[len(sub.inputs) + k]]))
        if e.fast and e.huge:
            b.store(functools.reduce(b.or_, [b.zext(c, i8) for c in e.huge], b.load(flag)), flag)
        return True
    try:
        loop(0, [ir.Constant(i64, 0)] * len(sts))
        after = b.block
        b.position_at_end(entry)
        if not e.huge:
            b.branch(fast)
            b.position_at_end(after)
        else:
            slow, end = fn.append_basic_block('huge'), fn.append_basic_block('end')
            alias = functools.reduce(b.or_, [b.icmp_unsigned('==', o, p) for o in ptrs[len(sub.inputs):]
                                             for p in ptrs[:len(sub.inputs)]], ir.Constant(ir.IntType(1), 0))
            b.cbranch(alias, slow, fast)
            b.position_at_end(after)
            b.cbranch(b.icmp_unsigned('!=', b.load(flag), ir.Constant(i8, 0)), slow, end)
            b.position_at_end(slow)
            e = Emit(ir, b, t, mod)
            loop(0, [ir.Constant(i64, 0)] * len(sts))
            b.branch(end)
            b.position_at_end(end)
    except (_NoEmit, _NoVec):
        return None, None
    b.ret_void()
    return str(mod), dims


def _for(b, fn, ir, lo, hi, init, body, tag, step=1):
    """A counted loop with loop-carried values: body(i, values) -> new values; returns the final values."""
    i64 = ir.IntType(64)
    pre = b.block
    head, blk, done = (fn.append_basic_block(f'{tag}{x}') for x in ('h', 'b', 'd'))
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(i64)
    i.add_incoming(lo, pre)
    phis = []
    for v in init:
        p = b.phi(v.type)
        p.add_incoming(v, pre)
        phis.append(p)
    b.cbranch(b.icmp_signed('<', i, hi), blk, done)
    b.position_at_end(blk)
    new = body(i, phis)
    i.add_incoming(b.add(i, ir.Constant(i64, step)), b.block)
    for p, v in zip(phis, new):
        p.add_incoming(v, b.block)
    b.branch(head)
    b.position_at_end(done)
    return phis


ROW_REDUCE = ('sum', 'mean', 'max', 'min', 'softmax', 'log_softmax')


def _row_strides(shape, full, k):
    """(row stride, col stride) of an operand over `full` seen as (rows, cols) with the last k dims as
    cols; None when its layout does not collapse to that 2-d view."""
    st = _strides(shape, full)
    out = []
    for lo, hi in ((0, len(full) - k), (len(full) - k, len(full))):
        dims, s = full[lo:hi], st[lo:hi]
        if not dims:
            out.append(0)
            continue
        nz = [i for i in range(len(dims)) if dims[i] != 1]
        if not nz:
            out.append(0)
            continue
        d, sd = [dims[i] for i in nz], [s[i] for i in nz]
        if all(x == 0 for x in sd):
            out.append(0)
        elif all(sd[i - 1] == sd[i] * d[i] for i in range(1, len(d))):
            out.append(sd[-1])
        else:
            return None
    return tuple(out)


def build_row_ir(sub, dtype, red):
    """A fused group with one reduction over its trailing axes (sum/mean/max/min, or softmax/log_softmax over
    the last axis): one pass per row for the prologue and the reduction, then the epilogue; softmax takes
    three passes (max, sum of exp, write). None when the group does not fit that pattern."""
    import llvmlite.ir as ir
    from graphc.registry import reduce_axes
    X = tuple(red.inputs[0][0].shapes[red.inputs[0][1]])
    nd = len(X)
    if nd == 0 or 0 in X:
        return None, None
    soft = red.op.name in ('softmax', 'log_softmax')
    if soft:
        if red.attrs['axis'] % nd != nd - 1:
            return None, None
        k = 1
    else:
        axes = reduce_axes(red.attrs['axis'], nd, red.attrs.get('exclude', False))
        k = len(axes)
        if not k or axes != tuple(range(nd - k, nd)):
            return None, None
    rows, cols = int(np.prod(X[:nd - k])), int(np.prod(X[nd - k:]))
    Y = tuple(red.shapes[0])
    ops = [n for n in sub.nodes if not n.is_var]
    pro = set()
    stack = [red.inputs[0][0]]
    while stack:  # the prologue: what the reduction reads
        n = stack.pop()
        if n.is_var or n in pro:
            continue
        pro.add(n)
        stack += [s for s, _ in n.inputs]
    epi = [n for n in ops if n not in pro and n is not red]
    if any(n.op.kind == 'reduce' for n in ops if n is not red):
        return None, None
    # where each value lives: 'x' (per element of X) or 'y' (per row, the reduced shape)
    level = {}
    for n in ops:
        level[n] = 'x' if n in pro or soft else ('y' if n is red or n not in pro else 'x')
    for n in epi:
        if not soft and any(not s.is_var and level[s] == 'x' for s, _ in n.inputs):
            return None, None  # an epilogue that reads a full-size value: not one pass per row

    def view(shape, lvl):
        shape = tuple(shape)
        if lvl == 'y':
            shape = (1,) * (len(Y) - len(shape)) + shape
            if len(Y) != nd:
                shape = shape + (1,) * k
        if len(shape) > nd:
            return None
        return _row_strides(shape, X, k)
    in_views = {}
    for n in ops:
        lvl = 'x' if n is red else level[n]  # the reduction reads its input per element
        for s, _ in n.inputs:
            if s.is_var:
                v = view(s.shapes[0], lvl)
                if v is None or (lvl == 'y' and v[1] != 0):
                    return None, None
                prev = in_views.setdefault(s, v)
                if prev != v:
                    return None, None
    out_views = []
    for n, j in sub.outputs:
        lvl = 'y' if (not soft and (n is red or level[n] == 'y')) else 'x'
        want = X if lvl == 'x' else Y
        if tuple(n.shapes[j]) != want:
            return None, None
        out_views.append((lvl, (cols, 1) if lvl == 'x' else (1, 0)))
    n_in = len(sub.inputs)
    t, i64, mod, fn, b, start, stop, ptrs = _kernel_function(dtype, n_in + len(sub.outputs))
    e = Emit(ir, b, t, mod)
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    in_pos = {v: q for q, v in enumerate(sub.inputs)}

    def load(v, r, c):
        rs, cs = in_views[v]
        off = b.add(b.mul(r, C(rs)), b.mul(c, C(cs))) if cs else b.mul(r, C(rs))
        return b.load(b.gep(ptrs[in_pos[v]], [off]))

    def evaluate(nodes, r, c, vals):
        for n in nodes:
            args_ = []
            for s, j in n.inputs:
                if (s, j) not in vals:
                    vals[(s, j)] = load(s, r, c)
                args_.append(vals[(s, j)])
            out = emit_node(e, n, args_)
            if out is None:
                raise _NoEmit
            vals[(n, 0)] = out
        return vals

    def store(lvl_pick, r, c, vals):
        for q, ((n, j), (lvl, (rs, cs))) in enumerate(zip(sub.outputs, out_views)):
            if lvl == lvl_pick:
                off = b.add(b.mul(r, C(rs)), b.mul(c, C(cs))) if cs else b.mul(r, C(rs))
                b.store(vals[(n, j)], b.gep(ptrs[n_in + q], [off]))

    pro_nodes = [n for n in ops if n in pro]
    src = red.inputs[0]
    temp = red.attrs.get('temperature') if soft else None

    def red_input(r, c):
        vals = evaluate(pro_nodes, r, c, {})
        v = vals[(src[0], src[1])] if (src[0], src[1]) in vals else load(src[0], r, c)
        vals[(src[0], src[1])] = v
        return (b.fdiv(v, e.c(temp)) if temp not in (None, 1.0) else v), vals

    def row(r, _):
        zero = C(0)
        if not soft:
            name = red.op.name
            init = {'sum': 0.0, 'mean': 0.0, 'max': float('-inf'), 'min': float('inf')}[name]

            def body(c, acc):
                v, vals = red_input(r, c)
                store('x', r, c, vals)
                if name in ('sum', 'mean'):
                    return [b.fadd(acc[0], v, name='graphc_acc')]
                return [e.intrinsic('llvm.maximum' if name == 'max' else 'llvm.minimum', acc[0], v)]  # NaN sticks
            (acc,) = _for(b, fn, ir, zero, C(cols), [e.c(init)], body, 'c')
            rv = b.fdiv(acc, e.c(cols)) if name == 'mean' else acc
            vals = {(red, 0): rv}
            evaluate(epi, r, zero, vals)
            store('y', r, zero, vals)
            return []
        # llvm.maximum, not maxnum: a NaN row max as in NumPy, and LLVM 20's vectorizer aborts (an assertion)
        # on some maxnum loops, e.g. 7 columns of exp(a + b) in float32 (tests/regressions/fuzz_30675_*)
        (m,) = _for(b, fn, ir, zero, C(cols), [e.c(float('-inf'))],
                    lambda c, acc: [e.intrinsic('llvm.maximum', acc[0], red_input(r, c)[0])], 'm')
        (ssum,) = _for(b, fn, ir, zero, C(cols), [e.c(0.0)],
                       lambda c, acc: [b.fadd(acc[0], e.exp(b.fsub(red_input(r, c)[0], m)), name='graphc_acc')], 's')
        if red.op.name == 'softmax':
            inv = b.fdiv(e.c(1.0), ssum)
        else:
            lse = e.intrinsic('llvm.log', ssum)

        def write(c, _):
            v, vals = red_input(r, c)
            z = b.fsub(v, m)
            vals[(red, 0)] = b.fmul(e.exp(z), inv) if red.op.name == 'softmax' else b.fsub(z, lse)
            evaluate(epi, r, c, vals)
            store('x', r, c, vals)
            return []
        _for(b, fn, ir, zero, C(cols), [], write, 'w')
        return []
    try:
        _for(b, fn, ir, start, stop, [], row, 'r')
    except _NoEmit:
        return None, None
    b.ret_void()
    # the running sums may be reassociated (as NumPy's pairwise sums are): that alone lets LLVM vectorize them
    text = '\n'.join(ln.replace(' = fadd ', ' = fadd reassoc ') if 'graphc_acc' in ln.split('=')[0] else ln
                     for ln in str(mod).split('\n'))
    return text, [rows, cols]


def build_col_ir(sub, dtype, red, vector=False):
    """A fused group ending in one sum/mean/max/min over its leading axes (a bias gradient, say): rows
    outer, the kept columns inner (vectorized), accumulating in the output; threads split the columns.
    The reduction must be the group's last op. None when the group does not fit. vector: the columns in
    vectors as build_ir's (each column still summed row by row: the same result), or None."""
    import llvmlite.ir as ir
    from graphc.registry import reduce_axes
    X = tuple(red.inputs[0][0].shapes[red.inputs[0][1]])
    nd = len(X)
    if red.op.name not in ('sum', 'mean', 'max', 'min') or nd < 2 or 0 in X:
        return None, None
    axes = reduce_axes(red.attrs['axis'], nd, red.attrs.get('exclude', False))
    k = len(axes)
    if not k or k == nd or axes != tuple(range(k)):
        return None, None
    rows, cols = int(np.prod(X[:k])), int(np.prod(X[k:]))
    ops = [n for n in sub.nodes if not n.is_var]
    pro = set()
    stack = [red.inputs[0][0]]
    while stack:
        n = stack.pop()
        if n.is_var or n in pro:
            continue
        pro.add(n)
        stack += [s for s, _ in n.inputs]
    if any(n not in pro and n is not red for n in ops) or any(n.op.kind == 'reduce' for n in ops if n is not red):
        return None, None
    views = {}
    for n in ops:
        for s, _ in n.inputs:
            if s.is_var:
                v = _row_strides(s.shapes[0], X, nd - k) if len(s.shapes[0]) <= nd else None
                if v is None:
                    return None, None
                views[s] = v
    outs = []
    for n, j in sub.outputs:
        if n is red:
            outs.append('r')
        elif tuple(n.shapes[j]) == X:
            outs.append('x')
        else:
            return None, None
    if 'r' not in outs:
        return None, None
    if vector and any(cs not in (0, 1) for _, cs in views.values()):
        return None, None
    n_in = len(sub.inputs)
    t, i64, mod, fn, b, start, stop, ptrs = _kernel_function(dtype, n_in + len(outs))
    e = Emit(ir, b, t, mod)
    vl = VEC_BYTES // np.dtype(dtype).itemsize
    ve = VEmit(ir, b, t, mod, vl) if vector else None
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    acc_ptr = ptrs[n_in + outs.index('r')]
    name = red.op.name
    init = {'sum': 0.0, 'mean': 0.0, 'max': float('-inf'), 'min': float('inf')}[name]
    pos = {v: q for q, v in enumerate(sub.inputs)}
    pro_nodes = [n for n in ops if n in pro]
    src = red.inputs[0]

    def init_body(c, _):
        b.store(e.c(init), b.gep(acc_ptr, [c]))
        return []

    def row(r, _):
        def col(c, _, em=e, w=1):   # (em, w: VEmit and its vector length)
            ld = (lambda p, cs: b.load(p)) if w == 1 else (lambda p, cs: _vload(ir, b, p, w, cs))
            st = b.store if w == 1 else (lambda v, p: _vstore(ir, b, v, p))
            n0, vals = len(b.block.instructions), {}
            for v in sub.inputs:
                if v in views:
                    rs, cs = views[v]
                    vals[(v, 0)] = ld(b.gep(ptrs[pos[v]], [b.add(b.mul(r, C(rs)), b.mul(c, C(cs)))]), cs)
            for n in pro_nodes:
                out = emit_node(em, n, [vals[(s, j)] for s, j in n.inputs])
                if out is None:
                    raise _NoEmit
                vals[(n, 0)] = out
            for q, ((n, j), kind) in enumerate(zip(sub.outputs, outs)):
                if kind == 'x':
                    st(vals[(n, j)], b.gep(ptrs[n_in + q], [b.add(b.mul(r, C(cols)), c)]))
            p = b.gep(acc_ptr, [c])
            v = vals[(src[0], src[1])]
            a = ld(p, 1)
            st(b.fadd(a, v) if name in ('sum', 'mean') else
               em.intrinsic('llvm.maximum' if name == 'max' else 'llvm.minimum', a, v), p)  # as np.max: NaN sticks
            if w > 1 and len(b.block.instructions) - n0 > VEC_MAX_OPS:
                raise _NoVec
            return []
        lo = start
        if vector:   # (whole vectors of columns first)
            lo = b.add(start, b.and_(b.sub(stop, start), C(-vl)))
            _for(b, fn, ir, start, lo, [], lambda c, _: col(c, _, ve, vl), 'cv', step=vl)
        _for(b, fn, ir, lo, stop, [], col, 'c')
        return []

    def fin(c, _):
        p = b.gep(acc_ptr, [c])
        b.store(b.fdiv(b.load(p), e.c(rows)), p)
        return []
    try:
        _for(b, fn, ir, start, stop, [], init_body, 'z')
        _for(b, fn, ir, C(0), C(rows), [], row, 'r')
        if name == 'mean':
            _for(b, fn, ir, start, stop, [], fin, 'f')
    except (_NoEmit, _NoVec):
        return None, None
    b.ret_void()
    return str(mod), [cols, 1]


class _NoEmit(Exception):
    pass


# ---------------------------------------------------------------- the kernel disk cache (trust model: README)
CACHE_MAGIC = b'GRAPHC-KERNEL-2\n'
_ENTRY_MAX = 64 << 20     # bytes: no kernel's object code comes near this


def cache_dir():
    return config.cache_dir()


def cache_max_bytes():
    """GRAPHC_CACHE_MAX_MB (default 256): the kernel cache's size on disk; past it, least recently used entries go."""
    return config.cache_max_bytes()


_warned = set()


def warn_once(msg):
    """A RuntimeWarning the first time `msg` comes up in this process; returns None."""
    if msg not in _warned:
        _warned.add(msg)
        import warnings
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
    return None


def _bypass(why):
    """Warn once per reason and return None: the cache is skipped (kernels compile in memory), never trusted."""
    return warn_once(f"graphc: not using the kernel cache: {why}")


def _private(st, what):
    """None when st (an fstat) is ours and closed to group and others, else the reason it is not."""
    import stat as S
    if st.st_uid != os.geteuid():
        return f"{what} is owned by uid {st.st_uid}, not by this user"
    if st.st_mode & 0o022:
        return f"{what} is writable by group or others (mode {S.filemode(st.st_mode)})"
    return None


def open_private_dir(*parts, create=True):
    """A file descriptor of cache_dir()/parts..., each level opened with O_NOFOLLOW (a symlink anywhere in the
    cache is refused) and checked to be a directory owned by this user and not group/world-writable; None
    (with one warning) when a level fails. The caller closes it."""
    import stat as S
    root = cache_dir()
    if create:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
        except OSError:
            pass
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd, path = None, root
    for i, name in enumerate((root,) + parts):
        if i:
            path = os.path.join(path, name)
        try:
            if create:
                try:
                    os.mkdir(name, 0o700, dir_fd=fd)
                except FileExistsError:
                    pass
            nfd = os.open(name, flags, dir_fd=fd)
        except OSError as e:
            if fd is not None:
                os.close(fd)
            return None if isinstance(e, FileNotFoundError) and not create else \
                _bypass(f"{path}: {e.strerror or e} (a symlink is refused)")
        if fd is not None:
            os.close(fd)
        fd = nfd
        st = os.fstat(fd)
        why = None if S.S_ISDIR(st.st_mode) else f"{path} is not a directory"
        why = why or _private(st, path)
        if why:
            os.close(fd)
            return _bypass(why)
    return fd


def private_subdir(name):
    """cache_dir()/name when open_private_dir accepts it, else a new private temporary directory (this process
    only): for caches of compiler outputs that are loaded as code (CUDA binaries, the emulator's libraries)."""
    fd = open_private_dir(name)
    if fd is None:
        import tempfile
        return tempfile.mkdtemp(prefix=f'graphc-{name}-')
    os.close(fd)
    return os.path.join(cache_dir(), name)


def is_private_file(path):
    """True for a regular file (not a link) owned by this user and not group/world-writable."""
    import stat as S
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return S.S_ISREG(st.st_mode) and _private(st, path) is None


def read_private(dfd, name, limit=_ENTRY_MAX):
    """The bytes of regular file `name` in directory dfd, or None: opened with O_NOFOLLOW | O_NONBLOCK (a FIFO or
    device never blocks the open), then fstat: a regular file, owned by this user, not group/world-writable,
    at most `limit` bytes."""
    import stat as S
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not S.S_ISREG(st.st_mode):
            return _bypass(f"cache entry {name} is not a regular file")
        why = _private(st, f"cache entry {name}")
        if why:
            return _bypass(why)
        if st.st_size > limit:
            return None
        with os.fdopen(os.dup(fd), 'rb') as f:
            return f.read(limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def write_private(dfd, name, data):
    """Atomically replace `name` in directory dfd by `data` (a 0600 temp file + rename, so no process reads half an
    entry); the temp file is removed on any failure (a full disk leaves nothing behind). True when written."""
    tmp = f".tmp-{os.getpid()}-{threading.get_ident()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dfd)
    except OSError:
        return False
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        return True
    except OSError:  # a read-only or full disk only costs a recompile next time
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        return False


def _entry_key(text, name):
    """The full key of a kernel, as bytes: stored inside the checksummed entry and compared whole on load."""
    import json
    if not _host:
        import llvmlite
        from .. import __version__
        llvm = _engine()[0]
        _host.update({'format': 2, 'cpu': llvm.get_host_cpu_name(), 'features': llvm.get_host_cpu_features().flatten(),
                      'llvmlite': llvmlite.__version__, 'graphc': __version__})
    return json.dumps({**_host, 'opt': OPT_LEVEL, 'pipeline': _pipeline(name), 'ir': hashlib.sha256(text.encode()).hexdigest(),
                       'symbol': name}, sort_keys=True).encode()


_host = {}  # the parts of a kernel's key that are the same for the whole process


def _entry_file(key):
    h = hashlib.sha256(key).hexdigest()
    return h[:2], h + '.o'


def _disk_load(key):
    """The cached object code for `key` (bytes), or None: absent, not ours, truncated, corrupt, or an entry
    whose recorded key differs (another kernel's entry copied under this name is a miss, never a call)."""
    sub, name = _entry_file(key)
    dfd = open_private_dir('kernels', sub, create=False)
    if dfd is None:
        return None
    try:
        blob = read_private(dfd, name)
        if blob is None:
            return None
        head = len(CACHE_MAGIC) + 32
        payload = blob[head:]
        if not blob.startswith(CACHE_MAGIC) or hashlib.sha256(payload).digest() != blob[len(CACHE_MAGIC):head] \
                or len(payload) < 4:
            return None
        n = int.from_bytes(payload[:4], 'little')
        if payload[4:4 + n] != key:
            return None
        try:
            os.utime(name, dir_fd=dfd, follow_symlinks=False)  # last use, for the LRU eviction
        except OSError:
            pass
        return payload[4 + n:]
    finally:
        os.close(dfd)


_disk_bytes = [None]  # this process's estimate of the cache's size on disk (None: not scanned yet)


def _disk_store(key, obj):
    sub, name = _entry_file(key)
    dfd = open_private_dir('kernels', sub)
    if dfd is None:
        return
    payload = len(key).to_bytes(4, 'little') + key + obj
    blob = CACHE_MAGIC + hashlib.sha256(payload).digest() + payload
    try:
        ok = write_private(dfd, name, blob)
    finally:
        os.close(dfd)
    if ok:
        if _disk_bytes[0] is None:
            _disk_bytes[0] = sum(s for _, s, _ in _entries())
        else:
            _disk_bytes[0] += len(blob)
        if _disk_bytes[0] > cache_max_bytes():
            evict()


def _entries():
    """(mtime, size, path) of every kernel cache entry (symlinks and other files skipped)."""
    out = []
    root = os.path.join(cache_dir(), 'kernels')
    try:
        subs = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return out
    for d in subs:
        try:
            for e in os.scandir(d.path):
                if e.name.endswith('.o') and e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    out.append((st.st_mtime, st.st_size, e.path))
        except OSError:
            continue
    return out


def evict(limit=None):
    """Delete least recently used entries until the cache holds at most 3/4 of `limit` (GRAPHC_CACHE_MAX_MB)."""
    limit = cache_max_bytes() if limit is None else limit
    ents = sorted(_entries())
    total = sum(s for _, s, _ in ents)
    for _, size, path in ents:
        if total <= limit * 3 // 4:
            break
        try:
            os.unlink(path)
        except OSError:
            pass
        total -= size
    _disk_bytes[0] = total
    return total


# LLVM's -O2 with both vectorizers: as fast as -O3 on every LeNet and elementwise kernel measured (O3 fully
# unrolls the convolution kernels' window loops and then vectorizes each copy: 3-4x the compile time, no gain)
OPT_LEVEL = 2
# lighter pipelines by kernel name where the full one buys nothing: elementwise and reduction kernels (graphc_k_*)
# run as fast without LLVM's loop unroller (the vectorizer interleaves their loops already) and compile 5-30%
# faster; the step interpreter is a dispatch loop, no vector code, and skips the IR optimizer (-O0: 5 ms of its
# 10-13 ms compile, at a few ns per step) and the code generator's (LLVM's fast instruction selector and register
# allocator: 7.8 -> 1.5 ms). The window kernels that runtime/conv.py writes in vectors already (2x2 max pooling
# and its ReLU-masked gradient, graphc_*_v_: LeNet's) need neither vectorizer nor unroller: the pooling at -O0
# runs as fast as at -O2 (2.6 and 0.5 ms at batch 600; 4.2 with the fast code generator) and compiles in 8 ms,
# not 23-39; the gradient at -O0 with the fast code generator as fast (7.3 and 1.3 ms) in 7-11 ms, not 28-48. The other window kernels (im2col,
# col2im, pooling outside that case) keep the full pipeline: unrolled, their small constant loops run 2x faster.
# The kernels build_ir and build_col_ir write in vectors (graphc_kv_*) and the multi-tensor updates (graphc_mt_*)
# skip the IR optimizer and keep the full code generator: as fast as the vectorizer's code (a 10-op kernel over
# 1M floats: 0.21 ms either way; with the fast code generator 0.20-0.28) in 4-8 ms, not 20-25.
LIGHT = {'graphc_k_': ('unroll',), 'graphc_mt_': ('unroll', 'vectorize', 'optimize'),
         'graphc_kv_': ('unroll', 'vectorize', 'optimize'),
         'graphc_steps_': ('unroll', 'vectorize', 'optimize', 'codegen'),
         'graphc_maxpool_v_': ('unroll', 'vectorize', 'optimize'),
         'graphc_maxpool_grad_relu_v_': ('unroll', 'vectorize', 'optimize', 'codegen')}


def _pipeline(name):
    """The LLVM pipeline options that compile kernel `name` (part of its cache key): IR optimization `level`
    (default OPT_LEVEL), the loop `unroll`er and `vectorize`rs, the `codegen` level (default 3)."""
    off = next((v for k, v in LIGHT.items() if name.startswith(k)), ())
    opts = {'unroll': 'unroll' not in off, 'vectorize': 'vectorize' not in off}
    if 'optimize' in off:
        opts['level'] = 0
    if 'codegen' in off:
        opts['codegen'] = 0
    return opts


_loaded = {}  # function name -> address: identical IR from two groups is loaded once


def dump_code(name, code, ext, graph_text=None):
    """GRAPHC_DUMP_CODE=DIR: a kernel's code written to DIR/name.ext, beside the IR it computes (DIR/name.txt)."""
    d = os.environ.get('GRAPHC_DUMP_CODE')
    if d:
        os.makedirs(d, exist_ok=True)
        for suffix, text in ((ext, code), ('txt', graph_text)):
            if text is not None:
                with open(os.path.join(d, f"{name}.{suffix}"), 'w') as f:
                    f.write(text)


def compile_kernel(text, prefix, graph_text=None):
    """The address of IR whose function is @kernel, renamed graphc_PREFIX_<hash of the IR>: the name comes from
    the IR, so cached object code matches across processes and equal IR is loaded once."""
    name = f"graphc_{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:20]}"
    dump_code(name, text, 'll', graph_text)
    return compile_ir(text.replace('@"kernel"', f'@"{name}"').replace('@kernel', f'@{name}'), name)


def compile_ir(text, name='kernel'):
    """Machine code for the IR text: from the disk cache when a valid entry exists, else compiled and stored.
    An entry that loads without defining `name` (address 0) is dropped and the IR compiled: never called.
    Thread-safe (the compile thread of ahead() calls it too): one compile at a time, as llvmlite runs every LLVM
    call under one lock anyway; a name two threads ask for is compiled once."""
    addr = _loaded.get(name) or (fetch(name) if fetch is not None else 0)
    if addr:
        return addr
    with _compile_lock:
        if name not in _loaded:
            _loaded[name] = _compile_ir(text, name)
        return _loaded[name]


fetch = None   # while a forked compile worker runs (runtime/forked.py): its module `name`'s address, or 0


_compile_lock = threading.RLock()
# a fork waits for the compile in flight on the compile thread: the child must not inherit llvmlite's lock held
os.register_at_fork(before=_compile_lock.acquire, after_in_parent=_compile_lock.release,
                    after_in_child=_compile_lock.release)


def _compile_ir(text, name):
    import time
    t0 = time.perf_counter()
    if observer is not None:
        observer(name, None)
    llvm, tm, jit = _engine()
    key = _entry_key(text, name)
    obj = _disk_load(key)
    addr = 0
    if obj is not None:
        stats['disk_hits'] += 1
        jit.add_object_file(llvm.ObjectFileRef.from_data(obj))
        jit.finalize_object()
        addr = jit.get_function_address(name)
    if not addr:
        mod = llvm.parse_assembly(text)
        mod.verify()
        opts = _pipeline(name)
        pto = llvm.create_pipeline_tuning_options(speed_level=opts.get('level', OPT_LEVEL))
        pto.loop_vectorization = pto.slp_vectorization = opts['vectorize']
        pto.loop_unrolling = opts['unroll']
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        obj = _target_machine(opts.get('codegen', 3)).emit_object(mod)
        _disk_store(key, obj)
        stats['disk_misses'] += 1
        jit.add_object_file(llvm.ObjectFileRef.from_data(obj))
        jit.finalize_object()
        addr = jit.get_function_address(name)
        if not addr:
            raise GraphcError(f"compiled kernel {name} has no symbol {name!r} (an LLVM code generation failure)")
    if observer is not None:   # (a forked compile worker, runtime/forked.py, sends it to its parent)
        observer(name, obj)
    stats['llvm_ms'] += (time.perf_counter() - t0) * 1e3
    return addr


observer = None   # observer(name, None) as a module's compile starts, observer(name, object code) when it is done


# ---------------------------------------------------------------- a first tier without LLVM
class Deferred(Exception):
    """A kernel not built yet, asked for where a training step's first tier runs (runtime/tiered.py): the caller
    takes the op's NumPy or oneDNN form instead and remembers nothing, so the compiled tier builds it later."""


_tier = threading.local()   # .on: this thread runs a first tier


@contextlib.contextmanager
def deferring():
    """Within: kernels that are not built yet are not built (Deferred), except the ones whose NumPy form costs
    more than their compile (runtime/conv.NOW)."""
    was = getattr(_tier, 'on', False)
    _tier.on = True
    try:
        yield
    finally:
        _tier.on = was


def deferred():
    return getattr(_tier, 'on', False)


# ---------------------------------------------------------------- compiling ahead
_ahead = {}   # pid -> the compile thread (a forked child starts its own)


def ahead(fn, *args):
    """fn(*args) on the compile thread, which builds kernels the caller will need while it does other work
    (LLVM releases the GIL): a Future, or None unless GRAPHC_COMPILE_AHEAD=1 and graphc runs on 2+ threads (on one
    core the thread would only take it from the caller). What fn compiles lands in the caches the caller's own
    lookups read (kernel_for, compile_ir), so a kernel is built once; a failure there is raised again when the
    caller builds that kernel itself."""
    if not config.compile_ahead() or config.num_threads() < 2:
        return None
    pool = _ahead.get(os.getpid())
    if pool is None:
        with _pool_lock:
            pool = _ahead.get(os.getpid())
            if pool is None:
                from concurrent.futures import ThreadPoolExecutor
                pool = _ahead[os.getpid()] = ThreadPoolExecutor(1, thread_name_prefix='graphc-compile')
    fut = pool.submit(fn, *args)
    fut.add_done_callback(_said)
    return fut


def _said(fut):
    """A failure on the compile thread, logged with its reason (the caller compiles that kernel itself later and
    raises the error there if it happens again)."""
    e = None if fut.cancelled() else fut.exception()
    if e is not None:
        import logging
        logging.getLogger('graphc').info("graphc: compiling ahead failed, the kernels compile when first needed: "
                                         "%s: %s", type(e).__name__, e)


def warm(graph):
    """Compile the kernels of an optimized graph ahead (see ahead()): its fused groups' and the pooling window
    kernels (runtime/conv.warm); the backward plan's while the forward runs. Returns the Future or None."""
    todo = warm_todo(graph)
    return ahead(_build_all, todo) if todo else None


def warm_todo(graph):
    """The nodes whose kernels _build_all compiles: fused groups and the pooling window kernels."""
    from .conv import WARM
    return [n for n in graph.nodes if not n.is_var and (getattr(n.op, 'subgraph', None) is not None or
                                                        n.op.name in WARM and n.dtypes)]


def _build_all(nodes):
    from . import conv
    for n in nodes:
        if getattr(n.op, 'subgraph', None) is None:
            conv.warm(n.op.name, n.attrs, [s.shapes[j] for s, j in n.inputs], n.dtypes[0])
        elif epilogue_of(n.op) is None:   # (a GEMM group's epilogue was compiled by split_anchor)
            kernel_for(n.op)


def warm_up():
    """What every compiled plan needs, started ahead by hybridize() (once per process): the modules a first call
    imports, LLVM's engine and the step interpreter on the compile thread; without one, the libraries load here
    (llvmlite's LLVM and oneDNN, 40-50 ms: loaded where a compiled call is announced, as a framework's own
    library loads at its import, not in the first call's compile; `import graphc` stays without them)."""
    if os.getpid() in _warm or config.backend() == 'interp' or not enabled():
        return None

    def load():
        import llvmlite.ir  # noqa: F401
        from ..gluon import cached  # noqa: F401
        from ..passes import autodiff  # noqa: F401
        from . import conv, forked, native, plan  # noqa: F401
        with _compile_lock:   # (_engine() is built once: the caller's first compile may be asking too)
            _prime()

    def run():
        load()
        from . import native
        native.executor()
    fut = ahead(run)
    _warm.add(os.getpid())
    if fut is None:
        load()
        from . import native
        native.blas()
        if config.onednn():   # (on the main thread: the one runtime/onednn.py lets run primitives)
            from . import onednn
            if onednn.library() is not None:
                native.dnnl_sgemm()   # (its self-check: oneDNN's GEMM kernel generated, 3-4 ms)
    return fut


_warm = set()   # pids that started warm_up


def max_kernels():
    """GRAPHC_MAX_KERNELS (default 20000): compiled kernels per process; each stays loaded (MCJIT cannot unload)."""
    return config.max_kernels()


def kernel_for(fop):
    """The compiled Kernel of a FusedOp, or None (the NumPy reference runs it instead)."""
    k = getattr(fop, '_kernel', False)
    if k is not False:  # decided before for this fused op
        return k
    if deferred():   # (a first tier: its NumPy path, nothing decided)
        return None
    k = fop._kernel = _kernel_for(fop.subgraph)
    return k


def _kernel_for(sub):
    import time
    dts = {np.dtype(d) for n in sub.nodes for d in (n.dtypes or [])}
    if len(dts) != 1 or next(iter(dts)) not in (np.float32, np.float64):
        return None
    dtype = next(iter(dts))
    # the IR depends on ops, attributes and shapes only: drop the source-location comments, so the same
    # kernel traced from two blocks (or two unrolled time steps) is built once
    key = ('\n'.join(ln.split('   # ')[0] for ln in sub.text().splitlines()), str(dtype))
    with _lock:
        if key in _cache:
            return _cache[key]
        if stats['compiled'] >= max_kernels():  # past the bound: not compiled and not remembered (nothing grows)
            warn_once(f"graphc: {stats['compiled']} kernels compiled in this process (GRAPHC_MAX_KERNELS): new fused "
                      "groups run on the NumPy reference path (machine code cannot be unloaded): bucket input shapes")
            stats['fallbacks'] += 1
            return None
        t0 = time.perf_counter()
        reds = [n for n in sub.nodes if not n.is_var and n.op.kind == 'reduce']
        prefix = 'k'
        if not reds:
            text, dims = build_ir(sub, dtype, vector=True)
            if text is None:
                text, dims = build_ir(sub, dtype)
            else:
                prefix = 'kv'
        elif len(reds) == 1 and reds[0].op.name in ROW_REDUCE:
            text, dims = build_row_ir(sub, dtype, reds[0])
            if text is None:
                text, dims = build_col_ir(sub, dtype, reds[0], vector=True)
                prefix = 'k' if text is None else 'kv'
            if text is None:
                text, dims = build_col_ir(sub, dtype, reds[0])
        else:
            text, dims = None, None
        k = None
        if text is not None:
            stats['codegen_ms'] += (time.perf_counter() - t0) * 1e3
            addr = compile_kernel(text, prefix, sub.text())
            k = Kernel(addr, dims, len(sub.inputs), len(sub.outputs), dtype)
            stats['compiled'] += 1
            stats['compile_ms'] += (time.perf_counter() - t0) * 1e3
        else:
            stats['fallbacks'] += 1
        _cache[key] = k
        return k


def run_fused(fop, arrays):
    """Run a FusedOp with its compiled kernel (a GEMM/conv group: the anchor's CPU kernel, then its compiled
    epilogue); None when it has none (the CPU backend then runs its subgraph op by op)."""
    ep = epilogue_of(fop)
    if ep is not None:
        from .backend import cpu
        anchor, a_in, epi, e_in, out_map = ep
        a = cpu.kernel(anchor.op)(anchor.attrs, *[arrays[i] for i in a_in])
        res = run_fused(epi, [a] + [arrays[i] for i in e_in])
        outs = [a if k is None else (res[k] if isinstance(res, tuple) else res) for k in out_map]
        return tuple(outs) if len(outs) > 1 else outs[0]
    k = kernel_for(fop)
    if k is None:
        return _conv_relu(fop, arrays) if deferred() else None
    ins = [np.ascontiguousarray(a) for a in arrays]
    outs = _outputs(fop, k.dtype)
    k(ins, outs)
    return tuple(outs) if len(outs) > 1 else outs[0]


RECYCLE_BYTES = 32 << 20   # glibc's mmap threshold (plan.KEEP): a block this large may be mapped anew, every page faulted


def _outputs(fop, dtype):
    """The group's output arrays: those of its last call where nothing else holds them any more (the caller dropped
    them, the plan freed them) and they are large, else fresh ones. A 64 MB output that glibc maps anew costs its
    16k page faults every call: 94.6 ms a call of the 4096² elementwise chain against 37.5 ms (graphc bench, 1 thread,
    the heap's top too small to serve it after earlier workloads)."""
    last = fop.__dict__.pop('_last', None) if config.keep_memory() else None   # (a second thread at once: fresh)
    outs = []
    for i, (n, j) in enumerate(fop.subgraph.outputs):
        if last is not None and sys.getrefcount(last[i]) == 2:   # (the list's reference and the argument's)
            outs.append(last[i])
        else:
            outs.append(np.empty(n.shapes[j], dtype))
    if outs and outs[0].nbytes >= RECYCLE_BYTES:
        fop._last = outs[:]
    return outs


def _conv_relu(fop, arrays):
    """A group that is a Convolution and its ReLU as one oneDNN convolution with a ReLU post-op: a first tier's form
    of it while its compiled epilogue is deferred (no second pass over the output, no array for the convolution
    alone: 44 MB of fresh pages at LeNet's first layer at batch 600); None where it is not that, or oneDNN
    declines."""
    sub = fop.subgraph
    ops = [n for n in sub.nodes if not n.is_var]
    if len(ops) != 2 or ops[0].op.name != 'Convolution' or ops[1].op.name != 'Activation' or \
            ops[1].attrs.get('act_type') != 'relu' or ops[1].inputs[0][0] is not ops[0] or sub.outputs != [(ops[1], 0)]:
        return None
    pos = {v: i for i, v in enumerate(sub.inputs)}
    if any(s not in pos for s, _ in ops[0].inputs):
        return None
    from . import onednn
    return onednn.conv_act_pool({'conv': ops[0].attrs, 'pool': None, 'act': 'relu'},
                                *[arrays[pos[s]] for s, _ in ops[0].inputs])


ANCHORS = ('FullyConnected', 'Convolution', 'Deconvolution', 'dot', 'batch_dot')


def epilogue_of(fop):
    """split_anchor(fop), worked out once per fused op."""
    ep = getattr(fop, '_epilogue', False)
    if ep is False:
        if deferred():   # (a first tier: the anchor and its epilogue op by op, nothing decided)
            return None
        ep = fop._epilogue = split_anchor(fop)
    return ep


def split_anchor(fop, compiles=None):
    """(anchor node, its input positions, epilogue FusedOp, epilogue's other input positions, output map) for
    a group that starts with a GEMM or convolution whose epilogue compiles (with `compiles`, default this
    backend's kernel_for; cuda.py passes its own); else None."""
    from ..graph import Graph, Node
    sub = fop.subgraph
    ops = [n for n in sub.nodes if not n.is_var]
    if len(ops) < 2 or ops[0].op.name not in ANCHORS or any(n.op.name in ANCHORS for n in ops[1:]):
        return None
    anchor = ops[0]
    pos = {v: i for i, v in enumerate(sub.inputs)}
    a_in = [pos[s] for s, _ in anchor.inputs]
    av = Node(None, 'anchor', shapes=[anchor.shapes[0]], dtypes=[anchor.dtypes[0]])
    m = {anchor: av}
    used = []
    for n in ops[1:]:
        ins = []
        for s, j in n.inputs:
            if s.is_var and s in pos and s not in used:
                used.append(s)
            ins.append((m.get(s, s), j))
        m[n] = Node(n.op, n.name, n.attrs, ins, n.shapes, n.dtypes)
    epi_outs = [(m[n], j) for n, j in sub.outputs if n is not anchor]
    if not epi_outs:
        return None
    epi = type(fop)(fop.name + '_epilogue', Graph(epi_outs, [av] + used))
    if (compiles or kernel_for)(epi) is None:
        return None
    out_map, k = [], 0
    for n, j in sub.outputs:
        out_map.append(None if n is anchor else k)
        k += n is not anchor
    return anchor, a_in, epi, [pos[v] for v in used], out_map


