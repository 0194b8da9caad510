"""Module: a Symbol bound to one context, with its parameters, optimizer and MXNet's legacy training API."""
import logging
import os
import warnings

import numpy as np

from ..base import GraphcError
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
            out.append(DataDesc(d[0], d[1]))
        else:
            raise GraphcError(f"Module.bind: {what} must be (name, shape) pairs or DataDescs, got {d!r}")
    return out


class Module(BaseModule):
    """A symbol bound for training or inference: data_names and label_names name its inputs; every other
    argument is a parameter (fixed_param_names ones are not updated). One context only."""

    def __init__(self, symbol, data_names=('data',), label_names=('softmax_label',), logger=logging, context=None,
                 work_load_list=None, fixed_param_names=None, state_names=None, group2ctxs=None,
                 compression_params=None):
        from ..context import Context, cpu
        super().__init__(logger=logger)
        if isinstance(context, (list, tuple)):
            if len(context) != 1:
                raise GraphcError(f"Module: runs on one context; got {len(context)} ({list(context)}): "
                                  "data parallelism over several contexts is not supported")
            context = context[0]
        self._context = Context(context) if context is not None else cpu()
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
        self._exec = None
        self._optimizer = self._updater = self._preload_opt_states = None
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
        return [(n, tuple(o.shape)) for n, o in zip(self._output_names, self._exec.outputs)]

    # ------------------------------------------------------------ setup
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req='write'):
        """Allocate the executor for these input shapes. grad_req applies to the parameters (a string, or a
        dict/list by name); data gets 'write' only with inputs_need_grad, labels and fixed params 'null'."""
        if force_rebind:
            self._exec, self.binded = None, False
        if self.binded:
            self.logger.warning('Already bound, ignoring bind()')
            return
        if shared_module is not None:
            raise GraphcError("Module.bind: shared_module is not supported (one executor per module)")
        if inputs_need_grad and not for_training:
            raise GraphcError("Module.bind: inputs_need_grad=True needs for_training=True")
        data = _descs(data_shapes, 'data_shapes')
        labels = _descs(label_shapes, 'label_shapes')
        if [d.name for d in data] != self._data_names:
            raise GraphcError(f"Module.bind: data_shapes name {[d.name for d in data]}; the module's data_names "
                              f"are {self._data_names}")
        args = self._symbol.list_arguments()
        reqs = {}
        for i, n in enumerate(args):
            if n in self._data_names:
                reqs[n] = 'write' if inputs_need_grad else 'null'
            elif n in self._param_names and n not in self._fixed_param_names and for_training:
                r = grad_req.get(n, 'write') if isinstance(grad_req, dict) else \
                    grad_req[i] if isinstance(grad_req, (list, tuple)) else grad_req
                reqs[n] = r
            else:
                reqs[n] = 'null'
        shapes = {d.name: d.shape for d in data}
        shapes.update({d.name: d.shape for d in labels if d.name in args})
        types = {d.name: d.dtype for d in data + labels if d.name in args}
        self._exec = self._symbol.simple_bind(self._context, grad_req=reqs, type_dict=types, **shapes)
        self._data_shapes, self._label_shapes = data, labels
        self.for_training, self.inputs_need_grad, self.binded = for_training, inputs_need_grad, True
        if self.params_initialized:  # parameters set before (Module.load, or an earlier bind) move in
            self._exec.copy_params_from(self._arg_params, self._aux_params)

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
                    raise GraphcError(f"Module.init_params: {what} has names the symbol lacks: {extra}; pass "
                                      "allow_extra=True to ignore them")
        attrs = self._symbol.attr_dict()
        arg_dict, aux_dict = self._exec.arg_dict, self._exec.aux_dict
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
        self._exec.copy_params_from(self._arg_params, self._aux_params)

    def get_params(self):
        """(arg_params, aux_params): copies of the current values, by name."""
        self._need('get_params', params=True)
        self._arg_params = {n: self._exec.arg_dict[n].copy() for n in self._param_names}
        self._aux_params = {n: self._exec.aux_dict[n].copy() for n in self._aux_names}
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
        if isinstance(kvstore, str) and kvstore.startswith('dist') or \
                kvstore is not None and not isinstance(kvstore, str):
            raise GraphcError(f"Module.init_optimizer: kvstore {kvstore!r} is not supported (one context, local "
                              "updates)")
        batch_size = self._data_shapes[0].shape[self._data_shapes[0].__class__.get_batch_axis(
            getattr(self._data_shapes[0], 'layout', None))] if self._data_shapes and self._data_shapes[0].shape else 1
        idx2name = dict(enumerate(self._param_names))
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
        self._optimizer, self._updater = optimizer, opt.get_updater(optimizer)
        self.optimizer_initialized = True
        if self._preload_opt_states is not None:
            self.load_optimizer_states(self._preload_opt_states)
            self._preload_opt_states = None

    # ------------------------------------------------------------ computation
    def _load(self, names, arrays, what):
        arg_dict = self._exec.arg_dict
        for n, a in zip(names, arrays):
            if n not in arg_dict:
                continue
            if tuple(a.shape) != tuple(arg_dict[n].shape):
                raise GraphcError(f"Module.forward: {what} {n!r} has shape {tuple(a.shape)}, bound "
                                  f"{tuple(arg_dict[n].shape)}")
            arg_dict[n][:] = a

    def forward(self, data_batch, is_train=None):
        """Load the batch's data (and labels, where given) and run forward; is_train defaults to for_training.
        A batch of another shape rebinds the executor to it (parameters are kept)."""
        self._need('forward', params=True)
        is_train = self.for_training if is_train is None else is_train
        data = list(data_batch.data)
        labels = list(data_batch.label) if data_batch.label else []
        if len(data) != len(self._data_names):
            raise GraphcError(f"Module.forward: the batch has {len(data)} data arrays; data_names are "
                              f"{self._data_names}")
        if [tuple(a.shape) for a in data] != [tuple(d.shape) for d in self._data_shapes]:
            self._reshape([(n, a.shape) for n, a in zip(self._data_names, data)],
                          [(n, a.shape) for n, a in zip(self._label_names, labels)] if labels else None)
        self._load(self._data_names, data, 'data')
        if labels:
            self._load(self._label_names, labels, 'label')
        self._exec.forward(is_train=is_train)

    def _reshape(self, data_shapes, label_shapes):
        from ..io import DataDesc
        data = [DataDesc(n, s, d.dtype) for (n, s), d in zip(data_shapes, self._data_shapes)]
        labels = [DataDesc(n, s) for n, s in label_shapes] if label_shapes else \
            [DataDesc(d.name, (data[0].shape[0],) + tuple(d.shape[1:]), d.dtype) for d in self._label_shapes]
        args = set(self._symbol.list_arguments())
        shapes = {d.name: d.shape for d in data + labels if d.name in args}
        self._exec = self._exec.reshape(partial_shaping=True, allow_up_sizing=True, **shapes)
        self._data_shapes, self._label_shapes = data, labels

    def reshape(self, data_shapes, label_shapes=None):
        """Rebind to new input shapes, keeping the parameters."""
        self._need('reshape')
        self._reshape([(d[0], d[1]) for d in data_shapes], [(d[0], d[1]) for d in label_shapes or []] or None)

    def backward(self, out_grads=None):
        """Gradients of the outputs (of the last training forward), weighted by out_grads."""
        self._need('backward', params=True)
        if not self.for_training:
            raise GraphcError("Module.backward: the module was bound with for_training=False")
        self._exec.backward(out_grads=out_grads)

    def update(self):
        """One optimizer step on every parameter that has a gradient."""
        self._need('update', params=True, optimizer=True)
        grads, args = self._exec.grad_dict, self._exec.arg_dict
        for i, n in enumerate(self._param_names):
            if n in grads:
                self._updater(i, grads[n], args[n])

    def get_outputs(self, merge_multi_context=True):
        self._need('get_outputs', params=True)
        return list(self._exec.outputs)

    def get_input_grads(self, merge_multi_context=True):
        self._need('get_input_grads', params=True)
        if not self.inputs_need_grad:
            raise GraphcError("Module.get_input_grads: bind with inputs_need_grad=True first")
        return [self._exec.grad_dict[n] for n in self._data_names]

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        """eval_metric.update_dict with the labels and outputs by name."""
        eval_metric.update_dict(dict(zip(self._label_names, labels or [])),
                                dict(zip(self._output_names, self._exec.outputs)))

    def install_monitor(self, mon):
        self._need('install_monitor')
        mon.install(self._exec)

    # ------------------------------------------------------------ files
    def save_optimizer_states(self, fname):
        self._need('save_optimizer_states', optimizer=True)
        with open(fname, 'wb') as f:
            f.write(self._updater.get_states())

    def load_optimizer_states(self, fname):
        self._need('load_optimizer_states', optimizer=True)
        with open(fname, 'rb') as f:
            self._updater.set_states(f.read())

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
