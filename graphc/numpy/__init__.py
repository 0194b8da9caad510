"""mx.np: MXNet 1.9's NumPy-compatible array API (mxnet.numpy) over graphc's registered ops.

One array class: `mx.np.ndarray` is graphc's NDArray, so arrays of mx.nd and mx.np mix freely. The functions
follow NumPy's signatures and MXNet's np conventions (float32 by default, 0-d results of full reductions,
bool comparisons, int64 indices). `npx.set_np()` turns those conventions on for the array methods and
operators too (`x == y`, `repr(x)`, `x.reshape(...)`). A function here is a composition of registered ops, so
it records for autograd, traces in hybridized blocks (`F.np.sum`) and runs wherever the ops run. NumPy names
that MXNet offers without a kernel of its own (its "fallback" list: `unique`, `einsum`, `histogram`, ...) run
in NumPy on the host, as in MXNet: they refuse symbols (tracing) and arrays that autograd is recording, since no
gradient flows through them.
"""
import numpy as _onp

from .multiarray import *  # noqa: F401,F403
from .multiarray import _FALLBACK, _fallback, _npfunc, _t  # noqa: F401  (npx's helpers)
from . import random, linalg  # noqa: F401


def __getattr__(name):
    if name in _FALLBACK and hasattr(_onp, name):
        f = _fallback(name)
        globals()[name] = f  # (built once)
        return f
    raise AttributeError(f"module 'graphc.numpy' (mx.np) has no attribute {name!r}")
