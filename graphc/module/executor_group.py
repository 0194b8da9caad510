"""DataParallelExecutorGroup (MXNet's mx.module.executor_group): one executor per context, each bound to its
slice of the batch (split along each input's batch axis, by work load); outputs and input gradients are merged
back along the batch axis. A shared group lends its parameter, gradient and aux arrays (BucketingModule)."""
import logging

import numpy as np

from ..base import GraphcError, GraphcTypeError
from ..ndarray.ndarray import NDArray


def _layout_axis(layout):
    return 0 if not layout else layout.find('N')


def _batch_axis(desc):
    return _layout_axis(getattr(desc, 'layout', None))


def _per_device_groups(group2ctxs, n):
    """MXNet's group2ctxs (a dict of group -> context or contexts, or a list of such dicts, one per device)
    as one {group: context} per device. Contexts must be cpu ones: executors run on the host."""
    if group2ctxs is None:
        return [None] * n
    if isinstance(group2ctxs, (list, tuple)):
        if len(group2ctxs) != n:
            raise GraphcError(f"group2ctxs: {len(group2ctxs)} dicts for {n} contexts")
        out = [dict(g) for g in group2ctxs]
    elif isinstance(group2ctxs, dict):
        out = [{} for _ in range(n)]
        for k, v in group2ctxs.items():
            v = [v] * n if not isinstance(v, (list, tuple)) else list(v) * n if len(v) == 1 else list(v)
            if len(v) != n:
                raise GraphcError(f"group2ctxs[{k!r}]: {len(v)} contexts for {n} devices")
            for i in range(n):
                out[i][k] = v[i]
    else:
        raise GraphcTypeError(f"group2ctxs must be a dict or a list of dicts, got {type(group2ctxs).__name__}")
    bad = [c for g in out for c in g.values() if getattr(c, 'device_type', None) != 'cpu']
    if bad:
        raise GraphcError(f"group2ctxs: {bad[0]} is not supported; the executors run on the host (cpu contexts)")
    return out


def split_input_slice(batch_size, work_load_list):
    """The batch split into len(work_load_list) consecutive slices, sized by the work loads."""
    total = float(sum(work_load_list))
    sizes = [int(round(w * batch_size / total)) for w in work_load_list]
    sizes[-1] = batch_size - sum(sizes[:-1])
    if min(sizes) <= 0:
        raise GraphcError(f"the batch of {batch_size} cannot be split over {len(work_load_list)} contexts with "
                          f"work loads {work_load_list}: some slices would be empty")
    ends = np.cumsum(sizes)
    return [slice(int(e - s), int(e)) for s, e in zip(sizes, ends)]


def _slice(arr, sl, axis):
    if axis < 0 or (sl.start == 0 and sl.stop == arr.shape[axis]):
        return arr
    from .. import ndarray as nd
    return nd.slice_axis(arr, axis=axis, begin=sl.start, end=sl.stop)


def _merge(parts, axis):
    if len(parts) == 1:
        return parts[0]
    from .. import ndarray as nd
    return nd.concat(*parts, dim=max(axis, 0))


class DataParallelExecutorGroup:
    """Executors of `symbol` on `contexts`; param_names are the arguments the optimizer updates."""

    def __init__(self, symbol, contexts, workload, data_shapes, label_shapes, param_names, for_training,
                 inputs_need_grad, shared_group=None, logger=logging, fixed_param_names=None, grad_req='write',
                 state_names=None, group2ctxs=None):
        self.symbol, self.contexts, self.logger = symbol, list(contexts), logger
        self.workload = list(workload) if workload else [1] * len(self.contexts)
        if len(self.workload) != len(self.contexts):
            raise GraphcError(f"work_load_list has {len(self.workload)} entries for {len(self.contexts)} contexts")
        self.param_names, self.fixed_param_names = list(param_names), list(fixed_param_names or [])
        self.state_names = list(state_names or [])
        self.for_training, self.inputs_need_grad = for_training, inputs_need_grad
        self.arg_names, self.aux_names = symbol.list_arguments(), symbol.list_auxiliary_states()
        self.output_names = symbol.list_outputs()
        self.output_layouts = [_layout_axis(symbol[i].attr('__layout__')) for i in range(len(self.output_names))]
        self.shared_group, self.group2ctxs = shared_group, group2ctxs
        self._grad_req_arg = grad_req
        self._group2ctx = _per_device_groups(group2ctxs, len(self.contexts))
        self._arg_groups = {n: a['ctx_group'] for n, a in symbol.attr_dict().items() if 'ctx_group' in a}
        self.execs = []
        self.bind_exec(data_shapes, label_shapes, shared_group)

    def _reqs(self, data_names):
        reqs = {}
        for i, n in enumerate(self.arg_names):
            if n in data_names:
                reqs[n] = 'write' if self.inputs_need_grad else 'null'
            elif n in self.param_names and n not in self.fixed_param_names and self.for_training:
                g = self._grad_req_arg
                reqs[n] = g.get(n, 'write') if isinstance(g, dict) else g[i] if isinstance(g, (list, tuple)) else g
            else:
                reqs[n] = 'null'
        return reqs

    def bind_exec(self, data_shapes, label_shapes, shared_group=None, reshape=False):
        """(Re)bind every executor to its slice of these input shapes; parameters are kept on reshape."""
        self.data_shapes, self.label_shapes = list(data_shapes), list(label_shapes or [])
        self.data_names = [d.name for d in self.data_shapes]
        self.label_names = [d.name for d in self.label_shapes]
        descs = self.data_shapes + self.label_shapes
        sizes = {d.shape[_batch_axis(d)] for d in self.data_shapes if _batch_axis(d) >= 0}
        if len(sizes) > 1:
            raise GraphcError(f"the data inputs have different batch sizes {sorted(sizes)}")
        self.batch_size = sizes.pop() if sizes else self.data_shapes[0].shape[0]
        self.slices = split_input_slice(self.batch_size, self.workload)
        reqs = self._reqs(self.data_names)
        old, self.execs = self.execs, []
        for i, ctx in enumerate(self.contexts):
            shapes = {}
            for d in descs:
                if d.name not in self.arg_names:
                    continue
                s, ax = list(d.shape), _batch_axis(d)
                if ax >= 0:
                    s[ax] = self.slices[i].stop - self.slices[i].start
                shapes[d.name] = tuple(s)
            types = {d.name: d.dtype for d in descs if d.name in self.arg_names}
            if reshape:
                self.execs.append(old[i].reshape(partial_shaping=True, allow_up_sizing=True, **shapes))
            else:
                share = shared_group.execs[i] if shared_group is not None else None
                self.execs.append(self._bind_one(ctx, shapes, types, reqs, share, self._group2ctx[i]))
        self.param_arrays = [[e.arg_dict[n] for e in self.execs] for n in self.param_names]
        self.grad_arrays = [[e.grad_dict.get(n) for e in self.execs] for n in self.param_names] \
            if self.for_training else []
        self.aux_arrays = [[e.aux_dict[n] for e in self.execs] for n in self.aux_names]

    def _bind_one(self, ctx, shapes, types, reqs, share, group2ctx):
        """An executor whose parameter, gradient and aux arrays are `share`'s where the shapes agree; the
        arguments of a ctx_group (AttrScope(ctx_group=...)) and their gradients live on group2ctx's context."""
        arg_shapes, _, aux_shapes = self.symbol.infer_shape(**shapes)
        if arg_shapes is None:
            part = self.symbol.infer_shape_partial(**shapes)[0]
            unknown = [k for k, s in zip(self.arg_names, part) if not s or 0 in s]
            raise GraphcError(f"Module.bind: cannot infer the shapes of {unknown} from {shapes}; give them")
        arg_types, _, aux_types = self.symbol.infer_type_partial(**types)
        sa, sg, sx = (share.arg_dict, share.grad_dict, share.aux_dict) if share is not None else ({}, {}, {})

        def take(pool, name, shape, dtype, shared_ok):
            a = pool.get(name) if shared_ok else None
            if a is not None and tuple(a.shape) == tuple(shape):
                return a
            from .. import ndarray as nd
            return nd.zeros(shape, ctx=(group2ctx or {}).get(self._arg_groups.get(name), ctx),
                            dtype=dtype or np.float32)
        args, grads = [], {}
        for n, s, t in zip(self.arg_names, arg_shapes, arg_types):
            shared_ok = n in self.param_names  # data and labels are per-bucket
            args.append(take(sa, n, s, t, shared_ok))
            if reqs[n] != 'null':
                grads[n] = take(sg, n, s, t, shared_ok)
        aux = [take(sx, n, s, t, True) for n, s, t in zip(self.aux_names, aux_shapes, aux_types)]
        return self.symbol.bind(ctx, args, args_grad=grads, grad_req=reqs, aux_states=aux)

    def reshape(self, data_shapes, label_shapes):
        self.bind_exec(data_shapes, label_shapes, reshape=True)

    # ------------------------------------------------------------ parameters
    def set_params(self, arg_params, aux_params, allow_extra=False):
        for e in self.execs:
            e.copy_params_from(arg_params, aux_params, allow_extra_params=allow_extra)

    def get_params(self, arg_params, aux_params):
        """Into arg_params / aux_params: each parameter's mean over the contexts."""
        for names, blocks, out in ((self.param_names, self.param_arrays, arg_params),
                                   (self.aux_names, self.aux_arrays, aux_params)):
            for n, block in zip(names, blocks):
                mean = sum(b.asnumpy().astype(np.float64) for b in block) / len(block)
                out[n][:] = mean.astype(out[n].dtype)

    # ------------------------------------------------------------ computation
    def _load(self, names, arrays, descs, what):
        for n, a, d in zip(names, arrays, descs):
            if n not in self.arg_names:
                continue
            if not isinstance(a, NDArray):
                raise GraphcTypeError(f"Module.forward: {what} {n!r} must be an NDArray, got {type(a).__name__}")
            for e, sl in zip(self.execs, self.slices):
                part, dst = _slice(a, sl, _batch_axis(d)), e.arg_dict[n]
                if tuple(part.shape) != tuple(dst.shape):
                    raise GraphcError(f"Module.forward: {what} {n!r} has shape {tuple(a.shape)}; bound for "
                                      f"{tuple(d.shape)}")
                dst[:] = part

    def forward(self, data_batch, is_train=None):
        self._load(self.data_names, list(data_batch.data), self.data_shapes, 'data')
        labels = getattr(data_batch, 'label', None)  # (a batch may have no labels, or no such attribute)
        if labels and self.label_names:
            self._load(self.label_names, list(labels), self.label_shapes, 'label')
        for e in self.execs:
            e.forward(is_train=bool(is_train))

    def backward(self, out_grads=None):
        if not self.for_training:
            raise GraphcError("Module.backward: the module was bound with for_training=False")
        for e, sl in zip(self.execs, self.slices):
            og = None if out_grads is None else [
                _slice(g, sl, ax) for g, ax in zip(out_grads if isinstance(out_grads, (list, tuple)) else [out_grads],
                                                   self.output_layouts)]
            e.backward(out_grads=og)

    def get_outputs(self, merge_multi_context=True, begin=0, end=None):
        end = len(self.output_names) if end is None else end
        outs = [[e.outputs[i] for e in self.execs] for i in range(begin, end)]
        return [_merge(o, ax) for o, ax in zip(outs, self.output_layouts[begin:end])] if merge_multi_context else outs

    def get_input_grads(self, merge_multi_context=True):
        if not self.inputs_need_grad:
            raise GraphcError("Module.get_input_grads: bind with inputs_need_grad=True first")
        grads = [[e.grad_dict[n] for e in self.execs] for n in self.data_names]
        return [_merge(g, _batch_axis(d)) for g, d in zip(grads, self.data_shapes)] if merge_multi_context else grads

    def update_metric(self, eval_metric, labels, pre_sliced=False):
        for i, (e, sl) in enumerate(zip(self.execs, self.slices)):
            part = labels[i] if pre_sliced else [_slice(a, sl, _batch_axis(d))
                                                 for a, d in zip(labels or [], self.label_shapes or
                                                                 [None] * len(labels or []))]
            eval_metric.update_dict(dict(zip(self.label_names, part)), dict(zip(self.output_names, e.outputs)))

    def install_monitor(self, mon):
        for e in self.execs:
            mon.install(e)
