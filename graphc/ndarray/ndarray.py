"""NDArray: an n-d array on a device, with MXNet's eager semantics.

Every op goes through `invoke`, which runs the registry's NumPy kernel and, under
autograd.record(), puts a node on the tape. Methods and operators are thin over it.
"""
import numbers

import numpy as np

from .. import autograd as _ag
from .. import device as _device
from .. import engine as _engine
from .. import profiler as _profiler
from ..base import BF16 as _BF16, GraphcError, GraphcShapeError, as_dtype, bf16_kernel, fmt_shape
from ..context import Context, current_context
from ..profiler import imperative as _profiling
from ..interpreter import owned as _owned
from ..registry import OPS
from ..runtime import backend as _backend
from ..util import _NP_ARRAY


def _check_ctx(ctx):
    ctx = current_context() if ctx is None else Context(ctx)
    if ctx.device_type == 'gpu':
        from ..context import check
        check(ctx)  # says what is missing (cupy, driver, device)
    return ctx


_HOST_IDS = False  # set once an array is labelled a host context other than cpu(0): ops then pass the label on


def _on_host(nd, ctx):
    """Label a host NDArray with its context (cpu(1), cpu_pinned(0), ...): as in MXNet, every cpu id is the
    host, and the label says which copy of a parameter an array belongs to. Returns nd."""
    global _HOST_IDS
    if ctx.device_type != 'gpu' and (ctx.device_id or ctx.device_type != 'cpu'):
        _HOST_IDS = True
        nd._hctx = ctx
    return nd


_SPARSE = None  # (BaseSparseNDArray, sparse_invoke) once a sparse array exists: until then one global lookup per op
_GPU_LIVE = False  # set once an array lives on a GPU: until then the CPU path pays one global lookup per op


def _placed(a, ctx):
    """A fresh copy of buffer a (host or device) on ctx."""
    if ctx.device_type == 'gpu':
        global _GPU_LIVE
        _GPU_LIVE = True
        return _device.to_device(a, ctx.device_id)
    return a.copy() if _device.device_id(a) is None else _device.to_host(a)


class _CopyCtx:
    """The tape op of a copy to another device (as_in_context, copyto): the gradient is copied back to the
    source's device, so gradients flow across devices as in MXNet."""
    kind, differentiable, mode_dependent, aux_inputs, nograd_inputs = 'opaque', True, False, (), frozenset()

    def __init__(self, src):
        self.src, self.name = src, f"_copyto({src})"

    def grad(self, F, attrs, xs, ys, dys):
        return [NDArray(_placed(dys[0]._data, self.src))]


def _recorded_copy(src, out):
    """Put out, a copy of src on another device, on the tape when src is recorded."""
    if src._ag is not None and _ag.is_recording():
        _ag.record_op(_CopyCtx(src.context), {}, [src], [src._data], [out], (out._data,))
    return out


def _new(a, ctx):
    """An NDArray of host array a on ctx (a itself on the cpu)."""
    return _on_host(NDArray(a), ctx) if ctx.device_type != 'gpu' else NDArray(_placed(a, ctx))


def invoke(op, inputs, attrs, name=None):
    """Run `op` eagerly on NDArrays; record it when autograd is recording. Returns NDArray or list.
    With a Symbol among the inputs (tracing), it adds a graph node instead."""
    if _SPARSE is not None and any(isinstance(x, _SPARSE[0]) for x in inputs):
        return _SPARSE[1](op, inputs, attrs, name)
    if _GPU_LIVE and all(type(x) is NDArray for x in inputs):  # (else tracing, or a bad input: see below)
        dev = _device.placement(op, inputs)
        if dev is not None:
            return _device_invoke(op, inputs, attrs, dev)
    if _engine._eng.lazy and not _ag._st.recording and not op.mode_dependent and \
            all(type(x) is NDArray for x in inputs):
        return _engine.lazy_invoke(op, inputs, attrs)
    if not inputs and op.name.startswith('_random_'):  # a sampler while tracing is a graph node, not a constant
        from ..symbol.symbol import current_trace, sym_invoke
        if current_trace() is not None:
            return sym_invoke(op, inputs, attrs, name)
    try:
        data = [x._data for x in inputs]
    except AttributeError:
        return _symbolic(op, inputs, attrs, name)
    if len(data) > 1:
        d0 = data[0].dtype
        for a in data:
            if a.dtype != d0:
                _dtype_error(op, attrs, data)
    if op.mode_dependent and '_train' not in attrs:  # a backward op gets the mode its forward ran in
        attrs = dict(attrs, _train=_ag._st.training)
    try:
        k = _backend._cur.kernels.get(op) or _backend.current().kernel(op)   # (eager conv, BN, RNN: the CPU
        if _BF16[0] is not None and any(a.dtype == _BF16[0] for a in data):  # backend's kernels)
            k = bf16_kernel(op, k)   # (in float32, rounded back)
        out = k(attrs, *data) if not _profiling else _profiler.call_op(op, k, attrs, data)
    except GraphcError:
        raise
    except (ValueError, IndexError, TypeError) as e:
        op.infer(attrs, [a.shape for a in data], [a.dtype for a in data])  # the clear error, if shapes are wrong
        raise GraphcError(f"{op.name}: {e} (input shapes {', '.join(fmt_shape(a.shape) for a in data)})") from None
    multi = isinstance(out, tuple)
    outs = out if multi else (out,)
    # a kernel may return a view of an input (reshape): the result must not change when the input is written
    res = [NDArray(o) for o in _owned([o if type(o) is np.ndarray else np.asarray(o) for o in outs], data)]
    if _HOST_IDS and inputs:  # MXNet: the outputs are on the first input's context
        h = getattr(inputs[0], '_hctx', None)
        if h is not None:
            for r in res:
                r._hctx = h
    if _ag._st.recording:
        for x in inputs:
            if x._ag is not None:
                _ag.record_op(op, attrs, inputs, data, res, tuple(r._data for r in res))
                break
    return res if multi else res[0]


def _device_invoke(op, inputs, attrs, dev):
    """invoke on gpu(dev): the op runs there (device.run), its outputs stay there; recorded as on the cpu."""
    data = [x._buf for x in inputs]
    if len(data) > 1 and any(a.dtype != data[0].dtype for a in data):
        _dtype_error(op, attrs, data)
    if op.mode_dependent and '_train' not in attrs:
        attrs = dict(attrs, _train=_ag._st.training)
    outs = _device.run(op, attrs, data, dev)
    res = [NDArray(o) for o in outs]
    if _ag._st.recording and any(x._ag is not None for x in inputs):
        _ag.record_op(op, attrs, inputs, data, res, outs)
    return res if callable(op.num_outputs) or op.num_outputs != 1 else res[0]


def _dtype_error(op, attrs, data):
    dts = {a.dtype for i, a in enumerate(data) if i not in op.nograd_inputs}
    if len(dts) > 1 and not op.mixed_dtypes:
        op.infer(attrs, [a.shape for a in data], [a.dtype for a in data])  # raises with op and shapes
        raise GraphcShapeError(f"{op.name}: inputs must share a dtype, got {', '.join(str(a.dtype) for a in data)}")


def _symbolic(op, inputs, attrs, name):
    from ..symbol.symbol import Symbol, sym_invoke
    if any(isinstance(x, Symbol) for x in inputs):
        return sym_invoke(op, inputs, attrs, name)
    bad = next(x for x in inputs if not hasattr(x, '_data'))
    from ..base import GraphcTypeError
    raise GraphcTypeError(f"{op.name}: expected NDArray inputs, got {type(bad).__name__}")


CASTS = [0]   # bumped by Parameter.cast: hybridized graphs keyed on it re-trace
WRITES = [0]  # bumped by every in-place write through the API: cached values derived from arrays check it
BINDS = [0]   # bumped when an array's buffer or a Parameter's arrays are replaced: fast paths that keep the
# addresses of parameters' buffers between calls (CachedGraph._fast_path) check it

TENSORS = ()  # NDArray and Symbol: what binary operators accept as the other operand (set below)


def _op(name, *inputs, **attrs):
    op = OPS[name]
    return invoke(op, inputs, op.canon(attrs))


def _scalar_op(name, x, s):
    return invoke(OPS[name], (x,), {'scalar': float(s)})


def _np():
    from .. import numpy
    return numpy


def _compare(x, y, bname, sname):
    """A comparison: 1/0 in the inputs' dtype (MXNet's NDArray), bool under npx.set_np() (mx.np's)."""
    r = _binary(x, y, bname, sname)
    return r.astype(np.bool_) if _NP_ARRAY[0] and r is not NotImplemented else r


_DIVISIONS = ('broadcast_div', '_div_scalar', '_rdiv_scalar')


def _np_promote(x, y, division):
    """mx.np's mixed precision (MXNet 1.9): an integer or bool with a float is in the float's type, two floats or two
    integers in the wider; a true division of integers or bools (also by a number) is float32."""
    dx = getattr(x, 'dtype', None)
    dy = getattr(y, 'dtype', None) if isinstance(y, TENSORS) else None
    if dx is None or (isinstance(y, TENSORS) and dy is None):
        return x, y  # (a traced symbol whose dtype is not known yet)
    to = dx
    if dy is not None and dy != dx:
        fl = [d for d in (dx, dy) if np.dtype(d).kind == 'f']
        to = fl[0] if len(fl) == 1 else np.promote_types(dx, dy)
    if division and np.dtype(to).kind in 'biu':
        to = np.dtype(np.float32)
    x = x if dx == to else x.astype(to)
    return x, (y if dy is None or dy == to else y.astype(to))


def _binary(x, y, bname, sname, rname=None, elemwise=None):
    if _NP_ARRAY[0] and isinstance(y, TENSORS + (numbers.Number,)):
        x, y = _np_promote(x, y, bname in _DIVISIONS or sname in _DIVISIONS)
    if isinstance(y, TENSORS):
        if elemwise and x.shape == y.shape and x.shape is not None:
            return invoke(OPS[elemwise], (x, y), {})
        return invoke(OPS[bname], (x, y), {})
    if isinstance(y, numbers.Number):
        return _scalar_op(sname, x, y)
    if isinstance(y, np.ndarray):
        return _binary(x, array(y, dtype=x.dtype), bname, sname, rname, elemwise)
    return NotImplemented


class NDArray:
    __slots__ = ('_buf', '_lazy', '_ag', '_grad', '_grad_req', '_fresh_grad', '_hctx', '__weakref__')
    __array_priority__ = 1000.0

    def __init__(self, data):
        self._buf, self._lazy, self._ag, self._grad, self._grad_req = data, None, None, None, 'null'
        self._fresh_grad = False  # set by backward, cleared by Trainer.step: catches stale gradients

    # ------------------------------------------------------------ properties
    @property
    def _data(self):
        """The NumPy buffer; a lazy (pending) array is realized first."""
        b = self._buf
        if b is None:
            _engine.realize(self)
            b = self._buf
        return b

    @_data.setter
    def _data(self, value):
        BINDS[0] += 1
        self._buf, self._lazy = value, None

    @property
    def shape(self):
        b = self._buf
        return b.shape if b is not None else tuple(self._lazy[0].shapes[self._lazy[1]])

    @property
    def dtype(self):
        b = self._buf
        return b.dtype if b is not None else self._lazy[0].dtypes[self._lazy[1]]

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape)))
    @property
    def context(self):
        b = self._buf
        d = None if b is None else _device.device_id(b)
        return (getattr(self, '_hctx', None) or Context('cpu', 0)) if d is None else Context('gpu', d)

    ctx = context
    stype = property(lambda self: 'default')
    grad = property(lambda self: self._grad)
    T = property(lambda self: self.transpose())

    def __repr__(self):
        if _NP_ARRAY[0]:  # mx.np's repr: NumPy's, float32 unmarked, the device when it is not the cpu
            a = _device.to_host(self._data)
            body = repr(a).replace(', dtype=float32)', ')')
            body = body[:-1] + ', dtype=int64)' if a.dtype == np.int64 and 'dtype=' not in body else body
            return body[:-1] + f", ctx={self.context})" if self.context.device_type != 'cpu' else body
        body = np.array2string(_device.to_host(self._data), separator=' ', threshold=200, precision=8)
        return f"\n{body}\n<NDArray {'x'.join(map(str, self.shape)) or 'scalar'} @{self.context}>"

    def __str__(self):
        if _NP_ARRAY[0]:  # mx.np's str: NumPy's, the device appended when it is not the cpu
            body = str(_device.to_host(self._data))
            return body if self.context.device_type == 'cpu' else f"{body} @{self.context}"
        return self.__repr__()

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d NDArray")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        if self.size == 0:  # MXNet: an empty array is False
            return False
        if self.size != 1:  # a ValueError, as in MXNet and NumPy
            raise GraphcShapeError(f"the truth value of an NDArray of shape {self.shape} is ambiguous; use .any() / "
                                   ".all() on .asnumpy(), or reduce it first")
        return bool(self._data)

    def __float__(self):
        return float(self.asscalar())

    def __int__(self):
        return int(self.asscalar())

    def __index__(self):
        if self.size != 1 or self.dtype.kind not in 'iub':
            raise TypeError("only integer scalar NDArrays can be used as an index")
        return int(self._data)

    def __hash__(self):
        return id(self)

    def __getstate__(self):
        """MXNet's pickled state, {'handle': the array's raw bytes} (a sparse array: its fields)."""
        if type(self) is not NDArray:
            return {k: getattr(self, k) for c in type(self).__mro__ for k in getattr(c, '__slots__', ())
                    if k != '__weakref__' and hasattr(self, k)}
        from ..serialization import array_record
        return {'handle': bytearray(array_record(_device.to_host(self._data)))}

    def __setstate__(self, state):
        NDArray.__init__(self, None)
        if 'handle' in state:  # (MXNet's pickles too; an array saved on a GPU loads on the cpu, as there)
            from ..serialization import array_from_record
            self._buf = array_from_record(state['handle'])._data
            return
        for k, v in state.items():
            setattr(self, k, v)

    # ------------------------------------------------------------ conversion
    def asnumpy(self):
        b = self._data
        return b.copy() if _device.device_id(b) is None else _device.to_host(b)

    def __array__(self, dtype=None, copy=None):
        b = _device.to_host(self._data)
        return b if dtype is None else b.astype(dtype)

    def asscalar(self):
        """The value of a size-1 array as a NumPy scalar of its dtype (MXNet's)."""
        if self.size != 1:
            raise GraphcError(f"asscalar() needs an array of size 1, got shape {self.shape}")
        return self.asnumpy().reshape(-1)[0]

    def item(self):
        if self.size != 1:
            raise GraphcError(f"item() needs an array of size 1, got shape {self.shape}")
        return self._data.reshape(()).item()

    def astype(self, dtype, copy=True):
        dt = as_dtype(dtype)
        if dt == self.dtype and not copy:
            return self
        return _op('Cast', self, dtype=str(dt))

    def copy(self, order='C'):
        if order != 'C':  # MXNet's: only row-major arrays
            raise NotImplementedError(f"copy: order={order!r} is not supported; only 'C'")
        return _op('_copy', self)

    def __format__(self, spec):
        """A 0-d or size-1 array formats as its value ('{:.3f}'.format(loss)); a larger one only with an empty
        spec (a TypeError otherwise, as NumPy's and MXNet's)."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError(f"unsupported format string {spec!r} passed to an NDArray of shape {self.shape}")
        return str(self)

    def copyto(self, other):
        """Copy into another NDArray (same shape) or onto a device; returns the target."""
        if isinstance(other, NDArray):
            if other.stype != 'default':  # converted to the target's storage type
                return other._assign(self)
            if other.shape != self.shape:
                raise GraphcShapeError(f"copyto: shape {fmt_shape(self.shape)} into {fmt_shape(other.shape)}")
            _engine.flush()
            WRITES[0] += 1
            src, dst = self._data, other._data
            if _device.device_id(src) != _device.device_id(dst):  # across devices: an explicit copy
                src = _placed(src, other.context)
            with _device.on(dst):
                dst[...] = src
            return _recorded_copy(self, other) if other.context != self.context else other
        ctx = _check_ctx(other)
        return _recorded_copy(self, _on_host(NDArray(_placed(self._data, ctx)), ctx))

    def as_in_context(self, ctx):
        ctx = _check_ctx(ctx)
        return self if ctx == self.context else _recorded_copy(self, _on_host(NDArray(_placed(self._data, ctx)), ctx))

    as_in_ctx = as_in_context

    def detach(self):
        return NDArray(self._data)

    def wait_to_read(self):
        d = _device.device_id(self._data)
        if d is not None:
            _device.synchronize(d)
        return self

    # ------------------------------------------------------------ autograd
    def attach_grad(self, grad_req='write', stype=None):
        if grad_req not in ('write', 'add', 'null'):
            raise GraphcError(f"attach_grad: grad_req must be 'write', 'add' or 'null', got {grad_req!r}")
        self._grad_req = grad_req
        st = stype or self.stype  # MXNet: the gradient's storage type defaults to the array's
        if grad_req != 'null' and st != 'default':
            from .sparse import zeros as _sparse_zeros
            self._grad = _sparse_zeros(st, self.shape, self.context, self.dtype)
        elif grad_req != 'null':
            with _device.on(self._data):
                self._grad = NDArray(np.zeros_like(self._data))
        else:
            self._grad = None
        if grad_req == 'null':
            self._ag = None
        else:
            _ag.mark_leaf(self)

    def backward(self, out_grad=None, retain_graph=False, train_mode=True):
        _ag.backward([self], None if out_grad is None else [out_grad], retain_graph)

    # ------------------------------------------------------------ operators
    def __add__(self, o): return _binary(self, o, 'broadcast_add', '_plus_scalar', elemwise='elemwise_add')
    def __radd__(self, o): return _binary(self, o, 'broadcast_add', '_plus_scalar', elemwise='elemwise_add')
    def __sub__(self, o): return _binary(self, o, 'broadcast_sub', '_minus_scalar', elemwise='elemwise_sub')
    def __rsub__(self, o): return _binary(self, o, None, '_rminus_scalar') if not isinstance(o, TENSORS) else o - self
    def __mul__(self, o): return _binary(self, o, 'broadcast_mul', '_mul_scalar', elemwise='elemwise_mul')
    def __rmul__(self, o): return _binary(self, o, 'broadcast_mul', '_mul_scalar', elemwise='elemwise_mul')
    def __truediv__(self, o): return _binary(self, o, 'broadcast_div', '_div_scalar', elemwise='elemwise_div')
    def __rtruediv__(self, o): return _binary(self, o, None, '_rdiv_scalar') if not isinstance(o, TENSORS) else o / self
    def __pow__(self, o): return _binary(self, o, 'broadcast_power', '_power_scalar')
    def __rpow__(self, o): return _binary(self, o, None, '_rpower_scalar') if not isinstance(o, TENSORS) else o ** self
    def __mod__(self, o): return _binary(self, o, 'broadcast_mod', '_mod_scalar')
    def __rmod__(self, o): return _binary(self, o, None, '_rmod_scalar') if not isinstance(o, TENSORS) else o % self
    def __matmul__(self, o): return _np().matmul(self, o)
    def __rmatmul__(self, o): return _np().matmul(o, self)
    def __neg__(self): return _op('negative', self)
    def __pos__(self): return self
    def __abs__(self): return _op('abs', self)
    def __eq__(self, o): return _compare(self, o, 'broadcast_equal', '_equal_scalar')
    def __ne__(self, o): return _compare(self, o, 'broadcast_not_equal', '_not_equal_scalar')
    def __gt__(self, o): return _compare(self, o, 'broadcast_greater', '_greater_scalar')
    def __ge__(self, o): return _compare(self, o, 'broadcast_greater_equal', '_greater_equal_scalar')
    def __lt__(self, o): return _compare(self, o, 'broadcast_lesser', '_lesser_scalar')
    def __le__(self, o): return _compare(self, o, 'broadcast_lesser_equal', '_lesser_equal_scalar')

    def _inplace(self, result):
        """x += y keeps x's identity (as MXNet): new values written into x, autograd entry moved."""
        if result is NotImplemented:
            return result
        if result.shape != self.shape:
            raise GraphcShapeError(f"in-place update would change shape {fmt_shape(self.shape)} to "
                                   f"{fmt_shape(result.shape)}")
        if _engine._pending:
            _engine.flush()
        WRITES[0] += 1
        if _ag._st.recording and result._ag is not None:
            self._data, self._ag = result._data, result._ag  # the old buffer stays on the tape untouched
        else:
            with _device.on(self._data):
                self._data[...] = result._data
        return self

    def __iadd__(self, o): return self._inplace(self + o)
    def __isub__(self, o): return self._inplace(self - o)
    def __imul__(self, o): return self._inplace(self * o)
    def __itruediv__(self, o): return self._inplace(self / o)

    # ------------------------------------------------------------ indexing
    def __getitem__(self, key):
        from ..indexing import getitem
        return getitem(self, key)

    def __setitem__(self, key, value):
        from ..indexing import setitem
        setitem(self, key, value)

    # ------------------------------------------------------------ shape and math methods
    def reshape(self, *shape, **kw):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        if _NP_ARRAY[0] and not kw:  # mx.np: NumPy's reshape (0 is a size, not MXNet's "copy this dimension")
            return _op('_np_reshape', self, newshape=tuple(shape))
        return _op('Reshape', self, shape=kw.get('shape', shape), reverse=kw.get('reverse', False))


    def transpose(self, *axes, **kw):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return _op('transpose', self, axes=kw.get('axes', axes))

    def _reshaped(self, op, inplace, **attrs):
        """op's result; inplace=True (MXNet's flatten/squeeze/expand_dims): instead a view of this array's buffer in
        the result's shape, so a write to either shows in both (not for a traced Symbol or a recorded array)."""
        out = _op(op, self, **attrs)
        if not inplace or type(self) is not NDArray or (_ag._st.recording and self._ag is not None):
            return out
        b = self._data
        return NDArray(b.reshape(out.shape)) if isinstance(b, np.ndarray) else out

    def squeeze(self, axis=None, inplace=False, **kw):
        return self._reshaped('squeeze', inplace, axis=axis, **kw)

    def flatten(self, inplace=False, **kw):
        return self._reshaped('Flatten', inplace, **kw)

    def expand_dims(self, axis, inplace=False, **kw):
        return self._reshaped('expand_dims', inplace, axis=axis, **kw)

    @staticmethod
    def _basic_indexing_slice_is_contiguous(slc_key, shape):
        """Whether x[slc_key] (one slice per axis of a C-contiguous x of this shape) is contiguous in memory, so
        that MXNet returns it as a view: NumPy's rule (axes of length 1 do not count; an empty result is)."""
        lens = [len(range(*k.indices(n))) for k, n in zip(slc_key, shape)]
        if 0 in lens:
            return True
        want, stride = 1, 1
        for k, n, m in reversed(list(zip(slc_key, shape, lens))):
            if m > 1:
                if k.indices(n)[2] * stride != want:
                    return False
                want *= m
            stride *= n
        return True

    def split(self, num_outputs, axis=1, squeeze_axis=False, **kw):
        return _op('SliceChannel', self, num_outputs=num_outputs, axis=axis, squeeze_axis=squeeze_axis)

    def as_nd_ndarray(self):
        return self

    def as_np_ndarray(self):
        return self  # (mx.np.ndarray is NDArray in graphc)

    def tostype(self, stype):
        """This array in storage type stype: 'default' (dense), 'row_sparse' or 'csr' (a new array)."""
        return cast_storage(self, stype)

    def zeros_like(self): return zeros_like(self)
    def ones_like(self): return ones_like(self)
    def tolist(self): return self._data.tolist()

    def to_dlpack_for_read(self):
        """A DLPack capsule of this array's buffer (MXNet's; nd.from_dlpack or another framework reads it)."""
        _engine.flush()
        if not isinstance(self._data, np.ndarray):
            raise GraphcError("to_dlpack: only arrays in host memory (cpu) can be shared by DLPack in graphc")
        return self._data.__dlpack__()

    to_dlpack_for_write = to_dlpack_for_read  # the capsule shares the buffer either way


# ---------------------------------------------------------------- creation
def array(source, ctx=None, dtype=None):
    """An NDArray from a list, NumPy array or NDArray. MXNet 1.x's rule: the default dtype is the source's if it
    is an NDArray, float32 otherwise (a NumPy int64 array becomes float32; pass dtype= to keep it)."""
    ctx = _check_ctx(ctx)
    if isinstance(source, NDArray):
        dtype = source.dtype if dtype is None else dtype
        source = _device.to_host(source._data)
    return _new(np.array(source, dtype=as_dtype(np.float32 if dtype is None else dtype)), ctx)


TENSORS = (NDArray,)
py_slice = slice  # MXNet's name for the builtin (its module shadows `slice` with the op)
_ag.NDArray = NDArray  # mxnet.autograd's namespace has NDArray (code does `from mxnet.autograd import *`)


def _shape(shape):
    return (int(shape),) if isinstance(shape, numbers.Integral) else tuple(int(d) for d in shape)


def _alloc(ctx, fn, *args):
    """np.<fn>(*args) on the cpu, cupy.<fn>(*args) allocated on a GPU (no host buffer, no copy)."""
    if ctx.device_type != 'gpu':
        return _on_host(NDArray(getattr(np, fn)(*args)), ctx)
    global _GPU_LIVE
    _GPU_LIVE = True
    cp = _device.cupy()
    with cp.cuda.Device(ctx.device_id):
        return NDArray(getattr(cp, fn)(*args))


def _sparse_zeros(stype, shape, ctx, dtype):
    from .sparse import zeros as z
    return z(stype, shape, ctx, dtype)


def empty(shape, ctx=None, dtype=None, stype=None):
    if stype not in (None, 'default'):
        return _sparse_zeros(stype, shape, ctx, dtype)
    return _alloc(_check_ctx(ctx), 'empty', _shape(shape), as_dtype(dtype))


def _into(res, out, kw, name):
    """MXNet's creation functions take out= (the result written into it, and returned); other kwargs are errors."""
    kw.pop('name', None)
    if kw:
        raise GraphcError(f"{name}: unexpected argument(s) {', '.join(map(repr, kw))}")
    if out is None:
        return res
    if not isinstance(out, NDArray) or out.shape != res.shape:
        raise GraphcError(f"{name}: out= must be an NDArray of shape {res.shape}, got "
                          f"{getattr(out, 'shape', type(out).__name__)}")
    out[:] = res
    return out


def zeros(shape, ctx=None, dtype=None, stype=None, out=None, **kw):
    if stype not in (None, 'default'):
        return _into(_sparse_zeros(stype, shape, ctx, dtype), out, kw, 'zeros')
    return _into(_alloc(_check_ctx(ctx), 'zeros', _shape(shape), as_dtype(dtype)), out, kw, 'zeros')


def ones(shape, ctx=None, dtype=None, stype=None, out=None, **kw):
    res = _alloc(_check_ctx(ctx), 'ones', _shape(shape), as_dtype(dtype))
    return _into(res if stype in (None, 'default') else cast_storage(res, stype), out, kw, 'ones')


def full(shape, val, ctx=None, dtype=None, out=None):
    return _into(_alloc(_check_ctx(ctx), 'full', _shape(shape), val, as_dtype(dtype)), out, {}, 'full')


def arange(start, stop=None, step=1.0, repeat=1, ctx=None, dtype=None):
    ctx = _check_ctx(ctx)
    dt = as_dtype(dtype)
    if np.issubdtype(dt, np.integer):  # MXNet: the length from the float range, values start + i*step in dtype
        start, stop = (0, start) if stop is None else (start, stop)
        cast = lambda v: np.asarray(int(v)).astype(dt)  # noqa: E731  (C's cast: -2 is 254 in uint8, as MXNet's)
        a = np.arange(len(np.arange(start, stop, step)), dtype=dt) * cast(step) + cast(start)
    else:
        a = np.arange(start, stop, step).astype(dt)
    return _new(np.repeat(a, repeat) if repeat > 1 else a, ctx)


def eye(N, M=0, k=0, ctx=None, dtype=None, **kwargs):
    """A 2-d array with ones on diagonal k (M=0: square)."""
    return _new(np.eye(N, M or N, k, dtype=as_dtype(dtype)), _check_ctx(ctx))


def linspace(start, stop, num, endpoint=True, ctx=None, dtype=None):
    return _new(np.linspace(start, stop, num, endpoint=endpoint).astype(as_dtype(dtype)), _check_ctx(ctx))


def from_numpy(ndarray, zero_copy=True):
    """An NDArray of a NumPy array, its dtype kept. zero_copy=True (MXNet's default): the NDArray uses the array's
    memory, which must be C-contiguous, and the NumPy array becomes read-only (writes go through the NDArray)."""
    if not zero_copy:
        return NDArray(np.array(ndarray, dtype=as_dtype(ndarray.dtype)))
    if not ndarray.flags['C_CONTIGUOUS']:
        raise ValueError("from_numpy(zero_copy=True) needs a C-contiguous array; use np.ascontiguousarray first, "
                         "or zero_copy=False")
    try:
        ndarray.flags.writeable = True  # (an array locked by an earlier from_numpy: shared again, as MXNet does)
    except ValueError:
        pass  # memory NumPy will not let us write: the NDArray is read-only too
    buf = ndarray.view()  # taken before the lock below, so it stays writable
    ndarray.flags.writeable = False
    return NDArray(buf)


def moveaxis(tensor, source, destination):
    """tensor with axes `source` (an int or a sequence) moved to `destination` (the others keep their order)."""
    def axes_of(a, what):
        a = [a] if isinstance(a, numbers.Integral) else list(a)
        for i in a:
            if not -tensor.ndim <= i < tensor.ndim:
                raise ValueError(f"moveaxis: {what} axis {i} is out of bounds for an array of {tensor.ndim} dims")
        a = [i % tensor.ndim for i in a]
        if len(set(a)) != len(a):
            raise ValueError(f"moveaxis: repeated axis in {what} {a}")
        return a
    src, dst = axes_of(source, 'source'), axes_of(destination, 'destination')
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source {src} and destination {dst} must have the same number of axes")
    order = [i for i in range(tensor.ndim) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return tensor.transpose(order)


def concatenate(arrays, axis=0, always_copy=True):
    """arrays joined along axis (MXNet's nd.concatenate)."""
    if len(arrays) == 1 and not always_copy:
        return arrays[0]
    return _op('Concat', *arrays, dim=axis, num_args=len(arrays))


def zeros_like(x, dtype=None):
    return NDArray(np.zeros_like(x._data, dtype=dtype and as_dtype(dtype)))


def ones_like(x, dtype=None):
    return NDArray(np.ones_like(x._data, dtype=dtype and as_dtype(dtype)))


def full_like(x, val, dtype=None):
    return NDArray(np.full_like(x._data, val, dtype=dtype and as_dtype(dtype)))


def waitall():
    """Finish all pending work: realize every lazy array, wait for every GPU used."""
    _engine.flush()
    _device.synchronize()


_STORAGE_TYPE_STR_TO_ID = {'undefined': -1, 'default': 0, 'row_sparse': 1, 'csr': 2}  # MXNet's names and ids


def cast_storage(data, stype):
    """MXNet's cast_storage: data in storage type 'default' (dense), 'row_sparse' or 'csr' (see nd.sparse)."""
    if stype == 'default' and type(data) is NDArray:
        return data.copy()
    from .sparse import cast_storage as cast
    return cast(data, stype)


# MXNet's fluent methods: x.op(*args, **kwargs) is nd.op(x, *args, **kwargs) (positional attributes in
# MXNet's order, name= and out= included). Installed for the ops the registry has (install_fluent_methods).
FLUENT = ('zeros_like', 'ones_like', 'broadcast_axes', 'repeat', 'pad', 'swapaxes', 'split_v2', 'slice', 'slice_axis',
          'slice_like', 'take', 'one_hot', 'pick', 'sort', 'topk', 'argsort', 'argmax', 'argmax_channel', 'argmin',
          'clip', 'abs', 'sign', 'flatten', 'shape_array', 'size_array', 'expand_dims', 'tile', 'flip',
          'depth_to_space', 'space_to_depth', 'diag', 'sum', 'nansum', 'prod', 'nanprod', 'mean', 'max', 'min',
          'norm', 'round', 'rint', 'fix', 'floor', 'ceil', 'trunc', 'sin', 'cos', 'tan', 'arcsin', 'arccos',
          'arctan', 'degrees', 'radians', 'sinh', 'cosh', 'tanh', 'arcsinh', 'arccosh', 'arctanh', 'exp', 'expm1',
          'log', 'log10', 'log2', 'log1p', 'sqrt', 'rsqrt', 'cbrt', 'rcbrt', 'square', 'reciprocal', 'relu',
          'sigmoid', 'softmax', 'log_softmax', 'softmin', 'broadcast_to', 'broadcast_like', 'reshape_like', 'cumsum',
          'khatri_rao', 'erf')


def install_fluent_methods(nd):
    def method(fname):
        def m(self, *args, **kwargs):
            return getattr(nd, fname)(self, *args, **kwargs)
        m.__name__ = m.__qualname__ = fname
        m.__doc__ = f"x.{fname}(...) is nd.{fname}(x, ...)."
        return m
    for fname in FLUENT:
        if fname not in NDArray.__dict__ and hasattr(nd, fname):
            setattr(NDArray, fname, method(fname))
