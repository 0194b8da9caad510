"""DenseNet 121/161/169/201 (Huang et al. 2016) as MXNet Gluon's model zoo builds them: dense blocks whose
layers (BN-relu-1x1, BN-relu-3x3) concatenate their input with their new features, transitions (BN-relu-1x1,
2x2 average pooling) halving the channels, 7x7 average pooling, then the classifier."""
from ....base import GraphcError
from ... import nn
from ...block import HybridBlock
from ...contrib.nn import HybridConcurrent, Identity
from ..model_store import load_pretrained

SPEC = {121: (64, 32, [6, 12, 24, 16]), 161: (96, 48, [6, 12, 36, 24]),
        169: (64, 32, [6, 12, 32, 32]), 201: (64, 32, [6, 12, 48, 32])}


def _bn_relu_conv(out, channels, kernel, padding=0):
    out.add(nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(channels, kernel, padding=padding, use_bias=False))


def _dense_layer(growth_rate, bn_size, dropout):
    new = nn.HybridSequential(prefix='')
    _bn_relu_conv(new, bn_size * growth_rate, 1)
    _bn_relu_conv(new, growth_rate, 3, 1)
    if dropout:
        new.add(nn.Dropout(dropout))
    out = HybridConcurrent(axis=1, prefix='')
    out.add(Identity(), new)
    return out


class DenseNet(HybridBlock):
    def __init__(self, num_init_features, growth_rate, block_config, bn_size=4, dropout=0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.features.add(nn.Conv2D(num_init_features, kernel_size=7, strides=2, padding=3, use_bias=False),
                              nn.BatchNorm(), nn.Activation('relu'), nn.MaxPool2D(pool_size=3, strides=2, padding=1))
            features = num_init_features
            for i, n in enumerate(block_config):
                stage = nn.HybridSequential(prefix=f'stage{i + 1}_')
                with stage.name_scope():
                    for _ in range(n):
                        stage.add(_dense_layer(growth_rate, bn_size, dropout))
                self.features.add(stage)
                features += n * growth_rate
                if i != len(block_config) - 1:
                    features //= 2
                    transition = nn.HybridSequential(prefix='')
                    _bn_relu_conv(transition, features, 1)
                    transition.add(nn.AvgPool2D(pool_size=2, strides=2))
                    self.features.add(transition)
            self.features.add(nn.BatchNorm(), nn.Activation('relu'), nn.AvgPool2D(pool_size=7), nn.Flatten())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_densenet(num_layers, pretrained=False, ctx=None, root=None, **kwargs):
    """DenseNet with 121, 161, 169 or 201 layers. kwargs: classes, bn_size, dropout, prefix, params."""
    if num_layers not in SPEC:
        raise GraphcError(f"densenet: no {num_layers}-layer DenseNet; choose from {sorted(SPEC)}")
    net = DenseNet(*SPEC[num_layers], **kwargs)
    return load_pretrained(net, f'densenet{num_layers}', root, ctx) if pretrained else net


def _builder(n):
    def build(**kwargs):
        return get_densenet(n, **kwargs)
    build.__name__ = f'densenet{n}'
    build.__doc__ = f"DenseNet-{n} (MXNet's model zoo structure and names)."
    return build


densenet121, densenet161, densenet169, densenet201 = (_builder(n) for n in sorted(SPEC))
