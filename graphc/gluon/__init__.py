"""Gluon: the imperative/hybrid neural network API of MXNet 1.x."""
from .parameter import Parameter, Constant, ParameterDict  # noqa: F401
from ..base import DeferredInitializationError  # noqa: F401  (gluon.DeferredInitializationError, as MXNet)
from .block import Block, HybridBlock  # noqa: F401
from . import nn, loss, utils, data  # noqa: F401
from .trainer import Trainer  # noqa: F401
from .symbol_block import SymbolBlock  # noqa: F401
from . import rnn, model_zoo  # noqa: F401
from .. import metric  # noqa: F401,E402  (gluon.metric is mx.metric)
from . import contrib  # noqa: F401,E402
from ..ndarray.ndarray import NDArray as _NDArray  # noqa: E402
from ..symbol import Symbol as _Symbol  # noqa: E402
tensor_types = (_Symbol, _NDArray)  # MXNet's gluon.tensor_types
