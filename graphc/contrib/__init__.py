"""mx.contrib: text (vocabularies and token embeddings), the older autograd names, and MXNet's contrib.nd /
contrib.sym (= nd.contrib / sym.contrib)."""
from . import autograd, text  # noqa: F401
from ..ndarray import contrib as nd  # noqa: F401,E402
from ..symbol import contrib as sym  # noqa: F401,E402
ndarray, symbol = nd, sym
