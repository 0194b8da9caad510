"""Errors, dtypes and small helpers shared by every stage."""
import os
import sys

import numpy as np


class MXNetError(RuntimeError):
    """MXNet's error class (mxnet.base.MXNetError, a RuntimeError): `except mx.base.MXNetError` catches every
    error graphc raises on purpose."""


class NotImplementedForSymbol(MXNetError):
    """A function that exists for NDArrays only (MXNet's message and arguments)."""

    def __init__(self, function, alias=None, *args):
        super().__init__()
        self.function = getattr(function, '__name__', str(function))
        self.alias, self.args = alias, [str(type(a)) for a in args]

    def __str__(self):
        msg = f'Function {self.function}'
        if self.alias:
            msg += f' (namely operator "{self.alias}")'
        if self.args:
            msg += ' with arguments (' + ', '.join(self.args) + ')'
        return msg + ' is not implemented for Symbol and only available in NDArray.'


class GraphcError(MXNetError):
    """Base class of every error graphc raises on purpose."""


class GraphcShapeError(GraphcError, ValueError):
    """Shapes or dtypes that an op cannot accept; names the op and the shapes."""


class GraphcTypeError(GraphcError, TypeError):
    """An argument of the wrong kind (MXNet raises TypeError there)."""


class GraphcIndexError(GraphcError, IndexError):
    """An index out of range (MXNet raises IndexError there)."""


class GraphcNotSupportedError(GraphcError, NotImplementedError):
    """A documented MXNet feature graphc does not have (sparse storage on a GPU, Custom ops, mx.np)."""


class GraphcTraceError(GraphcError):
    """Something a traced (hybridized) forward cannot do; names the user's line."""


class GraphcLoadError(GraphcError, ValueError):
    """A model or parameter file that is malformed; names the file and where."""


class DeferredInitializationError(GraphcError):
    """A parameter whose shape is not known until the first forward."""


# MXNet's small helpers (mxnet/base.py), which user code imports
string_types = (str,)
integer_types = (int, np.integer)
numeric_types = (float, int, np.generic)


def py_str(x):
    """str from bytes (C strings in MXNet), str unchanged."""
    return x.decode('utf-8') if isinstance(x, bytes) else x


def _as_list(obj):
    """obj if it is a list or tuple, else [obj]."""
    return obj if isinstance(obj, (list, tuple)) else [obj]


def data_dir():
    """Where datasets and models are kept: $MXNET_HOME, else ~/.mxnet (as MXNet)."""
    from . import config
    return config.mxnet_home()


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
    if isinstance(dtype, str) and dtype == 'bfloat16':  # (NumPy has no such type)
        raise GraphcError("dtype bfloat16 is not supported for NDArrays or Block.cast: only graphc's CUDA kernels "
                          "store it (docs/GPU.md, mixed precision); use float16 (with multi_precision=True)")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise GraphcError(f"unknown dtype {dtype!r}; supported: {', '.join(map(str, SUPPORTED_DTYPES))}") from None
    if dt not in DTYPE_CODES:
        raise GraphcError(f"dtype {dt} is not supported; supported: {', '.join(map(str, SUPPORTED_DTYPES))}")
    return dt


_INTERNAL_DIRS = []


def internal_dirs():
    """graphc's folders, wherever installed: the package, passes/ and runtime/ (inside it in a wheel, beside it in
    a source checkout or an editable install), and numpy's."""
    if not _INTERNAL_DIRS:
        import importlib.util
        dirs = [os.path.dirname(__file__), os.path.dirname(np.__file__)] + [d for sub in ('passes', 'runtime') for d in
                importlib.util.find_spec(f"{__package__}.{sub}").submodule_search_locations]  # (not imported)
        _INTERNAL_DIRS.append(tuple(os.path.join(os.path.abspath(d), '') for d in dirs))
    return _INTERNAL_DIRS[0]


def user_frame():
    """(filename, lineno, line) of the innermost stack frame outside graphc and numpy."""
    import linecache
    internal, f = _INTERNAL_DIRS[0] if _INTERNAL_DIRS else internal_dirs(), sys._getframe(1)
    while f is not None:
        fn = os.path.abspath(f.f_code.co_filename)
        if not fn.startswith(internal):
            return fn, f.f_lineno, linecache.getline(fn, f.f_lineno).strip()
        f = f.f_back
    return None, None, ''


def fmt_shape(s):
    return '(' + ', '.join(str(d) for d in s) + (',)' if len(s) == 1 else ')')

mx_real_t = np.float32  # MXNet's default real type (mx.base.mx_real_t)
