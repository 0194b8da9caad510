"""gluon.contrib.rnn: the cells MXNet 1.9 keeps in contrib (implemented in gluon/rnn/rnn_cell.py)."""
from ..rnn.rnn_cell import LSTMPCell, VariationalDropoutCell  # noqa: F401
