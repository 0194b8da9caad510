"""`graphc bench --peers`: other frameworks on graphc's bench workloads, from the same weights and inputs.

A peer builds its twin of a workload from a spec ({'model': 'mlp'|'lenet'|'lstm'|'chain'|'resnet', 'train': bool,
'opt', 'lr', 'momentum'; ResNet's 'aux': the indices of the BatchNorm running statistics among the weights}) and arrays (w0, w1, ... in graphc's collect_params order and layouts, x, y); the twin is a
callable returning its output (or training loss), put beside graphc's variants, checked to agree and timed
interleaved with them. Every peer runs in a worker process (worker.py, which needs no graphc): their thread pools
are sized at start and kept out of graphc's process (torch's there slowed graphc's batch-1 MLP 2-3x), and MXNet
lives in its own Python 3.8 venv. The cold-start rows start a fresh worker per sample (spawn), graphc's own
included (graphc_peer.py). A worker is pinged once started (its import is not timed) and runs as a process
group of its own: between its commands the group is parked (SIGSTOP where there is one, waited for until none
of its threads runs), its children too (torch.compile's compile workers), and the bench counts the group's CPU
as its own, not as other processes' load. A framework's idle threads that spin after its turn (JAX's: 35-50 ms
of CPU into the next variant's LeNet step at 2 threads) would take a core from whichever variant is timed next.
No peer is a dependency: a missing one is named with how to install it."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from .. import config
from ..base import GraphcError

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ('torch', 'torch.compile', 'jax', 'mxnet')   # the peers this module starts
HINTS = {'torch': 'pip install torch',
         'torch.compile': 'pip install torch (2.x; its inductor backend also needs a C++ compiler)',
         'jax': 'pip install jax (in the Python that runs graphc)',
         'mxnet': "a Python 3.8 venv with MXNet 1.9.1 named by GRAPHC_BENCH_MXNET_PYTHON: python3.8 -m venv V && "
                  "V/bin/pip install mxnet==1.9.1 'numpy<1.24', then GRAPHC_BENCH_MXNET_PYTHON=V/bin/python"}


def thread_env(threads, extra=()):
    """The environment of a worker limited to `threads` threads: OpenMP (MXNet's operators, oneDNN), BLAS, XLA;
    idle OpenMP threads sleep rather than spin (they would take the cores from the variant that runs next)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads))
    env.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
    env.update(extra)
    return env


class Worker:
    """A peer in its own process, driven over a pipe: one JSON line per command, arrays as .npz/.npy files in a
    temporary directory (never pickles). Its stderr goes to a file there, quoted when it fails. It is stopped
    between commands (park), so nothing of it runs during another variant's turn. spec: what every
    spec it builds adds (torch.compile's {'compile': True}); fresh: environment variables that name a new empty
    directory there each start (a compiler's disk cache: each process starts cold)."""

    def __init__(self, name, python, backend, threads, env, spec=None, fresh=()):
        self.args = name, python, backend, threads, env, spec, fresh
        self.name, self.spec, self.dir = name, spec or {}, tempfile.mkdtemp(prefix=f'graphc-peer-{name}-')
        env = dict(env)
        for var in fresh:
            env[var] = os.path.join(self.dir, var.lower())
            os.mkdir(env[var])
        self.err = open(os.path.join(self.dir, 'stderr.txt'), 'w+')
        group = {} if os.name != 'posix' else {'process_group': 0} if sys.version_info >= (3, 11) else \
            {'preexec_fn': os.setpgrp}   # (a group of its own: parked and counted with its children)
        self.proc = subprocess.Popen([python, os.path.join(HERE, 'worker.py'), backend, str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env, cwd=self.dir, **group)
        self.group = [self.proc.pid]   # the group's processes, as of the last command but a rep

    def pids(self):
        """The worker's process group (itself and its children), as found after its last command but a rep."""
        return list(self.group)

    def park(self, stop=True):
        """Stop the worker's process group, or continue it (stop=False); a no-op off POSIX. Stopping waits (up to
        a second) until none of its threads is running: here a spinning thread ran on for 100-150 ms after the
        SIGSTOP that stopped the others at once."""
        sig = getattr(signal, 'SIGSTOP' if stop else 'SIGCONT', None)
        if sig is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):   # it just ended: ask() says how
            return
        deadline = time.monotonic() + 1.0
        while stop and any(_running(p) for p in self.group) and time.monotonic() < deadline:
            time.sleep(0.001)

    def ready(self):
        """Wait until the worker has imported its framework (a ping), so that its start is not timed."""
        self.ask(cmd='ping')

    def ask(self, **msg):
        self.park(False)
        try:
            self.proc.stdin.write(json.dumps(msg) + '\n')
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ''
        if msg['cmd'] != 'rep':   # (a build or first call may start children: /proc read outside the timed reps)
            self.group = _group(self.proc.pid)
        self.park()
        if not line:
            raise GraphcError(f"bench: the {self.name} peer's process ended (exit status {self.proc.wait()}): "
                              f"{self.stderr()}")
        reply = json.loads(line)
        if 'error' in reply:
            raise GraphcError(f"bench: {self.name} failed on {msg['cmd']}: {reply['error']} {self.stderr()}")
        return reply

    def stderr(self):
        self.err.flush()
        self.err.seek(0)
        return self.err.read()[-1500:].strip()

    def twin(self, spec, arrays):
        path = os.path.join(self.dir, 'arrays.npz')
        np.savez(path, **arrays)
        return Remote(self) if self.ask(cmd='build', spec=dict(spec, **self.spec), arrays=path)['twin'] else None

    def spawn(self):
        """The same peer in a new process."""
        return Worker(*self.args)

    def close(self):
        self.park(False)
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _group(pgid):
    """The pids of process group pgid from /proc (just [pgid] where there is none)."""
    out = []
    try:
        pids = [d for d in os.listdir('/proc') if d.isdigit()]
    except OSError:
        return [pgid]
    for d in pids:
        try:
            with open(f'/proc/{d}/stat') as f:
                if int(f.read().rsplit(')', 1)[1].split()[2]) == pgid:
                    out.append(int(d))
        except (OSError, IndexError, ValueError):   # (a process that just ended)
            pass
    return out or [pgid]


def _running(pid):
    """Whether a thread of process pid is running (state R in /proc; False where there is no /proc)."""
    try:
        tasks = os.listdir(f'/proc/{pid}/task')
    except OSError:
        return False
    for t in tasks:
        try:
            with open(f'/proc/{pid}/task/{t}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'R':
                    return True
        except (OSError, IndexError):   # (a thread that just ended)
            pass
    return False


class Remote:
    """A worker's twin: calling it returns its output (loss) as NumPy; rep() runs it once and returns the time the
    worker measured around the call (the pipe's round trip is not the peer's time)."""

    def __init__(self, worker):
        self.worker = worker

    def __call__(self):
        out = os.path.join(self.worker.dir, 'out.npy')
        self.worker.ask(cmd='value', out=out)
        return np.load(out, allow_pickle=False)

    def rep(self):
        return self.worker.ask(cmd='rep')['t']


def start(threads, names=NAMES):
    """(peers, missing): the peers of `names` that are installed, started for `threads` threads, and {name: how
    to install it} for the others."""
    bad = [n for n in names if n not in NAMES]
    if bad:   # (before any worker starts)
        raise GraphcError(f"bench: unknown peer {bad[0]!r}; choose from {NAMES}")
    peers, missing = [], {}
    for name in names:
        mod = {'torch': 'torch', 'torch.compile': 'torch', 'jax': 'jax'}.get(name)
        if mod is not None and importlib.util.find_spec(mod) is None:
            missing[name] = HINTS[name]
        elif name == 'torch':
            peers.append(Worker(name, sys.executable, 'torch_peer', threads, thread_env(threads)))
        elif name == 'torch.compile':   # (inductor's disk cache fresh per process: the cold rows compile)
            peers.append(Worker(name, sys.executable, 'torch_peer', threads, thread_env(threads), {'compile': True},
                                ('TORCHINDUCTOR_CACHE_DIR',)))
        elif name == 'jax':
            flags = os.environ.get('XLA_FLAGS', '')   # one thread: no Eigen pool (the affinity limits more)
            if threads == 1:
                flags += ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
            env = thread_env(threads, {'XLA_FLAGS': flags.strip(), 'JAX_PLATFORMS': 'cpu'})
            peers.append(Worker(name, sys.executable, 'jax_peer', threads, env))
        else:
            python = config.bench_mxnet_python()
            if not python:
                missing[name] = HINTS[name]
            elif not shutil.which(python):
                raise GraphcError(f"{config.bench_mxnet_python.name}={python!r}: no such Python")
            else:   # one engine worker: operators one at a time, each on `threads` OpenMP threads
                env = thread_env(threads, {'MXNET_CPU_WORKER_NTHREADS': '1'})
                for k in ('PYTHONPATH', 'PYTHONHOME'):   # this Python's packages are not that one's
                    env.pop(k, None)
                peers.append(Worker(name, python, 'mxnet_peer', threads, env))
    try:   # all import at once, then each is waited for: no peer's start runs into a timed round
        for p in peers:
            p.ready()
    except BaseException:
        for p in peers:
            p.close()
        raise
    return peers, missing


def graphc_worker(threads):
    """graphc hybridized in a worker of its own, with an empty kernel cache (the cold-start rows), and its modules
    as bytecode, as an installed package has them (the peers' are): an editable checkout under
    PYTHONDONTWRITEBYTECODE=1 has none, and each cold worker compiled graphc from source, in its first call too."""
    import compileall
    from .. import passes, runtime
    for pkg in (os.path.dirname(HERE), passes.__path__[0], runtime.__path__[0]):
        compileall.compile_dir(pkg, quiet=2)   # (up-to-date files are skipped; a read-only install stays as it is)
    return Worker('graphc', sys.executable, 'graphc_peer', threads, thread_env(threads), fresh=(config.cache_dir.name,))
