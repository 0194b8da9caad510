"""Recurrent neural network cells and layers (MXNet's gluon.rnn)."""
from .rnn_cell import (RecurrentCell, HybridRecurrentCell, RNNCell, LSTMCell, GRUCell,  # noqa: F401
                       SequentialRNNCell, HybridSequentialRNNCell, DropoutCell, ModifierCell, ResidualCell)
from .rnn_layer import RNN, LSTM, GRU  # noqa: F401
