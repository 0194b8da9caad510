"""Convolution and its gradients on the device through cuDNN, where cupy exposes it; else im2col + cuBLAS.

CuPy 13 wraps cuDNN in `cupyx.cudnn` (cupyx/cudnn.pyx) when a cuDNN 8 library is installed beside it (the
`nvidia-cudnn-cu12` 8.9 wheel, or `python -m cupyx.tools.install_library --library cudnn`); CuPy 14 removed
cuDNN altogether (docs.cupy.dev, Upgrade Guide, "Dropping cuDNN Support"), so there `import cupyx.cudnn` fails
and every convolution takes the im2col path. What this module calls (CuPy 13's signatures):

  cupyx.cudnn.convolution_forward(x, W, b, y, pad, stride, dilation, groups, *, auto_tune, tensor_core,
                                  d_layout, w_layout)           y = conv(x, W) (+ b), written into y
  cupyx.cudnn.convolution_backward_data(W, gy, None, gx, pad, stride, dilation, groups, *, deterministic,
                                        auto_tune, tensor_core, d_layout, w_layout)     gx, written
  cupyx.cudnn.convolution_backward_filter(x, gy, gW, pad, stride, dilation, groups, *, deterministic,
                                          auto_tune, tensor_core, d_layout, w_layout)   gW, written
  cupy.cuda.cudnn.CUDNN_TENSOR_NCHW / CUDNN_TENSOR_NHWC (d_layout and w_layout; MXNet's NHWC weight is
  (F, kh, kw, C/g), cuDNN's NHWC filter), CuDNNError (a RuntimeError: a refused configuration)

cupyx caches the algorithm per device, shapes and parameters (cudnnFind once per shape with auto_tune, MXNet's
cudnn_tune other than 'off'). The bias gradient is a sum over the device array (cupyx has no wrapper for it).
Each convolution's geometry is decided once: `decisions` maps it to 'cudnn' or to why im2col runs (no cuDNN,
cudnn_off, a dtype or layout cuDNN is not given here, or cuDNN's own refusal); the logger 'graphc.cudnn' says
each at debug level.
"""
import logging

import numpy as np

from .cuda import DeviceOp

log = logging.getLogger('graphc.cudnn')
decisions = {}   # geometry -> 'cudnn', or the reason the im2col path runs it


def library():
    """(cupyx.cudnn, cupy.cuda.cudnn), or (None, why not)."""
    try:
        import cupyx.cudnn as cx
        from cupy.cuda import cudnn as lib
    except (ImportError, OSError, RuntimeError, AttributeError) as e:  # no cupyx.cudnn (CuPy 14), no libcudnn, or
        # a real cupyx importing the stand-in cupy of the tests
        return None, f"cupy has no cuDNN here ({type(e).__name__}: {e})"
    return (cx, lib), None


def _static_reason(node):
    """Why this node is not given to cuDNN whatever is installed, or None."""
    a = node.attrs
    if a.get('cudnn_off'):
        return "cudnn_off=True"
    if np.dtype(node.dtypes[0]).char not in 'fde':  # (cupyx.cudnn takes float32, float64 and float16)
        return f"dtype {np.dtype(node.dtypes[0]).name}"
    return None


def _decide(key, node):
    why = decisions.get(key)
    if why is None:
        why = _static_reason(node) or library()[1] or 'cudnn'
        _record(key, node, why)
    return why


def _record(key, node, why):
    decisions[key] = why
    log.debug("%s (%s %s): %s", node.name, node.op.name, key[1:], 'cuDNN' if why == 'cudnn' else f"im2col: {why}")


def first(node, fallback):
    """A 2-d convolution node's DeviceOp: cuDNN where it takes the geometry, else `fallback` (the im2col + GEMM
    DeviceOp)."""
    from graphc.ops.nn import conv_params
    a = node.attrs
    k, st, dl, pd = conv_params(a, 'Convolution')
    shapes = tuple(tuple(s.shapes[j]) for s, j in node.inputs)
    key = (node.op.name, shapes, np.dtype(node.dtypes[0]).name, st, dl, pd, a['num_group'], a['layout'])
    last = a['layout'] not in ('None', 'NCHW')
    grad = node.op.name == '_backward_Convolution'
    geo = (tuple(pd), tuple(st), tuple(dl), a['num_group'])   # (pad, stride, dilation, groups)
    tune = a['cudnn_tune'] != 'off'

    def call(xp, arrays):
        (cx, lib), _ = library()
        fmt = lib.CUDNN_TENSOR_NHWC if last else lib.CUDNN_TENSOR_NCHW
        kw = dict(auto_tune=tune, tensor_core='auto', d_layout=fmt, w_layout=fmt)
        args = [xp.ascontiguousarray(v) for v in arrays]
        if not grad:
            y = xp.empty(node.shapes[0], node.dtypes[0])
            cx.convolution_forward(args[0], args[1], args[2] if len(args) > 2 else None, y, *geo, **kw)
            return (y,)
        dy, x, w = args
        if a.get('_need', (True,))[0]:
            dx = xp.empty(x.shape, x.dtype)
            cx.convolution_backward_data(w, dy, None, dx, *geo, deterministic=False, **kw)
        else:  # (the data needs no gradient: a first layer)
            dx = xp.zeros(x.shape, x.dtype)
        dw = xp.empty(w.shape, w.dtype)
        cx.convolution_backward_filter(x, dy, dw, *geo, deterministic=False, **kw)
        return dx, dw, dy.sum(axis=(0, 1, 2) if last else (0, 2, 3))

    def run(launch, xp, arrays):
        if xp is np or _decide(key, node) != 'cudnn':  # (NumPy arrays: the emulation's check of the kernels)
            return fallback.run(launch, xp, arrays)
        try:
            return call(xp, arrays)
        except (RuntimeError, ValueError) as e:  # CuDNNError, or cupyx finding no algorithm for the workspace
            _record(key, node, f"cuDNN refused it: {type(e).__name__}: {e}")
            return fallback.run(launch, xp, arrays)
    return DeviceOp(node, fallback.kernels, run)
