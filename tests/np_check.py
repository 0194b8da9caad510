"""Helpers of the mx.np function tests: a block that calls a function with F.np, and the gradient check."""
import numpy as onp

import graphc as mx
from graphc import autograd, np


class Call(mx.gluon.nn.HybridBlock):
    """f(F.np, x) as a block (hybridize it to trace f)."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def hybrid_forward(self, F, x):
        return self.f(F.np, x)


def check_gradient(f, a, ref=None, rtol=1e-5, atol=1e-7):
    """graphc's gradient of sum(f(np, x) * w) at a (float64) against central differences of ref (default f(np, .))."""
    ref = ref or (lambda v: f(np, np.array(v, dtype='float64')).asnumpy())
    w = onp.random.default_rng(1).standard_normal(onp.shape(ref(a)))
    x = np.array(a, dtype='float64')
    x.attach_grad()
    with autograd.record():
        y = (f(np, x) * np.array(w)).sum()
    y.backward()
    num, eps = onp.zeros_like(a), 1e-6
    for i in onp.ndindex(a.shape):
        d = onp.zeros_like(a)
        d[i] = eps
        num[i] = ((ref(a + d) * w).sum() - (ref(a - d) * w).sum()) / (2 * eps)
    onp.testing.assert_allclose(x.grad.asnumpy(), num, rtol=rtol, atol=atol)
