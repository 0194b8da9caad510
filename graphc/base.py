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


class GraphcDynamicShapeError(GraphcNotSupportedError):
    """An op whose output shape depends on the input's values (np.unique, np.bincount, npx.nonzero) met while
    tracing: a hybridized block that has one runs its forward op by op, as MXNet runs such graphs."""


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


BF16 = [None]  # NumPy's bfloat16 dtype once a bfloat16 array was asked for (ml_dtypes, imported then)


def bfloat16():
    """The bfloat16 dtype: ml_dtypes' (NumPy has none; JAX, ONNX and CuPy 14 use it). Imported on first use, not
    with graphc (it takes about a third of a second); ops then check their inputs for it (bf16_kernel)."""
    if BF16[0] is None:
        try:
            import ml_dtypes
        except ImportError:
            raise GraphcError("dtype bfloat16 needs the ml_dtypes package (NumPy has no bfloat16): "
                              "pip install ml_dtypes") from None
        BF16[0] = np.dtype(ml_dtypes.bfloat16)
    return BF16[0]


def bf16_kernel(op, kernel):
    """op's host kernel for inputs that include bfloat16: it computes in float32 on upcast inputs (NumPy has no
    bfloat16 arithmetic that accumulates in float32), and the outputs op infers as bfloat16 are rounded back to
    nearest even, as a device kernel stores them."""
    bf, f32 = bfloat16(), np.dtype(np.float32)

    def run(attrs, *data):
        if not any(a.dtype == bf for a in data):  # (a cast to bfloat16, say)
            return kernel(attrs, *data)
        _, dts = op.infer(attrs, [a.shape for a in data], [a.dtype for a in data])
        out = kernel(attrs, *[a.astype(f32) if a.dtype == bf else a for a in data])
        outs = out if isinstance(out, tuple) else (out,)
        outs = tuple(np.asarray(o).astype(bf) if d == bf else o for o, d in zip(outs, dts))
        return outs if isinstance(out, tuple) else outs[0]
    return run


def as_dtype(dtype):
    """numpy dtype from a name, type or dtype; a clear error for anything unsupported. bfloat16: by name, as
    ml_dtypes' type, or as MXNet 1.9's record dtype [('bfloat16', '<u2')] (its astype takes it)."""
    if dtype is None:
        return np.dtype('float32')
    if (dtype == 'bfloat16' if isinstance(dtype, str) else getattr(dtype, 'names', None) == ('bfloat16',)):
        return bfloat16()
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise GraphcError(f"unknown dtype {dtype!r}; supported: {', '.join(map(str, SUPPORTED_DTYPES))}, "
                          "bfloat16") from None
    if dt.name == 'bfloat16':  # (ml_dtypes' type, imported by the caller)
        return bfloat16()
    if dt not in DTYPE_CODES:
        raise GraphcError(f"dtype {dt} is not supported; supported: {', '.join(map(str, SUPPORTED_DTYPES))}, "
                          "bfloat16")
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
