"""mx.contrib: text (vocabularies and token embeddings)."""
from . import text  # noqa: F401
