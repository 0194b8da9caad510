"""Compiled training-mode BatchNorm (batch statistics), forward and backward, for graphc.ops.nn.

NumPy's version makes six to ten passes over the activations with a temporary array each; these make three
forward (mean, variance about the mean, normalize) and two backward, per channel, split over the cores by
channel. Sums run in double precision, so the statistics are at least as accurate as NumPy's pairwise float32
sums. The data is viewed as (outer, C, inner) around the channel axis; None is returned (the NumPy reference
runs) when the compiled backend is off, the dtype is not float or an array is not C-contiguous.
"""
import threading

import numpy as np

from .cpu import Kernel, _for, _kernel_function, compile_kernel, enabled

_lock = threading.Lock()
_kernels = {}
LANES = 4   # independent accumulators: the sums are not reassociated (no fast-math), so ILP comes from these


def _view(x, ax):
    return int(np.prod(x.shape[:ax])), x.shape[ax], int(np.prod(x.shape[ax + 1:]))


def _usable(*arrays):
    return enabled() and all(a.dtype in (np.float32, np.float64) and a.flags.c_contiguous for a in arrays) and \
        len({a.dtype for a in arrays}) == 1


def _build(kind, outer, C, inner, eps, fix_gamma, dtype):
    import llvmlite.ir as ir
    n_ptrs = 6 if kind == 'fwd' else 8
    t, i64, mod, fn, b, start, stop, ptrs = _kernel_function(dtype, n_ptrs)
    d = ir.DoubleType()
    K = lambda v: ir.Constant(i64, v)  # noqa: E731
    D = lambda v: ir.Constant(d, float(v))  # noqa: E731
    m = outer * inner
    wide = (lambda v: v) if t == d else (lambda v: b.fpext(v, d))
    narrow = (lambda v: v) if t == d else (lambda v: b.fptrunc(v, t))

    def channel_sum(c, term):
        """sum over (o, i) of term(offset) in double: LANES accumulators over i unrolled by LANES, the
        remainder into the first."""
        main = inner // LANES * LANES

        def body_o(o, acc):
            base = b.mul(b.add(b.mul(o, K(C)), c), K(inner))

            def body_q(q, acc):
                i0 = b.add(base, b.mul(q, K(LANES)))
                return [b.fadd(a, term(b.add(i0, K(k)))) for k, a in enumerate(acc)]
            acc = _for(b, fn, ir, K(0), K(inner // LANES), acc, body_q, 'q')
            rest = _for(b, fn, ir, K(main), K(inner), acc[:1], lambda i, a: [b.fadd(a[0], term(b.add(base, i)))], 'i')
            return rest + acc[1:]
        acc = _for(b, fn, ir, K(0), K(outer), [D(0.0)] * LANES, body_o, 'o')
        total = acc[0]
        for a in acc[1:]:
            total = b.fadd(total, a)
        return total

    def each(c, store):
        """for every (o, i) of channel c: store(offset)."""
        def body_o(o, _):
            base = b.mul(b.add(b.mul(o, K(C)), c), K(inner))
            def body_i(i, _):
                store(b.add(base, i))
                return []
            _for(b, fn, ir, K(0), K(inner), [], body_i, 'j')
            return []
        _for(b, fn, ir, K(0), K(outer), [], body_o, 'p')

    ld = lambda p, off: wide(b.load(b.gep(p, [off])))  # noqa: E731
    sqrt = mod.declare_intrinsic('llvm.sqrt', [d])

    if kind == 'fwd':
        x, gamma, beta, out, mean_p, var_p = ptrs

        def body_c(c, _):
            mean = b.fdiv(channel_sum(c, lambda off: ld(x, off)), D(m))
            var = b.fdiv(channel_sum(c, lambda off: (lambda v: b.fmul(v, v))(b.fsub(ld(x, off), mean))), D(m))
            inv = b.fdiv(D(1.0), b.call(sqrt, [b.fadd(var, D(eps))]))
            scale = inv if fix_gamma else b.fmul(ld(gamma, c), inv)
            shift = b.fsub(ld(beta, c), b.fmul(mean, scale))
            each(c, lambda off: b.store(narrow(b.fadd(b.fmul(ld(x, off), scale), shift)), b.gep(out, [off])))
            b.store(narrow(mean), b.gep(mean_p, [c]))
            b.store(narrow(var), b.gep(var_p, [c]))
            return []
    else:
        g, x, gamma, mean_p, var_p, dx, dgamma, dbeta = ptrs

        def body_c(c, _):
            mean, inv = ld(mean_p, c), b.fdiv(D(1.0), b.call(sqrt, [b.fadd(ld(var_p, c), D(eps))]))
            sg = channel_sum(c, lambda off: ld(g, off))
            sgx = channel_sum(c, lambda off: b.fmul(ld(g, off), b.fsub(ld(x, off), mean)))
            dgam = b.fmul(sgx, inv)
            scale = inv if fix_gamma else b.fmul(ld(gamma, c), inv)
            # dx = scale * (g - (sum g + xhat * dgamma) / m), xhat = (x - mean) * inv
            k1, k2 = b.fdiv(sg, D(m)), b.fdiv(b.fmul(dgam, inv), D(m))
            each(c, lambda off: b.store(narrow(b.fmul(scale, b.fsub(ld(g, off), b.fadd(
                k1, b.fmul(b.fsub(ld(x, off), mean), k2))))), b.gep(dx, [off])))
            b.store(narrow(D(0.0) if fix_gamma else dgam), b.gep(dgamma, [c]))
            b.store(narrow(sg), b.gep(dbeta, [c]))
            return []
    _for(b, fn, ir, start, stop, [], body_c, 'c')
    b.ret_void()
    return str(mod)


def _kernel(kind, outer, C, inner, eps, fix_gamma, dtype):
    key = (kind, outer, C, inner, eps, fix_gamma, str(dtype))
    with _lock:
        kern = _kernels.get(key)
        if kern is None:
            text = _build(kind, outer, C, inner, eps, fix_gamma, dtype)
            n_in = 3 if kind == 'fwd' else 5
            kern = _kernels[key] = Kernel(compile_kernel(text, f'bn_{kind}'), [C, 1], n_in, 3, dtype)
            kern.total = outer * C * inner   # split over cores by the work, channel ranges apart
        return kern


def forward(x, gamma, beta, ax, eps, fix_gamma):
    """(out, batch mean, batch variance) normalized over every axis but ax, or None."""
    gamma, beta = (np.ascontiguousarray(a, dtype=x.dtype) for a in (gamma, beta))
    if not _usable(x, gamma, beta):
        return None
    outer, C, inner = _view(x, ax)
    out, mean, var = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    _kernel('fwd', outer, C, inner, float(eps), bool(fix_gamma), x.dtype)([x, gamma, beta], [out, mean, var])
    return out, mean, var


def backward(g, x, gamma, mean, var, ax, eps, fix_gamma):
    """(d data, d gamma, d beta) of forward() with its batch statistics, or None."""
    gamma, mean, var = (np.ascontiguousarray(a, dtype=x.dtype) for a in (gamma, mean, var))
    if not _usable(g, x, gamma, mean, var):
        return None
    outer, C, inner = _view(x, ax)
    dx, dgamma, dbeta = np.empty_like(x), np.empty(C, x.dtype), np.empty(C, x.dtype)
    _kernel('bwd', outer, C, inner, float(eps), bool(fix_gamma), x.dtype)([g, x, gamma, mean, var],
                                                                          [dx, dgamma, dbeta])
    return dx, dgamma, dbeta
