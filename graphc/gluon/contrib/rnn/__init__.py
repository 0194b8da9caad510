"""gluon.contrib.rnn: the cells MXNet 1.9 keeps in contrib: convolutional RNN/LSTM/GRU cells, LSTMPCell,
VariationalDropoutCell (the last two implemented in gluon/rnn/rnn_cell.py) and dynamic_unroll."""
from . import conv_rnn_cell, rnn_cell  # noqa: F401
from .conv_rnn_cell import (Conv1DRNNCell, Conv2DRNNCell, Conv3DRNNCell, Conv1DLSTMCell, Conv2DLSTMCell,  # noqa: F401
                            Conv3DLSTMCell, Conv1DGRUCell, Conv2DGRUCell, Conv3DGRUCell)
from .rnn_cell import LSTMPCell, VariationalDropoutCell, dynamic_unroll  # noqa: F401
