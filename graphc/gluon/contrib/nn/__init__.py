"""gluon.contrib.nn as MXNet 1.9: Concurrent/HybridConcurrent, Identity, SyncBatchNorm, SparseEmbedding.
Most of these live in gluon.nn too; these are the same classes under MXNet's contrib names."""
from ...nn.basic_layers import Concatenate, Embedding, HybridConcatenate, Identity, SyncBatchNorm


class Concurrent(Concatenate):
    """Children run on the same input, outputs concatenated on `axis` (MXNet's contrib name for Concatenate)."""


class HybridConcurrent(HybridConcatenate):
    """HybridConcatenate under MXNet's contrib name."""


class SparseEmbedding(Embedding):
    """Embedding with sparse_grad=True (the gradient is computed densely here)."""

    def __init__(self, input_dim, output_dim, dtype='float32', weight_initializer=None, **kwargs):
        super().__init__(input_dim, output_dim, dtype, weight_initializer, sparse_grad=True, **kwargs)


__all__ = ['Concurrent', 'HybridConcurrent', 'Identity', 'SyncBatchNorm', 'SparseEmbedding']
