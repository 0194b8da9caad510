"""gluon.contrib: MXNet's experimental Gluon blocks and tools (mxnet.gluon.contrib: nn, rnn, estimator)."""
from . import data, nn, rnn, estimator  # noqa: F401
