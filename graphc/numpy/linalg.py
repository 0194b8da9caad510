"""mx.np.linalg: norm, inv, det, slogdet and cholesky on graphc's linalg ops; the rest in NumPy on the host."""
import numpy as _onp

from ..ndarray import ndarray as _ndm
from .multiarray import _npfunc, _t, abs as _abs, max as _max, min as _min, sqrt as _sqrt, sum as _sum


@_npfunc
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002  (NumPy's name)
    x = _t(x)
    if ord is None or ord == 'fro' or (ord == 2 and (axis is None and x.ndim == 1 or isinstance(axis, int))):
        return _sqrt(_sum(x * x, axis=axis, keepdims=keepdims))
    if ord == 1 and (x.ndim == 1 or isinstance(axis, int)):
        return _sum(_abs(x), axis=axis, keepdims=keepdims)
    if ord in (_onp.inf, -_onp.inf) and (x.ndim == 1 or isinstance(axis, int)):
        return (_max if ord > 0 else _min)(_abs(x), axis=axis, keepdims=keepdims)
    return _fallback_norm(x, ord=ord, axis=axis, keepdims=keepdims)


def _linalg(opname, doc, batch_shape=False):
    @_npfunc
    def f(a):
        a = _t(a)
        r = _ndm._op(opname, a)
        return r.reshape(a.shape[:-2]) if batch_shape and isinstance(a.shape, tuple) else r
    f.__doc__ = doc
    return f


inv = _linalg('_linalg_inverse', "The inverse of square matrices (the last two axes).")
det = _linalg('_linalg_det', "The determinant of square matrices (the last two axes).", batch_shape=True)
cholesky = _linalg('_linalg_potrf', "The lower Cholesky factor of symmetric positive definite matrices.")


@_npfunc
def slogdet(a):
    a = _t(a)
    return tuple(r.reshape(a.shape[:-2]) for r in _ndm._op('_linalg_slogdet', a))


def _host_linalg(name):
    fn = getattr(_onp.linalg, name)
    from .multiarray import _host_args, _host_result

    def f(*args, **kw):
        ctx = next((a.context for a in args if isinstance(a, _ndm.NDArray)), None)
        return _host_result(fn(*_host_args(f'linalg.{name}', list(args)),
                               **{k: _host_args(f'linalg.{name}', v) for k, v in kw.items()}), ctx)
    f.__name__ = name
    f.__doc__ = f"NumPy's linalg.{name}, computed by NumPy on the host (no gradient, no tracing)."
    return f


_fallback_norm = _host_linalg('norm')
for _n in ('cond', 'eig', 'eigh', 'eigvals', 'eigvalsh', 'lstsq', 'matrix_power', 'matrix_rank', 'multi_dot', 'pinv',
           'qr', 'solve', 'svd', 'tensorinv', 'tensorsolve'):
    globals()[_n] = _host_linalg(_n)
