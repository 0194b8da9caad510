"""CUDA code generation: the sibling of cpu.py over the same fused groups. Each group (and each single
elementwise, broadcast, reduction or injective op) becomes one `extern "C" __global__` function in plain
CUDA C, specialized to its shapes, with no #include but cuda_fp16.h / cuda_bf16.h (16-bit storage), so the
same text compiles with NVRTC (cupy's RawModule), with nvcc (tests: sm_80 and sm_90, warnings are errors) and,
through cuda_emu.h, with g++ for the host-emulation harness (emulate.py). float16 and bfloat16 (BF16) values
are stored in 16 bits and computed in float: every load converts, every store rounds to nearest even, and
reductions and BatchNorm statistics accumulate in float.

Kernel forms:
- pointwise: elementwise/broadcast groups; a grid-stride loop over the output, each input read with its
  own strides over the collapsed iteration space (0 along broadcast dims), as cpu.build_ir;
- row reduction: the reduced axes include the innermost one (softmax over the last axis, a row sum, a
  convolution's bias gradient): TPR threads per output, strided partial sums, warp shuffles, then shared
  memory across the warps of a row; the prologue is fused into the loads, the epilogue into the store;
- column reduction: the innermost axis is kept (a dense layer's bias gradient): a 32x8 block, one output
  per x thread (coalesced loads), the 8 partials combined in shared memory;
- gather: a single injective op (reshape, transpose, slice, tile, Concat, ...). Its index map is not
  decoded from attributes: the registry's NumPy kernel runs once on arrays of element indices, and the
  result is fitted as base + sum_d ((o_d / q_d) % m_d) * s_d per input piece (verified exactly), so the
  registry stays the one source of the op's semantics.
- pooling (max/avg/sum, any padding and convention) and its gradient, one thread per output or per input
  pixel (the gradient gathers from the windows covering it: no atomics); im2col and col2im likewise.
GEMMs run in the array library (cuBLAS under cupy), convolutions through cuDNN where cupy has it (cudnn.py),
else as im2col + GEMM (col2im for the data gradient), and a GEMM/convolution group's epilogue as a pointwise
kernel (cpu.split_anchor). GpuPlan runs a graph so on a device: CupyDevice, or emulate.EmuDevice. Reductions
propagate NaN as NumPy does; division and sqrt are IEEE (no fast math).
"""
import hashlib
import math
import os
import re
import shutil
import subprocess
import threading

import numpy as np

from ..base import GraphcError, bf16_kernel
from ..ops.scalar import Scalar, emit as emit_node
from .cpu import _strides, collapse, dump_code, is_private_file, private_subdir, split_anchor

THREADS = 256
MAX_GRID = 65535
CTYPES = {np.dtype('float32'): 'float', np.dtype('float64'): 'double', np.dtype('int32'): 'int',
          np.dtype('int64'): 'long long', np.dtype('uint8'): 'unsigned char', np.dtype('int8'): 'signed char'}
# 16-bit storage, float compute: loads convert to float, stores round to nearest even (cuda_fp16.h, cuda_bf16.h).
# bfloat16 is ml_dtypes' NumPy dtype (cupy 14 arrays hold it too); without ml_dtypes BF16 is None, and no kernel has it.
# (Not through base.bfloat16(): that switches on the eager ops' bfloat16 check, which only bfloat16 users pay.)
try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None
HALF = {np.dtype('float16'): ('__half', '__half2float', '__float2half_rn', 'cuda_fp16.h')}
if BF16 is not None:
    HALF[BF16] = ('__nv_bfloat16', '__bfloat162float', '__float2bfloat16_rn', 'cuda_bf16.h')
CTYPES.update({d: h[0] for d, h in HALF.items()})
FLOATS = (np.dtype(np.float32), np.dtype(np.float64)) + tuple(HALF)  # the dtypes arithmetic kernels take
F32 = np.dtype(np.float32)


def ctype(dt):
    """The C type a kernel computes in for values stored as dt (float for the 16-bit formats)."""
    return 'float' if np.dtype(dt) in HALF else CTYPES[np.dtype(dt)]


def cload(dt, ex):
    """C expression reading stored value ex as its compute type."""
    return f"{HALF[dt][1]}({ex})" if dt in HALF else ex


def cstore(dt, ex):
    """C expression of compute value ex as stored in dt (rounded to nearest even)."""
    return f"{HALF[dt][2]}({ex})" if dt in HALF else ex


def matmul(xp, a, b):
    """a @ b in the array library (cuBLAS under cupy): float16 through cupy's matmul (gemmEx, compute type 32F);
    bfloat16 upcast to float32 and the product rounded once (cupy's matmul for bfloat16 is not one we could
    check on a device, the casts are plain elementwise kernels), so both accumulate in float32."""
    if a.dtype == BF16:
        return xp.matmul(a.astype(F32), b.astype(F32)).astype(BF16)
    return xp.matmul(a, b)


NO_GATHER = ('take', 'Embedding', 'pick', 'batch_take', 'one_hot', '_slice_assign', '_slice_assign_scalar')  # data-dependent


class Kernel:
    """One generated kernel: source (one __global__ function), launch config, argument shapes/dtypes, and its
    reference: the graph it computes (inputs: its variables in argument order), or a NumPy function."""

    def __init__(self, name, source, grid, block, kind, sync, graph=None, ref=None, ins=None, outs=None,
                 identity=False):
        self.name, self.source = name, source
        self.grid, self.block = tuple(int(v) for v in grid), tuple(int(v) for v in block)  # plain ints for cupy
        self.graph, self.kind, self.sync, self.identity, self._ref = graph, kind, sync, identity, ref
        ins = ins or [(v.shapes[0], v.dtypes[0]) for v in graph.inputs]
        outs = outs or [(n.shapes[j], n.dtypes[j]) for n, j in graph.outputs]
        self.in_shapes, self.in_dtypes = [tuple(s) for s, _ in ins], [np.dtype(d) for _, d in ins]
        self.out_shapes, self.out_dtypes = [tuple(s) for s, _ in outs], [np.dtype(d) for _, d in outs]

    def __repr__(self):
        return f"Kernel({self.name}: {self.kind}, grid={self.grid}, block={self.block})"

    def reference(self, inputs):
        """The outputs the NumPy reference gives for these inputs (the interpreter for a graph's kernel)."""
        if self._ref is not None:
            r = self._ref(*inputs)
            return list(r) if isinstance(r, tuple) else [r]
        from ..interpreter import interpret
        with np.errstate(all='ignore'):
            return interpret(self.graph, dict(zip(self.graph.inputs, inputs)))

    def describe(self):
        ops = '>'.join(n.op.name for n in self.graph.nodes if not n.is_var) if self.graph else self.kind
        outs = ', '.join(f"{np.dtype(d).name}{list(s)}" for s, d in zip(self.out_shapes, self.out_dtypes))
        return f"{self.name}  {self.kind:<9} {ops}  -> {outs}  grid={self.grid} block={self.block}"


# ---------------------------------------------------------------- scalar emitters
def literal(v, ctype):
    """A C literal of v rounded to the kernel's type (as NumPy rounds a scalar to the array's dtype)."""
    f32 = ctype == 'float'
    v = float(np.float32(v)) if f32 else float(v)
    if math.isnan(v):
        return '__int_as_float(0x7fc00000)' if f32 else '__longlong_as_double(0x7ff8000000000000LL)'
    if math.isinf(v):
        s = '__int_as_float(0x7f800000)' if f32 else '__longlong_as_double(0x7ff0000000000000LL)'
        return s if v > 0 else f'(-{s})'
    s = str(np.float32(v)) if f32 else repr(v)
    if not any(ch in s for ch in '.en'):
        s += '.0'
    s += 'f' if f32 else ''
    return f'({s})' if s.startswith('-') else s


class CEmit(Scalar):
    """The scalar primitives (graphc/ops/scalar.py) in C: each value a const local; comparisons are C
    expressions. max/min/sel/fn build plain expressions for the reductions' own code."""

    def __init__(self, ctype, lines, prefix='t'):
        self.T, self.lines, self.prefix, self.k = ctype, lines, prefix, 0
        self.f64 = ctype == 'double'

    def c(self, v):
        return literal(v, self.T)

    def fn(self, name, *args):
        """A libm function for the type: expf for float, exp for double."""
        return f"{name}{'' if self.f64 else 'f'}({', '.join(args)})"

    def tmp(self, expr):
        self.k += 1
        name = f"{self.prefix}{self.k}"
        self.lines.append(f"const {self.T} {name} = {expr};")
        return name

    @staticmethod
    def sel(cond, a, b):
        return f"(({cond}) ? {a} : {b})"

    def max(self, x, y):  # NaN in either gives NaN (np.maximum)
        return self.sel(f"{x} != {x} || {x} >= {y}", x, y)

    def min(self, x, y):
        return self.sel(f"{x} != {x} || {x} <= {y}", x, y)

    def cmp(self, op, x, y):
        return f"({x} {op} {y})"

    def where(self, cond, x, y):
        return self.tmp(self.sel(cond, x, y))

    def add(self, x, y): return self.tmp(f"{x} + {y}")  # noqa: E704
    def sub(self, x, y): return self.tmp(f"{x} - {y}")  # noqa: E704
    def mul(self, x, y): return self.tmp(f"{x} * {y}")  # noqa: E704
    def div(self, x, y): return self.tmp(f"{x} / {y}")  # noqa: E704
    def neg(self, x): return self.tmp(f"-{x}")  # noqa: E704
    def maximum(self, x, y): return self.tmp(self.max(x, y))  # noqa: E704
    def minimum(self, x, y): return self.tmp(self.min(x, y))  # noqa: E704


    def libm(self, name, x, cond, other):  # C's ?: evaluates the call only where cond holds
        return self.tmp(self.sel(cond, self.fn(name, x), other))


for _f in ('abs', 'sqrt', 'floor', 'ceil', 'rint', 'copysign', 'fmod', 'exp', 'log'):
    setattr(CEmit, _f, (lambda f: lambda e, *xs: e.tmp(e.fn(f, *xs)))('fabs' if _f == 'abs' else _f))


# ---------------------------------------------------------------- index arithmetic
def _itype(*sizes):
    """int when every index and offset fits with room for a grid-stride step; else long long."""
    return 'int' if max(sizes, default=0) < (1 << 31) - (1 << 26) else 'long long'


def _decompose(lines, var, dims, I, tag):
    """Index expressions per dim of a C-order index `var` over dims (constants: the divisions are cheap)."""
    out = []
    for d in range(len(dims)):
        inner = int(np.prod(dims[d + 1:]))
        ex = var if inner == 1 else f"{var} / {inner}"
        if d > 0:
            ex = f"({ex}) % {dims[d]}" if inner != 1 else f"{var} % {dims[d]}"
        out.append(ex)
    names = []
    for d, ex in enumerate(out):
        if dims[d] == 1:
            names.append(None)
            continue
        names.append(f"{tag}{d}")
        lines.append(f"const {I} {tag}{d} = {ex};")
    return names


def _offset(idx, strides, extra=None):
    terms = [f"{i} * {s}" if s != 1 else i for i, s in zip(idx, strides) if s and i is not None]
    if extra:
        terms.append(extra)
    return ' + '.join(terms) or '0'


def _prune(lines):
    """Drop `const T name = ...;` lines whose name nothing reads (no unused-variable warnings, less code)."""
    decl = re.compile(r'^\s*const [\w ]+? (\w+) = ')
    while True:
        words = [re.findall(r'\w+', ln) for ln in lines]
        count = {}
        for ws in words:
            for w in ws:
                count[w] = count.get(w, 0) + 1
        dead = [i for i, ln in enumerate(lines) if decl.match(ln) and count[decl.match(ln).group(1)] == 1]
        if not dead:
            return lines
        lines = [ln for i, ln in enumerate(lines) if i not in set(dead)]


def _finish(kind, sig_graph, body, ctypes_in, ctypes_out, grid, block, sync, identity=False, ref=None, ins=None,
            outs=None):
    """Name the kernel by a hash of its text (identical kernels from two groups share one function)."""
    body = _prune(body)
    threads = int(np.prod(block))
    n_in, n_out = (len(sig_graph.inputs), len(sig_graph.outputs)) if sig_graph else (len(ins), len(outs))
    words = set(re.findall(r'\w+', ' '.join(body)))
    body = [f"(void)in{k};  // the op takes it; this kernel does not read it" for k in range(n_in)
            if f"in{k}" not in words] + body
    params = [f"const {ctypes_in[k]}* __restrict__ in{k}" for k in range(n_in)] + \
        [f"{ctypes_out[k]}* __restrict__ out{k}" for k in range(n_out)]
    text = f'extern "C" __global__ void __launch_bounds__({threads}) KERNEL({", ".join(params)}) {{\n' + \
        ''.join(f"  {ln}\n" for ln in body) + '}\n'
    name = f"graphc_{kind}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    k = Kernel(name, text.replace(' KERNEL(', f' {name}('), grid, block, kind, sync, sig_graph, ref, ins, outs,
               identity)
    k.source = f"// {kind}: " + ', '.join(f"{d.name}{list(s)}" for s, d in zip(k.out_shapes, k.out_dtypes)) + \
        '\n' + k.source
    dump_code(name, k.source, 'cu', sig_graph.text() if sig_graph else None)
    return k


def _uniform_dtype(sub):
    dts = {np.dtype(d) for n in sub.nodes for d in (n.dtypes or [])}
    if len(dts) != 1 or next(iter(dts)) not in FLOATS:
        return None
    return next(iter(dts))


def _evaluate(e, nodes, vals, load):
    """Emit nodes in order; vals maps (node, j) -> C name; load(var) gives a var's C name."""
    for n in nodes:
        args = []
        for s, j in n.inputs:
            if (s, j) not in vals:
                if not s.is_var:
                    raise _NoEmit
                vals[(s, j)] = load(s)
            args.append(vals[(s, j)])
        ex = emit_node(e, n, args)
        if ex is None:
            raise _NoEmit
        vals[(n, 0)] = e.tmp(ex)
    return vals


class _NoEmit(Exception):
    pass


# ---------------------------------------------------------------- pointwise
def pointwise(sub, dtype):
    """Elementwise/broadcast group: one thread per output element (grid-stride loop)."""
    outs = sub.outputs
    full = tuple(outs[0][0].shapes[outs[0][1]])
    if any(tuple(n.shapes[j]) != full for n, j in outs) or 0 in full:
        return None
    for n in sub.nodes:
        if any(s is None or len(s) > len(full) for s in (n.shapes or [None])):
            return None
    it = full or (1,)
    in_st = [_strides(v.shapes[0], it) for v in sub.inputs]
    dims, sts = collapse(list(it), in_st + [_strides(it, it)] * len(outs))
    total = int(np.prod(dims))
    I, T, S = _itype(total), ctype(dtype), CTYPES[dtype]
    body, inner = [_loop(total, I)], []
    idx = _decompose(inner, 'i', dims, I, 'q')
    contiguous = sts[-1]
    pos = {v: k for k, v in enumerate(sub.inputs)}
    e = CEmit(T, inner, 'v')

    def load(v):
        k = pos[v]
        off = 'i' if sts[k] == contiguous else _offset(idx, sts[k])
        return e.tmp(cload(dtype, f"in{k}[{off}]"))
    try:
        vals = _evaluate(e, [n for n in sub.nodes if not n.is_var], {}, load)
    except _NoEmit:
        return None
    for k, (n, j) in enumerate(outs):
        inner.append(f"out{k}[i] = {cstore(dtype, vals[(n, j)])};")
    body += ['  ' + ln for ln in inner] + ['}']
    return _finish('ew', sub, body, [S] * len(sub.inputs), [S] * len(outs), *_grid(total), False)


# ---------------------------------------------------------------- reductions
# name: (init, per-element map, combine partials, finalize(acc, count))
REDUCE = {
    'sum': (0.0, None, '+', None), 'mean': (0.0, None, '+', 'mean'), 'prod': (1.0, None, '*', None),
    'max': (float('-inf'), None, 'max', None), 'min': (float('inf'), None, 'min', None),
}


def _red_spec(red):
    if red.op.name == 'norm':
        if red.attrs['ord'] == 1:
            return (0.0, 'abs', '+', None)
        return (0.0, 'square', '+', 'sqrt') if red.attrs['ord'] == 2 else None
    return REDUCE.get(red.op.name)


def _combine(e, op, a, b):
    return {'+': lambda: f"{a} + {b}", '*': lambda: f"{a} * {b}", 'max': lambda: e.max(a, b),
            'min': lambda: e.min(a, b)}[op]()


def reduction(sub, dtype, red):
    """A group with one reduction (sum/mean/prod/max/min/norm over any axes, softmax/log_softmax over any
    axis), its elementwise prologue, and its epilogue: per output (shape R), or per element (shape X) reading
    the reduced value broadcast back (softmax's gradient); None when the group does not fit."""
    from graphc.registry import reduce_axes
    from graphc.registry import norm_axis
    X = tuple(red.inputs[0][0].shapes[red.inputs[0][1]])
    nd = len(X)
    if nd == 0 or 0 in X:
        return None
    soft = red.op.name in ('softmax', 'log_softmax')
    if soft:
        axes, spec = (norm_axis(red.attrs['axis'], nd),), None
    else:
        spec = _red_spec(red)
        if spec is None:
            return None
        axes = reduce_axes(red.attrs['axis'], nd, red.attrs.get('exclude', False))
    if not axes:
        return None
    Yk = tuple(1 if d in axes else X[d] for d in range(nd))
    R = tuple(red.shapes[0])
    ops = [n for n in sub.nodes if not n.is_var]
    if any(n.op.kind == 'reduce' for n in ops if n is not red) or any(n.num_outputs != 1 for n in ops):
        return None
    pro, stack = set(), [red.inputs[0][0]]
    while stack:  # the prologue: what the reduction reads
        n = stack.pop()
        if not n.is_var and n not in pro:
            pro.add(n)
            stack += [s for s, _ in n.inputs]

    def xshape(shape, y):
        """An operand's shape as X-rank (a per-output value gets its reduced axes back as 1)."""
        shape = tuple(shape)
        if y:
            shape = (1,) * (len(R) - len(shape)) + shape
            if len(R) != nd:
                it = iter(shape)
                shape = tuple(1 if d in axes else next(it) for d in range(nd))
        return shape if len(shape) <= nd else None
    # levels: 'x' values exist per element of X (the prologue, softmax and what reads them), 'y' per output
    xlev = {n for n in ops if n in pro}
    if soft:
        xlev.add(red)
    ylev = set() if soft else {red}
    for n in ops:
        if n in pro or n is red:
            continue
        ins = [s for s, _ in n.inputs if not s.is_var]
        # softmax's kernel has no per-output stage: a branch beside it (on the anchor, say) runs per element
        if soft or any(s in xlev for s in ins) or tuple(n.shapes[0]) != R:
            if len(n.shapes[0]) > nd or (any(s in ylev for s in ins) and
                                         (1,) * (nd - len(R)) + R != Yk):
                return None  # a per-output value read per element must line up with X (keepdims)
            xlev.add(n)
        else:
            ylev.add(n)
    epi_y = [n for n in ops if n in ylev and n is not red]
    epi_x = [n for n in ops if n in xlev and n not in pro and n is not red]
    views = {}  # (var, per-output?) -> strides over X
    for n in ops:
        y = n in ylev and n is not red  # the reduction reads its input per element
        for s, _ in n.inputs:
            if s.is_var:
                sh = xshape(s.shapes[0], y)
                if sh is None:
                    return None
                views[(s, y)] = _strides(sh, X)
    outs = []  # per output: (level, strides over X)
    for n, j in sub.outputs:
        y = n in ylev
        if tuple(n.shapes[j]) != (R if y else X):
            return None
        outs.append(('y' if y else 'pro' if n in pro else 'x', _strides(Yk if y else X, X)))
    keys = list(views)
    allst = [views[k] for k in keys] + [st for _, st in outs]
    kd, rd = [d for d in range(nd) if d not in axes], list(axes)
    ydims, yst = collapse([X[d] for d in kd] or [1], [[st[d] for d in kd] or [0] for st in allst])
    kdims, kst = collapse([X[d] for d in rd], [[st[d] for d in rd] for st in allst])
    Y, K = int(np.prod(ydims)), int(np.prod(kdims))
    row = max((d for d in range(nd) if X[d] > 1), default=nd - 1) in axes  # the innermost axis is reduced
    T, S, I = ctype(dtype), CTYPES[dtype], _itype(int(np.prod(X)))  # (sums in float for 16-bit storage)
    if row:  # the threads of a row split the reduced axes: TPR a power of two in [32, 256]
        tpr = 32
        while tpr < min(K, THREADS):
            tpr *= 2
        rpb = THREADS // tpr
        block, grid = (tpr, rpb, 1), (-(-Y // rpb), 1, 1)
        yi, k0, kstep, lead = f"({I})blockIdx.x * {rpb} + ({I})threadIdx.y", f"({I})threadIdx.x", tpr, 'x'
    else:  # one output per x thread (coalesced), the 8 y threads split the reduced axes
        block, grid = (32, 8, 1), (-(-Y // 32), 1, 1)
        yi, k0, kstep, lead = f"({I})blockIdx.x * 32 + ({I})threadIdx.x", f"({I})threadIdx.y", 8, 'y'
    if grid[0] > (1 << 31) - 1:
        return None
    nw = block[0] // 32 if row else 0
    body = []
    if not row or nw > 1:
        body.append(f"__shared__ {T} red_sh{'[8][32]' if not row else f'[{block[1]}][{nw}]'};")
    body += [f"const {I} yi = {yi};", f"const bool active = yi < {Y};"]
    if nw > 1:
        body += ["const int lane = (int)threadIdx.x & 31;", "const int warp = (int)threadIdx.x >> 5;"]
    yidx = _decompose(body, 'yi', ydims, I, 'y')
    ybase = [_offset(yidx, st) for st in yst]
    pos = {v: k for k, v in enumerate(sub.inputs)}
    kslot = {k: q for q, k in enumerate(keys)}
    e = CEmit(T, body, 'r')
    pro_nodes = [n for n in ops if n in pro]
    src = (red.inputs[0][0], red.inputs[0][1])
    temp = red.attrs.get('temperature') if soft else None
    yvals = {}  # per-output values, C names valid after the reduction

    def kloop(tag, acc=None, init=None, step=None, nodes=(), store=()):
        """A loop over this thread's share of the reduced axes: the prologue, then either acc = step(acc, value)
        or the per-element epilogue `nodes`; stores the outputs whose level is in `store`."""
        lines = []
        kidx = _decompose(lines, 'k', kdims, I, 'k' + tag)
        ee = CEmit(T, lines, 'p' + tag)

        def load(v):
            q = kslot[(v, False)]
            return ee.tmp(cload(dtype, f"in{pos[v]}[{_offset(kidx, kst[q], ybase[q] if ybase[q] != '0' else None)}]"))
        vals = _evaluate(ee, pro_nodes, dict(yvals), load)
        v = vals[src] = vals[src] if src in vals else load(red.inputs[0][0])
        if temp not in (None, 1.0):
            v = ee.tmp(f"{v} / {ee.c(temp)}")
        if acc:
            lines.append(f"{acc} = {step(ee, acc, v)};")
            body.append(f"{T} {acc} = {e.c(init)};")
        if soft and 'x' in store:  # the softmax value itself
            z = ee.tmp(f"{v} - m")
            vals[(red, 0)] = ee.tmp(f"{ee.fn('exp', z)} / s" if red.op.name == 'softmax' else f"{z} - lse")
        _evaluate(ee, nodes, vals, load)
        for q, ((n, j), (lvl, _)) in enumerate(zip(sub.outputs, outs)):
            if lvl in store:
                oq = len(keys) + q
                lines.append(f"out{q}[{_offset(kidx, kst[oq], ybase[oq] if ybase[oq] != '0' else None)}] = "
                             f"{cstore(dtype, vals[(n, j)])};")
        body.append(f"if (active) for ({I} k = {k0}; k < {K}; k += {kstep}) {{")
        body.extend('  ' + ln for ln in lines)
        body.append('}')

    def block_reduce(acc, op, init):
        """Combine acc over the threads of an output; every one of them gets the result."""
        c = lambda a, b: _combine(e, op, a, b)  # noqa: E731
        shfl = f"for (int o = {{}}; o > 0; o >>= 1) {{{{ const {T} w = __shfl_down_sync(0xffffffffu, {acc}, o); " \
               f"{acc} = {c(acc, 'w')}; }}}}"
        if row:
            body.append(shfl.format(16))
            if nw > 1:  # then across the warps of the row, through shared memory
                body.extend([f"if (lane == 0) red_sh[threadIdx.y][warp] = {acc};", "__syncthreads();",
                             f"{acc} = lane < {nw} ? red_sh[threadIdx.y][lane] : {e.c(init)};", shfl.format(nw // 2),
                             "__syncthreads();"])
            body.append(f"{acc} = __shfl_sync(0xffffffffu, {acc}, 0);")
        else:
            body.extend([f"red_sh[threadIdx.y][threadIdx.x] = {acc};", "__syncthreads();",
                         f"if (threadIdx.y == 0) {{ for (int j = 1; j < 8; ++j) {acc} = "
                         f"{c(acc, 'red_sh[j][threadIdx.x]')}; red_sh[0][threadIdx.x] = {acc}; }}",
                         "__syncthreads();", f"{acc} = red_sh[0][threadIdx.x];", "__syncthreads();"])
    try:
        if soft:
            kloop('a', 'm', float('-inf'), lambda ee, a, v: ee.max(a, v), store=('pro',))
            block_reduce('m', 'max', float('-inf'))
            kloop('b', 's', 0.0, lambda ee, a, v: f"{a} + {ee.fn('exp', f'{v} - m')}")
            block_reduce('s', '+', 0.0)
            if red.op.name == 'log_softmax':
                body.append(f"const {T} lse = {e.fn('log', 's')};")
            kloop('c', nodes=epi_x, store=('x',))
        else:
            init, fmap, op, fin = spec

            def step(ee, a, v):
                v = ee.fn('fabs', v) if fmap == 'abs' else f"{v} * {v}" if fmap == 'square' else v
                return _combine(ee, op, a, v)
            kloop('a', 'acc', init, step, store=('pro',))
            block_reduce('acc', op, init)
            res = {'mean': f"acc / {e.c(K)}", 'sqrt': e.fn('sqrt', 'acc')}.get(fin, 'acc')
            yvals[(red, 0)] = e.tmp(res)

            def yload(v):
                q = kslot[(v, True)]
                return e.tmp(cload(dtype, f"in{pos[v]}[{ybase[q]}]"))
            body.append("if (active) {")  # (inactive threads have no valid per-output offsets)
            _evaluate(e, epi_y, yvals, yload)
            for q, ((n, j), (lvl, _)) in enumerate(zip(sub.outputs, outs)):
                if lvl == 'y':
                    body.append(f"if (threadIdx.{lead} == 0) out{q}[{ybase[len(keys) + q]}] = "
                                f"{cstore(dtype, yvals[(n, j)])};")
            if epi_x:
                kloop('c', nodes=epi_x, store=('x',))
            body.append('}')
    except _NoEmit:
        return None
    kind = 'softmax' if soft else ('rowred' if row else 'colred')
    return _finish(kind, sub, body, [S] * len(sub.inputs), [S] * len(outs), grid, block, True)


# ---------------------------------------------------------------- injective ops (probed index maps)
def _fit_dim(t):
    """(q, m, s) with t[o] == ((o // q) % m) * s for every o (m 0: no modulus); None when there is none."""
    n = len(t)
    nz = np.nonzero(t)[0]
    if not len(nz):
        return (1, 0, 0)
    q = int(nz[0])
    s = int(t[q])
    o = np.arange(n)
    zeros = [k for k in range(1, -(-n // q)) if t[k * q] == 0]
    m = zeros[0] if zeros else 0
    pred = ((o // q) % m if m else o // q) * s
    return (q, m, s) if np.array_equal(pred, t) else None


def _fit_output(got, bases, n_inputs):
    """[(input, piece dim, piece start, base, per-dim (q, m, s))] mapping one output's elements to inputs, from
    the probe's element indices; None when no such map reproduces them all."""
    gi = got.astype(np.int64)
    if not np.array_equal(gi, got) or gi.min() < 0 or gi.max() >= bases[-1]:
        return None
    which = np.searchsorted(bases, gi, side='right') - 1
    local = gi - bases[which]
    shape = got.shape or (1,)
    which, local = which.reshape(shape), local.reshape(shape)
    if n_inputs == 1:
        pieces = [(0, None, 0, shape[0])]
    else:  # the input may change along one output dim only (Concat, stack): pieces along it
        dims = [d for d in range(len(shape)) if not np.all(np.diff(which, axis=d) == 0)]
        if len(dims) > 1:
            return None
        d = dims[0] if dims else 0
        line = which[tuple(slice(None) if a == d else 0 for a in range(len(shape)))]
        cuts = [0] + [int(c) + 1 for c in np.nonzero(np.diff(line))[0]] + [shape[d]]
        pieces = [(int(line[lo]), d, lo, hi) for lo, hi in zip(cuts, cuts[1:])]
    fits = []
    for k, d, lo, hi in pieces:
        L = local if d is None else local[tuple(slice(lo, hi) if a == d else slice(None) for a in range(len(shape)))]
        base = int(L.reshape(-1)[0])
        maps, pred = [], np.full(L.shape, base, np.int64)
        for a in range(L.ndim):
            f = _fit_dim(L[tuple(slice(None) if b == a else 0 for b in range(L.ndim))] - base)
            if f is None:
                return None
            maps.append(f)
            q, m, s = f
            o = np.arange(L.shape[a])
            pred = pred + (((o // q) % m if m else o // q) * s).reshape([-1 if b == a else 1 for b in range(L.ndim)])
        if not np.array_equal(pred, L):
            return None
        fits.append((k, d, lo, base, maps))
    return fits


def gather(sub):
    """A single injective op (one or more inputs and outputs): each output element read from an input element by
    a map fitted to what the op's NumPy kernel does with arrays of element indices."""
    (node,) = [n for n in sub.nodes if not n.is_var]
    if node.op.name in NO_GATHER or any(s[0].shapes[s[1]] is None for s in node.inputs):
        return None
    dt = np.dtype(node.dtypes[0])
    if dt not in CTYPES or any(np.dtype(d) != dt for d in node.dtypes) or \
            any(np.dtype(v.dtypes[0]) != dt for v in sub.inputs):
        return None
    out_shapes = [tuple(s) for s in node.shapes]
    sizes = [int(np.prod(v.shapes[0])) for v in sub.inputs]
    if any(0 in s for s in out_shapes) or 0 in sizes or sum(sizes) > (1 << 22):
        return None
    bases = np.cumsum([0] + sizes)
    probes = [np.arange(bases[k], bases[k + 1], dtype=np.float64).reshape(v.shapes[0])
              for k, v in enumerate(sub.inputs)]
    try:
        got = node.op.ref(node.attrs, *probes)
    except Exception:  # an op whose kernel needs real data: no gather kernel
        return None
    got = [np.asarray(g) for g in (got if isinstance(got, tuple) else (got,))]
    if [g.shape for g in got] != out_shapes or any(g.dtype != np.float64 for g in got):
        return None
    fits = [_fit_output(g, bases, len(sizes)) for g in got]
    if any(f is None for f in fits):
        return None
    totals = [int(np.prod(s)) for s in out_shapes]
    I, T = _itype(max(totals), bases[-1]), CTYPES[dt]
    identity = len(got) == 1 and sizes[0] == totals[0] and len(sizes) == 1 and \
        np.array_equal(got[0].reshape(-1), np.arange(totals[0]))
    body = []
    for q, (shape, total, pieces) in enumerate(zip(out_shapes, totals, fits)):
        inner = []
        idx = _decompose(inner, 'i', list(shape or (1,)), I, f'o{q}_')

        def src(k, d, lo, base, maps):
            terms = [] if not base else [str(base)]
            for a, (qq, m, s) in enumerate(maps):
                if not s or idx[a] is None:
                    continue
                o = idx[a] if a != d or not lo else f"({idx[a]} - {lo})"
                o = o if qq == 1 else f"{o} / {qq}"
                o = o if not m else f"({o}) % {m}"
                terms.append(o if s == 1 else f"({o}) * {s}")
            return f"in{k}[{' + '.join(terms) or '0'}]"
        if identity:
            inner = ["out0[i] = in0[i];"]
        for p, f in enumerate(pieces if not identity else []):
            hi = pieces[p + 1][2] if p + 1 < len(pieces) else None
            cond = f"if ({idx[f[1]]} < {hi}) " if hi is not None else ''
            inner.append(f"{'else ' if p else ''}{cond}out{q}[i] = {src(*f)};")
        body += [_loop(total, I)] + ['  ' + ln for ln in inner] + ['}']
    return _finish('copy' if identity else 'gather', sub, body, [T] * len(sub.inputs), [T] * len(got),
                   *_grid(max(totals)), False, identity)


# ---------------------------------------------------------------- pooling and convolution (NCHW)
def _grid(total):
    return (max(1, min(-(-total // THREADS), MAX_GRID)), 1, 1), (THREADS, 1, 1)


def _loop(total, I):
    return f"for ({I} i = ({I})blockIdx.x * ({I})blockDim.x + ({I})threadIdx.x; i < {total}; " \
           f"i += ({I})blockDim.x * ({I})gridDim.x) {{"


def _pool_count(e, attrs, k, pd, extra, hw, ys, xs):
    """C expression of the avg-pooling divisor of the window starting at (ys, xs), as the reference counts."""
    if attrs['count_include_pad'] and not any(extra):
        return e.c(k[0] * k[1])
    lo = [0 if not attrs['count_include_pad'] else -p for p in pd]
    hi = [h if not attrs['count_include_pad'] else h + p for h, p in zip(hw, pd)]
    n = [f"(min({s} + {kk}, {h}) - max({s}, {lo_}))" for s, kk, h, lo_ in zip((ys, xs), k, hi, lo)]
    return f"({e.T})({n[0]} * {n[1]})"


def _lowest(dt):
    """The lowest finite value of storage dt (max pooling's padding)."""
    return -3.3895313892515355e38 if dt == BF16 else float(np.finfo(dt).min)


def pooling(sub):
    """Pooling (max/avg/sum, any convention, global) as one thread per output window."""
    from graphc.ops.nn import pool_geom
    (node,) = [n for n in sub.nodes if not n.is_var]
    dt = np.dtype(node.dtypes[0])
    if dt not in FLOATS:
        return None
    x = tuple(sub.inputs[0].shapes[0])
    a = node.attrs
    if len(x) != 4 or a.get('layout', 'None') not in ('None', 'NCHW'):
        return None  # (1-d, 3-d, channels-last: the host kernel)
    k, st, pd, extra, (oh, ow) = pool_geom(a, x)
    n, c, h, w = x
    T, S, total = ctype(dt), CTYPES[dt], n * c * oh * ow
    I = _itype(total, n * c * h * w)
    pt = a['pool_type']
    body = [_loop(total, I)]
    e = CEmit(T, body)
    low = e.c(_lowest(dt))
    body += [f"  const {I} ox = i % {ow}, oy = (i / {ow}) % {oh}, nc = i / {oh * ow};",
             f"  const int ys = (int)oy * {st[0]} - {pd[0]}, xs = (int)ox * {st[1]} - {pd[1]};",
             f"  const {S}* src = in0 + nc * {h * w};",
             f"  {T} acc = {low if pt == 'max' else e.c(0)};",
             f"  for (int a = max(ys, 0); a < min(ys + {k[0]}, {h}); ++a)",
             f"    for (int b = max(xs, 0); b < min(xs + {k[1]}, {w}); ++b) {{",
             f"      const {T} v = {cload(dt, f'src[a * {w} + b]')};",
             f"      acc = {e.max('acc', 'v') if pt == 'max' else 'acc + v'};", "    }"]
    if pt == 'avg':
        body.append(f"  acc = acc / {_pool_count(e, a, k, pd, extra, (h, w), 'ys', 'xs')};")
    body += [f"  out0[i] = {cstore(dt, 'acc')};", "}"]
    return _finish('pool', sub, body, [S], [S], *_grid(total), False)


def pooling_grad(sub):
    """_backward_Pooling as one thread per input element, gathering from the windows that cover it: max
    routes a window's gradient to its first maximum (row-major taps, padding as the lowest value)."""
    from graphc.ops.nn import pool_geom
    (node,) = [n for n in sub.nodes if not n.is_var]
    dt = np.dtype(node.dtypes[0])
    if dt not in FLOATS or any(np.dtype(v.dtypes[0]) != dt for v in sub.inputs):
        return None
    pos = {v: q for q, v in enumerate(sub.inputs)}
    gi, xi, yi = (pos[s] for s, _ in node.inputs)
    x = tuple(node.shapes[0])
    a = node.attrs
    if len(x) != 4 or a.get('layout', 'None') not in ('None', 'NCHW'):
        return None
    k, st, pd, extra, (oh, ow) = pool_geom(a, x)
    n, c, h, w = x
    T, S, total = ctype(dt), CTYPES[dt], n * c * h * w
    I = _itype(total, n * c * oh * ow)
    pt = a['pool_type']
    body = [_loop(total, I)]
    e = CEmit(T, body)
    low = e.c(_lowest(dt))
    body += [f"  const int px = (int)(i % {w}), py = (int)((i / {w}) % {h});",
             f"  const {I} nc = i / {h * w};",
             f"  const {T} xv = {cload(dt, f'in{xi}[i]')};",
             f"  {T} acc = {e.c(0)};",
             f"  const int ty = py + {pd[0] - k[0] + 1}, tx = px + {pd[1] - k[1] + 1};  // first window covering p",
             f"  const int oy0 = ty <= 0 ? 0 : (ty + {st[0] - 1}) / {st[0]};",
             f"  const int ox0 = tx <= 0 ? 0 : (tx + {st[1] - 1}) / {st[1]};",
             f"  for (int oy = oy0; oy <= min((py + {pd[0]}) / {st[0]}, {oh - 1}); ++oy)",
             f"    for (int ox = ox0; ox <= min((px + {pd[1]}) / {st[1]}, {ow - 1}); ++ox) {{",
             f"      const {I} o = nc * {oh * ow} + oy * {ow} + ox;",
             f"      const int ys = oy * {st[0]} - {pd[0]}, xs = ox * {st[1]} - {pd[1]};"]
    if pt == 'max':
        body += [f"      const {T} yv = {cload(dt, f'in{yi}[o]')};",
                 "      if (xv != yv) continue;",
                 "      bool first = true;  // no earlier tap of the window holds the maximum",
                 f"      for (int t = 0; t < (py - ys) * {k[1]} + (px - xs) && first; ++t) {{",
                 f"        const int a = ys + t / {k[1]}, b = xs + t % {k[1]};",
                 f"        const {T} v = (a >= 0 && a < {h} && b >= 0 && b < {w}) ? "
                 f"{cload(dt, f'in{xi}[nc * {h * w} + a * {w} + b]')} : {low};",
                 "        first = v != yv;",
                 "      }",
                 f"      if (first) acc = acc + {cload(dt, f'in{gi}[o]')};"]
    elif pt == 'avg':
        body.append(f"      acc = acc + {cload(dt, f'in{gi}[o]')} / {_pool_count(e, a, k, pd, extra, (h, w), 'ys', 'xs')};")
    else:
        body.append(f"      acc = acc + {cload(dt, f'in{gi}[o]')};")
    body += ["    }", f"  out0[i] = {cstore(dt, 'acc')};", "}"]
    if pt != 'max':
        body = [ln for ln in body if 'xv' not in ln]
    return _finish('poolgrad', sub, body, [S] * len(sub.inputs), [S], *_grid(total), False)


def im2col_kernel(shape, dtype, k, st, dl, pd):
    """(N, C, H, W) -> columns (N, C*kh*kw, OH*OW), zeros where a tap reads padding (as ops.nn.im2col)."""
    from graphc.ops.nn import conv_out, im2col
    n, c, h, w = shape
    oh, ow = (conv_out(shape[2 + i], k[i], st[i], dl[i], pd[i]) for i in range(2))
    dt = np.dtype(dtype)
    T, total = CTYPES[dt], n * c * k[0] * k[1] * oh * ow
    I = _itype(total)
    body = [_loop(total, I),
            f"  const int ox = (int)(i % {ow}), oy = (int)((i / {ow}) % {oh});",
            f"  const int kx = (int)((i / {oh * ow}) % {k[1]}), ky = (int)((i / {oh * ow * k[1]}) % {k[0]});",
            f"  const {I} nc = i / {oh * ow * k[0] * k[1]};",
            f"  const int a = oy * {st[0]} - {pd[0]} + ky * {dl[0]}, b = ox * {st[1]} - {pd[1]} + kx * {dl[1]};",
            f"  out0[i] = (a >= 0 && a < {h} && b >= 0 && b < {w}) ? in0[nc * {h * w} + a * {w} + b] : {cstore(dt, f'({ctype(dt)})0')};",
            "}"]
    return _finish('im2col', None, body, [T], [T], *_grid(total), False, ref=lambda x: im2col(x, k, st, dl, pd)[0],
                   ins=[(shape, dtype)], outs=[((n, c * k[0] * k[1], oh * ow), dtype)])


def col2im_kernel(shape, dtype, k, st, dl, pd, out_hw):
    """Columns (N, C*kh*kw, OH*OW) -> the (N, C, H, W) image summing every tap that reads each pixel (the adjoint
    of im2col, as a gather: no atomics)."""
    from graphc.ops.nn import col2im
    n, c, h, w = shape
    oh, ow = out_hw
    dt = np.dtype(dtype)
    T, S, total = ctype(dt), CTYPES[dt], n * c * h * w
    I = _itype(total, n * c * k[0] * k[1] * oh * ow)
    tap = f"in0[((nc * {k[0]} + ky) * {k[1]} + kx) * {oh * ow} + (ty / {st[0]}) * {ow} + tx / {st[1]}]"
    body = [_loop(total, I),
            f"  const int px = (int)(i % {w}), py = (int)((i / {w}) % {h});",
            f"  const {I} nc = i / {h * w};",
            f"  {T} acc = ({T})0;",
            f"  for (int ky = 0; ky < {k[0]}; ++ky) {{",
            f"    const int ty = py + {pd[0]} - ky * {dl[0]};",
            f"    if (ty < 0 || ty % {st[0]} != 0 || ty / {st[0]} >= {oh}) continue;",
            f"    for (int kx = 0; kx < {k[1]}; ++kx) {{",
            f"      const int tx = px + {pd[1]} - kx * {dl[1]};",
            f"      if (tx < 0 || tx % {st[1]} != 0 || tx / {st[1]} >= {ow}) continue;",
            f"      acc = acc + {cload(dt, tap)};",
            "    }", "  }", f"  out0[i] = {cstore(dt, 'acc')};", "}"]
    return _finish('col2im', None, body, [S], [S], *_grid(total), False,
                   ref=lambda col: np.ascontiguousarray(col2im(col, shape, k, st, dl, pd, out_hw)),
                   ins=[((n, c * k[0] * k[1], oh * ow), dtype)], outs=[(shape, dtype)])


# ---------------------------------------------------------------- data-dependent indexing and BatchNorm
INDEXED = ('pick', '_backward_pick', 'take', 'Embedding', '_backward_take')
OWN_KERNELS = ('Pooling', '_backward_Pooling', 'BatchNorm', '_backward_BatchNorm') + INDEXED  # opaque ops with kernels


def _index_expr(v, n, mode):
    """C expression of an integer index from value v (float or int) into a dimension of n, with MXNet's modes
    ('raise' cannot raise on a device: valid indices, negative ones counted from the end, are wrapped)."""
    i = f"(long long)({v})"
    if mode == 'clip':
        return f"min(max({i}, 0LL), {n - 1}LL)"
    return f"((({i}) % {n}LL + {n}LL) % {n}LL)"


def _oar(shape, ax):
    """(outer, axis, inner) sizes of shape around axis ax."""
    return int(np.prod(shape[:ax])), int(shape[ax]), int(np.prod(shape[ax + 1:]))


def indexed(sub):
    """pick, take/Embedding and their gradients: one thread per output element, indices read from the index
    input as data (values, not a fitted map). The gradients gather (no atomics): _backward_take's output row
    sums every index position that names it; _backward_pick writes ograd where the index picks, else 0."""
    from graphc.registry import norm_axis
    (node,) = [n for n in sub.nodes if not n.is_var]
    name, a = node.op.name, node.attrs
    shapes = [tuple(v.shapes[0]) for v in sub.inputs]
    dts = [np.dtype(v.dtypes[0]) for v in sub.inputs]
    dt = np.dtype(node.dtypes[0])
    if dt not in FLOATS or any(d not in CTYPES for d in dts) or \
            any(0 in s for s in shapes + [tuple(node.shapes[0])]):
        return None
    out = tuple(node.shapes[0])
    total = int(np.prod(out))
    T, zero = ctype(dt), cstore(dt, f"({ctype(dt)})0")
    if name in ('pick', '_backward_pick'):
        d = shapes[0]
        ax = norm_axis(a['axis'], len(d))
        O, K, R = _oar(d, ax)
        idx = _index_expr(cload(dts[1], f'in1[o * {R} + r]'), K, a['mode'])
        if dts[0] != dt or (name == '_backward_pick' and dts[2] != dt):
            return None
        if name == 'pick':
            body = [f"  const long long r = i % {R}, o = i / {R};",
                    f"  out0[i] = in0[(o * {K} + {idx}) * {R} + r];"]
        else:
            body = [f"  const long long r = i % {R}, k = (i / {R}) % {K}, o = i / {R * K};",
                    f"  out0[i] = k == {idx} ? in2[o * {R} + r] : {zero};"]
    elif name in ('take', 'Embedding'):
        data, ind = (1, 0) if name == 'Embedding' else (0, 1)
        ax = 0 if name == 'Embedding' else a['axis'] % len(shapes[0])
        O, A, R = _oar(shapes[data], ax)
        M = int(np.prod(shapes[ind]))
        mode = 'clip' if name == 'Embedding' else a['mode']
        if dts[data] != dt:
            return None
        body = [f"  const long long r = i % {R}, m = (i / {R}) % {M}, o = i / {R * M};",
                f"  out0[i] = in{data}[(o * {A} + {_index_expr(cload(dts[ind], f'in{ind}[m]'), A, mode)}) * {R} + r];"]
    else:  # _backward_take: indices (M), ograd (O, M, R) -> (O, dim, R)
        M, n = int(np.prod(shapes[0])), a['dim']
        ax = a['axis'] % (len(shapes[1]) - len(shapes[0]) + 1)
        R = int(np.prod(shapes[1][ax + len(shapes[0]):]))
        if dts[1] != dt or not n:
            return None
        body = [f"  const long long r = i % {R}, row = (i / {R}) % {n}, o = i / {R * n};",
                f"  {T} acc = ({T})0;",
                f"  for (long long m = 0; m < {M}; ++m)",
                f"    if ({_index_expr(cload(dts[0], 'in0[m]'), n, a['mode'])} % {n}LL == row) "
                f"acc = acc + {cload(dt, f'in1[(o * {M} + m) * {R} + r]')};",
                f"  out0[i] = {cstore(dt, 'acc')};"]
    body = [_loop(total, _itype(total))] + body + ['}']
    return _finish('index', sub, body, [CTYPES[d] for d in dts], [CTYPES[dt]], *_grid(total), False)


def _channel_threads(m):
    """Threads of a per-channel block over m elements: a power of two in [32, 256] (no idle warps on small m)."""
    t = 32
    while t < min(m // 8, THREADS):
        t *= 2
    return t


def _block_sum(T, names, threads):
    """Lines that sum each of `names` (per-thread partials) over a block of `threads` through shared memory;
    every thread gets the totals. The barriers are outside any branch (every thread reaches them)."""
    lines = [f"__shared__ {T} sh_{v}[{threads}];" for v in names]
    lines += [f"sh_{v}[threadIdx.x] = {v};" for v in names] + ["__syncthreads();",
              f"for (int s = {threads // 2}; s > 0; s >>= 1) {{",
              "  if ((int)threadIdx.x < s) { " + ' '.join(f"sh_{v}[threadIdx.x] += sh_{v}[threadIdx.x + s];"
                                                        for v in names) + " }",
              "  __syncthreads();", "}"]
    lines += [f"{v} = sh_{v}[0];" for v in names] + ["__syncthreads();"]
    return lines


def _per_channel(sub, data):
    """What both BatchNorm kernels share: (attrs, channels C, compute type T, elements per channel M, an emitter,
    the loop over a channel's elements q, threads per block, a loader and a storer per argument), or None where
    the kernel has no form (another dtype, mixed dtypes, an empty array). data: the index of the data input.
    16-bit data may come with float32 parameters and statistics (MXNet's BatchNorm.cast keeps them float32);
    every sum is in the compute type, float for 16-bit data."""
    (node,) = [n for n in sub.nodes if not n.is_var]
    a, x = node.attrs, tuple(sub.inputs[data].shapes[0])
    dts = [np.dtype(v.dtypes[0]) for v in sub.inputs]
    dt, ods = dts[data], [np.dtype(d) for d in node.dtypes]
    ok = {dt} | ({np.dtype(np.float32)} if dt in HALF else set())
    if dt not in FLOATS or any(d not in ok for d in dts + ods) or 0 in x:
        return None
    O, C, R = _oar(x, a['axis'] % len(x))
    T, M = ctype(dt), O * R
    load = lambda k, ix: cload(dts[k], f"in{k}[{ix}]")  # noqa: E731
    store = lambda k, ix, ex: f"out{k}[{ix}] = {cstore(ods[k], ex)};"  # noqa: E731
    nt = _channel_threads(M)
    loop = f"for (long long j = threadIdx.x; j < {M}; j += {nt}) {{ const long long q = (j / {R}) * {C * R} + " \
        f"c * {R} + j % {R};"
    return a, C, T, M, CEmit(T, []), loop, nt, (load, store, [CTYPES[d] for d in dts], [CTYPES[d] for d in ods])


def batchnorm(sub):
    """BatchNorm (outputs out, mean, var) as one block per channel: the batch's mean, then its variance about the
    mean (two passes, as NumPy's var), then the normalized output; with the moving statistics (use_global_stats,
    inference) the mean and var are the inputs'."""
    from graphc.ops.nn import batch_stats
    got = _per_channel(sub, 0)
    if got is None:
        return None
    a, C, T, M, e, loop, nt, (ld, st, cin, cout) = got
    eps = e.c(a['eps'])
    body = ["const long long c = blockIdx.x;"]
    if batch_stats(a):
        body += [f"{T} mean = ({T})0;", f"{loop} mean += {ld(0, 'q')}; }}", *_block_sum(T, ['mean'], nt),
                 f"mean = mean / {e.c(M)};",
                 f"{T} var = ({T})0;", f"{loop} const {T} d = {ld(0, 'q')} - mean; var += d * d; }}",
                 *_block_sum(T, ['var'], nt), f"var = var / {e.c(M)};"]
    else:
        body += [f"const {T} mean = {ld(3, 'c')}, var = {ld(4, 'c')};"]
    gamma = e.c(1.0) if a['fix_gamma'] else ld(1, 'c')
    y = f"({ld(0, 'q')} - mean) * scale + {ld(2, 'c')}"
    body += [f"const {T} scale = {gamma} * ({e.c(1.0)} / {e.fn('sqrt', 'var + ' + eps)});",
             f"{loop} {st(0, 'q', y)} }}",
             f"if (threadIdx.x == 0) {{ {st(1, 'c', 'mean')} {st(2, 'c', 'var')} }}"]
    return _finish('bn', sub, body, cin, cout, (C, 1, 1), (nt, 1, 1), batch_stats(a))


def batchnorm_grad(sub):
    """_backward_BatchNorm (d data, d gamma, d beta) as one block per channel: dbeta = sum g and
    dgamma = sum g * xhat in one pass, then dx (through the batch statistics in training)."""
    from graphc.ops.nn import batch_stats
    got = _per_channel(sub, 1)
    if got is None:
        return None
    a, C, T, M, e, loop, nt, (ld, st, cin, cout) = got
    eps = e.c(a['eps'])
    gamma = e.c(1.0) if a['fix_gamma'] else ld(2, 'c')
    g, x = ld(0, 'q'), ld(1, 'q')
    body = ["const long long c = blockIdx.x;", f"const {T} mean = {ld(3, 'c')};",
            f"const {T} inv = {e.c(1.0)} / {e.fn('sqrt', ld(4, 'c') + ' + ' + eps)};",
            f"{T} db = ({T})0, dg = ({T})0;",
            f"{loop} db += {g}; dg += {g} * (({x} - mean) * inv); }}", *_block_sum(T, ['db', 'dg'], nt),
            f"const {T} k = {gamma} * inv;"]
    if batch_stats(a):
        body.append(f"{loop} {st(0, 'q', f'k / {e.c(M)} * ({e.c(M)} * {g} - db - ({x} - mean) * inv * dg)')} }}")
    else:
        body.append(f"{loop} {st(0, 'q', f'{g} * k')} }}")
    body.append(f"if (threadIdx.x == 0) {{ {st(1, 'c', e.c(0.0) if a['fix_gamma'] else 'dg')} {st(2, 'c', 'db')} }}")
    return _finish('bngrad', sub, body, cin, cout, (C, 1, 1), (nt, 1, 1), True)


# ---------------------------------------------------------------- the fused RNN op as a device loop
def _stored(body, dt):
    """Gate-kernel lines written in the compute type, reading and writing dt's storage: every inK[..] read
    converts to float and every outK[..] = v; rounds once (identity for float32 and float64)."""
    if dt not in HALF:
        return body
    ld = lambda m: cload(dt, m.group(0))  # noqa: E731
    st = lambda m: f"{m.group(1)} = {cstore(dt, m.group(2))};"  # noqa: E731
    return [re.sub(r'(out\d+\[[^\]]+\]) = ([^;]+);', st, re.sub(r'in\d+\[[^\]]+\]', ld, ln)) for ln in body]


def _lstm_cell_kernel(N, H, dtype, grad):
    """One LSTM step's gate math, one thread per (sample, unit), gates in MXNet's order (i, f, c, o).
    Forward: (x @ Wi.T + b at t, h @ Wh.T, c_prev) -> (activated gates, c, h). Gradient: (gates, c, c_prev,
    d h_t from above, d h from the next step, d c from the next step) -> (d gate pre-activations, d c_prev).
    Sigmoid as 0.5 * tanh(x / 2) + 0.5, as the reference (no overflow)."""
    from graphc.ops import rnn
    dtype = np.dtype(dtype)
    T, S = ctype(dtype), CTYPES[dtype]  # (compute, storage)
    e = CEmit(T, [])
    half, one = e.c(0.5), e.c(1.0)
    tanh = lambda v: e.fn('tanh', v)  # noqa: E731
    sig = lambda v: f"{half} * {tanh(f'{v} * {half}')} + {half}"  # noqa: E731
    body = [_loop(N * H, _itype(N * 4 * H)), f"  const long long n = i / {H}, j = i % {H}, b = n * {4 * H} + j;"]
    g4, gh = ((N, 4 * H), dtype), ((N, H), dtype)
    if not grad:
        body += [f"  const {T} a{q} = in0[b + {k * H}] + in1[b + {k * H}];" for k, q in enumerate('ifgo')]
        body += [f"  const {T} gi = {sig('ai')}, gf = {sig('af')}, gg = {tanh('ag')}, go = {sig('ao')};",
                 f"  out0[b] = gi; out0[b + {H}] = gf; out0[b + {2 * H}] = gg; out0[b + {3 * H}] = go;",
                 f"  const {T} c = gf * in2[i] + gi * gg;", "  out1[i] = c;", f"  out2[i] = go * {tanh('c')};", "}"]

        def ref(xg, hh, cp):
            g = xg + hh
            for k in (0, 1, 3):
                rnn._sigmoid(g[:, k * H:(k + 1) * H], g[:, k * H:(k + 1) * H])
            g[:, 2 * H:3 * H] = np.tanh(g[:, 2 * H:3 * H])
            c = g[:, H:2 * H] * cp + g[:, :H] * g[:, 2 * H:3 * H]
            return g, c, g[:, 3 * H:] * np.tanh(c)
        return _finish('lstm', None, _stored(body, dtype), [S] * 3, [S] * 3, *_grid(N * H), False, ref=ref, ins=[g4, g4, gh],
                       outs=[g4, gh, gh])
    body += [f"  const {T} gi = in0[b], gf = in0[b + {H}], gg = in0[b + {2 * H}], go = in0[b + {3 * H}];",
             f"  const {T} tc = {tanh('in1[i]')}, dht = in3[i] + in4[i];",
             f"  const {T} dct = in5[i] + dht * go * ({one} - tc * tc);",
             f"  out0[b] = dct * gg * (gi * ({one} - gi));",
             f"  out0[b + {H}] = dct * in2[i] * (gf * ({one} - gf));",
             f"  out0[b + {2 * H}] = dct * gi * ({one} - gg * gg);",
             f"  out0[b + {3 * H}] = dht * tc * (go * ({one} - go));",
             "  out1[i] = dct * gf;", "}"]

    def gref(g, c, cp, dy, dh, dc):
        i, f, gg, o = (g[:, k * H:(k + 1) * H] for k in range(4))
        tc, dht = np.tanh(c), dy + dh
        dct = dc + dht * o * (1 - tc * tc)
        return np.concatenate([dct * gg * (i * (1 - i)), dct * cp * (f * (1 - f)), dct * i * (1 - gg * gg),
                               dht * tc * (o * (1 - o))], axis=1), dct * f
    return _finish('lstmgrad', None, _stored(body, dtype), [S] * 6, [S] * 2, *_grid(N * H), False, ref=gref,
                   ins=[g4, gh, gh, gh, gh, gh], outs=[g4, gh])


def _gru_cell_kernel(N, H, dtype, grad):
    """One GRU step (MXNet's and cuDNN's: n = tanh(x_n + r * (h @ Wh_n.T + b_hn))), gates (r, z, n), one thread
    per (sample, unit). Forward: (x @ Wi.T + bi at t, h @ Wh.T, bh, h_prev) -> (activated gates, h @ Wh_n.T +
    b_hn, h). Gradient: (gates, that h-side n, h_prev, d h_t from above, d h through the next step's GEMM, its
    d h through z) -> (d of x @ Wi.T + bi, d of h @ Wh.T + bh, d h_prev through z): the recurrence's d h is the
    GEMM of the second with Wh plus the third, added in the next step's kernel."""
    from graphc.ops import rnn
    dtype = np.dtype(dtype)
    T, S = ctype(dtype), CTYPES[dtype]  # (compute, storage)
    e = CEmit(T, [])
    half, one = e.c(0.5), e.c(1.0)
    tanh = lambda v: e.fn('tanh', v)  # noqa: E731
    sig = lambda v: f"{half} * {tanh(f'{v} * {half}')} + {half}"  # noqa: E731
    body = [_loop(N * H, _itype(N * 3 * H)), f"  const long long n = i / {H}, j = i % {H}, b = n * {3 * H} + j;"]
    g3, gh = ((N, 3 * H), dtype), ((N, H), dtype)
    if not grad:
        body += [f"  const {T} hr = in1[b] + in2[j], hz = in1[b + {H}] + in2[j + {H}], "
                 f"hn = in1[b + {2 * H}] + in2[j + {2 * H}];",
                 f"  const {T} ar = in0[b] + hr, az = in0[b + {H}] + hz;",
                 f"  const {T} r = {sig('ar')}, z = {sig('az')};",
                 f"  const {T} an = in0[b + {2 * H}] + r * hn;",
                 f"  const {T} gn = {tanh('an')};",
                 f"  out0[b] = r; out0[b + {H}] = z; out0[b + {2 * H}] = gn; out1[i] = hn;",
                 "  out2[i] = gn + z * (in3[i] - gn);", "}"]

        def ref(xg, hh, bh, hp):
            hh = hh + bh
            g = xg.copy()
            g[:, :2 * H] += hh[:, :2 * H]
            rnn._sigmoid(g[:, :2 * H], g[:, :2 * H])
            hn = hh[:, 2 * H:]
            g[:, 2 * H:] = np.tanh(g[:, 2 * H:] + g[:, :H] * hn)
            gn, z = g[:, 2 * H:], g[:, H:2 * H]
            return g, hn, gn + z * (hp - gn)
        return _finish('gru', None, _stored(body, dtype), [S] * 4, [S] * 3, *_grid(N * H), False, ref=ref,
                       ins=[g3, g3, ((3 * H,), dtype), gh], outs=[g3, gh, gh])
    body += [f"  const {T} r = in0[b], z = in0[b + {H}], gn = in0[b + {2 * H}];",
             f"  const {T} dht = in3[i] + (in4[i] + in5[i]);",
             f"  const {T} dn = dht * ({one} - z) * ({one} - gn * gn);",
             f"  const {T} dr = dn * in1[i] * (r * ({one} - r));",
             f"  const {T} dz = dht * (in2[i] - gn) * (z * ({one} - z));",
             f"  out0[b] = dr; out0[b + {H}] = dz; out0[b + {2 * H}] = dn;",
             f"  out1[b] = dr; out1[b + {H}] = dz; out1[b + {2 * H}] = dn * r;",
             "  out2[i] = dht * z;", "}"]

    def gref(g, hn, hp, dy, dh, carry):
        r, z, gn = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
        dht = dy + (dh + carry)
        dn = dht * (1 - z) * (1 - gn * gn)
        dr, dz = dn * hn * (r * (1 - r)), dht * (hp - gn) * (z * (1 - z))
        return np.concatenate([dr, dz, dn], 1), np.concatenate([dr, dz, dn * r], 1), dht * z
    return _finish('grugrad', None, _stored(body, dtype), [S] * 6, [S] * 3, *_grid(N * H), False, ref=gref,
                   ins=[g3, gh, gh, gh, gh, gh], outs=[g3, g3, gh])


def _plain_cell_kernel(mode, N, H, dtype, grad):
    """One vanilla RNN step (rnn_tanh or rnn_relu), one thread per element. Forward: (x @ Wi.T + b at t,
    h @ Wh.T) -> h. Gradient: (h, d h_t from above, d h from the next step) -> d pre-activation."""
    dtype = np.dtype(dtype)
    T, S = ctype(dtype), CTYPES[dtype]  # (compute, storage)
    e = CEmit(T, [])
    one, zero = e.c(1.0), e.c(0.0)
    tanh = mode == 'rnn_tanh'
    gh = ((N, H), dtype)
    if not grad:
        act = e.fn('tanh', 'g') if tanh else e.sel('g != g || g >= ' + zero, 'g', zero)  # (NaN stays, as np.maximum)
        body = [_loop(N * H, _itype(N * H)), f"  const {T} g = in0[i] + in1[i];", f"  out0[i] = {act};", "}"]

        def ref(xg, hh):
            return np.tanh(xg + hh) if tanh else np.maximum(xg + hh, 0)
        return _finish('rnn', None, _stored(body, dtype), [S] * 2, [S], *_grid(N * H), False, ref=ref, ins=[gh, gh], outs=[gh])
    slope = f"({one} - in0[i] * in0[i])" if tanh else f"(in0[i] > {zero} ? {one} : {zero})"
    body = [_loop(N * H, _itype(N * H)), f"  out0[i] = (in1[i] + in2[i]) * {slope};", "}"]

    def gref(h, dy, dh):
        return (dy + dh) * ((1 - h * h) if tanh else (h > 0))
    return _finish('rnngrad', None, _stored(body, dtype), [S] * 3, [S], *_grid(N * H), False, ref=gref, ins=[gh, gh, gh],
                   outs=[gh])


def _cell_kernel(mode, N, H, dtype, grad):
    if mode == 'lstm':
        return _lstm_cell_kernel(N, H, dtype, grad)
    return _gru_cell_kernel(N, H, dtype, grad) if mode == 'gru' else _plain_cell_kernel(mode, N, H, dtype, grad)


def rnn_op(node):
    """RNN (modes lstm, gru, rnn_tanh, rnn_relu; layers stacked, one or two directions; no projection, clipping,
    dropout or sequence lengths) and its gradient as device loops: per layer and direction one GEMM for the input
    projection of every step, then per step (the reverse direction last step first) one GEMM for the recurrence
    and the gate kernel; the reserve has the reference's layout (ops/rnn.py)."""
    from graphc.ops import rnn
    a = node.attrs
    if a['projection_size'] or a['p'] > 0 or a['lstm_state_clip_min'] is not None or a['use_sequence_length']:
        return None
    grad = node.op.name == '_backward_RNN'
    nv = rnn._n_visible(a) if grad else 0
    shapes = [tuple(s.shapes[j]) for s, j in node.inputs]
    (T, N, C), dt = shapes[nv], np.dtype(node.dtypes[0])
    L, D, H, G, _ = rnn._dims(a, C)
    mode = a['mode']
    lstm, gru = mode == 'lstm', mode == 'gru'
    if shapes[nv + 2][1] not in (N, 0) or not N:
        return None

    def begin(xp, s):  # batch-0 begin states (a layer's `_zeros` with the batch left 0, as MXNet's): zeros
        return xp.zeros((L * D, N, H), dt) if s.shape[1] == 0 else s
    cell, cell_grad = _cell_kernel(mode, N, H, dt, False), _cell_kernel(mode, N, H, dt, True)

    def steps(d):  # a direction's steps in the forward's order
        return range(T - 1, -1, -1) if d else range(T)

    def layer_input(xp, x, per, l):
        if l == 0:
            return x
        hs = [per[(l - 1) * D + d]['h'] for d in range(D)]
        return hs[0] if D == 1 else xp.concatenate(hs, axis=2)

    def forward(launch, xp, arrays):
        x, w, hx = arrays[0], arrays[1], begin(xp, arrays[2])
        cx = begin(xp, arrays[3]) if lstm else None
        reserve = xp.empty((rnn.reserve_size(a, T, N),), dt)
        per, _ = rnn._reserve_views(a, reserve, T, N)
        hy = xp.empty((L * D, N, H), dt)
        cy = xp.empty((L * D, N, H), dt) if lstm else None
        for l, d, wi, wh, bi, bh, _ in rnn._param_views(a, w, C):
            k, v = l * D + d, per[l * D + d]
            if d == 0:
                xin = layer_input(xp, x, per, l).reshape(T * N, -1)
            xg = (matmul(xp, xin, wi.T) + (bi if gru else bi + bh)).reshape(T, N, G * H)
            h, c = hx[k], cx[k] if lstm else None
            for t in steps(d):
                hh = matmul(xp, h, wh.T)
                if lstm:
                    g, c, h = launch(cell, [xg[t], hh, c])
                    v['gates'][t], v['c'][t] = g, c
                elif gru:
                    g, hn, h = launch(cell, [xg[t], hh, bh, h])
                    v['gates'][t], v['hn'][t] = g, hn
                else:
                    (h,) = launch(cell, [xg[t], hh])
                v['h'][t] = h
            hy[k] = h
            if lstm:
                cy[k] = c
        out = layer_input(xp, x, per, L)
        states = ((hy, cy) if lstm else (hy,)) if a['state_outputs'] else ()
        return (out.copy() if D == 1 else out,) + states + (reserve,)

    def backward(launch, xp, arrays):
        dout, x, w, hx0 = arrays[0], *arrays[nv:nv + 3]
        hx, cx0, reserve = begin(xp, hx0), (arrays[nv + 3] if lstm else None), arrays[-1]
        cx = begin(xp, cx0) if lstm else None
        per, _ = rnn._reserve_views(a, reserve, T, N)
        dhx = arrays[1].copy() if nv > 1 else xp.zeros((L * D, N, H), dt)
        dcx = (arrays[2].copy() if nv > 1 else xp.zeros((L * D, N, H), dt)) if lstm else None
        dw = xp.empty_like(w)
        wviews, dviews = rnn._param_views(a, w, C), rnn._param_views(a, dw, C)
        dcur, need_x = dout, a.get('_need', (True,))[0]
        for l in range(L - 1, -1, -1):
            xin = layer_input(xp, x, per, l).reshape(T * N, -1)
            dxin = None
            for d in range(D):
                k, v = l * D + d, per[l * D + d]
                wi, wh = wviews[k][2:4]
                dwi, dwh, dbi, dbh = dviews[k][2:6]
                dhs = dcur if D == 1 else xp.ascontiguousarray(dcur[:, :, d * H:(d + 1) * H])
                dxg = xp.empty((T, N, G * H), dt)
                dhh = xp.empty((T, N, G * H), dt) if gru else dxg
                dh, dc, carry = dhx[k], dcx[k] if lstm else None, xp.zeros((N, H), dt) if gru else None
                for t in reversed(steps(d)):
                    first = t == steps(d)[0]
                    prev = t + 1 if d else t - 1
                    if lstm:
                        dg, dc = launch(cell_grad, [v['gates'][t], v['c'][t], cx[k] if first else v['c'][prev],
                                                    dhs[t], dh, dc])
                        dh = matmul(xp, dg, wh)
                    elif gru:
                        dg, d2, carry = launch(cell_grad, [v['gates'][t], v['hn'][t], hx[k] if first else v['h'][prev],
                                                           dhs[t], dh, carry])
                        dhh[t] = d2
                        dh = matmul(xp, d2, wh)
                    else:
                        (dg,) = launch(cell_grad, [v['h'][t], dhs[t], dh])
                        dh = matmul(xp, dg, wh)
                    dxg[t] = dg
                dhx[k] = dh + carry if gru else dh
                if lstm:
                    dcx[k] = dc
                hs = v['h']  # the h each step read: h0, then the sequence shifted by one step (against time for d 1)
                hprev = xp.concatenate([hx[k][None], hs[:-1]] if d == 0 else [hs[1:], hx[k][None]], axis=0)
                g2, h2 = dxg.reshape(T * N, G * H), dhh.reshape(T * N, G * H)
                dwi[...] = matmul(xp, g2.T, xin)
                dwh[...] = matmul(xp, h2.T, hprev.reshape(T * N, H))
                acc = np.float32 if dt in HALF else dt  # (float16: summed in float32, rounded once)
                dbi[...] = g2.sum(axis=0, dtype=acc)
                dbh[...] = h2.sum(axis=0, dtype=acc) if gru else dbi
                if l > 0 or need_x:
                    part = matmul(xp, g2, wi).reshape(T, N, -1)
                    dxin = part if dxin is None else dxin + part
            dcur = dxin
        dx = dcur if dcur is not None else xp.zeros_like(x)
        if hx0.shape[1] == 0:  # (the gradient of an empty state is empty)
            dhx, dcx = xp.zeros(hx0.shape, dt), xp.zeros(hx0.shape, dt) if lstm else None
        return (dx, dw, dhx) + ((dcx,) if lstm else ())
    return DeviceOp(node, [cell, cell_grad] if grad else [cell], backward if grad else forward)


class DeviceOp:
    """An opaque op on the device: GEMMs through the array library (cuBLAS under cupy) and generated kernels
    (im2col/col2im). run(launch, xp, arrays) -> outputs; launch(kernel, inputs) -> kernel outputs."""

    def __init__(self, node, kernels, run):
        self.node, self.kernels, self.run = node, kernels, run


def _groups(xp, g, f, n, rows, fn):
    """out[:, group slice] = fn(group index) for grouped convolutions."""
    if g == 1:
        return fn(0)
    out = xp.empty((n, f, rows), fn(0).dtype)
    fg = f // g
    for i in range(g):
        out[:, i * fg:(i + 1) * fg] = fn(i)
    return out


def device_op(node):
    """The DeviceOp of a GEMM or convolution node, or None (it runs on the host)."""
    name, a = node.op.name, node.attrs
    shapes = [tuple(s.shapes[j]) for s, j in node.inputs]
    dt = np.dtype(node.dtypes[0])
    if node.shapes and all(0 in tuple(s) for s in node.shapes):  # only empty outputs (a batch-0 `_zeros`): no launch
        return DeviceOp(node, [], lambda launch, xp, arrays: tuple(xp.empty(tuple(s), d)
                                                                   for s, d in zip(node.shapes, node.dtypes)))
    if dt not in FLOATS:
        return None  # (16-bit GEMMs accumulate in float32: matmul above)
    if name in ('RNN', '_backward_RNN'):
        return rnn_op(node)
    if name in OWN_KERNELS:  # (a fused group's anchor: its one kernel)
        k = generate(single(node))
        return None if k is None else DeviceOp(node, [k], lambda launch, xp, arrays: tuple(launch(k, arrays)))
    if name == 'FullyConnected':
        def fc(launch, xp, arrays):
            x, w = arrays[0], arrays[1]
            x = x.reshape(x.shape[0], -1) if a.get('flatten', True) else x
            y = matmul(xp, x, w.T)
            if len(arrays) > 2:
                y += arrays[2]
            return (y,)
        return DeviceOp(node, [], fc)
    if name == 'dot' and all(len(s) == 2 for s in shapes):
        return DeviceOp(node, [], lambda launch, xp, arrs: (matmul(xp, arrs[0].T if a['transpose_a'] else arrs[0],
                                                                      arrs[1].T if a['transpose_b'] else arrs[1]),))
    if name in ('Convolution', '_backward_Convolution') and len(a['kernel']) == 2:
        from . import cudnn
        return cudnn.first(node, im2col_conv(node, shapes, dt))  # (cuDNN where cupy has it, else im2col + GEMM)
    return None  # (1-d, 3-d convolutions: the host kernel)


def im2col_conv(node, shapes, dt):
    """A 2-d Convolution or its gradient as im2col/col2im kernels and GEMMs (channels-last data transposed to
    channels-first and back)."""
    from graphc.ops.nn import conv_params
    name, a = node.op.name, node.attrs
    k, st, dl, pd = conv_params(a, 'Convolution')
    g = a['num_group']
    last = a['layout'] not in ('None', 'NCHW')
    cf = (lambda s: (s[0], s[3], s[1], s[2])) if last else tuple
    xs = cf(shapes[0] if name == 'Convolution' else shapes[1])
    n, c = xs[:2]
    f = a['num_filter']
    cg, fg, kk = c // g, f // g, k[0] * k[1]
    i2c = im2col_kernel(xs, dt, k, st, dl, pd)
    rows = i2c.out_shapes[0][2]
    acc = {'dtype': np.float32} if dt in HALF else {}  # sums over the batch in float32 too

    def first(xp, arrays):  # channels-last in: the same arrays channels-first
        return [xp.ascontiguousarray(v.transpose(0, 3, 1, 2)) if last and v.ndim == 4 else v for v in arrays]

    def back(xp, arrays):
        return tuple(xp.ascontiguousarray(v.transpose(0, 2, 3, 1)) if last and v.ndim == 4 else v for v in arrays)
    if name == 'Convolution':
        def conv(launch, xp, arrays):
            x, w = first(xp, arrays[:2])
            col = launch(i2c, [x])[0]
            y = _groups(xp, g, f, n, rows, lambda i: matmul(xp, w[i * fg:(i + 1) * fg].reshape(fg, -1),
                                                               col[:, i * cg * kk:(i + 1) * cg * kk]))
            if len(arrays) > 2:
                y += arrays[2].reshape(1, -1, 1)
            return back(xp, [y.reshape(cf(node.shapes[0]))])
        return DeviceOp(node, [i2c], conv)
    oh, ow = cf(node.inputs[0][0].shapes[node.inputs[0][1]])[2:]
    c2i = col2im_kernel(xs, dt, k, st, dl, pd, (oh, ow))

    def conv_grad(launch, xp, arrays):
        dy, x, w = first(xp, arrays)
        d2 = dy.reshape(n, f, oh * ow)
        if a.get('_need', (True,))[0]:
            col = xp.empty((n, c * kk, oh * ow), dt)
            for i in range(g):
                col[:, i * cg * kk:(i + 1) * cg * kk] = matmul(xp, w[i * fg:(i + 1) * fg].reshape(fg, -1).T,
                                                                  d2[:, i * fg:(i + 1) * fg])
            dx = launch(c2i, [col])[0]
        else:
            dx = xp.zeros(xs, dt)
        xcol = launch(i2c, [x])[0]
        dw = xp.empty((f, cg * kk), dt)
        for i in range(g):
            dw[i * fg:(i + 1) * fg] = matmul(xp, d2[:, i * fg:(i + 1) * fg],
                                                xcol[:, i * cg * kk:(i + 1) * cg * kk].transpose(0, 2, 1)).sum(0, **acc)
        return back(xp, [dx, dw.reshape(cf(shapes[2])), dy.sum(axis=(0, 2, 3), **acc).astype(dt, copy=False)])
    return DeviceOp(node, [i2c, c2i], conv_grad)


def cast(sub):
    """Cast between float formats (a 16-bit weight's float32 master, a float32 gradient): load as the compute type,
    store rounded to nearest even. float64 <-> 16-bit has none (through float it would round twice)."""
    (node,) = [n for n in sub.nodes if not n.is_var]
    src, dst = np.dtype(sub.inputs[0].dtypes[0]), np.dtype(node.dtypes[0])
    total = int(np.prod(node.shapes[0]))
    if src not in FLOATS or dst not in FLOATS or not total or (np.float64 in (src, dst) and {src, dst} & set(HALF)):
        return None
    v = f"({ctype(dst)}){cload(src, 'in0[i]')}"
    body = [_loop(total, _itype(total)), f"  out0[i] = {cstore(dst, v)};", "}"]
    return _finish('cast', sub, body, [CTYPES[src]], [CTYPES[dst]], *_grid(total), False)


# ---------------------------------------------------------------- groups and graphs
def generate(sub):
    """The Kernel for a subgraph (a fused group's, or one op over fresh variables), or None."""
    ops = [n for n in sub.nodes if not n.is_var]
    if len(ops) == 1 and ops[0].op.name in OWN_KERNELS:
        return {'Pooling': pooling, '_backward_Pooling': pooling_grad, 'BatchNorm': batchnorm,
                '_backward_BatchNorm': batchnorm_grad}.get(ops[0].op.name, indexed)(sub)
    if len(ops) == 1 and ops[0].op.kind == 'injective':
        return gather(sub)
    if len(ops) == 1 and ops[0].op.name == 'Cast':
        return cast(sub)
    if any(n.op.kind not in ('elemwise', 'broadcast', 'reduce') or n.num_outputs != 1 for n in ops):
        return None
    if any(n.op.name in ('Dropout', 'Cast', 'argmax', 'argmin') for n in ops):
        return None
    if any(n.op.name == 'where' and tuple(n.inputs[0][0].shapes[n.inputs[0][1]]) != tuple(n.shapes[0]) for n in ops):
        return None  # MXNet's where with a 1-d condition selects rows
    dtype = _uniform_dtype(sub)
    if dtype is None:
        return None
    reds = [n for n in ops if n.op.kind == 'reduce']
    if not reds:
        return pointwise(sub, dtype)
    return reduction(sub, dtype, reds[0]) if len(reds) == 1 else None


def single(node):
    """A one-op subgraph over fresh variables, one per input position (so kernel arguments are the node's
    inputs in order, an input read twice passed twice)."""
    from ..graph import Graph, Node
    vs = [Node(None, f"in{i}", shapes=[s.shapes[j]], dtypes=[s.dtypes[j]]) for i, (s, j) in enumerate(node.inputs)]
    n = Node(node.op, node.name, node.attrs, [(v, 0) for v in vs], node.shapes, node.dtypes, node.where, node.block)
    return Graph([(n, j) for j in range(n.num_outputs)], vs)


def lower(node):
    """How a graph node runs on the GPU: ('kernel', Kernel); ('anchor', (anchor node, its DeviceOp or None,
    its input positions, epilogue Kernel, epilogue input positions, output map)); ('device', DeviceOp);
    ('group', subgraph): a fused group with no single form, run node by node; or ('host', reason): the NumPy
    kernel on the host, with copies."""
    sub = getattr(node.op, 'subgraph', None)
    if sub is not None:
        k = generate(sub)
        if k is not None:
            return 'kernel', k
        kernels = {}

        def compiles(epi):
            kernels[epi] = generate(epi.subgraph)
            return kernels[epi]
        ep = split_anchor(node.op, compiles=compiles)
        if ep is not None:
            anchor, a_in, epi, e_in, out_map = ep
            return 'anchor', (anchor, device_op(anchor), a_in, kernels[epi], e_in, out_map)
        return 'group', sub  # (an anchor inside the group, say: its ops one by one, each its own form)
    if node.op.kind in ('elemwise', 'broadcast', 'reduce', 'injective') or node.op.name in OWN_KERNELS:
        k = generate(single(node))
        if k is not None:
            return 'kernel', k
    d = device_op(node)
    if d is not None:
        return 'device', d
    return 'host', f"{node.op.name} has no CUDA form here: NumPy on the host, with copies"


def node_kernels(how, d):
    """The Kernels a lowered node launches."""
    if how == 'kernel':
        return [d]
    if how == 'anchor':
        return (d[1].kernels if d[1] else []) + [d[3]]
    if how == 'group':
        return kernels_of(d)
    return d.kernels if how == 'device' else []


def graph_kernels(graph):
    """[(node, how, detail)] for every op node of a graph (see lower)."""
    return [(n, *lower(n)) for n in graph.nodes if not n.is_var]


def kernels_of(graph):
    """The distinct Kernels a graph's plan launches, in order."""
    seen, out = set(), []
    for n, how, d in graph_kernels(graph):
        for k in node_kernels(how, d):
            if k.name not in seen:
                seen.add(k.name)
                out.append(k)
    return out


def module_source(kernels, includes=True):
    """One translation unit holding each distinct kernel once; it includes cuda_fp16.h / cuda_bf16.h where a kernel
    takes 16-bit floats (includes=False: the host emulation, whose cuda_emu.h defines them)."""
    seen, parts = set(), ["// generated by graphc (runtime/cuda.py): plain CUDA C (NVRTC, nvcc)\n"]
    for k in kernels:
        if k.name not in seen:
            seen.add(k.name)
            parts.append(k.source)
    heads = sorted({h[3] for d, h in HALF.items() for k in kernels if d in k.in_dtypes + k.out_dtypes})
    return ''.join(f"#include <{h}>\n" for h in heads if includes) + '\n'.join(parts)


# ---------------------------------------------------------------- nvcc (verification, PTX)
ARCHS = ('sm_80', 'sm_90')


def nvcc_path():
    return shutil.which('nvcc') or ('/usr/local/cuda/bin/nvcc' if os.path.exists('/usr/local/cuda/bin/nvcc') else None)


def nvcc(source, mode='fatbin', archs=ARCHS, timeout=600):
    """Compile with nvcc, every warning an error (front end and ptxas). mode 'fatbin' (one call, a -gencode per
    arch) or 'ptx' (the first arch). Returns the output bytes; cached by a hash of source, flags and nvcc
    version in the cache directory. Raises GraphcError with nvcc's messages on any diagnostic."""
    exe = nvcc_path()
    if exe is None:
        raise GraphcError("nvcc was not found on PATH: install the CUDA toolkit to compile CUDA source to PTX")
    flags = ['-Werror', 'all-warnings', '-Xptxas', '-Werror', '-std=c++17']
    if mode == 'ptx':
        flags += ['-ptx', f'-arch={archs[0]}']
    else:
        flags += ['--fatbin'] + [f'-gencode=arch=compute_{a[3:]},code={a}' for a in archs]
    key = hashlib.sha256('\0'.join([source, mode, *flags, _nvcc_version(exe)]).encode()).hexdigest()
    d = private_subdir('cuda')  # the binary is loaded as code: only from a directory of this user
    out = os.path.join(d, f"{key}.{mode}")
    if is_private_file(out):
        with open(out, 'rb') as f:
            return f.read()
    cu = os.path.join(d, f"{key}.cu")
    with open(cu, 'w') as f:
        f.write(source)
    tmp = out + f'.tmp{os.getpid()}'
    r = subprocess.run([exe, *flags, cu, '-o', tmp], capture_output=True, text=True, timeout=timeout)
    msg = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or msg:
        raise GraphcError(f"nvcc {' '.join(flags)} failed on {cu}:\n{msg}")
    os.replace(tmp, out)
    with open(out, 'rb') as f:
        return f.read()


_versions = {}


def _nvcc_version(exe):
    if exe not in _versions:
        _versions[exe] = subprocess.run([exe, '--version'], capture_output=True, text=True).stdout.strip()
    return _versions[exe]


# ---------------------------------------------------------------- execution (cupy, or the emulator)
def nvrtc_options(cupy, src):
    """NVRTC options for a module: C++17, and where it includes cuda_fp16.h / cuda_bf16.h the folder holding them.
    CuPy passes NVRTC no CUDA include folder of its own for CUDA 12.2+ unless the nvidia-cuda-runtime wheel of
    the same version is installed (cupy/_environment.py; CuPy 13.6 removed its bundled fp16 headers), so the toolkit's
    folder (cupy.cuda.get_cuda_path(), else nvcc's, else /usr/local/cuda) is named here."""
    opts = ('--std=c++17',)
    if '#include <cuda_' not in src:
        return opts
    get = getattr(cupy.cuda, 'get_cuda_path', None)
    nv = nvcc_path()
    for root in (get() if get else None, nv and os.path.dirname(os.path.dirname(os.path.realpath(nv))), '/usr/local/cuda'):
        if root and os.path.exists(os.path.join(root, 'include', 'cuda_fp16.h')):
            return opts + ('-I' + os.path.join(root, 'include'),)
    return opts


class CupyDevice:
    """Kernels through cupy.RawModule (NVRTC), one module per source hash; arrays from cupy's memory pool."""

    def __init__(self, device_id=0):
        from ..context import gpu_support
        ok, reason = gpu_support()
        if not ok:
            raise GraphcError(f"the CUDA backend is not available: {reason}")
        import cupy
        self.xp, self.device_id = cupy, device_id
        self._modules, self._sources = {}, {}  # kernel name -> function; source hash -> module

    def prepare(self, kernels):
        """Compile kernels in one module (one NVRTC call), cached by the hash of its source."""
        todo = [k for k in kernels if k.name not in self._modules]
        if todo:
            src = module_source(todo)
            key = hashlib.sha256(src.encode()).hexdigest()
            with self.xp.cuda.Device(self.device_id):
                mod = self._sources.get(key) or self.xp.RawModule(code=src, options=nvrtc_options(self.xp, src))
            self._sources[key] = mod
            for k in todo:
                self._modules[k.name] = mod.get_function(k.name)

    def function(self, kernel):
        self.prepare([kernel])
        fn = self._modules[kernel.name]
        return lambda args: fn(kernel.grid, kernel.block, tuple(args))

    def to_host(self, a):
        return self.xp.asnumpy(a)

    def to_device(self, a):
        return self.xp.asarray(a)

    def synchronize(self):
        self.xp.cuda.Device(self.device_id).synchronize()


class GpuPlan:
    """A graph run on a device: generated kernels for fused groups, elementwise/reduction/injective ops and
    pooling; GEMMs through the device's matmul (cuBLAS under cupy), convolutions as im2col/col2im kernels and
    GEMMs, anchors' epilogues as kernels; what is left runs on the host (listed in host_ops). `device` is a
    CupyDevice, or emulate.EmuDevice (NumPy arrays, kernels run by the host emulation).

    Memory: the values kernels write, except the graph's outputs, live in one device arena (one allocation from
    the array library's pool, made at the first call and kept) at the offsets passes/memory.py plans for this
    schedule, a value taking over the space of one that died before its step, as the CPU plan's arena does; views
    (reshapes) and the results of GEMMs, cuDNN and the host are the library's arrays (GEMMs' and cuDNN's from its
    pool, as their workspaces: they make their own outputs). The outputs are fresh each
    call (one that would view the arena is copied out). A second thread calling a plan while it runs gets fresh
    buffers throughout, as without a plan."""

    def __init__(self, graph, device):
        from ..passes import memory
        from ..passes.manager import disabled_passes
        self.device, self.graph, self.xp = device, graph, device.xp
        self.steps, self.host_ops, self.launches = [], [], 0
        slot = {}
        for n in graph.nodes:
            for j in range(1 if n.is_var else n.num_outputs):
                slot[(n, j)] = len(slot)
        self.nslots = len(slot)
        self.inputs = [(n, slot[(n, 0)], n.extra.get('value'), n.name) for n in graph.nodes if n.is_var]
        rows = graph_kernels(graph)
        device.prepare([k for _, how, d in rows for k in node_kernels(how, d)])
        self._fns = {}
        self.outputs = [slot[(n, j)] for n, j in graph.outputs]
        last = {}
        for i, (n, _, _) in enumerate(rows):
            for s, j in n.inputs:
                last[slot[(s, j)]] = i
        schedule, layout = [], {}   # (how, reads, writes) per step, for the memory plan; slot -> (shape, dtype)
        for i, (n, how, d) in enumerate(rows):
            ins = tuple(slot[(s, j)] for s, j in n.inputs)
            outs = tuple(slot[(n, j)] for j in range(n.num_outputs))
            free = tuple(k for k in set(ins) if last[k] == i and k not in self.outputs)  # back to the pool
            native, fresh = how == 'kernel' and not d.identity, how in ('device', 'anchor', 'host')
            self.steps.append((self.step(n, how, d), ins, outs, free, d if native else None, fresh))
            # (GEMMs, cuDNN, the host: new arrays, never views of their inputs, which may then die at once)
            schedule.append(('native', ins, ()) if fresh else ('native' if native else 'view' if how == 'kernel'
                                                                else 'python', ins, outs))
            if native:
                layout.update((k, (tuple(n.shapes[j]), np.dtype(n.dtypes[j]))) for j, k in enumerate(outs))
        self.memory = memory.plan(schedule, {k: memory.nbytes(*sd) for k, sd in layout.items()}, set(self.outputs),
                                  share='plan_memory' not in disabled_passes())
        self.arena_bytes, self._layout, self.arena, self._views = self.memory.arena_bytes, layout, None, None
        self._check_out = [i for i, k in enumerate(self.outputs) if k not in layout]
        self._lock = threading.Lock()

    def _arena_views(self):
        """slot -> its view of the arena (allocated on first use: on the device current then)."""
        if self._views is None:
            from ..passes.memory import nbytes
            self.arena = self.xp.empty((self.memory.arena_bytes,), np.uint8)  # (pool blocks are 512-byte aligned)
            self._views = {}
            for k, off in self.memory.offset.items():
                shape, dt = self._layout[k]
                nb = nbytes(shape, dt)
                self._views[k] = self.arena[off:off + nb].view(dt).reshape(shape)
        return self._views

    def launch(self, k, inputs, into=None):
        """Run kernel k on device arrays; returns its outputs: the buffers `into` (None: a fresh one)."""
        if k.identity:  # a reshape: a view, no launch
            return [inputs[0].reshape(k.out_shapes[0])]
        fn = self._fns.get(k.name) or self._fns.setdefault(k.name, self.device.function(k))
        ins = [self.xp.ascontiguousarray(a).reshape(a.shape) for a in inputs]  # (it makes 0-d arrays 1-d)
        outs = [self.xp.empty(s, d) if b is None else b.reshape(s)
                for s, d, b in zip(k.out_shapes, k.out_dtypes, into or [None] * len(k.out_shapes))]
        fn(ins + outs)
        self.launches += 1
        return outs

    def step(self, n, how, d):
        """The callable for one node: device arrays in, a tuple of device arrays out."""
        xp, dev = self.xp, self.device
        if how == 'kernel':
            return lambda arrays: tuple(self.launch(d, arrays))
        if how == 'device':
            return lambda arrays: tuple(d.run(self.launch, xp, arrays))
        if how == 'group':  # (its inputs are the node's, in order)
            inner = GpuPlan(d, dev)
            self.host_ops += inner.host_ops

            def group(arrays):
                r = tuple(inner(dict(zip(d.inputs, arrays))))
                self.launches += inner.launches
                inner.launches = 0
                return r
            return group
        if how == 'anchor':
            anchor, aop, a_in, epi, e_in, out_map = d
            on_host = self.step(anchor, 'host', None) if aop is None else None

            def run(arrays):
                args = [arrays[i] for i in a_in]
                a = aop.run(self.launch, xp, args)[0] if aop else on_host(args)[0]
                res = self.launch(epi, [a] + [arrays[i] for i in e_in])
                return tuple(a if k is None else res[k] for k in out_map)
            return run
        self.host_ops.append(n.op.name)
        from .backend import cpu
        kernel = cpu.kernel(n.op)   # (on the host: the CPU backend's kernel, in float32 for bfloat16)
        if BF16 is not None and BF16 in list(n.dtypes) + [s.dtypes[j] for s, j in n.inputs]:
            kernel = bf16_kernel(n.op, kernel)

        def host(arrays):
            r = kernel(n.attrs, *[dev.to_host(a) for a in arrays])
            return tuple(dev.to_device(np.asarray(v, order='C')) for v in (r if isinstance(r, tuple) else (r,)))
        return host

    def __call__(self, feed):
        """feed: {var node: NumPy or device array} -> device arrays of the outputs."""
        vals = [None] * self.nslots
        consts = self.__dict__.setdefault('_consts', {})  # a graph constant goes to the device once
        for key, k, const, name in self.inputs:
            v = feed.get(key)
            if v is None and const is not None:
                v = consts.get(k)
                if v is None:
                    v = consts[k] = self.device.to_device(np.asarray(const))
            if v is None:
                raise GraphcError(f"GPU plan: graph input {name!r} has no value")
            vals[k] = self.device.to_device(v) if isinstance(v, np.ndarray) else v
        mine = bool(self.memory.offset) and self._lock.acquire(blocking=False)
        try:
            views = self._arena_views() if mine else {}
            for run, ins, outs, free, kern, fresh in self.steps:
                if kern is not None and views:
                    r = self.launch(kern, [vals[k] for k in ins], [views.get(k) for k in outs])
                else:
                    r = run([vals[k] for k in ins])
                    if fresh and views:  # (planned as new arrays: one that views the arena is made so)
                        r = [a.copy() if self.xp.may_share_memory(a, self.arena) else a for a in r]
                for k, v in zip(outs, r):
                    vals[k] = v
                for k in free:
                    vals[k] = None
        finally:
            if mine:
                self._lock.release()
        out = [vals[k] for k in self.outputs]
        if mine:
            for i in self._check_out:  # (a reshape of an arena value, say: the next call overwrites it)
                if self.xp.may_share_memory(out[i], self.arena):
                    out[i] = out[i].copy()
        return out
