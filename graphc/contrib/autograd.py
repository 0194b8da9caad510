"""mx.contrib.autograd: MXNet's older autograd names; train_section/test_section are record/pause."""
from ..autograd import backward, mark_variables, pause as test_section, record as train_section  # noqa: F401
