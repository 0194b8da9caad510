"""mx.contrib.text: count_tokens_from_str (utils), Vocabulary (vocab), token embeddings from local files (embedding)."""
from . import utils, vocab, embedding  # noqa: F401
