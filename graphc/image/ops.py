"""mx.nd.image / mx.sym.image: MXNet's image operators on HWC (or NHWC) arrays, composed from graphc's ops so
they trace, compose into Symbols and differentiate like any other op. ops(F) builds the namespace for nd or sym."""
import types

import numpy as np

from ..base import GraphcError, GraphcShapeError


def _ndim(x, op):
    shape = getattr(x, 'shape', None)
    if shape is None:
        raise GraphcShapeError(f"image.{op}: needs the input's number of dimensions; give the Symbol a shape")
    if len(shape) not in (3, 4):
        raise GraphcShapeError(f"image.{op}: expects (H, W, C) or (N, H, W, C), got shape {tuple(shape)}")
    return len(shape)


def ops(F):
    def flip_left_right(data, name=None):
        """Reverse the width axis of an HWC / NHWC image."""
        return F.reverse(data, axis=-2, name=name)

    def flip_top_bottom(data, name=None):
        """Reverse the height axis of an HWC / NHWC image."""
        return F.reverse(data, axis=-3, name=name)

    def _random_flip(data, p, flip):
        from .. import random as _random
        return flip(data) if _random.generator().random() < p else F.identity(data)

    def random_flip_left_right(data, p=0.5):
        """flip_left_right with probability p (drawn from graphc.random.generator())."""
        return _random_flip(data, p, flip_left_right)

    def random_flip_top_bottom(data, p=0.5):
        return _random_flip(data, p, flip_top_bottom)

    def crop(data, x, y, width, height, name=None):
        """The width x height box at column x, row y of an HWC / NHWC image."""
        x, y, width, height = int(x), int(y), int(width), int(height)
        if x < 0 or y < 0 or width <= 0 or height <= 0:
            raise GraphcError(f"image.crop: x, y must be >= 0 and width, height > 0, got x={x}, y={y}, "
                              f"width={width}, height={height}")
        shape = getattr(data, 'shape', None)
        if shape is not None:
            _ndim(data, 'crop')
            if y + height > shape[-3] or x + width > shape[-2]:
                raise GraphcShapeError(f"image.crop: the box x={x}, y={y}, width={width}, height={height} "
                                       f"leaves the {shape[-2]}x{shape[-3]} image")
        rows = F.slice_axis(data, axis=-3, begin=y, end=y + height)
        return F.slice_axis(rows, axis=-2, begin=x, end=x + width, name=name)

    def to_tensor(data, name=None):
        """HWC (NHWC) in [0, 255] -> CHW (NCHW) float32 in [0, 1]."""
        axes = (2, 0, 1) if _ndim(data, 'to_tensor') == 3 else (0, 3, 1, 2)
        return F.transpose(F.Cast(data, dtype='float32'), axes=axes) / 255.0

    def normalize(data, mean=0.0, std=1.0, name=None):
        """(x - mean[c]) / std[c] over the channel axis of a CHW / NCHW float tensor (1 or C values each)."""
        nd_ = _ndim(data, 'normalize')
        c = data.shape[-3]
        m, s = (np.atleast_1d(np.asarray(v, np.float32)) for v in (mean, std))
        for what, v in (('mean', m), ('std', s)):
            if len(v) not in (1, c):
                raise GraphcShapeError(f"image.normalize: {what} has {len(v)} values for {c} channels")
        shape = (-1, 1, 1) if nd_ == 3 else (1, -1, 1, 1)
        from .. import ndarray as nd
        mv, sv = (nd.array(np.broadcast_to(v, (c,)).reshape(shape)) for v in (m, s))
        if F is not nd:
            raise GraphcError("sym.image.normalize is not provided; normalize NDArrays or use transforms.Normalize")
        return F.broadcast_div(F.broadcast_sub(data, mv), sv)

    def resize(data, size=(), keep_ratio=False, interp=1, name=None):
        """HWC / NHWC resized to size (width, height), or an int: (size, size), with keep_ratio the short side
        (mx.image.imresize's OpenCV sampling; computed on the host, not differentiated)."""
        from .. import ndarray as nd
        from .image import _resize
        if F is not nd:
            raise GraphcError("sym.image.resize is not provided; resize NDArrays or use transforms.Resize")
        a = data.asnumpy()
        _ndim(data, 'resize')
        h, w = a.shape[-3:-1]
        if isinstance(size, int):
            if size <= 0:
                raise GraphcError(f"image.resize: size must be positive, got {size}")
            nw, nh = (size, size * h // w) if keep_ratio and h > w else \
                (size * w // h, size) if keep_ratio else (size, size)
        elif len(size) == 2:
            nw, nh = (int(v) for v in size)
        else:
            raise GraphcError(f"image.resize: size must be an int or (width, height), got {size!r}")
        out = np.stack([_resize(i, nw, nh, interp) for i in a]) if a.ndim == 4 else _resize(a, nw, nh, interp)
        return nd.array(out, dtype=out.dtype)

    return types.SimpleNamespace(resize=resize, flip_left_right=flip_left_right, flip_top_bottom=flip_top_bottom,
                                 random_flip_left_right=random_flip_left_right,
                                 random_flip_top_bottom=random_flip_top_bottom, crop=crop, to_tensor=to_tensor,
                                 normalize=normalize)
