"""contrib.data.sampler: IntervalSampler, MXNet's contrib home of gluon.data.sampler.IntervalSampler."""
from ...data.sampler import IntervalSampler  # noqa: F401
