"""mx.nd.linalg: MXNet's linear-algebra ops (linalg_gemm, ...) under their short names."""
import sys

from ..registry import OPS

_mod = sys.modules[__name__]


def _bind():
    from .. import ndarray as nd
    for name in OPS:
        if name.startswith('_linalg_'):
            setattr(_mod, name[len('_linalg_'):], getattr(nd, name))


_bind()
