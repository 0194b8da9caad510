"""Sparse storage (row_sparse, csr) against NumPy oracles: construction, conversion, the sparse kernels and
their storage types, autograd's sparse gradients, lazy vs standard optimizer updates (MXNet's formulas) and the
Gluon parts (row_sparse Parameters, sparse_grad Embedding, row_sparse_pull)."""
import numpy as np
import pytest

import graphc as mx
from graphc import autograd, gluon, nd
from graphc.ndarray import sparse

RNG = np.random.default_rng(0)


def _rows_dense(shape=(6, 3), rows=(1, 4)):
    d = np.zeros(shape, np.float32)
    d[list(rows)] = RNG.uniform(0.5, 1.5, (len(rows),) + shape[1:])
    return d


def _csr_dense(shape=(4, 5)):
    d = RNG.uniform(0.5, 1.5, shape).astype(np.float32)
    d[RNG.uniform(size=shape) < 0.6] = 0
    return d


# ---------------------------------------------------------------- construction and conversion
def test_row_sparse_is_compressed():
    d = _rows_dense()
    x = nd.array(d).tostype('row_sparse')
    assert type(x) is sparse.RowSparseNDArray and x.stype == 'row_sparse' and x.shape == (6, 3)
    assert x.indices.asnumpy().tolist() == [1, 4] and x.data.shape == (2, 3)
    np.testing.assert_array_equal(x.asnumpy(), d)
    np.testing.assert_array_equal(x.todense().asnumpy(), d)
    y = sparse.row_sparse_array((d[[4, 1]], [4, 1]), shape=(6, 3))  # unsorted indices are sorted
    np.testing.assert_array_equal(y.asnumpy(), d)
    assert y.indices.dtype == np.int64
    with pytest.raises(mx.base.MXNetError, match='indices'):
        sparse.row_sparse_array((d[[1, 1]], [1, 1]), shape=(6, 3))


def test_csr_is_compressed():
    d = _csr_dense()
    x = sparse.csr_matrix(d)
    r, c = np.nonzero(d)
    assert x.stype == 'csr' and x.indices.asnumpy().tolist() == c.tolist()
    np.testing.assert_array_equal(x.data.asnumpy(), d[r, c])
    np.testing.assert_array_equal(x.indptr.asnumpy(), np.r_[0, np.cumsum((d != 0).sum(1))])
    y = sparse.csr_matrix((x.data, x.indices, x.indptr), shape=d.shape)
    np.testing.assert_array_equal(y.asnumpy(), d)
    coo = sparse.csr_matrix(([1.0, 2.0, 3.0], ([0, 2, 0], [1, 0, 1])), shape=(3, 2))  # duplicates summed
    np.testing.assert_array_equal(coo.asnumpy(), [[0, 4], [0, 0], [2, 0]])
    with pytest.raises(mx.base.MXNetError, match='indptr'):
        sparse.csr_matrix(([1.0], [0], [0, 2]), shape=(1, 3))
    with pytest.raises(mx.base.MXNetError, match='2-d'):
        nd.ones((2, 2, 2)).tostype('csr')


def test_scipy_like_source_and_split():
    class Fake:  # what csr_matrix reads of a scipy.sparse matrix
        nnz, shape = 1, (100, 1000)

        def tocsr(self):
            return self

        def sum_duplicates(self):
            pass

        sort_indices = sum_duplicates
        data, indices, indptr = np.array([2.0]), np.array([999]), np.r_[np.zeros(100, int), 1]
    x = sparse.csr_matrix(Fake())
    assert x.asnumpy()[99, 999] == 2.0 and x.asnumpy().sum() == 2.0
    parts = gluon.utils.split_and_load(x, [mx.cpu(0), mx.cpu(0)])
    assert all(isinstance(p, sparse.CSRNDArray) for p in parts)
    np.testing.assert_array_equal(np.concatenate([p.asnumpy() for p in parts]), x.asnumpy())


def test_conversions_zeros_and_copies():
    d = _rows_dense((4, 4), (0, 3))
    for a in ('default', 'row_sparse', 'csr'):
        for b in ('default', 'row_sparse', 'csr'):
            y = nd.array(d).tostype(a).tostype(b)
            assert y.stype == b
            np.testing.assert_array_equal(y.asnumpy(), d)
            out = nd.zeros((4, 4), stype=b)
            nd.array(d).tostype(a).copyto(out)
            assert out.stype == b
            np.testing.assert_array_equal(out.asnumpy(), d)
    z = sparse.zeros('row_sparse', (3, 2), dtype='float64')
    assert z.dtype == np.float64 and z.data.shape == (0, 2) and not z.asnumpy().any()
    assert nd.empty((2, 2), stype='csr').stype == 'csr'
    x = nd.array(d).tostype('row_sparse')
    c = x.copyto(mx.cpu(1))
    assert c.stype == 'row_sparse' and c.context == mx.cpu(1) and x.detach().stype == 'row_sparse'
    assert x.astype('float64').stype == 'row_sparse' and x.astype('float64').dtype == np.float64
    x[:] = 3.0  # MXNet's _set_value: every row
    assert x.indices.asnumpy().tolist() == [0, 1, 2, 3] and (x.asnumpy() == 3).all()
    x[:] = nd.array(d)
    np.testing.assert_array_equal(x.asnumpy(), d)
    with pytest.raises(mx.base.MXNetError, match=r'x\[:\]'):
        x[0]
    assert nd.array(d).tostype('csr')[1:3].stype == 'csr'


# ---------------------------------------------------------------- kernels and storage inference
def test_unary_and_scalar_ops_keep_the_storage_type():
    d = _rows_dense()
    for st in ('row_sparse', 'csr'):
        x = nd.array(d).tostype(st)
        for f, ref in ((nd.square, np.square), (nd.sqrt, np.sqrt), (nd.negative, np.negative), (nd.abs, np.abs),
                       (lambda a: a * 3, lambda a: a * 3), (lambda a: a / 2, lambda a: a / 2),
                       (lambda a: nd.clip(a, -1, 1), lambda a: np.clip(a, -1, 1))):
            y = f(x)
            assert y.stype == st
            np.testing.assert_allclose(y.asnumpy(), ref(d), rtol=1e-6)
        for f, ref in ((nd.exp, np.exp), (lambda a: a + 1, lambda a: a + 1), (lambda a: nd.clip(a, 1, 2),
                                                                               lambda a: np.clip(a, 1, 2))):
            y = f(x)  # f(0) != 0: the dense fallback, default storage
            assert y.stype == 'default'
            np.testing.assert_allclose(y.asnumpy(), ref(d), rtol=1e-6)
        assert nd.zeros_like(x).stype == st and not nd.zeros_like(x).asnumpy().any()


def test_binary_ops_storage_types():
    a, b = _rows_dense((6, 3), (0, 2)), _rows_dense((6, 3), (2, 5))
    ra, rb = nd.array(a).tostype('row_sparse'), nd.array(b).tostype('row_sparse')
    s = ra + rb
    assert s.stype == 'row_sparse' and s.indices.asnumpy().tolist() == [0, 2, 5]
    np.testing.assert_allclose(s.asnumpy(), a + b)
    assert (ra - rb).stype == 'row_sparse'
    np.testing.assert_allclose((ra - rb).asnumpy(), a - b)
    m = ra * rb
    assert m.stype == 'row_sparse' and m.indices.asnumpy().tolist() == [2]
    np.testing.assert_allclose(m.asnumpy(), a * b)
    md = ra * nd.array(b)
    assert md.stype == 'row_sparse' and (nd.array(b) * ra).stype == 'row_sparse'
    np.testing.assert_allclose(md.asnumpy(), a * b)
    assert (ra + nd.array(b)).stype == 'default'
    np.testing.assert_allclose((ra + nd.array(b)).asnumpy(), a + b)
    ca, cb = nd.array(a).tostype('csr'), nd.array(b).tostype('csr')
    assert (ca + cb).stype == 'csr' and (ca * cb).stype == 'csr'
    np.testing.assert_allclose((ca + cb).asnumpy(), a + b)
    np.testing.assert_allclose((ca * cb).asnumpy(), a * b)
    assert sparse.add(ra, rb).stype == 'row_sparse' and sparse.multiply(ca, cb).stype == 'csr'
    y = ra.copy()
    y += rb
    assert y.stype == 'row_sparse'
    np.testing.assert_allclose(y.asnumpy(), a + b)


def test_dot_storage_types():
    c = _csr_dense((4, 5))
    w = RNG.uniform(size=(5, 3)).astype(np.float32)
    g = RNG.uniform(size=(4, 3)).astype(np.float32)
    x = nd.array(c).tostype('csr')
    y = nd.dot(x, nd.array(w))
    assert y.stype == 'default'
    np.testing.assert_allclose(y.asnumpy(), c @ w, rtol=1e-5)
    t = nd.dot(x, nd.array(g), transpose_a=True)
    assert t.stype == 'row_sparse' and t.indices.asnumpy().tolist() == sorted(set(np.nonzero(c)[1]))
    np.testing.assert_allclose(t.asnumpy(), c.T @ g, rtol=1e-5)
    r = sparse.dot(x, nd.array(w).tostype('row_sparse'))
    np.testing.assert_allclose(r.asnumpy(), c @ w, rtol=1e-5)


def test_retain():
    d = _rows_dense((5, 2), (0, 2, 4))
    r = sparse.retain(nd.array(d).tostype('row_sparse'), nd.array([4, 1, 0]))
    want = d.copy()
    want[[1, 2, 3]] = 0
    assert r.indices.asnumpy().tolist() == [0, 4]
    np.testing.assert_array_equal(r.asnumpy(), want)


# ---------------------------------------------------------------- autograd
def test_grad_storage_types():
    for array_st in ('default', 'row_sparse', 'csr'):
        x = nd.zeros((2, 2), stype=array_st)
        x.attach_grad()
        assert x.grad.stype == array_st
        for grad_st in ('default', 'row_sparse', 'csr'):
            x.attach_grad(stype=grad_st)
            assert x.grad.stype == grad_st and x.detach().stype == array_st


def test_backward_into_sparse_grads():
    c = _csr_dense((3, 6))
    lhs = nd.array(c).tostype('csr')
    for w in (nd.ones((6, 2)).tostype('row_sparse'), nd.ones((6, 2))):
        w.attach_grad(stype='row_sparse')
        with autograd.record():
            y = nd.dot(lhs, w)
        y.backward()
        assert w.grad.stype == 'row_sparse'
        np.testing.assert_allclose(w.grad.asnumpy(), c.T @ np.ones((3, 2)), rtol=1e-6)
    x = nd.array(_rows_dense()).tostype('row_sparse')
    x.attach_grad(grad_req='add')
    for _ in range(2):
        with autograd.record():
            z = (x * 3).sum()  # _mul_scalar keeps row_sparse, sum falls back: both recorded
        z.backward()
    assert x.grad.stype == 'row_sparse' and (x.grad.asnumpy() == 6).all()
    g = nd.zeros((6, 3)).tostype('csr')
    v = nd.array(_rows_dense())
    autograd.mark_variables([v], [g])
    with autograd.record():
        z = nd.square(v.tostype('row_sparse'))  # cast_storage is differentiable (identity)
    z.backward()
    assert g.stype == 'csr'
    np.testing.assert_allclose(g.asnumpy(), 2 * v.asnumpy(), rtol=1e-6)
    w = nd.ones((4, 2))
    w.attach_grad(stype='row_sparse')
    with autograd.record():
        y = nd.dot(nd.array(_csr_dense((3, 4))).tostype('csr'), w)
    assert autograd.grad(y, [w])[0].stype == 'row_sparse'


# ---------------------------------------------------------------- optimizers: lazy vs standard
def _opt_case(shape=(5, 3), rows=(1, 3)):
    w = RNG.uniform(-1, 1, shape).astype(np.float32)
    g = _rows_dense(shape, rows)
    return w, g, np.array(rows)


def _run(opt, w, g, wstype='default', steps=2):
    weight = nd.array(w).tostype(wstype)
    grad = nd.array(g).tostype('row_sparse')
    state = opt.create_state_multi_precision(0, weight)
    for _ in range(steps):
        opt.update_multi_precision(0, weight, grad, state)
    assert weight.stype == wstype
    return weight.asnumpy()


def _sgd_ref(w, g, rows, lr, wd, mom, steps=2):
    w, m = w.astype(np.float64), np.zeros(w.shape)
    for _ in range(steps):
        for r in rows:
            m[r] = mom * m[r] - lr * (g[r] + wd * w[r])
            w[r] += m[r]
    return w


def _adam_ref(w, g, rows, lr, wd, b1=0.9, b2=0.999, eps=1e-8, steps=2):
    w, m, v = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for t in range(1, steps + 1):
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        for r in rows:
            gr = g[r] + wd * w[r]
            m[r] = b1 * m[r] + (1 - b1) * gr
            v[r] = b2 * v[r] + (1 - b2) * gr * gr
            w[r] -= lr_t * m[r] / (np.sqrt(v[r]) + eps)
    return w


@pytest.mark.parametrize('wstype', ['default', 'row_sparse'])
def test_sgd_lazy_and_std(wstype):
    w, g, rows = _opt_case()
    kw = dict(learning_rate=0.1, wd=0.05, momentum=0.9)
    lazy = _run(mx.optimizer.SGD(**kw), w, g, wstype)
    np.testing.assert_allclose(lazy, _sgd_ref(w, g, rows, 0.1, 0.05, 0.9), rtol=1e-5)
    assert (lazy[[0, 2, 4]] == w[[0, 2, 4]]).all()  # rows the gradient lacks are untouched
    std = _run(mx.optimizer.SGD(lazy_update=False, **kw), w, g, wstype)
    np.testing.assert_allclose(std, _sgd_ref(w, g, range(5), 0.1, 0.05, 0.9), rtol=1e-5)


@pytest.mark.parametrize('wstype', ['default', 'row_sparse'])
def test_adam_lazy_and_std(wstype):
    w, g, rows = _opt_case()
    lazy = _run(mx.optimizer.Adam(learning_rate=0.01, wd=0.1), w, g, wstype)
    np.testing.assert_allclose(lazy, _adam_ref(w, g, rows, 0.01, 0.1), rtol=1e-5)
    std = _run(mx.optimizer.Adam(learning_rate=0.01, wd=0.1, lazy_update=False), w, g, wstype)
    np.testing.assert_allclose(std, _adam_ref(w, g, range(5), 0.01, 0.1), rtol=1e-5)
    assert not np.allclose(lazy, std)


def test_adagrad_and_ftrl_sparse_updates():
    w, g, rows = _opt_case()
    h, want = np.zeros(w.shape), w.astype(np.float64)
    for _ in range(2):  # adagrad_update: h += g^2; w -= lr*g/sqrt(h + eps), on the gradient's rows
        h[rows] += g[rows] ** 2
        want[rows] -= 0.1 * g[rows] / np.sqrt(h[rows] + 1e-7)
    np.testing.assert_allclose(_run(mx.optimizer.AdaGrad(learning_rate=0.1), w, g, 'row_sparse'), want, rtol=1e-5)
    with pytest.raises(mx.base.MXNetError, match='wd'):
        _run(mx.optimizer.AdaGrad(learning_rate=0.1, wd=0.1), w, g)
    z, n, want = np.zeros(w.shape), np.zeros(w.shape), w.astype(np.float64)
    lr, l1, beta, wd = 0.1, 0.01, 1.0, 0.05
    for _ in range(2):  # ftrl_update on the rows the gradient holds (weight and states row_sparse)
        r = rows
        z[r] += g[r] - (np.sqrt(n[r] + g[r] ** 2) - np.sqrt(n[r])) * want[r] / lr
        n[r] += g[r] ** 2
        want[r] = (np.sign(z[r]) * l1 - z[r]) / ((beta + np.sqrt(n[r])) / lr + wd) * (np.abs(z[r]) > l1)
    got = _run(mx.optimizer.Ftrl(learning_rate=lr, lamda1=l1, wd=wd), w, g, 'row_sparse')
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert (got[[0, 2, 4]] == w[[0, 2, 4]]).all()


def test_multi_precision_row_sparse():
    w, g, rows = _opt_case()
    got = _run(mx.optimizer.SGD(learning_rate=0.1, momentum=0.9, multi_precision=True), w.astype(np.float16),
               g.astype(np.float16), 'row_sparse')
    want = _sgd_ref(w.astype(np.float16).astype(np.float32), g.astype(np.float16).astype(np.float32), rows,
                    0.1, 0.0, 0.9)
    np.testing.assert_allclose(got, want, rtol=2e-3)


# ---------------------------------------------------------------- gluon and kvstore
def test_embedding_sparse_grad_and_lazy_trainer():
    for hybrid in (False, True):
        emb = gluon.nn.Embedding(6, 2, sparse_grad=True)
        emb.initialize(mx.init.Uniform())
        if hybrid:
            emb.hybridize()
        w0 = emb.weight.data().asnumpy()
        tr = gluon.Trainer(emb.collect_params(), 'sgd', {'learning_rate': 1.0, 'momentum': 0.5, 'wd': 0.1})
        x = nd.array([[1, 4], [4, 4]])
        with autograd.record():
            loss = emb(x).sum()
        loss.backward()
        g = emb.weight.grad()
        assert g.stype == 'row_sparse' and g.indices.asnumpy().tolist() == [1, 4]
        np.testing.assert_array_equal(g.asnumpy()[[1, 4]], [[1, 1], [3, 3]])
        tr.step(1)
        w1 = emb.weight.data().asnumpy()
        assert (w1[[0, 2, 3, 5]] == w0[[0, 2, 3, 5]]).all()  # lazy: the rows not looked up keep their values
        np.testing.assert_allclose(w1[[1, 4]], w0[[1, 4]] - (g.asnumpy()[[1, 4]] + 0.1 * w0[[1, 4]]), rtol=1e-6)


def test_row_sparse_parameter():
    p = gluon.Parameter('w', shape=(4, 2), stype='row_sparse', grad_stype='row_sparse')
    p.initialize(init=mx.init.Uniform(), ctx=[mx.cpu(1), mx.cpu(2)])
    full = p._data[0].copy()
    assert full.stype == 'row_sparse' and p.grad(mx.cpu(1)).stype == 'row_sparse'
    assert p.var().attr('__storage_type__') == '1'
    with pytest.raises(RuntimeError, match='row_sparse_data'):
        p.data()
    with pytest.raises(RuntimeError, match='Trainer'):
        p.row_sparse_data(nd.array([0], ctx=mx.cpu(1)))
    tr = gluon.Trainer([p], 'sgd', {'learning_rate': 1.0})
    got = p.row_sparse_data(nd.array([2, 0], ctx=mx.cpu(2)))
    assert got.context == mx.cpu(2) and got.stype == 'row_sparse' and got.indices.asnumpy().tolist() == [0, 2]
    np.testing.assert_array_equal(got.asnumpy(), sparse.retain(full, nd.array([0, 2])).asnumpy())
    assert len(p.list_row_sparse_data(nd.arange(0, 4))) == 2
    for c in (mx.cpu(1), mx.cpu(2)):  # a step: the kvstore's lazy update from the summed row_sparse grads
        x = p.row_sparse_data(nd.arange(0, 4, ctx=c))
        with autograd.record():
            y = nd.dot(nd.array([[1, 0, 0, 0]], ctx=c).tostype('csr'), x)
        y.backward()
    tr.step(1)
    after = p.row_sparse_data(nd.arange(0, 4, ctx=mx.cpu(1))).asnumpy()
    want = full.asnumpy()
    want[0] -= 2
    np.testing.assert_allclose(after, want, rtol=1e-6)


def test_sparse_symbols():
    w = mx.sym.var('w', stype='row_sparse')
    assert w.attr('__storage_type__') == '1'
    out = mx.sym.sparse.dot(mx.sym.var('data', stype='csr'), w)
    with pytest.raises(AssertionError, match='row_sparse'):
        gluon.SymbolBlock(out, mx.sym.var('data'))
    ex = out.simple_bind(mx.cpu(), data=(3, 4), w=(4, 2))
    assert ex.arg_dict['data'].stype == 'csr' and ex.arg_dict['w'].stype == 'row_sparse'
    c = _csr_dense((3, 4))
    ex.arg_dict['data'][:] = nd.array(c).tostype('csr')
    ex.arg_dict['w'][:] = nd.ones((4, 2))
    np.testing.assert_allclose(ex.forward()[0].asnumpy(), c @ np.ones((4, 2)), rtol=1e-6)


def test_save_load_sparse_arrays(tmp_path):
    rsp = nd.array(_rows_dense()).tostype('row_sparse')
    csr = nd.array(_csr_dense()).tostype('csr')
    nd.save(str(tmp_path / 'a.params'), {'r': rsp, 'c': csr, 'd': nd.ones((2,))})
    got = nd.load(str(tmp_path / 'a.params'))
    assert got['r'].stype == 'row_sparse' and got['c'].stype == 'csr' and got['d'].stype == 'default'
    np.testing.assert_array_equal(got['r'].indices.asnumpy(), rsp.indices.asnumpy())
    np.testing.assert_array_equal(got['r'].asnumpy(), rsp.asnumpy())
    np.testing.assert_array_equal(got['c'].indptr.asnumpy(), csr.indptr.asnumpy())
    np.testing.assert_array_equal(got['c'].asnumpy(), csr.asnumpy())


def test_rand_ndarray_density():
    from graphc import test_utils as tu
    r = tu.rand_ndarray((50, 3), 'row_sparse', density=0.3)
    assert r.stype == 'row_sparse' and 5 <= len(r.indices.asnumpy()) <= 30
    c = tu.rand_ndarray((20, 20), 'csr', density=0.0)
    assert c.stype == 'csr' and c.data.shape == (0,)
    assert tu.rand_ndarray((4, 4), 'csr', density=1.0).data.shape == (16,)


def test_ftrl_on_a_row_sparse_parameter_is_lazy():
    """The kvstore holds a row_sparse weight as row_sparse: Ftrl's sparse update leaves untouched rows alone
    (its standard update would zero every row it never saw)."""
    p = gluon.Parameter('w', shape=(4, 2), stype='row_sparse', grad_stype='row_sparse')
    p.initialize(init=mx.init.Uniform())
    full = p._data[0].asnumpy()
    tr = gluon.Trainer([p], 'ftrl', {'learning_rate': 0.1})
    x = p.row_sparse_data(nd.arange(0, 4))
    with autograd.record():
        y = nd.dot(nd.array([[1, 0, 0, 0]]).tostype('csr'), x)
    y.backward()
    tr.step(1)
    after = p.row_sparse_data(nd.arange(0, 4)).asnumpy()
    np.testing.assert_array_equal(after[1:], full[1:])
    assert not np.allclose(after[0], full[0])
