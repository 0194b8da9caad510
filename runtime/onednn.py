"""Convolution and Deconvolution (forward, data gradient, weight and bias gradient) through oneDNN's C API,
where the optional `onednn-cpu-gomp` wheel is installed (`pip install graphc[onednn]`): the direct AVX-512/AVX2
kernels MXNet and PyTorch call. NCHW float32 NumPy arrays in and out; a primitive is created once per geometry
and thread count and kept. oneDNN picks its own (blocked) layouts and the arrays are reordered into and out of them
around each call where that was measured faster than NCHW (layout_for; benchmarks/conv_layers.py).

The library loads on the first convolution, never on `import graphc`; without it (or with GRAPHC_ONEDNN=0,
the interpreter backend, float64, channel-last layouts) every entry point returns None and graphc.ops.nn's
im2col + GEMM path runs. oneDNN's OpenMP threads follow GRAPHC_NUM_THREADS, as the compiled kernels do."""
import ctypes
import math
import os
import sys
import threading

import numpy as np

from .. import config
from ..base import GraphcError

DISTRIBUTIONS = ('onednn-cpu-gomp', 'onednn', 'onednn-cpu-iomp')   # wheels that ship libdnnl.so.3
F32, ANY, TAG_A = 3, 1, 2                          # dnnl_f32, dnnl_format_tag_any, dnnl_a (dnnl_ab, ... follow)
FWD_TRAINING, FWD_INFERENCE, DIRECT = 64, 96, 1    # prop kinds, dnnl_convolution_direct
RELU, CLIP, POOL_MAX = 0x20, 0x2e, 0x1ff          # dnnl_eltwise_relu, dnnl_eltwise_clip, dnnl_pooling_max
Q_SRC, Q_DIFF_SRC, Q_WEIGHTS, Q_DIFF_WEIGHTS, Q_DST, Q_DIFF_DST = range(129, 135)   # dnnl_query_*_md
Q_IMPL_INFO = 8                                    # dnnl_query_impl_info_str
SRC, DST, WEIGHTS, BIAS, DIFF_SRC, DIFF_DST, DIFF_WEIGHTS, DIFF_BIAS = 1, 17, 33, 41, 129, 145, 161, 169
RUNTIME_OMP = 2                                    # dnnl_version()->cpu_runtime of an OpenMP build
ALIGN = 4096                                       # of each reorder buffer in the arena
Dims = ctypes.c_int64 * 12                         # dnnl_dims_t


class _Arg(ctypes.Structure):
    _fields_ = [('arg', ctypes.c_int), ('memory', ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [('major', ctypes.c_int), ('minor', ctypes.c_int), ('patch', ctypes.c_int),
                ('hash', ctypes.c_char_p), ('cpu_runtime', ctypes.c_uint), ('gpu_runtime', ctypes.c_uint)]


_state = {}          # 'lib', 'engine', 'stream', 'omp' (omp_set_num_threads or None), 'version', 'path', 'pid'
_load_lock = threading.Lock()
_cache_lock = threading.Lock()
_run_lock = threading.Lock()   # one oneDNN call at a time: the memory objects and the arena are shared
_arena = [np.empty(0, np.uint8)]   # the reorder buffers of the running call: grown to the largest call's, reused
_plans = {}          # (kind, shapes, geometry, layout, threads) -> _Step, or None where oneDNN has no kernel
_omp = threading.local()   # .n: the OpenMP thread count last set on this thread


def _find():
    """Paths of libdnnl in the installed wheels (their RECORD: never a download), the .so.3 first. The RECORD
    files on sys.path are read directly first: importing importlib.metadata (email, csv, zipfile) took longer than
    the rest of a cold first convolution's setup."""
    import glob
    for d in sys.path:
        for dist in DISTRIBUTIONS:
            for rec in glob.glob(os.path.join(glob.escape(d or '.'), dist.replace('-', '_') + '-*.dist-info', 'RECORD')):
                try:
                    with open(rec) as f:
                        names = [ln.split(',')[0] for ln in f]
                except OSError:
                    continue
                libs = sorted((n for n in names if os.path.basename(n).startswith('libdnnl.so')),
                              key=lambda n: os.path.basename(n) != 'libdnnl.so.3')
                yield from (os.path.normpath(os.path.join(d, n)) for n in libs)
    import importlib.metadata as md
    for dist in DISTRIBUTIONS:
        try:
            files = md.files(dist) or []
        except md.PackageNotFoundError:
            continue
        libs = sorted((f for f in files if f.name.startswith('libdnnl.so')), key=lambda f: f.name != 'libdnnl.so.3')
        yield from (str(f.locate()) for f in libs)


def library():
    """The loaded libdnnl (ctypes) with its CPU engine and stream, or None: no wheel, a wheel that does not
    load here (the 2026 `onednn` wheel needs Intel's SYCL and TBB runtimes), or not the v3 API."""
    if not _state:
        with _load_lock:
            if not _state:
                _state.update(_load() or {'lib': None})
    return _state['lib']


def _load():
    # GNU OpenMP's idle threads sleep instead of spinning (read when libgomp loads, with libdnnl): spinning, they
    # took the cores from OpenBLAS's and graphc's threads between convolutions (LeNet's step at batch 600, 2
    # threads: 195 ms spinning, 128 ms passive; 121 ms without oneDNN)
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    for path in _find():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.dnnl_version.restype = ctypes.POINTER(_Version)
        v = lib.dnnl_version().contents
        if v.major != 3:
            continue
        lib.dnnl_primitive_desc_query_md.restype = ctypes.c_void_p
        lib.dnnl_primitive_desc_query_md.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.dnnl_memory_desc_get_size.restype = ctypes.c_size_t
        lib.dnnl_memory_desc_get_size.argtypes = [ctypes.c_void_p]
        lib.dnnl_memory_desc_equal.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.dnnl_memory_set_data_handle.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.dnnl_primitive_execute.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        engine, stream = ctypes.c_void_p(), ctypes.c_void_p()
        if lib.dnnl_engine_create(ctypes.byref(engine), 1, ctypes.c_size_t(0)) or \
                lib.dnnl_stream_create(ctypes.byref(stream), engine, ctypes.c_uint(1)):   # dnnl_cpu, in order
            continue
        omp = None
        if v.cpu_runtime == RUNTIME_OMP:   # the libgomp/libiomp libdnnl links (already loaded: same soname)
            for name in ('libgomp.so.1', 'libiomp5.so'):
                try:
                    omp = ctypes.CDLL(name).omp_set_num_threads
                    break
                except (OSError, AttributeError):
                    pass
        return {'lib': lib, 'engine': engine, 'stream': stream, 'omp': omp,
                'version': f"{v.major}.{v.minor}.{v.patch}", 'path': path, 'pid': os.getpid()}
    return None


def available():
    """Switched on, loaded, and this is the process that loaded it and its main thread. GNU OpenMP's thread pool
    does not survive a fork (a forked child's first parallel region can hang), so a child -- a DataLoader worker
    -- stays on NumPy; and a primitive run from a second thread crashed here (its first thread alive or not:
    gluon.utils.parallel's shards, say), so other threads stay on NumPy too."""
    return config.onednn() and threading.current_thread() is threading.main_thread() and library() is not None \
        and _state['pid'] == os.getpid()


def _check(status, what):
    if status:
        raise GraphcError(f"oneDNN: {what} failed (status {status})")


def _threads():
    """Set this thread's OpenMP thread count to GRAPHC_NUM_THREADS (oneDNN's parallel regions use it); returns it."""
    n = max(1, config.num_threads())
    if _state['omp'] is not None and getattr(_omp, 'n', None) != n:
        _state['omp'](n)
        _omp.n = n
    return n


def _md(dims, any_layout=False):
    """A memory descriptor of float32 `dims`: oneDNN's choice of layout, or the plain row-major one (nchw,
    oihw, goihw, ...: dnnl_a, dnnl_ab, ... by rank)."""
    lib, md = _state['lib'], ctypes.c_void_p()
    _check(lib.dnnl_memory_desc_create_with_tag(ctypes.byref(md), len(dims), Dims(*dims), F32,
                                                ANY if any_layout else TAG_A + len(dims) - 1), f"a memory desc {dims}")
    return md


def _memory(md):
    """A memory object of that desc without a buffer (each call sets its data handle)."""
    m = ctypes.c_void_p()
    _check(_state['lib'].dnnl_memory_create(ctypes.byref(m), md, _state['engine'], None), "a memory object")
    return m


def _primitive(pd):
    p = ctypes.c_void_p()
    _check(_state['lib'].dnnl_primitive_create(ctypes.byref(p), pd), "a primitive")
    return p


def _args(pairs):
    return (len(pairs), (_Arg * len(pairs))(*[_Arg(a, m.value) for a, m in pairs]))


ARENA = 256 << 20   # bytes of address space the arena takes at first


def _grown(need):
    """A new arena of at least `need` bytes, with room to spare: its pages are faulted in only where a call touches
    them, while a regrown arena faults in every page again (LeNet's first step at batch 600 grew it three times:
    16k faults, 25 ms of its 280 at 2 threads)."""
    try:
        return np.empty(max(need, 2 * _arena[0].size, ARENA), np.uint8)
    except MemoryError:   # (no address space to spare: overcommit off)
        return np.empty(need, np.uint8)


class _Step:
    """A chain of primitives over plain C-contiguous arrays: the arguments for which oneDNN chose another layout
    are reordered from the plain array into a buffer of that layout before their primitive (inputs) or back after
    it (outputs); an output with no plain desc stays in its chosen layout for the next primitive's input with
    none (conv -> pooling: the activation never leaves the blocked layout). The buffers are slices of one arena
    that every call shares (kept per primitive they would hold several copies of each layer's activations: 200 MB
    a buffer for ResNet-18's stem at batch 64 of 224x224)."""

    def __init__(self, chain, kept=()):
        """chain: [(primitive desc, args)]; args: (oneDNN argument, query of its chosen md, index, plain md, None
        (linked: the last output with None) or an int (a value in the arena: an output names a new value or, where
        the value exists, writes it in place -- a sum post-op), is an output), in call order. A value's slice is
        reused by a later value once no primitive after its last one reads it, and so is a reorder's buffer after
        its primitive. kept: the positions among the call's arrays of inputs (weights) whose reordered copies are
        kept in buffers of this step's own between calls (__call__ says when they are made again)."""
        self.pds, self.user, self.ops, self.scratch, self.slots = [pd for pd, _ in chain], [], [], [], []
        self.kept, self.kept_ops, self.kept_bufs, self.held = tuple(sorted(kept)), [], [], None
        last = {a[3]: i for i, (_, args) in enumerate(chain) for a in args if type(a[3]) is int}
        values, free = {}, []   # (free: the slots no later primitive reads: of dead values, of past reorders)
        for i, (pd, args) in enumerate(chain):
            pre, post, pairs, temps = [], [], [], []
            for arg, query, index, plain, out in args:
                chosen = ctypes.c_void_p(_state['lib'].dnnl_primitive_desc_query_md(pd, query, index))   # (32 bits)
                if plain is None or type(plain) is int:
                    if out and (plain is None or plain not in values):
                        values[plain] = (self._buffer(chosen, free if plain is not None else []), self.scratch[-1][1])
                    m = values[plain][0]
                else:
                    m = self._user(chosen, plain, out, post if out else pre, temps, free)
                pairs.append((arg, m))
            self.ops += pre + [(_primitive(pd), _args(pairs))] + post
            free += temps + [values[k][1] for k, at in last.items() if at == i]
        self.impl = _impl(chain[0][0])

    def _buffer(self, md, free=()):
        """A memory object of md over an arena slot: a free one (taken from `free`, grown to fit) or a new one."""
        m, size = _memory(md), -(-_state['lib'].dnnl_memory_desc_get_size(md) // ALIGN) * ALIGN
        slot = free.pop() if free else len(self.slots)
        if slot == len(self.slots):
            self.slots.append(0)
        self.slots[slot] = max(self.slots[slot], size)
        self.scratch.append((m, slot))
        return m

    def _user(self, chosen, plain, out, reorders, temps, free):
        """The memory object the primitive gets for a plain array (its handle set per call): that array's own,
        or a buffer of the chosen layout with a reorder between the two: a kept input's own, else an arena slot
        (taken from free where one is, its slot added to temps)."""
        lib, eng = _state['lib'], _state['engine']
        um = _memory(plain)
        self.user.append(um)
        if lib.dnnl_memory_desc_equal(chosen, plain):
            return um
        if not out and len(self.user) - 1 in self.kept:   # (a buffer of its own, reordered into on a refresh)
            m, buf = _memory(chosen), np.empty(lib.dnnl_memory_desc_get_size(chosen) + 64, np.uint8)
            lib.dnnl_memory_set_data_handle(m, -buf.ctypes.data % 64 + buf.ctypes.data)
            self.kept_bufs += [m, buf]
            reorders = self.kept_ops
        else:
            m = self._buffer(chosen, free)
            temps.append(self.scratch[-1][1])
        src, dst = (chosen, plain) if out else (plain, chosen)
        rpd = ctypes.c_void_p()
        _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), src, eng, dst, eng, None), "a reorder")
        self.pds.append(rpd)
        reorders.append((_primitive(rpd), _args([(SRC, m if out else um), (DST, um if out else m)])))
        return m

    def __call__(self, *arrays):
        """Run the chain over the arrays (inputs and outputs in call order). The kept inputs' reordered copies are
        made again only where one of them is another array than at the last call (which the step holds, so no other
        array can take its address) or an in-place write through the API happened since (WRITES); a NumPy write
        into a parameter's own buffer is not seen, as elsewhere. ResNet-18 at batch 1 of 224x224 spent 13 of its 39
        ms reordering weights at one thread."""
        lib, stream = _state['lib'], _state['stream']
        refresh = True
        if self.kept:
            from ..ndarray.ndarray import WRITES
            ws, held = tuple(arrays[i] for i in self.kept), self.held
            refresh = held is None or held[1] != WRITES[0] or any(a is not b for a, b in zip(held[0], ws))
            self.held = (ws, WRITES[0])
        with _run_lock:
            for m, a in zip(self.user, arrays):
                lib.dnnl_memory_set_data_handle(m, a.ctypes.data)
            need = sum(self.slots) + ALIGN
            if _arena[0].size < need:
                _arena[0] = _grown(need)
            at = [-_arena[0].ctypes.data % ALIGN + _arena[0].ctypes.data]
            for size in self.slots[:-1]:
                at.append(at[-1] + size)
            for m, slot in self.scratch:
                lib.dnnl_memory_set_data_handle(m, at[slot])
            for prim, (n, args) in (self.kept_ops if refresh else []) + self.ops:
                _check(lib.dnnl_primitive_execute(prim, stream, n, args), f"executing {self.impl}")
            _check(lib.dnnl_stream_wait(stream), "the stream")


def _impl(pd):
    """The name of the implementation oneDNN picked for a primitive desc ('brgconv:avx512_core', 'ref:any', ...)."""
    s = _state['lib'].dnnl_primitive_desc_query(pd, Q_IMPL_INFO, 0, ctypes.byref(info := ctypes.c_char_p()))
    return info.value.decode() if not s and info.value else '?'


def _geometry(attrs):
    """(kernel, stride, dilate, pad, groups) of a Convolution's attrs (the op validated them)."""
    k = tuple(attrs['kernel'])
    nd = len(k)
    return (k, tuple(attrs['stride'] or (1,) * nd), tuple(attrs['dilate'] or (1,) * nd),
            tuple(attrs['pad'] or (0,) * nd), attrs['num_group'])


def _out(x, k, st, dl, pd):
    return tuple((x[2 + i] + 2 * pd[i] - dl[i] * (k[i] - 1) - 1) // st[i] + 1 for i in range(len(k)))


def _plan(kind, xs, ws, geo, bias, layout):
    """The cached _Step of `kind` ('fwd', 'bwd_data', 'bwd_weights') for data shape xs and weight shape ws, or
    None where oneDNN has no kernel. layout: 'blocked' (oneDNN picks every layout, reorders around), 'nchw'
    (activations as given, the weights in oneDNN's layout) or 'plain' (everything as given)."""
    n = _threads()
    key = (kind, xs, ws, geo, bias, layout, n)
    step = _plans.get(key, False)
    if step is not False:
        return step
    with _cache_lock:
        if key not in _plans:
            _plans[key] = _create(kind, xs, ws, geo, bias, layout)
        return _plans[key]


def _create(kind, xs, ws, geo, bias, layout):
    lib, eng = _state['lib'], _state['engine']
    k, st, dl, pd, g = geo
    ys = (xs[0], ws[0]) + _out(xs, k, st, dl, pd)
    wd = ((g, ws[0] // g) + ws[1:]) if g > 1 else ws   # goihw: the same memory as (F, C/g, kh, kw)
    plain = {'x': _md(xs), 'w': _md(wd), 'y': _md(ys), 'b': _md((ws[0],))}
    want = {'plain': plain, 'nchw': dict(plain, w=_md(wd, True)),
            'blocked': {'x': _md(xs, True), 'w': _md(wd, True), 'y': _md(ys, True), 'b': plain['b']}}[layout]
    b = want['b'] if bias else None
    geo_args = (Dims(*st), Dims(*(d - 1 for d in dl)), Dims(*pd), Dims(*pd))
    p, hint = ctypes.c_void_p(), ctypes.c_void_p()
    if kind == 'fwd':
        s = lib.dnnl_convolution_forward_primitive_desc_create(ctypes.byref(p), eng, FWD_INFERENCE, DIRECT, want['x'],
                                                               want['w'], b, want['y'], *geo_args, None)
        args = [(SRC, Q_SRC, 0, plain['x'], False), (WEIGHTS, Q_WEIGHTS, 0, plain['w'], False)] + \
            ([(BIAS, Q_WEIGHTS, 1, plain['b'], False)] if bias else []) + [(DST, Q_DST, 0, plain['y'], True)]
    else:
        s = lib.dnnl_convolution_forward_primitive_desc_create(ctypes.byref(hint), eng, FWD_TRAINING, DIRECT, want['x'],
                                                               want['w'], b, want['y'], *geo_args, None)
        if s == 0 and kind == 'bwd_data':
            s = lib.dnnl_convolution_backward_data_primitive_desc_create(ctypes.byref(p), eng, DIRECT, want['x'],
                                                                         want['w'], want['y'], *geo_args, hint, None)
            args = [(DIFF_DST, Q_DIFF_DST, 0, plain['y'], False), (WEIGHTS, Q_WEIGHTS, 0, plain['w'], False),
                    (DIFF_SRC, Q_DIFF_SRC, 0, plain['x'], True)]
        elif s == 0:
            s = lib.dnnl_convolution_backward_weights_primitive_desc_create(
                ctypes.byref(p), eng, DIRECT, want['x'], want['w'], b, want['y'], *geo_args, hint, None)
            args = [(SRC, Q_SRC, 0, plain['x'], False), (DIFF_DST, Q_DIFF_DST, 0, plain['y'], False),
                    (DIFF_WEIGHTS, Q_DIFF_WEIGHTS, 0, plain['w'], True)] + \
                ([(DIFF_BIAS, Q_DIFF_WEIGHTS, 1, plain['b'], True)] if bias else [])
    return _Step([(p, args)], kept={1} if kind == 'fwd' else ()) if s == 0 else None   # (refused: im2col takes it)


def _post_attr(act, add=False):
    """Primitive attributes with post-ops, or None without any: a sum (the convolution adds its output to what its
    destination holds: a residual add, in place), then an activation: 'relu' or True (max(y, 0)), or (a_min, a_max),
    a clip."""
    if not (act or add):
        return None
    lib, po, attr = _state['lib'], ctypes.c_void_p(), ctypes.c_void_p()
    _check(lib.dnnl_post_ops_create(ctypes.byref(po)), "post-ops")
    if add:   # (scale 1, zero point 0, the destination's own data type)
        _check(lib.dnnl_post_ops_append_sum(po, ctypes.c_float(1), ctypes.c_int32(0), ctypes.c_int(0)), "a sum post-op")
    if act:
        alg, lo, hi = (RELU, 0, 0) if act is True or act == 'relu' else (CLIP,) + tuple(act)
        _check(lib.dnnl_post_ops_append_eltwise(po, alg, ctypes.c_float(lo), ctypes.c_float(hi)), "an eltwise post-op")
    _check(lib.dnnl_primitive_attr_create(ctypes.byref(attr)), "primitive attributes")
    _check(lib.dnnl_primitive_attr_set_post_ops(attr, po), "primitive attributes")
    return attr


def _create_chain(xs, stages):
    """Convolution (+ ReLU post-op) (-> max pooling) stages as one _Step: stages [(ws, geo, bias, relu, pool: kernel,
    stride, pad left, pad right, or None)], each reading the one before; the convolutions' outputs stay in oneDNN's
    layout in the arena, and so does a pooled output that the next stage reads (no reorder to NCHW and back between
    them). A single stage without pooling is the convolution alone. None where oneDNN has no kernel."""
    lib, eng = _state['lib'], _state['engine']
    chain, src = [], None   # (src: the previous stage's pooled output's desc, linked)
    for i, (ws, geo, bias, relu, pool) in enumerate(stages):
        k, st, dl, pd, g = geo
        ys = (xs[0], ws[0]) + _out(xs, k, st, dl, pd)
        wd = ((g, ws[0] // g) + ws[1:]) if g > 1 else ws
        px, pw, pb = _md(xs), _md(wd), _md((ws[0],))
        cpd, blocked = ctypes.c_void_p(), layout_for('fwd', xs, ws, geo) == 'blocked'
        # (alone, its layouts are convolution()'s, so its kernel is too: a first tier's conv + ReLU, runtime/tiered.py,
        # computes the compiled plan's bits)
        s = lib.dnnl_convolution_forward_primitive_desc_create(
            ctypes.byref(cpd), eng, FWD_INFERENCE, DIRECT, _md(xs, blocked) if src is None else src,
            _md(wd, True), pb if bias else None, _md(ys, blocked or pool is not None), Dims(*st), Dims(*(d - 1 for d in dl)),
            Dims(*pd), Dims(*pd), _post_attr(relu))
        if s:
            return None
        last = i == len(stages) - 1
        chain.append((cpd, [(SRC, Q_SRC, 0, px if src is None else None, False), (WEIGHTS, Q_WEIGHTS, 0, pw, False)] +
                      ([(BIAS, Q_WEIGHTS, 1, pb, False)] if bias else []) +
                      [(DST, Q_DST, 0, None if pool else _md(ys), True)]))
        if pool is None:
            if not last:   # (a stage read by another ends in pooling: conv_pool links only those)
                return None
            break
        pk, pst, pl, pr = pool
        ps = ys[:2] + tuple((ys[2 + j] + pl[j] + pr[j] - pk[j]) // pst[j] + 1 for j in range(len(pk)))
        ppd = ctypes.c_void_p()
        s = lib.dnnl_pooling_forward_primitive_desc_create(
            ctypes.byref(ppd), eng, FWD_INFERENCE, POOL_MAX, ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(cpd, Q_DST, 0)),
            _md(ps, True), Dims(*pst), Dims(*pk), Dims(*(0,) * len(pk)), Dims(*pl), Dims(*pr), None)
        if s:
            return None
        chain.append((ppd, [(SRC, Q_SRC, 0, None, False), (DST, Q_DST, 0, _md(ps) if last else None, True)]))
        src, xs = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(ppd, Q_DST, 0)), ps
    return _Step(chain, kept=range(1, 1 + sum(2 if bias else 1 for _, _, bias, _, _ in stages)))


def conv_act_pool(attrs, *arrays):
    """passes/conv_pool.py's Convolution (+ ReLU) -> max Pooling as one chain of oneDNN primitives (the
    convolution's output never leaves its blocked layout nor the arena: no reorder, no page faults of a fresh
    array, ReLU in the convolution's epilogue), and the chain linked to it where one reads the other ('then'); the
    NCHW pooled output, or None (the op's parts run one by one)."""
    from ..ops.nn import pool_geom
    from ..passes.conv_pool import stages as split
    x, stages, xs = arrays[0], [], arrays[0].shape
    for a, wb in split(attrs, arrays[1:]):
        ca, pa, w = a['conv'], a['pool'], wb[0]
        if a['act'] not in (None, 'relu') or not usable(ca, xs, w.shape, (x.dtype,) + tuple(v.dtype for v in wb)):
            return None
        geo = _geometry(ca)
        ys = (xs[0], w.shape[0]) + _out(xs, *geo[:4])
        pool = None
        if pa is not None:
            if pa['pool_type'] != 'max' or str(pa.get('layout') or 'None') not in ('None', 'NCW', 'NCHW', 'NCDHW'):
                return None
            k, st, pd, extra, out = pool_geom(pa, ys)
            pool = (k, st, pd, tuple(p + e for p, e in zip(pd, extra)))
            ys = ys[:2] + out
        stages.append((w.shape, geo, len(wb) == 2, a['act'] == 'relu', pool))
        xs = ys
    return _run_stages('chain', _create_chain, stages, arrays, xs)


def _run_stages(kind, create, stages, arrays, out_shape):
    """The _Step that create(data shape, stages) builds, cached under kind (None too: oneDNN declined), run over
    the arrays (the data, then the stages' weights and biases: kept, see _Step.__call__) into a fresh float32 output
    of out_shape; None where oneDNN declined."""
    key = (kind, arrays[0].shape, *stages, _threads())
    step = _plans.get(key, False)
    if step is False:
        with _cache_lock:
            if key not in _plans:
                _plans[key] = create(arrays[0].shape, stages)
            step = _plans[key]
    if step is None:
        return None
    y = np.empty(out_shape, np.float32)
    step(*[_c(a) for a in arrays], y)
    return y


def _create_region(xs, stages):
    """passes/blocked_convs.py's convolutions as one _Step: stages [(ws, geo, bias, src, add, act)], src and add
    values (0: the data, i + 1: stage i's output; add: a residual summed in place, or None). Every value stays in the
    layout oneDNN chose for it, in the arena; the data is reordered in once (where more than one stage reads it),
    the last value out once. None where oneDNN has no kernel for a stage over its input's layout."""
    lib, eng = _state['lib'], _state['engine']
    shapes, key, mds, chain = [xs], {0: 0}, {}, []   # (key: a value's arena buffer; a sum's output is its summand's)
    shared = sum((src == 0) + (add == 0) for _, _, _, src, add, _ in stages) > 1
    for i, (ws, geo, bias, src, add, act) in enumerate(stages):
        k, st, dl, pd, g = geo
        ys = (shapes[src][0], ws[0]) + _out(shapes[src], k, st, dl, pd)
        wd = ((g, ws[0] // g) + ws[1:]) if g > 1 else ws
        if add is not None and (add not in key or key[add] not in mds or key[add] == key[src]):
            return None   # (a residual read before any convolution wrote it, or the convolution's own input)
        pw, pb = _md(wd), _md((ws[0],))

        def conv_pd(src_md):   # (None where oneDNN has no kernel for it, or only its slow reference one)
            p = ctypes.c_void_p()
            if lib.dnnl_convolution_forward_primitive_desc_create(
                    ctypes.byref(p), eng, FWD_INFERENCE, DIRECT, src_md, _md(wd, True), pb if bias else None,
                    mds[key[add]] if add is not None else _md(ys, True), Dims(*st), Dims(*(d - 1 for d in dl)),
                    Dims(*pd), Dims(*pd), _post_attr(act, add is not None)):
                return None
            return None if _impl(p).startswith('ref') else p
        cpd, via = conv_pd(mds.get(key[src]) or _md(shapes[src], True)), key[src]
        if cpd is None and key[src] in mds:   # (no fast kernel over its input's layout: reordered into the one it picks)
            cpd, via = conv_pd(_md(shapes[src], True)), -(i + 1)
            if cpd is not None:
                rpd = ctypes.c_void_p()
                _check(lib.dnnl_reorder_primitive_desc_create(
                    ctypes.byref(rpd), mds[key[src]], eng, ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(cpd, Q_SRC, 0)),
                    eng, None), "a reorder")
                chain.append((rpd, [(SRC, Q_SRC, 0, key[src], False), (DST, Q_DST, 0, via, True)]))
        if cpd is None:
            return None
        plain = None
        if key[src] not in mds:   # (the data, first read)
            mds[0] = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(cpd, Q_SRC, 0))
            if shared:
                rpd = ctypes.c_void_p()
                _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), _md(xs), eng, mds[0], eng, None),
                       "a reorder")
                chain.append((rpd, [(SRC, Q_SRC, 0, _md(xs), False), (DST, Q_DST, 0, 0, True)]))
            else:
                plain = _md(xs)
        key[i + 1] = key[add] if add is not None else i + 1
        mds[key[i + 1]] = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(cpd, Q_DST, 0))
        chain.append((cpd, [(SRC, Q_SRC, 0, plain or via, False), (WEIGHTS, Q_WEIGHTS, 0, pw, False)] +
                      ([(BIAS, Q_WEIGHTS, 1, pb, False)] if bias else []) + [(DST, Q_DST, 0, key[i + 1], True)]))
        shapes.append(ys)
    rpd, last = ctypes.c_void_p(), key[len(stages)]
    _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), mds[last], eng, _md(shapes[-1]), eng, None),
           "a reorder")
    chain.append((rpd, [(SRC, Q_SRC, 0, last, False), (DST, Q_DST, 0, _md(shapes[-1]), True)]))
    return _Step(chain, kept=range(1, 1 + sum(2 if bias else 1 for _, _, bias, *_ in stages)))


def conv_region(attrs, *arrays):
    """passes/blocked_convs.py's op, its convolutions (with their activations and residual adds as post-ops) as one chain
    of oneDNN primitives over blocked values: the NCHW output, or None (the op's parts run one by one)."""
    from ..passes.blocked_convs import in_place, stages as split
    x, shapes, stages = arrays[0], [arrays[0].shape], []
    for a, wb in split(attrs, arrays[1:]):
        xs, w = shapes[a['src']], wb[0]
        if not usable(a['conv'], xs, w.shape, (x.dtype,) + tuple(v.dtype for v in wb)):
            return None
        geo = _geometry(a['conv'])
        shapes.append((xs[0], w.shape[0]) + _out(xs, *geo[:4]))
        if a['add'] is not None and shapes[a['add']] != shapes[-1]:
            return None
        stages.append((w.shape, geo, len(wb) == 2, a['src'], a['add'], a['act']))
    if not in_place(attrs['stages']):
        return None
    return _run_stages('region', _create_region, stages, arrays, shapes[-1])


def layout_for(kind, xs, ws, geo):
    """'blocked', 'nchw' (see _plan) or None (graphc's im2col + GEMM path): the rule benchmarks/conv_layers.py
    measured on LeNet's and ResNet-18's layers (1 thread, AVX-512). A 1x1 kernel, or fewer than 128 output
    positions in all (batch 1 at 7x7: the reorders cost more than the blocked kernels save), keeps the
    activations in NCHW; so does the data gradient of fewer than 16 input channels (a stem: the blocked layout
    pads 3 channels to 16). The forward of one input channel (LeNet's first, batch 600) is blocked too: oneDNN's
    direct kernel, its 44 MB output reordered back, 14.4 ms a call against 16.5 for NCHW's GEMM kernel at 1 thread
    (8.9 vs 9.5 at 2), the training step about 4 ms shorter at 1 thread. The weight gradient of one output position
    per image (a GEMM) was 2.4x faster in OpenBLAS. On an AVX2 host (Zen 3) the weight gradient of one input channel
    runs im2col too: oneDNN's jit:avx2 kernel took 68 ms blocked and 32 in NCHW for LeNet's first layer at batch 600,
    im2col + OpenBLAS 23 (1 thread; its data gradient is not needed, so nothing else moves)."""
    from .cpu import vector_floats
    k, st, dl, pd, g = geo
    out = _out(xs, k, st, dl, pd)
    if kind == 'bwd_weights' and (math.prod(out) == 1 or xs[1] == 1 and vector_floats() == 8):
        return None
    if max(k) == 1 or xs[0] * math.prod(out) < 128 or kind == 'bwd_data' and xs[1] // g < 16:
        return 'nchw'
    return 'blocked'


def usable(attrs, xs, ws, dtypes, ys=None):
    """oneDNN runs this Convolution (data shape xs, weight ws, output ys where given): installed, switched on,
    the compiled backend, float32, channel-first, and the shapes agree (oneDNN trusts them: a wrong one would
    read past an array; the NumPy path names it)."""
    from .cpu import enabled
    if not (enabled() and all(d == np.float32 for d in dtypes) and xs[0] > 0 and
            str(attrs.get('layout') or 'None') in ('None', 'NCW', 'NCHW', 'NCDHW')):
        return False
    k, st, dl, pd, g = geo = _geometry(attrs)
    ok = len(xs) == len(k) + 2 and xs[1] % g == 0 and ws == (attrs['num_filter'], xs[1] // g) + k \
        and ws[0] % g == 0 and min(_out(xs, *geo[:4])) > 0
    return ok and (ys is None or ys == (xs[0], ws[0]) + _out(xs, *geo[:4])) and available()


def _c(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def convolution(attrs, x, w, b=None):
    """Convolution's output (N, F, *out) for NCHW float32 x, or None (the im2col path runs)."""
    if not usable(attrs, x.shape, w.shape, (x.dtype, w.dtype) + ((b.dtype,) if b is not None else ())):
        return None
    geo = _geometry(attrs)
    layout = layout_for('fwd', x.shape, w.shape, geo)
    step = layout and _plan('fwd', x.shape, w.shape, geo, b is not None, layout)
    if step is None:
        return None
    y = np.empty((x.shape[0], w.shape[0]) + _out(x.shape, *geo[:4]), np.float32)
    step(_c(x), _c(w), *([_c(b)] if b is not None else []), y)
    return y


def convolution_backward(attrs, dy, x, w):
    """(d data, d weight, d bias) of Convolution, or None; d data is zeros when attrs['_need'][0] is False (a
    first layer's data needs none)."""
    if not usable(attrs, x.shape, w.shape, (dy.dtype, x.dtype, w.dtype), dy.shape):
        return None
    geo = _geometry(attrs)
    need_dx = attrs.get('_need', (True,))[0]
    lw, ld = layout_for('bwd_weights', x.shape, w.shape, geo), layout_for('bwd_data', x.shape, w.shape, geo)
    if lw is None or need_dx and ld is None:   # (all three on one path: the NumPy one where either part wins there)
        return None
    bw = _plan('bwd_weights', x.shape, w.shape, geo, True, lw)
    bd = _plan('bwd_data', x.shape, w.shape, geo, False, ld) if need_dx else None
    if bw is None or need_dx and bd is None:
        return None
    dy, x, w = _c(dy), _c(x), _c(w)
    dw, db = np.empty(w.shape, np.float32), np.empty(w.shape[0], np.float32)
    bw(x, dy, dw, db)
    if need_dx:
        dx = np.empty(x.shape, np.float32)
        bd(dy, w, dx)
    else:
        dx = np.zeros_like(x)
    return dx, dw, db


def _as_convolution(attrs, xs):
    """A Deconvolution of data shape xs is the data gradient of a Convolution with the same weight (C_in, F/g,
    *k) whose data has the deconvolution's output shape: (that Convolution's attrs, its data shape)."""
    from ..ops.nn import deconv_pad
    pd, adj = deconv_pad(attrs, xs)  # a target_shape sets pad and adj
    attrs = dict(attrs, pad=pd, adj=adj, target_shape=())
    k, st, dl, pd, g = _geometry(attrs)
    out = tuple((xs[2 + i] - 1) * st[i] - 2 * pd[i] + dl[i] * (k[i] - 1) + 1 + adj[i] for i in range(len(k)))
    return dict(attrs, num_filter=xs[1]), (xs[0], attrs['num_filter']) + out


def deconvolution(attrs, x, w, b=None):
    """Deconvolution's output for NCHW float32 x, or None. (adj >= stride gives a Convolution whose output is
    not x's shape: None.)"""
    ca, ys = _as_convolution(attrs, x.shape)
    if not usable(ca, ys, w.shape, (x.dtype, w.dtype) + ((b.dtype,) if b is not None else ()), x.shape):
        return None
    geo = _geometry(ca)
    layout = layout_for('bwd_data', ys, w.shape, geo)
    step = layout and _plan('bwd_data', ys, w.shape, geo, False, layout)
    if step is None:
        return None
    y = np.empty(ys, np.float32)
    step(_c(x), _c(w), y)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def deconvolution_backward(attrs, dy, x, w):
    """(d data, d weight, d bias) of Deconvolution, or None: d data is the Convolution of dy, d weight that
    Convolution's weight gradient with dy as its data and x as its output gradient."""
    ca, ys = _as_convolution(attrs, x.shape)
    if dy.shape != ys or not usable(ca, ys, w.shape, (dy.dtype, x.dtype, w.dtype), x.shape):
        return None
    geo = _geometry(ca)
    lf, lw = layout_for('fwd', ys, w.shape, geo), layout_for('bwd_weights', ys, w.shape, geo)
    fwd = lf and _plan('fwd', ys, w.shape, geo, False, lf)
    bw = lw and _plan('bwd_weights', ys, w.shape, geo, False, lw)
    if fwd is None or bw is None:
        return None
    dy, x, w = _c(dy), _c(x), _c(w)
    dx, dw = np.empty(x.shape, np.float32), np.empty(w.shape, np.float32)
    fwd(dy, w, dx)
    bw(dy, x, dw)
    return dx, dw, dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))


# ---------------------------------------------------------------- FullyConnected as a matmul primitive, weights packed
# dnnl_sgemm packs its weight operand on every call; onnxruntime packs constant weights once. An inference plan's
# FullyConnected (passes/pack.py marks them) runs as oneDNN's matmul primitive over a copy of the weight reordered
# once into the layout the primitive chose, with bias and ReLU as post-ops, from a native segment row
# (runtime/native.py). The row repacks when the weight's address changes (the plan keeps the last call's array
# alive, so a new address is a new array) or when the plan's hook saw WRITES move (an in-place write: a
# Trainer step, set_data). Batch-64 784-256-256-10 MLP, one thread: 174 -> 154 us (benchmarks/onednn_matmul.py).
MM_STREAM, MM_PRIM, MM_ARGS, MM_NARGS, MM_MEMS, MM_REORDER, MM_RARGS, MM_LAST = 3, 4, 5, 6, 7, 11, 12, 13
MM_WORDS = 14   # ctx words: 3 function addresses (set handle, execute, wait), stream, matmul primitive, its args and
#               count, memories (src, weights plain, dst, bias), the reorder primitive and args, the last weight address
_mm = {}        # (m, n, k, bias, relu, threads) -> (matmul pd, primitive, reorder primitive, packed md) or None
_mm_fn = []


def _mm_ir():
    """`void graphc_dnnl_mm(i8** {x, w, [b], y}, i64 ctx, i64 nbufs)`: repack w where its address is not ctx's last,
    then the matmul primitive over x, the packed weights, b and y."""
    import llvmlite.ir as ir
    i8p, i64, i32 = ir.IntType(8).as_pointer(), ir.IntType(64), ir.IntType(32)
    mod = ir.Module(name='graphc_dnnl_mm')
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i8p.as_pointer(), i64, i64]), name='graphc_dnnl_mm')
    bufs, ctx, nb = fn.args
    b = ir.IRBuilder(fn.append_basic_block('entry'))
    c = b.inttoptr(ctx, i64.as_pointer())
    word = lambda k: b.load(b.gep(c, [ir.Constant(i64, k)]))  # noqa: E731
    buf = lambda k: b.load(b.gep(bufs, [k if isinstance(k, ir.Value) else ir.Constant(i64, k)]))  # noqa: E731
    fty = lambda n: ir.FunctionType(i32, [i8p] * n).as_pointer()  # noqa: E731
    set_h, wait = b.inttoptr(word(0), fty(2)), b.inttoptr(word(2), fty(1))
    execute = b.inttoptr(word(1), ir.FunctionType(i32, [i8p, i8p, i32, i8p]).as_pointer())
    stream = b.inttoptr(word(MM_STREAM), i8p)
    mem = lambda j: b.inttoptr(word(MM_MEMS + j), i8p)  # noqa: E731
    w = buf(1)
    last = b.gep(c, [ir.Constant(i64, MM_LAST)])
    with b.if_then(b.icmp_unsigned('!=', b.ptrtoint(w, i64), b.load(last))):
        b.call(set_h, [mem(1), w])
        b.call(execute, [b.inttoptr(word(MM_REORDER), i8p), stream, ir.Constant(i32, 2), b.inttoptr(word(MM_RARGS), i8p)])
        b.call(wait, [stream])
        b.store(b.ptrtoint(w, i64), last)
    b.call(set_h, [mem(0), buf(0)])
    b.call(set_h, [mem(2), buf(b.sub(nb, ir.Constant(i64, 1)))])
    with b.if_then(b.icmp_signed('==', nb, ir.Constant(i64, 4))):
        b.call(set_h, [mem(3), buf(2)])
    b.call(execute, [b.inttoptr(word(MM_PRIM), i8p), stream, b.trunc(word(MM_NARGS), i32), b.inttoptr(word(MM_ARGS), i8p)])
    b.call(wait, [stream])
    b.ret_void()
    return str(mod)


def _create_matmul(m, n, k, bias, relu):
    lib, eng = _state['lib'], _state['engine']
    pd = ctypes.c_void_p()
    if lib.dnnl_matmul_primitive_desc_create(ctypes.byref(pd), eng, _md((m, k)), _md((k, n), True),
                                             _md((1, n)) if bias else None, _md((m, n)), _post_attr(relu)):
        return None
    chosen = ctypes.c_void_p(lib.dnnl_primitive_desc_query_md(pd, Q_WEIGHTS, 0))
    rpd = ctypes.c_void_p()
    _check(lib.dnnl_reorder_primitive_desc_create(ctypes.byref(rpd), _plain_weight(n, k), eng, chosen, eng, None),
           "a reorder")
    return pd, _primitive(pd), _primitive(rpd), chosen


def _plain_weight(n, k):
    """The (k, n) desc over a row-major (n, k) weight: strides (1, k)."""
    md = ctypes.c_void_p()
    _check(_state['lib'].dnnl_memory_desc_create_with_strides(ctypes.byref(md), 2, Dims(k, n), F32, Dims(1, k)),
           "the weight desc")
    return md


class MatmulRow:
    """One packed FullyConnected of a plan: its ctx words (read by graphc_dnnl_mm), memory objects and packed
    weight buffer. stale() makes the next call repack."""

    def __init__(self, m, n, k, bias, relu, prims):
        lib = _state['lib']
        _, prim, reorder, chosen = prims
        mems = [_memory(_md((m, k))), _memory(_plain_weight(n, k)), _memory(_md((m, n)))] + \
            ([_memory(_md((1, n)))] if bias else [])
        packed_m = _memory(chosen)
        self.packed = np.empty(lib.dnnl_memory_desc_get_size(chosen) + 64, np.uint8)
        lib.dnnl_memory_set_data_handle(packed_m, -self.packed.ctypes.data % 64 + self.packed.ctypes.data)
        self.args = _args([(SRC, mems[0]), (WEIGHTS, packed_m), (DST, mems[2])] + ([(BIAS, mems[3])] if bias else []))
        self.rargs = _args([(SRC, mems[1]), (DST, packed_m)])
        self.mems = mems + [packed_m]
        fns = [ctypes.cast(f, ctypes.c_void_p).value for f in
               (lib.dnnl_memory_set_data_handle, lib.dnnl_primitive_execute, lib.dnnl_stream_wait)]
        self.ctx = np.zeros(MM_WORDS, np.int64)
        self.ctx[:MM_STREAM + 1] = fns + [_state['stream'].value]
        self.ctx[MM_PRIM], self.ctx[MM_ARGS], self.ctx[MM_NARGS] = prim.value, ctypes.addressof(self.args[1]), self.args[0]
        self.ctx[MM_MEMS:MM_MEMS + 4] = [mm.value for mm in mems] + [0] * (4 - len(mems))
        self.ctx[MM_REORDER], self.ctx[MM_RARGS] = reorder.value, ctypes.addressof(self.rargs[1])

    def stale(self):
        self.ctx[MM_LAST] = 0

    def __del__(self):   # (the plan holding the row is gone; the primitives stay cached per shape)
        lib = _state.get('lib')
        if lib is not None:
            for m in self.mems:
                lib.dnnl_memory_destroy(m)


def matmul_row(m, n, k, bias, relu):
    """(graphc_dnnl_mm's address, a MatmulRow) for y (m, n) = [relu](x (m, k) @ w (n, k).T [+ b]) at one thread, or
    None: oneDNN off or not here, another thread count (dnnl_sgemm's rule: measured at one), no kernel."""
    if not available() or _threads() != 1:
        return None
    key = (m, n, k, bias, relu, 1)
    if key not in _mm:
        with _cache_lock:
            if key not in _mm:
                _mm[key] = _create_matmul(m, n, k, bias, relu)
    if _mm[key] is None:
        return None
    if not _mm_fn:
        from .cpu import compile_ir
        _mm_fn.append(compile_ir(_mm_ir(), 'graphc_dnnl_mm'))
    return _mm_fn[0], MatmulRow(m, n, k, bias, relu, _mm[key])


def before_run(stales):
    """The hook a plan whose segments call oneDNN runs before each call: this thread's OpenMP thread count, and
    with packed weights (stales: their MatmulRow.stale), a repack after any in-place write since the last call."""
    if not stales:
        return _threads
    from ..ndarray.ndarray import WRITES
    seen = [WRITES[0]]

    def hook():
        _threads()
        if WRITES[0] != seen[0]:
            seen[0] = WRITES[0]
            for s in stales:
                s()
    return hook
