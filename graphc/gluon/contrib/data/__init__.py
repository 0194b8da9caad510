"""gluon.contrib.data: MXNet 1.9's contrib data tools (IntervalSampler; the text datasets download and are not
provided)."""
from ...data.sampler import IntervalSampler  # noqa: F401
from . import sampler  # noqa: F401
