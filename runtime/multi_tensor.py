"""Multi-tensor optimizer updates (as apex's multi_tensor_apply): one native call updates every dense
parameter of a Trainer, instead of a few NumPy ops with temporaries per parameter.

A kernel is generated per optimizer kind, element type and option set (clip, momentum, ...). Its
arguments are a table of rows, one per chunk of a tensor (WORDS int64: weight, gradient and state
pointers, the chunk's length, its tensor's index and flags), and a table of per-tensor scalars in the
element type (learning rate, weight decay, ...). Each element runs the same sequence of rounded
operations as the optimizer's NumPy `_step` (graphc/optimizer/optimizer.py): no contraction into FMAs,
a constant rounded to the element type where NumPy rounds the Python float, so the fused update
equals the per-parameter one bit for bit. A tensor whose wd is 0 skips the wd terms, as `if wd:` does.
"""
import ctypes
import hashlib

import numpy as np

WORDS = 8                   # a row: w, g, state 0..2, length, tensor index, flags
N, TI, FLAGS = 5, 6, 7       # the words after the five pointers
WD = 1                      # flag: this tensor's wd is nonzero
CHUNK = 1 << 15             # elements per row: rows split evenly over threads
SPLIT = 1 << 22             # elements: fewer run on one thread (loaded here, two lost at 1M, won at 4M: --split)

stats = {'calls': 0, 'compiled': 0}
_kernels = {}

# the scalars of each kind, in table order; the states each kind reads and writes
SCALARS = {
    'sgd': ('lr_rescale', 'rescale', 'clip_lo', 'clip_hi', 'lr', 'decay', 'lr_wd', 'momentum'),
    'nag': ('rescale', 'clip_lo', 'clip_hi', 'wd', 'lr', 'momentum'),
    'adam': ('rescale', 'wd', 'clip_lo', 'clip_hi', 'b1', 'one_b1', 'b2', 'one_b2', 'eps', 'lr'),
    'adamw': ('rescale', 'clip_lo', 'clip_hi', 'b1', 'one_b1', 'b2', 'one_b2', 'eps', 'step', 'lr_wd'),
    'rmsprop': ('rescale', 'wd', 'clip_lo', 'clip_hi', 'g1', 'one_g1', 'eps', 'lr', 'g2', 'cw_lo', 'cw_hi'),
    'adagrad': ('rescale', 'clip_lo', 'clip_hi', 'eps', 'wd', 'lr'),
}


class _F:
    """Rounded float operations on one element (each one IEEE operation, as a NumPy ufunc on arrays)."""

    def __init__(self, b):
        self.b = b

    def mul(self, x, y):
        return self.b.fmul(x, y)

    def add(self, x, y):
        return self.b.fadd(x, y)

    def sub(self, x, y):
        return self.b.fsub(x, y)

    def div(self, x, y):
        return self.b.fdiv(x, y)

    def sqrt(self, x):
        if hasattr(x.type, 'count'):   # (a vector: llvmlite names no intrinsic over one)
            import llvmlite.ir as ir
            name = f'llvm.sqrt.v{x.type.count}{x.type.element.intrinsic_name}'
            fn = self.b.module.globals.get(name) or ir.Function(self.b.module, ir.FunctionType(x.type, [x.type]), name)
        else:
            fn = self.b.module.declare_intrinsic('llvm.sqrt', [x.type])
        return self.b.call(fn, [x])

    def clip(self, x, lo, hi):  # np.clip: max(x, lo) then min(., hi), a NaN x kept
        x = self.b.select(self.b.fcmp_unordered('>', x, lo), x, lo)
        return self.b.select(self.b.fcmp_unordered('<', x, hi), x, hi)


def _body(kind, opts, wd, f, x, c):
    """New values of the weight and states ({'w': ..., 's0': ...}) from loaded x and scalars c, in the order
    of operations of the optimizer's _step. opts: the kind's compile-time options; wd: this tensor's wd != 0."""
    w, g = x['w'], x['g']
    if kind == 'sgd':
        clip, mom = opts
        if clip:
            t = f.mul(f.clip(f.mul(g, c['rescale']), c['clip_lo'], c['clip_hi']), c['lr'])
        else:
            t = f.mul(g, c['lr_rescale'])
        if not mom:
            if wd:
                w = f.mul(w, c['decay'])
            return {'w': f.sub(w, t)}
        m = f.sub(f.mul(x['s0'], c['momentum']), t)
        if wd:
            m = f.sub(m, f.mul(w, c['lr_wd']))
        return {'w': f.add(w, m), 's0': m}
    if kind == 'nag':
        clip, mom = opts
        t = f.mul(g, c['rescale'])
        if clip:
            t = f.clip(t, c['clip_lo'], c['clip_hi'])
        if wd:
            t = f.add(t, f.mul(w, c['wd']))
        t = f.mul(t, c['lr'])
        w = f.sub(w, t)
        if not mom:
            return {'w': w}
        m = f.sub(f.mul(x['s0'], c['momentum']), t)
        return {'w': f.add(w, f.mul(m, c['momentum'])), 's0': m}
    if kind in ('adam', 'adamw', 'rmsprop'):
        t = f.mul(g, c['rescale'])
        if wd and kind != 'adamw':
            t = f.add(t, f.mul(w, c['wd']))
        if opts[0]:
            t = f.clip(t, c['clip_lo'], c['clip_hi'])
    if kind == 'adam':
        m = f.add(f.mul(x['s0'], c['b1']), f.mul(t, c['one_b1']))
        v = f.add(f.mul(x['s1'], c['b2']), f.mul(f.mul(t, t), c['one_b2']))
        u = f.mul(f.div(m, f.add(f.sqrt(v), c['eps'])), c['lr'])
        return {'w': f.sub(w, u), 's0': m, 's1': v}
    if kind == 'adamw':  # w -= step*m/(sqrt(v) + eps) + lr*wd*w, always with the wd term (as _step)
        m = f.add(f.mul(x['s0'], c['b1']), f.mul(c['one_b1'], t))
        v = f.add(f.mul(x['s1'], c['b2']), f.mul(f.mul(c['one_b2'], t), t))
        u = f.div(f.mul(c['step'], m), f.add(f.sqrt(v), c['eps']))
        return {'w': f.sub(w, f.add(u, f.mul(c['lr_wd'], w))), 's0': m, 's1': v}
    if kind == 'rmsprop':
        _, centered, clip_w = opts
        n = f.add(f.mul(x['s0'], c['g1']), f.mul(f.mul(t, t), c['one_g1']))
        out = {'s0': n}
        if not centered:
            w = f.sub(w, f.mul(f.div(t, f.sqrt(f.add(n, c['eps']))), c['lr']))
        else:
            mu = f.add(f.mul(x['s1'], c['g1']), f.mul(t, c['one_g1']))
            u = f.mul(f.div(t, f.sqrt(f.add(f.sub(n, f.mul(mu, mu)), c['eps']))), c['lr'])
            d = f.sub(f.mul(x['s2'], c['g2']), u)
            w = f.add(w, d)
            out.update(s1=mu, s2=d)
        if clip_w:
            w = f.clip(w, c['cw_lo'], c['cw_hi'])
        out['w'] = w
        return out
    if kind == 'adagrad':
        t = f.mul(g, c['rescale'])
        if opts[0]:
            t = f.clip(t, c['clip_lo'], c['clip_hi'])
        h = f.add(x['s0'], f.mul(t, t))
        u = f.div(t, f.sqrt(f.add(h, c['eps'])))
        if wd:
            u = f.add(u, f.mul(w, c['wd']))
        return {'w': f.sub(w, f.mul(u, c['lr'])), 's0': h}
    raise ValueError(f"multi_tensor: unknown kind {kind!r}")


def build_ir(kind, dtype, opts, nstate, wds=(False, True)):
    """LLVM IR of `void kernel(i64* rows, T* scalars, i64 lo, i64 hi)`: rows lo..hi updated. wds: the wd cases
    compiled (one when every tensor's wd is zero, or every one nonzero: half the LLVM time of two). Each row's
    elements in vectors of cpu.VEC_BYTES, then one by one to its end: the same operations per element, compiled
    without LLVM's IR optimizer (cpu.LIGHT: 4-5 ms, not 15-20 with its loop vectorizer)."""
    import llvmlite.ir as ir
    from .cpu import VEC_BYTES, _for, _vload, _vstore
    t = ir.DoubleType() if dtype == np.float64 else ir.FloatType()
    tp, i64 = t.as_pointer(), ir.IntType(64)
    names = SCALARS[kind]
    mod = ir.Module(name='graphc_multi_tensor')
    C = lambda v: ir.Constant(i64, v)  # noqa: E731
    inner = {}
    for wd in wds:  # one element loop per wd case; noalias arguments let it vectorize without checks
        fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [tp] * (2 + nstate) + [i64, tp]), name=f'elems{int(wd)}')
        fn.linkage = 'internal'
        for a in fn.args[:2 + nstate] + (fn.args[-1],):
            a.add_attribute('noalias')
        b = ir.IRBuilder(fn.append_basic_block('entry'))
        ptrs = dict(zip(['w', 'g'] + [f's{k}' for k in range(nstate)], fn.args))
        c = {nm: b.load(b.gep(fn.args[-1], [C(k)])) for k, nm in enumerate(names)}

        vl = VEC_BYTES // dtype.itemsize
        cv = {nm: _vload(ir, b, b.gep(fn.args[-1], [C(k)]), vl, False) for k, nm in enumerate(names)}

        def elem(i, _, b=b, ptrs=ptrs, c=c, wd=wd):
            x = {k: b.load(b.gep(p, [i])) for k, p in ptrs.items()}
            for k, v in _body(kind, opts, wd, _F(b), x, c).items():
                b.store(v, b.gep(ptrs[k], [i]))
            return []

        def vec(i, _, b=b, ptrs=ptrs, cv=cv, wd=wd):
            x = {k: _vload(ir, b, b.gep(p, [i]), vl, True) for k, p in ptrs.items()}
            for k, v in _body(kind, opts, wd, _F(b), x, cv).items():
                _vstore(ir, b, v, b.gep(ptrs[k], [i]))
            return []
        end = b.and_(fn.args[-2], C(-vl))
        _for(b, fn, ir, C(0), end, [], vec, 'v', step=vl)
        _for(b, fn, ir, end, fn.args[-2], [], elem, 'e')
        b.ret_void()
        inner[wd] = fn
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i64.as_pointer(), tp, i64, i64]), name='kernel')
    rows, scal, lo, hi = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))

    def row(r, _):
        base = b.gep(rows, [b.mul(r, C(WORDS))])
        word = lambda k: b.load(b.gep(base, [C(k)]))  # noqa: E731
        args = [b.inttoptr(word(k), tp) for k in range(2 + nstate)]
        args += [word(N), b.gep(scal, [b.mul(word(TI), C(len(names)))])]
        if len(inner) == 1:
            b.call(inner[wds[0]], args)
            return []
        has_wd = b.icmp_signed('!=', b.and_(word(FLAGS), C(WD)), C(0))
        with b.if_else(has_wd) as (yes, no):
            with yes:
                b.call(inner[True], args)
            with no:
                b.call(inner[False], args)
        return []
    _for(b, fn, ir, lo, hi, [], row, 'r')
    b.ret_void()
    return str(mod)


class Kernel:
    """A compiled multi-tensor update: k(rows, scalars) with rows an int64 (n, WORDS) table, scalars the
    kind's (tensors, len(SCALARS[kind])) table in the element type."""

    def __init__(self, addr):
        self.cfn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)(addr)

    def __call__(self, table, scalars):
        stats['calls'] += 1
        r, s = table.rows.ctypes.data, scalars.ctypes.data
        cut = table.cut
        if cut:  # two threads: the pool takes the second half of the elements (ctypes releases the GIL)
            from .cpu import _pool
            rest = _pool().submit(self.cfn, r, s, cut, table.n)
            self.cfn(r, s, 0, cut)
            rest.result()
        else:
            self.cfn(r, s, 0, table.n)


def kernel(kind, dtype, opts, nstate, wds=(False, True)):
    """The compiled Kernel for (kind, dtype, opts, wds), built once per process (object code from the disk cache)."""
    key = (kind, np.dtype(dtype).name, tuple(opts), nstate, tuple(wds))
    k = _kernels.get(key)
    if k is None:
        from .cpu import Deferred, compile_ir, deferred
        if deferred():   # (a training step's first tier: the per-parameter update runs)
            raise Deferred(kind)
        text = build_ir(kind, np.dtype(dtype), tuple(opts), nstate, tuple(wds))
        name = f"graphc_mt_{kind}_{hashlib.sha256(text.encode()).hexdigest()[:20]}"
        k = _kernels[key] = Kernel(compile_ir(text.replace('@"kernel"', f'@"{name}"'), name))
        stats['compiled'] += 1
    return k


class Table:
    """The rows for a list of tensors, each (weight, grad, *states) C-contiguous NumPy arrays of one dtype and
    shape; `keep` holds them so that the pointers stay valid. flags(wd_nonzero) sets the per-tensor flags."""

    def __init__(self, tensors, threads=1):
        rows = []
        for i, arrs in enumerate(tensors):
            n, size = arrs[0].size, arrs[0].itemsize
            ptrs = [a.ctypes.data for a in arrs] + [0] * (5 - len(arrs))
            for off in range(0, n, CHUNK):
                rows.append([p + off * size if p else 0 for p in ptrs] + [min(CHUNK, n - off), i, 0])
        self.keep, self.n = tensors, len(rows)
        self.rows = np.array(rows, dtype=np.int64).reshape(-1, WORDS)
        self.tensor = self.rows[:, TI].copy()
        total = int(self.rows[:, N].sum())
        self.cut = 0
        if threads > 1 and total >= SPLIT:
            self.cut = int(np.searchsorted(np.cumsum(self.rows[:, N]), total // 2)) + 1
            self.cut = self.cut if self.cut < self.n else 0
        self._wd = None

    def flags(self, wd_nonzero):
        if self._wd is None or not np.array_equal(self._wd, wd_nonzero):
            self._wd = wd_nonzero
            self.rows[:, FLAGS] = np.where(wd_nonzero[self.tensor], WD, 0)
