"""Inception V3 (Szegedy et al. 2015) as MXNet Gluon's model zoo builds it (no auxiliary classifier): every
convolution is conv (no bias)-BN (eps 1e-3)-relu; the A-E blocks run their branches side by side and
concatenate them, under the prefixes A1_ ... E2_. Inputs are 299x299."""
from ... import nn
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent
from ..model_store import load_pretrained


def _conv(channels, kernel_size, strides=None, padding=None):
    kw = {k: v for k, v in (('strides', strides), ('padding', padding)) if v is not None}
    out = nn.HybridSequential(prefix='')
    out.add(nn.Conv2D(channels, kernel_size, use_bias=False, **kw), nn.BatchNorm(epsilon=0.001), nn.Activation('relu'))
    return out


def _branch(pool, *convs):
    """A pooling ('avg': 3x3/1 pad 1; 'max': 3x3/2) or none, then convolutions (channels, kernel, strides, padding)."""
    out = nn.HybridSequential(prefix='')
    if pool == 'avg':
        out.add(nn.AvgPool2D(pool_size=3, strides=1, padding=1))
    elif pool == 'max':
        out.add(nn.MaxPool2D(pool_size=3, strides=2))
    for c in convs:
        out.add(_conv(*c))
    return out


def _concurrent(prefix, *branches):
    out = HybridConcurrent(axis=1, prefix=prefix)
    with out.name_scope():
        for b in branches:
            out.add(b() if callable(b) else b)
    return out


def _block_a(pool_features, prefix):
    return _concurrent(prefix, lambda: _branch(None, (64, 1)), lambda: _branch(None, (48, 1), (64, 5, None, 2)),
                       lambda: _branch(None, (64, 1), (96, 3, None, 1), (96, 3, None, 1)),
                       lambda: _branch('avg', (pool_features, 1)))


def _block_b(prefix):
    return _concurrent(prefix, lambda: _branch(None, (384, 3, 2)),
                       lambda: _branch(None, (64, 1), (96, 3, None, 1), (96, 3, 2)), lambda: _branch('max'))


def _block_c(c7, prefix):
    r, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))   # (kernel, padding) of the factorized 7x7 convolutions
    return _concurrent(prefix, lambda: _branch(None, (192, 1)),
                       lambda: _branch(None, (c7, 1), (c7, r[0], None, r[1]), (192, col[0], None, col[1])),
                       lambda: _branch(None, (c7, 1), (c7, col[0], None, col[1]), (c7, r[0], None, r[1]),
                                       (c7, col[0], None, col[1]), (192, r[0], None, r[1])),
                       lambda: _branch('avg', (192, 1)))


def _block_d(prefix):
    return _concurrent(prefix, lambda: _branch(None, (192, 1), (320, 3, 2)),
                       lambda: _branch(None, (192, 1), (192, (1, 7), None, (0, 3)), (192, (7, 1), None, (3, 0)),
                                       (192, 3, 2)),
                       lambda: _branch('max'))


def _split_3x3(first):
    """`first`, then its output through a 1x3 and a 3x1 convolution side by side (384 channels each)."""
    out = nn.HybridSequential(prefix='')
    split = HybridConcurrent(axis=1, prefix='')
    split.add(_branch(None, (384, (1, 3), None, (0, 1))), _branch(None, (384, (3, 1), None, (1, 0))))
    out.add(first, split)
    return out


def _block_e(prefix):
    return _concurrent(prefix, lambda: _branch(None, (320, 1)), lambda: _split_3x3(_branch(None, (384, 1))),
                       lambda: _split_3x3(_branch(None, (448, 1), (384, 3, None, 1))),
                       lambda: _branch('avg', (192, 1)))


class Inception3(HybridBlock):
    def __init__(self, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(_conv(32, 3, 2), _conv(32, 3), _conv(64, 3, None, 1), nn.MaxPool2D(pool_size=3, strides=2),
                              _conv(80, 1), _conv(192, 3), nn.MaxPool2D(pool_size=3, strides=2))
            self.features.add(_block_a(32, 'A1_'), _block_a(64, 'A2_'), _block_a(64, 'A3_'), _block_b('B_'))
            self.features.add(_block_c(128, 'C1_'), _block_c(160, 'C2_'), _block_c(160, 'C3_'), _block_c(192, 'C4_'))
            self.features.add(_block_d('D_'), _block_e('E1_'), _block_e('E2_'))
            self.features.add(nn.AvgPool2D(pool_size=8), nn.Dropout(0.5))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def inception_v3(pretrained=False, ctx=None, root=None, **kwargs):
    """Inception V3 for 299x299 inputs (MXNet's model zoo structure and names). kwargs: classes, prefix, params."""
    net = Inception3(**kwargs)
    return load_pretrained(net, 'inceptionv3', root, ctx) if pretrained else net
