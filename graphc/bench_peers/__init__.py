"""`graphc bench --peers`: other frameworks on graphc's bench workloads, from the same weights and inputs.

A peer builds its twin of a workload from a spec ({'model': 'mlp'|'lenet'|'lstm'|'chain', 'train': bool, 'opt',
'lr', 'momentum'}) and arrays (w0, w1, ... in graphc's collect_params order and layouts, x, y); the twin is a
callable returning its output (or training loss), put beside graphc's variants, checked to agree and timed
interleaved with them. torch.compile runs in this process; JAX and MXNet each run in a worker process
(worker.py, which needs no graphc) so their thread pools can be sized at start and MXNet can live in its own
Python 3.8 venv. No peer is a dependency: a missing one is named with how to install it."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from .. import config
from ..base import GraphcError

HERE = os.path.dirname(os.path.abspath(__file__))
NAMES = ('torch.compile', 'jax', 'mxnet')   # the peers this module starts (torch eager is bench.py's own column)
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
    temporary directory (never pickles). Its stderr goes to a file there, quoted when it fails."""

    def __init__(self, name, python, backend, threads, env):
        self.name, self.dir = name, tempfile.mkdtemp(prefix=f'graphc-peer-{name}-')
        self.err = open(os.path.join(self.dir, 'stderr.txt'), 'w+')
        self.proc = subprocess.Popen([python, os.path.join(HERE, 'worker.py'), backend, str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                     env=env, cwd=self.dir)

    def ask(self, **msg):
        try:
            self.proc.stdin.write(json.dumps(msg) + '\n')
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ''
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
        return Remote(self) if self.ask(cmd='build', spec=spec, arrays=path)['twin'] else None

    def close(self):
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


class TorchCompile:
    """torch.compile (inductor) of bench.py's PyTorch twins, in this process: compiled at the first call of each
    workload (untimed: the agreement check runs it); a training step compiles the model, forward and backward,
    the optimizer stays torch's own."""
    name = 'torch.compile'

    def __init__(self, torch):
        self.torch = torch

    def twin(self, spec, arrays):
        from .. import bench as B
        torch = self.torch
        ws = [arrays[f'w{i}'] for i in range(sum(k.startswith('w') for k in arrays))]
        x = torch.from_numpy(arrays['x'])
        if spec['model'] == 'chain':
            f = torch.compile(lambda t: torch.tanh(t * 2 + 1) * torch.sigmoid(t) - torch.relu(t) / 3)
            return lambda: f(x)
        model = {'mlp': B.torch_mlp, 'lenet': B.torch_lenet, 'lstm': B.torch_lstm}[spec['model']](torch, ws)
        if not spec.get('train'):
            return B._torch_infer(torch, torch.compile(model), x)
        opt = (torch.optim.SGD(model.parameters(), lr=spec['lr'], momentum=spec.get('momentum', 0.0))
               if spec['opt'] == 'sgd' else torch.optim.Adam(model.parameters(), lr=spec['lr']))
        return B._torch_step(torch, torch.compile(model), opt, x, torch.from_numpy(arrays['y']))

    def close(self):
        self.torch._dynamo.reset()


def start(threads, torch=None, names=NAMES):
    """(peers, missing): the peers of `names` that are installed, started for `threads` threads, and {name: how
    to install it} for the others. torch: the torch module where importable (bench.py's _torch())."""
    peers, missing = [], {}
    for name in names:
        if name == 'torch.compile':
            if torch is None or not hasattr(torch, 'compile'):
                missing[name] = HINTS[name]
            else:
                peers.append(TorchCompile(torch))
        elif name == 'jax':
            if importlib.util.find_spec('jax') is None:
                missing[name] = HINTS[name]
                continue
            flags = os.environ.get('XLA_FLAGS', '')   # one thread: no Eigen pool (the affinity limits more)
            if threads == 1:
                flags += ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
            env = thread_env(threads, {'XLA_FLAGS': flags.strip(), 'JAX_PLATFORMS': 'cpu'})
            peers.append(Worker(name, sys.executable, 'jax_peer', threads, env))
        elif name == 'mxnet':
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
        else:
            raise GraphcError(f"bench: unknown peer {name!r}; choose from {NAMES}")
    return peers, missing
