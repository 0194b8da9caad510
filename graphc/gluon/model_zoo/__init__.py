"""Model architectures as MXNet Gluon's model zoo defines them (no pretrained downloads)."""
from . import vision  # noqa: F401
from .vision import get_model  # noqa: F401
