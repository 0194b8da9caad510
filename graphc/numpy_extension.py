"""mx.npx: MXNet 1.9's NumPy extensions: the switch (set_np), devices, and the neural-network operators under
their np names (npx.relu, npx.softmax, npx.pick, ...), each one of graphc's registered ops."""
from . import ndarray as _nd
from .context import Context, cpu, cpu_pinned, current_context, gpu, num_gpus  # noqa: F401
from .ndarray.ndarray import waitall  # noqa: F401
from .util import is_np_array, is_np_shape, reset_np, set_np, use_np, use_np_array, use_np_shape  # noqa: F401
from .numpy import _npfunc, _t

load, save = _nd.load, _nd.save


def _wrap(fn, name, doc=None):
    f = _npfunc(lambda *a, **kw: fn(*(_t(x) if i == 0 else x for i, x in enumerate(a)), **kw))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc or f"MXNet's npx.{name}: graphc's {getattr(fn, '__name__', name)} op."
    return f


relu, sigmoid, erf = _wrap(_nd.relu, 'relu'), _wrap(_nd.sigmoid, 'sigmoid'), _wrap(_nd.erf, 'erf')
activation = _wrap(_nd.Activation, 'activation')
leaky_relu = _wrap(_nd.LeakyReLU, 'leaky_relu')
batch_norm, layer_norm = _wrap(_nd.BatchNorm, 'batch_norm'), _wrap(_nd.LayerNorm, 'layer_norm')
fully_connected, convolution = _wrap(_nd.FullyConnected, 'fully_connected'), _wrap(_nd.Convolution, 'convolution')
deconvolution, pooling = _wrap(_nd.Deconvolution, 'deconvolution'), _wrap(_nd.Pooling, 'pooling')
embedding, rnn = _wrap(_nd.Embedding, 'embedding'), _wrap(_nd.RNN, 'rnn')
batch_dot, batch_flatten = _wrap(_nd.batch_dot, 'batch_dot'), _wrap(_nd.Flatten, 'batch_flatten')
gather_nd, reshape_like = _wrap(_nd.gather_nd, 'gather_nd'), _wrap(_nd.reshape_like, 'reshape_like')
shape_array, smooth_l1 = _wrap(_nd.shape_array, 'shape_array'), _wrap(_nd.smooth_l1, 'smooth_l1')
slice = _wrap(_nd.slice, 'slice')  # noqa: A001  (MXNet's name)
sequence_mask = _wrap(_nd.SequenceMask, 'sequence_mask')
cast = _wrap(_nd.Cast, 'cast')


@_npfunc
def softmax(data, axis=-1, length=None, temperature=None, use_length=False, dtype=None):
    args = (_t(data), length) if use_length else (_t(data),)
    return _nd.softmax(*args, axis=axis, temperature=temperature, use_length=use_length, dtype=dtype)


@_npfunc
def log_softmax(data, axis=-1, length=None, temperature=None, use_length=False, dtype=None):
    args = (_t(data), length) if use_length else (_t(data),)
    return _nd.log_softmax(*args, axis=axis, temperature=temperature, use_length=use_length, dtype=dtype)


@_npfunc
def dropout(data, p=0.5, mode='training', axes=(), cudnn_off=False):
    return _nd.Dropout(_t(data), p=p, mode=mode, axes=axes)


@_npfunc
def one_hot(data, depth, on_value=1.0, off_value=0.0, dtype='float32'):
    return _nd.one_hot(_t(data), depth=depth, on_value=on_value, off_value=off_value, dtype=dtype)


@_npfunc
def pick(data, index, axis=-1, mode='clip', keepdims=False):
    return _nd.pick(_t(data), _t(index), axis=axis, mode=mode, keepdims=keepdims)


@_npfunc
def topk(data, axis=-1, k=1, ret_typ='indices', is_ascend=False, dtype='float32'):
    return _nd.topk(_t(data), axis=axis, k=k, ret_typ=ret_typ, is_ascend=is_ascend, dtype=dtype)


_NPX_CODES = {-1: -1, -2: 0, -4: -2, -5: -3, -6: -4}  # npx.reshape's special values as the legacy Reshape's


@_npfunc
def reshape(a, newshape, reverse=False, order='C'):
    """npx.reshape: NumPy's reshape plus MXNet's codes -2 (copy this dimension), -4 (copy the rest),
    -5 (merge two), -6 (split one into the next two); -3 (drop a size-1 dimension) is not supported."""
    shape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    if -3 in shape:
        from .base import GraphcNotSupportedError
        raise GraphcNotSupportedError("npx.reshape: the code -3 (drop a size-1 dimension) is not supported; "
                                      "use np.squeeze")
    if any(d < -1 for d in shape):
        return _nd.reshape(_t(a), shape=tuple(_NPX_CODES.get(d, d) if d < 0 else d for d in shape), reverse=reverse)
    from .numpy import reshape as np_reshape
    return np_reshape(a, shape)


def arange_like(data, start=0.0, step=1.0, repeat=1, ctx=None, axis=None):
    import numpy as _onp
    from .numpy import array
    n = data.size if axis is None else data.shape[axis]
    r = _onp.repeat(start + step * _onp.arange(-(-n // repeat)), repeat)[:n]
    return array(r.reshape(data.shape) if axis is None else r, dtype=data.dtype, ctx=ctx or data.context)


def nonzero(a):
    """The indices of a's non-zero elements as an (N, max(a.ndim, 1)) int64 array (MXNet's npx.nonzero)."""
    import numpy as _onp
    from .numpy import array
    from .numpy.multiarray import _host_args
    return array(_onp.argwhere(_onp.atleast_1d(_host_args('nonzero', a))), dtype=_onp.int64, ctx=a.context)  # (0-d: as 1-d)


from .numpy import extension_random as random  # noqa: E402,F401  (npx.random: seed, bernoulli, uniform_n, ...)
