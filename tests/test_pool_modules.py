"""The 2x2 stride-2 pooling kernels read their shape from an argument (runtime/conv.dims_2x2): one LLVM module per
direction and dtype serves every layer (LeNet's two poolings: two modules fewer in a cold first step), and each
shape still equals the reference (tests/test_onednn.py checks row lengths 1-21 through that one module)."""
import numpy as np

from graphc.ops import nn
from graphc.registry import get
from graphc.runtime import conv


def test_two_pooling_shapes_share_one_module_each_way_and_equal_the_reference():
    a = get('Pooling').canon(dict(kernel=(2, 2), stride=(2, 2), pool_type='max'))
    rng = np.random.default_rng(3)
    addrs = set()
    for shape in ((3, 4, 24, 24), (2, 5, 8, 9)):
        x = np.maximum(rng.standard_normal(shape).astype(np.float32), 0)
        k, st, pd, _, out = nn.pool_geom(a, x.shape)
        y = conv.maxpool(x, k, st, pd, out)
        np.testing.assert_array_equal(y, nn._pooling(a, x))
        g = rng.standard_normal(y.shape).astype(np.float32)
        dx = conv.maxpool_grad_relu(g, x, y, x, k, st, pd, out)
        np.testing.assert_array_equal(dx, nn._backward_pooling(a, g, x, y) * (x > 0))
        addrs.add(tuple(conv._kernel(kind, x.shape, tuple(k), tuple(st), (1, 1), tuple(pd), tuple(out),
                                     x.dtype).addr for kind in ('maxpool', 'maxpool_grad_relu')))
    assert len(addrs) == 1   # (the same two functions for both shapes)
