"""Devices: gc.cpu() and gc.gpu(i), as in MXNet's Context."""
from .base import GraphcError


class Context:
    """A device. `with gc.gpu(0):` makes it the default for new arrays."""
    _default = None

    def __init__(self, device_type='cpu', device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type not in ('cpu', 'gpu'):
            raise GraphcError(f"unknown device type {device_type!r}; use 'cpu' or 'gpu'")
        self.device_type, self.device_id = device_type, int(device_id)
        self._old = None

    def __eq__(self, other):
        return isinstance(other, Context) and (self.device_type, self.device_id) == (other.device_type, other.device_id)

    def __hash__(self):
        return hash((self.device_type, self.device_id))

    def __repr__(self):
        return f"{self.device_type}({self.device_id})"

    def __enter__(self):
        self._old, Context._default = Context._default, self
        return self

    def __exit__(self, *exc):
        Context._default = self._old


def cpu(device_id=0):
    return Context('cpu', device_id)


def gpu_support():
    """(ok, reason): whether cupy imports and sees a CUDA device."""
    try:
        import cupy
    except ImportError:
        return False, "cupy is not installed: install graphc with GPU support, `pip install graphc[gpu]`"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, or driver too old
        return False, f"cupy is installed but the CUDA driver is not usable: {e}"
    if n == 0:
        return False, "cupy is installed but no CUDA device is visible"
    return True, f"{n} CUDA device(s)"


def num_gpus():
    ok, reason = gpu_support()
    if not ok:
        return 0
    import cupy
    return cupy.cuda.runtime.getDeviceCount()


def gpu(device_id=0):
    """A GPU context. Fails now, with what is missing, rather than at the first op."""
    ok, reason = gpu_support()
    if not ok:
        raise GraphcError(f"gc.gpu({device_id}) is not available: {reason}")
    n = num_gpus()
    if device_id >= n:
        raise GraphcError(f"gc.gpu({device_id}) does not exist: {n} CUDA device(s) visible")
    return Context('gpu', device_id)


def current_context():
    return Context._default or Context('cpu', 0)
