"""Parameter, Constant and ParameterDict, as MXNet Gluon 1.x.

A Parameter keeps one copy of its data (an NDArray, with its gradient) per context it was initialized
on: `initialize(ctx=[cpu(0), cpu(1)])` makes two, and `data(ctx)` / `grad(ctx)` pick one, `list_data()` /
`list_grad()` give them all (MXNet's data parallelism in one process: the Trainer sums the gradients of
the copies and updates each). data() without a context gives the copy of the current context (a
HybridBlock enters its input's context), or the only one. Unknown dimensions (0 or None) are filled in
by the block on its first forward, then the deferred initializer runs. With grad_req != 'null' each copy
has attach_grad(grad_req), so autograd.backward writes the parameter's gradient into its .grad.

stype='row_sparse' stores each copy as a RowSparseNDArray: data() refuses it (MXNet's), row_sparse_data(row_id)
pulls the rows row_id names from the Trainer's kvstore into the copy on row_id's context and returns it.
grad_stype='row_sparse' makes the gradients RowSparseNDArrays (Embedding(sparse_grad=True)): the Trainer's
optimizer then updates lazily, only the rows a gradient holds, as MXNet's lazy_update.
"""
import re
import warnings
from collections import OrderedDict

import numpy as np

from .. import autograd as _autograd
from .. import initializer as _init
from ..base import DeferredInitializationError, GraphcError, GraphcShapeError, as_dtype, fmt_shape
from ..context import Context, current_context
from .. import device as _dev
from ..ndarray.ndarray import NDArray, BINDS, CASTS, WRITES, _check_ctx, _on_host, _placed, array as _array

_GRAD_REQS = ('write', 'add', 'null')
_STYPES = ('default', 'row_sparse', 'csr')


class ParameterError(GraphcError, RuntimeError):
    """A parameter used in a way its state does not allow (MXNet raises RuntimeError for these)."""


def _norm_shape(shape):
    if shape is None:
        return None
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    return tuple(0 if d is None or d < 0 else int(d) for d in shape)


def _known(shape):
    return shape is not None and all(d > 0 for d in shape)


def _ctx_list(ctx):
    if ctx is None:
        return [_check_ctx(None)]
    ctxs = [ctx] if isinstance(ctx, (Context, str)) else list(ctx)
    if not ctxs:
        raise GraphcError("a parameter needs at least one context, got an empty list")
    return [_check_ctx(c) for c in ctxs]


from ..symbol.symbol import _ts  # noqa: E402  (the trace in progress, if any)


class _Rebinds:
    """Parameter._copies: read as a plain instance attribute (a descriptor without __get__: no cost), and every
    assignment bumps BINDS, so the fast paths that keep the copies' buffers bound between calls re-bind them."""

    def __set__(self, obj, value):
        BINDS[0] += 1
        obj.__dict__['_copies'] = value


class Parameter:
    """A weight of a Block: its data (one copy per context), its gradient and how to initialize and update it."""

    _copies = _Rebinds()

    def __init__(self, name, grad_req='write', shape=None, dtype='float32', lr_mult=1.0, wd_mult=1.0,
                 init=None, allow_deferred_init=False, differentiable=True, stype='default', grad_stype='default'):
        self.name = name
        self._shape = _norm_shape(shape)
        self._dtype = as_dtype(dtype)
        self.lr_mult, self.wd_mult = lr_mult, wd_mult
        self.init = init
        self._allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._copies = None        # one NDArray per context once initialized
        self._ctx_list = None      # the contexts, in order (a context may repeat)
        self._ctx_index = {}       # context -> index of its (first) copy
        self._deferred_init = ()   # (init, ctx, default_init) while waiting for the shape
        self._trainer = None
        for what, st in (('stype', stype), ('grad_stype', grad_stype)):
            if st not in _STYPES:
                raise _StypeError(f"Parameter {name!r}: {what} must be one of {_STYPES}, got {st!r}")
        self._stype, self._grad_stype = stype, grad_stype
        if grad_req not in _GRAD_REQS:
            raise GraphcError(f"Parameter {name!r}: grad_req must be one of {_GRAD_REQS}, got {grad_req!r}")
        self._grad_req = grad_req if differentiable else 'null'

    def __repr__(self):
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype})"

    # ------------------------------------------------------------ attributes
    @property
    def _data(self):
        """MXNet's: the list of copies, one per context; None before initialization."""
        return self._copies

    @property
    def _cur(self):
        """The copy of the current context (the first copy if there is none there); None before init."""
        c = self._copies
        if c is None or len(c) == 1:
            return c and c[0]
        return c[self._ctx_index.get(current_context(), 0)]

    @property
    def _grad(self):
        """MXNet's attribute: the gradient of each copy, or None (grad_req 'null', or not initialized)."""
        if self._copies is None or self._grad_req == 'null':
            return None
        return [a.grad for a in self._copies]

    @property
    def shape(self):
        return self._shape

    @shape.setter
    def shape(self, new_shape):
        new_shape = _norm_shape(new_shape)
        old = self._shape
        if old is not None and (len(old) != len(new_shape) or
                                any(o not in (0, n) for o, n in zip(old, new_shape))):
            raise GraphcShapeError(f"Parameter {self.name!r}: shape {fmt_shape(new_shape)} is incompatible with "
                                   f"its declared shape {fmt_shape(old)}")
        self._shape = new_shape

    @property
    def dtype(self):
        return self._dtype

    @dtype.setter
    def dtype(self, dtype):
        self.cast(dtype)

    @property
    def stype(self):
        return self._stype

    @property
    def grad_req(self):
        return self._grad_req

    @grad_req.setter
    def grad_req(self, req):
        if req not in _GRAD_REQS:
            raise GraphcError(f"Parameter {self.name!r}: grad_req must be one of {_GRAD_REQS}, got {req!r}")
        if not self._differentiable:
            req = 'null'
        if self._grad_req == req:
            return
        self._grad_req = req
        if self._copies is not None:
            self._attach_grads()

    def _set_trainer(self, trainer):
        """Remember the Trainer that updates this parameter (a row_sparse one can have only one)."""
        if self._stype != 'default' and self._trainer is not None and trainer is not None \
                and self._trainer is not trainer:
            raise ParameterError(f"Failed to set the trainer for Parameter {self.name!r} because it was already set. "
                                 f"More than one trainer for a {self._stype} Parameter is not supported.")
        self._trainer = trainer

    # ------------------------------------------------------------ initialization
    def initialize(self, init=None, ctx=None, default_init=_init.Uniform(), force_reinit=False):
        """Create and fill the data, one copy per context of `ctx` (a context or a list; default the current
        one). `init` (or else this parameter's own init) is applied with its _init_weight; with neither,
        `default_init` picks by the name's suffix (bias -> 0, gamma -> 1). Every copy gets the same values."""
        if self._copies is not None and not force_reinit:
            warnings.warn(f"Parameter {self.name!r} is already initialized, ignoring. "
                          "Set force_reinit=True to re-initialize.", stacklevel=2)
            return
        self._copies = None
        if init is None:
            init = self.init
        self._deferred_init = (init, _ctx_list(ctx), default_init)
        if not _known(self._shape):
            if self._allow_deferred_init:
                return
            self._deferred_init = ()
            raise GraphcError(f"Parameter {self.name!r} cannot be initialized: its shape "
                              f"{self._shape if self._shape is None else fmt_shape(self._shape)} is not fully "
                              "known and deferred initialization is not allowed for it; give the full shape")
        self._finish_deferred_init()

    def _finish_deferred_init(self):
        """Run the pending initializer now that the shape is known (the block calls this on first forward)."""
        if not self._deferred_init:
            return
        if not _known(self._shape):
            raise DeferredInitializationError(
                f"Parameter {self.name!r} has unknown dimensions in its shape {fmt_shape(self._shape)} that the "
                "first input did not determine; give the full shape (e.g. in_units= / in_channels=)")
        init, ctx, default_init = self._deferred_init
        self._deferred_init = ()
        data = NDArray(np.zeros(self._shape, self._dtype))
        if init is not None:
            _init.create(init)._init_weight(self.name, data)
        else:
            _init.create(default_init)(self.name, data)
        self._init_impl(data, ctx)

    def _init_impl(self, data, ctx):
        """One copy of data (an NDArray) per context; the first context may get data itself."""
        ctx = list(ctx)
        if data.stype != self._stype:
            data = data.tostype(self._stype)
        self._ctx_list = ctx
        self._ctx_index = {}
        for i, c in enumerate(ctx):
            self._ctx_index.setdefault(c, i)
        self._copies = [data.as_in_context(c) if i == 0 else data.copyto(c) for i, c in enumerate(ctx)]
        self._attach_grads()

    def _attach_grads(self):
        for c, a in zip(self._ctx_list, self._copies):
            a.attach_grad(self._grad_req, stype=self._grad_stype)
            if a._grad is not None:
                _on_host(a._grad, c)

    def _load_init(self, data, ctx=None, cast_dtype=False, dtype_source='current'):
        """Set the data from a loaded array; the caller has checked the shape. With cast_dtype, dtype_source
        'current' casts the saved values to this parameter's dtype, 'saved' makes the parameter the file's."""
        data = data.asnumpy() if isinstance(data, NDArray) else np.asarray(data)
        if dtype_source not in ('current', 'saved'):
            raise GraphcError(f"dtype_source must be 'current' or 'saved', got {dtype_source!r}")
        if cast_dtype and dtype_source == 'saved' and data.dtype != self._dtype:
            self.cast(data.dtype)
        if self._shape is not None:
            self.shape = data.shape
        else:
            self._shape = tuple(data.shape)
        if data.dtype != self._dtype:
            if not cast_dtype:
                raise GraphcError(f"Parameter {self.name!r}: dtype {self._dtype} but the saved array is "
                                  f"{data.dtype}; pass cast_dtype=True to cast it")
            data = data.astype(self._dtype)
        if self._copies is None:
            ctx = self._deferred_init[1] if self._deferred_init and ctx is None else _ctx_list(ctx)
            self._deferred_init = ()
            self._init_impl(NDArray(np.array(data, dtype=self._dtype)), ctx)
        else:
            self.set_data(data)

    def reset_ctx(self, ctx):
        """Move the copies to the contexts of `ctx`: the new copies hold the mean of the old ones."""
        ctx = _ctx_list(ctx)
        if self._copies is not None:
            if ctx == self._ctx_list:
                return
            with _autograd.pause():
                self._init_impl(self._reduce(), ctx)
        elif self._deferred_init:
            self._deferred_init = self._deferred_init[:1] + (ctx,) + self._deferred_init[2:]
        else:
            raise GraphcError(f"Cannot reset context for Parameter {self.name!r} because it has not been initialized")

    # ------------------------------------------------------------ access
    def _check_and_get(self):
        if self._copies is not None:
            return self._cur
        if self._deferred_init:
            raise DeferredInitializationError(
                f"Parameter {self.name!r} has not been initialized yet because initialization was deferred "
                f"(shape {fmt_shape(self._shape)} has unknown dimensions); it happens on the first forward pass. "
                "Pass one batch through the network first, or give in_units / in_channels to the layer")
        raise GraphcError(f"Parameter {self.name!r} has not been initialized; call .initialize() on the block "
                          "(or on collect_params()) before using it")

    def _copy_on(self, ctx):
        """The copy on ctx (None: the current context's, or the only one)."""
        self._check_and_get()
        c = self._copies
        if ctx is None:
            if len(c) == 1:
                return c[0]
            ctx = current_context()
        i = self._ctx_index.get(Context(ctx))
        if i is None:
            raise ParameterError(f"Parameter {self.name!r} was not initialized on context {Context(ctx)}; it was "
                                 f"only initialized on {self._ctx_list} (reset_ctx() moves it)")
        return c[i]

    def _dense_only(self, what):
        if self._stype != 'default':
            raise ParameterError(f"Cannot return a copy of Parameter {self.name!r} via {what}() because its "
                                 f"storage type is {self._stype}; use row_sparse_data() instead")

    def data(self, ctx=None):
        """The copy on ctx (default: the current context's, or the only one)."""
        self._dense_only('data')  # (a hybridized block too: MXNet refuses a row_sparse weight there as well)
        trace = _ts.ctx
        if trace is not None:  # tracing a hybridized block: the parameter is a graph input
            self._check_and_get()
            return trace.param_var(self)
        return self._copy_on(ctx)

    def list_data(self):
        self._dense_only('list_data')
        self._check_and_get()
        return list(self._copies)

    def _sparse_pull(self, what):
        if self._stype != 'row_sparse':
            raise ParameterError(f"Cannot return copies of Parameter {self.name!r} via {what}() because its "
                                 f"storage type is {self._stype}; use data() instead")
        if self._trainer is None:
            raise ParameterError(f"Cannot get row_sparse data for Parameter {self.name!r} when no Trainer is "
                                 "created with it")

    def row_sparse_data(self, row_id):
        """The copy on row_id's context, holding (after a pull from the Trainer's kvstore) the rows in row_id."""
        self._sparse_pull('row_sparse_data')
        out = self._copy_on(row_id.context)
        self._trainer._row_sparse_pull(self, out, row_id)
        return out

    def list_row_sparse_data(self, row_id):
        """Every copy, each holding the rows in row_id."""
        self._sparse_pull('list_row_sparse_data')
        self._check_and_get()
        self._trainer._row_sparse_pull(self, list(self._copies), row_id)
        return list(self._copies)

    def grad(self, ctx=None):
        data = self._copy_on(ctx)
        if self._grad_req == 'null' or data.grad is None:
            raise GraphcError(f"Parameter {self.name!r} has no gradient because its grad_req is 'null'")
        return data.grad

    def list_grad(self):
        self._check_and_get()
        if self._grad_req == 'null':
            raise GraphcError(f"Parameter {self.name!r} has no gradient because its grad_req is 'null'")
        return [a.grad for a in self._copies]

    def list_ctx(self):
        if self._copies is None:
            if self._deferred_init:
                return list(self._deferred_init[1])
            raise GraphcError(f"Parameter {self.name!r} has not been initialized")
        return list(self._ctx_list)

    def set_data(self, data):
        """Overwrite the values of every copy in place (each keeps its identity and its gradient)."""
        arr = data._data if isinstance(data, NDArray) else np.asarray(data)
        self.shape = arr.shape
        if self._copies is None:
            if self._deferred_init:  # MXNet: setting data on a deferred parameter initializes it with it
                init, ctx, _ = self._deferred_init
                self._deferred_init = ()
                self._init_impl(NDArray(np.array(_dev.to_host(arr), dtype=self._dtype)), ctx)
                return
            self._check_and_get()
        if arr.shape != self._copies[0].shape:
            raise GraphcShapeError(f"Parameter {self.name!r}: set_data with shape {fmt_shape(arr.shape)}, "
                                   f"expected {fmt_shape(self._copies[0].shape)}")
        t = self._trainer  # a kvstore that holds the weights must take the new values too
        if t is not None and getattr(t, '_kv_initialized', False) and getattr(t, '_update_on_kvstore', False) \
                and self not in t._params_to_init:
            t._reset_kvstore()
        WRITES[0] += 1
        for a in self._copies:
            if a.stype != 'default':
                a._assign(_dev.to_host(arr))
                continue
            dst = a._data
            with _dev.on(dst):
                dst[...] = arr if _dev.device_id(arr) == _dev.device_id(dst) else _placed(arr, a.context)

    def zero_grad(self):
        for a in self._copies or ():
            if a.grad is not None and a.grad.stype != 'default':
                a.grad[:] = 0  # a sparse gradient: nothing stored
            elif a.grad is not None:
                with _dev.on(a.grad._data):
                    a.grad._data[...] = 0

    def cast(self, dtype):
        CASTS[0] += 1
        self._dtype = as_dtype(dtype)
        if self._copies is None or self._copies[0].dtype == self._dtype:
            return
        self._copies = [a.astype(self._dtype) if a.stype != 'default' else _on_host(NDArray(a._data.astype(
            self._dtype)), c) for a, c in zip(self._copies, self._ctx_list)]
        if self._grad_req != 'null':
            self._attach_grads()

    def _reduce(self):
        """One host copy of the data: the mean of the copies where there are several (MXNet's)."""
        self._check_and_get()
        c = [a._data if _dev.device_id(a._data) is None else _dev.to_host(a._data) for a in self._copies]
        if len(c) == 1:
            return NDArray(c[0].copy())
        return NDArray((np.sum(c, axis=0, dtype=np.float64) / len(c)).astype(c[0].dtype))

    def var(self):
        """This parameter as a Symbol variable, with its shape, dtype, multipliers and initializer."""
        from ..symbol import symbol as _sym
        return _sym.var(self.name, shape=self.shape, dtype=self.dtype, lr_mult=self.lr_mult,
                        wd_mult=self.wd_mult, init=self.init,
                        **({'stype': self._stype} if self._stype != 'default' else {}))


def call_on_input_context(block, args, kwargs, run):
    """Run a block's call in the context of its first input, labelled with a host context other than cpu(0),
    so that data() picks that context's copy of every parameter (MXNet's HybridBlock does `with x.context`);
    the outputs are labelled with it too. A hybridized block refuses inputs on several contexts."""
    ctx = args[0]._hctx
    if block._active:
        ctxs = {a.context for a in args if isinstance(a, NDArray)}
        if len(ctxs) > 1:
            raise GraphcShapeError(f"{block.name}: the inputs are on several contexts ({', '.join(map(str, ctxs))});"
                                   " a hybridized block runs on one: copy them with as_in_context(ctx)")
    if ctx == current_context():
        out = run(*args, **kwargs)
    else:
        with Context(ctx):  # (a fresh one: a Context remembers the one it replaced, so one object never nests)
            out = run(*args, **kwargs)
    for o in (out if isinstance(out, (list, tuple)) else (out,)):
        if type(o) is NDArray and o.context.device_type != 'gpu':
            o._hctx = ctx
    return out


class _StypeError(GraphcError, AssertionError):
    """An unknown storage type (MXNet asserts on it)."""


class Constant(Parameter):
    """A parameter that holds a fixed value and is never updated (grad_req='null')."""

    def __init__(self, name, value):
        if not isinstance(value, NDArray):
            value = _array(value)
        self.value = value
        super().__init__(name, grad_req='null', shape=value.shape, dtype=value.dtype,
                         init=_init.Constant(value.asnumpy()), differentiable=False)

    def __repr__(self):
        return f"Constant {self.name} (shape={self.shape}, dtype={self.dtype})"


class ParameterDict:
    """An ordered name -> Parameter map whose get() adds this dict's prefix (and can share another's)."""

    def __init__(self, prefix='', shared=None):
        self._prefix = prefix
        self._params = OrderedDict()
        self._shared = shared

    prefix = property(lambda self: self._prefix)

    def __repr__(self):
        body = '\n'.join(f"  {v}" for v in self.values())
        return f"{self._prefix + ' ' if self._prefix else ''}(\n{body}\n)"

    def __getitem__(self, key):
        return self._params[key]

    def __contains__(self, key):
        return key in self._params

    def __iter__(self):
        return iter(self._params)

    def __len__(self):
        return len(self._params)

    def keys(self):
        return self._params.keys()

    def values(self):
        return self._params.values()

    def items(self):
        return self._params.items()

    def _get_impl(self, name):
        if name in self._params:
            return self._params[name]
        if self._shared is not None and name in self._shared._params:
            self._params[name] = self._shared._params[name]
            return self._params[name]
        return None

    def get(self, name, **kwargs):
        """The parameter prefix+name, created with kwargs if new; an existing one must agree with them."""
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            param = self._params[name] = Parameter(name, **kwargs)
            return param
        for k, v in kwargs.items():
            if k == 'allow_deferred_init':
                param._allow_deferred_init = param._allow_deferred_init or v
                continue
            have = getattr(param, k, None)
            if have is None:
                setattr(param, k, v)
                continue
            if k == 'shape':
                v = _norm_shape(v)
                if len(v) == len(have) and all(a == b or a == 0 or b == 0 for a, b in zip(v, have)):
                    param._shape = tuple(max(a, b) for a, b in zip(v, have))
                    continue
            elif k == 'dtype' and as_dtype(v) == have:
                continue
            if k == 'init' and hasattr(v, 'dumps') and hasattr(have, 'dumps') and v.dumps() == have.dumps():
                continue  # the same initializer (kind and arguments), as MXNet compares them
            if v is not None and v != have:
                raise GraphcError(f"cannot retrieve Parameter {name!r}: desired {k}={v!r} does not match "
                                  f"the stored {k}={have!r}")
        return param

    def get_constant(self, name, value=None):
        name = self._prefix + name
        param = self._get_impl(name)
        if param is None:
            if value is None:
                raise GraphcError(f"no constant named {name!r}: give a value to create it")
            param = self._params[name] = Constant(name, value)
        elif not isinstance(param, Constant):
            raise GraphcError(f"Parameter {name!r} exists and is not a Constant")
        return param

    def update(self, other):
        for k, v in other.items():
            if k in self._params and self._params[k] is not v:
                raise GraphcError(f"cannot update ParameterDict: a different Parameter named {k!r} is already in it")
        for k, v in other.items():
            self._params[k] = v

    def initialize(self, init=_init.Uniform(), ctx=None, verbose=False, force_reinit=False):
        """Initialize every parameter: `init` is the default for those without their own initializer."""
        for v in self.values():
            v.initialize(None, ctx, init, force_reinit=force_reinit)
            if verbose:
                print(f"Initialized {v.name} {v.shape}")

    def zero_grad(self):
        for v in self.values():
            v.zero_grad()

    def reset_ctx(self, ctx):
        for v in self.values():
            v.reset_ctx(ctx)

    def list_ctx(self):
        """Every context some parameter is on."""
        seen = []
        for v in self.values():
            seen += [c for c in v.list_ctx() if c not in seen]
        return seen

    def setattr(self, name, value):
        """Set an attribute on every parameter, e.g. setattr('grad_req', 'null')."""
        for v in self.values():
            setattr(v, name, value)

    def select(self, pattern):
        pat = re.compile(pattern)
        out = ParameterDict(self._prefix)
        out._params.update((k, v) for k, v in self.items() if pat.match(k))
        return out

    def save(self, filename, strip_prefix=''):
        from ..serialization import save_ndarrays
        arrays = {}
        for p in self.values():
            if not p.name.startswith(strip_prefix):
                raise GraphcError(f"prefix {strip_prefix!r} is to be stripped before saving, but Parameter "
                                  f"{p.name!r} does not start with it")
            arrays[p.name[len(strip_prefix):]] = p._reduce()
        save_ndarrays(filename, arrays)

    def load(self, filename, ctx=None, allow_missing=False, ignore_extra=False, restore_prefix='', cast_dtype=False,
             dtype_source='current'):
        from ..serialization import load_named
        for name in self.keys():
            if not name.startswith(restore_prefix):
                raise GraphcError(f"restore_prefix is {restore_prefix!r} but Parameter {name!r} does not start with it")
        loaded = {restore_prefix + (k[4:] if k.startswith(('arg:', 'aux:')) else k): v
                  for k, v in load_named(filename).items()}
        load_into(dict(self.items()), loaded, filename, ctx, allow_missing, ignore_extra, cast_dtype, dtype_source)


def _brief(names, n=10):
    names = list(names)
    from ..registry import cut
    s = ', '.join(cut(x) for x in names[:n])
    return s + (f", ... ({len(names)} in all)" if len(names) > n else '') if names else 'none'


def load_into(params, loaded, filename, ctx, allow_missing, ignore_extra, cast_dtype, dtype_source='current'):
    """Check everything first (missing, extra, shapes), then set: a failed load changes nothing."""
    missing = [] if allow_missing else [k for k, p in params.items()
                                        if k not in loaded and not any(q is p and j in loaded
                                                                       for j, q in params.items())]
    if missing:
        raise GraphcError(f"load from {filename!r}: parameters missing in the file: {_brief(missing)}; the file has "
                          f"{_brief(loaded)}. Set allow_missing=True to keep their current values")
    extra = [k for k in loaded if k not in params]
    if extra and not ignore_extra:
        raise GraphcError(f"load from {filename!r}: the file has parameters the model does not: {_brief(extra)}; "
                          f"the model has {_brief(params)}. Set ignore_extra=True to skip them")
    bad = []
    for k, v in loaded.items():
        p = params.get(k)
        if p is None:
            continue
        s = p.shape
        if s is not None and (len(s) != v.ndim or any(d not in (0, e) for d, e in zip(s, v.shape))):
            bad.append(f"{k!r}: model {fmt_shape(s)}, file {fmt_shape(v.shape)}")
        elif not cast_dtype and v.dtype != p.dtype:
            bad.append(f"{k!r}: model dtype {p.dtype}, file dtype {v.dtype} (pass cast_dtype=True to cast)")
    if bad:
        raise GraphcShapeError(f"load from {filename!r}: shapes do not match for " + '; '.join(bad))
    for k, v in loaded.items():
        if k in params:
            params[k]._load_init(v, ctx, cast_dtype=cast_dtype, dtype_source=dtype_source)
