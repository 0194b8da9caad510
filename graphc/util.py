"""MXNet's mx.util switches: NumPy shape semantics and NumPy array conventions (mx.np, npx.set_np).

MXNet 1.x's default, kept here: a reduction over every axis returns shape (1,), not a 0-d array.
`set_np_shape(True)` or `with np_shape():` switches to NumPy's convention (0-d results, as graphc gave
before it followed MXNet).
"""
import functools
import os

from .base import GraphcNotSupportedError

_NP_SHAPE = [False]


def is_np_shape():
    """Whether NumPy shape semantics are on (0-d arrays from full reductions)."""
    return _NP_SHAPE[0]


def set_np_shape(active):
    """Turn NumPy shape semantics on or off; returns the previous state (as MXNet)."""
    prev, _NP_SHAPE[0] = _NP_SHAPE[0], bool(active)
    return prev


class _Scope:
    """A switch that is a context manager and a decorator (MXNet's np_shape / np_array)."""

    def __init__(self, setter, active):
        self._set, self._active, self._prev = setter, active, None

    def __enter__(self):
        self._prev = self._set(self._active)
        return self

    def __exit__(self, *exc):
        self._set(self._prev)

    def __call__(self, func):
        @functools.wraps(func)
        def wrapped(*args, **kwargs):
            with _Scope(self._set, self._active):
                return func(*args, **kwargs)
        return wrapped


def np_shape(active=True):
    """`with np_shape():` (or as a decorator): NumPy shape semantics inside."""
    return _Scope(set_np_shape, active)


def use_np_shape(func):
    """Decorator: the function (or every method of the class) runs with NumPy shape semantics."""
    if isinstance(func, type):
        for k, v in list(vars(func).items()):
            if callable(v) and not k.startswith('__'):
                setattr(func, k, use_np_shape(v))
        return func
    return np_shape(True)(func)


_NP_ARRAY = [False]


def is_np_array():
    """Whether MXNet's NumPy array conventions are on (npx.set_np()): bool comparisons, NumPy's repr and reshape."""
    return _NP_ARRAY[0]


def set_np_array(active):
    """Turn the NumPy array conventions on or off; returns the previous state. mx.np.ndarray and mx.nd.NDArray
    are one class in graphc: the switch changes what the array methods and operators do, not the type."""
    prev, _NP_ARRAY[0] = _NP_ARRAY[0], bool(active)
    return prev


def legacy_grad(op, F, attrs, xs, ys, dys):
    """op's gradient rule run in MXNet's legacy array conventions, which the registry's rules are written in
    (`y > 0` a 0/1 mask of y's dtype, MXNet's reshape codes), whatever npx.set_np() says."""
    prev, _NP_ARRAY[0] = _NP_ARRAY[0], False
    try:
        return op.grad(F, attrs, xs, ys, dys)
    finally:
        _NP_ARRAY[0] = prev


def np_array(active=True):
    """`with np_array():` (or as a decorator): NumPy array conventions inside."""
    return _Scope(set_np_array, active)


def use_np_array(func):
    """Decorator: the function (or every method of the class) runs with NumPy array conventions."""
    if isinstance(func, type):
        for k, v in list(vars(func).items()):
            if callable(v) and not k.startswith('__'):
                setattr(func, k, use_np_array(v))
        return func
    return np_array(True)(func)


def use_np(func):
    """MXNet's use_np: NumPy shape and array conventions for a function or class."""
    return use_np_shape(use_np_array(func))


def set_np(shape=True, array=True, dtype=False):
    """MXNet's npx.set_np: NumPy shape semantics (0-d arrays) and array conventions. dtype=True (float64 by
    default, as NumPy) is not supported: graphc keeps MXNet's float32 default."""
    if dtype:
        raise GraphcNotSupportedError("set_np(dtype=True): NumPy's float64 default dtype is not supported; "
                                      "graphc keeps MXNet's float32 default")
    if array and not shape:
        raise ValueError("set_np: NumPy arrays need NumPy shape semantics (shape=True)")
    set_np_shape(shape)
    set_np_array(array)


def reset_np():
    set_np_shape(False)
    set_np_array(False)


def is_np_default_dtype():
    return False


def getenv(name):
    """An environment variable (MXNet reads its own from the C library's environment; here os.environ)."""
    return os.environ.get(name)


def setenv(name, value):
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = str(value)


def makedirs(d):
    os.makedirs(os.path.expanduser(d), exist_ok=True)


def get_gpu_count():
    from .context import num_gpus
    return num_gpus()
