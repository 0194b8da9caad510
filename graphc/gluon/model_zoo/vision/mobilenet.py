"""MobileNet V1 (Howard et al. 2017) and V2 (Sandler et al. 2018) as MXNet Gluon's model zoo builds them:
depthwise-separable conv-BN-relu pairs (V1); inverted residual linear bottlenecks with relu6 (V2), its
classifier a 1x1 convolution without bias. `multiplier` scales every layer's channels."""
from ... import nn
from ...block import HybridBlock
from ..model_store import load_pretrained


class RELU6(HybridBlock):
    """min(max(x, 0), 6)."""

    def hybrid_forward(self, F, x):
        return F.clip(x, 0, 6, name='relu6')


def _conv(out, channels, kernel=1, stride=1, pad=0, groups=1, active=True, relu6=False):
    out.add(nn.Conv2D(channels, kernel, stride, pad, groups=groups, use_bias=False), nn.BatchNorm(scale=True))
    if active:
        out.add(RELU6() if relu6 else nn.Activation('relu'))


class LinearBottleneck(HybridBlock):
    """1x1 expansion by t, 3x3 depthwise (strided), 1x1 linear projection; plus the input where the shapes agree.
    MXNet 1.9 builds the 1x1 expansion also for t=1 (the first block), so its files have it: so do we."""

    def __init__(self, in_channels, channels, t, stride, **kwargs):
        super().__init__(**kwargs)
        self.use_shortcut = stride == 1 and in_channels == channels
        with self.name_scope():
            self.out = nn.HybridSequential()
            _conv(self.out, in_channels * t, relu6=True)
            _conv(self.out, in_channels * t, 3, stride, 1, groups=in_channels * t, relu6=True)
            _conv(self.out, channels, active=False)

    def hybrid_forward(self, F, x):
        out = self.out(x)
        return F.elemwise_add(out, x) if self.use_shortcut else out


class MobileNet(HybridBlock):
    def __init__(self, multiplier=1.0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        m = lambda cs: [int(c * multiplier) for c in cs]  # noqa: E731
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            with self.features.name_scope():
                _conv(self.features, int(32 * multiplier), 3, 2, 1)
                dw = m([32, 64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024])
                pw = m([64] + [128] * 2 + [256] * 2 + [512] * 6 + [1024] * 2)
                for d, c, s in zip(dw, pw, [1, 2] * 3 + [1] * 5 + [2, 1]):
                    _conv(self.features, d, 3, s, 1, groups=d)
                    _conv(self.features, c)
                self.features.add(nn.GlobalAvgPool2D(), nn.Flatten())
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


class MobileNetV2(HybridBlock):
    def __init__(self, multiplier=1.0, classes=1000, **kwargs):
        super().__init__(**kwargs)
        m = lambda cs: [int(c * multiplier) for c in cs]  # noqa: E731
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='features_')
            with self.features.name_scope():
                _conv(self.features, int(32 * multiplier), 3, 2, 1, relu6=True)
                ins = m([32, 16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3)
                outs = m([16] + [24] * 2 + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320])
                strides = [1, 2] * 2 + [1, 1, 2] + [1] * 6 + [2] + [1] * 3
                for i, c, t, s in zip(ins, outs, [1] + [6] * 16, strides):
                    self.features.add(LinearBottleneck(in_channels=i, channels=c, t=t, stride=s))
                _conv(self.features, int(1280 * multiplier) if multiplier > 1.0 else 1280, relu6=True)
                self.features.add(nn.GlobalAvgPool2D())
            self.output = nn.HybridSequential(prefix='output_')
            with self.output.name_scope():
                self.output.add(nn.Conv2D(classes, 1, use_bias=False, prefix='pred_'), nn.Flatten())

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def _suffix(multiplier):
    s = f'{multiplier:.2f}'
    return s[:-1] if s in ('1.00', '0.50') else s   # MXNet's names: mobilenet1.0, mobilenet0.75, mobilenet0.5


def get_mobilenet(multiplier, pretrained=False, ctx=None, root=None, **kwargs):
    """MobileNet V1 with width multiplier 1.0, 0.75, 0.5 or 0.25 (any positive float builds)."""
    net = MobileNet(multiplier, **kwargs)
    return load_pretrained(net, f'mobilenet{_suffix(multiplier)}', root, ctx) if pretrained else net


def get_mobilenet_v2(multiplier, pretrained=False, ctx=None, root=None, **kwargs):
    """MobileNet V2 with width multiplier 1.0, 0.75, 0.5 or 0.25 (any positive float builds)."""
    net = MobileNetV2(multiplier, **kwargs)
    return load_pretrained(net, f'mobilenetv2_{_suffix(multiplier)}', root, ctx) if pretrained else net


def _builder(get, multiplier, name):
    def build(**kwargs):
        return get(multiplier, **kwargs)
    build.__name__ = name
    build.__doc__ = f"{name} (MXNet's model zoo structure and names)."
    return build


mobilenet1_0, mobilenet0_75, mobilenet0_5, mobilenet0_25 = (
    _builder(get_mobilenet, m, f'mobilenet{_suffix(m)}') for m in (1.0, 0.75, 0.5, 0.25))
mobilenet_v2_1_0, mobilenet_v2_0_75, mobilenet_v2_0_5, mobilenet_v2_0_25 = (
    _builder(get_mobilenet_v2, m, f'mobilenetv2_{_suffix(m)}') for m in (1.0, 0.75, 0.5, 0.25))
