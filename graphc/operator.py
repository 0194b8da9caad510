"""mx.operator: MXNet's Python custom operators (CustomOp, CustomOpProp, register) are out of scope for graphc.
The names exist so that code defining one fails at its definition, with this explanation."""
from .base import GraphcNotSupportedError

_MSG = ("custom operators (mx.operator.CustomOp / CustomOpProp / register, nd.Custom) are not supported by graphc: "
        "write the computation with nd/sym ops or as a Gluon (Hybrid)Block; for a custom gradient, use "
        "autograd.Function")


class CustomOp:
    def __init__(self, *args, **kwargs):
        raise GraphcNotSupportedError(_MSG)


class CustomOpProp:
    def __init__(self, *args, **kwargs):
        raise GraphcNotSupportedError(_MSG)


def register(reg_name):
    """MXNet's decorator for a CustomOpProp: refuses, naming the operator."""
    def deco(prop_cls):
        raise GraphcNotSupportedError(f"operator {reg_name!r}: {_MSG}")
    return deco
