"""gluon.contrib, as MXNet 1.9 names it (rnn: VariationalDropoutCell, LSTMPCell)."""
from . import rnn  # noqa: F401
