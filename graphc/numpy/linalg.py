"""mx.np.linalg (MXNet's mxnet.numpy.linalg) on graphc's linalg ops (graphc/ops/linalg.py): every function records
for autograd and traces in hybridized blocks; tensorinv, tensorsolve and the matrix norms are compositions of them."""
import numbers as _numbers

import numpy as _onp

from ..base import GraphcError as _GraphcError
from ..ndarray import ndarray as _ndm
from .multiarray import (_npfunc, _shape_of, _t, abs as _abs, max as _max, min as _min, moveaxis as _moveaxis,
                         reshape as _reshape, sqrt as _sqrt, sum as _sum, swapaxes as _swapaxes,
                         transpose as _transpose)


def _op(name, *xs, **attrs):
    return _ndm._op(name, *xs, **attrs)


def _vector_norm(x, ord, axis, keepdims):  # noqa: A002  (NumPy's name)
    if ord is None or ord == 2:
        return _sqrt(_sum(x * x, axis=axis, keepdims=keepdims))
    if ord == _onp.inf:
        return _max(_abs(x), axis=axis, keepdims=keepdims)
    if ord == -_onp.inf:
        return _min(_abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return _sum((x != 0).astype(x.dtype), axis=axis, keepdims=keepdims)
    if ord == 1:
        return _sum(_abs(x), axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise _GraphcError(f"np.linalg.norm: ord={ord!r} is a matrix norm; a vector norm (one axis) takes a number")
    return _sum(_abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


def _singular_values(x, r, c):
    m = _moveaxis(x, (r, c), (-2, -1))
    s = _shape_of(m, 'linalg.norm')
    if s[-2] > s[-1]:  # (svd takes M <= N; the singular values are those of the transpose)
        m = _swapaxes(m, -1, -2)
    return _op('_npi_svd', m)[1]


def _matrix_norm(x, ord, r, c):  # noqa: A002
    if ord is None or ord == 'fro':
        return _sqrt(_sum(x * x, axis=(r, c)))
    if ord in ('nuc', 2, -2):
        s = _singular_values(x, r, c)
        return _sum(s, axis=-1) if ord == 'nuc' else (_max if ord == 2 else _min)(s, axis=-1)
    if ord in (1, -1, _onp.inf, -_onp.inf):
        summed, kept = (r, c) if ord in (1, -1) else (c, r)  # 1: the largest column sum; inf: the largest row sum
        return (_max if ord > 0 else _min)(_sum(_abs(x), axis=summed), axis=kept - (kept > summed))
    raise _GraphcError(f"np.linalg.norm: invalid norm order {ord!r} for matrices")


@_npfunc
def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002  (NumPy's name)
    """NumPy's linalg.norm: vector norms along one axis, matrix norms over two ('fro', 'nuc', +-1, +-2, +-inf;
    'inf' and '-inf' as strings too, as MXNet takes them)."""
    x = _t(x)
    ord = {'inf': _onp.inf, '-inf': -_onp.inf}.get(ord, ord) if isinstance(ord, str) else ord  # noqa: A001
    nd = len(_shape_of(x, 'linalg.norm'))
    if axis is None:
        if ord is None:
            return _sqrt(_sum(x * x, keepdims=keepdims))
        if nd not in (1, 2):
            raise _GraphcError(f"np.linalg.norm: ord={ord!r} without axis needs a 1-d or 2-d array, got {nd}-d")
        axis = 0 if nd == 1 else (0, 1)
    axes = (axis,) if isinstance(axis, _numbers.Integral) else tuple(axis)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) != 2 or axes[0] % nd == axes[1] % nd:
        raise _GraphcError(f"np.linalg.norm: axis must be one axis or two different axes, got {axis!r}")
    r, c = axes[0] % nd, axes[1] % nd
    out = _matrix_norm(x, ord, r, c)
    if keepdims:
        shape = list(_shape_of(x, 'linalg.norm'))
        shape[r] = shape[c] = 1
        out = _reshape(out, tuple(shape))
    return out


def _linalg(opname, doc, batch_shape=False):
    @_npfunc
    def f(a):
        a = _t(a)
        r = _op(opname, a)
        return r.reshape(a.shape[:-2]) if batch_shape and isinstance(a.shape, tuple) else r
    f.__doc__ = doc
    return f


inv = _linalg('_linalg_inverse', "The inverse of square matrices (the last two axes).")
det = _linalg('_linalg_det', "The determinant of square matrices (the last two axes).", batch_shape=True)
cholesky = _linalg('_npi_cholesky', "The lower Cholesky factor of symmetric positive definite matrices.")
eigvals = _linalg('_npi_eigvals', "The (real) eigenvalues of square matrices.")


@_npfunc
def slogdet(a):
    a = _t(a)
    return tuple(r.reshape(a.shape[:-2]) for r in _op('_linalg_slogdet', a))


@_npfunc
def svd(a):
    """(UT, L, V) with a = UT @ diag(L) @ V (MXNet's order and names; matrices (..., M, N), M <= N)."""
    return tuple(_op('_npi_svd', _t(a)))


@_npfunc
def eig(a):
    """(w, v): the real eigenvalues and the unit eigenvectors (columns) of square matrices."""
    return tuple(_op('_npi_eig', _t(a)))


@_npfunc
def eigh(a, UPLO='L'):  # noqa: N803  (NumPy's name)
    """(w, v) of the symmetric matrices that a's lower (UPLO='L') or upper triangle stands for."""
    return tuple(_op('_npi_eigh', _t(a), UPLO=UPLO))


@_npfunc
def eigvalsh(a, UPLO='L'):  # noqa: N803
    return _op('_npi_eigvalsh', _t(a), UPLO=UPLO)


@_npfunc
def solve(a, b):
    """x with a @ x = b: a (..., M, M); b (..., M, K), or (..., M) for vectors."""
    return _op('_npi_solve', _t(a), _t(b))


@_npfunc
def pinv(a, rcond=1e-15, hermitian=False):
    """The pseudo-inverse; rcond (a number or an array that broadcasts with a's batch axes) cuts small singular
    values."""
    a = _t(a)
    if isinstance(rcond, _ndm.TENSORS):
        return _op('_npi_pinv', a, rcond, hermitian=hermitian)
    return _op('_npi_pinv_scalar_rcond', a, rcond=float(rcond), hermitian=hermitian)


@_npfunc
def tensorinv(a, ind=2):
    """The inverse of a as an operator from its first ind axes to the rest (NumPy's tensorinv)."""
    a = _t(a)
    shape = _shape_of(a, 'linalg.tensorinv')
    if not isinstance(ind, _numbers.Integral) or ind <= 0:
        raise _GraphcError(f"np.linalg.tensorinv: ind must be a positive integer, got {ind!r}")
    front, back = int(_onp.prod(shape[:ind])), int(_onp.prod(shape[ind:]))
    if front != back:
        raise _GraphcError(f"np.linalg.tensorinv: the first {ind} axes of shape {shape} hold {front} elements, the "
                           f"others {back}: the operator is not square")
    return _reshape(_op('_linalg_inverse', _reshape(a, (back, front))), shape[ind:] + shape[:ind])


@_npfunc
def tensorsolve(a, b, axes=None):
    """x with tensordot(a, x, x.ndim) = b (NumPy's tensorsolve; axes: a's axes moved to the end first)."""
    a, b = _t(a), _t(b)
    ashape, bshape = _shape_of(a, 'linalg.tensorsolve'), _shape_of(b, 'linalg.tensorsolve')
    if axes is not None:
        order = [k for k in range(len(ashape)) if k not in [x % len(ashape) for x in axes]] + \
            [x % len(ashape) for x in axes]
        a, ashape = _transpose(a, order), tuple(ashape[k] for k in order)
    xshape = ashape[-(len(ashape) - len(bshape)):]  # (NumPy's slice: all of a's axes when the ranks are equal)
    n = int(_onp.prod(xshape))
    if n * n != int(_onp.prod(ashape)) or n != int(_onp.prod(bshape)):
        raise _GraphcError(f"np.linalg.tensorsolve: a of shape {ashape} (after axes) and b of shape {bshape} do not "
                           "make a square system")
    return _reshape(_op('_npi_solve', _reshape(a, (n, n)), _reshape(b, (n,))), xshape)


@_npfunc
def qr(a, mode='reduced'):
    """(q, r) with a = q @ r: q (..., M, K) with orthonormal columns, r (..., K, N) upper triangular, K = min(M, N)."""
    if mode != 'reduced':
        raise _GraphcError(f"np.linalg.qr: only mode='reduced' is supported (MXNet's), got {mode!r}")
    return tuple(_op('_npi_qr', _t(a)))


@_npfunc
def matrix_rank(M, tol=None, hermitian=False):  # noqa: N803  (NumPy's name)
    """The number of singular values above tol (NumPy's default tol: S.max() * max(M, N) * eps); an integer."""
    M = _t(M)
    if isinstance(tol, _ndm.TENSORS):
        return _op('_npi_matrix_rank', M, tol, hermitian=hermitian)
    return _op('_npi_matrix_rank_none_tol', M, tol=None if tol is None else float(tol), hermitian=hermitian)


@_npfunc
def cond(x, p=None):
    """The condition number: the singular values' ratio (p None, 2, -2), else norm(x, p) * norm(inv(x), p)."""
    x = _t(x)
    if p in (None, 2, -2):
        s = _singular_values(x, x.ndim - 2, x.ndim - 1)
        hi, lo = _max(s, axis=-1), _min(s, axis=-1)
        return hi / lo if p != -2 else lo / hi
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


@_npfunc
def matrix_power(a, n):
    """a @ a @ ... (n times; n < 0: of inv(a); n == 0: the identity), by repeated squaring."""
    from .multiarray import eye, matmul
    a = _t(a)
    if not isinstance(n, _numbers.Integral):
        raise _GraphcError(f"np.linalg.matrix_power: n must be an integer, got {n!r}")
    shape = _shape_of(a, 'linalg.matrix_power')
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise _GraphcError(f"np.linalg.matrix_power: needs square matrices, got shape {shape}")
    if n == 0:
        return a * 0 + eye(shape[-1], dtype=a.dtype)
    base, n, out = (inv(a) if n < 0 else a), abs(n), None
    while n:
        if n & 1:
            out = base if out is None else matmul(out, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return out


def multi_dot(arrays):
    """dot(dot(a, b), c) ... (NumPy's multi_dot; left to right)."""
    from .multiarray import dot
    out = _t(arrays[0])
    for x in arrays[1:]:
        out = dot(out, _t(x))
    return out


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


lstsq = _host_linalg('lstsq')  # (residuals' shape depends on the rank: a hybridized block runs it op by op)
