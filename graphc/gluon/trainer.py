"""Trainer: applies an Optimizer to a set of Parameters, as MXNet Gluon 1.9's gluon.Trainer.

Several devices. A parameter initialized on several contexts has one copy (and gradient) per context.
step() sums the gradients of the copies through a kvstore and updates every copy, so training on
[cpu(0), cpu(1)] with the batch split equals one device with the whole batch. As in MXNet the kvstore is
created at the first step: none for one context and a non-distributed type; else `kvstore` ('device',
'local', 'dist_sync', ... or a KVStore). With update_on_kvstore (MXNet's default where the kvstore can
update: env MXNET_UPDATE_ON_KVSTORE, default 1) the kvstore holds the weights, applies the optimizer to
the summed gradient and every copy pulls the result; without it the gradients are summed in place
(allreduce_grads) and each context's updater updates its copy (update). Update counts, and so Adam's
bias correction and an lr_scheduler, are per context, as MXNet keeps them.

Stale gradients. MXNet marks each array's gradient fresh in backward and refuses to step on a
parameter whose gradient was not recomputed since the last step. graphc follows it when the
array has that flag (`_fresh_grad`, set True by autograd.backward): a stale parameter raises,
or with ignore_stale_grad=True is skipped. Without the flag the rule is weaker, and never a
look at the gradient's values: a parameter is stale when its array has no gradient buffer or is
not an autograd variable (attach_grad was never called / was undone), i.e. backward cannot
have written a gradient for it.

Fused update. Where every parameter to update is a dense float32 (or float64) CPU array and the optimizer
has a multi-tensor kernel (SGD, NAG, Adam, AdamW, RMSProp, AdaGrad), each context's update is one native
call for all its parameters (graphc/optimizer/multi.py), equal bit for bit to the per-parameter one; the
kvstore's hooks run before it as before. Sparse gradients, update_on_kvstore, other optimizers and dtypes,
and GRAPHC_MULTI_TENSOR=0 take the per-parameter path.
"""

import numpy as np

from .. import config as _config
from .. import optimizer as opt
from ..optimizer import multi as _multi
from ..runtime import cpu as _cpu
from .. import kvstore as kvs
from ..base import GraphcError
from ..context import cpu
from ..kvstore.states import load_states as _load_states, save_states as _save_states


def _copies(p):
    return p.list_data() if hasattr(p, 'list_data') and getattr(p, '_stype', 'default') == 'default' else \
        list(p._copies) if getattr(p, '_copies', None) is not None else [p.data()]


class Trainer:
    """Trainer(params, optimizer, optimizer_params=None, kvstore='device', compression_params=None,
    update_on_kvstore=None).

    params: a ParameterDict or dict (taken in sorted key order, as MXNet, so every worker agrees on the
    order) or a list of Parameters. optimizer: a name for optimizer.create (with optimizer_params) or an
    Optimizer instance. kvstore: a type name, a KVStore, or None. compression_params: MXNet's gradient
    compression ({'type': '2bit', 'threshold': t}, or {'type': 'fp16'} for distributed kvstores).
    """

    def __init__(self, params, optimizer, optimizer_params=None, kvstore='device', compression_params=None,
                 update_on_kvstore=None):
        if hasattr(params, 'values') and hasattr(params, 'keys'):
            names = sorted(params.keys())
            params = [params[k] for k in names]
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
        if not (kvstore is None or isinstance(kvstore, (str, kvs.KVStoreBase))):
            raise GraphcError(f"Trainer: kvstore must be a type name, a KVStore or None, got {type(kvstore).__name__}")
        self._params, self._names = params, names
        self._param2idx = {n: i for i, n in enumerate(names)}
        self._contains_sparse_weight = any(getattr(p, '_stype', 'default') != 'default' for p in params)
        self._contains_sparse_grad = any(getattr(p, '_grad_stype', 'default') != 'default' for p in params)
        for p in params:
            if hasattr(p, '_set_trainer'):
                p._set_trainer(self)
        self._compression_params = compression_params
        self._contexts = self._check_contexts()
        param_dict = dict(enumerate(params))
        if isinstance(optimizer, opt.Optimizer):
            if optimizer_params:
                raise GraphcError("Trainer: optimizer_params must be empty when optimizer is an Optimizer instance")
            self._optimizer = optimizer
            optimizer.param_dict = param_dict
        else:
            self._optimizer = opt.create(optimizer, param_dict=param_dict, **(optimizer_params or {}))
        self._scale = self._optimizer.rescale_grad
        self._fused = {}  # context index -> its multi-tensor update (graphc/optimizer/multi.py)
        self._updaters = [opt.get_updater(self._optimizer) for _ in self._contexts or [None]]
        self._kvstore_params = {'kvstore': kvstore, 'update_on_kvstore': update_on_kvstore}
        self._reset_kvstore()
        kind = getattr(kvstore, 'type', kvstore)
        if isinstance(kind, str) and ('dist' in kind or kind == 'horovod') and self._contexts is not None:
            # every rank creates its Trainer at the same point: give them rank 0's values now, so that the first
            # step's gradients are computed at the same weights everywhere (deferred ones follow at a step)
            self._ready()

    def _check_contexts(self):
        """The contexts every parameter is on (the same list for all); None while some are not initialized."""
        contexts = None
        for n, p in zip(self._names, self._params):
            if not hasattr(p, 'list_ctx'):
                ctx = [cpu()]
            elif getattr(p, '_copies', True) is None and not getattr(p, '_deferred_init', ()):
                return None  # not initialized yet: checked again at the first step
            else:
                ctx = p.list_ctx()
            if contexts is not None and contexts != ctx:
                raise GraphcError(f"Trainer: all Parameters must be initialized on the same contexts, but Parameter "
                                  f"{n!r} is on {ctx} while the ones before it are on {contexts}")
            contexts = ctx
        return contexts

    @property
    def _updater(self):
        return self._updaters[0]

    # ------------------------------------------------------------ the kvstore
    def _reset_kvstore(self):
        """Forget the kvstore (the next step makes a new one); parameter loads call this."""
        if self.__dict__.get('_kvstore') is not None and 'dist' in self._kvstore.type:
            raise GraphcError("Trainer: a distributed kvstore cannot be reset (every worker would have to)")
        self._kv_initialized = False
        self._overlap = None
        self._kvstore = None
        self._distributed = None
        self._update_on_kvstore = None
        self._params_to_init = list(self._params)

    def _init_kvstore(self):
        """Create the kvstore and decide update_on_kvstore, by MXNet 1.9's rules."""
        if self._contexts is None or len(self._updaters) != len(self._contexts):
            self._contexts = self._check_contexts() or [cpu()]
            self._updaters = [opt.get_updater(self._optimizer) for _ in self._contexts]
        config = self._kvstore_params
        kind, want = config['kvstore'], config['update_on_kvstore']
        env = _config.update_on_kvstore()
        if self._contains_sparse_weight:  # MXNet: row_sparse weights live on (and are updated by) a kvstore
            kv = kvs.create(kind) if isinstance(kind, str) else kind
            if kv is None or not kv.is_capable(kvs.KVStoreBase.OPTIMIZER):
                raise GraphcError(f"Trainer: row_sparse weights need a kvstore that can update them, got {kind!r}")
            if want is False:
                raise ValueError("Cannot set update_on_kvstore=False when sparse weights are present.")
            update = True
            self._distributed = 'dist' in kv.type
        else:
            kv, update = self._create_kvstore(kind, env)
            self._distributed = kv is not None and 'dist' in kv.type
            if self._contains_sparse_grad:
                update = self._distributed
                if want is not None:
                    if want is False and self._distributed:
                        raise ValueError("Cannot set update_on_kvstore=False on dist kvstore when sparse "
                                         "gradients are present.")
                    update = want
                if kv is not None and not isinstance(kv, kvs.KVStore):
                    raise ValueError(f"Cannot use {type(kv).__name__} for multi-device training with sparse "
                                     "gradients")
            else:
                if want is not None:
                    update = want
                if update and kv is not None and not kv.is_capable(kvs.KVStoreBase.OPTIMIZER):
                    raise ValueError(f"Please set update_on_kvstore=False when training with {type(kv).__name__}")
        if kv is not None:
            if isinstance(getattr(kv, '_names', None), dict):  # (its errors name the parameters)
                kv._names.update(enumerate(self._names))
            if self._compression_params:
                kv.set_gradient_compression(self._compression_params)
            if update:
                kv.set_optimizer(self._optimizer)
            self._kvstore, self._update_on_kvstore = kv, bool(update)
        else:
            self._kvstore, self._update_on_kvstore = None, None
        self._kv_initialized = True

    def _create_kvstore(self, kind, update):
        """(kvstore or None, update_on_kvstore): none for one context unless distributed (MXNet's model._create_kvstore)."""
        if kind is None:
            kv = None
        elif isinstance(kind, kvs.KVStoreBase):
            kv = kind
        elif len(self._contexts) == 1 and 'dist' not in kind and kind != 'horovod':
            kv = None
        else:
            kv = kvs.create(kind)
            if kind == 'local':  # MXNet: big weights are updated on the devices, not on the host store
                sizes = [int(np.prod(p.shape)) for p in self._params if p.shape]
                if sizes and max(sizes) > 1024 * 1024 * 16:
                    update = False
        if kv is None:
            return None, False
        return kv, update and kv.is_capable(kvs.KVStoreBase.OPTIMIZER)

    def _init_params(self):
        """Give the kvstore every initialized parameter (the first copy's values go to all copies, and in a
        distributed kvstore rank 0's to every rank); deferred ones wait for a later step."""
        waiting, keys, firsts, outs = [], [], [], []
        for p in self._params_to_init:
            if getattr(p, '_copies', True) is None:
                waiting.append(p)
                continue
            arrays = _copies(p)
            keys.append(self._params.index(p))
            firsts.append(arrays[0])
            outs.append(arrays)
        kv = self._kvstore
        if kv is not None and keys:
            if isinstance(kv, kvs.KVStore):  # graphc's: all keys at once (one collective in a distributed store)
                kv.broadcast(keys, firsts, outs)
            else:
                for k, a, o in zip(keys, firsts, outs):
                    kv.broadcast(k, a, o)
        self._params_to_init = waiting

    def _row_sparse_pull(self, parameter, out, row_id, full_idx=False):
        """Pull the rows row_id names of a row_sparse parameter from the kvstore into out (MXNet's)."""
        self._ready()
        idx = self._params.index(parameter)
        if full_idx and 'dist' not in self._kvstore.type:
            self._kvstore.pull(idx, out=out, priority=-idx, ignore_sparse=False)
        else:
            self._kvstore.row_sparse_pull(idx, out=out, row_ids=row_id, priority=-idx)

    def _ready(self):
        if not self._kv_initialized:
            self._init_kvstore()
        if self._params_to_init:
            self._init_params()

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
    def _check_and_rescale_grad(self, scale):
        # MXNet refuses a new batch size when a distributed kvstore updates: its servers hold their own copy of
        # the optimizer. Here every rank's kvstore updates with this Trainer's optimizer, so the scale may change.
        self._optimizer.rescale_grad = scale

    def step(self, batch_size, ignore_stale_grad=False):
        """One optimization step: sum the gradients over the copies (and workers), scale by 1/batch_size
        (gradients are sums over the batch: pass the batch size all copies together saw), update."""
        self._check_and_rescale_grad(self._scale / batch_size)
        self._ready()
        self._allreduce_grads()
        self._update(ignore_stale_grad)

    def allreduce_grads(self):
        """Sum each parameter's gradients over its copies (and workers), in place; then update() steps."""
        self._ready()
        if self._kvstore is not None and self._update_on_kvstore:
            raise AssertionError("allreduce_grads() when parameters are updated on kvstore is not supported; "
                                 "create the Trainer with update_on_kvstore=False")
        self._allreduce_grads()

    def _grads(self):
        return [(i, p) for i, p in enumerate(self._params) if p.grad_req != 'null']

    def _allreduce_grads(self):
        kv = self._kvstore
        if kv is None:
            return
        todo = self._grads()
        if not todo:
            return
        batched = isinstance(kv, kvs.KVStore)  # graphc's kvstores take every key at once (and bucket them)
        keys = [i for i, _ in todo]
        grads = [[a._grad for a in _copies(p)] for _, p in todo]
        outs = [_copies(p) for _, p in todo] if self._update_on_kvstore else None
        copies = [_copies(p) for _, p in todo]
        ov = self._overlap
        if ov is not None:  # some buckets left during backward: the rest now (see kvstore/dist.py Overlap)
            if ov.keys != keys or any(len(a) != len(b) or any(x is not y for x, y in zip(a, b))
                                      for a, b in zip((ov.copies[k] for k in ov.keys), copies)):
                ov.dirty, self._overlap = True, None  # other parameters or arrays: drained, then made anew
            if ov.finish(outs if outs is not None else grads):
                return
        if batched:
            kv.pushpull(keys, grads, out=outs)
        else:
            for j, k in enumerate(keys):
                kv.pushpull(k, grads[j], out=outs[j] if outs else None, priority=-k)
        if self._overlap is None and batched and not self._params_to_init and hasattr(kv, 'overlap'):
            self._overlap = kv.overlap(keys, dict(zip(keys, copies)))  # from the next backward on

    def update(self, batch_size, ignore_stale_grad=False):
        """step() without allreduce_grads (for code that reduces gradients itself)."""
        self._ready()
        if self._kvstore is not None and self._update_on_kvstore:
            raise AssertionError("update() when parameters are updated on kvstore is not supported; create the "
                                 "Trainer with update_on_kvstore=False")
        self._check_and_rescale_grad(self._scale / batch_size)
        self._update(ignore_stale_grad)

    def _update(self, ignore_stale_grad):
        todo = []  # check every parameter before updating any: a stale one leaves all untouched
        for i, p in self._grads():
            arrays = _copies(p)
            fresh = [_is_fresh(w) for w in arrays]
            if all(fresh):
                todo.append((i, arrays))
            elif not ignore_stale_grad:
                where = ', '.join(str(w.context) for w, f in zip(arrays, fresh) if not f) if len(arrays) > 1 else ''
                raise GraphcError(
                    f"Gradient of Parameter {self._names[i]!r}{' on ' + where if where else ''} has not been "
                    "computed by backward since the last step. This could mean a bug in your model that made "
                    "it use only a subset of its Parameters in this iteration. If that is intended, call "
                    "step(..., ignore_stale_grad=True) to skip the Parameters whose gradient is stale")
        on_kv = self._kvstore is not None and self._update_on_kvstore
        o = self._optimizer
        fused = todo and not on_kv and not self._contains_sparse_grad and _fused_on()
        try:
            for k, upd in enumerate(self._updaters):
                if on_kv:
                    continue
                _device_counts(o, k)
                if fused and _fused_step(self, self._fused.get(k) or self._fused.setdefault(k, _multi.Fused()),
                                         o, upd, [i for i, _ in todo], [arrays[k] for _, arrays in todo]):
                    continue  # every parameter of this context in one multi-tensor kernel call
                for i, arrays in todo:
                    w = arrays[k]
                    upd(i, w._grad, w)
        finally:
            _device_counts(o, 0)
        for _, arrays in todo:
            for w in arrays:
                if hasattr(w, '_fresh_grad'):
                    w._fresh_grad = False

    # ------------------------------------------------------------ optimizer state
    def save_states(self, fname):
        """Save optimizer states, update counts and learning rate as a .params file (arrays and numbers only,
        parameters by index: see graphc/kvstore/states.py). In a distributed run call it on rank 0 only."""
        self._ready()
        upd = self._kvstore._updater if self._update_on_kvstore else self._updaters[0]
        _save_states(fname, upd, {i: str(i) for i in range(len(self._params))})  # by index, as MXNet

    def load_states(self, fname):
        """Restore what save_states wrote (onto every context's updater). The optimizer's kind and
        hyperparameters come from this Trainer."""
        self._ready()
        show = dict(enumerate(self._names))
        by_label = {str(i): (i, _copies(p)[0]) for i, p in enumerate(self._params)}
        if self._update_on_kvstore:
            _load_states(fname, self._kvstore._updater, by_label, show)
            self._optimizer = self._kvstore._updater.optimizer
        else:
            _load_states(fname, self._updaters[0], by_label, show)
            try:
                for k, upd in enumerate(self._updaters[1:], 1):  # each context's own copy of the states
                    _device_counts(self._optimizer, k)
                    _load_states(fname, upd, {n: (i, _copies(self._params[i])[k]) for n, (i, _) in by_label.items()},
                                 show)
            finally:
                _device_counts(self._optimizer, 0)
        self._optimizer.param_dict = dict(enumerate(self._params))


def _fused_on():
    return _config.multi_tensor() and _cpu.enabled()


def _fused_step(trainer, fused, *args):
    """fused.step(*args); after a first tier of a step this trainer updates (runtime/tiered.py), before its swap,
    the update kernel is not built here (the worker builds it): an update not built yet runs per parameter."""
    from ..runtime import tiered
    if not tiered.pending(trainer):
        return fused.step(*args)
    with _cpu.deferring():
        return fused.step(*args)


def _is_fresh(w):
    fresh = getattr(w, '_fresh_grad', None)
    if fresh is None:  # no freshness hook: stale only if backward cannot have reached it
        fresh = w._grad is not None and w._ag is not None
    return bool(fresh)


def _device_counts(o, k):
    """Make the optimizer count updates of context k: MXNet keeps one count per parameter and context, so
    two copies updated in one step count one update each (its Optimizer._set_current_context)."""
    if hasattr(o, '_set_current_context'):
        o._set_current_context(k)
        return
    allc = o.__dict__.setdefault('_all_index_update_counts', {})
    allc[o.__dict__.get('_current_context', 0)] = o._index_update_count  # (load_states may have replaced it)
    o._index_update_count = allc.setdefault(k, {})
    o._current_context = k


