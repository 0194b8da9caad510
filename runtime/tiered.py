"""A training step's first tier (GRAPHC_TIERED): its first call does not wait for LLVM. The forward and backward
graphs (after the passes, the same ones the compiled plans run) run as plain plans of Python steps with
cpu.deferring() on: an op whose kernel is not built takes its NumPy form (the fused groups op by op, the
forward's max pooling), the convolutions and GEMMs run in oneDNN and BLAS as always, the kernels whose NumPy
form costs more than their compile (runtime/conv.NOW) are built, and the Trainer updates parameter by parameter.
Meanwhile, where a core is spare beyond the threads this process runs, a forked worker (runtime/forked.py) compiles
every kernel of the compiled plans there, at the lowest priority. The second call swaps in the compiled plans,
always (the same bits from the second step on, however fast the worker was): it waits for the worker, loads its
object code and builds the plans, compiling here whatever the worker did not deliver (no spare core, no fork, a
failed or timed-out worker). Without a worker, what the first tier saves is LLVM's time in the first call, not
in all: the second call pays it (benchmarks/cold_ab.py --steps 10 shows both).

Off by default (GRAPHC_TIERED=1 turns it on): the first tier's step agrees with the compiled one within float32
rounding, not bit for bit, and a run resumed from a checkpoint in a new block or process would then no longer
equal an uninterrupted one exactly (examples/char_lstm.py --resume, tests/test_distributed.py's resume)."""
import weakref

from .. import config
from . import cpu, forked

_pending = weakref.WeakSet()   # first tiers that ran and are not swapped yet: their Trainers' updates wait too


def on():
    """Whether a training step's first call runs a first tier: GRAPHC_TIERED, the compiled CPU backend and no
    compile thread (GRAPHC_COMPILE_AHEAD=1 keeps the kernels on it)."""
    return config.tiered() and cpu.enabled() and not config.compile_ahead()


def pending(trainer):
    """Whether a first tier of a step that `trainer` updates ran and is not swapped yet."""
    return any(trainer in t.trainers for t in _pending)


class Tiers:
    """The first tier's (forward, backward) plans of optimized graphs fopt, bopt, the worker compiling the
    second's kernels, and compiled(): the plans of the second tier."""

    def __init__(self, fopt, bopt, params=()):
        from .backend import cpu as be
        self.graphs, self.runs = (fopt, bopt), 0
        self.trainers = weakref.WeakSet(t for t in (getattr(p, '_trainer', None) for p in params) if t is not None)
        self.child = forked.start(fopt, bopt, params, whole=True)
        self.first = (First(self, be.executor(fopt, False)), First(self, be.executor(bopt, False)))

    def compiled(self):
        """The compiled (forward, backward) plans: the worker waited for (at most forked.TIMEOUT_S from its start)
        and its modules loaded, the rest compiled here."""
        from .backend import cpu as be
        _pending.discard(self)
        if self.child is not None:
            self.child.join()
            self.child = None
        fopt, bopt = self.graphs
        return be.executor(fopt), be.executor(bopt)

    def close(self):
        if self.child is not None:
            self.child.close()
            self.child = None

    def __del__(self):   # (a block dropped after its first step: the worker is not left behind)
        self.close()


class First:
    """A first-tier plan: the Plan's call with cpu.deferring() on; its attributes are the plan's."""

    def __init__(self, tiers, plan):
        self.tiers, self.plan = tiers, plan

    def __call__(self, feed):
        self.tiers.runs += 1
        _pending.add(self.tiers)
        with cpu.deferring():
            return self.plan(feed)

    def __getattr__(self, name):
        return getattr(self.plan, name)
