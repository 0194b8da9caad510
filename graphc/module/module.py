"""Module: a Symbol bound to one context, with its parameters, optimizer and MXNet's legacy training API."""
import logging
import os
import warnings

import numpy as np

from ..base import GraphcError, GraphcTypeError
from .base_module import BaseModule


def _descs(shapes, what):
    """DataDescs from [(name, shape)] or DataDescs."""
    from ..io import DataDesc
    if shapes is None:
        return []
    out = []
    for d in shapes:
        if isinstance(d, DataDesc):
            out.append(d)
        elif isinstance(d, (list, tuple)) and len(d) == 2:
            if not isinstance(d[1], (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in d[1]):
                raise GraphcTypeError(f"Module.bind: the shape of {what} {d[0]!r} must be a tuple of ints, got "
                                      f"{type(d[1]).__name__}")
            out.append(DataDesc(d[0], d[1]))
        else:
            raise GraphcError(f"Module.bind: {what} must be (name, shape) pairs or DataDescs, got {d!r}")
    return out


class UnknownParamError(GraphcError, ValueError):
    """Parameters given by a name the symbol does not have (MXNet raises ValueError there)."""


class Module(BaseModule):
    """A symbol bound for training or inference: data_names and label_names name its inputs; every other
    argument is a parameter (fixed_param_names ones are not updated). Several contexts: data parallel."""

    def __init__(self, symbol, data_names=('data',), label_names=('softmax_label',), logger=logging, context=None,
                 work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None,
                 compression_params=None):
        from ..context import Context, cpu
        super().__init__(logger=logger)
        ctxs = list(context) if isinstance(context, (list, tuple)) else [context if context is not None else cpu()]
        if not ctxs:
            raise GraphcError("Module: context is an empty list")
        self._context = [Context(c) for c in ctxs]  # data parallel: the batch is split over them
        self._work_load_list, self._group2ctxs = work_load_list, group2ctxs
        self._symbol = symbol
        self._data_names = list(data_names or [])
        self._label_names = list(label_names or [])
        self._state_names = list(state_names or [])
        self._fixed_param_names = list(fixed_param_names or [])
        args = symbol.list_arguments()
        for what, names, strict in (('data', self._data_names, True), ('state', self._state_names, True),
                                    ('fixed_param', self._fixed_param_names, True),
                                    ('label', self._label_names, False)):
            missing = [n for n in names if n not in args]
            if missing and strict:
                raise GraphcError(f"Module: {what} names {missing} are not arguments of the symbol; "
                                  f"its arguments are {args}")
            if missing:
                warnings.warn(f"Module: label names {missing} are not arguments of the symbol (fine for inference)")
        inputs = set(self._data_names + self._label_names + self._state_names)
        self._param_names = [n for n in args if n not in inputs]
        self._aux_names = symbol.list_auxiliary_states()
        self._output_names = symbol.list_outputs()
        self._arg_params = self._aux_params = None
        self._exec_group = None
        self._optimizer = self._updater = self._preload_opt_states = None
        self._kvstore, self._update_on_kvstore = None, False
        self._data_shapes, self._label_shapes = [], []

    # ------------------------------------------------------------ views
    data_names = property(lambda self: list(self._data_names))
    label_names = property(lambda self: list(self._label_names))
    output_names = property(lambda self: list(self._output_names))

    @property
    def data_shapes(self):
        self._need('data_shapes')
        return self._data_shapes

    @property
    def label_shapes(self):
        self._need('label_shapes')
        return self._label_shapes

    @property
    def output_shapes(self):
        self._need('output_shapes')
        return [(n, tuple(o.shape)) for n, o in zip(self._output_names, self._exec_group.get_outputs())]

    # ------------------------------------------------------------ setup
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req='write'):
        """Bind one executor per context to its slice of these input shapes. grad_req applies to the parameters
        (a string, or a dict/list by name); data gets 'write' only with inputs_need_grad, labels and fixed
        params 'null'. shared_module (bound, initialized): share its parameter arrays (BucketingModule)."""
        from .executor_group import DataParallelExecutorGroup
        if force_rebind:
            self._exec_group, self.binded = None, False
        if self.binded:
            self.logger.warning('Already bound, ignoring bind()')
            return
        if inputs_need_grad and not for_training:
            raise GraphcError("Module.bind: inputs_need_grad=True needs for_training=True")
        shared_group = None
        if shared_module is not None:
            if not (isinstance(shared_module, Module) and shared_module.binded and shared_module.params_initialized):
                raise GraphcError("Module.bind: shared_module must be a bound Module with initialized parameters")
            shared_group = shared_module._exec_group
        data = _descs(data_shapes, 'data_shapes')
        labels = _descs(label_shapes, 'label_shapes')
        if [d.name for d in data] != self._data_names:
            raise GraphcError(f"Module.bind: data_shapes name {[d.name for d in data]}; the module's data_names "
                              f"are {self._data_names}")
        self._exec_group = DataParallelExecutorGroup(
            self._symbol, self._context, self._work_load_list, data, labels, self._param_names, for_training,
            inputs_need_grad, shared_group, self.logger, self._fixed_param_names, grad_req, self._state_names,
            self._group2ctxs)
        self._data_shapes, self._label_shapes = data, labels
        self.for_training, self.inputs_need_grad, self.binded = for_training, inputs_need_grad, True
        self._grad_req = grad_req
        if shared_module is not None:
            self.params_initialized = True
            self._arg_params, self._aux_params = shared_module._arg_params, shared_module._aux_params
        elif self.params_initialized:  # parameters set before (Module.load, or an earlier bind) move in
            self._exec_group.set_params(self._arg_params, self._aux_params)

    def init_params(self, initializer=None, arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        """Initialize the parameters and aux states: from arg_params/aux_params where given, else by the
        initializer (default Uniform(0.01)); a name missing from given params is an error unless allow_missing."""
        from .. import initializer as init
        from ..ndarray.ndarray import NDArray
        if self.params_initialized and not force_init:
            warnings.warn("Module.init_params: parameters already initialized; pass force_init=True to redo it")
            return
        self._need('init_params')
        if initializer is None and arg_params is None and aux_params is None:
            initializer = init.Uniform(0.01)
        if not allow_extra:
            for given, names, what in ((arg_params, self._param_names, 'arg_params'),
                                       (aux_params, self._aux_names, 'aux_params')):
                extra = sorted(set(given or {}) - set(names))
                if extra:
                    raise UnknownParamError(f"Module.init_params: {what} has names the symbol lacks: {extra}; "
                                            "pass allow_extra=True to ignore them")
        attrs = self._symbol.attr_dict()
        arg_dict, aux_dict = self._exec_group.execs[0].arg_dict, self._exec_group.execs[0].aux_dict
        if self._arg_params is None:
            self._arg_params = {n: NDArray(np.zeros(arg_dict[n].shape, arg_dict[n].dtype)) for n in self._param_names}
            self._aux_params = {n: NDArray(np.zeros(aux_dict[n].shape, aux_dict[n].dtype)) for n in self._aux_names}

        def fill(name, arr, given):
            if given is not None and name in given:
                src = given[name]
                if tuple(src.shape) != tuple(arr.shape):
                    raise GraphcError(f"Module.init_params: {name!r} has shape {tuple(src.shape)}, the symbol "
                                      f"needs {tuple(arr.shape)}")
                if src is not arr:
                    arr[:] = src
            elif given is not None and not allow_missing:
                raise GraphcError(f"Module.init_params: {name!r} is not in the given params; pass "
                                  "allow_missing=True to initialize it")
            elif initializer is not None:
                initializer(init.InitDesc(name, attrs.get(name)), arr)
        for n, a in sorted(self._arg_params.items()):
            fill(n, a, arg_params)
        for n, a in sorted(self._aux_params.items()):
            fill(n, a, aux_params)
        self.params_initialized = True
        self._exec_group.set_params(self._arg_params, self._aux_params, allow_extra=allow_extra)

    def get_params(self):
        """(arg_params, aux_params) by name: the current values (averaged over the contexts)."""
        self._need('get_params', params=True)
        self._exec_group.get_params(self._arg_params, self._aux_params)
        return dict(self._arg_params), dict(self._aux_params)

    def init_optimizer(self, kvstore='local', optimizer='sgd', optimizer_params=(('learning_rate', 0.01),),
                       force_init=False):
        """The optimizer (a name with optimizer_params, or an Optimizer) and its updater. rescale_grad defaults
        to 1/batch_size, as in MXNet (the executor's gradients are sums over the batch)."""
        from .. import optimizer as opt
        self._need('init_optimizer', params=True)
        if self.optimizer_initialized and not force_init:
            warnings.warn("Module.init_optimizer: optimizer already initialized; pass force_init=True to redo it")
            return
        kv, on_kv = self._create_kvstore(kvstore)
        batch_size = self._exec_group.batch_size
        nd_ = len(self._context)
        idx2name = dict(enumerate(self._param_names)) if on_kv else \
            {i * nd_ + k: n for i, n in enumerate(self._param_names) for k in range(nd_)}
        if isinstance(optimizer, str):
            params = dict(optimizer_params)
            params.setdefault('rescale_grad', 1.0 / batch_size)
            optimizer = opt.create(optimizer, sym=self._symbol, param_idx2name=idx2name, **params)
        elif not isinstance(optimizer, opt.Optimizer):
            raise GraphcError(f"Module.init_optimizer: optimizer must be a name or an Optimizer, got {optimizer!r}")
        else:
            if optimizer.rescale_grad != 1.0 / batch_size:
                warnings.warn(f"Module.init_optimizer: optimizer.rescale_grad is {optimizer.rescale_grad}, not "
                              f"1/batch_size = {1.0 / batch_size}; is that intended?")
            if not getattr(optimizer, 'idx2name', None):
                optimizer.idx2name = idx2name
        self._kvstore, self._update_on_kvstore = kv, on_kv
        if kv is not None:  # the weights start out the same everywhere; the store sums (and updates)
            if on_kv:
                kv.set_optimizer(optimizer)
            for i, n in enumerate(self._param_names):
                if on_kv:
                    kv.broadcast(n, self._arg_params[n], out=self._exec_group.param_arrays[i])
                else:
                    kv.init(n, self._arg_params[n])
        self._optimizer, self._updater = optimizer, None if on_kv else opt.get_updater(optimizer)
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    def _create_kvstore(self, kvstore):
        """(kvstore or None, update_on_kvstore), as MXNet: none for one context and a local kind."""
        from .. import config, kvstore as kvs
        if kvstore is None:
            return None, False
        if isinstance(kvstore, str):
            if kvstore.startswith('dist'):
                raise GraphcError(f"Module.init_optimizer: kvstore {kvstore!r} is not supported by Module (use "
                                  "gluon.Trainer for distributed training)")
            if len(self._context) == 1:
                return None, False
            kvstore = kvs.create(kvstore)
        return kvstore, bool(config.update_on_kvstore())

    def borrow_optimizer(self, shared_module):
        """Use shared_module's optimizer, updater and kvstore (the buckets of a BucketingModule)."""
        self._optimizer, self._updater = shared_module._optimizer, shared_module._updater
        self._kvstore, self._update_on_kvstore = shared_module._kvstore, shared_module._update_on_kvstore
        self.optimizer_initialized = True

    # ------------------------------------------------------------ computation
    def forward(self, data_batch, is_train=None):
        """Load the batch's data (and labels, where given) and run forward; is_train defaults to for_training.
        A batch of other shapes rebinds the executors to them (parameters are kept)."""
        from ..io import DataDesc
        self._need('forward', params=True)
        is_train = self.for_training if is_train is None else is_train
        data = list(data_batch.data)
        if len(data) != len(self._data_names):
            raise GraphcError(f"Module.forward: the batch has {len(data)} data arrays; data_names are "
                              f"{self._data_names}")
        if [tuple(a.shape) for a in data] != [tuple(d.shape) for d in self._data_shapes]:
            new_data = getattr(data_batch, 'provide_data', None) or [
                DataDesc(d.name, a.shape, d.dtype, d.layout) for d, a in zip(self._data_shapes, data)]
            labels = getattr(data_batch, 'label', None)
            new_labels = getattr(data_batch, 'provide_label', None) or (
                [DataDesc(d.name, a.shape, d.dtype, d.layout) for d, a in zip(self._label_shapes, labels)]
                if labels else None)
            self.reshape(new_data, new_labels)
        self._exec_group.forward(data_batch, is_train)

    def reshape(self, data_shapes, label_shapes=None):
        """Rebind to new input shapes, keeping the parameters; labels not given follow the new batch size."""
        from ..io import DataDesc
        self._need('reshape')
        data = _descs(data_shapes, 'data_shapes')
        if label_shapes:
            labels = _descs(label_shapes, 'label_shapes')
        else:
            n = data[0].shape[DataDesc.get_batch_axis(data[0].layout)]
            labels = [DataDesc(d.name, (n,) + tuple(d.shape[1:]), d.dtype, d.layout) for d in self._label_shapes]
        self._exec_group.reshape(data, labels)
        self._data_shapes, self._label_shapes = data, labels

    def backward(self, out_grads=None):
        """Gradients of the outputs (of the last training forward), weighted by out_grads."""
        self._need('backward', params=True)
        self._exec_group.backward(out_grads=out_grads)

    def update(self):
        """One optimizer step: on the kvstore (which sums the contexts' gradients), or here, each context's
        weights with the summed gradients."""
        self._need('update', params=True, optimizer=True)
        if not self.for_training:
            raise GraphcError("Module.update: the module was bound with for_training=False (no gradients)")
        g = self._exec_group
        nd_ = len(self._context)
        for i, n in enumerate(self._param_names):
            grads, weights = g.grad_arrays[i], g.param_arrays[i]
            if not grads or grads[0] is None:
                continue
            if self._update_on_kvstore:
                self._kvstore.pushpull(n, grads, out=weights, priority=-i)
                continue
            if self._kvstore is not None:
                self._kvstore.pushpull(n, grads, priority=-i)  # every context's gradient becomes the sum
            for k, (w, gr) in enumerate(zip(weights, grads)):
                self._updater(i * nd_ + k, gr, w)

    def get_outputs(self, merge_multi_context=True):
        self._need('get_outputs', params=True)
        return self._exec_group.get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        self._need('get_input_grads', params=True)
        return self._exec_group.get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """eval_metric.update_dict with each context's labels and outputs, by name."""
        self._exec_group.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        self._need('install_monitor')
        self._exec_group.install_monitor(mon)

    # ------------------------------------------------------------ files
    def save_optimizer_states(self, fname):
        self._need('save_optimizer_states', optimizer=True)
        updater = self._kvstore._updater if self._update_on_kvstore else self._updater  # one format for both
        with open(fname, 'wb') as f:
            f.write(updater.get_states())

    def load_optimizer_states(self, fname):
        self._need('load_optimizer_states', optimizer=True)
        updater = self._kvstore._updater if self._update_on_kvstore else self._updater
        with open(fname, 'rb') as f:
            updater.set_states(f.read())

    def save_checkpoint(self, prefix, epoch, save_optimizer_states=False, remove_amp_cast=True):
        """prefix-symbol.json, prefix-EPOCH.params and, with save_optimizer_states, prefix-EPOCH.states."""
        from ..model import save_checkpoint
        arg_params, aux_params = self.get_params()
        save_checkpoint(prefix, epoch, self._symbol, arg_params, aux_params, remove_amp_cast=remove_amp_cast)
        if save_optimizer_states:
            self.save_optimizer_states(f'{prefix}-{epoch:04d}.states')

    @staticmethod
    def load(prefix, epoch, load_optimizer_states=False, **kwargs):
        """A Module from a checkpoint (kwargs go to Module()); its parameters are set when it is bound, and the
        optimizer states, with load_optimizer_states, when init_optimizer runs."""
        from ..model import load_checkpoint
        sym, args, auxs = load_checkpoint(prefix, epoch)
        mod = Module(symbol=sym, **kwargs)
        mod._arg_params, mod._aux_params = args, auxs
        mod.params_initialized = True
        if load_optimizer_states:
            states = f'{prefix}-{epoch:04d}.states'
            if not os.path.isfile(states):
                raise GraphcError(f"Module.load: no optimizer states file {states}")
            mod._preload_opt_states = states
        return mod
