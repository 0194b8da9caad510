"""A forked compile worker: a training step's backward kernels compile in a child process while this one builds
the forward plan and runs the forward. llvmlite runs every LLVM call under one process-wide lock, so a compile
thread cannot overlap this thread's own compiles; a child process can (two cores, two LLVMs).

The child builds the kernels exactly as this process would (runtime/cpu.warm's selection), sends each new
module's object code back through a pipe (length-prefixed name and bytes, no pickling) and exits with
os._exit. join() loads them under their names, so this process's own compile_ir calls find them; a kernel the
child did not deliver (it failed, was killed past the timeout, or fork is missing) is compiled here when first
needed, as without the worker. The child runs only Python and LLVM: never BLAS, OpenMP or oneDNN, whose
threads do not survive a fork.
"""
import os
import select
import signal
import sys
import time

from .. import config

TIMEOUT_S = 30.0   # a child not done by then is killed (a hang must not stall the step forever)


def start(graph):
    """A Child compiling `graph`'s kernels (cpu.warm's selection), or None: GRAPHC_COMPILE_FORK=0, fewer than
    two threads (the child would only take this core), GRAPHC_COMPILE_AHEAD=1 (its thread does it), no fork
    here, an MPI rank, nothing to compile, or the fork failed."""
    from . import cpu
    if not config.compile_fork() or config.compile_ahead() or config.num_threads() < 2 or not hasattr(os, 'fork') \
            or 'mpi4py.MPI' in sys.modules:   # (MPI ranks: some transports break in a forked child)
        return None
    todo = cpu.warm_todo(graph)
    child = Child(cpu._build_all, todo) if todo else None
    return child if child is not None and child.pid is not None else None


class Child:
    def __init__(self, fn, *args):
        self.pid, self.delivered = None, []
        r, w = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(r)
            os.close(w)
            return
        if pid == 0:   # the child
            os.close(r)
            _run_child(w, fn, args)
        os.close(w)
        self.pid, self.fd, self.t0 = pid, r, time.monotonic()

    def join(self):
        """Wait for the child (at most TIMEOUT_S from its start), load what it compiled; returns the names."""
        if self.pid is None:
            return self.delivered
        data, done = bytearray(), False
        try:
            while not done:
                left = TIMEOUT_S - (time.monotonic() - self.t0)
                if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                    break
                chunk = os.read(self.fd, 1 << 20)
                done = not chunk
                data += chunk
        finally:
            self._reap(kill=not done)
        self.delivered = _load(_frames(bytes(data)))
        return self.delivered

    def _reap(self, kill):
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
        self.pid = None

    def __del__(self):   # never joined (no backward ran): the child is not left behind
        if getattr(self, 'pid', None) is not None:
            self._reap(kill=True)


def _run_child(w, fn, args):
    from . import cpu
    code = 1
    try:   # (the parent's other descriptors, pipes to a harness among them, are not held open here)
        os.closerange(3, w)
        os.closerange(w + 1, max(w + 1, os.sysconf('SC_OPEN_MAX') if hasattr(os, 'sysconf') else 256))
        cpu._emitted = []
        fn(*args)
        out = bytearray()
        for name, obj in cpu._emitted:
            nb = name.encode()
            out += len(nb).to_bytes(4, 'little') + nb + len(obj).to_bytes(4, 'little') + obj
        out += (0).to_bytes(4, 'little')   # the end mark: a stream without it was cut short
        view = memoryview(out)
        while view:
            view = view[os.write(w, view):]
        code = 0
    except BaseException:   # (nothing is delivered; this process compiles those kernels itself)
        pass
    finally:
        os._exit(code)


def _frames(data):
    """(name, object code) pairs of a complete stream (end mark present), else none: a cut stream is not used."""
    out, at = [], 0
    while at + 4 <= len(data):
        n = int.from_bytes(data[at:at + 4], 'little')
        if n == 0:
            return out if at + 4 == len(data) else []
        name = data[at + 4:at + 4 + n].decode()
        at += 4 + n
        m = int.from_bytes(data[at:at + 4], 'little')
        out.append((name, data[at + 4:at + 4 + m]))
        at += 4 + m
    return []


def _load(pairs):
    """Each module into this process's JIT, under its function's name (compile_ir's lookup)."""
    from . import cpu
    names = []
    if not pairs:
        return names
    with cpu._compile_lock:
        llvm, _, jit = cpu._engine()
        for name, obj in pairs:
            if name in cpu._loaded:
                continue
            jit.add_object_file(llvm.ObjectFileRef.from_data(obj))
            jit.finalize_object()
            addr = jit.get_function_address(name)
            if addr:
                cpu._loaded[name] = addr
                names.append(name)
    return names
