"""Block and HybridBlock, as MXNet Gluon 1.x: name prefixes, parameter collection, save/load, errors.

Naming: a block made at top level gets `<classname><n>_` from a process-wide counter; one made
inside `with parent.name_scope():` gets the parent's prefix plus a per-parent counter, so
parameters read like `hybridsequential0_dense0_weight`.
"""
import re
import threading
from collections import OrderedDict

import numpy as np

from .. import autograd, nd, sym
from ..symbol.symbol import current_trace
from .. import initializer as _init
from ..base import GraphcError
from ..ndarray.ndarray import NDArray
from .parameter import Parameter, ParameterDict, load_into

_global_counter = {}
_trace_lock = threading.RLock()  # one trace per cache key when threads call a block at once
_eager = threading.local()  # .on: run hybridized blocks op by op (summary() needs every layer's output)
_eager.on = False


class _BlockScope:
    """The name scope of a block: children made inside it get the block's prefix."""
    _current = threading.local()

    def __init__(self, block):
        self._block, self._counter, self._old = block, {}, None

    @staticmethod
    def create(prefix, params, hint):
        """(prefix, ParameterDict) for a new block named after `hint`."""
        current = getattr(_BlockScope._current, 'value', None)
        if current is None:
            if prefix is None:
                n = _global_counter.get(hint, 0)
                _global_counter[hint] = n + 1
                prefix = f"{hint}{n}_"
            return prefix, ParameterDict(prefix) if params is None else ParameterDict(params.prefix, params)
        if prefix is None:
            n = current._counter.get(hint, 0)
            current._counter[hint] = n + 1
            prefix = f"{hint}{n}_"
        parent = current._block.params
        params = ParameterDict(parent.prefix + prefix, parent._shared) if params is None else \
            ParameterDict(params.prefix, params)
        return current._block.prefix + prefix, params

    def __enter__(self):
        if not self._block._empty_prefix:
            self._old, _BlockScope._current.value = getattr(_BlockScope._current, 'value', None), self
        return self

    def __exit__(self, *exc):
        if not self._block._empty_prefix:
            _BlockScope._current.value = self._old


def _indent(s, n):
    lines = s.split('\n')
    return '\n'.join([lines[0]] + [' ' * n + ln for ln in lines[1:]])


def _shapes(out):
    if isinstance(out, NDArray):
        return out.shape
    if isinstance(out, (list, tuple)):
        return [_shapes(o) for o in out]
    return None


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def detach(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()


class Block:
    """Base class of all layers and models. Subclasses create children and parameters in __init__
    (inside `with self.name_scope():`) and implement forward(*args)."""

    def __init__(self, prefix=None, params=None):
        self._empty_prefix = prefix == ''
        self._prefix, self._params = _BlockScope.create(prefix, params, self._alias())
        self._name = self._prefix[:-1] if self._prefix.endswith('_') else self._prefix
        self._scope = _BlockScope(self)
        self._children = OrderedDict()
        self._reg_params = OrderedDict()
        self._forward_hooks, self._forward_pre_hooks = [], []

    def _alias(self):
        return self.__class__.__name__.lower()

    def __repr__(self):
        body = '\n'.join(f"  ({k}): {_indent(repr(b), 2)}" for k, b in self._children.items())
        return f"{self.__class__.__name__}(\n{body}\n)"

    def __setattr__(self, name, value):
        """Blocks and Parameters assigned as attributes are registered, in assignment order."""
        existing = self.__dict__.get(name)
        if isinstance(existing, (Parameter, Block)) and not isinstance(value, type(existing)):
            raise GraphcError(f"changing attribute {name!r} from {type(existing).__name__} to "
                              f"{type(value).__name__} is not allowed")
        if isinstance(value, Block):
            self.register_child(value, name)
        elif isinstance(value, Parameter):
            if name in self._reg_params and self._reg_params[name] is not value:
                raise GraphcError(f"overriding Parameter attribute {name!r} is not allowed")
            self._reg_params[name] = value
        super().__setattr__(name, value)

    prefix = property(lambda self: self._prefix)
    name = property(lambda self: self._name)
    params = property(lambda self: self._params, doc="This block's own parameters (not its children's).")

    def name_scope(self):
        return self._scope

    def register_child(self, block, name=None):
        if name is None:
            name = str(len(self._children))
        self._children[name] = block

    def register_forward_hook(self, hook):
        """hook(block, inputs, output) after each forward; returns a handle with detach()."""
        self._forward_hooks.append(hook)
        return _HookHandle(self._forward_hooks, hook)

    def register_forward_pre_hook(self, hook):
        """hook(block, inputs) before each forward."""
        self._forward_pre_hooks.append(hook)
        return _HookHandle(self._forward_pre_hooks, hook)

    # ------------------------------------------------------------ parameters
    def _own_params(self):
        """Short name -> Parameter: the attribute-registered ones, plus any got from self.params and
        not assigned to an attribute (keyed by the name without the prefix)."""
        out = OrderedDict(self._reg_params)
        seen = {id(p) for p in out.values()}
        pre = self._params.prefix
        for full, p in self._params.items():
            if id(p) not in seen:
                out[full[len(pre):] if full.startswith(pre) else full] = p
        return out

    def collect_params(self, select=None):
        """This block's and all descendants' parameters; `select` is a regex matched against full names
        (e.g. '.*weight|.*bias')."""
        ret = ParameterDict(self._params.prefix)
        pat = re.compile(select) if select else None
        ret.update({k: v for k, v in self._params.items() if pat is None or pat.match(k)})
        ret.update({p.name: p for p in self._reg_params.values() if pat is None or pat.match(p.name)})
        for child in self._children.values():
            ret.update(child.collect_params(select))
        return ret

    def _collect_params_with_prefix(self, prefix=''):
        """Attribute-path names ('0.weight', 'features.1.gamma') -> Parameter, used by save_parameters."""
        if prefix:
            prefix += '.'
        ret = {prefix + k: v for k, v in self._own_params().items()}
        for name, child in self._children.items():
            ret.update(child._collect_params_with_prefix(prefix + name))
        return ret

    def initialize(self, init=_init.Uniform(), ctx=None, verbose=False, force_reinit=False):
        """Initialize all parameters; `init` is the default for those without their own initializer."""
        self.collect_params().initialize(init, ctx, verbose, force_reinit)

    def zero_grad(self):
        self.collect_params().zero_grad()

    def reset_ctx(self, ctx):
        self.collect_params().reset_ctx(ctx)

    def cast(self, dtype):
        for child in self._children.values():
            child.cast(dtype)
        for p in self._own_params().values():
            p.cast(dtype)

    def apply(self, fn):
        """fn(block) on every descendant, then on self. Returns self."""
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def hybridize(self, active=True, **kwargs):
        for child in self._children.values():
            child.hybridize(active, **kwargs)

    def save_parameters(self, filename, deduplicate=False):
        """Save with MXNet's attribute-path names ('0.weight', '1.gamma') in the .params format."""
        from ..serialization import save_ndarrays
        arrays, seen = {}, set()
        for k, p in self._collect_params_with_prefix().items():
            if deduplicate and id(p) in seen:
                continue
            seen.add(id(p))
            arrays[k] = p._reduce()
        save_ndarrays(filename, arrays)

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False, cast_dtype=False,
                        dtype_source='current'):
        """Load what save_parameters wrote. Missing/extra names and shape mismatches are all reported in
        one error before anything is changed. Files of full parameter names (ParameterDict.save,
        export) are loaded by name with this block's prefix."""
        from ..serialization import load_named
        loaded = load_named(filename)
        params = self._collect_params_with_prefix()
        if not loaded and not params:
            return
        if loaded and not any('.' in k for k in loaded):
            self.collect_params().load(filename, ctx, allow_missing, ignore_extra, self.prefix, cast_dtype)
            return
        load_into(params, loaded, filename, ctx, allow_missing, ignore_extra, cast_dtype)

    # ------------------------------------------------------------ running
    def __call__(self, *args, **kwargs):
        for hook in self._forward_pre_hooks:
            hook(self, args)
        try:
            out = self._dispatch(*args, **kwargs)
        except GraphcError as e:
            # The innermost block names itself and its class; each outer one prepends its name.
            path = getattr(e, '_gc_path', None)
            if path is None:
                e._gc_path, e._gc_msg = [self.name], f"({type(self).__name__}): {e.args[0] if e.args else ''}"
            else:  # the child's name relative to ours: hybridsequential0_dense1 -> dense1
                if path[0].startswith(self.prefix) and len(path[0]) > len(self.prefix):
                    path[0] = path[0][len(self.prefix):]
                path.insert(0, self.name)
            e.args = (f"{' > '.join(e._gc_path)} {e._gc_msg}",) + e.args[1:]
            raise
        for hook in self._forward_hooks:
            hook(self, args, out)
        return out

    def _dispatch(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def summary(self, *inputs):
        """Run the inputs through once (not recorded) and print each block's output shape and the
        number of parameters it owns (shared ones counted once)."""
        rows, stack, handles, seen = [], [], [], set()

        def pre(block, args, label):
            stack.append(len(rows))
            rows.append([label, None, block])

        def post(block, args, out):
            rows[stack.pop()][1] = _shapes(out)

        def walk(block, depth, parent_prefix):
            name = block.name[len(parent_prefix):] if block.name.startswith(parent_prefix) else block.name
            label = f"{'  ' * depth}{name or '-'} ({type(block).__name__})"
            handles.append(block.register_forward_pre_hook(lambda b, a: pre(b, a, label)))
            handles.append(block.register_forward_hook(post))
            for c in block._children.values():
                walk(c, depth + 1, block.prefix)
        walk(self, 0, '')
        _eager.on = True  # hooks see every layer only when the blocks run op by op
        try:
            with autograd.pause():
                self(*inputs)
        finally:
            _eager.on = False
            for h in handles:
                h.detach()
        for r in rows:  # counted after the run: deferred shapes are known by now
            n = 0
            for p in r[2]._own_params().values():
                if id(p) not in seen and p.shape:
                    seen.add(id(p))
                    n += int(np.prod(p.shape))
            r[2] = n
        rows.insert(0, ['Input', _shapes(list(inputs)) if len(inputs) > 1 else _shapes(inputs[0]), 0])
        w0 = max(24, max(len(r[0]) for r in rows) + 2)
        w1 = max(16, max(len(str(r[1])) for r in rows) + 2)
        allp = list(self.collect_params().values())
        size = lambda ps: sum(int(np.prod(p.shape)) for p in ps if p.shape)  # noqa: E731
        trainable = size(p for p in allp if p.grad_req != 'null')
        width = w0 + w1 + 12
        lines = ['-' * width, f"{'Layer (type)':<{w0}}{'Output Shape':>{w1}}{'Param #':>12}", '=' * width]
        lines += [f"{label:<{w0}}{str(shape):>{w1}}{n:>12}" for label, shape, n in rows]
        lines += ['=' * width, f"Total params: {size(allp)}", f"Trainable params: {trainable}",
                  f"Non-trainable params: {size(allp) - trainable}", '-' * width]
        print('\n'.join(lines))


class HybridBlock(Block):
    """A block written as hybrid_forward(F, x, *args, **params), with F = graphc.nd when eager.
    Layers fill in unknown parameter dimensions from the first input in infer_shape(x, *args)."""

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix, params)
        self._active, self._flags = False, {}

    def register_child(self, block, name=None):
        if not isinstance(block, HybridBlock):
            raise GraphcError(f"children of a HybridBlock must be HybridBlocks too, but {block.name!r} is a "
                              f"{type(block).__name__}; use Block as the parent, or make the child a HybridBlock")
        super().register_child(block, name)

    def hybridize(self, active=True, static_alloc=False, static_shape=False, **kwargs):
        """Trace this block (and its children) into a graph on the next call, and run graphs from then on.
        Graphs are cached per input shapes/dtypes and training mode; `trace_count` counts traces."""
        self._active = active
        self._flags = dict(static_alloc=static_alloc, static_shape=static_shape, **kwargs)
        self._cache, self._last_key = {}, None
        super().hybridize(active, static_alloc=static_alloc, static_shape=static_shape, **kwargs)

    @property
    def trace_count(self):
        return getattr(self, '_trace_count', 0)

    def _dispatch(self, *args, **kwargs):
        trace = current_trace()
        if trace is not None:  # inside a parent's trace: add this block's ops to the graph
            return self._traced_forward(trace, *args, **kwargs)
        if self._active and not kwargs and not getattr(_eager, 'on', False):
            return self._cached_call(args)
        return self.forward(*args, **kwargs)

    def _traced_forward(self, trace, *args, **kwargs):
        trace.blocks.append((self.prefix, self.name))
        try:
            return self.forward(*args, **kwargs)
        finally:
            trace.blocks.pop()

    def _cached_call(self, args):
        from .cached import CachedGraph, cache_key, log_retrace, remember
        plist = getattr(self, '_plist', None)
        if plist is None:
            plist = self._plist = list(self.collect_params().values())
        key = cache_key(args, plist)
        entry = self._cache.get(key)
        if entry is None:
            with _trace_lock:  # the other threads wait, then find the entry
                entry = self._cache.get(key)
                if entry is None:
                    if self._last_key is not None:
                        log_retrace(self, self._last_key, key)
                    entry = remember(self, key, CachedGraph(self, args))
                    self._trace_count = self.trace_count + 1
        self._last_key = key
        return entry(args)

    def export(self, path, epoch=0, remove_amp_cast=True):
        """Write `path-symbol.json` (MXNet's symbol JSON) and `path-%04d.params` (arg:/aux: names) from the
        graph of the last hybridized call. Returns the two file names."""
        from ..graph import Graph
        from ..mxjson import atomic_write, graph_to_json
        from ..serialization import save_ndarrays
        entry = self.cached_graph()
        if entry is None:
            raise GraphcError(f"{self.name}: export needs a traced graph: call block.hybridize() and run forward "
                              "once before calling export()")
        g = Graph(entry.visible)
        used = {id(n) for n in g.inputs}
        aux = g.aux_ids()
        arrays = {}
        for param, v in entry.param_vars:
            if id(v) in used:
                arrays[('aux:' if id(v) in aux else 'arg:') + v.name] = param.data()
        for v in g.inputs:
            if 'value' in v.extra:  # an NDArray captured by the forward: saved as a parameter
                arrays['arg:' + v.name] = NDArray(v.extra['value'])
        sym_file, param_file = f"{path}-symbol.json", f"{path}-{epoch:04d}.params"
        atomic_write(sym_file, graph_to_json(g, [v.name for v in entry.data_vars]).encode())
        save_ndarrays(param_file, arrays)
        return sym_file, param_file

    def cached_graph(self):
        """The graph of the most recent hybridized call (None before the first one)."""
        if not getattr(self, '_cache', None) or self._last_key not in self._cache:
            return None
        return self._cache[self._last_key]

    def infer_shape(self, x, *args):
        """Set this block's unknown parameter dimensions from its inputs (layers override this)."""

    def _param_arrays(self, x, *args):
        own = self._own_params()
        if any(p._data is None and p._deferred_init for p in own.values()):
            self.infer_shape(x, *args)
            for p in own.values():
                p._finish_deferred_init()
        return {k: p.data() for k, p in own.items()}

    def forward(self, x, *args):
        F = sym if current_trace() is not None else nd
        return self.hybrid_forward(F, x, *args, **self._param_arrays(x, *args))

    def hybrid_forward(self, F, x, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement hybrid_forward(F, x, ...)")
