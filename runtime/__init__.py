"""graph -> plan -> run: the reference interpreter and code generators."""

from ..features import Feature, Features, feature_list  # noqa: E402,F401  (mxnet.runtime's feature list)
