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


# ---------------------------------------------------------------- mx.np.linalg's decompositions and solvers (_npi_*)
# Computed in float64 by LAPACK (NumPy), returned in the input's float dtype (float32 for integer inputs, as MXNet).
# Each gradient is a backward op of its own, differentiated by the formulas in the comments.
def _real_dtype(d):
    return d if d.kind == 'f' else np.dtype(np.float32)


def _w64(*xs):
    return [x.astype(np.float64) for x in xs]


def _square_batch(name, s):
    if len(s) < 2 or s[-1] != s[-2]:
        bad(f"{name}: needs square matrices in the last two axes, got shape {s}")


def _offdiag_inv(w):
    """F[..., i, j] = 1 / (w_j - w_i) off the diagonal, 0 on it (the eigen/singular value gaps' inverses)."""
    e = w[..., None, :] - w[..., :, None]
    n = w.shape[-1]
    e[..., np.arange(n), np.arange(n)] = 1.0
    f = 1.0 / e
    f[..., np.arange(n), np.arange(n)] = 0.0
    return f


def _svd_infer(a, s, d):
    A = s[0]
    if len(A) < 2 or A[-2] > A[-1]:
        bad(f"np.linalg.svd: needs matrices (..., M, N) with M <= N (MXNet's svd), got shape {A}")
    m, n = A[-2:]
    return [A[:-2] + (m, m), A[:-2] + (m,), A], [_real_dtype(d[0])] * 3


@register('_npi_svd', kind='opaque', inputs=('A',), num_outputs=3, infer=_svd_infer,
          grad=lambda F, a, x, y, dy: [F._backward_npi_svd(*dy, *y)],
          doc="(UT, L, V) with A = UT @ diag(L) @ V for (..., M, N) matrices, M <= N: UT (..., M, M) orthogonal, L "
              "(..., M) singular values in descending order, V (..., M, N) with orthonormal rows (MXNet's np.linalg.svd).")
def _npi_svd(a, A):
    dt = _svd_infer(a, [A.shape], [A.dtype])[1][0]
    u, s, vh = np.linalg.svd(A.astype(np.float64), full_matrices=False)
    return u.astype(dt), s.astype(dt), vh.astype(dt)


@register('_backward_npi_svd', kind='opaque', inputs=('dUT', 'dL', 'dV', 'UT', 'L', 'V'), differentiable=False,
          infer=lambda a, s, d: ([s[5]], [d[5]]), doc="Gradient of np.linalg.svd.")
def _npi_svd_bw(a, gU, gS, gVh, U, S, Vh):
    # A = U S Vh (U square): dA = U [J S + diag(dS) + S K] Vh + U S^-1 dVh (I - Vh^T Vh), with J = F o skew(U^T dU),
    # K = F o skew(Vh dVh^T), F_ij = 1 / (s_j^2 - s_i^2)
    dt = U.dtype
    gU, gS, gVh, U, S, Vh = _w64(gU, gS, gVh, U, S, Vh)
    f = _offdiag_inv(S * S)
    ut_gu, vh_gv = _T(U) @ gU, Vh @ _T(gVh)
    j, k = f * (ut_gu - _T(ut_gu)), f * (vh_gv - _T(vh_gv))
    inner = j * S[..., None, :] + S[..., :, None] * k
    inner[..., np.arange(S.shape[-1]), np.arange(S.shape[-1])] += gS
    with np.errstate(divide='ignore', invalid='ignore'):
        rest = (gVh - (gVh @ _T(Vh)) @ Vh) / S[..., :, None]
    return (U @ (inner @ Vh + rest)).astype(dt)


def _uplo(A, uplo):
    """The symmetric matrix that A's lower (uplo 'L') or upper ('U') triangle stands for, as LAPACK reads it."""
    t = np.tril(A) if uplo == 'L' else np.triu(A)
    return t + _T(t) - A * np.eye(A.shape[-1])


def _fold(G, uplo):
    """The gradient with respect to the triangle that was read, from G, the one with respect to the full matrix."""
    S = G + _T(G)
    return (np.tril(S) if uplo == 'L' else np.triu(S)) - G * np.eye(G.shape[-1])


UPLO = {'UPLO': Attr('str', 'L', choices=('L', 'U'))}


def _eig_infer(name, vectors):
    def infer(a, s, d):
        _square_batch(name, s[0])
        dt = _real_dtype(d[0])
        return ([s[0][:-1], s[0]], [dt, dt]) if vectors else ([s[0][:-1]], [dt])
    return infer


@register('_npi_eigh', kind='opaque', inputs=('A',), attrs=UPLO, num_outputs=2, infer=_eig_infer('np.linalg.eigh', True),
          grad=lambda F, a, x, y, dy: [F._backward_npi_eigh(dy[0], dy[1], y[0], y[1], **a)],
          doc="(w, v): the eigenvalues (ascending) and unit eigenvectors (columns) of the symmetric matrices that "
              "A's lower (UPLO='L') or upper triangle stands for (MXNet's np.linalg.eigh).")
def _npi_eigh(a, A):
    dt = _real_dtype(A.dtype)
    w, v = np.linalg.eigh(A.astype(np.float64), UPLO=a['UPLO'])
    return w.astype(dt), v.astype(dt)


def _eigh_grad(gw, gv, w, v):
    # dA = V (diag(dw) + F o (V^T dV)) V^T, F_ij = 1 / (w_j - w_i), for a symmetric perturbation of A
    inner = np.zeros_like(v) if gv is None else _offdiag_inv(w) * (_T(v) @ gv)
    inner[..., np.arange(w.shape[-1]), np.arange(w.shape[-1])] += gw
    return v @ inner @ _T(v)


@register('_backward_npi_eigh', kind='opaque', inputs=('dw', 'dv', 'w', 'v'), attrs=UPLO, differentiable=False,
          infer=lambda a, s, d: ([s[3]], [d[3]]), doc="Gradient of np.linalg.eigh.")
def _npi_eigh_bw(a, gw, gv, w, v):
    return _fold(_eigh_grad(*_w64(gw, gv, w, v)), a['UPLO']).astype(v.dtype)


@register('_npi_eigvalsh', kind='opaque', inputs=('A',), attrs=UPLO, infer=_eig_infer('np.linalg.eigvalsh', False),
          grad=lambda F, a, x, y, dy: [F._backward_npi_eigvalsh(dy[0], x[0], **a)],
          doc="The eigenvalues (ascending) of the symmetric matrices that A's lower (UPLO='L') or upper triangle "
              "stands for (MXNet's np.linalg.eigvalsh).")
def _npi_eigvalsh(a, A):
    return np.linalg.eigvalsh(A.astype(np.float64), UPLO=a['UPLO']).astype(_real_dtype(A.dtype))


@register('_backward_npi_eigvalsh', kind='opaque', inputs=('dw', 'A'), attrs=UPLO, differentiable=False,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of np.linalg.eigvalsh.")
def _npi_eigvalsh_bw(a, gw, A):
    w, v = np.linalg.eigh(A.astype(np.float64), UPLO=a['UPLO'])
    return _fold(_eigh_grad(gw.astype(np.float64), None, w, v), a['UPLO']).astype(A.dtype)


def _real_eig(A, name):
    w, v = np.linalg.eig(A.astype(np.float64))
    if np.iscomplexobj(w):
        if np.abs(w.imag).max(initial=0) > 1e-12 * max(1.0, np.abs(w.real).max(initial=0)):
            bad(f"{name}: the matrix has complex eigenvalues, which MXNet's np.linalg does not return "
                f"(shape {A.shape})")
        w, v = w.real, v.real
    return w, v


@register('_npi_eig', kind='opaque', inputs=('A',), num_outputs=2, infer=_eig_infer('np.linalg.eig', True),
          grad=lambda F, a, x, y, dy: [F._backward_npi_eig(dy[0], dy[1], y[0], y[1])],
          doc="(w, v): the real eigenvalues and unit eigenvectors (columns) of square matrices (MXNet's "
              "np.linalg.eig: an error for complex eigenvalues).")
def _npi_eig(a, A):
    dt = _real_dtype(A.dtype)
    w, v = _real_eig(A, 'np.linalg.eig')
    return w.astype(dt), v.astype(dt)


def _eig_grad(gw, gv, w, v):
    # dA = V^-T (diag(dw) + F o (V^T dV - V^T V diag(V^T dV))) V^T, F_ij = 1 / (w_j - w_i): unit-norm columns kept
    if gv is None:
        inner = np.zeros_like(v)
    else:
        vtg = _T(v) @ gv
        inner = _offdiag_inv(w) * (vtg - _T(v) @ v * np.diagonal(vtg, axis1=-2, axis2=-1)[..., None, :])
    inner[..., np.arange(w.shape[-1]), np.arange(w.shape[-1])] += gw
    return np.linalg.solve(_T(v), inner @ _T(v))


@register('_backward_npi_eig', kind='opaque', inputs=('dw', 'dv', 'w', 'v'), differentiable=False,
          infer=lambda a, s, d: ([s[3]], [d[3]]), doc="Gradient of np.linalg.eig.")
def _npi_eig_bw(a, gw, gv, w, v):
    return _eig_grad(*_w64(gw, gv, w, v)).astype(v.dtype)


@register('_npi_eigvals', kind='opaque', inputs=('A',), infer=_eig_infer('np.linalg.eigvals', False),
          grad=lambda F, a, x, y, dy: [F._backward_npi_eigvals(dy[0], x[0])],
          doc="The real eigenvalues of square matrices (MXNet's np.linalg.eigvals: an error for complex ones).")
def _npi_eigvals(a, A):
    return _real_eig(A, 'np.linalg.eigvals')[0].astype(_real_dtype(A.dtype))


@register('_backward_npi_eigvals', kind='opaque', inputs=('dw', 'A'), differentiable=False,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of np.linalg.eigvals.")
def _npi_eigvals_bw(a, gw, A):
    w, v = _real_eig(A, 'np.linalg.eigvals')
    return _eig_grad(gw.astype(np.float64), None, w, v).astype(A.dtype)


def _chol_infer(a, s, d):
    _square_batch('np.linalg.cholesky', s[0])
    return [s[0]], [d[0]]


@register('_npi_cholesky', kind='opaque', inputs=('A',), infer=_chol_infer,
          grad=lambda F, a, x, y, dy: [F._backward_npi_cholesky(dy[0], y[0])],
          doc="The lower Cholesky factor of the symmetric part (A + A^T) / 2 of each matrix (MXNet's "
              "np.linalg.cholesky: its gradient is symmetric; NumPy reads A's lower triangle, the same on symmetric A).")
def _npi_cholesky(a, A):
    A64 = A.astype(np.float64)
    try:
        return np.linalg.cholesky(0.5 * (A64 + _T(A64))).astype(A.dtype)
    except np.linalg.LinAlgError:
        bad(f"np.linalg.cholesky: the matrix is not positive definite (shape {A.shape})")


@register('_backward_npi_cholesky', kind='opaque', inputs=('ograd', 'L'), infer=lambda a, s, d: ([s[1]], [d[1]]),
          differentiable=False, doc="Gradient of np.linalg.cholesky: sym(L^-T Phi(L^T dL) L^-1).")
def _npi_cholesky_bw(a, g, L):
    L64, g64 = _w64(L, g)
    P = np.matmul(_T(L64), g64)
    P = np.tril(P) - 0.5 * np.eye(P.shape[-1]) * P
    Linv = np.linalg.inv(L64)
    S = _T(Linv) @ P @ Linv
    return (0.5 * (S + _T(S))).astype(L.dtype)


def _solve_infer(a, s, d):
    A, B = s
    _square_batch('np.linalg.solve', A)
    vec = len(B) == len(A) - 1
    if B[:len(A) - 2] != A[:-2] or (B[-1] if vec else B[-2]) != A[-1] or len(B) not in (len(A), len(A) - 1):
        bad(f"np.linalg.solve: b of shape {B} does not fit a of shape {A} (b: (..., M) or (..., M, K) with a's batch)")
    return [B], [d[1]]


def _as_mat(B, A):
    return B[..., None] if B.ndim == A.ndim - 1 else B


@register('_npi_solve', kind='opaque', inputs=('A', 'B'), infer=_solve_infer,
          grad=lambda F, a, x, y, dy: list(F._backward_npi_solve(dy[0], x[0], y[0])),
          doc="X with A @ X = B for square A (..., M, M) and B (..., M, K), or B (..., M) (MXNet's np.linalg.solve).")
def _npi_solve(a, A, B):
    _solve_infer(a, [A.shape, B.shape], [A.dtype, B.dtype])
    try:
        X = np.linalg.solve(A.astype(np.float64), _as_mat(B, A).astype(np.float64))
    except np.linalg.LinAlgError:
        bad(f"np.linalg.solve: the matrix is singular (shape {A.shape})")
    return X.reshape(B.shape).astype(B.dtype)


@register('_backward_npi_solve', kind='opaque', inputs=('ograd', 'A', 'X'), num_outputs=2, differentiable=False,
          infer=lambda a, s, d: ([s[1], s[2]], [d[1], d[2]]), doc="Gradient of np.linalg.solve: dB = A^-T dX, dA = -dB X^T.")
def _npi_solve_bw(a, g, A, X):
    A64, g64, X64 = _w64(A, _as_mat(g, A), _as_mat(X, A))
    gB = np.linalg.solve(_T(A64), g64)
    return (-gB @ _T(X64)).astype(A.dtype), gB.reshape(X.shape).astype(X.dtype)


PINV_ATTRS = {'hermitian': Attr('bool', False)}


def _pinv_infer(a, s, d):
    A = s[0]
    if len(A) < 2:
        bad(f"np.linalg.pinv: needs matrices (at least 2-d), got shape {A}")
    if len(s) > 1:
        try:
            np.broadcast_shapes(tuple(s[1]), A[:-2])
        except ValueError:
            bad(f"np.linalg.pinv: rcond of shape {s[1]} does not broadcast with the batch shape {A[:-2]}")
    return [A[:-2] + (A[-1], A[-2])], [_real_dtype(d[0])]


def _pinv(A, rcond, hermitian):
    return np.linalg.pinv(A.astype(np.float64), np.asarray(rcond, np.float64), hermitian=hermitian).astype(
        _real_dtype(A.dtype))


def _pinv_grad(F, a, x, y, dy):
    return [F._backward_npi_pinv(dy[0], x[0], y[0], hermitian=a['hermitian'])] + [None] * (len(x) - 1)


@register('_npi_pinv', kind='opaque', inputs=('A', 'rcond'), attrs=PINV_ATTRS, infer=_pinv_infer, nograd_inputs=(1,),
          grad=_pinv_grad, mixed_dtypes=True,
          doc="The Moore-Penrose pseudo-inverse of each matrix; singular values below rcond * the largest are "
              "dropped (rcond broadcasts with the batch axes) (MXNet's np.linalg.pinv).")
def _npi_pinv(a, A, rcond):
    return _pinv(A, rcond, a['hermitian'])


@register('_npi_pinv_scalar_rcond', kind='opaque', inputs=('A',), infer=_pinv_infer, grad=_pinv_grad,
          attrs={'rcond': Attr('float', 1e-15), **PINV_ATTRS},
          doc="np.linalg.pinv with a number for rcond.")
def _npi_pinv_scalar(a, A):
    return _pinv(A, a['rcond'], a['hermitian'])


@register('_backward_npi_pinv', kind='opaque', inputs=('ograd', 'A', 'P'), differentiable=False, attrs=PINV_ATTRS,
          infer=lambda a, s, d: ([s[1]], [d[1]]), doc="Gradient of np.linalg.pinv (where the rank does not change).")
def _npi_pinv_bw(a, g, A, P):
    # dA = -P^T g P^T + (I - A P) g^T P P^T + P^T P g^T (I - P A), for P = pinv(A) (Golub and Pereyra)
    dt = A.dtype
    g, A, P = _w64(g, A, P)
    m, n = A.shape[-2:]
    gt = _T(g)
    out = -_T(P) @ g @ _T(P) + (np.eye(m) - A @ P) @ gt @ P @ _T(P) + _T(P) @ P @ gt @ (np.eye(n) - P @ A)
    return (_fold(out, 'L') if a['hermitian'] else out).astype(dt)  # (hermitian: LAPACK read the lower triangle)


def _qr_infer(a, s, d):
    A = s[0]
    if len(A) < 2:
        bad(f"np.linalg.qr: needs matrices (at least 2-d), got shape {A}")
    m, n = A[-2:]
    k = min(m, n)
    dt = _real_dtype(d[0])
    return [A[:-2] + (m, k), A[:-2] + (k, n)], [dt, dt]


@register('_npi_qr', kind='opaque', inputs=('A',), num_outputs=2, infer=_qr_infer,
          grad=lambda F, a, x, y, dy: [F._backward_npi_qr(dy[0], dy[1], x[0], y[0], y[1])],
          doc="(Q, R) with A = Q @ R: Q (..., M, K) with orthonormal columns, R (..., K, N) upper triangular, "
              "K = min(M, N) (MXNet's np.linalg.qr, mode 'reduced'; LAPACK's signs).")
def _npi_qr(a, A):
    dt = _real_dtype(A.dtype)
    q, r = np.linalg.qr(A.astype(np.float64), mode='reduced')
    return q.astype(dt), r.astype(dt)


def _qr_grad_tall(gQ, gR, Q, R):
    # M >= N: with M = R dR^T - dQ^T Q, dA = (dQ + Q copyltu(M)) R^-T (copyltu: the lower triangle mirrored)
    M = R @ _T(gR) - _T(gQ) @ Q
    M = np.tril(M) + _T(np.tril(M, -1))
    return _T(np.linalg.solve(R, _T(gQ + Q @ M)))


@register('_backward_npi_qr', kind='opaque', inputs=('dQ', 'dR', 'A', 'Q', 'R'), differentiable=False,
          infer=lambda a, s, d: ([s[2]], [d[2]]), doc="Gradient of np.linalg.qr (full-rank A).")
def _npi_qr_bw(a, gQ, gR, A, Q, R):
    dt = A.dtype
    gQ, gR, A, Q, R = _w64(gQ, gR, A, Q, R)
    m, n = A.shape[-2:]
    if m >= n:
        return _qr_grad_tall(gQ, gR, Q, R).astype(dt)
    # M < N: A = [X Y], X = Q R1 is square's QR, Y = Q R2: Y's dQ part moves onto X's
    gX = _qr_grad_tall(gQ + A[..., m:] @ _T(gR[..., m:]), gR[..., :m], Q, R[..., :m])
    return np.concatenate([gX, Q @ gR[..., m:]], axis=-1).astype(dt)


def _rank_infer(a, s, d):
    return [s[0][:-2] if len(s[0]) >= 2 else ()], [np.dtype(np.int64)]


def _rank(M, tol, hermitian):
    M = M if M.dtype.kind == 'f' else M.astype(np.float64)  # (the default tol is in M's precision, as NumPy's)
    return np.asarray(np.linalg.matrix_rank(M, tol, hermitian=hermitian)).astype(np.int64)


@register('_npi_matrix_rank', kind='opaque', inputs=('M', 'tol'), infer=_rank_infer, mixed_dtypes=True,
          attrs={'hermitian': Attr('bool', False)},
          doc="The rank of each matrix: its singular values above tol (broadcast with the batch axes) (MXNet's "
              "np.linalg.matrix_rank; an integer: no gradient).")
def _npi_matrix_rank(a, M, tol):
    return _rank(M, tol.astype(np.float64), a['hermitian'])


@register('_npi_matrix_rank_none_tol', kind='opaque', inputs=('M',), infer=_rank_infer,
          attrs={'tol': Attr('float', None), 'hermitian': Attr('bool', False)},
          doc="np.linalg.matrix_rank with a number for tol, or NumPy's default (None: S.max() * max(M, N) * eps); "
              "a vector (1-d M) has rank 1 unless it is all zero.")
def _npi_matrix_rank_none_tol(a, M):
    if M.ndim < 2:
        return np.asarray(int(np.any(M != 0)), dtype=np.int64)
    return _rank(M, a['tol'], a['hermitian'])
