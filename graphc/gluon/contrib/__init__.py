"""gluon.contrib: MXNet's experimental Gluon blocks (mxnet.gluon.contrib)."""
from . import nn  # noqa: F401
