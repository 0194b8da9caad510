"""Errors, dtypes and small helpers shared by every stage."""
import os
import sys

import numpy as np


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class GraphcShapeError(GraphcError, ValueError):
    """Shapes or dtypes that an op cannot accept; names the op and the shapes."""


class GraphcTraceError(GraphcError):
    """Something a traced (hybridized) forward cannot do; names the user's line."""


class GraphcLoadError(GraphcError, ValueError):
    """A model or parameter file that is malformed; names the file and where."""


class DeferredInitializationError(GraphcError):
    """A parameter whose shape is not known until the first forward."""


# MXNet's dtype codes (ndarray.py:_DTYPE_NP_TO_MX): used by JSON __dtype__ and .params.
DTYPE_CODES = {np.dtype('float32'): 0, np.dtype('float64'): 1, np.dtype('float16'): 2,
               np.dtype('uint8'): 3, np.dtype('int32'): 4, np.dtype('int8'): 5,
               np.dtype('int64'): 6, np.dtype('bool'): 7}
CODE_DTYPES = {v: k for k, v in DTYPE_CODES.items()}
SUPPORTED_DTYPES = tuple(DTYPE_CODES)


def as_dtype(dtype):
    """numpy dtype from a name, type or dtype; a clear error for anything unsupported."""
    if dtype is None:
        return np.dtype('float32')
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise GraphcError(f"unknown dtype {dtype!r}; supported: {', '.join(map(str, SUPPORTED_DTYPES))}") from None
    if dt not in DTYPE_CODES:
        raise GraphcError(f"dtype {dt} is not supported; supported: {', '.join(map(str, SUPPORTED_DTYPES))}")
    return dt


_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_INTERNAL_DIRS = (_PKG_DIR, os.path.dirname(os.path.abspath(np.__file__)))


def user_frame():
    """(filename, lineno, line) of the innermost stack frame outside graphc and numpy."""
    import linecache
    f = sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(_INTERNAL_DIRS) and 'graphc/passes' not in fn and 'graphc/runtime' not in fn:
            return fn, f.f_lineno, linecache.getline(fn, f.f_lineno).strip()
        f = f.f_back
    return None, None, ''


def fmt_shape(s):
    return '(' + ', '.join(str(d) for d in s) + (',)' if len(s) == 1 else ')')
