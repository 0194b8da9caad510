"""Recurrent neural network cells and layers (MXNet's gluon.rnn)."""
from .rnn_cell import (RecurrentCell, HybridRecurrentCell, RNNCell, LSTMCell, GRUCell, LSTMPCell,  # noqa: F401
                       SequentialRNNCell, HybridSequentialRNNCell, DropoutCell, ModifierCell, ZoneoutCell,
                       ResidualCell, BidirectionalCell, VariationalDropoutCell)
from .rnn_layer import RNN, LSTM, GRU  # noqa: F401
