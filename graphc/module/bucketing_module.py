"""BucketingModule (MXNet's): one Module per bucket key, each built from sym_gen(key) and bound on first use;
every bucket shares the default bucket's parameter and gradient arrays and its optimizer."""
import logging
import warnings

from ..base import GraphcError
from .base_module import BaseModule
from .module import Module


class BucketingModule(BaseModule):
    """sym_gen(bucket_key) -> (symbol, data_names, label_names). A batch's bucket_key (with its provide_data /
    provide_label) picks the module that runs it; default_bucket_key's is bound first and owns the parameters."""

    def __init__(self, sym_gen, default_bucket_key=None, logger=logging, context=None, work_load_list=None,
                 fixed_param_names=None, state_names=None, group2ctxs=None, compression_params=None):
        super().__init__(logger=logger)
        if default_bucket_key is None:
            raise GraphcError("BucketingModule: give default_bucket_key (the bucket that owns the parameters)")
        self._sym_gen, self._default_bucket_key = sym_gen, default_bucket_key
        self._module_args = dict(logger=logger, context=context, work_load_list=work_load_list,
                                 fixed_param_names=fixed_param_names, state_names=state_names, group2ctxs=group2ctxs,
                                 compression_params=compression_params)
        self._buckets, self._curr_module, self._curr_bucket_key = {}, None, None
        self._monitor, self._grad_req = None, 'write'
        self._symbol = self._call_sym_gen(default_bucket_key)[0]

    def _call_sym_gen(self, key):
        out = self._sym_gen(key)
        if not (isinstance(out, tuple) and len(out) == 3):
            raise GraphcError(f"BucketingModule: sym_gen({key!r}) must return (symbol, data_names, label_names)")
        return out

    def _new_module(self, key):
        sym, data_names, label_names = self._call_sym_gen(key)
        return Module(sym, data_names, label_names, **self._module_args)

    # ------------------------------------------------------------ views (of the current bucket)
    data_names = property(lambda self: self._curr_module.data_names if self.binded else
                          list(self._call_sym_gen(self._default_bucket_key)[1]))
    output_names = property(lambda self: self._curr_module.output_names if self.binded else
                            self._call_sym_gen(self._default_bucket_key)[0].list_outputs())
    data_shapes = property(lambda self: self._curr_module.data_shapes)
    label_shapes = property(lambda self: self._curr_module.label_shapes)
    output_shapes = property(lambda self: self._curr_module.output_shapes)

    @property
    def symbol(self):
        return self._curr_module.symbol if self._curr_module is not None else self._symbol

    # ------------------------------------------------------------ setup
    def bind(self, data_shapes, label_shapes=None, for_training=True, inputs_need_grad=False, force_rebind=False,
             shared_module=None, grad_req='write'):
        """Bind the default bucket's module (the others bind on first use, sharing its arrays)."""
        params = self.get_params() if self.params_initialized else None
        if force_rebind:
            self._buckets, self._curr_module, self._curr_bucket_key, self.binded = {}, None, None, False
        if self.binded:
            self.logger.warning('Already bound, ignoring bind()')
            return
        if shared_module is not None:
            raise GraphcError("BucketingModule.bind: shared_module is not supported")
        self.for_training, self.inputs_need_grad, self._grad_req = for_training, inputs_need_grad, grad_req
        mod = self._new_module(self._default_bucket_key)
        mod.bind(data_shapes, label_shapes, for_training, inputs_need_grad, grad_req=grad_req)
        self._curr_module, self._curr_bucket_key = mod, self._default_bucket_key
        self._buckets = {self._default_bucket_key: mod}
        self.binded = True
        if params is not None:
            self.set_params(*params)

    def switch_bucket(self, bucket_key, data_shapes, label_shapes=None):
        """Make bucket_key's module current, building and binding it (sharing the default's arrays) if new."""
        self._need('switch_bucket')
        if bucket_key not in self._buckets:
            if data_shapes is None:
                raise GraphcError(f"BucketingModule: bucket {bucket_key!r} is new; its data_shapes are needed")
            mod = self._new_module(bucket_key)
            mod.bind(data_shapes, label_shapes, self._curr_module.for_training, self._curr_module.inputs_need_grad,
                     shared_module=self._buckets[self._default_bucket_key], grad_req=self._grad_req)
            if self._monitor is not None:
                mod.install_monitor(self._monitor)
            if self.optimizer_initialized:
                mod.borrow_optimizer(self._buckets[self._default_bucket_key])
            self._buckets[bucket_key] = mod
        self._curr_module, self._curr_bucket_key = self._buckets[bucket_key], bucket_key

    def init_params(self, initializer=None, arg_params=None, aux_params=None, allow_missing=False,
                    force_init=False, allow_extra=False):
        if self.params_initialized and not force_init:
            return
        self._need('init_params')
        self._buckets[self._default_bucket_key].init_params(initializer, arg_params, aux_params, allow_missing,
                                                            force_init, allow_extra)
        self.params_initialized = True

    def get_params(self):
        self._need('get_params', params=True)
        return self._curr_module.get_params()

    def init_optimizer(self, kvstore='local', optimizer='sgd', optimizer_params=(('learning_rate', 0.01),),
                       force_init=False):
        self._need('init_optimizer', params=True)
        if self.optimizer_initialized and not force_init:
            warnings.warn("BucketingModule.init_optimizer: optimizer already initialized")
            return
        default = self._buckets[self._default_bucket_key]
        default.init_optimizer(kvstore, optimizer, optimizer_params, force_init=force_init)
        for mod in self._buckets.values():
            if mod is not default:
                mod.borrow_optimizer(default)
        self.optimizer_initialized = True

    # ------------------------------------------------------------ computation
    def forward(self, data_batch, is_train=None):
        self._need('forward', params=True)
        key = getattr(data_batch, 'bucket_key', None)
        self.switch_bucket(self._default_bucket_key if key is None else key,
                           getattr(data_batch, 'provide_data', None), getattr(data_batch, 'provide_label', None))
        self._curr_module.forward(data_batch, is_train=is_train)

    def backward(self, out_grads=None):
        self._curr_module.backward(out_grads=out_grads)

    def update(self):
        self._need('update', params=True, optimizer=True)
        self._curr_module.update()

    def get_outputs(self, merge_multi_context=True):
        return self._curr_module.get_outputs(merge_multi_context=merge_multi_context)

    def get_input_grads(self, merge_multi_context=True):
        return self._curr_module.get_input_grads(merge_multi_context=merge_multi_context)

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        self._curr_module.update_metric(eval_metric, labels, pre_sliced)

    def install_monitor(self, mon):
        self._monitor = mon
        for mod in self._buckets.values():
            mod.install_monitor(mon)
