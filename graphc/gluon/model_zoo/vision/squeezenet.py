"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016) as MXNet Gluon's model zoo builds them: fire modules (a 1x1
squeeze, then 1x1 and 3x3 expands concatenated), a 1x1 convolution over the classes and 13x13 average pooling."""
from ....base import GraphcError
from ... import nn
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent
from ..model_store import load_pretrained

# stem (channels, kernel), then fire modules (squeeze, expand) with 'pool' where a 3x3/2 ceil-mode max pool sits
SPEC = {'1.0': ((96, 7), ['pool', (16, 64), (16, 64), (32, 128), 'pool', (32, 128), (48, 192), (48, 192),
                          (64, 256), 'pool', (64, 256)]),
        '1.1': ((64, 3), ['pool', (16, 64), (16, 64), 'pool', (32, 128), (32, 128), 'pool', (48, 192),
                          (48, 192), (64, 256), (64, 256)])}


def _conv_relu(channels, kernel, padding=0):
    out = nn.HybridSequential(prefix='')
    out.add(nn.Conv2D(channels, kernel, padding=padding), nn.Activation('relu'))
    return out


def _fire(squeeze, expand):
    out = nn.HybridSequential(prefix='')
    out.add(_conv_relu(squeeze, 1))   # made first: layer names count in the order they are made (conv1, conv2, conv3)
    paths = HybridConcurrent(axis=1, prefix='')
    paths.add(_conv_relu(expand, 1), _conv_relu(expand, 3, 1))
    out.add(paths)
    return out


class SqueezeNet(HybridBlock):
    def __init__(self, version, classes=1000, **kwargs):
        super().__init__(**kwargs)
        if version not in SPEC:
            raise GraphcError(f"SqueezeNet: version must be one of {sorted(SPEC)}, got {version!r}")
        (channels, kernel), body = SPEC[version]
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(nn.Conv2D(channels, kernel, strides=2), nn.Activation('relu'))
            for item in body:
                self.features.add(nn.MaxPool2D(pool_size=3, strides=2, ceil_mode=True) if item == 'pool'
                                  else _fire(*item))
            self.features.add(nn.Dropout(0.5))
            self.output = nn.HybridSequential(prefix='')
            self.output.add(nn.Conv2D(classes, kernel_size=1), nn.Activation('relu'), nn.AvgPool2D(13), nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_squeezenet(version, pretrained=False, ctx=None, root=None, **kwargs):
    """SqueezeNet '1.0' or '1.1'. kwargs: classes, prefix, params."""
    net = SqueezeNet(version, **kwargs)
    return load_pretrained(net, f'squeezenet{version}', root, ctx) if pretrained else net


def squeezenet1_0(**kwargs):
    """SqueezeNet 1.0 (MXNet's model zoo structure and names)."""
    return get_squeezenet('1.0', **kwargs)


def squeezenet1_1(**kwargs):
    """SqueezeNet 1.1: 2.4x less computation than 1.0 at the same accuracy (MXNet's structure and names)."""
    return get_squeezenet('1.1', **kwargs)
