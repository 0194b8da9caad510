"""MXNet Gluon's vision model zoo architectures (structure and parameter names as MXNet builds them)."""
from ....base import GraphcError
from .resnet import (BasicBlockV1, BasicBlockV2, BottleneckV1, BottleneckV2, ResNetV1, ResNetV2,  # noqa: F401
                     get_resnet, resnet18_v1, resnet34_v1, resnet50_v1, resnet101_v1, resnet152_v1, resnet18_v2,
                     resnet34_v2, resnet50_v2, resnet101_v2, resnet152_v2)

_MODELS = {f'resnet{n}_v{v}': globals()[f'resnet{n}_v{v}'] for n in (18, 34, 50, 101, 152) for v in (1, 2)}


def get_model(name, **kwargs):
    """A model by its MXNet model-zoo name ('resnet18_v1', ...); kwargs go to its constructor (classes,
    thumbnail, ...)."""
    fn = _MODELS.get(name.lower())
    if fn is None:
        raise GraphcError(f"get_model: no model {name!r}; available: {', '.join(sorted(_MODELS))}")
    return fn(**kwargs)
