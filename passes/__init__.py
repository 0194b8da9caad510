"""graph -> graph passes: autodiff, simplification, fusion, memory planning (in pipeline order)."""
from . import simplify, recurrent, fusion, memory  # noqa: F401  (registers the passes in pipeline order)
from .manager import PASSES, PIPELINES, run_pipeline  # noqa: F401
