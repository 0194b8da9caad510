"""mx.mod / mx.module: MXNet's legacy training API (Module) on the Symbol executor."""
from .base_module import BaseModule  # noqa: F401
from .module import Module  # noqa: F401
from .bucketing_module import BucketingModule  # noqa: F401
from . import executor_group  # noqa: F401
