"""Devices: gc.cpu() and gc.gpu(i), as in MXNet's Context."""
import threading

from .base import GraphcError


class _ClassProperty:
    def __init__(self, f):
        self.f = f

    def __get__(self, obj, cls):
        return self.f(cls)


class Context:
    """A device. `with gc.gpu(0):` makes it the default for new arrays (per thread, as MXNet's).

    MXNet's 'cpu_pinned' and 'cpu_shared' (host memory for GPU copies and for worker processes) are the
    cpu here: graphc's host arrays are plain NumPy memory."""
    _default_ctx = threading.local()  # .value: the current default (MXNet's attribute)
    devtype2str = {1: 'cpu', 2: 'gpu', 3: 'cpu_pinned', 5: 'cpu_shared'}
    devstr2type = {v: k for k, v in devtype2str.items()}

    def __init__(self, device_type='cpu', device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type in ('cpu_pinned', 'cpu_shared'):
            device_type = 'cpu'
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
        self._old, Context._default_ctx.value = getattr(Context._default_ctx, 'value', None), self
        return self

    def __exit__(self, *exc):
        Context._default_ctx.value = self._old

    @property
    def device_typeid(self):
        return self.devstr2type[self.device_type]

    @_ClassProperty
    def default_ctx(cls):
        """The current default context (MXNet's deprecated spelling of current_context())."""
        return current_context()

    def empty_cache(self):
        """MXNet frees its pooled device memory; graphc keeps no pool of its own, so there is nothing to do."""


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
    return getattr(Context._default_ctx, 'value', None) or Context('cpu', 0)
