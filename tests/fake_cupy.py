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
