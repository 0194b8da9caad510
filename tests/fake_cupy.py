"""A stand-in for cupy in tests (no GPU here): NumPy underneath, but as strict as cupy where it matters.

- Its `ndarray` is its own type (not a NumPy subclass), with a `.device` (`.id`). `np.asarray(a)` and any
  other implicit conversion raise TypeError, as cupy's do: a value cannot slip back to the host unnoticed.
- NumPy ufuncs and functions on it dispatch through __array_ufunc__ / __array_function__ (as with cupy) and
  return arrays on the current device; a NumPy array operand, or an array on another device than the current
  one (`with cupy.cuda.Device(i)`), raises, as mixing does with cupy.
- cupy.asarray / array / asnumpy copy between host and devices; allocation functions allocate on the current
  device; `cuda.Device(i).synchronize()`, `cuda.runtime.deviceSynchronize()` and `cuda.Stream.null.synchronize()`
  count calls in SYNCS. N_DEVICES devices are visible.
- Kernels: RawModule is absent (NVRTC cannot be imitated); tests give graphc.device a device whose kernels
  run by their NumPy reference (RefDevice) or by the g++ host emulation of the generated CUDA (EmuCupyDevice).
Install with `monkeypatch.setitem(sys.modules, 'cupy', fake_cupy)`.
"""
import numbers
import types

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

N_DEVICES = 2
SYNCS = {}       # device id -> synchronize() calls
COPIES = {'to_device': 0, 'to_host': 0}  # host<->device copies (array/asarray from host data, asnumpy, get)
_current = [0]   # the current device id


class _Device:
    def __init__(self, device_id=None):
        self.id = _current[0] if device_id is None else int(device_id)
        if not 0 <= self.id < N_DEVICES:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")
        self._old = []

    def __enter__(self):
        self._old.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._old.pop()

    def synchronize(self):
        SYNCS[self.id] = SYNCS.get(self.id, 0) + 1

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return self.id


def _device_synchronize():
    _Device().synchronize()


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: N_DEVICES, deviceSynchronize=_device_synchronize),
    Stream=types.SimpleNamespace(null=types.SimpleNamespace(synchronize=_device_synchronize)))


def _unwrap(x):
    """The NumPy value inside x (lists, tuples and dicts walked); NumPy arrays and foreign devices refused."""
    if isinstance(x, ndarray):
        if x.device.id != _current[0]:
            raise ValueError(f"array on device {x.device.id} used while device {_current[0]} is current")
        return x._a
    if isinstance(x, np.ndarray):
        raise TypeError(f"Unsupported type {type(x)}: a NumPy array mixed with device arrays")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v) for k, v in x.items()}
    return x


def _wrap(r):
    if isinstance(r, np.ndarray):
        return ndarray(r)
    if isinstance(r, np.generic):  # cupy gives 0-d arrays, never NumPy scalars
        return ndarray(np.asarray(r))
    if isinstance(r, (list, tuple)):
        return type(r)(_wrap(v) for v in r)
    return r


class ndarray(NDArrayOperatorsMixin):
    """A device array: a NumPy array it never hands out implicitly, and the device it lives on."""
    __slots__ = ('_a', 'device')

    def __init__(self, a):
        self._a, self.device = a, _Device(_current[0])

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: self.transpose())

    def __array__(self, *args, **kw):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kw):
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **_unwrap(kw)))

    def __array_function__(self, func, types, args, kwargs):
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    def __getattr__(self, name):  # methods (reshape, sum, astype, ...) run on the device
        if name.startswith('_') or name in ('ctypes', 'data'):  # no __array_interface__, no host pointer
            raise AttributeError(f"fake_cupy.ndarray has no attribute {name!r}")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)
        return lambda *a, **k: _wrap(getattr(_unwrap(self), name)(*_unwrap(a), **_unwrap(k)))

    def __getitem__(self, key):
        return _wrap(_unwrap(self)[_key(key)])

    def __setitem__(self, key, value):
        _unwrap(self)[_key(key)] = _unwrap(value)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        return bool(self._a)

    def __float__(self):
        return float(self._a)

    def __int__(self):
        return int(self._a)

    def __index__(self):
        return self._a.__index__()

    def __repr__(self):
        return f"fake_cupy.ndarray({self._a!r}, device={self.device.id})"

    def get(self):
        COPIES['to_host'] += 1
        return self._a.copy()


def _key(key):  # cupy accepts host index arrays (it copies them over)
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    return key if isinstance(key, np.ndarray) else _unwrap(key)


# ---------------------------------------------------------------- module functions
def asarray(a, dtype=None):
    if isinstance(a, ndarray) and a.device.id == _current[0]:
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    return array(a, dtype)


def array(a, dtype=None, copy=True):
    if isinstance(a, ndarray):
        a = a._a  # a copy across devices
    elif not isinstance(a, (np.ndarray, numbers.Number, list, tuple)):
        raise TypeError(f"cupy.array: unsupported type {type(a)}")
    else:
        COPIES['to_device'] += 1
    return ndarray(np.array(a, dtype=dtype, copy=True))


def asnumpy(a):
    if isinstance(a, ndarray):
        COPIES['to_host'] += 1
        return a._a.copy()
    return np.asarray(a)


def get_array_module(*args):
    return _module if any(isinstance(a, ndarray) for a in args) else np


def __getattr__(name):  # cupy.empty, zeros, matmul, ascontiguousarray, float32, ...: NumPy's, on the device
    f = getattr(np, name)
    if isinstance(f, type) or not callable(f):
        return f
    return lambda *a, **k: _wrap(f(*_unwrap(a), **_unwrap(k)))


import sys as _sys  # noqa: E402
_module = _sys.modules[__name__]


# ---------------------------------------------------------------- devices for graphc.device (kernels)
def _checked(args, kernel):
    """The NumPy values of a kernel launch's arguments: each must be a device array on the current device."""
    for a in args:
        if not isinstance(a, ndarray):
            raise TypeError(f"{kernel.name}: a launch argument is {type(a).__name__}, not a device array")
    return [_unwrap(a) for a in args]


def ref_device(device_id):
    """A graphc CupyDevice whose kernels run by their NumPy reference (the CUDA source is tested elsewhere)."""
    from graphc.runtime.cuda import CupyDevice

    class RefDevice(CupyDevice):
        def prepare(self, kernels):
            self.prepared = getattr(self, 'prepared', 0) + len(kernels)

        def function(self, kernel):
            def launch(args):
                vals = _checked(args, kernel)
                n = len(kernel.in_shapes)
                for o, r in zip(vals[n:], kernel.reference(vals[:n])):
                    o[...] = r
            return launch
    return RefDevice(device_id)


def emu_device(device_id):
    """A graphc CupyDevice whose kernels are the generated CUDA, built for the host by g++ (runtime/emulate)."""
    from graphc.runtime import emulate
    from graphc.runtime.cuda import CupyDevice

    class EmuCupyDevice(CupyDevice):
        def prepare(self, kernels):  # one g++ build for a plan's kernels
            todo = [k for k in kernels if k.name not in self._modules]
            if todo:
                lib = emulate.library(todo)
                self._modules.update((k.name, lib) for k in todo)

        def function(self, kernel):
            self.prepare([kernel])
            lib = self._modules[kernel.name]
            return lambda args: lib.launch(kernel, _checked(args, kernel))
    return EmuCupyDevice(device_id)


# ---------------------------------------------------------------- cupy.cuda.nccl (for tests under mpirun)
# A device array's `.data.ptr` is a token naming the array (never a host address); the stand-in communicator's
# allReduce looks the arrays up by it and sums their values over the MPI ranks (mpi4py), as NCCL would over
# the ranks' GPUs. NCCL_CALLS counts allReduce calls, by datatype.
_POINTERS = {}
NCCL_CALLS = {}


class _Memory:
    def __init__(self, array):
        self.ptr = id(array)
        _POINTERS[self.ptr] = array


ndarray.data = property(lambda self: _Memory(self))
cuda.Stream.null.ptr = 0


class _NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI
        if not isinstance(commId, bytes) or len(commId) != 128:
            raise TypeError("NcclCommunicator: commId must be the 128 bytes of get_unique_id()")
        self._comm, self._MPI, self._device = MPI.COMM_WORLD.Dup(), MPI, _current[0]
        if (ndev, rank) != (self._comm.Get_size(), self._comm.Get_rank()):
            raise RuntimeError(f"ncclInvalidArgument: ndev {ndev} / rank {rank} vs MPI's "
                               f"{self._comm.Get_size()} / {self._comm.Get_rank()}")

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        src = _POINTERS.pop(sendbuf)
        dst = src if recvbuf == sendbuf else _POINTERS.pop(recvbuf)
        want = {_nccl.NCCL_FLOAT32: np.float32, _nccl.NCCL_FLOAT16: np.float16, _nccl.NCCL_FLOAT64: np.float64}
        if op != _nccl.NCCL_SUM or src.dtype != want[datatype] or src.size != count or dst.size != count:
            raise RuntimeError("ncclInvalidArgument: op, datatype or count do not match the buffers")
        if not src._a.flags.c_contiguous or {src.device.id, dst.device.id, _current[0]} != {self._device}:
            raise RuntimeError("ncclInvalidUsage: buffers must be contiguous, on the communicator's current device")
        out = np.empty_like(src._a)
        self._comm.Allreduce(src._a, out, op=self._MPI.SUM)
        dst._a[...] = out
        NCCL_CALLS[datatype] = NCCL_CALLS.get(datatype, 0) + 1


_nccl = types.SimpleNamespace(NCCL_SUM=0, NCCL_FLOAT16=6, NCCL_FLOAT32=7, NCCL_FLOAT64=8,
                              get_unique_id=lambda: bytes(range(128)), NcclCommunicator=_NcclCommunicator)
cuda.nccl = _nccl


def install_with_nccl(modules):
    """modules['cupy'] (sys.modules, or a monkeypatch's view of it) = this stand-in, with `cupy.cuda.nccl`
    importable (`from cupy.cuda import nccl`)."""
    modules['cupy'], modules['cupy.cuda'], modules['cupy.cuda.nccl'] = _module, cuda, _nccl


# ---------------------------------------------------------------- cupyx.cudnn (CuPy 13's convolution wrappers)
# The three functions runtime/cudnn.py calls, with CuPy 13's signatures, computing with graphc's Convolution
# reference on the NumPy values: the layouts are read as cuDNN reads them (d_layout for x/y, w_layout for the
# filter: NCHW (K, C, h, w) or NHWC (K, h, w, C)), each result written into the output array given, as cupyx does.
# CUDNN_CALLS records each call (name, its arguments); CUDNN_REFUSE(name, pad, stride, dilation, groups) -> True
# makes a call raise CuDNNError(CUDNN_STATUS_NOT_SUPPORTED), as cuDNN does for a configuration it has no kernel for.
CUDNN_CALLS = []
CUDNN_REFUSE = None


class CuDNNError(RuntimeError):
    def __init__(self, status):
        self.status = status
        super().__init__(f"CUDNN_STATUS_NOT_SUPPORTED: {status}")


_cudnn = types.SimpleNamespace(CUDNN_TENSOR_NCHW=0, CUDNN_TENSOR_NHWC=1, CuDNNError=CuDNNError)
cuda.cudnn = _cudnn


def _conv_call(name, arrays, out, geo, kw, compute):
    """Checks as cupyx/cuDNN would, records the call, and writes compute(attrs, NCHW values...) into out[0].
    arrays and out: (array, 'd' data or 'w' filter or 'b' bias); pad, stride, dilation, groups = geo."""
    pad, stride, dilation, groups = geo
    for a, _ in arrays + [out]:
        if not isinstance(a, ndarray) or a.device.id != _current[0]:
            raise TypeError(f"cupyx.cudnn.{name}: arguments must be cupy arrays on the current device")
        if not a._a.flags.c_contiguous:
            raise ValueError('cupyx.cudnn supports c-contiguous arrays only')
    want = {'auto_tune', 'tensor_core', 'd_layout', 'w_layout'} | ({'deterministic'} if 'backward' in name else set())
    if not all(isinstance(t, tuple) and len(t) == 2 for t in (pad, stride, dilation)) or set(kw) != want:
        raise TypeError(f"cupyx.cudnn.{name}: pad, stride, dilation must be 2-tuples; keywords {sorted(kw)}")
    CUDNN_CALLS.append((name, tuple(a.shape for a, _ in arrays), out[0].shape, pad, stride, dilation, groups, kw))
    if CUDNN_REFUSE is not None and CUDNN_REFUSE(name, pad, stride, dilation, groups):
        raise CuDNNError(9)
    from graphc.registry import get
    nhwc = {'d': kw['d_layout'] == 1, 'w': kw['w_layout'] == 1, 'b': False}
    vals = [np.ascontiguousarray(a._a.transpose(0, 3, 1, 2)) if nhwc[k] else a._a for a, k in arrays]
    o, ok = out
    oshape = (o.shape[0], o.shape[3]) + o.shape[1:3] if nhwc[ok] else o.shape
    wshape = oshape if ok == 'w' else next(v.shape for v, (_, k) in zip(vals, arrays) if k == 'w')
    attrs = get('Convolution').canon(dict(kernel=wshape[2:], stride=stride, dilate=dilation, pad=pad,
                                          num_filter=wshape[0], num_group=groups))
    r = compute(attrs, oshape, *vals)
    o._a[...] = r.transpose(0, 2, 3, 1) if nhwc[ok] else r


def _forward(x, W, b, y, pad, stride, dilation, groups, **kw):
    from graphc.registry import get
    arrays = [(x, 'd'), (W, 'w')] + ([(b, 'b')] if b is not None else [])
    _conv_call('convolution_forward', arrays, (y, 'd'), (pad, stride, dilation, groups), kw,
               lambda attrs, _, *v: get('Convolution').ref(dict(attrs, no_bias=b is None), *v))


def _backward_data(W, x, b, y, pad, stride, dilation, groups, **kw):  # x: the output's gradient, y: the data's
    from graphc.registry import get
    if b is not None:
        raise TypeError("convolution_backward_data: graphc passes no bias")
    _conv_call('convolution_backward_data', [(W, 'w'), (x, 'd')], (y, 'd'), (pad, stride, dilation, groups), kw,
               lambda attrs, shape, w, gy: get('_backward_Convolution').ref(attrs, gy, np.zeros(shape, gy.dtype), w)[0])


def _backward_filter(x, gy, gW, pad, stride, dilation, groups, **kw):
    from graphc.registry import get
    _conv_call('convolution_backward_filter', [(x, 'd'), (gy, 'd')], (gW, 'w'), (pad, stride, dilation, groups), kw,
               lambda attrs, shape, xv, g: get('_backward_Convolution').ref(attrs, g, xv, np.zeros(shape, xv.dtype))[1])


cupyx_cudnn = types.SimpleNamespace(convolution_forward=_forward, convolution_backward_data=_backward_data,
                                    convolution_backward_filter=_backward_filter)


def install_with_cudnn(modules):
    """modules (sys.modules, or a monkeypatch's view of it): cupy = this stand-in with `cupyx.cudnn` and
    `cupy.cuda.cudnn` importable."""
    modules['cupy'], modules['cupy.cuda'], modules['cupy.cuda.cudnn'] = _module, cuda, _cudnn
    modules['cupyx'] = types.SimpleNamespace(cudnn=cupyx_cudnn)
    modules['cupyx.cudnn'] = cupyx_cudnn
# ================================================================ RawModule, streams and CUDA graphs (s7/gputrain)
# - `.data.ptr` is the address of the array's first element (as cupy's device pointer), so that kernels can
#   read tables of pointers (runtime/cuda_update.py); the NCCL stand-in above looks arrays up by it still.
# - RawModule(code=..., options=...).get_function(name)(grid, block, args): the CUDA source built for the host by
#   g++ with runtime/cuda_emu.h, as runtime/emulate.py builds the generated kernels; the kernel's signature is
#   read from the source. Array arguments must be device arrays on the current device; scalars must be NumPy
#   scalars of the parameter's C type (cupy passes a NumPy scalar's bytes as they are, a Python int as int64 and a
#   Python float as double: a mismatch is garbage on a device, so it raises here).
# - Streams: `with cuda.Stream():` makes it current; begin_capture()/end_capture() -> Graph; Graph.launch(stream).
#   While the current stream captures, work is recorded, not run: kernel launches and in-place array operations
#   are deferred; an operation giving a new array runs for its shape and its result is poisoned (NaN; 0 for
#   integers), its computation deferred. launch() replays the records in order (GRAPHS counts captures,
#   launches and replayed records), so a result read after a replay was computed by the replay. Host<->device
#   copies and reading a value on the host while capturing raise, as with CUDA; another stream's work while a
#   capture is active raises (cudaErrorStreamCaptureImplicit).
# - MemoryPool / using_allocator: a capture's allocations must come from an allocator of its own (graphc's
#   rule, not cupy's: memory the shared pool hands out again after the capture would be overwritten by every
#   replay); an allocation while capturing under the default allocator raises.
import contextlib as _contextlib  # noqa: E402
import ctypes as _ctypes  # noqa: E402
import re as _re  # noqa: E402

GRAPHS = {'captures': 0, 'launches': 0, 'replayed': 0}
_streams = []      # the current stream stack (`with stream:`)
_capturing = []    # streams capturing now
_allocators = []   # `using_allocator` stack


class _DeviceMemory(_Memory):
    def __init__(self, array):
        self.ptr = array._a.ctypes.data if array._a.size else 0
        _POINTERS[self.ptr] = array


ndarray.data = property(lambda self: _DeviceMemory(self))


def _recording():
    """The record list when the current stream captures; None when nothing captures; raises when another does."""
    if not _capturing:
        return None
    cur = _streams[-1] if _streams else None
    if cur is None or cur._records is None:
        raise RuntimeError("cudaErrorStreamCaptureImplicit: work on a stream that is not capturing while a "
                           "capture is active (the legacy default stream synchronizes with the capturing one)")
    return cur._records


def _no_transfer(what):
    if _capturing:
        raise RuntimeError(f"cudaErrorStreamCaptureUnsupported: {what} while a stream is capturing (synchronous "
                           "host-device transfers are not allowed during stream capture)")


def _arrays_in(x):
    if isinstance(x, ndarray):
        yield x
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _arrays_in(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _arrays_in(v)


def _poison(a):
    a[...] = np.nan if a.dtype.kind in 'fc' else 0


def _deferred(f, inplace, alloc_only=False, owner=None):
    """f as an operation on the current stream: run now, or recorded while the stream captures. (owner: the
    array a method belongs to: a result sharing its memory is a view, not a new array.)"""
    def op(*args, **kw):
        rec = _recording()
        if rec is None:
            return f(*args, **kw)
        if inplace:  # (what the operation returns: its out= array, as NumPy's)
            rec.append(lambda: f(*args, **kw))
            out = (args[-1] if args and isinstance(args[-1], dict) and f is _plain['__array_function__']
                   else kw).get('out')
            return out[0] if isinstance(out, tuple) and len(out) == 1 else out
        with np.errstate(all='ignore'):
            r = f(*args, **kw)  # (for its shape and buffers: the values are the replay's)
        ins = list(_arrays_in((args, kw, owner)))
        fresh = [x for x in _arrays_in(r) if not any(np.shares_memory(x._a, i._a) for i in ins)]
        if fresh and not _allocators:
            raise RuntimeError("fake_cupy: an allocation while capturing, from the shared memory pool (use "
                               "cuda.using_allocator(pool.malloc) with a pool of the capture's own)")
        for x in fresh:
            _poison(x._a)
        if fresh and not alloc_only:
            def again():
                for x, y in zip(_arrays_in(r), _arrays_in(f(*args, **kw))):
                    if any(x is z for z in fresh):
                        x._a[...] = y._a
            rec.append(again)
        return r
    return op


_INPLACE_METHODS = ('fill', 'put', 'sort', 'partition', 'itemset', 'resize', 'setfield')
_plain = {k: ndarray.__dict__[k] for k in ('__array_ufunc__', '__array_function__', '__getattr__', '__getitem__',
                                           '__setitem__', 'get', '__bool__', '__float__', '__int__')}


def _ufunc(self, ufunc, method, *inputs, **kw):
    return _deferred(_plain['__array_ufunc__'], 'out' in kw)(self, ufunc, method, *inputs, **kw)


def _function(self, func, types, args, kwargs):
    return _deferred(_plain['__array_function__'], func is np.copyto or 'out' in kwargs)(self, func, types, args,
                                                                                         kwargs)


def _method(self, name):
    attr = _plain['__getattr__'](self, name)
    return _deferred(attr, name in _INPLACE_METHODS, owner=self) if callable(attr) else attr


def _host_read(name):
    def read(self, *a):
        _no_transfer(f"ndarray.{name.strip('_')}()")
        return _plain[name](self, *a)
    return read


ndarray.__array_ufunc__, ndarray.__array_function__, ndarray.__getattr__ = _ufunc, _function, _method
ndarray.__getitem__ = lambda self, key: _deferred(_plain['__getitem__'], False, owner=self)(self, key)
ndarray.__setitem__ = lambda self, key, value: _deferred(_plain['__setitem__'], True)(self, key, value)
for _name in ('get', '__bool__', '__float__', '__int__'):
    setattr(ndarray, _name, _host_read(_name))
_module_getattr, _plain_array, _plain_asnumpy = __getattr__, array, asnumpy


def __getattr__(name):  # noqa: F811  (module functions as stream operations)
    f = _module_getattr(name)
    if isinstance(f, type) or not callable(f):
        return f
    return lambda *a, **k: _deferred(f, name == 'copyto' or 'out' in k, name in ('empty', 'empty_like'))(*a, **k)


def array(a, dtype=None, copy=True):  # noqa: F811
    if not isinstance(a, ndarray):
        _no_transfer("a host-to-device copy")
    return _deferred(_plain_array, False)(a, dtype, copy)


def asarray(a, dtype=None):  # noqa: F811
    if isinstance(a, ndarray) and a.device.id == _current[0] and (dtype is None or a.dtype == dtype):
        return a
    return array(a, dtype)


def asnumpy(a):  # noqa: F811
    if isinstance(a, ndarray):
        _no_transfer("a device-to-host copy")
    return _plain_asnumpy(a)


class Graph:
    """A captured stream: launch() replays its records on the current device."""

    def __init__(self, records, pool_needed):
        self._records, self._device = records, _current[0]

    def launch(self, stream=None):
        if _current[0] != self._device:
            raise RuntimeError(f"cudaErrorInvalidResourceHandle: a graph of device {self._device} launched on "
                               f"device {_current[0]}")
        if _capturing:
            raise RuntimeError("fake_cupy: a graph launched while a stream captures (graphc never nests them)")
        GRAPHS['launches'] += 1
        for f in self._records:
            f()
        GRAPHS['replayed'] += len(self._records)

    def upload(self, stream=None):
        pass


class Stream:
    """cupy.cuda.Stream: a context manager making it current, and graph capture."""
    null = cuda.Stream.null

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.device_id, self._records = _current[0], None
        self.ptr = id(self)

    def __enter__(self):
        _streams.append(self)
        return self

    def __exit__(self, *exc):
        _streams.pop()

    def synchronize(self):
        _device_synchronize()

    def begin_capture(self, mode=None):
        if self._records is not None:
            raise RuntimeError("cudaErrorIllegalState: the stream is capturing already")
        self._records = []
        _capturing.append(self)

    def is_capturing(self):
        return self._records is not None

    def end_capture(self):
        if self._records is None:
            raise RuntimeError("cudaErrorIllegalState: the stream is not capturing")
        records, self._records = self._records, None
        _capturing.remove(self)
        GRAPHS['captures'] += 1
        return Graph(records, True)


class MemoryPool:
    def malloc(self, size):
        raise NotImplementedError("fake_cupy.MemoryPool.malloc: allocations are NumPy's (see using_allocator)")


@_contextlib.contextmanager
def using_allocator(allocator=None):
    _allocators.append(allocator)
    try:
        yield
    finally:
        _allocators.pop()


cuda.Stream, cuda.Graph, cuda.MemoryPool, cuda.using_allocator = Stream, Graph, MemoryPool, using_allocator
cuda.get_current_stream = lambda device_id=None: _streams[-1] if _streams else Stream.null


# ---------------------------------------------------------------- RawModule: the source on the host emulation
_CTYPE = {'float': np.float32, 'double': np.float64, 'int': np.int32, 'unsigned int': np.uint32,
          'unsigned': np.uint32, 'long long': np.int64, 'unsigned long long': np.uint64}
_built = {}


def _build(code, name, params):
    """The host build of kernel `name` of code, with a launcher taking void *args[] (pointer values, or the
    addresses of scalars)."""
    import hashlib
    import os
    import subprocess
    from graphc.runtime import emulate
    from graphc.runtime.cpu import private_subdir
    code = _re.sub(r'#include <cuda_(fp16|bf16)\.h>\n', '', code)  # (cuda_emu.h defines their types)
    casts = []
    for i, (ctype, is_ptr) in enumerate(params):
        casts.append(f"({ctype})p[{i}]" if is_ptr else f"*(const {ctype.replace('const ', '')} *)p[{i}]")
    src = (f'#include "cuda_emu.h"\n{code}\nextern "C" int emu_fn(void **a, unsigned gx, unsigned gy, unsigned gz, '
           f'unsigned bx, unsigned by, unsigned bz, int fibers) {{\n  return emu::launch(dim3{{gx, gy, gz}}, '
           f'dim3{{bx, by, bz}}, fibers, [](void **p) {{ {name}({", ".join(casts)}); }}, a);\n}}\n')
    key = hashlib.sha256('\0'.join([src, *emulate.FLAGS]).encode()).hexdigest()
    if key not in _built:
        d = private_subdir('emu')
        so, cpp = os.path.join(d, f"raw_{key}.so"), os.path.join(d, f"raw_{key}.cpp")
        if not os.path.exists(so):
            with open(cpp, 'w') as f:
                f.write(src)
            r = subprocess.run([emulate.gxx_path(), *emulate.FLAGS, '-I', os.path.dirname(emulate.HEADER), cpp,
                                '-o', f'{so}.{os.getpid()}.tmp'], capture_output=True, text=True)
            if r.returncode or (r.stdout + r.stderr).strip():
                raise RuntimeError(f"fake_cupy.RawModule: g++ failed on {cpp}:\n{r.stdout}{r.stderr}")
            os.replace(f'{so}.{os.getpid()}.tmp', so)  # (ranks of a distributed test build the same module)
        fn = _ctypes.CDLL(so).emu_fn
        fn.restype, fn.argtypes = _ctypes.c_int, [_ctypes.POINTER(_ctypes.c_void_p)] + [_ctypes.c_uint] * 6 + \
            [_ctypes.c_int]
        _built[key] = fn
    return _built[key]


class _RawFunction:
    def __init__(self, module, name, params):
        self.module, self.name = module, name
        self.params = []  # (C type, is a pointer)
        for p in params:
            p = p.replace('__restrict__', ' ')
            ctype = _re.sub(r'\s+', ' ', p[:_re.search(r'[A-Za-z_]\w*\s*$', p).start()]).strip()
            self.params.append((ctype, '*' in ctype))
        self.sync = '__syncthreads' in module.code or '__shfl' in module.code

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: {len(args)} arguments for {len(self.params)} parameters")
        for a, (ctype, is_ptr) in zip(args, self.params):
            if is_ptr:
                if not isinstance(a, ndarray):
                    raise TypeError(f"{self.name}: a {type(a).__name__} for pointer parameter {ctype}")
                _unwrap(a)  # (on the current device)
            else:
                want = _CTYPE[ctype.replace('const ', '').strip()]
                if type(a) is not want:
                    raise TypeError(f"{self.name}: a {type(a).__name__} for a {ctype} parameter (cupy passes its "
                                    f"bytes as they are: give a numpy.{want.__name__})")
        fn = _build(self.module.code, self.name, self.params)
        grid, block = (tuple(grid) + (1, 1))[:3], (tuple(block) + (1, 1))[:3]

        def run():
            keep = [np.array(a) for a, (_, p) in zip(args, self.params) if not p]
            vals, it = [], iter(keep)
            for a, (_, p) in zip(args, self.params):
                vals.append(_unwrap(a).ctypes.data if p else next(it).ctypes.data)
            r = fn((_ctypes.c_void_p * len(vals))(*vals), *grid, *block, int(self.sync))
            if r:
                raise RuntimeError(f"{self.name}: the emulated launch failed ({r})")
        rec = _recording()
        if rec is None:
            run()
        else:
            rec.append(run)


class RawModule:
    """cupy.RawModule on the host emulation (see above)."""

    def __init__(self, code=None, path=None, options=(), backend='nvrtc', **kw):
        if code is None:
            raise NotImplementedError("fake_cupy.RawModule: only code= is supported")
        self.code, self.options = code, tuple(options)

    def get_function(self, name):
        m = _re.search(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?' + _re.escape(name) +
                       r'\s*\(([^)]*)\)', self.code)
        if m is None:
            raise RuntimeError(f"CUDA_ERROR_NOT_FOUND: named symbol not found: {name}")
        return _RawFunction(self, name, [p for p in m.group(1).split(',') if p.strip()])


# kernel launches of the graphc devices above are stream work too (recorded while capturing)
_ref_device, _emu_device = ref_device, emu_device


def _on_stream(make):
    def device(device_id):
        d = make(device_id)
        function = d.function
        d.function = lambda kernel: _deferred(function(kernel), True)
        return d
    return device


ref_device, emu_device = _on_stream(_ref_device), _on_stream(_emu_device)
