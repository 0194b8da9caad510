"""Devices: gc.cpu(i) and gc.gpu(i), as MXNet's Context.

A Context is only a name: gc.cpu(i) is valid for any i (each is the host; MXNet uses cpu ids to keep
one copy of a parameter per "device" in one process), and gc.gpu(i) is made even where no GPU exists.
Whether a GPU is usable is checked when memory is allocated there (`check`), so code that probes with
`try: nd.zeros((1,), ctx=gc.gpu())` / `except MXNetError` works as in MXNet.
"""
import threading

from .base import GraphcError


class _ClassProperty:
    """A read-only property of the class (Context.default_ctx, NameManager.current)."""

    def __init__(self, f):
        self.f = f

    def __get__(self, obj, cls):
        return self.f(cls)


class Context:
    """A device. `with gc.gpu(0):` makes it the default for new arrays (per thread, as in MXNet)."""
    devtype2str = {1: 'cpu', 2: 'gpu', 3: 'cpu_pinned', 5: 'cpu_shared'}
    devstr2type = {'cpu': 1, 'gpu': 2, 'cpu_pinned': 3, 'cpu_shared': 5}
    _default_ctx = threading.local()

    def __init__(self, device_type='cpu', device_id=0):
        if isinstance(device_type, Context):
            device_type, device_id = device_type.device_type, device_type.device_id
        if device_type not in Context.devstr2type:
            raise GraphcError(f"unknown device type {device_type!r}; use one of {sorted(Context.devstr2type)}")
        self.device_typeid = Context.devstr2type[device_type]
        self.device_id = int(device_id)
        if self.device_id < 0:
            raise GraphcError(f"{device_type}({device_id}): a device id is a non-negative integer")
        self._old_ctx = None

    @property
    def device_type(self):
        return Context.devtype2str[self.device_typeid]

    def __eq__(self, other):
        return isinstance(other, Context) and (self.device_typeid, self.device_id) == \
            (other.device_typeid, other.device_id)

    def __hash__(self):
        return hash((self.device_typeid, self.device_id))

    def __repr__(self):
        return f"{self.device_type}({self.device_id})"

    __str__ = __repr__

    def __enter__(self):
        self._old_ctx = getattr(Context._default_ctx, 'value', None)
        Context._default_ctx.value = self
        return self

    def __exit__(self, *exc):
        Context._default_ctx.value = self._old_ctx

    def empty_cache(self):
        """Release the GPU memory pool's cached blocks (nothing to do on the host)."""
        if self.device_type == 'gpu':
            check(self)
            import cupy
            with cupy.cuda.Device(self.device_id):
                cupy.get_default_memory_pool().free_all_blocks()


Context.default_ctx = _ClassProperty(lambda cls: current_context())  # MXNet's (deprecated) Context.default_ctx


def cpu(device_id=0):
    return Context('cpu', device_id)


def cpu_pinned(device_id=0):
    return Context('cpu_pinned', device_id)


def gpu(device_id=0):
    """A GPU context. It is only a name: allocating memory there says what is missing, if anything."""
    return Context('gpu', device_id)


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


def check(ctx):
    """Raise, saying what is missing, unless memory can be allocated on ctx (any cpu id can)."""
    if ctx.device_type == 'gpu':
        ok, reason = gpu_support()
        if not ok:
            raise GraphcError(f"gc.gpu({ctx.device_id}) is not available: {reason}")
        n = num_gpus()
        if ctx.device_id >= n:
            raise GraphcError(f"gc.gpu({ctx.device_id}) does not exist: {n} CUDA device(s) visible")
    return ctx


def current_context():
    return getattr(Context._default_ctx, 'value', None) or Context('cpu', 0)
