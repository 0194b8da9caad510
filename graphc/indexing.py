"""NDArray indexing: x[key] as registry ops (slice, Reshape, take) so autograd and tracing see it."""
import numpy as np

from . import autograd as _ag
from .base import GraphcError, GraphcIndexError
from .registry import OPS
from .util import _NP_SHAPE


def _np_key(key):
    from .ndarray.ndarray import NDArray
    if isinstance(key, NDArray):  # float index arrays hold integer indices, as in MXNet
        return key._data.astype(np.int64) if key.dtype.kind == 'f' else key._data
    if isinstance(key, tuple):
        return tuple(_np_key(k) for k in key)
    if isinstance(key, list):
        return np.asarray(key)
    return key


def _is_basic(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer)) for k in parts)


def _check_ints(shape, key):
    """A clear error for an integer index out of range (NumPy's says neither axis size nor array shape)."""
    parts = key if isinstance(key, tuple) else (key,)
    if any(p is Ellipsis for p in parts):
        i = parts.index(Ellipsis)
        n_real = sum(p is not None for p in parts) - 1
        parts = parts[:i] + (slice(None),) * (len(shape) - n_real) + parts[i + 1:]
    axis = 0
    for p in parts:
        if p is None:
            continue
        if axis >= len(shape):
            raise GraphcIndexError(f"index {key!r}: too many indices for an array of shape {shape}")
        if isinstance(p, (int, np.integer)) and not -shape[axis] <= p < shape[axis]:
            raise GraphcIndexError(f"index {int(p)} is out of range for axis {axis} of size {shape[axis]} "
                              f"(array shape {shape})")
        axis += 1


def _view(x, parts, out_shape):
    """MXNet 1.x's basic indexing: a result contiguous in x's memory is a view of x (writes to it show in x)."""
    from .ndarray.ndarray import NDArray
    if type(x) is not NDArray or not isinstance(x._data, np.ndarray):
        return None  # (a traced Symbol, a device or lazy array: a copy, as before)
    b = x._data
    real = [p for p in parts if p is not None]
    slcs = [p if isinstance(p, slice) else slice(int(p) % n, int(p) % n + 1) for p, n in zip(real, x.shape)]
    if not NDArray._basic_indexing_slice_is_contiguous(slcs + [slice(None)] * (x.ndim - len(slcs)), x.shape):
        return None
    return NDArray(b[tuple(parts)].reshape(out_shape))


def getitem(x, key):
    from .ndarray.ndarray import invoke
    key = _np_key(key)
    if _is_basic(key):
        _check_ints(x.shape, key)
        # slice the ranges, then reshape away int axes / add None axes; the result shape comes from a 0-stride view
        parts = key if isinstance(key, tuple) else (key,)
        out_shape = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), x.shape, (0,) * x.ndim)[key].shape
        if not out_shape and x.ndim and not _NP_SHAPE[0]:
            out_shape = (1,)  # MXNet 1.x: x[i] of a 1-d array is a 1-element array, not 0-d (a 0-d x[()] stays 0-d)
        begin, end, step = [], [], []
        if Ellipsis in [p for p in parts if p is Ellipsis]:
            i = next(j for j, p in enumerate(parts) if p is Ellipsis)
            n_real = sum(p is not None for p in parts) - 1
            parts = parts[:i] + (slice(None),) * (x.ndim - n_real) + parts[i + 1:]
        for p in parts:
            if p is None:
                continue
            if isinstance(p, slice):
                begin.append(p.start); end.append(p.stop); step.append(p.step)
            else:
                p = int(p) % x.shape[len(begin)]
                begin.append(p); end.append(p + 1); step.append(1)
        if not (_ag._st.recording and getattr(x, "_ag", None) is not None):  # (mx.np too: MXNet 1.9 np views)
            v = _view(x, parts, out_shape)
            if v is not None:
                return v
        y = x
        if any(b is not None for b in begin) or any(e is not None for e in end) or any(s not in (None, 1) for s in step):
            y = invoke(OPS['slice'], (x,), {'begin': tuple(begin), 'end': tuple(end),
                                            'step': tuple(step) if any(s not in (None, 1) for s in step) else ()})
        if y.shape != out_shape:
            y = invoke(OPS['_np_reshape'], (y,), {'newshape': out_shape})
        elif y is x:
            y = invoke(OPS['_copy'], (x,), {})  # x[:] is a new array, as in MXNet
        return y
    # advanced (integer arrays, boolean masks): gather from the flat array, so one take() covers every form
    try:
        flat_idx = np.arange(x.size, dtype=np.int64).reshape(x.shape)[key]
    except IndexError as e:
        raise GraphcIndexError(f"index out of range for array of shape {x.shape}: {e}") from None
    from .ndarray.ndarray import NDArray
    flat = invoke(OPS['_np_reshape'], (x,), {'newshape': (x.size,)})
    return invoke(OPS['take'], (flat, NDArray(flat_idx)), {'axis': 0, 'mode': 'raise'})


def setitem(x, key, value):
    from .ndarray.ndarray import NDArray
    if _ag.is_recording() and (x._ag is not None or (isinstance(value, NDArray) and value._ag is not None)):
        # MXNet's rule and message: an in-place write that autograd would have to record is refused
        raise GraphcError("Inplace operations (+=, -=, x[:]=, etc) are not supported when recording with autograd: "
                          "x[...] = v cannot be differentiated; build the result with where(), concat() or slice ops")
    key = _np_key(key)
    v = value._data if isinstance(value, NDArray) else value
    if isinstance(v, (list, tuple, np.ndarray)) and np.size(v) == 1:
        v = np.reshape(v, ())  # one value fills any target, as in MXNet (b[0] = np.array([x]))
    from . import engine
    engine.flush()  # a pending graph may read x's buffer: run it before the write
    from .ndarray.ndarray import WRITES
    WRITES[0] += 1
    if _is_basic(key):
        _check_ints(x.shape, key)
    try:
        x._data[key] = v
    except (ValueError, IndexError) as e:
        vs = getattr(v, 'shape', ())
        raise GraphcError(f"cannot assign a value of shape {vs} to index {key!r} of an array of shape {x.shape}: {e}") \
            from None
