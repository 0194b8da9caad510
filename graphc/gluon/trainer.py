"""Trainer: applies an Optimizer to a set of Parameters, as MXNet Gluon 1.x's gluon.Trainer.

Stale gradients. MXNet marks each array's gradient fresh in backward and refuses to step on a
parameter whose gradient was not recomputed since the last step. graphc follows it when the
array has that flag (`_fresh_grad`, set True by autograd.backward): a stale parameter raises,
or with ignore_stale_grad=True is skipped. Without the flag the rule is weaker, and never a
look at the gradient's values: a parameter is stale when its array has no gradient buffer or is
not an autograd variable (attach_grad was never called / was undone), i.e. backward cannot
have written a gradient for it.
"""
import numpy as np

from .. import optimizer as opt
from ..base import GraphcError, GraphcLoadError
from ..ndarray.ndarray import NDArray
from ..serialization import load_ndarrays, save_ndarrays


class Trainer:
    """Trainer(params, optimizer, optimizer_params=None, kvstore='device').

    params: a ParameterDict, a dict name -> Parameter or a list of Parameters. optimizer: a name
    for optimizer.create (with optimizer_params) or an Optimizer instance. One device only, so
    kvstore is accepted for MXNet compatibility ('device', 'local' or None) and does nothing.
    """

    def __init__(self, params, optimizer, optimizer_params=None, kvstore='device', compression_params=None,
                 update_on_kvstore=None):
        if hasattr(params, 'values') and hasattr(params, 'keys'):
            names, params = list(params.keys()), list(params.values())
        elif isinstance(params, (list, tuple)):
            params = list(params)
            names = [getattr(p, 'name', None) for p in params]
        else:
            raise GraphcError(f"Trainer: params must be a ParameterDict, a dict or a list of Parameters, "
                              f"got {type(params).__name__}")
        for n, p in zip(names, params):
            if not (hasattr(p, 'data') and hasattr(p, 'grad_req')):
                raise GraphcError(f"Trainer: {n!r} is a {type(p).__name__}, not a Parameter")
        if len({id(p) for p in params}) != len(params):
            raise GraphcError("Trainer: the same Parameter appears more than once in params")
        if kvstore not in (None, 'device', 'local'):
            raise GraphcError(f"Trainer: kvstore {kvstore!r} is not supported (graphc trains on one device)")
        self._params, self._names = params, names
        param_dict = dict(enumerate(params))
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise GraphcError("Trainer: optimizer_params must be empty when optimizer is an Optimizer instance")
            self._optimizer = optimizer
            optimizer.param_dict = param_dict
        else:
            self._optimizer = opt.create(optimizer, param_dict=param_dict, **(optimizer_params or {}))
        self._scale = self._optimizer.rescale_grad
        self._updater = opt.Updater(self._optimizer)

    # ------------------------------------------------------------ learning rate
    @property
    def optimizer(self):
        return self._optimizer

    @property
    def learning_rate(self):
        return self._optimizer.learning_rate

    def set_learning_rate(self, lr):
        self._optimizer.set_learning_rate(lr)

    # ------------------------------------------------------------ stepping
    def step(self, batch_size, ignore_stale_grad=False):
        """One optimization step; gradients are scaled by 1/batch_size (they are sums over the batch)."""
        self._optimizer.rescale_grad = self._scale / batch_size
        self.allreduce_grads()
        self._update(ignore_stale_grad)

    def allreduce_grads(self):
        """Sum gradients across devices: nothing to do on one device."""

    def update(self, batch_size, ignore_stale_grad=False):
        """step() without allreduce_grads (for code that reduces gradients itself)."""
        self._optimizer.rescale_grad = self._scale / batch_size
        self._update(ignore_stale_grad)

    def _update(self, ignore_stale_grad):
        todo = []  # check every parameter before updating any: a stale one leaves all untouched
        for i, p in enumerate(self._params):
            if p.grad_req == 'null':
                continue
            w = p.data()
            fresh = getattr(w, '_fresh_grad', None)
            if fresh is None:  # no freshness hook: stale only if backward cannot have reached it
                fresh = w._grad is not None and w._ag is not None
            if fresh:
                todo.append((i, w))
            elif not ignore_stale_grad:
                raise GraphcError(
                    f"Gradient of Parameter {self._names[i]!r} has not been computed by backward since the last "
                    "step. This could mean a bug in your model that made it use only a subset of its Parameters "
                    "in this iteration. If that is intended, call step(..., ignore_stale_grad=True) to skip the "
                    "Parameters whose gradient is stale")
        upd = self._updater
        for i, w in todo:
            upd(i, w._grad, w)
            if hasattr(w, '_fresh_grad'):
                w._fresh_grad = False

    # ------------------------------------------------------------ optimizer state
    def save_states(self, fname):
        """Save optimizer states, update counts and learning rate as a .params file (arrays and numbers only).

        Names: 'state:<param>:<k>' for the k-th array of a parameter's state, 'count:<param>' for its
        update count, 'meta:num_update' and 'meta:lr'."""
        o, out = self._optimizer, {}
        seen = set()
        for i, name in enumerate(self._names):
            if name in seen or not isinstance(name, str):
                raise GraphcError(f"save_states: parameters need unique str names to be saved; {name!r} is not")
            seen.add(name)
            if i in o._index_update_count:
                out[f'count:{name}'] = np.array(o._index_update_count[i], np.int64)
            for k, a in enumerate(_flat(self._updater.states.get(i))):
                out[f'state:{name}:{k}'] = a
        out['meta:num_update'] = np.array(o.num_update, np.int64)
        out['meta:lr'] = np.array(o.lr if o.lr is not None else np.nan, np.float64)
        save_ndarrays(fname, out)

    def load_states(self, fname):
        """Restore what save_states wrote. The optimizer's kind and hyperparameters come from this Trainer."""
        loaded = load_ndarrays(fname)
        if not isinstance(loaded, dict):
            raise GraphcLoadError(f"{fname}: not a Trainer state file (its arrays have no names)")
        o, idx = self._optimizer, {n: i for i, n in enumerate(self._names)}
        states, counts = {}, {}
        for key, a in loaded.items():
            kind, _, rest = key.partition(':')
            if kind == 'meta' and rest in ('num_update', 'lr'):
                continue
            if kind == 'state':
                name, _, k = rest.rpartition(':')
            else:
                name, k = rest, None
            if kind not in ('state', 'count') or name not in idx or (k is not None and not k.isdigit()):
                raise GraphcLoadError(f"{fname}: entry {key!r} does not belong to this Trainer's parameters "
                                      f"({len(idx)} parameters)")
            if kind == 'count':
                counts[idx[name]] = _count(a, fname, key)
            else:
                states.setdefault(idx[name], {})[int(k)] = a
        new_states = {}
        for i in sorted(set(states) | set(counts)):
            got = states.get(i, {})
            fresh = o.create_state(i, self._params[i].data())
            want = _flat(fresh)
            if sorted(got) != list(range(len(want))):
                raise GraphcLoadError(f"{fname}: parameter {self._names[i]!r} has state arrays {sorted(got)}, "
                                      f"{type(o).__name__} keeps {len(want)}")
            for k, dst in enumerate(want):
                src = got[k]
                if src.shape != dst.shape or src.dtype != dst.dtype:
                    raise GraphcLoadError(f"{fname}: state {k} of {self._names[i]!r} is {src.dtype}{src.shape}, "
                                          f"expected {dst.dtype}{dst.shape}")
                src.copyto(dst)  # (onto dst's device)
            new_states[i] = fresh
        # everything checked: replace the whole state, as MXNet does
        self._updater.states = new_states
        o._index_update_count = counts
        if 'meta:num_update' in loaded:
            o.num_update = _count(loaded['meta:num_update'], fname, 'meta:num_update')
        lr = loaded.get('meta:lr')
        if lr is not None and lr.size == 1 and o.lr_scheduler is None and lr.asscalar() == lr.asscalar():
            o.lr = float(lr.asscalar())  # nan: saved while a scheduler set the rate


def _count(a, fname, key):
    if a.size != 1 or a.dtype.kind not in 'iu' or a.asscalar() < 0:
        raise GraphcLoadError(f"{fname}: {key!r} must be one non-negative integer, got {a.dtype}{a.shape}")
    return int(a.asscalar())


def _flat(state):
    """A state as a list of NDArrays: None -> [], NDArray -> [it], (nested) tuple -> flattened."""
    if state is None:
        return []
    if isinstance(state, NDArray):
        return [state]
    return [a for s in state for a in _flat(s)]
