"""The Trainer's fused update: all the parameters of one context in one multi-tensor kernel call
(runtime/multi_tensor.py) or, on a GPU, one launch per weight dtype (runtime/cuda_update.py), with the
bookkeeping Optimizer.update does per parameter (update counts, num_update, the schedule's rate, lr_mult and
wd_mult) done for all at once, in the same order.

Used where every parameter is a dense C-contiguous array of a float dtype (float32 or float64; on a GPU also
float16/bfloat16 weights with multi_precision's float32 masters) with a dense gradient and dense states, and
the optimizer's own class defines `_multi` (SGD, NAG, Adam, AdamW, RMSProp, AdaGrad; a subclass may change
_step, so it does not inherit it); else step() returns False and the per-parameter path runs.
"""
import operator

import numpy as np

from .. import config
from ..ndarray.ndarray import NDArray, WRITES
from ..runtime import cuda_update as cu, multi_tensor as mt
from ..runtime.cpu import Deferred
from .optimizer import _state_arrays

NSTATE = {'sgd': (0, 1), 'nag': (0, 1), 'adam': (2,), 'adamw': (2,), 'rmsprop': (1, 3), 'adagrad': (1,)}


def _arrays(st):
    """The NDArrays of a state (_state_arrays, without its recursion for the usual None, NDArray, tuple)."""
    if st is None:
        return ()
    if type(st) is NDArray:
        return (st,)
    return st if type(st) is tuple and all(type(a) is NDArray for a in st) else _state_arrays(st)


def _mp_arrays(o, st):
    """A multi-precision state's NDArrays as the mixed kernel reads them: the float32 master, then the inner state's."""
    master, inner = o._mp_unpack(st)
    return (master, *_arrays(inner))


class _Group:
    """The tensors (positions pos of the context's list) one kernel call updates, with their row table."""

    def __init__(self, pos, table, dtype, nstate, half=None):
        self.pos, self.table, self.dtype, self.nstate, self.half = np.array(pos), table, dtype, nstate, half
        self.kernel = (None,) * 4


class Fused:
    """One context's fused update: one kernel call per group of parameters (on the CPU one group; on a GPU one per
    weight dtype, the 16-bit weights with float32 masters in the mixed-precision kernel). The row tables are kept
    while the weight, gradient and state arrays stay the same objects (rebuilt, and the checks run again, when
    any is replaced)."""

    def __init__(self):
        self.key, self.groups, self.device = None, None, False

    def step(self, o, upd, idx, weights):
        """Update weights (NDArrays, indices idx) with optimizer o and its Updater upd; False: not supported."""
        if '_multi' not in type(o).__dict__ or not weights:
            return False
        if getattr(weights[0], 'context', None) is not None:
            o._set_current_context(weights[0].context.device_id)  # (as Updater.__call__)
        states = [upd.state(i, w) for i, w in zip(idx, weights)]
        mps = [o._use_mp(w) for w in weights]
        sarr = [_mp_arrays(o, st) if mp else _arrays(st) for st, mp in zip(states, mps)]
        flat = [w._data for w in weights] + [None if w._grad is None else w._grad._data for w in weights] + \
            [a._data for s in sarr for a in s]
        if self.key is None or len(flat) != len(self.key) or not all(map(operator.is_, flat, self.key)):
            key = [(w._data, None if w._grad is None else w._grad._data, *(a._data for a in s))
                   for w, s in zip(weights, sarr)]
            self.key, self.groups = flat, self._groups(weights, states, key, mps)
        if self.groups is None:
            return False
        cnt, b0 = o._index_update_count, o.begin_num_update
        counts = [cnt.get(i, b0) + 1 for i in idx]
        lr, wd, nu = self._rates(o, idx, counts)
        todo = []  # every group checked before any is updated
        for grp in self.groups:
            spec = o._multi(lr[grp.pos], wd[grp.pos], [counts[k] for k in grp.pos], grp.nstate)
            if spec is None or grp.nstate not in NSTATE.get(spec[0], ()):
                return False
            kind, opts, cols = spec
            names = mt.SCALARS[kind]
            scal = np.empty((len(grp.pos), len(names)), np.float64)
            for k, name in enumerate(names):
                scal[:, k] = cols.get(name, 0.0)
            scal = scal.astype(grp.dtype)
            if self.device:  # GPU arrays: runtime/cuda_update.py's kernel takes at most CLASSES scalar rows
                scal = cu.classes(scal)
                if scal is None:
                    return False
            has = wd[grp.pos] != 0
            wds = (True,) if has.all() else (False, True) if has.any() else (False,)  # the wd cases present
            if grp.kernel[:3] != (kind, opts, wds):
                try:
                    k = cu.kernel(grp.table.xp, self.device_id, kind, grp.dtype, opts, grp.nstate, wds, grp.half) \
                        if self.device else mt.kernel(kind, grp.dtype, opts, grp.nstate, wds)
                except Deferred:   # (a training step's first tier, runtime/tiered.py: updated one by one)
                    return False
                grp.kernel = (kind, opts, wds, k)
            todo.append((grp, kind, opts, wds, scal, has))
        cnt.update(zip(idx, counts))
        o.num_update = nu
        WRITES[0] += 1  # weights change in place: values cached from them are stale
        if self.device:
            from .. import device as _dev
            _dev.SYNCED.add(self.device_id)
        for grp, kind, opts, wds, scal, has in todo:
            if self.device:
                with grp.table.xp.cuda.Device(self.device_id):
                    grp.kernel[3](grp.table.set(scal[0], has), scal[1])
            else:
                grp.table.flags(has)
                grp.kernel[3](grp.table, scal)
        return True

    def _rates(self, o, idx, counts):
        """Per-tensor learning rates and weight decays as float64 arrays, each the value _get_lr/_get_wd gives
        in the per-parameter order (num_update rises with the counts as the parameters update), and the
        final num_update."""
        nu = o.num_update
        sched = o.lr_scheduler
        if min(counts) == max(counts):
            nu = max(nu, counts[0])
            base = [sched(nu) if sched is not None else o.lr] * len(idx)
        else:
            base, memo = [], {}
            for c in counts:
                nu = max(nu, c)
                if nu not in memo:
                    memo[nu] = sched(nu) if sched is not None else o.lr
                base.append(memo[nu])
        ps = [o.param_dict.get(i) for i in idx]  # (as _mult: a Parameter's multipliers first)
        lr = np.array([float(b * (p.lr_mult if p is not None else o._mult(i, 'lr_mult', o.lr_mult)))
                       for b, p, i in zip(base, ps, idx)], np.float64)
        wd = np.array([float(o.wd * (p.wd_mult if p is not None else o._mult(i, 'wd_mult', o.wd_mult)))
                       for p, i in zip(ps, idx)], np.float64)
        return lr, wd, nu

    def _groups(self, weights, states, key, mps):
        """The kernel calls' groups, or None when some array is not a dense C-contiguous one of a dtype a kernel
        takes, shaped as its weight, or the states of a group differ in structure."""
        self.device = not isinstance(key[0][0], np.ndarray)
        if self.device:  # cupy arrays (graphc.device): the device kernel's tables, one per (weight dtype, mp)
            from .. import device as _dev
            if not all(isinstance(w, NDArray) and w.stype == 'default' and isinstance(w._grad, NDArray) and
                       w._grad.stype == 'default' for w in weights):
                return None
            self.device_id = key[0][0].device.id
            by = {}
            for k, (w, mp) in enumerate(zip(key, mps)):
                by.setdefault((w[0].dtype, mp), []).append(k)
            groups = []
            for (_, mp), pos in by.items():
                kinds = cu.check([key[k] for k in pos], mp)
                if kinds is None or key[pos[0]][0].device.id != self.device_id:
                    return None
                nstate = len(key[pos[0]]) - 2 - mp
                groups.append(_Group(pos, cu.Table(_dev.cupy(), [key[k] for k in pos]), kinds[0], nstate, kinds[1]))
            return groups
        if any(mps):
            return None  # (no CPU kernel for 16-bit weights)
        dtype = key[0][0].dtype if isinstance(key[0][0], np.ndarray) else None
        if dtype not in (np.float32, np.float64) or len({len(k) for k in key}) != 1:
            return None
        for w, st, arrs in zip(weights, states, key):
            g = w._grad
            if not isinstance(w, NDArray) or not isinstance(g, NDArray) or w.stype != 'default' or \
                    g.stype != 'default' or any(
                    s.stype != 'default' for s in _state_arrays(st)) or not isinstance(st, (NDArray, tuple, type(None))):
                return None
            for a in arrs:
                if type(a) is not np.ndarray or a.dtype != dtype or a.shape != arrs[0].shape or \
                        not a.flags.c_contiguous or not a.flags.writeable:
                    return None
            if any(np.may_share_memory(a, b) for k, a in enumerate(arrs) for b in arrs[k + 1:]):
                return None  # the kernel's arrays are noalias
        nstate = len(key[0]) - 2
        if nstate > 3:
            return None
        return [_Group(range(len(key)), mt.Table(key, config.num_threads()), dtype, nstate)]
