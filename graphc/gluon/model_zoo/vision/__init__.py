"""MXNet Gluon's vision model zoo: every architecture MXNet 1.9's `get_model` knows, with MXNet's block structure,
prefixes and parameter names, so `load_parameters` reads the files MXNet's `save_parameters` wrote."""
from ....base import GraphcError
from .alexnet import AlexNet, alexnet  # noqa: F401
from .densenet import DenseNet, densenet121, densenet161, densenet169, densenet201, get_densenet  # noqa: F401
from .inception import Inception3, inception_v3  # noqa: F401
from .mobilenet import (LinearBottleneck, MobileNet, MobileNetV2, RELU6, get_mobilenet, get_mobilenet_v2,  # noqa: F401
                        mobilenet0_25, mobilenet0_5, mobilenet0_75, mobilenet1_0, mobilenet_v2_0_25, mobilenet_v2_0_5,
                        mobilenet_v2_0_75, mobilenet_v2_1_0)
from .resnet import (BasicBlockV1, BasicBlockV2, BottleneckV1, BottleneckV2, ResNetV1, ResNetV2,  # noqa: F401
                     get_resnet, resnet18_v1, resnet34_v1, resnet50_v1, resnet101_v1, resnet152_v1, resnet18_v2,
                     resnet34_v2, resnet50_v2, resnet101_v2, resnet152_v2)
from .squeezenet import SqueezeNet, get_squeezenet, squeezenet1_0, squeezenet1_1  # noqa: F401
from .vgg import (VGG, get_vgg, vgg11, vgg11_bn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg19, vgg19_bn)  # noqa: F401

_MODELS = {f'resnet{n}_v{v}': globals()[f'resnet{n}_v{v}'] for n in (18, 34, 50, 101, 152) for v in (1, 2)}
_MODELS.update({f'vgg{n}{bn}': globals()[f'vgg{n}{bn}'] for n in (11, 13, 16, 19) for bn in ('', '_bn')})
_MODELS.update({f'densenet{n}': globals()[f'densenet{n}'] for n in (121, 161, 169, 201)})
_MODELS.update({'alexnet': alexnet, 'squeezenet1.0': squeezenet1_0, 'squeezenet1.1': squeezenet1_1,
                'inceptionv3': inception_v3})
_MODELS.update({f.__name__: f for f in (mobilenet1_0, mobilenet0_75, mobilenet0_5, mobilenet0_25, mobilenet_v2_1_0,
                                        mobilenet_v2_0_75, mobilenet_v2_0_5, mobilenet_v2_0_25)})


def get_model(name, **kwargs):
    """A model by its MXNet model-zoo name ('resnet18_v1', 'densenet121', 'mobilenetv2_0.5', ...); kwargs go to
    its constructor (classes, pretrained, ctx, root, ...)."""
    fn = _MODELS.get(name.lower())
    if fn is None:
        raise GraphcError(f"get_model: no model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return fn(**kwargs)
