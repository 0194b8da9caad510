"""GPU plans for hybridized blocks: replay what they run (their optimized graphs and inputs) on a CUDA device,
or on the host emulation of one (runtime/emulate.py), as benchmarks/gpu.py and tests/test_cuda.py do. (Not
named graphc/gpu.py: a submodule of that name would hide the gc.gpu() context function.)"""
import contextlib

from .runtime import backend, cuda


@contextlib.contextmanager
def captured_plans():
    """Within the block, every graph an executor runs (a hybridized block's inference, and the forward and
    backward halves of a recorded training step) is appended to the yielded list as (graph, feed
    {variable node: array}): executors notify runtime/backend.recorders."""
    runs = []
    backend.recorders.append(runs)
    try:
        yield runs
    finally:
        backend.recorders.remove(runs)


def device(emulate=False, device_id=0):
    """A device for GpuPlan: cupy's (NVRTC, cuBLAS, memory pool), or the host emulation with emulate=True."""
    if emulate:
        from .runtime.emulate import EmuDevice
        return EmuDevice()
    return cuda.CupyDevice(device_id)
