"""The losses MXNet 1.9 has beyond the basic ones (CTC, Triplet, PoissonNLL, CosineEmbedding, SDML), against
NumPy oracles; every loss hybridized == eager and composed on Symbols (as MXNet code does before Module.bind)."""
import itertools

import numpy as np
import pytest

from graphc import autograd, gluon, nd, sym
from graphc.gluon import loss as gloss


def rng(seed=0):
    return np.random.default_rng(seed)


def ctc_brute(x, label, lengths=None):
    """-log p(label | x) over every path of C**T frames (blank = last class), the definition of CTC."""
    T, N, C = x.shape
    out = []
    for n in range(N):
        want = [int(v) for v in label[n] if v >= 0][:None if lengths is None else int(lengths[n])]
        p = np.exp(x[:, n]) / np.exp(x[:, n]).sum(1, keepdims=True)
        tot = 0.0
        for path in itertools.product(range(C), repeat=T):
            col = [k for i, k in enumerate(path) if k != C - 1 and (i == 0 or k != path[i - 1])]
            tot += np.prod(p[np.arange(T), path]) if col == want else 0
        out.append(-np.log(tot))
    return np.array(out)


def test_ctc_matches_path_enumeration_in_both_layouts():
    x = rng().normal(size=(2, 5, 3))            # NTC
    label = np.array([[0, 1], [1, -1]], float)
    ref = ctc_brute(x.transpose(1, 0, 2), label)
    np.testing.assert_allclose(gloss.CTCLoss()(nd.array(x), nd.array(label)).asnumpy(), ref, rtol=1e-5)
    tnc = gloss.CTCLoss(layout='TNC', label_layout='TN')
    np.testing.assert_allclose(tnc(nd.array(x.transpose(1, 0, 2)), nd.array(label.T)).asnumpy(), ref, rtol=1e-5)


def test_ctc_mxnet_published_values_and_lengths():
    # the values MXNet's own test asserts for all-ones activations
    want = np.array([18.82820702, 16.50581741])
    L = gloss.CTCLoss()
    np.testing.assert_allclose(L(nd.ones((2, 20, 4)), nd.array([[1, 0, -1, -1], [2, 1, 1, -1]])).asnumpy(), want,
                               rtol=1e-5)
    out = L(nd.ones((2, 25, 4)), nd.array([[2, 1, 3, 3], [3, 2, 2, 3]]), nd.array([20, 20]), nd.array([2, 3]))
    np.testing.assert_allclose(out.asnumpy(), want, rtol=1e-5)


def test_ctc_gradient_is_numerical_and_hybridized_equals_eager():
    x = rng(1).normal(size=(2, 4, 3))
    label = nd.array([[0, 1], [1, 1]])
    lens = nd.array([4, 3])

    def run(block):
        xa = nd.array(x, dtype='float64')
        xa.attach_grad()
        with autograd.record():
            y = block(xa, label, lens)
            (y * nd.array([1.0, 2.0], dtype='float64')).sum().backward()
        return y.asnumpy(), xa.grad.asnumpy()

    y, g = run(gloss.CTCLoss())
    hy = gloss.CTCLoss()
    hy.hybridize()
    y2, g2 = run(hy)
    np.testing.assert_allclose(y2, y, rtol=1e-6)
    np.testing.assert_allclose(g2, g, rtol=1e-6, atol=1e-9)
    f = lambda v: (gloss.CTCLoss()(nd.array(v, dtype='float64'), label, lens).asnumpy() * [1, 2]).sum()  # noqa: E731
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = 1e-6
        num[i] = (f(x + d) - f(x - d)) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-4, atol=1e-7)
    assert np.all(g[1, 3] == 0)   # frames past a sequence's length get no gradient


def test_triplet_loss():
    a, p, n = (rng(i).normal(size=(4, 3)) for i in range(3))
    ref = np.maximum(((a - p) ** 2 - (a - n) ** 2).sum(1) + 0.5, 0)
    out = gloss.TripletLoss(margin=0.5)(nd.array(a), nd.array(p), nd.array(n)).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5)


def test_poisson_nll_loss():
    pred, target = rng().uniform(0.5, 3, (3, 4)), rng(1).uniform(0.5, 4, (3, 4))
    np.testing.assert_allclose(gloss.PoissonNLLLoss()(nd.array(pred), nd.array(target)).asnumpy(),
                               np.mean(np.exp(pred) - target * pred), rtol=1e-5)
    full = gloss.PoissonNLLLoss(from_logits=False, compute_full=True)(nd.array(pred), nd.array(target)).asnumpy()
    stirling = (target * np.log(target) - target + 0.5 * np.log(2 * np.pi * target)) * (target > 1)
    np.testing.assert_allclose(full, np.mean(pred - target * np.log(pred + 1e-8) + stirling), rtol=1e-5)


def test_cosine_embedding_loss():
    x1, x2 = rng().normal(size=(5, 3)), rng(1).normal(size=(5, 3))
    label = np.array([1, -1, 1, -1, -1])
    cos = (x1 * x2).sum(1) / np.linalg.norm(x1, axis=1) / np.linalg.norm(x2, axis=1)
    ref = np.where(label == 1, 1 - cos, np.maximum(cos - 0.1, 0))[:, None]
    out = gloss.CosineEmbeddingLoss(margin=0.1)(nd.array(x1), nd.array(x2), nd.array(label)).asnumpy()
    assert out.shape == (5, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


def test_sdml_loss():
    x1, x2 = rng().normal(size=(4, 3)), rng(1).normal(size=(4, 3))
    d = ((x1[:, None] - x2[None]) ** 2).sum(2)
    logp = -d - np.log(np.exp(-d).sum(1, keepdims=True))
    s = 0.3
    lab = np.where(np.eye(4) > 0, 1 - s, s / 3)
    ref = (lab * (np.log(lab + 1e-12) - logp)).mean(1)
    np.testing.assert_allclose(gloss.SDMLLoss()(nd.array(x1), nd.array(x2)).asnumpy(), ref, rtol=1e-5)


def test_bce_pos_weight_and_sample_weight():
    x, z = rng().normal(size=(4, 3)) * 3, rng(1).integers(0, 2, (4, 3)).astype(float)
    pw, sw = rng(2).uniform(0, 5, (1, 3)), np.array([[1.0], [0.5], [0.0], [2.0]])
    p = 1 / (1 + np.exp(-x))
    ref = ((-z * np.log(p) * pw - (1 - z) * np.log(1 - p)) * sw).mean(1)
    out = gloss.SigmoidBCELoss()(nd.array(x), nd.array(z), nd.array(sw), nd.array(pw)).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5)
    out = gloss.SigmoidBCELoss(from_sigmoid=True)(nd.array(p), nd.array(z), nd.array(sw), nd.array(pw)).asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4)


def test_batch_axis_keeps_that_axis():
    x, y = rng().normal(size=(3, 4, 2)), rng(1).normal(size=(3, 4, 2))
    np.testing.assert_allclose(gloss.L1Loss(batch_axis=1)(nd.array(x), nd.array(y)).asnumpy(),
                               np.abs(x - y).mean(axis=(0, 2)), rtol=1e-5)


CASES = [  # (loss, inputs), each input (N=4, ...)
    (gloss.L2Loss(), [(4, 3), (4, 3)]),
    (gloss.L1Loss(weight=2.0), [(4, 3), (4, 3)]),
    (gloss.SigmoidBCELoss(), [(4, 3), 'binary:4,3']),
    (gloss.SoftmaxCELoss(), [(4, 5), 'class:4']),
    (gloss.SoftmaxCELoss(axis=1, sparse_label=False), [(4, 5), 'prob:4,5']),
    (gloss.KLDivLoss(from_logits=False), [(4, 5), 'prob:4,5']),
    (gloss.HuberLoss(rho=0.5), [(4, 3), (4, 3)]),
    (gloss.HingeLoss(), [(4, 3), 'sign:4,3']),
    (gloss.SquaredHingeLoss(), [(4, 3), 'sign:4,3']),
    (gloss.LogisticLoss(label_format='binary'), [(4, 3), 'binary:4,3']),
    (gloss.TripletLoss(), [(4, 3), (4, 3), (4, 3)]),
    (gloss.PoissonNLLLoss(), [(4, 3), 'pos:4,3']),
    (gloss.CosineEmbeddingLoss(), [(4, 3), (4, 3), 'sign:4']),
    (gloss.CTCLoss(), [(4, 5, 3), 'ctc:4,2']),
]


def _make(spec, r):
    if isinstance(spec, tuple):
        return r.normal(size=spec)
    kind, shape = spec.split(':')
    shape = tuple(int(s) for s in shape.split(','))
    if kind == 'binary':
        return r.integers(0, 2, shape).astype(float)
    if kind == 'class':
        return r.integers(0, 5, shape).astype(float)
    if kind == 'prob':
        p = r.uniform(0.1, 1, shape)
        return p / p.sum(-1, keepdims=True)
    if kind == 'sign':
        return np.sign(r.normal(size=shape))
    if kind == 'pos':
        return r.uniform(0.5, 3, shape)
    return r.integers(0, 2, shape).astype(float)  # ctc labels


@pytest.mark.parametrize('loss,specs', CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_hybridized_and_symbolic_equal_eager(loss, specs):
    r = rng(3)
    arrays = [_make(s, r) for s in specs]
    xs = [nd.array(a) for a in arrays]
    xs[0].attach_grad()
    with autograd.record():
        eager = loss(*xs)
    eager.backward()
    g = xs[0].grad.asnumpy()
    loss.hybridize()
    with autograd.record():
        hyb = loss(*xs)
    hyb.backward()
    np.testing.assert_allclose(hyb.asnumpy(), eager.asnumpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(xs[0].grad.asnumpy(), g, rtol=1e-5, atol=1e-7)
    names = [f'in{i}' for i in range(len(xs))]  # composed on shapeless variables, evaluated afterwards
    s = loss(*[sym.var(n) for n in names])
    out = s.eval(**dict(zip(names, xs)))[0]
    np.testing.assert_allclose(out.asnumpy(), eager.asnumpy(), rtol=1e-5, atol=1e-7)
