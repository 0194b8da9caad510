"""Importing this package registers every op."""
from . import elemwise, shape, reduce, nn  # noqa: F401
from . import rnn  # noqa: F401
from . import norm  # noqa: F401
from . import ctc, reshape_like  # noqa: F401
