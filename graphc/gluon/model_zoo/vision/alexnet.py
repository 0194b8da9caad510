"""AlexNet (Krizhevsky et al. 2012) as MXNet Gluon's model zoo builds it: five convolutions and two 4096-unit
Dense layers in `features`, the classifier in `output`."""
from ... import nn
from ...block import HybridBlock
from ..model_store import load_pretrained


class AlexNet(HybridBlock):
    def __init__(self, classes=1000, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            with self.features.name_scope():
                for channels, kernel, stride, pad, pool in ((64, 11, 4, 2, True), (192, 5, 1, 2, True),
                                                            (384, 3, 1, 1, False), (256, 3, 1, 1, False),
                                                            (256, 3, 1, 1, True)):
                    self.features.add(nn.Conv2D(channels, kernel, stride, pad, activation='relu'))
                    if pool:
                        self.features.add(nn.MaxPool2D(pool_size=3, strides=2))
                self.features.add(nn.Flatten())
                for _ in range(2):
                    self.features.add(nn.Dense(4096, activation='relu'), nn.Dropout(0.5))
            self.output = nn.Dense(classes)

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))


def alexnet(pretrained=False, ctx=None, root=None, **kwargs):
    """AlexNet (MXNet's model zoo structure and names). kwargs: classes, prefix, params."""
    net = AlexNet(**kwargs)
    return load_pretrained(net, 'alexnet', root, ctx) if pretrained else net
