"""Parameter, Constant and ParameterDict, as MXNet Gluon 1.x.

A Parameter owns one NDArray on one device (cpu, or a gpu: initialized on the host, then copied there;
ctx lists of more than one device are refused). Unknown dimensions (0 or None) are filled in by the block on its first forward, then the
deferred initializer runs. With grad_req != 'null' the array has attach_grad(grad_req), so
autograd.backward writes the parameter's gradient into its .grad.
"""
import re
import warnings
from collections import OrderedDict

import numpy as np

from .. import initializer as _init
from ..base import DeferredInitializationError, GraphcError, GraphcShapeError, as_dtype, fmt_shape
from ..context import Context, cpu
from .. import device as _dev
from ..ndarray.ndarray import NDArray, CASTS, WRITES, _check_ctx, _placed, array as _array

_GRAD_REQS = ('write', 'add', 'null')


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
    return [_check_ctx(c) for c in ctxs]


from ..symbol.symbol import _ts  # noqa: E402  (the trace in progress, if any)


class Parameter:
    """A weight of a Block: its data, its gradient and how to initialize and update it."""

    def __init__(self, name, grad_req='write', shape=None, dtype='float32', lr_mult=1.0, wd_mult=1.0,
                 init=None, allow_deferred_init=False, differentiable=True, stype='default', grad_stype='default'):
        self.name = name
        self._shape = _norm_shape(shape)
        self._dtype = as_dtype(dtype)
        self.lr_mult, self.wd_mult = lr_mult, wd_mult
        self.init = init
        self._allow_deferred_init = allow_deferred_init
        self._differentiable = differentiable
        self._data = None          # NDArray once initialized
        self._deferred_init = ()   # (init, ctx, default_init) while waiting for the shape
        self._ctx = None
        if grad_req not in _GRAD_REQS:
            raise GraphcError(f"Parameter {name!r}: grad_req must be one of {_GRAD_REQS}, got {grad_req!r}")
        self._grad_req = grad_req if differentiable else 'null'

    def __repr__(self):
        return f"Parameter {self.name} (shape={self.shape}, dtype={self.dtype})"

    # ------------------------------------------------------------ attributes
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
        if self._data is not None:
            self._data.attach_grad(req)

    # ------------------------------------------------------------ initialization
    def initialize(self, init=None, ctx=None, default_init=_init.Uniform(), force_reinit=False):
        """Create and fill the data. `init` (or else this parameter's own init) is applied with its
        _init_weight; with neither, `default_init` picks by the name's suffix (bias -> 0, gamma -> 1)."""
        if self._data is not None and not force_reinit:
            warnings.warn(f"Parameter {self.name!r} is already initialized, ignoring. "
                          "Set force_reinit=True to re-initialize.", stacklevel=2)
            return
        self._data = None
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

    def _one_ctx(self, ctx):
        if len(set(ctx)) > 1:
            raise GraphcError(f"Parameter {self.name!r}: one device per parameter, got {list(ctx)} (data parallelism "
                              "over several devices is not supported)")
        self._ctx = list(ctx)
        return self._ctx[0]

    def _init_impl(self, data, ctx):
        self._data = data = data.as_in_context(self._one_ctx(ctx))
        if self._grad_req != 'null':
            data.attach_grad(self._grad_req)

    def _load_init(self, data, ctx=None, cast_dtype=False):
        """Set the data from a loaded array; the caller has checked the shape."""
        data = data.asnumpy() if isinstance(data, NDArray) else np.asarray(data)
        if self._shape is not None:
            self.shape = data.shape
        else:
            self._shape = tuple(data.shape)
        if data.dtype != self._dtype:
            if not cast_dtype:
                raise GraphcError(f"Parameter {self.name!r}: dtype {self._dtype} but the saved array is "
                                  f"{data.dtype}; pass cast_dtype=True to cast it")
            data = data.astype(self._dtype)
        if self._data is None:
            ctx = self._deferred_init[1] if self._deferred_init and ctx is None else _ctx_list(ctx)
            self._deferred_init = ()
            self._init_impl(NDArray(np.array(data, dtype=self._dtype)), ctx)
        else:
            self.set_data(data)

    def reset_ctx(self, ctx):
        ctx = _ctx_list(ctx)
        if self._data is not None:
            moved = self._data.as_in_context(self._one_ctx(ctx))
            if moved is not self._data:  # a new device: the gradient buffer moves too (zeroed)
                self._data = moved
                if self._grad_req != 'null':
                    moved.attach_grad(self._grad_req)
        elif self._deferred_init:
            self._deferred_init = self._deferred_init[:1] + (ctx,) + self._deferred_init[2:]

    # ------------------------------------------------------------ access
    def _check_and_get(self):
        if self._data is not None:
            return self._data
        if self._deferred_init:
            raise DeferredInitializationError(
                f"Parameter {self.name!r} has not been initialized yet because initialization was deferred "
                f"(shape {fmt_shape(self._shape)} has unknown dimensions); it happens on the first forward pass. "
                "Pass one batch through the network first, or give in_units / in_channels to the layer")
        raise GraphcError(f"Parameter {self.name!r} has not been initialized; call .initialize() on the block "
                          "(or on collect_params()) before using it")

    def data(self, ctx=None):
        trace = _ts.ctx
        if trace is not None:  # tracing a hybridized block: the parameter is a graph input
            self._check_and_get()
            return trace.param_var(self)
        d = self._check_and_get()
        if ctx is not None and _check_ctx(ctx) != d.context:
            raise GraphcError(f"Parameter {self.name!r} is on {d.context}, not on {_check_ctx(ctx)}; "
                              "reset_ctx() moves it")
        return d

    def list_data(self):
        return [self._check_and_get()]

    def grad(self, ctx=None):
        data = self._check_and_get()
        if self._grad_req == 'null' or data.grad is None:
            raise GraphcError(f"Parameter {self.name!r} has no gradient because its grad_req is 'null'")
        return data.grad

    def list_grad(self):
        return [self.grad()]

    def list_ctx(self):
        if self._data is None:
            if self._deferred_init:
                return self._deferred_init[1]
            raise GraphcError(f"Parameter {self.name!r} has not been initialized")
        return self._ctx

    def set_data(self, data):
        """Overwrite the values in place (the array keeps its identity and its gradient)."""
        arr = data._data if isinstance(data, NDArray) else np.asarray(data)
        self.shape = arr.shape
        if self._data is None:
            if self._deferred_init:  # MXNet: setting data on a deferred parameter initializes it with it
                init, ctx, _ = self._deferred_init
                self._deferred_init = ()
                self._init_impl(NDArray(np.array(_dev.to_host(arr), dtype=self._dtype)), ctx)
                return
            self._check_and_get()
        if arr.shape != self._data.shape:
            raise GraphcShapeError(f"Parameter {self.name!r}: set_data with shape {fmt_shape(arr.shape)}, "
                                   f"expected {fmt_shape(self._data.shape)}")
        WRITES[0] += 1
        dst = self._data._data
        with _dev.on(dst):
            dst[...] = arr if _dev.device_id(arr) == _dev.device_id(dst) else _placed(arr, self._data.context)

    def zero_grad(self):
        if self._data is not None and self._data.grad is not None:
            with _dev.on(self._data.grad._data):
                self._data.grad._data[...] = 0

    def cast(self, dtype):
        CASTS[0] += 1
        self._dtype = as_dtype(dtype)
        if self._data is None or self._data.dtype == self._dtype:
            return
        self._data = NDArray(self._data._data.astype(self._dtype))
        if self._grad_req != 'null':
            self._data.attach_grad(self._grad_req)

    def _reduce(self):
        return NDArray(self._check_and_get()._data.copy())

    def var(self):
        raise GraphcError("Parameter.var(): symbols arrive with hybridize tracing")


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
        return [cpu()]

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

    def load(self, filename, ctx=None, allow_missing=False, ignore_extra=False, restore_prefix='', cast_dtype=False):
        from ..serialization import load_named
        for name in self.keys():
            if not name.startswith(restore_prefix):
                raise GraphcError(f"restore_prefix is {restore_prefix!r} but Parameter {name!r} does not start with it")
        loaded = {restore_prefix + (k[4:] if k.startswith(('arg:', 'aux:')) else k): v
                  for k, v in load_named(filename).items()}
        load_into(dict(self.items()), loaded, filename, ctx, allow_missing, ignore_extra, cast_dtype)


def _brief(names, n=10):
    names = list(names)
    from ..registry import cut
    s = ', '.join(cut(x) for x in names[:n])
    return s + (f", ... ({len(names)} in all)" if len(names) > n else '') if names else 'none'


def load_into(params, loaded, filename, ctx, allow_missing, ignore_extra, cast_dtype):
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
            params[k]._load_init(v, ctx, cast_dtype=cast_dtype)
