"""mx.nd.contrib: the contrib ops graphc has (registered as _contrib_<name>), under their short names."""
import sys

from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import ndarray as nd
    for name in OPS:
        if name.startswith('_contrib_'):
            setattr(_mod, name[len('_contrib_'):], getattr(nd, name))


_bind()
