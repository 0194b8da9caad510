"""graph -> graph passes: autodiff, simplification, fusion, memory planning (in pipeline order)."""
from . import simplify, recurrent, conv_pool, blocked_convs, fusion, pack, memory  # noqa: F401  (registers the passes; manager.PIPELINES orders them)
from .manager import PASSES, PIPELINES, run_pipeline  # noqa: F401
