"""Neural network layers (mxnet.gluon.nn)."""
from ..block import Block, HybridBlock  # noqa: F401
from ..symbol_block import SymbolBlock  # noqa: F401  (MXNet 1.x has it here too)
from .basic_layers import *  # noqa: F401,F403
from .conv_layers import *  # noqa: F401,F403
