"""MXNet's mx.util switches: NumPy shape semantics (supported) and NumPy arrays (mx.np: not supported).

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


_NP_ARRAY_MSG = ("MXNet's NumPy-compatible arrays (mx.np, mx.npx, use_np / set_np) are not supported by graphc; "
                 "use the mx.nd API (NDArray) instead")


def is_np_array():
    """Always False: graphc has no mx.np arrays."""
    return False


def set_np_array(active):
    if active:
        raise GraphcNotSupportedError(_NP_ARRAY_MSG)
    return False


def np_array(active=True):
    return _Scope(set_np_array, active)


def use_np_array(func):
    """MXNet's decorator that makes a function use mx.np arrays: calling the result says it is unsupported."""
    @functools.wraps(func)
    def unsupported(*args, **kwargs):
        raise GraphcNotSupportedError(_NP_ARRAY_MSG)
    return unsupported


use_np = use_np_array  # use_np = use_np_shape + use_np_array; the array half is what graphc lacks


def set_np(shape=True, array=True, dtype=False):
    """MXNet's set_np: only the shape half is available."""
    if array or dtype:
        raise GraphcNotSupportedError(_NP_ARRAY_MSG)
    set_np_shape(shape)


def reset_np():
    set_np_shape(False)


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
