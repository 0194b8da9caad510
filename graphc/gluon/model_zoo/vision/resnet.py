"""ResNet V1 (He et al. 2015) and V2 (pre-activation, He et al. 2016) as MXNet Gluon's model zoo builds them:
the same blocks, attribute names (features, output, body, downsample, bn1, conv1, ...) and parameter prefixes
(resnetv10_stage1_conv0_weight), so `load_parameters` reads a `.params` file that MXNet's
`net.save_parameters` wrote for the same architecture, and `export` writes MXNet's graph. No weights are
downloaded: `pretrained=True` loads MXNet's file from a local folder (model_store.py).
"""
from ....base import GraphcError
from ... import nn
from ...block import HybridBlock
from ..model_store import load_pretrained

SPEC = {18: ('basic', [2, 2, 2, 2], [64, 64, 128, 256, 512]),
        34: ('basic', [3, 4, 6, 3], [64, 64, 128, 256, 512]),
        50: ('bottleneck', [3, 4, 6, 3], [64, 256, 512, 1024, 2048]),
        101: ('bottleneck', [3, 4, 23, 3], [64, 256, 512, 1024, 2048]),
        152: ('bottleneck', [3, 8, 36, 3], [64, 256, 512, 1024, 2048])}


def _conv3x3(channels, stride, in_channels):
    return nn.Conv2D(channels, 3, stride, 1, use_bias=False, in_channels=in_channels)


class BasicBlockV1(HybridBlock):
    """conv3x3-BN-relu-conv3x3-BN, plus the input (through a strided 1x1 conv and BN when the shape changes),
    then relu."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.body = nn.HybridSequential(prefix='')
        self.body.add(_conv3x3(channels, stride, in_channels), nn.BatchNorm(), nn.Activation('relu'),
                      _conv3x3(channels, 1, channels), nn.BatchNorm())
        self.downsample = _projection(channels, stride, in_channels, bn=True) if downsample else None

    def hybrid_forward(self, F, x):
        out = self.body(x)
        residual = self.downsample(x) if self.downsample is not None else x
        return F.Activation(residual + out, act_type='relu')


class BottleneckV1(HybridBlock):
    """1x1 (channels/4, strided, with bias)-BN-relu, 3x3-BN-relu, 1x1 (channels, with bias)-BN, plus the input,
    then relu."""

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        mid = channels // 4
        self.body = nn.HybridSequential(prefix='')
        self.body.add(nn.Conv2D(mid, 1, stride), nn.BatchNorm(), nn.Activation('relu'), _conv3x3(mid, 1, mid),
                      nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(channels, 1, 1), nn.BatchNorm())
        self.downsample = _projection(channels, stride, in_channels, bn=True) if downsample else None

    def hybrid_forward(self, F, x):
        out = self.body(x)
        residual = self.downsample(x) if self.downsample is not None else x
        return F.Activation(out + residual, act_type='relu')


def _projection(channels, stride, in_channels, bn):
    """The shortcut's strided 1x1 convolution (V1: followed by BatchNorm)."""
    if not bn:
        return nn.Conv2D(channels, 1, stride, use_bias=False, in_channels=in_channels)
    seq = nn.HybridSequential(prefix='')
    seq.add(nn.Conv2D(channels, 1, stride, use_bias=False, in_channels=in_channels), nn.BatchNorm())
    return seq


class _PreActivation(HybridBlock):
    """V2 blocks: (BN-relu-conv) repeated over (bn1, conv1), (bn2, conv2), ...; the shortcut (a strided 1x1 conv
    where the shape changes) reads the first BN-relu's output; the sum is not activated."""

    def hybrid_forward(self, F, x):
        residual = x
        for i in range(1, self._depth + 1):
            x = F.Activation(getattr(self, f'bn{i}')(x), act_type='relu')
            if i == 1 and self.downsample is not None:
                residual = self.downsample(x)
            x = getattr(self, f'conv{i}')(x)
        return x + residual


class BasicBlockV2(_PreActivation):
    """Pre-activation: BN-relu-conv3x3 (strided), BN-relu-conv3x3, plus the input."""
    _depth = 2

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.bn1 = nn.BatchNorm()
        self.conv1 = _conv3x3(channels, stride, in_channels)
        self.bn2 = nn.BatchNorm()
        self.conv2 = _conv3x3(channels, 1, channels)
        self.downsample = _projection(channels, stride, in_channels, bn=False) if downsample else None


class BottleneckV2(_PreActivation):
    """Pre-activation bottleneck: BN-relu-1x1, BN-relu-3x3 (strided), BN-relu-1x1, plus the input."""
    _depth = 3

    def __init__(self, channels, stride, downsample=False, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        mid = channels // 4
        self.bn1 = nn.BatchNorm()
        self.conv1 = nn.Conv2D(mid, 1, 1, use_bias=False)
        self.bn2 = nn.BatchNorm()
        self.conv2 = _conv3x3(mid, stride, mid)
        self.bn3 = nn.BatchNorm()
        self.conv3 = nn.Conv2D(channels, 1, 1, use_bias=False)
        self.downsample = _projection(channels, stride, in_channels, bn=False) if downsample else None


class _ResNet(HybridBlock):
    """features (stem, 4 stages of blocks, global average pooling) -> output (Dense over the classes).
    thumbnail: a 3x3 stride-1 stem without max pooling, for 32x32 inputs such as CIFAR."""
    _version = 1

    def __init__(self, block, layers, channels, classes=1000, thumbnail=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(channels) - 1:
            raise GraphcError(f"{type(self).__name__}: {len(layers)} stages need {len(layers) + 1} channel counts, "
                              f"got {len(channels)}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            if self._version == 2:   # the input, normalized by running statistics only
                self.features.add(nn.BatchNorm(scale=False, center=False))
            if thumbnail:
                self.features.add(_conv3x3(channels[0], 1, 0))
            else:
                self.features.add(nn.Conv2D(channels[0], 7, 2, 3, use_bias=False), nn.BatchNorm(),
                                  nn.Activation('relu'), nn.MaxPool2D(3, 2, 1))
            in_channels = channels[0]
            for i, n in enumerate(layers):
                stride = 1 if i == 0 else 2
                self.features.add(self._stage(block, n, channels[i + 1], stride, i + 1, in_channels))
                in_channels = channels[i + 1]
            if self._version == 2:
                self.features.add(nn.BatchNorm(), nn.Activation('relu'))
            self.features.add(nn.GlobalAvgPool2D())
            if self._version == 2:
                self.features.add(nn.Flatten())
            self.output = nn.Dense(classes, in_units=in_channels)

    def _stage(self, block, n, channels, stride, index, in_channels):
        stage = nn.HybridSequential(prefix=f'stage{index}_')
        with stage.name_scope():
            stage.add(block(channels, stride, channels != in_channels or stride != 1, in_channels=in_channels,
                            prefix=''))
            for _ in range(n - 1):
                stage.add(block(channels, 1, False, in_channels=channels, prefix=''))
        return stage

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class ResNetV1(_ResNet):
    _version = 1


class ResNetV2(_ResNet):
    _version = 2


BLOCKS = {1: {'basic': BasicBlockV1, 'bottleneck': BottleneckV1}, 2: {'basic': BasicBlockV2, 'bottleneck': BottleneckV2}}


def get_resnet(version, num_layers, pretrained=False, ctx=None, root=None, **kwargs):
    """ResNet V1 or V2 with 18, 34, 50, 101 or 152 layers. kwargs: classes, thumbnail, prefix, params."""
    if num_layers not in SPEC:
        raise GraphcError(f"resnet: no {num_layers}-layer ResNet; choose from {sorted(SPEC)}")
    if version not in BLOCKS:
        raise GraphcError(f"resnet: version must be 1 or 2, got {version!r}")
    kind, layers, channels = SPEC[num_layers]
    net = (ResNetV1 if version == 1 else ResNetV2)(BLOCKS[version][kind], layers, channels, **kwargs)
    if pretrained:
        return load_pretrained(net, f'resnet{num_layers}_v{version}', root, ctx)
    if ctx is not None:
        net.collect_params().reset_ctx(ctx)
    return net


def _builder(version, num_layers):
    def build(**kwargs):
        return get_resnet(version, num_layers, **kwargs)
    build.__name__ = f'resnet{num_layers}_v{version}'
    build.__doc__ = f"ResNet-{num_layers} V{version} (MXNet Gluon's model zoo structure and names)."
    return build


resnet18_v1, resnet34_v1, resnet50_v1, resnet101_v1, resnet152_v1 = (_builder(1, n) for n in sorted(SPEC))
resnet18_v2, resnet34_v2, resnet50_v2, resnet101_v2, resnet152_v2 = (_builder(2, n) for n in sorted(SPEC))
