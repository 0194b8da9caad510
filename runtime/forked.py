"""A forked compile worker: a training step's kernels compile in a child process while this one builds the plans
and runs the forward. llvmlite runs every LLVM call under one process-wide lock, so a compile thread cannot
overlap this thread's own compiles; a child process can (two cores, two LLVMs).

The child builds what this process will ask for, as it would (same IR, same names): the step interpreter, the
forward's pooling kernels (run after the forward plan is built), the backward's kernels in reverse order (this
process builds the backward plan in order: the two meet in the middle), then the Trainer's update kernel. It
streams frames through a pipe (kind, length-prefixed name and object code; no pickling): 'S' as a module's
compile starts, 'D' with its object code, 'E' at the end, and exits with os._exit. This process's compile_ir
asks fetch() first: a module delivered is loaded under its name, one started is waited for, any other is
compiled here (a copy the child sends later is dropped). A child that fails, hangs past TIMEOUT_S or cannot be
forked only leaves more to compile here. The child runs only Python and LLVM: never BLAS, OpenMP or oneDNN,
whose threads do not survive a fork.
"""
import os
import select
import signal
import sys
import threading
import time
import warnings

from .. import config
from . import cpu

TIMEOUT_S = 30.0   # a child still running then is killed (a hang must not stall the step forever)
_live = []         # the children that may still deliver (to this process: a forked process, a DataLoader's
#                    worker say, starts without them and leaves them alone)


def _forget():
    _live.clear()
    cpu.fetch = None


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget)


def start(fwd, bwd, params=(), whole=False):
    """A Child compiling the pooling kernels of forward graph `fwd`, then backward graph `bwd`'s kernels, then the
    multi-tensor update of the Trainers of `params` (Parameters; a guess at its options), or None:
    GRAPHC_COMPILE_FORK=0, fewer than two threads (the child would only take this core), GRAPHC_COMPILE_AHEAD=1
    (its thread does it), one core to run on, no fork here, an MPI rank, nothing to compile, or the fork failed.
    whole (a first tier runs meanwhile, runtime/tiered.py): every kernel of both graphs, the forward's fused groups
    first, where a core is spare beyond the threads this process runs (the first tier's oneDNN calls take as many;
    two threads on two cores with the child beside them: the first call 492 ms against 375 without, medians on a
    loaded machine), the child at the lowest priority."""
    from .conv import WARM
    if not config.compile_fork() or config.compile_ahead() or config.num_threads() < 2 and not whole or \
            not hasattr(os, 'fork') or 'mpi4py.MPI' in sys.modules or _cores() < 2 or \
            whole and _cores() <= config.num_threads():   # (MPI ranks: some transports break in a forked child)
        return None
    todo = cpu.warm_todo(fwd) + cpu.warm_todo(bwd) if whole else \
        [n for n in cpu.warm_todo(fwd) if n.op.name in WARM] + cpu.warm_todo(bwd)[::-1]
    if not todo:
        return None
    from . import native
    native.blas()   # (found here: the child must not load or call BLAS)
    trainers = {id(t): t for t in (getattr(p, '_trainer', None) for p in params) if t is not None}
    child = Child(_build, todo, list(trainers.values()), whole)
    return child if child.pid is not None else None


def _cores():
    """The cores this process may run on (a process pinned to one gains nothing from a second compiler)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


def _build(todo, trainers, low=False):
    """The child's work: the step interpreter (the forward plan asks for it once its fused kernels are built
    here), the nodes' kernels, then the Trainers' update kernels; low: at the lowest priority."""
    from . import native
    if low and hasattr(os, 'nice'):
        os.nice(19)
    if config.native():
        native.executor()
    cpu._build_all(todo)
    if config.multi_tensor():
        for t in trainers:
            _update_kernel(t)


def _update_kernel(trainer):
    """The multi-tensor kernel graphc/optimizer/multi.Fused will ask for at the first step, as far as it can be
    told before one: the optimizer's kind and options, its parameters' dtype and weight decays, each state count
    the kind allows (a guess that misses costs this child's time only)."""
    import numpy as np
    from ..optimizer.multi import NSTATE
    from . import multi_tensor
    o = trainer._optimizer
    ps = [p for p in trainer._params if p.grad_req != 'null']
    if '_multi' not in type(o).__dict__ or not ps:
        return
    wd = np.array([o.wd * p.wd_mult for p in ps], np.float64)
    has = wd != 0
    wds = (True,) if has.all() else (False, True) if has.any() else (False,)
    for nstate in range(4):
        spec = o._multi(np.full(len(ps), float(o.lr)), wd, [1] * len(ps), nstate)
        if spec is not None and nstate in NSTATE.get(spec[0], ()):
            multi_tensor.kernel(spec[0], np.dtype(ps[0].dtype), spec[1], nstate, wds)


def fetch(name):
    """The address of module `name` where a live child delivers it (waiting while it compiles it), else 0."""
    for c in list(_live):
        addr = c.fetch(name)
        if addr:
            return addr
    return 0


class Child:
    """fn(*args) in a forked process whose compiled modules this one fetches (pid None: the fork failed)."""

    def __init__(self, fn, *args):
        self.pid, self.delivered, self.started, self.buf = None, [], set(), bytearray()
        self.lock = threading.Lock()
        r, w = os.pipe()
        try:   # (room for a model's modules: the child need not wait for this process to read)
            import fcntl
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        try:
            with warnings.catch_warnings():   # (3.12+ warns of forking with threads: this child never uses them)
                warnings.simplefilter('ignore', DeprecationWarning)
                pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:   # the child (at-fork: _forget ran)
            os.close(r)
            _run_child(w, fn, args)
        os.close(w)
        self.pid, self.fd, self.t0, self.owner = pid, r, time.monotonic(), os.getpid()
        _live.append(self)
        cpu.fetch = fetch

    def fetch(self, name):
        with self.lock:
            self._pump(0.0)
            while name in self.started and self.pid is not None:
                self._pump(None)
        return cpu._loaded.get(name, 0)

    def join(self):
        """Wait for the child to finish (at most TIMEOUT_S from its start), load what it compiled; the names."""
        with self.lock:
            while self.pid is not None:
                self._pump(None)
        return self.delivered

    def close(self):
        """Load what has arrived and stop the child (what it has not sent is compiled here if needed)."""
        with self.lock:
            if self.pid is not None:
                self._pump(0.0)
                self._reap(kill=True)
        return self.delivered

    def _pump(self, wait):
        """Read what the pipe holds (wait None: block for more, up to the timeout; 0: only what is there) and act
        on each whole frame; at the end of the stream, or past the timeout, the child is reaped."""
        if self.pid is None:   # (reaped meanwhile by another thread)
            return
        left = TIMEOUT_S - (time.monotonic() - self.t0)
        if left <= 0:
            return self._reap(kill=True)
        if not select.select([self.fd], [], [], left if wait is None else wait)[0]:
            return self._reap(kill=True) if wait is None else None
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return self._reap(kill=False)
        self.buf += chunk
        for kind, name, obj in _frames(self.buf):
            if kind == b'S':
                self.started.add(name)
            elif kind == b'D':
                self.started.discard(name)
                if _load(name, obj):
                    self.delivered.append(name)
            else:
                self._reap(kill=False)

    def _reap(self, kill):
        if self.pid is None or self.owner != os.getpid():   # (a forked copy of this object: not its child)
            return
        os.close(self.fd)
        if kill:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        self.pid, self.started = None, set()
        if self in _live:
            _live.remove(self)
        if not _live:
            cpu.fetch = None

    def __del__(self):   # never joined or closed: the child is not left behind
        if getattr(self, 'pid', None) is not None:
            try:
                self._reap(kill=True)
            except (TypeError, AttributeError):   # (at interpreter exit, with os or signal already torn down)
                pass


def _frame(kind, name, obj=b''):
    nb = name.encode()
    return kind + len(nb).to_bytes(4, 'little') + nb + len(obj).to_bytes(4, 'little') + obj


def _frames(buf):
    """The whole frames at the front of buf (a bytearray), removed from it: [(kind, name, object code)]."""
    out, at = [], 0
    while at + 9 <= len(buf):
        n = int.from_bytes(buf[at + 1:at + 5], 'little')
        if at + 9 + n > len(buf):
            break
        m = int.from_bytes(buf[at + 5 + n:at + 9 + n], 'little')
        if at + 9 + n + m > len(buf):
            break
        out.append((bytes(buf[at:at + 1]), buf[at + 5:at + 5 + n].decode(), bytes(buf[at + 9 + n:at + 9 + n + m])))
        at += 9 + n + m
    del buf[:at]
    return out


def _run_child(w, fn, args):
    code = 1
    try:   # (the parent's other descriptors, pipes to a harness among them, are not held open here)
        os.closerange(3, w)
        os.closerange(w + 1, max(w + 1, os.sysconf('SC_OPEN_MAX') if hasattr(os, 'sysconf') else 256))

        def send(data):
            view = memoryview(data)
            while view:
                view = view[os.write(w, view):]
        cpu.observer = lambda name, obj: send(_frame(b'S', name) if obj is None else _frame(b'D', name, obj))
        fn(*args)
        send(_frame(b'E', ''))
        code = 0
    except BaseException:   # (nothing more is delivered; the parent compiles those kernels itself)
        pass
    finally:
        os._exit(code)


def _load(name, obj):
    """Module `name` into this process's JIT, where compile_ir looks it up (False: loaded already, or no such
    function in it)."""
    with cpu._compile_lock:
        if name in cpu._loaded:
            return False
        llvm, _, jit = cpu._engine()
        jit.add_object_file(llvm.ObjectFileRef.from_data(obj))
        jit.finalize_object()
        addr = jit.get_function_address(name)
        if addr:
            cpu._loaded[name] = addr
        return bool(addr)
