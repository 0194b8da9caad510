"""Small helpers as mxnet.gluon.utils: split a batch across devices, clip gradients by global norm."""
import math
import warnings

import numpy as np

from .. import nd
from ..base import GraphcError
from ..ndarray.ndarray import NDArray


def split_data(data, num_slice, batch_axis=0, even_split=True):
    """Split `data` into num_slice pieces along batch_axis (the last piece takes the remainder)."""
    size = data.shape[batch_axis]
    if even_split and size % num_slice != 0:
        raise GraphcError(f"data with shape {data.shape} cannot be evenly split into {num_slice} slices along axis "
                          f"{batch_axis}; use a batch size that's a multiple of {num_slice} or set even_split=False")
    step = size // num_slice
    if not even_split and size < num_slice:
        step, num_slice = 1, size
    return [nd.slice_axis(data, axis=batch_axis, begin=i * step, end=(i + 1) * step if i < num_slice - 1 else size)
            for i in range(num_slice)]


def split_and_load(data, ctx_list, batch_axis=0, even_split=True):
    """Split data along batch_axis and put one piece on each context."""
    if not isinstance(data, NDArray):
        data = nd.array(data, ctx=ctx_list[0])
    if len(ctx_list) == 1:
        return [data.as_in_context(ctx_list[0])]
    return [s.as_in_context(c) for s, c in zip(split_data(data, len(ctx_list), batch_axis, even_split), ctx_list)]


def clip_global_norm(arrays, max_norm, check_isfinite=True):
    """Scale arrays in place so that their joint 2-norm is at most max_norm; returns the norm before."""
    if not arrays:
        raise GraphcError("clip_global_norm: no arrays given")
    total = math.sqrt(sum(float(np.sum(np.square(a._data, dtype=np.float64))) for a in arrays))
    if check_isfinite and not math.isfinite(total):
        warnings.warn("nan or inf is detected; clipping results will be undefined", UserWarning, stacklevel=2)
    scale = max_norm / (total + 1e-8)
    if scale < 1.0:
        for a in arrays:
            a._data *= a._data.dtype.type(scale)
    return total
