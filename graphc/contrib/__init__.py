"""mx.contrib: text (vocabularies and token embeddings)."""
from . import autograd, text  # noqa: F401
