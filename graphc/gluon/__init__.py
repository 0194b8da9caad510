"""Gluon: the imperative/hybrid neural network API of MXNet 1.x."""
from .parameter import Parameter, Constant, ParameterDict  # noqa: F401
from .block import Block, HybridBlock  # noqa: F401
from . import nn, loss, utils, data  # noqa: F401
from .trainer import Trainer  # noqa: F401
from .symbol_block import SymbolBlock  # noqa: F401
from . import rnn, model_zoo  # noqa: F401
from . import contrib  # noqa: F401
