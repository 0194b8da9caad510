"""gluon.contrib: MXNet's experimental Gluon blocks (mxnet.gluon.contrib: nn, rnn)."""
from . import nn, rnn  # noqa: F401
