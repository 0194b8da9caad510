"""Block and HybridBlock, as MXNet Gluon 1.x: name prefixes, parameter collection, save/load, errors.

Naming: a block made at top level gets `<classname><n>_` from a process-wide counter; one made
inside `with parent.name_scope():` gets the parent's prefix plus a per-parent counter, so
parameters read like `hybridsequential0_dense0_weight`.
"""
import re
import sys
import threading
import warnings
from collections import OrderedDict

import numpy as np

from .. import autograd, nd, sym
from ..graph import Graph
from ..symbol.symbol import Symbol, current_trace
from .. import initializer as _init
from ..base import GraphcDynamicShapeError, GraphcError
from ..ndarray.ndarray import NDArray
from .parameter import Parameter, ParameterDict, _known, call_on_input_context, load_into

_ndm = sys.modules[NDArray.__module__]  # (by import name: MXNet's shim rebinds graphc.ndarray.ndarray)
_global_counter = {}
_trace_lock = threading.RLock()  # one trace per cache key when threads call a block at once


class _Eager(threading.local):
    on = False   # run hybridized blocks op by op (summary() needs every layer's output); False on every thread


_eager = _Eager()


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


class _AttributeTypeError(GraphcError, TypeError):
    """A Block or Parameter attribute reassigned to another type (MXNet raises TypeError)."""


class _HybridizedSummaryError(GraphcError, AssertionError):
    """summary() on a hybridized block (MXNet asserts it is not)."""


class _HybridInputError(GraphcError, ValueError):
    """Arguments a hybridized block cannot take (MXNet raises ValueError)."""


def _in_format(args):
    """MXNet's argument structure of a hybridized call: 0 an array, -1 None, a list per list/tuple; other
    values are refused."""
    if isinstance(args, NDArray) or isinstance(args, sym.Symbol):
        return 0
    if args is None:
        return -1
    if isinstance(args, (list, tuple)):
        return [_in_format(a) for a in args]
    raise _HybridInputError(f"when hybridized, the inputs must be (nested lists of) NDArrays or None, but "
                            f"got {args!r} of type {type(args).__name__}")


def _leaves(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _leaves(a)
        else:
            yield a


def _formats_match(old, new):
    """Equal, or equal up to trailing None arguments (left to their defaults)."""
    if old == new:
        return True
    short, long_ = (old, new) if len(old) < len(new) else (new, old)
    return len(short) != len(long_) and long_[:len(short)] == short and all(f == -1 for f in long_[len(short):])


def _has_block(value, registered):
    """Whether a (nested) list/tuple/dict holds a Block that is not among `registered` (ids of children)."""
    if isinstance(value, Block):
        return id(value) not in registered
    if isinstance(value, (list, tuple)):
        return any(_has_block(v, registered) for v in value)
    if isinstance(value, dict):
        return any(_has_block(v, registered) for v in value.values())
    return False


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
            raise _AttributeTypeError(f"changing attribute {name!r} from {type(existing).__name__} to "
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

    def register_op_hook(self, callback, monitor_all=False):
        """callback(node_name, op_name, array) for every op output (and, with monitor_all, every op input) of
        the graphs of this block's hybridized descendants, as MXNet's monitor names them."""
        for child in self._children.values():
            child.register_op_hook(callback, monitor_all)

    def _check_container_with_block(self):
        """Warn about Blocks kept in a plain list/tuple/dict attribute: they are not registered children."""
        registered = {id(c) for c in self._children.values()}
        for k, v in self.__dict__.items():
            if not k.startswith('_') and isinstance(v, (list, tuple, dict)) and _has_block(v, registered):
                warnings.warn(f'"{self.name}.{k}" is an unregistered container with Blocks. Note that Blocks inside '
                              'the list, tuple or dict will not be registered automatically. Make sure to register '
                              'them using register_child() or switching to nn.Sequential/nn.HybridSequential instead.',
                              stacklevel=3)

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
        self._check_container_with_block()
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

    def share_parameters(self, shared):
        """Use the given Parameters in place of this model's own (MXNet 2's API): `shared` maps attribute-path
        names, as save_parameters writes them ('0.weight', 'features.1.gamma'), to Parameters. Names the model
        does not have are warned about. Returns self."""
        if shared is None:
            return self
        if not isinstance(shared, dict):
            raise GraphcError(f"share_parameters: expected a dict of name -> Parameter, got {type(shared).__name__}")
        left = set(shared)
        self._share(shared, left, '')
        for name in sorted(left):
            warnings.warn(f"share_parameters: Parameter name {name!r} is not in the current model", stacklevel=2)
        return self

    def _share(self, shared, left, prefix):
        for name, old in list(self._own_params().items()):
            new = shared.get(prefix + name)
            if new is None:
                continue
            if not isinstance(new, Parameter):
                raise GraphcError(f"share_parameters: {prefix + name!r} must map to a Parameter, got "
                                  f"{type(new).__name__}")
            left.discard(prefix + name)
            self._reg_params[name] = new
            if self.__dict__.get(name) is old:
                object.__setattr__(self, name, new)
            own = self._params._params  # the block's dict would still list the replaced one
            for k in [k for k, v in own.items() if v is old]:
                del own[k]
        if isinstance(self, HybridBlock):
            self._clear_cached_graphs()
        for cname, child in self._children.items():
            child._share(shared, left, prefix + cname + '.')

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

    def save(self, prefix):
        """PREFIX-model.json (the block tree) and PREFIX-model.params, for load() (MXNet 1.9's Block.save)."""
        from .model_file import save_model
        save_model(self, prefix)

    def load(self, prefix):
        """Load what save() wrote into a model built the same way (gluon/model_file.py)."""
        from .model_file import load_model
        load_model(self, prefix)

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

    def save_params(self, filename):
        """Deprecated (MXNet 1.x): the parameters under their full names less this block's prefix; use
        save_parameters, or export to load the model as a SymbolBlock."""
        warnings.warn("save_params is deprecated. Please use save_parameters. Note that if you want load from "
                      "SymbolBlock later, please use export instead.", DeprecationWarning, stacklevel=2)
        self.collect_params().save(filename, strip_prefix=self.prefix)

    def load_params(self, filename, ctx=None, allow_missing=False, ignore_extra=False):
        """Deprecated (MXNet 1.x): load_parameters."""
        warnings.warn("load_params is deprecated. Please use load_parameters.", DeprecationWarning, stacklevel=2)
        self.load_parameters(filename, ctx, allow_missing, ignore_extra)

    def load_parameters(self, filename, ctx=None, allow_missing=False, ignore_extra=False, cast_dtype=False,
                        dtype_source='current'):
        """Load what save_parameters wrote. Missing/extra names and shape mismatches are all reported in
        one error before anything is changed. Files of full parameter names (ParameterDict.save,
        export) are loaded by name with this block's prefix. With cast_dtype, dtype_source='saved' makes
        the parameters take the file's dtypes ('current': the file's values are cast to the model's)."""
        from ..serialization import load_named
        if dtype_source not in ('current', 'saved'):
            raise GraphcError(f"load_parameters: dtype_source must be 'current' or 'saved', got {dtype_source!r}")
        loaded = load_named(filename)
        params = self._collect_params_with_prefix()
        if not loaded and not params:
            return
        if cast_dtype and dtype_source == 'saved':
            by_name = params if any('.' in k for k in loaded) else \
                {k[len(self.prefix):]: p for k, p in self.collect_params().items()}
            for k, v in loaded.items():
                if k in by_name and by_name[k].dtype != v.dtype:
                    by_name[k].cast(v.dtype)
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
        number of parameters it owns (shared ones counted once). As MXNet, the blocks must not be hybridized."""
        hybrid = []
        self.apply(lambda b: hybrid.append(b.name) if getattr(b, '_active', False) else None)
        if hybrid:
            raise _HybridizedSummaryError(f'"{hybrid[-1]}" must not be hybridized to print summary; call '
                                          'hybridize(False) first')
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

    _dynamic = False  # a traced forward met an op with a data-dependent output shape: it runs op by op

    def __init__(self, prefix=None, params=None):
        super().__init__(prefix, params)
        self._active, self._flags = False, {}
        self._op_hook = None  # (callback, monitor_all) from register_op_hook

    def register_op_hook(self, callback, monitor_all=False):
        self._op_hook, self._fast_call = (callback, monitor_all), None   # (hooked calls take the full path)
        super().register_op_hook(callback, monitor_all)

    def register_child(self, block, name=None):
        if not isinstance(block, HybridBlock):
            raise GraphcError(f"children of a HybridBlock must be HybridBlocks too, but {block.name!r} is a "
                              f"{type(block).__name__}; use Block as the parent, or make the child a HybridBlock")
        super().register_child(block, name)
        self._clear_cached_graphs()

    def _clear_cached_graphs(self):
        """A new or replaced child: the traced graphs (and the parameter list) are stale."""
        if getattr(self, '_cache', None):
            self._cache, self._last_key = {}, None
        self._plist = self._in_fmt = self._fast_call = None

    def hybridize(self, active=True, static_alloc=False, static_shape=False, **kwargs):
        """Trace this block (and its children) into a graph on the next call, and run graphs from then on.
        Graphs are cached per input shapes/dtypes and training mode; `trace_count` counts traces."""
        self._active = active
        self._flags = dict(static_alloc=static_alloc, static_shape=static_shape, **kwargs)
        self._cache, self._last_key, self._in_fmt, self._fast_call = {}, None, None, None
        self._dynamic = False
        super().hybridize(active, static_alloc=static_alloc, static_shape=static_shape, **kwargs)
        if active:   # the first call compiles: LLVM's engine and the step interpreter start now, on the compile thread
            from ..runtime.cpu import warm_up
            warm_up()

    @property
    def trace_count(self):
        return getattr(self, '_trace_count', 0)

    _fast_call = None  # the last traced entry's fast path (CachedGraph._fast_path): inference in a few checks

    def __call__(self, *args, **kwargs):
        fast = self._fast_call   # (first, without a hook: Block.__call__'s layers cost a batch-1 MLP 1 us of 17)
        if fast is not None and not kwargs and not _eager.on and not self._forward_pre_hooks and \
                not self._forward_hooks:
            out = fast(args)
            if out is not None:
                return out
        return Block.__call__(self, *args, **kwargs)

    def _dispatch(self, *args, **kwargs):
        fast = self._fast_call   # (without hooks __call__ tried it already: a call it declines takes the full path)
        if fast is not None and not kwargs and not _eager.on and (self._forward_pre_hooks or self._forward_hooks):
            out = fast(args)
            if out is not None:
                return out
        trace = current_trace()
        if trace is not None:  # inside a parent's trace: add this block's ops to the graph
            return self._traced_forward(trace, *args, **kwargs)
        leaves = list(_leaves(args + tuple(kwargs.values())))
        has_nd, has_sym = (any(isinstance(a, t) for a in leaves) for t in (NDArray, sym.Symbol))
        if leaves and not (has_nd or has_sym):  # (a block of no inputs, e.g. a SymbolBlock of constants, is fine)
            raise _HybridInputError(f"in a HybridBlock there must be one NDArray or one Symbol in the "
                                    f"inputs, got {', '.join(type(a).__name__ for a in args) or 'none'}")
        if has_nd and has_sym:
            raise _HybridInputError("a HybridBlock takes NDArrays or Symbols as inputs, not both in one call")
        if has_sym:  # called on symbols (MXNet's symbolic use): their graph
            from .cached import symbol_forward
            return symbol_forward(self, args, kwargs)
        if _ndm._HOST_IDS and args and type(args[0]) is NDArray and getattr(args[0], '_hctx', None) is not None:
            return call_on_input_context(self, args, kwargs, lambda *a, **k: self._run(leaves, *a, **k))
        return self._run(leaves, *args, **kwargs)

    def _run(self, leaves, *args, **kwargs):
        if self._active and not kwargs and not _eager.on and not self._dynamic:
            self._check_cached_inputs(args, leaves)
            return self._cached_call(args)
        return self.forward(*args, **kwargs)

    def _check_cached_inputs(self, args, leaves):
        fmt = _in_format(list(args))
        ctxs = {a.context for a in leaves if isinstance(a, NDArray)}
        if len(ctxs) > 1:
            raise _HybridInputError(f"a hybridized block takes inputs on one context, got "
                                    f"{', '.join(sorted(map(str, ctxs)))}")
        old = getattr(self, '_in_fmt', None)
        if old is None:
            self._in_fmt = fmt
        elif not _formats_match(old, fmt):
            raise _HybridInputError(f"the argument structure {fmt} does not match the cached one {old} "
                                    "(0 an array, -1 None); call hybridize() again to trace anew")

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
                    try:
                        entry = remember(self, key, CachedGraph(self, args))
                    except GraphcDynamicShapeError as e:  # (a data-dependent shape: MXNet runs it op by op too)
                        self._dynamic = True
                        warnings.warn(f"graphc: {self.name} ({type(self).__name__}) runs op by op, not compiled: {e}",
                                      stacklevel=3)
                        return self.forward(*args)
                    f = self._flags
                    entry.inline_limit = None if f.get('static_alloc') else f.get('inline_limit', 2)
                    self._trace_count = self.trace_count + 1
        self._last_key = key
        out = entry(args)
        if self._op_hook is not None:
            _monitor(entry, args, *self._op_hook)
        elif entry._fast is not None and self._fast_call is not entry._fast:
            self._fast_call = entry._fast
        return out

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
        used = set(g.inputs)
        aux = g.aux_vars()
        arrays = {}
        for param, v in entry.param_vars:
            if v in used:
                arrays[('aux:' if v in aux else 'arg:') + v.name] = param.data()
        for v in g.inputs:
            if 'value' in v.extra:  # an NDArray captured by the forward: saved as a parameter
                arrays['arg:' + v.name] = NDArray(v.extra['value'])
        sym_file, param_file = f"{path}-symbol.json", f"{path}-{epoch:04d}.params"
        atomic_write(sym_file, graph_to_json(g, [v.name for v in entry.data_vars]).encode())
        save_ndarrays(param_file, arrays)
        return sym_file, param_file

    def export_onnx(self, path, in_shapes=None, in_types=None, dynamic=False, dynamic_input_shapes=None,
                    opset_version=None):
        """Write the graph of the last hybridized call as ONNX (graphc.onnx.export_model); returns path.
        in_shapes/in_types default to that call's; dynamic=True makes the batch (dim 0) symbolic."""
        from ..onnx import export_block
        return export_block(self, path, in_shapes, in_types, dynamic, dynamic_input_shapes, opset_version)

    def cached_graph(self):
        """The graph of the most recent hybridized call (None before the first one)."""
        if not getattr(self, '_cache', None) or self._last_key not in self._cache:
            return None
        return self._cache[self._last_key]

    def infer_shape(self, x, *args):
        """Set this block's unknown parameter dimensions from its inputs. MXNet's default, which layers replace
        with rules of their own: hybrid_forward runs on symbols of the inputs' shapes, and the graph's shape
        inference (forward, and backward from data to weights: dot, FullyConnected, ...) fills the dims."""
        from ..symbol.infer import infer_shapes
        from ..symbol.symbol import TraceContext, input_var
        todo = [p for p in self._own_params().values() if p._data is None and not _known(p.shape)]
        if not todo:
            return
        ctx = TraceContext(training=autograd.is_training())
        ctx.symbolic = True  # parameters become variables of their (partial) shapes, nothing is initialized
        with ctx:
            ins = [input_var(f"data{i}", a.shape, a.dtype) if isinstance(getattr(a, 'shape', None), tuple) else a
                   for i, a in enumerate((x,) + args)]
            out = self._traced_forward(ctx, *ins)
        outs = [o for o in (out if isinstance(out, (list, tuple)) else [out]) if isinstance(o, Symbol)]
        if not outs:
            return
        g = Graph([e for o in outs for e in o._entries])
        shapes = infer_shapes(g, {n: n.shapes[0] for n in g.inputs if n.shapes})
        for p in todo:
            v = ctx.param_vars.get(id(p))
            s = shapes.get((v[1]._one()[0], 0)) if v is not None else None
            if s is not None and None not in s:
                p.shape = s

    def _param_arrays(self, x, *args):
        own = self._own_params()
        trace = current_trace()
        if trace is not None and trace.symbolic:  # graph only: parameters stay as they are (MXNet's)
            return {k: trace.param_var(p) for k, p in own.items()}
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


def _monitor(entry, args, callback, monitor_all):
    """Run the graph as traced, node by node, and report its op outputs (and inputs) to an op hook. Names are
    MXNet's: `<node>_output`, inputs `<node>_<input name>`; ops that MXNet gives no input names (elementwise
    ones, Activation) have `<node>_input<i>`."""
    from ..interpreter import interpret
    g = entry.traced
    data = [a for a in args if isinstance(a, NDArray)]
    by_name = {v.name: a._data for v, a in zip(entry.data_vars, data)}
    by_name.update({v.name: p.data()._data for p, v in entry.param_vars})
    feed = {v: by_name[v.name] for v in g.inputs if v.name in by_name}
    env = {}
    ops = [n for n in g.nodes if not n.is_var]
    with autograd.pause():
        interpret(g, feed, env=env, keep=ops)
    for n in ops:
        if monitor_all:
            names = n.op.input_names(n.attrs) if n.op.kind == 'opaque' else None
            for i, (src, j) in enumerate(n.inputs):
                label = names[i] if names and i < len(names) else f"input{i}"
                callback(f"{n.name}_{label}", n.op.name, NDArray(env[src][j]))
        outs = env[n]
        nv = n.op.n_visible(n.attrs)
        for j in range(nv):
            callback(f"{n.name}_output" if nv == 1 else f"{n.name}_output{j}", n.op.name, NDArray(outs[j]))
