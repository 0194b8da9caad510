"""VGG 11/13/16/19 (Simonyan & Zisserman 2014), with or without BatchNorm, as MXNet Gluon's model zoo builds
them: 3x3 convolutions, max pooling per stage and the two 4096-unit Dense layers all in `features`."""
from ....base import GraphcError
from .... import initializer as init
from ... import nn
from ...block import HybridBlock
from ..model_store import load_pretrained

SPEC = {11: ([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
        13: ([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
        16: ([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
        19: ([2, 2, 4, 4, 4], [64, 128, 256, 512, 512])}


class VGG(HybridBlock):
    def __init__(self, layers, filters, classes=1000, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        if len(layers) != len(filters):
            raise GraphcError(f"VGG: {len(layers)} stages need {len(layers)} filter counts, got {len(filters)}")
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            for n, channels in zip(layers, filters):
                for _ in range(n):
                    self.features.add(nn.Conv2D(channels, kernel_size=3, padding=1, bias_initializer='zeros',
                                                weight_initializer=init.Xavier('gaussian', 'out', 2)))
                    if batch_norm:
                        self.features.add(nn.BatchNorm())
                    self.features.add(nn.Activation('relu'))
                self.features.add(nn.MaxPool2D(strides=2))
            for _ in range(2):
                self.features.add(nn.Dense(4096, activation='relu', weight_initializer='normal',
                                           bias_initializer='zeros'), nn.Dropout(rate=0.5))
            self.output = nn.Dense(classes, weight_initializer='normal', bias_initializer='zeros')

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def get_vgg(num_layers, pretrained=False, ctx=None, root=None, **kwargs):
    """VGG with 11, 13, 16 or 19 layers; batch_norm=True for the _bn variants. kwargs: classes, prefix, params."""
    if num_layers not in SPEC:
        raise GraphcError(f"vgg: no {num_layers}-layer VGG; choose from {sorted(SPEC)}")
    net = VGG(*SPEC[num_layers], **kwargs)
    if pretrained:
        load_pretrained(net, f"vgg{num_layers}{'_bn' if kwargs.get('batch_norm') else ''}", root, ctx)
    return net


def _builder(n, bn):
    def build(**kwargs):
        return get_vgg(n, **({'batch_norm': True} if bn else {}), **kwargs)
    build.__name__ = f"vgg{n}{'_bn' if bn else ''}"
    build.__doc__ = f"VGG-{n}{' with BatchNorm' if bn else ''} (MXNet's model zoo structure and names)."
    return build


vgg11, vgg13, vgg16, vgg19 = (_builder(n, False) for n in sorted(SPEC))
vgg11_bn, vgg13_bn, vgg16_bn, vgg19_bn = (_builder(n, True) for n in sorted(SPEC))
