"""The plan executor: a graph flattened once into a list of steps with argument slots bound, so a
call runs with little Python per step (no dict lookups, no liveness work at run time).

It is the CPU backend's executor (runtime/backend.py): each step runs that backend's kernel of its op,
and runs of steps that compile natively (see runtime/native.py) become segments that execute in one call
each, over buffers preallocated in one arena; the per-step path stays as the fallback (a second thread
calling the same plan at once, or an input that no longer has the planned shape and dtype).
"""
import ctypes
import os
import sys
import threading
import weakref

import numpy as np

from .. import config
from ..base import GraphcError
from ..profiler import run_segment, symbolic as profiling, timed_steps
from ..graph import raise_at
from .backend import _record, recorders


_char, _addressof = ctypes.c_char, ctypes.addressof


def address(a):
    """The data address of a C-contiguous array: through the buffer protocol (0.15 us), where NumPy's
    a.ctypes.data and a.__array_interface__ build objects first (0.9 and 1.2 us; a batch-1 MLP's whole call is
    15 us); those for a read-only or empty array."""
    try:
        return _addressof(_char.from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.ctypes.data


M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3   # glibc's mallopt parameters
# bytes: trim the heap above 1 GiB free at its top, grow it 256 MiB beyond each request (the top pad alone took a
# LeNet step's faults from 213 to 0; the trim and mmap thresholds alone left 144), mmap blocks of 32 MiB (glibc's most) up
KEEP = ((M_TRIM_THRESHOLD, 1 << 30), (M_TOP_PAD, 256 << 20), (M_MMAP_THRESHOLD, 32 << 20))
_kept = []   # [the pid that set them]


def keep_memory():
    """Have glibc's malloc keep the memory a plan's steps free (once per process, where it is glibc and
    GRAPHC_KEEP_MEMORY is not 0): with its defaults, a LeNet step's large outputs and temporaries (up to 28 MB each
    at batch 600) went back to the kernel when freed and came back as 210-1,240 fresh page faults a step, the
    faults of two threads serialized in the kernel, and in a VM that returns guest pages to its host (free page
    reporting) each refilled by the host: the 2-thread step 1.2-2.5x its time at random, its own threads'
    CPU time grown (not another process's). MXNet and PyTorch keep such memory in their own pools; so the
    heap keeps it here (the process's resident size stays at its peak, as theirs does)."""
    if _kept == [os.getpid()] or not config.keep_memory():
        return
    _kept[:] = [os.getpid()]
    if any(k.startswith('MALLOC_') for k in os.environ):   # (the user's own malloc tuning wins)
        return
    mallopt = getattr(ctypes.CDLL(None), 'mallopt', None)
    if mallopt is not None and hasattr(os, 'confstr') and 'glibc' in (os.confstr('CS_GNU_LIBC_VERSION') or ''):
        for k, v in KEEP:
            mallopt(k, v)


_plain = []   # [the pid that turned NumPy's huge-page advice off]


def no_huge_pages():
    """Have NumPy allocate without its transparent-huge-page advice (once per process, unless GRAPHC_HUGE_PAGES=1 or
    NUMPY_MADVISE_HUGEPAGE says otherwise): NumPy asks Linux for 2 MB pages on every array of 4 MB or more, where
    MXNet's and PyTorch's allocators take the system's default (4 KB pages unless THP is 'always'). In this VM a
    fresh process's huge pages are free blocks its kernel has reported to the host, refilled there on first
    touch: LeNet's cold first training step at batch 600 took ~110 of them, 300-600 ms of system time when
    refilled (40 when not), 70-100 ms with 4 KB pages (benchmarks/cold_ab.py). The steady step, whose memory the
    heap keeps (keep_memory), ran within noise of its time with them."""
    if _plain == [os.getpid()] or config.huge_pages() or 'NUMPY_MADVISE_HUGEPAGE' in os.environ:
        return
    _plain[:] = [os.getpid()]
    core = getattr(np, '_core', None) or np.core   # (NumPy 2, NumPy 1)
    advise = getattr(core.multiarray, '_set_madvise_hugepage', None)
    if advise is not None:
        advise(False)


class Plan:
    def __init__(self, graph, native=True, kernel=None):
        """kernel(op): each step's kernel (default: the CPU backend's)."""
        keep_memory()
        no_huge_pages()
        if kernel is None:
            from .backend import cpu
            kernel = cpu.kernel
        self.graph = graph
        slot = {}
        for n in graph.nodes:
            for j in range(1 if n.is_var else n.num_outputs):
                slot[(n, j)] = len(slot)
        self.nslots = len(slot)
        self.inputs = [(n, slot[(n, 0)], n.extra.get('value')) for n in graph.nodes if n.is_var]   # feeds: {node: array}
        self.input_nodes = [n for n in graph.nodes if n.is_var]
        last = {}
        ops = [n for n in graph.nodes if not n.is_var]
        for i, n in enumerate(ops):
            for s, j in n.inputs:
                last[slot[(s, j)]] = i
        keep = {slot[(n, j)] for n, j in graph.outputs}
        self.steps = []
        for i, n in enumerate(ops):
            ins = tuple(slot[(s, j)] for s, j in n.inputs)
            outs = tuple(slot[(n, j)] for j in range(n.num_outputs))
            free = tuple(k for k in set(ins) if last.get(k) == i and k not in keep)
            self.steps.append((kernel(n.op), n.attrs, ins, outs, free, n))
        self.outputs = [slot[(n, j)] for n, j in graph.outputs]
        self.program = None
        if native and config.native():  # GRAPHC_NATIVE=0: every step from Python
            self.program = _native_program(self, graph, slot)

    def __call__(self, feed):
        if recorders:
            _record(self.graph, feed)
        prog = self.program
        if prog is not None and prog.lock.acquire(blocking=False):
            try:
                out = prog.run(self, self._bind(feed, prog.nslots))
            finally:
                prog.lock.release()
            if out is not None:
                return out
            self._check(feed)
        try:
            return self._run_steps(self._bind(feed, self.nslots), self.steps)
        except (ValueError, TypeError, IndexError):
            self._check(feed)  # an input the plan was not built for is the likely cause: say which
            raise

    def _check(self, feed):
        """A clear error for an input that does not have the shape and dtype the plan was built for."""
        for (key, k, const), v in zip(self.inputs, self.input_nodes):
            a = feed.get(key, const)
            want = (tuple(v.shapes[0]), np.dtype(v.dtypes[0]))
            if isinstance(a, np.ndarray) and (a.shape, a.dtype) != want:
                raise GraphcError(f"plan input {v.name!r}: built for shape {want[0]} {want[1]}, got {a.shape} {a.dtype}")

    def positional(self, keys):
        """A function of a list of arrays, in the order of `keys` (this plan's input variables), that
        runs the plan: the feed dict and its lookups are resolved once here."""
        pos = {k: i for i, k in enumerate(keys)}
        if any(key not in pos and const is None for key, _, const in self.inputs):
            return None
        binds = [(k, pos.get(key), const) for key, k, const in self.inputs]
        prog = self.program

        def run(arrays):
            if prog is not None and prog.lock.acquire(blocking=False):
                try:
                    vals = [None] * prog.nslots
                    for k, i, const in binds:
                        vals[k] = const if i is None else arrays[i]
                    out = prog.run(self, vals)
                finally:
                    prog.lock.release()
                if out is not None:
                    return out
            return self(dict(zip(keys, arrays)))
        return run

    def lean(self, keys, ndata=None):
        """Like positional(keys), for a plan that is one native segment writing every output into an array of its
        own (a small MLP): run(arrays) checks only the inputs that are not the arrays of the last call, and returns
        the outputs, or None where the full path must run. None if not of that form. An output array the caller
        has let go of (no reference but this plan's, no weak one) is written again rather than a new one allocated;
        one still held anywhere is never written.
        run(arrays, params): arrays are the first `ndata` inputs only, params (a tuple) the rest; the same tuple
        object as the last call's, with no slot bound anew elsewhere since (prog.rebinds), skips the rest's checks:
        their addresses are still bound (a batch-1 MLP's six weights: 0.5 us warm, more cold)."""
        prog = self.program
        if prog is None or len(prog.items) != 1 or type(prog.items[0]) is not Seg:
            return None
        seg, pos = prog.items[0], {key: i for i, key in enumerate(keys)}
        slots = {k: (pos.get(key), const) for key, k, const in self.inputs}
        if not set(self.outputs) <= set(seg.fresh) or len(set(self.outputs)) != len(self.outputs) or \
                any(slots.get(k, (None, None)) == (None, None) for k in seg.reads):
            return None
        nd = len(keys) if ndata is None else ndata
        reads = [(k, slots[k][0], slots[k][1]) for k in seg.reads]
        data = [r for r in reads if r[1] is not None and r[1] < nd]
        rest = [r for r in reads if r[1] is None or r[1] >= nd]
        outs = [(j, k, prog.shapes[k], prog.dtypes[k]) for j, k in enumerate(self.outputs)]
        last = [(None, 0, 0)] * len(outs)   # per output: (its array of the last call, address, refcount when free)
        ptrs, shapes, dtypes, seen, lock = prog.ptrs, prog.shapes, prog.dtypes, prog.seen, prog.lock
        native, addr, n, dnnl, rebinds = prog.run_native, seg.addr, seg.n, prog.dnnl, prog.rebinds
        refs, weak = sys.getrefcount, weakref.getweakrefcount
        bound = [None, -1]   # (the params tuple of the last call, prog.rebinds after it)

        def run(arrays, params=None):
            if dnnl is not None and (threading.get_ident() != dnnl[0] or os.getpid() != dnnl[1]):
                return None
            if not lock.acquire(blocking=False):
                return None
            try:
                if params is not None and params is bound[0] and rebinds[0] == bound[1]:
                    check = ((data, arrays, 0),)
                else:   # every input; params: after the data (any slot bound anew bumps rebinds: bound is stale)
                    check = ((data, arrays, 0), (rest, arrays, 0) if params is None else (rest, params, nd))
                keep = params is not None
                for group, src, off in check:
                    for k, i, const in group:
                        a = const if i is None else src[i - off]
                        if a is seen[k]:   # the same array as last call, checked then
                            continue
                        if type(a) is not np.ndarray or a.shape != shapes[k] or a.dtype != dtypes[k]:
                            return None
                        if not a.flags.c_contiguous:   # (a copy: a later write to a is not in it, so rechecked)
                            a, keep = np.ascontiguousarray(a), keep and src is arrays
                        ptrs[k] = address(a)
                        seen[k] = a
                        rebinds[0] += 1
                res = []
                for j, k, shape, dt in outs:
                    a, at, free = last[j]
                    if a is None or refs(a) != free or weak(a):
                        a = np.empty(shape, dt)
                        at, free = address(a), refs(a) + 1   # (+1: the tuple in last; counted as the check counts)
                        last[j] = (a, at, free)
                    ptrs[k] = at
                    res.append(a)
                if keep:
                    bound[0], bound[1] = params, rebinds[0]
                if dnnl is not None:
                    dnnl[2]()
                if profiling:
                    run_segment(native, seg, ptrs)
                else:
                    native(addr, n, ptrs)
                return res
            finally:
                lock.release()
        return run

    def _bind(self, feed, nslots):
        vals = [None] * nslots
        for key, k, const in self.inputs:
            v = feed.get(key, const)
            if v is None:
                raise GraphcError("plan input has no value")
            vals[k] = v
        return vals

    def _run_steps(self, vals, steps):
        if profiling:
            steps = timed_steps(steps)
        for ref, attrs, ins, outs, free, node in steps:
            try:
                r = ref(attrs, *[vals[k] for k in ins])
            except Exception as e:  # named by the node's IR line and the user's line (graph.raise_at)
                raise_at(node, e, None, [vals[k] for k in ins])
            if len(outs) == 1:  # (a one-output op may still return a 1-tuple, as SliceChannel(num_outputs=1))
                v = r[0] if type(r) is tuple else r
                vals[outs[0]] = np.asarray(v) if isinstance(v, np.generic) else v  # (0-d math gives scalars)
            else:
                for k, v in zip(outs, r):
                    vals[k] = np.asarray(v) if isinstance(v, np.generic) else v
            for k in free:
                vals[k] = None
        return [vals[k] for k in self.outputs]


class NativeProgram:
    """The plan as Python steps and native segments over one pointer table and one arena."""

    def __init__(self, items, nslots, arena, arena_views, fresh, shapes, dtypes):
        import ctypes
        from .native import executor
        self.items, self.arena, self.arena_views = items, arena, arena_views
        self.shapes, self.dtypes = shapes, dtypes
        self.ptrs = (ctypes.c_void_p * nslots)()
        self.nslots = nslots
        self.lock = threading.Lock()
        self.run_native = executor()
        for k, a in arena_views.items():
            self.ptrs[k] = a.ctypes.data
        self.seen = [None] * nslots   # the array whose address ptrs[k] holds (kept alive by this list)
        self.rebinds = [0]   # bumped by every change of seen: Plan.lean's runs skip rechecking bound parameters
        self.check_out = [k not in fresh for k in range(nslots)]
        self.dnnl = None   # (thread id, pid, set OpenMP's thread count) where a segment calls oneDNN

    def run(self, plan, vals):
        """The outputs, or None when an input does not have its planned shape, dtype and layout (the
        per-step path then runs and reports)."""
        for k, a in self.arena_views.items():
            vals[k] = a
        ptrs, shapes, dtypes, seen, dnnl = self.ptrs, self.shapes, self.dtypes, self.seen, self.dnnl
        if dnnl is not None:
            if threading.get_ident() != dnnl[0] or os.getpid() != dnnl[1]:
                return None
            dnnl[2]()
        for item in self.items:
            if type(item) is not Seg:
                plan._run_steps(vals, (item,))
                continue
            for k in item.reads:
                a = vals[k]
                if a is seen[k]:  # parameters: the same array as last call, checked then
                    continue
                if type(a) is not np.ndarray or a.shape != shapes[k] or a.dtype != dtypes[k]:
                    return None
                if not a.flags.c_contiguous:
                    a = vals[k] = np.ascontiguousarray(a)
                ptrs[k] = address(a)
                seen[k] = a
                self.rebinds[0] += 1
            for k in item.fresh:
                a = vals[k] = np.empty(shapes[k], dtypes[k])
                ptrs[k] = address(a)
            if profiling:
                run_segment(self.run_native, item, ptrs)
            else:
                self.run_native(item.addr, item.n, ptrs)
            for k, src in item.views:  # reshapes whose value Python reads later
                vals[k] = vals[src].reshape(shapes[k])
        out = [vals[k] for k in plan.outputs]
        arena = self.arena
        if arena is not None:
            for i, k in enumerate(plan.outputs):
                if self.check_out[k] and np.may_share_memory(out[i], arena):
                    out[i] = out[i].copy()
        return out


class Seg:
    __slots__ = ('addr', 'n', 'reads', 'fresh', 'views', 'seg')


def _native_program(plan, graph, slot):
    """Group the plan's steps into native segments where they compile; None when nothing would gain. The
    natively written values live in one arena where passes/memory.py's plan of this schedule puts them."""
    from ..passes import memory
    from ..passes.manager import disabled_passes
    from .native import ALIAS, Segment, compile_step
    shapes, dtypes = {}, {}
    for n in graph.nodes:
        for j in range(1 if n.is_var else n.num_outputs):
            shapes[slot[(n, j)]] = tuple(n.shapes[j]) if n.shapes and n.shapes[j] is not None else None
            dtypes[slot[(n, j)]] = np.dtype(n.dtypes[j]) if n.dtypes and n.dtypes[j] is not None else None
    if any(s is None for s in shapes.values()):
        return None
    extra, names = [], {}

    def new_slot(shape, dtype):
        k = plan.nslots + len(extra)
        extra.append(k)
        shapes[k], dtypes[k] = tuple(shape), np.dtype(dtype)
        return k
    items, cur, native_steps = [], None, 0
    seg_of = {}      # natively computed slots -> their segment
    aliases = {}     # segment -> its alias (out, in) pairs in step order
    schedule = []    # (how, reads, writes) per step: what the memory plan places
    for st in plan.steps:
        ref, attrs, ins, outs, free, node = st
        n_extra = len(extra)
        trial = Segment()
        ok = compile_step(trial, node, ins, outs, new_slot)
        names.update((k, node.name if len(outs) == 1 else f"{node.name}:{j}") for j, k in enumerate(outs))
        if not ok:
            cur = None
            items.append(st)
            schedule.append(('python', ins, outs))
            continue
        if cur is None:
            cur = Segment()
            cur.nodes = []   # (node, its rows): the profiler runs a segment step by step
            items.append(cur)
        cur.nodes.append((node, len(trial.rows)))
        cur.rows += trial.rows
        cur.dnnl |= trial.dnnl
        cur.keep += trial.keep
        native_steps += 1
        for k in outs:
            seg_of[k] = cur
        if trial.rows and trial.rows[0][0] == ALIAS:
            aliases.setdefault(id(cur), []).append((outs[0], ins[0]))
            schedule.append(('view', ins, outs))
        else:
            names.update((k, f"{node.name}.tmp") for k in extra[n_extra:])
            schedule.append(('native', ins, list(outs) + extra[n_extra:]))
        cur.reads += [k for k in ins if k not in seg_of]
    if native_steps < 2:
        return None
    outputs = set(plan.outputs)
    mem = memory.plan(schedule, {k: int(np.prod(shapes[k])) * dtypes[k].itemsize for k in shapes},
                      outputs, share='plan_memory' not in disabled_passes())
    plan.arena_bytes, plan.naive_bytes = mem.arena_bytes, mem.naive_bytes
    arena = np.empty(mem.arena_bytes + memory.ALIGN, np.uint8) if mem.offset else None
    views = {}
    if arena is not None:
        base = (-arena.ctypes.data) % memory.ALIGN
        for k, off in mem.offset.items():
            nb = int(np.prod(shapes[k])) * dtypes[k].itemsize
            views[k] = arena[base + off: base + off + nb].view(dtypes[k]).reshape(shapes[k])
    written = {k for how, _, writes in schedule if how == 'native' for k in writes}
    out_items = []
    for it in items:
        if type(it) is tuple:
            out_items.append(it)
            continue
        it.finish()
        s = Seg()
        s.seg, s.addr, s.n = it, it.addr, it.n
        s.reads = list(dict.fromkeys(it.reads))
        s.fresh = [k for k, sg in seg_of.items() if sg is it and k in written and k in outputs]
        s.views = aliases.get(id(it), [])  # Python may read them: cheap reshapes, in step order
        out_items.append(s)
    fresh = {k for s in out_items if type(s) is Seg for k in s.fresh}
    prog = NativeProgram(out_items, plan.nslots + len(extra), arena, views, fresh, shapes, dtypes)
    if any(it.dnnl for it in items if type(it) is not tuple):   # oneDNN's GEMM: only where it was allowed
        from . import onednn
        packs = [r.stale for it in items if type(it) is not tuple for r in it.keep if isinstance(r, onednn.MatmulRow)]
        prog.dnnl = (threading.get_ident(), os.getpid(), onednn.before_run(packs))
    prog.memory, prog.names = mem, names
    return prog
