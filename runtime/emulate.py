"""Host emulation of the generated CUDA: the very source cuda.py emits, compiled as C++ by g++ with
cuda_emu.h (CUDA built-ins as host code; threads of a block as fibers where a kernel synchronizes), loaded
with ctypes, its grid run on the CPU, and the results compared with the reference interpreter.

It checks what can be checked without a GPU: index arithmetic, broadcasting strides, the reduction trees
(warp shuffles and shared memory, barrier by barrier), launch configurations and the GpuPlan's data flow.
It cannot check timing, memory coalescing, or the device's math library (CUDA's expf is within 2 ulp, not
glibc's), so comparisons use float32 tolerances.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import threading

import numpy as np

from ..base import GraphcError
from . import cuda
from .cpu import is_private_file, private_subdir

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'cuda_emu.h')
FLAGS = ['-std=c++17', '-O1', '-shared', '-fPIC', '-Wall', '-Wextra', '-Werror', '-ffp-contract=off']
_lock = threading.Lock()
_libs = {}  # source hash -> Library


def gxx_path():
    return shutil.which('g++')


def _launcher(k):
    """A C entry point per kernel: the argument array cast to its typed pointers, the grid run by emu::launch."""
    n_in = len(k.in_dtypes)
    args = [f"(const {cuda.CTYPES[d]} *)p[{i}]" for i, d in enumerate(k.in_dtypes)]
    args += [f"({cuda.CTYPES[d]} *)p[{n_in + i}]" for i, d in enumerate(k.out_dtypes)]
    return (f'extern "C" int emu_launch_{k.name}(void **a, unsigned gx, unsigned gy, unsigned gz, unsigned bx, '
            f'unsigned by, unsigned bz, int fibers) {{\n'
            f'  return emu::launch(dim3{{gx, gy, gz}}, dim3{{bx, by, bz}}, fibers, '
            f'[](void **p) {{ {k.name}({", ".join(args)}); }}, a);\n}}\n')


class Library:
    """Kernels compiled for the host in one shared library (cached on disk by a hash of the source)."""

    def __init__(self, kernels):
        exe = gxx_path()
        if exe is None:
            raise GraphcError("g++ was not found on PATH: the CUDA host emulation needs a C++ compiler")
        uniq = {k.name: k for k in kernels}
        self.kernels = uniq
        with open(HEADER) as f:
            header = f.read()
        src = '#include "cuda_emu.h"\n' + cuda.module_source(list(uniq.values()), includes=False) + '\n' + \
            ''.join(_launcher(k) for k in uniq.values())
        key = hashlib.sha256('\0'.join([header, src, *FLAGS]).encode()).hexdigest()
        d = private_subdir('emu')  # the library is loaded as code: only from a directory of this user
        so = os.path.join(d, key + '.so')
        if not is_private_file(so):
            cpp = os.path.join(d, key + '.cpp')
            with open(cpp, 'w') as f:
                f.write(src)
            tmp = f"{so}.tmp{os.getpid()}"
            r = subprocess.run([exe, *FLAGS, '-I', os.path.dirname(HEADER), cpp, '-o', tmp],
                               capture_output=True, text=True, timeout=600)
            msg = (r.stdout + r.stderr).strip()
            if r.returncode != 0 or msg:
                raise GraphcError(f"g++ (CUDA host emulation) failed on {cpp}:\n{msg}")
            os.replace(tmp, so)
        self.path = so
        self.lib = ctypes.CDLL(so)
        self.fns = {}
        for name in uniq:
            fn = getattr(self.lib, f'emu_launch_{name}')
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.POINTER(ctypes.c_void_p)] + [ctypes.c_uint] * 6 + [ctypes.c_int]
            self.fns[name] = fn

    def launch(self, k, arrays, grid=None, block=None):
        """Run kernel k over the device arrays (inputs then outputs: C-contiguous NumPy arrays)."""
        want = list(zip(k.in_shapes, k.in_dtypes)) + list(zip(k.out_shapes, k.out_dtypes))
        if len(arrays) != len(want):
            raise GraphcError(f"{k.name}: {len(arrays)} arrays for {len(want)} parameters")
        for i, (a, (s, d)) in enumerate(zip(arrays, want)):
            # (sizes, not shapes: a kernel is shared by every node whose source is the same, and an elementwise
            # kernel's source knows only the element count, so expm1 of [25] and of [5, 5] is one kernel)
            if a.size != int(np.prod(s, dtype=np.int64)) or a.dtype != d or \
                    not a.flags.c_contiguous:
                raise GraphcError(f"{k.name}: argument {i} is {a.dtype}{list(a.shape)}, the kernel takes a "
                                  f"C-contiguous {np.dtype(d).name}{list(s)}")
        ptrs = (ctypes.c_void_p * len(arrays))(*[a.ctypes.data for a in arrays])
        g, b = grid or k.grid, block or k.block
        with _lock:
            r = self.fns[k.name](ptrs, *g, *b, int(k.sync))
        if r:
            why = "__syncthreads or a shuffle in a kernel launched without fibers" if r == 1 else \
                "threads of a block did not reach the same barriers"
            raise GraphcError(f"{k.name}: {why}")

    def run(self, k, inputs):
        """Outputs of kernel k for the given inputs (NumPy arrays). Every buffer sits between guard zones of
        canaries (NaN for floats): a stray read gives NaN, which fails the comparison, and a stray write is
        reported, rather than reading or corrupting other memory."""
        bufs = [_guarded(np.asarray(a, d)) for a, d in zip(inputs, k.in_dtypes)]
        bufs += [_guarded(_nans(s, d)) for s, d in zip(k.out_shapes, k.out_dtypes)]
        self.launch(k, [a for _, a in bufs])
        for i, (buf, _) in enumerate(bufs):
            if not (_canary_ok(buf[:GUARD]) and _canary_ok(buf[-GUARD:])):
                raise GraphcError(f"{k.name}: wrote outside its {'input' if i < len(inputs) else 'output'} "
                                  f"argument {i}")
        return [a.copy() for _, a in bufs[len(inputs):]]


GUARD = 4096  # elements of canaries on each side of an emulated buffer


def _nans(shape, dtype):
    """An array of NaN (floats, bfloat16 too), else of 0x5A."""
    return np.full(shape, np.nan if dtype.kind == 'f' or dtype == cuda.BF16 else 0x5A, dtype)


def _canary(dtype):
    return _nans(GUARD, dtype)


def _canary_ok(zone):
    return zone.view(np.uint8).tobytes() == _canary(zone.dtype).view(np.uint8).tobytes()


def _guarded(a):
    """(the whole buffer, a C-contiguous view of a's values between two guard zones)."""
    buf = np.concatenate([_canary(a.dtype), a.reshape(-1), _canary(a.dtype)])
    return buf, buf[GUARD:GUARD + a.size].reshape(a.shape)


def library(kernels):
    """The (cached) Library holding these kernels."""
    key = hashlib.sha256('\0'.join(sorted({k.source for k in kernels})).encode()).hexdigest()
    with _lock:
        lib = _libs.get(key)
    if lib is None:
        lib = Library(kernels)
        with _lock:
            _libs[key] = lib
    return lib


class EmuDevice:
    """The GpuPlan's device for tests without a GPU: NumPy arrays, kernels run by the host emulation."""
    xp = np

    def __init__(self, lib=None):
        self._lib = {name: lib for name in lib.kernels} if lib else {}

    def prepare(self, kernels):
        kernels = [k for k in kernels if k.name not in self._lib]
        if not kernels:
            return
        lib = library(kernels)
        for k in kernels:
            self._lib[k.name] = lib

    def function(self, kernel):
        if kernel.name not in self._lib:
            self.prepare([kernel])
        lib = self._lib[kernel.name]
        return lambda args: lib.launch(kernel, list(args))

    def to_host(self, a):
        return np.asarray(a)

    def to_device(self, a):
        return np.asarray(a)

    def synchronize(self):
        pass


def max_error(got, want):
    """(max abs error, that relative to max(1, max |want|)): the array's scale, since a sum's rounding depends on
    its terms, not on its (possibly cancelled) value. NaN/Inf placements must agree exactly."""
    got, want = (np.asarray(a, np.float64) for a in (got, want))
    if got.shape != want.shape:
        return np.inf, np.inf
    fin = np.isfinite(want)
    if not np.array_equal(fin, np.isfinite(got)) or not np.array_equal(got[~fin], want[~fin], equal_nan=True):
        return np.inf, np.inf
    if not fin.any():
        return 0.0, 0.0
    d = float(np.abs(got[fin] - want[fin]).max())
    return d, d / max(1.0, float(np.abs(want[fin]).max()))


def graph_values(graph, feed):
    """Every node's outputs, as the interpreter (NumPy reference kernels) computes them."""
    from ..interpreter import interpret
    env = {}
    with np.errstate(all='ignore'):
        interpret(graph, feed, env=env, keep=[n for n in graph.nodes if not n.is_var])
    return env


def check_graph(graph, feed, lib=None):
    """Run each CUDA kernel of graph's GPU plan in emulation on the values the interpreter gives its node, and
    compare with the interpreter's outputs there. A GEMM/conv anchor's epilogue gets the anchor's NumPy result;
    a device op (convolution: im2col/col2im kernels and GEMMs) runs whole with NumPy as the array library.
    Returns [(node name, kernels, max error relative to max(1, max |reference|))] (see max_error)."""
    env = graph_values(graph, feed)
    rows = [r for r in cuda.graph_kernels(graph) if r[1] != 'host']
    lib = lib or library([k for _, how, d in rows for k in cuda.node_kernels(how, d)])
    launch = lambda k, arrays: lib.run(k, arrays)  # noqa: E731
    out = []
    for n, how, d in rows:
        ins = [env[s][j] for s, j in n.inputs]
        want = list(env[n])
        if how == 'kernel':
            got = lib.run(d, ins)
        elif how == 'device':
            got = list(d.run(launch, np, ins))
        elif how == 'group':
            got = cuda.GpuPlan(d, EmuDevice(lib))(dict(zip(d.inputs, ins)))
        else:
            anchor, aop, a_in, k, e_in, out_map = d
            args = [ins[i] for i in a_in]
            a = aop.run(launch, np, args)[0] if aop else anchor.op.ref(anchor.attrs, *args)
            got = [a if m is None else lib.run(k, [a] + [ins[i] for i in e_in])[m] for m in out_map]
        out.append((n.name, cuda.node_kernels(how, d), max(max_error(g, w)[1] for g, w in zip(got, want))))
    return out


def check_kernel(k, inputs, lib=None):
    """(emulated outputs, reference outputs, max error relative to max(1, max |reference|)) of one kernel."""
    got = (lib or library([k])).run(k, inputs)
    want = k.reference(inputs)
    return got, want, max(max_error(g, w)[1] for g, w in zip(got, want))
