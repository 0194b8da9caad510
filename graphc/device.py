"""NDArrays on gc.gpu(i): buffers are cupy arrays, and each eager op runs on the device as a one-node graph
through runtime/cuda.GpuPlan — generated CUDA for elementwise, broadcast, reduction and injective ops and
pooling, cuBLAS GEMMs, im2col convolutions. An op with no CUDA form runs its NumPy kernel on host copies of
its inputs (explicit copies inside the plan, listed in HOST_OPS, warned about once per op), and its result
goes back to the device: a gpu NDArray never holds a host buffer. cupy is imported on first use only.
"""
import contextlib
import warnings

import numpy as np

from .base import GraphcError, fmt_shape, user_frame

HOST_OPS = set()   # ops that ran with host copies: they have no CUDA form in runtime/cuda.py
SYNCED = set()     # device ids that ran work since the last waitall()
_devices = {}      # device id -> CupyDevice
_plans = {}        # (op, attrs, shapes, dtypes, device id) -> (GpuPlan, its input variables)
_HOST = contextlib.nullcontext()


def cupy():
    import cupy as cp
    return cp


def make_device(device_id):
    """The runtime device (kernel cache, array module) of gpu(device_id); tests swap it for a stand-in."""
    from .runtime.cuda import CupyDevice
    return CupyDevice(device_id)


def device(device_id):
    d = _devices.get(device_id)
    if d is None:
        d = _devices[device_id] = make_device(device_id)
    return d


def device_id(a):
    """None for a host (NumPy) buffer, else the id of the GPU holding it."""
    return None if isinstance(a, (np.ndarray, np.generic)) else a.device.id


def on(a):
    """`with on(a):` makes a's GPU the current cupy device (cupy allocates and launches there); no-op for host a."""
    return _HOST if isinstance(a, (np.ndarray, np.generic)) else cupy().cuda.Device(a.device.id)


def to_device(a, device_id):
    """A copy of a (NumPy, or cupy on any device) on gpu(device_id)."""
    cp = cupy()
    with cp.cuda.Device(device_id):
        SYNCED.add(device_id)
        return cp.array(a, copy=True)


def to_host(a):
    if isinstance(a, np.generic):  # a NumPy scalar (ufuncs on 0-d arrays give them): host data
        return np.asarray(a)
    return a if isinstance(a, np.ndarray) else cupy().asnumpy(a)


def placement(op, inputs):
    """The GPU id op runs on for these NDArray inputs; None for the host. Inputs on different devices raise."""
    where = [None if x._buf is None else device_id(x._buf) for x in inputs]
    if len(set(where)) > 1:
        from .context import Context
        names = ', '.join(f"input {i} on {Context('cpu') if d is None else Context('gpu', d)}"
                          for i, d in enumerate(where))
        raise GraphcError(f"{op.name}: inputs are on different devices ({names}); copy them to one device "
                          "with .as_in_context(ctx) first")
    return where[0] if where else None


def run(op, attrs, data, dev_id):
    """op's outputs (a tuple of cupy arrays on gpu(dev_id)) for cupy inputs `data`."""
    shapes, dtypes = [tuple(a.shape) for a in data], [a.dtype for a in data]
    key = (op.name, tuple(sorted((k, repr(v)) for k, v in attrs.items())), tuple(shapes),
           tuple(map(str, dtypes)), dev_id)
    hit = _plans.get(key)
    if hit is None:
        hit = _plan(op, attrs, shapes, dtypes, dev_id)
        if len(_plans) < 4096:
            _plans[key] = hit
    plan, vars_ = hit
    cp = cupy()
    with cp.cuda.Device(dev_id):
        SYNCED.add(dev_id)
        try:
            return tuple(plan(dict(zip(vars_, data))))
        except GraphcError:
            raise
        except (ValueError, IndexError, TypeError) as e:
            raise GraphcError(f"{op.name} on gpu({dev_id}): {e} (input shapes "
                              f"{', '.join(fmt_shape(s) for s in shapes)})") from None


def _plan(op, attrs, shapes, dtypes, dev_id):
    from .graph import Graph, Node
    from .runtime.cuda import GpuPlan
    vs = [Node(None, f"in{i}", shapes=[s], dtypes=[d]) for i, (s, d) in enumerate(zip(shapes, dtypes))]
    n = Node(op, op.name.lower().lstrip('_'), attrs, [(v, 0) for v in vs])
    n.shapes, n.dtypes = op.infer(attrs, shapes, dtypes)  # a shape error names the op and the shapes
    plan = GpuPlan(Graph([(n, j) for j in range(n.num_outputs)], vs), device(dev_id))
    if plan.host_ops and op.name not in HOST_OPS and all(np.prod(s) for s in shapes + n.shapes):  # (empty: no work)
        HOST_OPS.add(op.name)
        fn, line, _ = user_frame()
        warnings.warn_explicit(f"graphc: {op.name} has no CUDA kernel; on gpu({dev_id}) it runs on the host, with "
                               "its inputs and outputs copied", UserWarning, fn or 'graphc', line or 0)
    return plan, vs


def synchronize(dev_id=None):
    """Wait for the work queued on one GPU (dev_id), or on every GPU used since the last call."""
    ids = list(SYNCED) if dev_id is None else [dev_id]
    if not ids:
        return
    cp = cupy()
    for i in ids:
        cp.cuda.Device(i).synchronize()
    if dev_id is None:
        SYNCED.clear()
