"""MXNet's linalg ops (_linalg_gemm, ... ; mx.nd.linalg.gemm): matrices in the last two axes, any leading batch
axes. Triangular inputs read only their triangle, and their gradients are zero outside it."""
import numpy as np

from ..registry import Attr, bad, register


def _T(x):
    return np.swapaxes(x, -1, -2)


def _op(x, t):
    return _T(x) if t else x


def _mat_infer(name, n_in):
    def check(shapes):
        for s in shapes:
            if len(s) < 2:
                bad(f"{name}: inputs must be matrices (at least 2-d), got shape {s}")
        if any(s[:-2] != shapes[0][:-2] for s in shapes):
            bad(f"{name}: batch dimensions differ: {shapes}")
    return check


def _gemm_shape(a, sa, sb, name):
    ra, ca = (sa[-1], sa[-2]) if a['transpose_a'] else (sa[-2], sa[-1])
    rb, cb = (sb[-1], sb[-2]) if a['transpose_b'] else (sb[-2], sb[-1])
    if ca != rb:
        bad(f"{name}: inner dimensions differ ({ca} vs {rb})")
    return sa[:-2] + (ra, cb)


GEMM2_ATTRS = {'transpose_a': Attr('bool', False), 'transpose_b': Attr('bool', False), 'alpha': Attr('float', 1.0),
               'axis': Attr('int', -2)}


def _gemm2_grads(F, a, A, B, g):
    ta, tb, al = a['transpose_a'], a['transpose_b'], a['alpha']
    mm = lambda x, y, t1=False, t2=False: F._linalg_gemm2(x, y, transpose_a=t1, transpose_b=t2, alpha=al)  # noqa: E731
    if not ta and not tb:
        return mm(g, B, t2=True), mm(A, g, t1=True)
    if ta and not tb:
        return mm(B, g, t2=True), mm(A, g)
    if tb and not ta:
        return mm(g, B), mm(g, A, t1=True)
    return mm(B, g, True, True), mm(g, A, True, True)


def _gemm2_infer(a, s, d):
    _mat_infer('linalg.gemm2', 2)(s)
    return [_gemm_shape(a, s[0], s[1], 'linalg.gemm2')], [d[0]]


@register('_linalg_gemm2', kind='opaque', inputs=('A', 'B'), attrs=GEMM2_ATTRS, infer=_gemm2_infer,
          grad=lambda F, a, x, y, dy: list(_gemm2_grads(F, a, x[0], x[1], dy[0])),
          doc="alpha * op(A) @ op(B) (MXNet's linalg.gemm2).")
def _gemm2(a, A, B):
    return (a['alpha'] * np.matmul(_op(A, a['transpose_a']), _op(B, a['transpose_b']))).astype(A.dtype)


def _gemm_infer(a, s, d):
    _mat_infer('linalg.gemm', 3)(s)
    out = _gemm_shape(a, s[0], s[1], 'linalg.gemm')
    if tuple(s[2]) != out:
        bad(f"linalg.gemm: C has shape {s[2]}, the product has {out}")
    return [out], [d[0]]


@register('_linalg_gemm', kind='opaque', inputs=('A', 'B', 'C'), attrs={**GEMM2_ATTRS, 'beta': Attr('float', 1.0)},
          infer=_gemm_infer,
          grad=lambda F, a, x, y, dy: list(_gemm2_grads(F, a, x[0], x[1], dy[0])) + [dy[0] * a['beta']],
          doc="alpha * op(A) @ op(B) + beta * C (MXNet's linalg.gemm).")
def _gemm(a, A, B, C):
    return (a['alpha'] * np.matmul(_op(A, a['transpose_a']), _op(B, a['transpose_b'])) + a['beta'] * C).astype(A.dtype)


def _square(name):
    def infer(a, s, d):
        if len(s[0]) < 2 or s[0][-1] != s[0][-2]:
            bad(f"{name}: needs square matrices in the last two axes, got shape {s[0]}")
        return [s[0]], [d[0]]
    return infer


@register('_linalg_syrk', kind='opaque', inputs=('A',), attrs={'transpose': Attr('bool', False), 'alpha': Attr('float', 1.0)},
          infer=lambda a, s, d: ([s[0][:-2] + ((s[0][-1],) * 2 if a['transpose'] else (s[0][-2],) * 2)], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_linalg_syrk(dy[0], x[0], **a)],
          doc="alpha * A @ A^T (transpose: alpha * A^T @ A) (MXNet's linalg.syrk).")
def _syrk(a, A):
    return (a['alpha'] * (np.matmul(_T(A), A) if a['transpose'] else np.matmul(A, _T(A)))).astype(A.dtype)


@register('_backward_linalg_syrk', kind='opaque', inputs=('ograd', 'A'), attrs={'transpose': Attr('bool', False),
          'alpha': Attr('float', 1.0)}, infer=lambda a, s, d: ([s[1]], [d[1]]), differentiable=False,
          doc="Gradient of linalg.syrk.")
def _syrk_bw(a, g, A):
    gs = g + _T(g)
    return (a['alpha'] * (np.matmul(A, gs) if a['transpose'] else np.matmul(gs, A))).astype(A.dtype)


TRI_ATTRS = {'transpose': Attr('bool', False), 'rightside': Attr('bool', False), 'lower': Attr('bool', True),
             'alpha': Attr('float', 1.0)}


def _tri(A, lower):
    return np.tril(A) if lower else np.triu(A)


def _tri_infer(name):
    def infer(a, s, d):
        _square(name)(a, [s[0]], d)
        n = s[0][-1]
        if (s[1][-1] if a['rightside'] else s[1][-2]) != n:
            bad(f"{name}: B of shape {s[1]} does not fit the triangular matrix of size {n}")
        return [s[1]], [d[1]]
    return infer


@register('_linalg_trmm', kind='opaque', inputs=('A', 'B'), attrs=TRI_ATTRS, infer=_tri_infer('linalg.trmm'),
          grad=lambda F, a, x, y, dy: list(F._backward_linalg_trmm(dy[0], x[0], x[1], **a)),
          doc="alpha * op(A) @ B (rightside: alpha * B @ op(A)) with A triangular (MXNet's linalg.trmm).")
def _trmm(a, A, B):
    L = _op(_tri(A, a['lower']), a['transpose'])
    return (a['alpha'] * (np.matmul(B, L) if a['rightside'] else np.matmul(L, B))).astype(B.dtype)


@register('_backward_linalg_trmm', kind='opaque', inputs=('ograd', 'A', 'B'), attrs=TRI_ATTRS, num_outputs=2,
          infer=lambda a, s, d: ([s[1], s[2]], [d[1], d[2]]), differentiable=False, doc="Gradient of linalg.trmm.")
def _trmm_bw(a, g, A, B):
    al, L = a['alpha'], _op(_tri(A, a['lower']), a['transpose'])
    if a['rightside']:  # Y = al B L
        dL, dB = al * np.matmul(_T(B), g), al * np.matmul(g, _T(L))
    else:  # Y = al L B
        dL, dB = al * np.matmul(g, _T(B)), al * np.matmul(_T(L), g)
    return _tri(_op(dL, a['transpose']), a['lower']).astype(A.dtype), dB.astype(B.dtype)


def _solve_tri(L, B, rightside):
    """X with L @ X = B (rightside: X @ L = B) for a triangular L, in float64."""
    L, B = L.astype(np.float64), B.astype(np.float64)
    if rightside:
        return _T(np.linalg.solve(_T(L), _T(B)))
    return np.linalg.solve(L, B)


@register('_linalg_trsm', kind='opaque', inputs=('A', 'B'), attrs=TRI_ATTRS, infer=_tri_infer('linalg.trsm'),
          grad=lambda F, a, x, y, dy: list(F._backward_linalg_trsm(dy[0], x[0], y[0], **a)),
          doc="X with op(A) @ X = alpha * B (rightside: X @ op(A) = alpha * B), A triangular (MXNet's linalg.trsm).")
def _trsm(a, A, B):
    L = _op(_tri(A, a['lower']), a['transpose'])
    return (_solve_tri(L, a['alpha'] * B, a['rightside'])).astype(B.dtype)


@register('_backward_linalg_trsm', kind='opaque', inputs=('ograd', 'A', 'out'), attrs=TRI_ATTRS, num_outputs=2,
          infer=lambda a, s, d: ([s[1], s[2]], [d[1], d[2]]), differentiable=False, doc="Gradient of linalg.trsm.")
def _trsm_bw(a, g, A, X):
    L = _op(_tri(A, a['lower']), a['transpose'])
    if a['rightside']:  # X L = al B: dB = al dX L^-1... solve Z L^T = dX
        Z = _solve_tri(_T(L), g, True)
        dL = -np.matmul(_T(X), Z)
    else:  # L X = al B: Z = L^-T dX
        Z = _solve_tri(_T(L), g, False)
        dL = -np.matmul(Z, _T(X))
    return _tri(_op(dL, a['transpose']), a['lower']).astype(A.dtype), (a['alpha'] * Z).astype(X.dtype)


@register('_linalg_potrf', kind='opaque', inputs=('A',), infer=_square('linalg.potrf'),
          grad=lambda F, a, x, y, dy: [F._backward_linalg_potrf(dy[0], y[0])],
          doc="The lower Cholesky factor L of a symmetric positive-definite A = L @ L^T (reads A's lower triangle).")
def _potrf(a, A):
    try:
        return np.linalg.cholesky(np.tril(A) + _T(np.tril(A, -1))).astype(A.dtype)
    except np.linalg.LinAlgError:
        bad(f"linalg.potrf: the matrix is not positive definite (shape {A.shape})")


@register('_backward_linalg_potrf', kind='opaque', inputs=('ograd', 'L'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of linalg.potrf with respect to A's lower triangle.")
def _potrf_bw(a, g, L):
    L64, g64 = L.astype(np.float64), np.tril(g.astype(np.float64))
    P = np.matmul(_T(L64), g64)
    P = np.tril(P) - 0.5 * np.eye(P.shape[-1]) * P  # lower triangle, diagonal halved
    Linv = np.linalg.inv(L64)
    S = np.matmul(np.matmul(_T(Linv), P), Linv)
    S = 0.5 * (S + _T(S))  # the symmetric gradient (MXNet's), folded onto the lower triangle that is read
    return (2 * np.tril(S) - np.eye(S.shape[-1]) * S).astype(L.dtype)


@register('_linalg_potri', kind='opaque', inputs=('A',), infer=_square('linalg.potri'),
          grad=lambda F, a, x, y, dy: [F._backward_linalg_potri(dy[0], x[0], y[0])],
          doc="(L @ L^T)^-1 from a lower Cholesky factor L (MXNet's linalg.potri).")
def _potri(a, L):
    Linv = np.linalg.inv(np.tril(L).astype(np.float64))
    return np.matmul(_T(Linv), Linv).astype(L.dtype)


@register('_backward_linalg_potri', kind='opaque', inputs=('ograd', 'L', 'out'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of linalg.potri.")
def _potri_bw(a, g, L, Y):
    Y64, g64 = Y.astype(np.float64), g.astype(np.float64)
    return np.tril(-np.matmul(np.matmul(np.matmul(Y64, g64 + _T(g64)), Y64), np.tril(L))).astype(L.dtype)


@register('_linalg_inverse', kind='opaque', inputs=('A',), infer=_square('linalg.inverse'),
          grad=lambda F, a, x, y, dy: [-F._linalg_gemm2(F._linalg_gemm2(y[0], dy[0], transpose_a=True), y[0],
                                                          transpose_b=True)],
          doc="The inverse of each square matrix (MXNet's linalg.inverse).")
def _inverse(a, A):
    return np.linalg.inv(A.astype(np.float64)).astype(A.dtype)


def _det_infer(a, s, d):
    _square('linalg.det')(a, s, d)
    return [s[0][:-2] or (1,)], [d[0]]


@register('_linalg_det', kind='opaque', inputs=('A',), infer=_det_infer,
          grad=lambda F, a, x, y, dy: [F._backward_linalg_det(dy[0], x[0], y[0])],
          doc="The determinant of each square matrix (MXNet's linalg.det).")
def _det(a, A):
    return np.asarray(np.linalg.det(A.astype(np.float64))).reshape(A.shape[:-2] or (1,)).astype(A.dtype)


@register('_backward_linalg_det', kind='opaque', inputs=('ograd', 'A', 'out'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of linalg.det: ograd * det * A^-T.")
def _det_bw(a, g, A, det):
    A64 = A.astype(np.float64)
    scale = (g.astype(np.float64) * det).reshape(A.shape[:-2] + (1, 1))
    return (scale * _T(np.linalg.inv(A64))).astype(A.dtype)


@register('_linalg_slogdet', kind='opaque', inputs=('A',), num_outputs=2,
          infer=lambda a, s, d: ([_det_infer(a, s, d)[0][0]] * 2, [d[0]] * 2),
          grad=lambda F, a, x, y, dy: [F._backward_linalg_slogdet(dy[1], x[0])],
          doc="(sign, log|det|) of each square matrix (MXNet's linalg.slogdet).")
def _slogdet(a, A):
    s, l = np.linalg.slogdet(A.astype(np.float64))
    shape = A.shape[:-2] or (1,)
    return np.asarray(s).reshape(shape).astype(A.dtype), np.asarray(l).reshape(shape).astype(A.dtype)


@register('_backward_linalg_slogdet', kind='opaque', inputs=('ograd', 'A'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of log|det A|: ograd * A^-T.")
def _slogdet_bw(a, g, A):
    return (g.astype(np.float64).reshape(A.shape[:-2] + (1, 1)) * _T(np.linalg.inv(A.astype(np.float64)))).astype(A.dtype)


@register('_linalg_sumlogdiag', kind='opaque', inputs=('A',),
          infer=lambda a, s, d: ([_det_infer(a, s, d)[0][0]], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._backward_linalg_sumlogdiag(dy[0], x[0])],
          doc="sum(log(diag(A))) of each square matrix (MXNet's linalg.sumlogdiag).")
def _sumlogdiag(a, A):
    return np.log(np.diagonal(A, axis1=-2, axis2=-1)).sum(-1).reshape(A.shape[:-2] or (1,)).astype(A.dtype)


@register('_backward_linalg_sumlogdiag', kind='opaque', inputs=('ograd', 'A'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of linalg.sumlogdiag: ograd / diag(A) on the diagonal.")
def _sumlogdiag_bw(a, g, A):
    n = A.shape[-1]
    d = g.reshape(A.shape[:-2] + (1,)) / np.diagonal(A, axis1=-2, axis2=-1)
    return (d[..., None] * np.eye(n)).astype(A.dtype)


def _diag_len(n, m, k):
    return max(0, min(n, m - k) if k >= 0 else min(n + k, m))


@register('_linalg_extractdiag', kind='opaque', inputs=('A',), attrs={'offset': Attr('int', 0)},
          infer=lambda a, s, d: ([s[0][:-2] + (_diag_len(s[0][-2], s[0][-1], a['offset']),)], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._linalg_makediag(dy[0], offset=a['offset'])],
          doc="The offset-th diagonal of each matrix (MXNet's linalg.extractdiag; square matrices).")
def _extractdiag(a, A):
    return np.diagonal(A, offset=a['offset'], axis1=-2, axis2=-1).copy()


@register('_linalg_makediag', kind='opaque', inputs=('A',), attrs={'offset': Attr('int', 0)},
          infer=lambda a, s, d: ([s[0][:-1] + (s[0][-1] + abs(a['offset']),) * 2], [d[0]]),
          grad=lambda F, a, x, y, dy: [F._linalg_extractdiag(dy[0], offset=a['offset'])],
          doc="Square matrices with the last axis of A on their offset-th diagonal (MXNet's linalg.makediag).")
def _makediag(a, A):
    k, n = a['offset'], A.shape[-1] + abs(a['offset'])
    out = np.zeros(A.shape[:-1] + (n, n), A.dtype)
    i = np.arange(A.shape[-1])
    out[..., i + max(-k, 0), i + max(k, 0)] = A
    return out


def _gelqf_infer(a, s, d):
    A = s[0]
    if len(A) < 2 or A[-2] > A[-1]:
        bad(f"linalg.gelqf: needs matrices (.., m, n) with m <= n, got shape {A}")
    return [A, A[:-2] + (A[-2], A[-2])], [d[0], d[0]]


@register('_linalg_gelqf', kind='opaque', inputs=('A',), num_outputs=2, infer=_gelqf_infer,
          grad=lambda F, a, x, y, dy: [F._backward_linalg_gelqf(dy[0], dy[1], y[0], y[1])],
          doc="LQ factorization A = L Q of (.., m, n) matrices, m <= n: Q (.., m, n) with orthonormal rows and "
              "L (.., m, m) lower triangular (MXNet's linalg.gelqf, LAPACK's signs).")
def _gelqf(a, A):
    _gelqf_infer(a, [A.shape], [A.dtype])
    q, r = np.linalg.qr(_T(A).astype(np.float64))  # A^T = Q' R'  =>  A = R'^T Q'^T (LAPACK's geqrf on A^T)
    return _T(q).astype(A.dtype), _T(r).astype(A.dtype)


@register('_backward_linalg_gelqf', kind='opaque', inputs=('dQ', 'dL', 'Q', 'L'), differentiable=False,
          infer=lambda a, s, d: ([s[2]], [d[2]]), doc="Gradient of linalg.gelqf.")
def _gelqf_bw(a, dQ, dL, Q, L):
    # M = L^T dL - dQ Q^T made symmetric from its lower triangle; dA = L^-T (dQ + sym(M) Q)
    dt = Q.dtype
    dQ, dL, Q, L = (v.astype(np.float64) for v in (dQ, dL, Q, L))
    M = _T(L) @ dL - dQ @ _T(Q)
    M = np.tril(M) + _T(np.tril(M, -1))
    return np.linalg.solve(_T(L), dQ + M @ Q).astype(dt)
