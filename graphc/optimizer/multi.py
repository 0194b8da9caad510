"""The Trainer's fused update: all the parameters of one context in one multi-tensor kernel call
(runtime/multi_tensor.py), with the bookkeeping Optimizer.update does per parameter (update counts,
num_update, the schedule's rate, lr_mult and wd_mult) done for all at once, in the same order.

Used where every parameter is a dense C-contiguous NumPy array of one float dtype (float32 or float64)
with a dense gradient and dense states, and the optimizer's own class defines `_multi` (SGD, NAG, Adam,
AdamW, RMSProp, AdaGrad; a subclass may change _step, so it does not inherit it); else step() returns
False and the per-parameter path runs.
"""
import operator

import numpy as np

from .. import config
from ..ndarray.ndarray import NDArray, WRITES
from ..runtime import cuda_update as cu, multi_tensor as mt
from .optimizer import _state_arrays

NSTATE = {'sgd': (0, 1), 'nag': (0, 1), 'adam': (2,), 'adamw': (2,), 'rmsprop': (1, 3), 'adagrad': (1,)}


def _arrays(st):
    """The NDArrays of a state (_state_arrays, without its recursion for the usual None, NDArray, tuple)."""
    if st is None:
        return ()
    if type(st) is NDArray:
        return (st,)
    return st if type(st) is tuple and all(type(a) is NDArray for a in st) else _state_arrays(st)


class Fused:
    """One context's fused update. The row table is kept while the weight, gradient and state arrays stay the
    same objects (rebuilt, and the checks run again, when any is replaced)."""

    def __init__(self):
        self.key, self.table, self.nstate, self.kernel, self.device = None, None, 0, (None,) * 4, False

    def step(self, o, upd, idx, weights):
        """Update weights (NDArrays, indices idx) with optimizer o and its Updater upd; False: not supported."""
        if '_multi' not in type(o).__dict__ or not weights:
            return False
        if getattr(weights[0], 'context', None) is not None:
            o._set_current_context(weights[0].context.device_id)  # (as Updater.__call__)
        states = [upd.state(i, w) for i, w in zip(idx, weights)]
        sarr = [_arrays(st) for st in states]
        flat = [w._data for w in weights] + [None if w._grad is None else w._grad._data for w in weights] + \
            [a._data for s in sarr for a in s]
        if self.key is None or len(flat) != len(self.key) or not all(map(operator.is_, flat, self.key)):
            key = [(w._data, None if w._grad is None else w._grad._data, *(a._data for a in s))
                   for w, s in zip(weights, sarr)]
            self.key, self.table, self.kernel = flat, self._table(weights, states, key), (None,) * 4
        if self.table is None:
            return False
        cnt, b0 = o._index_update_count, o.begin_num_update
        counts = [cnt.get(i, b0) + 1 for i in idx]
        lr, wd, nu = self._rates(o, idx, counts)
        spec = o._multi(lr, wd, counts, self.nstate)
        if spec is None or self.nstate not in NSTATE.get(spec[0], ()):
            return False
        kind, opts, cols = spec
        names = mt.SCALARS[kind]
        scal = np.empty((len(idx), len(names)), np.float64)
        for k, name in enumerate(names):
            scal[:, k] = cols.get(name, 0.0)
        has = wd != 0
        if self.device:  # GPU arrays: one launch of runtime/cuda_update.py's kernel
            cls = cu.classes(scal.astype(self.dtype))
            if cls is None:
                return False
            cnt.update(zip(idx, counts))
            o.num_update = nu
            WRITES[0] += 1
            wds = (True,) if has.all() else (False, True) if has.any() else (False,)
            if self.kernel[:3] != (kind, opts, wds):
                self.kernel = (kind, opts, wds, cu.kernel(self.table.xp, self.device_id, kind, self.dtype, opts,
                                                          self.nstate, wds))
            from .. import device as _dev
            _dev.SYNCED.add(self.device_id)
            with self.table.xp.cuda.Device(self.device_id):
                self.kernel[3](self.table.set(cls[0], has), cls[1])
            return True
        cnt.update(zip(idx, counts))
        o.num_update = nu
        self.table.flags(has)
        wds = (True,) if has.all() else (False, True) if has.any() else (False,)  # the wd cases present
        WRITES[0] += 1  # weights change in place: values cached from them are stale
        if self.kernel[:3] != (kind, opts, wds):
            self.kernel = (kind, opts, wds, mt.kernel(kind, self.dtype, opts, self.nstate, wds))
        self.kernel[3](self.table, scal.astype(self.dtype))
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

    def _table(self, weights, states, key):
        """The kernel's row table, or None when some array is not a dense C-contiguous float32/float64 one
        shaped as its weight, or the states differ in structure."""
        self.device = not isinstance(key[0][0], np.ndarray)
        if self.device:  # cupy arrays (graphc.device): the device kernel's table
            from .. import device as _dev
            if not all(isinstance(w, NDArray) and w.stype == 'default' and isinstance(w._grad, NDArray) and
                       w._grad.stype == 'default' for w in weights):
                return None
            self.dtype = cu.check(key)
            if self.dtype is None:
                return None
            self.nstate, self.device_id = len(key[0]) - 2, key[0][0].device.id
            return cu.Table(_dev.cupy(), key)
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
        self.dtype, self.nstate = dtype, len(key[0]) - 2
        if self.nstate > 3:
            return None
        return mt.Table(key, config.num_threads())
