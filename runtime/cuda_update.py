"""Trainer updates on a GPU as one kernel launch for all the parameters of a device (apex's multi-tensor apply):
a device table of rows (runtime/multi_tensor.py's layout: weight, gradient and state pointers, the chunk's
length, its scalar class and flags), one thread block per row.

The element code is multi_tensor._body, the sequence of rounded operations the CPU kernel and the optimizer's
NumPy _step run, emitted as CUDA C (compiled with --fmad=false: no contraction into FMAs). Per-tensor scalars
(learning rate, weight decay, bias correction, ...) change every step, so they are kernel arguments by value,
not a table to copy over: tensors with equal scalar rows form a class (first-seen order, so the classes stay
put while the multipliers do), and up to CLASSES rows go in the launch. The row table is copied to the device
only when the arrays, the classes or the wd flags change: none per step.

The mixed form (half=float16 or bfloat16: multi_precision's 16-bit weights with float32 masters) reads the 16-bit
gradient, updates the float32 master and states in float32 and stores the weight as the master rounded to nearest
even, as the per-parameter path's update of the master and master.astype(half).
"""
import hashlib

import numpy as np

from . import multi_tensor as mt

CLASSES = 4          # scalar rows per launch (tensors grouped by equal scalars); more: the per-parameter path
OPTIONS = ('--std=c++17', '--fmad=false')  # NVRTC: IEEE division and sqrt are its defaults, FMA contraction is not


class _C:
    """multi_tensor._F's operations as CUDA C: one rounded operation per named temporary."""

    def __init__(self, ctype):
        self.ctype, self.lines = ctype, []

    def _t(self, expr):
        name = f"t{len(self.lines)}"
        self.lines.append(f"const {self.ctype} {name} = {expr};")
        return name

    def mul(self, x, y):
        return self._t(f"{x} * {y}")

    def add(self, x, y):
        return self._t(f"{x} + {y}")

    def sub(self, x, y):
        return self._t(f"{x} - {y}")

    def div(self, x, y):
        return self._t(f"{x} / {y}")

    def sqrt(self, x):
        return self._t(f"{'sqrtf' if self.ctype == 'float' else 'sqrt'}({x})")

    def clip(self, x, lo, hi):  # np.clip: max(x, lo) then min(., hi), a NaN x kept (unordered compares)
        t = self._t(f"!({x} <= {lo}) ? {x} : {lo}")
        return self._t(f"!({t} >= {hi}) ? {t} : {hi}")


def source(name, kind, dtype, opts, nstate, wds, half=None):
    """(CUDA C of `name(const long long *rows, T c0_0, ..., T c{CLASSES-1}_{m-1})`, the scalar columns 0..m-1
    it takes, of SCALARS[kind]): block b updates row b. half (float16 or bfloat16): the mixed-precision form,
    whose rows are (weight, gradient, float32 master, states): the gradient loaded to float, the master and
    states updated in float32, the weight stored as the master rounded to nearest even (as the per-parameter
    path's master.astype(half))."""
    import re
    from .cuda import CTYPES, HALF, THREADS  # (not at import: runtime.cuda imports ml_dtypes where it is installed)
    T = CTYPES[np.dtype(dtype)]
    names = mt.SCALARS[kind]
    x = {k: f"x_{k}" for k in ['w', 'g'] + [f's{k}' for k in range(nstate)]}
    body = []
    for wd in wds:
        f = _C(T)
        out = mt._body(kind, opts, wd, f, x, {nm: nm for nm in names})
        dest = {'w': 'm'} if half is not None else {}  # mixed: the new master, then the 16-bit weight from it
        code = f.lines + [f"{dest.get(k, k)}[i] = {v};" for k, v in out.items()]
        if half is not None:
            code.append(f"w[i] = {HALF[np.dtype(half)][2]}({out['w']});")
        if len(wds) == 1:
            body += code
        else:
            body += [f"if ({'' if wd else '!'}(flags & {mt.WD})) {{"] + ['  ' + ln for ln in code] + ['}']
    used = set(re.findall(r'\w+', '\n'.join(body)))
    cols = [j for j, nm in enumerate(names) if nm in used]
    params = ', '.join(f"const {T} c{k}_{j}" for k in range(CLASSES) for j in range(len(cols)))
    lines = [f'extern "C" __global__ void __launch_bounds__({THREADS}) {name}(const long long *__restrict__ rows, '
             f'{params}) {{',
             f"  const long long *r = rows + (long long)blockIdx.x * {mt.WORDS};",
             f"  const long long n = r[{mt.N}], cls = r[{mt.TI}];"]
    if len(wds) > 1:
        lines.append(f"  const long long flags = r[{mt.FLAGS}];")
    W = T if half is None else CTYPES[np.dtype(half)]  # the weight's and gradient's storage type
    lines += [f"  {W} *w = ({W} *)r[0];", f"  const {W} *g = (const {W} *)r[1];"]
    first = 2 if half is None else 3
    if half is not None:
        lines.append(f"  {T} *m = ({T} *)r[2];")
    lines += [f"  {T} *s{k} = ({T} *)r[{first + k}];" for k in range(nstate)]
    for j, col in enumerate(cols):  # this row's class's scalars
        pick = f"c{CLASSES - 1}_{j}"
        for k in range(CLASSES - 2, -1, -1):
            pick = f"cls == {k} ? c{k}_{j} : {pick}"
        lines.append(f"  const {T} {names[col]} = {pick};")
    lines.append(f"  for (long long i = threadIdx.x; i < n; i += {THREADS}) {{")
    load = {k: f"{k}[i]" for k in x}
    if half is not None:
        load.update(w="m[i]", g=f"{HALF[np.dtype(half)][1]}(g[i])")
    lines += [f"    const {T} {v} = {load[k]};" for k, v in x.items() if v in used]
    lines += ['    ' + ln for ln in body]
    lines += ["  }", "}", ""]
    head = '' if half is None else f"#include <{HALF[np.dtype(half)][3]}>\n"
    return head + '\n'.join(lines), cols


class Update:
    """One compiled device update kernel; k(rows, classes, stream) launches it over a device row table
    (rows: (n, WORDS) int64 cupy array; classes: (CLASSES, len(SCALARS[kind])) NumPy array in the element type)."""

    def __init__(self, xp, kind, dtype, opts, nstate, wds, half=None):
        from .cuda import nvrtc_options
        key = repr((kind, np.dtype(dtype).name, tuple(opts), nstate, tuple(wds), half and np.dtype(half).name))
        self.name = f"graphc_update_{kind}_{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        self.source, self.cols = source(self.name, kind, dtype, opts, nstate, wds, half)
        self.dtype, self.xp = np.dtype(dtype).type, xp
        opts = OPTIONS + nvrtc_options(xp, self.source)[1:]  # (the folder of cuda_fp16.h / cuda_bf16.h)
        self.fn = xp.RawModule(code=self.source, options=opts).get_function(self.name)

    def __call__(self, rows, classes):
        from .cuda import THREADS
        mt.stats['calls'] += 1
        args = (rows,) + tuple(self.dtype(v) for v in classes[:, self.cols].ravel())  # NumPy scalars: by value
        self.fn((int(rows.shape[0]),), (THREADS,), args)


_kernels = {}


def kernel(xp, device_id, kind, dtype, opts, nstate, wds, half=None):
    """The Update for these options on one device, compiled once per process."""
    key = (device_id, kind, np.dtype(dtype).name, tuple(opts), nstate, tuple(wds), half and np.dtype(half).name)
    k = _kernels.get(key)
    if k is None or k.xp is not xp:
        with xp.cuda.Device(device_id):
            k = _kernels[key] = Update(xp, kind, dtype, opts, nstate, wds, half)
        mt.stats['compiled'] += 1
    return k


class Table:
    """The device rows for tensors [(weight, grad, *states)] of cupy arrays (C-contiguous, one shape per tensor;
    a 16-bit weight and gradient beside float32 masters and states in the mixed form); set(cls, wd_nonzero) gives each tensor its scalar class and wd flag, copying the table to the
    device only when they change."""

    def __init__(self, xp, tensors):
        rows = []
        for i, arrs in enumerate(tensors):
            n = arrs[0].size
            ptrs = [(a.data.ptr, a.itemsize) for a in arrs] + [(0, 0)] * (5 - len(arrs))
            for off in range(0, n, mt.CHUNK):
                rows.append([p + off * size for p, size in ptrs] + [min(mt.CHUNK, n - off), i, 0])
        self.xp, self.keep = xp, tensors  # (the arrays stay alive while their pointers are in the table)
        self.host = np.array(rows, dtype=np.int64).reshape(-1, mt.WORDS)
        self.tensor = self.host[:, mt.TI].copy()
        self.rows, self._key = None, None

    def set(self, cls, wd_nonzero):
        key = (cls.tobytes(), wd_nonzero.tobytes())
        if key != self._key:
            self.host[:, mt.TI] = cls[self.tensor]
            self.host[:, mt.FLAGS] = np.where(wd_nonzero[self.tensor], mt.WD, 0)
            self.rows, self._key = self.xp.asarray(self.host), key
        return self.rows


def check(tensors, mp=False):
    """(compute dtype, 16-bit storage dtype or None) of tensors [(weight, grad, *states)] of device arrays the
    kernel can update, else None: float32/float64 throughout, or with mp (multi_precision: states (master,
    *inner)) a float16/bfloat16 weight and gradient beside float32 states; C-contiguous, one shape and device per
    tensor, no two arrays the same memory."""
    from .cuda import HALF
    dtype = tensors[0][0].dtype
    ok = dtype in HALF if mp else dtype in (np.float32, np.float64)
    if not ok or len({len(t) for t in tensors}) != 1 or not 2 + mp <= len(tensors[0]) <= 5:
        return None
    want = [dtype] * 2 + [np.dtype(np.float32) if mp else dtype] * (len(tensors[0]) - 2)
    dev, seen = tensors[0][0].device.id, set()
    for arrs in tensors:
        for a, dt in zip(arrs, want):
            if type(a) is not type(arrs[0]) or a.dtype != dt or a.shape != arrs[0].shape or \
                    not a.flags.c_contiguous or a.device.id != dev or a.data.ptr in seen:
                return None
            seen.add(a.data.ptr)
    return (np.dtype(np.float32), dtype) if mp else (dtype, None)


def classes(scal):
    """(class of each tensor, the class rows padded to CLASSES) for a (tensors, scalars) table, classes in order
    of first appearance; None when there are more than CLASSES distinct rows."""
    uniq, first, inv = np.unique(scal, axis=0, return_index=True, return_inverse=True)
    if len(uniq) > CLASSES:
        return None
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    rows = np.zeros((CLASSES, scal.shape[1]), scal.dtype)
    rows[:len(uniq)] = uniq[order]
    return rank[inv.reshape(-1)].astype(np.int64), rows
