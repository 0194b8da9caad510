"""gluon.contrib.nn as MXNet 1.9: Concurrent/HybridConcurrent, Identity, SyncBatchNorm, SparseEmbedding,
PixelShuffle1D/2D/3D.
Most of these live in gluon.nn too; these are the same classes under MXNet's contrib names."""
import numpy as np

from ...block import HybridBlock
from ...nn.basic_layers import Concatenate, Embedding, HybridConcatenate, Identity, SyncBatchNorm


class Concurrent(Concatenate):
    """Children run on the same input, outputs concatenated on `axis` (MXNet's contrib name for Concatenate)."""


class HybridConcurrent(HybridConcatenate):
    """HybridConcatenate under MXNet's contrib name."""


class SparseEmbedding(Embedding):
    """Embedding with sparse_grad=True (the gradient is computed densely here)."""

    def __init__(self, input_dim, output_dim, dtype='float32', weight_initializer=None, **kwargs):
        super().__init__(input_dim, output_dim, dtype, weight_initializer, sparse_grad=True, **kwargs)


class _PixelShuffle(HybridBlock):
    """(N, C*f1*...*fd, X1, ..., Xd) -> (N, C, X1*f1, ..., Xd*fd): out[n, c, x*f + i] = in[n, c*f + i, x] per axis
    (sub-pixel convolution's upsampling), by reshapes and one transpose."""
    dims = 0

    def __init__(self, factor, **kwargs):
        super().__init__(**kwargs)
        f = (factor,) * self.dims if isinstance(factor, int) else tuple(int(v) for v in factor)
        if len(f) != self.dims or min(f) < 1:
            raise ValueError(f"{type(self).__name__}: factor must be a positive int or {self.dims} of them, "
                             f"got {factor!r}")
        self._factors = f

    def hybrid_forward(self, F, x):
        f, d = self._factors, self.dims
        x = F.reshape(x, (0, -4, -1, int(np.prod(f))) + (0,) * d)       # (N, C, f1*..*fd, X1..Xd)
        for i in range(d - 1):                                            # split the factors one by one
            x = F.reshape(x, (0, 0) + (0,) * i + (-4, f[i], -1) + (0,) * d)
        # axes now: N, C, f1..fd, X1..Xd -> N, C, X1, f1, ..., Xd, fd
        x = F.transpose(x, (0, 1) + tuple(a for k in range(d) for a in (2 + d + k, 2 + k)))
        return F.reshape(x, (0, 0) + (-3,) * d)

    def __repr__(self):
        return f"{type(self).__name__}({self._factors if self.dims > 1 else self._factors[0]})"


class PixelShuffle1D(_PixelShuffle):
    dims = 1


class PixelShuffle2D(_PixelShuffle):
    dims = 2


class PixelShuffle3D(_PixelShuffle):
    dims = 3


__all__ = ['Concurrent', 'HybridConcurrent', 'Identity', 'SyncBatchNorm', 'SparseEmbedding', 'PixelShuffle1D',
           'PixelShuffle2D', 'PixelShuffle3D']
